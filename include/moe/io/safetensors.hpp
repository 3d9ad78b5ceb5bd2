// Safetensors reader that treats every byte as hostile: it validates the whole header up front and
// then hands out tensors as spans/views straight into the mmapped file (zero copy).
// Format (huggingface/safetensors): u64 little-endian header length N, N bytes of UTF-8 JSON
// (possibly padded with trailing spaces), then the data buffer. The JSON maps tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data buffer) and may
// hold "__metadata__", a string->string map.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/mapped_file.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace moe::io {

// Largest accepted JSON header. Real headers are at most a few MB; the reference implementation
// refuses more than 100 MB as well, which also bounds the memory a hostile header can make us use.
inline constexpr std::uint64_t kMaxSafetensorsHeaderBytes = limits::kMaxSafetensorsHeaderBytes;

// One tensor of a safetensors file. `bytes` points into the file's bytes (the mapping for files
// opened with SafetensorsFile::open) and lives as long as the SafetensorsFile / TensorStore.
struct TensorInfo {
  std::string name;
  std::string dtype_name;          // safetensors spelling: "F32", "BF16", "I32", "U8", ...
  std::optional<DType> dtype;      // set for F32 / BF16 / F16 (the weight element types)
  std::size_t element_size = 0;    // bytes per element of dtype_name
  std::vector<index_t> shape;      // outermost-first; empty for a scalar
  std::span<const std::byte> bytes;  // exactly element_count() * element_size bytes
  std::string file;                // the file's name as given to open()/parse(), for messages
  std::size_t file_offset = 0;     // absolute offset of bytes[0] in the file

  index_t element_count() const noexcept {
    index_t n = 1;
    for (index_t d : shape) n *= d;  // cannot overflow: checked when the header was parsed
    return n;
  }
};

namespace detail {

struct SafetensorsDTypeInfo {
  std::string_view name;
  std::size_t size;  // bytes per element
  std::optional<DType> dtype;
};

// Every element type of the safetensors spec that occupies whole bytes. The sub-byte types (F4,
// F6_*) are recognised only to report them as unsupported.
inline constexpr std::array<SafetensorsDTypeInfo, 17> kSafetensorsDTypes{{
    {"BOOL", 1, std::nullopt},    {"U8", 1, std::nullopt},       {"I8", 1, std::nullopt},
    {"F8_E5M2", 1, std::nullopt}, {"F8_E4M3", 1, std::nullopt},  {"F8_E8M0", 1, std::nullopt},
    {"I16", 2, std::nullopt},     {"U16", 2, std::nullopt},      {"F16", 2, DType::f16},
    {"BF16", 2, DType::bf16},     {"I32", 4, std::nullopt},      {"U32", 4, std::nullopt},
    {"F32", 4, DType::f32},       {"F64", 8, std::nullopt},      {"I64", 8, std::nullopt},
    {"U64", 8, std::nullopt},     {"C64", 8, std::nullopt},
}};

inline const SafetensorsDTypeInfo* find_safetensors_dtype(std::string_view name) noexcept {
  for (const auto& d : kSafetensorsDTypes) {
    if (d.name == name) return &d;
  }
  return nullptr;
}

// Byte offset of the first invalid UTF-8 sequence in `s` (overlong forms, surrogates and code
// points past U+10FFFF are invalid), or npos when `s` is valid.
inline std::size_t first_invalid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;       // overlong
      if (c == 0xed) hi = 0x9f;       // UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;       // overlong
      if (c == 0xf4) hi = 0x8f;       // > U+10FFFF
    } else {
      return i;
    }
    if (n - i < len) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      if ((p[i + k] & 0xc0u) != 0x80u) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

}  // namespace detail

// "[8, 64]": the form used in every shape message.
inline std::string format_shape(std::span<const index_t> shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// The safetensors dtype spelling of a C++ element type: float -> "F32", bf16 -> "BF16",
// f16 -> "F16", std::int32_t -> "I32", std::uint8_t -> "U8", ...
template <class T>
constexpr std::string_view safetensors_dtype_name() noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, float>) return "F32";
  else if constexpr (std::is_same_v<U, bf16>) return "BF16";
  else if constexpr (std::is_same_v<U, f16>) return "F16";
  else if constexpr (std::is_same_v<U, double>) return "F64";
  else if constexpr (std::is_same_v<U, bool>) return "BOOL";
  else if constexpr (std::is_same_v<U, std::int8_t>) return "I8";
  else if constexpr (std::is_same_v<U, std::uint8_t>) return "U8";
  else if constexpr (std::is_same_v<U, std::int16_t>) return "I16";
  else if constexpr (std::is_same_v<U, std::uint16_t>) return "U16";
  else if constexpr (std::is_same_v<U, std::int32_t>) return "I32";
  else if constexpr (std::is_same_v<U, std::uint32_t>) return "U32";
  else if constexpr (std::is_same_v<U, std::int64_t>) return "I64";
  else if constexpr (std::is_same_v<U, std::uint64_t>) return "U64";
  else static_assert(dependent_false<T>, "safetensors_dtype_name: no safetensors dtype for T");
}

