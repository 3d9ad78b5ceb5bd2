// Attention and MLA on cpu_simd. Multi-head / grouped-query attention: one work item is a token
// and up to 8 query heads of one KV head (attention_group, below), so each key and value row is
// loaded once for the heads that share it, scores are vector dot products, the softmax weights of a
// block of keys are one vector exp, and the value sums stay in registers. Items are head-major: a
// thread's contiguous chunk holds whole heads over all tokens, so a causal prefill (token t reads
// t + 1 keys) splits evenly, and consecutive items reuse one KV head's keys. Each (token, head)
// output is computed by the same operations whatever the item holds, so a token's attention does
// not depend on the tokens or sequences beside it. MLA runs the reference's per-(token, head)
// work in parallel over (head, token) items; the absorbed MLA projections in parallel over heads,
// each head's product on the calling thread.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/matmul.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/mla.hpp"

#include <xsimd/xsimd.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace moe::kernels {

namespace cpu_attention {

inline constexpr int kMaxHeads = 8;  // query heads per work item (accumulators in registers)

// Σ_i a[i]·b[i] for n floats: vector FMAs, one horizontal sum, a scalar tail.
template <class Arch>
inline float dot(const float* a, const float* b, index_t n) noexcept {
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  B acc0(0.0f), acc1(0.0f);
  index_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
    acc1 = xsimd::fma(B::load_unaligned(a + i + L), B::load_unaligned(b + i + L), acc1);
  }
  for (; i + L <= n; i += L) acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
  float s = xsimd::hadd(acc0 + acc1);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Query heads h0 .. h0+M-1 (all reading KV head kvh) of token t at position pos, keys [lo, pos]:
// the reference's streaming softmax (running max and sum, rescaled per block of kKeyBlock keys,
// block boundaries at lo + multiples of kKeyBlock) with vector dot products, one vector exp per
// block and head, and the value sums accumulated dimension chunk by chunk in registers.
template <int M, class Arch>
void attend_heads(const AttentionShape& a, const float* const* qh, const float* kbase, index_t ks, const float* vbase,
                  index_t vs, index_t lo, index_t pos, const float* sink, float* const* out) {
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  constexpr index_t KB = detail::kKeyBlock;
  static_assert(KB % L == 0, "a key block is whole vectors");
  const index_t dv = a.v_head_dim;
  float m[M], l[M];
  alignas(64) float p[M][KB];
  for (int h = 0; h < M; ++h) {
    m[h] = sink != nullptr ? sink[h] : -std::numeric_limits<float>::infinity();
    l[h] = sink != nullptr ? 1.0f : 0.0f;
    std::fill_n(out[h], dv, 0.0f);
  }
  for (index_t b = lo; b <= pos; b += KB) {
    const index_t n = std::min(pos + 1 - b, KB);
    for (index_t j = 0; j < n; ++j) {
      const float* k = kbase + (b + j) * ks;
      for (int h = 0; h < M; ++h) p[h][j] = dot<Arch>(qh[h], k, a.head_dim) * a.scale;
    }
    for (int h = 0; h < M; ++h) {
      float bm = -std::numeric_limits<float>::infinity();
      for (index_t j = 0; j < n; ++j) bm = std::max(bm, p[h][j]);
      if (bm > m[h]) {
        const float rescale = std::exp(m[h] - bm);
        l[h] *= rescale;
        for (index_t i = 0; i < dv; ++i) out[h][i] *= rescale;
        m[h] = bm;
      }
      // exp(s - m) for the block (lanes past n are -inf scores: weight 0), and their sum
      for (index_t j = n; j < (n + L - 1) / L * L; ++j) p[h][j] = -std::numeric_limits<float>::infinity();
      B sum(0.0f);
      const B mv(m[h]);
      for (index_t j = 0; j < n; j += L) {
        const B e = xsimd::exp(B::load_aligned(&p[h][j]) - mv);
        e.store_aligned(&p[h][j]);
        sum += e;
      }
      l[h] += xsimd::hadd(sum);
    }
    // out[h] += Σ_j p[h][j] · v_j, one vector of dimensions at a time for all M heads
    index_t i = 0;
    for (; i + L <= dv; i += L) {
      B acc[M];
      for (int h = 0; h < M; ++h) acc[h] = B::load_unaligned(out[h] + i);
      for (index_t j = 0; j < n; ++j) {
        const B v = B::load_unaligned(vbase + (b + j) * vs + i);
        for (int h = 0; h < M; ++h) acc[h] = xsimd::fma(B(p[h][j]), v, acc[h]);
      }
      for (int h = 0; h < M; ++h) acc[h].store_unaligned(out[h] + i);
    }
    for (; i < dv; ++i) {
      for (int h = 0; h < M; ++h) {
        float acc = out[h][i];
        for (index_t j = 0; j < n; ++j) acc += p[h][j] * vbase[(b + j) * vs + i];
        out[h][i] = acc;
      }
    }
  }
  for (int h = 0; h < M; ++h) {
    const float inv = l[h] > 0 ? 1.0f / l[h] : 0.0f;
    for (index_t i = 0; i < dv; ++i) out[h][i] *= inv;
  }
}

// Work items of a pass of n tokens: (KV head, chunk of up to kMaxHeads of its query heads, token),
// head-major.
inline index_t head_chunks(const AttentionShape& a) noexcept {
  const index_t group = a.n_heads / a.n_kv_heads;
  return a.n_kv_heads * ((group + kMaxHeads - 1) / kMaxHeads);
}

// Item (chunk c, token t) of one sequence's q [n, ...] at start: heads
// [kvh·group + 8·c', ...) for c = kvh·chunks_per_kv + c'.
template <class Arch>
void attention_group(const AttentionShape& a, const View<const float, 2>& q, const View<const float, 2>& keys,
                     const View<const float, 2>& values, index_t start, const View<const float, 1>& sinks,
                     const View<float, 2>& out, index_t t, index_t c) {
  const index_t group = a.n_heads / a.n_kv_heads;
  const index_t per_kv = (group + kMaxHeads - 1) / kMaxHeads;
  const index_t kvh = c / per_kv, h0 = kvh * group + (c % per_kv) * kMaxHeads;
  const int count = static_cast<int>(std::min<index_t>(kMaxHeads, kvh * group + group - h0));
  const index_t pos = start + t;
  const index_t lo = first_visible_key(a.sliding_window, a.chunk, pos);
  const float* qh[kMaxHeads];
  float* oh[kMaxHeads];
  for (int h = 0; h < count; ++h) qh[h] = &q(t, (h0 + h) * a.head_dim), oh[h] = &out(t, (h0 + h) * a.v_head_dim);
  const float* kbase = keys.data() + kvh * a.head_dim;
  const float* vbase = values.data() + kvh * a.v_head_dim;
  const float* sink = sinks.extent(0) != 0 ? sinks.data() + h0 : nullptr;
  const index_t ks = keys.stride(0), vs = values.stride(0);
  // M in {8, 4, 2, 1}: the chunk's heads in as few calls as possible
  int done = 0;
  const auto run = [&](auto width) {
    constexpr int M = decltype(width)::value;
    for (; count - done >= M; done += M) {
      attend_heads<M, Arch>(a, qh + done, kbase, ks, vbase, vs, lo, pos, sink ? sink + done : nullptr, oh + done);
    }
  };
  run(std::integral_constant<int, 8>{});
  run(std::integral_constant<int, 4>{});
  run(std::integral_constant<int, 2>{});
  run(std::integral_constant<int, 1>{});
}

}  // namespace cpu_attention

template <class Arch>
void attention(backend::cpu_simd<Arch>, const AttentionShape& a, View<const float, 2> q, View<const float, 2> keys,
               View<const float, 2> values, index_t start, View<const float, 1> sinks, View<float, 2> out) {
  detail::check_attention(a, q, keys, values, start, sinks, out);
  const index_t n = q.extent(0);
  parallel_for_chunks(n * cpu_attention::head_chunks(a), 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      cpu_attention::attention_group<Arch>(a, q, keys, values, start, sinks, out, item % n, item / n);
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
  parallel_for_chunks(q.extent(0) * cpu_attention::head_chunks(a), 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = item % q.extent(0);
      const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
      const index_t r0 = s.row0;
      cpu_attention::attention_group<Arch>(a, q.slice(r0, r0 + s.n), detail::cache_keys(s, l),
                                           detail::cache_values(s, l), static_cast<index_t>(s.start), sinks,
                                           out.slice(r0, r0 + s.n), t - r0, item / q.extent(0));
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
