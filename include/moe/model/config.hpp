// ModelConfig: everything the forward pass needs to know about a checkpoint, parsed and validated
// from a Hugging Face config.json by the family description its "architectures" entry names.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/json.hpp"
#include "moe/core/limits.hpp"
#include "moe/core/tensor.hpp"
#include "moe/layers/rope.hpp"
#include "moe/layers/router.hpp"
#include "moe/model/architectures/all.hpp"

#include <nlohmann/json.hpp>

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
  bool attention_sinks = false;
  bool qkv_bias = false;                 // q/k/v projections (MLA: q_a_proj, kv_a_proj_with_mqa) have biases
  bool o_bias = false;                   // o_proj has a bias
  bool mlp_bias = false;                 // dense / shared MLP projections have biases (DeepSeek-V2)

  // multi-head latent attention (DeepSeek)
  bool mla = false;
  index_t q_lora_rank = 0;               // 0: plain q_proj
  index_t kv_lora_rank = 0;
  index_t qk_nope_head_dim = 0;
  index_t qk_rope_head_dim = 0;

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

  // Parses and validates config.json contents. Errors: kUnsupported naming the "architectures"
  // value and source_name for an unknown family or feature; kConfig naming the key and value for
  // missing or inconsistent keys.
  static ModelConfig from_json(const nlohmann::json& j, std::string_view source_name);

  bool is_moe_layer(index_t layer) const { return moe_layer[layer]; }
};

namespace model::detail {

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

inline constexpr index_t kMaxDimension = static_cast<index_t>(limits::kMaxDimension);  // any single size above this is a broken config

// rope_parameters (transformers 5) or rope_scaling + rope_theta (older configs), standardised the
// way transformers' RotaryEmbeddingConfigMixin does it.
inline layers::RopeConfig parse_rope(const ConfigReader& r, const ArchitectureSpec& spec, index_t head_dim_for_rope,
                                     index_t max_pos) {
  const std::string_view src = r.source();
  nlohmann::json params = nlohmann::json::object();
  const nlohmann::json* scaling = r.find("rope_scaling");
  const nlohmann::json* parameters = r.find("rope_parameters");
  // transformers: `rope_parameters = rope_scaling or rope_parameters`
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
  const ConfigReader p(params, src);
  layers::RopeConfig c;
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
    fail(ErrorCode::kUnsupported, "{}: rope_type \"{}\" is not supported (default, linear, dynamic, yarn, llama3)", src, type);
  }
  c.theta = p.has("rope_theta") ? p.number_or("rope_theta", 0) : r.number_or("rope_theta", spec.default_rope_theta);
  require(c.theta > 1.0, ErrorCode::kConfig, "{}: rope_theta must be > 1, got {}", src, c.theta);
  // transformers copies a top-level partial_rotary_factor over the rope dict's.
  double prf = spec.default_partial_rotary_factor;
  if (p.has("partial_rotary_factor")) prf = p.number_or("partial_rotary_factor", prf);
  if (r.has("partial_rotary_factor")) prf = r.number_or("partial_rotary_factor", prf);
  require(prf > 0 && prf <= 1, ErrorCode::kConfig, "{}: partial_rotary_factor must be in (0, 1], got {}", src, prf);
  c.rotary_dim = static_cast<index_t>(static_cast<double>(head_dim_for_rope) * prf);
  require(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0, ErrorCode::kConfig,
          "{}: rotary dimension int(head_dim {} * partial_rotary_factor {}) = {} must be even and >= 2", src,
          head_dim_for_rope, prf, c.rotary_dim);
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

inline ModelConfig parse_config(const nlohmann::json& j, std::string_view source_name);

}  // namespace model::detail

inline ModelConfig ModelConfig::from_json(const nlohmann::json& j, std::string_view source_name) {
  return catch_as_error("ModelConfig::from_json", [&] { return model::detail::parse_config(j, source_name); });
}

