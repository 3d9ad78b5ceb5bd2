// DeepSeek sparse attention on backend::cuda (kernels/reference/dsa.hpp is the oracle): the
// indexer keys' append, the per-row top-k selection (one block per row: threads score the row's
// positions into shared memory, one thread runs the same nth_element as the reference), MLA over
// the selected positions (one thread per row and head, online softmax) and the key LayerNorm.
// Simple, not tuned: the selection needs (context) · 8 bytes of shared memory per row.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/dsa.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

// The slot of row t, or null when the table does not hold the row.
__device__ inline const CacheSlot* dsa_row_slot(const CacheSlot* slots, const std::int32_t* token_slot, int n_slots,
                                                std::size_t t) {
  const int i = token_slot[t];
  if (i < 0 || i >= n_slots) return nullptr;
  const CacheSlot* s = slots + i;
  if (t < static_cast<std::size_t>(s->row0) || t >= static_cast<std::size_t>(s->row0) + s->n || s->start < 0 ||
      s->start + s->n > s->capacity) {
    return nullptr;
  }
  return s;
}

__device__ inline float* dsa_index_keys(const CacheSlot& s, const CacheLayer& l) {
  return s.data + static_cast<std::size_t>(s.capacity) * static_cast<std::size_t>(l.offset + l.key_width + l.value_width);
}

static __global__ void append_index_keys_kernel(const CacheSlot* slots, const std::int32_t* token_slot, int n_slots,
                                         CacheLayer l, const float* k, std::size_t ld_k) {
  kernel_prologue();
  const std::size_t t = blockIdx.x;
  const CacheSlot* s = dsa_row_slot(slots, token_slot, n_slots, t);
  if (s == nullptr) return;
  const std::size_t row = static_cast<std::size_t>(s->start) + (t - static_cast<std::size_t>(s->row0));
  float* dst = dsa_index_keys(*s, l) + row * static_cast<std::size_t>(l.index_width);
  for (std::size_t c = threadIdx.x; c < static_cast<std::size_t>(l.index_width); c += blockDim.x) dst[c] = k[t * ld_k + c];
}

static __global__ void dsa_select_kernel(const CacheSlot* slots, const std::int32_t* token_slot, int n_slots, CacheLayer l,
                                  DsaShape d, const float* q, std::size_t ld_q, const float* w, std::size_t ld_w,
                                  std::int32_t* sel, std::size_t ld_sel) {
  kernel_prologue();
  extern __shared__ detail::DsaPair row[];
  const std::size_t t = blockIdx.x;
  const CacheSlot* s = dsa_row_slot(slots, token_slot, n_slots, t);
  std::int32_t* out = sel + t * ld_sel;
  if (s == nullptr) {
    for (int i = threadIdx.x; i < d.top_k; i += blockDim.x) out[i] = -1;
    return;
  }
  const long count = static_cast<long>(s->start) + static_cast<long>(t - static_cast<std::size_t>(s->row0)) + 1;
  const long total = static_cast<long>(s->start) + s->n;
  const float* keys = dsa_index_keys(*s, l);
  for (long j = threadIdx.x; j < total; j += blockDim.x) {
    float v = -3.402823466e38f;
    if (j < count) v = detail::dsa_index_score(d, q + t * ld_q, w + t * ld_w, keys + j * d.head_dim);
    row[j] = detail::DsaPair{v, static_cast<std::int32_t>(j)};
  }
  __syncthreads();
  if (threadIdx.x != 0) return;
  const long k = d.top_k < total ? d.top_k : total;
  detail::dsa_nth_element(row, row + (k - 1), row + total);
  long c = 0;
  for (long i = 0; i < k; ++i) {
    if (row[i].pos < count) out[c++] = row[i].pos;
  }
  for (long i = 1; i < c; ++i) {  // ascending positions
    const std::int32_t v = out[i];
    long j = i;
    while (j > 0 && out[j - 1] > v) {
      out[j] = out[j - 1];
      --j;
    }
    out[j] = v;
  }
  for (long i = c; i < d.top_k; ++i) out[i] = -1;
}

