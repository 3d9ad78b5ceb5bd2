// Unmerged LoRA (kernels::lora_add, layers::lora_linear, model::pack_lora_factors): the reference
// kernel against a naive double composition, the cpu kernel against the reference on odd sizes,
// a batch mixing adapters (and rows with none) against each row run alone, and the layer against
// a linear over the merged weight W + scale·B·A (including a fused expert gate_up update split
// over gate and up).
#include <catch2/catch.hpp>

#include <moe/backend/tags.hpp>
#include <moe/kernels/kernels.hpp>
#include <moe/layers/linear.hpp>
#include <moe/layers/lora_linear.hpp>
#include <moe/model/lora.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace moe;

namespace {

struct Factors {
  index_t rank, in, out;
  float scale;
  std::vector<float> a, b;
};

Factors random_factors(index_t rank, index_t in, index_t out, float scale, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 0.3f);
  Factors f{rank, in, out, scale, std::vector<float>(rank * in), std::vector<float>(out * rank)};
  for (auto& x : f.a) x = nd(rng);
  for (auto& x : f.b) x = nd(rng);
  return f;
}

std::vector<float> random_vector(std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// Tolerance for sums of `terms` products of O(1) values in f32 (a few ulps per term).
float tolerance(index_t terms) { return 8.0f * std::numeric_limits<float>::epsilon() * static_cast<float>(terms); }

template <class Be>
std::vector<float> run(const std::vector<float>& x, index_t n, index_t in, const std::vector<float>& y0, index_t out,
                       const std::vector<std::int32_t>& rows, const std::vector<kernels::LoraFactorRef>& table,
                       index_t max_rank) {
  std::vector<float> y = y0, h(n * max_rank, std::numeric_limits<float>::quiet_NaN());
  kernels::lora_add(Be{}, View<const float, 2>(x.data(), {n, in}), View<const std::int32_t, 1>(rows.data(), {n}),
                    View<const kernels::LoraFactorRef, 1>(table.data(), {table.size()}), max_rank,
                    View<float, 2>(h.data(), {n, max_rank}), View<float, 2>(y.data(), {n, out}));
  return y;
}

}  // namespace

TEST_CASE("lora_add: reference and cpu against a naive composition, mixed adapters", "[lora]") {
  std::mt19937 rng(17);
  const index_t in = 37, out = 23, n = 11;
  const std::vector<Factors> f{random_factors(3, in, out, 2.0f, rng), random_factors(7, in, out, 0.5f, rng),
                               random_factors(1, in, out, 5.66f, rng)};
  std::vector<kernels::LoraFactorRef> table;
  for (const auto& x : f) table.push_back({x.a.data(), x.b.data(), static_cast<std::int32_t>(x.rank), x.scale});
  table.push_back({});  // adapter 3 does not touch this weight
  const index_t max_rank = 7;
  const std::vector<std::int32_t> rows{0, -1, 1, 2, 1, 0, 3, -1, 2, 0, 1};
  const auto x = random_vector(n * in, rng);
  const auto y0 = random_vector(n * out, rng);

  std::vector<double> want(y0.begin(), y0.end());
  for (index_t t = 0; t < n; ++t) {
    const int a = rows[t];
    if (a < 0 || a >= 3) continue;
    for (index_t o = 0; o < out; ++o) {
      double s = 0;
      for (index_t j = 0; j < f[a].rank; ++j) {
        double hj = 0;
        for (index_t i = 0; i < in; ++i) hj += double(f[a].a[j * in + i]) * x[t * in + i];
        s += double(f[a].b[o * f[a].rank + j]) * hj;
      }
      want[t * out + o] += f[a].scale * s;
    }
  }
  const auto ref = run<backend::reference>(x, n, in, y0, out, rows, table, max_rank);
  const auto cpu = run<backend::cpu>(x, n, in, y0, out, rows, table, max_rank);
  const float tol = tolerance(in * max_rank) * 6.0f;
  for (index_t k = 0; k < n * out; ++k) {
    CHECK(std::fabs(ref[k] - want[k]) <= tol);
    CHECK(std::fabs(cpu[k] - ref[k]) <= tol);
  }
  // Rows without an adapter are untouched, bit for bit.
  for (index_t t : {index_t{1}, index_t{6}, index_t{7}}) {
    for (index_t o = 0; o < out; ++o) CHECK(ref[t * out + o] == y0[t * out + o]);
  }
  // The batch equals each row alone.
  for (index_t t = 0; t < n; ++t) {
    const std::vector<float> xt(x.begin() + t * in, x.begin() + (t + 1) * in);
    const std::vector<float> yt(y0.begin() + t * out, y0.begin() + (t + 1) * out);
    const auto alone = run<backend::cpu>(xt, 1, in, yt, out, {rows[t]}, table, max_rank);
    for (index_t o = 0; o < out; ++o) CHECK(alone[o] == cpu[t * out + o]);
  }
}

