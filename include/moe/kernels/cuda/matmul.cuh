// kernels::matmul (y = x·Wᵀ, W [out, in]) and kernels::matmul_in_out (y = x·W, W [in, out]) on
// backend::cuda, x and y f32, W f32, bf16 or f16, all in device memory.
//
//   decode (<= kGemvMaxTokens rows of x): a bandwidth-bound GEMV that reads W once for all rows.
//   prefill, bf16/f16 W: tensor cores (mma.sync m16n8k16, bf16 in, f32 accumulate) on a split of
//     x into two bf16 parts, x = x_hi + x_lo + O(2^-17 |x|) ("bf16x2"): two MMAs per tile give
//     ~16 bits of x's mantissa instead of bf16's 8, so the product is as accurate as an f32 GEMM
//     to within a few 2^-17 relative (measured in the tests). f16 weights are split exactly into
//     bf16 hi + lo parts too (an f16 has 11 significant bits), one more MMA.
//   prefill, f32 W: a shared-memory tiled f32 GEMM on CUDA cores.
// Every kernel also takes a batch (grid dimension) of independent products at fixed element
// offsets, which the per-head MLA projections use: one launch for all heads.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/block_format.cuh"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/row_stage.cuh"
#include "moe/kernels/cuda/x8.cuh"
#include "moe/kernels/reference/arguments.hpp"
#include "moe/kernels/reference/matmul_heads.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

// One matrix product (or a batch of them) as raw pointers, leading dimensions and batch offsets
// (elements). `w` is [out, in] for matmul and [in, out] for matmul_in_out.
template <class W>
struct GemmArgs {
  const float* x = nullptr;
  std::size_t ld_x = 0, batch_x = 0;
  const W* w = nullptr;
  std::size_t ld_w = 0, batch_w = 0;
  float* y = nullptr;
  std::size_t ld_y = 0, batch_y = 0;
  int n_tokens = 0, in = 0, out = 0, batch = 1;
  int team = 1;        // decode GEMV: warps per row group (gemv_team_warps; set by the launchers)
  int mma_tile_m = 0;  // tensor-core GEMM: rows per tile, 32, 64 or 128 (0: mma_tile_rows' rule)
  X8Rows xq;  // x quantized to int8 (decode GEMV of the formats with an integer path), or none
};

// ---- decode, y = x·Wᵀ: GEMV, one warp per output row (or a few) ------------------------------
//
// Decode is bound by the bandwidth of reading W (bytes of x and y are negligible), so the kernel
// is organised around W: each lane issues 16-byte loads (8 bf16/f16 or 4 f32) of its row with the
// streaming cache hint (W is read once; keep L1/L2 for x), kGemvUnroll of them in flight, and
// each loaded chunk is applied to every row of x (up to kGemvMaxTokens), so a batch of tokens
// still reads W once. Partial sums are combined with a warp butterfly: no shared memory, no block
// synchronization. The 16-byte path needs every row start of W and x 16-byte aligned; otherwise
// the same kernel runs with element loads (kVector = false).

inline constexpr int kGemvWarpsPerBlock = 8;  // 256 threads: 8 output rows per block
inline constexpr int kGemvMaxTokens = 8;      // rows of x per pass over W; more use the GEMMs
inline constexpr int kGemvUnroll = 8;         // 16-byte loads of W in flight per lane (and row group)
static_assert(kGemvWarpsPerBlock <= kStageWarps, "the staged block-format rows have slots for kStageWarps warps");

template <class W>
inline constexpr int kChunkElems = 16 / static_cast<int>(sizeof(W));

// A row group of the GEMV belongs to a team of warps of one block that split its input dimension:
// lane l of team warp w takes the units (16-byte chunks, or block-format runs) c = 32 w + l,
// c + 32·warps, ... in increasing order, and the warps' sums are added in warp order through shared
// memory. One warp per row group leaves a short row (in = 768) a single turn of loads per lane
// and a long one (4096 Q4_0 elements: 16 runs per lane) four turns of round trips, with a warp per
// row group and 8 warps per block too few loads in flight to cover HBM's latency (H100 ncu,
// 2026-12-07: o_proj at 24% warps active); a team puts a long row's loads in flight in one turn.
// The team size depends only on the format and `in` (gemv_team_warps), never on the tokens of the
// pass or the kernel, so the bits stay those of one product: gemv == fanout == grouped, and a
// token's result does not depend on what shares its pass.
struct GemvTeam {
  int warps = 1;  // 1, 2, 4 or 8 (kGemvWarpsPerBlock is a multiple)
  int warp = 0;   // this warp's index in its team
  int index = 0;  // the team's index in the block
  int phase = 0;  // which half of the shared partials the next sum uses

  __device__ explicit GemvTeam(int team_warps)
      : warps(team_warps), warp(static_cast<int>(threadIdx.x) / kWarpSize % team_warps),
        index(static_cast<int>(threadIdx.x) / kWarpSize / team_warps) {}
  __device__ int lane() const { return warp * kWarpSize + static_cast<int>(threadIdx.x) % kWarpSize; }
  __device__ int stride() const { return warps * kWarpSize; }
  __device__ int per_block() const { return kGemvWarpsPerBlock / warps; }
  __device__ bool leader() const { return warp == 0; }
};

// The team's sums of acc, in the leader warp's lanes (every lane of it holds all of them); the
// other warps' acc are left as they were. Called by every warp of the team after its warp sums.
// Two halves of shared partials alternate, so one barrier per sum suffices: a warp writes a half
// again only after the next sum's barrier, which the leader reaches after reading it.
template <int kRows, int kTokens>
__device__ __forceinline__ void gemv_team_sum(GemvTeam& team, float (&acc)[kRows][kTokens]) {
  constexpr int kSums = kRows * kTokens;
  static_assert(kSums <= kWarpSize, "one sum per lane");
  if (team.warps == 1) return;
  __shared__ float partial[2][kGemvWarpsPerBlock][kSums];
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int first = team.index * team.warps;  // the team's first warp in the block
  float(*half)[kSums] = partial[team.phase];
  team.phase ^= 1;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      if (lane == r * kTokens + t) half[first + team.warp][lane] = acc[r][t];
    }
  }
  asm volatile("bar.sync %0, %1;" ::"r"(1 + team.index), "r"(team.warps * kWarpSize) : "memory");
  if (!team.leader()) return;
  float total = 0.0f;
  if (lane < kSums) {
    total = half[first][lane];
    for (int w = 1; w < team.warps; ++w) total += half[first + w][lane];
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[r][t] = __shfl_sync(0xffffffffu, total, r * kTokens + t);
  }
}

// Widens one 16-byte chunk of W into kChunkElems<W> floats.
template <class W>
__device__ __forceinline__ void decode_chunk(uint4 packed, float* wf) {
  if constexpr (std::is_same_v<W, float>) {
    wf[0] = __uint_as_float(packed.x);
    wf[1] = __uint_as_float(packed.y);
    wf[2] = __uint_as_float(packed.z);
    wf[3] = __uint_as_float(packed.w);
  } else {
    const std::uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (std::is_same_v<W, bf16>) {
        wf[2 * i] = __uint_as_float(words[i] << 16);              // element 2i: low half
        wf[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);  // element 2i+1: high half
      } else {
        wf[2 * i] = f16_bits_to_float(static_cast<std::uint16_t>(words[i] & 0xffffu));
        wf[2 * i + 1] = f16_bits_to_float(static_cast<std::uint16_t>(words[i] >> 16));
      }
    }
  }
}

