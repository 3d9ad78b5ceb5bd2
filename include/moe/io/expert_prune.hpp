// Static expert pruning (moe-prune): from routing counts measured on a calibration text, keep each
// MoE layer's most-used experts and write a smaller Hugging Face checkpoint folder in which the
// router rows (and correction-bias entries) of the dropped experts are gone and the kept experts
// are renumbered 0..N-1 in their original order. Every other tensor is copied unchanged, and
// config.json gets the new expert count, so every tool loads the result as an ordinary model.
//
// Group-limited routers (DeepSeek, GLM: n_group > 1) keep N / n_group experts of every group, so
// the group structure the router relies on survives, when N is a multiple of n_group that leaves
// each group enough experts (two for noaux_tc's group score); otherwise the N most-used experts
// are kept over all groups and the result routes without groups (n_group = topk_group = 1).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/safetensors_writer.hpp"
#include "moe/io/tensor_store.hpp"
#include "moe/model/config.hpp"
#include "moe/runtime/expert_stats.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::io {

// Which experts each layer keeps: kept[l] lists original expert ids in increasing order (empty
// for a dense layer).
struct ExpertPrunePlan {
  index_t n_experts = 0;  // before
  index_t keep = 0;       // after, in every MoE layer
  std::vector<std::vector<std::int32_t>> kept;
  bool ungrouped = false;  // the group-limited router could not keep its groups: n_group becomes 1
};

// The plan that keeps, in each MoE layer, the `keep` experts that were routed the most tokens in
// `counts` (ties: the larger routing-weight sum, then the lower id); with n_group > 1, the
// keep / n_group most used of every group. Errors (kInvalidArgument): keep not in
// [top_k, n_experts], not a multiple of n_group, too few experts left for top_k in the kept groups,
// counts of another shape.
inline ExpertPrunePlan plan_expert_pruning(const ModelConfig& c, const ExpertCounts& counts, index_t keep) {
  require(c.n_experts > 0, ErrorCode::kInvalidArgument, "moe-prune: {} has no routed experts", c.architecture);
  require(keep >= c.top_k && keep <= c.n_experts, ErrorCode::kInvalidArgument,
          "moe-prune: keep = {} must be in [num_experts_per_tok = {}, experts = {}]", keep, c.top_k, c.n_experts);
  require(counts.n_layers == c.n_layers && counts.n_experts == c.n_experts, ErrorCode::kInvalidArgument,
          "moe-prune: routing counts are [{} layers, {} experts], the model has [{}, {}]", counts.n_layers,
          counts.n_experts, c.n_layers, c.n_experts);
  index_t groups = c.router.group_score == layers::GroupScore::kNone ? 1 : std::max<index_t>(c.router.n_group, 1);
  const index_t min_per_group = c.router.group_score == layers::GroupScore::kTopTwo ? 2 : 1;
  ExpertPrunePlan plan;
  if (groups > 1 && (keep % groups != 0 || keep / groups < min_per_group ||
                     c.top_k > c.router.topk_group * (keep / groups))) {
    groups = 1;
    plan.ungrouped = true;
  }
  const index_t per_group = c.n_experts / groups, keep_per_group = keep / groups;
  plan.n_experts = c.n_experts;
  plan.keep = keep;
  plan.kept.resize(c.n_layers);
  for (index_t l = 0; l < c.n_layers; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const auto tokens = [&](index_t e) { return counts.tokens[l * c.n_experts + e]; };
    const auto weight = [&](index_t e) { return counts.weight_sum[l * c.n_experts + e]; };
    for (index_t g = 0; g < groups; ++g) {
      std::vector<std::int32_t> ids(per_group);
      std::iota(ids.begin(), ids.end(), static_cast<std::int32_t>(g * per_group));
      std::stable_sort(ids.begin(), ids.end(), [&](std::int32_t a, std::int32_t b) {
        if (tokens(a) != tokens(b)) return tokens(a) > tokens(b);
        if (weight(a) != weight(b)) return weight(a) > weight(b);
        return a < b;
      });
      plan.kept[l].insert(plan.kept[l].end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep_per_group));
    }
    std::sort(plan.kept[l].begin(), plan.kept[l].end());
  }
  return plan;
}

struct PruneReport {
  std::size_t bytes_in = 0;   // tensor bytes read
  std::size_t bytes_out = 0;  // tensor bytes written
  std::size_t tensors = 0;    // tensors written
  std::size_t sliced = 0;     // of them, cut down along the expert dimension
};

