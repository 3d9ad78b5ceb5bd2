// Weight storage formats as traits (gemma.cpp's CompressTraits): one FormatTraits<T> per format
// says what a stored row is made of (elements per block, bytes per block), how many bytes a row
// of n logical elements takes, and how element i of a row decodes to f32. Kernels are written
// against these traits and never switch on a format; the runtime DType of a tensor becomes the
// format type once, at the layer boundary, through visit_format<Backend> — which instantiates
// only the formats that backend lists in `Backend::formats` and reports the rest as a typed
// kUnsupported error instead of failing to compile. Block formats (quant/) get their trait from
// the block struct itself (one generic specialization below); a view of a block-format matrix
// counts blocks in its inner extent (cols / block_elements).
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/quant/formats.hpp"

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

// A block format (quant/): block_elements elements in sizeof(Q) bytes.
template <quant::BlockFormat Q>
struct FormatTraits<Q> {
  using storage = Q;
  static constexpr DType dtype = Q::dtype;
  static constexpr std::size_t block_elements = Q::block_elements;
  static constexpr std::size_t block_bytes = sizeof(Q);
  static constexpr std::uint32_t ggml_type = Q::ggml_type;
  static constexpr std::string_view name = dtype_name(Q::dtype);
  // Bytes of a row of n elements; n must be a multiple of block_elements (check_row_length; a
  // partial block counts whole).
  static constexpr std::size_t row_bytes(std::size_t n) noexcept {
    return (n + block_elements - 1) / block_elements * block_bytes;
  }
  // Element i of a row of blocks.
  static float decode(const Q* row, std::size_t i) noexcept { return Q::decode(row, i); }
};

namespace format_detail {
template <class... B>
type_list<float, bf16, f16, B...> with_element_formats(quant::block_list<B...>);
template <class... B>
type_list<float, bf16, f16, B..., quant::BlockQ8_K> with_activation_formats(quant::block_list<B...>);
}  // namespace format_detail

// Every weight format the library knows (the host backends support all of them): the three
// element types and the block formats of quant/formats.hpp.
using all_formats = decltype(format_detail::with_element_formats(quant::weight_blocks{}));
// all_formats plus the activation-only formats (Q8_K): every DType has its trait here.
using known_formats = decltype(format_detail::with_activation_formats(quant::weight_blocks{}));

template <class T>
inline constexpr bool is_block_format_v = quant::BlockFormat<T>;

// Bytes of a row of n elements of the runtime format t (a partial block counts whole; for a block
// format n should be a multiple of format_block_elements(t): see check_row_length).
constexpr std::size_t format_row_bytes(DType t, std::size_t n) noexcept {
  return []<class... L>(DType d, std::size_t m, type_list<L...>) {
    std::size_t r = 0;
    (void)((FormatTraits<L>::dtype == d ? (r = FormatTraits<L>::row_bytes(m), true) : false) || ...);
    return r;
  }(t, n, known_formats{});
}

// Elements per block of the runtime format t (1 for element types).
constexpr std::size_t format_block_elements(DType t) noexcept {
  return []<class... L>(DType d, type_list<L...>) {
    std::size_t r = 1;
    (void)((FormatTraits<L>::dtype == d ? (r = FormatTraits<L>::block_elements, true) : false) || ...);
    return r;
  }(t, known_formats{});
}

// Checks that rows of n elements are whole blocks of t: kShapeMismatch naming `what` (a tensor)
// and the values seen otherwise.
inline void check_row_length(DType t, std::size_t n, std::string_view what) {
  const std::size_t block = format_block_elements(t);
  require(n % block == 0, ErrorCode::kShapeMismatch,
          "{}: rows of {} elements are not whole {} blocks ({} elements each)", what, n, dtype_name(t), block);
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

// The same for a weight vector (norms, biases, per-channel scales): Backend::vector_formats,
// which a device backend keeps to the element types (block-format vectors do not occur in
// GGUF files or in what moe-quantize writes; a backend that lacks them says so at load).
template <class Backend, class F>
decltype(auto) visit_vector_format(DType t, F&& f) {
  return format_detail::visit_in(t, Backend::name, std::forward<F>(f), typename Backend::vector_formats{});
}

template <class T, class... L>
inline constexpr bool list_contains_v = (std::is_same_v<T, L> || ...);

template <class Backend, class T>
inline constexpr bool backend_supports_format_v = []<class... L>(type_list<L...>) {
  return list_contains_v<T, L...>;
}(typename Backend::formats{});

namespace format_detail {
template <class... L>
bool lists(DType d, type_list<L...>) noexcept {
  return ((FormatTraits<L>::dtype == d) || ...);
}
}  // namespace format_detail

// Whether Backend has kernels for the runtime format t as a matrix (Backend::formats lists it)
// or as a vector (Backend::vector_formats).
template <class Backend>
bool supports_format(DType t) noexcept {
  return format_detail::lists(t, typename Backend::formats{});
}
template <class Backend>
bool supports_vector_format(DType t) noexcept {
  return format_detail::lists(t, typename Backend::vector_formats{});
}

}  // namespace moe
