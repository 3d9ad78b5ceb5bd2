// Causal attention over one sequence's KV cache on backend::cuda: GQA/MQA attention with an
// optional sliding window and per-head sinks (GPT-OSS), and MLA's latent attention in the
// weight-absorbed form (DeepSeek-V2/V3), both through one kernel.
//
// A block owns one (query token, query head) and a contiguous share of its visible keys; its
// warps take keys round-robin, four keys per warp step: the lanes split the q·k dot products
// (coalesced rows of the cache), butterflies give every lane the scores, and each lane keeps an
// online softmax (running max m, sum l) and its slice of the value accumulator. The warps' states
// are merged in shared memory in a fixed order. For decode (few tokens x heads, long contexts)
// the keys are also split across the blocks of a thread-block cluster (flash-decoding; sm_90+),
// which merge their states through distributed shared memory, so one query uses up to 8 SMs and
// nothing is written to global scratch. All merges are in a fixed order: results are
// deterministic.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/cache.hpp"

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kAttnWarps = 8;
inline constexpr int kAttnKeysPerStep = 4;  // keys a warp scores together
inline constexpr int kAttnMaxVPerLane = 16;  // value width up to 512 (MLA's kv_lora_rank)
inline constexpr int kAttnMaxSplits = 8;     // portable cluster size
inline constexpr int kAttnKeysPerSplit = 256;

struct AttnArgs {
  // score(j) = scale · (qa·ka_j + qb·kb_j); value(j) = v_j. Query pointers are per (token, head):
  // q + t·ld + h·head_stride; key/value pointers per kv head: k + j·ld + kvh·group_stride.
  const float* qa;
  std::size_t ld_qa, head_qa;
  const float* qb;
  std::size_t ld_qb, head_qb;
  const float* ka;
  std::size_t ld_ka, group_ka;
  const float* kb;
  std::size_t ld_kb, group_kb;
  const float* v;
  std::size_t ld_v, group_v;
  float* out;
  std::size_t ld_out, head_out;
  const float* sinks;  // [n_heads] (stride sinks_stride) or null
  std::size_t sinks_stride;
  int da, db, dv;
  int group;  // query heads per kv head
  std::size_t start, window;
  std::size_t chunk;  // Llama 4 chunked attention (0: none)
  float scale;
  int splits;  // blocks (cluster ranks) per query
  // Pass-wide form (kernels/reference/cache.hpp): when `slots` is set, query row t belongs to
  // slots[token_slot[t]], whose cache of this layer replaces ka/kb/v (an MLA layer's latent is
  // both ka and v, its rope keys kb) and whose start gives the row's position.
  const CacheSlot* slots;
  const std::int32_t* token_slot;
  int n_slots;
  std::size_t layer_offset, key_width, value_width;
  bool latent;
};

// The first key query position `pos` sees: kernels::first_visible_key (window and chunk bounds).
__device__ __forceinline__ std::size_t first_key(const AttnArgs& a, std::size_t pos) {
  std::size_t lo = a.window > 0 && pos + 1 > a.window ? pos + 1 - a.window : 0;
  if (a.chunk > 0) {
    const std::size_t c = pos - pos % a.chunk;
    lo = c > lo ? c : lo;
  }
  return lo;
}

// Points `a` at the cache of slot s (its layer's keys and values, its start).
__device__ __forceinline__ void bind_cache(AttnArgs& a, const CacheSlot* s) {
  a.start = static_cast<std::size_t>(s->start);
  const std::size_t cap = static_cast<std::size_t>(s->capacity);
  const float* keys = s->data + cap * a.layer_offset;
  const float* values = keys + cap * a.key_width;
  a.ka = keys, a.ld_ka = a.key_width;
  if (a.latent) {
    a.kb = values, a.ld_kb = a.value_width;
    a.v = keys, a.ld_v = a.key_width;
  } else {
    a.v = values, a.ld_v = a.value_width;
  }
}

__device__ __forceinline__ bool slot_valid(const CacheSlot* s) {
  return s->row0 >= 0 && s->n > 0 && s->start >= 0 && s->start + s->n <= s->capacity;
}

