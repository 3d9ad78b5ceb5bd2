// BasicWorkspace<Backend>: every activation buffer a forward pass needs for up to
// max_batch_tokens tokens, allocated once in the backend's memory (llama2.c's RunState, gemma.cpp's
// Activations) so that forward never allocates, plus the small host staging buffers the pass
// uploads from (token ids, positions). Also holds the per-layer, per-expert routing counters that
// moe-run reports. `Workspace` is the cpu backend's.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/buffer.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>
#include <span>

namespace moe {

// Tokens routed to each expert of each layer since the last reset, and the sum of the routing
// weights they carried (the telemetry runtime/expert_stats.hpp turns into shares, activation
// rates and load imbalance).
class ExpertUsage {
 public:
  ExpertUsage() = default;
  ExpertUsage(index_t n_layers, index_t n_experts)
      : n_layers_(n_layers), n_experts_(n_experts), counts_(n_layers * n_experts), weights_(n_layers * n_experts) {
    reset();
  }

  index_t n_layers() const noexcept { return n_layers_; }
  index_t n_experts() const noexcept { return n_experts_; }
  std::uint64_t count(index_t layer, index_t expert) const noexcept { return counts_[layer * n_experts_ + expert]; }
  // Counters of one layer, [n_experts] (all zero for dense layers).
  std::span<std::uint64_t> layer(index_t l) noexcept { return counts_.span().subspan(l * n_experts_, n_experts_); }
  std::span<const std::uint64_t> layer(index_t l) const noexcept {
    return counts_.span().subspan(l * n_experts_, n_experts_);
  }
  // Sum of the routing weights of the tokens routed to that expert.
  double weight_sum(index_t layer, index_t expert) const noexcept { return weights_[layer * n_experts_ + expert]; }
  std::span<const double> layer_weights(index_t l) const noexcept {
    return weights_.span().subspan(l * n_experts_, n_experts_);
  }
  void reset() noexcept {
    std::fill_n(counts_.data(), counts_.size(), std::uint64_t{0});
    std::fill_n(weights_.data(), weights_.size(), 0.0);
  }
  // Every counter, [n_layers · n_experts] (layer-major).
  View<std::uint64_t, 1> all() noexcept { return View<std::uint64_t, 1>(counts_.data(), {counts_.size()}); }
  View<double, 1> all_weights() noexcept { return View<double, 1>(weights_.data(), {weights_.size()}); }

 private:
  index_t n_layers_ = 0;
  index_t n_experts_ = 0;
  AlignedBuffer<std::uint64_t> counts_;
  AlignedBuffer<double> weights_;
};

// Sizes of the buffers, derived from a model (Model::make_workspace fills it).
struct WorkspaceSizes {
  index_t max_tokens = 0;
  index_t d_model = 0;
  index_t q_width = 0;        // n_heads · q head size
  index_t k_width = 0;        // n_kv_heads · head_dim (MLA: kv_lora_rank + rope)
  index_t v_width = 0;        // n_kv_heads · v_head_dim
  index_t attn_width = 0;     // n_heads · v_head_dim
  index_t q_lora_rank = 0;
  index_t latent_width = 0;   // n_heads · kv_lora_rank (MLA)
  index_t rope_half = 0;
  index_t n_experts = 0;
  index_t top_k = 0;
  index_t router_scratch = 0;
  index_t ffn_per_token = 0;  // feed-forward scratch floats per token
  index_t n_layers = 0;
  index_t vocab_size = 0;
  index_t n_heads = 0;
  index_t logits_rows = 0;    // rows of the device logits buffer (0: logits go straight to the caller)
  index_t gate_width = 0;     // gated attention's output gate, n_heads · v_head_dim (0: none)
  index_t delta_conv = 0;     // Gated DeltaNet: conv_dim (0: no linear-attention layers)
  index_t delta_value = 0;    // ... value_dim
  index_t delta_heads = 0;    // ... n_v_heads
  index_t delta_chunk = 0;    // ... the chunked rule's scratch floats
  index_t index_heads = 0;    // DSA indexer: index_n_heads (0: no sparse attention)
  index_t index_dim = 0;      // ... index_head_dim
  index_t index_topk = 0;     // ... index_topk
  index_t lora_rank = 0;      // unmerged LoRA: the largest adapter rank (0: no adapters resident)

