// Gated DeltaNet ops (the scalar oracle): the short causal depthwise conv with its conv state, the
// q/k L2 norm and the per-head gates (beta = σ(b), g = -exp(A_log)·softplus(a + dt_bias)), the
// gated delta rule over each sequence's recurrent state, in its chunked form (prefill) and its
// recurrent form (one token), the gated RMSNorm of the output, and the sigmoid output gate of
// gated full attention. Yang et al., "Gated Delta Networks" (2024); Qwen3-Next in transformers 5.
//
// A DeltaNet layer keeps no per-token cache: each sequence's cache holds a fixed state for the
// layer at slot.state + layer.state_offset, laid out as the recurrent state [n_v_heads, k_head_dim,
// v_head_dim] then the conv state [conv_kernel - 1, conv_dim] (the last inputs, oldest first). A
// slot whose start is 0 begins from a zero state whatever the memory holds, so a cleared cache
// needs no reset.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/cache.hpp"

#include <cmath>
#include <cstdint>

namespace moe::kernels {

// Which form of the delta rule a pass uses: kAuto runs the chunked form for a sequence of more
// than one token and the recurrent one for a single token (the two agree to rounding).
enum class DeltaRuleForm : std::uint8_t { kAuto, kRecurrent, kChunked };

struct DeltaNetShape {
  index_t n_k_heads = 0;
  index_t n_v_heads = 0;   // a multiple of n_k_heads: v-head h reads k-head h / (n_v / n_k)
  index_t k_head_dim = 0;
  index_t v_head_dim = 0;
  index_t conv_kernel = 0;
  DeltaRuleForm form = DeltaRuleForm::kAuto;

  static constexpr index_t kChunk = 64;  // the chunk length of the chunked form (FLA / transformers)

