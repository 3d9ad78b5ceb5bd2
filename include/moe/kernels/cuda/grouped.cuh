// Grouped expert products on backend::cuda: one launch multiplies every expert's bucket of slots
// by that expert's matrix, with the bucket offsets read in device memory (no host round trip).
//
//   kernels::grouped_matmul(cuda, xs [slots, in], w0 [out, in], expert_stride_bytes, offsets, ys [slots, out])
//   kernels::grouped_matmul_in_out(cuda, xs [slots, in], w0 [in, out], expert_stride_bytes, offsets, ys)
//   kernels::grouped_add_bias(cuda, ys [slots, d], bias0 [d], expert_stride_bytes, offsets)
//
// Expert e's matrix is w0's shape and strides at w0.data() + e · expert_stride_bytes (a bank stored
// as [n_experts, out, in] or [n_experts, in, out] with any padding between experts);
// offsets [n_experts + 1] are bucket_by_expert's: slots [offsets[e], offsets[e+1]) belong to
// expert e, offsets[0] = 0, non-decreasing, offsets[n_experts] = slots (rows past it are left
// unwritten; offsets beyond `slots` are clamped).
//
// Each block finds its expert from the offsets on the device:
//   - experts with at most kGemvMaxTokens slots (decode: usually 1): the decode GEMV of matmul.cuh
//     (W read once with 16-byte streaming loads, every slot of the bucket in the same pass); the
//     grid covers one block row per slot (or per expert when slots >= n_experts), and a block that
//     is not at the start of a bucket, or whose bucket is empty or large, exits at once.
//   - experts with more slots: the tiled GEMMs of matmul.cuh (tensor cores with the bf16x2 split
//     of x for bf16/f16, the f32 tiles for f32 W); the grid covers an upper bound of the tiles,
//     each block finds its (expert, row tile) by a warp scan over the bucket sizes, blocks past
//     the end exit.
// Every output element is computed by the same device code, in the same order, as
// kernels::matmul on that expert's rows alone, so the grouped result is bitwise equal to the
// per-expert composition (tests/cuda/test_cuda_grouped.cu checks it).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/elementwise.cuh"
#include "moe/kernels/cuda/matmul.cuh"
#include "moe/kernels/reference/arguments.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

// One grouped product: `g` is expert 0's product over all slots (x = xs, w = expert 0's matrix,
// y = ys, n_tokens = slots); expert e's matrix starts expert_stride bytes after expert e - 1's
// (bytes: a bank uploaded at 256-byte aligned offsets need not be a whole number of 210-byte
// Q6_K blocks apart).
template <class W>
struct GroupedArgs {
  GemmArgs<W> g;
  std::size_t expert_stride = 0;  // bytes
  const std::int32_t* offsets = nullptr;
  std::size_t offsets_stride = 1;
  int n_experts = 0;
  bool by_expert = false;  // GEMV grid: blockIdx.y is an expert (else a slot)
  int min_tiled = 0;       // tiled GEMM: experts with at least this many slots
};

__device__ __forceinline__ int bucket_offset(const std::int32_t* off, std::size_t stride, int e, int slots) {
  const int v = off[static_cast<std::size_t>(e) * stride];
  return v < 0 ? 0 : (v > slots ? slots : v);
}

// The expert whose bucket holds slot s (0 <= s < offsets[n_experts]): the last e with offsets[e] <= s.
__device__ __forceinline__ int expert_of_slot(const std::int32_t* off, std::size_t stride, int n_experts, int slots,
                                              int s) {
  int lo = 0, hi = n_experts;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (bucket_offset(off, stride, mid, slots) <= s) lo = mid;
    else hi = mid;
  }
  return lo;
}

