// ModelConfig: everything the forward pass needs to know about a checkpoint, parsed and validated
// from a Hugging Face config.json by the family description its "architectures" entry names.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/json.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/reference/delta_net.hpp"
#include "moe/kernels/reference/dsa.hpp"
#include "moe/layers/rope.hpp"
#include "moe/layers/router.hpp"
#include "moe/model/architectures/all.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

struct ModelConfig {
  std::string architecture;              // "MixtralForCausalLM", ...
  std::string source;                    // where it was read from (for messages)
  const model::ArchitectureSpec* spec = nullptr;

  index_t vocab_size = 0;
  index_t d_model = 0;
  index_t n_layers = 0;
  index_t n_heads = 0;
  index_t n_kv_heads = 0;
  index_t head_dim = 0;                  // q/k head size of standard attention
  index_t v_head_dim = 0;                // value head size (== head_dim for standard attention)
  index_t max_position_embeddings = 0;
  float rms_norm_eps = 1e-6f;
  bool tie_word_embeddings = false;
  std::vector<std::int32_t> eos_token_ids;
  std::optional<std::int32_t> bos_token_id;

  // attention
  model::QkNorm qk_norm = model::QkNorm::kNone;
  float clip_qkv = 0.0f;                 // 0: no clipping
  float attention_scale = 1.0f;          // softmax scale (head_dim^-0.5 unless the family says otherwise)
  std::vector<index_t> sliding_window;   // per layer; 0 = full causal attention
  std::vector<index_t> attention_chunk;  // per layer; 0 = none, else Llama 4's chunked attention
  std::vector<bool> nope_layer;          // per layer; true: no rope (and no QK-norm) (Llama 4)
  // Llama 4's attention temperature tuning of NoPE layers (attn_scale, floor_scale); 0 = off.
  float attn_temperature_scale = 0.0f;
  float attn_temperature_floor = 1.0f;
  bool attention_sinks = false;
  bool qkv_bias = false;                 // q/k/v projections (MLA: q_a_proj, kv_a_proj_with_mqa) have biases
  bool o_bias = false;                   // o_proj has a bias
  bool mlp_bias = false;                 // dense / shared MLP projections have biases (DeepSeek-V2)
  bool lm_head_bias = false;             // lm_head has a bias (ERNIE with use_bias)

  // multi-head latent attention (DeepSeek)
  bool mla = false;
  index_t q_lora_rank = 0;               // 0: plain q_proj
  index_t kv_lora_rank = 0;
  index_t qk_nope_head_dim = 0;
  index_t qk_rope_head_dim = 0;

  // linear attention (Gated DeltaNet, Qwen3-Next / Qwen3.5): per layer, and the layers' shape
  std::vector<bool> linear_attention;    // per layer: a DeltaNet layer (true) or attention
  kernels::DeltaNetShape delta_net;      // n_v_heads == 0 when the family has none
  bool attention_output_gate = false;    // gated attention (q_proj doubled with an output gate)
  // Qwen3.5's rope dict mrope_section: text runs the plain partial rope whatever it says; kept for
  // the GGUF key rope.dimension_sections. Empty when the config has none.
  std::vector<index_t> mrope_section;

  // DeepSeek sparse attention (V3.2, GLM-5): dsa.top_k == 0 when the family has none
  kernels::DsaShape dsa;
  kernels::RopePairing index_rope_pairing = kernels::RopePairing::half_split;
  std::vector<bool> indexer_shared;      // per layer: reuse the previous layer's selection (GLM-5 "shared")

  // rotary embedding
  layers::RopeConfig rope;
  kernels::RopePairing rope_pairing = kernels::RopePairing::half_split;

  // feed-forward
  index_t d_ff = 0;                      // dense MLP layers
  index_t n_experts = 0;
  index_t top_k = 0;
  index_t d_ff_expert = 0;
  index_t d_ff_shared = 0;               // 0: no shared expert
  layers::RouterConfig router;
  std::vector<bool> moe_layer;           // per layer: MoE block (true) or dense MLP
  float swiglu_alpha = 1.702f;           // GPT-OSS clamped SwiGLU
  float swiglu_limit = 7.0f;

  // Granite's muP multipliers (1 elsewhere): the embedding output, each block's output before its
  // residual add, and the logits (1 / logits_scaling) are scaled by these.
  float embedding_multiplier = 1.0f;
  float residual_multiplier = 1.0f;
  float logits_multiplier = 1.0f;

  // Parses and validates config.json contents. Errors: kUnsupported naming the "architectures"
  // value and source_name for an unknown family or feature; kConfig naming the key and value for
  // missing or inconsistent keys.
  static ModelConfig from_json(const nlohmann::json& j, std::string_view source_name);

  bool is_moe_layer(index_t layer) const { return moe_layer[layer]; }
  // The per-layer attention variants (empty tables: none, as configs built by hand have them).
  index_t attention_chunk_of(index_t layer) const { return layer < attention_chunk.size() ? attention_chunk[layer] : 0; }
  bool is_nope_layer(index_t layer) const { return layer < nope_layer.size() && nope_layer[layer]; }
};

namespace model::detail {

inline constexpr index_t kMaxDimension = static_cast<index_t>(limits::kMaxDimension);  // any single size above this is a broken config

// Typed access to config.json keys with errors that name the key, the file and the value seen.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string_view source) : j_(j), source_(source) {}

  const nlohmann::json& json() const { return j_; }
  std::string_view source() const { return source_; }

  bool has(std::string_view key) const {
    const auto it = j_.find(key);
    return it != j_.end() && !it->is_null();
  }
  const nlohmann::json* find(std::string_view key) const {
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }

