// Experts and the MoE block against a scalar composition: every expert layout (per-expert,
// fused gate_up, GPT-OSS input-major interleaved with biases and clamping) computed by hand in
// double, and moe_forward against per-token routing + weighted sums of those experts.
#include "layers_test_util.hpp"

#include <catch2/catch.hpp>

#include <moe/layers/experts.hpp>
#include <moe/layers/moe_block.hpp>

#include <cmath>
#include <cstring>
#include <type_traits>
#include <random>
#include <vector>

using namespace moe;
using namespace moe::layers;
using layers_test::random_vec;

namespace {

constexpr index_t kE = 5, kD = 12, kF = 7, kTokens = 9;

WeightMatrix<> mat(const std::vector<float>& v, index_t rows, index_t cols, index_t offset = 0) {
  return WeightMatrix<>{DType::f32, reinterpret_cast<const std::byte*>(v.data() + offset), rows, cols, cols};
}
WeightVector<> vec(const std::vector<float>& v, index_t n, index_t offset = 0) {
  return WeightVector<>{DType::f32, reinterpret_cast<const std::byte*>(v.data() + offset), n};
}

double silu(double x) { return x / (1 + std::exp(-x)); }

// gate/up stored [E, F, D] each, down [E, D, F]: the reference of one expert on one token.
std::vector<double> swiglu_expert(const std::vector<float>& gate, const std::vector<float>& up,
                                  const std::vector<float>& down, index_t e, const float* x) {
  std::vector<double> act(kF), y(kD, 0.0);
  for (index_t f = 0; f < kF; ++f) {
    double g = 0, u = 0;
    for (index_t d = 0; d < kD; ++d) {
      g += static_cast<double>(gate[(e * kF + f) * kD + d]) * x[d];
      u += static_cast<double>(up[(e * kF + f) * kD + d]) * x[d];
    }
    act[f] = silu(g) * u;
  }
  for (index_t d = 0; d < kD; ++d) {
    for (index_t f = 0; f < kF; ++f) y[d] += static_cast<double>(down[(e * kD + d) * kF + f]) * act[f];
  }
  return y;
}

struct Banks {
  std::vector<float> gate, up, down, fused;  // fused [E, 2F, D]: gate rows then up rows
  ExpertBank<> separate, stacked;
};

Banks make_banks(std::mt19937& g) {
  Banks b;
  b.gate = random_vec(kE * kF * kD, g, 0.3f);
  b.up = random_vec(kE * kF * kD, g, 0.3f);
  b.down = random_vec(kE * kD * kF, g, 0.3f);
  b.fused.resize(kE * 2 * kF * kD);
  for (index_t e = 0; e < kE; ++e) {
    std::copy_n(&b.gate[e * kF * kD], kF * kD, &b.fused[e * 2 * kF * kD]);
    std::copy_n(&b.up[e * kF * kD], kF * kD, &b.fused[e * 2 * kF * kD + kF * kD]);
  }
  for (ExpertBank<>* bank : {&b.separate, &b.stacked}) {
    bank->n_experts = kE;
    bank->d_model = kD;
    bank->d_ff = kF;
  }
  b.separate.layout = ExpertLayout::kSeparate;
  b.stacked.layout = ExpertLayout::kFusedGateUp;
  for (index_t e = 0; e < kE; ++e) {
    b.separate.gate.push_back(mat(b.gate, kF, kD, e * kF * kD));
    b.separate.up.push_back(mat(b.up, kF, kD, e * kF * kD));
    b.separate.down.push_back(mat(b.down, kD, kF, e * kD * kF));
    b.stacked.gate_up.push_back(mat(b.fused, 2 * kF, kD, e * 2 * kF * kD));
    b.stacked.down.push_back(mat(b.down, kD, kF, e * kD * kF));
  }
  return b;
}

}  // namespace

