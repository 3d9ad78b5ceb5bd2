// kernels::rmsnorm on backend::cuda: y = (x * rsqrt(mean(x²) + eps)) * weight per row, weights
// f32, bf16 or f16, all in device memory. One block per row; the sum of squares is formed in
// double and the inverse root computed in double and rounded once, as the reference does, so
// results agree with it to an ulp or two.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/arguments.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kRmsNormMaxThreads = 512;

// Row `blockIdx.x`: sum of squares (per-thread partial sums over a strided slice, then a block
// reduction), then a second pass that scales. y may alias x: each thread reads x[i] before it
// writes y[i], and every read of the first pass finishes before block_sum returns. For that
// reason x and y carry no __restrict__ and x is read through the coherent path (no __ldg).
template <class W>
__global__ void rmsnorm_kernel(const float* x, std::size_t ld_x, const W* __restrict__ weight, float eps, float* y,
                               std::size_t ld_y, int d) {
  kernel_prologue();
  __shared__ double scratch[kWarpSize];
  const float* x_row = x + static_cast<std::size_t>(blockIdx.x) * ld_x;
  float* y_row = y + static_cast<std::size_t>(blockIdx.x) * ld_y;

  double sum_sq = 0.0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const double v = x_row[i];
    sum_sq = fma(v, v, sum_sq);
  }
  sum_sq = block_sum(sum_sq, scratch);
  const auto inv_rms = static_cast<float>(1.0 / sqrt(sum_sq / static_cast<double>(d) + static_cast<double>(eps)));
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    // No weight (rms_normalize): x · inv_rms alone, exactly the product with 1.
    const float w = weight == nullptr ? 1.0f : load_as_float(weight, static_cast<std::size_t>(i));
    y_row[i] = __fmul_rn(__fmul_rn(x_row[i], inv_rms), w);
  }
}

// The fused residual add + RMSNorm of row `blockIdx.x`: hidden += delta (stored), y = rmsnorm of
// the sum. Each thread adds and stores its slice, sums its squares, and after the block reduction
// re-reads its own stores to scale them: bitwise add followed by rmsnorm_kernel.
// Elements per thread that add_rmsnorm_kernel keeps in registers (d <= 512 · 16 = 8192: every
// model we run); longer rows re-read their sums from memory.
inline constexpr int kRmsNormPerThread = 16;

template <class W>
__global__ void add_rmsnorm_kernel(float* hidden, std::size_t ld_h, const float* __restrict__ delta, std::size_t ld_d,
                                   const W* __restrict__ weight, float eps, float* y, std::size_t ld_y, int d) {
  kernel_prologue();
  __shared__ double scratch[kWarpSize];
  float* h_row = hidden + static_cast<std::size_t>(blockIdx.x) * ld_h;
  const float* d_row = delta + static_cast<std::size_t>(blockIdx.x) * ld_d;
  float* y_row = y + static_cast<std::size_t>(blockIdx.x) * ld_y;
  const int step = static_cast<int>(blockDim.x);
  if (d <= step * kRmsNormPerThread) {
    // The sums and the weights stay in registers: the loads of hidden, delta and the weight go
    // out together, and the normalisation reads nothing back (a round trip less per row).
    float sum[kRmsNormPerThread], wt[kRmsNormPerThread];
    double sum_sq = 0.0;
#pragma unroll
    for (int j = 0; j < kRmsNormPerThread; ++j) {
      const int i = static_cast<int>(threadIdx.x) + j * step;
      if (i < d) {
        wt[j] = load_as_float(weight, static_cast<std::size_t>(i));
        sum[j] = __fadd_rn(h_row[i], d_row[i]);
        h_row[i] = sum[j];
        const double v = sum[j];
        sum_sq = fma(v, v, sum_sq);
      }
    }
    sum_sq = block_sum(sum_sq, scratch);
    const auto inv_rms = static_cast<float>(1.0 / sqrt(sum_sq / static_cast<double>(d) + static_cast<double>(eps)));
#pragma unroll
    for (int j = 0; j < kRmsNormPerThread; ++j) {
      const int i = static_cast<int>(threadIdx.x) + j * step;
      if (i < d) y_row[i] = __fmul_rn(__fmul_rn(sum[j], inv_rms), wt[j]);
    }
    return;
  }
  double sum_sq = 0.0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float s = __fadd_rn(h_row[i], d_row[i]);
    h_row[i] = s;
    const double v = s;
    sum_sq = fma(v, v, sum_sq);
  }
  sum_sq = block_sum(sum_sq, scratch);
  const auto inv_rms = static_cast<float>(1.0 / sqrt(sum_sq / static_cast<double>(d) + static_cast<double>(eps)));
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    y_row[i] = __fmul_rn(__fmul_rn(h_row[i], inv_rms), load_as_float(weight, static_cast<std::size_t>(i)));
  }
}

