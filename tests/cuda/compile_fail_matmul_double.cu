// Must NOT compile: backend::cuda has no matmul for double weights, and the cuda tag has no host
// fallback. Run by ctest (test_cuda_missing_op_is_compile_error), which expects the static_assert
// text "not implemented for backend::cuda".
#include "moe/kernels/cuda/cuda.cuh"

void call_missing_op(moe::DeviceView<const float, 2> x, moe::DeviceView<const double, 2> w,
                     moe::DeviceView<float, 2> y) {
  moe::kernels::matmul(moe::backend::cuda{}, x, w, y);
}
