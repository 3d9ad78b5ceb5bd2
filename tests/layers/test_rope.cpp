// Rope tables against their defining formulas (evaluated independently in double precision).
#include <catch2/catch.hpp>

#include <moe/layers/rope.hpp>

#include <cmath>
#include <numbers>
#include <vector>

using namespace moe;
using namespace moe::layers;

namespace {

std::vector<double> default_inv_freq(double theta, index_t dim) {
  std::vector<double> f(dim / 2);
  for (index_t i = 0; i < dim / 2; ++i) f[i] = 1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  return f;
}

void require_close(const std::vector<float>& got, const std::vector<double>& want, double rel = 2e-6) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("i = " << i << " got " << got[i] << " want " << want[i]);
    CHECK(std::fabs(got[i] - want[i]) <= rel * std::fabs(want[i]) + 1e-30);
  }
}

}  // namespace

TEST_CASE("rope default: inv_freq = theta^(-2i/d)", "[rope]") {
  RopeConfig c;
  c.theta = 10000.0;
  c.rotary_dim = 18;
  const auto f = compute_rope_frequencies(c);
  require_close(f.inv_freq, default_inv_freq(1e4, 18));
  CHECK(f.attention_scaling == 1.0f);
}

TEST_CASE("rope linear: default frequencies divided by factor", "[rope]") {
  RopeConfig c;
  c.type = RopeType::kLinear;
  c.theta = 1e6;
  c.rotary_dim = 16;
  c.factor = 2.5;
  auto want = default_inv_freq(1e6, 16);
  for (auto& w : want) w /= 2.5;
  require_close(compute_rope_frequencies(c).inv_freq, want);
}

TEST_CASE("rope dynamic NTK: default up to max_position_embeddings, larger base beyond", "[rope]") {
  RopeConfig c;
  c.type = RopeType::kDynamic;
  c.theta = 10000.0;
  c.rotary_dim = 16;
  c.factor = 4.0;
  c.max_position_embeddings = 64;
  const auto f = compute_rope_frequencies(c);
  require_close(f.inv_freq, default_inv_freq(1e4, 16));
  std::vector<float> scaled(8, -1.0f);
  CHECK_FALSE(dynamic_ntk_inv_freq(c, 64, scaled));  // not beyond: caller keeps the default table
  CHECK(scaled[0] == -1.0f);
  REQUIRE(dynamic_ntk_inv_freq(c, 100, scaled));
  const double base = 1e4 * std::pow(4.0 * 100.0 / 64.0 - 3.0, 16.0 / 14.0);
  require_close(scaled, default_inv_freq(base, 16), 1e-5);
  SECTION("other rope types never rescale") {
    c.type = RopeType::kLinear;
    CHECK_FALSE(dynamic_ntk_inv_freq(c, 1000, scaled));
  }
  SECTION("factor below 1 is a config error") {
    c.factor = 0.5;
    CHECK_THROWS_AS(compute_rope_frequencies(c), moe::Error);
  }
}

TEST_CASE("rope llama3: high frequencies kept, low divided, band smoothed", "[rope]") {
  RopeConfig c;
  c.type = RopeType::kLlama3;
  c.theta = 500000.0;
  c.rotary_dim = 64;
  c.factor = 8.0;
  c.low_freq_factor = 1.0;
  c.high_freq_factor = 4.0;
  c.original_max_position_embeddings = 64;  // small so all three bands occur for d = 64
  const auto got = compute_rope_frequencies(c).inv_freq;
  const auto base = default_inv_freq(5e5, 64);
  int high = 0, low = 0, mid = 0;
  for (std::size_t i = 0; i < base.size(); ++i) {
    const double wavelen = 2 * std::numbers::pi / base[i];
    double want;
    if (wavelen < 64.0 / 4.0) {
      want = base[i];
      ++high;
    } else if (wavelen > 64.0 / 1.0) {
      want = base[i] / 8.0;
      ++low;
    } else {
      const double smooth = (64.0 / wavelen - 1.0) / (4.0 - 1.0);
      want = (1 - smooth) * base[i] / 8.0 + smooth * base[i];
      ++mid;
    }
    INFO("i = " << i);
    CHECK(std::fabs(got[i] - want) <= 1e-5 * want);
  }
  CHECK(high > 0);
  CHECK(low > 0);
  CHECK(mid > 0);
}

