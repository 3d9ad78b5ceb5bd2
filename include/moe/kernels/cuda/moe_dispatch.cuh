// Expert dispatch of a MoE layer on backend::cuda: bucket_by_expert (a counting sort of the
// (token, choice) slots by expert, stable in token order: for decode in one block — shared-memory
// counts, a scan, then one warp per expert placing its slots in order with ballots — and for
// prefill over one block per expert) and combine_experts
// (one block per token: its slots are found in slot order with ballots and summed in that order,
// as the reference's loop does). Both are deterministic; neither uses atomics on floats.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/router.cuh"
#include "moe/kernels/reference/expert_budget.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kBucketThreads = 1024;
// The most experts bucket_kernel's one block holds (an int each in dynamic shared memory, beside
// its 12 KiB of staged slots, within the default 48 KiB); more take the three-launch path.
inline constexpr int kBucketBlockMaxExperts = (48 * 1024 - 3 * kBucketThreads * 4 - 1024) / 4;  // 1 KiB: the scan's
inline constexpr int kCombineThreads = 256;

struct BucketArgs {
  const std::int32_t* ids;
  std::size_t ids_s0, ids_s1;
  const float* weights;
  std::size_t w_s0, w_s1;
  std::int32_t* offsets;
  std::size_t offsets_stride;
  std::int32_t* slot_token;
  std::size_t token_stride;
  float* slot_weight;
  std::size_t weight_stride;
  std::uint64_t* usage;  // or null
  std::size_t usage_stride;
  double* weight_sum;  // or null (telemetry: accumulate_expert_weights)
  std::size_t weight_sum_stride;
  int n, k, n_experts;
};

// The exclusive scan of E counts, in place, by the whole block (every thread must call it):
// count(e) reads count e, put(e, v) writes its start; returns the total to every thread. Each
// thread sums a run of consecutive counts, the runs are scanned across the block, then written
// (a thread-0 loop over 128 experts was a third of a decode step's bucketing).
template <class Count, class Put>
__device__ __forceinline__ int block_exclusive_scan(int E, Count count, Put put) {
  __shared__ int warp_total[kBucketThreads / kWarpSize];
  const int per = (E + blockDim.x - 1) / blockDim.x;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int lo = threadIdx.x * per, hi = lo + per < E ? lo + per : E;
  int run = 0;
  for (int e = lo; e < hi; ++e) run += count(e);
  int inc = run;  // inclusive scan of the runs within the warp
#pragma unroll
  for (int o = 1; o < kWarpSize; o *= 2) {
    const int v = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += v;
  }
  if (lane == kWarpSize - 1) warp_total[warp] = inc;
  __syncthreads();
  int base = 0, all = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x) / kWarpSize; ++w) {
    base += w < warp ? warp_total[w] : 0;
    all += warp_total[w];
  }
  int start = base + inc - run;
  for (int e = lo; e < hi; ++e) {
    const int c = count(e);
    put(e, start);
    start += c;
  }
  __syncthreads();  // warp_total may be reused; every start is written
  return all;
}