static __global__ void sparse_mla_kernel(const CacheSlot* slots, const std::int32_t* token_slot, int n_slots, CacheLayer l,
                                  MlaShape m, const float* q, std::size_t ld_q, const float* ql, std::size_t ld_ql,
                                  const std::int32_t* sel, std::size_t ld_sel, int top_k, float* out,
                                  std::size_t ld_out, std::size_t n_rows) {
  kernel_prologue();
  const std::size_t item = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item >= n_rows * static_cast<std::size_t>(m.n_heads)) return;
  const std::size_t t = item / m.n_heads, h = item % m.n_heads;
  const int r = static_cast<int>(m.kv_lora_rank);
  float* o = out + t * ld_out + h * r;
  for (int i = 0; i < r; ++i) o[i] = 0.0f;
  const CacheSlot* s = dsa_row_slot(slots, token_slot, n_slots, t);
  if (s == nullptr) return;
  const std::size_t cap = static_cast<std::size_t>(s->capacity);
  const float* latent = s->data + cap * static_cast<std::size_t>(l.offset);
  const float* k_rope = s->data + cap * static_cast<std::size_t>(l.offset + l.key_width);
  const float* qlh = ql + t * ld_ql + h * r;
  const float* qr = q + t * ld_q + h * (m.nope + m.rope) + m.nope;
  const std::int32_t* row = sel + t * ld_sel;
  float mx = -3.402823466e38f, sum = 0.0f;
  for (int i = 0; i < top_k && row[i] >= 0; ++i) {
    const float* c = latent + static_cast<std::size_t>(row[i]) * r;
    const float* kr = k_rope + static_cast<std::size_t>(row[i]) * m.rope;
    float sc = 0.0f;
    for (int e = 0; e < r; ++e) sc = fmaf(qlh[e], c[e], sc);
    float sr = 0.0f;
    for (int e = 0; e < m.rope; ++e) sr = fmaf(qr[e], kr[e], sr);
    const float score = (sc + sr) * m.scale;
    if (score > mx) {
      const float rescale = __expf(mx - score);
      sum *= rescale;
      for (int e = 0; e < r; ++e) o[e] *= rescale;
      mx = score;
    }
    const float p = __expf(score - mx);
    sum += p;
    for (int e = 0; e < r; ++e) o[e] = fmaf(p, c[e], o[e]);
  }
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int e = 0; e < r; ++e) o[e] *= inv;
}

template <class W>
__global__ void layer_norm_kernel(const float* x, std::size_t ld_x, const W* weight, const W* bias, float eps,
                                  float* y, std::size_t ld_y, int d, std::size_t n) {
  kernel_prologue();
  const std::size_t t = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const float* xr = x + t * ld_x;
  double mean = 0.0;
  for (int i = 0; i < d; ++i) mean += xr[i];
  mean /= d;
  double var = 0.0;
  for (int i = 0; i < d; ++i) var += (xr[i] - mean) * (xr[i] - mean);
  var /= d;
  const float inv = static_cast<float>(1.0 / sqrt(var + static_cast<double>(eps)));
  const float mu = static_cast<float>(mean);
  for (int i = 0; i < d; ++i) {
    y[t * ld_y + i] = (xr[i] - mu) * inv * load_as_float(weight, i) + load_as_float(bias, i);
  }
}

}  // namespace cuda_detail

inline void append_index_keys(backend::cuda, const PassSlots<device_memory>& p, const CacheLayer& l,
                              DeviceView<const float, 2> k) {
  const index_t n = k.extent(0);
  require(k.extent(1) == l.index_width && l.index_width > 0 && p.token_slot.extent(0) == n,
          ErrorCode::kInvalidArgument, "append_index_keys: {} keys of width {} for a layer of index width {}, {} slots",
          n, k.extent(1), l.index_width, p.token_slot.extent(0));
  cuda_detail::require_unit_inner_stride(k, "append_index_keys", "k");
  if (n == 0) return;
  cuda_detail::check_pass(p, n, "append_index_keys");
  cuda_detail::launch(cuda_detail::append_index_keys_kernel, static_cast<unsigned>(n), 128, 0, 
      p.slots.data(), p.token_slot.data(), static_cast<int>(p.slots.extent(0)), l, k.data(), k.stride(0));
  ::moe::cuda::check_launch("append_index_keys_kernel");
}

