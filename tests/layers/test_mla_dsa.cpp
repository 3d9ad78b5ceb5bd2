// MLA with DeepSeek sparse attention (layers/mla.hpp, kernels/reference/dsa.hpp): with index_topk
// at least the context the layer is exactly the dense layer (prefill and decode steps); with a small
// index_topk it differs from dense and equals a naive composition written out here in double (the
// q / kv projections and norms, rope, the lightning indexer with its LayerNorm'd key, and
// expanded-form attention over the selected positions only), the layer's selection being a top
// set of the naive index scores (relu's ties at 0 may go either way).
#include "layers_test_util.hpp"

#include <catch2/catch.hpp>

#include <moe/layers/kv_cache.hpp>
#include <moe/layers/mla.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

// Everything in a named namespace: the layer tests build as one unity translation unit.
namespace mla_dsa_test {

using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace layers = moe::layers;

constexpr index_t kD = 16, kH = 2, kQL = 8, kR = 6, kNope = 4, kRope = 4, kV = 3, kIH = 3, kID = 8;
constexpr index_t kQk = kNope + kRope;
constexpr float kScale = 0.35f;
const std::vector<float> kInvFreq = {1.0f, 0.15f};  // rope / 2 frequencies

struct DsaMla {
  std::vector<float> q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b, o, iq, ik, ik_norm, ik_bias, iw;
  layers::MlaWeights<> w;

  explicit DsaMla(std::mt19937& g) {
    using layers_test::random_vec;
    const float sd = 1.0f / std::sqrt(static_cast<float>(kD)), sq = 1.0f / std::sqrt(static_cast<float>(kQL));
    q_a = random_vec(kQL * kD, g, sd), q_b = random_vec(kH * kQk * kQL, g, sq), kv_a = random_vec((kR + kRope) * kD, g, sd);
    kv_b = random_vec(kH * (kNope + kV) * kR, g, 0.5f), o = random_vec(kD * kH * kV, g, 0.5f);
    iq = random_vec(kIH * kID * kQL, g, sq), ik = random_vec(kID * kD, g, sd), iw = random_vec(kIH * kD, g, sd);
    q_a_norm = random_vec(kQL, g, 0.2f), kv_a_norm = random_vec(kR, g, 0.2f), ik_norm = random_vec(kID, g, 0.2f);
    for (auto* v : {&q_a_norm, &kv_a_norm, &ik_norm}) {
      for (auto& x : *v) x += 1.0f;
    }
    ik_bias = random_vec(kID, g, 0.1f);
    const auto m = [](const std::vector<float>& v, index_t r, index_t c) {
      return layers::WeightMatrix<>{moe::DType::f32, reinterpret_cast<const std::byte*>(v.data()), r, c, c};
    };
    const auto vec = [](const std::vector<float>& v) {
      return layers::WeightVector<>{moe::DType::f32, reinterpret_cast<const std::byte*>(v.data()), v.size()};
    };
    w.q_a_proj = m(q_a, kQL, kD), w.q_a_norm = vec(q_a_norm), w.q_b_proj = m(q_b, kH * kQk, kQL);
    w.kv_a_proj = m(kv_a, kR + kRope, kD), w.kv_a_norm = vec(kv_a_norm), w.kv_b_proj = m(kv_b, kH * (kNope + kV), kR);
    w.o_proj = m(o, kD, kH * kV);
    w.index_wq_b = m(iq, kIH * kID, kQL), w.index_wk = m(ik, kID, kD), w.index_k_norm = vec(ik_norm);
    w.index_k_bias = vec(ik_bias), w.index_weights = m(iw, kIH, kD);
  }

  static layers::MlaOptions options(index_t top_k) {
    layers::MlaOptions o;
    o.shape = kernels::MlaShape{kH, kR, kNope, kRope, kV, kScale};
    o.q_lora_rank = kQL;
    o.rope_pairing = kernels::RopePairing::interleaved;  // as DeepSeek's MLA; the indexer rotates half_split
    o.index_rope_pairing = kernels::RopePairing::half_split;
    o.dsa = kernels::DsaShape{top_k == 0 ? 0 : kIH, top_k == 0 ? 0 : kID, top_k};
    return o;
  }

