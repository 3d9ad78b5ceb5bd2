// GgufWriter: builds a GGUF version 3 file (little-endian) from metadata and tensors, each tensor's
// data aligned to `general.alignment`. Tensor bytes are not copied: they are streamed to the
// file from the caller's span, or from a producer called once per tensor while the file is
// written, so writing a model needs no second copy of its weights in memory.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/file.hpp"
#include "moe/io/gguf_types.hpp"
#include "moe/io/gguf_value.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace moe::io {

namespace detail {
template <class T>
void append_le(std::vector<std::byte>& out, T v) {
  static_assert(std::is_arithmetic_v<T>);
  unsigned char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
  }
  for (unsigned char c : b) out.push_back(static_cast<std::byte>(c));
}
inline void append_gguf_string(std::vector<std::byte>& out, std::string_view s) {
  append_le<std::uint64_t>(out, s.size());
  for (char c : s) out.push_back(static_cast<std::byte>(c));
}
}  // namespace detail

// A metadata array under construction: an element type and the encoded elements. Arrays of
// arrays hold GgufArrayValue elements (each inner array may have its own element type).
class GgufArrayValue {
 public:
  explicit GgufArrayValue(GgufValueType element_type) : element_type_(element_type) {}

  // From a sequence of scalars or strings: std::vector<float>, std::vector<std::string>, ...
  template <class T>
  static GgufArrayValue of(std::span<const T> values) {
    GgufArrayValue a(element_type_of<T>());
    for (const T& v : values) a.push(v);
    return a;
  }
  template <class T>
  static GgufArrayValue of(const std::vector<T>& values) {
    return of(std::span<const T>(values.data(), values.size()));
  }
  static GgufArrayValue of(std::initializer_list<std::string_view> values) {
    GgufArrayValue a(GgufValueType::string);
    for (std::string_view v : values) a.push(v);
    return a;
  }

  // Appends one element; Error(kInvalidArgument) if its type is not the array's element type.
  template <class T>
  void push(const T& v) {
    if constexpr (std::is_same_v<T, GgufArrayValue>) {
      check(GgufValueType::array);
      detail::append_le<std::uint32_t>(payload_, static_cast<std::uint32_t>(v.element_type_));
      detail::append_le<std::uint64_t>(payload_, v.count_);
      payload_.insert(payload_.end(), v.payload_.begin(), v.payload_.end());
    } else if constexpr (std::is_convertible_v<const T&, std::string_view> && !std::is_arithmetic_v<T>) {
      check(GgufValueType::string);
      detail::append_gguf_string(payload_, std::string_view(v));
    } else if constexpr (std::is_same_v<T, bool>) {
      check(GgufValueType::boolean);
      payload_.push_back(static_cast<std::byte>(v ? 1 : 0));
    } else {
      check(element_type_of<T>());
      detail::append_le<T>(payload_, v);
    }
    ++count_;
  }

  GgufValueType element_type() const noexcept { return element_type_; }
  std::uint64_t size() const noexcept { return count_; }
  // The value's encoding: element type, count, elements.
  void encode(std::vector<std::byte>& out) const {
    detail::append_le<std::uint32_t>(out, static_cast<std::uint32_t>(element_type_));
    detail::append_le<std::uint64_t>(out, count_);
    out.insert(out.end(), payload_.begin(), payload_.end());
  }

 private:
  template <class T>
  static constexpr GgufValueType element_type_of() {
    if constexpr (std::is_same_v<T, GgufArrayValue>) {
      return GgufValueType::array;
    } else if constexpr (std::is_convertible_v<const T&, std::string_view> && !std::is_arithmetic_v<T>) {
      return GgufValueType::string;
    } else {
      constexpr auto t = detail::gguf_scalar_type_of<T>();
      static_assert(t.has_value(), "GgufArrayValue: element type has no GGUF type");
      return *t;
    }
  }
  void check(GgufValueType t) const {
    if (t != element_type_) {
      fail(ErrorCode::kInvalidArgument, "GgufArrayValue: cannot append a {} to an array of {}", to_string(t),
           to_string(element_type_));
    }
  }

  GgufValueType element_type_;
  std::uint64_t count_ = 0;
  std::vector<std::byte> payload_;
};

class GgufWriter {
 public:
  // Receives the bytes of one tensor, in order, possibly in several calls.
  using ByteSink = std::function<void(std::span<const std::byte>)>;
  // Produces one tensor's bytes into the sink while the file is written; it must deliver exactly
  // the tensor's byte size.
  using Producer = std::function<void(const ByteSink&)>;

