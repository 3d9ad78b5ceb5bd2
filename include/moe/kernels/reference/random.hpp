// Deterministic pseudo-random fill (benchmarks with random weights of real shapes): element i of
// a buffer becomes offset + scale · u(seed, i), u uniform in [-1, 1) from SplitMix64 of
// (seed, i), so every backend fills the same values without sharing a generator state.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/tensor.hpp"

#include <cstdint>

namespace moe::kernels {
namespace detail {

// SplitMix64 (Steele, Lea, Flood 2014) of seed ⊕ golden-ratio-scaled index -> [-1, 1).
constexpr float uniform_pm1(std::uint64_t seed, std::uint64_t i) noexcept {
  std::uint64_t z = seed + (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 40) * (1.0 / 8388608.0) - 1.0);  // 24 bits
}

}  // namespace detail

// x[i] = T(offset + scale · u(seed, i)) for every element of x [n].
template <class T>
void fill_uniform(backend::reference, View<T, 1> x, std::uint64_t seed, float scale, float offset) {
  for (index_t i = 0; i < x.extent(0); ++i) x[i] = from_float<T>(offset + scale * detail::uniform_pm1(seed, i));
}

}  // namespace moe::kernels
