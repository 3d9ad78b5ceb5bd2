// kernels::rmsnorm on backend::cuda: y = x * rsqrt(mean(x²) + eps) * weight per row, f32 math,
// weights f32 or bf16, all pointers device pointers. One block per row.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kRmsNormMaxThreads = 512;

// Row `blockIdx.x`: sum of squares in f32 (per-thread partial sums over a strided slice, then a
// block reduction), then a second pass that scales. y may alias x: each thread reads x[i] before
// it writes y[i], and every read of the first pass finishes before block_sum returns. For that
// reason x and y carry no __restrict__ and x is read through the coherent path (no __ldg).
template <class W>
__global__ void rmsnorm_kernel(const float* x, std::size_t ld_x, const W* __restrict__ weight,
                               float eps, float* y, std::size_t ld_y, int d) {
  __shared__ float scratch[kWarpSize];
  const float* x_row = x + static_cast<std::size_t>(blockIdx.x) * ld_x;
  float* y_row = y + static_cast<std::size_t>(blockIdx.x) * ld_y;

  float sum_sq = 0.0f;
  for (int i = threadIdx.x; i < d; i += blockDim.x) sum_sq = fmaf(x_row[i], x_row[i], sum_sq);
  sum_sq = block_sum(sum_sq, scratch);
  // rsqrtf is within 2 ulp; the mean's own rounding error (up to ~d/2 ulp for a sequential sum on
  // the host) dominates any comparison with the reference.
  const float scale = rsqrtf(sum_sq / static_cast<float>(d) + eps);
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    y_row[i] = x_row[i] * scale * load_as_float(weight, static_cast<std::size_t>(i));
  }
}

template <class W>
void rmsnorm_impl(View<const float, 2> x, View<const W, 1> weight, float eps, View<float, 2> y) {
  const index_t n = x.extent(0);
  const index_t d = x.extent(1);
  require(weight.extent(0) == d && y.extent(0) == n && y.extent(1) == d,
          ErrorCode::kInvalidArgument,
          "kernels::rmsnorm(cuda): x [{}, {}], weight [{}] and y [{}, {}] do not match", n, d,
          weight.extent(0), y.extent(0), y.extent(1));
  require_unit_inner_stride(x, "rmsnorm", "x");
  require_unit_inner_stride(weight, "rmsnorm", "weight");
  require_unit_inner_stride(y, "rmsnorm", "y");
  require_int_range(d, "rmsnorm", "d");
  require(n <= static_cast<index_t>(0x7fffffff), ErrorCode::kInvalidArgument,
          "kernels::rmsnorm(cuda): {} rows exceed the grid limit", n);
  if (n == 0 || d == 0) return;
  // Enough threads for a few elements each, a whole number of warps.
  const int threads = static_cast<int>(
      std::min<index_t>(kRmsNormMaxThreads, (d + kWarpSize - 1) / kWarpSize * kWarpSize));
  rmsnorm_kernel<W><<<static_cast<unsigned>(n), threads>>>(x.data(), x.stride(0), weight.data(), eps,
                                                           y.data(), y.stride(0), static_cast<int>(d));
  ::moe::cuda::check_launch("rmsnorm_kernel");
}

}  // namespace cuda_detail

// y = x * rsqrt(mean(x²) + eps) * weight for each row, f32 math: x [n, d] f32, weight [d],
// y [n, d] f32, device pointers, innermost strides 1. y may alias x exactly (in place); no other
// overlap. Asynchronous on the default stream (see matmul). Throws kInvalidArgument on shape or
// stride mismatch, kDevice if the launch fails.
// Weight types: f32 and bf16; any other W is a compile-time error.
template <class W>
void rmsnorm(backend::cuda, View<const float, 2> x, View<const W, 1> weight, float eps,
             View<float, 2> y) {
  if constexpr (std::is_same_v<W, float> || std::is_same_v<W, bf16>) {
    cuda_detail::rmsnorm_impl<W>(x, weight, eps, y);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::rmsnorm is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