TEST_CASE("expert layouts: per-expert and fused gate_up agree with the scalar SwiGLU", "[experts]") {
  std::mt19937 g(7);
  const Banks b = make_banks(g);
  const auto x = random_vec(kTokens * kD, g);
  View<const float, 2> xv(x.data(), {kTokens, kD});
  std::vector<float> scratch(expert_scratch_floats(b.separate, kTokens));
  for (const ExpertBank<>* bank : {&b.separate, &b.stacked}) {
    for (index_t e = 0; e < kE; ++e) {
      Tensor<float, 2> y({kTokens, kD});
      expert_forward(backend::cpu{}, *bank, e, xv, View<float, 1>(scratch.data(), {scratch.size()}), y.view());
      for (index_t t = 0; t < kTokens; ++t) {
        const auto want = swiglu_expert(b.gate, b.up, b.down, e, &x[t * kD]);
        for (index_t d = 0; d < kD; ++d) CHECK(y(t, d) == Approx(want[d]).margin(1e-5));
      }
    }
  }
}

TEST_CASE("GPT-OSS experts: interleaved gate/up, biases, clamped SwiGLU, input-major and output-major", "[experts]") {
  std::mt19937 g(11);
  // Large weights so the clamps at +-limit are exercised.
  const auto gate_up = random_vec(kE * kD * 2 * kF, g, 2.0f);  // [E, D, 2F]
  const auto gu_bias = random_vec(kE * 2 * kF, g, 0.5f);
  const auto down = random_vec(kE * kF * kD, g, 0.3f);         // [E, F, D]
  const auto d_bias = random_vec(kE * kD, g, 0.5f);
  // The same bank output-major (GPT-OSS's MXFP4 checkpoints): [E, 2F, D] and [E, D, F].
  std::vector<float> gate_up_t(gate_up.size()), down_t(down.size());
  for (index_t e = 0; e < kE; ++e) {
    for (index_t d = 0; d < kD; ++d) {
      for (index_t o = 0; o < 2 * kF; ++o) gate_up_t[(e * 2 * kF + o) * kD + d] = gate_up[(e * kD + d) * 2 * kF + o];
      for (index_t f = 0; f < kF; ++f) down_t[(e * kD + d) * kF + f] = down[(e * kF + f) * kD + d];
    }
  }
  for (const ExpertLayout layout : {ExpertLayout::kInputMajorGlu, ExpertLayout::kOutputMajorGlu}) {
    const bool in_out = layout == ExpertLayout::kInputMajorGlu;
    INFO((in_out ? "input-major" : "output-major"));
    ExpertBank<> bank;
    bank.layout = layout;
    bank.n_experts = kE;
    bank.d_model = kD;
    bank.d_ff = kF;
    bank.clamped = true;
    bank.alpha = 1.702f;
    bank.limit = 7.0f;
    for (index_t e = 0; e < kE; ++e) {
      bank.gate_up.push_back(in_out ? mat(gate_up, kD, 2 * kF, e * kD * 2 * kF) : mat(gate_up_t, 2 * kF, kD, e * kD * 2 * kF));
      bank.gate_up_bias.push_back(vec(gu_bias, 2 * kF, e * 2 * kF));
      bank.down.push_back(in_out ? mat(down, kF, kD, e * kF * kD) : mat(down_t, kD, kF, e * kF * kD));
      bank.down_bias.push_back(vec(d_bias, kD, e * kD));
    }
    const auto x = random_vec(kTokens * kD, g);
    std::vector<float> scratch(expert_scratch_floats(bank, kTokens));
    int clamped = 0;
    for (index_t e = 0; e < kE; ++e) {
      Tensor<float, 2> y({kTokens, kD});
      expert_forward(backend::cpu{}, bank, e, View<const float, 2>(x.data(), {kTokens, kD}),
                     View<float, 1>(scratch.data(), {scratch.size()}), y.view());
      for (index_t t = 0; t < kTokens; ++t) {
        std::vector<double> act(kF);
        for (index_t f = 0; f < kF; ++f) {
          double gt = gu_bias[e * 2 * kF + 2 * f], up = gu_bias[e * 2 * kF + 2 * f + 1];
          for (index_t d = 0; d < kD; ++d) {
            gt += static_cast<double>(x[t * kD + d]) * gate_up[(e * kD + d) * 2 * kF + 2 * f];
            up += static_cast<double>(x[t * kD + d]) * gate_up[(e * kD + d) * 2 * kF + 2 * f + 1];
          }
          if (gt > 7.0 || std::fabs(up) > 7.0) ++clamped;
          gt = std::min(gt, 7.0);
          up = std::clamp(up, -7.0, 7.0);
          act[f] = (up + 1.0) * gt / (1.0 + std::exp(-1.702 * gt));
        }
        for (index_t d = 0; d < kD; ++d) {
          double want = d_bias[e * kD + d];
          for (index_t f = 0; f < kF; ++f) want += act[f] * down[(e * kF + f) * kD + d];
          CHECK(y(t, d) == Approx(want).margin(1e-4));
        }
      }
    }
    CHECK(clamped > 0);
  }
}

