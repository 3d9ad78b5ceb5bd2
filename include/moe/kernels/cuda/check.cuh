// Error checking for CUDA runtime calls: a failed call becomes moe::Error(ErrorCode::kDevice)
// whose message names the call and cudaGetErrorString's text. Host code only.
#pragma once

#if defined(MOE_ENABLE_CUDA)

#include "moe/core/error.hpp"

#include <cuda_runtime.h>

#include <string_view>

namespace moe::cuda {

// Throws Error(kDevice) if `status` is not cudaSuccess. `call` is the source text of the call
// (MOE_CUDA_CHECK passes it). Clears the runtime's last-error slot, so that a non-sticky error is
// reported once; a sticky error (a kernel fault) keeps failing every later call, as CUDA defines.
inline void check(cudaError_t status, std::string_view call) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  fail(ErrorCode::kDevice, "{} failed: {} ({})", call, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

// Checks that the kernel launch just made was accepted (bad configuration, no device, a sticky
// error from an earlier kernel). Launches are asynchronous: a fault inside the kernel surfaces
// at the next synchronizing call (a download, cudaDeviceSynchronize), which is checked too.
inline void check_launch(std::string_view kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) return;
  fail(ErrorCode::kDevice, "launch of {} failed: {} ({})", kernel, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

// Number of CUDA devices; 0 when there is no driver or no device (never throws). Tests use it to
// skip on machines without a GPU.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace moe::cuda

// Checks a CUDA runtime call, naming it in the error: MOE_CUDA_CHECK(cudaMemcpy(...));
#define MOE_CUDA_CHECK(call) ::moe::cuda::check((call), #call)

#endif  // MOE_ENABLE_CUDA
