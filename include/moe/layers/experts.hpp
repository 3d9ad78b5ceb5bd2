// SwiGLU feed-forward networks: a dense MLP (also the shared expert) and a bank of routed experts
// in any of the storage layouts checkpoints use (per-expert gate/up/down matrices, the
// transformers-5 fused gate_up_proj bank, GPT-OSS's input-major bank with interleaved gate/up
// columns and biases, and that bank output-major as GPT-OSS's MXFP4 checkpoints store it).
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/lora_linear.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace moe::layers {

// down(silu(gate·x) * up·x), weights [d_ff, d_model], [d_ff, d_model], [d_model, d_ff]; optional
// biases (DeepSeek-V2 mlp_bias).
template <class S = host_memory>
struct MlpWeights {
  WeightMatrix<S> gate;  // [d_ff, d_model]
  WeightMatrix<S> up;    // [d_ff, d_model]
  WeightMatrix<S> down;  // [d_model, d_ff]
  WeightVector<S> gate_bias, up_bias, down_bias;
  index_t d_ff() const noexcept { return gate.rows; }

  // The one list of this struct's tensors: a copy with f(name, tensor) applied to each (f may
  // move them to another memory space: a device upload).
  template <class F>
  auto transform(F&& f) const {
    MlpWeights<typename decltype(f("", gate))::memory> r;
    r.gate = f("gate_proj.weight", gate), r.up = f("up_proj.weight", up), r.down = f("down_proj.weight", down);
    r.gate_bias = f("gate_proj.bias", gate_bias), r.up_bias = f("up_proj.bias", up_bias);
    r.down_bias = f("down_proj.bias", down_bias);
    return r;
  }
};

// A [rows, cols] activation over `scratch` (contiguous, starting `offset` floats in).
template <class B>
ViewOf<B, float, 2> scratch_matrix(ViewOf<B, float, 1> scratch, index_t offset, index_t rows, index_t cols) {
  return ViewOf<B, float, 2>(scratch.data() + offset, {rows, cols});
}

// x [n, d_model] -> y [n, d_model]. scratch: >= 2·n·d_ff floats. y must not alias x. Unmerged
// LoRA: lora's gate/up/down tables, rows each row's adapter (both empty: the plain MLP).
template <class B>
void mlp_forward(B backend, const MlpWeights<typename B::memory>& w, ViewOf<B, const float, 2> x,
                 ViewOf<B, float, 1> scratch, ViewOf<B, float, 2> y, const MlpLora<typename B::memory>& lora = {},
                 const LoraRows<B>& rows = {}) {
  const index_t n = x.extent(0), f = w.d_ff();
  ViewOf<B, float, 2> gate = scratch_matrix<B>(scratch, 0, n, f);
  ViewOf<B, float, 2> up = scratch_matrix<B>(scratch, n * f, n, f);
  linear(backend, x, w.gate, gate);
  lora_update(backend, x, lora.gate, rows, gate);
  add_bias(backend, gate, w.gate_bias);
  linear(backend, x, w.up, up);
  lora_update(backend, x, lora.up, rows, up);
  add_bias(backend, up, w.up_bias);
  kernels::swiglu(backend, ViewOf<B, const float, 2>(gate), ViewOf<B, const float, 2>(up), gate);
  linear(backend, ViewOf<B, const float, 2>(gate), w.down, y);
  lora_update(backend, ViewOf<B, const float, 2>(gate), lora.down, rows, y);
  add_bias(backend, y, w.down_bias);
}

enum class ExpertLayout : std::uint8_t {
  kSeparate,        // experts.{e}.gate_proj / up_proj / down_proj (or w1 / w3 / w2)
  kFusedGateUp,     // experts.gate_up_proj [E, 2·d_ff, d_model] (gate rows first), down_proj [E, d_model, d_ff]
  kInputMajorGlu,   // GPT-OSS: gate_up_proj [E, d_model, 2·d_ff] with gate/up in even/odd columns,
                    // gate_up_proj_bias [E, 2·d_ff], down_proj [E, d_ff, d_model], down_proj_bias [E, d_model]
  kInputMajorFused,  // Llama 4: gate_up_proj [E, d_model, 2·d_ff] used as x · W (gate columns first, then
                     // up), down_proj [E, d_ff, d_model]; no biases
  kOutputMajorGlu   // GPT-OSS's MXFP4 checkpoints (*_blocks + *_scales): the same bank transposed,
                    // gate_up [E, 2·d_ff, d_model] with gate/up in even/odd rows, down [E, d_model, d_ff]
};

// The routed experts of one MoE layer. Per-expert matrices are views into the checkpoint.
template <class S = host_memory>
struct ExpertBank {
  ExpertLayout layout = ExpertLayout::kSeparate;
  index_t n_experts = 0;
  index_t d_model = 0;
  index_t d_ff = 0;
  bool clamped = false;            // GPT-OSS clamped SwiGLU
  float alpha = 1.702f;
  float limit = 7.0f;
  std::vector<WeightMatrix<S>> gate;     // kSeparate: [d_ff, d_model] each
  std::vector<WeightMatrix<S>> up;       // kSeparate: [d_ff, d_model] each
  std::vector<WeightMatrix<S>> gate_up;  // kFusedGateUp, kOutputMajorGlu: [2·d_ff, d_model]; kInputMajor*: [d_model, 2·d_ff]
  std::vector<WeightMatrix<S>> down;     // [d_model, d_ff], or [d_ff, d_model] input-major
  std::vector<WeightVector<S>> gate_up_bias;  // k*MajorGlu: [2·d_ff]
  std::vector<WeightVector<S>> down_bias;     // k*MajorGlu: [d_model]

  // The one list of the bank's tensors: a copy with f(name, tensor) applied to each.
  template <class F>
  auto transform(F&& f) const {
    ExpertBank<typename decltype(f("", WeightMatrix<S>{}))::memory> b;
    b.layout = layout, b.n_experts = n_experts, b.d_model = d_model, b.d_ff = d_ff;
    b.clamped = clamped, b.alpha = alpha, b.limit = limit;
    const auto each = [&](const char* name, const auto& from, auto& to) {
      to.reserve(from.size());
      for (const auto& t : from) to.push_back(f(name, t));
    };
    each("gate", gate, b.gate), each("up", up, b.up), each("gate_up", gate_up, b.gate_up);
    each("down", down, b.down), each("gate_up_bias", gate_up_bias, b.gate_up_bias);
    each("down_bias", down_bias, b.down_bias);
    return b;
  }
};

// Floats of scratch expert_forward needs for n tokens.
template <class S>
index_t expert_scratch_floats(const ExpertBank<S>& bank, index_t n) noexcept { return 3 * n * bank.d_ff; }

// Runs expert e on x [n, d_model] -> y [n, d_model] (unweighted). y must not alias x.
// scratch: expert_scratch_floats(bank, n) floats. Hot path: no allocation. Unmerged LoRA: expert
// e's tables and each of the n rows' adapter (both empty: the plain expert; only the layouts
// model/lora.hpp can adapt, kSeparate and kFusedGateUp, ever get tables).
template <class B>
void expert_forward(B backend, const ExpertBank<typename B::memory>& bank, index_t e, ViewOf<B, const float, 2> x,
                    ViewOf<B, float, 1> scratch, ViewOf<B, float, 2> y,
                    const ExpertLora<typename B::memory>& lora = {}, const LoraRows<B>& rows = {}) {
  using CV = ViewOf<B, const float, 2>;
  using MV = ViewOf<B, float, 2>;
  const index_t n = x.extent(0), f = bank.d_ff;
  MV gu = scratch_matrix<B>(scratch, 0, n, 2 * f);
  MV act = scratch_matrix<B>(scratch, 2 * n * f, n, f);
  switch (bank.layout) {
    case ExpertLayout::kSeparate: {
      MV g(gu.data(), {n, f}, {2 * f, 1});
      MV u(gu.data() + f, {n, f}, {2 * f, 1});
      linear_fanout<B, 2>(backend, x, {&bank.gate[e], &bank.up[e]}, {g, u});  // one pass over x
      lora_update(backend, x, lora.gate, rows, g);
      lora_update(backend, x, lora.up, rows, u);
      kernels::swiglu(backend, CV(g), CV(u), act);
      linear(backend, CV(act), bank.down[e], y);
      lora_update(backend, CV(act), lora.down, rows, y);
      break;
    }
    case ExpertLayout::kFusedGateUp: {
      linear(backend, x, bank.gate_up[e], gu);
      lora_update(backend, x, lora.gate_up, rows, gu);
      CV g(gu.data(), {n, f}, {2 * f, 1});
      CV u(gu.data() + f, {n, f}, {2 * f, 1});
      kernels::swiglu(backend, g, u, act);
      linear(backend, CV(act), bank.down[e], y);
      lora_update(backend, CV(act), lora.down, rows, y);
      break;
    }
    case ExpertLayout::kInputMajorFused: {
      linear_in_out(backend, x, bank.gate_up[e], gu);
      CV g(gu.data(), {n, f}, {2 * f, 1});
      CV u(gu.data() + f, {n, f}, {2 * f, 1});
      kernels::swiglu(backend, g, u, act);
      linear_in_out(backend, CV(act), bank.down[e], y);
      break;
    }
    case ExpertLayout::kInputMajorGlu:
    case ExpertLayout::kOutputMajorGlu: {
      const bool in_out = bank.layout == ExpertLayout::kInputMajorGlu;
      if (in_out) linear_in_out(backend, x, bank.gate_up[e], gu);
      else linear(backend, x, bank.gate_up[e], gu);
      add_bias(backend, gu, bank.gate_up_bias[e]);
      kernels::glu_interleaved(backend, CV(gu), kernels::GluParams{bank.alpha, bank.limit, bank.clamped}, act);
      if (in_out) linear_in_out(backend, CV(act), bank.down[e], y);
      else linear(backend, CV(act), bank.down[e], y);
      add_bias(backend, y, bank.down_bias[e]);
      break;
    }
  }
}

namespace experts_detail {

// The cpu_simd pass over a bank whose chosen experts' matrices are all row-interleaved (the load
// repack's layout), gate/up in one format and down in one format, laid out kSeparate or
// kFusedGateUp: kernels::interleaved_experts, one parallel region for all of them (streamed and
// GEMM-sized buckets alike).
// False, with nothing done, for any other bank.
template <class B>
bool interleaved_bank_forward(B backend, const ExpertBank<host_memory>& bank, View<const std::int32_t, 1> offsets,
                              View<const float, 2> xs, View<float, 1> scratch, View<float, 2> ys) {
  const bool separate = bank.layout == ExpertLayout::kSeparate;
  if (!separate && bank.layout != ExpertLayout::kFusedGateUp) return false;
  const auto n = static_cast<std::size_t>(bank.n_experts);
  const auto& first = separate ? bank.gate : bank.gate_up;
  if (offsets.extent(0) < bank.n_experts + 1 || first.size() != n || bank.down.size() != n ||
      (separate && bank.up.size() != n)) {
    return false;
  }
  const auto interleaved = [](const WeightMatrix<>& m, DType t) { return m.row_group == quant::kInterleavedRows && m.dtype == t; };
  DType gate_type = DType::f32, down_type = DType::f32;
  bool any = false;
  for (std::size_t e = 0; e < n; ++e) {
    if (offsets[static_cast<index_t>(e)] == offsets[static_cast<index_t>(e) + 1]) continue;
    if (!any) gate_type = first[e].dtype, down_type = bank.down[e].dtype, any = true;
    if (!interleaved(first[e], gate_type) || !interleaved(bank.down[e], down_type) ||
        (separate && !interleaved(bank.up[e], gate_type))) {
      return false;
    }
  }
  if (!any) return false;
  bool done = false;
  visit_format<B>(gate_type, [&](auto gate_tag) {
    using Tg = decltype(gate_tag);
    if constexpr (has_interleaved_matmul<B, Tg>()) {
      visit_format<B>(down_type, [&](auto down_tag) {
        using Td = decltype(down_tag);
        if constexpr (has_interleaved_matmul<B, Td>()) {
          const auto expert_of = [&](index_t e) {
            kernels::InterleavedExpert<Tg, Td> w;
            const auto i = static_cast<std::size_t>(e);
            w.parts = separate ? 2 : 1;
            w.gate_up[0] = first[i].template view_interleaved<Tg>();
            if (separate) w.gate_up[1] = bank.up[i].template view_interleaved<Tg>();
            w.down = bank.down[i].template view_interleaved<Td>();
            return w;
          };
          kernels::interleaved_experts<Tg, Td>(backend, offsets.slice(0, bank.n_experts + 1), xs, bank.d_ff, expert_of,
                                               scratch, ys);
          done = true;
        }
      });
    }
  });
  return done;
}

}  // namespace experts_detail

// Every expert over its bucket of slots: ys[offsets[e], offsets[e+1]) = expert_e(xs[...]).
// offsets [n_experts + 1] (bucket_by_expert's). Host backends read the offsets: cpu_simd runs a
// bank of repacked matrices in one parallel region (experts_detail::interleaved_bank_forward),
// any other bank one expert_forward per chosen expert; a device backend provides its own overload
// (a grouped GEMM that reads them in device memory). Unmerged LoRA (host backends): lora
// [n_experts] tables (or empty) and slot_rows, each bucketed slot's adapter (its token's
// sequence's).
template <class B>
  requires backend::is_host_backend_v<B>
void experts_forward(B backend, const ExpertBank<typename B::memory>& bank, View<const std::int32_t, 1> offsets,
                     View<const float, 2> xs, View<float, 1> scratch, View<float, 2> ys,
                     const std::vector<ExpertLora<host_memory>>& lora = {}, const LoraRows<B>& slot_rows = {}) {
  const bool adapted = slot_rows.active() && static_cast<index_t>(lora.size()) == bank.n_experts;
  if constexpr (backend::is_cpu_simd_v<B>) {
    if (!adapted && experts_detail::interleaved_bank_forward(backend, bank, offsets, xs, scratch, ys)) return;
  }
  for (index_t e = 0; e < bank.n_experts; ++e) {
    const auto begin = static_cast<index_t>(offsets[e]), end = static_cast<index_t>(offsets[e + 1]);
    if (end == begin) continue;
    if (adapted) {
      expert_forward(backend, bank, e, xs.slice(begin, end), scratch, ys.slice(begin, end), lora[e],
                     slot_rows.slice(begin, end));
    } else {
      expert_forward(backend, bank, e, xs.slice(begin, end), scratch, ys.slice(begin, end));
    }
  }
}

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
}  // namespace moe::layers

