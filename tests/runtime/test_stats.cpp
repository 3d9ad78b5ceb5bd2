// Run statistics: throughput arithmetic and the per-layer top-expert report.
#include <moe/runtime/expert_heatmap.hpp>
#include <moe/runtime/expert_stats.hpp>
#include <moe/runtime/stats.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <string>
#include <thread>

TEST_CASE("throughput is tokens over seconds, zero when nothing was timed", "[stats]") {
  moe::GenerationTimings t;
  CHECK(t.prompt_tokens_per_second() == 0.0);
  CHECK(t.generation_tokens_per_second() == 0.0);
  t.prompt_tokens = 12;
  t.prompt_seconds = 0.5;
  t.generated_tokens = 30;
  t.generation_seconds = 2.0;
  CHECK(t.prompt_tokens_per_second() == Approx(24.0));
  CHECK(t.generation_tokens_per_second() == Approx(15.0));
  moe::Stopwatch w;
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(w.seconds() >= 0.019);
}

TEST_CASE("top experts: most used first, ties by lower id, unused left out", "[stats]") {
  const std::array<std::uint64_t, 6> counts{10, 0, 31, 10, 22, 27};  // total 100
  const auto top = moe::top_experts(std::span<const std::uint64_t>(counts), 3);
  REQUIRE(top.size() == 3);
  CHECK(top[0].expert == 2);
  CHECK(top[0].fraction == Approx(0.31));
  CHECK(top[1].expert == 5);
  CHECK(top[2].expert == 4);
  CHECK(moe::format_expert_shares(top) == "e2 31%, e5 27%, e4 22%");
  const auto all = moe::top_experts(std::span<const std::uint64_t>(counts), 10);
  REQUIRE(all.size() == 5);  // expert 1 was never used
  CHECK(all[3].expert == 0);  // 10 each: lower id first
  CHECK(all[4].expert == 3);
  const std::array<std::uint64_t, 3> none{0, 0, 0};
  CHECK(moe::top_experts(std::span<const std::uint64_t>(none), 2).empty());
}

TEST_CASE("the usage report lists every routed layer and skips dense ones", "[stats]") {
  moe::ExpertUsage usage(3, 4);
  usage.layer(1)[3] = 6;
  usage.layer(1)[0] = 2;
  usage.layer(2)[1] = 5;
  const auto report = moe::expert_usage_report(usage, 2);
  REQUIRE(report.size() == 2);  // layer 0 is dense (no counts)
  CHECK(report[0].layer == 1);
  CHECK(report[0].assignments == 8);
  REQUIRE(report[0].top.size() == 2);
  CHECK(report[0].top[0].expert == 3);
  CHECK(report[0].top[0].fraction == Approx(0.75));
  CHECK(report[1].layer == 2);
  CHECK(moe::format_expert_shares(report[1].top) == "e1 100%");
  usage.reset();
  CHECK(moe::expert_usage_report(usage, 2).empty());
}

TEST_CASE("expert stats: shares, activation rate, imbalance, mean weight, windows", "[stats][experts]") {
  moe::ExpertCounts c;
  c.n_layers = 3;
  c.n_experts = 4;
  c.tokens = {0, 0, 0, 0, /*layer 1*/ 6, 2, 0, 0, /*layer 2*/ 3, 3, 3, 3};
  c.weight_sum = {0, 0, 0, 0, 3.0, 0.5, 0, 0, 0.9, 0.9, 0.9, 0.9};
  c.moe_layer = {false, true, true};
  const auto s = moe::expert_stats(c);
  REQUIRE(s.layers.size() == 2);
  const auto& l1 = s.layers[0];
  CHECK(l1.layer == 1);
  CHECK(l1.routed == 8);
  CHECK(l1.share == std::vector<double>{0.75, 0.25, 0.0, 0.0});
  CHECK(l1.active_experts == 2);
  CHECK(l1.activation_rate == Approx(0.5));
  CHECK(l1.max_over_mean == Approx(3.0));                  // 6 / 2
  CHECK(l1.cv == Approx(std::sqrt(6.0) / 2.0));            // counts 6,2,0,0: mean 2, variance 6
  CHECK(l1.mean_weight == std::vector<double>{0.5, 0.25, 0.0, 0.0});
  const auto& l2 = s.layers[1];
  CHECK(l2.activation_rate == 1.0);
  CHECK(l2.max_over_mean == Approx(1.0));
  CHECK(l2.cv == Approx(0.0).margin(1e-12));

  // A window: what was counted after an earlier copy.
  moe::ExpertCounts before = c;
  before.tokens = {0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
  before.weight_sum = {0, 0, 0, 0, 3.0, 0, 0, 0, 0, 0, 0, 0};
  const auto w = moe::expert_stats(c.since(before));
  CHECK(w.layers[0].tokens == std::vector<std::uint64_t>{0, 2, 0, 0});
  CHECK(w.layers[0].activation_rate == Approx(0.25));

  // From a workspace's counters (dense layers found by their zero counts when not told).
  moe::ExpertUsage usage(2, 3);
  usage.layer(1)[2] = 4;
  const auto from = moe::expert_stats(moe::ExpertCounts::from(usage));
  REQUIRE(from.layers.size() == 1);
  CHECK(from.layers[0].layer == 1);

  const auto j = moe::expert_stats_json(s);
  CHECK(j["n_experts"] == 4);
  CHECK(j["layers"][0]["activation_rate"] == 0.5);
  CHECK(j["layers"][0]["tokens"][0] == 6);
}

TEST_CASE("expert heatmap: an SVG with a cell per expert, labels, the rate per layer and a legend", "[stats][experts]") {
  moe::ExpertCounts c;
  c.n_layers = 2;
  c.n_experts = 5;
  c.tokens = {1, 0, 3, 0, 4, 2, 2, 2, 2, 0};
  c.weight_sum = std::vector<double>(10, 0.5);
  c.moe_layer = {true, true};
  const std::string svg = moe::expert_heatmap_svg(moe::expert_stats(c), "routing <test>");
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("routing &lt;test&gt;") != std::string::npos);  // the title is escaped
  std::size_t cells = 0;
  for (std::size_t p = svg.find("<title>layer "); p != std::string::npos; p = svg.find("<title>layer ", p + 1)) ++cells;
  CHECK(cells == 10);
  CHECK(svg.find(">layer 0</text>") != std::string::npos);
  CHECK(svg.find(">layer 1</text>") != std::string::npos);
  CHECK(svg.find("3/5 (60%)") != std::string::npos);  // layer 0: experts 0, 2, 4
  CHECK(svg.find("4/5 (80%)") != std::string::npos);
  CHECK(svg.find("url(#unused)") != std::string::npos);
  CHECK(svg.find("linearGradient id=\"scale\"") != std::string::npos);
  CHECK(svg.find("layer 0 expert 4: 4 tokens (50.0%)") != std::string::npos);
  CHECK(moe::expert_heatmap_svg(moe::ExpertStats{}).find("no routed tokens yet") != std::string::npos);
}
