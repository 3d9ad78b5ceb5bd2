// GGUF reader (ggml's model container, versions 3 and 2) that treats every byte as hostile: the
// whole header is validated up front, then metadata and tensors are handed out as views straight
// into the mmapped file (zero copy).
// Layout (ggml docs/gguf.md), all little-endian: "GGUF", u32 version, u64 tensor count, u64
// metadata count; metadata entries (string key, u32 value type, value); tensor infos (string name,
// u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset into the data section);
// padding to `general.alignment` (default 32); the data section. A string is a u64 length and
// that many bytes; an array is a u32 element type, a u64 count and the elements.
//
// Memory: parsing keeps a few integers per entry (offsets into the file, not copies) in vectors
// reserved once the counts are checked against the bytes that remain, so no allocation while
// parsing is larger than the file itself.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/io/gguf_types.hpp"
#include "moe/io/gguf_value.hpp"
#include "moe/io/mapped_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe::io {

static_assert(sizeof(std::size_t) == 8, "the GGUF reader assumes 64-bit sizes (files and tensors past 4 GB)");

// One tensor of a GGUF file. `bytes` points into the file's bytes and lives as long as the
// GgufFile; the name view likewise.
struct GgufTensor {
  std::string_view name;
  GgmlType type = GgmlType::f32;
  const GgmlTypeInfo* type_info = nullptr;
  std::uint32_t n_dims = 0;  // 0 for a scalar (one element), as ggml reads it
  // ggml order: ne[0] is the innermost (contiguous) extent, as stored in the file; unused = 1.
  std::array<std::uint64_t, gguf_limits::kMaxDims> ne{1, 1, 1, 1};
  std::uint64_t element_count = 0;
  std::uint64_t offset = 0;       // relative to the data section, as stored in the file
  std::size_t file_offset = 0;    // absolute offset of bytes[0] in the file
  std::span<const std::byte> bytes;  // exactly element_count / block_elements * block_bytes

  // Outermost-first (PyTorch order, DESIGN.md section 4): the reverse of ne[0..n_dims); empty
  // for a scalar.
  std::vector<index_t> shape() const {
    std::vector<index_t> s(n_dims);
    for (std::uint32_t d = 0; d < n_dims; ++d) s[d] = static_cast<index_t>(ne[n_dims - 1 - d]);
    return s;
  }
  // Elements of one row (ne[0]) and rows (the product of the other extents).
  std::uint64_t row_elements() const noexcept { return ne[0]; }
  std::uint64_t rows() const noexcept { return element_count / ne[0]; }
  // Bytes of one row: ne[0] / block_elements blocks.
  std::uint64_t row_bytes() const noexcept { return ne[0] / type_info->block_elements * type_info->block_bytes; }
};

// One validated GGUF file. Immutable after open()/parse(); every const member function is safe to
// call from many threads. Movable (views stay valid across moves), not copyable.
class GgufFile {
 public:
  struct KeyValue {
    std::string_view key;
    GgufValue value;
  };

  // Maps `path` and validates it (see parse). kIo if the file cannot be mapped; kFormat or
  // kUnsupported if its bytes break the format.
  static GgufFile open(const std::filesystem::path& path) {
    return catch_as_error("GgufFile::open", [&] {
      MappedFile mapping = MappedFile::open(path);
      const std::span<const std::byte> bytes = mapping.bytes();
      GgufFile f = parse(bytes, path.string());
      f.mapping_ = std::move(mapping);  // moving keeps the address, so f's views stay valid
      return f;
    });
  }

  // Validates `bytes` (owned by the caller, who keeps them alive and unchanged as long as the
  // result is used) as a whole GGUF file; `name` is used in messages. Every failure is an Error
  // naming the file, the key or tensor, and the values seen:
  //  kUnsupported: version 1 (32-bit counts) or a version above 3; a big-endian file; a tensor of
  //    a ggml type this table does not know or that ggml has removed.
  //  kFormat: a bad magic or version 0; any read past the end of the file; counts, lengths and
  //    products beyond the bytes that remain or the caps of gguf_limits (checked before anything
  //    is sized from them); an unknown value type; an empty or duplicate key; a bool that is not
  //    0 or 1; `general.alignment` not a u32 power of two <= kMaxAlignment; an empty, overlong or
  //    duplicate tensor name; n_dims above 4 (0 is a scalar, as in ggml); a zero extent (ggml
  //    divides by the extents, so no valid file has one); ne[0] not a multiple of the
  //    type's block; an offset not a multiple of the alignment; tensor data outside the file or
  //    overlapping another tensor's.
  static GgufFile parse(std::span<const std::byte> bytes, std::string name) {
    return catch_as_error("GgufFile::parse", [&] {
      GgufFile f;
      f.name_ = std::move(name);
      f.bytes_ = bytes;
      f.parse_all();
      return f;
    });
  }
  // The result would point into a temporary: keep the bytes in a named object instead.
  static GgufFile parse(std::vector<std::byte>&& temporary, std::string name) = delete;