  index_t key_dim() const noexcept { return n_k_heads * k_head_dim; }
  index_t value_dim() const noexcept { return n_v_heads * v_head_dim; }
  index_t conv_dim() const noexcept { return 2 * key_dim() + value_dim(); }  // q | k | v channels
  index_t recurrent_floats() const noexcept { return n_v_heads * k_head_dim * v_head_dim; }
  index_t conv_floats() const noexcept { return (conv_kernel - 1) * conv_dim(); }
  index_t state_floats() const noexcept { return recurrent_floats() + conv_floats(); }
  // Scratch of the chunked form per v-head: the [C, C] system, u [C, v_head_dim], w [C, k_head_dim].
  index_t chunk_scratch_per_head() const noexcept { return kChunk * (kChunk + k_head_dim + v_head_dim); }
  index_t chunk_scratch() const noexcept { return n_v_heads * chunk_scratch_per_head(); }
};

namespace detail {

inline float* delta_state(const CacheSlot& s, const CacheLayer& l) noexcept { return s.state + l.state_offset; }

inline void check_delta_layer(const DeltaNetShape& d, const CacheLayer& l, const char* op) {
  require(d.n_k_heads > 0 && d.n_v_heads % d.n_k_heads == 0 && d.conv_kernel >= 1 && l.state_width == d.state_floats(),
          ErrorCode::kInvalidArgument, "{}: a layer state of {} floats for DeltaNet heads {}/{} x {}/{}, kernel {}", op,
          l.state_width, d.n_k_heads, d.n_v_heads, d.k_head_dim, d.v_head_dim, d.conv_kernel);
}

// softplus with torch's default threshold (x > 20: x).
inline float softplus_scalar(float x) noexcept { return x > 20.0f ? x : std::log1p(std::exp(x)); }

// One token of the recurrence for one v-head: S ← exp(g)·S; S += k ⊗ β(v − Sᵀk); o = Sᵀq.
// S [dk, dv] row-major; q, k [dk]; v, o [dv].
inline void delta_recurrent_step(float* S, index_t dk, index_t dv, const float* q, const float* k, const float* v,
                                 float g, float beta, float* o) {
  const float decay = std::exp(g);
  for (index_t i = 0; i < dk * dv; ++i) S[i] *= decay;
  for (index_t j = 0; j < dv; ++j) {
    float kv = 0.0f;
    for (index_t i = 0; i < dk; ++i) kv += S[i * dv + j] * k[i];
    const float delta = (v[j] - kv) * beta;
    float acc = 0.0f;
    for (index_t i = 0; i < dk; ++i) {
      S[i * dv + j] += k[i] * delta;
      acc += S[i * dv + j] * q[i];
    }
    o[j] = acc;
  }
}

// The rows of one sequence for one v-head (row r of q/k at q + r·q_stride, ...), recurrent form.
struct DeltaHeadRows {
  const float* q; const float* k; const float* v; index_t qkv_stride;
  const float* g; const float* beta; index_t gate_stride;
  float* o; index_t o_stride;
  index_t n;
};

inline void delta_head_recurrent(float* S, index_t dk, index_t dv, const DeltaHeadRows& r) {
  for (index_t t = 0; t < r.n; ++t) {
    delta_recurrent_step(S, dk, dv, r.q + t * r.qkv_stride, r.k + t * r.qkv_stride, r.v + t * r.qkv_stride,
                         r.g[t * r.gate_stride], r.beta[t * r.gate_stride], r.o + t * r.o_stride);
  }
}

// The chunked (WY / UT-transform) form over chunks of up to C tokens. Within a chunk with local
// cumulative log-decay γ and the state S at its start:
//   A[i][j] = β_i (k_i·k_j) e^{γ_i−γ_j} (j < i);  (I + A) U = βV;  (I + A) W = β e^{γ} K
//   V' = U − W S;  o_i = e^{γ_i} q_i S + Σ_{j≤i} (q_i·k_j) e^{γ_i−γ_j} V'_j
//   S ← e^{γ_L} S + Σ_j e^{γ_L−γ_j} k_j ⊗ V'_j
// scratch: chunk_scratch_per_head() floats.
inline void delta_head_chunked(float* S, index_t dk, index_t dv, const DeltaHeadRows& r, float* scratch) {
  constexpr index_t C = DeltaNetShape::kChunk;
  float* A = scratch;            // [C, C]; row i also holds γ-free temporaries
  float* U = A + C * C;          // [C, dv]
  float* W = U + C * dv;         // [C, dk]
  float gamma[C];
  for (index_t c0 = 0; c0 < r.n; c0 += C) {
    const index_t L = r.n - c0 < C ? r.n - c0 : C;
    const auto q = [&](index_t i) { return r.q + (c0 + i) * r.qkv_stride; };
    const auto k = [&](index_t i) { return r.k + (c0 + i) * r.qkv_stride; };
    const auto v = [&](index_t i) { return r.v + (c0 + i) * r.qkv_stride; };
    const auto beta = [&](index_t i) { return r.beta[(c0 + i) * r.gate_stride]; };
    float acc = 0.0f;
    for (index_t i = 0; i < L; ++i) gamma[i] = acc += r.g[(c0 + i) * r.gate_stride];
    for (index_t i = 0; i < L; ++i) {
      for (index_t j = 0; j < i; ++j) {
        float dot = 0.0f;
        for (index_t x = 0; x < dk; ++x) dot += k(i)[x] * k(j)[x];
        A[i * C + j] = beta(i) * dot * std::exp(gamma[i] - gamma[j]);
      }
    }
    // Forward substitution (unit lower-triangular I + A).
    for (index_t i = 0; i < L; ++i) {
      const float eg = std::exp(gamma[i]);
      for (index_t x = 0; x < dv; ++x) U[i * dv + x] = v(i)[x] * beta(i);
      for (index_t x = 0; x < dk; ++x) W[i * dk + x] = k(i)[x] * beta(i) * eg;
      for (index_t j = 0; j < i; ++j) {
        const float a = A[i * C + j];
        for (index_t x = 0; x < dv; ++x) U[i * dv + x] -= a * U[j * dv + x];
        for (index_t x = 0; x < dk; ++x) W[i * dk + x] -= a * W[j * dk + x];
      }
    }
    // V' = U − W S (into U).
    for (index_t i = 0; i < L; ++i) {
      for (index_t x = 0; x < dv; ++x) {
        float ws = 0.0f;
        for (index_t y = 0; y < dk; ++y) ws += W[i * dk + y] * S[y * dv + x];
        U[i * dv + x] -= ws;
      }
    }
    // Outputs, from the state at the chunk's start.
    for (index_t i = 0; i < L; ++i) {
      float* o = r.o + (c0 + i) * r.o_stride;
      const float eg = std::exp(gamma[i]);
      for (index_t x = 0; x < dv; ++x) {
        float qs = 0.0f;
        for (index_t y = 0; y < dk; ++y) qs += q(i)[y] * S[y * dv + x];
        o[x] = eg * qs;
      }
      for (index_t j = 0; j <= i; ++j) {
        float dot = 0.0f;
        for (index_t y = 0; y < dk; ++y) dot += q(i)[y] * k(j)[y];
        const float a = dot * std::exp(gamma[i] - gamma[j]);
        for (index_t x = 0; x < dv; ++x) o[x] += a * U[j * dv + x];
      }
    }
    // The state at the chunk's end.
    const float eL = std::exp(gamma[L - 1]);
    for (index_t y = 0; y < dk * dv; ++y) S[y] *= eL;
    for (index_t j = 0; j < L; ++j) {
      const float e = std::exp(gamma[L - 1] - gamma[j]);
      for (index_t y = 0; y < dk; ++y) {
        const float kj = k(j)[y] * e;
        for (index_t x = 0; x < dv; ++x) S[y * dv + x] += kj * U[j * dv + x];
      }
    }
  }
}

// v-head h of the slot's rows: its views into qkv [n, conv_dim], g / beta [n, n_v], out [n, n_v·dv].
inline DeltaHeadRows delta_head_rows(const DeltaNetShape& d, index_t h, index_t r0, index_t r1,
                                     View<const float, 2> qkv, View<const float, 2> g, View<const float, 2> beta,
                                     View<float, 2> out) {
  const index_t kh = h / (d.n_v_heads / d.n_k_heads);
  const float* row = qkv.data() + r0 * qkv.stride(0);
  return DeltaHeadRows{row + kh * d.k_head_dim,
                       row + d.key_dim() + kh * d.k_head_dim,
                       row + 2 * d.key_dim() + h * d.v_head_dim,
                       qkv.stride(0),
                       g.data() + r0 * g.stride(0) + h,
                       beta.data() + r0 * beta.stride(0) + h,
                       g.stride(0),
                       out.data() + r0 * out.stride(0) + h * d.v_head_dim,
                       out.stride(0),
                       r1 - r0};
}

inline void delta_rule_head(const DeltaNetShape& d, const CacheSlot& s, const CacheLayer& l, index_t h, index_t r0,
                            index_t r1, View<const float, 2> qkv, View<const float, 2> g, View<const float, 2> beta,
                            View<float, 2> out, float* scratch) {
  const index_t dk = d.k_head_dim, dv = d.v_head_dim;
  float* S = delta_state(s, l) + h * dk * dv;
  if (s.start == 0) {
    for (index_t i = 0; i < dk * dv; ++i) S[i] = 0.0f;
  }
  const DeltaHeadRows rows = delta_head_rows(d, h, r0, r1, qkv, g, beta, out);
  const bool chunked = d.form == DeltaRuleForm::kChunked || (d.form == DeltaRuleForm::kAuto && r1 - r0 > 1);
  if (chunked) {
    delta_head_chunked(S, dk, dv, rows, scratch);
  } else {
    delta_head_recurrent(S, dk, dv, rows);
  }
}

// The shape checks every backend makes (views in memory space S: extents and strides only).
template <class S>
void check_delta_rule(const DeltaNetShape& d, const CacheLayer& l, TensorView<const float, 2, S> qkv,
                      TensorView<const float, 2, S> g, TensorView<const float, 2, S> beta, TensorView<float, 2, S> out,
                      index_t scratch) {
  check_delta_layer(d, l, "gated_delta_rule");
  const index_t n = qkv.extent(0);
  require(qkv.extent(1) == d.conv_dim() && g.extent(0) == n && beta.extent(0) == n && out.extent(0) == n &&
              g.extent(1) == d.n_v_heads && beta.extent(1) == d.n_v_heads && out.extent(1) == d.value_dim() &&
              g.stride(0) == beta.stride(0) && qkv.stride(1) == 1 && g.stride(1) == 1 && out.stride(1) == 1 &&
              scratch >= d.chunk_scratch(),
          ErrorCode::kInvalidArgument,
          "gated_delta_rule: qkv [{}, {}], g [{}, {}], beta [{}, {}], out [{}, {}], scratch {} for conv_dim {}, "
          "{} v-heads of {}",
          n, qkv.extent(1), g.extent(0), g.extent(1), beta.extent(0), beta.extent(1), out.extent(0), out.extent(1),
          scratch, d.conv_dim(), d.n_v_heads, d.v_head_dim);
}

template <class S>
void check_delta_conv(const DeltaNetShape& d, const CacheLayer& l, TensorView<const float, 2, S> x,
                      TensorView<const float, 2, S> w, TensorView<float, 2, S> y) {
  check_delta_layer(d, l, "delta_net_conv");
  require(x.extent(1) == d.conv_dim() && y.extent(1) == d.conv_dim() && x.extent(0) == y.extent(0) &&
              w.extent(0) == d.conv_dim() && w.extent(1) == d.conv_kernel && w.stride(1) == 1,
          ErrorCode::kInvalidArgument, "delta_net_conv: x [{}, {}], weight [{}, {}], y [{}, {}] for conv_dim {}, kernel {}",
          x.extent(0), x.extent(1), w.extent(0), w.extent(1), y.extent(0), y.extent(1), d.conv_dim(), d.conv_kernel);
}

// Channel c of one slot: y = silu(causal depthwise conv of [conv state; x]), then the conv state
// becomes the last K−1 inputs.
inline void delta_conv_channel(const DeltaNetShape& d, const CacheSlot& s, const CacheLayer& l, index_t c,
                               index_t r0, index_t r1, View<const float, 2> x, View<const float, 2> w,
                               View<float, 2> y) {
  const index_t K = d.conv_kernel, C = d.conv_dim(), n = r1 - r0;
  float* state = delta_state(s, l) + d.recurrent_floats();  // [K-1, C]
  const bool fresh = s.start == 0;
  // input τ of the sequence, τ in [-(K-1), n): the conv state before the chunk, then x.
  const auto in = [&](std::int64_t tau) -> float {
    if (tau >= 0) return x(r0 + static_cast<index_t>(tau), c);
    return fresh ? 0.0f : state[static_cast<index_t>(static_cast<std::int64_t>(K - 1) + tau) * C + c];
  };
  for (index_t t = 0; t < n; ++t) {
    float acc = 0.0f;
    for (index_t j = 0; j < K; ++j) {
      acc += w(c, j) * in(static_cast<std::int64_t>(t) - static_cast<std::int64_t>(K - 1 - j));
    }
    y(r0 + t, c) = silu_scalar(acc);
  }
  // The new state (oldest first): positions n-(K-1) .. n-1 of the sequence's inputs.
  for (index_t i = 0; i + 1 < K; ++i) {
    const std::int64_t tau = static_cast<std::int64_t>(n) - static_cast<std::int64_t>(K - 1) + static_cast<std::int64_t>(i);
    // Ascending i reads tau >= the written row's old position, so the shift in place is safe.
    state[i * C + c] = in(tau);
  }
}

}  // namespace detail

// y = silu(conv1d(x)) per sequence, the depthwise causal conv of kernel K over each sequence's
// conv state followed by its rows, which then updates the conv state. x, y [n, conv_dim] (y must
// not alias x), w [conv_dim, K] f32.
inline void delta_net_conv(backend::reference, const DeltaNetShape& d, const PassSlots<host_memory>& p,
                           const CacheLayer& l, View<const float, 2> x, View<const float, 2> w, View<float, 2> y) {
  detail::check_delta_conv(d, l, x, w, y);
  detail::check_token_slots(p, x.extent(0), "delta_net_conv");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    for (index_t c = 0; c < d.conv_dim(); ++c) detail::delta_conv_channel(d, s, l, c, r0, r1, x, w, y);
  });
}

