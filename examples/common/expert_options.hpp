// Command-line options the tools share for elastic experts (--expert-top-k, --expert-threshold,
// --expert-min-k, --expert-renormalize) and for writing expert telemetry (--stats-json,
// --expert-heatmap).
#pragma once

#include "common/cli.hpp"

#include <moe/moe.hpp>
#include <moe/runtime/expert_heatmap.hpp>
#include <moe/runtime/expert_stats.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

namespace moe::cli {

inline constexpr const char* kExpertBudgetUsage =
    R"(  --expert-top-k K         elastic experts: use at most K of the model's routed experts per token
  --expert-threshold T     drop routed experts whose weight is below T x the top weight (0..1, 0 = off)
  --expert-min-k K         keep at least K experts under the threshold (default 1)
  --expert-renormalize M   auto (default: as the model's router, rescale when it normalises its
                           weights), always or never: rescale the kept weights to the routed mass
)";

// Consumes `flag` (and its value through `value`) when it is one of the budget options; values
// are checked against the model once it is loaded (ExpertBudget::validate).
template <class Value>
bool parse_expert_budget_flag(std::string_view flag, Value&& value, ExpertBudget& b) {
  if (flag == "--expert-top-k") {
    b.top_k = parse_number<std::int32_t>(flag, value(), 1, 1 << 16);
  } else if (flag == "--expert-threshold") {
    b.threshold = parse_number<float>(flag, value());
    require(b.threshold >= 0.0f && b.threshold <= 1.0f, ErrorCode::kInvalidArgument,
            "{} must be in [0, 1], got {}", flag, b.threshold);
  } else if (flag == "--expert-min-k") {
    b.min_k = parse_number<std::int32_t>(flag, value(), 1, 1 << 16);
  } else if (flag == "--expert-renormalize") {
    const std::string_view v = value();
    if (v == "auto") b.renormalize = ExpertBudget::Renormalize::kAuto;
    else if (v == "always") b.renormalize = ExpertBudget::Renormalize::kAlways;
    else if (v == "never") b.renormalize = ExpertBudget::Renormalize::kNever;
    else fail(ErrorCode::kInvalidArgument, "{} must be auto, always or never, got '{}'", flag, v);
  } else {
    return false;
  }
  return true;
}

inline std::string describe_budget(const ExpertBudget& b) {
  std::string s = b.top_k > 0 ? fmt::format("top-{}", b.top_k) : std::string("all routed");
  if (b.threshold > 0) s += fmt::format(", threshold {} (min {})", b.threshold, b.min_k > 0 ? b.min_k : 1);
  return s;
}

inline void write_text(const std::string& path, const std::string& text, std::string_view what) {
  std::ofstream out(path, std::ios::binary);
  require(static_cast<bool>(out), ErrorCode::kIo, "{}: cannot open '{}' for writing", what, path);
  out << text;
  out.flush();
  require(static_cast<bool>(out), ErrorCode::kIo, "{}: writing '{}' failed", what, path);
}

}  // namespace moe::cli