// Applies one chunk of weights (per row of the warp) starting at input index k to every token's
// accumulators: each x chunk is loaded once and used for all kRows rows.
template <class W, int kTokens, int kRows>
__device__ __forceinline__ void gemv_accumulate_chunk(const uint4 (&packed)[kRows], const float* __restrict__ x,
                                                      std::size_t ld_x, std::size_t k, float (&acc)[kRows][kTokens]) {
  constexpr int kE = kChunkElems<W>;
  float wf[kRows][kE];
#pragma unroll
  for (int r = 0; r < kRows; ++r) decode_chunk<W>(packed[r], wf[r]);
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    const float4* xp = reinterpret_cast<const float4*>(x + t * ld_x + k);
    float xs[kE];
#pragma unroll
    for (int q = 0; q < kE / 4; ++q) {
      const float4 v = __ldg(xp + q);
      xs[4 * q] = v.x, xs[4 * q + 1] = v.y, xs[4 * q + 2] = v.z, xs[4 * q + 3] = v.w;
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float s = acc[r][t];
#pragma unroll
      for (int e = 0; e < kE; ++e) s = fmaf(xs[e], wf[r][e], s);
      acc[r][t] = s;
    }
  }
}

// The dot products of kRows rows of W (w_rows, `in` elements each) with kTokens rows of x (ld_x
// apart), summed over the warp: every lane holds acc[r][t] = Σ_k x[t, k]·w_r[k] afterwards.
// Called by a whole warp.
template <class W, int kTokens, int kRows, bool kVector>
__device__ __forceinline__ void gemv_warp_dot(GemvTeam& team, const W* const (&w_rows)[kRows],
                                              const float* __restrict__ x, std::size_t ld_x, int in,
                                              float (&acc)[kRows][kTokens]) {
  constexpr int kE = kChunkElems<W>;
  constexpr int kUnroll = kGemvUnroll / kRows > 0 ? kGemvUnroll / kRows : 1;  // 16-byte loads in flight / row
  const int lane = team.lane(), lanes = team.stride();
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[r][t] = 0.0f;
  }

  if constexpr (is_block_format_v<W>) {
    // Block formats: lane runs of 8 elements (c = lane, lane + 32, ...: the warp reads 256
    // consecutive elements of each row per turn) loaded straight from global memory, kRunsInFlight
    // of them per row in registers before the first is decoded (so their loads are in flight
    // together), then decoded and applied in increasing c, so the sums do not depend on kRows or
    // kTokens. kVector: x rows are 16-byte aligned. `in` is a whole number of blocks (checked by
    // the caller). (Staging the rows through shared memory as the integer path does measured
    // slower here: H100, 2026-12-07, README "Block formats on CUDA".)
    constexpr int kBlockRuns = quant::runs::kRunsInFlight<W> / kRows > 0 ? quant::runs::kRunsInFlight<W> / kRows : 1;
    const int n_runs = in / kRunElems;
    for (int c0 = lane; c0 < n_runs; c0 += kBlockRuns * lanes) {
      RunBits<W> bits[kBlockRuns][kRows];
#pragma unroll
      for (int u = 0; u < kBlockRuns; ++u) {
        if (c0 + u * lanes < n_runs) {
#pragma unroll
          for (int r = 0; r < kRows; ++r) bits[u][r] = load_run(w_rows[r], (c0 + u * lanes) * kRunElems);
        }
      }
#pragma unroll
      for (int u = 0; u < kBlockRuns; ++u) {
        const int c = c0 + u * lanes;
        if (c >= n_runs) break;
        float wf[kRows][kRunElems];
#pragma unroll
        for (int r = 0; r < kRows; ++r) decode_bits(bits[u][r], wf[r]);
#pragma unroll
        for (int t = 0; t < kTokens; ++t) {
          const float* xp = x + t * ld_x + static_cast<std::size_t>(c) * kRunElems;
          float xs[kRunElems];
          if constexpr (kVector) {
            const float4 v0 = __ldg(reinterpret_cast<const float4*>(xp)), v1 = __ldg(reinterpret_cast<const float4*>(xp) + 1);
            xs[0] = v0.x, xs[1] = v0.y, xs[2] = v0.z, xs[3] = v0.w, xs[4] = v1.x, xs[5] = v1.y, xs[6] = v1.z, xs[7] = v1.w;
          } else {
#pragma unroll
            for (int e = 0; e < kRunElems; ++e) xs[e] = __ldg(xp + e);
          }
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            float s = acc[r][t];
#pragma unroll
            for (int e = 0; e < kRunElems; ++e) s = fmaf(xs[e], wf[r][e], s);
            acc[r][t] = s;
          }
        }
      }
    }
  } else {
    int k_tail = 0;  // first input index not covered by 16-byte chunks
    if constexpr (kVector) {
      const int n_chunks = in / kE;
      // kRows x kUnroll independent 16-byte loads per lane before any arithmetic; the last group is
      // predicated, so a lane's chunks of a short row (in = 768: 3 per lane) are in flight together
      // rather than one round trip each. Each lane still applies its chunks c = lane, lane + 32, ...
      // in increasing order, so the sums do not depend on kUnroll or on kRows.
      for (int c = lane; c < n_chunks; c += kUnroll * lanes) {
        uint4 packed[kUnroll][kRows];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (c + u * lanes < n_chunks) {
#pragma unroll
            for (int r = 0; r < kRows; ++r) packed[u][r] = __ldcs(reinterpret_cast<const uint4*>(w_rows[r]) + c + u * lanes);
          }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          if (c + u * lanes < n_chunks) {
            gemv_accumulate_chunk<W, kTokens, kRows>(packed[u], x, ld_x,
                                                     static_cast<std::size_t>(c + u * lanes) * kE, acc);
          }
        }
      }
      k_tail = n_chunks * kE;
    }
    // The tail (in % kE elements), or the whole row when the rows are not 16-byte aligned:
    // consecutive lanes read consecutive elements, so the warp's loads stay coalesced.
    for (int k = k_tail + lane; k < in; k += lanes) {
      float wk[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) wk[r] = load_as_float(w_rows[r], static_cast<std::size_t>(k));
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float xv = __ldg(x + t * ld_x + k);
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][t] = fmaf(xv, wk[r], acc[r][t]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[r][t] = warp_sum(acc[r][t]);
  }
  gemv_team_sum(team, acc);
}

// gemv_warp_dot on x quantized to int8 (quant/q8_dot.hpp), units of the rows read from their
// staged segments. acc[r][t] = Σ_k x̂[t, k]·w_r[k], summed over the warp.
template <class W, int kTokens, int kRows>
__device__ __forceinline__ void gemv_warp_dot_x8(const W* const (&w_rows)[kRows], const X8Rows& xq, int in,
                                                 float (&acc)[kRows][kTokens]) {
  namespace qd = quant::q8dot;
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[r][t] = 0.0f;
  }
  // The rows staged through shared memory a segment at a time (row_stage.cuh); lane units
  // j = lane, lane + 32, ... of each segment, in increasing order.
  constexpr int kUnitsPerBlock = static_cast<int>(W::block_elements) / qd::kUnitElems<W>;
  for_staged_segments<W, kRows>(w_rows, in / static_cast<int>(W::block_elements), [&](const auto& seg, int b0, int nb) {
    for (int j = lane; j < nb * kUnitsPerBlock; j += kWarpSize) {
      qd::UnitBits<W> bits[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) bits[r] = qd::load_unit<false>(seg[r], j);
      const int u = b0 * kUnitsPerBlock + j;  // the unit's index in the row
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const qd::X8Row xr{xq.q + t * xq.ld_q, xq.s + 2 * t * xq.ld_s};
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][t] += qd::unit_dot(bits[r], xr, u);
      }
    }
  });
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) acc[r][t] = warp_sum(acc[r][t]);
  }
}

