// Rotary position embedding on backend::cuda: kernels::rope (in place, both pairings, on any
// strided [n_tokens, n_heads, head_dim] view such as the rope part of MLA queries) and
// kernels::rope_tables (cos/sin of a pass, evaluated in double and rounded once, as the
// reference does, so the tables agree with the host's bit for bit in all but rare cases).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/rope.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

// One thread per (token, head, pair).
__global__ void rope_kernel(float* x, std::size_t s_tok, std::size_t s_head, const float* __restrict__ cos_t,
                            std::size_t ld_cos, const float* __restrict__ sin_t, std::size_t ld_sin,
                            std::size_t n_heads, std::size_t half, std::size_t total, bool interleaved) {
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = e % half;
    const std::size_t h = (e / half) % n_heads;
    const std::size_t t = e / (half * n_heads);
    float* v = x + t * s_tok + h * s_head;
    const std::size_t ia = interleaved ? 2 * i : i;
    const std::size_t ib = interleaved ? 2 * i + 1 : i + half;
    const float a = v[ia], b = v[ib];
    const float c = __ldg(cos_t + t * ld_cos + i), s = __ldg(sin_t + t * ld_sin + i);
    v[ia] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    v[ib] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
}

__global__ void rope_tables_kernel(const float* __restrict__ inv_freq, std::size_t s_freq, float scaling,
                                   const std::int64_t* __restrict__ positions, std::size_t s_pos, float* cos_t,
                                   std::size_t ld_cos, float* sin_t, std::size_t ld_sin, std::size_t half,
                                   std::size_t total) {
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t t = e / half, i = e % half;
    const auto p = static_cast<float>(positions[t * s_pos]);
    const float angle = __fmul_rn(inv_freq[i * s_freq], p);
    double s = 0.0, c = 0.0;
    sincos(static_cast<double>(angle), &s, &c);
    cos_t[t * ld_cos + i] = __fmul_rn(static_cast<float>(c), scaling);
    sin_t[t * ld_sin + i] = __fmul_rn(static_cast<float>(s), scaling);
  }
}

}  // namespace cuda_detail

// x [n_tokens, n_heads, head_dim] f32 (any token and head strides, unit inner stride), rotated in
// place on the first rotary_dim = 2·cos.extent(1) dims of every head; cos, sin [n_tokens,
// rotary_dim/2]. For a pair (a, b): a' = a·cos - b·sin, b' = b·cos + a·sin. Heads must not
// overlap each other (every pair is rotated by one thread).
inline void rope(backend::cuda, DeviceView<float, 3> x, DeviceView<const float, 2> cos,
                 DeviceView<const float, 2> sin, RopePairing pairing) {
  detail::check_rope(x, cos, sin);
  const index_t total = x.extent(0) * x.extent(1) * cos.extent(1);
  if (total == 0) return;
  cuda_detail::rope_kernel<<<cuda_detail::grid_for(total, 256), 256>>>(
      x.data(), x.stride(0), x.stride(1), cos.data(), cos.stride(0), sin.data(), sin.stride(0), x.extent(1),
      cos.extent(1), total, pairing == RopePairing::interleaved);
  ::moe::cuda::check_launch("rope_kernel");
}

// cos[t][i] = cos(positions[t] · inv_freq[i]) · scaling, and sin likewise; the angle is an f32
// product, cos and sin are evaluated in double and rounded once. inv_freq [half], positions [n]
// (device memory), cos, sin [n, half].
inline void rope_tables(backend::cuda, DeviceView<const float, 1> inv_freq, float scaling,
                        DeviceView<const std::int64_t, 1> positions, DeviceView<float, 2> cos,
                        DeviceView<float, 2> sin) {
  const index_t n = positions.extent(0), half = inv_freq.extent(0);
  require(cos.extent(0) == n && sin.extent(0) == n && cos.extent(1) == half && sin.extent(1) == half,
          ErrorCode::kInvalidArgument, "rope_tables: {} positions, {} frequencies, cos [{}, {}], sin [{}, {}]", n, half,
          cos.extent(0), cos.extent(1), sin.extent(0), sin.extent(1));
  detail::check_unit_inner_stride(cos, "rope_tables", "cos");
  detail::check_unit_inner_stride(sin, "rope_tables", "sin");
  if (n == 0 || half == 0) return;
  cuda_detail::rope_tables_kernel<<<cuda_detail::grid_for(n * half, 256), 256>>>(
      inv_freq.data(), inv_freq.stride(0), scaling, positions.data(), positions.stride(0), cos.data(), cos.stride(0),
      sin.data(), sin.stride(0), half, n * half);
  ::moe::cuda::check_launch("rope_tables_kernel");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
