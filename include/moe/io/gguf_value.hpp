// Views of GGUF metadata values in place: a GgufValue is a type tag and a pointer to the value's
// bytes inside an already validated file (see GgufFile), decoded on access, so parsing a file
// never copies or allocates per value. Little-endian on every host.
#pragma once

#include "moe/core/error.hpp"
#include "moe/io/gguf_types.hpp"

#include <fmt/format.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace moe::io {

class GgufArray;

namespace detail {

// A little-endian value of arithmetic type T at p (any alignment).
template <class T>
T load_le(const std::byte* p) noexcept {
  static_assert(std::is_arithmetic_v<T>);
  unsigned char b[sizeof(T)];
  std::memcpy(b, p, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
  }
  T v;
  std::memcpy(&v, b, sizeof(T));
  return v;
}

template <class T>
struct is_std_vector : std::false_type {};
template <class T, class A>
struct is_std_vector<std::vector<T, A>> : std::true_type {
  using element = T;
};

// The GGUF value type that holds a C++ T, for the scalar and string types.
template <class T>
constexpr std::optional<GgufValueType> gguf_scalar_type_of() noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, std::uint8_t>) return GgufValueType::u8;
  else if constexpr (std::is_same_v<U, std::int8_t>) return GgufValueType::i8;
  else if constexpr (std::is_same_v<U, std::uint16_t>) return GgufValueType::u16;
  else if constexpr (std::is_same_v<U, std::int16_t>) return GgufValueType::i16;
  else if constexpr (std::is_same_v<U, std::uint32_t>) return GgufValueType::u32;
  else if constexpr (std::is_same_v<U, std::int32_t>) return GgufValueType::i32;
  else if constexpr (std::is_same_v<U, std::uint64_t>) return GgufValueType::u64;
  else if constexpr (std::is_same_v<U, std::int64_t>) return GgufValueType::i64;
  else if constexpr (std::is_same_v<U, float>) return GgufValueType::f32;
  else if constexpr (std::is_same_v<U, double>) return GgufValueType::f64;
  else if constexpr (std::is_same_v<U, bool>) return GgufValueType::boolean;
  else if constexpr (std::is_same_v<U, std::string> || std::is_same_v<U, std::string_view>) return GgufValueType::string;
  else return std::nullopt;
}

// Bytes the validated value of type t at p occupies (walks nested arrays).
inline std::size_t gguf_encoded_size(GgufValueType t, const std::byte* p) noexcept {
  if (t == GgufValueType::string) return 8 + static_cast<std::size_t>(load_le<std::uint64_t>(p));
  if (t != GgufValueType::array) return gguf_value_size(t);
  const auto elem = static_cast<GgufValueType>(load_le<std::uint32_t>(p));
  const auto n = static_cast<std::size_t>(load_le<std::uint64_t>(p + 4));
  if (const std::size_t s = gguf_value_size(elem); s != 0) return 12 + n * s;
  std::size_t off = 12;
  for (std::size_t i = 0; i < n; ++i) off += gguf_encoded_size(elem, p + off);
  return off;
}

// A file string for a message: quoted, at most 64 bytes of it, bytes outside printable ASCII
// as \xNN, so a hostile name neither floods the message nor breaks a terminal.
inline std::string quote_gguf_string(std::string_view s) {
  constexpr std::size_t kMaxQuoted = 64;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMaxQuoted; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  out += '"';
  if (s.size() > kMaxQuoted) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

}  // namespace detail

// One metadata value (or array element) of a validated GGUF file. Cheap to copy; valid as long as
// the GgufFile it came from. Thread-safe (read-only).
class GgufValue {
 public:
  GgufValue() = default;
  // `data` points at the value's encoding in a file whose bytes were validated for type `type`.
  GgufValue(GgufValueType type, const std::byte* data) noexcept : type_(type), data_(data) {}

  GgufValueType type() const noexcept { return type_; }
  // For arrays, the element type; nullopt for other values.
  std::optional<GgufValueType> element_type() const noexcept {
    if (type_ != GgufValueType::array) return std::nullopt;
    return static_cast<GgufValueType>(detail::load_le<std::uint32_t>(data_));
  }

