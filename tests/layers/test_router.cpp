// Routers on hand-computed cases: softmax-top-k with and without renormalisation, ties, sigmoid
// with a selection-only correction bias, group-limited routing (max and top-two group scores,
// dropped groups masked to -inf or 0.0 as in transformers), GPT-OSS top-k-then-softmax, scaling, validation.
#include <catch2/catch.hpp>

#include <moe/layers/router.hpp>

#include <cmath>
#include <vector>

using namespace moe;
using namespace moe::layers;

namespace {

struct Routed {
  std::vector<std::int32_t> ids;
  std::vector<float> weights;
};

Routed route(const RouterConfig& c, std::vector<float> logits, std::vector<float> bias = {}) {
  std::vector<float> scratch(router_scratch_floats(c));
  Routed r{std::vector<std::int32_t>(c.top_k), std::vector<float>(c.top_k)};
  route_token(c, logits, bias, scratch, r.ids, r.weights);
  return r;
}

std::vector<double> softmax(const std::vector<float>& x) {
  double mx = -1e300, s = 0;
  for (float v : x) mx = std::max(mx, static_cast<double>(v));
  std::vector<double> p(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) s += p[i] = std::exp(x[i] - mx);
  for (auto& v : p) v /= s;
  return p;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

}  // namespace

TEST_CASE("softmax top-k, with and without renormalisation", "[router]") {
  RouterConfig c;
  c.n_experts = 5;
  c.top_k = 2;
  const std::vector<float> logits{0.1f, 2.0f, -1.0f, 1.5f, 0.3f};
  const auto p = softmax(logits);
  auto r = route(c, logits);
  CHECK(r.ids == std::vector<std::int32_t>{1, 3});
  CHECK(r.weights[0] == Approx(p[1]).epsilon(1e-6));
  CHECK(r.weights[1] == Approx(p[3]).epsilon(1e-6));
  c.norm_topk_prob = true;
  r = route(c, logits);
  CHECK(r.weights[0] == Approx(p[1] / (p[1] + p[3])).epsilon(1e-6));
  CHECK(r.weights[1] == Approx(p[3] / (p[1] + p[3])).epsilon(1e-6));
  c.routed_scaling_factor = 2.5f;
  r = route(c, logits);
  CHECK(r.weights[0] + r.weights[1] == Approx(2.5).epsilon(1e-6));
}

TEST_CASE("ties go to the lower expert index", "[router]") {
  RouterConfig c;
  c.n_experts = 6;
  c.top_k = 3;
  const auto r = route(c, {0.5f, 1.0f, 0.5f, 1.0f, 0.5f, -2.0f});
  CHECK(r.ids == std::vector<std::int32_t>{1, 3, 0});
}

TEST_CASE("sigmoid router: the correction bias selects, the unbiased scores weigh", "[router]") {
  RouterConfig c;
  c.scoring = RouterScoring::kSigmoid;
  c.n_experts = 4;
  c.top_k = 2;
  c.norm_topk_prob = true;
  c.renorm_epsilon = 1e-20f;
  c.has_correction_bias = true;
  const std::vector<float> logits{2.0f, 1.0f, 0.0f, -1.0f};
  const std::vector<float> bias{0.0f, 0.0f, 0.5f, 1.0f};  // biased: 0.88, 0.73, 1.0, 1.27
  const auto r = route(c, logits, bias);
  CHECK(r.ids == std::vector<std::int32_t>{3, 2});
  const double s3 = sigmoid(-1.0), s2 = sigmoid(0.0);
  CHECK(r.weights[0] == Approx(s3 / (s3 + s2)).epsilon(1e-6));
  CHECK(r.weights[1] == Approx(s2 / (s3 + s2)).epsilon(1e-6));
  // Without the bias the best two logits win.
  const auto u = route(c, logits);
  CHECK(u.ids == std::vector<std::int32_t>{0, 1});
}

TEST_CASE("group-limited routing", "[router]") {
  // 8 experts in 4 groups of 2: [0,1] [2,3] [4,5] [6,7].
  const std::vector<float> logits{3.0f, -3.0f, 2.0f, 1.9f, 2.5f, -4.0f, 0.0f, 0.0f};
  SECTION("DeepSeek-V2 group_limited_greedy: group score = max") {
    RouterConfig c;
    c.n_experts = 8;
    c.top_k = 2;
    c.group_score = GroupScore::kMax;
    c.n_group = 4;
    c.topk_group = 2;
    // group maxima: 3.0, 2.0, 2.5, 0.0 -> keep groups 0 and 2 -> experts 0 and 4 (expert 2 excluded)
    const auto r = route(c, logits);
    CHECK(r.ids == std::vector<std::int32_t>{0, 4});
    const auto p = softmax(logits);
    CHECK(r.weights[0] == Approx(p[0]).epsilon(1e-6));  // no renormalisation
  }
  SECTION("DeepSeek-V3 noaux_tc: group score = sum of the top two") {
    RouterConfig c;
    c.scoring = RouterScoring::kSigmoid;
    c.n_experts = 8;
    c.top_k = 2;
    c.group_score = GroupScore::kTopTwo;
    c.n_group = 4;
    c.topk_group = 1;
    // sums of sigmoids: g0 0.953+0.047=1.0, g1 0.881+0.870=1.75, g2 0.924+0.018=0.94, g3 1.0
    const auto r = route(c, logits);
    CHECK(r.ids == std::vector<std::int32_t>{2, 3});
    CHECK(r.weights[0] == Approx(sigmoid(2.0)).epsilon(1e-6));
  }
  SECTION("experts of dropped groups: -inf for DeepSeek-V3 / GLM, 0.0 for DeepSeek-V2 (as transformers 5)") {
    RouterConfig c;
    c.scoring = RouterScoring::kSigmoid;
    c.n_experts = 4;
    c.top_k = 2;
    c.group_score = GroupScore::kTopTwo;
    c.n_group = 2;
    c.topk_group = 1;
    c.has_correction_bias = true;
    // biased choice scores: [0.5+0.9, 0.5-0.9, 0.5-0.4, 0.5-0.4] = [1.4, -0.4, 0.1, 0.1]
    // group sums 1.0 vs 0.2 -> group 0 kept.
    // -inf: expert 1's negative -0.4 still beats every dropped expert.
    CHECK(route(c, {0.0f, 0.0f, 0.0f, 0.0f}, {0.9f, -0.9f, -0.4f, -0.4f}).ids == std::vector<std::int32_t>{0, 1});
    // 0.0 (masked_fill with 0.0, DeepSeek-V2's group_limited_greedy): it loses to the masked expert 2.
    c.dropped_groups_to_minus_inf = false;
    CHECK(route(c, {0.0f, 0.0f, 0.0f, 0.0f}, {0.9f, -0.9f, -0.4f, -0.4f}).ids == std::vector<std::int32_t>{0, 2});
  }
}

TEST_CASE("GPT-OSS: softmax over the chosen top-k logits", "[router]") {
  RouterConfig c;
  c.scoring = RouterScoring::kTopkSoftmax;
  c.n_experts = 4;
  c.top_k = 2;
  const auto r = route(c, {1.0f, 3.0f, 2.0f, -5.0f});
  CHECK(r.ids == std::vector<std::int32_t>{1, 2});
  CHECK(r.weights[0] == Approx(1 / (1 + std::exp(-1.0))).epsilon(1e-6));
  CHECK(r.weights[0] + r.weights[1] == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("router validation", "[router]") {
  RouterConfig c;
  c.n_experts = 8;
  c.top_k = 9;
  CHECK_THROWS_AS(validate_router(c, "cfg"), Error);
  c.top_k = 2;
  c.group_score = GroupScore::kTopTwo;
  c.n_group = 3;
  CHECK_THROWS_AS(validate_router(c, "cfg"), Error);
  c.n_group = 4;
  c.topk_group = 5;
  CHECK_THROWS_AS(validate_router(c, "cfg"), Error);
  c.topk_group = 1;
  c.top_k = 3;  // only 2 experts in one kept group
  CHECK_THROWS_AS(validate_router(c, "cfg"), Error);
  c.top_k = 2;
  CHECK_NOTHROW(validate_router(c, "cfg"));
}
