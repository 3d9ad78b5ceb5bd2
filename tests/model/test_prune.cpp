// Static expert pruning (io/expert_prune.hpp) on committed fixtures of several checkpoint layouts
// (per-expert hub names, fused banks with router biases, Granite's input_linear banks): keeping
// the experts a prompt was routed to leaves that prompt's logits unchanged for routers whose
// chosen weights do not depend on the other experts (renormalised softmax, top-k-then-softmax).
#include <catch2/catch.hpp>

#include <moe/io/expert_prune.hpp>
#include <moe/io/load_model.hpp>
#include <moe/runtime/expert_stats.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

using namespace moe;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return fs::path(MOE_FIXTURES_DIR) / "models" / name; }

struct Run {
  Tensor<float, 2> logits;
  ExpertCounts counts;
};

Run run(const Model& model, const std::vector<std::int32_t>& ids) {
  const index_t n = ids.size();
  KvCache cache = model.make_cache(n);
  Workspace ws = model.make_workspace(n);
  Run r{Tensor<float, 2>({n, model.config().vocab_size}), {}};
  const Model::SequenceChunk chunk{&cache, ids};
  model.forward({&chunk, 1}, ws, r.logits.view(), /*all_positions=*/true);
  r.counts = ExpertCounts::from(ws.expert_usage());
  return r;
}

// The most experts any layer used.
index_t most_used(const ExpertCounts& c) {
  index_t most = 0;
  for (index_t l = 0; l < c.n_layers; ++l) {
    index_t used = 0;
    for (index_t e = 0; e < c.n_experts; ++e) used += c.tokens[l * c.n_experts + e] > 0 ? 1 : 0;
    most = std::max(most, used);
  }
  return most;
}

fs::path temp_dir(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("moe_prune_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  return p;
}

}  // namespace

TEST_CASE("prune: keeping the routed experts leaves the prompt's logits unchanged", "[prune]") {
  // One token routes to exactly top_k experts per layer (the 4-expert fixtures use all 4 on more).
  const std::vector<std::int32_t> ids{5};
  for (const std::string name : {"mixtral", "gpt_oss", "qwen3_moe", "granitemoe", "minimax_m2_bf16"}) {
    DYNAMIC_SECTION(name) {
      const auto model = load_model(fixture(name));
      const Run before = run(*model, ids);
      const index_t keep = std::max(most_used(before.counts), model->config().top_k);
      REQUIRE(keep < model->config().n_experts);  // the test prunes something
      const io::ExpertPrunePlan plan = io::plan_expert_pruning(model->config(), before.counts, keep);
      const fs::path out = temp_dir(name);
      const io::PruneReport report = io::prune_experts(fixture(name), model->config(), plan, out);
      CHECK(report.bytes_out < report.bytes_in);
      const auto pruned = load_model(out);
      CHECK(pruned->config().n_experts == keep);
      const Run after = run(*pruned, ids);
      float worst = 0;
      for (index_t i = 0; i < before.logits.size(); ++i) {
        worst = std::max(worst, std::fabs(before.logits.data()[i] - after.logits.data()[i]));
      }
      CHECK(worst < 1e-4f);
      // The kept experts took every routed slot, renumbered in their original order.
      for (index_t l = 0; l < model->config().n_layers; ++l) {
        for (std::size_t j = 0; j < plan.kept[l].size(); ++j) {
          CHECK(after.counts.tokens[l * keep + j] == before.counts.tokens[l * model->config().n_experts + plan.kept[l][j]]);
        }
      }
      fs::remove_all(out);
    }
  }
}

TEST_CASE("prune: plans keep groups when they can, and reject impossible sizes", "[prune]") {
  const auto model = load_model(fixture("deepseek_v3"));  // 16 experts in 4 groups, top-3
  const ModelConfig& c = model->config();
  ExpertCounts counts;
  counts.n_layers = c.n_layers;
  counts.n_experts = c.n_experts;
  counts.tokens.assign(c.n_layers * c.n_experts, 0);
  counts.weight_sum.assign(c.n_layers * c.n_experts, 0.0);
  for (index_t e = 0; e < c.n_experts; ++e) counts.tokens[1 * c.n_experts + e] = e % 4 == 0 ? 100 : e;  // layer 1
  io::ExpertPrunePlan p = io::plan_expert_pruning(c, counts, 8);  // 2 of each group of 4
  CHECK_FALSE(p.ungrouped);
  CHECK(p.kept[0].empty());  // the dense layer
  CHECK(p.kept[1] == std::vector<std::int32_t>{0, 3, 4, 7, 8, 11, 12, 15});
  p = io::plan_expert_pruning(c, counts, 6);  // not a multiple of 4: over all groups
  CHECK(p.ungrouped);
  CHECK(p.kept[1] == std::vector<std::int32_t>{0, 4, 8, 12, 14, 15});
  CHECK_THROWS_AS(io::plan_expert_pruning(c, counts, 2), Error);   // below top_k
  CHECK_THROWS_AS(io::plan_expert_pruning(c, counts, 17), Error);  // above n_experts
  counts.n_experts = 8;
  CHECK_THROWS_AS(io::plan_expert_pruning(c, counts, 8), Error);   // counts of another model
}