// Points `a` at row t's own cache; false (and NaN outputs) for a row whose slot is not valid.
__device__ __forceinline__ bool bind_slot(AttnArgs& a, std::size_t t, std::size_t& rel) {
  rel = t;
  if (a.slots == nullptr) return true;
  const int i = a.token_slot[t];
  const CacheSlot* s = i >= 0 && i < a.n_slots ? a.slots + i : nullptr;
  if (s == nullptr || !slot_valid(s) || t < static_cast<std::size_t>(s->row0) ||
      t >= static_cast<std::size_t>(s->row0) + s->n) {
    return false;
  }
  rel = t - static_cast<std::size_t>(s->row0);
  bind_cache(a, s);
  return true;
}

static __global__ void __launch_bounds__(kAttnWarps * kWarpSize) attention_kernel(AttnArgs a) {
  kernel_prologue();
  extern __shared__ float smem[];
  float* q_s = smem;                                  // [da + db]
  float* warp_ml = q_s + a.da + a.db;                 // [kAttnWarps][2]
  float* warp_acc = warp_ml + 2 * kAttnWarps;         // [kAttnWarps][dv]
  float* block_state = warp_acc + kAttnWarps * a.dv;  // [2 + dv]: m, l, acc

  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int split = blockIdx.x, h = blockIdx.y;
  const std::size_t t = blockIdx.z;
  const int kvh = h / a.group;
  std::size_t rel = t;
  if (!bind_slot(a, t, rel)) {  // uniform over the cluster: before any barrier
    if (split == 0) {
      for (int d = threadIdx.x; d < a.dv; d += blockDim.x) a.out[t * a.ld_out + h * a.head_out + d] = __int_as_float(0x7fc00000);
    }
    return;
  }
  const std::size_t pos = a.start + rel;
  const std::size_t lo = first_key(a, pos);
  const std::size_t hi = pos + 1;
  const std::size_t chunk = (hi - lo + a.splits - 1) / a.splits;
  const std::size_t b_lo = lo + split * chunk < hi ? lo + split * chunk : hi;
  const std::size_t b_hi = b_lo + chunk < hi ? b_lo + chunk : hi;

  const float* qa = a.qa + t * a.ld_qa + h * a.head_qa;
  const float* qb = a.db > 0 ? a.qb + t * a.ld_qb + h * a.head_qb : nullptr;
  for (int d = threadIdx.x; d < a.da; d += blockDim.x) q_s[d] = qa[d];
  for (int d = threadIdx.x; d < a.db; d += blockDim.x) q_s[a.da + d] = qb[d];
  __syncthreads();

  const float* ka = a.ka + kvh * a.group_ka;
  const float* kb = a.db > 0 ? a.kb + kvh * a.group_kb : nullptr;
  const float* vv = a.v + kvh * a.group_v;

  float m = -INFINITY, l = 0.0f;
  float acc[kAttnMaxVPerLane];
#pragma unroll
  for (int i = 0; i < kAttnMaxVPerLane; ++i) acc[i] = 0.0f;

  // kAttnKeysPerStep keys per warp step, their loads interleaved (memory-level parallelism: one
  // key at a time leaves each warp waiting on a chain of dependent loads and reductions).
  constexpr int kU = kAttnKeysPerStep;
  for (std::size_t j0 = b_lo + static_cast<std::size_t>(warp) * kU; j0 < b_hi; j0 += kAttnWarps * kU) {
    const float* kr[kU];
    const float* kr2[kU];
    const float* vr[kU];
    bool valid[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      valid[u] = j0 + u < b_hi;
      const std::size_t j = valid[u] ? j0 + u : j0;  // past the range: re-read key j0, masked below
      kr[u] = ka + j * a.ld_ka;
      kr2[u] = a.db > 0 ? kb + j * a.ld_kb : nullptr;
      vr[u] = vv + j * a.ld_v;
    }
    float dot[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) dot[u] = 0.0f;
#pragma unroll 2
    for (int d = lane; d < a.da; d += kWarpSize) {
      const float qd = q_s[d];
#pragma unroll
      for (int u = 0; u < kU; ++u) dot[u] = fmaf(qd, __ldg(kr[u] + d), dot[u]);
    }
    for (int d = lane; d < a.db; d += kWarpSize) {
      const float qd = q_s[a.da + d];
#pragma unroll
      for (int u = 0; u < kU; ++u) dot[u] = fmaf(qd, __ldg(kr2[u] + d), dot[u]);
    }
    float s[kU];
    float s_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      s[u] = valid[u] ? warp_sum(dot[u]) * a.scale : -INFINITY;
      s_max = fmaxf(s_max, s[u]);
    }
    if (s_max > m) {  // warp-uniform: every lane holds the same scores and m
      const float rescale = m == -INFINITY ? 0.0f : expf(m - s_max);
      l *= rescale;
#pragma unroll
      for (int i = 0; i < kAttnMaxVPerLane; ++i) acc[i] *= rescale;
      m = s_max;
    }
    if (m == -INFINITY) continue;  // only -inf scores so far: they contribute exp(-inf) = 0
    float p[kU];
#pragma unroll
    for (int u = 0; u < kU; ++u) {
      p[u] = valid[u] ? expf(s[u] - m) : 0.0f;
      l += p[u];
    }
#pragma unroll
    for (int i = 0; i < kAttnMaxVPerLane; ++i) {
      const int d = lane + i * kWarpSize;
      if (d < a.dv) {
#pragma unroll
        for (int u = 0; u < kU; ++u) acc[i] = fmaf(p[u], __ldg(vr[u] + d), acc[i]);
      }
    }
  }

  // Merge the warps (fixed order) into block_state.
  if (lane == 0) {
    warp_ml[2 * warp] = m;
    warp_ml[2 * warp + 1] = l;
  }