// Decode-sized passes (at most kBucketThreads slots): one block. The slots' ids and weights are
// read once into shared memory (one round of loads, with the telemetry counters prefetched beside
// them); counts, scan, placement and the weight sums then work from shared memory.
inline __device__ void bucket_block(const BucketArgs& a) {
  extern __shared__ int start[];  // [n_experts]: counts, then the first slot of each expert
  __shared__ int slot_id[kBucketThreads];
  __shared__ float slot_w[kBucketThreads], placed_w[kBucketThreads];
  const int total = a.n * a.k;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int n_warps = blockDim.x / kWarpSize;

  // One slot per thread (total <= blockDim.x). The telemetry counters of expert threadIdx.x are
  // read now, beside the slots (the experts past blockDim.x, if any, when they are updated).
  const int e0 = threadIdx.x;
  const std::uint64_t usage0 = a.usage != nullptr && e0 < a.n_experts ? a.usage[e0 * a.usage_stride] : 0;
  const double sum0 = a.weight_sum != nullptr && e0 < a.n_experts ? a.weight_sum[e0 * a.weight_sum_stride] : 0.0;
  if (threadIdx.x < total) {
    const int s = threadIdx.x, t = s / a.k, j = s % a.k;
    slot_id[s] = a.ids[static_cast<std::size_t>(t) * a.ids_s0 + j * a.ids_s1];
    slot_w[s] = a.weights[static_cast<std::size_t>(t) * a.w_s0 + j * a.w_s1];
  }
  for (int e = threadIdx.x; e < a.n_experts; e += blockDim.x) start[e] = 0;
  __syncthreads();
  if (threadIdx.x < total) {
    const int e = slot_id[threadIdx.x];
    if (e >= 0 && e < a.n_experts) atomicAdd(&start[e], 1);  // integer counts: order-independent
  }
  __syncthreads();
  if (a.usage != nullptr) {
    for (int e = e0; e < a.n_experts; e += blockDim.x) {
      const std::uint64_t before = e == e0 ? usage0 : a.usage[e * a.usage_stride];
      a.usage[e * a.usage_stride] = before + static_cast<std::uint64_t>(start[e]);
    }
  }
  const int sum = block_exclusive_scan(
      a.n_experts, [&](int e) { return start[e]; },
      [&](int e, int v) {
        start[e] = v;
        a.offsets[e * a.offsets_stride] = v;
      });
  if (threadIdx.x == 0) a.offsets[a.n_experts * a.offsets_stride] = sum;
  const int start_total = sum;
  // Slots an expert budget dropped (id -1) fill the tail: token -1 (skipped by gather and combine).
  for (int s = start_total + threadIdx.x; s < total; s += blockDim.x) {
    a.slot_token[static_cast<std::size_t>(s) * a.token_stride] = -1;
    a.slot_weight[static_cast<std::size_t>(s) * a.weight_stride] = 0.0f;
  }
  // One warp per expert scans the slots in order; a ballot ranks this expert's slots in a group
  // of 32, so placement is stable in (token, choice) order.
  for (int e = warp; e < a.n_experts; e += n_warps) {
    int pos = start[e];
    for (int base = 0; base < total; base += kWarpSize) {
      const int s = base + lane;
      const bool mine = s < total && slot_id[s] == e;
      const unsigned ballot = __ballot_sync(0xffffffffu, mine);
      if (mine) {
        const int slot = pos + __popc(ballot & ((1u << lane) - 1u));
        a.slot_token[static_cast<std::size_t>(slot) * a.token_stride] = s / a.k;
        a.slot_weight[static_cast<std::size_t>(slot) * a.weight_stride] = slot_w[s];
        placed_w[slot] = slot_w[s];
      }
      pos += __popc(ballot);
    }
  }
  if (a.weight_sum != nullptr) {  // accumulate_weights_kernel's sums (slot order), without its launch
    __syncthreads();
    for (int e = e0; e < a.n_experts; e += blockDim.x) {
      double acc = 0.0;
      const int end = e + 1 < a.n_experts ? start[e + 1] : start_total;
      for (int s = start[e]; s < end; ++s) acc += static_cast<double>(placed_w[s]);
      const double before = e == e0 ? sum0 : a.weight_sum[e * a.weight_sum_stride];
      a.weight_sum[e * a.weight_sum_stride] = before + acc;
    }
  }
}

static __global__ void __launch_bounds__(kBucketThreads) bucket_kernel(BucketArgs a) {
  kernel_prologue();
  bucket_block(a);
}

// One token's routing and its bucketing in one block (decode of one sequence): route_token, then,
// once its ids and weights are written, bucket_block over them; the same bits as route_kernel
// followed by bucket_kernel, one launch instead of two. The two share the dynamic shared memory.
static __global__ void __launch_bounds__(kBucketThreads) route_bucket_kernel(RouteArgs r, BucketArgs b) {
  kernel_prologue();
  route_token(r, 0);
  __syncthreads();  // the token's ids and weights (global memory) visible to the whole block
  bucket_block(b);
}