TEMPLATE_TEST_CASE("MoE block: bucketed experts equal per-token routing and weighted sums, plus shared experts",
                   "[experts][moe]", backend::reference, backend::cpu) {
  std::mt19937 g(3);
  const Banks b = make_banks(g);
  const auto router = random_vec(kE * kD, g);
  const auto shared_gate = random_vec(kF * kD, g, 0.3f), shared_up = random_vec(kF * kD, g, 0.3f),
             shared_down = random_vec(kD * kF, g, 0.3f), gate_w = random_vec(kD, g);
  const auto x = random_vec(kTokens * kD, g);
  RouterConfig rc;
  rc.n_experts = kE;
  rc.top_k = 2;
  rc.norm_topk_prob = true;

  for (int variant = 0; variant < 3; ++variant) {  // 0: routed only, 1: + shared, 2: + sigmoid-gated shared
    INFO("variant " << variant);
    MoeWeights<> w;
    w.router = mat(router, kE, kD);
    w.experts = variant == 1 ? b.stacked : b.separate;
    if (variant > 0) {
      w.shared.gate = mat(shared_gate, kF, kD);
      w.shared.up = mat(shared_up, kF, kD);
      w.shared.down = mat(shared_down, kD, kF);
    }
    if (variant == 2) w.shared_gate = mat(gate_w, 1, kD);

    Tensor<float, 2> logits({kTokens, kE}), weights({kTokens, 2}), xs({kTokens * 2, kD}), ys({kTokens * 2, kD}),
        so({kTokens, kD}), y({kTokens, kD});
    Tensor<std::int32_t, 2> ids({kTokens, 2});
    std::vector<float> rs(router_scratch_floats(rc)), corr(kE), sw(kTokens * 2), ffn(3 * 2 * kTokens * kF);
    std::vector<std::int32_t> counts(kE + 1), st(kTokens * 2);
    const auto v1 = [](auto& vec) { return View<std::remove_reference_t<decltype(vec[0])>, 1>(vec.data(), {vec.size()}); };
    const MoeScratch<TestType> s{logits.view(), ids.view(), weights.view(), v1(rs),       v1(corr),  v1(counts),
                                 v1(st),        v1(sw),     xs.view(),      ys.view(), v1(ffn),   so.view(),
                                 {},            {}};
    std::vector<std::uint64_t> usage(kE, 0);
    moe_forward(TestType{}, rc, w, View<const float, 2>(x.data(), {kTokens, kD}), s, v1(usage), y.view());

    std::uint64_t total = 0;
    for (auto u : usage) total += u;
    CHECK(total == kTokens * 2);
    for (index_t t = 0; t < kTokens; ++t) {
      std::vector<float> lg(kE);
      for (index_t e = 0; e < kE; ++e) {
        double acc = 0;
        for (index_t d = 0; d < kD; ++d) acc += static_cast<double>(router[e * kD + d]) * x[t * kD + d];
        lg[e] = static_cast<float>(acc);
      }
      std::vector<std::int32_t> rid(2);
      std::vector<float> rw(2), scratch(router_scratch_floats(rc));
      route_token(rc, lg, {}, scratch, rid, rw);
      std::vector<double> want(kD, 0.0);
      for (int j = 0; j < 2; ++j) {
        const auto ye = swiglu_expert(b.gate, b.up, b.down, rid[j], &x[t * kD]);
        for (index_t d = 0; d < kD; ++d) want[d] += rw[j] * ye[d];
      }
      if (variant > 0) {
        std::vector<double> act(kF), sh(kD, 0.0);
        for (index_t f = 0; f < kF; ++f) {
          double gg = 0, uu = 0;
          for (index_t d = 0; d < kD; ++d) {
            gg += static_cast<double>(shared_gate[f * kD + d]) * x[t * kD + d];
            uu += static_cast<double>(shared_up[f * kD + d]) * x[t * kD + d];
          }
          act[f] = silu(gg) * uu;
        }
        double gate = 1.0;
        if (variant == 2) {
          double z = 0;
          for (index_t d = 0; d < kD; ++d) z += static_cast<double>(gate_w[d]) * x[t * kD + d];
          gate = 1 / (1 + std::exp(-z));
        }
        for (index_t d = 0; d < kD; ++d) {
          for (index_t f = 0; f < kF; ++f) sh[d] += static_cast<double>(shared_down[d * kF + f]) * act[f];
          want[d] += gate * sh[d];
        }
      }
      for (index_t d = 0; d < kD; ++d) CHECK(y(t, d) == Approx(want[d]).margin(1e-5));
    }
  }
}

