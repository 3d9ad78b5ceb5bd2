// Quantize -> dequantize within each format's error bound, on random and structured rows.
// The bound of a block comes from the quantization step of each group g of the block:
//   * formats with a plain rounding rule (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q8_K): every element within
//     half a step (a whole step for the clamped top code of the signed 4/5-bit formats), plus the
//     f16 rounding of the scale (relative 2^-11, times the largest code) and of the min;
//   * formats fitted by least squares (K-quants, IQ4, MXFP4): the block's RMSE within 1.25x the
//     uniform-quantizer noise sqrt(mean_g step_g² / 12) (the 1.25 covers the rounding of the group
//     scales to 4/6 bits), plus the f16 floor. step_g per format: Q2_K range/3, Q3_K amax/4,
//     Q4_K range/15, Q5_K range/31, Q6_K amax/32 (range = max - min(min, 0)), IQ4 24·amax/127 (the
//     widest gap of the table);
//   * MXFP4 (a fixed power-of-two scale, no fit): every element within the widest gap, amax/2;
//   * FP8 e4m3 rows (scale amax/448): every element within half the top binade's ulp, amax/28.
// NaN: a NaN element gets code 0 in Q8_0 and MXFP4; the other formats skip NaN in their max/min
// search or fold it into some code; nothing becomes infinite, nothing is read or written out of
// bounds, and other blocks of the row are never affected.
#include "quant_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

using namespace quant_test;