  // Whether get<T>() may be called: T is the C++ type of exactly this GGUF type (std::uint32_t for
  // u32, float for f32, bool, std::string or std::string_view for string, GgufArray for any array,
  // std::vector<E> for an array whose elements hold E). No conversions: a u64 is not a u32.
  template <class T>
  bool holds() const noexcept;

  // The value as T (see holds). Throws Error(kInvalidArgument) naming both types when !holds<T>();
  // GgufFile::get gives the message with the file and key instead.
  template <class T>
  T get() const;

  // Any integer type (u8 ... i64) as a std::int64_t / std::uint64_t pair: nullopt for non-integers.
  // `negative` is true for a negative signed value (then `magnitude` is its absolute value).
  struct Integer {
    bool negative;
    std::uint64_t magnitude;
  };
  std::optional<Integer> integer() const noexcept {
    switch (type_) {
      case GgufValueType::u8: return Integer{false, detail::load_le<std::uint8_t>(data_)};
      case GgufValueType::u16: return Integer{false, detail::load_le<std::uint16_t>(data_)};
      case GgufValueType::u32: return Integer{false, detail::load_le<std::uint32_t>(data_)};
      case GgufValueType::u64: return Integer{false, detail::load_le<std::uint64_t>(data_)};
      case GgufValueType::i8: return signed_integer(detail::load_le<std::int8_t>(data_));
      case GgufValueType::i16: return signed_integer(detail::load_le<std::int16_t>(data_));
      case GgufValueType::i32: return signed_integer(detail::load_le<std::int32_t>(data_));
      case GgufValueType::i64: return signed_integer(detail::load_le<std::int64_t>(data_));
      default: return std::nullopt;
    }
  }

  // "u32", "string", "array of f32", "array of array": for messages.
  std::string type_name() const {
    if (type_ != GgufValueType::array) return std::string(to_string(type_));
    return fmt::format("array of {}", to_string(*element_type()));
  }
  // A short rendering of the value for messages: `7`, `"llama"`, `array of 3 string`.
  std::string describe() const;

  // Bytes of the value in the file.
  std::size_t encoded_size() const noexcept { return detail::gguf_encoded_size(type_, data_); }
  const std::byte* data() const noexcept { return data_; }

 private:
  template <class S>
  static Integer signed_integer(S v) noexcept {
    if (v >= 0) return {false, static_cast<std::uint64_t>(v)};
    // -(v + 1) + 1 avoids negating the most negative value.
    return {true, static_cast<std::uint64_t>(-(v + 1)) + 1};
  }

  GgufValueType type_ = GgufValueType::u8;
  const std::byte* data_ = nullptr;
};

// An array value: element type, count and a forward range of its elements as GgufValues.
// Elements of fixed-size types are read in O(1) by at(); strings and nested arrays are walked.
class GgufArray {
 public:
  GgufArray() = default;
  explicit GgufArray(const std::byte* data) noexcept
      : element_type_(static_cast<GgufValueType>(detail::load_le<std::uint32_t>(data))),
        size_(detail::load_le<std::uint64_t>(data + 4)),
        elements_(data + 12) {}

  GgufValueType element_type() const noexcept { return element_type_; }
  std::size_t size() const noexcept { return static_cast<std::size_t>(size_); }
  bool empty() const noexcept { return size_ == 0; }

  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = GgufValue;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = GgufValue;

    iterator() = default;
    iterator(GgufValueType type, const std::byte* p, std::size_t index) noexcept : type_(type), p_(p), index_(index) {}
    GgufValue operator*() const noexcept { return GgufValue(type_, p_); }
    iterator& operator++() noexcept {
      p_ += detail::gguf_encoded_size(type_, p_);
      ++index_;
      return *this;
    }
    iterator operator++(int) noexcept {
      iterator old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.index_ == b.index_; }
    friend bool operator!=(const iterator& a, const iterator& b) noexcept { return !(a == b); }