  std::int64_t integer(std::string_view key) const {
    const auto* v = find(key);
    if (v == nullptr) fail(ErrorCode::kConfig, "{}: missing key \"{}\"", source_, key);
    return as_integer(*v, key);
  }
  std::int64_t integer_or(std::string_view key, std::int64_t fallback) const {
    const auto* v = find(key);
    return v == nullptr ? fallback : as_integer(*v, key);
  }
  index_t positive(std::string_view key) const {
    const auto v = integer(key);
    require(v > 0, ErrorCode::kConfig, "{}: \"{}\" must be positive, got {}", source_, key, v);
    return static_cast<index_t>(v);
  }
  index_t positive_or(std::string_view key, index_t fallback) const {
    if (!has(key)) return fallback;
    return positive(key);
  }
  // A model size: positive and at most kMaxDimension, so that a broken config fails here, naming
  // the key, rather than later as a huge allocation.
  index_t dimension(std::string_view key) const {
    const index_t v = positive(key);
    require(v <= kMaxDimension, ErrorCode::kConfig, "{}: \"{}\" = {} is implausibly large", source_, key, v);
    return v;
  }
  double number_or(std::string_view key, double fallback) const {
    const auto* v = find(key);
    return v == nullptr ? fallback : as_number(*v, key);
  }
  bool boolean_or(std::string_view key, bool fallback) const {
    const auto* v = find(key);
    if (v == nullptr) return fallback;
    require(v->is_boolean(), ErrorCode::kConfig, "{}: \"{}\" must be true or false, got {}", source_, key, describe(*v));
    return v->get<bool>();
  }
  std::string string_or(std::string_view key, std::string_view fallback) const {
    const auto* v = find(key);
    if (v == nullptr) return std::string(fallback);
    require(v->is_string(), ErrorCode::kConfig, "{}: \"{}\" must be a string, got {}", source_, key, describe(*v));
    return v->get<std::string>();
  }

  std::int64_t as_integer(const nlohmann::json& v, std::string_view key) const {
    if (v.is_number_integer()) return v.get<std::int64_t>();
    if (v.is_number_float()) {
      const double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<std::int64_t>(d);
    }
    fail(ErrorCode::kConfig, "{}: \"{}\" must be an integer, got {}", source_, key, describe(v));
  }
  double as_number(const nlohmann::json& v, std::string_view key) const {
    require(v.is_number(), ErrorCode::kConfig, "{}: \"{}\" must be a number, got {}", source_, key, describe(v));
    const double d = v.get<double>();
    require(std::isfinite(d), ErrorCode::kConfig, "{}: \"{}\" must be finite, got {}", source_, key, describe(v));
    return d;
  }

 private:
  const nlohmann::json& j_;
  std::string_view source_;
};

// ---- rope -------------------------------------------------------------------------------------
// rope_parameters (transformers 5) or rope_scaling + rope_theta (older configs), standardised the
// way transformers' RotaryEmbeddingConfigMixin does it.

// The rope dict: `rope_parameters = rope_scaling or rope_parameters` as transformers reads it, else
// the family's default (GPT-OSS ships its YaRN settings in code) unless config sets rope_theta.
inline nlohmann::json select_rope_parameters(const ConfigReader& r, const ArchitectureSpec& spec) {
  const std::string_view src = r.source();
  nlohmann::json params = nlohmann::json::object();
  const nlohmann::json* scaling = r.find("rope_scaling");
  const nlohmann::json* parameters = r.find("rope_parameters");
  if (scaling != nullptr && !(scaling->is_object() && scaling->empty())) {
    require(scaling->is_object(), ErrorCode::kConfig, "{}: \"rope_scaling\" must be an object, got {}", src,
            describe(*scaling));
    params = *scaling;
  } else if (parameters != nullptr) {
    require(parameters->is_object(), ErrorCode::kConfig, "{}: \"rope_parameters\" must be an object, got {}", src,
            describe(*parameters));
    params = *parameters;
  } else if (!spec.default_rope_parameters.empty() && !r.has("rope_theta")) {
    params = nlohmann::json::parse(spec.default_rope_parameters);
  }
  for (const auto& [k, v] : params.items()) {
    if (v.is_object()) {
      fail(ErrorCode::kUnsupported, "{}: per-layer-type rope parameters (\"{}\") are not supported", src, k);
    }
  }
  return params;
}

// rope_type (older configs: "type") into c.type; returns the spelling for later messages.
inline std::string parse_rope_type(const ConfigReader& p, layers::RopeConfig& c) {
  const std::string type = p.has("rope_type") ? p.string_or("rope_type", "default") : p.string_or("type", "default");
  if (type == "default") {
    c.type = layers::RopeType::kDefault;
  } else if (type == "linear") {
    c.type = layers::RopeType::kLinear;
  } else if (type == "dynamic") {
    c.type = layers::RopeType::kDynamic;
  } else if (type == "yarn") {
    c.type = layers::RopeType::kYarn;
  } else if (type == "llama3") {
    c.type = layers::RopeType::kLlama3;
  } else {
    fail(ErrorCode::kUnsupported, "{}: rope_type \"{}\" is not supported (default, linear, dynamic, yarn, llama3)",
         p.source(), type);
  }
  return type;
}

// rope_theta and the rotated width int(head_dim · partial_rotary_factor).
inline void parse_rope_rotation(const ConfigReader& r, const ConfigReader& p, const ArchitectureSpec& spec,
                                index_t head_dim_for_rope, layers::RopeConfig& c) {
  const std::string_view src = r.source();
  c.theta = p.has("rope_theta") ? p.number_or("rope_theta", 0) : r.number_or("rope_theta", spec.default_rope_theta);
  require(c.theta > 1.0, ErrorCode::kConfig, "{}: rope_theta must be > 1, got {}", src, c.theta);
  // transformers 5 (standardize_rope_params) moves a top-level partial_rotary_factor into the rope
  // dict with setdefault: the dict's own value wins (Qwen3-Next saves 0.25 top-level, 0.5 in it).
  double prf = spec.default_partial_rotary_factor;
  if (r.has("partial_rotary_factor")) prf = r.number_or("partial_rotary_factor", prf);
  if (p.has("partial_rotary_factor")) prf = p.number_or("partial_rotary_factor", prf);
  require(prf > 0 && prf <= 1, ErrorCode::kConfig, "{}: partial_rotary_factor must be in (0, 1], got {}", src, prf);
  c.rotary_dim = static_cast<index_t>(static_cast<double>(head_dim_for_rope) * prf);
  require(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0, ErrorCode::kConfig,
          "{}: rotary dimension int(head_dim {} * partial_rotary_factor {}) = {} must be even and >= 2", src,
          head_dim_for_rope, prf, c.rotary_dim);
}