// In place on qkv [n, conv_dim]: q and k heads L2-normalised (x·rsqrt(Σx² + 1e-6)), q scaled by
// k_head_dim^-1/2. beta [n, n_v] (b logits in, σ(b) out) and g [n, n_v] (a in,
// −exp(A_log)·softplus(a + dt_bias) out). a_log, dt_bias [n_v] f32.
inline void delta_net_gates(backend::reference, const DeltaNetShape& d, View<float, 2> qkv, View<float, 2> beta,
                            View<float, 2> g, View<const float, 1> a_log, View<const float, 1> dt_bias) {
  const index_t n = qkv.extent(0);
  require(qkv.extent(1) == d.conv_dim() && beta.extent(0) == n && g.extent(0) == n && beta.extent(1) == d.n_v_heads &&
              g.extent(1) == d.n_v_heads && a_log.extent(0) == d.n_v_heads && dt_bias.extent(0) == d.n_v_heads,
          ErrorCode::kInvalidArgument, "delta_net_gates: qkv [{}, {}], beta [{}, {}], g [{}, {}] for conv_dim {}, {} v-heads",
          n, qkv.extent(1), beta.extent(0), beta.extent(1), g.extent(0), g.extent(1), d.conv_dim(), d.n_v_heads);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.k_head_dim));
  for (index_t t = 0; t < n; ++t) {
    for (index_t h = 0; h < 2 * d.n_k_heads; ++h) {
      float* x = &qkv(t, h * d.k_head_dim);
      float ss = 0.0f;
      for (index_t i = 0; i < d.k_head_dim; ++i) ss += x[i] * x[i];
      const float inv = 1.0f / std::sqrt(ss + 1e-6f);
      const float f = h < d.n_k_heads ? scale : 1.0f;
      for (index_t i = 0; i < d.k_head_dim; ++i) x[i] = x[i] * inv * f;
    }
    for (index_t h = 0; h < d.n_v_heads; ++h) {
      beta(t, h) = detail::sigmoid_scalar(beta(t, h));
      g(t, h) = -std::exp(a_log[h]) * detail::softplus_scalar(g(t, h) + dt_bias[h]);
    }
  }
}