// ---- Elastic experts (kernels/reference/expert_budget.hpp) ----------------------------------------

TEST_CASE("limit_experts: top-k override, threshold with min_k, renormalisation, dropped slots", "[experts][budget]") {
  using kernels::ExpertBudgetRow;
  // Row weights in router order (not sorted by weight: a correction-biased router may rank so).
  const float w0[4] = {0.40f, 0.30f, 0.20f, 0.10f};
  auto run = [&](ExpertBudgetRow b, const float* w, std::vector<std::int32_t>& ids, std::vector<float>& out) {
    ids = {7, 3, 5, 1};
    out.assign(w, w + 4);
    const std::vector<ExpertBudgetRow> budget{b};
    kernels::limit_experts(backend::reference{}, View<const ExpertBudgetRow, 1>(budget.data(), {1}),
                           View<std::int32_t, 2>(ids.data(), {1, 4}), View<float, 2>(out.data(), {1, 4}));
  };
  std::vector<std::int32_t> ids;
  std::vector<float> w;
  run({4, 1, 0.0f, 1}, w0, ids, w);  // nothing dropped: untouched, even with renormalize
  CHECK(ids == std::vector<std::int32_t>{7, 3, 5, 1});
  CHECK(w == std::vector<float>(w0, w0 + 4));
  run({2, 1, 0.0f, 0}, w0, ids, w);  // top-2, weights kept as they are
  CHECK(ids == std::vector<std::int32_t>{7, 3, -1, -1});
  CHECK(w == std::vector<float>{0.40f, 0.30f, 0.0f, 0.0f});
  run({2, 1, 0.0f, 1}, w0, ids, w);  // top-2 rescaled to the routed mass of all four (1.0)
  CHECK(w[0] == Approx(0.4 / 0.7).epsilon(1e-6));
  CHECK(w[1] == Approx(0.3 / 0.7).epsilon(1e-6));
  run({4, 1, 0.6f, 0}, w0, ids, w);  // threshold 0.6 x 0.4 = 0.24: drops 0.2 and 0.1
  CHECK(ids == std::vector<std::int32_t>{7, 3, -1, -1});
  run({4, 3, 0.6f, 0}, w0, ids, w);  // ... but min_k = 3 keeps the third
  CHECK(ids == std::vector<std::int32_t>{7, 3, 5, -1});
  run({4, 1, 1.0f, 0}, w0, ids, w);  // threshold 1: only the top weight survives
  CHECK(ids == std::vector<std::int32_t>{7, -1, -1, -1});
  const float w1[4] = {0.10f, 0.50f, 0.30f, 0.05f};  // the top weight is not first in router order
  run({4, 1, 0.5f, 0}, w1, ids, w);  // cut 0.25: keeps the first (min_k), 0.5 and 0.3
  CHECK(ids == std::vector<std::int32_t>{7, 3, 5, -1});
  run({3, 1, 0.0f, 0}, w1, ids, w);
  CHECK(ids == std::vector<std::int32_t>{7, 3, 5, -1});

  // The caller-facing form: validation names the option, resolve clamps and picks renormalisation.
  ExpertBudget b;
  CHECK_FALSE(b.active(8));
  b.top_k = 8;
  CHECK_FALSE(b.active(8));  // k' = k changes nothing
  b.top_k = 6;
  CHECK(b.active(8));
  CHECK(b.resolve(8, true).renormalize == 1);
  CHECK(b.resolve(8, false).renormalize == 0);
  CHECK(b.resolve(8, false).min_k == 1);
  b.renormalize = ExpertBudget::Renormalize::kAlways;
  CHECK(b.resolve(8, false).renormalize == 1);
  b.top_k = 9;
  CHECK_THROWS_WITH(b.validate(8, "test"), Catch::Contains("top_k = 9"));
  b.top_k = 0;
  b.threshold = 1.5f;
  CHECK_THROWS_WITH(b.validate(8, "test"), Catch::Contains("threshold = 1.5"));
  b.threshold = std::nanf("");
  CHECK_THROWS_AS(b.validate(8, "test"), moe::Error);
  b.threshold = 0.0f;
  b.min_k = -1;
  CHECK_THROWS_WITH(b.validate(8, "test"), Catch::Contains("min_k = -1"));
}

