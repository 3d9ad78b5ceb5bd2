// Backend policy tags. Kernels are free function templates overloaded on these tags (xsimd's
// `requires_arch` pattern): `cpu_simd<Arch>` derives from `reference`, so an op without a
// vectorized overload falls back to the scalar one by overload resolution. `cuda` derives from
// nothing: a missing device op is a compile error, never a host loop over device memory.
// Each tag names its memory space (`memory`: where its buffers live and what views it takes)
// and the weight formats it has kernels for (`formats` for matrices, `vector_formats` for
// vectors: visit_format / visit_vector_format).
#pragma once

#include "moe/core/format.hpp"
#include "moe/core/memory.hpp"

#include <xsimd/xsimd.hpp>

namespace moe::backend {

using moe::device_memory;
using moe::host_memory;

// The scalar oracle: obviously correct loops, used as the fallback and in tests. It (and so
// cpu_simd) has kernels for every format of all_formats, the ggml block formats included.
struct reference {
  using memory = host_memory;
  using formats = all_formats;         // matrices
  using vector_formats = all_formats;  // norms, biases
  static constexpr const char* name = "reference";
};

// xsimd + OpenMP kernels for the instruction set `Arch` (default: the best the compiler targets).
template <class Arch = xsimd::default_arch>
struct cpu_simd : reference {
  using arch = Arch;
  static constexpr const char* name = "cpu_simd";
};

using cpu = cpu_simd<>;

template <class B>
inline constexpr bool is_cpu_simd_v = false;
template <class Arch>
inline constexpr bool is_cpu_simd_v<cpu_simd<Arch>> = true;

#if defined(MOE_ENABLE_CUDA)
struct cuda {
  using memory = device_memory;
  // Matrices in every format (the block formats decoded in registers: kernels/cuda/
  // block_format.cuh); vectors in the element types only, so a block-format norm or bias is a
  // kUnsupported error at load naming the tensor.
  using formats = all_formats;
  using vector_formats = type_list<float, bf16, f16>;
  static constexpr const char* name = "cuda";
};
#endif

template <class B>
inline constexpr bool is_host_backend_v = is_host_memory_v<typename B::memory>;

}  // namespace moe::backend

// This project's own executables in a CUDA build link the graph for backend::cuda from
// instances/ as they do the host backends' (MOE_EXTERN_GRAPH, model/transformer.hpp): their nvcc
// translation units declare it extern.
#if defined(MOE_EXTERN_GRAPH) && defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
#define MOE_EXTERN_GRAPH_CUDA 1
#endif
