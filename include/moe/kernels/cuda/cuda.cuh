// The CUDA backend: every kernel overload on backend::cuda, and the device Buffer. Include this
// one header from .cu files (compiled by nvcc with MOE_ENABLE_CUDA); elsewhere it is empty.
// Ops: matmul, matmul_in_out, rmsnorm, rope, rope_tables, softmax, silu, swiglu,
// glu_interleaved, add, add_bias, clamp, sigmoid_gate_add, route, bucket_by_expert,
// combine_experts, attention, mla_attention, append_cache, cached_attention,
// cached_mla_attention, mla_absorb_queries, mla_expand_values, embed_rows, gather_rows,
// copy_rows, to_f32, upload, download, grouped_matmul, grouped_matmul_in_out, grouped_add_bias, lora_add;
// and PassRunner<cuda> (decode steps as CUDA graphs). Every op takes DeviceViews, launches on the
// backend's stream (cuda::stream(): the calling thread's default stream) without synchronizing
// (download excepted) and allocates nothing. A weight type without a kernel is a compile-time
// error (static_assert "... not implemented for backend::cuda").
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/kernels/cuda/attention.cuh"
#include "moe/kernels/cuda/cache.cuh"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/copy.cuh"
#include "moe/kernels/cuda/delta_net.cuh"
#include "moe/kernels/cuda/dsa.cuh"
#include "moe/kernels/cuda/device_buffer.cuh"
#include "moe/kernels/cuda/elementwise.cuh"
#include "moe/kernels/cuda/format_instances.cuh"
#include "moe/kernels/cuda/graph.cuh"
#include "moe/kernels/cuda/grouped.cuh"
#include "moe/kernels/cuda/lora.cuh"
#include "moe/kernels/cuda/matmul.cuh"
#include "moe/kernels/cuda/mla.cuh"
#include "moe/kernels/cuda/moe_dispatch.cuh"
#include "moe/kernels/cuda/random.cuh"
#include "moe/kernels/cuda/rmsnorm.cuh"
#include "moe/kernels/cuda/rope.cuh"
#include "moe/kernels/cuda/router.cuh"

#endif  // MOE_ENABLE_CUDA && __CUDACC__
