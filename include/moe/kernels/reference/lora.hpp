// Grouped low-rank (LoRA) updates for a batch in which each row picks its own adapter or none
// (multi-LoRA serving; the shrink/expand split of Punica's BGMV): y[t] += s_a · B_a (A_a x[t]) with
// a = row_adapter[t]. The scalar oracle.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <cstdint>

namespace moe::kernels {

// One resident adapter's factors for one weight, in the backend's memory: A [rank, in] and
// B [out, rank], f32, row-major and contiguous; scale = lora_alpha / r (or / sqrt(r) with rslora).
// A null `a` means the adapter does not touch this weight (its rows get no update).
struct LoraFactorRef {
  const float* a = nullptr;
  const float* b = nullptr;
  std::int32_t rank = 0;
  float scale = 0.0f;
};

namespace detail {

template <class Mem>
void check_lora_args(TensorView<const float, 2, Mem> x, TensorView<const std::int32_t, 1, Mem> row_adapter,
                     TensorView<float, 2, Mem> h, TensorView<float, 2, Mem> y, index_t max_rank, const char* op) {
  require(row_adapter.extent(0) == x.extent(0) && y.extent(0) == x.extent(0) && h.extent(0) >= x.extent(0) &&
              h.extent(1) >= max_rank && (x.extent(1) <= 1 || x.stride(1) == 1) &&
              (y.extent(1) <= 1 || y.stride(1) == 1) && (h.extent(1) <= 1 || h.stride(1) == 1),
          ErrorCode::kInvalidArgument,
          "kernels::{}: x [{}, {}], row_adapter [{}], scratch [{}, {}] (rank up to {}), y [{}, {}] (unit inner strides)",
          op, x.extent(0), x.extent(1), row_adapter.extent(0), h.extent(0), h.extent(1), max_rank, y.extent(0),
          y.extent(1));
}

}  // namespace detail

// y [n, out] += scale_a · B_a · (A_a · x[t]) for every row t with a = row_adapter[t] in
// [0, adapters.extent(0)) and adapters[a].a non-null; other rows (a < 0: no adapter) unchanged.
// x [n, in] f32; h [n, >= max_rank] scratch (the shrunk rows); max_rank bounds every adapter's rank.
// Out-of-range adapter indices are kInvalidArgument (checked on the host backends).
inline void lora_add(backend::reference, View<const float, 2> x, View<const std::int32_t, 1> row_adapter,
                     View<const LoraFactorRef, 1> adapters, index_t max_rank, View<float, 2> h, View<float, 2> y) {
  detail::check_lora_args(x, row_adapter, h, y, max_rank, "lora_add");
  const index_t in = x.extent(1), out = y.extent(1);
  for (index_t t = 0; t < x.extent(0); ++t) {
    const std::int32_t a = row_adapter[t];
    if (a < 0) continue;
    require(static_cast<index_t>(a) < adapters.extent(0), ErrorCode::kInvalidArgument, "kernels::lora_add: row {} picks adapter {} of {}", t,
            a, adapters.extent(0));
    const LoraFactorRef& f = adapters[a];
    if (f.a == nullptr) continue;
    require(f.rank >= 1 && static_cast<index_t>(f.rank) <= max_rank, ErrorCode::kInvalidArgument,
            "kernels::lora_add: adapter {} has rank {} (max {})", a, f.rank, max_rank);
    for (index_t j = 0; j < static_cast<index_t>(f.rank); ++j) {
      float s = 0.0f;
      for (index_t i = 0; i < in; ++i) s += f.a[j * in + i] * x(t, i);
      h(t, j) = s;
    }
    for (index_t o = 0; o < out; ++o) {
      float s = 0.0f;
      for (index_t j = 0; j < static_cast<index_t>(f.rank); ++j) s += f.b[o * f.rank + j] * h(t, j);
      y(t, o) += f.scale * s;
    }
  }
}

}  // namespace moe::kernels
