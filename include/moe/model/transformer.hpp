// Transformer<Backend>: the decoder forward pass, written once for every family and every backend.
// Pre-norm residual blocks (RMSNorm -> attention or MLA -> + residual; RMSNorm -> dense MLP or
// MoE -> + residual), final RMSNorm, LM head. All prompt tokens of a chunk go through in one
// batched pass; several sequences (chunks) share the pass, each attending only to its own cache.
// Every step is a kernel overloaded on the backend (kernels/); this file only wires layers, and
// no loop here touches activation, cache or weight memory (their views carry the backend's
// memory space, so such a loop would not compile for a device backend).
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/attention.hpp"
#include "moe/layers/experts.hpp"
#include "moe/layers/gated_delta_net.hpp"
#include "moe/layers/kv_cache.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/mla.hpp"
#include "moe/layers/moe_block.hpp"
#include "moe/layers/rope.hpp"
#include "moe/model/config.hpp"
#include "moe/model/lora_tables.hpp"
#include "moe/model/weights.hpp"
#include "moe/model/workspace.hpp"

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace moe {

// The tokens of one sequence to run in a forward pass (host caches); see BasicSequenceChunk.
using SequenceChunk = BasicSequenceChunk<host_memory>;

namespace model {

// The per-model constants the forward pass derives once at load time.
struct ForwardPlan {
  layers::RopeFrequencies rope;
  layers::AttentionOptions attention;  // shape.sliding_window set per layer from the config
  layers::MlaOptions mla;
  WorkspaceSizes sizes;  // per-model part (max_tokens = 0)
  std::vector<KvLayerShape> kv_shapes;
};

template <class S>
ForwardPlan make_forward_plan(const ModelConfig& c, const ModelWeights<S>& w) {
  ForwardPlan p;
  p.rope = layers::compute_rope_frequencies(c.rope);
  p.attention.shape = layers::AttentionShape{c.n_heads, c.n_kv_heads, c.head_dim, c.v_head_dim, c.attention_scale, 0};
  p.attention.qk_norm = c.qk_norm;
  p.attention.norm_eps = c.rms_norm_eps;
  p.attention.clip_qkv = c.clip_qkv;
  p.attention.rope_pairing = c.rope_pairing;
  WorkspaceSizes& s = p.sizes;
  s.d_model = c.d_model;
  s.n_layers = c.n_layers;
  s.vocab_size = c.vocab_size;
  s.n_heads = c.n_heads;
  s.rope_half = c.rope.rotary_dim / 2;
  s.n_experts = c.n_experts;
  s.top_k = c.top_k;
  s.router_scratch = layers::router_scratch_floats(c.router);
  if (c.mla) {
    p.mla.shape = layers::MlaShape{c.n_heads, c.kv_lora_rank, c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim,
                                   c.attention_scale};
    p.mla.q_lora_rank = c.q_lora_rank;
    p.mla.rope_pairing = c.rope_pairing;
    s.q_width = c.n_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim);
    s.k_width = c.kv_lora_rank + c.qk_rope_head_dim;
    s.v_width = 0;
    s.attn_width = c.n_heads * c.v_head_dim;
    s.q_lora_rank = c.q_lora_rank;
    s.latent_width = c.n_heads * c.kv_lora_rank;
    p.kv_shapes.assign(c.n_layers, KvLayerShape{c.kv_lora_rank, c.qk_rope_head_dim});
    if (c.dsa.top_k > 0) {  // DeepSeek sparse attention: indexer keys after the rope keys
      p.mla.dsa = c.dsa;
      p.mla.index_rope_pairing = c.index_rope_pairing;
      s.index_heads = c.dsa.n_heads, s.index_dim = c.dsa.head_dim, s.index_topk = c.dsa.top_k;
      for (index_t l = 0; l < c.n_layers; ++l) {
        if (!c.indexer_shared[l]) p.kv_shapes[l].index_width = c.dsa.head_dim;
      }
    }
  } else {
    s.q_width = c.n_heads * c.head_dim;
    s.k_width = c.n_kv_heads * c.head_dim;
    s.v_width = c.n_kv_heads * c.v_head_dim;
    s.attn_width = c.n_heads * c.v_head_dim;
    p.kv_shapes.assign(c.n_layers, KvLayerShape{c.n_kv_heads * c.head_dim, c.n_kv_heads * c.v_head_dim});
    if (c.attention_output_gate) s.gate_width = s.attn_width;
  }
  // Gated DeltaNet layers keep a fixed state per sequence instead of keys and values.
  for (index_t l = 0; l < c.n_layers; ++l) {
    if (!c.linear_attention[l]) continue;
    p.kv_shapes[l] = KvLayerShape{0, 0, c.delta_net.state_floats()};
    s.delta_conv = c.delta_net.conv_dim();
    s.delta_value = c.delta_net.value_dim();
    s.delta_heads = c.delta_net.n_v_heads;
    s.delta_chunk = c.delta_net.chunk_scratch();
  }
  // Feed-forward scratch per token: dense MLP 2·d_ff; experts 3·top_k·d_ff_expert; shared 2·d_ff_shared.
  index_t ffn = 0;
  for (const auto& L : w.layers) {
    if (L.moe) {
      ffn = std::max(ffn, 3 * c.top_k * L.moe_weights.experts.d_ff);
      ffn = std::max(ffn, 2 * L.moe_weights.shared.gate.rows);
    } else {
      ffn = std::max(ffn, 2 * L.mlp.gate.rows);
    }
  }
  s.ffn_per_token = ffn;
  return p;
}

template <class Backend>
struct Transformer {
  using Mem = typename Backend::memory;
  template <class T, std::size_t R>
  using V = TensorView<T, R, Mem>;
  using Chunk = BasicSequenceChunk<Mem>;

  // Runs all chunks (already validated by the model: caches distinct and with room, token ids
  // < vocab, workspace big enough, logits shaped right). Writes logits [total, vocab] when
  // all_positions, else [chunks.size(), vocab], in the backend's memory; appends each chunk's
  // tokens to its cache. lora: the adapters resident on the model (null or empty: none); each
  // chunk's `adapter` indexes them.
  static void forward(const ModelConfig& c, const ModelWeights<Mem>& w, const ForwardPlan& plan,
                      std::span<const Chunk> chunks, BasicWorkspace<Backend>& ws, V<float, 2> logits,
                      bool all_positions, const ModelLora<Mem>* lora = nullptr);

 private:
  // The device work of a pass, after its inputs are staged: every kernel from the embedding to
  // the logits (what a PassRunner may capture and replay: nothing here may depend on a host
  // value that changes between passes of one PassShape).
  static void run_layers(const ModelConfig& c, const ModelWeights<Mem>& w, const ForwardPlan& plan,
                         std::span<const Chunk> chunks, BasicWorkspace<Backend>& ws, V<float, 2> logits,
                         bool all_positions, index_t n, const ModelLora<Mem>* lora) {
    const Backend be{};
    using CV = V<const float, 2>;
    // Unmerged LoRA: the rows' adapters when some row of this pass has one (else every LoRA step
    // is a no-op: a pass without adapters runs exactly the base graph).
    const bool adapted = lora != nullptr && ws.pass_lora();
    const layers::LoraRows<Backend> lora_rows =
        adapted ? layers::LoraRows<Backend>{V<const std::int32_t, 1>(ws.lora_rows(n)), ws.lora_scratch()}
                : layers::LoraRows<Backend>{};
    static const LayerLora<Mem> kNoLayerLora{};
    const auto layer_lora = [&](index_t l) -> const LayerLora<Mem>& { return adapted ? lora->layers[l] : kNoLayerLora; };
    if (c.rope.type != layers::RopeType::kDynamic) {
      kernels::rope_tables(be, V<const float, 1>(ws.inv_freq()), plan.rope.attention_scaling,
                           V<const std::int64_t, 1>(ws.positions(n)), ws.cos(n), ws.sin(n));
    }
    V<float, 2> hidden = ws.hidden(n);
    layers::require_rows_as_stored(w.embed, "embedding");
    visit_format<Backend>(w.embed.dtype, [&](auto tag) {
      using T = decltype(tag);
      kernels::embed_rows(be, w.embed.template view<T>(), V<const std::int32_t, 1>(ws.tokens(n)), hidden);
    });
    if (c.embedding_multiplier != 1.0f) kernels::scale(be, hidden, c.embedding_multiplier);
    const CV cos = ws.cos(n), sin = ws.sin(n);
    const kernels::PassSlots<Mem> pass{V<const kernels::CacheSlot, 1>(ws.slots(chunks.size())),
                                       V<const std::int32_t, 1>(ws.token_slot(n)), max_keys(chunks)};

    V<float, 2> normed = ws.normed(n);
    V<float, 2> out = ws.out(n);
    if (c.n_layers > 0) layers::rms_norm(be, CV(hidden), w.layers[0].input_norm, c.rms_norm_eps, normed);
    for (index_t l = 0; l < c.n_layers; ++l) {
      const LayerWeights<Mem>& L = w.layers[l];
      const kernels::CacheLayer& cl = chunks[0].cache->layer(l);
      if (L.linear_attention) {
        const layers::GatedDeltaNetScratch<Backend> s{ws.delta_mixed(n), ws.delta_qkv(n),  ws.delta_z(n),
                                                      ws.delta_out(n),   ws.delta_beta(n), ws.delta_g(n),
                                                      ws.delta_chunk()};
        layers::gated_delta_net_forward(be, c.delta_net, c.rms_norm_eps, L.delta, pass, cl, CV(normed), s, out);
      } else if (c.mla) {
        const layers::MlaScratch<Backend> s{ws.q(n),       ws.q_a(n),     ws.k(n),       ws.q_latent(n),
                                            ws.out_latent(n), ws.attn(n), ws.index_q(n), ws.index_k(n),
                                            ws.index_w(n),    ws.index_selection(n)};
        layers::mla_forward(be, plan.mla, L.mla, pass, cl, CV(normed), cos, sin, s, out);
      } else {
        layers::AttentionOptions o = plan.attention;
        o.shape.sliding_window = c.sliding_window[l];
        o.shape.chunk = c.attention_chunk_of(l);
        if (c.is_nope_layer(l)) {
          o.rope = false;
          o.temperature_scale = c.attn_temperature_scale;
          o.temperature_floor = c.attn_temperature_floor;
        }
        const layers::AttentionScratch<Backend> s{ws.q(n), ws.k(n), ws.v(n), ws.attn(n), ws.sinks(), ws.attn_gate(n),
                                                  V<const std::int64_t, 1>(ws.positions(n))};
        layers::attention_forward(be, o, L.attn, pass, cl, CV(normed), cos, sin, s, out, layer_lora(l).attn,
                                  lora_rows);
      }
      if (c.residual_multiplier != 1.0f) kernels::scale(be, out, c.residual_multiplier);
      layers::add_rms_norm(be, hidden, CV(out), L.post_attention_norm, c.rms_norm_eps, normed);
      if (L.moe) {
        const index_t slots = n * c.top_k;
        const layers::MoeScratch<Backend> s{ws.router_logits(n), ws.expert_ids(n),    ws.expert_weights(n),
                                            ws.router_scratch(), ws.correction(),     ws.offsets(),
                                            ws.slot_token(slots), ws.slot_weight(slots), ws.xs(slots),
                                            ws.ys(slots),         ws.ffn(),           ws.shared_out(n),
                                            ws.pass_budget(),     expert_slice(ws.usage_weights(), l, c.n_experts),
                                            expert_slice(ws.coactivation_counters(), l, c.n_experts * c.n_experts),
                                            adapted ? ws.lora_slots(slots) : V<std::int32_t, 1>()};
        const auto usage = expert_slice(ws.usage_counters(), l, c.n_experts);
        layers::moe_forward(be, c.router, L.moe_weights, CV(normed), s, usage, out, layer_lora(l).moe, lora_rows);
      } else {
        layers::mlp_forward(be, L.mlp, CV(normed), ws.ffn(), out, layer_lora(l).mlp, lora_rows);
      }
      if (c.residual_multiplier != 1.0f) kernels::scale(be, out, c.residual_multiplier);
      // The residual add, fused with the next layer's input norm.
      if (l + 1 < c.n_layers) {
        layers::add_rms_norm(be, hidden, CV(out), w.layers[l + 1].input_norm, c.rms_norm_eps, normed);
      } else {
        kernels::add(be, hidden, CV(out));
      }
    }
    if (all_positions) {
      layers::rms_norm(be, CV(hidden), w.final_norm, c.rms_norm_eps, normed);
      layers::linear(be, CV(normed), w.lm_head, logits);
      if (adapted) layers::lora_update(be, CV(normed), lora->lm_head, lora_rows, logits);
    } else {
      // Each chunk's last token (the rows were staged with the inputs).
      V<float, 2> last = normed.slice(0, chunks.size());
      kernels::gather_rows(be, CV(hidden), V<const std::int32_t, 1>(ws.rows(chunks.size())), last);
      layers::rms_norm(be, CV(last), w.final_norm, c.rms_norm_eps, last);
      layers::linear(be, CV(last), w.lm_head, logits);
      if (adapted) {
        const layers::LoraRows<Backend> last_rows{V<const std::int32_t, 1>(ws.lora_last(chunks.size())),
                                                  ws.lora_scratch()};
        layers::lora_update(be, CV(last), lora->lm_head, last_rows, logits);
      }
    }
    layers::add_bias(be, logits, w.lm_head_bias);
    if (c.logits_multiplier != 1.0f) kernels::scale(be, logits, c.logits_multiplier);
  }

  // Layer l's part of per-(layer, expert) telemetry counters (of extent 0 while telemetry is off).
  template <class T>
  static V<T, 1> expert_slice(V<T, 1> all, index_t l, index_t n_experts) noexcept {
    return all.extent(0) == 0 ? all : all.slice(l * n_experts, (l + 1) * n_experts);
  }

  // Elastic experts: when some chunk has an active budget, every token gets its chunk's budget
  // row (inactive chunks: the model's top_k, no threshold) and the pass runs limit_experts;
  // otherwise the pass is exactly the model's (ws.pass_budget() of extent 0).
  static void stage_expert_budgets(const ModelConfig& c, std::span<const Chunk> chunks, BasicWorkspace<Backend>& ws,
                                   index_t n) {
    bool any = false;
    for (const auto& ch : chunks) any = any || ch.expert_budget.active(c.top_k);
    ws.set_pass_budget(0);
    if (!any || c.n_experts == 0) return;
    const bool normalizing = c.router.norm_topk_prob || c.router.scoring == layers::RouterScoring::kTopkSoftmax;
    const auto host = ws.budget_host(n);
    index_t t = 0;
    for (const auto& ch : chunks) {
      const kernels::ExpertBudgetRow row = ch.expert_budget.resolve(c.top_k, normalizing);
      for (index_t j = 0; j < ch.tokens.size(); ++j) host[t++] = row;
    }
    kernels::upload(Backend{}, std::span<const kernels::ExpertBudgetRow>(host), ws.budget(n));
    ws.set_pass_budget(n);
  }

  // The longest context any row of the pass sees (its cache plus the chunk so far).
  static index_t max_keys(std::span<const Chunk> chunks) noexcept {
    index_t m = 0;
    for (const auto& ch : chunks) m = std::max(m, ch.cache->size() + ch.tokens.size());
    return m;
  }

  // Unmerged LoRA: when some chunk picks an adapter, each row's (its chunk's) and each chunk's
  // adapter index, uploaded for the pass; otherwise the pass is marked adapter-free.
  static void stage_lora(std::span<const Chunk> chunks, BasicWorkspace<Backend>& ws, index_t n,
                         const ModelLora<Mem>* lora) {
    bool any = false;
    for (const auto& ch : chunks) any = any || ch.adapter >= 0;
    ws.set_pass_lora(false);
    if (!any || lora == nullptr || lora->empty()) return;
    const auto rows = ws.lora_rows_host(n);
    const auto last = ws.lora_last_host(chunks.size());
    index_t t = 0;
    for (index_t i = 0; i < chunks.size(); ++i) {
      last[i] = chunks[i].adapter;
      for (index_t j = 0; j < chunks[i].tokens.size(); ++j) rows[t++] = chunks[i].adapter;
    }
    kernels::upload(Backend{}, std::span<const std::int32_t>(rows), ws.lora_rows(n));
    kernels::upload(Backend{}, std::span<const std::int32_t>(last), ws.lora_last(chunks.size()));
    ws.set_pass_lora(true);
  }

  // Token ids, positions, each chunk's last row and the cache slots of the pass (and dynamic-NTK
  // rope tables): filled on the host and uploaded in one go, the only host-to-backend traffic of
  // a pass. Returns n.
  static index_t stage_inputs(const ModelConfig& c, const ForwardPlan& plan, std::span<const Chunk> chunks,
                              BasicWorkspace<Backend>& ws, const ModelLora<Mem>* lora) {
    const Backend be{};
    index_t n = 0;
    for (const auto& ch : chunks) n += ch.tokens.size();
    const auto tokens = ws.tokens_host(n);
    const auto positions = ws.positions_host(n);
    const auto rows = ws.rows_host(chunks.size());
    const auto slots = ws.slots_host(chunks.size());
    const auto token_slot = ws.token_slot_host(n);
    index_t t = 0;
    for (index_t i = 0; i < chunks.size(); ++i) {
      const auto& ch = chunks[i];
      slots[i] = ch.cache->slot(t, ch.tokens.size());
      for (index_t j = 0; j < ch.tokens.size(); ++j, ++t) {
        tokens[t] = ch.tokens[j];
        positions[t] = static_cast<std::int64_t>(ch.cache->size() + j);
        token_slot[t] = static_cast<std::int32_t>(i);
      }
      rows[i] = static_cast<std::int32_t>(t - 1);
    }
    kernels::upload(be, std::span<const std::int32_t>(tokens), ws.tokens(n));
    kernels::upload(be, std::span<const std::int64_t>(positions), ws.positions(n));
    kernels::upload(be, std::span<const std::int32_t>(rows), ws.rows(chunks.size()));
    kernels::upload(be, std::span<const kernels::CacheSlot>(slots), ws.slots(chunks.size()));
    kernels::upload(be, std::span<const std::int32_t>(token_slot), ws.token_slot(n));
    stage_expert_budgets(c, chunks, ws, n);
    stage_lora(chunks, ws, n, lora);

    if (c.rope.type != layers::RopeType::kDynamic) return n;  // tables made in run_layers
    V<float, 2> cos = ws.cos(n), sin = ws.sin(n);
    const V<const float, 1> inv_freq = ws.inv_freq();
    const float scaling = plan.rope.attention_scaling;
    // Dynamic NTK: each sequence's frequencies follow its own length after this pass (made here,
    // eagerly: the frequencies are uploaded per sequence).
    t = 0;
    for (const auto& ch : chunks) {
      const index_t m = ch.tokens.size();
      const auto seq_len = static_cast<std::int64_t>(ch.cache->size() + m);
      const auto host = ws.inv_freq_host();
      V<const float, 1> freq = inv_freq;
      if (layers::dynamic_ntk_inv_freq(c.rope, seq_len, host)) {
        kernels::upload(be, std::span<const float>(host), ws.dynamic_inv_freq());
        freq = ws.dynamic_inv_freq();
      }
      kernels::rope_tables(be, freq, scaling, V<const std::int64_t, 1>(ws.positions(n)).slice(t, t + m),
                           cos.slice(t, t + m), sin.slice(t, t + m));
      t += m;
    }
    return n;
  }
};

// Defined outside the class, so not inline: a translation unit that sees the explicit
// instantiation declaration below does not instantiate the graph (see MOE_EXTERN_GRAPH).
template <class Backend>
void Transformer<Backend>::forward(const ModelConfig& c, const ModelWeights<Mem>& w, const ForwardPlan& plan,
                                   std::span<const Chunk> chunks, BasicWorkspace<Backend>& ws, V<float, 2> logits,
                                   bool all_positions, const ModelLora<Mem>* lora) {
  const index_t n = stage_inputs(c, plan, chunks, ws, lora);
  const kernels::PassShape shape{n, chunks.size(), max_keys(chunks), all_positions, ws.pass_budget().extent(0) != 0};
  ws.runner().run(shape, [&] { run_layers(c, w, plan, chunks, ws, logits, all_positions, n, lora); });
  for (const auto& ch : chunks) ch.cache->append(ch.tokens.size());
}

#if defined(MOE_EXTERN_GRAPH)
extern template struct Transformer<backend::cpu>;
extern template struct Transformer<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template struct Transformer<backend::cuda>;
#endif

}  // namespace model
}  // namespace moe