// The context-extension keys of c.type (factor, YaRN's betas and mscales, llama3's frequency
// band); `type` is the spelling config used.
inline void parse_rope_scaling(const ConfigReader& r, const ConfigReader& p, std::string_view type, index_t max_pos,
                               layers::RopeConfig& c) {
  const std::string_view src = r.source();
  c.max_position_embeddings = static_cast<double>(max_pos);
  c.factor = p.number_or("factor", c.type == layers::RopeType::kYarn ? 0.0 : 1.0);
  if (c.type == layers::RopeType::kLinear || c.type == layers::RopeType::kLlama3 ||
      c.type == layers::RopeType::kDynamic) {
    require(p.has("factor"), ErrorCode::kConfig, "{}: {} rope needs key \"factor\"", src, type);
    require(c.factor > 0, ErrorCode::kConfig, "{}: rope factor must be positive, got {}", src, c.factor);
  }
  if (c.type == layers::RopeType::kYarn || c.type == layers::RopeType::kLlama3) {
    // transformers: a top-level original_max_position_embeddings wins, then the rope dict's,
    // then max_position_embeddings.
    double omp = static_cast<double>(max_pos);
    if (p.has("original_max_position_embeddings")) omp = p.number_or("original_max_position_embeddings", omp);
    if (r.has("original_max_position_embeddings")) omp = r.number_or("original_max_position_embeddings", omp);
    require(omp > 0, ErrorCode::kConfig, "{}: original_max_position_embeddings must be positive, got {}", src, omp);
    c.original_max_position_embeddings = omp;
  }
  if (c.type == layers::RopeType::kYarn) {
    c.attention_factor = p.has("attention_factor") ? p.number_or("attention_factor", 1.0) : -1.0;
    c.beta_fast = p.number_or("beta_fast", 32.0);
    c.beta_slow = p.number_or("beta_slow", 1.0);
    c.mscale = p.number_or("mscale", 0.0);
    c.mscale_all_dim = p.number_or("mscale_all_dim", 0.0);
    c.truncate = p.boolean_or("truncate", true);
  }
  if (c.type == layers::RopeType::kLlama3) {
    require(p.has("low_freq_factor") && p.has("high_freq_factor"), ErrorCode::kConfig,
            "{}: llama3 rope needs keys \"low_freq_factor\" and \"high_freq_factor\"", src);
    c.low_freq_factor = p.number_or("low_freq_factor", 1.0);
    c.high_freq_factor = p.number_or("high_freq_factor", 4.0);
  }
}

// The rope of heads whose rotated part is head_dim_for_rope wide.
inline layers::RopeConfig parse_rope(const ConfigReader& r, const ArchitectureSpec& spec, index_t head_dim_for_rope,
                                     index_t max_pos) {
  const nlohmann::json params = select_rope_parameters(r, spec);
  const ConfigReader p(params, r.source());
  layers::RopeConfig c;
  const std::string type = parse_rope_type(p, c);
  parse_rope_rotation(r, p, spec, head_dim_for_rope, c);
  if (spec.rope_ntk_alpha && c.type == layers::RopeType::kDynamic && p.has("alpha")) {
    // Hunyuan's NTK-alpha rope: base = theta · alpha^(d / (d - 2)) over the whole head, fixed.
    const double alpha = p.number_or("alpha", 1.0);
    const auto d = static_cast<double>(head_dim_for_rope);
    require(alpha > 0 && d > 2, ErrorCode::kConfig, "{}: rope alpha must be positive, got {}", r.source(), alpha);
    c.theta *= std::pow(alpha, d / (d - 2.0));
    c.type = layers::RopeType::kDefault;
    c.max_position_embeddings = static_cast<double>(max_pos);
    (void)layers::compute_rope_frequencies(c);
    return c;
  }
  parse_rope_scaling(r, p, type, max_pos, c);
  (void)layers::compute_rope_frequencies(c);  // validates the combination
  return c;
}

inline std::vector<std::int32_t> parse_token_ids(const ConfigReader& r, std::string_view key) {
  std::vector<std::int32_t> ids;
  const auto* v = r.find(key);
  if (v == nullptr) return ids;
  auto one = [&](const nlohmann::json& x) {
    const auto id = r.as_integer(x, key);
    require(id >= 0 && id <= std::numeric_limits<std::int32_t>::max(), ErrorCode::kConfig,
            "{}: \"{}\" holds an invalid token id {}", r.source(), key, id);
    ids.push_back(static_cast<std::int32_t>(id));
  };
  if (v->is_array()) {
    for (const auto& x : *v) one(x);
  } else {
    one(*v);
  }
  return ids;
}

// ---- family and sizes -------------------------------------------------------------------------

// The family description that config's "architectures"[0] names (into c.architecture, c.spec).
inline const ArchitectureSpec& parse_architecture(const ConfigReader& r, ModelConfig& c) {
  const std::string_view src = r.source();
  const auto* arch = r.find("architectures");
  require(arch != nullptr, ErrorCode::kConfig, "{}: missing key \"architectures\"", src);
  require(arch->is_array() && !arch->empty() && (*arch)[0].is_string(), ErrorCode::kConfig,
          "{}: \"architectures\" must be a non-empty list of class names, got {}", src, describe(*arch));
  c.architecture = (*arch)[0].get<std::string>();
  c.spec = find_architecture(c.architecture);
  if (c.spec == nullptr) {
    std::string supported;
    for (const auto* a : kArchitectures) supported += (supported.empty() ? "" : ", ") + std::string(a->hf_class);
    fail(ErrorCode::kUnsupported, "{}: architecture \"{}\" is not supported (supported: {})", src, c.architecture,
         supported);
  }
  return *c.spec;
}

// Every supported family gates its MLPs with SiLU; a checkpoint asking for another activation
// would otherwise run with the wrong one.
inline void check_hidden_act(const ConfigReader& r) {
  const std::string act = r.string_or("hidden_act", "silu");
  require(act == "silu" || act == "swish", ErrorCode::kUnsupported, "{}: hidden_act \"{}\" is not supported (silu)",
          r.source(), act);
}

// Model-wide sizes, the norm epsilon and the special token ids.
inline void parse_sizes(const ConfigReader& r, ModelConfig& c) {
  const std::string_view src = r.source();
  c.vocab_size = r.dimension("vocab_size");
  c.d_model = r.dimension("hidden_size");
  c.n_layers = r.dimension("num_hidden_layers");
  // Per-layer tables are sized from this before any tensor is looked at: bound it first.
  require(c.n_layers <= static_cast<index_t>(limits::kMaxLayers), ErrorCode::kUnsupported,
          "{}: num_hidden_layers = {} exceeds the limit of {} layers", src, c.n_layers, limits::kMaxLayers);
  c.n_heads = r.dimension("num_attention_heads");
  c.n_kv_heads = r.has("num_key_value_heads") ? r.dimension("num_key_value_heads") : c.n_heads;
  require(c.n_heads % c.n_kv_heads == 0, ErrorCode::kConfig,
          "{}: num_attention_heads = {} is not a multiple of num_key_value_heads = {}", src, c.n_heads, c.n_kv_heads);
  c.max_position_embeddings = r.positive_or("max_position_embeddings", 4096);
  c.rms_norm_eps = static_cast<float>(r.number_or("rms_norm_eps", 1e-6));
  require(c.rms_norm_eps >= 0, ErrorCode::kConfig, "{}: rms_norm_eps must be >= 0, got {}", src, c.rms_norm_eps);
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", c.spec->tie_word_embeddings_default);
  c.eos_token_ids = parse_token_ids(r, "eos_token_id");
  if (const auto bos = parse_token_ids(r, "bos_token_id"); !bos.empty()) c.bos_token_id = bos.front();
}