  // Same model shape (everything but max_tokens).
  bool same_model(const WorkspaceSizes& o) const noexcept {
    return d_model == o.d_model && q_width == o.q_width && k_width == o.k_width && v_width == o.v_width &&
           attn_width == o.attn_width && q_lora_rank == o.q_lora_rank && latent_width == o.latent_width &&
           rope_half == o.rope_half && n_experts == o.n_experts && top_k == o.top_k &&
           router_scratch == o.router_scratch && n_layers == o.n_layers && vocab_size == o.vocab_size &&
           n_heads == o.n_heads && ffn_per_token == o.ffn_per_token && gate_width == o.gate_width &&
           delta_conv == o.delta_conv && delta_value == o.delta_value && delta_heads == o.delta_heads &&
           delta_chunk == o.delta_chunk && index_heads == o.index_heads && index_dim == o.index_dim &&
           index_topk == o.index_topk && lora_rank == o.lora_rank;
  }
};

template <class Backend>
class BasicWorkspace {
  using Mem = typename Backend::memory;
  template <class T, std::size_t R>
  using V = TensorView<T, R, Mem>;

 public:
  using backend_type = Backend;

  BasicWorkspace() = default;

  // Buffers for s.max_tokens tokens; inv_freq: the model's rope frequencies (copied in once).
  BasicWorkspace(const WorkspaceSizes& s, std::span<const float> inv_freq);

  index_t max_tokens() const noexcept { return sizes_.max_tokens; }
  const WorkspaceSizes& sizes() const noexcept { return sizes_; }

  // The routing counters (for a device backend, downloaded here: call it between passes; the
  // passes themselves only add to them in device memory).
  const ExpertUsage& expert_usage() const {
    if constexpr (!is_host_memory_v<Mem>) {
      auto host = usage_.all();
      kernels::download(Backend{}, V<const std::uint64_t, 1>(usage_device_.view()),
                        std::span<std::uint64_t>(host.data(), host.extent(0)));
      auto weights = usage_.all_weights();
      kernels::download(Backend{}, V<const double, 1>(weights_device_.view()),
                        std::span<double>(weights.data(), weights.extent(0)));
    }
    return usage_;
  }
  void reset_expert_usage() {
    usage_.reset();
    if constexpr (!is_host_memory_v<Mem>) upload_usage();
    clear_coactivation();
  }
  // Expert telemetry on (the default) or off: off, the passes count nothing (the counters keep
  // what they had).
  void set_expert_telemetry(bool on) noexcept { telemetry_ = on; }
  bool expert_telemetry() const noexcept { return telemetry_; }
  // All counters in the backend's memory, [n_layers · n_experts] (what the MoE layers add to);
  // of extent 0 while telemetry is off.
  V<std::uint64_t, 1> usage_counters() noexcept {
    if (!telemetry_) return V<std::uint64_t, 1>();
    if constexpr (is_host_memory_v<Mem>) {
      return usage_.all();
    } else {
      return usage_device_.view();
    }
  }
  // The routing-weight sums, [n_layers · n_experts] in the backend's memory (extent 0 when off).
  V<double, 1> usage_weights() noexcept {
    if (!telemetry_) return V<double, 1>();
    if constexpr (is_host_memory_v<Mem>) {
      return usage_.all_weights();
    } else {
      return weights_device_.view();
    }
  }
  // Co-activation telemetry, off by default: per MoE layer, how often each pair of experts was
  // chosen by the same token ([n_layers · n_experts²] counters, allocated when switched on; on a
  // device backend counted in device memory). Counts only while the expert telemetry is on too.
  void set_expert_coactivation(bool on) {
    if (on && coactivation_.size() == 0) {
      const index_t n = sizes_.n_layers * sizes_.n_experts * sizes_.n_experts;
      coactivation_ = Buffer<std::uint64_t, Mem>(n);
      clear_coactivation();
    }
    coactivation_on_ = on;
  }
  bool expert_coactivation() const noexcept { return coactivation_on_; }
  // The counters in the backend's memory (what the MoE layers add to); extent 0 while off.
  V<std::uint64_t, 1> coactivation_counters() noexcept {
    if (!telemetry_ || !coactivation_on_) return V<std::uint64_t, 1>();
    return coactivation_.view();
  }
  // A host copy of the pair counts, [n_layers · n_experts · n_experts] layer-major (empty if never
  // switched on); call it between passes.
  std::vector<std::uint64_t> expert_coactivation_counts() const {
    std::vector<std::uint64_t> out(coactivation_.size());
    if (!out.empty()) kernels::download(Backend{}, V<const std::uint64_t, 1>(coactivation_.view()), std::span<std::uint64_t>(out));
    return out;
  }

