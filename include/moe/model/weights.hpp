// ModelWeights: typed views of every tensor a model uses, bound by name from a TensorSource (the
// checkpoint) with every shape checked against the config. Names follow transformers; the family
// description picks the spellings (per-expert or fused expert banks, Mixtral's w1/w3/w2, ...).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/tensor.hpp"
#include "moe/layers/attention.hpp"
#include "moe/layers/experts.hpp"
#include "moe/layers/gated_delta_net.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/mla.hpp"
#include "moe/layers/moe_block.hpp"
#include "moe/model/config.hpp"

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace moe {

// One tensor's element type and bytes (in place in the mapped file).
struct TensorRef {
  DType dtype = DType::f32;
  const std::byte* data = nullptr;
};

// Where weights come from. Implementations check names, dtypes and shapes and throw
// kMissingTensor / kShapeMismatch / kUnsupported with the tensor's name and the values seen.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual bool contains(std::string_view name) const = 0;
  // The tensor's shape as stored, or nullopt when absent.
  virtual std::optional<std::vector<index_t>> shape_of(std::string_view name) const = 0;
  // The tensor `name`, checked to be f32/bf16/f16 of exactly `shape`.
  virtual TensorRef get(std::string_view name, std::span<const index_t> shape) const = 0;
};

namespace model {

template <class S = host_memory>
using AttentionWeights = layers::AttentionWeights<S>;

template <class S = host_memory>
struct LayerWeights {
  layers::WeightVector<S> input_norm;           // [d_model]
  layers::WeightVector<S> post_attention_norm;  // [d_model]
  layers::AttentionWeights<S> attn;             // standard attention
  layers::MlaWeights<S> mla;                    // DeepSeek
  bool linear_attention = false;                // a Gated DeltaNet layer (delta) instead of attention
  layers::GatedDeltaNetWeights<S> delta;        // Qwen3-Next / Qwen3.5 linear attention
  bool moe = false;
  layers::MlpWeights<S> mlp;                    // dense layers
  layers::MoeWeights<S> moe_weights;            // MoE layers

  // The one list of a layer's tensors (gemma.cpp's ForEachTensor): a copy with f(name, tensor)
  // applied to every matrix and vector (absent ones too: f sees empty() and passes them on).
  // Drives the device upload and the byte counts; names are relative to the sub-block.
  template <class F>
  auto transform(F&& f) const {
    LayerWeights<typename decltype(f("", input_norm))::memory> r;
    r.input_norm = f("input_layernorm.weight", input_norm);
    r.post_attention_norm = f("post_attention_layernorm.weight", post_attention_norm);
    r.attn = attn.transform(f), r.mla = mla.transform(f), r.moe = moe;
    r.linear_attention = linear_attention, r.delta = delta.transform(f);
    r.mlp = mlp.transform(f), r.moe_weights = moe_weights.transform(f);
    return r;
  }
};

template <class S = host_memory>
struct ModelWeights {
  layers::WeightMatrix<S> embed;       // [vocab, d_model]
  layers::WeightMatrix<S> lm_head;     // [vocab, d_model] (the embedding when tied)
  layers::WeightVector<S> lm_head_bias;  // [vocab] or none (ERNIE with use_bias)
  layers::WeightVector<S> final_norm;  // [d_model]
  std::vector<LayerWeights<S>> layers;
  bool tied = false;                   // lm_head is the embedding (one copy)
  // Host tensors made at load from stored ones (zero-centred norms as 1 + w, regrouped
  // projections, widened conv weights); some views above point into it.
  std::shared_ptr<const void> derived;

