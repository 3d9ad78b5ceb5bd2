// Deterministic prompt token ids for the benchmarks (bench_generate, bench_model, moe-bench).
#pragma once

#include <moe/core/tensor.hpp>

#include <cstdint>
#include <vector>

namespace moe::bench {

// Deterministic prompt ids spread over the vocabulary (a fixed LCG), so every run routes alike.
inline std::vector<std::int32_t> make_ids(index_t n, index_t vocab, std::uint32_t seed) {
  std::vector<std::int32_t> ids(n);
  std::uint32_t x = seed;
  for (auto& id : ids) {
    x = x * 1664525u + 1013904223u;
    id = static_cast<std::int32_t>((x >> 8) % vocab);
  }
  return ids;
}

}  // namespace moe::bench
