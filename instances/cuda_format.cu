// One weight format's CUDA kernel instances (kernels/cuda/format_instances.cuh says why they are
// compiled apart), for this project's CUDA executables. instances/CMakeLists.txt makes one
// translation unit per format, each defining MOE_CUDA_FORMAT (the format's storage type), so
// that the formats compile side by side.
#include "moe/kernels/cuda/format_instances.cuh"

namespace moe::kernels {
MOE_CUDA_FORMAT_KERNELS(, MOE_CUDA_FORMAT)
}  // namespace moe::kernels
