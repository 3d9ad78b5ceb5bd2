// MoE routing on backend::cuda, one block per token, with the reference's rules step for step
// (kernels/reference/router.hpp): softmax / sigmoid / top-k-then-softmax scoring, the correction
// bias that only picks, group-limited selection (kMax, kTopTwo) with dropped groups masked to
// -inf or 0, renormalisation and the routed scaling factor. Top-k ranks every candidate in the
// reference's total order (higher first, ties to the lower index, NaN last), so the chosen ids
// and their order are the reference's exactly; exp() is evaluated in double and
// rounded once (the host's expf is correctly rounded), and the final weight sums run in the
// reference's order on one thread.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/elementwise.cuh"
#include "moe/kernels/reference/router.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kRouterMaxThreads = 1024;

// detail::ranks_before on the device.
__device__ __forceinline__ bool ranks_before_dev(float a, int ia, float b, int ib) {
  const bool nan_a = isnan(a), nan_b = isnan(b);
  if (nan_a != nan_b) return nan_b;
  if (!nan_a && a != b) return a > b;
  return ia < ib;
}

// ids[0, k) = the k best of vals[0, n) in ranks_before order, best first; vals, ids and rank
// ([n] ints of scratch) are shared memory; every thread of the block must call it. k <= n.
// Each element's rank is the number of elements ranked before it: ranks_before is a strict total
// order (ties to the lower index, NaN last), so the ranks are distinct and ranks [0, k) are
// exactly the reference's top-k in its order. The n² comparisons are spread over the whole block
// (each element's comparisons in up to blockDim / n parts, added with integer atomics: order-
// independent), a part stops once it alone counts k, and the reads are warp-uniform broadcasts.
// Three barriers, whatever k: k rounds of a block-wide argmax took ~13 us of a decode layer for
// 128 experts, top 8, and one thread per element counting all n still ~12 (a chain of n
// dependent steps).
inline __device__ void block_select_top_k(const float* vals, int n, int k, int* ids, int* rank) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) rank[i] = 0;
  __syncthreads();
  const int parts = max(1, min(static_cast<int>(blockDim.x) / n, n));
  for (int p = threadIdx.x; p < n * parts; p += blockDim.x) {
    const int i = p % n, part = p / n;
    const int lo = part * n / parts, hi = (part + 1) * n / parts;
    const float v = vals[i];
    int c = 0;
    for (int j = lo; j < hi && c < k; ++j) c += ranks_before_dev(vals[j], j, v, i) ? 1 : 0;
    if (c > 0) atomicAdd(&rank[i], c);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    if (rank[i] < k) ids[rank[i]] = i;
  }
  __syncthreads();
}

struct RouteArgs {
  const float* logits;
  std::size_t ld_logits;
  const float* bias;  // [n_experts] or null
  std::size_t bias_stride;
  std::int32_t* ids;
  std::size_t ids_s0, ids_s1;
  float* weights;
  std::size_t w_s0, w_s1;
  int n, k, n_group, topk_group;
  RouterScoring scoring;
  GroupScore group_score;
  bool norm_topk_prob, dropped_to_minus_inf;
  float renorm_epsilon, routed_scaling_factor;
};