  // Per-token expert budgets of a pass: host staging and the backend's copy ([n]).
  std::span<kernels::ExpertBudgetRow> budget_host(index_t n) noexcept { return {budget_host_.data(), n}; }
  V<kernels::ExpertBudgetRow, 1> budget(index_t n) noexcept { return budget_.template view<1>({n}); }
  // The budget rows of the pass being run: [rows] after set_pass_budget(rows), [0] for none.
  void set_pass_budget(index_t rows) noexcept { pass_budget_rows_ = rows; }
  V<const kernels::ExpertBudgetRow, 1> pass_budget() noexcept { return budget(pass_budget_rows_); }

  // Unmerged LoRA: each row's adapter (-1: none) for the n rows of a pass, each chunk's (the
  // last-row LM head), each bucketed expert slot's, and the shrink scratch [rows, lora_rank];
  // host staging for the first two. Allocated only when the model has adapters resident.
  std::span<std::int32_t> lora_rows_host(index_t n) noexcept { return {lora_rows_host_.data(), n}; }
  std::span<std::int32_t> lora_last_host(index_t chunks) noexcept { return {lora_last_host_.data(), chunks}; }
  V<std::int32_t, 1> lora_rows(index_t n) noexcept { return lora_rows_.template view<1>({n}); }
  V<std::int32_t, 1> lora_last(index_t chunks) noexcept { return lora_last_.template view<1>({chunks}); }
  V<std::int32_t, 1> lora_slots(index_t slots) noexcept { return lora_slots_.template view<1>({slots}); }
  V<float, 2> lora_scratch() noexcept { return lora_scratch_.template view<2>({lora_scratch_rows_, sizes_.lora_rank}); }
  // Whether the pass being run has rows with an adapter (set by the pass's staging).
  void set_pass_lora(bool on) noexcept { pass_lora_ = on; }
  bool pass_lora() const noexcept { return pass_lora_; }