// route_bucket_kernel for a router that one warp routes (warp_route): the warp routes the token
// (route_token_warp: lane j holds choice j), then buckets its k distinct experts itself. One
// token's buckets hold a slot each, in expert order: choice j goes to slot rank_j, the number of
// chosen experts below its own; offsets[e] counts the chosen experts below e. The telemetry adds
// what bucket_block adds (usage += 1, weight_sum += 0.0 + w in double), so the bits are those of
// route_warp_kernel followed by bucket_kernel, in one launch of one warp.
static __global__ void __launch_bounds__(kWarpSize) route_bucket_warp_kernel(RouteArgs r, BucketArgs b) {
  kernel_prologue();
  constexpr unsigned kAll = 0xffffffffu;
  const int lane = static_cast<int>(threadIdx.x);
  int id;
  float w;
  route_token_warp(r, 0, id, w);
  const int k = r.k;
  int rank = 0;
  for (int m = 0; m < k; ++m) rank += __shfl_sync(kAll, id, m) < id ? 1 : 0;
  if (lane < k) {
    b.slot_token[static_cast<std::size_t>(rank) * b.token_stride] = 0;
    b.slot_weight[static_cast<std::size_t>(rank) * b.weight_stride] = w;
    if (b.usage != nullptr) b.usage[id * b.usage_stride] += 1;
    if (b.weight_sum != nullptr) b.weight_sum[id * b.weight_sum_stride] += 0.0 + static_cast<double>(w);
  }
  for (int e0 = 0; e0 <= b.n_experts; e0 += kWarpSize) {  // warp-uniform: the shuffles need every lane
    const int e = e0 + lane;
    int below = 0;
    for (int m = 0; m < k; ++m) below += __shfl_sync(kAll, id, m) < e ? 1 : 0;
    if (e <= b.n_experts) b.offsets[e * b.offsets_stride] = below;
  }
}

// The same counting sort over many blocks, for prefill-sized passes (thousands of slots, where one
// block's per-expert scans dominate the layer), in three launches: block e counts expert e's
// slots into offsets[e] (a block sum, no atomics); one block turns the counts into the exclusive
// scan in place (offsets[n_experts] = the total); block e places its slots from offsets[e] on in
// (token, choice) order, 1024 at a time with a block-wide ballot scan. Same result as bucket_kernel.
__device__ __forceinline__ int bucket_id(const BucketArgs& a, int s) {
  return a.ids[static_cast<std::size_t>(s / a.k) * a.ids_s0 + (s % a.k) * a.ids_s1];
}

// Integer sum over the block (exact); thread 0 gets the total.
__device__ __forceinline__ int block_count(int v, int* scratch) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
#pragma unroll
  for (int o = kWarpSize / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  int total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < static_cast<int>(blockDim.x) / kWarpSize; ++w) total += scratch[w];
  }
  return total;
}

static __global__ void __launch_bounds__(kBucketThreads) bucket_count_kernel(BucketArgs a) {
  kernel_prologue();
  __shared__ int scratch[kWarpSize];
  const int e = blockIdx.x, total = a.n * a.k;
  int c = 0;
  for (int s = threadIdx.x; s < total; s += blockDim.x) c += bucket_id(a, s) == e;
  c = block_count(c, scratch);
  if (threadIdx.x == 0) {
    a.offsets[e * a.offsets_stride] = c;
    if (a.usage != nullptr) a.usage[e * a.usage_stride] += static_cast<std::uint64_t>(c);
  }
}

// offsets[0..n_experts) counts -> exclusive scan; offsets[n_experts] = total. One block.
static __global__ void __launch_bounds__(kBucketThreads) bucket_scan_kernel(BucketArgs a) {
  kernel_prologue();
  std::int32_t* off = a.offsets;
  const std::size_t st = a.offsets_stride;
  const int all = block_exclusive_scan(
      a.n_experts, [&](int e) { return off[e * st]; }, [&](int e, int v) { off[e * st] = v; });
  if (threadIdx.x == 0) off[a.n_experts * st] = all;
}