// Routes token t with the whole block (dynamic shared memory: route_shared_bytes).
inline __device__ void route_token(const RouteArgs& a, std::size_t t) {
  extern __shared__ float sm[];
  float* scores = sm;                                               // [n]
  float* choice = scores + a.n;                                     // [n]
  float* group = choice + a.n;                                      // [n_group]
  int* top = reinterpret_cast<int*>(group + a.n_group);             // [max(k, n_group)]
  int* kept = top + max(a.k, a.n_group);                            // [n_group]
  int* rank = kept + a.n_group;                                     // [n]: block_select_top_k's
  __shared__ float fscratch[kWarpSize];
  __shared__ double dscratch[kWarpSize];
  __shared__ float s_max, s_denom;
  __shared__ double s_sum;

  const float* logits = a.logits + t * a.ld_logits;
  std::int32_t* ids = a.ids + t * a.ids_s0;
  float* weights = a.weights + t * a.w_s0;
  const int n = a.n, k = a.k;

  if (a.scoring == RouterScoring::kTopkSoftmax) {
    for (int e = threadIdx.x; e < n; e += blockDim.x) scores[e] = logits[e];
    __syncthreads();
    block_select_top_k(scores, n, k, top, rank);
    // detail::softmax_row over the chosen logits: the max and the double sum in the reference's
    // order on one thread, the exponentials and the quotients one thread each.
    float* ex = choice;  // [k]
    if (threadIdx.x == 0) {
      float m = -INFINITY;
      for (int j = 0; j < k; ++j) m = fmaxf(m, scores[top[j]]);
      s_max = m;
    }
    __syncthreads();
    const float m = s_max;
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      ex[j] = m == -INFINITY ? 0.0f : exp_f32(__fsub_rn(scores[top[j]], m));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double sum = 0.0;
      for (int j = 0; j < k; ++j) sum += ex[j];
      s_sum = sum;
    }
    __syncthreads();
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
      weights[j * a.w_s1] = m == -INFINITY ? 0.0f : static_cast<float>(static_cast<double>(ex[j]) / s_sum);
      ids[j * a.ids_s1] = top[j];
    }
    return;
  }

  if (a.scoring == RouterScoring::kSoftmax) {
    float m = -INFINITY;
    for (int e = threadIdx.x; e < n; e += blockDim.x) m = fmaxf(m, logits[e]);
    m = block_max(m, fscratch);
    if (m == -INFINITY) {
      for (int e = threadIdx.x; e < n; e += blockDim.x) scores[e] = 0.0f;
    } else {
      double sum = 0.0;
      for (int e = threadIdx.x; e < n; e += blockDim.x) {
        const float v = exp_f32(__fsub_rn(logits[e], m));
        scores[e] = v;
        sum += v;
      }
      sum = block_sum(sum, dscratch);
      for (int e = threadIdx.x; e < n; e += blockDim.x) {
        scores[e] = static_cast<float>(static_cast<double>(scores[e]) / sum);
      }
    }
  } else {
    for (int e = threadIdx.x; e < n; e += blockDim.x) scores[e] = sigmoid_f32(logits[e]);
  }
  for (int e = threadIdx.x; e < n; e += blockDim.x) {
    choice[e] = __fadd_rn(scores[e], a.bias != nullptr ? a.bias[e * a.bias_stride] : 0.0f);
  }
  __syncthreads();

  if (a.group_score != GroupScore::kNone && a.n_group > 1) {
    const int per_group = n / a.n_group;
    for (int g = threadIdx.x; g < a.n_group; g += blockDim.x) {
      const float* s = choice + g * per_group;
      if (a.group_score == GroupScore::kMax) {
        float best = -INFINITY;
        for (int e = 0; e < per_group; ++e) best = best < s[e] ? s[e] : best;  // std::max(best, s[e])
        group[g] = best;
      } else {
        float first = -INFINITY, second = -INFINITY;
        for (int e = 0; e < per_group; ++e) {
          if (s[e] > first) {
            second = first;
            first = s[e];
          } else if (s[e] > second) {
            second = s[e];
          }
        }
        group[g] = __fadd_rn(first, second);
      }
      kept[g] = 0;
    }
    __syncthreads();
    const int n_kept = min(a.topk_group, a.n_group);
    block_select_top_k(group, a.n_group, n_kept, top, rank);
    if (threadIdx.x == 0) {
      for (int j = 0; j < n_kept; ++j) kept[top[j]] = 1;
    }
    __syncthreads();
    const float dropped = a.dropped_to_minus_inf ? -INFINITY : 0.0f;
    for (int e = threadIdx.x; e < a.n_group * per_group; e += blockDim.x) {
      if (!kept[e / per_group]) choice[e] = dropped;
    }
    __syncthreads();
  }

  block_select_top_k(choice, n, k, top, rank);
  if (threadIdx.x == 0) {  // the sum in the reference's order; the weights one thread each
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum = __fadd_rn(sum, scores[top[j]]);
    s_denom = __fadd_rn(sum, a.renorm_epsilon);
  }
  __syncthreads();
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    float w = scores[top[j]];
    if (a.norm_topk_prob) w = __fdiv_rn(w, s_denom);
    if (a.routed_scaling_factor != 1.0f) w = __fmul_rn(w, a.routed_scaling_factor);
    weights[j * a.w_s1] = w;
    ids[j * a.ids_s1] = top[j];
  }
}

