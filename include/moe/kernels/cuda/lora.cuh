// CUDA grouped LoRA update (kernels/reference/lora.hpp): a shrink kernel (one block per row, one
// warp per rank component: h[t, j] = A_a[j, :] · x[t, :]) and an expand kernel (one thread per
// output element: y[t, o] += scale_a · B_a[o, :] · h[t, :]); each row reads its adapter's
// factors from the device table, so one launch pair serves a batch mixing adapters.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/lora.hpp"

#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kLoraShrinkThreads = 128;

// The factors row t uses, or null when it picks none (negative or out-of-range index, or an
// adapter that does not touch this weight, or a rank above max_rank).
__device__ __forceinline__ const LoraFactorRef* lora_row_factors(const std::int32_t* row_adapter,
                                                                 const LoraFactorRef* adapters, int n_adapters,
                                                                 int max_rank, std::size_t t) {
  const std::int32_t a = row_adapter[t];
  if (a < 0 || a >= n_adapters) return nullptr;
  const LoraFactorRef* f = adapters + a;
  if (f->a == nullptr || f->rank < 1 || f->rank > max_rank) return nullptr;
  return f;
}

static __global__ void lora_shrink_kernel(const float* x, std::size_t x_stride, const std::int32_t* row_adapter,
                                   const LoraFactorRef* adapters, int n_adapters, int max_rank, int in, float* h,
                                   std::size_t h_stride) {
  kernel_prologue();
  const std::size_t t = blockIdx.x;
  const LoraFactorRef* f = lora_row_factors(row_adapter, adapters, n_adapters, max_rank, t);
  if (f == nullptr) return;
  const int warp = threadIdx.x / kWarpSize, lane = threadIdx.x % kWarpSize;
  const int n_warps = blockDim.x / kWarpSize;
  const float* xr = x + t * x_stride;
  for (int j = warp; j < f->rank; j += n_warps) {
    const float* ar = f->a + static_cast<std::size_t>(j) * in;
    float s = 0.0f;
    for (int i = lane; i < in; i += kWarpSize) s = fmaf(ar[i], xr[i], s);
    s = warp_sum(s);
    if (lane == 0) h[t * h_stride + j] = s;
  }
}

static __global__ void lora_expand_kernel(const float* h, std::size_t h_stride, const std::int32_t* row_adapter,
                                   const LoraFactorRef* adapters, int n_adapters, int max_rank, std::size_t n,
                                   int out, float* y, std::size_t y_stride) {
  kernel_prologue();
  const std::size_t total = n * static_cast<std::size_t>(out);
  for (std::size_t k = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t t = k / out, o = k % out;
    const LoraFactorRef* f = lora_row_factors(row_adapter, adapters, n_adapters, max_rank, t);
    if (f == nullptr) continue;
    const float* br = f->b + o * f->rank;
    const float* hr = h + t * h_stride;
    float s = 0.0f;
    for (int j = 0; j < f->rank; ++j) s = fmaf(br[j], hr[j], s);
    y[t * y_stride + o] += f->scale * s;
  }
}

}  // namespace cuda_detail

// Same contract as the reference overload, with the indices, the table and the factors in
// device memory; rows whose index is out of range get no update (the indices are not read back).
inline void lora_add(backend::cuda, DeviceView<const float, 2> x, DeviceView<const std::int32_t, 1> row_adapter,
                     DeviceView<const LoraFactorRef, 1> adapters, index_t max_rank, DeviceView<float, 2> h,
                     DeviceView<float, 2> y) {
  detail::check_lora_args(x, row_adapter, h, y, max_rank, "lora_add");
  const index_t n = x.extent(0);
  if (n == 0 || adapters.extent(0) == 0 || max_rank == 0) return;
  cuda_detail::require_int_range(n, "lora_add", "rows");
  cuda_detail::require_int_range(x.extent(1), "lora_add", "in");
  cuda_detail::require_int_range(y.extent(1), "lora_add", "out");
  cuda_detail::require_int_range(adapters.extent(0), "lora_add", "adapters");
  cuda_detail::require_int_range(max_rank, "lora_add", "max_rank");
  const int n_adapters = static_cast<int>(adapters.extent(0)), rank = static_cast<int>(max_rank);
  cuda_detail::launch(cuda_detail::lora_shrink_kernel, static_cast<unsigned>(n), cuda_detail::kLoraShrinkThreads, 0, x.data(), x.stride(0), row_adapter.data(),
                                                             adapters.data(), n_adapters, rank,
                                                             static_cast<int>(x.extent(1)), h.data(), h.stride(0));
  ::moe::cuda::check_launch("lora_shrink");
  if (y.extent(1) == 0) return;
  constexpr int kThreads = 256;
  cuda_detail::launch(cuda_detail::lora_expand_kernel, cuda_detail::grid_for(n * y.extent(1), kThreads), kThreads, 0, h.data(), h.stride(0), row_adapter.data(),
                                                             adapters.data(), n_adapters, rank, n,
                                                             static_cast<int>(y.extent(1)), y.data(), y.stride(0));
  ::moe::cuda::check_launch("lora_expand");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