TEMPLATE_TEST_CASE("bucket_by_expert leaves dropped slots out; gather and combine skip them", "[experts][budget]",
                   backend::reference, backend::cpu) {
  // 3 tokens x 2 slots over 3 experts; two slots dropped (id -1).
  std::vector<std::int32_t> ids{2, -1, 0, 2, -1, -1};
  std::vector<float> w{0.5f, 0.0f, 0.25f, 0.75f, 0.0f, 0.0f};
  std::vector<std::int32_t> offsets(4), st(6, 99);
  std::vector<float> sw(6, 9.0f);
  std::vector<std::uint64_t> usage(3, 0);
  std::vector<double> wsum(3, 0.0);
  kernels::bucket_by_expert(TestType{}, View<const std::int32_t, 2>(ids.data(), {3, 2}),
                            View<const float, 2>(w.data(), {3, 2}), View<std::int32_t, 1>(offsets.data(), {4}),
                            View<std::int32_t, 1>(st.data(), {6}), View<float, 1>(sw.data(), {6}),
                            View<std::uint64_t, 1>(usage.data(), {3}));
  CHECK(offsets == std::vector<std::int32_t>{0, 1, 1, 3});
  CHECK(st == std::vector<std::int32_t>{1, 0, 1, -1, -1, -1});
  CHECK(sw == std::vector<float>{0.25f, 0.5f, 0.75f, 0.0f, 0.0f, 0.0f});
  CHECK(usage == std::vector<std::uint64_t>{1, 0, 2});
  kernels::accumulate_expert_weights(TestType{}, View<const std::int32_t, 1>(offsets.data(), {4}),
                                     View<const float, 1>(sw.data(), {6}), View<double, 1>(wsum.data(), {3}));
  CHECK(wsum == std::vector<double>{0.25, 0.0, 1.25});
  // The same sums when bucket_by_expert accumulates them itself (moe_forward's call).
  std::vector<double> wsum2(3, 1.0);
  kernels::bucket_by_expert(TestType{}, View<const std::int32_t, 2>(ids.data(), {3, 2}),
                            View<const float, 2>(w.data(), {3, 2}), View<std::int32_t, 1>(offsets.data(), {4}),
                            View<std::int32_t, 1>(st.data(), {6}), View<float, 1>(sw.data(), {6}),
                            View<std::uint64_t, 1>{}, View<double, 1>(wsum2.data(), {3}));
  CHECK(wsum2 == std::vector<double>{1.25, 1.0, 2.25});
  CHECK_THROWS_AS(kernels::bucket_by_expert(TestType{}, View<const std::int32_t, 2>(ids.data(), {3, 2}),
                                            View<const float, 2>(w.data(), {3, 2}),
                                            View<std::int32_t, 1>(offsets.data(), {4}),
                                            View<std::int32_t, 1>(st.data(), {6}), View<float, 1>(sw.data(), {6}),
                                            View<std::uint64_t, 1>{}, View<double, 1>(wsum2.data(), {2})),
                  Error);
  // Co-activation: only token 1 (experts 0 and 2) has two live slots.
  std::vector<std::uint64_t> pairs(9, 1);
  kernels::accumulate_coactivation(TestType{}, View<const std::int32_t, 2>(ids.data(), {3, 2}),
                                   View<std::uint64_t, 1>(pairs.data(), {9}), 3);
  CHECK(pairs == std::vector<std::uint64_t>{1, 1, 2, 1, 1, 1, 2, 1, 1});
  std::vector<std::int32_t> three{0, 1, 2, 1, 1, -1};  // a repeated id is not a pair
  kernels::accumulate_coactivation(TestType{}, View<const std::int32_t, 2>(three.data(), {2, 3}),
                                   View<std::uint64_t, 1>(pairs.data(), {9}), 3);
  CHECK(pairs == std::vector<std::uint64_t>{1, 2, 3, 2, 1, 2, 3, 2, 1});
  CHECK_THROWS_AS(kernels::accumulate_coactivation(TestType{}, View<const std::int32_t, 2>(three.data(), {2, 3}),
                                                   View<std::uint64_t, 1>(pairs.data(), {8}), 3),
                  Error);

  std::vector<float> src{1, 2, 3, 4, 5, 6}, xs(12, 7.0f), y(6, 5.0f);
  kernels::gather_rows(TestType{}, View<const float, 2>(src.data(), {3, 2}), View<const std::int32_t, 1>(st.data(), {6}),
                       View<float, 2>(xs.data(), {6, 2}));
  CHECK(xs == std::vector<float>{3, 4, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0});
  kernels::combine_experts(TestType{}, View<const float, 2>(xs.data(), {6, 2}), View<const std::int32_t, 1>(st.data(), {6}),
                           View<const float, 1>(sw.data(), {6}), View<float, 2>(y.data(), {3, 2}));
  CHECK(y == std::vector<float>{0.5f * 1, 0.5f * 2, 0.25f * 3 + 0.75f * 3, 0.25f * 4 + 0.75f * 4, 0, 0});
}