TEST_CASE("rope yarn: ramp between interpolation and extrapolation, mscale attention factor", "[rope]") {
  RopeConfig c;
  c.type = RopeType::kYarn;
  c.theta = 10000.0;
  c.rotary_dim = 32;
  c.factor = 4.0;
  c.original_max_position_embeddings = 64;
  c.max_position_embeddings = 256;
  auto expected = [&](bool truncate) {
    const double d = 32, b = 10000;
    auto corr = [&](double rot) { return d * std::log(64.0 / (rot * 2 * std::numbers::pi)) / (2 * std::log(b)); };
    double lo = corr(32), hi = corr(1);
    if (truncate) {
      lo = std::floor(lo);
      hi = std::ceil(hi);
    }
    lo = std::max(lo, 0.0);
    hi = std::min(hi, d - 1);
    const auto base = default_inv_freq(b, 32);
    std::vector<double> out(base.size());
    for (std::size_t i = 0; i < base.size(); ++i) {
      const double ramp = std::clamp((static_cast<double>(i) - lo) / (hi - lo), 0.0, 1.0);
      const double extrap = 1 - ramp;
      out[i] = base[i] / 4.0 * (1 - extrap) + base[i] * extrap;
    }
    return out;
  };
  SECTION("truncated range (default)") {
    const auto f = compute_rope_frequencies(c);
    require_close(f.inv_freq, expected(true), 1e-5);
    CHECK(f.attention_scaling == Approx(0.1 * std::log(4.0) + 1.0).epsilon(1e-6));
  }
  SECTION("GPT-OSS truncate=false keeps the fractional range") {
    c.truncate = false;
    const auto f = compute_rope_frequencies(c);
    require_close(f.inv_freq, expected(false), 1e-5);
    RopeConfig t = c;
    t.truncate = true;
    CHECK(compute_rope_frequencies(t).inv_freq != f.inv_freq);
  }
  SECTION("DeepSeek mscale / mscale_all_dim") {
    c.mscale = 1.0;
    c.mscale_all_dim = 0.707;
    const double want = (0.1 * 1.0 * std::log(4.0) + 1) / (0.1 * 0.707 * std::log(4.0) + 1);
    CHECK(compute_rope_frequencies(c).attention_scaling == Approx(want).epsilon(1e-6));
    c.mscale_all_dim = 1.0;
    CHECK(compute_rope_frequencies(c).attention_scaling == Approx(1.0).epsilon(1e-6));
    c.attention_factor = 0.5;
    CHECK(compute_rope_frequencies(c).attention_scaling == 0.5f);
  }
  SECTION("factor falls back to max_position_embeddings / original") {
    c.factor = 0;
    RopeConfig e = c;
    e.factor = 4.0;
    CHECK(compute_rope_frequencies(c).inv_freq == compute_rope_frequencies(e).inv_freq);
  }
}

TEST_CASE("rope rows: cos/sin of position * inv_freq, times the attention factor", "[rope]") {
  RopeFrequencies f;
  f.inv_freq = {1.0f, 0.5f, 0.01f};
  f.attention_scaling = 1.25f;
  const std::int64_t pos[] = {0, 3, 1000};
  Tensor<float, 2> c({3, 3}), s({3, 3});
  fill_rope_rows(f, pos, c.view(), s.view());
  for (int t = 0; t < 3; ++t) {
    for (int i = 0; i < 3; ++i) {
      const double a = static_cast<double>(static_cast<float>(pos[t]) * f.inv_freq[i]);
      CHECK(c(t, i) == Approx(1.25 * std::cos(a)).margin(1e-6));
      CHECK(s(t, i) == Approx(1.25 * std::sin(a)).margin(1e-6));
    }
  }
}

TEST_CASE("rope config errors", "[rope]") {
  RopeConfig c;
  c.rotary_dim = 7;
  CHECK_THROWS_AS(compute_rope_frequencies(c), Error);
  c.rotary_dim = 8;
  c.type = RopeType::kYarn;
  c.original_max_position_embeddings = 0;
  CHECK_THROWS_AS(compute_rope_frequencies(c), Error);
}