#pragma unroll
  for (int i = 0; i < kAttnMaxVPerLane; ++i) {
    const int d = lane + i * kWarpSize;
    if (d < a.dv) warp_acc[warp * a.dv + d] = acc[i];
  }
  __syncthreads();
  float bm = -INFINITY;
  for (int w = 0; w < kAttnWarps; ++w) bm = fmaxf(bm, warp_ml[2 * w]);
  float f[kAttnWarps];
  float bl = 0.0f;
  for (int w = 0; w < kAttnWarps; ++w) {
    f[w] = warp_ml[2 * w] == -INFINITY ? 0.0f : expf(warp_ml[2 * w] - bm);
    bl += warp_ml[2 * w + 1] * f[w];
  }
  for (int d = threadIdx.x; d < a.dv; d += blockDim.x) {
    float s = 0.0f;
    for (int w = 0; w < kAttnWarps; ++w) s += warp_acc[w * a.dv + d] * f[w];
    block_state[2 + d] = s;
  }
  if (threadIdx.x == 0) {
    block_state[0] = bm;
    block_state[1] = bl;
  }

  // Merge the blocks of the cluster (rank 0 collects), then the sink, and write the output.
  float* out = a.out + t * a.ld_out + h * a.head_out;
  const bool has_sink = a.sinks != nullptr;
  const float sink = has_sink ? a.sinks[h * a.sinks_stride] : 0.0f;
  if (a.splits == 1) {
    __syncthreads();
    const float m_all = has_sink ? fmaxf(block_state[0], sink) : block_state[0];
    const float fb = block_state[0] == -INFINITY ? 0.0f : expf(block_state[0] - m_all);
    const float l_all = block_state[1] * fb + (has_sink ? expf(sink - m_all) : 0.0f);
    const float inv = l_all > 0.0f ? 1.0f / l_all : 0.0f;
    for (int d = threadIdx.x; d < a.dv; d += blockDim.x) out[d] = block_state[2 + d] * fb * inv;
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every block's state is in its shared memory
  if (cluster.block_rank() == 0) {
    const int n = a.splits;
    float m_all = has_sink ? sink : -INFINITY;
    for (int r = 0; r < n; ++r) m_all = fmaxf(m_all, cluster.map_shared_rank(block_state, r)[0]);
    float l_all = has_sink && m_all != -INFINITY ? expf(sink - m_all) : 0.0f;
    for (int r = 0; r < n; ++r) {
      const float* st = cluster.map_shared_rank(block_state, r);
      if (st[0] != -INFINITY) l_all += st[1] * expf(st[0] - m_all);
    }
    const float inv = l_all > 0.0f ? 1.0f / l_all : 0.0f;
    for (int d = threadIdx.x; d < a.dv; d += blockDim.x) {
      float s = 0.0f;
      for (int r = 0; r < n; ++r) {
        const float* st = cluster.map_shared_rank(block_state, r);
        if (st[0] != -INFINITY) s += st[2 + d] * expf(st[0] - m_all);
      }
      out[d] = s * inv;
    }
  }
  cluster.sync();  // keep every block's shared memory alive until rank 0 has read it
#endif
}

