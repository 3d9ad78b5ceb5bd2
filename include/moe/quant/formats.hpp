// Every block format the library knows (the ggml ones and FP8 checkpoints' row blocks), one header per family, and the type list that
// core/format.hpp registers as weight formats. Adding a format: its block struct (quant/), an
// entry here, a DType enumerator; kernels see it through FormatTraits.
#pragma once

#include "moe/quant/block.hpp"
#include "moe/quant/fp8.hpp"
#include "moe/quant/iq4.hpp"
#include "moe/quant/k_quants.hpp"
#include "moe/quant/legacy.hpp"
#include "moe/quant/mxfp4.hpp"
#include "moe/quant/q8_0.hpp"

namespace moe::quant {

template <class... T>
struct block_list {};

// The block formats weights may be stored in (Q8_K is an activation format: see k_quants.hpp).
using weight_blocks = block_list<BlockQ8_0, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ2_K, BlockQ3_K,
                                 BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockIq4Nl, BlockIq4Xs, BlockMxfp4,
                                 BlockFp8E4m3>;

}  // namespace moe::quant