// The GEMV block's expert and bucket [begin, end), or false when the block has nothing to do.
// Called by every thread of the block. A slot's block finds the bucket that starts at its slot
// with one parallel pass of the block over the offsets (one round of loads, where a binary
// search is a chain of dependent ones: the latency that dominates a decode step's tiny GEMVs).
// kAnyCount: buckets of any size (else only those of at most kGemvMaxTokens slots, the others
// being the tiled GEMM's).
template <class W, bool kAnyCount = false>
__device__ __forceinline__ bool gemv_bucket(const GroupedArgs<W>& a, int& e, int& begin, int& count) {
  const int slots = a.g.n_tokens;
  if (a.by_expert) {
    e = blockIdx.y;
    if (e >= a.n_experts) return false;
  } else {
    __shared__ int s_expert;
    const int s = blockIdx.y;
    if (s >= slots) return false;  // uniform over the block
    if (threadIdx.x == 0) s_expert = -1;
    __syncthreads();
    for (int i = threadIdx.x; i < a.n_experts; i += blockDim.x) {
      if (bucket_offset(a.offsets, a.offsets_stride, i, slots) == s &&
          bucket_offset(a.offsets, a.offsets_stride, i + 1, slots) > s) {
        s_expert = i;  // at most one non-empty bucket starts at s
      }
    }
    __syncthreads();
    e = s_expert;
    if (e < 0) return false;  // not the first slot of a bucket
  }
  begin = bucket_offset(a.offsets, a.offsets_stride, e, slots);
  count = bucket_offset(a.offsets, a.offsets_stride, e + 1, slots) - begin;
  return count > 0 && (kAnyCount || count <= kGemvMaxTokens);
}

// Expert e's matrix of a bank whose experts are stride_bytes apart.
template <class W>
__device__ __forceinline__ const W* expert_matrix(const W* w0, std::size_t stride_bytes, int e) {
  return reinterpret_cast<const W*>(reinterpret_cast<const unsigned char*>(w0) + static_cast<std::size_t>(e) * stride_bytes);
}

template <class W>
__device__ __forceinline__ GemmArgs<W> expert_product(const GroupedArgs<W>& a, int e, int begin, int count) {
  GemmArgs<W> b = a.g;
  b.x += static_cast<std::size_t>(begin) * a.g.ld_x;
  b.y += static_cast<std::size_t>(begin) * a.g.ld_y;
  if (b.xq.q != nullptr) b.xq.q += static_cast<std::size_t>(begin) * b.xq.ld_q, b.xq.s += 2 * static_cast<std::size_t>(begin) * b.xq.ld_s;
  b.w = expert_matrix(a.g.w, a.expert_stride, e);
  b.n_tokens = count;
  return b;
}

// Rows per warp of the GEMV for buckets of up to kMaxCount slots: as gemv_kernel's for that many
// tokens (more rows per warp only pay when each x load feeds several tokens).
template <int kMaxCount>
inline constexpr int kGroupedGemvRows = kMaxCount >= 4 ? 4 : (kMaxCount >= 2 ? 2 : 1);

// The most slots one pass over an expert's W serves. A batch of 8 decode tokens spreads over most
// experts one or two slots each; a variant for 8 slots per pass needs 162 registers per thread
// (one block per SM, an eighth of the warps a decode step needs to keep HBM busy), so bigger
// buckets take several passes, whose repeated reads of W mostly hit L2.
inline constexpr int kGroupedGemvMaxPass = 2;

// Grid waves of the grouped decode GEMV: one resident grid when the pass is one token (its k
// buckets of one slot each: every block row works, evenly), eight when buckets of several tokens
// differ in size and many block rows (slots that do not start a bucket) exit at once, so the
// block scheduler balances the rest. H200, qwen3-30b-a3b decode of 8 sequences: 553 tok/s with
// one wave, 624 with two, 660 with four, 705 with eight, 680 with sixteen; one token: 282 with
// one, 276 with four to sixteen.
inline int grouped_gemv_waves(int max_count) { return max_count <= 1 ? 1 : 8; }

template <class W, bool kVector, int kMaxCount, int kRows>
__global__ void __launch_bounds__(kGemvWarpsPerBlock * kWarpSize) grouped_gemv_kernel(GroupedArgs<W> a) {
  kernel_prologue();
  int e = 0, begin = 0, count = 0;
  if (!gemv_bucket(a, e, begin, count)) return;
  static_assert(kMaxCount == 1 || kMaxCount == 2, "update the passes below");
  // The teams walk the row groups with a grid stride (the grid is at most what the device holds).
  GemvTeam team(a.g.team);
  for (int row0 = (blockIdx.x * team.per_block() + team.index) * kRows; row0 < a.g.out;
       row0 += gridDim.x * team.per_block() * kRows) {
    for (int done = 0; done < count; done += kMaxCount) {
      const int m = count - done < kMaxCount ? count - done : kMaxCount;
      const GemmArgs<W> b = expert_product(a, e, begin + done, m);
      if (m == 1) gemv_warp_rows<W, 1, kRows, kVector>(team, b, row0);
      else if constexpr (kMaxCount >= 2) gemv_warp_rows<W, 2, kRows, kVector>(team, b, row0);
    }
  }
}

