// PassRunner<Backend>: how a backend executes the device work of one forward pass. The model
// hands it the pass's shape and a body that enqueues every kernel of the pass; host backends
// just run the body. A device backend may record the body once per shape and replay it
// (kernels/cuda/graph.cuh: CUDA graphs for decode steps), which is sound because every input
// that changes between passes of one shape (token ids, positions, cache slots) is read by the
// kernels from device memory that the model staged before the body.
#pragma once

#include "moe/core/tensor.hpp"

namespace moe::kernels {

// What decides a pass's launches: its rows, its sequences, the longest context (attention's key
// split) and whether logits are wanted for every row.
struct PassShape {
  index_t rows = 0;
  index_t sequences = 0;
  index_t max_keys = 0;
  bool all_positions = false;
  bool expert_budget = false;  // some row has an elastic-experts budget (one more op per MoE layer)
};

template <class Backend>
class PassRunner {
 public:
  template <class Body>
  void run(const PassShape&, Body&& body) {
    body();
  }
};

}  // namespace moe::kernels
