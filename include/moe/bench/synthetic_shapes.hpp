// config.json contents of real MoE models, for benchmarks with random weights of their shapes
// (model::make_synthetic_model). Values from the models' published config.json files (DeepSeek-V3's
// without its FP8 quantization_config, GPT-OSS-20B's without its MXFP4 one: the synthetic weights
// are of the type asked for); `layers` (0: the model's own count) shortens the stack, which scales
// every per-layer figure alike. synthetic_config_from also takes a path to a config.json file.
#pragma once

#include <moe/core/error.hpp>
#include <moe/core/limits.hpp>
#include <moe/io/json_file.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>

namespace moe::bench {

inline constexpr std::string_view kSyntheticShapes = 
    "qwen3-30b-a3b, deepseek-v2-lite, deepseek-v3, mixtral-8x7b, gpt-oss-20b, olmoe-1b-7b";

inline nlohmann::json synthetic_config(std::string_view name, int layers = 0) {
  nlohmann::json j;
  if (name == "qwen3-30b-a3b") {
    j = {{"architectures", {"Qwen3MoeForCausalLM"}}, {"model_type", "qwen3_moe"}, {"hidden_size", 2048},
         {"num_hidden_layers", 48}, {"num_attention_heads", 32}, {"num_key_value_heads", 4}, {"head_dim", 128},
         {"intermediate_size", 6144}, {"moe_intermediate_size", 768}, {"num_experts", 128},
         {"num_experts_per_tok", 8}, {"norm_topk_prob", true}, {"decoder_sparse_step", 1},
         {"mlp_only_layers", nlohmann::json::array()}, {"vocab_size", 151936}, {"rms_norm_eps", 1e-6},
         {"rope_theta", 1000000.0}, {"max_position_embeddings", 40960}, {"hidden_act", "silu"},
         {"tie_word_embeddings", false}, {"attention_bias", false}, {"use_sliding_window", false}};
  } else if (name == "deepseek-v2-lite") {
    j = {{"architectures", {"DeepseekV2ForCausalLM"}}, {"model_type", "deepseek_v2"}, {"hidden_size", 2048},
         {"num_hidden_layers", 27}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
         {"kv_lora_rank", 512}, {"q_lora_rank", nullptr}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64},
         {"v_head_dim", 128}, {"intermediate_size", 10944}, {"moe_intermediate_size", 1408},
         {"n_routed_experts", 64}, {"n_shared_experts", 2}, {"num_experts_per_tok", 6},
         {"first_k_dense_replace", 1}, {"moe_layer_freq", 1}, {"topk_method", "greedy"}, {"n_group", 1},
         {"topk_group", 1}, {"routed_scaling_factor", 1.0}, {"norm_topk_prob", false},
         {"scoring_func", "softmax"}, {"vocab_size", 102400}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
         {"max_position_embeddings", 163840}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
         {"attention_bias", false},
         {"rope_scaling",
          {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}, {"beta_fast", 32},
           {"beta_slow", 1}, {"mscale", 0.707}, {"mscale_all_dim", 0.707}}}};
  } else if (name == "mixtral-8x7b") {
    j = {{"architectures", {"MixtralForCausalLM"}}, {"model_type", "mixtral"}, {"hidden_size", 4096},
         {"num_hidden_layers", 32}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
         {"intermediate_size", 14336}, {"num_local_experts", 8}, {"num_experts_per_tok", 2},
         {"vocab_size", 32000}, {"rms_norm_eps", 1e-5}, {"rope_theta", 1000000.0},
         {"max_position_embeddings", 32768}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
         {"sliding_window", nullptr}};
  } else if (name == "deepseek-v3") {
    j = {{"architectures", {"DeepseekV3ForCausalLM"}}, {"model_type", "deepseek_v3"}, {"hidden_size", 7168},
         {"num_hidden_layers", 61}, {"num_attention_heads", 128}, {"num_key_value_heads", 128},
         {"kv_lora_rank", 512}, {"q_lora_rank", 1536}, {"qk_nope_head_dim", 128}, {"qk_rope_head_dim", 64},
         {"v_head_dim", 128}, {"intermediate_size", 18432}, {"moe_intermediate_size", 2048},
         {"n_routed_experts", 256}, {"n_shared_experts", 1}, {"num_experts_per_tok", 8},
         {"first_k_dense_replace", 3}, {"moe_layer_freq", 1}, {"topk_method", "noaux_tc"}, {"n_group", 8},
         {"topk_group", 4}, {"routed_scaling_factor", 2.5}, {"norm_topk_prob", true},
         {"scoring_func", "sigmoid"}, {"vocab_size", 129280}, {"rms_norm_eps", 1e-6}, {"rope_theta", 10000.0},
         {"max_position_embeddings", 163840}, {"hidden_act", "silu"}, {"tie_word_embeddings", false},
         {"attention_bias", false},
         {"rope_scaling",
          {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}, {"beta_fast", 32},
           {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}}};
  } else if (name == "gpt-oss-20b") {
    nlohmann::json types = nlohmann::json::array();
    for (int i = 0; i < 24; ++i) types.push_back(i % 2 == 0 ? "sliding_attention" : "full_attention");
    j = {{"architectures", {"GptOssForCausalLM"}}, {"model_type", "gpt_oss"}, {"hidden_size", 2880},
         {"num_hidden_layers", 24}, {"num_attention_heads", 64}, {"num_key_value_heads", 8}, {"head_dim", 64},
         {"intermediate_size", 2880}, {"num_local_experts", 32}, {"num_experts_per_tok", 4},
         {"vocab_size", 201088}, {"rms_norm_eps", 1e-5}, {"sliding_window", 128}, {"layer_types", types},
         {"max_position_embeddings", 131072}, {"attention_bias", true}, {"swiglu_limit", 7.0},
         {"hidden_act", "silu"}, {"tie_word_embeddings", false},
         {"rope_scaling",
          {{"rope_type", "yarn"}, {"factor", 32.0}, {"original_max_position_embeddings", 4096},
           {"beta_fast", 32.0}, {"beta_slow", 1.0}, {"truncate", false}}},
         {"rope_theta", 150000.0}};
  } else if (name == "olmoe-1b-7b") {
    j = {{"architectures", {"OlmoeForCausalLM"}}, {"model_type", "olmoe"}, {"hidden_size", 2048},
         {"num_hidden_layers", 16}, {"num_attention_heads", 16}, {"num_key_value_heads", 16},
         {"intermediate_size", 1024}, {"num_experts", 64}, {"num_experts_per_tok", 8}, {"norm_topk_prob", false},
         {"vocab_size", 50304}, {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"max_position_embeddings", 4096},
         {"clip_qkv", nullptr}, {"attention_bias", false}, {"hidden_act", "silu"}, {"tie_word_embeddings", false}};
  } else {
    fail(ErrorCode::kInvalidArgument, "--synthetic: '{}' is not one of {} (or a path to a config.json)", name,
         kSyntheticShapes);
  }
  if (layers > 0) j["num_hidden_layers"] = layers;
  return j;
}

// Whether --synthetic's value is a config.json path rather than a shape's name (a name has no '/'
// and does not end in ".json").
inline bool is_config_path(std::string_view name_or_path) {
  return name_or_path.find('/') != std::string_view::npos || name_or_path.ends_with(".json");
}

// The config of a named shape, or of the config.json file `name_or_path` (is_config_path), with
// `layers` (0: as given) layers.
inline nlohmann::json synthetic_config_from(std::string_view name_or_path, int layers = 0) {
  if (!is_config_path(name_or_path)) return synthetic_config(name_or_path, layers);
  const std::filesystem::path path{std::string(name_or_path)};
  nlohmann::json j = io::read_json_file(path, limits::kMaxConfigJsonBytes, "config.json");
  require(j.is_object(), ErrorCode::kConfig, "--synthetic {}: not a JSON object", path.string());
  if (layers > 0) j["num_hidden_layers"] = layers;  // a longer layer_types list is fine
  return j;
}

}  // namespace moe::bench