// ---- prefill: query tiles (flash attention on the CUDA cores) ---------------------------------
//
// For passes with many rows per sequence the per-(row, head) kernel above re-reads every key for
// every query. Here a block owns a tile of kBq consecutive rows of one sequence and one head: the
// tile's queries stay in shared memory while the visible keys stream through in tiles of
// kFlashKeys (keys and values loaded once per query tile), scores as register micro-tiles, an
// online softmax per row (running max and sum, one warp per row), and the output accumulated in
// registers. f32 throughout, like the reference; the rows of a tile are causal-masked (and
// windowed) individually. kBq = 64 for heads up to 128 wide, 16 for wider ones (MLA's 576/512).
inline constexpr int kFlashKeys = 32;
inline constexpr int kFlashThreads = 128;  // 16 row groups x 8 column groups
inline constexpr int kFlashOut = 64;       // output registers per thread (rows x columns)

template <int kBq>
struct FlashTile {
  static constexpr int kRows = kBq / 16;             // rows per thread
  static constexpr int kKeys = kFlashKeys / 8;       // scores per thread per row
  static constexpr int kCols = kFlashOut / kRows;    // output columns per thread
  static constexpr int kMaxV = kCols * 8;            // widest value row
};

// Floats of shared memory the tile kernel needs.
inline std::size_t flash_smem_floats(int bq, int d, int dv, bool v_is_k) {
  const std::size_t ld = static_cast<std::size_t>(d) + 1;
  return bq * ld + kFlashKeys * ld + (v_is_k ? 0 : kFlashKeys * (static_cast<std::size_t>(dv) + 1)) +
         static_cast<std::size_t>(bq) * (kFlashKeys + 1) + 3 * static_cast<std::size_t>(bq);
}