namespace {

// moe_forward over kTokens tokens with top_k = 3 of kE, one budget row per token (empty: none).
template <class B>
struct BudgetRun {
  Tensor<float, 2> y{{kTokens, kD}};
  std::vector<std::uint64_t> usage = std::vector<std::uint64_t>(kE, 0);
  std::vector<double> weight_sum = std::vector<double>(kE, 0.0);
};

template <class B>
BudgetRun<B> run_budget(const MoeWeights<>& w, const RouterConfig& rc, const std::vector<float>& x, index_t n,
                        const std::vector<kernels::ExpertBudgetRow>& budget) {
  const index_t k = rc.top_k;
  BudgetRun<B> r;
  r.y = Tensor<float, 2>({n, kD});
  Tensor<float, 2> logits({n, kE}), weights({n, k}), xs({n * k, kD}), ys({n * k, kD}), so({n, kD});
  Tensor<std::int32_t, 2> ids({n, k});
  std::vector<float> rs(router_scratch_floats(rc)), corr(kE), sw(n * k), ffn(3 * k * n * kF);
  std::vector<std::int32_t> counts(kE + 1), st(n * k);
  const auto v1 = [](auto& vec) { return View<std::remove_reference_t<decltype(vec[0])>, 1>(vec.data(), {vec.size()}); };
  const MoeScratch<B> s{logits.view(), ids.view(), weights.view(), v1(rs), v1(corr), v1(counts), v1(st), v1(sw),
                        xs.view(), ys.view(), v1(ffn), so.view(),
                        View<const kernels::ExpertBudgetRow, 1>(budget.data(), {budget.size()}), v1(r.weight_sum)};
  moe_forward(B{}, rc, w, View<const float, 2>(x.data(), {n, kD}), s, v1(r.usage), r.y.view());
  return r;
}

}  // namespace