TEST_CASE("lora_add: bad adapter indices and ranks are typed errors", "[lora]") {
  std::mt19937 rng(2);
  const auto f = random_factors(4, 5, 3, 1.0f, rng);
  const std::vector<kernels::LoraFactorRef> table{{f.a.data(), f.b.data(), 4, 1.0f}};
  const auto x = random_vector(5, rng);
  const std::vector<float> y0(3, 0.0f);
  CHECK_THROWS_AS(run<backend::reference>(x, 1, 5, y0, 3, {1}, table, 4), Error);
  CHECK_THROWS_AS(run<backend::cpu>(x, 1, 5, y0, 3, {1}, table, 4), Error);
  CHECK_THROWS_AS(run<backend::cpu>(x, 1, 5, y0, 3, {0}, table, 2), Error);  // rank 4 > max_rank 2
}

TEST_CASE("lora_linear equals linear over the merged weight (module and fused expert gate_up)", "[lora]") {
  std::mt19937 rng(23);
  const index_t d = 19, f = 6, E = 3, r = 2, n = 5;
  // A fused expert gate_up target: A [E·r, d], B [2f, E·r] in PEFT's layout.
  io::LoraTarget t;
  t.module = "model.layers.0.mlp.experts";
  t.parameter = "gate_up_proj";
  t.n_experts = E, t.rank = r, t.in = d, t.out = 2 * f, t.scale = 1.5f;
  t.a = random_vector(E * r * d, rng);
  t.b = random_vector(2 * f * E * r, rng);
  for (index_t e = 0; e < E; ++e) {
    for (const index_t row0 : {index_t{0}, f}) {  // the gate rows, then the up rows
      const model::PackedLoraFactors p = model::pack_lora_factors(t, e, row0, f);
      const auto w = random_vector(f * d, rng);
      std::vector<float> merged = w;
      for (index_t o = 0; o < f; ++o) {
        for (index_t i = 0; i < d; ++i) {
          double s = 0;
          for (index_t j = 0; j < r; ++j) s += double(t.b_at(e, row0 + o, j)) * t.a_at(e, j, i);
          merged[o * d + i] += static_cast<float>(t.scale * s);
        }
      }
      const auto x = random_vector(n * d, rng);
      const layers::WeightMatrix<> W{DType::f32, reinterpret_cast<const std::byte*>(w.data()), f, d, d};
      const layers::WeightMatrix<> M{DType::f32, reinterpret_cast<const std::byte*>(merged.data()), f, d, d};
      const std::vector<kernels::LoraFactorRef> table{
          {}, {p.a.data(), p.b.data(), static_cast<std::int32_t>(p.rank), p.scale}};
      const std::vector<std::int32_t> rows{1, 1, 0, -1, 1};  // adapter 0 does not touch this weight
      std::vector<float> h(n * r), y(n * f), ym(n * f), yb(n * f);
      const layers::LoraWeight<> lw{View<const kernels::LoraFactorRef, 1>(table.data(), {table.size()}), r};
      const layers::LoraRows<backend::reference> lr{View<const std::int32_t, 1>(rows.data(), {n}),
                                                    View<float, 2>(h.data(), {n, r})};
      const View<const float, 2> xv(x.data(), {n, d});
      layers::lora_linear(backend::reference{}, xv, W, lw, lr, View<float, 2>(y.data(), {n, f}));
      layers::linear(backend::reference{}, xv, M, View<float, 2>(ym.data(), {n, f}));
      layers::linear(backend::reference{}, xv, W, View<float, 2>(yb.data(), {n, f}));
      for (index_t k = 0; k < n; ++k) {
        for (index_t o = 0; o < f; ++o) {
          const float want = rows[k] == 1 ? ym[k * f + o] : yb[k * f + o];
          CHECK(std::fabs(y[k * f + o] - want) <= tolerance(d * r) * 8.0f);
        }
      }
    }
  }
}