// The GEMV's dot for W: the integer one for the formats that have it (x quantized for it in xq:
// the launchers see to that), the f32 one for the others.
// The integer path runs teams of one warp (gemv_team_warps).
template <class W, int kTokens, int kRows, bool kVector>
__device__ __forceinline__ void gemv_warp_dot_any(GemvTeam& team, const W* const (&w_rows)[kRows],
                                                  const float* __restrict__ x, std::size_t ld_x, const X8Rows& xq,
                                                  int in, float (&acc)[kRows][kTokens]) {
  if constexpr (quant::q8dot::kGemvIntDot<W>) gemv_warp_dot_x8<W, kTokens, kRows>(w_rows, xq, in, acc);
  else gemv_warp_dot<W, kTokens, kRows, kVector>(team, w_rows, x, ld_x, in, acc);
}

// y[t, row] = sum_k x[t, k] * w[row, k] for t < kTokens; each team owns kRows consecutive rows
// (more than one when several tokens share the pass, so each x load feeds several rows).
// One team's rows [row0, row0 + kRows) of one product (a.x, a.w, a.y already at that product);
// called by the whole team. Shared by gemv_kernel and the grouped expert GEMV (grouped.cuh).
template <class W, int kTokens, int kRows, bool kVector>
__device__ __forceinline__ void gemv_warp_rows(GemvTeam& team, const GemmArgs<W>& a, int row0) {
  if (row0 >= a.out) return;  // the whole team leaves together, so its sums stay convergent
  const W* w_rows[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = row0 + r < a.out ? row0 + r : a.out - 1;  // past the end: recompute the last row, unwritten
    w_rows[r] = a.w + static_cast<std::size_t>(row) * a.ld_w;
  }
  float acc[kRows][kTokens];
  gemv_warp_dot_any<W, kTokens, kRows, kVector>(team, w_rows, a.x, a.ld_x, a.xq, a.in, acc);
  if (!team.leader()) return;
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int t = 0; t < kTokens; ++t) {
      if (row0 + r < a.out && lane == (r * kTokens + t) % kWarpSize) a.y[t * a.ld_y + row0 + r] = acc[r][t];
    }
  }
}

// Several products of one x in one launch (matmul_fanout): row group g belongs to product i while
// g is below that product's count of row groups, in order; each product is gemv_kernel's work,
// unchanged.
inline constexpr int kFanoutMax = 3;
template <class W>
struct GemvFanout {
  GemmArgs<W> m[kFanoutMax];
  int blocks[kFanoutMax];  // row groups of each product
  int count;
};

// `blocks` counts row groups of kRows rows here (one per team and turn): the teams of the grid
// walk the concatenated row groups of the products with a grid stride. The products share x, so
// one team size (f.m[0].team) serves them all.
template <class W, int kTokens, int kRows, bool kVector>
__global__ void __launch_bounds__(kGemvWarpsPerBlock * kWarpSize) gemv_fanout_kernel(GemvFanout<W> f) {
  kernel_prologue();
  GemvTeam team(f.m[0].team);
  const int total = f.blocks[0] + (f.count > 1 ? f.blocks[1] : 0) + (f.count > 2 ? f.blocks[2] : 0);
  for (int g = blockIdx.x * team.per_block() + team.index; g < total; g += gridDim.x * team.per_block()) {
    int local = g, i = 0;
    while (i + 1 < f.count && local >= f.blocks[i]) local -= f.blocks[i++];
    const GemmArgs<W>& a = i == 0 ? f.m[0] : (i == 1 ? f.m[1] : f.m[2]);
    gemv_warp_rows<W, kTokens, kRows, kVector>(team, a, local * kRows);
  }
}

// Grid: (at most ceil(out / (teams per block · kRows)), batch); the teams walk the row groups
// with a grid stride.
template <class W, int kTokens, int kRows, bool kVector>
__global__ void __launch_bounds__(kGemvWarpsPerBlock * kWarpSize) gemv_kernel(GemmArgs<W> a) {
  kernel_prologue();
  GemvTeam team(a.team);
  GemmArgs<W> b = a;
  b.x += blockIdx.y * a.batch_x, b.w += blockIdx.y * a.batch_w, b.y += blockIdx.y * a.batch_y;
  if (b.xq.q != nullptr) b.xq.q += blockIdx.y * a.xq.batch_q, b.xq.s += 2 * blockIdx.y * a.xq.batch_s;
  for (int row0 = (blockIdx.x * team.per_block() + team.index) * kRows; row0 < a.out;
       row0 += gridDim.x * team.per_block() * kRows) {
    gemv_warp_rows<W, kTokens, kRows, kVector>(team, b, row0);
  }
}

// The x extent of a decode GEMV grid: `needed` blocks, at most `waves` times what the device holds
// at once beside the grid's other `grid_y` rows of blocks.
template <auto kKernel>
unsigned gemv_grid_x(long long needed, unsigned grid_y, int waves = 1) {
  const long long resident = waves * resident_blocks<kKernel>(kGemvWarpsPerBlock * kWarpSize);
  const long long cap = std::max<long long>(1, resident / std::max<unsigned>(grid_y, 1));
  return static_cast<unsigned>(std::max<long long>(1, std::min(needed, cap)));
}

// ---- decode, y = x·W (W [in, out]): GEMV over columns ----------------------------------------
//
// W is read along its rows (contiguous outputs): each lane owns two adjacent output columns, a
// warp covers 64 columns of one input row (128 bytes of bf16: one cache line), and the 16 warps
// of a block split the inputs; their partial sums are added in a fixed order through shared
// memory, so results are deterministic.

inline constexpr int kGemvInOutWarps = 16;
inline constexpr int kGemvInOutCols = 2 * kWarpSize;

