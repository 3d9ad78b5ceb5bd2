// Memory spaces: where the bytes of a tensor live. A TensorView carries its space in its type
// (CuTe's memory-space tags), and only a host-memory view has element access, so a host loop over
// device memory does not compile. Backends name their space as `Backend::memory`.
#pragma once

#include <type_traits>

namespace moe {

struct host_memory {
  static constexpr const char* name = "host";
};  // plain pointers the CPU may dereference
struct device_memory {
  static constexpr const char* name = "device";
};  // CUDA device pointers: only kernels dereference them

template <class Space>
inline constexpr bool is_host_memory_v = std::is_same_v<Space, host_memory>;

template <class Space>
concept MemorySpace = std::is_same_v<Space, host_memory> || std::is_same_v<Space, device_memory>;

}  // namespace moe