#include <cstddef>
#include <cstdlib>

namespace moe::layers {
namespace cuda_experts_detail {

// The previous CUDA expert pass, kept as the fallback for banks whose experts are not at one
// constant stride: reads the bucket offsets back (one small copy and a synchronisation per MoE
// layer) and launches each chosen expert's GEMMs.
inline void per_expert(backend::cuda be, const ExpertBank<device_memory>& bank,
                       DeviceView<const std::int32_t, 1> offsets, DeviceView<const float, 2> xs,
                       DeviceView<float, 1> scratch, DeviceView<float, 2> ys) {
  require(bank.n_experts <= static_cast<index_t>(limits::kMaxExperts), ErrorCode::kInvalidArgument,
          "experts_forward: {} experts", bank.n_experts);
  std::int32_t host[limits::kMaxExperts + 1];
  kernels::download(be, offsets.slice(0, bank.n_experts + 1), std::span<std::int32_t>(host, bank.n_experts + 1));
  for (index_t e = 0; e < bank.n_experts; ++e) {
    const auto begin = static_cast<index_t>(host[e]), end = static_cast<index_t>(host[e + 1]);
    if (end == begin) continue;
    expert_forward(be, bank, e, xs.slice(begin, end), scratch, ys.slice(begin, end));
  }
}

inline bool same_layout(const WeightMatrix<device_memory>& a, const WeightMatrix<device_memory>& b) noexcept {
  return a.dtype == b.dtype && a.rows == b.rows && a.cols == b.cols && a.row_stride == b.row_stride;
}
inline bool same_layout(const WeightVector<device_memory>& a, const WeightVector<device_memory>& b) noexcept {
  return a.dtype == b.dtype && a.size == b.size;
}

// The byte stride between consecutive experts of `list` when all n of them have the same dtype
// and shape and expert e sits at list[0].data + e · stride (stride >= 0); -1 otherwise. The
// device upload (model/upload.hpp: tensors copied in list order at 256-byte aligned offsets) and
// the synthetic and fused banks (one buffer) give a constant stride; anything else takes the
// per-expert fallback.
template <class T>
std::ptrdiff_t uniform_stride(const std::vector<T>& list, index_t n) noexcept {
  if (n < 1 || static_cast<index_t>(list.size()) != n || list[0].empty()) return -1;
  if (n == 1) return 0;
  const std::ptrdiff_t stride = list[1].data - list[0].data;
  if (stride < 0) return -1;
  for (index_t e = 1; e < n; ++e) {
    if (!same_layout(list[e], list[0]) || list[e].data != list[0].data + e * stride) return -1;
  }
  return stride;
}

// MOE_CUDA_PER_EXPERT=1 forces the per-expert fallback (for A/B measurements); read once.
inline bool force_per_expert() {
  static const bool force = [] {
    const char* v = std::getenv("MOE_CUDA_PER_EXPERT");
    return v != nullptr && v[0] == '1';
  }();
  return force;
}

// ys = x · W_e^T per bucket (W_e = w0 + e · stride), or x · W_e for input-major weights.
inline void grouped_linear(backend::cuda be, DeviceView<const float, 2> xs, const WeightMatrix<device_memory>& w0,
                           std::ptrdiff_t stride, DeviceView<const std::int32_t, 1> offsets, DeviceView<float, 2> ys,
                           bool in_out, index_t max_bucket) {
  visit_format<backend::cuda>(w0.dtype, [&](auto tag) {
    using T = decltype(tag);
    if (in_out) kernels::grouped_matmul_in_out(be, xs, w0.template view<T>(), static_cast<std::size_t>(stride), offsets, ys);
    else kernels::grouped_matmul(be, xs, w0.template view<T>(), static_cast<std::size_t>(stride), offsets, ys, max_bucket);
  });
}

// act = silu(xs·G_eᵀ) · (xs·U_eᵀ) per bucket in one launch (kernels::grouped_matmul_swiglu).
inline void grouped_swiglu(backend::cuda be, DeviceView<const float, 2> xs, const WeightMatrix<device_memory>& gate0,
                           std::ptrdiff_t gate_stride, const WeightMatrix<device_memory>& up0, std::ptrdiff_t up_stride,
                           DeviceView<const std::int32_t, 1> offsets, DeviceView<float, 2> act, index_t max_bucket) {
  visit_format<backend::cuda>(gate0.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::grouped_matmul_swiglu(be, xs, gate0.template view<T>(), static_cast<std::size_t>(gate_stride),
                                   up0.template view<T>(), static_cast<std::size_t>(up_stride), offsets, act, max_bucket);
  });
}

// Decode-sized passes (every bucket at most the GEMV's kGemvMaxTokens slots) fuse a SwiGLU bank's
// gate and up products with the activation.
inline bool fuse_swiglu(index_t slots, index_t max_bucket) noexcept {
  const index_t bound = max_bucket > 0 ? std::min(slots, max_bucket) : slots;
  return bound <= kernels::cuda_detail::kGemvMaxTokens;
}

inline void grouped_bias(backend::cuda be, DeviceView<float, 2> ys, const WeightVector<device_memory>& b0,
                         std::ptrdiff_t stride, DeviceView<const std::int32_t, 1> offsets) {
  visit_vector_format<backend::cuda>(b0.dtype, [&](auto tag) {
    using T = decltype(tag);
    kernels::grouped_add_bias(be, ys, b0.template view<T>(), static_cast<std::size_t>(stride), offsets);
  });
}

}  // namespace cuda_experts_detail

