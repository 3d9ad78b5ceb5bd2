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
// scratch of [>= n, >= max_rank] floats. A default (empty) LoraRows means "no row of this pass has
// an adapter": every LoRA step returns at once (a pass without adapters costs nothing extra).
template <class B>
struct LoraRows {
  ViewOf<B, const std::int32_t, 1> row_adapter;
  ViewOf<B, float, 2> scratch;
  bool active() const noexcept { return row_adapter.extent(0) != 0; }
  // Rows [begin, end) (an expert's bucket of slots); the scratch is shared.
  LoraRows slice(index_t begin, index_t end) const noexcept {
    return active() ? LoraRows{row_adapter.slice(begin, end), scratch} : LoraRows{};
  }
};

// y += (per row t with adapter a) scale_a · B_a A_a x[t], after y = x·Wᵀ was computed by whatever
// linear step the site uses (a fused q/k/v fan-out, a strided half of a gate_up buffer). x [n, in],
// y [n, out] (unit inner strides, any row strides); y must not alias x. Returns at once when the
// weight has no adapters or the pass has no adapter rows.
template <class B>
void lora_update(B backend, ViewOf<B, const float, 2> x, const LoraWeight<typename B::memory>& lora,
                 const LoraRows<B>& rows, ViewOf<B, float, 2> y) {
  if (lora.empty() || !rows.active()) return;
  kernels::lora_add(backend, x, rows.row_adapter, lora.adapters, lora.max_rank, rows.scratch, y);
}

// y = x·Wᵀ + (per row t with adapter a) scale_a · B_a A_a x[t]. x [n, in], y [n, out]; y must not
// alias x. With an empty LoraWeight (or inactive rows) this is exactly linear().
template <class B>
void lora_linear(B backend, ViewOf<B, const float, 2> x, const WeightMatrix<typename B::memory>& w,
                 const LoraWeight<typename B::memory>& lora, const LoraRows<B>& rows, ViewOf<B, float, 2> y) {
  linear(backend, x, w, y);
  lora_update(backend, x, lora, rows, y);
}

// The adapter tables of each kind of block, held next to the weights they adapt (model/lora_tables.hpp
// keeps one set per layer). Default-constructed: no adapters (every step a no-op).
template <class Space = host_memory>
struct AttentionLora {
  LoraWeight<Space> q, k, v, o;
};

template <class Space = host_memory>
struct MlpLora {
  LoraWeight<Space> gate, up, down;
};

// One routed expert's tables: gate / up (kSeparate banks) or gate_up (kFusedGateUp), and down.
template <class Space = host_memory>
struct ExpertLora {
  LoraWeight<Space> gate, up, gate_up, down;
};

template <class Space = host_memory>
struct MoeLora {
  MlpLora<Space> shared;
  LoraWeight<Space> shared_gate;
  std::vector<ExpertLora<Space>> experts;  // [n_experts], or empty when no adapter touches them
};

}  // namespace moe::layers
