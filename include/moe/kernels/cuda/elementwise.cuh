// Element-wise ops of the graph on backend::cuda: residual add, bias add, symmetric clamp,
// sigmoid-gated add (Qwen2-MoE's shared expert), SiLU, SwiGLU, GPT-OSS's clamped interleaved GLU
// and the row softmax. One thread per element (grid-stride), any row strides. exp() is evaluated
// in double and rounded once, which is what the host's correctly rounded expf gives, so these
// ops agree with the reference to the last bit or within an ulp.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kElementwiseThreads = 256;

// exp(v) in f32, correctly rounded in all but astronomically rare cases (double exp, one rounding).
__device__ __forceinline__ float exp_f32(float v) { return static_cast<float>(exp(static_cast<double>(v))); }
// detail::sigmoid_scalar and detail::silu_scalar, operation for operation.
__device__ __forceinline__ float sigmoid_f32(float v) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, exp_f32(-v))); }
__device__ __forceinline__ float silu_f32(float v) { return __fdiv_rn(v, __fadd_rn(1.0f, exp_f32(-v))); }

// A strided 2-D f32 operand as the kernels see it.
template <class T>
struct Strided2 {
  T* p;
  std::size_t s0, s1;
  __device__ __forceinline__ T& operator()(std::size_t r, std::size_t i) const { return p[r * s0 + i * s1]; }
};

template <class T, std::size_t R>
Strided2<T> strided(const TensorView<T, R, device_memory>& v) {
  static_assert(R == 2);
  return Strided2<T>{v.data(), v.stride(0), v.stride(1)};
}

// Calls op(r, i) for every element of an [n, d] index space.
template <class Op>
__global__ void __launch_bounds__(kElementwiseThreads) rows_kernel(Op op, std::size_t n, std::size_t d) {
  kernel_prologue();
  const std::size_t total = n * d;
  for (std::size_t e = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    op(e / d, e % d);
  }
}

template <class Op>
void launch_rows(const Op& op, index_t n, index_t d, const char* name) {
  if (n == 0 || d == 0) return;
  cuda_detail::launch(rows_kernel<Op>, grid_for(n * d, kElementwiseThreads), kElementwiseThreads, 0, op, n, d);
  ::moe::cuda::check_launch(name);
}

struct AddOp {
  Strided2<float> y;
  Strided2<const float> x;
  __device__ void operator()(std::size_t r, std::size_t i) const { y(r, i) = __fadd_rn(y(r, i), x(r, i)); }
};

template <class W>
struct AddBiasOp {
  Strided2<float> y;
  const W* bias;
  std::size_t bias_stride;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    y(r, i) = __fadd_rn(y(r, i), load_as_float(bias, i * bias_stride));
  }
};

struct ScaleOp {
  Strided2<float> x;
  float factor;
  __device__ void operator()(std::size_t r, std::size_t i) const { x(r, i) *= factor; }
};

struct ScaleRowsOp {
  Strided2<float> x;
  const float* w;
  std::size_t w_stride;
  __device__ void operator()(std::size_t r, std::size_t i) const { x(r, i) = __fmul_rn(x(r, i), w[r * w_stride]); }
};

struct FillOp {
  float* x;
  std::size_t stride;
  float value;
  __device__ void operator()(std::size_t r, std::size_t) const { x[r * stride] = value; }
};

// kernels::attention_temperature_factor, operation for operation (log1pf and floorf are the
// correctly rounded-or-ulp f32 functions the host's std::log1p / std::floor are).
struct AttentionTemperatureOp {
  Strided2<float> q;
  const std::int64_t* positions;
  std::size_t pos_stride;
  float floor_scale, attn_scale;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    const float p = __fadd_rn(static_cast<float>(positions[r * pos_stride]), 1.0f);
    const float f = __fadd_rn(__fmul_rn(log1pf(floorf(__fdiv_rn(p, floor_scale))), attn_scale), 1.0f);
    q(r, i) = __fmul_rn(q(r, i), f);
  }
};

struct ClampOp {
  Strided2<float> x;
  float limit;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    const float v = x(r, i);  // std::clamp: NaN stays NaN
    x(r, i) = v < -limit ? -limit : (limit < v ? limit : v);
  }
};

struct SigmoidGateAddOp {
  Strided2<float> y;
  Strided2<const float> gate;
  Strided2<const float> x;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    const float g = sigmoid_f32(gate(r, 0));
    y(r, i) = __fadd_rn(y(r, i), __fmul_rn(g, x(r, i)));
  }
};

struct SiluOp {
  Strided2<float> x;
  __device__ void operator()(std::size_t r, std::size_t i) const { x(r, i) = silu_f32(x(r, i)); }
};