// Block t routes token t.
static __global__ void route_kernel(RouteArgs a) {
  kernel_prologue();
  route_token(a, blockIdx.x);
}

// ---- one warp per token: routers without expert groups ------------------------------------------
//
// The same rules as route_token for a router of at most kWarpRouteMaxExperts experts, top_k <= 32
// and no group selection (Qwen2/3-MoE, OLMoE, Mixtral, GPT-OSS, DeepSeek-V2-Lite, GLM-4-MoE with
// one group): lane l holds the scores of experts l, l + 32, ... in registers, the top-k is k rounds
// of a warp argmax in ranks_before order (only the winner's lane looks for its next best), and the
// sums the reference forms on one thread run in its order over the chosen lanes. No shared memory
// and no block barrier (H100 ncu, 2026-12-07: the block kernels' routing and bucketing of one
// decode token took 10.6 us; the warp's time is not yet measured). Softmax's sum over all experts is a warp sum
// (route_token: a block sum), so its weights agree with route_token's to rounding, as both do
// with the reference; ids are the reference's exactly.
inline constexpr int kWarpRoutePerLane = 16;
inline constexpr int kWarpRouteMaxExperts = kWarpRoutePerLane * kWarpSize;
inline constexpr int kWarpRouteTokensPerBlock = 4;

// MOE_CUDA_WARP_ROUTE=0 keeps every router on the block path (for A/B measurements). Read once.
inline bool warp_route(const RouterConfig& c) {
  static const bool off = [] {
    const char* v = std::getenv("MOE_CUDA_WARP_ROUTE");
    return v != nullptr && v[0] == '0';
  }();
  const bool groups = c.group_score != GroupScore::kNone && c.n_group > 1;
  return !off && !groups && c.n_experts <= kWarpRouteMaxExperts && c.top_k <= kWarpSize;
}