// ---- attention --------------------------------------------------------------------------------

// MLA's low-rank shapes (DeepSeek). A head's query/key is its nope part then its rope part.
inline void parse_mla_shape(const ConfigReader& r, ModelConfig& c) {
  c.mla = true;
  c.q_lora_rank = r.has("q_lora_rank") ? r.dimension("q_lora_rank") : 0;
  c.kv_lora_rank = r.dimension("kv_lora_rank");
  c.qk_nope_head_dim = r.dimension("qk_nope_head_dim");
  c.qk_rope_head_dim = r.dimension("qk_rope_head_dim");
  c.v_head_dim = r.dimension("v_head_dim");
  c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
  c.n_kv_heads = c.n_heads;  // MLA expands the latent to every head
}

// Standard attention's head size: head_dim when given (Qwen3 sets it independently of
// hidden_size), else hidden_size / num_attention_heads.
inline void parse_head_dim(const ConfigReader& r, ModelConfig& c) {
  c.head_dim = r.has("head_dim") ? r.dimension("head_dim") : 0;
  if (c.head_dim == 0) {
    require(c.d_model % c.n_heads == 0, ErrorCode::kConfig,
            "{}: hidden_size = {} is not a multiple of num_attention_heads = {} and no head_dim is given", r.source(),
            c.d_model, c.n_heads);
    c.head_dim = c.d_model / c.n_heads;
  }
  c.v_head_dim = c.head_dim;
}

// Head sizes and the default softmax scale; returns the per-head width rope rotates (MLA: only
// the rope part of each head).
inline index_t parse_attention_shape(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  index_t rope_head_dim = 0;
  if (s.attention == AttentionKind::kMla) {
    parse_mla_shape(r, c);
    rope_head_dim = c.qk_rope_head_dim;
  } else {
    parse_head_dim(r, c);
    rope_head_dim = c.head_dim;
  }
  c.attention_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  return rope_head_dim;
}

// q/k norm, clip_qkv, sinks and the projection biases, each as far as the family reads them.
inline void parse_attention_options(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  c.qk_norm = s.qk_norm;
  if (s.qk_norm_from_use_qk_norm && !r.boolean_or("use_qk_norm", s.use_qk_norm_default)) c.qk_norm = QkNorm::kNone;
  if (s.clip_qkv && r.has("clip_qkv")) {
    c.clip_qkv = static_cast<float>(r.number_or("clip_qkv", 0));
    require(c.clip_qkv > 0, ErrorCode::kConfig, "{}: clip_qkv must be positive, got {}", r.source(), c.clip_qkv);
  }
  c.attention_sinks = s.attention_sinks;
  if (!s.attention_bias_key.empty()) c.qkv_bias = r.boolean_or(s.attention_bias_key, s.attention_bias_default);
  c.o_bias = c.qkv_bias && s.o_proj_bias_follows;
  if (s.reads_mlp_bias) c.mlp_bias = r.boolean_or(s.mlp_bias_key, false);
  c.lm_head_bias = c.mlp_bias && s.lm_head_bias_follows_mlp_bias;
}

// Granite's muP multipliers (validated positive and finite; the attention one is the softmax scale).
inline void parse_mup_multipliers(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  if (!s.mup_multipliers) return;
  const auto positive = [&](std::string_view key) {
    const double v = r.number_or(key, 1.0);
    require(v > 0, ErrorCode::kConfig, "{}: \"{}\" must be positive, got {}", r.source(), key, v);
    return v;
  };
  c.embedding_multiplier = static_cast<float>(positive("embedding_multiplier"));
  c.residual_multiplier = static_cast<float>(positive("residual_multiplier"));
  c.logits_multiplier = static_cast<float>(1.0 / positive("logits_scaling"));
  c.attention_scale = static_cast<float>(positive("attention_multiplier"));
}

// Windows from an explicit layer_types list (transformers 5 configs, GPT-OSS).
inline void layer_types_windows(const ConfigReader& r, const ArchitectureSpec& s, const nlohmann::json& layer_types,
                                index_t window, std::vector<index_t>& windows) {
  const std::string_view src = r.source();
  const index_t n_layers = windows.size();
  require(layer_types.is_array() && layer_types.size() >= n_layers, ErrorCode::kConfig,
          "{}: \"layer_types\" must list at least num_hidden_layers = {} entries", src, n_layers);
  for (index_t i = 0; i < n_layers; ++i) {
    const auto& t = layer_types[i];
    require(t.is_string(), ErrorCode::kConfig, "{}: layer_types[{}] must be a string", src, i);
    const auto name = t.get<std::string>();
    if (name == "chunked_attention" && s.chunked_attention) continue;  // parse_llama4_attention
    if (name == "sliding_attention") {
      require(window > 0 || s.layer_types_need_use_sliding_window, ErrorCode::kConfig,
              "{}: layer {} is sliding_attention but sliding_window is not set", src, i);
      windows[i] = window;
    } else {
      const bool linear = name == "linear_attention" && s.delta_net != DeltaNetLayout::kNone;
      const bool sparse = name == "deepseek_sparse_attention" && s.sparse_attention;
      require(name == "full_attention" || linear || sparse, ErrorCode::kUnsupported,
              "{}: layer_types[{}] = \"{}\" is not supported", src, i, name);
    }
  }
  if (s.layer_types_need_use_sliding_window && !r.boolean_or("use_sliding_window", false)) {
    windows.assign(n_layers, 0);
  }
}

// kLayerTypes without a layer_types key: the list the family's config class derives itself.
inline void derived_layer_types_windows(const ConfigReader& r, const ArchitectureSpec& s, index_t window,
                                        std::vector<index_t>& windows) {
  if (s.layer_types_need_use_sliding_window && !r.boolean_or("use_sliding_window", false)) return;
  const std::int64_t below = s.max_window_layers_default > 0
                                 ? r.integer_or("max_window_layers", s.max_window_layers_default)
                                 : std::numeric_limits<std::int64_t>::max();
  if (s.sliding_from_max_window_layers) {
    // dots.llm1: layers at or above max_window_layers slide (its default: none of them).
    const std::int64_t from = r.integer_or("max_window_layers", static_cast<std::int64_t>(windows.size()));
    for (index_t i = 0; i < windows.size(); ++i) windows[i] = static_cast<std::int64_t>(i) >= from ? window : 0;
    return;
  }
  for (index_t i = 0; i < windows.size(); ++i) {
    const bool sliding = (i + 1) % 2 != 0 && static_cast<std::int64_t>(i) < below;
    windows[i] = sliding ? window : 0;
  }
}