  // ---- the file ----
  const std::string& name() const noexcept { return name_; }
  std::uint32_t version() const noexcept { return version_; }
  std::uint32_t alignment() const noexcept { return alignment_; }
  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  // Absolute offset of the data section (a multiple of alignment(); the file size when a file
  // without tensors ends before the padding).
  std::size_t data_offset() const noexcept { return data_offset_; }
  // The mapping behind open() (empty for parse()); use it for madvise hints.
  const MappedFile& mapping() const noexcept { return mapping_; }

  // ---- metadata ----
  std::size_t metadata_count() const noexcept { return kv_key_pos_.size(); }
  // Entry i in file order.
  KeyValue metadata_entry(std::size_t i) const noexcept {
    return {string_at(kv_key_pos_[i]), GgufValue(static_cast<GgufValueType>(kv_type_[i]), bytes_.data() + kv_value_pos_[i])};
  }
  // The value of `key`, or nullopt.
  std::optional<GgufValue> find(std::string_view key) const noexcept {
    const auto it = std::lower_bound(kv_order_.begin(), kv_order_.end(), key,
                                     [&](std::uint32_t i, std::string_view k) { return string_at(kv_key_pos_[i]) < k; });
    if (it == kv_order_.end() || string_at(kv_key_pos_[*it]) != key) return std::nullopt;
    return metadata_entry(*it).value;
  }
  bool contains(std::string_view key) const noexcept { return find(key).has_value(); }
  // The value of `key`; Error(kConfig) naming the file and the key when it is absent.
  GgufValue value(std::string_view key) const {
    const auto v = find(key);
    if (!v) fail(ErrorCode::kConfig, "{}: metadata key {} not found", name_, detail::quote_gguf_string(key));
    return *v;
  }
  // The value of `key` as T, of exactly T's GGUF type (see GgufValue::holds): std::uint32_t,
  // float, bool, std::string, std::string_view (into the file), GgufArray, std::vector<E>, ...
  // Error(kConfig) naming the file, the key, the type found and the type asked for otherwise.
  template <class T>
  T get(std::string_view key) const {
    return get_checked<T>(key, value(key));
  }
  // As get, or nullopt when the key is absent (a key of the wrong type is still an error).
  template <class T>
  std::optional<T> get_optional(std::string_view key) const {
    const auto v = find(key);
    if (!v) return std::nullopt;
    return get_checked<T>(key, *v);
  }
  // An integer key of any GGUF integer type (writers differ: u32 or u64 for the same key) whose
  // value fits T. Error(kConfig) for a non-integer, a negative value for an unsigned T, or a value
  // out of T's range, naming the file, the key and the value.
  template <class T>
  T get_integer(std::string_view key) const {
    return integer_checked<T>(key, value(key));
  }
  template <class T>
  std::optional<T> get_integer_optional(std::string_view key) const {
    const auto v = find(key);
    if (!v) return std::nullopt;
    return integer_checked<T>(key, *v);
  }

  // ---- tensors ----
  std::size_t tensor_count() const noexcept { return tensor_info_pos_.size(); }
  // Tensor i in file order (the order of the tensor infos).
  GgufTensor tensor(std::size_t i) const noexcept { return read_tensor(i); }
  std::optional<GgufTensor> find_tensor(std::string_view tname) const noexcept {
    const auto it = std::lower_bound(tensor_order_.begin(), tensor_order_.end(), tname,
                                     [&](std::uint32_t i, std::string_view k) { return tensor_name(i) < k; });
    if (it == tensor_order_.end() || tensor_name(*it) != tname) return std::nullopt;
    return read_tensor(*it);
  }
  // The tensor called `tname`; Error(kMissingTensor) naming the tensor and the file otherwise.
  GgufTensor get_tensor(std::string_view tname) const {
    auto t = find_tensor(tname);
    if (!t) fail(ErrorCode::kMissingTensor, "tensor {} not found in {}", detail::quote_gguf_string(tname), name_);
    return *t;
  }

