// quant/runs.hpp, the CUDA decode GEMV's reading of block rows (load_run, then decode_bits),
// against each format's own element decode: every run of rows of random bytes (every code,
// scale and sign pattern, NaN and Inf scales included) must give Q::decode's values bit for bit.
#include "quant_test_util.hpp"

#include <moe/quant/q8_dot.hpp>
#include <moe/quant/runs.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace {

bool same_value(float a, float b) {
  std::uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  return ua == ub || (std::isnan(a) && std::isnan(b));
}

template <class Q>
void check_runs(std::uint32_t seed) {
  constexpr int kBlocks = 24;
  constexpr int kElems = kBlocks * static_cast<int>(Q::block_elements);
  std::mt19937 rng(seed);
  std::vector<Q> row(kBlocks);
  auto* bytes = reinterpret_cast<unsigned char*>(row.data());
  for (std::size_t i = 0; i < sizeof(Q) * kBlocks; ++i) bytes[i] = static_cast<unsigned char>(rng());
  int bad = 0;
  for (int k = 0; k < kElems; k += moe::quant::runs::kRunElems) {
    float w[moe::quant::runs::kRunElems];
    moe::quant::runs::decode_run(row.data(), k, w);
    for (int j = 0; j < moe::quant::runs::kRunElems; ++j) {
      const float want = Q::decode(row.data(), static_cast<std::size_t>(k + j));
      if (!same_value(w[j], want)) {
        if (bad++ < 4) UNSCOPED_INFO(moe::dtype_name(Q::dtype) << " element " << k + j << ": run " << w[j] << ", decode " << want);
      }
    }
  }
  INFO(moe::dtype_name(Q::dtype));
  CHECK(bad == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("block runs: load_run + decode_bits equal Q::decode for every run", "[quant][runs]", moe::quant::BlockQ8_0,
                   moe::quant::BlockQ4_0, moe::quant::BlockQ4_1, moe::quant::BlockQ5_0, moe::quant::BlockQ5_1,
                   moe::quant::BlockQ2_K, moe::quant::BlockQ3_K, moe::quant::BlockQ4_K, moe::quant::BlockQ5_K,
                   moe::quant::BlockQ6_K, moe::quant::BlockIq4Nl, moe::quant::BlockIq4Xs, moe::quant::BlockMxfp4,
                   moe::quant::BlockFp8E4m3) {
  for (std::uint32_t seed = 1; seed <= 20; ++seed) check_runs<TestType>(seed);
}

TEST_CASE("block runs: the biased-float conversion and the packed tables", "[quant][runs]") {
  using namespace moe::quant::runs;
  for (std::uint32_t n = 0; n < 256; ++n) {
    for (const std::uint32_t bias : {0u, 8u, 32u, 128u}) CHECK(biased_float(n, bias) == static_cast<float>(static_cast<int>(n) - static_cast<int>(bias)));
  }
  for (std::uint32_t i = 0; i < 16; ++i) {
    CHECK(iq4_float(i) == static_cast<float>(moe::quant::kIq4Values[i]));
    CHECK(mxfp4_float(i) == static_cast<float>(moe::quant::kMxfp4Values[i]));
  }
}

// ---- quant/q8_dot.hpp: the integer units against double sums of Q::decode · x̂ ------------------

namespace {

template <class Q>
void check_units(std::uint32_t seed) {
  namespace qd = moe::quant::q8dot;
  constexpr int kBlocks = 8;
  constexpr int kIn = kBlocks * static_cast<int>(Q::block_elements);
  const std::vector<float> wf = quant_test::gaussian(kIn, seed, 0.05f);
  std::vector<Q> row(kBlocks);
  moe::quant::quantize_row(wf.data(), row.data(), wf.size());
  std::vector<float> x = quant_test::gaussian(kIn, seed + 7);
  x[5] = 0.0f, x[40] = -3.5f;
  for (int j = 64; j < 96 && j < kIn; ++j) x[j] = 0.0f;  // an all-zero block: d = 0
  std::vector<std::int8_t> q(kIn);
  std::vector<float> s(2 * kIn / qd::kX8Block);
  for (int b = 0; b < kIn / qd::kX8Block; ++b) qd::quantize_x8(x.data() + 32 * b, q.data() + 32 * b, s.data() + 2 * b);
  const qd::X8Row xr{q.data(), s.data()};
  double want = 0.0, magnitude = 0.0;
  for (int j = 0; j < kIn; ++j) {
    const double xh = static_cast<double>(s[2 * (j / 32)]) * q[j];
    const double w = Q::decode(row.data(), static_cast<std::size_t>(j));
    want += w * xh;
    magnitude += (std::fabs(w) + 0.5) * std::fabs(xh);  // + the offset / min terms' size
  }
  double got = 0.0;
  for (int u = 0; u < kIn / qd::kUnitElems<Q>; ++u) got += qd::unit_dot(qd::load_unit(row.data(), u), xr, u);
  INFO(moe::dtype_name(Q::dtype) << " seed " << seed << ": units " << got << ", decode " << want);
  CHECK(std::fabs(got - want) <= 1e-5 * magnitude);
}

}  // namespace

TEMPLATE_TEST_CASE("q8 units: integer unit dots equal the decoded dot with quantized activations", "[quant][runs]",
                   moe::quant::BlockQ8_0, moe::quant::BlockQ4_0, moe::quant::BlockQ4_K, moe::quant::BlockQ6_K) {
  STATIC_REQUIRE(moe::quant::q8dot::kHasIntDot<TestType>);
  for (std::uint32_t seed = 1; seed <= 30; ++seed) check_units<TestType>(seed);
}

TEST_CASE("q8 units: activations quantized as the cpu's ActQ8 (same codes, scale and sum)", "[quant][runs]") {
  namespace qd = moe::quant::q8dot;
  for (std::uint32_t seed = 1; seed <= 50; ++seed) {
    std::vector<float> x = quant_test::gaussian(32, seed, seed % 3 == 0 ? 1e-3f : 2.0f);
    if (seed == 4) x.assign(32, 0.0f);
    if (seed == 5) x[3] = std::numeric_limits<float>::quiet_NaN();
    if (seed == 6) x[7] = 1e30f;
    std::int8_t q[32];
    float s[2];
    qd::quantize_x8(x.data(), q, s);
    moe::kernels::cpu_quant::ActQ8 a{};
    moe::kernels::cpu_quant::quantize_act_scalar(x.data(), a);
    INFO("seed " << seed);
    CHECK(std::memcmp(q, a.qs, 32) == 0);
    CHECK(s[0] == a.d);
    CHECK(s[1] == a.d * static_cast<float>(a.sum));
  }
}
