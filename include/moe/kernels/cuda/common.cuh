// Device-side helpers shared by the CUDA kernels: weight element -> f32 conversion (exact),
// warp and block sums, and the host-side argument checks every backend::cuda op performs.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <cuda_runtime.h>

#include <cstdint>
#include <limits>

namespace moe::kernels::cuda_detail {

inline constexpr int kWarpSize = 32;

static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2, "bf16 must be two bytes (raw bits)");

// bf16 is the top half of an f32: widening is a shift, exact for every value incl. NaN/Inf.
__device__ __forceinline__ float bf16_bits_to_float(std::uint16_t bits) {
  return __uint_as_float(static_cast<std::uint32_t>(bits) << 16);
}

// Loads element i of a weight vector as f32 (exact widening for every supported dtype).
template <class W>
__device__ __forceinline__ float load_as_float(const W* p, std::size_t i) {
  if constexpr (std::is_same_v<W, float>) {
    return __ldg(p + i);
  } else {
    static_assert(std::is_same_v<W, bf16>, "load_as_float: W must be float or bf16");
    return bf16_bits_to_float(__ldg(reinterpret_cast<const unsigned short*>(p) + i));
  }
}

// Sum over the 32 lanes of a warp (butterfly: every lane gets the total). All lanes must call it.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over a block whose size is a multiple of 32 (at most 1024 threads); every thread gets the
// total. `scratch` is 32 floats of shared memory; the function synchronizes the block (all
// threads must call it), and scratch may be reused after it returns.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int n_warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : 0.0f;
  v = warp_sum(v);  // every warp reduces the per-warp partials itself: no second broadcast
  __syncthreads();  // scratch may be overwritten by the caller after this
  return v;
}

// Host-side checks shared by the ops: innermost stride 1 and sizes that the kernels' 32-bit
// loop counters and grid dimensions can hold. Throws kInvalidArgument naming the op.
template <class V>
void require_unit_inner_stride(const V& v, const char* op, const char* operand) {
  require(v.empty() || v.stride(V::rank - 1) == 1, ErrorCode::kInvalidArgument,
          "kernels::{}(cuda): innermost stride of {} is {}, must be 1", op, operand,
          v.stride(V::rank - 1));
}

inline void require_int_range(index_t value, const char* op, const char* what) {
  require(value <= static_cast<index_t>(std::numeric_limits<int>::max()), ErrorCode::kInvalidArgument,
          "kernels::{}(cuda): {} = {} exceeds the supported {}", op, what, value,
          std::numeric_limits<int>::max());
}

template <class T>
bool is_aligned(const T* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

}  // namespace moe::kernels::cuda_detail

#endif  // MOE_ENABLE_CUDA && __CUDACC__
