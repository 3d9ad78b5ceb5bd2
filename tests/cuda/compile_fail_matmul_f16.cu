// Must NOT compile: backend::cuda has no f16 matmul, and the cuda tag has no host fallback.
// Run by ctest (test_cuda_missing_op_is_compile_error), which expects the static_assert text.
#include "moe/kernels/cuda/matmul.cuh"

void call_missing_op(moe::View<const float, 2> x, moe::View<const moe::f16, 2> w, moe::View<float, 2> y) {
  moe::kernels::matmul(moe::backend::cuda{}, x, w, y);
}