struct SwigluOp {
  Strided2<const float> gate, up;
  Strided2<float> out;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    out(r, i) = __fmul_rn(silu_f32(gate(r, i)), up(r, i));
  }
};

struct GluInterleavedOp {
  Strided2<const float> gu;
  Strided2<float> out;
  float alpha, limit;
  bool clamped;
  __device__ void operator()(std::size_t r, std::size_t i) const {
    float g = gu(r, 2 * i), u = gu(r, 2 * i + 1);
    if (clamped) {
      g = limit < g ? limit : g;                         // std::min(g, limit)
      u = u < -limit ? -limit : (limit < u ? limit : u);  // std::clamp(u, -limit, limit)
    }
    out(r, i) = __fmul_rn(__fadd_rn(u, 1.0f), __fmul_rn(g, sigmoid_f32(__fmul_rn(g, alpha))));
  }
};

// One block per row: detail::softmax_row (max, exp(x - max), sum in double, divide) in place. A
// template (of nothing) so that its host stub is emitted once however many translation units of
// one executable include this header (instances/: the per-format kernel instances).
inline constexpr int kSoftmaxThreads = 256;
template <int = 0>
__global__ void __launch_bounds__(kSoftmaxThreads) softmax_rows_kernel(float* x, std::size_t ld, int d) {
  kernel_prologue();
  __shared__ float fscratch[kWarpSize];
  __shared__ double dscratch[kWarpSize];
  float* row = x + blockIdx.x * ld;
  float m = -INFINITY;
  for (int i = threadIdx.x; i < d; i += blockDim.x) m = fmaxf(m, row[i]);
  m = block_max(m, fscratch);
  if (m == -INFINITY) {
    for (int i = threadIdx.x; i < d; i += blockDim.x) row[i] = 0.0f;
    return;
  }
  double sum = 0.0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float e = exp_f32(__fsub_rn(row[i], m));
    row[i] = e;
    sum += e;
  }
  sum = block_sum(sum, dscratch);
  for (int i = threadIdx.x; i < d; i += blockDim.x) row[i] = static_cast<float>(static_cast<double>(row[i]) / sum);
}

}  // namespace cuda_detail

// y [n, d] += x [n, d], f32, device memory. x may be the same view as y.
inline void add(backend::cuda, DeviceView<float, 2> y, DeviceView<const float, 2> x) {
  detail::check_same_shape(y, x, "add", "y", "x");
  cuda_detail::launch_rows(cuda_detail::AddOp{cuda_detail::strided(y), cuda_detail::strided(x)}, y.extent(0),
                           y.extent(1), "add");
}

// y[t, :] += bias for every row t. y [n, d] f32, bias [d] stored as W (float, bf16, f16).
template <class W>
void add_bias(backend::cuda, DeviceView<float, 2> y, DeviceView<const W, 1> bias) {
  if constexpr (cuda_detail::is_cuda_weight_v<W>) {
    require(bias.extent(0) == y.extent(1), ErrorCode::kInvalidArgument, "add_bias: bias of {} for rows of {}",
            bias.extent(0), y.extent(1));
    cuda_detail::launch_rows(cuda_detail::AddBiasOp<W>{cuda_detail::strided(y), bias.data(), bias.stride(0)},
                             y.extent(0), y.extent(1), "add_bias");
  } else {
    static_assert(dependent_false<W>, "kernels::add_bias is not implemented for backend::cuda with this weight type "
                                      "(implemented: float, bf16, f16)");
  }
}

// x *= factor element-wise, x [n, d] f32 (Granite's muP multipliers).
inline void scale(backend::cuda, DeviceView<float, 2> x, float factor) {
  cuda_detail::launch_rows(cuda_detail::ScaleOp{cuda_detail::strided(x), factor}, x.extent(0), x.extent(1), "scale");
}

// x[t, :] *= w[t] for every row t. x [n, d] f32, w [n] f32.
inline void scale_rows(backend::cuda, DeviceView<float, 2> x, DeviceView<const float, 1> w) {
  require(w.extent(0) == x.extent(0), ErrorCode::kInvalidArgument, "scale_rows: {} weights for {} rows", w.extent(0),
          x.extent(0));
  cuda_detail::launch_rows(cuda_detail::ScaleRowsOp{cuda_detail::strided(x), w.data(), w.stride(0)}, x.extent(0),
                           x.extent(1), "scale_rows");
}

// x[i] = value for every i. x [n] f32.
inline void fill(backend::cuda, DeviceView<float, 1> x, float value) {
  cuda_detail::launch_rows(cuda_detail::FillOp{x.data(), x.stride(0), value}, x.extent(0), 1, "fill");
}