template <class W, bool kVector, int kMaxCount, int kRows>
void launch_grouped_gemv(GroupedArgs<W> a, unsigned grid_y, int max_count) {
  a.g.team = gemv_team_warps<W>(a.g.in);
  const int rows_per_block = kGemvWarpsPerBlock / a.g.team * kRows;
  constexpr auto kernel = grouped_gemv_kernel<W, kVector || quant::q8dot::kGemvIntDot<W>, kMaxCount, kRows>;
  const dim3 grid(gemv_grid_x<kernel>((a.g.out + rows_per_block - 1) / rows_per_block, grid_y,
                                      grouped_gemv_waves(max_count)),
                  grid_y);
  cuda_detail::launch(kernel, grid, kGemvWarpsPerBlock * kWarpSize, 0, a);
}

// One slot per pass takes two rows per warp when a row is short (at most 2 KB: the down
// projection of a fine-grained expert, 768 bf16), so a lane has both rows' chunks in flight at
// once rather than 3 loads per turn.
template <class W, bool kVector>
void launch_grouped_gemv(const GroupedArgs<W>& a, unsigned grid_y, int max_count) {
  static_assert(kGroupedGemvMaxPass == 2, "update the variants below");
  const bool short_rows = FormatTraits<W>::row_bytes(static_cast<std::size_t>(a.g.in)) <= 2048;
  if (max_count <= 1 && !short_rows) launch_grouped_gemv<W, kVector, 1, kGroupedGemvRows<1>>(a, grid_y, max_count);
  else if (max_count <= 1) launch_grouped_gemv<W, kVector, 1, 2>(a, grid_y, max_count);
  else launch_grouped_gemv<W, kVector, 2, kGroupedGemvRows<2>>(a, grid_y, max_count);
}

// The gate/up products of a SwiGLU expert and the activation in one pass: act[s, i] =
// silu(x_s·G_e[i]) · (x_s·U_e[i]) for every slot s of expert e's bucket. One warp owns output i and
// reads row i of G_e and of U_e together (as the one-slot GEMV reads two rows of a short matrix),
// so the two sums are the grouped GEMV's bits and the product is swiglu's: bitwise the unfused
// gate, up and swiglu, without the [slots, 2f] intermediate or the swiglu launch. Buckets of any
// size, kMaxCount slots per pass over the rows (more slots: further passes, mostly from L2).
template <class W>
struct GroupedSwigluArgs {
  GroupedArgs<W> gate;  // x = xs, w = G_0, y = act, out = f
  const W* up = nullptr;
  std::size_t up_ld = 0, up_expert_stride = 0;  // up_expert_stride: bytes
};

template <class W, int kTokens, bool kVector>
__device__ __forceinline__ void swiglu_pair_rows(GemvTeam& team, const W* const (&w_rows)[2], const float* x,
                                                 std::size_t ld_x, const X8Rows& xq, int in, float* act,
                                                 std::size_t ld_act, int i) {
  float acc[2][kTokens];
  gemv_warp_dot_any<W, kTokens, 2, kVector>(team, w_rows, x, ld_x, xq, in, acc);
  if (!team.leader()) return;
  const int lane = threadIdx.x % kWarpSize;
#pragma unroll
  for (int t = 0; t < kTokens; ++t) {
    if (lane == t) act[t * ld_act + i] = __fmul_rn(silu_f32(acc[0][t]), acc[1][t]);
  }
}

template <class W, bool kVector, int kMaxCount>
__global__ void __launch_bounds__(kGemvWarpsPerBlock * kWarpSize) grouped_gemv_swiglu_kernel(GroupedSwigluArgs<W> p) {
  kernel_prologue();
  const GroupedArgs<W>& a = p.gate;
  int e = 0, begin = 0, count = 0;
  if (!gemv_bucket<W, true>(a, e, begin, count)) return;
  static_assert(kMaxCount == 1 || kMaxCount == 2, "update the passes below");
  const W* gate = expert_matrix(a.g.w, a.expert_stride, e);
  const W* up = expert_matrix(p.up, p.up_expert_stride, e);
  GemvTeam team(a.g.team);
  for (int i = blockIdx.x * team.per_block() + team.index; i < a.g.out; i += gridDim.x * team.per_block()) {
    const W* w_rows[2] = {gate + static_cast<std::size_t>(i) * a.g.ld_w, up + static_cast<std::size_t>(i) * p.up_ld};
    for (int done = 0; done < count; done += kMaxCount) {
      const std::size_t s0 = static_cast<std::size_t>(begin + done);
      const float* x = a.g.x + s0 * a.g.ld_x;
      float* act = a.g.y + s0 * a.g.ld_y;
      X8Rows xq = a.g.xq;
      if (xq.q != nullptr) xq.q += s0 * xq.ld_q, xq.s += 2 * s0 * xq.ld_s;
      if (kMaxCount == 1 || count - done == 1) swiglu_pair_rows<W, 1, kVector>(team, w_rows, x, a.g.ld_x, xq, a.g.in, act, a.g.ld_y, i);
      else if constexpr (kMaxCount >= 2) swiglu_pair_rows<W, 2, kVector>(team, w_rows, x, a.g.ld_x, xq, a.g.in, act, a.g.ld_y, i);
    }
  }
}

