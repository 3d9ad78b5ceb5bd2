// Run statistics: throughput arithmetic and the per-layer top-expert report.
#include <moe/runtime/stats.hpp>

#include <catch2/catch.hpp>

#include <array>
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