namespace detail {

// "model.layers.{l}." + the MoE block's spelling that this checkpoint uses.
inline std::optional<std::string> moe_block_prefix(const TensorStore& store, const model::ArchitectureSpec& s,
                                                   index_t l) {
  const std::string layer = fmt::format("model.layers.{}.", l);
  for (const std::string_view block : {s.moe_prefix, s.moe_prefix_alt}) {
    if (block.empty()) continue;
    const std::string p = layer + std::string(block) + ".";
    for (const std::string_view router : {s.router_name, s.router_name_alt}) {
      if (!router.empty() && store.contains(p + std::string(router) + ".weight")) return p;
    }
  }
  return std::nullopt;
}

// Rows `kept` of a tensor whose dimension `dim` (0 or 1) has n_experts entries, as new bytes.
inline std::vector<std::byte> take_experts(const TensorInfo& t, std::size_t dim, std::span<const std::int32_t> kept) {
  std::size_t outer = 1, inner = t.element_size;
  for (std::size_t d = 0; d < dim; ++d) outer *= static_cast<std::size_t>(t.shape[d]);
  for (std::size_t d = dim + 1; d < t.shape.size(); ++d) inner *= static_cast<std::size_t>(t.shape[d]);
  const auto n = static_cast<std::size_t>(t.shape[dim]);
  std::vector<std::byte> out(outer * kept.size() * inner);
  std::byte* o = out.data();
  for (std::size_t a = 0; a < outer; ++a) {
    for (const std::int32_t e : kept) {
      std::copy_n(t.bytes.data() + (a * n + static_cast<std::size_t>(e)) * inner, inner, o);
      o += inner;
    }
  }
  return out;
}

// The expert index of "{prefix}experts.{e}.rest", or -1.
inline std::int64_t indexed_expert(std::string_view name, std::string_view prefix, std::string* rest) {
  const std::string head = std::string(prefix) + "experts.";
  if (!name.starts_with(head)) return -1;
  const std::string_view tail = name.substr(head.size());
  const auto dot = tail.find('.');
  if (dot == std::string_view::npos || dot == 0) return -1;
  std::int64_t e = 0;
  for (const char ch : tail.substr(0, dot)) {
    if (ch < '0' || ch > '9' || e > (std::int64_t{1} << 40)) return -1;
    e = e * 10 + (ch - '0');
  }
  *rest = std::string(tail.substr(dot));
  return e;
}

}  // namespace detail