  static moe::KvCache cache() { return moe::KvCache({moe::KvLayerShape{kR, kRope, 0, kID}}, 32); }

  // One pass of the layer over rows [r0, r1) of x (positions cache.size()...), out rows [r0, r1);
  // selection (when top_k > 0) gets the pass's index_selection rows.
  template <class B>
  void forward(B be, index_t top_k, moe::KvCache& cache, const std::vector<float>& x, index_t r0, index_t r1,
               std::vector<float>& out, std::vector<std::int32_t>* selection = nullptr) const {
    const index_t n = r1 - r0, start = static_cast<index_t>(cache.slot(0, 1).start), K = std::max<index_t>(top_k, 1);
    std::vector<float> q(n * kH * kQk), qa(n * kQL), ckv(n * (kR + kRope)), ql(n * kH * kR), ol(n * kH * kR),
        attn(n * kH * kV), iqs(n * kIH * kID), iks(n * kID), iws(n * kIH), cos(n * kRope / 2), sin(n * kRope / 2);
    std::vector<std::int32_t> sel(n * K, -7);
    std::vector<std::int64_t> pos(n);
    for (index_t t = 0; t < n; ++t) pos[t] = static_cast<std::int64_t>(start + t);
    kernels::rope_tables(moe::backend::reference{}, View<const float, 1>(kInvFreq.data(), {kInvFreq.size()}), 1.0f,
                         View<const std::int64_t, 1>(pos.data(), {n}), View<float, 2>(cos.data(), {n, kRope / 2}),
                         View<float, 2>(sin.data(), {n, kRope / 2}));
    const layers::MlaScratch<B> s{View<float, 2>(q.data(), {n, kH * kQk}),      View<float, 2>(qa.data(), {n, kQL}),
                                  View<float, 2>(ckv.data(), {n, kR + kRope}),  View<float, 2>(ql.data(), {n, kH * kR}),
                                  View<float, 2>(ol.data(), {n, kH * kR}),      View<float, 2>(attn.data(), {n, kH * kV}),
                                  View<float, 2>(iqs.data(), {n, kIH * kID}),   View<float, 2>(iks.data(), {n, kID}),
                                  View<float, 2>(iws.data(), {n, kIH}),         View<std::int32_t, 2>(sel.data(), {n, K})};
    const std::vector<kernels::CacheSlot> slots = {cache.slot(0, n)};
    const std::vector<std::int32_t> token_slot(n, 0);
    const kernels::PassSlots<moe::host_memory> pass{View<const kernels::CacheSlot, 1>(slots.data(), {1}),
                                                    View<const std::int32_t, 1>(token_slot.data(), {n}), start + n};
    out.resize(x.size() / kD * kD);
    layers::mla_forward(be, options(top_k), w, pass, cache.layer(0), View<const float, 2>(x.data() + r0 * kD, {n, kD}),
                        View<const float, 2>(cos.data(), {n, kRope / 2}), View<const float, 2>(sin.data(), {n, kRope / 2}),
                        s, View<float, 2>(out.data() + r0 * kD, {n, kD}));
    cache.append(n);
    if (selection != nullptr) selection->insert(selection->end(), sel.begin(), sel.end());
  }

  // The layer over rows [0, ctx) of x as prefill of `prefill` rows then single-token decode steps.
  template <class B>
  std::vector<float> run(B be, index_t top_k, const std::vector<float>& x, index_t prefill,
                         std::vector<std::int32_t>* selection = nullptr) const {
    moe::KvCache c = cache();
    std::vector<float> out;
    const index_t ctx = x.size() / kD;
    forward(be, top_k, c, x, 0, prefill, out, selection);
    for (index_t t = prefill; t < ctx; ++t) forward(be, top_k, c, x, t, t + 1, out, selection);
    return out;
  }

  // ---- the naive composition, in double --------------------------------------------------------

  using Rows = std::vector<std::vector<double>>;

