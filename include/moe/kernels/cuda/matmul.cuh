// kernels::matmul on backend::cuda: y = x·Wᵀ with x, y f32 and W bf16 [out, in] in device memory.
// Decode (up to kGemvMaxTokens rows of x) streams W once through a warp-per-output-row GEMV;
// more rows use a shared-memory tiled f32 GEMM. Both accumulate in f32.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

// ---- decode: GEMV, one warp per output row ---------------------------------------------------
//
// Decode is bound by the bandwidth of reading W (bytes of x and y are negligible), so the kernel
// is organised around W: each lane issues 16-byte loads (8 bf16) of its row with the streaming
// cache hint (W is read once; keep L1/L2 for x), kGemvUnroll of them in flight, and each loaded
// chunk is applied to every token of the batch (up to kGemvMaxTokens), so a batch of tokens
// still reads W once. Partial sums are combined with a warp butterfly: no shared memory, no
// block synchronization. The 16-byte path needs every row start of W and x 16-byte aligned;
// otherwise the same kernel runs with 2-byte loads (kVector = false).

inline constexpr int kGemvWarpsPerBlock = 8;  // 256 threads: 8 output rows per block
inline constexpr int kGemvMaxTokens = 8;      // rows of x per pass over W; more use the GEMM
inline constexpr int kGemvUnroll = 4;         // 16-byte loads of W in flight per lane

// Applies 8 consecutive weights (one 16-byte chunk, little-endian bf16 pairs) starting at input
// index k to every token's accumulator. x rows are 16-byte aligned here (checked on the host).
template <int kTokens>
__device__ __forceinline__ void gemv_accumulate_chunk(uint4 packed, const float* __restrict__ x,
                                                      std::size_t ld_x, std::size_t k,
                                                      float (&acc)[kTokens]) {
  const std::uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
  float wf[8];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    wf[2 * i] = __uint_as_float(words[i] << 16);              // element 2i: low half
    wf[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);  // element 2i+1: high half
  }
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    const float4* xp = reinterpret_cast<const float4*>(x + t * ld_x + k);
    const float4 a = __ldg(xp);
    const float4 b = __ldg(xp + 1);
    float s = acc[t];
    s = fmaf(a.x, wf[0], s);
    s = fmaf(a.y, wf[1], s);
    s = fmaf(a.z, wf[2], s);
    s = fmaf(a.w, wf[3], s);
    s = fmaf(b.x, wf[4], s);
    s = fmaf(b.y, wf[5], s);
    s = fmaf(b.z, wf[6], s);
    s = fmaf(b.w, wf[7], s);
    acc[t] = s;
  }
}

// y[t, row] = sum_k x[t, k] * w[row, k] for t < kTokens. Grid: ceil(out / kGemvWarpsPerBlock).
template <int kTokens, bool kVector>
__global__ void __launch_bounds__(kGemvWarpsPerBlock * kWarpSize)
    gemv_bf16_kernel(const float* __restrict__ x, std::size_t ld_x,
                     const std::uint16_t* __restrict__ w, std::size_t ld_w, float* __restrict__ y,
                     std::size_t ld_y, int in, int out) {
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kGemvWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= out) return;  // the whole warp leaves together, so warp_sum below stays convergent
  const std::uint16_t* w_row = w + static_cast<std::size_t>(row) * ld_w;

  float acc[kTokens];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) acc[t] = 0.0f;

  int k_tail = 0;  // first input index not covered by 16-byte chunks
  if constexpr (kVector) {
    const int n_chunks = in / 8;
    const uint4* w_chunks = reinterpret_cast<const uint4*>(w_row);
    int c = lane;
    // Hot loop: kGemvUnroll independent 16-byte loads per lane before any arithmetic.
    for (; c + (kGemvUnroll - 1) * kWarpSize < n_chunks; c += kGemvUnroll * kWarpSize) {
      uint4 packed[kGemvUnroll];
#pragma unroll
      for (int u = 0; u < kGemvUnroll; ++u) packed[u] = __ldcs(w_chunks + c + u * kWarpSize);
#pragma unroll
      for (int u = 0; u < kGemvUnroll; ++u) {
        gemv_accumulate_chunk<kTokens>(packed[u], x, ld_x,
                                       static_cast<std::size_t>(c + u * kWarpSize) * 8, acc);
      }
    }
    for (; c < n_chunks; c += kWarpSize) {
      gemv_accumulate_chunk<kTokens>(__ldcs(w_chunks + c), x, ld_x, static_cast<std::size_t>(c) * 8,
                                     acc);
    }
    k_tail = n_chunks * 8;
  }
  // The tail (in % 8 elements), or the whole row when the rows are not 16-byte aligned:
  // consecutive lanes read consecutive elements, so the warp's loads stay coalesced.
  for (int k = k_tail + lane; k < in; k += kWarpSize) {
    const float wk = bf16_bits_to_float(__ldcs(w_row + k));
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[t] = fmaf(__ldg(x + t * ld_x + k), wk, acc[t]);
  }