// y = x·W (W [in, out]), small buckets. Grid: (ceil(out / 64), slots or n_experts); 16 warps.
template <class W, bool kVector>
__global__ void __launch_bounds__(kGemvInOutWarps * kWarpSize) grouped_gemv_in_out_kernel(GroupedArgs<W> a) {
  kernel_prologue();
  __shared__ float partial[kGemvInOutWarps * kGemvMaxTokens * kGemvInOutCols];
  int e = 0, begin = 0, count = 0;
  if (!gemv_bucket(a, e, begin, count)) return;  // uniform over the block: before any barrier
  const GemmArgs<W> b = expert_product(a, e, begin, count);
  const int col0 = blockIdx.x * kGemvInOutCols;
  switch (count) {
    case 1: gemv_in_out_block<W, 1, kVector>(b, col0, partial); break;
    case 2: gemv_in_out_block<W, 2, kVector>(b, col0, partial); break;
    case 3: gemv_in_out_block<W, 3, kVector>(b, col0, partial); break;
    case 4: gemv_in_out_block<W, 4, kVector>(b, col0, partial); break;
    case 5: gemv_in_out_block<W, 5, kVector>(b, col0, partial); break;
    case 6: gemv_in_out_block<W, 6, kVector>(b, col0, partial); break;
    case 7: gemv_in_out_block<W, 7, kVector>(b, col0, partial); break;
    default: gemv_in_out_block<W, 8, kVector>(b, col0, partial); break;
  }
}

// The (expert, row tile) of tile number `tile` among the tiles of buckets with >= min_tiled slots
// (in expert order, kTileM rows each), or expert -1 past the end. Warp 0 scans the bucket sizes
// 32 experts at a time; the result is broadcast through shared memory. All threads must call it.
template <class W, int kTileM>
__device__ __forceinline__ void find_tile(const GroupedArgs<W>& a, int tile, int& expert, int& m_tile) {
  __shared__ int s_expert, s_m_tile;
  const int lane = threadIdx.x % kWarpSize;
  const int slots = a.g.n_tokens;
  if (threadIdx.x < kWarpSize) {
    int found = -1, m = 0, base = 0;
    for (int e0 = 0; e0 < a.n_experts; e0 += kWarpSize) {
      const int e = e0 + lane;
      int tiles = 0;
      if (e < a.n_experts) {
        const int c = bucket_offset(a.offsets, a.offsets_stride, e + 1, slots) -
                      bucket_offset(a.offsets, a.offsets_stride, e, slots);
        tiles = c >= a.min_tiled && c > 0 ? (c + kTileM - 1) / kTileM : 0;
      }
      int inc = tiles;
#pragma unroll
      for (int o = 1; o < kWarpSize; o *= 2) {
        const int v = __shfl_up_sync(0xffffffffu, inc, o);
        if (lane >= o) inc += v;
      }
      const int exc = inc - tiles;
      const unsigned hit = __ballot_sync(0xffffffffu, tile >= base + exc && tile < base + inc);
      if (hit != 0) {
        const int src = __ffs(hit) - 1;
        found = __shfl_sync(0xffffffffu, e, src);
        m = tile - base - __shfl_sync(0xffffffffu, exc, src);
        break;
      }
      base += __shfl_sync(0xffffffffu, inc, kWarpSize - 1);
    }
    if (lane == 0) s_expert = found, s_m_tile = m;
  }
  __syncthreads();
  expert = s_expert, m_tile = s_m_tile;
}