inline ModelConfig model::detail::parse_config(const nlohmann::json& j, std::string_view source_name) {
  using namespace model;
  require(j.is_object(), ErrorCode::kConfig, "{}: config must be a JSON object", source_name);
  const detail::ConfigReader r(j, source_name);
  ModelConfig c;
  c.source = std::string(source_name);

  // ---- family ---------------------------------------------------------------------------------
  const auto* arch = r.find("architectures");
  require(arch != nullptr, ErrorCode::kConfig, "{}: missing key \"architectures\"", source_name);
  require(arch->is_array() && !arch->empty() && (*arch)[0].is_string(), ErrorCode::kConfig,
          "{}: \"architectures\" must be a non-empty list of class names, got {}", source_name, describe(*arch));
  c.architecture = (*arch)[0].get<std::string>();
  c.spec = find_architecture(c.architecture);
  if (c.spec == nullptr) {
    fail(ErrorCode::kUnsupported,
         "{}: architecture \"{}\" is not supported (supported: MixtralForCausalLM, Qwen2MoeForCausalLM, "
         "Qwen3MoeForCausalLM, OlmoeForCausalLM, DeepseekV2ForCausalLM, DeepseekV3ForCausalLM, "
         "GptOssForCausalLM, Glm4MoeForCausalLM)",
         source_name, c.architecture);
  }
  const ArchitectureSpec& s = *c.spec;
  const std::string act = r.string_or("hidden_act", "silu");
  require(act == "silu" || act == "swish", ErrorCode::kUnsupported, "{}: hidden_act \"{}\" is not supported (silu)",
          source_name, act);

  // ---- sizes ----------------------------------------------------------------------------------
  auto dim = [&](std::string_view key) {
    const index_t v = r.positive(key);
    require(v <= detail::kMaxDimension, ErrorCode::kConfig, "{}: \"{}\" = {} is implausibly large", source_name, key, v);
    return v;
  };
  c.vocab_size = dim("vocab_size");
  c.d_model = dim("hidden_size");
  c.n_layers = dim("num_hidden_layers");
  // Per-layer tables are sized from this before any tensor is looked at: bound it first.
  require(c.n_layers <= static_cast<index_t>(limits::kMaxLayers), ErrorCode::kUnsupported,
          "{}: num_hidden_layers = {} exceeds the limit of {} layers", source_name, c.n_layers, limits::kMaxLayers);
  c.n_heads = dim("num_attention_heads");
  c.n_kv_heads = r.has("num_key_value_heads") ? dim("num_key_value_heads") : c.n_heads;
  require(c.n_heads % c.n_kv_heads == 0, ErrorCode::kConfig,
          "{}: num_attention_heads = {} is not a multiple of num_key_value_heads = {}", source_name, c.n_heads,
          c.n_kv_heads);
  c.max_position_embeddings = r.positive_or("max_position_embeddings", 4096);
  c.rms_norm_eps = static_cast<float>(r.number_or("rms_norm_eps", 1e-6));
  require(c.rms_norm_eps >= 0, ErrorCode::kConfig, "{}: rms_norm_eps must be >= 0, got {}", source_name, c.rms_norm_eps);
  c.tie_word_embeddings = r.boolean_or("tie_word_embeddings", false);
  c.eos_token_ids = detail::parse_token_ids(r, "eos_token_id");
  if (const auto bos = detail::parse_token_ids(r, "bos_token_id"); !bos.empty()) c.bos_token_id = bos.front();

  // ---- attention ------------------------------------------------------------------------------
  index_t rope_head_dim = 0;
  if (s.attention == AttentionKind::kMla) {
    c.mla = true;
    c.q_lora_rank = r.has("q_lora_rank") ? dim("q_lora_rank") : 0;
    c.kv_lora_rank = dim("kv_lora_rank");
    c.qk_nope_head_dim = dim("qk_nope_head_dim");
    c.qk_rope_head_dim = dim("qk_rope_head_dim");
    c.v_head_dim = dim("v_head_dim");
    c.head_dim = c.qk_nope_head_dim + c.qk_rope_head_dim;
    rope_head_dim = c.qk_rope_head_dim;
    c.n_kv_heads = c.n_heads;  // MLA expands the latent to every head
  } else {
    c.head_dim = r.has("head_dim") ? dim("head_dim") : 0;
    if (c.head_dim == 0) {
      require(c.d_model % c.n_heads == 0, ErrorCode::kConfig,
              "{}: hidden_size = {} is not a multiple of num_attention_heads = {} and no head_dim is given",
              source_name, c.d_model, c.n_heads);
      c.head_dim = c.d_model / c.n_heads;
    }
    c.v_head_dim = c.head_dim;
    rope_head_dim = c.head_dim;
  }
  c.attention_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));

  c.qk_norm = s.qk_norm;
  if (s.qk_norm_from_use_qk_norm && !r.boolean_or("use_qk_norm", false)) c.qk_norm = QkNorm::kNone;
  if (s.clip_qkv && r.has("clip_qkv")) {
    c.clip_qkv = static_cast<float>(r.number_or("clip_qkv", 0));
    require(c.clip_qkv > 0, ErrorCode::kConfig, "{}: clip_qkv must be positive, got {}", source_name, c.clip_qkv);
  }
  c.attention_sinks = s.attention_sinks;
  if (!s.attention_bias_key.empty()) c.qkv_bias = r.boolean_or(s.attention_bias_key, s.attention_bias_default);
  c.o_bias = c.qkv_bias && s.o_proj_bias_follows;
  if (s.reads_mlp_bias) c.mlp_bias = r.boolean_or("mlp_bias", false);

  // sliding windows
  c.sliding_window.assign(c.n_layers, 0);
  {
    const index_t window = r.has("sliding_window") ? static_cast<index_t>(std::max<std::int64_t>(
                                                         r.integer("sliding_window"), 0))
                                                   : 0;
    const auto* layer_types = r.find("layer_types");
    if (layer_types != nullptr) {
      require(layer_types->is_array() && layer_types->size() >= c.n_layers, ErrorCode::kConfig,
              "{}: \"layer_types\" must list at least num_hidden_layers = {} entries", source_name, c.n_layers);
      for (index_t i = 0; i < c.n_layers; ++i) {
        const auto& t = (*layer_types)[i];
        require(t.is_string(), ErrorCode::kConfig, "{}: layer_types[{}] must be a string", source_name, i);
        const auto name = t.get<std::string>();
        if (name == "sliding_attention") {
          const index_t w = s.family == Family::kGptOss && !r.has("sliding_window") ? 128 : window;
          require(w > 0 || s.family == Family::kQwen2Moe, ErrorCode::kConfig,
                  "{}: layer {} is sliding_attention but sliding_window is not set", source_name, i);
          c.sliding_window[i] = w;
        } else {
          require(name == "full_attention", ErrorCode::kUnsupported, "{}: layer_types[{}] = \"{}\" is not supported",
                  source_name, i, name);
        }
      }
      if (s.family == Family::kQwen2Moe && !r.boolean_or("use_sliding_window", false)) {
        c.sliding_window.assign(c.n_layers, 0);
      }
    } else if (s.sliding_window == SlidingWindow::kAllLayers ||
               (s.sliding_window == SlidingWindow::kAllLayersIfEnabled && r.boolean_or("use_sliding_window", false))) {
      c.sliding_window.assign(c.n_layers, window);
    } else if (s.sliding_window == SlidingWindow::kLayerTypes) {
      if (s.family == Family::kGptOss) {
        const index_t w = r.has("sliding_window") ? window : 128;
        for (index_t i = 0; i < c.n_layers; ++i) c.sliding_window[i] = (i + 1) % 2 != 0 ? w : 0;
      } else if (r.boolean_or("use_sliding_window", false)) {  // Qwen2-MoE's derived layer_types
        const auto max_window_layers = r.integer_or("max_window_layers", 28);
        for (index_t i = 0; i < c.n_layers; ++i) {
          const bool sliding = (i + 1) % 2 != 0 && static_cast<std::int64_t>(i) < max_window_layers;
          c.sliding_window[i] = sliding ? window : 0;
        }
      }
    }
  }

  // rope
  c.rope = detail::parse_rope(r, s, rope_head_dim, c.max_position_embeddings);
  c.rope_pairing = s.rope_pairing;
  if (s.rope_interleave_key && !r.boolean_or("rope_interleave", true)) {
    c.rope_pairing = kernels::RopePairing::half_split;
  }
  if (s.mscale_softmax_correction && c.rope.type != layers::RopeType::kDefault && c.rope.mscale_all_dim != 0) {
    // DeepSeek-V3: softmax_scale = qk_head_dim^-0.5 · mscale(factor, mscale_all_dim)².
    const double m = layers::yarn_mscale(c.rope.factor, c.rope.mscale_all_dim);
    c.attention_scale = static_cast<float>(static_cast<double>(c.attention_scale) * m * m);
  }

  // ---- feed-forward ---------------------------------------------------------------------------
  c.n_experts = !r.has(s.n_experts_key) && !s.n_experts_key_alt.empty() && r.has(s.n_experts_key_alt)
                    ? dim(s.n_experts_key_alt)
                    : dim(s.n_experts_key);
  c.top_k = dim("num_experts_per_tok");
  c.d_ff_expert = dim(s.expert_d_ff_key);
  c.d_ff = r.has("intermediate_size") ? dim("intermediate_size") : c.d_ff_expert;
  if (s.shared_expert == SharedExpert::kSigmoidGated) {
    c.d_ff_shared = r.has("shared_expert_intermediate_size") ? dim("shared_expert_intermediate_size") : 0;
  } else if (s.shared_expert == SharedExpert::kPlain) {
    const auto n_shared = r.integer_or("n_shared_experts", s.family == Family::kDeepseekV2 ? 0 : 1);
    require(n_shared >= 0 && n_shared <= 1024, ErrorCode::kConfig, "{}: n_shared_experts = {} is invalid",
            source_name, n_shared);
    c.d_ff_shared = static_cast<index_t>(n_shared) * c.d_ff_expert;
  }
  if (s.activation == ExpertActivation::kClampedSwiglu) {
    c.swiglu_alpha = static_cast<float>(r.number_or("swiglu_alpha", 1.702));
    c.swiglu_limit = static_cast<float>(r.number_or("swiglu_limit", 7.0));
  }

  layers::RouterConfig& rc = c.router;
  rc.scoring = s.scoring;
  rc.n_experts = c.n_experts;
  rc.top_k = c.top_k;
  rc.norm_topk_prob = s.always_renormalize || r.boolean_or("norm_topk_prob", s.norm_topk_prob_default);
  rc.renorm_epsilon = s.scoring == layers::RouterScoring::kSigmoid ? 1e-20f : 0.0f;
  rc.routed_scaling_factor = static_cast<float>(r.number_or("routed_scaling_factor", s.routed_scaling_factor_default));
  rc.has_correction_bias = s.correction_bias;
  if (s.family == Family::kDeepseekV2) {
    // transformers 5's DeepseekV2Moe never renormalises (norm_topk_prob is ignored).
    rc.norm_topk_prob = false;
    const std::string method = r.string_or("topk_method", "greedy");
    if (method == "group_limited_greedy") {
      rc.group_score = layers::GroupScore::kMax;
      rc.dropped_groups_to_minus_inf = false;
      rc.n_group = r.positive("n_group");
      rc.topk_group = r.positive("topk_group");
    } else {
      require(method == "greedy", ErrorCode::kUnsupported,
              "{}: topk_method \"{}\" is not supported for DeepseekV2ForCausalLM (greedy, group_limited_greedy)",
              source_name, method);
    }
  } else if (s.grouped_routing) {
    rc.group_score = s.group_score;
    rc.n_group = r.positive_or("n_group", 1);
    rc.topk_group = r.positive_or("topk_group", 1);
    if (s.family == Family::kDeepseekV3) {
      const std::string method = r.string_or("topk_method", "noaux_tc");
      require(method == "noaux_tc", ErrorCode::kUnsupported,
              "{}: topk_method \"{}\" is not supported for DeepseekV3ForCausalLM (noaux_tc)", source_name, method);
    }
  }
  const std::string router_where = fmt::format("{} ({})", source_name, c.architecture);
  layers::validate_router(rc, router_where);

  c.moe_layer.assign(c.n_layers, true);
  if (s.dense_layers == DenseLayers::kFirstK) {
    const auto k = r.integer_or("first_k_dense_replace", s.family == Family::kGlm4Moe ? 1 : 0);
    require(k >= 0, ErrorCode::kConfig, "{}: first_k_dense_replace must be >= 0, got {}", source_name, k);
    for (index_t i = 0; i < c.n_layers; ++i) c.moe_layer[i] = static_cast<std::int64_t>(i) >= k;
    if (s.family == Family::kDeepseekV2 || s.family == Family::kDeepseekV3) {
      // moe_layer_freq (original DeepSeek code) is not read by transformers; ignore it likewise.
    }
  } else if (s.dense_layers == DenseLayers::kSparseStep) {
    const auto step = r.integer_or("decoder_sparse_step", 1);
    require(step >= 1, ErrorCode::kConfig, "{}: decoder_sparse_step must be >= 1, got {}", source_name, step);
    std::vector<bool> mlp_only(c.n_layers, false);
    if (const auto* list = r.find("mlp_only_layers")) {
      require(list->is_array(), ErrorCode::kConfig, "{}: \"mlp_only_layers\" must be a list", source_name);
      for (const auto& v : *list) {
        const auto idx = r.as_integer(v, "mlp_only_layers");
        require(idx >= 0 && static_cast<index_t>(idx) < c.n_layers, ErrorCode::kConfig,
                "{}: mlp_only_layers entry {} is not a layer index (num_hidden_layers = {})", source_name, idx,
                c.n_layers);
        mlp_only[static_cast<index_t>(idx)] = true;
      }
    }
    for (index_t i = 0; i < c.n_layers; ++i) {
      c.moe_layer[i] = !mlp_only[i] && (i + 1) % static_cast<index_t>(step) == 0;
    }
  }
  return c;
}

}  // namespace moe
