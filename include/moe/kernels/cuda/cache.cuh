// The pass-wide KV-cache ops on backend::cuda (kernels/reference/cache.hpp): one launch appends
// every sequence's new rows to its cache, and one launch attends every query row of every
// sequence, each block reading its row's cache and position from the slot table in device
// memory (attention_kernel's pass-wide form). No host argument changes from one decode step to
// the next, so a captured step replays (kernels/cuda/graph.cuh).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/attention.cuh"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/rope.cuh"
#include "moe/kernels/reference/cache.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kAppendThreads = 128;

struct AppendArgs {
  const CacheSlot* slots;
  const std::int32_t* token_slot;
  int n_slots;
  const float* k;
  std::size_t ld_k;
  const float* v;
  std::size_t ld_v;
  std::size_t layer_offset, key_width, value_width;
};

// Where row t of the pass goes in its slot's cache (position start + (t - row0)): false for a row
// whose slot is not valid or would overflow its cache (the row is skipped).
__device__ __forceinline__ bool cache_row(const AppendArgs& a, std::size_t t, float*& keys, float*& values) {
  const int i = a.token_slot[t];
  if (i < 0 || i >= a.n_slots) return false;
  const CacheSlot s = a.slots[i];
  if (t < static_cast<std::size_t>(s.row0) || t >= static_cast<std::size_t>(s.row0) + s.n || s.start < 0 ||
      s.start + s.n > s.capacity) {
    return false;
  }
  const std::size_t cap = static_cast<std::size_t>(s.capacity);
  const std::size_t row = static_cast<std::size_t>(s.start) + (t - static_cast<std::size_t>(s.row0));
  keys = s.data + cap * a.layer_offset + row * a.key_width;
  values = s.data + cap * (a.layer_offset + a.key_width) + row * a.value_width;
  return true;
}

// Row t = blockIdx.x: its keys and values into its slot's cache.
static __global__ void __launch_bounds__(kAppendThreads) append_cache_kernel(AppendArgs a) {
  kernel_prologue();
  const std::size_t t = blockIdx.x;
  float *keys = nullptr, *values = nullptr;
  if (!cache_row(a, t, keys, values)) return;
  const float* k = a.k + t * a.ld_k;
  const float* v = a.v + t * a.ld_v;
  for (std::size_t c = threadIdx.x; c < a.key_width; c += blockDim.x) keys[c] = k[c];
  for (std::size_t c = threadIdx.x; c < a.value_width; c += blockDim.x) values[c] = v[c];
}

// qk_norm_rope_kernel's append (kernels/cuda/rope.cuh): a k-head block writes its finished head to
// the cache, a v block its token's values; the cache gets append_cache's bits.
struct CacheAppend {
  static constexpr bool kActive = true;
  AppendArgs a;  // a.k unused: the heads come from the rope blocks
  __device__ void key(std::size_t t, std::size_t h, const float* head, int head_dim) const {
    float *keys = nullptr, *values = nullptr;
    if (!cache_row(a, t, keys, values)) return;
    for (int c = threadIdx.x; c < head_dim; c += blockDim.x) keys[h * head_dim + c] = head[c];
  }
  __device__ void value(std::size_t t) const {
    float *keys = nullptr, *values = nullptr;
    if (!cache_row(a, t, keys, values)) return;
    const float* v = a.v + t * a.ld_v;
    for (std::size_t c = threadIdx.x; c < a.value_width; c += blockDim.x) values[c] = v[c];
  }
};

inline void check_pass(const PassSlots<device_memory>& p, index_t n, const char* op) {
  require(p.token_slot.extent(0) == n && p.slots.extent(0) >= 1 && p.slots.extent(0) <= n &&
              (n <= 1 || p.token_slot.stride(0) == 1) && (p.slots.extent(0) <= 1 || p.slots.stride(0) == 1),
          ErrorCode::kInvalidArgument, "{}(cuda): {} rows, {} token slots, {} slots (contiguous, 1 <= slots <= rows)",
          op, n, p.token_slot.extent(0), p.slots.extent(0));
  require_int_range(p.slots.extent(0), op, "slots");
  require(n <= 0x7fffffff, ErrorCode::kInvalidArgument, "{}(cuda): {} rows exceed the grid", op, n);
}

inline void bind_pass(AttnArgs& a, const PassSlots<device_memory>& p, const CacheLayer& l, bool latent) {
  a.slots = p.slots.data();
  a.token_slot = p.token_slot.data();
  a.n_slots = static_cast<int>(p.slots.extent(0));
  a.layer_offset = l.offset, a.key_width = l.key_width, a.value_width = l.value_width;
  a.latent = latent;
  a.start = 0;
}

}  // namespace cuda_detail

