// Gated DeltaNet ops on backend::cuda (kernels/reference/delta_net.hpp): the causal conv with its
// conv state (a thread per channel of a sequence), the q/k L2 norm and gates, the gated delta rule
// (a block per sequence and v-head, a thread per state column: the recurrence is independent per
// column of S, so this simple kernel runs it exactly; prefill uses the same recurrent form, the
// chunked form on the device is future work), the gated RMSNorm and the output gate. Slots are
// read from the pass table in device memory, so a decode step replays.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/cache.cuh"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/elementwise.cuh"
#include "moe/kernels/reference/delta_net.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kDeltaThreads = 128;

struct DeltaDims {
  int nk, nv, dk, dv, K, C, Kd, Vd;
  std::size_t recurrent, state_offset;
};

inline DeltaDims delta_dims(const DeltaNetShape& d, const CacheLayer& l) {
  return DeltaDims{static_cast<int>(d.n_k_heads), static_cast<int>(d.n_v_heads), static_cast<int>(d.k_head_dim),
                   static_cast<int>(d.v_head_dim), static_cast<int>(d.conv_kernel), static_cast<int>(d.conv_dim()),
                   static_cast<int>(d.key_dim()), static_cast<int>(d.value_dim()),
                   static_cast<std::size_t>(d.recurrent_floats()), static_cast<std::size_t>(l.state_offset)};
}

// blockIdx.x = slot, channel = blockIdx.y · blockDim.x + threadIdx.x.
static __global__ void __launch_bounds__(kDeltaThreads)
    delta_conv_kernel(const CacheSlot* slots, DeltaDims d, const float* x, std::size_t ld_x, const float* w,
                      std::size_t ld_w, float* y, std::size_t ld_y) {
  kernel_prologue();
  const CacheSlot s = slots[blockIdx.x];
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= d.C || s.state == nullptr) return;
  float* state = s.state + d.state_offset + d.recurrent;  // [K-1, C]
  const bool fresh = s.start == 0;
  const long long n = s.n, K = d.K;
  const auto in = [&](long long tau) -> float {
    if (tau >= 0) return x[(static_cast<std::size_t>(s.row0) + tau) * ld_x + c];
    return fresh ? 0.0f : state[(K - 1 + tau) * d.C + c];
  };
  for (long long t = 0; t < n; ++t) {
    float acc = 0.0f;
    for (long long j = 0; j < K; ++j) acc = __fmaf_rn(w[c * ld_w + j], in(t - (K - 1 - j)), acc);
    y[(static_cast<std::size_t>(s.row0) + t) * ld_y + c] = silu_f32(acc);
  }
  for (long long i = 0; i + 1 < K; ++i) state[i * d.C + c] = in(n - (K - 1) + i);
}

// blockIdx.x = row: L2-normalise its q and k heads (q scaled), then its gates.
static __global__ void __launch_bounds__(kDeltaThreads)
    delta_gates_kernel(DeltaDims d, float* qkv, std::size_t ld, float* beta, float* g, std::size_t ld_g,
                       const float* a_log, const float* dt_bias, float scale) {
  kernel_prologue();
  const std::size_t t = blockIdx.x;
  for (int h = threadIdx.x; h < 2 * d.nk; h += blockDim.x) {
    float* x = qkv + t * ld + static_cast<std::size_t>(h) * d.dk;
    float ss = 0.0f;
    for (int i = 0; i < d.dk; ++i) ss = __fmaf_rn(x[i], x[i], ss);
    const float inv = 1.0f / sqrtf(ss + 1e-6f);
    const float f = h < d.nk ? scale : 1.0f;
    for (int i = 0; i < d.dk; ++i) x[i] = x[i] * inv * f;
  }
  for (int h = threadIdx.x; h < d.nv; h += blockDim.x) {
    float* b = beta + t * ld_g + h;
    float* a = g + t * ld_g + h;
    *b = sigmoid_f32(*b);
    const float v = *a + dt_bias[h];
    const float sp = v > 20.0f ? v : log1pf(exp_f32(v));
    *a = -exp_f32(a_log[h]) * sp;
  }
}