// Token t routed by the calling warp (warp_route(config)); lane j < k returns choice j's expert
// and weight (also written to ids and weights), the other lanes -1 and 0.
__device__ __forceinline__ void route_token_warp(const RouteArgs& a, std::size_t t, int& my_id, float& my_weight) {
  constexpr unsigned kAll = 0xffffffffu;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int n = a.n, k = a.k;
  const float* logits = a.logits + t * a.ld_logits;
  float score[kWarpRoutePerLane], choice[kWarpRoutePerLane];
  unsigned taken = 0;  // bit i: expert lane + 32 i is chosen already or does not exist
#pragma unroll
  for (int i = 0; i < kWarpRoutePerLane; ++i) {
    const int e = lane + i * kWarpSize;
    score[i] = e < n ? logits[e] : -INFINITY;
    if (e >= n) taken |= 1u << i;
  }
  if (a.scoring == RouterScoring::kSoftmax) {
    float m = -INFINITY;
#pragma unroll
    for (int i = 0; i < kWarpRoutePerLane; ++i) m = fmaxf(m, score[i]);  // absent experts: -inf
    m = warp_max(m);
    double sum = 0.0;
#pragma unroll
    for (int i = 0; i < kWarpRoutePerLane; ++i) {
      if (!(taken >> i & 1u)) {
        score[i] = m == -INFINITY ? 0.0f : exp_f32(__fsub_rn(score[i], m));
        sum += score[i];
      }
    }
    sum = warp_sum(sum);
    if (m != -INFINITY) {
#pragma unroll
      for (int i = 0; i < kWarpRoutePerLane; ++i) score[i] = static_cast<float>(static_cast<double>(score[i]) / sum);
    }
  } else if (a.scoring == RouterScoring::kSigmoid) {
#pragma unroll
    for (int i = 0; i < kWarpRoutePerLane; ++i) score[i] = sigmoid_f32(score[i]);
  }
#pragma unroll
  for (int i = 0; i < kWarpRoutePerLane; ++i) {
    const int e = lane + i * kWarpSize;
    const bool biased = a.scoring != RouterScoring::kTopkSoftmax && a.bias != nullptr && e < n;
    choice[i] = a.scoring == RouterScoring::kTopkSoftmax ? score[i]
                                                         : __fadd_rn(score[i], biased ? a.bias[e * a.bias_stride] : 0.0f);
  }

  // This lane's best candidate (none: index n), kept until the lane wins a round.
  const auto lane_best = [&](float& bv, int& bi, float& bs) {
    bv = 0.0f, bi = n, bs = 0.0f;
#pragma unroll
    for (int i = 0; i < kWarpRoutePerLane; ++i) {
      const int e = lane + i * kWarpSize;
      if (!(taken >> i & 1u) && (bi == n || ranks_before_dev(choice[i], e, bv, bi))) bv = choice[i], bi = e, bs = score[i];
    }
  };
  float bv, bs;
  int bi;
  lane_best(bv, bi, bs);
  my_id = -1;
  float my_score = 0.0f;
  for (int j = 0; j < k; ++j) {
    float wv = bv;
    int wi = bi;
#pragma unroll
    for (int o = kWarpSize / 2; o > 0; o /= 2) {
      const float ov = __shfl_xor_sync(kAll, wv, o);
      const int oi = __shfl_xor_sync(kAll, wi, o);
      if (oi != n && (wi == n || ranks_before_dev(ov, oi, wv, wi))) wv = ov, wi = oi;
    }
    const float ws = __shfl_sync(kAll, bs, wi % kWarpSize);  // wi < n: k <= n candidates exist
    if (lane == j) my_id = wi, my_score = ws;
    if (lane == wi % kWarpSize) {
      taken |= 1u << (wi / kWarpSize);
      lane_best(bv, bi, bs);
    }
  }

  if (a.scoring == RouterScoring::kTopkSoftmax) {
    // detail::softmax_row over the chosen logits, the max and the double sum in choice order
    float m = -INFINITY;
    for (int j = 0; j < k; ++j) m = fmaxf(m, __shfl_sync(kAll, my_score, j));
    const float ex = lane < k && m != -INFINITY ? exp_f32(__fsub_rn(my_score, m)) : 0.0f;
    double sum = 0.0;
    for (int j = 0; j < k; ++j) sum += __shfl_sync(kAll, ex, j);
    my_weight = m == -INFINITY ? 0.0f : static_cast<float>(static_cast<double>(ex) / sum);
  } else {
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum = __fadd_rn(sum, __shfl_sync(kAll, my_score, j));
    const float denom = __fadd_rn(sum, a.renorm_epsilon);
    float w = my_score;
    if (a.norm_topk_prob) w = __fdiv_rn(w, denom);
    if (a.routed_scaling_factor != 1.0f) w = __fmul_rn(w, a.routed_scaling_factor);
    my_weight = w;
  }
  if (lane >= k) my_weight = 0.0f;
  if (lane < k) {
    a.ids[t * a.ids_s0 + lane * a.ids_s1] = my_id;
    a.weights[t * a.w_s0 + lane * a.w_s1] = my_weight;
  }
}

// Warp w of block b routes token b · kWarpRouteTokensPerBlock + w.
static __global__ void __launch_bounds__(kWarpRouteTokensPerBlock * kWarpSize) route_warp_kernel(RouteArgs a, int n_tokens) {
  kernel_prologue();
  const int t = static_cast<int>(blockIdx.x) * kWarpRouteTokensPerBlock + static_cast<int>(threadIdx.x) / kWarpSize;
  if (t >= n_tokens) return;
  int id;
  float w;
  route_token_warp(a, static_cast<std::size_t>(t), id, w);
}

// The arguments and the dynamic shared memory of route_token (route's checks done).
inline RouteArgs route_args(const RouterConfig& c, DeviceView<const float, 2> logits,
                            DeviceView<const float, 1> correction, DeviceView<std::int32_t, 2> ids,
                            DeviceView<float, 2> weights) {
  RouteArgs a{};
  a.logits = logits.data(), a.ld_logits = logits.stride(0);
  a.bias = correction.extent(0) != 0 ? correction.data() : nullptr, a.bias_stride = correction.stride(0);
  a.ids = ids.data(), a.ids_s0 = ids.stride(0), a.ids_s1 = ids.stride(1);
  a.weights = weights.data(), a.w_s0 = weights.stride(0), a.w_s1 = weights.stride(1);
  a.n = static_cast<int>(c.n_experts), a.k = static_cast<int>(c.top_k);
  a.n_group = static_cast<int>(c.n_group), a.topk_group = static_cast<int>(c.topk_group);
  a.scoring = c.scoring, a.group_score = c.group_score;
  a.norm_topk_prob = c.norm_topk_prob, a.dropped_to_minus_inf = c.dropped_groups_to_minus_inf;
  a.renorm_epsilon = c.renorm_epsilon, a.routed_scaling_factor = c.routed_scaling_factor;
  return a;
}
inline std::size_t route_shared_bytes(const RouterConfig& c) {
  return sizeof(float) * (2 * c.n_experts + c.n_group) +
         sizeof(int) * (std::max(c.top_k, c.n_group) + c.n_group + c.n_experts);
}

