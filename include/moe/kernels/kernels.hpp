// All compute kernels (namespace moe::kernels): the scalar reference backend and the xsimd +
// OpenMP cpu_simd backend, overloaded on the backend tag passed as the first argument:
//   kernels::matmul(backend::cpu{}, x, w, y);        // cpu_simd overload when one exists
//   kernels::matmul(backend::reference{}, x, w, y);  // the scalar oracle
// Ops: matmul (y = x·Wᵀ), matmul_in_out (y = x·W), rmsnorm, rope (RopePairing), softmax, silu,
// swiglu, add, top_k. Weight element types are float, bf16 and f16; choose the type once per call
// site with visit_dtype, never inside a loop.
#pragma once

#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/add.hpp"
#include "moe/kernels/reference/arguments.hpp"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/rmsnorm.hpp"
#include "moe/kernels/reference/rope.hpp"
#include "moe/kernels/reference/softmax.hpp"
#include "moe/kernels/reference/top_k.hpp"

#include "moe/kernels/cpu/activation.hpp"
#include "moe/kernels/cpu/add.hpp"
#include "moe/kernels/cpu/matmul.hpp"
#include "moe/kernels/cpu/rmsnorm.hpp"
#include "moe/kernels/cpu/rope.hpp"
#include "moe/kernels/cpu/softmax.hpp"
#include "moe/kernels/cpu/top_k.hpp"
