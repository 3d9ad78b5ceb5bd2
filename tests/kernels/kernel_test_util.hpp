// Helpers shared by the kernel tests: seeded random data, weights in any element type stored at a
// deliberately unaligned address, and error bounds derived from float epsilon.
#pragma once

#include <moe/core/dtype.hpp>
#include <moe/core/tensor.hpp>
#include <moe/kernels/reference/arguments.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace moe_test {

inline constexpr float kEps = std::numeric_limits<float>::epsilon();

inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& f : v) f = dist(rng);
  return v;
}

// Small integers in [-3, 3]: every product and every partial sum of up to ~10^6 terms is exact in
// f32, so any summation order gives the same bits and kernels must match the reference exactly.
inline std::vector<float> random_small_ints(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<float> v(n);
  for (auto& f : v) f = static_cast<float>(dist(rng));
  return v;
}

// A [rows, cols] matrix of W at row stride `ld` (>= cols), whose first element sits one element
// past a 64-byte boundary: kernels must not assume aligned weights (they come from an mmap).
template <class W>
struct UnalignedMatrix {
  std::vector<W> storage;
  moe::index_t rows = 0, cols = 0, ld = 0;

  UnalignedMatrix(const std::vector<float>& values, moe::index_t r, moe::index_t c, moe::index_t ld_)
      : storage(r * ld_ + 64), rows(r), cols(c), ld(ld_) {
    for (moe::index_t i = 0; i < r; ++i) {
      for (moe::index_t j = 0; j < c; ++j) data()[i * ld + j] = moe::from_float<W>(values[i * c + j]);
    }
  }
  W* data() {
    auto addr = reinterpret_cast<std::uintptr_t>(storage.data());
    const std::size_t skip = ((64 - addr % 64) % 64) / sizeof(W) + 1;
    return storage.data() + skip;
  }
  moe::View<const W, 2> view() { return moe::View<const W, 2>(data(), {rows, cols}, {ld, 1}); }
  float at(moe::index_t i, moe::index_t j) { return moe::kernels::detail::weight_to_float(data()[i * ld + j]); }
};

// Worst-case bound for a dot product of length n formed in f32 in any order, with or without
// FMA (Higham, Accuracy and Stability of Numerical Algorithms, §3.1: |Δ| <= γ_n Σ|x_i w_i|,
// γ_n = n·u/(1 - n·u), u = eps/2), plus the reference's single rounding of its (double) result.
inline double dot_error_bound(std::size_t n, double sum_abs) {
  const double u = kEps / 2.0;
  const double gamma = static_cast<double>(n) * u / (1.0 - static_cast<double>(n) * u);
  return (gamma + u) * sum_abs + std::numeric_limits<float>::denorm_min();
}

}  // namespace moe_test