// Appends row t of k [n, key_width] and v [n, value_width] to the cache of token_slot[t] (layer l).
inline void append_cache(backend::cuda, const PassSlots<device_memory>& p, const CacheLayer& l,
                         DeviceView<const float, 2> k, DeviceView<const float, 2> v) {
  const index_t n = k.extent(0);
  detail::check_cache_rows(p, l, n, k.extent(1), v.extent(1), "append_cache");
  require(v.extent(0) == n, ErrorCode::kInvalidArgument, "append_cache: {} key rows, {} value rows", n, v.extent(0));
  cuda_detail::require_unit_inner_stride(k, "append_cache", "k");
  cuda_detail::require_unit_inner_stride(v, "append_cache", "v");
  if (n == 0) return;
  cuda_detail::check_pass(p, n, "append_cache");
  const cuda_detail::AppendArgs a{p.slots.data(), p.token_slot.data(), static_cast<int>(p.slots.extent(0)),
                                  k.data(), k.stride(0), v.data(), v.stride(0), l.offset, l.key_width, l.value_width};
  cuda_detail::launch(cuda_detail::append_cache_kernel, static_cast<unsigned>(n), cuda_detail::kAppendThreads, 0, a);
  ::moe::cuda::check_launch("append_cache_kernel");
}

// qk_norm_rope of q [n, H, hd] and k [n, KV, hd], then append_cache of k's rows [n, KV·hd] and v
// [n, value_width], in one launch (kernels/reference/fused.hpp).
template <class W>
void qk_norm_rope_append(backend::cuda, DeviceView<float, 3> q, DeviceView<float, 3> k, DeviceView<const float, 2> v,
                         DeviceView<const W, 1> q_norm, DeviceView<const W, 1> k_norm, float eps,
                         DeviceView<const float, 2> cos, DeviceView<const float, 2> sin, RopePairing pairing,
                         const PassSlots<device_memory>& p, const CacheLayer& l) {
  if constexpr (cuda_detail::is_cuda_weight_v<W>) {
    const index_t n = k.extent(0);
    detail::check_cache_rows(p, l, n, k.extent(1) * k.extent(2), v.extent(1), "qk_norm_rope_append");
    require(v.extent(0) == n && q.extent(0) == n, ErrorCode::kInvalidArgument,
            "qk_norm_rope_append: {} query rows, {} key rows, {} value rows", q.extent(0), n, v.extent(0));
    cuda_detail::require_unit_inner_stride(v, "qk_norm_rope_append", "v");
    if (n == 0) return;
    cuda_detail::check_pass(p, n, "qk_norm_rope_append");
    const cuda_detail::CacheAppend append{{p.slots.data(), p.token_slot.data(), static_cast<int>(p.slots.extent(0)),
                                           nullptr, 0, v.data(), v.stride(0), l.offset, l.key_width, l.value_width}};
    cuda_detail::launch_qk_norm_rope(q, k, q_norm, k_norm, eps, cos, sin, pairing, append, n);
  } else {
    static_assert(dependent_false<W>, "kernels::qk_norm_rope_append is not implemented for backend::cuda with this "
                                      "weight type (implemented: float, bf16, f16)");
  }
}

