// All compute kernels (namespace moe::kernels): the scalar reference backend and the xsimd +
// OpenMP cpu_simd backend, overloaded on the backend tag passed as the first argument:
//   kernels::matmul(backend::cpu{}, x, w, y);        // cpu_simd overload when one exists
//   kernels::matmul(backend::reference{}, x, w, y);  // the scalar oracle
// Ops: matmul (y = x·Wᵀ), matmul_in_out (y = x·W), matmul_heads (a matmul per head), rmsnorm, rope (RopePairing), rope_tables,
// softmax, silu, swiglu, glu_interleaved, add, add_bias, clamp, sigmoid_gate_add, top_k, route,
// bucket_by_expert, combine_experts, attention, mla_attention, mla_absorb_queries,
// mla_expand_values, dsa_select, append_index_keys, cached_sparse_mla_attention, layer_norm, lora_add, delta_net_conv, delta_net_gates, gated_delta_rule, gated_rms_norm,
// sigmoid_mul, embed_rows, gather_rows, copy_rows, to_f32, upload, download.
// The CUDA overloads (backend::cuda) live in kernels/cuda/ and are included by kernels/cuda/cuda.cuh. Weight element types are float, bf16 and f16; choose the type once per call
// site with visit_dtype, never inside a loop. Weights in ggml block formats (quant/) have their
// overloads in reference/quant_ops.hpp and cpu/quant_matmul.hpp (chosen by visit_format).
#pragma once

#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/add.hpp"
#include "moe/kernels/reference/arguments.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/copy.hpp"
#include "moe/kernels/reference/delta_net.hpp"
#include "moe/kernels/reference/dsa.hpp"
#include "moe/kernels/reference/elementwise.hpp"
#include "moe/kernels/reference/expert_budget.hpp"
#include "moe/kernels/reference/lora.hpp"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/mla.hpp"
#include "moe/kernels/reference/moe_dispatch.hpp"
#include "moe/kernels/reference/pass_runner.hpp"
#include "moe/kernels/reference/random.hpp"
#include "moe/kernels/reference/rmsnorm.hpp"
#include "moe/kernels/reference/rope.hpp"
#include "moe/kernels/reference/router.hpp"
#include "moe/kernels/reference/softmax.hpp"
#include "moe/kernels/reference/top_k.hpp"
#include "moe/kernels/reference/quant_ops.hpp"
#include "moe/kernels/reference/matmul_heads.hpp"

#include "moe/kernels/cpu/activation.hpp"
#include "moe/kernels/cpu/add.hpp"
#include "moe/kernels/cpu/attention.hpp"
#include "moe/kernels/cpu/lora.hpp"
#include "moe/kernels/cpu/delta_net.hpp"
#include "moe/kernels/cpu/dsa.hpp"
#include "moe/kernels/cpu/matmul.hpp"
#include "moe/kernels/cpu/quant_matmul.hpp"
#include "moe/kernels/cpu/random.hpp"
#include "moe/kernels/cpu/interleaved_matmul.hpp"
#include "moe/kernels/cpu/interleaved_experts.hpp"
#include "moe/kernels/cpu/matmul_heads.hpp"
#include "moe/kernels/cpu/rmsnorm.hpp"
#include "moe/kernels/cpu/rope.hpp"
#include "moe/kernels/cpu/softmax.hpp"
#include "moe/kernels/cpu/top_k.hpp"

// Fused steps composed from the ops above on host backends (after them: see fused.hpp).
#include "moe/kernels/reference/fused.hpp"

// The CUDA overloads, for translation units nvcc compiles with MOE_ENABLE_CUDA. They must be
// declared before the graph templates that call them (the calls are qualified: kernels::op).
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__) && __has_include("moe/kernels/cuda/cuda.cuh")
#include "moe/kernels/cuda/cuda.cuh"
#endif