// A rank-R view of `t`'s bytes as elements of T, after checking dtype and rank (and the shape,
// when `expected_shape` is given). `where` names the container (folder or file) in messages:
//   "<tensor> in <where>: expected shape [8, 64], found [8, 32]"
//   "<tensor> in <where>: expected dtype BF16, found F32"
// Errors are kShapeMismatch; a tensor whose data is not aligned to alignof(T) (legal in the
// format, never written by the reference writer) is kUnsupported, since it cannot be read in place.
// The view aliases the file's bytes: read-only, valid as long as the owner of `t`.
template <class T, std::size_t R>
View<const T, R> tensor_view(const TensorInfo& t, std::string_view where,
                             const std::optional<std::array<index_t, R>>& expected_shape = std::nullopt) {
  constexpr std::string_view want = safetensors_dtype_name<T>();
  if (t.dtype_name != want) {
    fail(ErrorCode::kShapeMismatch, "{} in {}: expected dtype {}, found {}", t.name, where, want,
         t.dtype_name);
  }
  if (expected_shape) {
    const bool same = t.shape.size() == R && std::equal(t.shape.begin(), t.shape.end(), expected_shape->begin());
    if (!same) {
      fail(ErrorCode::kShapeMismatch, "{} in {}: expected shape {}, found {}", t.name, where,
           format_shape(*expected_shape), format_shape(t.shape));
    }
  } else if (t.shape.size() != R) {
    fail(ErrorCode::kShapeMismatch, "{} in {}: expected rank {}, found shape {} (rank {})", t.name,
         where, R, format_shape(t.shape), t.shape.size());
  }
  if (reinterpret_cast<std::uintptr_t>(t.bytes.data()) % alignof(T) != 0) {
    fail(ErrorCode::kUnsupported,
         "{} in {}: data at byte {} of {} is not aligned to {} bytes for {}, so it cannot be used "
         "in place",
         t.name, where, t.file_offset, t.file, alignof(T), want);
  }
  std::array<index_t, R> shape{};
  std::copy(t.shape.begin(), t.shape.end(), shape.begin());
  return View<const T, R>(reinterpret_cast<const T*>(t.bytes.data()), shape);
}

// One validated safetensors file. Immutable after open()/parse(); all const member functions are
// safe to call from many threads. Movable (views stay valid across moves), not copyable.
class SafetensorsFile {
 public:
  using Metadata = std::map<std::string, std::string, std::less<>>;

  // Maps `path` and validates it (see parse). kIo if the file cannot be mapped, kFormat (or
  // kUnsupported for sub-byte dtypes) if its bytes break the format.
  static SafetensorsFile open(const std::filesystem::path& path) {
    MappedFile mapping = MappedFile::open(path);
    const std::span<const std::byte> bytes = mapping.bytes();
    SafetensorsFile f = parse(bytes, path.string());
    f.mapping_ = std::move(mapping);  // moving keeps the address, so f's spans stay valid
    return f;
  }

  // Validates `bytes` (owned by the caller, who keeps them alive and unchanged as long as the
  // result is used) as a whole safetensors file; `name` is used in messages. Checks, each failing
  // with Error(kFormat) naming the file, the tensor and the values seen:
  //  - the file holds the 8-byte header length N; 2 <= N <= kMaxSafetensorsHeaderBytes; 8 + N <= size
  //  - the header is valid UTF-8 and JSON, starts with '{', has no duplicate keys at any depth
  //  - "__metadata__", if present, is an object of strings
  //  - every tensor name is non-empty and maps to an object with a known "dtype" string, a "shape"
  //    array of non-negative integers and "data_offsets" [begin, end] of non-negative integers with
  //    begin <= end <= data size; elements(shape) * element size == end - begin (overflow-checked)
  //  - sorted by offset, the tensors tile the data buffer exactly: the first begins at 0, each
  //    begins where the previous ends (no gap, no overlap), the last ends at the end of the file.
  static SafetensorsFile parse(std::span<const std::byte> bytes, std::string name) {
    return catch_as_error("SafetensorsFile::parse", [&] {
      SafetensorsFile f;
      f.name_ = std::move(name);
      f.bytes_ = bytes;
      f.parse_header();
      return f;
    });
  }
  // The result would point into a temporary: keep the bytes in a named object instead.
  static SafetensorsFile parse(std::vector<std::byte>&& temporary, std::string name) = delete;