template <int kBq>
__global__ void __launch_bounds__(kFlashThreads) flash_attention_kernel(AttnArgs a, int n_rows, bool v_is_k) {
  kernel_prologue();
  using T = FlashTile<kBq>;
  extern __shared__ float smem[];
  const int D = a.da + a.db, Dv = a.dv, ld = D + 1, ldp = kFlashKeys + 1;
  const int ldv = v_is_k ? ld : Dv + 1;
  float* q_s = smem;                                       // [kBq][ld]
  float* k_s = q_s + kBq * ld;                             // [keys][ld]
  float* v_s = v_is_k ? k_s : k_s + kFlashKeys * ld;       // [keys][ldv]
  float* p_s = v_is_k ? k_s + kFlashKeys * ld : v_s + kFlashKeys * ldv;  // [kBq][ldp]
  float* m_s = p_s + kBq * ldp;
  float* l_s = m_s + kBq;
  float* alpha_s = l_s + kBq;
  const int tid = threadIdx.x, tr = tid / 8, tc = tid % 8;
  const int lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int h = blockIdx.y;

  // This block's rows [r0, r1) of one sequence whose row r0 sits at position p0.
  int tile = blockIdx.x, r0 = 0, r1 = 0;
  std::size_t p0 = 0;
  if (a.slots != nullptr) {
    const CacheSlot* found = nullptr;
    for (int i = 0; i < a.n_slots && found == nullptr; ++i) {
      const CacheSlot* s = a.slots + i;
      const int tiles = s->n > 0 ? (s->n + kBq - 1) / kBq : 0;
      if (tile < tiles) found = s;
      else tile -= tiles;
    }
    if (found == nullptr) return;  // past the last tile (uniform over the block)
    if (!slot_valid(found)) {
      for (int r = found->row0 + tile * kBq; r < found->row0 + found->n && r < found->row0 + (tile + 1) * kBq; ++r) {
        for (int c = tid; c < Dv; c += blockDim.x) a.out[r * a.ld_out + h * a.head_out + c] = __int_as_float(0x7fc00000);
      }
      return;
    }
    bind_cache(a, found);
    r0 = found->row0 + tile * kBq;
    r1 = min(r0 + kBq, found->row0 + found->n);
    p0 = static_cast<std::size_t>(found->start) + static_cast<std::size_t>(tile) * kBq;
  } else {
    r0 = tile * kBq;
    if (r0 >= n_rows) return;
    r1 = min(r0 + kBq, n_rows);
    p0 = a.start + static_cast<std::size_t>(r0);
  }
  const int rows = r1 - r0;
  const int kvh = h / a.group;
  const float* ka = a.ka + kvh * a.group_ka;
  const float* kb = a.db > 0 ? a.kb + kvh * a.group_kb : nullptr;
  const float* vv = a.v + kvh * a.group_v;

  for (int i = tid; i < kBq * D; i += blockDim.x) {
    const int r = i / D, d = i % D;
    float q = 0.0f;
    if (r < rows) {
      q = d < a.da ? a.qa[static_cast<std::size_t>(r0 + r) * a.ld_qa + h * a.head_qa + d]
                   : a.qb[static_cast<std::size_t>(r0 + r) * a.ld_qb + h * a.head_qb + (d - a.da)];
    }
    q_s[r * ld + d] = q;
  }
  for (int r = tid; r < kBq; r += blockDim.x) m_s[r] = -INFINITY, l_s[r] = 0.0f;

  const std::size_t p_last = p0 + rows - 1;
  const std::size_t lo = first_key(a, p0);
  const std::size_t hi = p_last + 1;
  float acc[T::kRows][T::kCols];
#pragma unroll
  for (int i = 0; i < T::kRows; ++i) {
#pragma unroll
    for (int c = 0; c < T::kCols; ++c) acc[i][c] = 0.0f;
  }

  for (std::size_t j0 = lo; j0 < hi; j0 += kFlashKeys) {
    __syncthreads();  // the previous tile's keys, values and probabilities are consumed
    for (int i = tid; i < kFlashKeys * D; i += blockDim.x) {
      const int jj = i / D, d = i % D;
      const std::size_t j = j0 + jj;
      float k = 0.0f;
      if (j < hi) k = d < a.da ? __ldg(ka + j * a.ld_ka + d) : __ldg(kb + j * a.ld_kb + (d - a.da));
      k_s[jj * ld + d] = k;
    }
    if (!v_is_k) {
      for (int i = tid; i < kFlashKeys * Dv; i += blockDim.x) {
        const int jj = i / Dv, c = i % Dv;
        const std::size_t j = j0 + jj;
        v_s[jj * ldv + c] = j < hi ? __ldg(vv + j * a.ld_v + c) : 0.0f;
      }
    }
    __syncthreads();
    float sc[T::kRows][T::kKeys];
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
#pragma unroll
      for (int j = 0; j < T::kKeys; ++j) sc[i][j] = 0.0f;
    }
    for (int d = 0; d < D; ++d) {
      float qv[T::kRows], kv[T::kKeys];
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) qv[i] = q_s[(tr + 16 * i) * ld + d];
#pragma unroll
      for (int j = 0; j < T::kKeys; ++j) kv[j] = k_s[(tc + 8 * j) * ld + d];
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) {
#pragma unroll
        for (int j = 0; j < T::kKeys; ++j) sc[i][j] = fmaf(qv[i], kv[j], sc[i][j]);
      }
    }
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      const int r = tr + 16 * i;
      const std::size_t pos = p0 + r;
      const std::size_t row_lo = first_key(a, pos);