static __global__ void __launch_bounds__(kBucketThreads) bucket_place_kernel(BucketArgs a) {
  kernel_prologue();
  __shared__ int warp_count[kBucketThreads / kWarpSize];
  const int e = blockIdx.x, total = a.n * a.k;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  int pos = a.offsets[e * a.offsets_stride];
  // Slots an expert budget dropped (id -1) fill the tail past every bucket, grid-strided.
  for (int s = a.offsets[a.n_experts * a.offsets_stride] + e * blockDim.x + threadIdx.x; s < total;
       s += gridDim.x * blockDim.x) {
    a.slot_token[static_cast<std::size_t>(s) * a.token_stride] = -1;
    a.slot_weight[static_cast<std::size_t>(s) * a.weight_stride] = 0.0f;
  }
  for (int base = 0; base < total; base += blockDim.x) {
    const int s = base + threadIdx.x;
    const bool mine = s < total && bucket_id(a, s) == e;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_count[warp] = __popc(ballot);
    __syncthreads();
    int rank = 0, count = 0;
    for (int w = 0; w < static_cast<int>(blockDim.x) / kWarpSize; ++w) {
      rank += w < warp ? warp_count[w] : 0;
      count += warp_count[w];
    }
    if (mine) {
      const int slot = pos + rank + __popc(ballot & ((1u << lane) - 1u));
      a.slot_token[static_cast<std::size_t>(slot) * a.token_stride] = s / a.k;
      a.slot_weight[static_cast<std::size_t>(slot) * a.weight_stride] =
          a.weights[static_cast<std::size_t>(s / a.k) * a.w_s0 + (s % a.k) * a.w_s1];
    }
    pos += count;
    __syncthreads();  // warp_count is rewritten by the next round
  }
}

struct CombineArgs {
  const float* ys;
  std::size_t ld_ys;
  const std::int32_t* slot_token;
  std::size_t token_stride;
  const float* slot_weight;
  std::size_t weight_stride;
  float* y;
  std::size_t ld_y;
  int slots, d;
  int col_chunk;  // columns per block (blockIdx.y picks the chunk)
};

// Block per token t: y[t, :] = Σ over slots s with slot_token[s] == t, in slot order, of
// slot_weight[s] · ys[s, :].
static __global__ void __launch_bounds__(kCombineThreads) combine_kernel(CombineArgs a) {
  kernel_prologue();
  __shared__ int list[kCombineThreads];
  __shared__ int warp_count[kCombineThreads / kWarpSize];
  const int t = blockIdx.x;
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  float* y = a.y + static_cast<std::size_t>(t) * a.ld_y;
  const int c_lo = blockIdx.y * a.col_chunk, c_hi = min(a.d, c_lo + a.col_chunk);
  bool first = true;
  for (int base = 0; base < a.slots; base += kCombineThreads) {
    const int s = base + threadIdx.x;
    const bool mine = s < a.slots && a.slot_token[static_cast<std::size_t>(s) * a.token_stride] == t;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (lane == 0) warp_count[warp] = __popc(ballot);
    __syncthreads();
    int before = 0, count = 0;
    for (int w = 0; w < kCombineThreads / kWarpSize; ++w) {
      if (w < warp) before += warp_count[w];
      count += warp_count[w];
    }
    if (mine) list[before + __popc(ballot & ((1u << lane) - 1u))] = s;
    __syncthreads();
    if (count > 0 || first) {
      for (int c = c_lo + threadIdx.x; c < c_hi; c += blockDim.x) {
        float acc = first ? 0.0f : y[c];
        for (int i = 0; i < count; ++i) {
          const int slot = list[i];
          const float w = a.slot_weight[static_cast<std::size_t>(slot) * a.weight_stride];
          acc = __fadd_rn(acc, __fmul_rn(a.ys[static_cast<std::size_t>(slot) * a.ld_ys + c], w));
        }
        y[c] = acc;
      }
      first = false;
    }
    __syncthreads();
  }
  if (first) {  // no slots at all
    for (int c = c_lo + threadIdx.x; c < c_hi; c += blockDim.x) y[c] = 0.0f;
  }
}

// Thread per expert: weight_sum[e] += Σ slot_weight over e's bucket, in slot order (the reference's).
static __global__ void accumulate_weights_kernel(const std::int32_t* offsets, std::size_t offsets_stride, const float* w,
                                          std::size_t w_stride, double* sum, std::size_t sum_stride, int n_experts) {
  kernel_prologue();
  const int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= n_experts) return;
  double acc = 0.0;
  for (int s = offsets[e * offsets_stride]; s < offsets[(e + 1) * offsets_stride]; ++s) {
    acc += static_cast<double>(w[static_cast<std::size_t>(s) * w_stride]);
  }
  sum[e * sum_stride] += acc;
}