  // Views over the first n tokens of each buffer (used by Transformer).
  V<float, 2> hidden(index_t n) noexcept { return hidden_.template view<2>({n, sizes_.d_model}); }
  V<float, 2> normed(index_t n) noexcept { return normed_.template view<2>({n, sizes_.d_model}); }
  V<float, 2> out(index_t n) noexcept { return out_.template view<2>({n, sizes_.d_model}); }
  V<float, 2> q(index_t n) noexcept { return q_.template view<2>({n, sizes_.q_width}); }
  V<float, 2> k(index_t n) noexcept { return k_.template view<2>({n, sizes_.k_width}); }
  V<float, 2> v(index_t n) noexcept { return v_.template view<2>({n, sizes_.v_width}); }
  V<float, 2> attn(index_t n) noexcept { return attn_.template view<2>({n, sizes_.attn_width}); }
  V<float, 2> attn_gate(index_t n) noexcept { return gate_.template view<2>({n, sizes_.gate_width}); }
  // Gated DeltaNet scratch: projected and convolved q|k|v [n, conv_dim], z and the output
  // [n, value_dim], beta and g [n, n_v_heads], the chunked rule's scratch.
  V<float, 2> delta_mixed(index_t n) noexcept { return dn_mixed_.template view<2>({n, sizes_.delta_conv}); }
  V<float, 2> delta_qkv(index_t n) noexcept { return dn_qkv_.template view<2>({n, sizes_.delta_conv}); }
  V<float, 2> delta_z(index_t n) noexcept { return dn_z_.template view<2>({n, sizes_.delta_value}); }
  V<float, 2> delta_out(index_t n) noexcept { return dn_o_.template view<2>({n, sizes_.delta_value}); }
  V<float, 2> delta_beta(index_t n) noexcept { return dn_beta_.template view<2>({n, sizes_.delta_heads}); }
  V<float, 2> delta_g(index_t n) noexcept { return dn_g_.template view<2>({n, sizes_.delta_heads}); }
  V<float, 1> delta_chunk() noexcept { return dn_chunk_.view(); }
  V<float, 2> q_a(index_t n) noexcept { return q_a_.template view<2>({n, sizes_.q_lora_rank}); }
  V<float, 2> index_q(index_t n) noexcept { return index_q_.template view<2>({n, sizes_.index_heads * sizes_.index_dim}); }
  V<float, 2> index_k(index_t n) noexcept { return index_k_.template view<2>({n, sizes_.index_dim}); }
  V<float, 2> index_w(index_t n) noexcept { return index_w_.template view<2>({n, sizes_.index_heads}); }
  V<std::int32_t, 2> index_selection(index_t n) noexcept {
    return index_sel_.template view<2>({n, sizes_.index_topk});
  }
  V<float, 2> q_latent(index_t n) noexcept { return q_latent_.template view<2>({n, sizes_.latent_width}); }
  V<float, 2> out_latent(index_t n) noexcept { return out_latent_.template view<2>({n, sizes_.latent_width}); }
  V<float, 2> cos(index_t n) noexcept { return cos_.template view<2>({n, sizes_.rope_half}); }
  V<float, 2> sin(index_t n) noexcept { return sin_.template view<2>({n, sizes_.rope_half}); }
  V<std::int32_t, 1> tokens(index_t n) noexcept { return tokens_.template view<1>({n}); }
  V<std::int64_t, 1> positions(index_t n) noexcept { return positions_.template view<1>({n}); }
  V<std::int32_t, 1> rows(index_t n) noexcept { return rows_.template view<1>({n}); }
  // The pass's sequences (kernels/reference/cache.hpp): one slot per chunk, the slot of each row.
  V<kernels::CacheSlot, 1> slots(index_t chunks) noexcept { return slots_.template view<1>({chunks}); }
  V<std::int32_t, 1> token_slot(index_t n) noexcept { return token_slot_.template view<1>({n}); }
  V<float, 1> inv_freq() noexcept { return inv_freq_.view(); }
  V<float, 1> dynamic_inv_freq() noexcept { return dynamic_inv_freq_.view(); }
  // Host staging the pass fills before uploading: token ids, positions, picked rows, frequencies.
  std::span<std::int32_t> tokens_host(index_t n) noexcept { return {tokens_host_.data(), n}; }
  std::span<std::int64_t> positions_host(index_t n) noexcept { return {positions_host_.data(), n}; }
  std::span<std::int32_t> rows_host(index_t n) noexcept { return {rows_host_.data(), n}; }
  std::span<kernels::CacheSlot> slots_host(index_t chunks) noexcept { return {slots_host_.data(), chunks}; }
  std::span<std::int32_t> token_slot_host(index_t n) noexcept { return {token_slot_host_.data(), n}; }
  std::span<float> inv_freq_host() noexcept { return {inv_freq_host_.data(), inv_freq_host_.size()}; }

  V<float, 2> router_logits(index_t n) noexcept {
    return router_logits_.template view<2>({n, std::max<index_t>(sizes_.n_experts, 1)});
  }
  V<std::int32_t, 2> expert_ids(index_t n) noexcept { return ids_.template view<2>({n, sizes_.top_k}); }
  V<float, 2> expert_weights(index_t n) noexcept { return weights_.template view<2>({n, sizes_.top_k}); }
  V<float, 1> router_scratch() noexcept { return router_scratch_.view(); }
  V<float, 1> correction() noexcept { return correction_.view(); }
  V<std::int32_t, 1> offsets() noexcept { return offsets_.view(); }
  V<std::int32_t, 1> slot_token(index_t slots) noexcept { return slot_token_.template view<1>({slots}); }
  V<float, 1> slot_weight(index_t slots) noexcept { return slot_weight_.template view<1>({slots}); }
  V<float, 2> xs(index_t slots) noexcept { return xs_.template view<2>({slots, sizes_.d_model}); }
  V<float, 2> ys(index_t slots) noexcept { return ys_.template view<2>({slots, sizes_.d_model}); }
  V<float, 1> ffn() noexcept { return ffn_.view(); }
  V<float, 1> sinks() noexcept { return sinks_.view(); }
  V<float, 2> shared_out(index_t n) noexcept { return shared_out_.template view<2>({n, sizes_.d_model}); }
  // How the pass's device work is run (a device backend keeps its captured decode graphs here:
  // they hold this workspace's buffers).
  kernels::PassRunner<Backend>& runner() noexcept { return runner_; }
  // Device backends: logits rows before they are downloaded to the caller.
  V<float, 2> logits(index_t rows) noexcept { return logits_.template view<2>({rows, sizes_.vocab_size}); }