#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    const float total = warp_sum(acc[t]);  // every lane holds the total afterwards
    if (lane == t % kWarpSize) y[t * ld_y + row] = total;
  }
}

template <int kTokens>
void launch_gemv_bf16(bool vector, const float* x, std::size_t ld_x, const std::uint16_t* w,
                      std::size_t ld_w, float* y, std::size_t ld_y, int in, int out) {
  const dim3 grid((out + kGemvWarpsPerBlock - 1) / kGemvWarpsPerBlock);
  const dim3 block(kGemvWarpsPerBlock * kWarpSize);
  if (vector) {
    gemv_bf16_kernel<kTokens, true><<<grid, block>>>(x, ld_x, w, ld_w, y, ld_y, in, out);
  } else {
    gemv_bf16_kernel<kTokens, false><<<grid, block>>>(x, ld_x, w, ld_w, y, ld_y, in, out);
  }
  ::moe::cuda::check_launch("gemv_bf16_kernel");
}

// ---- prefill: tiled GEMM -----------------------------------------------------------------------
//
// A block computes a [kTileTokens, kTileOut] tile of y; each of its 256 threads owns a 4x4
// sub-tile. Per step of kTileK inputs, x and W tiles are staged in shared memory transposed
// (k-major), W widened to f32 once, so the inner loop is two 16-byte shared loads per 16 FMAs.
// Plain f32 CUDA-core arithmetic, each output summed in input order: accurate to the same bound
// as the reference. (A tensor-core path would need x rounded to bf16 or TF32.)

inline constexpr int kTileTokens = 64;
inline constexpr int kTileOut = 64;
inline constexpr int kTileK = 16;
inline constexpr int kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
static_assert(kTileTokens * kTileK % kGemmThreads == 0 && kTileOut == kTileTokens);

__global__ void __launch_bounds__(kGemmThreads)
    gemm_bf16_kernel(const float* __restrict__ x, std::size_t ld_x,
                     const std::uint16_t* __restrict__ w, std::size_t ld_w, float* __restrict__ y,
                     std::size_t ld_y, int n_tokens, int in, int out) {
  // +4 floats of padding per row: keeps rows 16-byte aligned for the float4 reads below and
  // spreads the transposed stores over more banks.
  __shared__ __align__(16) float xs[kTileK][kTileTokens + 4];  // [k][token]
  __shared__ __align__(16) float ws[kTileK][kTileOut + 4];     // [k][output]

  const int t0 = blockIdx.y * kTileTokens;
  const int o0 = blockIdx.x * kTileOut;
  const int tx = threadIdx.x % 16;  // output sub-tile
  const int ty = threadIdx.x / 16;  // token sub-tile

  float acc[4][4] = {};
  for (int k0 = 0; k0 < in; k0 += kTileK) {
#pragma unroll
    for (int i = 0; i < kTileTokens * kTileK / kGemmThreads; ++i) {
      const int e = threadIdx.x + i * kGemmThreads;
      const int r = e / kTileK;  // consecutive threads read consecutive k of one row
      const int kk = e % kTileK;
      const int k = k0 + kk;
      const int t = t0 + r;
      const int o = o0 + r;
      xs[kk][r] = (t < n_tokens && k < in) ? __ldg(x + static_cast<std::size_t>(t) * ld_x + k) : 0.0f;
      ws[kk][r] = (o < out && k < in)
                      ? bf16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(w) +
                                                 static_cast<std::size_t>(o) * ld_w + k))
                      : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      const float4 a = *reinterpret_cast<const float4*>(&xs[kk][ty * 4]);
      const float4 b = *reinterpret_cast<const float4*>(&ws[kk][tx * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w};
      const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int t = t0 + ty * 4 + i;
    if (t >= n_tokens) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int o = o0 + tx * 4 + j;
      if (o < out) y[static_cast<std::size_t>(t) * ld_y + o] = acc[i][j];
    }
  }
}

