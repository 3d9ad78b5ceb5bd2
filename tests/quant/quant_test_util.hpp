// Helpers of the block-format tests: the list of formats, f16 bit patterns, random rows, the
// logits of a model and their comparisons.
#pragma once

#include <moe/moe.hpp>

#include <algorithm>
#include <cmath>
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
      moe::quant::BlockMxfp4, moe::quant::BlockFp8E4m3

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

// Logits of every position of `ids` (one sequence, fresh cache), and comparisons of two such.
template <class Backend>
moe::Tensor<float, 2> logits_of(const moe::BasicModel<Backend>& m, const std::vector<std::int32_t>& ids) {
  moe::Tensor<float, 2> out({ids.size(), m.config().vocab_size});
  const moe::index_t n = std::max<moe::index_t>(64, ids.size());
  auto cache = m.make_cache(n);
  auto ws = m.make_workspace(n);
  const typename moe::BasicModel<Backend>::SequenceChunk ch{&cache, ids};
  m.forward({&ch, 1}, ws, out.view(), true);
  return out;
}

inline double max_abs(const moe::Tensor<float, 2>& a) {
  double m = 0;
  for (moe::index_t t = 0; t < a.view().extent(0); ++t)
    for (moe::index_t v = 0; v < a.view().extent(1); ++v) m = std::max(m, std::fabs(static_cast<double>(a.view()(t, v))));
  return m;
}
inline double max_diff(const moe::Tensor<float, 2>& a, const moe::Tensor<float, 2>& b) {
  double m = 0;
  for (moe::index_t t = 0; t < a.view().extent(0); ++t)
    for (moe::index_t v = 0; v < a.view().extent(1); ++v)
      m = std::max(m, std::fabs(static_cast<double>(a.view()(t, v)) - b.view()(t, v)));
  return m;
}
// Positions whose argmax agrees.
inline int same_argmax(const moe::Tensor<float, 2>& a, const moe::Tensor<float, 2>& b) {
  int same = 0;
  for (moe::index_t t = 0; t < a.view().extent(0); ++t) {
    moe::index_t ia = 0, ib = 0;
    for (moe::index_t v = 1; v < a.view().extent(1); ++v) {
      if (a.view()(t, v) > a.view()(t, ia)) ia = v;
      if (b.view()(t, v) > b.view()(t, ib)) ib = v;
    }
    same += ia == ib;
  }
  return same;
}

}  // namespace quant_test