// out = the gated delta rule of every sequence of the pass, from its recurrent state (zero at
// start 0), which it then advances. qkv [n, conv_dim] (normalised q, k and v as delta_net_gates
// leaves them), g, beta [n, n_v], out [n, n_v·v_head_dim]; scratch >= d.chunk_scratch() floats.
inline void gated_delta_rule(backend::reference, const DeltaNetShape& d, const PassSlots<host_memory>& p,
                             const CacheLayer& l, View<const float, 2> qkv, View<const float, 2> g,
                             View<const float, 2> beta, View<float, 2> out, View<float, 1> scratch) {
  detail::check_delta_rule(d, l, qkv, g, beta, out, scratch.extent(0));
  detail::check_token_slots(p, qkv.extent(0), "gated_delta_rule");
  detail::for_each_slot(p, [&](const CacheSlot& s, index_t r0, index_t r1) {
    for (index_t h = 0; h < d.n_v_heads; ++h) {
      detail::delta_rule_head(d, s, l, h, r0, r1, qkv, g, beta, out,
                              scratch.data() + h * d.chunk_scratch_per_head());
    }
  });
}

// The gated RMSNorm of each head: o ← (o·rsqrt(mean(o²) + eps))·w·silu(z). o, z [n, heads·dv], w [dv].
inline void gated_rms_norm(backend::reference, View<float, 2> o, View<const float, 2> z, View<const float, 1> w,
                           float eps) {
  const index_t dv = w.extent(0);
  require(dv > 0 && o.extent(1) % dv == 0 && z.extent(0) == o.extent(0) && z.extent(1) == o.extent(1),
          ErrorCode::kInvalidArgument, "gated_rms_norm: o [{}, {}], z [{}, {}], weight [{}]", o.extent(0), o.extent(1),
          z.extent(0), z.extent(1), dv);
  for (index_t t = 0; t < o.extent(0); ++t) {
    for (index_t h0 = 0; h0 < o.extent(1); h0 += dv) {
      double ss = 0.0;
      for (index_t i = 0; i < dv; ++i) ss += static_cast<double>(o(t, h0 + i)) * o(t, h0 + i);
      const auto inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dv) + eps));
      for (index_t i = 0; i < dv; ++i) {
        o(t, h0 + i) = w[i] * (o(t, h0 + i) * inv) * detail::silu_scalar(z(t, h0 + i));
      }
    }
  }
}

// x ← x·σ(gate) element-wise (gated attention's output gate). x, gate [n, d].
inline void sigmoid_mul(backend::reference, View<float, 2> x, View<const float, 2> gate) {
  require(x.extent(0) == gate.extent(0) && x.extent(1) == gate.extent(1), ErrorCode::kInvalidArgument,
          "sigmoid_mul: x [{}, {}], gate [{}, {}]", x.extent(0), x.extent(1), gate.extent(0), gate.extent(1));
  for (index_t t = 0; t < x.extent(0); ++t) {
    for (index_t i = 0; i < x.extent(1); ++i) x(t, i) *= detail::sigmoid_scalar(gate(t, i));
  }
}

}  // namespace moe::kernels
