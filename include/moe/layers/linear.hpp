// Type-erased weight references (a format tag plus a pointer straight into the mmapped checkpoint,
// or into the backend's weight memory after an upload) and the layer entry points that turn the
// runtime format into a typed kernel call once per call, at the layer boundary (gemma.cpp's
// CallUpcasted pattern, through visit_format<Backend>). A weight carries its memory space in its
// type, so a device weight only ever yields device views.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/format.hpp"
#include "moe/core/memory.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/quant/rows8.hpp"

#include <array>
#include <cstddef>
#include <span>

namespace moe::layers {

// A 2-D weight [rows, cols] with a row stride in elements; cols are contiguous.
template <class Space = host_memory>
struct WeightMatrix {
  using memory = Space;
  DType dtype = DType::f32;
  const std::byte* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t row_stride = 0;
  // 1: rows as stored; quant::kInterleavedRows: groups of 8 rows interleaved (quant/rows8.hpp, the
  // layout the cpu backend repacks to at load: model/repack.hpp). The bytes per 8 rows are the
  // same, so bytes() and row offsets at multiples of 8 hold for both.
  index_t row_group = 1;

  bool empty() const noexcept { return data == nullptr; }
  // Bytes the matrix occupies (rows · row_stride elements; the last row counts cols only).
  std::size_t bytes() const noexcept {
    return rows == 0 ? 0 : format_row_bytes(dtype, (rows - 1) * row_stride + cols);
  }

  // The typed view; for a block format T its inner extent and row stride count blocks.
  template <class T>
  TensorView<const T, 2, Space> view() const noexcept {
    constexpr auto kBlock = static_cast<index_t>(FormatTraits<T>::block_elements);
    return TensorView<const T, 2, Space>(reinterpret_cast<const T*>(data), {rows, cols / kBlock},
                                         {row_stride / kBlock, 1});
  }
  // The typed view of an interleaved matrix: [rows / 8, cols / 32] groups (row_group == 8).
  template <quant::Interleavable T>
  TensorView<const quant::Rows8<T>, 2, Space> view_interleaved() const noexcept {
    constexpr auto kBlock = static_cast<index_t>(T::block_elements);
    return TensorView<const quant::Rows8<T>, 2, Space>(reinterpret_cast<const quant::Rows8<T>*>(data),
                                                       {rows / quant::kInterleavedRows, cols / kBlock},
                                                       {row_stride / kBlock, 1});
  }
  // Rows [begin, end) (begin a multiple of row_group).
  WeightMatrix row_slice(index_t begin, index_t end) const noexcept {
    WeightMatrix w = *this;
    w.data = data + format_row_bytes(dtype, begin * row_stride);
    w.rows = end - begin;
    return w;
  }
};

// A 1-D weight (norm scale, bias) of `size` contiguous elements.
template <class Space = host_memory>
struct WeightVector {
  using memory = Space;
  DType dtype = DType::f32;
  const std::byte* data = nullptr;
  index_t size = 0;

  bool empty() const noexcept { return data == nullptr; }
  std::size_t bytes() const noexcept { return format_row_bytes(dtype, size); }

  template <class T>
  TensorView<const T, 1, Space> view() const noexcept {
    constexpr auto kBlock = static_cast<index_t>(FormatTraits<T>::block_elements);
    return TensorView<const T, 1, Space>(reinterpret_cast<const T*>(data), {size / kBlock});
  }
};

template <class B, class T, std::size_t R>
using ViewOf = TensorView<T, R, typename B::memory>;

// Whether backend B has a matmul for format T in the row-interleaved layout (quant/rows8.hpp):
// the cpu_simd backends where kernels/cpu/interleaved_matmul.hpp is compiled.
template <class B, class T>
constexpr bool has_interleaved_matmul() noexcept {
  return quant::Interleavable<T> && backend::is_cpu_simd_v<B> && kernels::kInterleavedKernels;
}

// Only linear() takes interleaved matrices: every other consumer of a weight matrix checks this.
template <class Space>
void require_rows_as_stored(const WeightMatrix<Space>& w, const char* op) {
  require(w.row_group == 1, ErrorCode::kUnsupported, "{}: a {} matrix [{}, {}] interleaved by {} rows is not supported here",
          op, dtype_name(w.dtype), w.rows, w.cols, w.row_group);
}

// y = x·Wᵀ for w stored [out, in]. x [n, in], y [n, out]; y must not alias x.
template <class B>
void linear(B backend, ViewOf<B, const float, 2> x, const WeightMatrix<typename B::memory>& w,
            ViewOf<B, float, 2> y) {
  visit_format<B>(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (has_interleaved_matmul<B, T>()) {
      if (w.row_group == quant::kInterleavedRows) {
        kernels::matmul(backend, x, w.template view_interleaved<T>(), y);
        return;
      }
    }
    require_rows_as_stored(w, "linear");
    kernels::matmul(backend, x, w.template view<T>(), y);
  });
}