  template <class F>
  auto transform(F&& f) const {
    ModelWeights<typename decltype(f("", embed))::memory> r;
    r.derived = derived;
    r.embed = f("embed_tokens.weight", embed);
    r.lm_head = tied ? r.embed : f("lm_head.weight", lm_head);
    r.lm_head_bias = f("lm_head.bias", lm_head_bias);
    r.final_norm = f("norm.weight", final_norm);
    r.tied = tied;
    r.layers.reserve(layers.size());
    for (const auto& L : layers) r.layers.push_back(L.transform(f));
    return r;
  }
};

// Checks that Backend has kernels for every weight's format (matrices: Backend::formats,
// vectors: Backend::vector_formats): kUnsupported naming the tensor, the format and the backend.
template <class Backend, class S>
void require_backend_formats(const ModelWeights<S>& w) {
  (void)w.transform([](const char* name, const auto& t) {
    constexpr bool kMatrix = std::is_same_v<std::remove_cvref_t<decltype(t)>, layers::WeightMatrix<S>>;
    const bool ok = kMatrix ? supports_format<Backend>(t.dtype) : supports_vector_format<Backend>(t.dtype);
    require(t.empty() || ok, ErrorCode::kUnsupported, "tensor {}: {} {} are not supported by backend {}", name,
            dtype_name(t.dtype), kMatrix ? "weights" : "vectors", Backend::name);
    return t;
  });
}

// Bytes of the weights, split by how a decode step reads them: `total` (all of them), and
// `per_token` (what one token reads: every dense tensor, one row of the embedding and, per MoE
// layer, top_k of its n_experts experts — the expected bytes when routing is uniform).
struct WeightBytes {
  std::size_t total = 0;
  double per_token = 0;
  // Elements (parameters) of the tensors one token is multiplied with: per_token's tensors but the
  // embedding row, which is gathered. A matmul does 2 FLOPs per element, so 2 × this is the weight
  // FLOPs per token (attention over the context comes on top).
  double per_token_params = 0;
  double params = 0;  // elements of all tensors
};

template <class S>
WeightBytes weight_bytes(const ModelWeights<S>& w, index_t top_k) {
  WeightBytes b;
  std::size_t sum = 0;
  double elems = 0;
  const auto elements = [](const auto& t) -> double {
    if (t.empty()) return 0;
    if constexpr (requires { t.rows; }) {
      return static_cast<double>(t.rows) * static_cast<double>(t.cols);
    } else {
      return static_cast<double>(t.size);
    }
  };
  const auto count = [&](const char*, const auto& t) {
    sum += t.empty() ? 0 : t.bytes();
    elems += elements(t);
    return t;
  };
  for (const auto& L : w.layers) {
    sum = 0, elems = 0;
    (void)L.moe_weights.experts.transform(count);
    const std::size_t experts = sum;
    const double expert_elems = elems;
    sum = 0, elems = 0;
    (void)L.transform(count);
    const std::size_t all = sum;
    b.total += all;
    b.params += elems;
    const double share = L.moe && L.moe_weights.experts.n_experts > 0
                             ? static_cast<double>(top_k) / static_cast<double>(L.moe_weights.experts.n_experts)
                             : 1.0;
    b.per_token += static_cast<double>(all - experts) + share * static_cast<double>(experts);
    b.per_token_params += (elems - expert_elems) + share * expert_elems;
  }
  b.total += w.embed.bytes() + (w.tied ? 0 : w.lm_head.bytes()) + w.final_norm.bytes() + w.lm_head_bias.bytes();
  b.per_token += static_cast<double>(w.lm_head.bytes() + w.final_norm.bytes() + w.lm_head_bias.bytes()) +
                 static_cast<double>(format_row_bytes(w.embed.dtype, w.embed.cols));
  b.per_token_params += elements(w.lm_head) + elements(w.final_norm);
  b.params += elements(w.embed) + (w.tied ? 0 : elements(w.lm_head)) + elements(w.final_norm);
  return b;
}

namespace detail {

class Binder {
 public:
  explicit Binder(const TensorSource& src) : src_(src) {}