// Thread per row: detail::limit_row (the same host function, compiled for the device).
static __global__ void limit_experts_kernel(const ExpertBudgetRow* budget, std::size_t b_stride, std::int32_t* ids,
                                     std::size_t ids_s0, std::size_t ids_s1, float* w, std::size_t w_s0,
                                     std::size_t w_s1, int n, int k) {
  kernel_prologue();
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const ExpertBudgetRow b = budget[static_cast<std::size_t>(t) * b_stride];
  std::int32_t* id = ids + static_cast<std::size_t>(t) * ids_s0;
  float* wt = w + static_cast<std::size_t>(t) * w_s0;
  const int keep = min(max(b.top_k, 1), k);
  const int min_k = min(max(b.min_k, 1), keep);
  float w_max = wt[0];
  for (int j = 1; j < keep; ++j) w_max = fmaxf(w_max, wt[j * w_s1]);
  const float cut = __fmul_rn(b.threshold, w_max);
  float sum_all = 0.0f, sum_kept = 0.0f;
  int kept = 0;
  for (int j = 0; j < k; ++j) {
    const float v = wt[j * w_s1];
    sum_all = __fadd_rn(sum_all, v);
    const bool drop = j >= keep || (j >= min_k && v < cut);
    if (drop) {
      id[j * ids_s1] = -1;
      wt[j * w_s1] = 0.0f;
    } else {
      sum_kept = __fadd_rn(sum_kept, v);
      ++kept;
    }
  }
  if (b.renormalize != 0 && kept < k && sum_kept != 0.0f) {
    const float scale = __fdiv_rn(sum_all, sum_kept);
    for (int j = 0; j < k; ++j) {
      if (id[j * ids_s1] >= 0) wt[j * w_s1] = __fmul_rn(wt[j * w_s1], scale);
    }
  }
}

}  // namespace cuda_detail

// Telemetry, as the reference's: weight_sum [n_experts] += each bucket's routing weights (offsets
// [n_experts + 1], slot_weight: bucket_by_expert's); device memory, accumulated on the device.
inline void accumulate_expert_weights(backend::cuda, DeviceView<const std::int32_t, 1> offsets,
                                      DeviceView<const float, 1> slot_weight, DeviceView<double, 1> weight_sum) {
  require(offsets.extent(0) == weight_sum.extent(0) + 1, ErrorCode::kInvalidArgument,
          "accumulate_expert_weights: {} offsets for {} experts", offsets.extent(0), weight_sum.extent(0));
  cuda_detail::require_int_range(weight_sum.extent(0), "accumulate_expert_weights", "n_experts");
  const int n = static_cast<int>(weight_sum.extent(0));
  if (n == 0) return;
  cuda_detail::launch(cuda_detail::accumulate_weights_kernel, static_cast<unsigned>((n + 127) / 128), 128, 0, 
      offsets.data(), offsets.stride(0), slot_weight.data(), slot_weight.stride(0), weight_sum.data(),
      weight_sum.stride(0), n);
  ::moe::cuda::check_launch("accumulate_weights_kernel");
}