// y_i = x·W_iᵀ for weights that share x (an attention layer's q, k, v; an expert's gate and up):
// one step (kernels::matmul_fanout: one launch on a device backend, x quantized once and one
// parallel region for the cpu's interleaved matrices) when they share a format and layout, else one
// linear each.
template <class B, std::size_t N>
void linear_fanout(B backend, ViewOf<B, const float, 2> x,
                   const std::array<const WeightMatrix<typename B::memory>*, N>& w,
                   const std::array<ViewOf<B, float, 2>, N>& y) {
  bool same = true;
  for (const auto* m : w) same = same && m->dtype == w[0]->dtype && m->row_group == w[0]->row_group;
  if (!same || (w[0]->row_group != 1 && w[0]->row_group != quant::kInterleavedRows)) {
    for (std::size_t i = 0; i < N; ++i) linear(backend, x, *w[i], y[i]);
    return;
  }
  visit_format<B>(w[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (has_interleaved_matmul<B, T>()) {
      if (w[0]->row_group == quant::kInterleavedRows) {  // the cpu's repacked layout, all of them
        std::array<View<const quant::Rows8<T>, 2>, N> views;
        for (std::size_t i = 0; i < N; ++i) views[i] = w[i]->template view_interleaved<T>();
        kernels::matmul_fanout(backend, x, std::span<const View<const quant::Rows8<T>, 2>>(views),
                               std::span<const ViewOf<B, float, 2>>(y));
        return;
      }
    }
    for (const auto* m : w) require_rows_as_stored(*m, "linear_fanout");
    std::array<ViewOf<B, const T, 2>, N> views;
    for (std::size_t i = 0; i < N; ++i) views[i] = w[i]->template view<T>();
    kernels::matmul_fanout(backend, x, std::span<const ViewOf<B, const T, 2>>(views),
                           std::span<const ViewOf<B, float, 2>>(y));
  });
}

// y = x·W for w stored input-major [in, out]. x [n, in], y [n, out].
template <class B>
void linear_in_out(B backend, ViewOf<B, const float, 2> x, const WeightMatrix<typename B::memory>& w,
                   ViewOf<B, float, 2> y) {
  require_rows_as_stored(w, "linear_in_out");
  visit_format<B>(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::matmul_in_out(backend, x, w.template view<T>(), y);
  });
}

// A matmul per head (kernels::matmul_heads): y[:, h·R..(h+1)·R) = x[:, h·xs..h·xs+K)·W_hᵀ, where
// W_h is rows [h·R, (h+1)·R) of w stored [n_heads·R, K] and xs = x_head_stride.
template <class B>
void linear_heads(B backend, index_t n_heads, index_t x_head_stride, ViewOf<B, const float, 2> x,
                  const WeightMatrix<typename B::memory>& w, ViewOf<B, float, 2> y) {
  require_rows_as_stored(w, "linear_heads");
  visit_format<B>(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::matmul_heads(backend, n_heads, x_head_stride, x, w.template view<T>(), y);
  });
}

// y[t, :] += bias for every row t (nothing when the bias is absent). bias [y.extent(1)].
template <class B>
void add_bias(B backend, ViewOf<B, float, 2> y, const WeightVector<typename B::memory>& bias) {
  if (bias.empty()) return;
  visit_vector_format<B>(bias.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::add_bias(backend, y, bias.template view<T>());
  });
}

// y = rmsnorm(x) * weight, row-wise; y may alias x.
template <class B>
void rms_norm(B backend, ViewOf<B, const float, 2> x, const WeightVector<typename B::memory>& w, float eps,
              ViewOf<B, float, 2> y) {
  visit_vector_format<B>(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::rmsnorm(backend, x, w.template view<T>(), eps, y);
  });
}

// hidden += delta, then y = RMSNorm(hidden) · w: a sub-layer's residual add and the next norm, one
// kernel on a device backend (kernels/reference/fused.hpp).
template <class B>
void add_rms_norm(B backend, ViewOf<B, float, 2> hidden, ViewOf<B, const float, 2> delta,
                  const WeightVector<typename B::memory>& w, float eps, ViewOf<B, float, 2> y) {
  visit_vector_format<B>(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::add_rmsnorm(backend, hidden, delta, w.template view<T>(), eps, y);
  });
}

// dst = f32(src) (a stored vector widened once per pass). dst [src.size].
template <class B>
void widen(B backend, const WeightVector<typename B::memory>& src, ViewOf<B, float, 1> dst) {
  visit_vector_format<B>(src.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::to_f32(backend, src.template view<T>(), dst);
  });
}

}  // namespace moe::layers