// Tiled GEMM over the large buckets, kTileM slots a tile. Grid: (ceil(out / tile N), upper bound
// of the tiles).
template <class W, bool kInOut, bool kAligned, int kTileM>
__global__ void __launch_bounds__(kMmaThreads) grouped_mma_kernel(GroupedArgs<W> a) {
  kernel_prologue();
  int e = 0, m_tile = 0;
  find_tile<W, kTileM>(a, blockIdx.y, e, m_tile);
  if (e < 0) return;  // uniform over the block
  const int slots = a.g.n_tokens;
  const int begin = bucket_offset(a.offsets, a.offsets_stride, e, slots);
  const int count = bucket_offset(a.offsets, a.offsets_stride, e + 1, slots) - begin;
  mma_gemm_tile<W, kInOut, kAligned, kTileM>(expert_product(a, e, begin, count), m_tile * kTileM,
                                             blockIdx.x * kMmaTileN);
}

// MOE_CUDA_GROUPED_TILE_M=32, 64 or 128 fixes the grouped GEMM's tile height (A/B runs); unset:
// grouped_tile_m's rule. Read once per process.
inline int grouped_tile_override() {
  static const int forced = tile_rows_from_env("MOE_CUDA_GROUPED_TILE_M");
  return forced;
}

// Slots per tile of the grouped tensor-core GEMM: from the mean bucket of the pass (the host does
// not see the buckets): 32 up to 16 slots an expert, 64 up to 64, else 128. A bucket larger than
// its tile takes several, each decoding the expert's W tile again; a smaller one leaves rows of
// its tile empty (their MMAs wasted). The results do not depend on the choice (mma_gemm_tile).
// Not yet measured on a GPU (2026-12-08): the thresholds are a first guess.
template <class W>
int grouped_tile_m(const GroupedArgs<W>& a) {
  if (a.g.mma_tile_m != 0) return a.g.mma_tile_m;
  if (const int forced = grouped_tile_override(); forced != 0) return forced;
  const int mean = a.g.n_tokens / std::max(a.n_experts, 1);
  return mean <= 16 ? 32 : (mean <= 64 ? 64 : 128);
}

template <class W, bool kInOut, bool kAligned, class TileBound>
void launch_grouped_mma(const GroupedArgs<W>& a, unsigned n_tiles_x, int tile_m, const TileBound& tile_bound) {
  const auto go = [&]<int kTileM>() {
    const dim3 grid(n_tiles_x, tile_bound(kTileM));
    cuda_detail::launch(grouped_mma_kernel<W, kInOut, kAligned, kTileM>, grid, kMmaThreads, 0, a);
  };
  if (tile_m == 32) go.template operator()<32>();
  else if (tile_m == 64) go.template operator()<64>();
  else go.template operator()<128>();
}

template <class W, bool kInOut>
__global__ void __launch_bounds__(kGemmThreads) grouped_gemm_f32_kernel(GroupedArgs<W> a) {
  kernel_prologue();
  int e = 0, m_tile = 0;
  find_tile<W, kTileTokens>(a, blockIdx.y, e, m_tile);
  if (e < 0) return;
  const int slots = a.g.n_tokens;
  const int begin = bucket_offset(a.offsets, a.offsets_stride, e, slots);
  const int count = bucket_offset(a.offsets, a.offsets_stride, e + 1, slots) - begin;
  gemm_f32_tile<W, kInOut>(expert_product(a, e, begin, count), m_tile * kTileTokens, blockIdx.x * kTileOut);
}

// y[r, :] += bias of r's expert.
template <class W>
struct GroupedBiasOp {
  Strided2<float> y;
  const W* bias;
  std::size_t bias_stride, expert_stride;  // expert_stride: bytes
  const std::int32_t* offsets;
  std::size_t offsets_stride;
  int n_experts, slots;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    const int e = expert_of_slot(offsets, offsets_stride, n_experts, slots, static_cast<int>(r));
    const W* b = expert_matrix(bias, expert_stride, e);
    y(r, i) = __fadd_rn(y(r, i), load_as_float(b, i * bias_stride));
  }
};

// An expert stride in bytes, checked: every expert's rows must start as aligned as the kernels
// read them (the element size; a block format's run alignment).
template <class W>
std::size_t checked_expert_stride(std::size_t bytes, const char* op) {
  constexpr std::size_t kAlign = is_block_format_v<W> ? kRunAlignment<W> : sizeof(W);
  require(bytes % kAlign == 0, ErrorCode::kInvalidArgument,
          "kernels::{}(cuda): expert stride of {} bytes breaks the {}-byte alignment of {} rows", op, bytes, kAlign,
          FormatTraits<W>::name);
  return bytes;
}

