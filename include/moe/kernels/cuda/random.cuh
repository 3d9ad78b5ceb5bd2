// kernels::fill_uniform on backend::cuda: the reference's index-based SplitMix64 fill, one thread
// per element (grid-stride), so a device buffer holds exactly the values the host fill writes.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/copy.cuh"
#include "moe/kernels/cuda/device_buffer.cuh"
#include "moe/kernels/reference/quant_ops.hpp"
#include "moe/kernels/reference/random.hpp"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>
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

// Block b of dst (block_bytes each) = block pick(b) of the pool: one thread per byte.
static __global__ void tile_blocks_kernel(unsigned char* dst, std::size_t n_blocks, const unsigned char* pool,
                                   std::size_t pool_blocks, std::size_t block_bytes, std::uint64_t seed) {
  kernel_prologue();
  const std::size_t total = n_blocks * block_bytes;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t b = i / block_bytes;
    std::uint64_t z = (seed ^ 0x5851f42d4c957f2dull) + (b + 1) * 0x9e3779b97f4a7c15ull;  // SplitMix64 of b
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    dst[i] = pool[(z % pool_blocks) * block_bytes + i % block_bytes];
  }
}

}  // namespace cuda_detail

// A block format: random blocks for synthetic weights without quantizing every block on the
// host. A pool of up to 256 blocks is quantized on the host as the reference fills blocks 0..255
// (ggml's quantizers are host code), and block b of x is a copy of pool block SplitMix64(b) mod
// 256 (x itself when it holds no more than the pool). So the values are valid blocks of the
// format with the reference's distribution, not the reference's bytes past the pool.
template <class Q>
  requires is_block_format_v<Q>
void fill_uniform(backend::cuda, DeviceView<Q, 1> x, std::uint64_t seed, float scale, float offset) {
  constexpr index_t kPool = 256;
  const index_t n = x.extent(0);
  if (n == 0) return;
  require(x.stride(0) == 1, ErrorCode::kInvalidArgument, "fill_uniform(cuda): {} blocks must be contiguous",
          dtype_name(Q::dtype));
  const index_t pool_n = std::min(n, kPool);
  std::vector<Q> host(static_cast<std::size_t>(pool_n));
  fill_uniform(backend::reference{}, View<Q, 1>(host.data(), {pool_n}), seed, scale, offset);
  if (n == pool_n) {
    upload(backend::cuda{}, std::span<const Q>(host), x);
    return;
  }
  const Buffer<Q, device_memory> pool = Buffer<Q, device_memory>::from_host(std::span<const Q>(host));
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(Q);
  const unsigned blocks = static_cast<unsigned>(std::min<std::size_t>((bytes + 255) / 256, 65536));
  cuda_detail::launch(cuda_detail::tile_blocks_kernel, blocks, 256, 0, reinterpret_cast<unsigned char*>(x.data()),
                      static_cast<std::size_t>(n), reinterpret_cast<const unsigned char*>(pool.data()),
                      static_cast<std::size_t>(pool_n), sizeof(Q), seed);
  ::moe::cuda::check_launch("tile_blocks_kernel");
  MOE_CUDA_CHECK(cudaStreamSynchronize(::moe::cuda::stream()));  // the pool is freed on return
}

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