// Whether the decode GEMV can use 16-byte loads: every row start of W and of x is 16-byte
// aligned (the base pointers and the leading dimensions). Weights mmapped from a file or views
// at odd offsets may fail this; they take the 2-byte-load path, same results.
inline bool gemv_vector_loads(View<const float, 2> x, View<const bf16, 2> w) {
  return is_aligned(w.data(), 16) && (w.extent(0) <= 1 || w.stride(0) % 8 == 0) &&
         is_aligned(x.data(), 16) && (x.extent(0) <= 1 || x.stride(0) % 4 == 0);
}

inline void matmul_bf16(View<const float, 2> x, View<const bf16, 2> w, View<float, 2> y) {
  const index_t n_tokens = x.extent(0);
  const index_t in = x.extent(1);
  const index_t out = w.extent(0);
  require(w.extent(1) == in && y.extent(0) == n_tokens && y.extent(1) == out,
          ErrorCode::kInvalidArgument,
          "kernels::matmul(cuda): x [{}, {}], w [{}, {}] and y [{}, {}] do not fit y = x·wᵀ",
          x.extent(0), x.extent(1), w.extent(0), w.extent(1), y.extent(0), y.extent(1));
  require_unit_inner_stride(x, "matmul", "x");
  require_unit_inner_stride(w, "matmul", "w");
  require_unit_inner_stride(y, "matmul", "y");
  require_int_range(in, "matmul", "in");
  require_int_range(out, "matmul", "out");
  require(n_tokens <= static_cast<index_t>(65535) * kTileTokens, ErrorCode::kInvalidArgument,
          "kernels::matmul(cuda): {} rows of x exceed the supported {}", n_tokens,
          static_cast<index_t>(65535) * kTileTokens);
  if (n_tokens == 0 || out == 0) return;

  const auto* w_bits = reinterpret_cast<const std::uint16_t*>(w.data());
  const std::size_t ld_x = x.stride(0), ld_w = w.stride(0), ld_y = y.stride(0);
  const int n_in = static_cast<int>(in), n_out = static_cast<int>(out);

  if (n_tokens <= static_cast<index_t>(kGemvMaxTokens)) {
    const bool vector = gemv_vector_loads(x, w);
    switch (n_tokens) {
      case 1: launch_gemv_bf16<1>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      case 2: launch_gemv_bf16<2>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      case 3: launch_gemv_bf16<3>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      case 4: launch_gemv_bf16<4>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      case 5: launch_gemv_bf16<5>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      case 6: launch_gemv_bf16<6>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      case 7: launch_gemv_bf16<7>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
      default: launch_gemv_bf16<8>(vector, x.data(), ld_x, w_bits, ld_w, y.data(), ld_y, n_in, n_out); break;
    }
    static_assert(kGemvMaxTokens == 8, "update the switch above");
    return;
  }
  const dim3 grid((n_out + kTileOut - 1) / kTileOut,
                  static_cast<unsigned>((n_tokens + kTileTokens - 1) / kTileTokens));
  gemm_bf16_kernel<<<grid, kGemmThreads>>>(x.data(), ld_x, w_bits, ld_w, y.data(), ld_y,
                                           static_cast<int>(n_tokens), n_in, n_out);
  ::moe::cuda::check_launch("gemm_bf16_kernel");
}

}  // namespace cuda_detail

// y = x·Wᵀ on the GPU: x [n_tokens, in] f32, w [out, in], y [n_tokens, out] f32, all device
// pointers; innermost strides 1, outer strides free; y must not overlap x or w. Overwrites y.
// n_tokens <= 8 runs the decode GEMV (W read once for all tokens), more the tiled GEMM.
// Asynchronous on the default stream: returns after the launch; a later synchronizing call (a
// DeviceBuffer download) waits for it. Throws kInvalidArgument on mismatched shapes or strides,
// kDevice if the launch fails. Not thread-safe with respect to writers of the same y.
// Weight types: bf16 only; any other W is a compile-time error (never a host fallback).
template <class W>
void matmul(backend::cuda, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  if constexpr (std::is_same_v<W, bf16>) {
    cuda_detail::matmul_bf16(x, w, y);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::matmul is not implemented for backend::cuda with this weight type "
                  "(implemented: bf16)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
