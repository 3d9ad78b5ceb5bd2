// Attention and MLA on cpu_simd. Multi-head / grouped-query attention: one work item is a token
// and up to 8 query heads of one KV head (attention_group, below), so each key and value row is
// loaded once for the heads that share it, scores are vector dot products, the softmax weights of a
// block of keys are one vector exp, and the value sums stay in registers. Items are head-major: a
// thread's contiguous chunk holds whole heads over all tokens, so a causal prefill (token t reads
// t + 1 keys) splits evenly, and consecutive items reuse one KV head's keys. Each (token, head)
// output is computed by the same operations whatever the item holds, so a token's attention does
// not depend on the tokens or sequences beside it. MLA is the same kernel with every head reading
// the one latent cache (keys: latent and k_rope rows, values: latent rows; items of up to 8 heads
// and a token); the absorbed MLA projections run in parallel over heads, each head's product on
// the calling thread.
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

// M query heads that read the same keys and values (a KV head's group; every head of MLA's latent
// cache), of the token at position pos, keys [lo, pos]: score(h, j) is head h's scaled score of
// key j, value(j) its row of dv floats. The reference's streaming softmax (running
// max and sum, rescaled per block of kKeyBlock keys, block boundaries at lo + multiples of
// kKeyBlock) with one vector exp per block and head, and the value sums accumulated dimension
// chunk by chunk in registers.
template <int M, class Arch, class Score, class Value>
void attend_heads(const Score& score, const Value& value, index_t dv, index_t lo, index_t pos, const float* sink,
                  float* const* out) {
  using B = cpu_detail::FloatBatch<Arch>;
  constexpr index_t L = B::size;
  constexpr index_t KB = detail::kKeyBlock;
  static_assert(KB % L == 0, "a key block is whole vectors");
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
      for (int h = 0; h < M; ++h) p[h][j] = score(h, b + j);
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
        const B v = B::load_unaligned(value(b + j) + i);
        for (int h = 0; h < M; ++h) acc[h] = xsimd::fma(B(p[h][j]), v, acc[h]);
      }
      for (int h = 0; h < M; ++h) acc[h].store_unaligned(out[h] + i);
    }
    for (; i < dv; ++i) {
      for (int h = 0; h < M; ++h) {
        float acc = out[h][i];
        for (index_t j = 0; j < n; ++j) acc += p[h][j] * value(b + j)[i];
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
      const float* const* qm = qh + done;
      const auto score = [&](int h, index_t j) { return dot<Arch>(qm[h], kbase + j * ks, a.head_dim) * a.scale; };
      const auto value = [&](index_t j) { return vbase + j * vs; };
      attend_heads<M, Arch>(score, value, a.v_head_dim, lo, pos, sink ? sink + done : nullptr, oh + done);
    }
  };
  run(std::integral_constant<int, 8>{});
  run(std::integral_constant<int, 4>{});
  run(std::integral_constant<int, 2>{});
  run(std::integral_constant<int, 1>{});
}

// MLA work items of a pass of n tokens: (chunk of up to kMaxHeads heads, token), head-major. Every
// head reads the one latent cache, as MQA with keys (latent, k_rope) and values latent.
inline index_t mla_head_chunks(const MlaShape& s) noexcept { return (s.n_heads + kMaxHeads - 1) / kMaxHeads; }

// Item (chunk c, token t) of q / q_latent [n, ...]: heads [8c, 8c + 8) over `count` cache rows,
// the i-th at position key(i) of latent and k_rope (row pointers and strides). Head h's score of
// row j is (q_latent_h·latent_j + q_rope_h·k_rope_j)·scale, its output Σ_j softmax_j · latent_j
// (as detail::mla_attention_item, with vector dot products). Dense MLA lists the positions
// 0 .. start + t, sparse MLA (kernels/cpu/dsa.hpp) its selection: the same operations when the
// selection is every position.
template <class Arch, class Key>
void mla_group(const MlaShape& s, const View<const float, 2>& q, const View<const float, 2>& q_latent, const float* lat,
               index_t ls, const float* kr, index_t rs, const View<float, 2>& out_latent, index_t t, index_t c,
               index_t count, const Key& key) {
  const index_t r = s.kv_lora_rank, h0 = c * kMaxHeads;
  const int heads = static_cast<int>(std::min<index_t>(kMaxHeads, s.n_heads - h0));
  const float* ql[kMaxHeads];
  const float* qr[kMaxHeads];
  float* oh[kMaxHeads];
  for (int h = 0; h < heads; ++h) {
    ql[h] = &q_latent(t, (h0 + h) * r), qr[h] = &q(t, (h0 + h) * s.qk() + s.nope), oh[h] = &out_latent(t, (h0 + h) * r);
  }
  if (count == 0) {  // an empty selection: zeros, as the reference's empty softmax
    for (int h = 0; h < heads; ++h) std::fill_n(oh[h], r, 0.0f);
    return;
  }
  int done = 0;
  const auto run = [&](auto width) {
    constexpr int M = decltype(width)::value;
    for (; heads - done >= M; done += M) {
      const float* const* qlm = ql + done;
      const float* const* qrm = qr + done;
      const auto score = [&](int h, index_t i) {
        const index_t j = key(i);
        return (dot<Arch>(qlm[h], lat + j * ls, r) + dot<Arch>(qrm[h], kr + j * rs, s.rope)) * s.scale;
      };
      const auto value = [&](index_t i) { return lat + key(i) * ls; };
      attend_heads<M, Arch>(score, value, r, 0, count - 1, nullptr, oh + done);
    }
  };
  run(std::integral_constant<int, 8>{});
  run(std::integral_constant<int, 4>{});
  run(std::integral_constant<int, 2>{});
  run(std::integral_constant<int, 1>{});
}

// Dense MLA's item (chunk c, token t) of one sequence at start.
template <class Arch>
void mla_dense_group(const MlaShape& s, const View<const float, 2>& q, const View<const float, 2>& q_latent,
                     const View<const float, 2>& latent, const View<const float, 2>& k_rope, index_t start,
                     const View<float, 2>& out_latent, index_t t, index_t c) {
  mla_group<Arch>(s, q, q_latent, latent.data(), latent.stride(0), k_rope.data(), k_rope.stride(0), out_latent, t, c,
                  start + t + 1, [](index_t i) { return i; });
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
  const index_t n = q.extent(0);
  parallel_for_chunks(n * cpu_attention::mla_head_chunks(s), 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      cpu_attention::mla_dense_group<Arch>(s, q, q_latent, latent, k_rope, start, out_latent, item % n, item / n);
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
  parallel_for_chunks(q.extent(0) * cpu_attention::mla_head_chunks(m), 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = item % q.extent(0);
      const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
      const index_t r0 = s.row0;
      cpu_attention::mla_dense_group<Arch>(m, q.slice(r0, r0 + s.n), q_latent.slice(r0, r0 + s.n),
                                           detail::cache_keys(s, l), detail::cache_values(s, l),
                                           static_cast<index_t>(s.start), out_latent.slice(r0, r0 + s.n), t - r0,
                                           item / q.extent(0));
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