namespace cuda_detail {

// bucket_by_expert's checks and arguments.
inline BucketArgs bucket_args(DeviceView<const std::int32_t, 2> ids, DeviceView<const float, 2> weights,
                              DeviceView<std::int32_t, 1> offsets, DeviceView<std::int32_t, 1> slot_token,
                              DeviceView<float, 1> slot_weight, DeviceView<std::uint64_t, 1> usage,
                              DeviceView<double, 1> weight_sum) {
  const index_t n = ids.extent(0), k = ids.extent(1);
  require(offsets.extent(0) >= 1, ErrorCode::kInvalidArgument, "bucket_by_expert: offsets has no elements");
  const index_t n_experts = offsets.extent(0) - 1;
  require(weights.extent(0) == n && weights.extent(1) == k && slot_token.extent(0) >= n * k &&
              slot_weight.extent(0) >= n * k && (usage.extent(0) == 0 || usage.extent(0) == n_experts) &&
              (weight_sum.extent(0) == 0 || weight_sum.extent(0) == n_experts),
          ErrorCode::kInvalidArgument,
          "bucket_by_expert: ids [{}, {}], {} offsets, {} slots, {} usage counters, {} weight sums", n, k,
          offsets.extent(0), slot_token.extent(0), usage.extent(0), weight_sum.extent(0));
  require_int_range(n * k, "bucket_by_expert", "slots");
  require(n_experts <= 12 * 1024, ErrorCode::kInvalidArgument, "bucket_by_expert(cuda): {} experts exceed 12288",
          n_experts);
  BucketArgs a{};
  a.ids = ids.data(), a.ids_s0 = ids.stride(0), a.ids_s1 = ids.stride(1);
  a.weights = weights.data(), a.w_s0 = weights.stride(0), a.w_s1 = weights.stride(1);
  a.offsets = offsets.data(), a.offsets_stride = offsets.stride(0);
  a.slot_token = slot_token.data(), a.token_stride = slot_token.stride(0);
  a.slot_weight = slot_weight.data(), a.weight_stride = slot_weight.stride(0);
  a.usage = usage.extent(0) != 0 ? usage.data() : nullptr, a.usage_stride = usage.stride(0);
  a.weight_sum = weight_sum.extent(0) != 0 ? weight_sum.data() : nullptr, a.weight_sum_stride = weight_sum.stride(0);
  a.n = static_cast<int>(n), a.k = static_cast<int>(k), a.n_experts = static_cast<int>(n_experts);
  if (k == 0) a.n = 0;  // no slots (avoids s / k)
  if (a.k == 0) a.k = 1;
  require(n_experts >= 1 || n * k == 0, ErrorCode::kInvalidArgument, "bucket_by_expert: {} slots and no experts",
          n * k);
  return a;
}

// Whether bucket_kernel's one block holds the pass.
inline bool bucket_one_block(const BucketArgs& a) {
  return a.n * a.k <= kBucketThreads && a.n_experts <= kBucketBlockMaxExperts;
}

// bucket_by_expert's launches for checked arguments.
inline void launch_bucket(const BucketArgs& a, DeviceView<std::int32_t, 1> offsets, DeviceView<float, 1> slot_weight,
                          DeviceView<double, 1> weight_sum) {
  if (!bucket_one_block(a)) {
    // prefill (or a huge expert count): many blocks
    const auto blocks = static_cast<unsigned>(a.n_experts);
    launch(bucket_count_kernel, blocks, kBucketThreads, 0, a);
    ::moe::cuda::check_launch("bucket_count_kernel");
    launch(bucket_scan_kernel, 1, kBucketThreads, 0, a);
    ::moe::cuda::check_launch("bucket_scan_kernel");
    launch(bucket_place_kernel, blocks, kBucketThreads, 0, a);
    ::moe::cuda::check_launch("bucket_place_kernel");
    if (a.weight_sum != nullptr) {
      accumulate_expert_weights(backend::cuda{}, DeviceView<const std::int32_t, 1>(offsets),
                                DeviceView<const float, 1>(slot_weight), weight_sum);
    }
    return;
  }
  const std::size_t smem = sizeof(int) * static_cast<std::size_t>(std::max(a.n_experts, 1));
  launch(bucket_kernel, 1, kBucketThreads, smem, a);
  ::moe::cuda::check_launch("bucket_kernel");
}
}  // namespace cuda_detail

// ids, weights [n, top_k] (router output; ids in [0, n_experts), device memory). Writes a
// counting sort of the n·top_k slots, stable in token order: expert e owns slots
// [offsets[e], offsets[e+1]), slot s holds token slot_token[s] with mixing weight slot_weight[s].
// offsets [n_experts + 1], slot_token, slot_weight [>= n·top_k]. usage [n_experts] (or [0])
// counts the tokens routed to each expert (accumulated across calls). One block up to 1024 slots,
// else three launches of a block per expert; ids outside [0, n_experts) (-1: dropped by an expert
// budget) are in no bucket: their slots fill [offsets[n_experts], n·top_k) with token -1, weight 0.
// weight_sum [n_experts] (or [0]): accumulate_expert_weights' telemetry in the same launch (decode)
// or one more (prefill).
inline void bucket_by_expert(backend::cuda, DeviceView<const std::int32_t, 2> ids, DeviceView<const float, 2> weights,
                             DeviceView<std::int32_t, 1> offsets, DeviceView<std::int32_t, 1> slot_token,
                             DeviceView<float, 1> slot_weight, DeviceView<std::uint64_t, 1> usage,
                             DeviceView<double, 1> weight_sum = {}) {
  cuda_detail::launch_bucket(cuda_detail::bucket_args(ids, weights, offsets, slot_token, slot_weight, usage, weight_sum),
                             offsets, slot_weight, weight_sum);
}