// Per-layer sliding windows (0 = full causal attention): from layer_types when config has it,
// else by the family's rule.
inline std::vector<index_t> parse_sliding_windows(const ConfigReader& r, const ArchitectureSpec& s, index_t n_layers) {
  std::vector<index_t> windows(n_layers, 0);
  const index_t window = r.has("sliding_window")
                             ? static_cast<index_t>(std::max<std::int64_t>(r.integer("sliding_window"), 0))
                             : static_cast<index_t>(s.sliding_window_default);
  if (const auto* layer_types = r.find("layer_types")) {
    layer_types_windows(r, s, *layer_types, window, windows);
  } else if (s.sliding_window == SlidingWindow::kAllLayers ||
             (s.sliding_window == SlidingWindow::kAllLayersIfEnabled && r.boolean_or("use_sliding_window", false))) {
    windows.assign(n_layers, window);
  } else if (s.sliding_window == SlidingWindow::kLayerTypes) {
    derived_layer_types_windows(r, s, window, windows);
  }
  return windows;
}

// Llama 4's per-layer attention: NoPE layers (no_rope_layers, 1 = rope; an absent or empty list:
// every no_rope_layer_interval-th layer is NoPE), chunked layers (layer_types "chunked_attention";
// without layer_types the rope layers) of attention_chunk_size, and the temperature tuning of the
// NoPE layers' queries.
inline void parse_llama4_attention(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  const std::string_view src = r.source();
  const index_t n_layers = c.n_layers;
  c.nope_layer.assign(n_layers, false);
  c.attention_chunk.assign(n_layers, 0);
  if (s.nope_layers) {
    const auto* list = r.find("no_rope_layers");
    if (list != nullptr && !(list->is_array() && list->empty())) {
      require(list->is_array() && list->size() >= n_layers, ErrorCode::kConfig,
              "{}: \"no_rope_layers\" must list at least num_hidden_layers = {} entries, got {}", src, n_layers,
              describe(*list));
      for (index_t i = 0; i < n_layers; ++i) {
        const auto v = r.as_integer((*list)[i], "no_rope_layers");
        require(v == 0 || v == 1, ErrorCode::kConfig, "{}: no_rope_layers[{}] must be 0 or 1, got {}", src, i, v);
        c.nope_layer[i] = v == 0;
      }
    } else {
      const auto interval = r.integer_or("no_rope_layer_interval", 4);
      require(interval >= 1, ErrorCode::kConfig, "{}: no_rope_layer_interval must be >= 1, got {}", src, interval);
      for (index_t i = 0; i < n_layers; ++i) c.nope_layer[i] = (i + 1) % static_cast<index_t>(interval) == 0;
    }
  }
  if (s.chunked_attention) {
    std::vector<bool> chunked(n_layers, false);
    if (const auto* types = r.find("layer_types")) {
      for (index_t i = 0; i < n_layers; ++i) chunked[i] = (*types)[i] == "chunked_attention";  // checked before
    } else {
      for (index_t i = 0; i < n_layers; ++i) chunked[i] = !c.nope_layer[i];
    }
    const bool any = std::find(chunked.begin(), chunked.end(), true) != chunked.end();
    if (any) {
      const index_t chunk = r.has("attention_chunk_size") ? r.dimension("attention_chunk_size") : 8192;
      for (index_t i = 0; i < n_layers; ++i) c.attention_chunk[i] = chunked[i] ? chunk : 0;
    }
  }
  if (s.attn_temperature_tuning && r.boolean_or("attn_temperature_tuning", true)) {
    const double floor_scale = r.number_or("floor_scale", 8192);
    const double attn_scale = r.number_or("attn_scale", 0.1);
    require(floor_scale > 0, ErrorCode::kConfig, "{}: floor_scale must be positive, got {}", src, floor_scale);
    c.attn_temperature_floor = static_cast<float>(floor_scale);
    c.attn_temperature_scale = static_cast<float>(attn_scale);
  }
}

// Rope and what the family derives from it: the pairing (DeepSeek-V3's rope_interleave) and
// DeepSeek's YaRN correction of the softmax scale.
inline void parse_rotary(const ConfigReader& r, const ArchitectureSpec& s, index_t rope_head_dim, ModelConfig& c) {
  c.rope = parse_rope(r, s, rope_head_dim, c.max_position_embeddings);
  c.rope_pairing = s.rope_pairing;
  if (s.rope_interleave_key && !r.boolean_or("rope_interleave", true)) {
    c.rope_pairing = kernels::RopePairing::half_split;
  }
  if (s.mscale_softmax_correction && c.rope.type != layers::RopeType::kDefault && c.rope.mscale_all_dim != 0) {
    // DeepSeek-V3: softmax_scale = qk_head_dim^-0.5 · mscale(factor, mscale_all_dim)².
    const double m = layers::yarn_mscale(c.rope.factor, c.rope.mscale_all_dim);
    c.attention_scale = static_cast<float>(static_cast<double>(c.attention_scale) * m * m);
  }
}

// ---- feed-forward -----------------------------------------------------------------------------

// The experts per token: an integer, or (Hunyuan's moe_topk) a per-layer list, accepted when all
// entries are equal (one router configuration serves every layer).
inline index_t parse_top_k(const ConfigReader& r, std::string_view key) {
  const auto* v = r.find(key);
  if (v == nullptr || !v->is_array()) return r.dimension(key);
  require(!v->empty(), ErrorCode::kConfig, "{}: \"{}\" must not be an empty list", r.source(), key);
  const auto first = r.as_integer(v->front(), key);
  for (const auto& x : *v) {
    require(r.as_integer(x, key) == first, ErrorCode::kUnsupported,
            "{}: per-layer \"{}\" values that differ ({} and {}) are not supported", r.source(), key, first,
            r.as_integer(x, key));
  }
  require(first > 0 && first <= static_cast<std::int64_t>(kMaxDimension), ErrorCode::kConfig, "{}: \"{}\" = {} is invalid", r.source(), key,
          first);
  return static_cast<index_t>(first);
}


