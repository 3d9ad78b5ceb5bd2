// Helpers shared by the layer tests.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

namespace layers_test {

// n normally distributed floats with standard deviation `scale`.
inline std::vector<float> random_vec(std::size_t n, std::mt19937& g, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace layers_test
