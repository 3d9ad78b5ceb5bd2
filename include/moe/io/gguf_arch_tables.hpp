// The per-architecture tables of the GGUF mapping (gguf_arch.hpp): for each llama.cpp arch, its
// general.architecture name, the Hugging Face class written for it, and its metadata keys
// ("{arch}.<gguf>" <-> config.json "<hf>"), with the constants llama.cpp's graphs fix for them.
#pragma once

#include "moe/core/tensor.hpp"
#include "moe/model/architecture.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace moe::io::gguf_arch {

enum class KeyType : std::uint8_t { kU32, kF32, kBool };

// One metadata key: "{arch}.<gguf>" <-> config.json "<hf>".
struct KeyMapping {
  std::string_view gguf;  // below "{arch}."
  std::string_view hf;
  KeyType type;
};

struct ArchTable {
  std::string_view gguf_arch;        // general.architecture
  std::string_view hf_class;         // the config.json class written for it
  model::Family family;
  std::string_view ffn_norm;         // the GGUF name of post_attention_layernorm (below blk.N.)
  std::string_view shared_expert;    // HF name of the shared expert module ("" none)
  bool permute_qk = false;           // llama: attn_q / attn_k rows permuted for ggml's normal rope
  std::span<const KeyMapping> keys;  // arch-specific keys (after the common ones)
};

