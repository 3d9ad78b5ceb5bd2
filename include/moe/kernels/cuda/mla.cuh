// The weight-absorbed projections of multi-head latent attention on backend::cuda: queries moved
// into latent space (q_latent[t, h] = q_nope[t, h]ᵀ·W_UK[h]) and latent outputs expanded back to
// values (out[t, h] = W_UV[h]·out_latent[t, h]), per head through kv_b_proj (DeepSeek-V2 §2.1.2).
// Each is one batched launch of the matmul kernels over the heads (grid dimension = head).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/matmul.cuh"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/mla.hpp"

namespace moe::kernels {

// q [n, n_heads·(nope+rope)] -> q_latent [n, n_heads·rank]; kv_b [n_heads·(nope+v), rank] (device memory).
template <class W>
void mla_absorb_queries(backend::cuda, const MlaShape& s, DeviceView<const W, 2> kv_b, DeviceView<const float, 2> q,
                        DeviceView<float, 2> q_latent) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_mla_projection(s, kv_b.extent(0), detail::weight_cols(kv_b), q.extent(0), q.extent(1), q_latent.extent(0),
                                 q_latent.extent(1), "mla_absorb_queries", s.n_heads * s.qk(),
                                 s.n_heads * s.kv_lora_rank);
    cuda_detail::require_unit_inner_stride(kv_b, "mla_absorb_queries", "kv_b");
    cuda_detail::require_run_alignment(kv_b, "mla_absorb_queries");
    cuda_detail::require_unit_inner_stride(q, "mla_absorb_queries", "q");
    cuda_detail::require_unit_inner_stride(q_latent, "mla_absorb_queries", "q_latent");
    cuda_detail::require_int_range(q.extent(0), "mla_absorb_queries", "n_tokens");
    cuda_detail::require_int_range(s.n_heads, "mla_absorb_queries", "n_heads");
    if (s.n_heads == 0 || s.nope == 0 && s.kv_lora_rank == 0) return;
    cuda_detail::GemmArgs<W> a;
    a.x = q.data(), a.ld_x = q.stride(0), a.batch_x = s.qk();
    a.w = kv_b.data(), a.ld_w = kv_b.stride(0), a.batch_w = (s.nope + s.v) * kv_b.stride(0);  // W_UK[h] [nope, rank]
    a.y = q_latent.data(), a.ld_y = q_latent.stride(0), a.batch_y = s.kv_lora_rank;
    a.n_tokens = static_cast<int>(q.extent(0)), a.in = static_cast<int>(s.nope);
    a.out = static_cast<int>(s.kv_lora_rank), a.batch = static_cast<int>(s.n_heads);
    cuda_detail::gemm_dispatch(a, true);
  } else {
    static_assert(dependent_false<W>, "kernels::mla_absorb_queries is not implemented for backend::cuda with this "
                                      "weight type (implemented: float, bf16, f16, the block formats)");
  }
}

// out_latent [n, n_heads·rank] -> out [n, n_heads·v] (device memory).
template <class W>
void mla_expand_values(backend::cuda, const MlaShape& s, DeviceView<const W, 2> kv_b,
                       DeviceView<const float, 2> out_latent, DeviceView<float, 2> out) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_mla_projection(s, kv_b.extent(0), detail::weight_cols(kv_b), out_latent.extent(0), out_latent.extent(1),
                                 out.extent(0), out.extent(1), "mla_expand_values", s.n_heads * s.kv_lora_rank,
                                 s.n_heads * s.v);
    cuda_detail::require_unit_inner_stride(kv_b, "mla_expand_values", "kv_b");
    cuda_detail::require_run_alignment(kv_b, "mla_expand_values");
    cuda_detail::require_unit_inner_stride(out_latent, "mla_expand_values", "out_latent");
    cuda_detail::require_unit_inner_stride(out, "mla_expand_values", "out");
    cuda_detail::require_int_range(out.extent(0), "mla_expand_values", "n_tokens");
    cuda_detail::require_int_range(s.n_heads, "mla_expand_values", "n_heads");
    if (s.n_heads == 0 || s.v == 0) return;
    cuda_detail::GemmArgs<W> a;
    a.x = out_latent.data(), a.ld_x = out_latent.stride(0), a.batch_x = s.kv_lora_rank;
    a.w = kv_b.data() + s.nope * kv_b.stride(0), a.ld_w = kv_b.stride(0);  // W_UV[h] [v, rank]
    a.batch_w = (s.nope + s.v) * kv_b.stride(0);
    a.y = out.data(), a.ld_y = out.stride(0), a.batch_y = s.v;
    a.n_tokens = static_cast<int>(out.extent(0)), a.in = static_cast<int>(s.kv_lora_rank);
    a.out = static_cast<int>(s.v), a.batch = static_cast<int>(s.n_heads);
    cuda_detail::gemm_dispatch(a, false);
  } else {
    static_assert(dependent_false<W>, "kernels::mla_expand_values is not implemented for backend::cuda with this "
                                      "weight type (implemented: float, bf16, f16, the block formats)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