// Expert count and widths, the dense and shared MLP widths, GPT-OSS's clamped-SwiGLU constants.
inline void parse_experts(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  c.n_experts = !r.has(s.n_experts_key) && !s.n_experts_key_alt.empty() && r.has(s.n_experts_key_alt)
                    ? r.dimension(s.n_experts_key_alt)
                    : r.dimension(s.n_experts_key);
  c.top_k = parse_top_k(r, s.top_k_key);
  c.d_ff_expert = r.dimension(s.expert_d_ff_key);
  c.d_ff = r.has(s.dense_d_ff_key) ? r.dimension(s.dense_d_ff_key) : c.d_ff_expert;
  if (s.shared_expert == SharedExpert::kSigmoidGated) {
    c.d_ff_shared = r.has("shared_expert_intermediate_size") ? r.dimension("shared_expert_intermediate_size") : 0;
  } else if (s.shared_expert == SharedExpert::kPlain) {
    const auto n_shared = s.n_shared_experts_key.empty()
                              ? s.n_shared_experts_default
                              : r.integer_or(s.n_shared_experts_key, s.n_shared_experts_default);
    require(n_shared >= 0 && n_shared <= 1024, ErrorCode::kConfig, "{}: \"{}\" = {} is invalid", r.source(),
            s.n_shared_experts_key, n_shared);
    const index_t width = s.shared_expert_d_ff_key.empty() ? c.d_ff_expert : r.dimension(s.shared_expert_d_ff_key);
    c.d_ff_shared = static_cast<index_t>(n_shared) * width;
  }
  if (s.activation == ExpertActivation::kClampedSwiglu) {
    c.swiglu_alpha = static_cast<float>(r.number_or("swiglu_alpha", 1.702));
    c.swiglu_limit = static_cast<float>(r.number_or("swiglu_limit", 7.0));
  }
}

// config topk_method, accepted only when it names one of the family's selection rules.
inline std::string parse_topk_method(const ConfigReader& r, const ArchitectureSpec& s) {
  const std::string method = r.string_or("topk_method", s.topk_method_default);
  const bool grouping_method = !s.group_limited_topk_method.empty() && method == s.group_limited_topk_method;
  if (method != s.topk_method_default && !grouping_method) {
    const std::string accepted = s.group_limited_topk_method.empty()
                                     ? std::string(s.topk_method_default)
                                     : fmt::format("{}, {}", s.topk_method_default, s.group_limited_topk_method);
    fail(ErrorCode::kUnsupported, "{}: topk_method \"{}\" is not supported for {} ({})", r.source(), method,
         s.hf_class, accepted);
  }
  return method;
}

// Group-limited selection (DeepSeek, GLM): a token picks its experts from its topk_group best of
// n_group expert groups.
inline void parse_group_routing(const ConfigReader& r, const ArchitectureSpec& s, layers::RouterConfig& rc) {
  if (!s.grouped_routing) return;
  if (!s.group_limited_topk_method.empty()) {
    // DeepSeek-V2: grouping is one of the topk_method values and needs its group sizes given.
    if (parse_topk_method(r, s) != s.group_limited_topk_method) return;
    rc.n_group = r.positive("n_group");
    rc.topk_group = r.positive("topk_group");
  } else {
    rc.n_group = r.positive_or("n_group", 1);
    rc.topk_group = r.positive_or("topk_group", 1);
    if (!s.topk_method_default.empty()) (void)parse_topk_method(r, s);
  }
  rc.group_score = s.group_score;
  rc.dropped_groups_to_minus_inf = s.dropped_groups_to_minus_inf;
}

// The router: scoring, renormalisation and scaling of the chosen weights, group-limited selection.
inline void parse_router(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  layers::RouterConfig& rc = c.router;
  rc.scoring = s.scoring;
  rc.n_experts = c.n_experts;
  rc.top_k = c.top_k;
  switch (s.topk_renormalize) {
    case TopkRenormalize::kFromConfig:
      rc.norm_topk_prob = r.boolean_or("norm_topk_prob", s.norm_topk_prob_default);
      break;
    case TopkRenormalize::kAlways:
      rc.norm_topk_prob = true;
      break;
    case TopkRenormalize::kNever:
      (void)r.boolean_or("norm_topk_prob", false);  // the config class still stores it: type-check it
      rc.norm_topk_prob = false;
      break;
  }
  rc.renorm_epsilon = s.scoring == layers::RouterScoring::kSigmoid ? 1e-20f : 0.0f;
  rc.routed_scaling_factor = static_cast<float>(r.number_or("routed_scaling_factor", s.routed_scaling_factor_default));
  rc.has_correction_bias = s.correction_bias;
  rc.weights_scale_inputs = s.router_weights_scale_inputs;
  parse_group_routing(r, s, rc);
  layers::validate_router(rc, fmt::format("{} ({})", r.source(), c.architecture));
}

// Layers below first_k_dense_replace are dense (DeepSeek, GLM). moe_layer_freq (original DeepSeek
// code) is not read by transformers; it is ignored likewise.
inline void first_k_dense_layers(const ConfigReader& r, const ArchitectureSpec& s, std::vector<bool>& moe_layer) {
  const auto k = r.integer_or("first_k_dense_replace", s.first_k_dense_replace_default);
  require(k >= 0, ErrorCode::kConfig, "{}: first_k_dense_replace must be >= 0, got {}", r.source(), k);
  for (index_t i = 0; i < moe_layer.size(); ++i) moe_layer[i] = static_cast<std::int64_t>(i) >= k;
}

// Qwen2/3: a layer is dense when listed in mlp_only_layers or when (i+1) % decoder_sparse_step != 0.
inline void sparse_step_layers(const ConfigReader& r, std::vector<bool>& moe_layer) {
  const std::string_view src = r.source();
  const index_t n_layers = moe_layer.size();
  const auto step = r.integer_or("decoder_sparse_step", 1);
  require(step >= 1, ErrorCode::kConfig, "{}: decoder_sparse_step must be >= 1, got {}", src, step);
  std::vector<bool> mlp_only(n_layers, false);
  if (const auto* list = r.find("mlp_only_layers")) {
    require(list->is_array(), ErrorCode::kConfig, "{}: \"mlp_only_layers\" must be a list", src);
    for (const auto& v : *list) {
      const auto idx = r.as_integer(v, "mlp_only_layers");
      require(idx >= 0 && static_cast<index_t>(idx) < n_layers, ErrorCode::kConfig,
              "{}: mlp_only_layers entry {} is not a layer index (num_hidden_layers = {})", src, idx, n_layers);
      mlp_only[static_cast<index_t>(idx)] = true;
    }
  }
  for (index_t i = 0; i < n_layers; ++i) {
    moe_layer[i] = !mlp_only[i] && (i + 1) % static_cast<index_t>(step) == 0;
  }
}

