// cpu_simd rmsnorm, rope, softmax, silu, swiglu, add and top_k against the reference on odd sizes,
// with strided rows and the documented aliasing; tolerances from float epsilon.
#include "kernel_test_util.hpp"

#include <moe/core/parallel.hpp>
#include <moe/kernels/kernels.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

using moe::bf16;
using moe::f16;
using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;
using moe_test::kEps;

namespace {

const std::vector<index_t> kWidths = {1, 3, 17, 67, 1000};

// Rows of width d at stride d + 3, padding filled with a sentinel that must survive.
struct Rows {
  index_t n, d, ld;
  std::vector<float> data;
  static constexpr float kSentinel = 777.0f;
  Rows(index_t n_, index_t d_, const std::vector<float>& values) : n(n_), d(d_), ld(d_ + 3) {
    data.assign(n * ld, kSentinel);
    for (index_t r = 0; r < n; ++r) {
      for (index_t i = 0; i < d; ++i) data[r * ld + i] = values[r * d + i];
    }
  }
  View<float, 2> view() { return View<float, 2>(data.data(), {n, d}, {ld, 1}); }
  View<const float, 2> cview() const { return View<const float, 2>(data.data(), {n, d}, {ld, 1}); }
  float at(index_t r, index_t i) const { return data[r * ld + i]; }
  bool padding_intact() const {
    for (index_t r = 0; r < n; ++r) {
      for (index_t i = d; i < ld; ++i) {
        if (data[r * ld + i] != kSentinel) return false;
      }
    }
    return true;
  }
};

// |got - want| <= rel·|want| + abs, reporting the first failure.
void check_close(const Rows& got, const Rows& want, double rel, double abs) {
  REQUIRE(got.padding_intact());
  for (index_t r = 0; r < got.n; ++r) {
    for (index_t i = 0; i < got.d; ++i) {
      const double g = got.at(r, i), w = want.at(r, i);
      if (!(std::abs(g - w) <= rel * std::abs(w) + abs)) {
        FAIL("[" << r << ", " << i << "] got " << g << ", reference " << w);
      }
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("cpu rmsnorm matches the reference, also in place", "[cpu][rmsnorm]", float, bf16, f16) {
  std::uint32_t seed = 1;
  for (index_t d : kWidths) {
    CAPTURE(d);
    const index_t n = 5;
    moe_test::UnalignedMatrix<TestType> weight(moe_test::random_floats(d, seed++, 0.5f, 1.5f), 1, d, d);
    View<const TestType, 1> wv(weight.data(), {d});
    const Rows x(n, d, moe_test::random_floats(n * d, seed++, -3.0f, 3.0f));
    Rows y(n, d, std::vector<float>(n * d, 0.0f)), y_ref = y;
    kernels::rmsnorm(backend::cpu{}, x.cview(), wv, 1e-6f, y.view());
    kernels::rmsnorm(backend::reference{}, x.cview(), wv, 1e-6f, y_ref.view());
    // Σx² in f32 lanes: relative error <= γ_d; the square root halves it; the mean, eps, sqrt,
    // reciprocal and two products add ~6 roundings of u = eps/2.
    const double rel = (static_cast<double>(d) / 2.0 + 6.0) * kEps / 2.0;
    check_close(y, y_ref, rel, 0.0);
    Rows in_place = x;
    kernels::rmsnorm(backend::cpu{}, in_place.cview(), wv, 1e-6f, in_place.view());
    REQUIRE(in_place.data == y.data);
  }
}

TEST_CASE("cpu rope matches the reference in both pairings", "[cpu][rope]") {
  struct Shape { index_t n_tokens, n_heads, head_dim, rotary_dim; };
  const Shape shapes[] = {{1, 1, 2, 2}, {3, 2, 6, 4}, {5, 3, 64, 64}, {2, 4, 40, 34}, {7, 2, 128, 128}};
  std::uint32_t seed = 50;
  for (const Shape& s : shapes) {
    for (auto pairing : {kernels::RopePairing::half_split, kernels::RopePairing::interleaved}) {
      CAPTURE(s.n_tokens, s.n_heads, s.head_dim, s.rotary_dim, static_cast<int>(pairing));
      const index_t half = s.rotary_dim / 2;
      std::vector<float> cos(s.n_tokens * half), sin(s.n_tokens * half);
      const auto angles = moe_test::random_floats(s.n_tokens * half, seed++, -10.0f, 10.0f);
      for (index_t i = 0; i < angles.size(); ++i) {
        cos[i] = std::cos(angles[i]);
        sin[i] = std::sin(angles[i]);
      }
      // Heads padded to head_dim + 2 to exercise the head stride.
      const index_t hs = s.head_dim + 2, ts = s.n_heads * hs;
      auto x = moe_test::random_floats(s.n_tokens * ts, seed++, -4.0f, 4.0f);
      auto x_ref = x;
      const std::vector<float> x0 = x;
      View<float, 3> xv(x.data(), {s.n_tokens, s.n_heads, s.head_dim}, {ts, hs, 1});
      View<float, 3> xv_ref(x_ref.data(), {s.n_tokens, s.n_heads, s.head_dim}, {ts, hs, 1});
      View<const float, 2> cv(cos.data(), {s.n_tokens, half}), sv(sin.data(), {s.n_tokens, half});
      kernels::rope(backend::cpu{}, xv, cv, sv, pairing);
      kernels::rope(backend::reference{}, xv_ref, cv, sv, pairing);
      for (index_t i = 0; i < x.size(); ++i) {
        const index_t in_head = i % hs;
        if (in_head >= s.rotary_dim) {
          REQUIRE(x[i] == x0[i]);  // unrotated dims and padding untouched
          continue;
        }
        // Each output is a·c ± b·s: two products and one sum, each rounded (or one fused), so
        // |Δ| <= 2·eps·(|a| + |b|) covers both the kernel's and the reference's rounding.
        const index_t head_start = i - in_head;
        const index_t partner = pairing == kernels::RopePairing::half_split
                                    ? head_start + (in_head < half ? in_head + half : in_head - half)
                                    : head_start + (in_head ^ 1);
        const double bound = 2.0 * kEps * (std::abs(x0[i]) + std::abs(x0[partner]));
        REQUIRE(std::abs(double(x[i]) - x_ref[i]) <= bound);
      }
    }
  }
}

TEST_CASE("cpu softmax matches the reference, with masked entries and masked rows", "[cpu][softmax]") {
  const float inf = std::numeric_limits<float>::infinity();
  std::uint32_t seed = 80;
  for (index_t d : kWidths) {
    CAPTURE(d);
    auto values = moe_test::random_floats(4 * d, seed++, -30.0f, 30.0f);
    for (index_t i = 0; i < values.size(); i += 5) values[i] = -inf;  // masked entries
    for (index_t i = 0; i < d; ++i) values[3 * d + i] = -inf;          // a fully masked row
    Rows x(4, d, values), x_ref = x;
    kernels::softmax(backend::cpu{}, x.view());
    kernels::softmax(backend::reference{}, x_ref.view());
    // exp to a few ulp, a sum of d terms (relative γ_d), one reciprocal and one product.
    const double rel = (static_cast<double>(d) / 2.0 + 8.0) * kEps;
    check_close(x, x_ref, rel, 0.0);
    for (index_t i = 0; i < d; ++i) REQUIRE(x.at(3, i) == 0.0f);
  }
}

TEST_CASE("cpu silu and swiglu match the reference, including extremes and aliasing", "[cpu][activation]") {
  std::uint32_t seed = 90;
  for (index_t d : kWidths) {
    CAPTURE(d);
    auto values = moe_test::random_floats(3 * d, seed++, -20.0f, 20.0f);
    const float extremes[] = {-100.0f, -88.5f, -87.0f, 0.0f, -0.0f, 50.0f, 100.0f, 1e-30f};
    for (index_t i = 0; i < values.size() && i < 8; ++i) values[i * 7 % values.size()] = extremes[i];
    Rows x(3, d, values), x_ref = x;
    kernels::silu(backend::cpu{}, x.view());
    kernels::silu(backend::reference{}, x_ref.view());
    // exp to a few ulp (its relative error passes to 1 + exp(-v) at most unchanged), one add, one
    // division: 8 ulp. Absolute slack: xsimd's exp returns +inf from v = 88.38 on (a little
    // before the f32 limit 88.72), so silu(v) for v in (-88.72, -88.38) may be -0 instead of a
    // value of magnitude <= 88.72·e^-88.38 < 1e-36.
    const double rel = 8.0 * kEps, abs = 1e-36;
    check_close(x, x_ref, rel, abs);

    Rows gate(3, d, values), up(3, d, moe_test::random_floats(3 * d, seed++, -2.0f, 2.0f));
    Rows out(3, d, std::vector<float>(3 * d, 0.0f)), out_ref = out;
    kernels::swiglu(backend::cpu{}, gate.cview(), up.cview(), out.view());
    kernels::swiglu(backend::reference{}, gate.cview(), up.cview(), out_ref.view());
    check_close(out, out_ref, rel + kEps, abs);
    // out aliasing gate, and out aliasing up, give the same bits as a separate output.
    Rows g2 = gate, u2 = up;
    kernels::swiglu(backend::cpu{}, g2.cview(), up.cview(), g2.view());
    kernels::swiglu(backend::cpu{}, gate.cview(), u2.cview(), u2.view());
    REQUIRE(g2.data == out.data);
    REQUIRE(u2.data == out.data);
  }
}

TEST_CASE("cpu add matches the reference exactly, also with x aliasing y", "[cpu][add]") {
  std::uint32_t seed = 95;
  for (index_t d : kWidths) {
    Rows y(3, d, moe_test::random_floats(3 * d, seed++)), y_ref = y;
    const Rows x(3, d, moe_test::random_floats(3 * d, seed++));
    kernels::add(backend::cpu{}, y.view(), x.cview());
    kernels::add(backend::reference{}, y_ref.view(), x.cview());
    REQUIRE(y.data == y_ref.data);
    kernels::add(backend::cpu{}, y.view(), y.cview());
    for (index_t i = 0; i < d; ++i) REQUIRE(y.at(2, i) == 2.0f * y_ref.at(2, i));
  }
}

TEST_CASE("cpu top_k equals the reference: ties, NaN, infinities, every k", "[cpu][top_k]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::mt19937 rng(123);
  // Scores from a small set so that ties are everywhere, plus NaN and ±inf.
  const float pool[] = {0.5f, -1.0f, 2.0f, 2.0f, nan, -inf, inf, 0.0f, -0.0f, 0.25f};
  std::uniform_int_distribution<int> pick(0, 9);
  for (index_t n : {index_t{1}, index_t{2}, index_t{7}, index_t{64}, index_t{257}}) {
    std::vector<float> scores(n);
    for (auto& s : scores) s = pool[pick(rng)];
    for (index_t k : {index_t{0}, index_t{1}, index_t{2}, index_t{8}, n}) {
      if (k > n) continue;
      CAPTURE(n, k);
      std::vector<std::int32_t> ids(k), ids_ref(k);
      std::vector<float> values(k), values_ref(k);
      kernels::top_k(backend::cpu{}, scores, ids, values);
      kernels::top_k(backend::reference{}, scores, ids_ref, values_ref);
      REQUIRE(ids == ids_ref);
      for (index_t r = 0; r < k; ++r) {
        REQUIRE(std::isnan(values[r]) == std::isnan(scores[ids[r]]));
        if (!std::isnan(values[r])) REQUIRE(values[r] == scores[ids[r]]);
        if (r > 0) {  // descending; equal scores by increasing index; NaN only after non-NaN
          const float a = values[r - 1], b = values[r];
          if (std::isnan(a)) REQUIRE((std::isnan(b) && ids[r - 1] < ids[r]));
          else if (!std::isnan(b)) REQUIRE((a > b || (a == b && ids[r - 1] < ids[r])));
        }
      }
    }
  }
  // All NaN: indices in order.
  const std::vector<float> all_nan(5, nan);
  std::vector<std::int32_t> ids(3);
  std::vector<float> values(3);
  kernels::top_k(backend::cpu{}, all_nan, ids, values);
  REQUIRE(ids == std::vector<std::int32_t>{0, 1, 2});
  std::vector<std::int32_t> too_many(6);
  std::vector<float> values6(6);
  REQUIRE_THROWS_AS(kernels::top_k(backend::cpu{}, all_nan, too_many, values6), moe::Error);
}

TEMPLATE_TEST_CASE("cpu fill_uniform of a block format: the reference's bytes, blocks split across the threads",
                   "[cpu][random]", moe::quant::BlockQ4_K, moe::quant::BlockQ8_0, moe::quant::BlockIq4Xs) {
  using W = TestType;
  const int threads_before = moe::max_threads();
  moe::set_num_threads(3);  // chunks that do not divide the blocks evenly
  for (const index_t blocks : {index_t{1}, index_t{255}, index_t{1031}}) {
    std::vector<W> ref(static_cast<std::size_t>(blocks)), cpu(static_cast<std::size_t>(blocks));
    kernels::fill_uniform(backend::reference{}, View<W, 1>(ref.data(), {blocks}), 11, 0.25f, -0.1f);
    kernels::fill_uniform(backend::cpu{}, View<W, 1>(cpu.data(), {blocks}), 11, 0.25f, -0.1f);
    CAPTURE(blocks);
    CHECK(std::memcmp(ref.data(), cpu.data(), ref.size() * sizeof(W)) == 0);
  }
  moe::set_num_threads(threads_before);
}
