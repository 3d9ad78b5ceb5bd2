// The Gated DeltaNet layer (linear attention of Qwen3-Next / Qwen3.5): projections to q|k|v, z, b
// and a; the short causal depthwise conv (with each sequence's conv state) and SiLU; L2-normalised
// q and k; the gates β = σ(b) and g = −exp(A_log)·softplus(a + dt_bias); the gated delta rule over
// each sequence's recurrent state (chunked for prefill, recurrent for one token); the gated RMSNorm
// of every head with silu(z); the output projection. The states live in each sequence's cache
// (layers/kv_cache.hpp, state_width floats per layer). Every step is a kernel on the backend.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/linear.hpp"

namespace moe::layers {

using kernels::DeltaNetShape;

template <class S = host_memory>
struct GatedDeltaNetWeights {
  // Projections in one channel order for every family (Qwen3-Next's grouped in_proj_qkvz / ba are
  // regrouped at load): qkv [2·key_dim + value_dim, d] (all q heads, all k heads, all v heads),
  // z [value_dim, d], b and a [n_v_heads, d], out [d, value_dim].
  WeightMatrix<S> qkv, z, b, a, out;
  WeightMatrix<S> conv;       // [conv_dim, conv_kernel] f32
  WeightVector<S> a_log;      // [n_v_heads] f32
  WeightVector<S> dt_bias;    // [n_v_heads] f32
  WeightVector<S> norm;       // [v_head_dim] f32 (the gated RMSNorm's plain weight)

  template <class F>
  auto transform(F&& f) const {
    GatedDeltaNetWeights<typename decltype(f("", qkv))::memory> r;
    r.qkv = f("linear_attn.in_proj_qkv.weight", qkv), r.z = f("linear_attn.in_proj_z.weight", z);
    r.b = f("linear_attn.in_proj_b.weight", b), r.a = f("linear_attn.in_proj_a.weight", a);
    r.out = f("linear_attn.out_proj.weight", out), r.conv = f("linear_attn.conv1d.weight", conv);
    r.a_log = f("linear_attn.A_log", a_log), r.dt_bias = f("linear_attn.dt_bias", dt_bias);
    r.norm = f("linear_attn.norm.weight", norm);
    return r;
  }
};

// The scratch the layer writes (views into the Workspace, first n rows).
template <class B>
struct GatedDeltaNetScratch {
  ViewOf<B, float, 2> mixed, qkv;  // [n, conv_dim]: projected, then convolved / normalised
  ViewOf<B, float, 2> z, o;        // [n, value_dim]
  ViewOf<B, float, 2> beta, g;     // [n, n_v_heads]
  ViewOf<B, float, 1> chunk;       // [shape.chunk_scratch()]
};

// out = GatedDeltaNet(x) for the rows of every sequence of the pass, advancing each sequence's
// states of this layer. x [n, d_model], out [n, d_model].
template <class B>
void gated_delta_net_forward(B be, const DeltaNetShape& d, float norm_eps,
                             const GatedDeltaNetWeights<typename B::memory>& w,
                             const kernels::PassSlots<typename B::memory>& pass, const kernels::CacheLayer& layer,
                             ViewOf<B, const float, 2> x, const GatedDeltaNetScratch<B>& s, ViewOf<B, float, 2> out) {
  using CV = ViewOf<B, const float, 2>;
  using C1 = ViewOf<B, const float, 1>;
  linear_fanout<B, 4>(be, x, {&w.qkv, &w.z, &w.b, &w.a}, {s.mixed, s.z, s.beta, s.g});
  kernels::delta_net_conv(be, d, pass, layer, CV(s.mixed), CV(w.conv.template view<float>()), s.qkv);
  kernels::delta_net_gates(be, d, s.qkv, s.beta, s.g, C1(w.a_log.template view<float>()),
                           C1(w.dt_bias.template view<float>()));
  kernels::gated_delta_rule(be, d, pass, layer, CV(s.qkv), CV(s.g), CV(s.beta), s.o, s.chunk);
  kernels::gated_rms_norm(be, s.o, CV(s.z), C1(w.norm.template view<float>()), norm_eps);
  linear(be, CV(s.o), w.out, out);
}

}  // namespace moe::layers
