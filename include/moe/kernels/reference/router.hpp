// MoE routing (the oracle; the cpu backend uses it as is: routing is cheap next to the expert
// GEMMs): router logits -> the top_k experts of each token and their mixing weights, for every
// routing rule of the supported families (Mixtral/Qwen/OLMoE softmax-top-k, DeepSeek-V2
// group-limited greedy, DeepSeek-V3/GLM-4-MoE noaux_tc, GPT-OSS top-k-then-softmax).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/softmax.hpp"
#include "moe/kernels/reference/top_k.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

namespace moe::kernels {

enum class RouterScoring : std::uint8_t {
  kSoftmax,      // softmax over all experts (Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V2)
  kSigmoid,      // independent sigmoid per expert (DeepSeek-V3, GLM-4-MoE)
  kTopkSoftmax,  // pick top_k raw logits, softmax over just those (GPT-OSS)
};

enum class GroupScore : std::uint8_t {
  kNone,     // no group restriction
  kMax,      // group score = best expert in the group (DeepSeek-V2 group_limited_greedy)
  kTopTwo,   // group score = sum of the two best (DeepSeek-V3 / GLM-4-MoE noaux_tc)
};

struct RouterConfig {
  RouterScoring scoring = RouterScoring::kSoftmax;
  GroupScore group_score = GroupScore::kNone;
  index_t n_experts = 0;
  index_t top_k = 0;
  index_t n_group = 1;
  index_t topk_group = 1;
  bool norm_topk_prob = false;            // divide the chosen weights by their sum
  float renorm_epsilon = 0.0f;            // added to that sum (1e-20 in the sigmoid routers)
  float routed_scaling_factor = 1.0f;     // multiplies the final weights
  bool has_correction_bias = false;       // e_score_correction_bias: selection only
  // What the experts of dropped groups score in the final top-k. transformers 5: DeepSeek-V2's
  // group_limited_greedy masks them to 0.0 (softmax scores are positive, so they only fill up a
  // top-k larger than the kept experts, with weight 0); DeepSeek-V3 / GLM-4-MoE mask them to -inf,
  // so a kept expert whose biased score is negative still wins over every dropped one.
  bool dropped_groups_to_minus_inf = true;
  // Llama 4 (Llama4TextMoe): the routing weight scales the expert's INPUT, expert_e(w · x), and the
  // outputs are summed unweighted; elsewhere the output is weighted, w · expert_e(x). The route
  // kernel ignores it (the MoE block applies it).
  bool weights_scale_inputs = false;
};

// The routing decision for n_tokens tokens: expert_ids and weights are [n_tokens, top_k].
struct RouterOutput {
  View<std::int32_t, 2> expert_ids;
  View<float, 2> weights;
};

// Scratch a router needs per token: n_experts scores + n_experts choice scores + n_group.
inline constexpr index_t router_scratch_floats(const RouterConfig& c) noexcept {
  return 2 * c.n_experts + c.n_group;
}

// The most expert groups a router handles (group scores live on the stack).
inline constexpr index_t kMaxRouterGroups = static_cast<index_t>(limits::kMaxExpertGroups);

namespace detail {

// Routes one token. logits: [n_experts] router logits (GPT-OSS: bias already added);
// correction_bias: [n_experts] or empty; scratch: router_scratch_floats(c) floats;
// ids/weights: [top_k] outputs. Pure function of its inputs; thread-safe.
inline void route_token(const RouterConfig& c, std::span<const float> logits, std::span<const float> correction_bias,
                        std::span<float> scratch, std::span<std::int32_t> ids, std::span<float> weights) {
  const index_t n = c.n_experts;
  const index_t k = c.top_k;
  float* scores = scratch.data();          // [n] the probabilities the weights come from
  float* choice = scratch.data() + n;      // [n] what the selection ranks
  float* group = scratch.data() + 2 * n;   // [n_group]

  if (c.scoring == RouterScoring::kTopkSoftmax) {
    // GPT-OSS: top_k of the raw logits, then softmax over the chosen values only.
    detail::select_top_k(logits, ids);
    for (index_t j = 0; j < k; ++j) weights[j] = logits[ids[j]];
    detail::softmax_row(weights.data(), k);
    return;
  }

  if (c.scoring == RouterScoring::kSoftmax) {
    std::copy_n(logits.data(), n, scores);
    detail::softmax_row(scores, n);
  } else {
    for (index_t e = 0; e < n; ++e) scores[e] = detail::sigmoid_scalar(logits[e]);
  }

  // DeepSeek-V3's e_score_correction_bias (auxiliary-loss-free balancing) shifts which experts
  // are chosen but not how much they weigh: the weights below are gathered from the unbiased
  // scores (DeepSeek-V3 report §2.1.2).
  for (index_t e = 0; e < n; ++e) {
    choice[e] = scores[e] + (correction_bias.empty() ? 0.0f : correction_bias[e]);
  }

  if (c.group_score != GroupScore::kNone && c.n_group > 1) {
    const index_t per_group = n / c.n_group;
    for (index_t g = 0; g < c.n_group; ++g) {
      const float* s = choice + g * per_group;
      if (c.group_score == GroupScore::kMax) {
        float best = -std::numeric_limits<float>::infinity();
        for (index_t e = 0; e < per_group; ++e) best = std::max(best, s[e]);
        group[g] = best;
      } else {
        float first = -std::numeric_limits<float>::infinity(), second = first;
        for (index_t e = 0; e < per_group; ++e) {
          if (s[e] > first) {
            second = first;
            first = s[e];
          } else if (s[e] > second) {
            second = s[e];
          }
        }
        group[g] = first + second;
      }
    }
    // Keep the topk_group best groups; mask the others (see dropped_groups_to_minus_inf).
    std::int32_t kept[kMaxRouterGroups];
    bool keep[kMaxRouterGroups] = {};
    std::span<std::int32_t> kept_groups(kept, std::min<index_t>(c.topk_group, kMaxRouterGroups));
    detail::select_top_k(std::span<const float>(group, c.n_group), kept_groups);
    for (const std::int32_t g : kept_groups) keep[g] = true;
    for (index_t g = 0; g < c.n_group; ++g) {
      if (!keep[g]) {
        const float dropped = c.dropped_groups_to_minus_inf ? -std::numeric_limits<float>::infinity() : 0.0f;
        for (index_t e = 0; e < per_group; ++e) choice[g * per_group + e] = dropped;
      }
    }
  }

  detail::select_top_k(std::span<const float>(choice, n), ids);
  float sum = 0;
  for (index_t j = 0; j < k; ++j) {
    weights[j] = scores[ids[j]];
    sum += weights[j];
  }
  if (c.norm_topk_prob) {
    const float denom = sum + c.renorm_epsilon;
    for (index_t j = 0; j < k; ++j) weights[j] /= denom;
  }
  if (c.routed_scaling_factor != 1.0f) {
    for (index_t j = 0; j < k; ++j) weights[j] *= c.routed_scaling_factor;
  }
}

}  // namespace detail

// Routes n tokens: logits [n, n_experts] (GPT-OSS: router bias added), correction [n_experts]
// f32 e_score_correction_bias or [0], scratch >= router_scratch_floats(c) floats, ids and
// weights [n, top_k]. The configuration was checked at load time (layers::validate_router).
inline void route(backend::reference, const RouterConfig& c, View<const float, 2> logits,
                  View<const float, 1> correction, View<float, 1> scratch, View<std::int32_t, 2> ids,
                  View<float, 2> weights) {
  require(logits.extent(1) == c.n_experts && ids.extent(0) == logits.extent(0) && weights.extent(0) == logits.extent(0) &&
              ids.extent(1) == c.top_k && weights.extent(1) == c.top_k &&
              scratch.extent(0) >= router_scratch_floats(c) &&
              (correction.extent(0) == 0 || correction.extent(0) == c.n_experts),
          ErrorCode::kInvalidArgument, "route: logits [{}, {}], ids [{}, {}], weights [{}, {}] for {} experts, top {}",
          logits.extent(0), logits.extent(1), ids.extent(0), ids.extent(1), weights.extent(0), weights.extent(1),
          c.n_experts, c.top_k);
  const std::span<const float> bias(correction.data(), correction.extent(0));
  for (index_t t = 0; t < logits.extent(0); ++t) {
    detail::route_token(c, std::span<const float>(&logits(t, 0), c.n_experts), bias,
                        std::span<float>(scratch.data(), router_scratch_floats(c)),
                        std::span<std::int32_t>(&ids(t, 0), c.top_k), std::span<float>(&weights(t, 0), c.top_k));
  }
}

}  // namespace moe::kernels