// route, then bucket_by_expert of its ids and weights (kernels/reference/fused.hpp): one block
// for a pass of one token whose slots bucket_kernel's block holds, else the two ops.
inline void route_and_bucket(backend::cuda, const RouterConfig& c, DeviceView<const float, 2> logits,
                             DeviceView<const float, 1> correction, DeviceView<float, 1> scratch,
                             DeviceView<std::int32_t, 2> ids, DeviceView<float, 2> weights,
                             DeviceView<std::int32_t, 1> offsets, DeviceView<std::int32_t, 1> slot_token,
                             DeviceView<float, 1> slot_weight, DeviceView<std::uint64_t, 1> usage,
                             DeviceView<double, 1> weight_sum = {}) {
  const bool routes = cuda_detail::check_route(c, logits, correction, scratch, ids, weights);
  const cuda_detail::BucketArgs b = cuda_detail::bucket_args(ids, weights, offsets, slot_token, slot_weight, usage,
                                                             weight_sum);
  const cuda_detail::RouteArgs r = cuda_detail::route_args(c, logits, correction, ids, weights);
  if (!routes || logits.extent(0) != 1 || !cuda_detail::bucket_one_block(b)) {
    if (routes) cuda_detail::launch_route(c, r, logits.extent(0));  // else nothing routed: empty buckets
    cuda_detail::launch_bucket(b, offsets, slot_weight, weight_sum);
    return;
  }
  if (cuda_detail::warp_route(c)) {
    cuda_detail::launch(cuda_detail::route_bucket_warp_kernel, 1, cuda_detail::kWarpSize, 0, r, b);
    ::moe::cuda::check_launch("route_bucket_warp_kernel");
    return;
  }
  const std::size_t smem = std::max(cuda_detail::route_shared_bytes(c), sizeof(int) * std::max<index_t>(b.n_experts, 1));
  cuda_detail::allow_dynamic_shared(cuda_detail::route_bucket_kernel, smem, "route_and_bucket");
  cuda_detail::launch(cuda_detail::route_bucket_kernel, 1, cuda_detail::kBucketThreads, smem, r, b);
  ::moe::cuda::check_launch("route_bucket_kernel");
}

// y[t, :] = Σ over the slots s of token t, in slot (= expert) order, of slot_weight[s] · ys[s, :].
// ys [slots, d] expert outputs, slot_token / slot_weight [>= slots], y [n, d] (overwritten); all
// device memory. One block per row of y (for few rows, per chunk of a row's columns).
inline void combine_experts(backend::cuda, DeviceView<const float, 2> ys, DeviceView<const std::int32_t, 1> slot_token,
                            DeviceView<const float, 1> slot_weight, DeviceView<float, 2> y) {
  require(ys.extent(1) == y.extent(1) && slot_token.extent(0) >= ys.extent(0) && slot_weight.extent(0) >= ys.extent(0),
          ErrorCode::kInvalidArgument, "combine_experts: ys [{}, {}], {} slot tokens, y [{}, {}]", ys.extent(0),
          ys.extent(1), slot_token.extent(0), y.extent(0), y.extent(1));
  cuda_detail::require_unit_inner_stride(ys, "combine_experts", "ys");
  cuda_detail::require_unit_inner_stride(y, "combine_experts", "y");
  cuda_detail::require_int_range(ys.extent(0), "combine_experts", "slots");
  cuda_detail::require_int_range(y.extent(1), "combine_experts", "d");
  cuda_detail::require_int_range(y.extent(0), "combine_experts", "n");
  if (y.extent(0) == 0 || y.extent(1) == 0) return;
  cuda_detail::CombineArgs a{};
  a.ys = ys.data(), a.ld_ys = ys.stride(0);
  a.slot_token = slot_token.data(), a.token_stride = slot_token.stride(0);
  a.slot_weight = slot_weight.data(), a.weight_stride = slot_weight.stride(0);
  a.y = y.data(), a.ld_y = y.stride(0);
  a.slots = static_cast<int>(ys.extent(0)), a.d = static_cast<int>(y.extent(1));
  // Few rows (decode): split each row's columns over blocks so the GPU is not one block deep.
  const index_t chunks = std::clamp<index_t>(static_cast<index_t>(cuda_detail::device_sm_count()) / y.extent(0), 1,
                                             (y.extent(1) + cuda_detail::kCombineThreads - 1) / cuda_detail::kCombineThreads);
  a.col_chunk = static_cast<int>((y.extent(1) + chunks - 1) / chunks);
  const dim3 grid(static_cast<unsigned>(y.extent(0)), static_cast<unsigned>(chunks));
  cuda_detail::launch(cuda_detail::combine_kernel, grid, cuda_detail::kCombineThreads, 0, a);
  ::moe::cuda::check_launch("combine_kernel");
}