inline int rmsnorm_threads(index_t d) {
  return static_cast<int>(std::min<index_t>(kRmsNormMaxThreads, (d + kWarpSize - 1) / kWarpSize * kWarpSize));
}

template <class W>
void rmsnorm_impl(DeviceView<const float, 2> x, DeviceView<const W, 1> weight, float eps, DeviceView<float, 2> y) {
  detail::check_rmsnorm(x, weight, y);
  const index_t n = x.extent(0);
  const index_t d = x.extent(1);
  require_int_range(d, "rmsnorm", "d");
  require(n <= static_cast<index_t>(0x7fffffff), ErrorCode::kInvalidArgument,
          "kernels::rmsnorm(cuda): {} rows exceed the grid limit", n);
  if (n == 0 || d == 0) return;
  // Enough threads for a few elements each, a whole number of warps.
  const int threads = rmsnorm_threads(d);
  cuda_detail::launch(rmsnorm_kernel<W>, static_cast<unsigned>(n), threads, 0, x.data(), x.stride(0), weight.data(), eps, y.data(),
                                                           y.stride(0), static_cast<int>(d));
  ::moe::cuda::check_launch("rmsnorm_kernel");
}

}  // namespace cuda_detail

// y = x * rsqrt(mean(x²) + eps) * weight for each row: x [n, d] f32, weight [d], y [n, d] f32,
// device memory, innermost strides 1. y may alias x exactly (in place); no other overlap.
// Asynchronous on the backend's stream (cuda::stream()). Throws kInvalidArgument on shape or stride mismatch,
// kDevice if the launch fails. Weight types: float, bf16, f16; any other is a compile error.
template <class W>
void rmsnorm(backend::cuda, DeviceView<const float, 2> x, DeviceView<const W, 1> weight, float eps,
             DeviceView<float, 2> y) {
  if constexpr (std::is_same_v<W, float> || std::is_same_v<W, bf16> || std::is_same_v<W, f16>) {
    cuda_detail::rmsnorm_impl<W>(x, weight, eps, y);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::rmsnorm is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16)");
  }
}

// x = x * rsqrt(mean(x²) + eps) per row, in place, no weight (Llama 4's q/k L2Norm). x [n, d] f32,
// device memory, innermost stride 1.
inline void rms_normalize(backend::cuda, DeviceView<float, 2> x, float eps) {
  const index_t n = x.extent(0), d = x.extent(1);
  cuda_detail::require_int_range(d, "rms_normalize", "d");
  require(x.stride(1) == 1 && n <= static_cast<index_t>(0x7fffffff), ErrorCode::kInvalidArgument,
          "kernels::rms_normalize(cuda): x [{}, {}] must have unit inner stride and fit the grid", n, d);
  if (n == 0 || d == 0) return;
  cuda_detail::launch(cuda_detail::rmsnorm_kernel<float>, static_cast<unsigned>(n), cuda_detail::rmsnorm_threads(d), 0, x.data(), x.stride(0), nullptr, eps, x.data(),
                                                                x.stride(0), static_cast<int>(d));
  ::moe::cuda::check_launch("rms_normalize");
}

// The residual add that ends a sub-layer fused with the RMSNorm that starts the next:
// hidden += delta; y = rmsnorm(hidden) · weight (kernels/reference/fused.hpp). hidden, delta, y
// [n, d] f32 in device memory (unit inner strides; y must not overlap hidden or delta).
template <class W>
void add_rmsnorm(backend::cuda, DeviceView<float, 2> hidden, DeviceView<const float, 2> delta,
                 DeviceView<const W, 1> weight, float eps, DeviceView<float, 2> y) {
  if constexpr (cuda_detail::is_cuda_weight_v<W>) {
    detail::check_same_shape(hidden, delta, "add_rmsnorm", "hidden", "delta");
    detail::check_rmsnorm(DeviceView<const float, 2>(hidden), weight, y);
    const index_t n = hidden.extent(0), d = hidden.extent(1);
    cuda_detail::require_int_range(d, "add_rmsnorm", "d");
    require(n <= static_cast<index_t>(0x7fffffff), ErrorCode::kInvalidArgument,
            "kernels::add_rmsnorm(cuda): {} rows exceed the grid limit", n);
    if (n == 0 || d == 0) return;
    cuda_detail::launch(cuda_detail::add_rmsnorm_kernel<W>, static_cast<unsigned>(n), cuda_detail::rmsnorm_threads(d), 0, hidden.data(), hidden.stride(0), delta.data(),
                                                                  delta.stride(0), weight.data(), eps, y.data(),
                                                                  y.stride(0), static_cast<int>(d));
    ::moe::cuda::check_launch("add_rmsnorm_kernel");
  } else {
    static_assert(dependent_false<W>,
                  "kernels::add_rmsnorm is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