// GLM-4-MoE-Lite: mlp_layer_types lists "dense" / "sparse" per layer; without it the config class
// makes the first first_k_dense_replace_default layers dense (it does not read first_k_dense_replace).
inline void mlp_layer_types_layers(const ConfigReader& r, const ArchitectureSpec& s, std::vector<bool>& moe_layer) {
  const std::string_view src = r.source();
  const auto* types = r.find("mlp_layer_types");
  if (types == nullptr) {
    for (index_t i = 0; i < moe_layer.size(); ++i) {
      moe_layer[i] = static_cast<std::int64_t>(i) >= s.first_k_dense_replace_default;
    }
    return;
  }
  require(types->is_array() && types->size() >= moe_layer.size(), ErrorCode::kConfig,
          "{}: \"mlp_layer_types\" must list at least num_hidden_layers = {} entries", src, moe_layer.size());
  for (index_t i = 0; i < moe_layer.size(); ++i) {
    const auto& t = (*types)[i];
    const bool known = t.is_string() && (t.get<std::string>() == "dense" || t.get<std::string>() == "sparse");
    require(known, ErrorCode::kConfig, "{}: mlp_layer_types[{}] must be \"dense\" or \"sparse\", got {}", src, i,
            describe(t));
    moe_layer[i] = t.get<std::string>() == "sparse";
  }
}

// ERNIE-4.5: MoE when (i+1) % moe_layer_interval == 0 and start <= i <= end (end -1: the last layer).
inline void interval_layers(const ConfigReader& r, std::vector<bool>& moe_layer) {
  const std::string_view src = r.source();
  const auto n = static_cast<std::int64_t>(moe_layer.size());
  const auto interval = r.integer_or("moe_layer_interval", 1);
  const auto start = r.integer_or("moe_layer_start_index", 1);
  auto end = r.integer_or("moe_layer_end_index", -1);
  require(interval >= 1, ErrorCode::kConfig, "{}: moe_layer_interval must be >= 1, got {}", src, interval);
  require(start >= 0, ErrorCode::kConfig, "{}: moe_layer_start_index must be >= 0, got {}", src, start);
  require(end >= -1, ErrorCode::kConfig, "{}: moe_layer_end_index must be >= -1, got {}", src, end);
  if (end == -1) end = n - 1;
  for (std::int64_t i = 0; i < n; ++i) {
    moe_layer[static_cast<index_t>(i)] = (i + 1) % interval == 0 && i >= start && i <= end;
  }
}

// Llama 4: moe_layers lists the MoE layers; its default is every interleave_moe_layer_step-th one.
inline void moe_layers_list(const ConfigReader& r, std::vector<bool>& moe_layer) {
  const std::string_view src = r.source();
  const index_t n_layers = moe_layer.size();
  if (const auto* list = r.find("moe_layers")) {
    require(list->is_array(), ErrorCode::kConfig, "{}: \"moe_layers\" must be a list, got {}", src, describe(*list));
    moe_layer.assign(n_layers, false);
    for (const auto& v : *list) {
      const auto idx = r.as_integer(v, "moe_layers");
      require(idx >= 0 && static_cast<index_t>(idx) < n_layers, ErrorCode::kConfig,
              "{}: moe_layers entry {} is not a layer index (num_hidden_layers = {})", src, idx, n_layers);
      moe_layer[static_cast<index_t>(idx)] = true;
    }
    return;
  }
  const auto step = r.integer_or("interleave_moe_layer_step", 1);
  require(step >= 1, ErrorCode::kConfig, "{}: interleave_moe_layer_step must be >= 1, got {}", src, step);
  for (index_t i = 0; i < n_layers; ++i) moe_layer[i] = (i + 1) % static_cast<index_t>(step) == 0;
}

// Per layer: the MoE block (true) or a dense MLP.
inline std::vector<bool> parse_moe_layers(const ConfigReader& r, const ArchitectureSpec& s, index_t n_layers) {
  std::vector<bool> moe_layer(n_layers, true);
  switch (s.dense_layers) {
    case DenseLayers::kNone:
      break;
    case DenseLayers::kFirstK:
      first_k_dense_layers(r, s, moe_layer);
      break;
    case DenseLayers::kSparseStep:
      sparse_step_layers(r, moe_layer);
      break;
    case DenseLayers::kMlpLayerTypes:
      mlp_layer_types_layers(r, s, moe_layer);
      break;
    case DenseLayers::kInterval:
      interval_layers(r, moe_layer);
      break;
    case DenseLayers::kMoeLayersList:
      moe_layers_list(r, moe_layer);
      break;
  }
  return moe_layer;
}

// Gated DeltaNet layers (Qwen3-Next / Qwen3.5): which layers (layer_types, else every layer but
// each full_attention_interval-th, as the config classes derive it) and their shape.
inline void parse_linear_attention(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  c.linear_attention.assign(c.n_layers, false);
  c.attention_output_gate = s.attention_output_gate;
  if (s.delta_net == DeltaNetLayout::kNone) return;
  const std::string_view src = r.source();
  if (const auto* types = r.find("layer_types")) {
    for (index_t i = 0; i < c.n_layers; ++i) c.linear_attention[i] = (*types)[i].get<std::string>() == "linear_attention";
  } else {
    const auto interval = r.integer_or("full_attention_interval", 4);
    require(interval >= 1, ErrorCode::kConfig, "{}: full_attention_interval must be >= 1, got {}", src, interval);
    for (index_t i = 0; i < c.n_layers; ++i) c.linear_attention[i] = (i + 1) % static_cast<index_t>(interval) != 0;
  }
  kernels::DeltaNetShape& d = c.delta_net;
  d.n_k_heads = r.positive_or("linear_num_key_heads", 16);
  d.n_v_heads = r.positive_or("linear_num_value_heads", 32);
  d.k_head_dim = r.positive_or("linear_key_head_dim", 128);
  d.v_head_dim = r.positive_or("linear_value_head_dim", 128);
  d.conv_kernel = r.positive_or("linear_conv_kernel_dim", 4);
  const std::pair<const char*, index_t> sizes[] = {{"linear_num_key_heads", d.n_k_heads},
                                                   {"linear_num_value_heads", d.n_v_heads},
                                                   {"linear_key_head_dim", d.k_head_dim},
                                                   {"linear_value_head_dim", d.v_head_dim},
                                                   {"linear_conv_kernel_dim", d.conv_kernel}};
  for (const auto& [key, v] : sizes) {
    require(v <= kMaxDimension, ErrorCode::kConfig, "{}: \"{}\" = {} is implausibly large", src, key, v);
  }
  require(d.n_v_heads % d.n_k_heads == 0, ErrorCode::kConfig,
          "{}: linear_num_value_heads = {} is not a multiple of linear_num_key_heads = {}", src, d.n_v_heads,
          d.n_k_heads);
  require(d.conv_kernel <= 64, ErrorCode::kUnsupported, "{}: linear_conv_kernel_dim = {} is not supported (<= 64)", src,
          d.conv_kernel);
  const nlohmann::json params = select_rope_parameters(r, s);
  if (const auto it = params.find("mrope_section"); it != params.end() && it->is_array()) {
    for (const auto& v : *it) {
      const auto n = r.as_integer(v, "mrope_section");
      require(n >= 0 && static_cast<index_t>(n) <= kMaxDimension, ErrorCode::kConfig, "{}: mrope_section holds {}", src, n);
      c.mrope_section.push_back(static_cast<index_t>(n));
    }
  }
}

