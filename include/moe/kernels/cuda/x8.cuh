// Activations quantized to int8 for the integer decode GEMV (quant/q8_dot.hpp): rows of x in blocks
// of 32, codes and {d, d·Σq} per block (the cpu's ActQ8 rule, so both backends see the same
// activations), written by one small kernel before the GEMV that reads them.
//
// The buffer is a stream-ordered allocation (cudaMallocAsync from the device's default pool,
// freed with cudaFreeAsync once the GEMV is queued), so it needs no state of its own: eagerly the
// pool hands back the same memory call after call; inside a CUDA graph capture (kernels/cuda/
// graph.cuh) the pair becomes the graph's own allocation nodes, so each graph has its buffer and
// replays on any thread never share one.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/quant/q8_dot.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace moe::kernels::cuda_detail {

// Quantized rows of x as the GEMV reads them: row t of batch item b has its codes at
// q + b·batch_q + t·ld_q and its block pairs at s + 2·(b·batch_s + t·ld_s) (ld_s, batch_s count
// blocks). q == nullptr: none.
struct X8Rows {
  const std::int8_t* q = nullptr;
  const float* s = nullptr;
  std::size_t ld_q = 0, ld_s = 0, batch_q = 0, batch_s = 0;
};

inline constexpr int kX8Threads = 256;

// One warp per block of 32 elements (lane j: element j), grid-stride over rows × blocks; row r is
// row r % n_rows of batch item r / n_rows.
static __global__ void __launch_bounds__(kX8Threads)
    quantize_x8_kernel(const float* __restrict__ x, std::size_t ld_x, std::size_t batch_x, int n_rows, int n_items,
                       int n_blocks, std::int8_t* q, std::size_t ld_q, float* s, std::size_t ld_s) {
  kernel_prologue();
  const int lane = threadIdx.x % kWarpSize;
  const long long total = static_cast<long long>(n_rows) * n_items * n_blocks;
  for (long long i = (static_cast<long long>(blockIdx.x) * kX8Threads + threadIdx.x) / kWarpSize; i < total;
       i += static_cast<long long>(gridDim.x) * (kX8Threads / kWarpSize)) {
    const long long r = i / n_blocks;
    const int b = static_cast<int>(i % n_blocks);
    const int item = static_cast<int>(r / n_rows), row = static_cast<int>(r % n_rows);
    const float v = __ldg(x + item * batch_x + static_cast<std::size_t>(row) * ld_x + 32 * b + lane);
    const float amax = warp_max(fabsf(v));  // fmaxf skips NaN, as the cpu's std::max does
    float d, id;
    quant::q8dot::x8_scale(amax, d, id);
    const int code = quant::q8dot::x8_code(v * id);
    int sum = code;
#pragma unroll
    for (int o = kWarpSize / 2; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    q[static_cast<std::size_t>(r) * ld_q + 32 * b + lane] = static_cast<std::int8_t>(code);
    if (lane == 0) {
      float* p = s + 2 * (static_cast<std::size_t>(r) * ld_s + b);
      p[0] = d, p[1] = d * static_cast<float>(sum);
    }
  }
}

// x quantized for one product (or a batch of them): rows [0, n_rows) of each of n_items items
// (batch_x elements apart), elements [0, width) of each row (width a multiple of 32). Owns the
// stream-ordered buffer until destroyed; move-only. Throws kDevice when the allocation fails.
class X8Activations {
 public:
  X8Activations() = default;
  X8Activations(const float* x, std::size_t ld_x, std::size_t batch_x, int n_rows, int n_items, int width) {
    require(width > 0 && width % quant::q8dot::kX8Block == 0 && n_rows > 0 && n_items > 0, ErrorCode::kInternal,
            "quantize_x8(cuda): {} rows x {} items of width {}", n_rows, n_items, width);
    const std::size_t ld_q = (static_cast<std::size_t>(width) + 15) / 16 * 16;
    const std::size_t ld_s = static_cast<std::size_t>(width) / quant::q8dot::kX8Block;
    const std::size_t rows = static_cast<std::size_t>(n_rows) * static_cast<std::size_t>(n_items);
    const std::size_t code_bytes = rows * ld_q;
    MOE_CUDA_CHECK(cudaMallocAsync(&base_, code_bytes + rows * ld_s * 2 * sizeof(float), ::moe::cuda::stream()));
    auto* q = static_cast<std::int8_t*>(base_);
    auto* s = reinterpret_cast<float*>(static_cast<unsigned char*>(base_) + code_bytes);  // 16-byte aligned
    const int n_blocks = width / quant::q8dot::kX8Block;
    const long long warps = static_cast<long long>(rows) * n_blocks;
    const long long per_block = kX8Threads / kWarpSize;
    const long long grid = std::clamp<long long>((warps + per_block - 1) / per_block, 1, 8192);
    launch(quantize_x8_kernel, static_cast<unsigned>(grid), kX8Threads, 0, x, ld_x, batch_x, n_rows, n_items, n_blocks,
           q, ld_q, s, ld_s);
    ::moe::cuda::check_launch("quantize_x8_kernel");
    rows_ = X8Rows{q, s, ld_q, ld_s, static_cast<std::size_t>(n_rows) * ld_q, static_cast<std::size_t>(n_rows) * ld_s};
  }
  X8Activations(X8Activations&& o) noexcept : base_(std::exchange(o.base_, nullptr)), rows_(o.rows_) {}
  X8Activations& operator=(X8Activations&& o) noexcept {
    if (this != &o) {
      release();
      base_ = std::exchange(o.base_, nullptr);
      rows_ = o.rows_;
    }
    return *this;
  }
  X8Activations(const X8Activations&) = delete;
  X8Activations& operator=(const X8Activations&) = delete;
  ~X8Activations() { release(); }

  const X8Rows& rows() const noexcept { return rows_; }

 private:
  void release() noexcept {
    if (base_ != nullptr) (void)cudaFreeAsync(base_, ::moe::cuda::stream());
    base_ = nullptr;
  }
  void* base_ = nullptr;
  X8Rows rows_;
};

}  // namespace moe::kernels::cuda_detail

#endif  // MOE_ENABLE_CUDA && __CUDACC__