inline constexpr KeyMapping kCommonKeys[] = {
    {"block_count", "num_hidden_layers", KeyType::kU32},
    {"context_length", "max_position_embeddings", KeyType::kU32},
    {"embedding_length", "hidden_size", KeyType::kU32},
    {"feed_forward_length", "intermediate_size", KeyType::kU32},
    {"attention.head_count", "num_attention_heads", KeyType::kU32},
    {"attention.layer_norm_rms_epsilon", "rms_norm_eps", KeyType::kF32},
    {"expert_used_count", "num_experts_per_tok", KeyType::kU32},
    {"vocab_size", "vocab_size", KeyType::kU32},
};
inline constexpr KeyMapping kMixtralKeys[] = {
    {"expert_count", "num_local_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"attention.sliding_window", "sliding_window", KeyType::kU32},
};
inline constexpr KeyMapping kQwen2MoeKeys[] = {
    {"expert_count", "num_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_shared_feed_forward_length", "shared_expert_intermediate_size", KeyType::kU32},
    {"expert_weights_norm", "norm_topk_prob", KeyType::kBool},
};
inline constexpr KeyMapping kQwen3MoeKeys[] = {
    {"expert_count", "num_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_weights_norm", "norm_topk_prob", KeyType::kBool},
    {"attention.sliding_window", "sliding_window", KeyType::kU32},
};
inline constexpr KeyMapping kOlmoeKeys[] = {
    {"expert_count", "num_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.clamp_kqv", "clip_qkv", KeyType::kF32},
    {"expert_weights_norm", "norm_topk_prob", KeyType::kBool},
};
inline constexpr KeyMapping kDeepseek2Keys[] = {
    {"expert_count", "n_routed_experts", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_shared_count", "n_shared_experts", KeyType::kU32},
    {"leading_dense_block_count", "first_k_dense_replace", KeyType::kU32},
    {"expert_weights_scale", "routed_scaling_factor", KeyType::kF32},
    {"expert_weights_norm", "norm_topk_prob", KeyType::kBool},
    {"expert_group_count", "n_group", KeyType::kU32},
    {"expert_group_used_count", "topk_group", KeyType::kU32},
    {"attention.q_lora_rank", "q_lora_rank", KeyType::kU32},
    {"attention.kv_lora_rank", "kv_lora_rank", KeyType::kU32},
    {"attention.value_length_mla", "v_head_dim", KeyType::kU32},
    {"rope.dimension_count", "qk_rope_head_dim", KeyType::kU32},
};
// The keys of two tables, one after the other.
template <std::size_t N, std::size_t M>
constexpr std::array<KeyMapping, N + M> join_keys(const KeyMapping (&a)[N], const KeyMapping (&b)[M]) {
  std::array<KeyMapping, N + M> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = a[i];
  for (std::size_t i = 0; i < M; ++i) out[N + i] = b[i];
  return out;
}
template <std::size_t N, std::size_t M, std::size_t K>
constexpr std::array<KeyMapping, N + M + K> join_keys(const KeyMapping (&a)[N], const KeyMapping (&b)[M],
                                                      const KeyMapping (&c)[K]) {
  std::array<KeyMapping, N + M + K> out{};
  for (std::size_t i = 0; i < N; ++i) out[i] = a[i];
  for (std::size_t i = 0; i < M; ++i) out[N + i] = b[i];
  for (std::size_t i = 0; i < K; ++i) out[N + M + i] = c[i];
  return out;
}
// deepseek32 (DeepseekV32Model) and glm-dsa (GlmMoeDsaModel) subclass the converter's
// DeepseekV2Model: deepseek2's keys plus the lightning indexer's three (llama.cpp requires all
// three: llama_model_deepseek32 / llama_model_glm_dsa load_arch_hparams).
inline constexpr KeyMapping kIndexerKeys[] = {
    {"attention.indexer.head_count", "index_n_heads", KeyType::kU32},
    {"attention.indexer.key_length", "index_head_dim", KeyType::kU32},
    {"attention.indexer.top_k", "index_topk", KeyType::kU32},
};
inline constexpr auto kDsaKeys = join_keys(kDeepseek2Keys, kIndexerKeys);
inline constexpr KeyMapping kGptOssKeys[] = {
    {"expert_count", "num_local_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "intermediate_size", KeyType::kU32},
    {"attention.sliding_window", "sliding_window", KeyType::kU32},
};
inline constexpr KeyMapping kGlm4MoeKeys[] = {
    {"expert_count", "n_routed_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_shared_count", "n_shared_experts", KeyType::kU32},
    {"leading_dense_block_count", "first_k_dense_replace", KeyType::kU32},
    {"expert_weights_scale", "routed_scaling_factor", KeyType::kF32},
    {"expert_weights_norm", "norm_topk_prob", KeyType::kBool},
    {"expert_group_count", "n_group", KeyType::kU32},
    {"expert_group_used_count", "topk_group", KeyType::kU32},
};

// granitemoe (convert_hf_to_gguf.py GraniteMoeModel <- GraniteModel <- LlamaModel): muP
// multipliers under llama.cpp's names (attention.scale, embedding_scale, residual_scale,
// logit_scale); q/k rows permuted as for llama (llama.cpp runs granite with its "normal" rope).
inline constexpr KeyMapping kGraniteMoeKeys[] = {
    {"expert_count", "num_local_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"attention.scale", "attention_multiplier", KeyType::kF32},
    {"embedding_scale", "embedding_multiplier", KeyType::kF32},
    {"residual_scale", "residual_multiplier", KeyType::kF32},
    {"logit_scale", "logits_scaling", KeyType::kF32},
};
// ernie4_5-moe (Ernie4_5MoeModel): the MoE layer rule is leading_dense_block_count +
// interleave_moe_layer_step (written and read by hand, see write_metadata).
inline constexpr KeyMapping kErnie45MoeKeys[] = {
    {"expert_count", "moe_num_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_shared_count", "moe_num_shared_experts", KeyType::kU32},
};
// hunyuan-moe (HunYuanMoEModel): the experts' and the shared MLP's widths are separate keys.
inline constexpr KeyMapping kHunyuanMoeKeys[] = {
    {"expert_count", "num_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "intermediate_size", KeyType::kU32},
};
// dots1 (Dots1Model <- Qwen2MoeModel).
inline constexpr KeyMapping kDots1Keys[] = {
    {"expert_count", "n_routed_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_shared_count", "n_shared_experts", KeyType::kU32},
    {"leading_dense_block_count", "first_k_dense_replace", KeyType::kU32},
    {"expert_weights_scale", "routed_scaling_factor", KeyType::kF32},
    {"expert_weights_norm", "norm_topk_prob", KeyType::kBool},
    {"expert_group_count", "n_group", KeyType::kU32},
    {"expert_group_used_count", "topk_group", KeyType::kU32},
    {"attention.sliding_window", "sliding_window", KeyType::kU32},
};
// minimax-m2 (MiniMaxM2Model): the expert width is the config's intermediate_size.
inline constexpr KeyMapping kMiniMaxM2Keys[] = {
    {"expert_count", "num_local_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "intermediate_size", KeyType::kU32},
};

// llama4 (Llama4Model): the converter swaps the widths (feed_forward_length is the dense MLP's
// intermediate_size_mlp, expert_feed_forward_length the experts' intermediate_size); what its graph
// fixes (chunk 8192, NoPE every 4th layer, temperature tuning 0.1 / 8192, q/k norm unless 128
// experts) is checked on write and restored on read (write_metadata, hf_config_from_metadata).
inline constexpr KeyMapping kLlama4Keys[] = {
    {"expert_count", "num_local_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"feed_forward_length", "intermediate_size_mlp", KeyType::kU32},
    {"expert_feed_forward_length", "intermediate_size", KeyType::kU32},
};
// qwen3next (Qwen3NextModel <- Qwen2MoeModel) and qwen35moe (Qwen3_5MoeTextModel, the same
// set_gguf_parameters): Gated DeltaNet's shape as llama.cpp's ssm.* keys (conv_kernel =
// linear_conv_kernel_dim, state_size = linear_key_head_dim, group_count = linear_num_key_heads,
// time_step_rank = linear_num_value_heads; inner_size = linear_value_head_dim x value heads is
// written and read by hand), full_attention_interval and rope.dimension_count by hand too
// (write_linear_attention). Qwen3.5 configs have no norm_topk_prob (always renormalised).
inline constexpr KeyMapping kSsmKeys[] = {
    {"ssm.conv_kernel", "linear_conv_kernel_dim", KeyType::kU32},
    {"ssm.state_size", "linear_key_head_dim", KeyType::kU32},
    {"ssm.group_count", "linear_num_key_heads", KeyType::kU32},
    {"ssm.time_step_rank", "linear_num_value_heads", KeyType::kU32},
};
inline constexpr KeyMapping kQwen35MoeMoeKeys[] = {
    {"expert_count", "num_experts", KeyType::kU32},
    {"attention.head_count_kv", "num_key_value_heads", KeyType::kU32},
    {"attention.key_length", "head_dim", KeyType::kU32},
    {"attention.value_length", "head_dim", KeyType::kU32},
    {"expert_feed_forward_length", "moe_intermediate_size", KeyType::kU32},
    {"expert_shared_feed_forward_length", "shared_expert_intermediate_size", KeyType::kU32},
};
inline constexpr KeyMapping kNormTopkKey[] = {{"expert_weights_norm", "norm_topk_prob", KeyType::kBool}};
inline constexpr auto kQwen35MoeKeys = join_keys(kQwen35MoeMoeKeys, kSsmKeys);
inline constexpr auto kQwen3NextKeys = join_keys(kQwen35MoeMoeKeys, kNormTopkKey, kSsmKeys);

// llama.cpp's llama4 constants (src/models/llama4.cpp: the chunk, the temperature tuning; hparams'
// n_no_rope_layer_step default).
inline constexpr index_t kLlama4Chunk = 8192;
inline constexpr index_t kLlama4NoRopeStep = 4;
inline constexpr float kLlama4TempScale = 0.1f;
inline constexpr float kLlama4TempFloor = 8192.0f;

// The HF class of a deepseek2 file is chosen from expert_gating_func and its dense layers (see
// hf_config_from_metadata): GLM-4.7-Flash (Glm4MoeLiteForCausalLM) converts to deepseek2 as well.
inline constexpr ArchTable kTables[] = {
    {"llama", "MixtralForCausalLM", model::Family::kMixtral, "ffn_norm", "", true, kMixtralKeys},
    {"qwen2moe", "Qwen2MoeForCausalLM", model::Family::kQwen2Moe, "ffn_norm", "shared_expert", false, kQwen2MoeKeys},
    {"qwen3moe", "Qwen3MoeForCausalLM", model::Family::kQwen3Moe, "ffn_norm", "", false, kQwen3MoeKeys},
    {"olmoe", "OlmoeForCausalLM", model::Family::kOlmoe, "ffn_norm", "", false, kOlmoeKeys},
    {"deepseek2", "DeepseekV2ForCausalLM", model::Family::kDeepseekV2, "ffn_norm", "shared_experts", false,
     kDeepseek2Keys},
    {"deepseek2", "DeepseekV3ForCausalLM", model::Family::kDeepseekV3, "ffn_norm", "shared_experts", false,
     kDeepseek2Keys},
    {"glm4moe", "Glm4MoeForCausalLM", model::Family::kGlm4Moe, "post_attention_norm", "shared_experts", false,
     kGlm4MoeKeys},
    {"gpt-oss", "GptOssForCausalLM", model::Family::kGptOss, "post_attention_norm", "", false, kGptOssKeys},
    {"deepseek2", "Glm4MoeLiteForCausalLM", model::Family::kGlm4MoeLite, "ffn_norm", "shared_experts", false,
     kDeepseek2Keys},
    {"granitemoe", "GraniteMoeForCausalLM", model::Family::kGraniteMoe, "ffn_norm", "", true, kGraniteMoeKeys},
    {"ernie4_5-moe", "Ernie4_5_MoeForCausalLM", model::Family::kErnie45Moe, "ffn_norm", "shared_experts", false,
     kErnie45MoeKeys},
    {"hunyuan-moe", "HunYuanMoEV1ForCausalLM", model::Family::kHunYuanMoeV1, "ffn_norm", "shared_mlp", false,
     kHunyuanMoeKeys},
    {"dots1", "Dots1ForCausalLM", model::Family::kDots1, "ffn_norm", "shared_experts", false, kDots1Keys},
    {"minimax-m2", "MiniMaxM2ForCausalLM", model::Family::kMiniMaxM2, "ffn_norm", "", false, kMiniMaxM2Keys},
    {"llama4", "Llama4ForCausalLM", model::Family::kLlama4, "ffn_norm", "shared_expert", false, kLlama4Keys},
    {"deepseek32", "DeepseekV32ForCausalLM", model::Family::kDeepseekV32, "ffn_norm", "shared_experts", false,
     kDsaKeys},
    {"glm-dsa", "GlmMoeDsaForCausalLM", model::Family::kGlmMoeDsa, "ffn_norm", "shared_experts", false, kDsaKeys},
    // post_attention_layernorm is ATTN_POST_NORM in both archs' tensor lists (no ffn_norm).
    {"qwen3next", "Qwen3NextForCausalLM", model::Family::kQwen3Next, "post_attention_norm", "shared_expert", false,
     kQwen3NextKeys},
    {"qwen35moe", "Qwen3_5MoeForCausalLM", model::Family::kQwen35Moe, "post_attention_norm", "shared_expert", false,
     kQwen35MoeKeys},
};

// The rope pairing of llama.cpp's lightning indexer (the first rope.dimension_count dims of its
// query heads and key): deepseek32's graph ropes them LLAMA_ROPE_TYPE_NEOX (rotate_half, what
// DeepSeek-V3.2's indexer does, unlike its MLA), glm-dsa's LLAMA_ROPE_TYPE_NORM (adjacent pairs,
// GLM-5's indexer; llama.cpp PR #25407). MLA itself is NORM in both, as in deepseek2.
inline kernels::RopePairing llama_index_rope_pairing(model::Family f) noexcept {
  return f == model::Family::kGlmMoeDsa ? kernels::RopePairing::interleaved : kernels::RopePairing::half_split;
}

// llama.cpp's glm-dsa indexer layers for a file without attention.indexer.types and a context of
// at least kGlm52Context (GLM-5.2's 1M; shorter ones are GLM-5 / 5.1, every layer full):
// GLM_5_2_DEFAULT_INDEXER_TYPES, full at layers 0, 1, 2, 6, 10, ..., 74 and shared elsewhere
// (the table has 78 entries; llama.cpp's array is zero past them).
inline constexpr std::uint64_t kGlm52Context = 1048576;
inline constexpr bool glm52_default_indexer_full(std::uint64_t layer) noexcept {
  return layer < 78 && (layer < 2 || (layer - 2) % 4 == 0);
}

// Why a family has no table: llama.cpp's arch for it, and what is missing here (the writer's
// kUnsupported message).
inline std::string_view unmapped_reason(model::Family f) noexcept {
  switch (f) {
    default: return "no GGUF mapping";
  }
}

// llama.cpp's llama_expert_gating_func_type.
inline constexpr std::uint32_t kGatingSoftmax = 1;
inline constexpr std::uint32_t kGatingSigmoid = 2;

inline const ArchTable* table_for_family(model::Family f) noexcept {
  for (const auto& t : kTables) {
    if (t.family == f) return &t;
  }
  return nullptr;
}
// The first table of a GGUF arch name (deepseek2: the V2 one; the caller refines by gating).
inline const ArchTable* table_for_arch(std::string_view arch) noexcept {
  for (const auto& t : kTables) {
    if (t.gguf_arch == arch) return &t;
  }
  return nullptr;
}

}  // namespace moe::io::gguf_arch