// route's argument checks (kInvalidArgument); false when there is nothing to route.
inline bool check_route(const RouterConfig& c, DeviceView<const float, 2> logits, DeviceView<const float, 1> correction,
                        DeviceView<float, 1> scratch, DeviceView<std::int32_t, 2> ids, DeviceView<float, 2> weights) {
  require(logits.extent(1) == c.n_experts && ids.extent(0) == logits.extent(0) &&
              weights.extent(0) == logits.extent(0) && ids.extent(1) == c.top_k && weights.extent(1) == c.top_k &&
              scratch.extent(0) >= router_scratch_floats(c) &&
              (correction.extent(0) == 0 || correction.extent(0) == c.n_experts),
          ErrorCode::kInvalidArgument, "route: logits [{}, {}], ids [{}, {}], weights [{}, {}] for {} experts, top {}",
          logits.extent(0), logits.extent(1), ids.extent(0), ids.extent(1), weights.extent(0), weights.extent(1),
          c.n_experts, c.top_k);
  require(c.top_k <= c.n_experts && c.n_group >= 1 && c.n_group <= kMaxRouterGroups &&
              c.n_experts <= static_cast<index_t>(limits::kMaxExperts),
          ErrorCode::kInvalidArgument, "route(cuda): top {} of {} experts in {} groups is not a valid router",
          c.top_k, c.n_experts, c.n_group);
  require_unit_inner_stride(logits, "route", "logits");
  require_int_range(logits.extent(0), "route", "n_tokens");
  return logits.extent(0) != 0 && c.top_k != 0;
}

// route's launch (a block per token) for checked arguments.
inline void launch_route(const RouterConfig& c, const RouteArgs& a, index_t n_tokens) {
  if (warp_route(c)) {
    const auto blocks = static_cast<unsigned>((n_tokens + kWarpRouteTokensPerBlock - 1) / kWarpRouteTokensPerBlock);
    launch(route_warp_kernel, blocks, kWarpRouteTokensPerBlock * kWarpSize, 0, a, static_cast<int>(n_tokens));
    ::moe::cuda::check_launch("route_warp_kernel");
    return;
  }
  const std::size_t smem = route_shared_bytes(c);
  allow_dynamic_shared(route_kernel, smem, "route");
  // Enough threads for the top-k's n² comparisons (block_select_top_k), up to 1024.
  const index_t pairs = std::min<index_t>(c.n_experts * c.n_experts, kRouterMaxThreads);
  const int threads = static_cast<int>(std::max<index_t>(kWarpSize, (pairs + 31) / 32 * 32));
  launch(route_kernel, static_cast<unsigned>(n_tokens), threads, smem, a);
  ::moe::cuda::check_launch("route_kernel");
}

}  // namespace cuda_detail

// Routes n tokens: logits [n, n_experts] (GPT-OSS: router bias added), correction [n_experts]
// f32 e_score_correction_bias or [0], scratch >= router_scratch_floats(c) floats (checked, not
// used: each block keeps its token's scores in shared memory), ids and weights [n, top_k]; all
// device memory. The configuration was checked at load time (layers::validate_router).
inline void route(backend::cuda, const RouterConfig& c, DeviceView<const float, 2> logits,
                  DeviceView<const float, 1> correction, DeviceView<float, 1> scratch, DeviceView<std::int32_t, 2> ids,
                  DeviceView<float, 2> weights) {
  if (!cuda_detail::check_route(c, logits, correction, scratch, ids, weights)) return;
  cuda_detail::launch_route(c, cuda_detail::route_args(c, logits, correction, ids, weights), logits.extent(0));
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