// blockIdx.x = slot, blockIdx.y = v-head; thread j owns column j of the head's state S [dk, dv].
static __global__ void __launch_bounds__(kDeltaThreads)
    delta_rule_kernel(const CacheSlot* slots, DeltaDims d, const float* qkv, std::size_t ld, const float* g,
                      const float* beta, std::size_t ld_g, float* out, std::size_t ld_o) {
  kernel_prologue();
  const CacheSlot s = slots[blockIdx.x];
  const int h = blockIdx.y;
  if (s.state == nullptr) return;
  const int kh = h / (d.nv / d.nk);
  float* S = s.state + d.state_offset + static_cast<std::size_t>(h) * d.dk * d.dv;
  for (int j = threadIdx.x; j < d.dv; j += blockDim.x) {
    if (s.start == 0) {
      for (int i = 0; i < d.dk; ++i) S[i * d.dv + j] = 0.0f;
    }
    for (int t = 0; t < s.n; ++t) {
      const std::size_t row = static_cast<std::size_t>(s.row0) + t;
      const float* q = qkv + row * ld + static_cast<std::size_t>(kh) * d.dk;
      const float* k = q + d.Kd;
      const float v = qkv[row * ld + 2 * d.Kd + static_cast<std::size_t>(h) * d.dv + j];
      const float decay = exp_f32(g[row * ld_g + h]);
      float kv = 0.0f;
      for (int i = 0; i < d.dk; ++i) {
        const float si = S[i * d.dv + j] * decay;
        S[i * d.dv + j] = si;
        kv = __fmaf_rn(si, k[i], kv);
      }
      const float delta = (v - kv) * beta[row * ld_g + h];
      float acc = 0.0f;
      for (int i = 0; i < d.dk; ++i) {
        const float si = __fmaf_rn(k[i], delta, S[i * d.dv + j]);
        S[i * d.dv + j] = si;
        acc = __fmaf_rn(si, q[i], acc);
      }
      out[row * ld_o + static_cast<std::size_t>(h) * d.dv + j] = acc;
    }
  }
}

// blockIdx.x = row; each thread a head: o ← rmsnorm(o)·w·silu(z).
static __global__ void __launch_bounds__(kDeltaThreads)
    gated_rms_norm_kernel(float* o, std::size_t ld_o, const float* z, std::size_t ld_z, const float* w, int dv,
                          int heads, float eps) {
  kernel_prologue();
  const std::size_t t = blockIdx.x;
  for (int h = threadIdx.x; h < heads; h += blockDim.x) {
    float* x = o + t * ld_o + static_cast<std::size_t>(h) * dv;
    const float* zz = z + t * ld_z + static_cast<std::size_t>(h) * dv;
    float ss = 0.0f;
    for (int i = 0; i < dv; ++i) ss = __fmaf_rn(x[i], x[i], ss);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(dv) + eps);
    for (int i = 0; i < dv; ++i) x[i] = w[i] * (x[i] * inv) * silu_f32(zz[i]);
  }
}

struct SigmoidMulOp {
  Strided2<float> x;
  Strided2<const float> gate;
  __device__ void operator()(std::size_t r, std::size_t i) const { x(r, i) = x(r, i) * sigmoid_f32(gate(r, i)); }
};

inline void check_rows(DeviceView<const float, 2> v, const char* op) {
  require(v.extent(1) <= 1 || v.stride(1) == 1, ErrorCode::kInvalidArgument, "{}(cuda): rows must be contiguous", op);
  require(v.extent(0) <= 0x7fffffff, ErrorCode::kInvalidArgument, "{}(cuda): {} rows exceed the grid", op,
          v.extent(0));
}

}  // namespace cuda_detail

inline void delta_net_conv(backend::cuda, const DeltaNetShape& d, const PassSlots<device_memory>& p,
                           const CacheLayer& l, DeviceView<const float, 2> x, DeviceView<const float, 2> w,
                           DeviceView<float, 2> y) {
  detail::check_delta_conv(d, l, x, w, y);
  cuda_detail::check_pass(p, x.extent(0), "delta_net_conv");
  cuda_detail::check_rows(x, "delta_net_conv");
  cuda_detail::check_rows(DeviceView<const float, 2>(y), "delta_net_conv");
  if (x.extent(0) == 0) return;
  const dim3 grid(static_cast<unsigned>(p.slots.extent(0)),
                  static_cast<unsigned>((d.conv_dim() + cuda_detail::kDeltaThreads - 1) / cuda_detail::kDeltaThreads));
  cuda_detail::launch(cuda_detail::delta_conv_kernel, grid, cuda_detail::kDeltaThreads, 0, 
      p.slots.data(), cuda_detail::delta_dims(d, l), x.data(), x.stride(0), w.data(), w.stride(0), y.data(), y.stride(0));
  ::moe::cuda::check_launch("delta_net_conv");
}