// Attention of every row to its own sequence's cache of layer l: q [n, n_heads·head_dim], sinks
// [n_heads] or [0], out [n, n_heads·v_head_dim]; p.max_keys sets the key split of the blocks.
inline void cached_attention(backend::cuda, const AttentionShape& s, const PassSlots<device_memory>& p,
                             const CacheLayer& l, DeviceView<const float, 2> q, DeviceView<const float, 1> sinks,
                             DeviceView<float, 2> out) {
  const index_t n = q.extent(0);
  require(s.n_kv_heads > 0 && s.n_heads % s.n_kv_heads == 0 && q.extent(1) == s.n_heads * s.head_dim &&
              l.key_width == s.n_kv_heads * s.head_dim && l.value_width == s.n_kv_heads * s.v_head_dim &&
              out.extent(0) == n && out.extent(1) == s.n_heads * s.v_head_dim &&
              (sinks.extent(0) == 0 || sinks.extent(0) == s.n_heads),
          ErrorCode::kInvalidArgument,
          "cached_attention: q [{}, {}], a cache layer of {} / {}, {} sinks, out [{}, {}] do not fit {} heads of {} / "
          "{} kv heads of {}",
          n, q.extent(1), l.key_width, l.value_width, sinks.extent(0), out.extent(0), out.extent(1), s.n_heads,
          s.head_dim, s.n_kv_heads, s.v_head_dim);
  cuda_detail::require_unit_inner_stride(q, "cached_attention", "q");
  cuda_detail::require_unit_inner_stride(out, "cached_attention", "out");
  cuda_detail::require_int_range(s.head_dim, "cached_attention", "head_dim");
  cuda_detail::require_int_range(s.v_head_dim, "cached_attention", "v_head_dim");
  if (n == 0) return;
  cuda_detail::check_pass(p, n, "cached_attention");
  cuda_detail::AttnArgs a{};
  a.qa = q.data(), a.ld_qa = q.stride(0), a.head_qa = s.head_dim;
  a.group_ka = s.head_dim, a.group_v = s.v_head_dim;
  a.out = out.data(), a.ld_out = out.stride(0), a.head_out = s.v_head_dim;
  a.sinks = sinks.extent(0) != 0 ? sinks.data() : nullptr;
  a.sinks_stride = sinks.stride(0);
  a.da = static_cast<int>(s.head_dim), a.db = 0, a.dv = static_cast<int>(s.v_head_dim);
  a.group = static_cast<int>(s.n_heads / s.n_kv_heads);
  a.window = s.sliding_window, a.chunk = s.chunk, a.scale = s.scale;
  cuda_detail::bind_pass(a, p, l, false);
  index_t keys_max = s.sliding_window > 0 ? std::min(s.sliding_window, p.max_keys) : p.max_keys;
  if (s.chunk > 0) keys_max = std::min(s.chunk, keys_max);
  cuda_detail::launch_attention(a, n, s.n_heads, keys_max, "cached_attention");
}

// Latent attention (MLA, absorbed form) of every row to its sequence's latent cache of layer l
// (keys: the latent [rank], values: the rope key [rope]): q [n, n_heads·(nope+rope)], q_latent and
// out_latent [n, n_heads·rank].
inline void cached_mla_attention(backend::cuda, const MlaShape& m, const PassSlots<device_memory>& p,
                                 const CacheLayer& l, DeviceView<const float, 2> q,
                                 DeviceView<const float, 2> q_latent, DeviceView<float, 2> out_latent) {
  const index_t n = q.extent(0), r = m.kv_lora_rank;
  require(q.extent(1) == m.n_heads * m.qk() && q_latent.extent(0) == n && q_latent.extent(1) == m.n_heads * r &&
              l.key_width == r && l.value_width == m.rope && out_latent.extent(0) == n &&
              out_latent.extent(1) == m.n_heads * r,
          ErrorCode::kInvalidArgument,
          "cached_mla_attention: q [{}, {}], q_latent [{}, {}], a cache layer of {} / {}, out [{}, {}] for {} heads "
          "of rank {} and rope {}",
          n, q.extent(1), q_latent.extent(0), q_latent.extent(1), l.key_width, l.value_width, out_latent.extent(0),
          out_latent.extent(1), m.n_heads, r, m.rope);
  cuda_detail::require_unit_inner_stride(q, "cached_mla_attention", "q");
  cuda_detail::require_unit_inner_stride(q_latent, "cached_mla_attention", "q_latent");
  cuda_detail::require_unit_inner_stride(out_latent, "cached_mla_attention", "out_latent");
  cuda_detail::require_int_range(r, "cached_mla_attention", "kv_lora_rank");
  cuda_detail::require_int_range(m.rope, "cached_mla_attention", "rope");
  if (n == 0) return;
  cuda_detail::check_pass(p, n, "cached_mla_attention");
  cuda_detail::AttnArgs a{};
  a.qa = q_latent.data(), a.ld_qa = q_latent.stride(0), a.head_qa = r;
  a.qb = q.data() + m.nope, a.ld_qb = q.stride(0), a.head_qb = m.qk();
  a.out = out_latent.data(), a.ld_out = out_latent.stride(0), a.head_out = r;
  a.da = static_cast<int>(r), a.db = static_cast<int>(m.rope), a.dv = static_cast<int>(r);
  a.group = static_cast<int>(std::max<index_t>(m.n_heads, 1));
  a.window = 0, a.scale = m.scale;
  cuda_detail::bind_pass(a, p, l, true);
  cuda_detail::launch_attention(a, n, m.n_heads, p.max_keys, "cached_mla_attention");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