  static Rows project(const Rows& x, const std::vector<float>& W, index_t out, index_t in) {
    Rows y(x.size(), std::vector<double>(out, 0.0));
    for (std::size_t t = 0; t < x.size(); ++t)
      for (index_t o = 0; o < out; ++o)
        for (index_t i = 0; i < in; ++i) y[t][o] += static_cast<double>(W[o * in + i]) * x[t][i];
    return y;
  }
  static void rms(std::vector<double>& v, index_t from, index_t width, const std::vector<float>& w) {
    double ss = 0;
    for (index_t i = 0; i < width; ++i) ss += v[from + i] * v[from + i];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(width) + 1e-6);
    for (index_t i = 0; i < width; ++i) v[from + i] *= r * w[i];
  }
  // Rotates v[from, from + kRope) for position p in the given pairing.
  static void rotate(std::vector<double>& v, index_t from, index_t p, kernels::RopePairing pairing) {
    for (index_t i = 0; i < kRope / 2; ++i) {
      const double angle = static_cast<double>(kInvFreq[i] * static_cast<float>(p));
      const double c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
      const index_t ia = from + (pairing == kernels::RopePairing::half_split ? i : 2 * i);
      const index_t ib = from + (pairing == kernels::RopePairing::half_split ? i + kRope / 2 : 2 * i + 1);
      const double a = v[ia], b = v[ib];
      v[ia] = a * c - b * s;
      v[ib] = b * c + a * s;
    }
  }

  struct Naive {
    std::vector<double> out;                 // [ctx, kD]
    std::vector<std::vector<double>> score;  // per row t: the index score of positions 0..t
  };

  // The layer's output when row t attends to the positions sel[t·top_k ...] (ascending, -1
  // padded), and every row's index scores (for the test to check that sel is a top set).
  Naive naive(const std::vector<float>& xf, const std::vector<std::int32_t>& sel, index_t top_k) const {
    const index_t ctx = xf.size() / kD;
    Rows x(ctx);
    for (index_t t = 0; t < ctx; ++t) x[t].assign(xf.begin() + t * kD, xf.begin() + (t + 1) * kD);
    Rows qa = project(x, q_a, kQL, kD);
    for (auto& r : qa) rms(r, 0, kQL, q_a_norm);
    Rows q = project(qa, q_b, kH * kQk, kQL), ckv = project(x, kv_a, kR + kRope, kD);
    Rows iqr = project(qa, iq, kIH * kID, kQL), ikr = project(x, ik, kID, kD), iwr = project(x, iw, kIH, kD);
    for (index_t t = 0; t < ctx; ++t) {
      for (index_t h = 0; h < kH; ++h) rotate(q[t], h * kQk + kNope, t, kernels::RopePairing::interleaved);
      rms(ckv[t], 0, kR, kv_a_norm);
      rotate(ckv[t], kR, t, kernels::RopePairing::interleaved);
      for (index_t h = 0; h < kIH; ++h) rotate(iqr[t], h * kID, t, kernels::RopePairing::half_split);
      double mean = 0, var = 0;  // LayerNorm(eps 1e-6) with weight and bias
      for (index_t i = 0; i < kID; ++i) mean += ikr[t][i] / kID;
      for (index_t i = 0; i < kID; ++i) var += (ikr[t][i] - mean) * (ikr[t][i] - mean) / kID;
      for (index_t i = 0; i < kID; ++i) ikr[t][i] = (ikr[t][i] - mean) / std::sqrt(var + 1e-6) * ik_norm[i] + ik_bias[i];
      rotate(ikr[t], 0, t, kernels::RopePairing::half_split);
    }
    Naive r;
    r.out.assign(ctx * kD, 0.0);
    auto W = [&](index_t row, index_t col) { return static_cast<double>(kv_b[row * kR + col]); };
    for (index_t t = 0; t < ctx; ++t) {
      // The indexer: score every causal position.
      std::vector<double>& score = r.score.emplace_back();
      for (index_t j = 0; j <= t; ++j) {
        double acc = 0;
        for (index_t h = 0; h < kIH; ++h) {
          double dot = 0;
          for (index_t i = 0; i < kID; ++i) dot += iqr[t][h * kID + i] * ikr[j][i];
          acc += iwr[t][h] / std::sqrt(static_cast<double>(kIH)) * std::max(dot / std::sqrt(static_cast<double>(kID)), 0.0);
        }
        score.push_back(acc);
      }
      std::vector<index_t> chosen;
      for (index_t i = 0; i < top_k && sel[t * top_k + i] >= 0; ++i) chosen.push_back(sel[t * top_k + i]);
      // Expanded attention over the chosen positions, then o_proj.
      std::vector<double> attn(kH * kV, 0.0);
      for (index_t h = 0; h < kH; ++h) {
        std::vector<double> logits;
        for (const index_t j : chosen) {
          double s = 0;
          for (index_t i = 0; i < kNope; ++i) {
            double kn = 0;
            for (index_t c = 0; c < kR; ++c) kn += W(h * (kNope + kV) + i, c) * ckv[j][c];
            s += q[t][h * kQk + i] * kn;
          }
          for (index_t i = 0; i < kRope; ++i) s += q[t][h * kQk + kNope + i] * ckv[j][kR + i];
          logits.push_back(kScale * s);
        }
        const double mx = *std::max_element(logits.begin(), logits.end());
        double sum = 0;
        for (const double l : logits) sum += std::exp(l - mx);
        for (std::size_t c = 0; c < chosen.size(); ++c) {
          const double p = std::exp(logits[c] - mx) / sum;
          for (index_t i = 0; i < kV; ++i) {
            double v = 0;
            for (index_t cc = 0; cc < kR; ++cc) v += W(h * (kNope + kV) + kNope + i, cc) * ckv[chosen[c]][cc];
            attn[h * kV + i] += p * v;
          }
        }
      }
      for (index_t o = 0; o < kD; ++o)
        for (index_t i = 0; i < kH * kV; ++i) r.out[t * kD + o] += static_cast<double>(this->o[o * kH * kV + i]) * attn[i];
    }
    return r;
  }
};

}  // namespace mla_dsa_test

