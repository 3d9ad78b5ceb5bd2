// Attention and MLA on cpu_simd: the reference's per-(token, head) work (kernels/reference/
// attention.hpp), run in parallel over (head, token) items; the absorbed MLA projections in
// parallel over heads, each head's product on the calling thread. Items are head-major: a thread's
// contiguous chunk holds whole heads over all tokens, so a causal prefill (token t reads t + 1
// keys) splits evenly (token-major chunks gave the last thread the longest rows: 3x the first's
// work on 2 threads at pp128), and consecutive items reuse one KV head's keys.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/matmul.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/mla.hpp"

namespace moe::kernels {

template <class Arch>
void attention(backend::cpu_simd<Arch>, const AttentionShape& a, View<const float, 2> q, View<const float, 2> keys,
               View<const float, 2> values, index_t start, View<const float, 1> sinks, View<float, 2> out) {
  detail::check_attention(a, q, keys, values, start, sinks, out);
  parallel_for_chunks(q.extent(0) * a.n_heads, 4, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      detail::attention_item(a, q, keys, values, start, sinks, out, item % q.extent(0), item / q.extent(0));
    }
  });
}

template <class Arch>
void mla_attention(backend::cpu_simd<Arch>, const MlaShape& s, View<const float, 2> q, View<const float, 2> q_latent,
                   View<const float, 2> latent, View<const float, 2> k_rope, index_t start,
                   View<float, 2> out_latent) {
  detail::check_mla_attention(s, q, q_latent, latent, k_rope, start, out_latent);
  parallel_for_chunks(q.extent(0) * s.n_heads, 2, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      detail::mla_attention_item(s, q, q_latent, latent, k_rope, start, out_latent, item % q.extent(0),
                                 item / q.extent(0));
    }
  });
}

// The pass-wide forms: one parallel region over every (row, head) of every sequence (a batch of
// decoding sequences shares the region instead of opening one per sequence).
template <class Arch>
void cached_attention(backend::cpu_simd<Arch>, const AttentionShape& a, const PassSlots<host_memory>& p,
                      const CacheLayer& l, View<const float, 2> q, View<const float, 1> sinks, View<float, 2> out) {
  detail::check_token_slots(p, q.extent(0), "cached_attention");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    detail::check_attention(a, View<const float, 2>(q.slice(r0, r1)),
                            View<const float, 2>(detail::cache_keys(s, l)),
                            View<const float, 2>(detail::cache_values(s, l)), static_cast<index_t>(s.start), sinks,
                            out.slice(r0, r1));
  });
  parallel_for_chunks(q.extent(0) * a.n_heads, 4, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = item % q.extent(0);
      const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
      const index_t r0 = s.row0;
      detail::attention_item(a, q.slice(r0, r0 + s.n), detail::cache_keys(s, l), detail::cache_values(s, l),
                             static_cast<index_t>(s.start), sinks, out.slice(r0, r0 + s.n), t - r0,
                             item / q.extent(0));
    }
  });
}

template <class Arch>
void cached_mla_attention(backend::cpu_simd<Arch>, const MlaShape& m, const PassSlots<host_memory>& p,
                          const CacheLayer& l, View<const float, 2> q, View<const float, 2> q_latent,
                          View<float, 2> out_latent) {
  detail::check_token_slots(p, q.extent(0), "cached_mla_attention");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    detail::check_mla_attention(m, View<const float, 2>(q.slice(r0, r1)), View<const float, 2>(q_latent.slice(r0, r1)),
                                View<const float, 2>(detail::cache_keys(s, l)),
                                View<const float, 2>(detail::cache_values(s, l)), static_cast<index_t>(s.start),
                                out_latent.slice(r0, r1));
  });
  parallel_for_chunks(q.extent(0) * m.n_heads, 2, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = item % q.extent(0);
      const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
      const index_t r0 = s.row0;
      detail::mla_attention_item(m, q.slice(r0, r0 + s.n), q_latent.slice(r0, r0 + s.n), detail::cache_keys(s, l),
                                 detail::cache_values(s, l), static_cast<index_t>(s.start),
                                 out_latent.slice(r0, r0 + s.n), t - r0, item / q.extent(0));
    }
  });
}

// One parallel region over heads (the per-head products are small; a region per head costs more
// in synchronisation than it saves). The matmuls inside run on the calling thread.
template <class W, class Arch>
void mla_absorb_queries(backend::cpu_simd<Arch> be, const MlaShape& s, View<const W, 2> kv_b, View<const float, 2> q,
                        View<float, 2> q_latent) {
  detail::check_mla_projection(s, kv_b.extent(0), kv_b.extent(1), q.extent(0), q.extent(1), q_latent.extent(0),
                               q_latent.extent(1), "mla_absorb_queries", s.n_heads * s.qk(),
                               s.n_heads * s.kv_lora_rank);
  parallel_for_chunks(s.n_heads, 1, [&](std::size_t begin, std::size_t end) {
    for (index_t h = begin; h < end; ++h) {
      matmul_in_out(be, detail::head_columns(q, h * s.qk(), s.nope), detail::mla_key_up(s, kv_b, h),
                    detail::head_columns(q_latent, h * s.kv_lora_rank, s.kv_lora_rank));
    }
  });
}

template <class W, class Arch>
void mla_expand_values(backend::cpu_simd<Arch> be, const MlaShape& s, View<const W, 2> kv_b,
                       View<const float, 2> out_latent, View<float, 2> out) {
  detail::check_mla_projection(s, kv_b.extent(0), kv_b.extent(1), out_latent.extent(0), out_latent.extent(1),
                               out.extent(0), out.extent(1), "mla_expand_values", s.n_heads * s.kv_lora_rank,
                               s.n_heads * s.v);
  parallel_for_chunks(s.n_heads, 1, [&](std::size_t begin, std::size_t end) {
    for (index_t h = begin; h < end; ++h) {
      matmul(be, detail::head_columns(out_latent, h * s.kv_lora_rank, s.kv_lora_rank),
             detail::mla_value_up(s, kv_b, h), detail::head_columns(out, h * s.v, s.v));
    }
  });
}

}  // namespace moe::kernels
