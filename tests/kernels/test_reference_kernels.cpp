// The oracle itself: every reference kernel against tiny cases computed by hand, so that the
// cpu_simd tests that compare against it compare against something right.
#include <moe/kernels/kernels.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using moe::bf16;
using moe::f16;
using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

namespace {

template <class W>
std::vector<W> to_weights(const std::vector<float>& v) {
  std::vector<W> out;
  for (float f : v) out.push_back(moe::from_float<W>(f));
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("reference matmul: y = x·Wᵀ on a hand-computed 2x3 · (2x3)ᵀ", "[reference][matmul]",
                   float, bf16, f16) {
  // x = [[1, 2, 3], [-1, 0.5, 4]], W = [[1, 0, -1], [2, 1, 0.25]] (all exact in bf16 and f16).
  const std::vector<float> x = {1, 2, 3, -1, 0.5f, 4};
  const auto w = to_weights<TestType>({1, 0, -1, 2, 1, 0.25f});
  std::vector<float> y(4, 99.0f);
  kernels::matmul(backend::reference{}, View<const float, 2>(x.data(), {2, 3}),
                  View<const TestType, 2>(w.data(), {2, 3}), View<float, 2>(y.data(), {2, 2}));
  // row 0: [1-3, 2+2+0.75] = [-2, 4.75]; row 1: [-1-4, -2+0.5+1] = [-5, -0.5]
  REQUIRE(y == std::vector<float>{-2.0f, 4.75f, -5.0f, -0.5f});
}

TEMPLATE_TEST_CASE("reference matmul_in_out: y = x·W with W stored [in, out]", "[reference][matmul]",
                   float, bf16, f16) {
  // x = [[1, 2]], W = [[1, 2, 3], [4, 5, 6]] -> y = [9, 12, 15]
  const std::vector<float> x = {1, 2};
  const auto w = to_weights<TestType>({1, 2, 3, 4, 5, 6});
  std::vector<float> y(3, 99.0f);
  kernels::matmul_in_out(backend::reference{}, View<const float, 2>(x.data(), {1, 2}),
                         View<const TestType, 2>(w.data(), {2, 3}), View<float, 2>(y.data(), {1, 3}));
  REQUIRE(y == std::vector<float>{9.0f, 12.0f, 15.0f});
}

TEST_CASE("reference matmul honours outer strides and rejects mismatched shapes", "[reference][matmul]") {
  // x rows padded to 4, y rows padded to 3: padding must stay untouched.
  const std::vector<float> x = {1, 2, -7, -7, 3, 4, -7, -7};
  const std::vector<float> w = {1, 1, 1, -1};
  std::vector<float> y(6, 42.0f);
  View<const float, 2> xv(x.data(), {2, 2}, {4, 1});
  View<float, 2> yv(y.data(), {2, 2}, {3, 1});
  kernels::matmul(backend::reference{}, xv, View<const float, 2>(w.data(), {2, 2}), yv);
  REQUIRE(y == std::vector<float>{3, -1, 42, 7, -1, 42});
  std::vector<float> y_bad(3);
  REQUIRE_THROWS_AS(kernels::matmul(backend::reference{}, xv, View<const float, 2>(w.data(), {2, 2}),
                                    View<float, 2>(y_bad.data(), {1, 3})),
                    moe::Error);
}

TEST_CASE("reference rmsnorm on a hand-computed row", "[reference][rmsnorm]") {
  // x = [3, 4]: mean(x²) = 12.5, eps = 3.5 -> rsqrt(16) = 0.25; weight [2, 0.5] -> [1.5, 0.5]
  std::vector<float> x = {3, 4, -3, -4};
  const std::vector<bf16> weight = to_weights<bf16>({2.0f, 0.5f});
  std::vector<float> y(4);
  kernels::rmsnorm(backend::reference{}, View<const float, 2>(x.data(), {2, 2}),
                   View<const bf16, 1>(weight.data(), {2}), 3.5f, View<float, 2>(y.data(), {2, 2}));
  REQUIRE(y == std::vector<float>{1.5f, 0.5f, -1.5f, -0.5f});
  // In place (y aliases x) gives the same.
  View<float, 2> xv(x.data(), {2, 2});
  kernels::rmsnorm(backend::reference{}, View<const float, 2>(xv),
                   View<const bf16, 1>(weight.data(), {2}), 3.5f, xv);
  REQUIRE(x == y);
}

TEST_CASE("reference rms_normalize, scale_rows, fill and attention_temperature (Llama 4)", "[reference][llama4]") {
  // rms_normalize: [3, 4] with eps 3.5 -> rsqrt(16) = 0.25, no weight.
  std::vector<float> x = {3, 4, 0, 0};
  kernels::rms_normalize(backend::reference{}, View<float, 2>(x.data(), {2, 2}), 3.5f);
  REQUIRE(x == std::vector<float>{0.75f, 1.0f, 0.0f, 0.0f});
  // scale_rows: each row times its own weight.
  std::vector<float> y = {1, 2, 3, 4, 5, 6};
  const std::vector<float> w = {2.0f, -0.5f};
  kernels::scale_rows(backend::reference{}, View<float, 2>(y.data(), {2, 3}), View<const float, 1>(w.data(), {2}));
  REQUIRE(y == std::vector<float>{2, 4, 6, -2, -2.5f, -3});
  REQUIRE_THROWS_AS(kernels::scale_rows(backend::reference{}, View<float, 2>(y.data(), {3, 2}),
                                        View<const float, 1>(w.data(), {2})),
                    moe::Error);
  std::vector<float> f(5, 3.0f);
  kernels::fill(backend::reference{}, View<float, 1>(f.data(), {4}), 1.0f);
  REQUIRE(f == std::vector<float>{1, 1, 1, 1, 3});
  // attention_temperature: 1 + attn_scale · log1p(floor((pos + 1) / floor_scale)).
  CHECK(kernels::attention_temperature_factor(2, 4.0f, 0.1f) == 1.0f);  // floor(3/4) = 0
  CHECK(kernels::attention_temperature_factor(3, 4.0f, 0.1f) == Approx(1.0 + 0.1 * std::log(2.0)));
  CHECK(kernels::attention_temperature_factor(100, 4.0f, 0.1f) == Approx(1.0 + 0.1 * std::log(26.0)));
  std::vector<float> q = {1, -2, 1, -2};
  const std::vector<std::int64_t> pos = {0, 11};
  kernels::attention_temperature(backend::reference{}, View<float, 2>(q.data(), {2, 2}),
                                 View<const std::int64_t, 1>(pos.data(), {2}), 4.0f, 0.1f);
  const float f11 = kernels::attention_temperature_factor(11, 4.0f, 0.1f);  // floor(12/4) = 3
  CHECK(f11 == Approx(1.0 + 0.1 * std::log(4.0)));
  REQUIRE(q == std::vector<float>{1, -2, f11, -2 * f11});
}

TEST_CASE("reference rope rotates the right pairs in both pairings", "[reference][rope]") {
  // One token, one head, head_dim 6, rotary_dim 4 (the last two dims stay). Angles: pair 0 by
  // 90° (cos 0, sin 1), pair 1 by 180° (cos -1, sin 0).
  const std::vector<float> cos = {0.0f, -1.0f};
  const std::vector<float> sin = {1.0f, 0.0f};
  View<const float, 2> cv(cos.data(), {1, 2}), sv(sin.data(), {1, 2});
  SECTION("half_split pairs (i, i + 2)") {
    std::vector<float> x = {1, 2, 3, 4, 5, 6};
    kernels::rope(backend::reference{}, View<float, 3>(x.data(), {1, 1, 6}), cv, sv,
                  kernels::RopePairing::half_split);
    // pair (x0, x2) = (1, 3) by 90°: (1·0 - 3·1, 3·0 + 1·1) = (-3, 1)
    // pair (x1, x3) = (2, 4) by 180°: (-2, -4)
    REQUIRE(x == std::vector<float>{-3, -2, 1, -4, 5, 6});
  }
  SECTION("interleaved pairs (2i, 2i + 1)") {
    std::vector<float> x = {1, 2, 3, 4, 5, 6};
    kernels::rope(backend::reference{}, View<float, 3>(x.data(), {1, 1, 6}), cv, sv,
                  kernels::RopePairing::interleaved);
    // pair (1, 2) by 90°: (-2, 1); pair (3, 4) by 180°: (-3, -4)
    REQUIRE(x == std::vector<float>{-2, 1, -3, -4, 5, 6});
  }
  SECTION("rotary_dim larger than head_dim is rejected") {
    std::vector<float> x = {1, 2, 3};
    REQUIRE_THROWS_AS(kernels::rope(backend::reference{}, View<float, 3>(x.data(), {1, 1, 3}), cv,
                                    sv, kernels::RopePairing::half_split),
                      moe::Error);
  }
}

TEST_CASE("reference softmax: known values, shift invariance, masked rows", "[reference][softmax]") {
  const float inf = std::numeric_limits<float>::infinity();
  // Row 0: [0, ln 3] -> [1/4, 3/4]. Row 1: the same shifted by 1000 (overflows without the max).
  // Row 2: everything masked -> zeros. Row 3: one -inf -> exactly 0 there.
  std::vector<float> x = {0.0f, std::log(3.0f), 1000.0f, 1000.0f + std::log(3.0f), -inf, -inf,
                          -inf, 0.0f};
  kernels::softmax(backend::reference{}, View<float, 2>(x.data(), {4, 2}));
  REQUIRE(x[0] == Approx(0.25f).epsilon(1e-6));
  REQUIRE(x[1] == Approx(0.75f).epsilon(1e-6));
  REQUIRE(x[2] == Approx(0.25f).epsilon(1e-4));  // 1000 + ln 3 rounds in f32 (ulp 6e-5)
  REQUIRE(x[3] == Approx(0.75f).epsilon(1e-4));
  REQUIRE(x[4] == 0.0f);
  REQUIRE(x[5] == 0.0f);
  REQUIRE(x[6] == 0.0f);
  REQUIRE(x[7] == 1.0f);
}

TEST_CASE("reference silu and swiglu on known values", "[reference][activation]") {
  // silu(0) = 0, silu(ln 3) = ln 3 · 3/4, silu(-ln 3) = -ln 3 / 4, silu(-100) = -0 (no NaN)
  const float l3 = std::log(3.0f);
  std::vector<float> x = {0.0f, l3, -l3, -100.0f};
  kernels::silu(backend::reference{}, View<float, 2>(x.data(), {2, 2}));
  REQUIRE(x[0] == 0.0f);
  REQUIRE(x[1] == Approx(l3 * 0.75f).epsilon(1e-6));
  REQUIRE(x[2] == Approx(-l3 * 0.25f).epsilon(1e-6));
  REQUIRE(std::abs(x[3]) < 1e-30f);
  std::vector<float> gate = {l3, 0.0f}, up = {2.0f, 5.0f};
  // out aliases gate
  kernels::swiglu(backend::reference{}, View<const float, 2>(gate.data(), {1, 2}),
                  View<const float, 2>(up.data(), {1, 2}), View<float, 2>(gate.data(), {1, 2}));
  REQUIRE(gate[0] == Approx(l3 * 1.5f).epsilon(1e-6));
  REQUIRE(gate[1] == 0.0f);
}

TEST_CASE("reference add: y += x", "[reference][add]") {
  std::vector<float> y = {1, 2, 3, 4};
  const std::vector<float> x = {0.5f, -2, 10, 0};
  kernels::add(backend::reference{}, View<float, 2>(y.data(), {2, 2}),
               View<const float, 2>(x.data(), {2, 2}));
  REQUIRE(y == std::vector<float>{1.5f, 0, 13, 4});
}

TEST_CASE("reference top_k: order, ties by lower index, NaN last, bad k", "[reference][top_k]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> scores = {0.5f, nan, 2.0f, 0.5f, -inf, 2.0f, 0.5f};
  std::vector<std::int32_t> ids(7);
  std::vector<float> values(7);
  kernels::top_k(backend::reference{}, scores, ids, values);
  REQUIRE(ids == std::vector<std::int32_t>{2, 5, 0, 3, 6, 4, 1});
  REQUIRE(values[0] == 2.0f);
  REQUIRE(values[5] == -inf);
  REQUIRE(std::isnan(values[6]));

  std::vector<std::int32_t> ids3(3);
  std::vector<float> values3(3);
  kernels::top_k(backend::reference{}, scores, ids3, values3);
  REQUIRE(ids3 == std::vector<std::int32_t>{2, 5, 0});

  std::vector<std::int32_t> too_many(8);
  std::vector<float> values8(8);
  REQUIRE_THROWS_AS(kernels::top_k(backend::reference{}, scores, too_many, values8), moe::Error);
  std::vector<float> values_short(2);
  REQUIRE_THROWS_AS(kernels::top_k(backend::reference{}, scores, ids3, values_short), moe::Error);
}

TEST_CASE("reference fill_uniform: deterministic per (seed, index), in [offset - scale, offset + scale), rounded per type",
          "[reference][random]") {
  std::vector<float> a(4099), b(4099), c(4099);
  moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<float, 1>(a.data(), {a.size()}), 5, 0.5f, 1.0f);
  moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<float, 1>(b.data(), {b.size()}), 5, 0.5f, 1.0f);
  moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<float, 1>(c.data(), {c.size()}), 6, 0.5f, 1.0f);
  CHECK(a == b);
  CHECK(a != c);
  double mean = 0;
  for (float v : a) {
    REQUIRE(v >= 0.5f);
    REQUIRE(v < 1.5f);
    mean += v;
  }
  CHECK(mean / a.size() == Approx(1.0).margin(0.02));  // uniform: mean = offset
  // A prefix of a longer fill equals the shorter fill (values depend on the index only).
  std::vector<float> head(100);
  moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<float, 1>(head.data(), {head.size()}), 5, 0.5f, 1.0f);
  CHECK(std::equal(head.begin(), head.end(), a.begin()));
  std::vector<moe::bf16> h(100);
  moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<moe::bf16, 1>(h.data(), {h.size()}), 5, 0.5f, 1.0f);
  for (std::size_t i = 0; i < h.size(); ++i) CHECK(h[i] == moe::to_bf16(a[i]));
}