  layers::WeightMatrix<> matrix(const std::string& name, index_t rows, index_t cols) const {
    const std::array<index_t, 2> shape{rows, cols};
    const TensorRef t = src_.get(name, shape);
    check_row_length(t.dtype, static_cast<std::size_t>(cols), name);
    return layers::WeightMatrix<>{t.dtype, t.data, rows, cols, cols};
  }
  layers::WeightVector<> vector(const std::string& name, index_t n) const {
    const std::array<index_t, 1> shape{n};
    const TensorRef t = src_.get(name, shape);
    check_row_length(t.dtype, static_cast<std::size_t>(n), name);
    return layers::WeightVector<>{t.dtype, t.data, n};
  }
  // A vector that may be stored as [n] or as a [1, n] row (ERNIE's moe_statics bias).
  layers::WeightVector<> vector_or_row(const std::string& name, index_t n) const {
    const auto shape = src_.shape_of(name);
    if (!shape || shape->size() != 2) return vector(name, n);
    const std::array<index_t, 2> row{1, n};
    const TensorRef t = src_.get(name, row);
    check_row_length(t.dtype, static_cast<std::size_t>(n), name);
    return layers::WeightVector<>{t.dtype, t.data, n};
  }
  // The vector when `wanted` (the config asks for it), else none.
  layers::WeightVector<> vector_if(bool wanted, const std::string& name, index_t n) const {
    return wanted ? vector(name, n) : layers::WeightVector<>{};
  }
  // Expert e of a stacked [n, rows, cols] bank, as a [rows, cols] matrix.
  std::vector<layers::WeightMatrix<>> bank(const std::string& name, index_t n, index_t rows, index_t cols) const {
    const std::array<index_t, 3> shape{n, rows, cols};
    const TensorRef t = src_.get(name, shape);
    check_row_length(t.dtype, static_cast<std::size_t>(cols), name);
    const std::size_t expert_bytes = static_cast<std::size_t>(rows) * format_row_bytes(t.dtype, cols);
    std::vector<layers::WeightMatrix<>> out(n);
    for (index_t e = 0; e < n; ++e) {
      out[e] = layers::WeightMatrix<>{t.dtype, t.data + e * expert_bytes, rows, cols, cols};
    }
    return out;
  }
  std::vector<layers::WeightVector<>> bank_vectors(const std::string& name, index_t n, index_t len) const {
    const std::array<index_t, 2> shape{n, len};
    const TensorRef t = src_.get(name, shape);
    check_row_length(t.dtype, static_cast<std::size_t>(len), name);
    std::vector<layers::WeightVector<>> out(n);
    for (index_t e = 0; e < n; ++e) {
      out[e] = layers::WeightVector<>{t.dtype, t.data + e * format_row_bytes(t.dtype, len), len};
    }
    return out;
  }
  bool has(const std::string& name) const { return src_.contains(name); }
  const TensorSource& source() const { return src_; }