// Columns [col0, col0 + 64) of one product (a.x, a.w, a.y already at that product), by the whole
// block (it synchronizes). partial: shared, kGemvInOutWarps * kTokens * kGemvInOutCols floats.
template <class W, int kTokens, bool kVector>
__device__ __forceinline__ void gemv_in_out_block(const GemmArgs<W>& a, int col0, float* partial_mem) {
  auto partial = reinterpret_cast<float (*)[kTokens][kGemvInOutCols]>(partial_mem);
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int col = col0 + 2 * lane;  // this lane's columns: col, col + 1
  const float* __restrict__ x = a.x;
  const W* __restrict__ w = a.w;
  float* y = a.y;

  float acc[kTokens][2];
#pragma unroll
  for (int t = 0; t < kTokens; ++t) acc[t][0] = acc[t][1] = 0.0f;
  const bool both = col + 1 < a.out;
  if (col < a.out) {
#pragma unroll 4
    for (int k = warp; k < a.in; k += kGemvInOutWarps) {
      float w0 = 0.0f, w1 = 0.0f;
      if constexpr (is_block_format_v<W>) {  // row k of blocks: elements col, col + 1
        const W* wr = w + static_cast<std::size_t>(k) * a.ld_w;
        w0 = W::decode(wr, static_cast<std::size_t>(col));
        if (both) w1 = W::decode(wr, static_cast<std::size_t>(col) + 1);
      } else if constexpr (kVector && std::is_same_v<W, float>) {
        const W* wp = w + static_cast<std::size_t>(k) * a.ld_w + col;
        if (both) {
          const float2 v = __ldcs(reinterpret_cast<const float2*>(wp));
          w0 = v.x;
          w1 = v.y;
        } else {
          w0 = __ldcs(wp);
        }
      } else if constexpr (kVector) {
        const W* wp = w + static_cast<std::size_t>(k) * a.ld_w + col;
        if (both) {
          const std::uint32_t v = __ldcs(reinterpret_cast<const unsigned int*>(wp));
          w0 = bits_to_float<W>(static_cast<std::uint16_t>(v & 0xffffu));
          w1 = bits_to_float<W>(static_cast<std::uint16_t>(v >> 16));
        } else {
          w0 = load_as_float(wp, 0);
        }
      } else {
        const W* wp = w + static_cast<std::size_t>(k) * a.ld_w + col;
        w0 = load_as_float(wp, 0);
        if (both) w1 = load_as_float(wp, 1);
      }
#pragma unroll
      for (int t = 0; t < kTokens; ++t) {
        const float xv = __ldg(x + t * a.ld_x + k);
        acc[t][0] = fmaf(xv, w0, acc[t][0]);
        acc[t][1] = fmaf(xv, w1, acc[t][1]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    partial[warp][t][2 * lane] = acc[t][0];
    partial[warp][t][2 * lane + 1] = acc[t][1];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < kTokens * kGemvInOutCols; e += blockDim.x) {
    const int t = e / kGemvInOutCols, c = e % kGemvInOutCols;
    if (col0 + c >= a.out) continue;
    float s = 0.0f;
#pragma unroll
    for (int v = 0; v < kGemvInOutWarps; ++v) s += partial[v][t][c];
    y[t * a.ld_y + col0 + c] = s;
  }
}

template <class W, int kTokens, bool kVector>
__global__ void __launch_bounds__(kGemvInOutWarps * kWarpSize) gemv_in_out_kernel(GemmArgs<W> a) {
  kernel_prologue();
  __shared__ float partial[kGemvInOutWarps * kTokens * kGemvInOutCols];
  GemmArgs<W> b = a;
  b.x += blockIdx.y * a.batch_x, b.w += blockIdx.y * a.batch_w, b.y += blockIdx.y * a.batch_y;
  gemv_in_out_block<W, kTokens, kVector>(b, blockIdx.x * kGemvInOutCols, partial);
}

// ---- prefill, bf16/f16 W: tensor cores on bf16x2-split activations ---------------------------
//
// A block computes a [128 tokens, 128 outputs] tile of y with 8 warps (2 x 4), each a 64 x 32
// sub-tile of 4 x 4 m16n8k16 MMAs. Per step of 32 inputs, the x tile is read as f32, split into
// bf16 hi and lo parts and stored in shared memory; the W tile is stored as bf16 (f16: split into
// exact bf16 hi and lo parts). The next step's global loads are issued before the current step's
// MMAs (register double buffering). Rows are padded to 40 bf16 so the fragment loads hit 32
// distinct banks.

inline constexpr int kMmaTileM = 128;
inline constexpr int kMmaTileN = 128;
inline constexpr int kMmaTileK = 32;
inline constexpr int kMmaPitch = kMmaTileK + 8;   // bf16 per row of the [m][k] and [n][k] tiles
inline constexpr int kMmaPitchT = kMmaTileN + 8;  // bf16 per row of the [k][n] tile (matmul_in_out)
inline constexpr int kMmaThreads = 256;

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                               std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ std::uint16_t bf16_rn_bits(float v) {
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
}

// v = hi + lo + r with hi = bf16(v), lo = bf16(v - hi) (v - hi is exact in f32).
__device__ __forceinline__ void split_bf16(float v, std::uint16_t& hi, std::uint16_t& lo) {
  hi = bf16_rn_bits(v);
  lo = bf16_rn_bits(v - bf16_bits_to_float(hi));
}

// W's tile is split into bf16 hi + lo parts for f16 and for block formats (their decoded values
// have up to 19 significant bits: hi + lo keeps 16, a few 2^-17 relative).
template <class W, bool kInOut, int kTileM = kMmaTileM>
struct MmaShared {
  static constexpr bool kSplitW = std::is_same_v<W, f16> || is_block_format_v<W>;
  static constexpr int kWElems = kInOut ? kMmaTileK * kMmaPitchT : kMmaTileN * kMmaPitch;
  std::uint16_t xh[kTileM * kMmaPitch];
  std::uint16_t xl[kTileM * kMmaPitch];
  std::uint16_t wh[kWElems];
  std::uint16_t wl[kSplitW ? kWElems : 1];
};

// The [kTileM, 128] tile at (m0, n0) of one product (a.x, a.w, a.y already at that product), by
// the whole block (kMmaThreads; it synchronizes). Shared by mma_gemm_kernel and the grouped GEMM.
// kTileM: 128 tokens (8 warps of 64 x 32), or 64 / 32 for the experts' buckets of a prefill,
// which hold a few dozen slots each (warps of 32 x 32 / 16 x 32: a 128-row tile of a 32-slot
// bucket spends three quarters of its MMAs on rows that do not exist). Every output is summed in
// the same order whatever kTileM, so the results are bitwise those of the 128-row tiles.
template <class W, bool kInOut, bool kAligned, int kTileM = kMmaTileM>
__device__ __forceinline__ void mma_gemm_tile(const GemmArgs<W>& a, int m0, int n0) {
  static_assert(std::is_same_v<W, bf16> || std::is_same_v<W, f16> || is_block_format_v<W>);
  static_assert(kTileM == 32 || kTileM == 64 || kTileM == 128, "two warps of kTileM / 2 rows, 16-row fragments");
  constexpr int kXRows = kTileM / 32;  // x rows a thread stages per step, 32 apart
  constexpr int kMi = kTileM / 32;     // 16-row fragments per warp
  constexpr int kWarpRows = kTileM / 2;
  constexpr bool kBlockW = is_block_format_v<W>;
  constexpr bool kSplitW = MmaShared<W, kInOut, kTileM>::kSplitW;
  __shared__ __align__(16) MmaShared<W, kInOut, kTileM> sm;

  const int tid = threadIdx.x;
  const int lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int g = lane / 4, q = lane % 4;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const int M = a.n_tokens, K = a.in, N = a.out;
  const float* __restrict__ x = a.x;
  const std::uint16_t* __restrict__ w = reinterpret_cast<const std::uint16_t*>(a.w);
  float* y = a.y;

  // Staging registers: kXRows x (4 floats) of x and 2 x (8 bf16/f16, or 8 decoded floats of a
  // block format) of W per thread.
  float xr[kXRows][4];
  uint4 wr[2];
  float wq[kBlockW ? 2 : 1][kRunElems];

  auto load_tiles = [&](int k0) {
#pragma unroll
    for (int i = 0; i < kXRows; ++i) {
      const int r = m0 + tid / 8 + 32 * i, k = k0 + (tid % 8) * 4;
      const float* p = x + static_cast<std::size_t>(r) * a.ld_x + k;
      if (kAligned && r < M && k + 3 < K) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(p));
        xr[i][0] = v.x, xr[i][1] = v.y, xr[i][2] = v.z, xr[i][3] = v.w;
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) xr[i][j] = (r < M && k + j < K) ? __ldg(p + j) : 0.0f;
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      // [out, in]: row n, inputs k..k+7. [in, out]: row k, outputs n..n+7.
      const int row = kInOut ? k0 + tid / 16 + 16 * i : n0 + tid / 4 + 64 * i;
      const int col = kInOut ? n0 + (tid % 16) * 8 : k0 + (tid % 4) * 8;
      const int rows = kInOut ? K : N, cols = kInOut ? N : K;
      if constexpr (kBlockW) {  // cols is whole blocks: a run is inside the row or past its end
        if (row < rows && col < cols) {
          decode_run(a.w + static_cast<std::size_t>(row) * a.ld_w, col, wq[i]);
        } else {
#pragma unroll
          for (int j = 0; j < kRunElems; ++j) wq[i][j] = 0.0f;
        }
      } else {
        const std::uint16_t* p = w + static_cast<std::size_t>(row) * a.ld_w + col;
        if (kAligned && row < rows && col + 7 < cols) {
          wr[i] = __ldg(reinterpret_cast<const uint4*>(p));
        } else {
          std::uint16_t e[8];
#pragma unroll
          for (int j = 0; j < 8; ++j) e[j] = (row < rows && col + j < cols) ? __ldg(p + j) : std::uint16_t{0};
          wr[i] = make_uint4(e[0] | (std::uint32_t{e[1]} << 16), e[2] | (std::uint32_t{e[3]} << 16),
                             e[4] | (std::uint32_t{e[5]} << 16), e[6] | (std::uint32_t{e[7]} << 16));
        }
      }
    }
  };

  auto store_tiles = [&] {
#pragma unroll
    for (int i = 0; i < kXRows; ++i) {
      const int r = tid / 8 + 32 * i, k = (tid % 8) * 4;
      std::uint16_t h[4], l[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) split_bf16(xr[i][j], h[j], l[j]);
      *reinterpret_cast<uint2*>(&sm.xh[r * kMmaPitch + k]) =
          make_uint2(h[0] | (std::uint32_t{h[1]} << 16), h[2] | (std::uint32_t{h[3]} << 16));
      *reinterpret_cast<uint2*>(&sm.xl[r * kMmaPitch + k]) =
          make_uint2(l[0] | (std::uint32_t{l[1]} << 16), l[2] | (std::uint32_t{l[3]} << 16));
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int offset = kInOut ? (tid / 16 + 16 * i) * kMmaPitchT + (tid % 16) * 8
                                : (tid / 4 + 64 * i) * kMmaPitch + (tid % 4) * 8;
      if constexpr (kBlockW) {
        std::uint32_t hw[4], lw[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          std::uint16_t h0, l0, h1, l1;
          split_bf16(wq[i][2 * j], h0, l0);
          split_bf16(wq[i][2 * j + 1], h1, l1);
          hw[j] = h0 | (std::uint32_t{h1} << 16);
          lw[j] = l0 | (std::uint32_t{l1} << 16);
        }
        *reinterpret_cast<uint4*>(&sm.wh[offset]) = make_uint4(hw[0], hw[1], hw[2], hw[3]);
        *reinterpret_cast<uint4*>(&sm.wl[offset]) = make_uint4(lw[0], lw[1], lw[2], lw[3]);
      } else if constexpr (!kSplitW) {
        *reinterpret_cast<uint4*>(&sm.wh[offset]) = wr[i];
      } else {
        const std::uint32_t words[4] = {wr[i].x, wr[i].y, wr[i].z, wr[i].w};
        std::uint32_t hw[4], lw[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          std::uint16_t h0, l0, h1, l1;
          split_bf16(f16_bits_to_float(static_cast<std::uint16_t>(words[j] & 0xffffu)), h0, l0);
          split_bf16(f16_bits_to_float(static_cast<std::uint16_t>(words[j] >> 16)), h1, l1);
          hw[j] = h0 | (std::uint32_t{h1} << 16);
          lw[j] = l0 | (std::uint32_t{l1} << 16);
        }
        *reinterpret_cast<uint4*>(&sm.wh[offset]) = make_uint4(hw[0], hw[1], hw[2], hw[3]);
        *reinterpret_cast<uint4*>(&sm.wl[offset]) = make_uint4(lw[0], lw[1], lw[2], lw[3]);
      }
    }
  };

  // B fragment (k16 x n8, "col" layout) of tile `wt` at inputs kk.., output column n.
  auto load_b = [&](const std::uint16_t* wt, int kk, int n, std::uint32_t& b0, std::uint32_t& b1) {
    if constexpr (!kInOut) {
      b0 = *reinterpret_cast<const std::uint32_t*>(&wt[n * kMmaPitch + kk + 2 * q]);
      b1 = *reinterpret_cast<const std::uint32_t*>(&wt[n * kMmaPitch + kk + 2 * q + 8]);
    } else {
      const int k = kk + 2 * q;
      b0 = wt[k * kMmaPitchT + n] | (std::uint32_t{wt[(k + 1) * kMmaPitchT + n]} << 16);
      b1 = wt[(k + 8) * kMmaPitchT + n] | (std::uint32_t{wt[(k + 9) * kMmaPitchT + n]} << 16);
    }
  };

  float acc[kMi][4][4] = {};
  load_tiles(0);
  for (int k0 = 0; k0 < K; k0 += kMmaTileK) {
    store_tiles();
    __syncthreads();
    if (k0 + kMmaTileK < K) load_tiles(k0 + kMmaTileK);  // in flight during the MMAs below
#pragma unroll
    for (int kk = 0; kk < kMmaTileK; kk += 16) {
      std::uint32_t ah[kMi][4], al[kMi][4];
#pragma unroll
      for (int mi = 0; mi < kMi; ++mi) {
        const int r = warp_m * kWarpRows + mi * 16 + g;
        const int base0 = r * kMmaPitch + kk + 2 * q, base1 = (r + 8) * kMmaPitch + kk + 2 * q;
        ah[mi][0] = *reinterpret_cast<const std::uint32_t*>(&sm.xh[base0]);
        ah[mi][1] = *reinterpret_cast<const std::uint32_t*>(&sm.xh[base1]);
        ah[mi][2] = *reinterpret_cast<const std::uint32_t*>(&sm.xh[base0 + 8]);
        ah[mi][3] = *reinterpret_cast<const std::uint32_t*>(&sm.xh[base1 + 8]);
        al[mi][0] = *reinterpret_cast<const std::uint32_t*>(&sm.xl[base0]);
        al[mi][1] = *reinterpret_cast<const std::uint32_t*>(&sm.xl[base1]);
        al[mi][2] = *reinterpret_cast<const std::uint32_t*>(&sm.xl[base0 + 8]);
        al[mi][3] = *reinterpret_cast<const std::uint32_t*>(&sm.xl[base1 + 8]);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int n = warp_n * 32 + ni * 8 + g;
        std::uint32_t bh0, bh1;
        load_b(sm.wh, kk, n, bh0, bh1);
        std::uint32_t bl0 = 0, bl1 = 0;
        if constexpr (kSplitW) load_b(sm.wl, kk, n, bl0, bl1);
#pragma unroll
        for (int mi = 0; mi < kMi; ++mi) {
          // Small terms first: lo·w_hi (and hi·w_lo), then hi·w_hi.
          mma_bf16_16816(acc[mi][ni], al[mi], bh0, bh1);
          if constexpr (kSplitW) mma_bf16_16816(acc[mi][ni], ah[mi], bl0, bl1);
          mma_bf16_16816(acc[mi][ni], ah[mi], bh0, bh1);
        }
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int mi = 0; mi < kMi; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int r = m0 + warp_m * kWarpRows + mi * 16 + g;
      const int c = n0 + warp_n * 32 + ni * 8 + 2 * q;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int rr = r + 8 * h;
        if (rr >= M) continue;
        float* yp = y + static_cast<std::size_t>(rr) * a.ld_y + c;
        if (c < N) yp[0] = acc[mi][ni][2 * h];
        if (c + 1 < N) yp[1] = acc[mi][ni][2 * h + 1];
      }
    }
  }
}

// kTileM: mma_tile_rows.
template <class W, bool kInOut, bool kAligned, int kTileM = kMmaTileM>
__global__ void __launch_bounds__(kMmaThreads) mma_gemm_kernel(GemmArgs<W> a) {
  kernel_prologue();
  GemmArgs<W> b = a;
  b.x += blockIdx.z * a.batch_x, b.w += blockIdx.z * a.batch_w, b.y += blockIdx.z * a.batch_y;
  mma_gemm_tile<W, kInOut, kAligned, kTileM>(b, blockIdx.y * kTileM, blockIdx.x * kMmaTileN);
}

// MOE_CUDA_MMA_TILE_M=32, 64 or 128 fixes the dense tensor-core GEMM's tile height (A/B runs);
// unset: mma_tile_rows' rule. Read once per process.
// A tile height from environment variable `var`: 32, 64 or 128, else 0 (unset or other values).
inline int tile_rows_from_env(const char* var) {
  const char* v = std::getenv(var);
  const int n = v != nullptr ? std::atoi(v) : 0;
  return n == 32 || n == 64 || n == 128 ? n : 0;
}
inline int mma_tile_override() {
  static const int forced = tile_rows_from_env("MOE_CUDA_MMA_TILE_M");
  return forced;
}

// Rows per tile of the dense tensor-core GEMM: the pass's rows rounded up to 32 or 64 when it has
// no more (a batched decode of 9-64 sequences), else 128 unless that leaves SMs without a block
// (a prefill of 512 tokens through a 2048-wide o_proj: 64 tiles of 128 on 132 SMs; 64-row tiles
// take 120-134 registers a thread, two blocks an SM, the 128-row ones 174-202, one). The results
// do not depend on it (mma_gemm_tile). Not yet measured on a GPU (2026-12-08).
template <class W>
int mma_tile_rows(const GemmArgs<W>& a) {
  if (a.mma_tile_m != 0) return a.mma_tile_m;
  if (const int forced = mma_tile_override(); forced != 0) return forced;
  if (a.n_tokens <= 32) return 32;
  if (a.n_tokens <= 64) return 64;
  const long long blocks = static_cast<long long>((a.out + kMmaTileN - 1) / kMmaTileN) *
                           ((a.n_tokens + kMmaTileM - 1) / kMmaTileM) * std::max(a.batch, 1);
  return blocks < device_sm_count() ? 64 : 128;
}

// ---- prefill, f32 W: tiled f32 GEMM ------------------------------------------------------------
//
// A block computes a [64, 64] tile of y; each of its 256 threads owns a 4x4 sub-tile. Per step of
// 16 inputs, x and W tiles are staged in shared memory k-major, W widened to f32 once, so the
// inner loop is two 16-byte shared loads per 16 FMAs. Each output is summed in input order.

inline constexpr int kTileTokens = 64;
inline constexpr int kTileOut = 64;
inline constexpr int kTileK = 16;
inline constexpr int kGemmThreads = 256;  // 16 x 16 threads, 4 x 4 outputs each
static_assert(kTileTokens * kTileK % kGemmThreads == 0 && kTileOut == kTileTokens);

// The [64, 64] tile at (t0, o0) of one product (a.x, a.w, a.y already at that product), by the
// whole block (kGemmThreads; it synchronizes). Shared by gemm_f32_kernel and the grouped GEMM.
template <class W, bool kInOut>
__device__ __forceinline__ void gemm_f32_tile(const GemmArgs<W>& a, int t0, int o0) {
  // +4 floats of padding per row: keeps rows 16-byte aligned for the float4 reads below and
  // spreads the transposed stores over more banks.
  __shared__ __align__(16) float xs[kTileK][kTileTokens + 4];  // [k][token]
  __shared__ __align__(16) float ws[kTileK][kTileOut + 4];     // [k][output]

  const float* __restrict__ x = a.x;
  const W* __restrict__ w = a.w;
  float* y = a.y;
  const int tx = threadIdx.x % 16;  // output sub-tile
  const int ty = threadIdx.x / 16;  // token sub-tile

  float acc[4][4] = {};
  for (int k0 = 0; k0 < a.in; k0 += kTileK) {
#pragma unroll
    for (int i = 0; i < kTileTokens * kTileK / kGemmThreads; ++i) {
      const int e = threadIdx.x + i * kGemmThreads;
      {
        const int r = e / kTileK;  // consecutive threads read consecutive k of one row
        const int kk = e % kTileK;
        const int k = k0 + kk, t = t0 + r;
        xs[kk][r] = (t < a.n_tokens && k < a.in) ? __ldg(x + static_cast<std::size_t>(t) * a.ld_x + k) : 0.0f;
      }
      if constexpr (!kInOut) {
        const int r = e / kTileK, kk = e % kTileK;
        const int k = k0 + kk, o = o0 + r;
        ws[kk][r] = (o < a.out && k < a.in) ? load_as_float(w, static_cast<std::size_t>(o) * a.ld_w + k) : 0.0f;
      } else {
        const int r = e % kTileOut, kk = e / kTileOut;  // consecutive threads: consecutive outputs
        const int k = k0 + kk, o = o0 + r;
        ws[kk][r] = (o < a.out && k < a.in) ? load_as_float(w, static_cast<std::size_t>(k) * a.ld_w + o) : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      const float4 av4 = *reinterpret_cast<const float4*>(&xs[kk][ty * 4]);
      const float4 bv4 = *reinterpret_cast<const float4*>(&ws[kk][tx * 4]);
      const float av[4] = {av4.x, av4.y, av4.z, av4.w};
      const float bv[4] = {bv4.x, bv4.y, bv4.z, bv4.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int t = t0 + ty * 4 + i;
    if (t >= a.n_tokens) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int o = o0 + tx * 4 + j;
      if (o < a.out) y[static_cast<std::size_t>(t) * a.ld_y + o] = acc[i][j];
    }
  }
}

template <class W, bool kInOut>
__global__ void __launch_bounds__(kGemmThreads) gemm_f32_kernel(GemmArgs<W> a) {
  kernel_prologue();
  GemmArgs<W> b = a;
  b.x += blockIdx.z * a.batch_x, b.w += blockIdx.z * a.batch_w, b.y += blockIdx.z * a.batch_y;
  gemm_f32_tile<W, kInOut>(b, blockIdx.y * kTileTokens, blockIdx.x * kTileOut);
}

// ---- dispatch ------------------------------------------------------------------------------

// Whether every row start (and batch start) of x and W is 16-byte aligned: the 16-byte load paths.
template <class W>
bool rows_aligned_16(const GemmArgs<W>& a, bool in_out) {
  const index_t w_rows = in_out ? static_cast<index_t>(a.in) : static_cast<index_t>(a.out);
  const bool x_ok = is_aligned(a.x, 16) && (a.n_tokens <= 1 || a.ld_x * sizeof(float) % 16 == 0) &&
                    (a.batch <= 1 || a.batch_x * sizeof(float) % 16 == 0);
  if constexpr (is_block_format_v<W>) {
    return x_ok;  // block-format rows are decoded run by run (their alignment: gemm_args)
  } else {
    const bool w_ok = is_aligned(a.w, 16) && (w_rows <= 1 || a.ld_w * sizeof(W) % 16 == 0) &&
                      (a.batch <= 1 || a.batch_w * sizeof(W) % 16 == 0);
    return x_ok && w_ok;
  }
}

// The decode GEMV's 16-byte path for y = x·Wᵀ (see gemv_kernel).
template <class W>
bool gemv_vector_loads(const GemmArgs<W>& a) {
  return rows_aligned_16(a, false);
}

// The column GEMV's paired loads for y = x·W: two adjacent outputs in one load.
template <class W>
bool gemv_in_out_pair_loads(const GemmArgs<W>& a) {
  constexpr std::size_t pair = 2 * sizeof(W);
  return is_aligned(a.w, pair) && (a.in <= 1 || a.ld_w * sizeof(W) % pair == 0) &&
         (a.batch <= 1 || a.batch_w * sizeof(W) % pair == 0);
}

// MOE_CUDA_GEMV_TEAM=1, 2, 4 or 8 fixes the team size of every decode GEMV with an f32 path (for
// A/B measurements); unset or anything else: gemv_team_warps's rule. Read once per process.
inline int gemv_team_override() {
  static const int forced = [] {
    const char* v = std::getenv("MOE_CUDA_GEMV_TEAM");
    const int n = v != nullptr && v[0] != '\0' && v[1] == '\0' ? v[0] - '0' : 0;
    return n == 1 || n == 2 || n == 4 || n == 8 ? n : 0;
  }();
  return forced;
}

// Warps per row group of the decode GEMV for rows of `in` elements of W (GemvTeam): the largest
// team, at most a block, that still gives each lane a full turn of loads in flight (kGemvUnroll
// 16-byte chunks, or kRunsInFlight runs). A function of the format and `in` only, so every launch
// over a matrix (any tokens, any kernel) sums its rows alike. The integer path: one warp.
template <class W>
int gemv_team_warps(int in) {
  if constexpr (quant::q8dot::kGemvIntDot<W>) {
    return 1;
  } else {
    if (const int forced = gemv_team_override(); forced != 0) return forced;
    int units = 0, in_flight = 0;
    if constexpr (is_block_format_v<W>) units = in / kRunElems, in_flight = quant::runs::kRunsInFlight<W>;
    else units = in / kChunkElems<W>, in_flight = kGemvUnroll;
    int team = 1;
    while (team < kGemvWarpsPerBlock && units >= 2 * team * kWarpSize * in_flight) team *= 2;
    return team;
  }
}

template <class W, bool kVector, int kTokens>
void launch_gemv_tokens(GemmArgs<W> a, bool in_out) {
  if (!in_out) {
    constexpr int kRows = kTokens >= 4 ? 4 : (kTokens >= 2 ? 2 : 1);
    // The integer path reads no f32 x, so one variant serves both alignments.
    constexpr auto kernel = gemv_kernel<W, kTokens, kRows, kVector || quant::q8dot::kGemvIntDot<W>>;
    a.team = gemv_team_warps<W>(a.in);
    const int rows_per_block = kGemvWarpsPerBlock / a.team * kRows;
    const long long needed = (a.out + rows_per_block - 1) / rows_per_block;
    const dim3 grid(gemv_grid_x<kernel>(needed, static_cast<unsigned>(a.batch)), a.batch);
    cuda_detail::launch(kernel, grid, kGemvWarpsPerBlock * kWarpSize, 0, a);
    ::moe::cuda::check_launch("gemv_kernel");
  } else {
    const dim3 grid((a.out + kGemvInOutCols - 1) / kGemvInOutCols, a.batch);
    cuda_detail::launch(gemv_in_out_kernel<W, kTokens, kVector>, grid, kGemvInOutWarps * kWarpSize, 0, a);
    ::moe::cuda::check_launch("gemv_in_out_kernel");
  }
}

template <class W, int kTokens>
void launch_fanout_tokens(GemvFanout<W> f) {
  constexpr int kRows = kTokens >= 4 ? 4 : (kTokens >= 2 ? 2 : 1);
  long long groups = 0;
  for (int i = 0; i < f.count; ++i) {
    f.blocks[i] = (f.m[i].out + kRows - 1) / kRows;
    groups += f.blocks[i];
  }
  f.m[0].team = gemv_team_warps<W>(f.m[0].in);  // the products share x, so `in`
  const int teams = kGemvWarpsPerBlock / f.m[0].team;
  constexpr auto kernel = gemv_fanout_kernel<W, kTokens, kRows, true>;
  const unsigned blocks = gemv_grid_x<kernel>((groups + teams - 1) / teams, 1);
  cuda_detail::launch(kernel, blocks, kGemvWarpsPerBlock * kWarpSize, 0, f);
  ::moe::cuda::check_launch("gemv_fanout_kernel");
}

template <class W>
void launch_fanout(const GemvFanout<W>& f) {
  static_assert(kGemvMaxTokens == 8, "update the switch below");
  switch (f.m[0].n_tokens) {
    case 1: launch_fanout_tokens<W, 1>(f); break;
    case 2: launch_fanout_tokens<W, 2>(f); break;
    case 3: launch_fanout_tokens<W, 3>(f); break;
    case 4: launch_fanout_tokens<W, 4>(f); break;
    case 5: launch_fanout_tokens<W, 5>(f); break;
    case 6: launch_fanout_tokens<W, 6>(f); break;
    case 7: launch_fanout_tokens<W, 7>(f); break;
    default: launch_fanout_tokens<W, 8>(f); break;
  }
}

template <class W, bool kVector>
void launch_gemv(const GemmArgs<W>& a, bool in_out) {
  static_assert(kGemvMaxTokens == 8, "update the switch below");
  switch (a.n_tokens) {
    case 1: launch_gemv_tokens<W, kVector, 1>(a, in_out); break;
    case 2: launch_gemv_tokens<W, kVector, 2>(a, in_out); break;
    case 3: launch_gemv_tokens<W, kVector, 3>(a, in_out); break;
    case 4: launch_gemv_tokens<W, kVector, 4>(a, in_out); break;
    case 5: launch_gemv_tokens<W, kVector, 5>(a, in_out); break;
    case 6: launch_gemv_tokens<W, kVector, 6>(a, in_out); break;
    case 7: launch_gemv_tokens<W, kVector, 7>(a, in_out); break;
    default: launch_gemv_tokens<W, kVector, 8>(a, in_out); break;
  }
}

// x of a decode GEMV y = x·Wᵀ quantized to int8 for W's integer path (a.xq), or nothing for the
// formats without one. The result owns the buffer: keep it until the GEMV is launched.
template <class W>
X8Activations attach_x8(GemmArgs<W>& a) {
  X8Activations x8;
  if constexpr (quant::q8dot::kGemvIntDot<W>) {
    x8 = X8Activations(a.x, a.ld_x, a.batch_x, a.n_tokens, a.batch, a.in);
    a.xq = x8.rows();
  }
  return x8;
}

// Runs y = x·Wᵀ (in_out false) or y = x·W (in_out true) for the arguments, picking the kernel.
template <class W>
void gemm_dispatch(GemmArgs<W> a, bool in_out) {
  if (a.n_tokens == 0 || a.out == 0 || a.batch == 0) return;
  require(a.batch <= 65535, ErrorCode::kInvalidArgument, "kernels::matmul(cuda): batch of {} exceeds 65535", a.batch);
  if (a.n_tokens <= kGemvMaxTokens) {
    const X8Activations x8 = in_out ? X8Activations{} : attach_x8(a);
    const bool vector = in_out ? gemv_in_out_pair_loads(a) : gemv_vector_loads(a);
    if (vector) launch_gemv<W, true>(a, in_out);
    else launch_gemv<W, false>(a, in_out);
    return;
  }
  if constexpr (std::is_same_v<W, float>) {
    require(static_cast<index_t>(a.n_tokens) <= index_t{65535} * kTileTokens, ErrorCode::kInvalidArgument,
            "kernels::matmul(cuda): {} rows of x exceed the supported {}", a.n_tokens, index_t{65535} * kTileTokens);
    const dim3 grid((a.out + kTileOut - 1) / kTileOut, (a.n_tokens + kTileTokens - 1) / kTileTokens, a.batch);
    if (in_out) cuda_detail::launch(gemm_f32_kernel<W, true>, grid, kGemmThreads, 0, a);
    else cuda_detail::launch(gemm_f32_kernel<W, false>, grid, kGemmThreads, 0, a);
    ::moe::cuda::check_launch("gemm_f32_kernel");
  } else {
    require(static_cast<index_t>(a.n_tokens) <= index_t{65535} * kMmaTileM, ErrorCode::kInvalidArgument,
            "kernels::matmul(cuda): {} rows of x exceed the supported {}", a.n_tokens, index_t{65535} * kMmaTileM);
    const bool aligned = rows_aligned_16(a, in_out);
    const auto go = [&]<int kTileM>() {
      const dim3 grid((a.out + kMmaTileN - 1) / kMmaTileN, (a.n_tokens + kTileM - 1) / kTileM, a.batch);
      if (in_out) {
        if (aligned) cuda_detail::launch(mma_gemm_kernel<W, true, true, kTileM>, grid, kMmaThreads, 0, a);
        else cuda_detail::launch(mma_gemm_kernel<W, true, false, kTileM>, grid, kMmaThreads, 0, a);
      } else {
        if (aligned) cuda_detail::launch(mma_gemm_kernel<W, false, true, kTileM>, grid, kMmaThreads, 0, a);
        else cuda_detail::launch(mma_gemm_kernel<W, false, false, kTileM>, grid, kMmaThreads, 0, a);
      }
    };
    const int tile_m = mma_tile_rows(a);
    if (tile_m == 32) go.template operator()<32>();
    else if (tile_m == 64) go.template operator()<64>();
    else go.template operator()<128>();
    ::moe::cuda::check_launch("mma_gemm_kernel");
  }
}

// Block-format rows must start as aligned as decode_run reads them (kInvalidArgument otherwise;
// rows of uploaded weights always are). Nothing to check for element types.
template <class W>
void require_run_alignment(DeviceView<const W, 2> w, const char* op) {
  if constexpr (is_block_format_v<W>) {
    require(is_aligned(w.data(), kRunAlignment<W>) && w.stride(0) * sizeof(W) % kRunAlignment<W> == 0,
            ErrorCode::kInvalidArgument, "kernels::{}(cuda): {} rows must start {}-byte aligned", op,
            dtype_name(W::dtype), kRunAlignment<W>);
  }
}

// GemmArgs of one product from checked views.
template <class W>
GemmArgs<W> gemm_args(DeviceView<const float, 2> x, DeviceView<const W, 2> w, DeviceView<float, 2> y, bool in_out,
                      const char* op) {
  require_int_range(x.extent(0), op, "n_tokens");
  require_int_range(x.extent(1), op, "in");
  const index_t out = in_out ? detail::weight_cols(w) : w.extent(0);
  require_int_range(out, op, "out");
  require_run_alignment(w, op);
  GemmArgs<W> a;
  a.x = x.data();
  a.ld_x = x.stride(0);
  a.w = w.data();
  a.ld_w = w.stride(0);
  a.y = y.data();
  a.ld_y = y.stride(0);
  a.n_tokens = static_cast<int>(x.extent(0));
  a.in = static_cast<int>(x.extent(1));
  a.out = static_cast<int>(out);
  return a;
}

}  // namespace cuda_detail

// y = x·Wᵀ on the GPU: x [n_tokens, in] f32, w [out, in] (float, bf16 or f16), y [n_tokens, out]
// f32, all in device memory; innermost strides 1, outer strides free; y must not overlap x or w.
// Overwrites y. Up to 8 rows run the decode GEMV (W read once for all rows), more the
// tensor-core GEMM (bf16/f16) or the tiled f32 GEMM (f32 W). Asynchronous on the backend's stream (cuda::stream()).
// Throws kInvalidArgument on mismatched shapes or strides, kDevice if the launch fails.
template <class W>
void matmul(backend::cuda, DeviceView<const float, 2> x, DeviceView<const W, 2> w, DeviceView<float, 2> y) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_matmul(x, w, y, "matmul");
    cuda_detail::gemm_dispatch(cuda_detail::gemm_args(x, w, y, false, "matmul"), false);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::matmul is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16, the block formats)");
  }
}