// max_bucket: an upper bound of the bucket sizes the caller knows (0: none).
template <class W>
void grouped_dispatch(GroupedArgs<W> a, bool in_out, index_t max_bucket) {
  const int slots = a.g.n_tokens;
  if (slots == 0 || a.g.out == 0 || a.n_experts == 0) return;
  const std::size_t stride_bytes = a.expert_stride;
  // Small buckets: the GEMV (every bucket when slots <= kGemvMaxTokens).
  a.by_expert = slots >= a.n_experts;
  const unsigned grid_y = static_cast<unsigned>(a.by_expert ? a.n_experts : slots);
  require(grid_y <= 65535u, ErrorCode::kInvalidArgument, "kernels::grouped_matmul(cuda): {} slots and {} experts",
          slots, a.n_experts);
  if (!in_out) {
    const X8Activations x8 = attach_x8(a.g);  // every slot's row (only the small buckets' are read)
    const bool vector = gemv_vector_loads(a.g) && (a.n_experts <= 1 || stride_bytes % 16 == 0);
    const index_t bound = std::min<index_t>(slots, max_bucket > 0 ? max_bucket : kGemvMaxTokens);
    const int max_count = static_cast<int>(std::min<index_t>(bound, kGemvMaxTokens));
    if (vector) launch_grouped_gemv<W, true>(a, grid_y, max_count);
    else launch_grouped_gemv<W, false>(a, grid_y, max_count);
    ::moe::cuda::check_launch("grouped_gemv_kernel");
  } else {
    const bool pairs = gemv_in_out_pair_loads(a.g) && (a.n_experts <= 1 || stride_bytes % (2 * sizeof(W)) == 0);
    const dim3 grid((a.g.out + kGemvInOutCols - 1) / kGemvInOutCols, grid_y);
    if (pairs) cuda_detail::launch(grouped_gemv_in_out_kernel<W, true>, grid, kGemvInOutWarps * kWarpSize, 0, a);
    else cuda_detail::launch(grouped_gemv_in_out_kernel<W, false>, grid, kGemvInOutWarps * kWarpSize, 0, a);
    ::moe::cuda::check_launch("grouped_gemv_in_out_kernel");
  }
  if (slots <= kGemvMaxTokens) return;

  // Large buckets: the tiled GEMMs over an upper bound of their tiles (sum of ceil(c / tile) over
  // buckets of more than kGemvMaxTokens slots <= slots / tile + their number).
  a.min_tiled = kGemvMaxTokens + 1;
  const auto tile_bound = [&](int tile_m) {
    const std::size_t bound = static_cast<std::size_t>(slots + tile_m - 1) / tile_m +
                              std::min<std::size_t>(a.n_experts, static_cast<std::size_t>(slots) / a.min_tiled);
    require(bound <= 65535u, ErrorCode::kInvalidArgument, "kernels::grouped_matmul(cuda): {} slots exceed the grid",
            slots);
    return static_cast<unsigned>(bound);
  };
  if constexpr (std::is_same_v<W, float>) {
    const dim3 grid((a.g.out + kTileOut - 1) / kTileOut, tile_bound(kTileTokens));
    if (in_out) cuda_detail::launch(grouped_gemm_f32_kernel<W, true>, grid, kGemmThreads, 0, a);
    else cuda_detail::launch(grouped_gemm_f32_kernel<W, false>, grid, kGemmThreads, 0, a);
    ::moe::cuda::check_launch("grouped_gemm_f32_kernel");
  } else {
    const auto n_tiles_x = static_cast<unsigned>((a.g.out + kMmaTileN - 1) / kMmaTileN);
    const int tile_m = grouped_tile_m(a);
    const bool aligned = rows_aligned_16(a.g, in_out) && (a.n_experts <= 1 || stride_bytes % 16 == 0);
    if (in_out) {
      if (aligned) launch_grouped_mma<W, true, true>(a, n_tiles_x, tile_m, tile_bound);
      else launch_grouped_mma<W, true, false>(a, n_tiles_x, tile_m, tile_bound);
    } else {
      if (aligned) launch_grouped_mma<W, false, true>(a, n_tiles_x, tile_m, tile_bound);
      else launch_grouped_mma<W, false, false>(a, n_tiles_x, tile_m, tile_bound);
    }
    ::moe::cuda::check_launch("grouped_mma_kernel");
  }
}

