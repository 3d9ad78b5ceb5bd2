// Type-erased weight references (a dtype tag plus a pointer straight into the mmapped
// checkpoint) and the matmul entry points that turn the runtime dtype into a typed kernel call
// once per call, at the layer boundary (gemma.cpp's CallUpcasted pattern).
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"

#include <cstddef>

namespace moe::layers {

// A 2-D weight [rows, cols] with a row stride in elements; cols are contiguous.
struct WeightMatrix {
  DType dtype = DType::f32;
  const std::byte* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  index_t row_stride = 0;

  bool empty() const noexcept { return data == nullptr; }

  template <class T>
  View<const T, 2> view() const noexcept {
    return View<const T, 2>(reinterpret_cast<const T*>(data), {rows, cols}, {row_stride, 1});
  }
  // Rows [begin, end).
  WeightMatrix row_slice(index_t begin, index_t end) const noexcept {
    WeightMatrix w = *this;
    w.data = data + begin * row_stride * dtype_size(dtype);
    w.rows = end - begin;
    return w;
  }
};

// A 1-D weight (norm scale, bias) of `size` contiguous elements.
struct WeightVector {
  DType dtype = DType::f32;
  const std::byte* data = nullptr;
  index_t size = 0;

  bool empty() const noexcept { return data == nullptr; }

  template <class T>
  View<const T, 1> view() const noexcept {
    return View<const T, 1>(reinterpret_cast<const T*>(data), {size});
  }
  float at(index_t i) const noexcept {
    switch (dtype) {
      case DType::f32: return reinterpret_cast<const float*>(data)[i];
      case DType::bf16: return to_float(reinterpret_cast<const bf16*>(data)[i]);
      case DType::f16: return to_float(reinterpret_cast<const f16*>(data)[i]);
    }
    return 0.0f;
  }
};

// y = x·Wᵀ for w stored [out, in]. x [n, in], y [n, out]; y must not alias x.
template <class B>
void linear(B backend, View<const float, 2> x, const WeightMatrix& w, View<float, 2> y) {
  visit_dtype(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::matmul(backend, x, w.view<T>(), y);
  });
}

// y = x·W for w stored input-major [in, out]. x [n, in], y [n, out].
template <class B>
void linear_in_out(B backend, View<const float, 2> x, const WeightMatrix& w, View<float, 2> y) {
  visit_dtype(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::matmul_in_out(backend, x, w.view<T>(), y);
  });
}

// y[t, :] += bias for every row t. bias [y.extent(1)].
inline void add_bias(View<float, 2> y, const WeightVector& bias) {
  if (bias.empty()) return;
  visit_dtype(bias.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* b = reinterpret_cast<const T*>(bias.data);
    for (index_t t = 0; t < y.extent(0); ++t) {
      float* row = &y(t, 0);
      for (index_t i = 0; i < y.extent(1); ++i) row[i] += to_float(b[i]);
    }
  });
}

// y = rmsnorm(x) * weight, row-wise; y may alias x.
template <class B>
void rms_norm(B backend, View<const float, 2> x, const WeightVector& w, float eps, View<float, 2> y) {
  visit_dtype(w.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::rmsnorm(backend, x, w.view<T>(), eps, y);
  });
}

}  // namespace moe::layers