// y_i = x·W_iᵀ for up to three weights sharing x (an attention layer's q, k and v projections): one
// launch of the decode GEMV over all of them when x has at most 8 rows and every W is 16-byte
// aligned (each output bitwise what matmul gives), else one matmul each. w and y of equal length.
template <class W>
void matmul_fanout(backend::cuda be, DeviceView<const float, 2> x, std::span<const DeviceView<const W, 2>> w,
                   std::span<const DeviceView<float, 2>> y) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    require(w.size() == y.size() && !w.empty(), ErrorCode::kInvalidArgument, "matmul_fanout: {} weights, {} outputs",
            w.size(), y.size());
    cuda_detail::GemvFanout<W> f{};
    bool fused = w.size() <= static_cast<std::size_t>(cuda_detail::kFanoutMax) && x.extent(0) >= 1 &&
                 x.extent(0) <= static_cast<index_t>(cuda_detail::kGemvMaxTokens);
    for (std::size_t i = 0; i < w.size(); ++i) {
      detail::check_matmul(x, w[i], y[i], "matmul_fanout");
      if (i < static_cast<std::size_t>(cuda_detail::kFanoutMax)) {
        f.m[i] = cuda_detail::gemm_args(x, w[i], y[i], false, "matmul_fanout");
        fused = fused && f.m[i].out > 0 && cuda_detail::gemv_vector_loads(f.m[i]);
      }
    }
    if (!fused) {
      for (std::size_t i = 0; i < w.size(); ++i) matmul(be, x, w[i], y[i]);
      return;
    }
    f.count = static_cast<int>(w.size());
    const cuda_detail::X8Activations x8 = cuda_detail::attach_x8(f.m[0]);
    for (int i = 1; i < f.count; ++i) f.m[i].xq = f.m[0].xq;  // one x, one quantization
    cuda_detail::launch_fanout(f);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::matmul_fanout is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16)");
  }
}