#pragma unroll
      for (int j = 0; j < T::kKeys; ++j) {
        const int jj = tc + 8 * j;
        const std::size_t key = j0 + jj;
        const bool visible = r < rows && key <= pos && key >= row_lo;
        p_s[r * ldp + jj] = visible ? sc[i][j] * a.scale : -INFINITY;
      }
    }
    __syncthreads();
    for (int r = warp; r < kBq; r += kFlashThreads / kWarpSize) {  // one warp per row, a lane per key
      const float sv = p_s[r * ldp + lane];
      const float m_old = m_s[r];
      const float m_new = fmaxf(m_old, warp_max(sv));
      const float p = m_new == -INFINITY ? 0.0f : expf(sv - m_new);
      const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
      const float sum = warp_sum(p);
      p_s[r * ldp + lane] = p;
      if (lane == 0) {
        m_s[r] = m_new;
        l_s[r] = l_s[r] * alpha + sum;
        alpha_s[r] = alpha;
      }
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < T::kRows; ++i) {
      const float al = alpha_s[tr + 16 * i];
#pragma unroll
      for (int c = 0; c < T::kCols; ++c) acc[i][c] *= al;
    }
    for (int jj = 0; jj < kFlashKeys; ++jj) {
      float pv[T::kRows];
#pragma unroll
      for (int i = 0; i < T::kRows; ++i) pv[i] = p_s[(tr + 16 * i) * ldp + jj];
#pragma unroll
      for (int c = 0; c < T::kCols; ++c) {
        const int col = tc + 8 * c;
        const float v = col < Dv ? v_s[jj * ldv + col] : 0.0f;
#pragma unroll
        for (int i = 0; i < T::kRows; ++i) acc[i][c] = fmaf(pv[i], v, acc[i][c]);
      }
    }
  }
  __syncthreads();
  const bool has_sink = a.sinks != nullptr;
  const float sink = has_sink ? a.sinks[h * a.sinks_stride] : 0.0f;
#pragma unroll
  for (int i = 0; i < T::kRows; ++i) {
    const int r = tr + 16 * i;
    if (r >= rows) continue;
    const float m = m_s[r], l = l_s[r];
    const float m_all = has_sink ? fmaxf(m, sink) : m;
    const float f = m == -INFINITY ? 0.0f : expf(m - m_all);
    const float l_all = l * f + (has_sink ? expf(sink - m_all) : 0.0f);
    const float inv = l_all > 0.0f ? f / l_all : 0.0f;
    float* out = a.out + static_cast<std::size_t>(r0 + r) * a.ld_out + h * a.head_out;
#pragma unroll
    for (int c = 0; c < T::kCols; ++c) {
      const int col = tc + 8 * c;
      if (col < Dv) out[col] = acc[i][c] * inv;
    }
  }
}

// Launches the tile kernel when it applies: enough rows per sequence to fill tiles, value rows
// it holds, and its shared memory within the device's. Returns false to use attention_kernel.
inline bool launch_flash_attention(const AttnArgs& a, index_t n_rows, index_t n_slots, index_t n_heads, bool v_is_k,
                                   const char* op) {
  if (n_rows < 32 || n_rows < 4 * n_slots || n_heads > 65535) return false;
  const int D = a.da + a.db;
  const bool narrow = D <= 128 && a.dv <= FlashTile<64>::kMaxV;
  if (!narrow && a.dv > FlashTile<16>::kMaxV) return false;
  const int bq = narrow ? 64 : 16;
  const std::size_t smem = sizeof(float) * flash_smem_floats(bq, D, a.dv, v_is_k);
  int device = 0, optin = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&device));
  MOE_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (smem > static_cast<std::size_t>(optin)) return false;
  const index_t tiles = (n_rows + bq - 1) / bq + (a.slots != nullptr ? n_slots : 0);
  require(tiles <= 0x7fffffff, ErrorCode::kInvalidArgument, "{}(cuda): {} rows exceed the grid", op, n_rows);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(n_heads));
  if (narrow) {
    allow_dynamic_shared(flash_attention_kernel<64>, smem, op);
    cuda_detail::launch(flash_attention_kernel<64>, grid, kFlashThreads, smem, a, static_cast<int>(n_rows), v_is_k);
  } else {
    allow_dynamic_shared(flash_attention_kernel<16>, smem, op);
    cuda_detail::launch(flash_attention_kernel<16>, grid, kFlashThreads, smem, a, static_cast<int>(n_rows), v_is_k);
  }
  ::moe::cuda::check_launch(op);
  return true;
}

// One block per kAttnKeysPerSplit keys of the longest context, at most kAttnMaxSplits: the part of
// the split that follows the context length (and so keys a captured decode step).
inline int attention_split_bucket(index_t max_keys) noexcept {
  return static_cast<int>(
      std::clamp<index_t>((max_keys + kAttnKeysPerSplit - 1) / kAttnKeysPerSplit, 1, kAttnMaxSplits));
}

