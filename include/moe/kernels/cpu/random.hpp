// Random block-format weights on the cpu (synthetic models, moe-bench --write-gguf): the
// reference's values and quantizer, so the same bytes, with the blocks split across the team.
// One thread was the slow part of a synthetic model: ggml's k-quant scale searches run at a few
// million weights per second per core.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/quant_ops.hpp"

#include <cstddef>
#include <cstdint>

namespace moe::kernels {

template <class Arch, class W>
  requires is_block_format_v<W>
void fill_uniform(backend::cpu_simd<Arch>, View<W, 1> x, std::uint64_t seed, float scale, float offset) {
  parallel_for_chunks(static_cast<std::size_t>(x.extent(0)), 256, [&](std::size_t b0, std::size_t b1) {
    detail::fill_uniform_blocks(x, static_cast<index_t>(b0), static_cast<index_t>(b1), seed, scale, offset);
  });
}

}  // namespace moe::kernels