 private:
  void clear_coactivation() {
    if (coactivation_.size() == 0) return;
    const std::vector<std::uint64_t> zeros(coactivation_.size(), 0);
    kernels::upload(Backend{}, std::span<const std::uint64_t>(zeros), coactivation_.view());
  }
  void upload_usage() {
    auto host = usage_.all();
    kernels::upload(Backend{}, std::span<const std::uint64_t>(host.data(), host.extent(0)), usage_device_.view());
    auto weights = usage_.all_weights();
    kernels::upload(Backend{}, std::span<const double>(weights.data(), weights.extent(0)), weights_device_.view());
  }

  WorkspaceSizes sizes_;
  mutable ExpertUsage usage_;
  bool telemetry_ = true;
  index_t pass_budget_rows_ = 0;
  bool pass_lora_ = false;
  index_t lora_scratch_rows_ = 0;
  Buffer<std::int32_t, Mem> lora_rows_, lora_last_, lora_slots_;
  Buffer<float, Mem> lora_scratch_;
  HostBuffer<std::int32_t> lora_rows_host_, lora_last_host_;
  Buffer<std::uint64_t, Mem> usage_device_;
  Buffer<double, Mem> weights_device_;
  Buffer<std::uint64_t, Mem> coactivation_;
  bool coactivation_on_ = false;
  Buffer<kernels::ExpertBudgetRow, Mem> budget_;
  HostBuffer<kernels::ExpertBudgetRow> budget_host_;
  Buffer<float, Mem> hidden_, normed_, out_, q_, k_, v_, attn_, q_a_, q_latent_, out_latent_, cos_, sin_;
  Buffer<float, Mem> gate_, dn_mixed_, dn_qkv_, dn_z_, dn_o_, dn_beta_, dn_g_, dn_chunk_;
  Buffer<float, Mem> index_q_, index_k_, index_w_;
  Buffer<std::int32_t, Mem> index_sel_;
  Buffer<std::int32_t, Mem> tokens_, rows_;
  Buffer<std::int64_t, Mem> positions_;
  Buffer<kernels::CacheSlot, Mem> slots_;
  Buffer<std::int32_t, Mem> token_slot_;
  HostBuffer<kernels::CacheSlot> slots_host_;
  HostBuffer<std::int32_t> tokens_host_, rows_host_, token_slot_host_;
  HostBuffer<std::int64_t> positions_host_;
  HostBuffer<float> inv_freq_host_;
  Buffer<float, Mem> router_logits_, weights_, router_scratch_, correction_, slot_weight_, xs_, ys_, ffn_, shared_out_,
      sinks_, inv_freq_, dynamic_inv_freq_, logits_;
  Buffer<std::int32_t, Mem> ids_, offsets_, slot_token_;
  kernels::PassRunner<Backend> runner_;
};

template <class Backend>
BasicWorkspace<Backend>::BasicWorkspace(const WorkspaceSizes& s, std::span<const float> inv_freq) : sizes_(s), usage_(s.n_layers, s.n_experts) {
  const index_t n = s.max_tokens;
  require(n > 0 && n <= 0x7fffffff, ErrorCode::kInvalidArgument, "workspace for {} tokens (1 to 2^31 - 1)", n);
  const index_t slots = n * s.top_k;
  hidden_ = Buffer<float, Mem>(n * s.d_model);
  normed_ = Buffer<float, Mem>(n * s.d_model);
  out_ = Buffer<float, Mem>(n * s.d_model);
  q_ = Buffer<float, Mem>(n * s.q_width);
  k_ = Buffer<float, Mem>(n * s.k_width);
  v_ = Buffer<float, Mem>(n * s.v_width);
  attn_ = Buffer<float, Mem>(n * s.attn_width);
  gate_ = Buffer<float, Mem>(n * s.gate_width);
  dn_mixed_ = Buffer<float, Mem>(n * s.delta_conv);
  dn_qkv_ = Buffer<float, Mem>(n * s.delta_conv);
  dn_z_ = Buffer<float, Mem>(n * s.delta_value);
  dn_o_ = Buffer<float, Mem>(n * s.delta_value);
  dn_beta_ = Buffer<float, Mem>(n * s.delta_heads);
  dn_g_ = Buffer<float, Mem>(n * s.delta_heads);
  dn_chunk_ = Buffer<float, Mem>(s.delta_chunk);
  q_a_ = Buffer<float, Mem>(n * s.q_lora_rank);
  q_latent_ = Buffer<float, Mem>(n * s.latent_width);
  index_q_ = Buffer<float, Mem>(n * s.index_heads * s.index_dim);
  index_k_ = Buffer<float, Mem>(n * s.index_dim);
  index_w_ = Buffer<float, Mem>(n * s.index_heads);
  index_sel_ = Buffer<std::int32_t, Mem>(n * s.index_topk);
  out_latent_ = Buffer<float, Mem>(n * s.latent_width);
  cos_ = Buffer<float, Mem>(n * s.rope_half);
  sin_ = Buffer<float, Mem>(n * s.rope_half);
  tokens_ = Buffer<std::int32_t, Mem>(n);
  positions_ = Buffer<std::int64_t, Mem>(n);
  rows_ = Buffer<std::int32_t, Mem>(n);
  tokens_host_ = HostBuffer<std::int32_t>(n);
  positions_host_ = HostBuffer<std::int64_t>(n);
  rows_host_ = HostBuffer<std::int32_t>(n);
  slots_ = Buffer<kernels::CacheSlot, Mem>(n);
  token_slot_ = Buffer<std::int32_t, Mem>(n);
  slots_host_ = HostBuffer<kernels::CacheSlot>(n);
  token_slot_host_ = HostBuffer<std::int32_t>(n);
  router_logits_ = Buffer<float, Mem>(n * std::max<index_t>(s.n_experts, 1));
  ids_ = Buffer<std::int32_t, Mem>(slots);
  weights_ = Buffer<float, Mem>(slots);
  router_scratch_ = Buffer<float, Mem>(std::max<index_t>(s.router_scratch, 1));
  correction_ = Buffer<float, Mem>(s.n_experts);
  offsets_ = Buffer<std::int32_t, Mem>(s.n_experts + 1);
  slot_token_ = Buffer<std::int32_t, Mem>(slots);
  slot_weight_ = Buffer<float, Mem>(slots);
  xs_ = Buffer<float, Mem>(slots * s.d_model);
  ys_ = Buffer<float, Mem>(slots * s.d_model);
  ffn_ = Buffer<float, Mem>(n * s.ffn_per_token);
  shared_out_ = Buffer<float, Mem>(n * s.d_model);
  sinks_ = Buffer<float, Mem>(s.n_heads);
  inv_freq_ = Buffer<float, Mem>(s.rope_half);
  dynamic_inv_freq_ = Buffer<float, Mem>(s.rope_half);
  inv_freq_host_ = HostBuffer<float>(s.rope_half);
  budget_ = Buffer<kernels::ExpertBudgetRow, Mem>(n);
  budget_host_ = HostBuffer<kernels::ExpertBudgetRow>(n);
  if (s.lora_rank > 0) {
    lora_scratch_rows_ = std::max(n, slots);
    lora_rows_ = Buffer<std::int32_t, Mem>(n);
    lora_last_ = Buffer<std::int32_t, Mem>(n);
    lora_slots_ = Buffer<std::int32_t, Mem>(slots);
    lora_scratch_ = Buffer<float, Mem>(lora_scratch_rows_ * s.lora_rank);
    lora_rows_host_ = HostBuffer<std::int32_t>(n);
    lora_last_host_ = HostBuffer<std::int32_t>(n);
  }
  if constexpr (!is_host_memory_v<Mem>) {
    usage_device_ = Buffer<std::uint64_t, Mem>(s.n_layers * s.n_experts);
    weights_device_ = Buffer<double, Mem>(s.n_layers * s.n_experts);
    upload_usage();
    logits_ = Buffer<float, Mem>(s.logits_rows * s.vocab_size);
  }
  require(inv_freq.size() == s.rope_half, ErrorCode::kInvalidArgument,
          "workspace: {} rope frequencies for rope_half = {}", inv_freq.size(), s.rope_half);
  kernels::upload(Backend{}, inv_freq, inv_freq_.view());
}

using Workspace = BasicWorkspace<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template class BasicWorkspace<backend::cpu>;
extern template class BasicWorkspace<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template class BasicWorkspace<backend::cuda>;
#endif

}  // namespace moe
