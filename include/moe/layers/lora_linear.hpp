// Unmerged LoRA on one weight: several adapters resident, each row of a batch picking its own or
// none. LoraWeight<Space> is the table of one weight's per-adapter factors (in the backend's
// memory); lora_linear is y = x·Wᵀ plus each row's adapter update (kernels::lora_add, grouped:
// one shrink and one expand launch for the whole batch on a device backend). The factors come
// from model/lora.hpp's pack_lora_factors.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/linear.hpp"

#include <vector>

namespace moe::layers {

// One weight's resident adapters: adapters[a] holds adapter a's factors (a null `a` pointer when
// adapter a does not touch this weight); max_rank bounds their ranks (the scratch width).
template <class Space = host_memory>
struct LoraWeight {
  TensorView<const kernels::LoraFactorRef, 1, Space> adapters;
  index_t max_rank = 0;
  bool empty() const noexcept { return adapters.extent(0) == 0 || max_rank == 0; }
};

// The per-pass rows: row_adapter [n] (index into every LoraWeight's table, -1 for the base) and a
// scratch of [n, >= max_rank] floats.
template <class B>
struct LoraRows {
  ViewOf<B, const std::int32_t, 1> row_adapter;
  ViewOf<B, float, 2> scratch;
};

// y = x·Wᵀ + (per row t with adapter a) scale_a · B_a A_a x[t]. x [n, in], y [n, out]; y must not
// alias x. With an empty LoraWeight this is exactly linear().
template <class B>
void lora_linear(B backend, ViewOf<B, const float, 2> x, const WeightMatrix<typename B::memory>& w,
                 const LoraWeight<typename B::memory>& lora, const LoraRows<B>& rows, ViewOf<B, float, 2> y) {
  linear(backend, x, w, y);
  if (lora.empty()) return;
  kernels::lora_add(backend, x, rows.row_adapter, lora.adapters, lora.max_rank, rows.scratch, y);
}

}  // namespace moe::layers