  // A range over the tensors in file order, yielding GgufTensor values.
  class TensorRange {
   public:
    class iterator {
     public:
      using iterator_category = std::forward_iterator_tag;
      using value_type = GgufTensor;
      using difference_type = std::ptrdiff_t;
      using pointer = void;
      using reference = GgufTensor;
      iterator() = default;
      iterator(const GgufFile* f, std::size_t i) noexcept : f_(f), i_(i) {}
      GgufTensor operator*() const noexcept { return f_->tensor(i_); }
      iterator& operator++() noexcept {
        ++i_;
        return *this;
      }
      iterator operator++(int) noexcept {
        iterator old = *this;
        ++i_;
        return old;
      }
      friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }
      friend bool operator!=(const iterator& a, const iterator& b) noexcept { return a.i_ != b.i_; }

     private:
      const GgufFile* f_ = nullptr;
      std::size_t i_ = 0;
    };
    explicit TensorRange(const GgufFile* f) noexcept : f_(f) {}
    iterator begin() const noexcept { return {f_, 0}; }
    iterator end() const noexcept { return {f_, f_->tensor_count()}; }
    std::size_t size() const noexcept { return f_->tensor_count(); }

   private:
    const GgufFile* f_;
  };
  TensorRange tensors() const noexcept { return TensorRange(this); }

 private:
  GgufFile() = default;

  // Where a failure happened, formatted only when one does (building context strings on the
  // success path would allocate per entry).
  enum class Section { header, metadata, tensor_info, tensor_data };
  struct Where {
    Section section = Section::header;
    std::uint64_t index = 0;
    std::string_view what;  // the key or tensor name, once read
  };

  std::string describe(const Where& w) const {
    switch (w.section) {
      case Section::header: return "header";
      case Section::metadata:
        return w.what.data() == nullptr ? fmt::format("metadata entry #{}", w.index)
                                        : fmt::format("metadata key {} (entry #{})", detail::quote_gguf_string(w.what), w.index);
      case Section::tensor_info:
      case Section::tensor_data:
        return w.what.data() == nullptr ? fmt::format("tensor info #{}", w.index)
                                        : fmt::format("tensor {} (#{})", detail::quote_gguf_string(w.what), w.index);
    }
    return "?";
  }

  template <class... Args>
  [[noreturn]] void fail_at(ErrorCode code, const Where& w, fmt::format_string<Args...> f, Args&&... args) const {
    const std::string what = fmt::format(f, std::forward<Args>(args)...);
    fail(code, "{}: {}: {}", name_, describe(w), what);
  }

  // ---- reading with the remaining bytes tracked ----
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

  void need(std::size_t n, const Where& w, std::string_view field) const {
    if (n > remaining()) {
      fail_at(ErrorCode::kFormat, w, "truncated: {} at offset {} needs {} bytes, {} remain (file size {})", field,
              pos_, n, remaining(), bytes_.size());
    }
  }
  template <class T>
  T read(const Where& w, std::string_view field) {
    need(sizeof(T), w, field);
    const T v = detail::load_le<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }
  // A string's u64 length, checked against `cap` and the bytes that remain; returns the view.
  std::string_view read_string(const Where& w, std::string_view field, std::uint64_t cap) {
    const std::uint64_t n = read<std::uint64_t>(w, field);
    if (n > cap) fail_at(ErrorCode::kFormat, w, "{} length {} exceeds the limit of {} bytes", field, n, cap);
    if (n > remaining()) {
      fail_at(ErrorCode::kFormat, w, "truncated: {} of {} bytes at offset {}, but only {} bytes remain (file size {})",
              field, n, pos_, remaining(), bytes_.size());
    }
    const std::string_view s(reinterpret_cast<const char*>(bytes_.data()) + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return s;
  }
  GgufValueType read_value_type(const Where& w, std::string_view field) {
    const std::size_t at = pos_;
    const auto t = read<std::uint32_t>(w, field);
    if (t >= kGgufValueTypeCount) {
      fail_at(ErrorCode::kFormat, w, "unknown {} {} at offset {} (known: 0..{})", field, t, at, kGgufValueTypeCount - 1);
    }
    return static_cast<GgufValueType>(t);
  }

  // Walks one value of type t (validating it; nested arrays at most kMaxArrayDepth deep).
  void walk_value(GgufValueType t, const Where& w, int depth) {
    switch (t) {
      case GgufValueType::string: (void)read_string(w, "string value", gguf_limits::kMaxStringBytes); return;
      case GgufValueType::array: walk_array(w, depth + 1); return;
      case GgufValueType::boolean: {
        const std::size_t at = pos_;
        const auto b = read<std::uint8_t>(w, "bool value");
        if (b > 1) fail_at(ErrorCode::kFormat, w, "bool value 0x{:02x} at offset {} is neither 0 nor 1", b, at);
        return;
      }
      default: {
        const std::size_t s = gguf_value_size(t);
        need(s, w, to_string(t));
        pos_ += s;
      }
    }
  }
  void walk_array(const Where& w, int depth) {
    if (depth > gguf_limits::kMaxArrayDepth) {
      fail_at(ErrorCode::kFormat, w, "arrays nested {} deep at offset {} exceed the limit of {}", depth, pos_,
              gguf_limits::kMaxArrayDepth);
    }
    const GgufValueType elem = read_value_type(w, "array element type");
    const std::size_t count_at = pos_;
    const auto n = read<std::uint64_t>(w, "array length");
    if (n > gguf_limits::kMaxArrayElements) {
      fail_at(ErrorCode::kFormat, w, "array of {} length {} at offset {} exceeds the limit of {} elements",
              to_string(elem), n, count_at, gguf_limits::kMaxArrayElements);
    }
    // Every element takes at least this many bytes, so a count beyond remaining / min is a lie
    // (and is refused before any element is walked).
    const std::size_t min_bytes = gguf_min_value_bytes(elem);
    if (n > remaining() / min_bytes) {
      fail_at(ErrorCode::kFormat, w,
              "array of {} length {} at offset {} needs at least {} bytes per element, but only {} bytes remain "
              "(file size {})",
              to_string(elem), n, count_at, min_bytes, remaining(), bytes_.size());
    }
    if (const std::size_t s = gguf_value_size(elem); s != 0 && elem != GgufValueType::boolean) {
      pos_ += static_cast<std::size_t>(n) * s;  // fits: n <= remaining / s
      return;
    }
    for (std::uint64_t i = 0; i < n; ++i) walk_value(elem, w, depth);
  }

  // ---- the steps of parse(), in the order their errors are reported ----
  void parse_all() {
    const auto [n_tensors, n_kv] = read_header();
    read_metadata(n_kv);
    check_unique_keys();
    read_alignment();
    read_tensor_infos(n_tensors);
    place_data_section();
    check_tensor_data();
    check_unique_tensor_names();
  }

  std::pair<std::uint64_t, std::uint64_t> read_header() {
    const Where w{};
    if (bytes_.size() < 4) {
      fail(ErrorCode::kFormat, "{}: file is {} bytes, too short for the GGUF magic", name_, bytes_.size());
    }
    const auto b = [&](std::size_t i) { return std::to_integer<unsigned>(bytes_[i]); };
    if (b(0) != kGgufMagic[0] || b(1) != kGgufMagic[1] || b(2) != kGgufMagic[2] || b(3) != kGgufMagic[3]) {
      fail(ErrorCode::kFormat, "{}: not a GGUF file: magic bytes {:02x} {:02x} {:02x} {:02x} (expected 47 47 55 46, \"GGUF\")",
           name_, b(0), b(1), b(2), b(3));
    }
    pos_ = 4;
    const auto v = read<std::uint32_t>(w, "version");
    if (v == 0 || v > 0xffff) {
      // Big-endian files (GGUF v3 allows them) store the version byte-swapped; a little-endian
      // reader sees 0x03000000. Report that instead of a meaningless version number.
      const std::uint32_t swapped = ((v & 0xffu) << 24) | ((v & 0xff00u) << 8) | ((v >> 8) & 0xff00u) | (v >> 24);
      if (swapped >= 1 && swapped <= 3) {
        fail(ErrorCode::kUnsupported,
             "{}: big-endian GGUF file (version field reads 0x{:08x} little-endian, {} big-endian); only "
             "little-endian files are supported",
             name_, v, swapped);
      }
      fail(ErrorCode::kFormat, "{}: invalid GGUF version {} (0x{:08x})", name_, v, v);
    }
    if (v == 1) {
      fail(ErrorCode::kUnsupported, "{}: GGUF version 1 (32-bit counts, 2023) is not supported; convert the file again "
           "with a current llama.cpp (versions 2 and 3 are read)", name_);
    }
    if (v > 3) fail(ErrorCode::kUnsupported, "{}: GGUF version {} is newer than the versions read here (2 and 3)", name_, v);
    version_ = v;
    const auto n_tensors = read<std::uint64_t>(w, "tensor count");
    const auto n_kv = read<std::uint64_t>(w, "metadata count");
    if (n_kv > gguf_limits::kMaxMetadataEntries) {
      fail(ErrorCode::kFormat, "{}: metadata count {} exceeds the limit of {}", name_, n_kv, gguf_limits::kMaxMetadataEntries);
    }
    if (n_tensors > gguf_limits::kMaxTensors) {
      fail(ErrorCode::kFormat, "{}: tensor count {} exceeds the limit of {}", name_, n_tensors, gguf_limits::kMaxTensors);
    }
    // Both counts are <= 2^20 here, so the products cannot overflow.
    const std::uint64_t least = n_kv * kMinEntryBytes + n_tensors * kMinTensorInfoBytes;
    if (least > remaining()) {
      fail(ErrorCode::kFormat,
           "{}: {} metadata entries and {} tensor infos need at least {} bytes ({} and {} each), but only {} bytes "
           "follow the header (file size {})",
           name_, n_kv, n_tensors, least, kMinEntryBytes, kMinTensorInfoBytes, remaining(), bytes_.size());
    }
    return {n_tensors, n_kv};
  }

  void read_metadata(std::uint64_t n_kv) {
    const auto n = static_cast<std::size_t>(n_kv);
    kv_key_pos_.reserve(n);
    kv_value_pos_.reserve(n);
    kv_type_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      Where w{Section::metadata, i, {}};
      const std::size_t key_pos = pos_;
      const std::string_view key = read_string(w, "key", gguf_limits::kMaxKeyBytes);
      if (key.empty()) fail_at(ErrorCode::kFormat, w, "empty key at offset {}", key_pos);
      w.what = key;
      const GgufValueType t = read_value_type(w, "value type");
      const std::size_t value_pos = pos_;
      walk_value(t, w, 0);
      kv_key_pos_.push_back(key_pos);
      kv_value_pos_.push_back(value_pos);
      kv_type_.push_back(static_cast<std::uint8_t>(t));
    }
  }

  void check_unique_keys() {
    kv_order_.resize(kv_key_pos_.size());
    for (std::size_t i = 0; i < kv_order_.size(); ++i) kv_order_[i] = static_cast<std::uint32_t>(i);
    std::sort(kv_order_.begin(), kv_order_.end(), [&](std::uint32_t a, std::uint32_t b) {
      const std::string_view ka = string_at(kv_key_pos_[a]), kb = string_at(kv_key_pos_[b]);
      return ka != kb ? ka < kb : a < b;
    });
    for (std::size_t i = 1; i < kv_order_.size(); ++i) {
      const std::string_view k = string_at(kv_key_pos_[kv_order_[i]]);
      if (k == string_at(kv_key_pos_[kv_order_[i - 1]])) {
        fail(ErrorCode::kFormat, "{}: duplicate metadata key {} (entries #{} and #{})", name_,
             detail::quote_gguf_string(k), kv_order_[i - 1], kv_order_[i]);
      }
    }
  }

  void read_alignment() {
    const auto v = find("general.alignment");
    if (!v) return;
    if (v->type() != GgufValueType::u32) {
      fail(ErrorCode::kFormat, "{}: metadata key \"general.alignment\" must be a u32, found {} {}", name_, v->type_name(),
           v->describe());
    }
    const auto a = v->get<std::uint32_t>();
    if (a == 0 || !std::has_single_bit(a) || a > gguf_limits::kMaxAlignment) {
      fail(ErrorCode::kFormat, "{}: general.alignment {} is not a power of two between 1 and {}", name_, a,
           gguf_limits::kMaxAlignment);
    }
    alignment_ = a;
  }

  void read_tensor_infos(std::uint64_t n_tensors) {
    const auto n = static_cast<std::size_t>(n_tensors);
    tensor_info_pos_.reserve(n);
    tensor_offset_.reserve(n);
    tensor_bytes_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      Where w{Section::tensor_info, i, {}};
      const std::size_t info_pos = pos_;
      const std::string_view tname = read_string(w, "name", gguf_limits::kMaxTensorNameBytes);
      if (tname.empty()) fail_at(ErrorCode::kFormat, w, "empty name at offset {}", info_pos);
      w.what = tname;
      const auto n_dims = read<std::uint32_t>(w, "n_dims");
      if (n_dims > gguf_limits::kMaxDims) {
        fail_at(ErrorCode::kFormat, w, "n_dims {} is outside 0..{}", n_dims, gguf_limits::kMaxDims);
      }
      std::array<std::uint64_t, gguf_limits::kMaxDims> ne{1, 1, 1, 1};
      std::uint64_t elements = 1;
      for (std::uint32_t d = 0; d < n_dims; ++d) {
        ne[d] = read<std::uint64_t>(w, "extent");
        if (ne[d] == 0 || ne[d] > gguf_limits::kMaxExtent) {
          fail_at(ErrorCode::kFormat, w, "ne[{}] = {} is outside 1..{} (ne = {})", d, ne[d], gguf_limits::kMaxExtent,
                  format_ne(ne, d + 1));
        }
        if (__builtin_mul_overflow(elements, ne[d], &elements) || elements > gguf_limits::kMaxExtent) {
          fail_at(ErrorCode::kFormat, w, "element count of ne = {} overflows 63 bits", format_ne(ne, d + 1));
        }
      }
      const std::size_t type_at = pos_;
      const auto type_id = read<std::uint32_t>(w, "type");
      const GgmlTypeInfo* info = find_ggml_type(type_id);
      if (info == nullptr) {
        if (is_removed_ggml_type(type_id)) {
          fail_at(ErrorCode::kUnsupported, w, "ggml type id {} (at offset {}) was removed from ggml; convert the file again",
                  type_id, type_at);
        }
        fail_at(ErrorCode::kUnsupported, w, "unknown ggml type id {} at offset {} (known ids: 0..{}, see gguf_types.hpp)",
                type_id, type_at, static_cast<std::uint32_t>(detail::kGgmlTypes.back().type));
      }
      if (ne[0] % info->block_elements != 0) {
        fail_at(ErrorCode::kFormat, w, "ne[0] = {} is not a multiple of the {}-element block of type {} (ne = {})", ne[0],
                info->block_elements, info->name, format_ne(ne, n_dims));
      }
      std::uint64_t nbytes = 0;
      if (__builtin_mul_overflow(elements / info->block_elements, std::uint64_t{info->block_bytes}, &nbytes)) {
        fail_at(ErrorCode::kFormat, w, "byte size of ne = {} with type {} overflows 64 bits", format_ne(ne, n_dims),
                info->name);
      }
      const auto offset = read<std::uint64_t>(w, "data offset");
      if (offset % alignment_ != 0) {
        fail_at(ErrorCode::kFormat, w, "data offset {} is not a multiple of the alignment {}", offset, alignment_);
      }
      tensor_info_pos_.push_back(info_pos);
      tensor_offset_.push_back(offset);
      tensor_bytes_.push_back(nbytes);
    }
  }

  void place_data_section() {
    const std::size_t a = alignment_;
    const std::size_t aligned = (pos_ + a - 1) / a * a;  // pos_ <= size, a <= 2^20: no overflow
    if (aligned > bytes_.size()) {
      // A file without tensors may end right after its metadata, without the padding.
      if (tensor_info_pos_.empty()) {
        data_offset_ = bytes_.size();
        return;
      }
      fail(ErrorCode::kFormat, "{}: the data section would start at offset {} (tensor infos end at {}, alignment {}), "
           "past the end of the file (size {})", name_, aligned, pos_, a, bytes_.size());
    }
    data_offset_ = aligned;
  }

  // Each tensor's bytes lie inside the data section and no two overlap.
  void check_tensor_data() {
    const std::uint64_t data_size = bytes_.size() - data_offset_;
    for (std::size_t i = 0; i < tensor_offset_.size(); ++i) {
      const std::uint64_t off = tensor_offset_[i], n = tensor_bytes_[i];
      if (off > data_size || n > data_size - off) {
        const Where w{Section::tensor_data, i, tensor_name(i)};
        const GgufTensor t = read_tensor_unchecked(i);
        fail_at(ErrorCode::kFormat, w,
                "data at offset {} of {} bytes (type {}, ne = {}) runs past the end of the data section of {} "
                "bytes (which starts at offset {}, file size {})",
                off, n, t.type_info->name, format_ne(t.ne, t.n_dims), data_size, data_offset_, bytes_.size());
      }
    }
    // Sorted by offset, each tensor must begin at or after the end of the one before it. The
    // order is a scratch vector of 4 bytes per tensor (each tensor info takes >= 25).
    std::vector<std::uint32_t> by_offset(tensor_offset_.size());
    for (std::size_t i = 0; i < by_offset.size(); ++i) by_offset[i] = static_cast<std::uint32_t>(i);
    std::sort(by_offset.begin(), by_offset.end(), [&](std::uint32_t a, std::uint32_t b) {
      return tensor_offset_[a] != tensor_offset_[b] ? tensor_offset_[a] < tensor_offset_[b] : a < b;
    });
    for (std::size_t k = 1; k < by_offset.size(); ++k) {
      const std::uint32_t prev = by_offset[k - 1], cur = by_offset[k];
      const std::uint64_t prev_end = tensor_offset_[prev] + tensor_bytes_[prev];  // <= data_size
      if (tensor_offset_[cur] < prev_end) {
        const Where w{Section::tensor_data, cur, tensor_name(cur)};
        fail_at(ErrorCode::kFormat, w, "data [{}, {}) overlaps tensor {} (#{}) at [{}, {})", tensor_offset_[cur],
                tensor_offset_[cur] + tensor_bytes_[cur], detail::quote_gguf_string(tensor_name(prev)), prev,
                tensor_offset_[prev], prev_end);
      }
    }
  }

  void check_unique_tensor_names() {
    tensor_order_.resize(tensor_info_pos_.size());
    for (std::size_t i = 0; i < tensor_order_.size(); ++i) tensor_order_[i] = static_cast<std::uint32_t>(i);
    std::sort(tensor_order_.begin(), tensor_order_.end(), [&](std::uint32_t a, std::uint32_t b) {
      const std::string_view na = tensor_name(a), nb = tensor_name(b);
      return na != nb ? na < nb : a < b;
    });
    for (std::size_t i = 1; i < tensor_order_.size(); ++i) {
      if (tensor_name(tensor_order_[i]) == tensor_name(tensor_order_[i - 1])) {
        fail(ErrorCode::kFormat, "{}: duplicate tensor name {} (tensor infos #{} and #{})", name_,
             detail::quote_gguf_string(tensor_name(tensor_order_[i])), tensor_order_[i - 1], tensor_order_[i]);
      }
    }
  }

  // ---- access to validated entries ----
  // The string whose u64 length is at absolute offset pos.
  std::string_view string_at(std::size_t pos) const noexcept {
    const auto n = static_cast<std::size_t>(detail::load_le<std::uint64_t>(bytes_.data() + pos));
    return {reinterpret_cast<const char*>(bytes_.data()) + pos + 8, n};
  }
  std::string_view tensor_name(std::size_t i) const noexcept { return string_at(tensor_info_pos_[i]); }

  GgufTensor read_tensor_unchecked(std::size_t i) const noexcept {
    GgufTensor t;
    std::size_t p = tensor_info_pos_[i];
    t.name = string_at(p);
    p += 8 + t.name.size();
    t.n_dims = detail::load_le<std::uint32_t>(bytes_.data() + p);
    p += 4;
    t.element_count = 1;
    for (std::uint32_t d = 0; d < t.n_dims; ++d, p += 8) {
      t.ne[d] = detail::load_le<std::uint64_t>(bytes_.data() + p);
      t.element_count *= t.ne[d];
    }
    t.type_info = find_ggml_type(detail::load_le<std::uint32_t>(bytes_.data() + p));
    t.type = t.type_info->type;
    t.offset = tensor_offset_[i];
    return t;
  }
  GgufTensor read_tensor(std::size_t i) const noexcept {
    GgufTensor t = read_tensor_unchecked(i);
    t.file_offset = data_offset_ + static_cast<std::size_t>(t.offset);
    t.bytes = bytes_.subspan(t.file_offset, static_cast<std::size_t>(tensor_bytes_[i]));
    return t;
  }

  static std::string format_ne(const std::array<std::uint64_t, gguf_limits::kMaxDims>& ne, std::uint32_t n) {
    return fmt::format("[{}]", fmt::join(ne.begin(), ne.begin() + n, ", "));
  }

  template <class T>
  T get_checked(std::string_view key, const GgufValue& v) const {
    if (!v.holds<T>()) {
      fail(ErrorCode::kConfig, "{}: metadata key {} has type {} ({}), expected {}", name_, detail::quote_gguf_string(key),
           v.type_name(), v.describe(), expected_type_name<T>());
    }
    return v.get<T>();
  }

  template <class T>
  static std::string expected_type_name() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, GgufArray>) {
      return "an array";
    } else if constexpr (detail::is_std_vector<U>::value) {
      using E = typename detail::is_std_vector<U>::element;
      if constexpr (std::is_same_v<E, GgufArray>) return "array of array";
      else return fmt::format("array of {}", to_string(*detail::gguf_scalar_type_of<E>()));
    } else {
      return std::string(to_string(*detail::gguf_scalar_type_of<U>()));
    }
  }

  template <class T>
  T integer_checked(std::string_view key, const GgufValue& v) const {
    static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "get_integer<T>: T must be an integer type");
    const auto i = v.integer();
    if (!i) {
      fail(ErrorCode::kConfig, "{}: metadata key {} has type {} ({}), expected an integer", name_,
           detail::quote_gguf_string(key), v.type_name(), v.describe());
    }
    const bool fits = i->negative
                          ? std::is_signed_v<T> &&
                                i->magnitude <= static_cast<std::uint64_t>(std::numeric_limits<T>::max()) + 1
                          : i->magnitude <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    if (!fits) {
      fail(ErrorCode::kConfig, "{}: metadata key {} = {} ({}) is out of the range {}..{}", name_,
           detail::quote_gguf_string(key), v.describe(), v.type_name(), std::numeric_limits<T>::min(),
           std::numeric_limits<T>::max());
    }
    if (!i->negative) return static_cast<T>(i->magnitude);
    // magnitude <= |min(T)|: -(magnitude - 1) - 1 stays in range.
    return static_cast<T>(-static_cast<T>(i->magnitude - 1) - 1);
  }

  // The fewest bytes of one metadata entry (u64 key length, a 1-byte key, u32 type, a 1-byte
  // value) and of one tensor info (u64 name length, a 1-byte name, u32 n_dims, no extent for a
  // scalar, u32 type, u64 offset). The per-entry vectors hold at most 8 bytes per entry, so bounding the
  // counts by these bounds every allocation by the file size.
  static constexpr std::uint64_t kMinEntryBytes = 8 + 1 + 4 + 1;
  static constexpr std::uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;

  std::string name_;
  std::span<const std::byte> bytes_;
  MappedFile mapping_;
  std::size_t pos_ = 0;  // parse cursor
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = gguf_limits::kDefaultAlignment;
  std::size_t data_offset_ = 0;
  // Metadata, in file order: offset of the key's length, offset of the value, value type.
  std::vector<std::uint64_t> kv_key_pos_;
  std::vector<std::uint64_t> kv_value_pos_;
  std::vector<std::uint8_t> kv_type_;
  std::vector<std::uint32_t> kv_order_;  // entry indices sorted by key
  // Tensors, in file order: offset of the info's name length, data offset, byte size.
  std::vector<std::uint64_t> tensor_info_pos_;
  std::vector<std::uint64_t> tensor_offset_;
  std::vector<std::uint64_t> tensor_bytes_;
  std::vector<std::uint32_t> tensor_order_;  // tensor indices sorted by name
};

}  // namespace moe::io