namespace {

constexpr double kF16 = 1.0 / 2048;  // f16 relative rounding (2^-11)

enum class Kind { kMax, kRms };

struct Spec {
  Kind kind;
  std::size_t group;
  double (*step)(double amax, double min, double max);
  double max_code;  // largest |code| the scale multiplies (for the f16 term)
};

double range_step(double min, double max, int levels) { return (max - std::min(min, 0.0)) / levels; }

template <class Q>
Spec spec() {
  using namespace moe::quant;
  if constexpr (std::is_same_v<Q, BlockQ8_0>) return {Kind::kMax, 32, [](double a, double, double) { return a / 127; }, 127};
  if constexpr (std::is_same_v<Q, BlockQ8_K>) return {Kind::kMax, 256, [](double a, double, double) { return a / 127; }, 0};
  if constexpr (std::is_same_v<Q, BlockQ4_0>) return {Kind::kMax, 32, [](double a, double, double) { return a / 8; }, 8};
  if constexpr (std::is_same_v<Q, BlockQ5_0>) return {Kind::kMax, 32, [](double a, double, double) { return a / 16; }, 16};
  if constexpr (std::is_same_v<Q, BlockQ4_1>)
    return {Kind::kMax, 32, [](double, double mn, double mx) { return (mx - mn) / 15; }, 15};
  if constexpr (std::is_same_v<Q, BlockQ5_1>)
    return {Kind::kMax, 32, [](double, double mn, double mx) { return (mx - mn) / 31; }, 31};
  if constexpr (std::is_same_v<Q, BlockQ2_K>)
    return {Kind::kRms, 16, [](double, double mn, double mx) { return range_step(mn, mx, 3); }, 45};
  if constexpr (std::is_same_v<Q, BlockQ3_K>) return {Kind::kRms, 16, [](double a, double, double) { return a / 4; }, 128};
  if constexpr (std::is_same_v<Q, BlockQ4_K>)
    return {Kind::kRms, 32, [](double, double mn, double mx) { return range_step(mn, mx, 15); }, 945};
  if constexpr (std::is_same_v<Q, BlockQ5_K>)
    return {Kind::kRms, 32, [](double, double mn, double mx) { return range_step(mn, mx, 31); }, 1953};
  if constexpr (std::is_same_v<Q, BlockQ6_K>) return {Kind::kRms, 16, [](double a, double, double) { return a / 32; }, 4096};
  if constexpr (std::is_same_v<Q, BlockIq4Nl> || std::is_same_v<Q, BlockIq4Xs>)
    return {Kind::kRms, 32, [](double a, double, double) { return 24 * a / 127; }, 127 * 32};
  // MXFP4: every element within the widest gap, 2 units of the scale S = 2^floor(log2 amax) / 4
  // (<= amax/2); the clipped top (amax < 8S, largest value 6S) is within 2S as well.
  if constexpr (std::is_same_v<Q, BlockMxfp4>) return {Kind::kMax, 32, [](double a, double, double) { return a / 2; }, -1};
  // FP8 e4m3 (scale amax/448, f32): 3 mantissa bits, so half an ulp of the top binade [256, 448)
  // (16 units of the scale, amax/28) bounds every element; the subnormals' half step is smaller.
  if constexpr (std::is_same_v<Q, BlockFp8E4m3>) return {Kind::kMax, 128, [](double a, double, double) { return a / 14; }, 0};
}

// Checks every block of x against its bound; returns the row's RMSE relative to its RMS.
template <class Q>
double check_row(const std::vector<float>& x, const std::vector<float>& y) {
  const Spec s = spec<Q>();
  constexpr std::size_t B = Q::block_elements;
  double err2_row = 0, x2_row = 0;
  for (std::size_t b0 = 0; b0 < x.size(); b0 += B) {
    double block_amax = 0, block_min_abs = 0, step2 = 0, worst_ratio = 0, err2 = 0;
    for (std::size_t g0 = b0; g0 < b0 + B; g0 += s.group) {
      double amax = 0, mn = x[g0], mx = x[g0];
      for (std::size_t i = g0; i < g0 + s.group; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
        mn = std::min<double>(mn, x[i]), mx = std::max<double>(mx, x[i]);
      }
      block_amax = std::max(block_amax, amax);
      block_min_abs = std::max(block_min_abs, std::fabs(mn));
      const double step = s.step(amax, mn, mx);
      step2 += step * step;
      if (s.kind == Kind::kMax) {
        const bool signed_clamp = s.max_code == 8 || s.max_code == 16 || s.max_code < 0;  // a whole step
        const bool has_min = s.max_code == 15 || s.max_code == 31;
        const double bound = (signed_clamp ? step : step / 2) + std::max(s.max_code, 0.0) * step * kF16 +
                             (has_min ? std::fabs(mn) * kF16 : 0.0) + 1e-30;
        for (std::size_t i = g0; i < g0 + s.group; ++i) {
          worst_ratio = std::max(worst_ratio, std::fabs(static_cast<double>(y[i]) - x[i]) / bound);
        }
      }
    }
    for (std::size_t i = b0; i < b0 + B; ++i) {
      const double e = static_cast<double>(y[i]) - x[i];
      err2 += e * e;
      x2_row += static_cast<double>(x[i]) * x[i];
    }
    err2_row += err2;
    if (s.kind == Kind::kMax) {
      INFO("block at " << b0 << ": worst error / bound " << worst_ratio);
      CHECK(worst_ratio <= 1.0);
    } else {
      const double groups = static_cast<double>(B / s.group);
      const double bound = 1.25 * std::sqrt(step2 / groups / 12) + 2 * kF16 * block_amax + 1e-30;
      const double rmse = std::sqrt(err2 / B);
      INFO("block at " << b0 << ": RMSE " << rmse << ", bound " << bound);
      CHECK(rmse <= bound);
    }
  }
  return x2_row > 0 ? std::sqrt(err2_row / x2_row) : 0.0;
}

}  // namespace