  // `alignment`: a power of two up to gguf_limits::kMaxAlignment; written as general.alignment
  // unless it is the default 32 (readers assume 32 when the key is absent).
  explicit GgufWriter(std::uint32_t alignment = gguf_limits::kDefaultAlignment) : alignment_(alignment) {
    if (alignment == 0 || !std::has_single_bit(alignment) || alignment > gguf_limits::kMaxAlignment) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: alignment {} is not a power of two between 1 and {}", alignment,
           gguf_limits::kMaxAlignment);
    }
    if (alignment != gguf_limits::kDefaultAlignment) set("general.alignment", alignment);
  }

  std::uint32_t alignment() const noexcept { return alignment_; }

  // Whether metadata `key` has been set.
  bool has(std::string_view key) const { return keys_.count(key) != 0; }

  // Adds metadata `key` = value. T: u8..i64, float, double, bool, a string, or a GgufArrayValue
  // (std::vector<E> is a shortcut for GgufArrayValue::of). Keys are unique, non-empty and at
  // most gguf_limits::kMaxKeyBytes long; Error(kInvalidArgument) otherwise.
  template <class T>
  GgufWriter& set(std::string_view key, const T& value) {
    check_key(key);
    std::vector<std::byte> enc;
    if constexpr (std::is_same_v<T, GgufArrayValue>) {
      check_array(key, value);
      detail::append_le<std::uint32_t>(enc, static_cast<std::uint32_t>(GgufValueType::array));
      value.encode(enc);
    } else if constexpr (detail::is_std_vector<T>::value) {
      return set(key, GgufArrayValue::of(value));
    } else if constexpr (std::is_convertible_v<const T&, std::string_view> && !std::is_arithmetic_v<T>) {
      const std::string_view s(value);
      if (s.size() > gguf_limits::kMaxStringBytes) {
        fail(ErrorCode::kInvalidArgument, "GgufWriter: value of {} is {} bytes, over the reader's limit of {}", key,
             s.size(), gguf_limits::kMaxStringBytes);
      }
      detail::append_le<std::uint32_t>(enc, static_cast<std::uint32_t>(GgufValueType::string));
      detail::append_gguf_string(enc, s);
    } else if constexpr (std::is_same_v<T, bool>) {
      detail::append_le<std::uint32_t>(enc, static_cast<std::uint32_t>(GgufValueType::boolean));
      enc.push_back(static_cast<std::byte>(value ? 1 : 0));
    } else {
      constexpr auto t = detail::gguf_scalar_type_of<T>();
      static_assert(t.has_value(), "GgufWriter::set: T has no GGUF type");
      detail::append_le<std::uint32_t>(enc, static_cast<std::uint32_t>(*t));
      detail::append_le<T>(enc, value);
    }
    if (key == "general.alignment") check_alignment_entry(enc);
    keys_.emplace(key);
    kvs_.push_back({std::string(key), std::move(enc)});
    return *this;
  }

  // Adds metadata `key` = a value of a parsed GgufFile (any type, arrays included), copied in its
  // encoded form: how a GGUF's metadata (its tokenizer, say) passes to a new file unchanged.
  GgufWriter& set_value(std::string_view key, const GgufValue& v) {
    check_key(key);
    std::vector<std::byte> enc;
    detail::append_le<std::uint32_t>(enc, static_cast<std::uint32_t>(v.type()));
    enc.insert(enc.end(), v.data(), v.data() + v.encoded_size());
    if (key == "general.alignment") check_alignment_entry(enc);
    keys_.emplace(key);
    kvs_.push_back({std::string(key), std::move(enc)});
    return *this;
  }

  // Adds a tensor of ggml type `type` and outermost-first `shape` (0..4 extents, each >= 1, none
  // for a scalar; the innermost a multiple of the type's block) whose bytes are `data`. The span is read only when
  // the file is written: keep it alive and unchanged until then. Error(kInvalidArgument) for a
  // bad or duplicate name, a bad shape, or a span whose size is not the tensor's byte size.
  GgufWriter& add_tensor(std::string_view name, GgmlType type, std::span<const std::uint64_t> shape,
                         std::span<const std::byte> data) {
    const std::uint64_t nbytes = check_tensor(name, type, shape);
    if (data.size() != nbytes) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: tensor {} of type {} and shape [{}] needs {} bytes, got {}", name,
           to_string(type), fmt::join(shape, ", "), nbytes, data.size());
    }
    push_tensor(name, type, shape, nbytes, [data](const ByteSink& sink) { sink(data); });
    return *this;
  }
  GgufWriter& add_tensor(std::string_view name, GgmlType type, std::initializer_list<std::uint64_t> shape,
                         std::span<const std::byte> data) {
    return add_tensor(name, type, std::span<const std::uint64_t>(shape.begin(), shape.size()), data);
  }
  // As above, with the bytes made while the file is written (quantizing one tensor at a time).
  GgufWriter& add_tensor(std::string_view name, GgmlType type, std::span<const std::uint64_t> shape, Producer producer) {
    const std::uint64_t nbytes = check_tensor(name, type, shape);
    push_tensor(name, type, shape, nbytes, std::move(producer));
    return *this;
  }

  // The byte size of a tensor of this type and outermost-first shape (validated as add_tensor).
  static std::uint64_t tensor_bytes(GgmlType type, std::span<const std::uint64_t> shape) {
    const GgmlTypeInfo& info = ggml_type_info(type);
    std::uint64_t elements = 1;
    for (std::uint64_t e : shape) {
      if (__builtin_mul_overflow(elements, e, &elements)) {
        fail(ErrorCode::kInvalidArgument, "GgufWriter: shape [{}] overflows 64 bits", fmt::join(shape, ", "));
      }
    }
    std::uint64_t n = 0;
    if (__builtin_mul_overflow(elements / info.block_elements, std::uint64_t{info.block_bytes}, &n)) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: shape [{}] of type {} overflows 64 bits", fmt::join(shape, ", "),
           info.name);
    }
    return n;
  }

  // Writes the file to `path` (through `path` + ".tmp", renamed when complete, so a failed write
  // leaves no partial file under the final name). Error(kIo) naming the path and the OS error;
  // Error(kInvalidArgument) if a producer delivers the wrong number of bytes.
  void write(const std::filesystem::path& path) const {
    const std::filesystem::path tmp = path.string() + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      fail(ErrorCode::kIo, "cannot create {}: {}", tmp.string(), std::strerror(err));
    }
    try {
      write_to([&](std::span<const std::byte> b) { write_all(fd, b, tmp); });
      if (::fsync(fd) != 0 && errno != EINVAL) {
        const int err = errno;
        fail(ErrorCode::kIo, "cannot sync {}: {}", tmp.string(), std::strerror(err));
      }
    } catch (...) {
      ::close(fd);
      ::unlink(tmp.c_str());
      throw;
    }
    if (::close(fd) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      fail(ErrorCode::kIo, "cannot close {}: {}", tmp.string(), std::strerror(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      fail(ErrorCode::kIo, "cannot rename {} to {}: {}", tmp.string(), path.string(), std::strerror(err));
    }
  }

  // The whole file in memory (tests, small files).
  std::vector<std::byte> to_bytes() const {
    std::vector<std::byte> out;
    write_to([&](std::span<const std::byte> b) { out.insert(out.end(), b.begin(), b.end()); });
    return out;
  }

  // Streams the file to `sink` (any callable taking std::span<const std::byte>): the header in one
  // piece, then each tensor's bytes and padding as they are produced.
  template <class Sink>
  void write_to(Sink&& sink) const {
    std::vector<std::byte> head(kGgufMagic.size());
    std::memcpy(head.data(), kGgufMagic.data(), kGgufMagic.size());
    detail::append_le<std::uint32_t>(head, 3);
    detail::append_le<std::uint64_t>(head, tensors_.size());
    detail::append_le<std::uint64_t>(head, kvs_.size());
    for (const auto& kv : kvs_) {
      detail::append_gguf_string(head, kv.key);
      head.insert(head.end(), kv.encoded.begin(), kv.encoded.end());
    }
    std::uint64_t offset = 0;
    for (const auto& t : tensors_) {
      detail::append_gguf_string(head, t.name);
      detail::append_le<std::uint32_t>(head, t.n_dims);
      for (std::uint32_t d = 0; d < t.n_dims; ++d) detail::append_le<std::uint64_t>(head, t.ne[d]);
      detail::append_le<std::uint32_t>(head, static_cast<std::uint32_t>(t.type));
      detail::append_le<std::uint64_t>(head, offset);
      offset = align(offset + t.nbytes);
    }
    head.resize(static_cast<std::size_t>(align(head.size())), std::byte{0});
    sink(std::span<const std::byte>(head));
    static constexpr std::byte kZeros[256]{};
    for (const auto& t : tensors_) {
      std::uint64_t delivered = 0;
      const ByteSink counting = [&](std::span<const std::byte> b) {
        delivered += b.size();
        if (delivered > t.nbytes) {
          fail(ErrorCode::kInvalidArgument, "GgufWriter: the producer of tensor {} delivered more than its {} bytes",
               t.name, t.nbytes);
        }
        sink(b);
      };
      t.producer(counting);
      if (delivered != t.nbytes) {
        fail(ErrorCode::kInvalidArgument, "GgufWriter: the producer of tensor {} delivered {} bytes, expected {}", t.name,
             delivered, t.nbytes);
      }
      for (std::uint64_t pad = align(t.nbytes) - t.nbytes; pad > 0;) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(pad, sizeof(kZeros)));
        sink(std::span<const std::byte>(kZeros, n));
        pad -= n;
      }
    }
  }

 private:
  struct Kv {
    std::string key;
    std::vector<std::byte> encoded;  // u32 type + value
  };
  struct Tensor {
    std::string name;
    GgmlType type;
    std::uint32_t n_dims;
    std::array<std::uint64_t, gguf_limits::kMaxDims> ne;  // ggml order
    std::uint64_t nbytes;
    Producer producer;
  };

  std::uint64_t align(std::uint64_t n) const noexcept { return (n + alignment_ - 1) / alignment_ * alignment_; }

  void check_key(std::string_view key) const {
    if (key.empty()) fail(ErrorCode::kInvalidArgument, "GgufWriter: empty metadata key");
    if (key.size() > gguf_limits::kMaxKeyBytes) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: metadata key of {} bytes exceeds the limit of {}", key.size(),
           gguf_limits::kMaxKeyBytes);
    }
    if (keys_.count(key) != 0) fail(ErrorCode::kInvalidArgument, "GgufWriter: duplicate metadata key {}", key);
  }
  static void check_array(std::string_view key, const GgufArrayValue& a) {
    if (a.size() > gguf_limits::kMaxArrayElements) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: array {} of {} elements exceeds the reader's limit of {}", key,
           a.size(), gguf_limits::kMaxArrayElements);
    }
  }
  void check_alignment_entry(const std::vector<std::byte>& enc) const {
    const bool ok = enc.size() == 8 && detail::load_le<std::uint32_t>(enc.data()) == static_cast<std::uint32_t>(GgufValueType::u32) &&
                    detail::load_le<std::uint32_t>(enc.data() + 4) == alignment_;
    if (!ok) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: general.alignment is set from the constructor's alignment ({}); "
           "set it there", alignment_);
    }
  }

  std::uint64_t check_tensor(std::string_view name, GgmlType type, std::span<const std::uint64_t> shape) const {
    if (name.empty() || name.size() > gguf_limits::kMaxTensorNameBytes) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: tensor name of {} bytes is outside 1..{}", name.size(),
           gguf_limits::kMaxTensorNameBytes);
    }
    if (std::any_of(tensors_.begin(), tensors_.end(), [&](const Tensor& t) { return t.name == name; })) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: duplicate tensor name {}", name);
    }
    if (shape.size() > gguf_limits::kMaxDims) {
      fail(ErrorCode::kInvalidArgument, "GgufWriter: tensor {} has {} dimensions, expected 0..{}", name, shape.size(),
           gguf_limits::kMaxDims);
    }
    for (std::uint64_t e : shape) {
      if (e == 0 || e > gguf_limits::kMaxExtent) {
        fail(ErrorCode::kInvalidArgument, "GgufWriter: tensor {} has extent {} in shape [{}]", name, e,
             fmt::join(shape, ", "));
      }
    }
    const GgmlTypeInfo& info = ggml_type_info(type);
    const std::uint64_t innermost = shape.empty() ? 1 : shape.back();
    if (innermost % info.block_elements != 0) {
      fail(ErrorCode::kInvalidArgument,
           "GgufWriter: tensor {} of type {}: the innermost extent {} is not a multiple of the {}-element block", name,
           info.name, innermost, info.block_elements);
    }
    return tensor_bytes(type, shape);
  }

  void push_tensor(std::string_view name, GgmlType type, std::span<const std::uint64_t> shape, std::uint64_t nbytes,
                   Producer producer) {
    Tensor t{std::string(name), type, static_cast<std::uint32_t>(shape.size()), {1, 1, 1, 1}, nbytes, std::move(producer)};
    for (std::size_t d = 0; d < shape.size(); ++d) t.ne[d] = shape[shape.size() - 1 - d];
    tensors_.push_back(std::move(t));
  }

  static void write_all(int fd, std::span<const std::byte> b, const std::filesystem::path& path) {
    while (!b.empty()) {
      const ::ssize_t n = ::write(fd, b.data(), b.size());
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        fail(ErrorCode::kIo, "error while writing {}: {}", path.string(), std::strerror(err));
      }
      b = b.subspan(static_cast<std::size_t>(n));
    }
  }

  std::uint32_t alignment_;
  std::vector<Kv> kvs_;
  std::set<std::string, std::less<>> keys_;
  std::vector<Tensor> tensors_;
};

}  // namespace moe::io
