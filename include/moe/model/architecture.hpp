// ArchitectureSpec: what distinguishes one model family from another, as data: which config.json
// keys hold the MoE sizes, which router, norm and rope options the family uses and how its
// tensors are named. One short file per family in model/architectures/ fills one in; the
// forward pass (Transformer) is written once against the options they select.
#pragma once

#include "moe/kernels/reference/rope.hpp"
#include "moe/layers/attention.hpp"
#include "moe/layers/router.hpp"

#include <cstdint>
#include <string_view>

namespace moe::model {

enum class Family : std::uint8_t {
  kMixtral, kQwen2Moe, kQwen3Moe, kOlmoe, kDeepseekV2, kDeepseekV3, kGptOss, kGlm4Moe,
  kGlm4MoeLite, kDots1, kMiniMaxM2, kErnie45Moe, kHunYuanMoeV1, kGraniteMoe, kQwen3Next, kQwen35Moe,
  kLlama4, kDeepseekV32, kGlmMoeDsa,
};

enum class AttentionKind : std::uint8_t { kStandard, kMla };

// Where QK-norm goes (the attention layer's option).
using layers::QkNorm;

enum class SharedExpert : std::uint8_t {
  kNone,
  kSigmoidGated,  // Qwen2-MoE: + sigmoid(shared_expert_gate·x) · shared_expert(x)
  kPlain          // DeepSeek / GLM: + shared_experts(x), d_ff = moe_intermediate_size · n_shared_experts
};

enum class DenseLayers : std::uint8_t {
  kNone,          // every layer is MoE
  kFirstK,        // layers < first_k_dense_replace are dense (DeepSeek, GLM)
  kSparseStep,    // dense if in mlp_only_layers or (i+1) % decoder_sparse_step != 0 (Qwen2/3)
  kMlpLayerTypes,  // config "mlp_layer_types" ("dense" / "sparse"); without it the first
                   // first_k_dense_replace_default layers are dense (GLM-4-MoE-Lite)
  kMoeLayersList,  // config "moe_layers" lists the MoE layers; without it every
                   // interleave_moe_layer_step-th layer (step - 1, 2·step - 1, ...) is MoE (Llama 4)
  kInterval        // MoE when (i+1) % moe_layer_interval == 0 and moe_layer_start_index <= i <=
                   // moe_layer_end_index (-1: the last layer) (ERNIE-4.5)
};

enum class SlidingWindow : std::uint8_t {
  kNone,
  kAllLayers,            // sliding_window (when set) applies to every layer (Mixtral)
  kAllLayersIfEnabled,   // ... only when use_sliding_window is true (Qwen3-MoE)
  kLayerTypes            // per-layer `layer_types` (GPT-OSS; Qwen2-MoE derives them)
};

enum class TopkRenormalize : std::uint8_t {
  kFromConfig,  // config norm_topk_prob (norm_topk_prob_default when absent)
  kAlways,      // Mixtral: the chosen weights are always renormalised; the key is not read
  kNever        // DeepSeek-V2: transformers 5's DeepseekV2Moe never renormalises; the key is still type-checked
};

enum class ExpertActivation : std::uint8_t {
  kSwiglu,         // down(silu(gate·x) * up·x)
  kClampedSwiglu   // GPT-OSS: gate clamped above, up clamped both sides, (up+1)·gate·σ(α·gate)
};

// Linear-attention (Gated DeltaNet) layers and how their input projections are stored.
enum class DeltaNetLayout : std::uint8_t {
  kNone,         // no linear-attention layers
  kGroupedQkvz,  // Qwen3-Next: in_proj_qkvz / in_proj_ba, grouped per key head ([q k v… z…] / [b… a…])
  kSeparate      // Qwen3.5: in_proj_qkv ([all q | all k | all v]), in_proj_z, in_proj_b, in_proj_a
};

struct ArchitectureSpec {
  std::string_view hf_class;           // config.json "architectures"[0]
  Family family;                       // for naming and reports; parsing reads the fields below
  AttentionKind attention = AttentionKind::kStandard;
  std::string_view n_experts_key;      // e.g. "num_local_experts"
  std::string_view n_experts_key_alt = {};  // the other spelling (transformers 5 saves Qwen3's as num_local_experts)
  std::string_view expert_d_ff_key;    // "intermediate_size" or "moe_intermediate_size"
  std::string_view top_k_key = "num_experts_per_tok";  // ERNIE: "moe_k", Hunyuan: "moe_topk"
  layers::RouterScoring scoring = layers::RouterScoring::kSoftmax;
  bool router_bias = false;            // GPT-OSS: the router Linear has a bias ({moe_prefix}.{router_name}.bias)
  bool grouped_routing = false;        // group-limited selection over n_group / topk_group (default 1 each)
  layers::GroupScore group_score = layers::GroupScore::kNone;
  // What dropped groups' experts score in the final top-k (see RouterConfig): -inf (V3, GLM) or 0.0 (V2).
  bool dropped_groups_to_minus_inf = true;
  // Default of config "topk_method", and with group_limited_topk_method its only accepted values;
  // "" = the key is not read.
  std::string_view topk_method_default = {};   // DeepSeek-V2: "greedy", DeepSeek-V3: "noaux_tc"
  // DeepSeek-V2: the topk_method value that turns grouping on (n_group and topk_group are then
  // required); without it, grouping is always on.
  std::string_view group_limited_topk_method = {};
  TopkRenormalize topk_renormalize = TopkRenormalize::kFromConfig;
  bool norm_topk_prob_default = false;
  double routed_scaling_factor_default = 1.0;
  bool correction_bias = false;        // e_score_correction_bias, under the MoE block:
  std::string_view correction_bias_name = "gate.e_score_correction_bias";  // MiniMax-M2: no "gate."
  std::string_view correction_bias_name_alt = {};  // ERNIE: moe_statics under the gate or beside it
  QkNorm qk_norm = QkNorm::kNone;
  std::string_view q_norm_name = "q_norm";      // Hunyuan: "query_layernorm"
  std::string_view k_norm_name = "k_norm";      // Hunyuan: "key_layernorm"
  bool qk_norm_from_use_qk_norm = false;  // GLM-4-MoE: only when config use_qk_norm is true
  bool use_qk_norm_default = false;       // ... and its default when absent (Llama 4: true)
  // Llama 4's attention: layer_types may say "chunked_attention" (keys only from the query's chunk
  // of attention_chunk_size positions); no_rope_layers / no_rope_layer_interval pick the NoPE
  // layers (no rope, no QK-norm; layer_types defaults to chunked on rope layers, full on NoPE ones);
  // attn_temperature_tuning scales the queries of NoPE layers by position (floor_scale, attn_scale).
  bool chunked_attention = false;
  bool nope_layers = false;
  bool attn_temperature_tuning = false;
  bool clip_qkv = false;               // OLMoE's clip_qkv
  // Attention biases follow the config flag, as transformers builds the Linear layers from it (a
  // bias tensor the flag does not ask for is ignored there, a missing one is an error here).
  std::string_view attention_bias_key = "attention_bias";  // "" = never; Qwen2-MoE: "qkv_bias"
  bool attention_bias_default = false;
  bool o_proj_bias_follows = true;     // o_proj (MLA: q_a/kv_a/o) has the bias too; not Qwen2 / GLM
  bool reads_mlp_bias = false;         // DeepSeek-V2: config "mlp_bias" on the dense and shared MLPs
  std::string_view mlp_bias_key = "mlp_bias";   // ERNIE: "use_bias" (attention and MLPs alike)
  bool tie_word_embeddings_default = false;     // ERNIE: true
  bool lm_head_bias_follows_mlp_bias = false;   // ERNIE: lm_head has a bias when use_bias is set
  // Granite's muP multipliers: embedding_multiplier, attention_multiplier (the softmax scale),
  // residual_multiplier (on each block's output before the residual add), logits_scaling.
  bool mup_multipliers = false;
  // Llama 4: the routing weight scales the expert's input (RouterConfig::weights_scale_inputs).
  bool router_weights_scale_inputs = false;
  SharedExpert shared_expert = SharedExpert::kNone;
  std::int64_t n_shared_experts_default = 1;       // kPlain; DeepSeek-V2: 0 (its config class's default)
  std::string_view n_shared_experts_key = "n_shared_experts";  // "" = always the default (Hunyuan: 1)
  // kPlain: the key holding the shared expert's width; "" = n_shared_experts · the expert width.
  std::string_view shared_expert_d_ff_key = {};                // Hunyuan: "intermediate_size"
  DenseLayers dense_layers = DenseLayers::kNone;
  std::int64_t first_k_dense_replace_default = 0;  // kFirstK; GLM-4-MoE: 1
  SlidingWindow sliding_window = SlidingWindow::kNone;
  std::int64_t sliding_window_default = 0;  // the window of sliding layers when config has none (GPT-OSS: 128)
  // Qwen2-MoE: layer_types (given or derived) take effect only when use_sliding_window is true, so
  // a sliding_attention layer without a window is accepted (and stays full).
  bool layer_types_need_use_sliding_window = false;
  // kLayerTypes without a layer_types key: the layers the config class marks sliding are the even
  // ones (0, 2, ...), and with max_window_layers_default > 0 (Qwen2-MoE: 28) only those below config
  // max_window_layers. 0: the key is not read (GPT-OSS).
  std::int64_t max_window_layers_default = 0;
  // dots.llm1: derived sliding layers are those at or ABOVE max_window_layers (all of them when the
  // key is absent is not possible: its default is num_hidden_layers, i.e. none).
  bool sliding_from_max_window_layers = false;
  bool attention_sinks = false;        // GPT-OSS self_attn.sinks
  ExpertActivation activation = ExpertActivation::kSwiglu;
  kernels::RopePairing rope_pairing = kernels::RopePairing::half_split;
  bool rope_interleave_key = false;    // DeepSeek-V3: config "rope_interleave" picks the pairing
  bool mscale_softmax_correction = false;  // DeepSeek-V3: softmax scale · mscale(factor, mscale_all_dim)²
  double default_rope_theta = 10000.0;
  // Hunyuan: rope_type "dynamic" with "alpha" is NTK-alpha scaling, a fixed base
  // theta · alpha^(head_dim / (head_dim - 2)) (no per-length update below max_position_embeddings).
  bool rope_ntk_alpha = false;
  double default_partial_rotary_factor = 1.0;
  std::string_view default_rope_parameters = {};  // JSON used when config.json has no rope settings
  // Tensor names below "model.layers.{i}.".
  std::string_view moe_prefix = "mlp";          // Mixtral hub checkpoints: "block_sparse_moe"
  std::string_view moe_prefix_alt = "";         // a second spelling to try
  std::string_view router_name = "gate";        // GPT-OSS: "router"
  std::string_view router_name_alt = "";        // Granite hub: "router.layer" (transformers 5: "router")
  std::string_view expert_gate = "gate_proj";   // Mixtral hub: w1
  std::string_view expert_up = "up_proj";       // Mixtral hub: w3
  std::string_view expert_down = "down_proj";   // Mixtral hub: w2
  std::string_view expert_gate_alt = "";
  std::string_view expert_up_alt = "";
  std::string_view expert_down_alt = "";
  // Fused banks (gate rows then up rows) under the MoE block: transformers 5's names, and a second
  // spelling (Granite hub: input_linear.weight / output_linear.weight).
  std::string_view fused_gate_up_alt = "";
  std::string_view fused_down_alt = "";
  // Llama 4: experts.gate_up_proj [E, d_model, 2·d_ff] and experts.down_proj [E, d_ff, d_model],
  // input-major (used as x · W), gate columns then up columns (ExpertLayout::kInputMajorFused).
  bool input_major_experts = false;
  // The dense MLP of non-MoE layers: its name below the layer and the key of its width.
  std::string_view dense_mlp_prefix = "mlp";            // Llama 4: "feed_forward"
  std::string_view dense_d_ff_key = "intermediate_size";  // Llama 4: "intermediate_size_mlp"
  std::string_view shared_expert_name = "";     // "shared_expert" / "shared_experts"
  // Qwen3-Next / Qwen3.5: layer_types entries "linear_attention" (or, without layer_types, all but
  // every full_attention_interval-th layer) are Gated DeltaNet layers (linear_attn.*).
  DeltaNetLayout delta_net = DeltaNetLayout::kNone;
  // Every RMSNorm but the DeltaNet's gated one scales by (1 + w) (zero-centred weights; Qwen3-Next).
  bool zero_centered_norms = false;
  // Gated attention: q_proj is doubled, each head's [query | gate] rows; out ·= σ(gate) (Qwen3-Next).
  bool attention_output_gate = false;
  // DeepSeek sparse attention (V3.2, GLM-5): MLA restricted to a lightning indexer's top
  // index_topk positions (index_n_heads, index_head_dim); the indexer's rope pairing; whether
  // indexer_types ("full" / "shared": reuse the previous layer's selection) is read; the
  // config class's index_n_heads default (DeepseekV32Config 64, GlmMoeDsaConfig 32).
  bool sparse_attention = false;
  std::int64_t index_n_heads_default = 64;
  kernels::RopePairing index_rope_pairing = kernels::RopePairing::half_split;
  bool indexer_types_key = false;
};

}  // namespace moe::model