template <class W>
GroupedArgs<W> grouped_args(DeviceView<const float, 2> xs, DeviceView<const W, 2> w0, std::size_t stride_bytes,
                            DeviceView<const std::int32_t, 1> offsets, DeviceView<float, 2> ys, bool in_out,
                            const char* op) {
  require(offsets.extent(0) >= 2, ErrorCode::kInvalidArgument, "kernels::{}(cuda): {} offsets (need n_experts + 1)",
          op, offsets.extent(0));
  require_int_range(offsets.extent(0), op, "n_experts");
  GroupedArgs<W> a;
  a.g = gemm_args(xs, w0, ys, in_out, op);
  a.expert_stride = checked_expert_stride<W>(stride_bytes, op);
  a.offsets = offsets.data();
  a.offsets_stride = offsets.stride(0);
  a.n_experts = static_cast<int>(offsets.extent(0) - 1);
  return a;
}

}  // namespace cuda_detail

// ys[offsets[e], offsets[e+1]) = xs[offsets[e], offsets[e+1]) · W_eᵀ for every expert e, where
// W_e is w0's [out, in] view moved by e · expert_stride_bytes. xs [slots, in], ys [slots, out]
// f32; W float, bf16, f16 or a block format; offsets [n_experts + 1] int32; all in device memory, inner strides 1.
// Asynchronous, no host synchronization, no allocation. Throws kInvalidArgument on mismatched
// shapes, kDevice if a launch fails.
// max_bucket (optional, 0: unknown): the most slots any bucket can hold, e.g. the number of
// tokens of the pass (a token's choices are distinct experts); 1 picks the decode GEMV's one-slot
// variant. A bucket bigger than it is still computed correctly, only slower.
template <class W>
void grouped_matmul(backend::cuda, DeviceView<const float, 2> xs, DeviceView<const W, 2> w0,
                    std::size_t expert_stride_bytes, DeviceView<const std::int32_t, 1> offsets, DeviceView<float, 2> ys,
                    index_t max_bucket = 0) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_matmul(xs, w0, ys, "grouped_matmul");
    cuda_detail::grouped_dispatch(
        cuda_detail::grouped_args(xs, w0, expert_stride_bytes, offsets, ys, false, "grouped_matmul"), false,
        max_bucket);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::grouped_matmul is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16)");
  }
}

// act[offsets[e], offsets[e+1]) = silu(xs·G_eᵀ) · (xs·U_eᵀ) per bucket, where G_e and U_e are
// gate0's and up0's [f, in] views moved by e · their expert strides in bytes (the two halves of a
// fused [2f, in] gate_up bank, or separate gate and up banks): the decode step of a SwiGLU expert
// bank in one launch, bitwise grouped_matmul of each followed by swiglu. xs [slots, in], act
// [slots, f] f32, device memory; buckets of any size (written for decode: a pass over the rows
// serves at most two slots; a prefill-sized bucket takes grouped_matmul's tiled GEMM instead).
// max_bucket as for grouped_matmul.
template <class W>
void grouped_matmul_swiglu(backend::cuda, DeviceView<const float, 2> xs, DeviceView<const W, 2> gate0,
                           std::size_t gate_stride_bytes, DeviceView<const W, 2> up0, std::size_t up_stride_bytes,
                           DeviceView<const std::int32_t, 1> offsets, DeviceView<float, 2> act, index_t max_bucket = 0) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    namespace cd = cuda_detail;
    detail::check_matmul(xs, gate0, act, "grouped_matmul_swiglu");
    require(up0.extent(0) == gate0.extent(0) && up0.extent(1) == gate0.extent(1), ErrorCode::kInvalidArgument,
            "grouped_matmul_swiglu: gate [{}, {}] and up [{}, {}] differ", gate0.extent(0), gate0.extent(1),
            up0.extent(0), up0.extent(1));
    cd::require_unit_inner_stride(up0, "grouped_matmul_swiglu", "up");
    cd::require_run_alignment(up0, "grouped_matmul_swiglu");
    cd::GroupedSwigluArgs<W> p;
    p.gate = cd::grouped_args(xs, gate0, gate_stride_bytes, offsets, act, false, "grouped_matmul_swiglu");
    p.up = up0.data(), p.up_ld = static_cast<std::size_t>(up0.stride(0));
    p.up_expert_stride = cd::checked_expert_stride<W>(up_stride_bytes, "grouped_matmul_swiglu");
    cd::GroupedArgs<W>& a = p.gate;
    const int slots = a.g.n_tokens;
    if (slots == 0 || a.g.out == 0) return;
    a.by_expert = slots >= a.n_experts;
    const unsigned grid_y = static_cast<unsigned>(a.by_expert ? a.n_experts : slots);
    require(grid_y <= 65535u, ErrorCode::kInvalidArgument, "grouped_matmul_swiglu(cuda): {} slots and {} experts",
            slots, a.n_experts);
    const cd::X8Activations x8 = cd::attach_x8(a.g);
    cd::GemmArgs<W> up_args = a.g;
    up_args.w = p.up, up_args.ld_w = p.up_ld;
    const bool vector = cd::gemv_vector_loads(a.g) && cd::gemv_vector_loads(up_args) &&
                        (a.n_experts <= 1 || (gate_stride_bytes % 16 == 0 && up_stride_bytes % 16 == 0));
    const bool one = std::min<index_t>(slots, max_bucket > 0 ? max_bucket : slots) <= 1;
    a.g.team = cd::gemv_team_warps<W>(a.g.in);
    const auto go = [&]<bool kVector, int kMaxCount>() {
      constexpr auto kernel = cd::grouped_gemv_swiglu_kernel<W, kVector || quant::q8dot::kGemvIntDot<W>, kMaxCount>;
      const int teams = cd::kGemvWarpsPerBlock / a.g.team;
      const long long needed = (a.g.out + teams - 1) / teams;
      const dim3 grid(cd::gemv_grid_x<kernel>(needed, grid_y, cd::grouped_gemv_waves(kMaxCount)), grid_y);
      cd::launch(kernel, grid, cd::kGemvWarpsPerBlock * cd::kWarpSize, 0, p);
    };
    if (vector && one) go.template operator()<true, 1>();
    else if (vector) go.template operator()<true, 2>();
    else if (one) go.template operator()<false, 1>();
    else go.template operator()<false, 2>();
    ::moe::cuda::check_launch("grouped_gemv_swiglu_kernel");
  } else {
    static_assert(dependent_false<W>, "kernels::grouped_matmul_swiglu is not implemented for backend::cuda with this "
                                      "weight type (implemented: float, bf16, f16)");
  }
}