// DeepSeek sparse attention: the indexer's shape and, per layer, whether it runs its own indexer.
inline void parse_sparse_attention(const ConfigReader& r, const ArchitectureSpec& s, ModelConfig& c) {
  c.indexer_shared.assign(c.n_layers, false);
  if (!s.sparse_attention) return;
  const std::string_view src = r.source();
  require(c.q_lora_rank > 0, ErrorCode::kConfig, "{}: sparse attention needs q_lora_rank (the indexer's query input)",
          src);
  kernels::DsaShape& d = c.dsa;
  // The config classes' defaults when a key is absent; a value present must be a plausible size.
  const auto size_or = [&](std::string_view key, index_t fallback) { return r.has(key) ? r.dimension(key) : fallback; };
  d.n_heads = size_or("index_n_heads", static_cast<index_t>(s.index_n_heads_default));
  d.head_dim = size_or("index_head_dim", 128);
  d.top_k = size_or("index_topk", 2048);
  require(d.head_dim >= c.qk_rope_head_dim, ErrorCode::kConfig,
          "{}: index_head_dim = {} is smaller than qk_rope_head_dim = {}", src, d.head_dim, c.qk_rope_head_dim);
  c.index_rope_pairing = s.index_rope_pairing;
  if (!s.indexer_types_key) return;
  const auto* types = r.find("indexer_types");
  if (types == nullptr) {
    // GlmMoeDsaConfig's derivation: index_topk_pattern ("F" / "S" per layer), else a layer is full
    // when max(i - index_skip_topk_offset + 1, 0) % index_topk_freq == 0.
    if (const auto* pattern = r.find("index_topk_pattern"); pattern != nullptr) {
      require(pattern->is_string() && static_cast<index_t>(pattern->get<std::string>().size()) >= c.n_layers,
              ErrorCode::kUnsupported, "{}: index_topk_pattern must be a string of >= {} letters F / S", src,
              c.n_layers);
      const auto p = pattern->get<std::string>();
      for (index_t i = 0; i < c.n_layers; ++i) {
        require(p[i] == 'F' || p[i] == 'S', ErrorCode::kConfig, "{}: index_topk_pattern[{}] = '{}' is not F or S", src,
                i, p[i]);
        c.indexer_shared[i] = p[i] == 'S';
      }
    } else {
      const auto freq = std::max<std::int64_t>(r.integer_or("index_topk_freq", 1), 1);
      const auto offset = r.integer_or("index_skip_topk_offset", 2);
      for (index_t i = 0; i < c.n_layers; ++i) {
        c.indexer_shared[i] = std::max<std::int64_t>(static_cast<std::int64_t>(i) - offset + 1, 0) % freq != 0;
      }
    }
    require(c.n_layers == 0 || !c.indexer_shared[0], ErrorCode::kConfig,
            "{}: layer 0 shares the selection of a previous indexer layer, and there is none", src);
    return;
  }
  require(types->is_array() && static_cast<index_t>(types->size()) >= c.n_layers, ErrorCode::kConfig,
          "{}: \"indexer_types\" must list at least num_hidden_layers = {} entries", src, c.n_layers);
  for (index_t i = 0; i < c.n_layers; ++i) {
    const auto& t = (*types)[i];
    require(t.is_string(), ErrorCode::kConfig, "{}: indexer_types[{}] must be a string", src, i);
    const auto name = t.get<std::string>();
    require(name == "full" || name == "shared", ErrorCode::kConfig,
            "{}: indexer_types[{}] = \"{}\" is neither \"full\" nor \"shared\"", src, i, name);
    c.indexer_shared[i] = name == "shared";
    require(!(c.indexer_shared[i] && i == 0), ErrorCode::kConfig,
            "{}: indexer_types[0] is \"shared\" but no earlier layer has an indexer", src);
  }
}

inline ModelConfig parse_config(const nlohmann::json& j, std::string_view source_name);

}  // namespace model::detail

inline ModelConfig ModelConfig::from_json(const nlohmann::json& j, std::string_view source_name) {
  return catch_as_error("ModelConfig::from_json", [&] { return model::detail::parse_config(j, source_name); });
}

// The order of the steps is the order errors are reported in when a config has several.
inline ModelConfig model::detail::parse_config(const nlohmann::json& j, std::string_view source_name) {
  require(j.is_object(), ErrorCode::kConfig, "{}: config must be a JSON object", source_name);
  const ConfigReader r(j, source_name);
  ModelConfig c;
  c.source = std::string(source_name);
  const ArchitectureSpec& s = parse_architecture(r, c);
  check_hidden_act(r);
  parse_sizes(r, c);
  const index_t rope_head_dim = parse_attention_shape(r, s, c);
  parse_attention_options(r, s, c);
  parse_mup_multipliers(r, s, c);
  c.sliding_window = parse_sliding_windows(r, s, c.n_layers);
  parse_linear_attention(r, s, c);
  parse_sparse_attention(r, s, c);
  parse_llama4_attention(r, s, c);
  parse_rotary(r, s, rope_head_dim, c);
  parse_experts(r, s, c);
  parse_router(r, s, c);
  c.moe_layer = parse_moe_layers(r, s, c.n_layers);
  return c;
}

}  // namespace moe
