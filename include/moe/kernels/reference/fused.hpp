// Fused ops: steps of the forward pass that a device backend runs as one kernel (a launch per
// step is what bounds a decode step there), and that host backends run as the composition of
// the ops they are made of. The compositions here are templates over every host backend, defined
// after the cpu kernels (kernels.hpp includes this last of the host headers), so that each step
// resolves to the backend's own op (cpu_simd's vectorised add, not the reference's).
//
//   add_rmsnorm(be, hidden, delta, weight, eps, y): hidden += delta; y = rmsnorm(hidden) · weight
//     (the residual add that ends a sub-layer and the norm that starts the next).
//   matmul_fanout(be, x, {W_0, ..}, {y_0, ..}): y_i = x·W_iᵀ for weights sharing x (q, k and v).
//   qk_norm_rope(be, q, k, q_norm, k_norm, eps, cos, sin, pairing): q [n, H, hd] and k [n, KV, hd]
//     (contiguous heads), each head RMSNorm-ed with its [hd] weight when the norms are given
//     (extent 0: no norm), then rotated, in place (an attention layer's per-head QK-norm and rope).
//   qk_norm_rope_append(be, q, k, v, q_norm, k_norm, eps, cos, sin, pairing, pass, layer): the
//     same, then k's rows [n, KV·hd] and v appended to the pass's caches (append_cache).
//   route_and_bucket(be, config, logits, correction, scratch, ids, weights, offsets, slot_token,
//     slot_weight, usage, weight_sum): route, then bucket_by_expert of its ids and weights.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <span>
#include "moe/kernels/reference/add.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/moe_dispatch.hpp"
#include "moe/kernels/reference/rmsnorm.hpp"
#include "moe/kernels/reference/rope.hpp"
#include "moe/kernels/reference/router.hpp"

namespace moe::kernels {

template <class B, class W>
  requires backend::is_host_backend_v<B>
void add_rmsnorm(B be, View<float, 2> hidden, View<const float, 2> delta, View<const W, 1> weight, float eps,
                 View<float, 2> y) {
  add(be, hidden, delta);
  rmsnorm(be, View<const float, 2>(hidden), weight, eps, y);
}

template <class B, class W>
  requires backend::is_host_backend_v<B>
void matmul_fanout(B be, View<const float, 2> x, std::span<const View<const W, 2>> w, std::span<const View<float, 2>> y) {
  require(w.size() == y.size(), ErrorCode::kInvalidArgument, "matmul_fanout: {} weights, {} outputs", w.size(),
          y.size());
  for (std::size_t i = 0; i < w.size(); ++i) matmul(be, x, w[i], y[i]);
}

template <class B, class W>
  requires backend::is_host_backend_v<B>
void qk_norm_rope(B be, View<float, 3> q, View<float, 3> k, View<const W, 1> q_norm, View<const W, 1> k_norm, float eps,
                  View<const float, 2> cos, View<const float, 2> sin, RopePairing pairing) {
  detail::check_qk_norms(q, k, q_norm, k_norm);
  if (q_norm.extent(0) != 0) {
    const View<float, 2> qh = detail::heads_as_rows(q, "qk_norm_rope"), kh = detail::heads_as_rows(k, "qk_norm_rope");
    rmsnorm(be, View<const float, 2>(qh), q_norm, eps, qh);
    rmsnorm(be, View<const float, 2>(kh), k_norm, eps, kh);
  }
  rope(be, q, cos, sin, pairing);
  rope(be, k, cos, sin, pairing);
}

template <class B, class W>
  requires backend::is_host_backend_v<B>
void qk_norm_rope_append(B be, View<float, 3> q, View<float, 3> k, View<const float, 2> v, View<const W, 1> q_norm,
                         View<const W, 1> k_norm, float eps, View<const float, 2> cos, View<const float, 2> sin,
                         RopePairing pairing, const PassSlots<host_memory>& pass, const CacheLayer& layer) {
  qk_norm_rope(be, q, k, q_norm, k_norm, eps, cos, sin, pairing);
  (void)detail::heads_as_rows(k, "qk_norm_rope_append");  // contiguous heads: k's rows are [n, KV·hd]
  append_cache(be, pass, layer, View<const float, 2>(k.data(), {k.extent(0), k.extent(1) * k.extent(2)}), v);
}

template <class B>
  requires backend::is_host_backend_v<B>
void route_and_bucket(B be, const RouterConfig& c, View<const float, 2> logits, View<const float, 1> correction,
                      View<float, 1> scratch, View<std::int32_t, 2> ids, View<float, 2> weights,
                      View<std::int32_t, 1> offsets, View<std::int32_t, 1> slot_token, View<float, 1> slot_weight,
                      View<std::uint64_t, 1> usage, View<double, 1> weight_sum = {}) {
  route(be, c, logits, correction, scratch, ids, weights);
  bucket_by_expert(be, View<const std::int32_t, 2>(ids), View<const float, 2>(weights), offsets, slot_token,
                   slot_weight, usage, weight_sum);
}

}  // namespace moe::kernels