// y = x·W on the GPU for weights stored input-major: x [n_tokens, in], w [in, out], y
// [n_tokens, out]; the same rules as matmul.
template <class W>
void matmul_in_out(backend::cuda, DeviceView<const float, 2> x, DeviceView<const W, 2> w, DeviceView<float, 2> y) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_matmul_in_out(x, w, y, "matmul_in_out");
    cuda_detail::gemm_dispatch(cuda_detail::gemm_args(x, w, y, true, "matmul_in_out"), true);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::matmul_in_out is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16)");
  }
}

// matmul_heads on the GPU (kernels/reference/matmul_heads.hpp): every head's product in one
// batched launch of the matmul kernels (grid dimension = head); the same rules as matmul.
template <class W>
void matmul_heads(backend::cuda, index_t n_heads, index_t x_head_stride, DeviceView<const float, 2> x,
                  DeviceView<const W, 2> w, DeviceView<float, 2> y) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_matmul_heads(n_heads, x_head_stride, x, w, y, "matmul_heads");
    cuda_detail::require_int_range(n_heads, "matmul_heads", "n_heads");
    cuda_detail::require_int_range(x.extent(0), "matmul_heads", "n_tokens");
    cuda_detail::require_int_range(w.extent(0), "matmul_heads", "out");
    cuda_detail::require_run_alignment(w, "matmul_heads");
    const index_t rows = w.extent(0) / n_heads;
    cuda_detail::GemmArgs<W> a;
    a.x = x.data(), a.ld_x = x.stride(0), a.batch_x = static_cast<std::size_t>(x_head_stride);
    a.w = w.data(), a.ld_w = w.stride(0), a.batch_w = static_cast<std::size_t>(rows) * w.stride(0);
    a.y = y.data(), a.ld_y = y.stride(0), a.batch_y = static_cast<std::size_t>(rows);
    a.n_tokens = static_cast<int>(x.extent(0)), a.in = static_cast<int>(detail::weight_cols(w));
    a.out = static_cast<int>(rows), a.batch = static_cast<int>(n_heads);
    cuda_detail::gemm_dispatch(a, false);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::matmul_heads is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16, the block formats)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
