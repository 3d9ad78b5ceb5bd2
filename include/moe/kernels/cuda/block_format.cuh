// How CUDA kernels read weights stored in a ggml block format (quant/): runs of 8 consecutive
// elements of a row of blocks, loaded into registers and decoded to f32 there by quant/runs.hpp
// (load_run / decode_bits: the loads of several runs can be in flight before any arithmetic; the
// values equal Q::decode's). A row of a block-format matrix is `ld` blocks apart from the next
// (views of block formats count blocks in their inner extent).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/core/format.hpp"
#include "moe/quant/formats.hpp"
#include "moe/quant/runs.hpp"

#include <cstddef>

namespace moe::kernels::cuda_detail {

using quant::runs::decode_bits;
using quant::runs::decode_run;
using quant::runs::kRunElems;
using quant::runs::load_run;
using quant::runs::RunBits;

// The alignment load_run needs of a row start (its widest load).
template <class Q>
inline constexpr std::size_t kRunAlignment = quant::runs::kRunAlignment<Q>;

}  // namespace moe::kernels::cuda_detail

#endif  // MOE_ENABLE_CUDA && __CUDACC__