// The CUDA backend's expert pass, with no host round trip: grouped GEMMs (kernels/cuda/grouped.cuh)
// find each block's expert from the bucket offsets in device memory, so a layer is the gate/up
// product(s), one SwiGLU/GLU over all slots and the down product (plus the grouped biases of the
// input-major layout): 3-6 launches, whatever the number of chosen experts. The arithmetic per
// slot is that of expert_forward (the same device code, bitwise). Banks whose per-expert tensors
// are not at one constant stride (or differ in shape or dtype) take the per-expert fallback,
// which reads the offsets back and launches each expert's GEMMs. max_bucket (0: unknown) bounds
// the slots of any bucket (the pass's token count: a token's choices are distinct experts); it
// sizes the decode GEMV (kernels::grouped_matmul).
inline void experts_forward(backend::cuda be, const ExpertBank<device_memory>& bank,
                            DeviceView<const std::int32_t, 1> offsets, DeviceView<const float, 2> xs,
                            DeviceView<float, 1> scratch, DeviceView<float, 2> ys, index_t max_bucket = 0) {
  namespace ed = cuda_experts_detail;
  using CV = DeviceView<const float, 2>;
  using MV = DeviceView<float, 2>;
  const index_t n = xs.extent(0), f = bank.d_ff, E = bank.n_experts;
  if (n == 0 || E == 0) return;
  require(offsets.extent(0) >= E + 1 && scratch.extent(0) >= expert_scratch_floats(bank, n),
          ErrorCode::kInvalidArgument, "experts_forward: {} offsets for {} experts, {} scratch floats for {} slots",
          offsets.extent(0), E, scratch.extent(0), n);
  const DeviceView<const std::int32_t, 1> off = offsets.slice(0, E + 1);
  const std::ptrdiff_t down = ed::uniform_stride(bank.down, E);
  std::ptrdiff_t a = -1, b = -1;  // gate and up (kSeparate), gate_up and its bias (kInputMajorGlu)
  switch (bank.layout) {
    case ExpertLayout::kSeparate: a = ed::uniform_stride(bank.gate, E), b = ed::uniform_stride(bank.up, E); break;
    case ExpertLayout::kFusedGateUp:
    case ExpertLayout::kInputMajorFused: a = b = ed::uniform_stride(bank.gate_up, E); break;
    case ExpertLayout::kInputMajorGlu:
    case ExpertLayout::kOutputMajorGlu:
      a = ed::uniform_stride(bank.gate_up, E);
      b = bank.gate_up_bias.empty() ? 0 : ed::uniform_stride(bank.gate_up_bias, E);
      if (!bank.down_bias.empty() && ed::uniform_stride(bank.down_bias, E) < 0) b = -1;
      break;
  }
  if (down < 0 || a < 0 || b < 0 || ed::force_per_expert()) {
    ed::per_expert(be, bank, offsets, xs, scratch, ys);
    return;
  }
  MV gu = scratch_matrix<backend::cuda>(scratch, 0, n, 2 * f);
  MV act = scratch_matrix<backend::cuda>(scratch, 2 * n * f, n, f);
  switch (bank.layout) {
    case ExpertLayout::kSeparate: {
      if (ed::fuse_swiglu(n, max_bucket) && bank.gate[0].dtype == bank.up[0].dtype) {
        ed::grouped_swiglu(be, xs, bank.gate[0], a, bank.up[0], b, off, act, max_bucket);
        ed::grouped_linear(be, CV(act), bank.down[0], down, off, ys, false, max_bucket);
        break;
      }
      MV g(gu.data(), {n, f}, {2 * f, 1});
      MV u(gu.data() + f, {n, f}, {2 * f, 1});
      ed::grouped_linear(be, xs, bank.gate[0], a, off, g, false, max_bucket);
      ed::grouped_linear(be, xs, bank.up[0], b, off, u, false, max_bucket);
      kernels::swiglu(be, CV(g), CV(u), act);
      ed::grouped_linear(be, CV(act), bank.down[0], down, off, ys, false, max_bucket);
      break;
    }
    case ExpertLayout::kFusedGateUp: {
      if (ed::fuse_swiglu(n, max_bucket)) {
        const WeightMatrix<device_memory> gate0 = bank.gate_up[0].row_slice(0, f),
                                         up0 = bank.gate_up[0].row_slice(f, 2 * f);
        ed::grouped_swiglu(be, xs, gate0, a, up0, a, off, act, max_bucket);
        ed::grouped_linear(be, CV(act), bank.down[0], down, off, ys, false, max_bucket);
        break;
      }
      ed::grouped_linear(be, xs, bank.gate_up[0], a, off, gu, false, max_bucket);
      CV g(gu.data(), {n, f}, {2 * f, 1});
      CV u(gu.data() + f, {n, f}, {2 * f, 1});
      kernels::swiglu(be, g, u, act);
      ed::grouped_linear(be, CV(act), bank.down[0], down, off, ys, false, max_bucket);
      break;
    }
    case ExpertLayout::kInputMajorFused: {
      ed::grouped_linear(be, xs, bank.gate_up[0], a, off, gu, true, max_bucket);
      CV g(gu.data(), {n, f}, {2 * f, 1});
      CV u(gu.data() + f, {n, f}, {2 * f, 1});
      kernels::swiglu(be, g, u, act);
      ed::grouped_linear(be, CV(act), bank.down[0], down, off, ys, true, max_bucket);
      break;
    }
    case ExpertLayout::kInputMajorGlu:
    case ExpertLayout::kOutputMajorGlu: {
      const bool in_out = bank.layout == ExpertLayout::kInputMajorGlu;
      ed::grouped_linear(be, xs, bank.gate_up[0], a, off, gu, in_out, max_bucket);
      if (!bank.gate_up_bias.empty()) ed::grouped_bias(be, gu, bank.gate_up_bias[0], b, off);
      kernels::glu_interleaved(be, CV(gu), kernels::GluParams{bank.alpha, bank.limit, bank.clamped}, act);
      ed::grouped_linear(be, CV(act), bank.down[0], down, off, ys, in_out, max_bucket);
      if (!bank.down_bias.empty()) {
        ed::grouped_bias(be, ys, bank.down_bias[0], ed::uniform_stride(bank.down_bias, E), off);
      }
      break;
    }
  }
}
#endif

}  // namespace moe::layers
