// Helpers of the block-format tests: the list of formats, f16 bit patterns, random rows.
#pragma once

#include <moe/moe.hpp>

#include <cstdint>
#include <random>
#include <vector>

namespace quant_test {

using namespace moe::quant;

// The formats the quantize tool writes (every weight format), plus Q8_K for activations.
#define MOE_QUANT_TEST_FORMATS                                                                                       \
  moe::quant::BlockQ8_0, moe::quant::BlockQ4_0, moe::quant::BlockQ4_1, moe::quant::BlockQ5_0, moe::quant::BlockQ5_1, \
      moe::quant::BlockQ2_K, moe::quant::BlockQ3_K, moe::quant::BlockQ4_K, moe::quant::BlockQ5_K,                   \
      moe::quant::BlockQ6_K, moe::quant::BlockQ8_K, moe::quant::BlockIq4Nl, moe::quant::BlockIq4Xs,                 \
      moe::quant::BlockMxfp4

inline moe::f16 h(float v) { return moe::to_f16(v); }

inline std::vector<float> gaussian(std::size_t n, std::uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <class Q>
std::vector<float> round_trip(const std::vector<float>& x) {
  std::vector<Q> q(x.size() / Q::block_elements);
  moe::quant::quantize_row(x.data(), q.data(), x.size());
  std::vector<float> y(x.size());
  moe::quant::dequantize_row(q.data(), y.data(), x.size());
  return y;
}

}  // namespace quant_test