   private:
    GgufValueType type_ = GgufValueType::u8;
    const std::byte* p_ = nullptr;
    std::size_t index_ = 0;
  };

  // end() only compares by index, so it needs no walk over the elements.
  iterator begin() const noexcept { return {element_type_, elements_, 0}; }
  iterator end() const noexcept { return {element_type_, nullptr, size()}; }

  // Element i (i < size(); O(1) for fixed-size elements, O(i) for strings and arrays).
  GgufValue operator[](std::size_t i) const noexcept {
    if (const std::size_t s = gguf_value_size(element_type_); s != 0) return GgufValue(element_type_, elements_ + i * s);
    auto it = begin();
    for (std::size_t k = 0; k < i; ++k) ++it;
    return *it;
  }

  // All elements as T: a fixed-size type matching element_type(), std::string / std::string_view
  // for string arrays, GgufArray for arrays of arrays. Throws Error(kInvalidArgument) otherwise.
  template <class T>
  std::vector<T> to_vector() const {
    std::vector<T> out;
    out.reserve(size());
    for (const GgufValue v : *this) out.push_back(v.get<T>());
    return out;
  }

 private:
  GgufValueType element_type_ = GgufValueType::u8;
  std::uint64_t size_ = 0;
  const std::byte* elements_ = nullptr;
};

template <class T>
bool GgufValue::holds() const noexcept {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, GgufArray>) {
    return type_ == GgufValueType::array;
  } else if constexpr (detail::is_std_vector<U>::value) {
    using E = typename detail::is_std_vector<U>::element;
    if (type_ != GgufValueType::array) return false;
    const GgufValueType e = *element_type();
    if constexpr (std::is_same_v<E, GgufArray>) {
      return e == GgufValueType::array;
    } else {
      constexpr auto want = detail::gguf_scalar_type_of<E>();
      static_assert(want.has_value(), "GgufValue::holds<std::vector<E>>: E has no GGUF type");
      return e == *want;
    }
  } else {
    constexpr auto want = detail::gguf_scalar_type_of<U>();
    static_assert(want.has_value(), "GgufValue::holds<T>: T has no GGUF type (use u8..i64, float, double, bool, "
                                    "std::string, std::string_view, GgufArray or std::vector of those)");
    return type_ == *want;
  }
}

template <class T>
T GgufValue::get() const {
  using U = std::remove_cv_t<T>;
  if (!holds<U>()) {
    if constexpr (detail::is_std_vector<U>::value) {
      fail(ErrorCode::kInvalidArgument, "GGUF value of type {} read as an array of another type", type_name());
    } else {
      fail(ErrorCode::kInvalidArgument, "GGUF value of type {} read as another type", type_name());
    }
  }
  if constexpr (std::is_same_v<U, GgufArray>) {
    return GgufArray(data_);
  } else if constexpr (detail::is_std_vector<U>::value) {
    return GgufArray(data_).to_vector<typename detail::is_std_vector<U>::element>();
  } else if constexpr (std::is_same_v<U, bool>) {
    return detail::load_le<std::uint8_t>(data_) != 0;
  } else if constexpr (std::is_same_v<U, std::string_view> || std::is_same_v<U, std::string>) {
    const auto n = static_cast<std::size_t>(detail::load_le<std::uint64_t>(data_));
    return U(reinterpret_cast<const char*>(data_ + 8), n);
  } else {
    return detail::load_le<U>(data_);
  }
}

inline std::string GgufValue::describe() const {
  switch (type_) {
    case GgufValueType::f32: return fmt::format("{}", get<float>());
    case GgufValueType::f64: return fmt::format("{}", get<double>());
    case GgufValueType::boolean: return get<bool>() ? "true" : "false";
    case GgufValueType::string: return detail::quote_gguf_string(get<std::string_view>());
    case GgufValueType::array: return fmt::format("array of {} {}", GgufArray(data_).size(), to_string(*element_type()));
    default: {
      const Integer i = *integer();
      return fmt::format("{}{}", i.negative ? "-" : "", i.magnitude);
    }
  }
}

}  // namespace moe::io