TEMPLATE_TEST_CASE("MLA with DSA: index_topk >= the context is exactly dense attention, prefill and decode",
                   "[attention][mla][dsa]", moe::backend::reference, moe::backend::cpu) {
  using mla_dsa_test::DsaMla;
  using mla_dsa_test::kD;
  using moe::index_t;
  std::mt19937 g(21);
  const DsaMla layer(g);
  const index_t ctx = 9, prefill = 6;  // a prefill of 6 tokens, then 3 decode steps
  const auto x = layers_test::random_vec(ctx * kD, g);
  const auto dense = layer.run(TestType{}, 0, x, prefill);
  for (const index_t top_k : {ctx, index_t{64}}) {
    INFO("index_topk " << top_k);
    std::vector<std::int32_t> sel;
    const auto sparse = layer.run(TestType{}, top_k, x, prefill, &sel);
    CHECK(sparse == dense);
    // Every row selected its whole causal context: 0..pos, then -1.
    for (index_t t = 0; t < ctx; ++t) {
      for (index_t i = 0; i < top_k; ++i) REQUIRE(sel[t * top_k + i] == (i <= t ? static_cast<std::int32_t>(i) : -1));
    }
  }
}

TEMPLATE_TEST_CASE("MLA with DSA: a small index_topk attends only to the indexer's choice (a naive composition)",
                   "[attention][mla][dsa]", moe::backend::reference, moe::backend::cpu) {
  using mla_dsa_test::DsaMla;
  using mla_dsa_test::kD;
  using moe::index_t;
  std::mt19937 g(22);
  const DsaMla layer(g);
  const index_t ctx = 11, prefill = 7;
  const auto x = layers_test::random_vec(ctx * kD, g);
  const auto dense = layer.run(TestType{}, 0, x, prefill);
  for (const index_t top_k : {index_t{1}, index_t{3}, index_t{5}}) {
    INFO("index_topk " << top_k);
    std::vector<std::int32_t> sel;
    const auto sparse = layer.run(TestType{}, top_k, x, prefill, &sel);
    const auto want = layer.naive(x, sel, top_k);
    double max_dense_diff = 0;
    index_t clear = 0;  // rows whose top_k is unique (no tie at the boundary)
    for (index_t t = 0; t < ctx; ++t) {
      INFO("row " << t << (t < prefill ? " (prefill)" : " (decode)"));
      // The selection: min(top_k, t + 1) distinct causal positions, ascending, then -1; a top set
      // of the naive scores (relu makes ties at 0, which either choice satisfies).
      const index_t k = std::min(top_k, t + 1);
      std::vector<bool> in(t + 1, false);
      for (index_t i = 0; i < top_k; ++i) {
        const std::int32_t p = sel[t * top_k + i];
        if (i >= k) {
          REQUIRE(p == -1);
          continue;
        }
        REQUIRE(p >= 0);
        REQUIRE(p <= static_cast<std::int32_t>(t));
        if (i > 0) REQUIRE(p > sel[t * top_k + i - 1]);
        in[p] = true;
      }
      double min_in = 1e300, max_out = -1e300;
      for (index_t j = 0; j <= t; ++j) {
        if (in[j]) min_in = std::min(min_in, want.score[t][j]);
        else max_out = std::max(max_out, want.score[t][j]);
      }
      CHECK(max_out <= min_in + 1e-6);
      if (k < t + 1 && max_out < min_in - 1e-4) ++clear;
      for (index_t o = 0; o < kD; ++o) {
        CHECK(sparse[t * kD + o] == Approx(want.out[t * kD + o]).margin(1e-4));
        if (t < top_k) CHECK(sparse[t * kD + o] == dense[t * kD + o]);  // all causal positions chosen
        max_dense_diff = std::max(max_dense_diff, static_cast<double>(std::fabs(sparse[t * kD + o] - dense[t * kD + o])));
      }
    }
    CHECK(clear >= ctx / 2);      // most rows' choice is unique, so the check above pins it down
    CHECK(max_dense_diff > 1e-2);  // the selection matters: the test would see a layer that ignored it
  }
}