// Llama 4's attention temperature tuning: q[t, :] *= kernels::attention_temperature_factor(positions[t]).
inline void attention_temperature(backend::cuda, DeviceView<float, 2> q, DeviceView<const std::int64_t, 1> positions,
                                  float floor_scale, float attn_scale) {
  require(positions.extent(0) == q.extent(0), ErrorCode::kInvalidArgument,
          "attention_temperature: {} positions for {} rows", positions.extent(0), q.extent(0));
  cuda_detail::launch_rows(cuda_detail::AttentionTemperatureOp{cuda_detail::strided(q), positions.data(),
                                                               positions.stride(0), floor_scale, attn_scale},
                           q.extent(0), q.extent(1), "attention_temperature");
}

// x = clamp(x, -limit, limit) element-wise, x [n, d] f32.
inline void clamp(backend::cuda, DeviceView<float, 2> x, float limit) {
  cuda_detail::launch_rows(cuda_detail::ClampOp{cuda_detail::strided(x), limit}, x.extent(0), x.extent(1), "clamp");
}

// y[t, :] += sigmoid(gate[t, 0]) · x[t, :]. y, x [n, d], gate [n, 1] (logits).
inline void sigmoid_gate_add(backend::cuda, DeviceView<float, 2> y, DeviceView<const float, 2> gate,
                             DeviceView<const float, 2> x) {
  detail::check_same_shape(DeviceView<const float, 2>(y), x, "sigmoid_gate_add", "y", "x");
  require(gate.extent(0) == y.extent(0) && gate.extent(1) == 1, ErrorCode::kInvalidArgument,
          "sigmoid_gate_add: gate [{}, {}] for {} rows", gate.extent(0), gate.extent(1), y.extent(0));
  cuda_detail::launch_rows(
      cuda_detail::SigmoidGateAddOp{cuda_detail::strided(y), cuda_detail::strided(gate), cuda_detail::strided(x)},
      y.extent(0), y.extent(1), "sigmoid_gate_add");
}

// x [n, d] f32, in place: x·sigmoid(x).
inline void silu(backend::cuda, DeviceView<float, 2> x) {
  detail::check_unit_inner_stride(x, "silu", "x");
  cuda_detail::launch_rows(cuda_detail::SiluOp{cuda_detail::strided(x)}, x.extent(0), x.extent(1), "silu");
}

// out = silu(gate) · up, all [n, d] f32 (any row strides: e.g. the two halves of a [n, 2f]
// buffer). out may alias gate or up (the same view).
inline void swiglu(backend::cuda, DeviceView<const float, 2> gate, DeviceView<const float, 2> up,
                   DeviceView<float, 2> out) {
  detail::check_same_shape(gate, up, "swiglu", "gate", "up");
  detail::check_same_shape(gate, out, "swiglu", "gate", "out");
  cuda_detail::launch_rows(
      cuda_detail::SwigluOp{cuda_detail::strided(gate), cuda_detail::strided(up), cuda_detail::strided(out)},
      gate.extent(0), gate.extent(1), "swiglu");
}

// GPT-OSS's clamped GLU over interleaved gate/up columns (see the reference): gu [n, 2f], out [n, f].
inline void glu_interleaved(backend::cuda, DeviceView<const float, 2> gu, const GluParams& p,
                            DeviceView<float, 2> out) {
  require(gu.extent(0) == out.extent(0) && gu.extent(1) == 2 * out.extent(1), ErrorCode::kInvalidArgument,
          "glu_interleaved: gate/up [{}, {}] for out [{}, {}]", gu.extent(0), gu.extent(1), out.extent(0),
          out.extent(1));
  cuda_detail::launch_rows(
      cuda_detail::GluInterleavedOp{cuda_detail::strided(gu), cuda_detail::strided(out), p.alpha, p.limit, p.clamped},
      out.extent(0), out.extent(1), "glu_interleaved");
}

// x [n, d] f32: each row softmaxed in place (detail::softmax_row's rules: an all -inf row
// becomes zeros). One block per row.
inline void softmax(backend::cuda, DeviceView<float, 2> x) {
  detail::check_unit_inner_stride(x, "softmax", "x");
  cuda_detail::require_int_range(x.extent(1), "softmax", "d");
  require(x.extent(0) <= 0x7fffffffu, ErrorCode::kInvalidArgument, "softmax: {} rows", x.extent(0));
  if (x.extent(0) == 0 || x.extent(1) == 0) return;
  cuda_detail::launch(cuda_detail::softmax_rows_kernel<>, static_cast<unsigned>(x.extent(0)), cuda_detail::kSoftmaxThreads, 0, 
      x.data(), x.stride(0), static_cast<int>(x.extent(1)));
  ::moe::cuda::check_launch("softmax_rows_kernel");
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
