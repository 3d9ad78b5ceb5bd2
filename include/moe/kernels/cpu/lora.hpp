// xsimd + OpenMP grouped LoRA update (kernels/reference/lora.hpp): rows split across the team,
// each row's shrink (A·x) and expand (B·h) as vector dot products.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/lora.hpp"

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

namespace cpu_detail {

template <class Arch>
inline float dot_f32(const float* a, const float* b, index_t n) noexcept {
  using B = FloatBatch<Arch>;
  constexpr index_t L = B::size;
  B acc(0.0f);
  index_t i = 0;
  for (; i + L <= n; i += L) acc = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc);
  float s = xsimd::hadd(acc);
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace cpu_detail

// Same contract as the reference overload. The adapter indices and ranks are checked before the
// parallel loop (no throw inside it).
template <class Arch>
void lora_add(backend::cpu_simd<Arch>, View<const float, 2> x, View<const std::int32_t, 1> row_adapter,
              View<const LoraFactorRef, 1> adapters, index_t max_rank, View<float, 2> h, View<float, 2> y) {
  detail::check_lora_args(x, row_adapter, h, y, max_rank, "lora_add");
  const index_t n = x.extent(0), in = x.extent(1), out = y.extent(1);
  for (index_t t = 0; t < n; ++t) {
    const std::int32_t a = row_adapter[t];
    require(a < 0 || static_cast<index_t>(a) < adapters.extent(0), ErrorCode::kInvalidArgument, "kernels::lora_add: row {} picks adapter {} of {}", t,
            a, adapters.extent(0));
    require(a < 0 || adapters[a].a == nullptr || (adapters[a].rank >= 1 && static_cast<index_t>(adapters[a].rank) <= max_rank),
            ErrorCode::kInvalidArgument, "kernels::lora_add: adapter {} has rank {} (max {})", a,
            a < 0 ? 0 : adapters[a].rank, max_rank);
  }
  parallel_for_chunks(n, 4, [&](std::size_t t0, std::size_t t1) {
    for (index_t t = t0; t < t1; ++t) {
      const std::int32_t a = row_adapter[t];
      if (a < 0 || adapters[a].a == nullptr) continue;
      const LoraFactorRef& f = adapters[a];
      const float* xr = x.data() + t * x.stride(0);
      float* hr = h.data() + t * h.stride(0);
      float* yr = y.data() + t * y.stride(0);
      const auto rank = static_cast<index_t>(f.rank);
      for (index_t j = 0; j < rank; ++j) hr[j] = cpu_detail::dot_f32<Arch>(f.a + j * in, xr, in);
      for (index_t o = 0; o < out; ++o) yr[o] += f.scale * cpu_detail::dot_f32<Arch>(f.b + o * rank, hr, rank);
    }
  });
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
