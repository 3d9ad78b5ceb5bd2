// Experts and the MoE block against a scalar composition: every expert layout (per-expert,
// fused gate_up, GPT-OSS input-major interleaved with biases and clamping) computed by hand in
// double, and moe_forward against per-token routing + weighted sums of those experts.
#include "layers_test_util.hpp"

#include <catch2/catch.hpp>

#include <moe/layers/experts.hpp>
#include <moe/layers/moe_block.hpp>

#include <cmath>
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

TEST_CASE("GPT-OSS experts: input-major interleaved gate/up, biases, clamped SwiGLU", "[experts]") {
  std::mt19937 g(11);
  // Large weights so the clamps at +-limit are exercised.
  const auto gate_up = random_vec(kE * kD * 2 * kF, g, 2.0f);  // [E, D, 2F]
  const auto gu_bias = random_vec(kE * 2 * kF, g, 0.5f);
  const auto down = random_vec(kE * kF * kD, g, 0.3f);         // [E, F, D]
  const auto d_bias = random_vec(kE * kD, g, 0.5f);
  ExpertBank<> bank;
  bank.layout = ExpertLayout::kInputMajorGlu;
  bank.n_experts = kE;
  bank.d_model = kD;
  bank.d_ff = kF;
  bank.clamped = true;
  bank.alpha = 1.702f;
  bank.limit = 7.0f;
  for (index_t e = 0; e < kE; ++e) {
    bank.gate_up.push_back(mat(gate_up, kD, 2 * kF, e * kD * 2 * kF));
    bank.gate_up_bias.push_back(vec(gu_bias, 2 * kF, e * 2 * kF));
    bank.down.push_back(mat(down, kF, kD, e * kF * kD));
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
                                 v1(st),        v1(sw),     xs.view(),      ys.view(), v1(ffn),   so.view()};
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