// kv_b_proj split per head as GGUF files store it (attn_k_b = W_UK[h]ᵀ [rank, nope], attn_v_b =
// W_UV[h] [v, rank]): the layer runs both products as per-head matmuls and gives the stored form's
// outputs up to f32 summation order, dense and sparse, prefill and decode; a half of the wrong
// shape is a typed error.
TEMPLATE_TEST_CASE("MLA: kv_b_proj split per head (GGUF's attn_k_b / attn_v_b) is the stored form's layer",
                   "[attention][mla]", moe::backend::reference, moe::backend::cpu) {
  using mla_dsa_test::DsaMla, mla_dsa_test::kD, mla_dsa_test::kH, mla_dsa_test::kR, mla_dsa_test::kNope, mla_dsa_test::kV;
  using moe::index_t;
  namespace layers = moe::layers;
  std::mt19937 g(23);
  const DsaMla layer(g);
  std::vector<float> kb(kH * kR * kNope), vb(kH * kV * kR);
  for (index_t h = 0; h < kH; ++h) {
    for (index_t r = 0; r < kR; ++r) {
      for (index_t n = 0; n < kNope; ++n) kb[(h * kR + r) * kNope + n] = layer.kv_b[(h * (kNope + kV) + n) * kR + r];
      for (index_t v = 0; v < kV; ++v) vb[(h * kV + v) * kR + r] = layer.kv_b[(h * (kNope + kV) + kNope + v) * kR + r];
    }
  }
  const auto m = [](const std::vector<float>& v, index_t r, index_t c) {
    return layers::WeightMatrix<>{moe::DType::f32, reinterpret_cast<const std::byte*>(v.data()), r, c, c};
  };
  DsaMla split = layer;  // its matrices still point into layer's vectors
  split.w.kv_b_proj = {};
  split.w.k_b_proj = m(kb, kH * kR, kNope), split.w.v_b_proj = m(vb, kH * kV, kR);
  REQUIRE(split.w.split_kv_b());
  const index_t ctx = 9, prefill = 5;
  const auto x = layers_test::random_vec(ctx * kD, g);
  for (const index_t top_k : {index_t{0}, index_t{3}}) {
    INFO("index_topk " << top_k);
    const auto want = layer.run(TestType{}, top_k, x, prefill);
    const auto got = split.run(TestType{}, top_k, x, prefill);
    REQUIRE(got.size() == want.size());
    double diff = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
      REQUIRE(got[i] == Approx(want[i]).margin(1e-5));
    }
    INFO("max |split - stored| " << diff);
  }
  DsaMla bad = split;
  bad.w.k_b_proj = m(kb, kH * kNope, kR);  // the transpose: [H·nope, rank] instead of [H·rank, nope]
  CHECK_THROWS_AS(bad.run(TestType{}, 0, x, prefill), moe::Error);
}