  // Tensors in data order (ascending offsets), which is the order of the bytes in the file.
  const std::vector<TensorInfo>& tensors() const noexcept { return tensors_; }
  // The tensor called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  // The tensor called `name`; Error(kMissingTensor) naming the tensor and the file otherwise.
  const TensorInfo& get(std::string_view name) const {
    const TensorInfo* t = find(name);
    if (t == nullptr) fail(ErrorCode::kMissingTensor, "tensor {} not found in {}", name, name_);
    return *t;
  }
  // Typed views, checked as tensor_view describes.
  template <class T, std::size_t R>
  View<const T, R> view(std::string_view name, const std::array<index_t, R>& expected_shape) const {
    return tensor_view<T, R>(get(name), name_, expected_shape);
  }
  template <class T, std::size_t R>
  View<const T, R> view_any(std::string_view name) const {
    return tensor_view<T, R>(get(name), name_);
  }

  // The "__metadata__" map (empty when absent).
  const Metadata& metadata() const noexcept { return metadata_; }
  // The name given to parse() (the path's string for open()).
  const std::string& name() const noexcept { return name_; }
  // The whole file, and the offset of the data buffer inside it (8 + header length).
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  std::size_t data_offset() const noexcept { return data_offset_; }
  // The mapping behind open() (empty for parse()); use it for madvise hints.
  const MappedFile& mapping() const noexcept { return mapping_; }

 private:
  SafetensorsFile() = default;

  [[noreturn]] void fail_tensor(const std::string& tensor, const std::string& what) const {
    fail(ErrorCode::kFormat, "{}: tensor \"{}\": {}", name_, tensor, what);
  }

  // A non-negative integer that fits u64, or an error naming `field` and the value seen.
  std::uint64_t read_unsigned(const nlohmann::json& v, const std::string& tensor,
                              std::string_view field) const {
    if (!v.is_number_unsigned()) {
      fail_tensor(tensor, fmt::format("{} entry must be a non-negative integer, found {}", field,
                                      describe(v)));
    }
    return v.get<std::uint64_t>();
  }

  // Where one tensor's bytes lie in the data buffer, and its index in tensors_.
  struct DataSpan {
    std::uint64_t begin, end;
    std::size_t index;
  };

  // The steps of parse(), in the order their errors are reported.
  void parse_header() {
    const std::uint64_t n = read_header_length();
    const nlohmann::json root = parse_header_json(n);
    std::vector<DataSpan> spans;
    spans.reserve(root.size());
    tensors_.reserve(root.size());
    for (const auto& [key, value] : root.items()) {
      if (key == "__metadata__") {
        read_metadata(value);
        continue;
      }
      spans.push_back(read_tensor_entry(key, value));
    }
    check_tiling(spans);
    index_in_data_order(spans);
  }