namespace cuda_detail {
static __global__ void coactivation_kernel(const std::int32_t* ids, index_t ids_ld, index_t ids_step, int n_tokens, int k,
                                    unsigned long long* counts, index_t counts_step, int n_experts) {
  kernel_prologue();
  const int t = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (t >= n_tokens) return;
  const std::int32_t* row = ids + static_cast<std::size_t>(t) * ids_ld;
  for (int i = 0; i < k; ++i) {
    const std::int32_t a = row[static_cast<std::size_t>(i) * ids_step];
    if (a < 0 || a >= n_experts) continue;
    for (int j = i + 1; j < k; ++j) {
      const std::int32_t b = row[static_cast<std::size_t>(j) * ids_step];
      if (b < 0 || b >= n_experts || b == a) continue;
      atomicAdd(counts + (static_cast<std::size_t>(a) * n_experts + b) * counts_step, 1ULL);
      atomicAdd(counts + (static_cast<std::size_t>(b) * n_experts + a) * counts_step, 1ULL);
    }
  }
}
}  // namespace cuda_detail

// As the reference's accumulate_coactivation: ids [n, top_k], counts [n_experts²]; device memory.
inline void accumulate_coactivation(backend::cuda, DeviceView<const std::int32_t, 2> ids,
                                    DeviceView<std::uint64_t, 1> counts, index_t n_experts) {
  require(counts.extent(0) == n_experts * n_experts, ErrorCode::kInvalidArgument,
          "accumulate_coactivation: {} counters for {} experts", counts.extent(0), n_experts);
  cuda_detail::require_int_range(ids.extent(0), "accumulate_coactivation", "n_tokens");
  cuda_detail::require_int_range(n_experts, "accumulate_coactivation", "n_experts");
  const int n = static_cast<int>(ids.extent(0));
  if (n == 0 || ids.extent(1) < 2) return;
  static_assert(sizeof(unsigned long long) == sizeof(std::uint64_t));
  cuda_detail::launch(cuda_detail::coactivation_kernel, static_cast<unsigned>((n + 127) / 128), 128, 0, 
      ids.data(), ids.stride(0), ids.stride(1), n, static_cast<int>(ids.extent(1)),
      reinterpret_cast<unsigned long long*>(counts.data()), counts.stride(0), static_cast<int>(n_experts));
  ::moe::cuda::check_launch("coactivation_kernel");
}

// As the reference's limit_experts: budget [n], ids / weights [n, top_k] updated in place (dropped
// slots: id -1, weight 0); device memory.
inline void limit_experts(backend::cuda, DeviceView<const ExpertBudgetRow, 1> budget, DeviceView<std::int32_t, 2> ids,
                          DeviceView<float, 2> weights) {
  require(budget.extent(0) == ids.extent(0) && weights.extent(0) == ids.extent(0) &&
              weights.extent(1) == ids.extent(1) && ids.extent(1) > 0,
          ErrorCode::kInvalidArgument, "limit_experts: {} budgets, ids [{}, {}], weights [{}, {}]", budget.extent(0),
          ids.extent(0), ids.extent(1), weights.extent(0), weights.extent(1));
  cuda_detail::require_int_range(ids.extent(0), "limit_experts", "n_tokens");
  const int n = static_cast<int>(ids.extent(0));
  if (n == 0) return;
  cuda_detail::launch(cuda_detail::limit_experts_kernel, static_cast<unsigned>((n + 127) / 128), 128, 0, 
      budget.data(), budget.stride(0), ids.data(), ids.stride(0), ids.stride(1), weights.data(), weights.stride(0),
      weights.stride(1), n, static_cast<int>(ids.extent(1)));
  ::moe::cuda::check_launch("limit_experts_kernel");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
