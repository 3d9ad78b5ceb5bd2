// config.json contents of real MoE models, for benchmarks with random weights of their shapes
// (model::make_synthetic_model). Values from the models' published config.json files; `layers`
// (0: the model's own count) shortens the stack, which scales every per-token figure alike.
#pragma once

#include <moe/core/error.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace moe::bench {

inline constexpr std::string_view kSyntheticShapes = "qwen3-30b-a3b, deepseek-v2-lite, mixtral-8x7b";

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
  } else {
    fail(ErrorCode::kInvalidArgument, "--synthetic: '{}' is not one of {}", name, kSyntheticShapes);
  }
  if (layers > 0) j["num_hidden_layers"] = layers;
  return j;
}

}  // namespace moe::bench
