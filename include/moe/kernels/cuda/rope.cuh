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
#include "moe/kernels/cuda/rmsnorm.cuh"
#include "moe/kernels/reference/rope.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

// One thread per (token, head, pair).
static __global__ void rope_kernel(float* x, std::size_t s_tok, std::size_t s_head, const float* __restrict__ cos_t,
                            std::size_t ld_cos, const float* __restrict__ sin_t, std::size_t ld_sin,
                            std::size_t n_heads, std::size_t half, std::size_t total, bool interleaved) {
  kernel_prologue();
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

static __global__ void rope_tables_kernel(const float* __restrict__ inv_freq, std::size_t s_freq, float scaling,
                                   const std::int64_t* __restrict__ positions, std::size_t s_pos, float* cos_t,
                                   std::size_t ld_cos, float* sin_t, std::size_t ld_sin, std::size_t half,
                                   std::size_t total) {
  kernel_prologue();
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

// The fused per-head QK-norm + rope (kernels/reference/fused.hpp): block r is one head of one
// token, of q (r < q_rows) or of k. With norms, the head is RMSNorm-ed in place exactly as
// rmsnorm_kernel does it (same threads, same reduction), then, after a barrier, rotated exactly
// as rope_kernel does: bitwise the unfused composition, in one launch instead of four.
struct QkRopeArgs {
  float* q;
  std::size_t q_tok, q_heads;
  float* k;
  std::size_t k_tok, k_heads;
  unsigned q_rows, k_rows;
  const float* cos_t;
  std::size_t ld_cos;
  const float* sin_t;
  std::size_t ld_sin;
  int head_dim, half;
  float eps;
  bool interleaved;
};

// What the kernel does besides: nothing, or (kernels/cuda/cache.cuh's CacheAppend) each finished
// k head written to the KV cache too, and the v rows copied there by blocks of their own.
struct NoAppend {
  static constexpr bool kActive = false;
  __device__ void key(std::size_t, std::size_t, const float*, int) const {}
  __device__ void value(std::size_t) const {}
};

template <class W, class Append>
__global__ void qk_norm_rope_kernel(QkRopeArgs a, const W* __restrict__ q_norm, const W* __restrict__ k_norm,
                                    Append append) {
  kernel_prologue();
  if constexpr (Append::kActive) {
    if (blockIdx.x >= a.q_rows + a.k_rows) {  // one block per token's v row
      append.value(blockIdx.x - a.q_rows - a.k_rows);
      return;
    }
  }
  __shared__ double scratch[kWarpSize];
  const bool is_q = blockIdx.x < a.q_rows;
  const std::size_t r = is_q ? blockIdx.x : blockIdx.x - a.q_rows;
  const std::size_t heads = is_q ? a.q_heads : a.k_heads;
  const std::size_t t = r / heads, h = r % heads;
  float* v = is_q ? a.q + t * a.q_tok + h * a.head_dim : a.k + t * a.k_tok + h * a.head_dim;
  const W* w = is_q ? q_norm : k_norm;
  if (w != nullptr) {
    double sum_sq = 0.0;
    for (int i = threadIdx.x; i < a.head_dim; i += blockDim.x) {
      const double x = v[i];
      sum_sq = fma(x, x, sum_sq);
    }
    sum_sq = block_sum(sum_sq, scratch);
    const auto inv_rms =
        static_cast<float>(1.0 / sqrt(sum_sq / static_cast<double>(a.head_dim) + static_cast<double>(a.eps)));
    for (int i = threadIdx.x; i < a.head_dim; i += blockDim.x) {
      v[i] = __fmul_rn(__fmul_rn(v[i], inv_rms), load_as_float(w, static_cast<std::size_t>(i)));
    }
    __syncthreads();  // every element normalised before any pair is rotated
  }
  for (int i = threadIdx.x; i < a.half; i += blockDim.x) {
    const int ia = a.interleaved ? 2 * i : i;
    const int ib = a.interleaved ? 2 * i + 1 : i + a.half;
    const float x0 = v[ia], x1 = v[ib];
    const float c = __ldg(a.cos_t + t * a.ld_cos + i), s = __ldg(a.sin_t + t * a.ld_sin + i);
    v[ia] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    v[ib] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
  }
  if constexpr (Append::kActive) {
    if (!is_q) {  // uniform over the block
      __syncthreads();  // the whole head rotated (and normalised) before it is copied
      append.key(t, h, v, a.head_dim);
    }
  }
}

// The checks and arguments of qk_norm_rope, then its launch with `append` over `extra_blocks`
// more blocks.
template <class W, class Append>
void launch_qk_norm_rope(DeviceView<float, 3> q, DeviceView<float, 3> k, DeviceView<const W, 1> q_norm,
                         DeviceView<const W, 1> k_norm, float eps, DeviceView<const float, 2> cos,
                         DeviceView<const float, 2> sin, RopePairing pairing, const Append& append,
                         index_t extra_blocks) {
  detail::check_qk_norms(q, k, q_norm, k_norm);
  detail::check_rope(q, cos, sin);
  detail::check_rope(k, cos, sin);
  (void)detail::heads_as_rows(q, "qk_norm_rope");
  (void)detail::heads_as_rows(k, "qk_norm_rope");
  const index_t rows = q.extent(0) * q.extent(1) + k.extent(0) * k.extent(1);
  require(rows + extra_blocks <= 0x7fffffff && q.extent(2) == k.extent(2), ErrorCode::kInvalidArgument,
          "qk_norm_rope(cuda): {} heads of {} and {}", rows, q.extent(2), k.extent(2));
  require_int_range(q.extent(2), "qk_norm_rope", "head_dim");
  if (rows == 0) return;
  QkRopeArgs a{};
  a.q = q.data(), a.q_tok = q.stride(0), a.q_heads = q.extent(1);
  a.k = k.data(), a.k_tok = k.stride(0), a.k_heads = k.extent(1);
  a.q_rows = static_cast<unsigned>(q.extent(0) * q.extent(1)), a.k_rows = static_cast<unsigned>(k.extent(0) * k.extent(1));
  a.cos_t = cos.data(), a.ld_cos = cos.stride(0), a.sin_t = sin.data(), a.ld_sin = sin.stride(0);
  a.head_dim = static_cast<int>(q.extent(2)), a.half = static_cast<int>(cos.extent(1));
  a.eps = eps, a.interleaved = pairing == RopePairing::interleaved;
  const bool norm = q_norm.extent(0) != 0;
  launch(qk_norm_rope_kernel<W, Append>, static_cast<unsigned>(rows + extra_blocks), rmsnorm_threads(q.extent(2)), 0,
         a, norm ? q_norm.data() : nullptr, norm ? k_norm.data() : nullptr, append);
  ::moe::cuda::check_launch("qk_norm_rope_kernel");
}

}  // namespace cuda_detail

// Per-head QK-norm (when q_norm/k_norm have extent head_dim; extent 0: none) and rope of q [n, H,
// hd] and k [n, KV, hd] (contiguous heads, device memory) in place, in one launch.
template <class W>
void qk_norm_rope(backend::cuda, DeviceView<float, 3> q, DeviceView<float, 3> k, DeviceView<const W, 1> q_norm,
                  DeviceView<const W, 1> k_norm, float eps, DeviceView<const float, 2> cos,
                  DeviceView<const float, 2> sin, RopePairing pairing) {
  if constexpr (cuda_detail::is_cuda_weight_v<W>) {
    cuda_detail::launch_qk_norm_rope(q, k, q_norm, k_norm, eps, cos, sin, pairing, cuda_detail::NoAppend{}, 0);
  } else {
    static_assert(dependent_false<W>, "kernels::qk_norm_rope is not implemented for backend::cuda with this weight "
                                      "type (implemented: float, bf16, f16)");
  }
}

// x [n_tokens, n_heads, head_dim] f32 (any token and head strides, unit inner stride), rotated in
// place on the first rotary_dim = 2·cos.extent(1) dims of every head; cos, sin [n_tokens,
// rotary_dim/2]. For a pair (a, b): a' = a·cos - b·sin, b' = b·cos + a·sin. Heads must not
// overlap each other (every pair is rotated by one thread).
inline void rope(backend::cuda, DeviceView<float, 3> x, DeviceView<const float, 2> cos,
                 DeviceView<const float, 2> sin, RopePairing pairing) {
  detail::check_rope(x, cos, sin);
  const index_t total = x.extent(0) * x.extent(1) * cos.extent(1);
  if (total == 0) return;
  cuda_detail::launch(cuda_detail::rope_kernel, cuda_detail::grid_for(total, 256), 256, 0, 
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
  cuda_detail::launch(cuda_detail::rope_tables_kernel, cuda_detail::grid_for(n * half, 256), 256, 0, 
      inv_freq.data(), inv_freq.stride(0), scaling, positions.data(), positions.stride(0), cos.data(), cos.stride(0),
      sin.data(), sin.stride(0), half, n * half);
  ::moe::cuda::check_launch("rope_tables_kernel");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