// Writes the pruned checkpoint of the folder `in` (config `c`, parsed from it) to the folder `out`
// (config.json, model.safetensors, and the tokenizer / generation files copied as they are).
// Errors: kUnsupported for tensors the writer cannot hold (FP8, MXFP4 blocks: f32/bf16/f16 only)
// and an expert tensor whose expert dimension is not n_experts; kIo for the files.
inline PruneReport prune_experts(const std::filesystem::path& in, const ModelConfig& c, const ExpertPrunePlan& plan,
                                 const std::filesystem::path& out) {
  return catch_as_error("prune_experts", [&] {
    require(std::filesystem::weakly_canonical(in) != std::filesystem::weakly_canonical(out), ErrorCode::kInvalidArgument,
            "moe-prune: the output folder {} is the input folder", out.string());
    const TensorStore store = TensorStore::open_folder(in);
    const model::ArchitectureSpec& s = *c.spec;
    const auto E = static_cast<index_t>(plan.n_experts);
    // Per MoE layer: the block prefix and the names of its per-expert-row router tensors.
    std::vector<std::optional<std::string>> block(c.n_layers);
    for (index_t l = 0; l < c.n_layers; ++l) {
      if (!plan.kept[l].empty()) {
        block[l] = detail::moe_block_prefix(store, s, l);
        require(block[l].has_value(), ErrorCode::kMissingTensor, "moe-prune: layer {}: no router weight under {}", l,
                fmt::format("model.layers.{}.{}", l, s.moe_prefix));
      }
    }
    PruneReport report;
    // Sliced tensors are produced one at a time while the file is written (no second copy of the
    // expert banks in memory).
    std::vector<SafetensorsTensor> tensors;
    std::vector<std::string> names = store.names();
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const TensorInfo& t = store.get(name);
      require(t.dtype.has_value(), ErrorCode::kUnsupported,
              "moe-prune: tensor {} is {} (the writer holds F32, BF16 and F16 tensors)", name, t.dtype_name);
      report.bytes_in += t.bytes.size();
      SafetensorsTensor o{name, *t.dtype, t.shape, t.bytes, {}};
      // Which layer's MoE block holds it, if any.
      index_t layer = c.n_layers;
      for (index_t l = 0; l < c.n_layers && layer == c.n_layers; ++l) {
        if (block[l] && name.starts_with(*block[l])) layer = l;
      }
      if (layer < c.n_layers) {
        const std::string& p = *block[layer];
        const std::vector<std::int32_t>& kept = plan.kept[layer];
        std::string rest;
        const std::int64_t e = detail::indexed_expert(name, p, &rest);
        const auto named = [&](std::string_view leaf) { return !leaf.empty() && name == p + std::string(leaf); };
        // Stacked banks: under "experts.", or Granite's input_linear / output_linear.
        const bool under_experts =
            name.starts_with(p + "experts.") || named(s.fused_gate_up_alt) || named(s.fused_down_alt);
        const bool routerish = !under_experts && !t.shape.empty() &&
                               (t.shape[0] == E || (t.shape.size() == 2 && t.shape[0] == 1 && t.shape[1] == E));
        const auto is = [&](std::string_view leaf) {
          return !leaf.empty() && name.starts_with(p + std::string(leaf) + ".");
        };
        const bool router = is(s.router_name) || is(s.router_name_alt) ||
                            (s.correction_bias && (name == p + std::string(s.correction_bias_name) ||
                                                   name == p + std::string(s.correction_bias_name_alt)));
        if (e >= 0) {
          const auto it = std::lower_bound(kept.begin(), kept.end(), static_cast<std::int32_t>(e));
          if (it == kept.end() || *it != e) continue;  // a dropped expert
          o.name = fmt::format("{}experts.{}{}", p, it - kept.begin(), rest);
        } else if (under_experts || (router && routerish)) {
          // A stacked bank [E, ...], or the router's rows / bias / correction bias ([E] or [1, E]).
          const std::size_t dim = !t.shape.empty() && t.shape[0] == E ? 0 : 1;
          require(t.shape.size() > dim && t.shape[dim] == E, ErrorCode::kUnsupported,
                  "moe-prune: tensor {} of shape [{}] has no dimension of the {} experts", name,
                  fmt::join(t.shape, ", "), E);
          o.shape[dim] = static_cast<index_t>(kept.size());
          o.bytes = {};
          o.produce = [&t, dim, &kept] { return detail::take_experts(t, dim, kept); };
          ++report.sliced;
          report.bytes_out += t.bytes.size() / static_cast<std::size_t>(E) * kept.size();
          tensors.push_back(std::move(o));
          continue;
        }
      }
      report.bytes_out += o.bytes.size();
      tensors.push_back(std::move(o));
    }
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    require(!ec, ErrorCode::kIo, "cannot create folder {}: {}", out.string(), ec.message());
    write_safetensors(out / "model.safetensors", tensors);
    report.tensors = tensors.size();

    // config.json: the same keys with the new expert count (in the spelling the file uses).
    nlohmann::json cfg = read_json_file(in / "config.json", limits::kMaxConfigJsonBytes, "config.json");
    require(cfg.is_object(), ErrorCode::kConfig, "{}: not a JSON object", (in / "config.json").string());
    std::string key(s.n_experts_key);
    if (!cfg.contains(key) && !s.n_experts_key_alt.empty() && cfg.contains(std::string(s.n_experts_key_alt))) {
      key = std::string(s.n_experts_key_alt);
    }
    cfg[key] = plan.keep;
    if (plan.ungrouped) {
      cfg["n_group"] = 1;
      cfg["topk_group"] = 1;
    }
    (void)ModelConfig::from_json(cfg, (out / "config.json").string());  // the result must load
    {
      std::ofstream f(out / "config.json", std::ios::binary | std::ios::trunc);
      f << cfg.dump(2) << "\n";
      require(f.good(), ErrorCode::kIo, "cannot write {}", (out / "config.json").string());
    }
    for (const char* extra : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                              "generation_config.json", "chat_template.jinja"}) {
      if (std::filesystem::exists(in / extra)) {
        std::filesystem::copy_file(in / extra, out / extra, std::filesystem::copy_options::overwrite_existing, ec);
        require(!ec, ErrorCode::kIo, "cannot copy {}: {}", (in / extra).string(), ec.message());
      }
    }
    return report;
  });
}

}  // namespace moe::io
