// kernels::fill_uniform on backend::cuda: the reference's index-based SplitMix64 fill, one thread
// per element (grid-stride), so a device buffer holds exactly the values the host fill writes.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/reference/random.hpp"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include <cstdint>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

__device__ __forceinline__ float uniform_pm1_device(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 40) * (1.0 / 8388608.0) - 1.0);
}

template <class T>
__global__ void fill_uniform_kernel(T* x, std::size_t n, std::uint64_t seed, float scale, float offset) {
  kernel_prologue();
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float v = offset + scale * uniform_pm1_device(seed, i);
    if constexpr (std::is_same_v<T, float>) {
      x[i] = v;
    } else if constexpr (std::is_same_v<T, bf16>) {
      // Round to nearest even (to_bf16's rule; random values are finite).
      const std::uint32_t u = __float_as_uint(v);
      reinterpret_cast<std::uint16_t*>(x)[i] = static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    } else {
      reinterpret_cast<std::uint16_t*>(x)[i] = __half_as_ushort(__float2half_rn(v));
    }
  }
}

}  // namespace cuda_detail

template <class T>
void fill_uniform(backend::cuda, DeviceView<T, 1> x, std::uint64_t seed, float scale, float offset) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>,
                "kernels::fill_uniform is not implemented for backend::cuda with this type");
  const std::size_t n = x.extent(0);
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65536));
  cuda_detail::launch(cuda_detail::fill_uniform_kernel<T>, blocks, 256, 0, x.data(), n, seed, scale, offset);
  ::moe::cuda::check_launch("fill_uniform_kernel");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