TEMPLATE_TEST_CASE("MoE block with expert budgets: k' = k and threshold 0 are the model's, per-row budgets equal "
                   "rows run alone, dropped experts are not computed",
                   "[experts][moe][budget]", backend::reference, backend::cpu) {
  using kernels::ExpertBudgetRow;
  std::mt19937 g(11);
  const Banks b = make_banks(g);
  const auto router = random_vec(kE * kD, g);
  const auto x = random_vec(kTokens * kD, g);
  RouterConfig rc;
  rc.n_experts = kE;
  rc.top_k = 3;
  rc.norm_topk_prob = true;
  MoeWeights<> w;
  w.router = mat(router, kE, kD);
  w.experts = b.separate;

  const auto none = run_budget<TestType>(w, rc, x, kTokens, {});
  const auto bits_equal = [](const Tensor<float, 2>& a, const Tensor<float, 2>& c, index_t row_a, index_t row_c) {
    return std::memcmp(&a(row_a, 0), &c(row_c, 0), kD * sizeof(float)) == 0;
  };
  SECTION("k' = k and threshold 0 run the budget ops and change nothing, bit for bit") {
    for (const ExpertBudgetRow row : {ExpertBudgetRow{3, 1, 0.0f, 1}, ExpertBudgetRow{3, 3, 0.5f, 1}}) {
      const auto same = run_budget<TestType>(w, rc, x, kTokens, std::vector<ExpertBudgetRow>(kTokens, row));
      for (index_t t = 0; t < kTokens; ++t) CHECK(bits_equal(same.y, none.y, t, t));
      CHECK(same.usage == none.usage);
    }
  }
  SECTION("top-k override against a hand composition of the kept experts") {
    for (const int renorm : {0, 1}) {
      const auto two = run_budget<TestType>(w, rc, x, kTokens, std::vector<ExpertBudgetRow>(kTokens, {2, 1, 0.0f, renorm}));
      std::uint64_t routed = 0;
      for (auto u : two.usage) routed += u;
      CHECK(routed == 2 * kTokens);  // telemetry counts only the experts that ran
      double weight_total = 0;
      for (auto s : two.weight_sum) weight_total += s;
      for (index_t t = 0; t < kTokens; ++t) {
        std::vector<float> lg(kE), rw(3), scratch(router_scratch_floats(rc));
        std::vector<std::int32_t> rid(3);
        for (index_t e = 0; e < kE; ++e) {
          double acc = 0;
          for (index_t d = 0; d < kD; ++d) acc += static_cast<double>(router[e * kD + d]) * x[t * kD + d];
          lg[e] = static_cast<float>(acc);
        }
        route_token(rc, lg, {}, scratch, rid, rw);
        const double scale = renorm ? 1.0 / (rw[0] + rw[1]) : 1.0;  // the three weights sum to 1
        std::vector<double> want(kD, 0.0);
        for (int j = 0; j < 2; ++j) {
          const auto ye = swiglu_expert(b.gate, b.up, b.down, rid[j], &x[t * kD]);
          for (index_t d = 0; d < kD; ++d) want[d] += rw[j] * scale * ye[d];
        }
        weight_total -= (rw[0] + rw[1]) * scale;
        for (index_t d = 0; d < kD; ++d) CHECK(two.y(t, d) == Approx(want[d]).margin(1e-5));
      }
      CHECK(std::fabs(weight_total) < 1e-5);
    }
  }
  SECTION("a batch mixing budgets equals each row run alone") {
    const std::vector<ExpertBudgetRow> kinds{{3, 1, 0.0f, 1}, {1, 1, 0.0f, 1}, {2, 1, 0.0f, 0}, {3, 1, 0.3f, 1},
                                             {3, 2, 0.9f, 0}};
    std::vector<ExpertBudgetRow> mixed(kTokens);
    for (index_t t = 0; t < kTokens; ++t) mixed[t] = kinds[t % kinds.size()];
    const auto batch = run_budget<TestType>(w, rc, x, kTokens, mixed);
    std::vector<std::uint64_t> usage_alone(kE, 0);
    for (index_t t = 0; t < kTokens; ++t) {
      const std::vector<float> xt(x.begin() + t * kD, x.begin() + (t + 1) * kD);
      const auto alone = run_budget<TestType>(w, rc, xt, 1, {mixed[t]});
      for (index_t e = 0; e < kE; ++e) usage_alone[e] += alone.usage[e];
      if constexpr (std::is_same_v<TestType, backend::reference>) {
        CHECK(bits_equal(batch.y, alone.y, t, 0));
      } else {  // the cpu GEMMs block by the rows of a bucket: same sums, other rounding
        for (index_t d = 0; d < kD; ++d) CHECK(batch.y(t, d) == Approx(alone.y(0, d)).margin(1e-6));
      }
    }
    CHECK(batch.usage == usage_alone);
  }
  SECTION("cpu and reference agree under a budget") {
    const std::vector<ExpertBudgetRow> rows(kTokens, {2, 1, 0.2f, 1});
    const auto ref = run_budget<backend::reference>(w, rc, x, kTokens, rows);
    const auto got = run_budget<TestType>(w, rc, x, kTokens, rows);
    CHECK(got.usage == ref.usage);
    for (index_t t = 0; t < kTokens; ++t) {
      for (index_t d = 0; d < kD; ++d) CHECK(got.y(t, d) == Approx(ref.y(t, d)).margin(1e-6));
    }
  }
}