// Blocks (cluster ranks) per query: for grids smaller than the device (decode) on sm_90+, one per
// kAttnKeysPerSplit keys, at most kAttnMaxSplits; else 1.
inline int attention_splits(index_t n_tokens, index_t n_heads, index_t max_keys) {
  if (device_major() < 9 || n_tokens * n_heads >= static_cast<index_t>(device_sm_count())) return 1;
  return attention_split_bucket(max_keys);
}

// Launches attention_kernel for n tokens and n_heads heads; splits the keys across a cluster for
// small grids on sm_90+ devices.
inline void launch_attention(AttnArgs a, index_t n_tokens, index_t n_heads, index_t max_keys, const char* op) {
  if (n_tokens == 0 || n_heads == 0 || a.dv == 0) return;
  require(a.dv <= kAttnMaxVPerLane * kWarpSize, ErrorCode::kInvalidArgument,
          "{}(cuda): value width {} exceeds the supported {}", op, a.dv, kAttnMaxVPerLane * kWarpSize);
  // Values that are the keys' first columns (MLA's latent): loaded once per key tile.
  const bool v_in_keys =
      a.slots != nullptr ? a.latent : (a.v == a.ka && a.ld_v == a.ld_ka && a.group_v == a.group_ka && a.dv <= a.da);
  if (launch_flash_attention(a, n_tokens, a.slots != nullptr ? a.n_slots : 1, n_heads, v_in_keys, op)) return;
  require(n_tokens <= 65535 && n_heads <= 65535, ErrorCode::kInvalidArgument,
          "{}(cuda): {} tokens x {} heads exceed the grid (65535 each)", op, n_tokens, n_heads);
  const int splits = attention_splits(n_tokens, n_heads, max_keys);
  a.splits = splits;
  const std::size_t smem = sizeof(float) * (static_cast<std::size_t>(a.da + a.db) + 2 * kAttnWarps +
                                            static_cast<std::size_t>(kAttnWarps) * a.dv + 2 + a.dv);
  allow_dynamic_shared(attention_kernel, smem, op);
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(splits, static_cast<unsigned>(n_heads), static_cast<unsigned>(n_tokens));
  config.blockDim = dim3(kAttnWarps * kWarpSize);
  config.dynamicSmemBytes = smem;
  config.stream = ::moe::cuda::stream();
  cudaLaunchAttribute attribute{};
  if (splits > 1) {
    attribute.id = cudaLaunchAttributeClusterDimension;
    attribute.val.clusterDim.x = static_cast<unsigned>(splits);
    attribute.val.clusterDim.y = 1;
    attribute.val.clusterDim.z = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  MOE_CUDA_CHECK(cudaLaunchKernelEx(&config, attention_kernel, a));
  ::moe::cuda::check_launch(op);
}

}  // namespace cuda_detail