TEMPLATE_TEST_CASE("round trip within the format's bound", "[quant][roundtrip]", MOE_QUANT_TEST_FORMATS) {
  using Q = TestType;
  constexpr std::size_t B = Q::block_elements;
  const std::size_t n = 8 * 256;
  SECTION("gaussian rows") {
    for (std::uint32_t seed = 1; seed <= 3; ++seed) {
      const auto x = gaussian(n, seed);
      const double rel = check_row<Q>(x, round_trip<Q>(x));
      INFO(moe::dtype_name(Q::dtype) << " relative RMSE " << rel);
      CHECK(rel < 0.5);
    }
  }
  SECTION("zeros decode to zeros") {
    const std::vector<float> x(n, 0.0f);
    for (const float v : round_trip<Q>(x)) CHECK(v == 0.0f);
  }
  SECTION("a constant row") {
    const std::vector<float> x(n, 0.37f);
    check_row<Q>(x, round_trip<Q>(x));
    const std::vector<float> y(n, -2.5f);
    check_row<Q>(y, round_trip<Q>(y));
  }
  SECTION("one outlier: its block takes the larger step, the others keep theirs") {
    auto x = gaussian(n, 7);
    x[B + 3] = 1000.0f;
    const auto y = round_trip<Q>(x);
    check_row<Q>(x, y);
  }
  SECTION("large and small magnitudes (inside f16's range for the scales)") {
    auto big = gaussian(n, 8, 1000.0f);
    check_row<Q>(big, round_trip<Q>(big));
    auto small = gaussian(n, 9, 0.01f);
    check_row<Q>(small, round_trip<Q>(small));
  }
  SECTION("NaN stays inside its block") {
    auto x = gaussian(n, 10);
    x[5] = std::numeric_limits<float>::quiet_NaN();
    const auto y = round_trip<Q>(x);
    const std::vector<float> x_rest(x.begin() + B, x.end()), y_rest(y.begin() + B, y.end());
    check_row<Q>(x_rest, y_rest);
    if constexpr (std::is_same_v<Q, BlockQ8_0> || std::is_same_v<Q, BlockMxfp4>) CHECK(y[5] == 0.0f);
    for (std::size_t i = 0; i < B; ++i) CHECK(!std::isinf(y[i]));
  }
  SECTION("an odd number of rows quantized one by one equals the matrix quantized at once") {
    const std::size_t rows = 7, cols = 2 * 256;
    const auto x = gaussian(rows * cols, 11);
    std::vector<Q> whole(rows * cols / B), by_row(rows * cols / B);
    moe::quant::quantize_row(x.data(), whole.data(), rows * cols);
    for (std::size_t r = 0; r < rows; ++r) {
      moe::quant::quantize_row(x.data() + r * cols, by_row.data() + r * cols / B, cols);
    }
    CHECK(std::memcmp(whole.data(), by_row.data(), sizeof(Q) * whole.size()) == 0);
  }
}

TEST_CASE("round trip: relative RMSE on gaussian rows orders the formats by bits", "[quant][roundtrip]") {
  const auto x = gaussian(64 * 256, 21);
  const auto rel = [&](auto tag) {
    using Q = decltype(tag);
    const auto y = round_trip<Q>(x);
    double e2 = 0, x2 = 0;
    for (std::size_t i = 0; i < x.size(); ++i) e2 += (y[i] - x[i]) * (y[i] - x[i]), x2 += x[i] * x[i];
    return std::sqrt(e2 / x2);
  };
  const double q8 = rel(BlockQ8_0{}), q6 = rel(BlockQ6_K{}), q5 = rel(BlockQ5_K{}), q4 = rel(BlockQ4_K{});
  const double q3 = rel(BlockQ3_K{}), q2 = rel(BlockQ2_K{}), iq4 = rel(BlockIq4Xs{}), q40 = rel(BlockQ4_0{});
  INFO("q8_0 " << q8 << " q6_K " << q6 << " q5_K " << q5 << " q4_K " << q4 << " iq4_xs " << iq4 << " q4_0 " << q40
               << " q3_K " << q3 << " q2_K " << q2);
  CHECK(q8 < q6);
  CHECK(q6 < q5);
  CHECK(q5 < q4);
  CHECK(q4 < q40);
  CHECK(iq4 < q40);
  CHECK(q4 < q3);
  CHECK(q3 < q2);
  CHECK(q8 < 0.01);
  CHECK(q2 < 0.5);
}
