// Workspace: every activation buffer a forward pass needs for up to max_batch_tokens tokens,
// allocated once (llama2.c's RunState, gemma.cpp's Activations) so that forward never allocates.
// Also holds the per-layer, per-expert routing counters that moe-run reports.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cstdint>
#include <span>

namespace moe {

// Tokens routed to each expert of each layer since the last reset.
class ExpertUsage {
 public:
  ExpertUsage() = default;
  ExpertUsage(index_t n_layers, index_t n_experts) : n_layers_(n_layers), n_experts_(n_experts), counts_(n_layers * n_experts) {}

  index_t n_layers() const noexcept { return n_layers_; }
  index_t n_experts() const noexcept { return n_experts_; }
  std::uint64_t count(index_t layer, index_t expert) const noexcept { return counts_[layer * n_experts_ + expert]; }
  // Counters of one layer, [n_experts] (all zero for dense layers).
  std::span<std::uint64_t> layer(index_t l) noexcept { return counts_.span().subspan(l * n_experts_, n_experts_); }
  std::span<const std::uint64_t> layer(index_t l) const noexcept {
    return counts_.span().subspan(l * n_experts_, n_experts_);
  }
  void reset() noexcept { std::fill_n(counts_.data(), counts_.size(), std::uint64_t{0}); }

 private:
  index_t n_layers_ = 0;
  index_t n_experts_ = 0;
  AlignedBuffer<std::uint64_t> counts_;
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

  // Same model shape (everything but max_tokens).
  bool same_model(const WorkspaceSizes& o) const noexcept {
    return d_model == o.d_model && q_width == o.q_width && k_width == o.k_width && v_width == o.v_width &&
           attn_width == o.attn_width && q_lora_rank == o.q_lora_rank && latent_width == o.latent_width &&
           rope_half == o.rope_half && n_experts == o.n_experts && top_k == o.top_k &&
           router_scratch == o.router_scratch && n_layers == o.n_layers && vocab_size == o.vocab_size &&
           n_heads == o.n_heads && ffn_per_token == o.ffn_per_token;
  }
};

class Workspace {
 public:
  Workspace() = default;

  explicit Workspace(const WorkspaceSizes& s) : sizes_(s), usage_(s.n_layers, s.n_experts) {
    const index_t n = s.max_tokens;
    require(n > 0, ErrorCode::kInvalidArgument, "workspace for 0 tokens");
    const index_t slots = n * s.top_k;
    hidden_.resize(n * s.d_model);
    normed_.resize(n * s.d_model);
    out_.resize(n * s.d_model);
    q_.resize(n * s.q_width);
    k_.resize(n * s.k_width);
    v_.resize(n * s.v_width);
    attn_.resize(n * s.attn_width);
    q_a_.resize(n * s.q_lora_rank);
    q_latent_.resize(n * s.latent_width);
    out_latent_.resize(n * s.latent_width);
    cos_.resize(n * s.rope_half);
    sin_.resize(n * s.rope_half);
    positions_.resize(n);
    logits_.resize(n * std::max<index_t>(s.n_experts, 1));
    ids_.resize(slots);
    weights_.resize(slots);
    router_scratch_.resize(s.router_scratch);
    correction_.resize(s.n_experts);
    counts_.resize(s.n_experts + 1);
    slot_token_.resize(slots);
    slot_weight_.resize(slots);
    xs_.resize(slots * s.d_model);
    ys_.resize(slots * s.d_model);
    ffn_.resize(n * s.ffn_per_token);
    shared_out_.resize(n * s.d_model);
    sinks_.resize(s.n_heads);
    rope_inv_freq_.resize(s.rope_half);
  }

  index_t max_tokens() const noexcept { return sizes_.max_tokens; }
  const WorkspaceSizes& sizes() const noexcept { return sizes_; }

  ExpertUsage& expert_usage() noexcept { return usage_; }
  const ExpertUsage& expert_usage() const noexcept { return usage_; }
  void reset_expert_usage() noexcept { usage_.reset(); }

  // Views over the first n tokens of each buffer (used by Transformer).
  View<float, 2> hidden(index_t n) noexcept { return {hidden_.data(), {n, sizes_.d_model}}; }
  View<float, 2> normed(index_t n) noexcept { return {normed_.data(), {n, sizes_.d_model}}; }
  View<float, 2> out(index_t n) noexcept { return {out_.data(), {n, sizes_.d_model}}; }
  View<float, 2> q(index_t n) noexcept { return {q_.data(), {n, sizes_.q_width}}; }
  View<float, 2> k(index_t n) noexcept { return {k_.data(), {n, sizes_.k_width}}; }
  View<float, 2> v(index_t n) noexcept { return {v_.data(), {n, sizes_.v_width}}; }
  View<float, 2> attn(index_t n) noexcept { return {attn_.data(), {n, sizes_.attn_width}}; }
  View<float, 2> q_a(index_t n) noexcept { return {q_a_.data(), {n, sizes_.q_lora_rank}}; }
  View<float, 2> q_latent(index_t n) noexcept { return {q_latent_.data(), {n, sizes_.latent_width}}; }
  View<float, 2> out_latent(index_t n) noexcept { return {out_latent_.data(), {n, sizes_.latent_width}}; }
  View<float, 2> cos(index_t n) noexcept { return {cos_.data(), {n, sizes_.rope_half}}; }
  View<float, 2> sin(index_t n) noexcept { return {sin_.data(), {n, sizes_.rope_half}}; }
  std::span<std::int64_t> positions(index_t n) noexcept { return positions_.span().first(n); }

  View<float, 2> router_logits() noexcept { return {logits_.data(), {sizes_.max_tokens, std::max<index_t>(sizes_.n_experts, 1)}}; }
  View<std::int32_t, 2> expert_ids() noexcept { return {ids_.data(), {sizes_.max_tokens, sizes_.top_k}}; }
  View<float, 2> expert_weights() noexcept { return {weights_.data(), {sizes_.max_tokens, sizes_.top_k}}; }
  std::span<float> router_scratch() noexcept { return router_scratch_.span(); }
  std::span<float> correction() noexcept { return correction_.span(); }
  std::span<std::int32_t> counts() noexcept { return counts_.span(); }
  std::span<std::int32_t> slot_token() noexcept { return slot_token_.span(); }
  std::span<float> slot_weight() noexcept { return slot_weight_.span(); }
  View<float, 2> xs() noexcept { return {xs_.data(), {sizes_.max_tokens * sizes_.top_k, sizes_.d_model}}; }
  View<float, 2> ys() noexcept { return {ys_.data(), {sizes_.max_tokens * sizes_.top_k, sizes_.d_model}}; }
  std::span<float> ffn() noexcept { return ffn_.span(); }
  std::span<float> sinks() noexcept { return sinks_.span(); }
  std::span<float> rope_inv_freq() noexcept { return rope_inv_freq_.span(); }  // dynamic NTK scratch
  View<float, 2> shared_out() noexcept { return {shared_out_.data(), {sizes_.max_tokens, sizes_.d_model}}; }

 private:
  WorkspaceSizes sizes_;
  ExpertUsage usage_;
  AlignedBuffer<float> hidden_, normed_, out_, q_, k_, v_, attn_, q_a_, q_latent_, out_latent_, cos_, sin_;
  AlignedBuffer<std::int64_t> positions_;
  AlignedBuffer<float> logits_, weights_, router_scratch_, correction_, slot_weight_, xs_, ys_, ffn_, shared_out_, sinks_, rope_inv_freq_;
  AlignedBuffer<std::int32_t> ids_, counts_, slot_token_;
};

}  // namespace moe
