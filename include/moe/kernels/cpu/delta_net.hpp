// Gated DeltaNet ops on cpu_simd: the delta rule and the conv spread across threads (the rule over
// (sequence, v-head) pairs, each with its own chunk scratch; the conv over channels). The per-head
// arithmetic is the reference's (kernels/reference/delta_net.hpp), so results match it exactly;
// the gates, the gated norm and the output gate fall back to the reference overloads.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/delta_net.hpp"

namespace moe::kernels {

template <class Arch>
void delta_net_conv(backend::cpu_simd<Arch>, const DeltaNetShape& d, const PassSlots<host_memory>& p,
                    const CacheLayer& l, View<const float, 2> x, View<const float, 2> w, View<float, 2> y) {
  detail::check_delta_conv(d, l, x, w, y);
  detail::check_token_slots(p, x.extent(0), "delta_net_conv");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    parallel_for_chunks(d.conv_dim(), 64, [&](index_t c0, index_t c1) {
      for (index_t c = c0; c < c1; ++c) detail::delta_conv_channel(d, s, l, c, r0, r1, x, w, y);
    });
  });
}

template <class Arch>
void gated_delta_rule(backend::cpu_simd<Arch>, const DeltaNetShape& d, const PassSlots<host_memory>& p,
                      const CacheLayer& l, View<const float, 2> qkv, View<const float, 2> g, View<const float, 2> beta,
                      View<float, 2> out, View<float, 1> scratch) {
  detail::check_delta_rule(d, l, qkv, g, beta, out, scratch.extent(0));
  detail::check_token_slots(p, qkv.extent(0), "gated_delta_rule");
  // Heads of one sequence in parallel (each head owns its scratch slice and its state block).
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    parallel_for_chunks(d.n_v_heads, 1, [&](index_t h0, index_t h1) {
      for (index_t h = h0; h < h1; ++h) {
        detail::delta_rule_head(d, s, l, h, r0, r1, qkv, g, beta, out, scratch.data() + h * d.chunk_scratch_per_head());
      }
    });
  });
}

}  // namespace moe::kernels