inline void delta_net_gates(backend::cuda, const DeltaNetShape& d, DeviceView<float, 2> qkv, DeviceView<float, 2> beta,
                            DeviceView<float, 2> g, DeviceView<const float, 1> a_log,
                            DeviceView<const float, 1> dt_bias) {
  const index_t n = qkv.extent(0);
  require(qkv.extent(1) == d.conv_dim() && beta.extent(0) == n && g.extent(0) == n && beta.extent(1) == d.n_v_heads &&
              g.extent(1) == d.n_v_heads && a_log.extent(0) == d.n_v_heads && dt_bias.extent(0) == d.n_v_heads &&
              beta.stride(0) == g.stride(0),
          ErrorCode::kInvalidArgument, "delta_net_gates(cuda): qkv [{}, {}], beta [{}, {}], g [{}, {}]", n,
          qkv.extent(1), beta.extent(0), beta.extent(1), g.extent(0), g.extent(1));
  cuda_detail::check_rows(DeviceView<const float, 2>(qkv), "delta_net_gates");
  if (n == 0) return;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.k_head_dim));
  cuda_detail::launch(cuda_detail::delta_gates_kernel, static_cast<unsigned>(n), cuda_detail::kDeltaThreads, 0, 
      cuda_detail::delta_dims(d, CacheLayer{}), qkv.data(), qkv.stride(0), beta.data(), g.data(), g.stride(0),
      a_log.data(), dt_bias.data(), scale);
  ::moe::cuda::check_launch("delta_net_gates");
}

// The recurrent form for every sequence length (see the file comment); scratch is not used.
inline void gated_delta_rule(backend::cuda, const DeltaNetShape& d, const PassSlots<device_memory>& p,
                             const CacheLayer& l, DeviceView<const float, 2> qkv, DeviceView<const float, 2> g,
                             DeviceView<const float, 2> beta, DeviceView<float, 2> out, DeviceView<float, 1> scratch) {
  detail::check_delta_rule(d, l, qkv, g, beta, out, scratch.extent(0));
  cuda_detail::check_pass(p, qkv.extent(0), "gated_delta_rule");
  if (qkv.extent(0) == 0) return;
  const dim3 grid(static_cast<unsigned>(p.slots.extent(0)), static_cast<unsigned>(d.n_v_heads));
  cuda_detail::launch(cuda_detail::delta_rule_kernel, grid, cuda_detail::kDeltaThreads, 0, 
      p.slots.data(), cuda_detail::delta_dims(d, l), qkv.data(), qkv.stride(0), g.data(), beta.data(), g.stride(0),
      out.data(), out.stride(0));
  ::moe::cuda::check_launch("gated_delta_rule");
}

inline void gated_rms_norm(backend::cuda, DeviceView<float, 2> o, DeviceView<const float, 2> z,
                           DeviceView<const float, 1> w, float eps) {
  const index_t dv = w.extent(0);
  require(dv > 0 && o.extent(1) % dv == 0 && z.extent(0) == o.extent(0) && z.extent(1) == o.extent(1),
          ErrorCode::kInvalidArgument, "gated_rms_norm(cuda): o [{}, {}], z [{}, {}], weight [{}]", o.extent(0),
          o.extent(1), z.extent(0), z.extent(1), dv);
  cuda_detail::check_rows(DeviceView<const float, 2>(o), "gated_rms_norm");
  cuda_detail::check_rows(z, "gated_rms_norm");
  if (o.extent(0) == 0) return;
  cuda_detail::launch(cuda_detail::gated_rms_norm_kernel, static_cast<unsigned>(o.extent(0)), cuda_detail::kDeltaThreads, 0, o.data(), o.stride(0), z.data(), z.stride(0), w.data(),
                                                                static_cast<int>(dv),
                                                                static_cast<int>(o.extent(1) / dv), eps);
  ::moe::cuda::check_launch("gated_rms_norm");
}

inline void sigmoid_mul(backend::cuda, DeviceView<float, 2> x, DeviceView<const float, 2> gate) {
  detail::check_same_shape(DeviceView<const float, 2>(x), gate, "sigmoid_mul", "x", "gate");
  cuda_detail::launch_rows(cuda_detail::SigmoidMulOp{cuda_detail::strided(x), cuda_detail::strided(gate)}, x.extent(0),
                           x.extent(1), "sigmoid_mul");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
