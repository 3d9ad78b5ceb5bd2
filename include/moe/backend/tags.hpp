// Backend policy tags. Kernels are free function templates overloaded on these tags (xsimd's
// `requires_arch` pattern): `cpu_simd<Arch>` derives from `reference`, so an op without a
// vectorized overload falls back to the scalar one by overload resolution. `cuda` derives from
// nothing: a missing device op is a compile error, never a host loop over device memory.
#pragma once

#include <xsimd/xsimd.hpp>

namespace moe::backend {

struct host_memory {};    // plain pointers the CPU can dereference
struct device_memory {};  // CUDA device pointers

// The scalar oracle: obviously correct loops, used as the fallback and in tests.
struct reference {
  using memory = host_memory;
  static constexpr const char* name = "reference";
};

// xsimd + OpenMP kernels for the instruction set `Arch` (default: the best the compiler targets).
template <class Arch = xsimd::default_arch>
struct cpu_simd : reference {
  using arch = Arch;
  static constexpr const char* name = "cpu_simd";
};

using cpu = cpu_simd<>;

#if defined(MOE_ENABLE_CUDA)
struct cuda {
  using memory = device_memory;
  static constexpr const char* name = "cuda";
};
#endif

}  // namespace moe::backend
