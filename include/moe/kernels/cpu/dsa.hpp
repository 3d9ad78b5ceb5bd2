// DeepSeek sparse attention on cpu_simd (kernels/reference/dsa.hpp). dsa_select: the same
// per-score arithmetic as the reference, so bitwise its selection, run in parallel. dsa_select scores (row, chunk of key positions) items across the team (a decode
// row against a long context is one row of many chunks), then selects each row's top_k in
// parallel over rows, a block of rows at a time (the scores of a block stay in memory:
// kDsaRowBlock rows × their context). The sparse MLA is the cpu's dense MLA kernel
// (kernels/cpu/attention.hpp: items of a row and up to 8 heads, vector dot products) over the
// selected positions, so a selection of every position gives bitwise the dense result; its
// selection rows are checked on the calling thread first (no exception leaves a parallel region).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/attention.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/dsa.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace moe::kernels {
namespace detail {
inline constexpr index_t kDsaRowBlock = 64;   // rows whose scores are held at once
inline constexpr index_t kDsaKeyChunk = 256;  // key positions per scoring item
}  // namespace detail

template <class Arch>
void dsa_select(backend::cpu_simd<Arch>, const DsaShape& d, const PassSlots<host_memory>& p, const CacheLayer& l,
                View<const float, 2> q, View<const float, 2> w, View<std::int32_t, 2> sel) {
  detail::check_dsa_select(d, l, q, w, sel);
  detail::check_token_slots(p, q.extent(0), "dsa_select");
  const index_t n = q.extent(0);
  struct Row {
    const CacheSlot* slot;
    index_t count, total;  // causal positions of the row; keys the pass holds for its sequence
  };
  // Scratch of the calling thread, kept between calls (a decode step calls this once per layer):
  // it grows to the longest context seen and is not allocated again.
  // (References, so that the team's lambdas below use the calling thread's buffers, not their own.)
  thread_local std::vector<Row> tl_rows;
  thread_local std::vector<std::vector<float>> tl_scores;
  thread_local std::vector<std::vector<detail::DsaPair>> tl_pairs;
  thread_local std::vector<std::size_t> tl_first_item;
  std::vector<Row>& rows = tl_rows;
  std::vector<std::vector<float>>& scores = tl_scores;
  std::vector<std::vector<detail::DsaPair>>& pairs = tl_pairs;
  std::vector<std::size_t>& first_item = tl_first_item;
  const auto block = static_cast<std::size_t>(std::min(n, detail::kDsaRowBlock));
  if (rows.size() < block) {
    rows.resize(block);
    scores.resize(block);
    pairs.resize(block);
  }
  first_item.resize(block + 1);
  for (index_t b0 = 0; b0 < n; b0 += detail::kDsaRowBlock) {
    const index_t b1 = std::min(n, b0 + detail::kDsaRowBlock);
    first_item[0] = 0;
    for (index_t t = b0; t < b1; ++t) {
      const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
      Row& r = rows[t - b0];
      r.slot = &s;
      r.count = static_cast<index_t>(s.start) + (t - static_cast<index_t>(s.row0)) + 1;
      r.total = static_cast<index_t>(s.start) + static_cast<index_t>(s.n);
      scores[t - b0].resize(static_cast<std::size_t>(r.count));
      pairs[t - b0].reserve(static_cast<std::size_t>(r.total));
      first_item[t - b0 + 1] = first_item[t - b0] + (r.count + detail::kDsaKeyChunk - 1) / detail::kDsaKeyChunk;
    }
    const std::size_t n_items = first_item[b1 - b0];
    parallel_for_chunks(n_items, 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t item = begin; item < end; ++item) {
        const auto at = std::upper_bound(first_item.begin(), first_item.begin() + (b1 - b0 + 1), item);
        const auto i = static_cast<index_t>(at - first_item.begin()) - 1;
        const Row& r = rows[i];
        const View<float, 2> keys = detail::cache_index_keys(*r.slot, l);
        const index_t j0 = static_cast<index_t>(item - first_item[i]) * detail::kDsaKeyChunk;
        const index_t j1 = std::min(r.count, j0 + detail::kDsaKeyChunk);
        const index_t t = b0 + i;
        for (index_t j = j0; j < j1; ++j) scores[i][j] = detail::dsa_index_score(d, &q(t, 0), &w(t, 0), &keys(j, 0));
      }
    });
    parallel_for_chunks(static_cast<std::size_t>(b1 - b0), 1, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) {
        const Row& r = rows[i];
        detail::dsa_top_positions(pairs[i], scores[i], r.count, r.total, d.top_k, &sel(b0 + static_cast<index_t>(i), 0));
      }
    });
  }
}

template <class Arch>
void cached_sparse_mla_attention(backend::cpu_simd<Arch>, const MlaShape& m, const PassSlots<host_memory>& p,
                                 const CacheLayer& l, View<const float, 2> q, View<const float, 2> q_latent,
                                 View<const std::int32_t, 2> sel, View<float, 2> out_latent) {
  detail::check_sparse_mla(m, l, q, q_latent, sel, out_latent);
  detail::check_token_slots(p, q.extent(0), "cached_sparse_mla_attention");
  const index_t n = q.extent(0), top_k = sel.extent(1);
  for (index_t t = 0; t < n; ++t) {
    const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
    const index_t pos = static_cast<index_t>(s.start) + (t - static_cast<index_t>(s.row0));
    detail::check_selected_positions(&sel(t, 0), detail::selected_count(&sel(t, 0), top_k), pos, t);
  }
  const index_t chunks = cpu_attention::mla_head_chunks(m);
  parallel_for_chunks(static_cast<std::size_t>(n * chunks), 1, [&](std::size_t begin, std::size_t end) {
    for (std::size_t item = begin; item < end; ++item) {
      const index_t t = static_cast<index_t>(item) / chunks, c = static_cast<index_t>(item) % chunks;
      const CacheSlot& s = p.slots[static_cast<index_t>(p.token_slot[t])];
      const std::int32_t* row = &sel(t, 0);
      const View<float, 2> latent = detail::cache_keys(s, l), k_rope = detail::cache_values(s, l);
      cpu_attention::mla_group<Arch>(m, q, q_latent, latent.data(), latent.stride(0), k_rope.data(), k_rope.stride(0),
                                     out_latent, t, c, detail::selected_count(row, top_k),
                                     [row](index_t i) { return static_cast<index_t>(row[i]); });
    }
  });
}

}  // namespace moe::kernels
