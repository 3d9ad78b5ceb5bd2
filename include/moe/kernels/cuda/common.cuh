// Device-side helpers shared by the CUDA kernels: weight element -> f32 conversion (exact), warp
// and block reductions, the launch-shape helpers, and the host-side argument checks every
// backend::cuda op performs before it launches anything.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/memory.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <utility>

namespace moe::kernels::cuda_detail {

inline constexpr int kWarpSize = 32;

static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2, "bf16 must be two bytes (raw bits)");
static_assert(sizeof(f16) == 2 && alignof(f16) == 2, "f16 must be two bytes (raw bits)");

// The element types backend::cuda has kernels for (every op taking a weight).
template <class W>
inline constexpr bool is_cuda_weight_v = std::is_same_v<W, float> || std::is_same_v<W, bf16> || std::is_same_v<W, f16>;

// The matrix formats: the element types and the ggml block formats (matrix products, grouped
// expert products, embedding rows; vectors stay element types: backend::cuda::vector_formats).
template <class W>
inline constexpr bool is_cuda_matrix_format_v = is_cuda_weight_v<W> || is_block_format_v<W>;

// bf16 is the top half of an f32: widening is a shift, exact for every value incl. NaN/Inf.
__device__ __forceinline__ float bf16_bits_to_float(std::uint16_t bits) {
  return __uint_as_float(static_cast<std::uint32_t>(bits) << 16);
}

// IEEE binary16 -> f32 (exact; the hardware conversion).
__device__ __forceinline__ float f16_bits_to_float(std::uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}

// Widens the raw storage bits of one weight element.
template <class W>
__device__ __forceinline__ float bits_to_float(std::uint16_t bits) {
  if constexpr (std::is_same_v<W, bf16>) {
    return bf16_bits_to_float(bits);
  } else {
    static_assert(std::is_same_v<W, f16>, "bits_to_float: W must be bf16 or f16");
    return f16_bits_to_float(bits);
  }
}

// Loads element i of a weight row through the read-only path as f32 (exact widening; a block
// format's element i of the row of blocks p, by the format's decode).
template <class W>
__device__ __forceinline__ float load_as_float(const W* p, std::size_t i) {
  if constexpr (std::is_same_v<W, float>) {
    return __ldg(p + i);
  } else if constexpr (is_block_format_v<W>) {
    return W::decode(p, i);
  } else {
    return bits_to_float<W>(__ldg(reinterpret_cast<const unsigned short*>(p) + i));
  }
}

// The same without __ldg (memory another thread of the same kernel may have written).
template <class W>
__device__ __forceinline__ float plain_load_as_float(const W* p, std::size_t i) {
  if constexpr (std::is_same_v<W, float>) {
    return p[i];
  } else {
    return bits_to_float<W>(reinterpret_cast<const unsigned short*>(p)[i]);
  }
}

// Sum over the 32 lanes of a warp (butterfly: every lane gets the total). All lanes must call it.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over a block whose size is a multiple of 32 (at most 1024 threads); every thread gets the
// total. `scratch` is 32 elements of shared memory; the function synchronizes the block (all
// threads must call it), and scratch may be reused after it returns.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int n_warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : T(0);
  v = warp_sum(v);  // every warp reduces the per-warp partials itself: no second broadcast
  __syncthreads();  // scratch may be overwritten by the caller after this
  return v;
}

// Max (fmaxf: NaN loses to any number) over a block, like block_sum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int n_warps = blockDim.x / kWarpSize;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < n_warps ? scratch[lane] : -INFINITY;
  v = warp_max(v);
  __syncthreads();
  return v;
}

// ---- programmatic dependent launch -----------------------------------------------------------
//
// Every kernel of the backend is launched with programmatic stream serialization (sm_90 and up;
// cuda_detail::launch below) and starts with kernel_prologue(): the kernel's blocks may then be
// scheduled while the kernel before it on the stream still runs, and they wait here until that
// kernel has completed and its writes are visible. A decode step is ~15 short kernels per layer,
// each ~3-20 us: without it, every boundary costs the launch latency plus the ramp of the next
// grid. The order is transitive (a kernel completes only
// after its own wait returned), so memory written any number of kernels earlier is visible too.
// Once past the wait a kernel lets the next one launch at once: that one's blocks take only the
// room this grid leaves (its own blocks are all resident by then) and wait in turn.
__device__ __forceinline__ void kernel_prologue() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// ---- host side -------------------------------------------------------------------------------

