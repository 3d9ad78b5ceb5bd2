// Weight storage formats as traits (gemma.cpp's CompressTraits): one FormatTraits<T> per format
// says what a stored row is made of (elements per block, bytes per block), how many bytes a row
// of n logical elements takes, and how element i of a row decodes to f32. Kernels are written
// against these traits and never switch on a format; the runtime DType of a tensor becomes the
// format type once, at the layer boundary, through visit_format<Backend> — which instantiates
// only the formats that backend lists in `Backend::formats` and reports the rest as a typed
// kUnsupported error instead of failing to compile. Block formats (quant/) add a trait each.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

namespace moe {

template <class... T>
struct type_list {};

template <class T>
struct FormatTraits;  // one specialization per storage format

// Plain element formats: one element per "block".
template <class T, DType Tag>
struct ElementFormat {
  using storage = T;
  static constexpr DType dtype = Tag;
  static constexpr std::size_t block_elements = 1;
  static constexpr std::size_t block_bytes = sizeof(T);
  static constexpr std::string_view name = dtype_name(Tag);
  // Bytes of a row of n elements (n a multiple of block_elements).
  static constexpr std::size_t row_bytes(std::size_t n) noexcept { return n * sizeof(T); }
  // Element i of a row, widened to f32 (exact for all three element types).
  static constexpr float decode(const T* row, std::size_t i) noexcept { return to_float(row[i]); }
};

template <>
struct FormatTraits<float> : ElementFormat<float, DType::f32> {};
template <>
struct FormatTraits<bf16> : ElementFormat<bf16, DType::bf16> {};
template <>
struct FormatTraits<f16> : ElementFormat<f16, DType::f16> {};

// Every format the library knows (the host backends support all of them).
using all_formats = type_list<float, bf16, f16>;

// Bytes of a row of n elements of the runtime format t.
constexpr std::size_t format_row_bytes(DType t, std::size_t n) noexcept {
  switch (t) {
    case DType::f32: return FormatTraits<float>::row_bytes(n);
    case DType::bf16: return FormatTraits<bf16>::row_bytes(n);
    case DType::f16: return FormatTraits<f16>::row_bytes(n);
  }
  return 0;
}

namespace format_detail {

template <class F, class T, class... Rest>
decltype(auto) visit_in(DType t, std::string_view backend, F&& f, type_list<T, Rest...>) {
  if (t == FormatTraits<T>::dtype) return std::forward<F>(f)(T{});
  if constexpr (sizeof...(Rest) > 0) {
    return visit_in(t, backend, std::forward<F>(f), type_list<Rest...>{});
  } else {
    fail(ErrorCode::kUnsupported, "{} weights are not supported by backend {}", dtype_name(t), backend);
  }
}

}  // namespace format_detail

// Calls f(T{}) with T the storage type of the runtime format t, for the formats Backend supports
// (Backend::formats); kUnsupported naming the format and the backend for the others.
template <class Backend, class F>
decltype(auto) visit_format(DType t, F&& f) {
  return format_detail::visit_in(t, Backend::name, std::forward<F>(f), typename Backend::formats{});
}

template <class T, class... L>
inline constexpr bool list_contains_v = (std::is_same_v<T, L> || ...);

template <class Backend, class T>
inline constexpr bool backend_supports_format_v = []<class... L>(type_list<L...>) {
  return list_contains_v<T, L...>;
}(typename Backend::formats{});

// Whether Backend has kernels for the runtime format t (Backend::formats lists it).
template <class Backend>
bool supports_format(DType t) noexcept {
  return []<class... L>(DType d, type_list<L...>) { return ((FormatTraits<L>::dtype == d) || ...); }(
      t, typename Backend::formats{});
}

}  // namespace moe