 private:
  const TensorSource& src_;
};

// Host tensors derived at load from stored ones; their addresses stay put (a deque of buffers).
struct DerivedTensors {
  std::deque<std::vector<std::byte>> buffers;
  std::byte* allocate(std::size_t bytes) { return buffers.emplace_back(bytes).data(); }
};

// f32 copies of a stored f32/bf16/f16 tensor's elements (plus `offset`).
inline float* widened(DerivedTensors& d, const TensorRef& t, index_t n, float offset, const std::string& name) {
  auto* out = reinterpret_cast<float*>(d.allocate(n * sizeof(float)));
  const auto widen = [&](const auto* src) {
    for (index_t i = 0; i < n; ++i) out[i] = kernels::detail::weight_to_float(src[i]) + offset;
  };
  switch (t.dtype) {
    case DType::f32: widen(reinterpret_cast<const float*>(t.data)); break;
    case DType::bf16: widen(reinterpret_cast<const bf16*>(t.data)); break;
    case DType::f16: widen(reinterpret_cast<const f16*>(t.data)); break;
    default:
      fail(ErrorCode::kUnsupported, "tensor {}: {} is not supported here (f32, bf16 or f16)", name, dtype_name(t.dtype));
  }
  return out;
}

// An RMSNorm weight [n]: as stored, or (zero-centred families) the f32 vector 1 + w.
inline layers::WeightVector<> bind_norm(const Binder& b, DerivedTensors& d, const ModelConfig& c,
                                        const std::string& name, index_t n) {
  if (!c.spec->zero_centered_norms) return b.vector(name, n);
  const std::array<index_t, 1> shape{n};
  return layers::WeightVector<>{DType::f32,
                                reinterpret_cast<const std::byte*>(widened(d, b.source().get(name, shape), n, 1.0f, name)),
                                n};
}

// A stored tensor of `shape` (n elements in all) as an f32 vector.
inline layers::WeightVector<> bind_f32(const Binder& b, DerivedTensors& d, const std::string& name,
                                       std::span<const index_t> shape, index_t n) {
  return layers::WeightVector<>{
      DType::f32, reinterpret_cast<const std::byte*>(widened(d, b.source().get(name, shape), n, 0.0f, name)), n};
}

// A [rows, cols] matrix made of row ranges of a stored one, in the order given: ranges are
// (first row, count) pairs of `m`, copied byte for byte (any format).
inline layers::WeightMatrix<> gather_rows(DerivedTensors& d, const layers::WeightMatrix<>& m,
                                          std::span<const std::pair<index_t, index_t>> ranges) {
  const std::size_t row_bytes = format_row_bytes(m.dtype, m.cols);
  index_t rows = 0;
  for (const auto& r : ranges) rows += r.second;
  std::byte* out = d.allocate(rows * row_bytes);
  std::byte* at = out;
  for (const auto& [first, count] : ranges) {
    std::memcpy(at, m.data + first * row_bytes, count * row_bytes);
    at += count * row_bytes;
  }
  return layers::WeightMatrix<>{m.dtype, out, rows, m.cols, m.cols};
}

inline layers::MlpWeights<> bind_mlp(const Binder& b, const std::string& p, index_t d, index_t f, bool bias) {
  layers::MlpWeights<> m;
  m.gate = b.matrix(p + ".gate_proj.weight", f, d);
  m.up = b.matrix(p + ".up_proj.weight", f, d);
  m.down = b.matrix(p + ".down_proj.weight", d, f);
  m.gate_bias = b.vector_if(bias, p + ".gate_proj.bias", f);
  m.up_bias = b.vector_if(bias, p + ".up_proj.bias", f);
  m.down_bias = b.vector_if(bias, p + ".down_proj.bias", d);
  return m;
}

inline layers::ExpertBank<> bind_experts(const Binder& b, const ModelConfig& c, const std::string& moe) {
  const ArchitectureSpec& s = *c.spec;
  layers::ExpertBank<> bank;
  bank.n_experts = c.n_experts;
  bank.d_model = c.d_model;
  bank.d_ff = c.d_ff_expert;
  bank.alpha = c.swiglu_alpha;
  bank.limit = c.swiglu_limit;
  const index_t E = c.n_experts, D = c.d_model;
  std::string fused = moe + ".experts.gate_up_proj", fused_down = moe + ".experts.down_proj";
  if (!s.fused_gate_up_alt.empty() && !b.has(fused) && b.has(moe + "." + std::string(s.fused_gate_up_alt))) {
    fused = moe + "." + std::string(s.fused_gate_up_alt);
    fused_down = moe + "." + std::string(s.fused_down_alt);
  }
  if (s.activation == ExpertActivation::kClampedSwiglu) {
    bank.clamped = true;
    // d_ff from the stored bank when the config's intermediate_size disagrees is a shape error.
    const index_t F = c.d_ff_expert;
    const std::string blocks = fused + "_blocks", down_blocks = moe + ".experts.down_proj_blocks";
    if (b.has(blocks) || b.has(down_blocks)) {
      // GPT-OSS's MXFP4 checkpoints store the bank output-major (the transpose of the bf16 one):
      // the source reads `<name>_blocks` + `<name>_scales` as one MXFP4 matrix of the logical
      // shape asked for here (io/checkpoint_quantization.hpp).
      bank.layout = layers::ExpertLayout::kOutputMajorGlu;
      bank.gate_up = b.bank(blocks, E, 2 * F, D);
      bank.down = b.bank(down_blocks, E, D, F);
    } else {
      bank.layout = layers::ExpertLayout::kInputMajorGlu;
      bank.gate_up = b.bank(fused, E, D, 2 * F);
      bank.down = b.bank(moe + ".experts.down_proj", E, F, D);
    }
    bank.gate_up_bias = b.bank_vectors(moe + ".experts.gate_up_proj_bias", E, 2 * F);
    bank.down_bias = b.bank_vectors(moe + ".experts.down_proj_bias", E, D);
    return bank;
  }
  if (s.input_major_experts) {
    const index_t F = c.d_ff_expert;
    bank.layout = layers::ExpertLayout::kInputMajorFused;
    bank.gate_up = b.bank(fused, E, D, 2 * F);
    bank.down = b.bank(fused_down, E, F, D);
    return bank;
  }
  if (b.has(fused)) {
    // transformers 5 in memory stacks the experts: gate_up_proj [E, 2F, D] (gate rows, then up
    // rows: the forward does linear(x, gate_up_proj[e]).chunk(2)), down_proj [E, D, F].
    const index_t F = c.d_ff_expert;
    bank.layout = layers::ExpertLayout::kFusedGateUp;
    bank.gate_up = b.bank(fused, E, 2 * F, D);
    bank.down = b.bank(fused_down, E, D, F);
    return bank;
  }
  bank.layout = layers::ExpertLayout::kSeparate;
  const index_t F = c.d_ff_expert;
  std::string_view g = s.expert_gate, u = s.expert_up, dn = s.expert_down;
  if (!s.expert_gate_alt.empty() && !b.has(fmt::format("{}.experts.0.{}.weight", moe, g)) &&
      b.has(fmt::format("{}.experts.0.{}.weight", moe, s.expert_gate_alt))) {
    g = s.expert_gate_alt;
    u = s.expert_up_alt;
    dn = s.expert_down_alt;
  }
  bank.gate.resize(E);
  bank.up.resize(E);
  bank.down.resize(E);
  for (index_t e = 0; e < E; ++e) {
    const std::string p = fmt::format("{}.experts.{}.", moe, e);
    bank.gate[e] = b.matrix(p + std::string(g) + ".weight", F, D);
    bank.up[e] = b.matrix(p + std::string(u) + ".weight", F, D);
    bank.down[e] = b.matrix(p + std::string(dn) + ".weight", D, F);
  }
  return bank;
}

// MLA projections of one layer (prefix "model.layers.{i}.self_attn.").
inline layers::MlaWeights<> bind_mla(const Binder& b, const ModelConfig& c, const std::string& a, index_t layer) {
  const index_t D = c.d_model, H = c.n_heads;
  const index_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim, R = c.kv_lora_rank;
  layers::MlaWeights<> m;
  if (c.q_lora_rank == 0) {
    m.q_proj = b.matrix(a + "q_proj.weight", H * qk, D);
  } else {
    m.q_a_proj = b.matrix(a + "q_a_proj.weight", c.q_lora_rank, D);
    m.q_a_bias = b.vector_if(c.qkv_bias, a + "q_a_proj.bias", c.q_lora_rank);
    m.q_a_norm = b.vector(a + "q_a_layernorm.weight", c.q_lora_rank);
    m.q_b_proj = b.matrix(a + "q_b_proj.weight", H * qk, c.q_lora_rank);
  }
  m.kv_a_proj = b.matrix(a + "kv_a_proj_with_mqa.weight", R + c.qk_rope_head_dim, D);
  m.kv_a_bias = b.vector_if(c.qkv_bias, a + "kv_a_proj_with_mqa.bias", R + c.qk_rope_head_dim);
  m.kv_a_norm = b.vector(a + "kv_a_layernorm.weight", R);
  if (b.has(a + "k_b_proj.weight") && b.has(a + "v_b_proj.weight")) {  // split per head (GGUF attn_k_b / attn_v_b)
    m.k_b_proj = b.matrix(a + "k_b_proj.weight", H * R, c.qk_nope_head_dim);
    m.v_b_proj = b.matrix(a + "v_b_proj.weight", H * c.v_head_dim, R);
  } else {
    m.kv_b_proj = b.matrix(a + "kv_b_proj.weight", H * (c.qk_nope_head_dim + c.v_head_dim), R);
  }
  m.o_proj = b.matrix(a + "o_proj.weight", D, H * c.v_head_dim);
  m.o_bias = b.vector_if(c.o_bias, a + "o_proj.bias", D);
  if (c.dsa.top_k > 0 && !c.indexer_shared[layer]) {  // DSA lightning indexer
    const index_t IH = c.dsa.n_heads, ID = c.dsa.head_dim;
    m.index_wq_b = b.matrix(a + "indexer.wq_b.weight", IH * ID, c.q_lora_rank);
    m.index_wk = b.matrix(a + "indexer.wk.weight", ID, D);
    m.index_k_norm = b.vector(a + "indexer.k_norm.weight", ID);
    m.index_k_bias = b.vector(a + "indexer.k_norm.bias", ID);
    m.index_weights = b.matrix(a + "indexer.weights_proj.weight", IH, D);
  }
  return m;
}

// Standard attention of one layer: projections, optional biases, QK-norm, sinks.
inline AttentionWeights<> bind_attention(const Binder& b, DerivedTensors& d, const ModelConfig& c,
                                         const std::string& a) {
  const index_t D = c.d_model, H = c.n_heads, KV = c.n_kv_heads, hd = c.head_dim;
  AttentionWeights<> at;
  if (c.attention_output_gate) {
    // q_proj [H·2hd, D]: head h's query rows then its gate rows; split into q and gate.
    const layers::WeightMatrix<> qg = b.matrix(a + "q_proj.weight", 2 * H * hd, D);
    std::vector<std::pair<index_t, index_t>> q_rows, g_rows;
    for (index_t h = 0; h < H; ++h) {
      q_rows.emplace_back(2 * h * hd, hd);
      g_rows.emplace_back(2 * h * hd + hd, hd);
    }
    at.q = gather_rows(d, qg, q_rows);
    at.gate = gather_rows(d, qg, g_rows);
  } else {
    at.q = b.matrix(a + "q_proj.weight", H * hd, D);
  }
  at.k = b.matrix(a + "k_proj.weight", KV * hd, D);
  at.v = b.matrix(a + "v_proj.weight", KV * hd, D);
  at.o = b.matrix(a + "o_proj.weight", D, H * hd);
  at.q_bias = b.vector_if(c.qkv_bias, a + "q_proj.bias", H * hd);
  at.k_bias = b.vector_if(c.qkv_bias, a + "k_proj.bias", KV * hd);
  at.v_bias = b.vector_if(c.qkv_bias, a + "v_proj.bias", KV * hd);
  at.o_bias = b.vector_if(c.o_bias, a + "o_proj.bias", D);
  const std::string qn = a + std::string(c.spec->q_norm_name) + ".weight";
  const std::string kn = a + std::string(c.spec->k_norm_name) + ".weight";
  if (c.qk_norm == QkNorm::kPerHead || c.qk_norm == QkNorm::kPerHeadAfterRope) {
    at.q_norm = bind_norm(b, d, c, qn, hd);
    at.k_norm = bind_norm(b, d, c, kn, hd);
  } else if (c.qk_norm == QkNorm::kWholeProjection) {
    at.q_norm = b.vector(qn, H * hd);
    at.k_norm = b.vector(kn, KV * hd);
  }
  if (c.attention_sinks) at.sinks = b.vector(a + "sinks", H);
  return at;
}

// The MoE block of layer prefix p: router (+ bias, correction bias), routed experts, shared
// expert (+ its gate). The family names the block (mlp / block_sparse_moe, with an alternative).
inline layers::MoeWeights<> bind_moe(const Binder& b, const ModelConfig& c, const std::string& p) {
  const ArchitectureSpec& s = *c.spec;
  const index_t D = c.d_model;
  std::string moe = p + std::string(s.moe_prefix);
  std::string router = std::string(s.router_name);
  if (!s.moe_prefix_alt.empty() && !b.has(moe + "." + router + ".weight") &&
      b.has(p + std::string(s.moe_prefix_alt) + "." + router + ".weight")) {
    moe = p + std::string(s.moe_prefix_alt);
  }
  if (!s.router_name_alt.empty() && !b.has(moe + "." + router + ".weight") &&
      b.has(moe + "." + std::string(s.router_name_alt) + ".weight")) {
    router = std::string(s.router_name_alt);
  }
  layers::MoeWeights<> mw;
  mw.router = b.matrix(moe + "." + router + ".weight", c.n_experts, D);
  mw.router_bias = b.vector_if(s.router_bias, moe + "." + router + ".bias", c.n_experts);
  if (c.router.has_correction_bias) {
    std::string bias = moe + "." + std::string(s.correction_bias_name);
    if (!s.correction_bias_name_alt.empty() && !b.has(bias)) bias = moe + "." + std::string(s.correction_bias_name_alt);
    mw.correction_bias = b.vector_or_row(bias, c.n_experts);
  }
  mw.experts = bind_experts(b, c, moe);
  if (c.d_ff_shared > 0) {
    mw.shared = bind_mlp(b, moe + "." + std::string(s.shared_expert_name), D, c.d_ff_shared, c.mlp_bias);
    if (s.shared_expert == SharedExpert::kSigmoidGated) {
      mw.shared_gate = b.matrix(moe + ".shared_expert_gate.weight", 1, D);
    }
  }
  return mw;
}

// A Gated DeltaNet layer (prefix "model.layers.{i}.linear_attn."), its projections in the layer's
// one channel order (Qwen3-Next's per-key-head groups regrouped).
inline layers::GatedDeltaNetWeights<> bind_delta_net(const Binder& b, DerivedTensors& d, const ModelConfig& c,
                                                     const std::string& a) {
  const kernels::DeltaNetShape& s = c.delta_net;
  const index_t D = c.d_model, nk = s.n_k_heads, nv = s.n_v_heads, dk = s.k_head_dim, dv = s.v_head_dim;
  const index_t r = nv / nk, Kd = s.key_dim(), Vd = s.value_dim(), C = s.conv_dim();
  layers::GatedDeltaNetWeights<> w;
  if (c.spec->delta_net == DeltaNetLayout::kGroupedQkvz) {
    // in_proj_qkvz: per key head g, [q (dk) | k (dk) | v (r·dv) | z (r·dv)]; in_proj_ba: [b (r) | a (r)].
    const index_t group = 2 * dk + 2 * r * dv;
    const layers::WeightMatrix<> qkvz = b.matrix(a + "in_proj_qkvz.weight", nk * group, D);
    const layers::WeightMatrix<> ba = b.matrix(a + "in_proj_ba.weight", 2 * nv, D);
    std::vector<std::pair<index_t, index_t>> qkv, z, bb, aa;
    for (index_t g = 0; g < nk; ++g) qkv.emplace_back(g * group, dk);
    for (index_t g = 0; g < nk; ++g) qkv.emplace_back(g * group + dk, dk);
    for (index_t g = 0; g < nk; ++g) qkv.emplace_back(g * group + 2 * dk, r * dv);
    for (index_t g = 0; g < nk; ++g) z.emplace_back(g * group + 2 * dk + r * dv, r * dv);
    for (index_t g = 0; g < nk; ++g) bb.emplace_back(g * 2 * r, r);
    for (index_t g = 0; g < nk; ++g) aa.emplace_back(g * 2 * r + r, r);
    w.qkv = gather_rows(d, qkvz, qkv);
    w.z = gather_rows(d, qkvz, z);
    w.b = gather_rows(d, ba, bb);
    w.a = gather_rows(d, ba, aa);
  } else {
    w.qkv = b.matrix(a + "in_proj_qkv.weight", 2 * Kd + Vd, D);
    w.z = b.matrix(a + "in_proj_z.weight", Vd, D);
    w.b = b.matrix(a + "in_proj_b.weight", nv, D);
    w.a = b.matrix(a + "in_proj_a.weight", nv, D);
  }
  w.out = b.matrix(a + "out_proj.weight", D, Vd);
  const std::array<index_t, 3> conv_shape{C, 1, s.conv_kernel};
  const layers::WeightVector<> conv = bind_f32(b, d, a + "conv1d.weight", conv_shape, C * s.conv_kernel);
  w.conv = layers::WeightMatrix<>{DType::f32, conv.data, C, s.conv_kernel, s.conv_kernel};
  const std::array<index_t, 1> heads{nv}, head{dv};
  w.a_log = bind_f32(b, d, a + "A_log", heads, nv);
  w.dt_bias = bind_f32(b, d, a + "dt_bias", heads, nv);
  w.norm = bind_f32(b, d, a + "norm.weight", head, dv);
  return w;
}

}  // namespace detail

// Binds every tensor the config needs. Throws kMissingTensor / kShapeMismatch naming the tensor.
inline ModelWeights<> bind_weights(const ModelConfig& c, const TensorSource& src) {
  const detail::Binder b(src);
  auto derived = std::make_shared<detail::DerivedTensors>();
  detail::DerivedTensors& d = *derived;
  const index_t D = c.d_model, V = c.vocab_size;
  ModelWeights<> w;
  w.derived = derived;
  w.embed = b.matrix("model.embed_tokens.weight", V, D);
  w.final_norm = detail::bind_norm(b, d, c, "model.norm.weight", D);
  if (c.tie_word_embeddings) {
    // transformers ties lm_head to the embedding whether or not the file also stores lm_head.
    w.lm_head = w.embed;
    w.tied = true;
  } else {
    w.lm_head = b.matrix("lm_head.weight", V, D);
  }
  w.lm_head_bias = b.vector_if(c.lm_head_bias, "lm_head.bias", V);
  w.layers.resize(c.n_layers);
  for (index_t i = 0; i < c.n_layers; ++i) {
    LayerWeights<>& L = w.layers[i];
    const std::string p = fmt::format("model.layers.{}.", i);
    L.input_norm = detail::bind_norm(b, d, c, p + "input_layernorm.weight", D);
    L.post_attention_norm = detail::bind_norm(b, d, c, p + "post_attention_layernorm.weight", D);
    L.linear_attention = c.linear_attention[i];
    if (L.linear_attention) {
      L.delta = detail::bind_delta_net(b, d, c, p + "linear_attn.");
    } else if (c.mla) {
      L.mla = detail::bind_mla(b, c, p + "self_attn.", i);
    } else {
      L.attn = detail::bind_attention(b, d, c, p + "self_attn.");
    }
    L.moe = c.moe_layer[i];
    if (L.moe) {
      L.moe_weights = detail::bind_moe(b, c, p);
    } else {
      L.mlp = detail::bind_mlp(b, p + std::string(c.spec->dense_mlp_prefix), D, c.d_ff, c.mlp_bias);
    }
  }
  return w;
}

}  // namespace model
}  // namespace moe