// Host-side checks shared by the ops: innermost stride 1 and sizes that the kernels' 32-bit loop
// counters and grid dimensions can hold. Throw kInvalidArgument naming the op.
template <class V>
void require_unit_inner_stride(const V& v, const char* op, const char* operand) {
  require(v.extent(V::rank - 1) <= 1 || v.stride(V::rank - 1) == 1, ErrorCode::kInvalidArgument,
          "kernels::{}(cuda): innermost stride of {} is {}, must be 1", op, operand, v.stride(V::rank - 1));
}

inline void require_int_range(index_t value, const char* op, const char* what) {
  require(value <= static_cast<index_t>(std::numeric_limits<int>::max()), ErrorCode::kInvalidArgument,
          "kernels::{}(cuda): {} = {} exceeds the supported {}", op, what, value, std::numeric_limits<int>::max());
}

template <class T>
bool is_aligned(const T* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// Blocks for a 1-D grid-stride loop over `n` items with `threads` per block (capped: the loop
// covers the rest).
inline unsigned grid_for(index_t n, int threads, index_t max_blocks = 65535 * 8) {
  const index_t blocks = (n + static_cast<index_t>(threads) - 1) / static_cast<index_t>(threads);
  return static_cast<unsigned>(std::clamp<index_t>(blocks, 1, max_blocks));
}

// The compute capability major of the current device (read once per process).
inline int device_major() {
  static const int major = [] {
    int device = 0, value = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&value, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return value;
  }();
  return major;
}

// Number of SMs of the current device (read once per process).
inline int device_sm_count() {
  static const int count = [] {
    int device = 0, value = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
      (void)cudaGetLastError();
      return 1;
    }
    return std::max(value, 1);
  }();
  return count;
}

// How many blocks of kKernel (block_threads threads, no dynamic shared memory) the whole device
// holds at once (at least 1), computed once per kernel: the kernel is a template argument, so each
// kernel has its own cache (kernels of one signature differ in registers, hence in occupancy).
// The decode GEMVs size their grids to it and loop over their rows: a grid just past one resident
// wave would run a second, mostly empty one (the q/k/v fan-out's 640 blocks on 132 SMs of 4 or 5
// blocks each: 20% of its time).
template <auto kKernel>
int resident_blocks(int block_threads) {
  static const int count = [block_threads] {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kKernel, block_threads, 0) != cudaSuccess) {
      (void)cudaGetLastError();
      per_sm = 1;
    }
    return std::max(per_sm, 1) * device_sm_count();
  }();
  return count;
}

// Whether launches use programmatic dependent launch: on devices of compute capability 9.0 and up,
// unless MOE_CUDA_PDL=0 (for A/B measurements). Read once per process.
inline bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("MOE_CUDA_PDL");
    return device_major() >= 9 && !(v != nullptr && v[0] == '0');
  }();
  return on;
}

// kernel<<<grid, block, shared_bytes, ::moe::cuda::stream()>>>(args...), with programmatic
// stream serialization where pdl_enabled() (the kernel must begin with kernel_prologue(): every
// kernel of the backend does). Errors surface through ::moe::cuda::check_launch, as for <<<>>>.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t shared_bytes, Args&&... args) {
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid, config.blockDim = block, config.dynamicSmemBytes = shared_bytes;
  config.stream = ::moe::cuda::stream();
  config.attrs = attribute, config.numAttrs = pdl_enabled() ? 1 : 0;
  (void)cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

// Raises a kernel's dynamic shared memory limit when `bytes` exceeds the default 48 KiB (a host
// call; no synchronization). kInvalidArgument if the device cannot give that much.
template <class Kernel>
void allow_dynamic_shared(Kernel kernel, std::size_t bytes, const char* op) {
  if (bytes <= 48 * 1024) return;
  int device = 0, optin = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&device));
  MOE_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  require(bytes <= static_cast<std::size_t>(optin), ErrorCode::kInvalidArgument,
          "kernels::{}(cuda): needs {} bytes of shared memory per block, the device has {}", op, bytes, optin);
  MOE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace moe::kernels::cuda_detail

#endif  // MOE_ENABLE_CUDA && __CUDACC__
