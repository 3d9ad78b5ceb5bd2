// quant/runs.hpp, the CUDA decode GEMV's reading of block rows (load_run, then decode_bits),
// against each format's own element decode: every run of rows of random bytes (every code,
// scale and sign pattern, NaN and Inf scales included) must give Q::decode's values bit for bit.
#include "quant_test_util.hpp"

#include <moe/quant/runs.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
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