  // The u64 little-endian header length N, bounded before anything is read or allocated from it;
  // sets data_offset_ (8 + N).
  std::uint64_t read_header_length() {
    const std::size_t size = bytes_.size();
    if (size < 8) {
      fail(ErrorCode::kFormat,
           "{}: file is {} bytes, too short for the 8-byte header length of a safetensors file",
           name_, size);
    }
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes_[static_cast<std::size_t>(i)]);
    if (n < 2) {
      fail(ErrorCode::kFormat, "{}: header length {} is too small (a JSON object needs at least 2 bytes)",
           name_, n);
    }
    if (n > kMaxSafetensorsHeaderBytes) {
      fail(ErrorCode::kFormat, "{}: header length {} exceeds the limit of {} bytes", name_, n,
           kMaxSafetensorsHeaderBytes);
    }
    if (n > size - 8) {
      fail(ErrorCode::kFormat, "{}: header length {} exceeds the {} bytes that follow it (file size {})",
           name_, n, size - 8, size);
    }
    data_offset_ = 8 + static_cast<std::size_t>(n);
    return n;
  }

  // The N header bytes as a JSON object: UTF-8 and the leading '{' are checked first, as the
  // reference implementation does, so that those errors name the offending byte.
  nlohmann::json parse_header_json(std::uint64_t n) const {
    const std::string_view header(reinterpret_cast<const char*>(bytes_.data()) + 8,
                                  static_cast<std::size_t>(n));
    if (const auto bad = detail::first_invalid_utf8(header); bad != std::string_view::npos) {
      fail(ErrorCode::kFormat, "{}: header is not valid UTF-8 (byte 0x{:02x} at header offset {})",
           name_, static_cast<unsigned char>(header[bad]), bad);
    }
    if (header.front() != '{') {
      fail(ErrorCode::kFormat, "{}: header does not start with '{{' (found byte 0x{:02x})", name_,
           static_cast<unsigned char>(header.front()));
    }
    nlohmann::json root = parse_json_text(header, name_ + " header", limits::kMaxSafetensorsHeaderDepth);
    if (!root.is_object()) {  // e.g. "{}x" is rejected by the parser; kept as a defence
      fail(ErrorCode::kFormat, "{}: header is not a JSON object ({})", name_, describe(root));
    }
    return root;
  }

  // "__metadata__": a string -> string map.
  void read_metadata(const nlohmann::json& value) {
    if (!value.is_object()) {
      fail(ErrorCode::kFormat, "{}: __metadata__ must be an object of strings, found {}", name_,
           describe(value));
    }
    for (const auto& [mk, mv] : value.items()) {
      if (!mv.is_string()) {
        fail(ErrorCode::kFormat, "{}: __metadata__ value of \"{}\" must be a string, found {}",
             name_, mk, describe(mv));
      }
      metadata_.emplace(mk, mv.get<std::string>());
    }
  }

  // One tensor entry, appended to tensors_ once its dtype, shape and offsets agree with each other
  // and with the data buffer; returns where its bytes lie.
  DataSpan read_tensor_entry(const std::string& key, const nlohmann::json& value) {
    if (key.empty()) fail(ErrorCode::kFormat, "{}: tensor with an empty name", name_);
    if (!value.is_object()) {
      fail_tensor(key, fmt::format("entry must be an object, found {}", describe(value)));
    }
    TensorInfo t;
    t.name = key;
    t.file = name_;
    read_dtype(key, value, t);
    const std::uint64_t nbytes = read_shape(key, value, t);
    const auto [begin, end] = read_data_offsets(key, value, t, nbytes);
    t.file_offset = data_offset_ + static_cast<std::size_t>(begin);
    t.bytes = bytes_.subspan(t.file_offset, static_cast<std::size_t>(nbytes));
    const DataSpan span{begin, end, tensors_.size()};
    tensors_.push_back(std::move(t));
    return span;
  }

  // "dtype": one of kSafetensorsDTypes; the sub-byte types are valid files we cannot read.
  void read_dtype(const std::string& key, const nlohmann::json& value, TensorInfo& t) const {
    const auto dt = value.find("dtype");
    if (dt == value.end()) fail_tensor(key, "missing \"dtype\"");
    if (!dt->is_string()) fail_tensor(key, fmt::format("dtype must be a string, found {}", describe(*dt)));
    t.dtype_name = dt->get<std::string>();
    const detail::SafetensorsDTypeInfo* info = detail::find_safetensors_dtype(t.dtype_name);
    if (info == nullptr) {
      if (t.dtype_name == "F4" || t.dtype_name.rfind("F6_", 0) == 0) {
        fail(ErrorCode::kUnsupported, "{}: tensor \"{}\": sub-byte dtype {} is not supported",
             name_, key, t.dtype_name);
      }
      fail_tensor(key, fmt::format("unknown dtype \"{}\"", t.dtype_name));
    }
    t.element_size = info->size;
    t.dtype = info->dtype;
  }

  // "shape" into t.shape; returns the tensor's byte count, with every product overflow-checked
  // (and each extent checked against index_t where that is narrower than 64 bits).
  std::uint64_t read_shape(const std::string& key, const nlohmann::json& value, TensorInfo& t) const {
    const auto sh = value.find("shape");
    if (sh == value.end()) fail_tensor(key, "missing \"shape\"");
    if (!sh->is_array()) fail_tensor(key, fmt::format("shape must be an array, found {}", describe(*sh)));
    std::uint64_t elements = 1;
    bool overflow = false;
    for (const auto& d : *sh) {
      const std::uint64_t e = read_unsigned(d, key, "shape");
      if constexpr (sizeof(index_t) < sizeof(std::uint64_t)) {
        if (e > static_cast<std::uint64_t>(static_cast<index_t>(-1))) overflow = true;
      }
      t.shape.push_back(static_cast<index_t>(e));
      overflow = overflow || __builtin_mul_overflow(elements, e, &elements);
    }
    std::uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(elements, std::uint64_t{t.element_size}, &nbytes);
    if (overflow) {
      fail_tensor(key, fmt::format("shape {} with dtype {} overflows 64-bit byte counts",
                                   format_shape(t.shape), t.dtype_name));
    }
    return nbytes;
  }

  // "data_offsets" [begin, end]: inside the data buffer and exactly the shape's byte count long.
  std::pair<std::uint64_t, std::uint64_t> read_data_offsets(const std::string& key, const nlohmann::json& value,
                                                            const TensorInfo& t, std::uint64_t nbytes) const {
    const std::size_t size = bytes_.size();
    const std::size_t data_size = size - data_offset_;
    const auto off = value.find("data_offsets");
    if (off == value.end()) fail_tensor(key, "missing \"data_offsets\"");
    if (!off->is_array() || off->size() != 2) {
      fail_tensor(key, fmt::format("data_offsets must be an array [begin, end], found {}",
                                   describe(*off)));
    }
    const std::uint64_t begin = read_unsigned((*off)[0], key, "data_offsets");
    const std::uint64_t end = read_unsigned((*off)[1], key, "data_offsets");
    if (begin > end) {
      fail_tensor(key, fmt::format("data_offsets [{}, {}] end before they begin", begin, end));
    }
    if (end > data_size) {
      fail_tensor(key, fmt::format("data_offsets [{}, {}] run past the data buffer of {} bytes "
                                   "(file size {}, header {} bytes)",
                                   begin, end, data_size, size, data_offset_ - 8));
    }
    if (end - begin != nbytes) {
      fail_tensor(key, fmt::format("shape {} with dtype {} needs {} bytes, but data_offsets [{}, {}] "
                                   "span {} bytes",
                                   format_shape(t.shape), t.dtype_name, nbytes, begin, end, end - begin));
    }
    return {begin, end};
  }

  // The tensors must tile the data buffer exactly. Besides catching corrupt offsets, this rules
  // out aliasing (two names for the same bytes) and hidden trailing data. Sorts `spans` by offset.
  void check_tiling(std::vector<DataSpan>& spans) const {
    const std::size_t size = bytes_.size();
    const std::size_t data_size = size - data_offset_;
    std::sort(spans.begin(), spans.end(), [](const DataSpan& a, const DataSpan& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    std::uint64_t expected_begin = 0;
    const std::string* previous = nullptr;
    for (const DataSpan& s : spans) {
      const std::string& tname = tensors_[s.index].name;
      if (s.begin > expected_begin) {
        if (previous == nullptr) {
          fail_tensor(tname, fmt::format("data_offsets [{}, {}]: the first tensor must begin at 0 "
                                         "(gap of {} bytes)", s.begin, s.end, s.begin));
        }
        fail_tensor(tname, fmt::format("data_offsets [{}, {}] leave a gap of {} bytes after tensor \"{}\" "
                                       "which ends at {}",
                                       s.begin, s.end, s.begin - expected_begin, *previous, expected_begin));
      }
      if (s.begin < expected_begin) {
        fail_tensor(tname, fmt::format("data_offsets [{}, {}] overlap tensor \"{}\" which ends at {}",
                                       s.begin, s.end, *previous, expected_begin));
      }
      expected_begin = s.end;
      previous = &tname;
    }
    if (expected_begin != data_size) {
      fail(ErrorCode::kFormat,
           "{}: {} trailing bytes after the last tensor's data_offsets end {} (data buffer is {} "
           "bytes, file size {})",
           name_, data_size - expected_begin, expected_begin, data_size, size);
    }
  }

  // Data order for tensors() (spans sorted by check_tiling), and the name index.
  void index_in_data_order(const std::vector<DataSpan>& spans) {
    std::vector<TensorInfo> ordered;
    ordered.reserve(tensors_.size());
    for (const DataSpan& s : spans) ordered.push_back(std::move(tensors_[s.index]));
    tensors_ = std::move(ordered);
    for (std::size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
  }

  std::string name_;
  std::span<const std::byte> bytes_;
  std::size_t data_offset_ = 0;
  MappedFile mapping_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
  Metadata metadata_;
};

}  // namespace moe::io