inline void dsa_select(backend::cuda, const DsaShape& d, const PassSlots<device_memory>& p, const CacheLayer& l,
                       DeviceView<const float, 2> q, DeviceView<const float, 2> w, DeviceView<std::int32_t, 2> sel) {
  detail::check_dsa_select(d, l, q, w, sel);
  const index_t n = q.extent(0);
  cuda_detail::require_unit_inner_stride(q, "dsa_select", "q");
  cuda_detail::require_unit_inner_stride(w, "dsa_select", "w");
  cuda_detail::require_unit_inner_stride(sel, "dsa_select", "selection");
  if (n == 0) return;
  cuda_detail::check_pass(p, n, "dsa_select");
  const std::size_t bytes = static_cast<std::size_t>(p.max_keys) * sizeof(detail::DsaPair);
  cuda_detail::allow_dynamic_shared(cuda_detail::dsa_select_kernel, bytes, "dsa_select");
  cuda_detail::launch(cuda_detail::dsa_select_kernel, static_cast<unsigned>(n), 128, bytes, 
      p.slots.data(), p.token_slot.data(), static_cast<int>(p.slots.extent(0)), l, d, q.data(), q.stride(0), w.data(),
      w.stride(0), sel.data(), sel.stride(0));
  ::moe::cuda::check_launch("dsa_select_kernel");
}

inline void cached_sparse_mla_attention(backend::cuda, const MlaShape& m, const PassSlots<device_memory>& p,
                                        const CacheLayer& l, DeviceView<const float, 2> q,
                                        DeviceView<const float, 2> q_latent, DeviceView<const std::int32_t, 2> sel,
                                        DeviceView<float, 2> out_latent) {
  detail::check_sparse_mla(m, l, q, q_latent, sel, out_latent);
  const index_t n = q.extent(0);
  cuda_detail::require_unit_inner_stride(q, "cached_sparse_mla_attention", "q");
  cuda_detail::require_unit_inner_stride(q_latent, "cached_sparse_mla_attention", "q_latent");
  cuda_detail::require_unit_inner_stride(out_latent, "cached_sparse_mla_attention", "out_latent");
  cuda_detail::require_int_range(m.kv_lora_rank, "cached_sparse_mla_attention", "kv_lora_rank");
  cuda_detail::require_int_range(sel.extent(1), "cached_sparse_mla_attention", "top_k");
  if (n == 0) return;
  cuda_detail::check_pass(p, n, "cached_sparse_mla_attention");
  const std::size_t items = static_cast<std::size_t>(n) * static_cast<std::size_t>(m.n_heads);
  const unsigned blocks = static_cast<unsigned>((items + 127) / 128);
  cuda_detail::launch(cuda_detail::sparse_mla_kernel, blocks, 128, 0, 
      p.slots.data(), p.token_slot.data(), static_cast<int>(p.slots.extent(0)), l, m, q.data(), q.stride(0),
      q_latent.data(), q_latent.stride(0), sel.data(), sel.stride(0), static_cast<int>(sel.extent(1)), out_latent.data(),
      out_latent.stride(0), static_cast<std::size_t>(n));
  ::moe::cuda::check_launch("sparse_mla_kernel");
}

template <class W>
void layer_norm(backend::cuda, DeviceView<const float, 2> x, DeviceView<const W, 1> weight, DeviceView<const W, 1> bias,
                float eps, DeviceView<float, 2> out) {
  const index_t n = x.extent(0), d = x.extent(1);
  require(weight.extent(0) == d && bias.extent(0) == d && out.extent(0) == n && out.extent(1) == d,
          ErrorCode::kInvalidArgument, "layer_norm: x [{}, {}], weight [{}], bias [{}], out [{}, {}]", n, d,
          weight.extent(0), bias.extent(0), out.extent(0), out.extent(1));
  cuda_detail::require_unit_inner_stride(x, "layer_norm", "x");
  cuda_detail::require_unit_inner_stride(out, "layer_norm", "out");
  cuda_detail::require_int_range(d, "layer_norm", "d");
  if (n == 0) return;
  cuda_detail::launch(cuda_detail::layer_norm_kernel<W>, static_cast<unsigned>((n + 127) / 128), 128, 0, 
      x.data(), x.stride(0), weight.data(), bias.data(), eps, out.data(), out.stride(0), static_cast<int>(d),
      static_cast<std::size_t>(n));
  ::moe::cuda::check_launch("layer_norm_kernel");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