// The same for input-major weights: w0 [in, out], ys = xs · W_e per bucket.
template <class W>
void grouped_matmul_in_out(backend::cuda, DeviceView<const float, 2> xs, DeviceView<const W, 2> w0,
                           std::size_t expert_stride_bytes, DeviceView<const std::int32_t, 1> offsets,
                           DeviceView<float, 2> ys) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    detail::check_matmul_in_out(xs, w0, ys, "grouped_matmul_in_out");
    cuda_detail::grouped_dispatch(
        cuda_detail::grouped_args(xs, w0, expert_stride_bytes, offsets, ys, true, "grouped_matmul_in_out"), true, 0);
  } else {
    static_assert(dependent_false<W>,
                  "kernels::grouped_matmul_in_out is not implemented for backend::cuda with this weight type "
                  "(implemented: float, bf16, f16)");
  }
}

// ys[r, :] += bias_e for every slot r of expert e's bucket; bias_e is bias0 moved by
// e · expert_stride_bytes. ys [slots, d] f32, bias0 [d].
template <class W>
void grouped_add_bias(backend::cuda, DeviceView<float, 2> ys, DeviceView<const W, 1> bias0,
                      std::size_t expert_stride_bytes, DeviceView<const std::int32_t, 1> offsets) {
  if constexpr (cuda_detail::is_cuda_weight_v<W>) {
    require(bias0.extent(0) == ys.extent(1) && offsets.extent(0) >= 2, ErrorCode::kInvalidArgument,
            "grouped_add_bias: bias of {} for rows of {}, {} offsets", bias0.extent(0), ys.extent(1),
            offsets.extent(0));
    cuda_detail::require_int_range(ys.extent(0), "grouped_add_bias", "slots");
    cuda_detail::require_int_range(offsets.extent(0), "grouped_add_bias", "n_experts");
    cuda_detail::GroupedBiasOp<W> op{cuda_detail::strided(ys),
                                     bias0.data(),
                                     bias0.stride(0),
                                     cuda_detail::checked_expert_stride<W>(expert_stride_bytes, "grouped_add_bias"),
                                     offsets.data(),
                                     offsets.stride(0),
                                     static_cast<int>(offsets.extent(0) - 1),
                                     static_cast<int>(ys.extent(0))};
    cuda_detail::launch_rows(op, ys.extent(0), ys.extent(1), "grouped_add_bias");
  } else {
    static_assert(dependent_false<W>, "kernels::grouped_add_bias is not implemented for backend::cuda with this "
                                      "weight type (implemented: float, bf16, f16)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
