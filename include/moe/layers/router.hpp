// MoE routers at the layer level: the checks of a router configuration done once at load time.
// The routing itself (every rule of the supported families) is the route kernel.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/limits.hpp"
#include "moe/kernels/reference/router.hpp"
#include "moe/core/tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

namespace moe::layers {

// The routing rules and their parameters live with the route kernel (kernels/reference/router.hpp).
using kernels::GroupScore;
using kernels::kMaxRouterGroups;
using kernels::RouterConfig;
using kernels::RouterScoring;
using kernels::router_scratch_floats;
// Routes one token on the host (the reference's per-token routine; tests and tools use it).
using kernels::detail::route_token;

// The routing decision for n_tokens tokens: expert_ids and weights are [n_tokens, top_k].
struct RouterOutput {
  View<std::int32_t, 2> expert_ids;
  View<float, 2> weights;
};

// Checks a router configuration; throws kConfig naming `source` on inconsistent values.
inline void validate_router(const RouterConfig& c, std::string_view source) {
  require(c.n_experts > 0, ErrorCode::kConfig, "{}: number of experts must be positive", source);
  require(c.n_experts <= static_cast<index_t>(limits::kMaxExperts), ErrorCode::kUnsupported,
          "{}: {} experts exceed the limit of {}", source, c.n_experts, limits::kMaxExperts);
  require(c.top_k > 0 && c.top_k <= c.n_experts, ErrorCode::kConfig,
          "{}: num_experts_per_tok = {} must be in [1, number of experts = {}]", source, c.top_k, c.n_experts);
  require(c.top_k <= static_cast<index_t>(limits::kMaxTopK), ErrorCode::kUnsupported,
          "{}: num_experts_per_tok = {} exceeds the limit of {}", source, c.top_k, limits::kMaxTopK);
  if (c.group_score != GroupScore::kNone) {
    require(c.n_group <= kMaxRouterGroups, ErrorCode::kUnsupported, "{}: n_group = {} exceeds {}", source, c.n_group,
            kMaxRouterGroups);
    require(c.n_group > 0 && c.n_experts % c.n_group == 0, ErrorCode::kConfig,
            "{}: n_group = {} must divide the number of experts = {}", source, c.n_group, c.n_experts);
    require(c.topk_group > 0 && c.topk_group <= c.n_group, ErrorCode::kConfig,
            "{}: topk_group = {} must be in [1, n_group = {}]", source, c.topk_group, c.n_group);
    require(c.top_k <= c.topk_group * (c.n_experts / c.n_group), ErrorCode::kConfig,
            "{}: num_experts_per_tok = {} exceeds the experts in topk_group = {} groups of {}", source, c.top_k,
            c.topk_group, c.n_experts / c.n_group);
    if (c.group_score == GroupScore::kTopTwo) {
      require(c.n_experts / c.n_group >= 2, ErrorCode::kConfig,
              "{}: noaux_tc routing needs at least 2 experts per group (n_experts = {}, n_group = {})", source,
              c.n_experts, c.n_group);
    }
  }
}

}  // namespace moe::layers