// Attention of n new tokens of one sequence at positions start..start+n-1 whose keys and values
// are already in the cache rows [0, start+n) (device memory):
//   q      [n, n_heads·head_dim] (rope applied)
//   keys   [>= start+n, n_kv_heads·head_dim], values [>= start+n, n_kv_heads·v_head_dim] (row strides free)
//   sinks  [n_heads] logits (GPT-OSS) or [0]
//   out    [n, n_heads·v_head_dim]
// v_head_dim up to 512. Asynchronous on the backend's stream (cuda::stream()).
inline void attention(backend::cuda, const AttentionShape& s, DeviceView<const float, 2> q,
                      DeviceView<const float, 2> keys, DeviceView<const float, 2> values, index_t start,
                      DeviceView<const float, 1> sinks, DeviceView<float, 2> out) {
  const index_t n = q.extent(0);
  detail::check_attention(s, q, keys, values, start, sinks, out);
  cuda_detail::require_unit_inner_stride(q, "attention", "q");
  cuda_detail::require_unit_inner_stride(keys, "attention", "keys");
  cuda_detail::require_unit_inner_stride(values, "attention", "values");
  cuda_detail::require_unit_inner_stride(out, "attention", "out");
  cuda_detail::require_int_range(s.head_dim, "attention", "head_dim");
  cuda_detail::require_int_range(s.v_head_dim, "attention", "v_head_dim");
  cuda_detail::AttnArgs a{};
  a.qa = q.data(), a.ld_qa = q.stride(0), a.head_qa = s.head_dim;
  a.qb = nullptr, a.ld_qb = 0, a.head_qb = 0;
  a.ka = keys.data(), a.ld_ka = keys.stride(0), a.group_ka = s.head_dim;
  a.kb = nullptr, a.ld_kb = 0, a.group_kb = 0;
  a.v = values.data(), a.ld_v = values.stride(0), a.group_v = s.v_head_dim;
  a.out = out.data(), a.ld_out = out.stride(0), a.head_out = s.v_head_dim;
  a.sinks = sinks.extent(0) != 0 ? sinks.data() : nullptr;
  a.sinks_stride = sinks.stride(0);
  a.da = static_cast<int>(s.head_dim), a.db = 0, a.dv = static_cast<int>(s.v_head_dim);
  a.group = static_cast<int>(s.n_heads / s.n_kv_heads);
  a.start = start, a.window = s.sliding_window, a.chunk = s.chunk, a.scale = s.scale;
  index_t keys_max = s.sliding_window > 0 ? std::min(s.sliding_window, start + n) : start + n;
  if (s.chunk > 0) keys_max = std::min(s.chunk, keys_max);
  cuda_detail::launch_attention(a, n, s.n_heads, keys_max, "attention");
}

// Latent attention (MLA, absorbed form) for n tokens of one sequence at positions start.. (device memory):
//   q          [n, n_heads·(nope+rope)] (rope part rotated), q_latent [n, n_heads·rank]
//   latent     [>= start+n, rank] cache, k_rope [>= start+n, rope] cache
//   out_latent [n, n_heads·rank]: Σ_j softmax(scale·(q_lat·c_j + q_rope·k_rope_j))_j · c_j per head
// rank up to 512.
inline void mla_attention(backend::cuda, const MlaShape& s, DeviceView<const float, 2> q,
                          DeviceView<const float, 2> q_latent, DeviceView<const float, 2> latent,
                          DeviceView<const float, 2> k_rope, index_t start, DeviceView<float, 2> out_latent) {
  const index_t n = q.extent(0), r = s.kv_lora_rank;
  detail::check_mla_attention(s, q, q_latent, latent, k_rope, start, out_latent);
  cuda_detail::require_unit_inner_stride(q, "mla_attention", "q");
  cuda_detail::require_unit_inner_stride(q_latent, "mla_attention", "q_latent");
  cuda_detail::require_unit_inner_stride(latent, "mla_attention", "latent");
  cuda_detail::require_unit_inner_stride(k_rope, "mla_attention", "k_rope");
  cuda_detail::require_unit_inner_stride(out_latent, "mla_attention", "out_latent");
  cuda_detail::require_int_range(r, "mla_attention", "kv_lora_rank");
  cuda_detail::require_int_range(s.rope, "mla_attention", "rope");
  cuda_detail::AttnArgs a{};
  a.qa = q_latent.data(), a.ld_qa = q_latent.stride(0), a.head_qa = r;
  a.qb = q.data() + s.nope, a.ld_qb = q.stride(0), a.head_qb = s.qk();
  a.ka = latent.data(), a.ld_ka = latent.stride(0), a.group_ka = 0;
  a.kb = k_rope.data(), a.ld_kb = k_rope.stride(0), a.group_kb = 0;
  a.v = latent.data(), a.ld_v = latent.stride(0), a.group_v = 0;
  a.out = out_latent.data(), a.ld_out = out_latent.stride(0), a.head_out = r;
  a.sinks = nullptr, a.sinks_stride = 0;
  a.da = static_cast<int>(r), a.db = static_cast<int>(s.rope), a.dv = static_cast<int>(r);
  a.group = static_cast<int>(std::max<index_t>(s.n_heads, 1));
  a.start = start, a.window = 0, a.scale = s.scale;
  cuda_detail::launch_attention(a, n, s.n_heads, start + n, "mla_attention");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
