// ModelConfig::from_json: family options, key spellings, rope standardisation, layer placement
// and error reporting.
#include <catch2/catch.hpp>

#include <moe/model/config.hpp>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

using namespace moe;
using nlohmann::json;

namespace {

json mixtral() {
  return json{{"architectures", {"MixtralForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
              {"intermediate_size", 48}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}, {"num_local_experts", 8}, {"num_experts_per_tok", 2},
              {"rms_norm_eps", 1e-5}, {"eos_token_id", 2}};
}

json deepseek_v3() {
  return json{{"architectures", {"DeepseekV3ForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
              {"intermediate_size", 64}, {"moe_intermediate_size", 8}, {"num_hidden_layers", 3},
              {"num_attention_heads", 4}, {"n_routed_experts", 16}, {"num_experts_per_tok", 4},
              {"n_group", 4}, {"topk_group", 2}, {"first_k_dense_replace", 1}, {"q_lora_rank", 16},
              {"kv_lora_rank", 8}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4}, {"v_head_dim", 6},
              {"n_shared_experts", 2}, {"routed_scaling_factor", 2.5}, {"eos_token_id", {1, 5}},
              {"rope_parameters",
               {{"rope_type", "yarn"}, {"rope_theta", 10000.0}, {"factor", 40.0}, {"mscale", 1.0},
                {"mscale_all_dim", 1.0}, {"original_max_position_embeddings", 4096}}}};
}

ErrorCode code_of(const json& j) {
  try {
    (void)ModelConfig::from_json(j, "cfg.json");
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

std::string message_of(const json& j) {
  try {
    (void)ModelConfig::from_json(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("config: Mixtral defaults and derived sizes", "[config]") {
  const auto c = ModelConfig::from_json(mixtral(), "cfg.json");
  CHECK(c.spec->family == model::Family::kMixtral);
  CHECK(c.head_dim == 8);
  CHECK(c.d_ff_expert == 48);
  CHECK(c.router.norm_topk_prob);  // Mixtral always renormalises
  CHECK(c.router.scoring == layers::RouterScoring::kSoftmax);
  CHECK(c.rope.theta == 1e6);      // MixtralConfig's default rope_theta
  CHECK(c.rope.rotary_dim == 8);
  CHECK(c.eos_token_ids == std::vector<std::int32_t>{2});
  CHECK(c.attention_scale == Approx(1 / std::sqrt(8.0)));
  for (bool m : c.moe_layer) CHECK(m);
  for (auto w : c.sliding_window) CHECK(w == 0);
  auto j = mixtral();
  j["sliding_window"] = 5;
  for (auto w : ModelConfig::from_json(j, "x").sliding_window) CHECK(w == 5);
}

TEST_CASE("config: DeepSeek-V3 MLA, noaux_tc router, dense first layer, mscale softmax scale", "[config]") {
  const auto c = ModelConfig::from_json(deepseek_v3(), "cfg.json");
  CHECK(c.mla);
  CHECK(c.head_dim == 12);
  CHECK(c.rope.rotary_dim == 4);
  CHECK(c.rope.type == layers::RopeType::kYarn);
  CHECK(c.rope_pairing == kernels::RopePairing::interleaved);
  CHECK(c.router.scoring == layers::RouterScoring::kSigmoid);
  CHECK(c.router.group_score == layers::GroupScore::kTopTwo);
  CHECK(c.router.n_group == 4);
  CHECK(c.router.topk_group == 2);
  CHECK(c.router.dropped_groups_to_minus_inf);
  CHECK(c.router.norm_topk_prob);
  CHECK(c.router.routed_scaling_factor == 2.5f);
  CHECK(c.d_ff_shared == 16);
  CHECK(c.moe_layer == std::vector<bool>{false, true, true});
  CHECK(c.eos_token_ids == std::vector<std::int32_t>{1, 5});
  const double m = 0.1 * std::log(40.0) + 1.0;
  CHECK(c.attention_scale == Approx(m * m / std::sqrt(12.0)).epsilon(1e-6));
  auto j = deepseek_v3();
  j["rope_interleave"] = false;
  CHECK(ModelConfig::from_json(j, "x").rope_pairing == kernels::RopePairing::half_split);
  // DeepSeek-V2's group_limited_greedy masks dropped groups to 0.0 instead.
  j["architectures"] = {"DeepseekV2ForCausalLM"};
  j["topk_method"] = "group_limited_greedy";
  const auto v2 = ModelConfig::from_json(j, "x");
  CHECK(v2.router.group_score == layers::GroupScore::kMax);
  CHECK_FALSE(v2.router.dropped_groups_to_minus_inf);
}

TEST_CASE("config: legacy rope_scaling + rope_theta, and precedence over rope_parameters", "[config]") {
  auto j = mixtral();
  j["rope_theta"] = 5e5;
  j["rope_scaling"] = json{{"type", "linear"}, {"factor", 4.0}};
  j["rope_parameters"] = json{{"rope_type", "default"}, {"rope_theta", 1e4}};
  const auto c = ModelConfig::from_json(j, "x");
  CHECK(c.rope.type == layers::RopeType::kLinear);
  CHECK(c.rope.factor == 4.0);
  CHECK(c.rope.theta == 5e5);
  j.erase("rope_scaling");
  const auto d = ModelConfig::from_json(j, "x");
  CHECK(d.rope.type == layers::RopeType::kDefault);
  CHECK(d.rope.theta == 1e4);
  j["rope_scaling"] = nullptr;  // null falls back to rope_parameters
  CHECK(ModelConfig::from_json(j, "x").rope.theta == 1e4);
}

TEST_CASE("config: GPT-OSS defaults (alternating sliding layers, yarn) and Qwen layer placement", "[config]") {
  json g{{"architectures", {"GptOssForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
         {"intermediate_size", 16}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
         {"num_key_value_heads", 2}, {"head_dim", 8}, {"num_local_experts", 4}, {"num_experts_per_tok", 2}};
  const auto c = ModelConfig::from_json(g, "x");
  CHECK(c.sliding_window == std::vector<index_t>{128, 0, 128, 0});
  CHECK(c.rope.type == layers::RopeType::kYarn);
  CHECK_FALSE(c.rope.truncate);
  CHECK(c.rope.theta == 150000.0);
  CHECK(c.attention_sinks);
  CHECK(c.router.scoring == layers::RouterScoring::kTopkSoftmax);
  g["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "sliding_attention"};
  g["sliding_window"] = 7;
  CHECK(ModelConfig::from_json(g, "x").sliding_window == std::vector<index_t>{0, 7, 0, 7});

  json q{{"architectures", {"Qwen2MoeForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
         {"intermediate_size", 64}, {"moe_intermediate_size", 8}, {"shared_expert_intermediate_size", 24},
         {"num_hidden_layers", 6}, {"num_attention_heads", 4}, {"num_experts", 8}, {"num_experts_per_tok", 2},
         {"decoder_sparse_step", 2}, {"mlp_only_layers", {3}}};
  const auto qc = ModelConfig::from_json(q, "x");
  CHECK(qc.moe_layer == std::vector<bool>{false, true, false, false, false, true});
  CHECK(qc.d_ff_shared == 24);
  CHECK_FALSE(qc.router.norm_topk_prob);
  q["num_local_experts"] = 8;  // transformers 5's spelling
  q.erase("num_experts");
  CHECK(ModelConfig::from_json(q, "x").n_experts == 8);
}

TEST_CASE("config: GLM-4-MoE partial rotary and use_qk_norm", "[config]") {
  json g{{"architectures", {"Glm4MoeForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
         {"intermediate_size", 64}, {"moe_intermediate_size", 8}, {"num_hidden_layers", 2},
         {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16}, {"n_routed_experts", 8},
         {"num_experts_per_tok", 2}};
  auto c = ModelConfig::from_json(g, "x");
  CHECK(c.rope.rotary_dim == 8);  // partial_rotary_factor 0.5 by default
  CHECK(c.qk_norm == model::QkNorm::kNone);
  CHECK(c.moe_layer == std::vector<bool>{false, true});
  g["use_qk_norm"] = true;
  g["partial_rotary_factor"] = 0.25;
  c = ModelConfig::from_json(g, "x");
  CHECK(c.qk_norm == model::QkNorm::kPerHead);
  CHECK(c.rope.rotary_dim == 4);
}

TEST_CASE("config errors name the key, the value and the file", "[config]") {
  auto j = mixtral();
  j["architectures"] = {"FancyForCausalLM"};
  CHECK(code_of(j) == ErrorCode::kUnsupported);
  CHECK(message_of(j).find("FancyForCausalLM") != std::string::npos);
  CHECK(message_of(j).find("cfg.json") != std::string::npos);

  j = mixtral();
  j.erase("num_local_experts");
  CHECK(code_of(j) == ErrorCode::kConfig);
  CHECK(message_of(j).find("num_local_experts") != std::string::npos);

  j = mixtral();
  j["num_experts_per_tok"] = 9;
  CHECK(code_of(j) == ErrorCode::kConfig);

  j = mixtral();
  j["num_key_value_heads"] = 3;
  CHECK(code_of(j) == ErrorCode::kConfig);

  j = mixtral();
  j["hidden_size"] = 30;  // not divisible by 4 heads, no head_dim
  CHECK(code_of(j) == ErrorCode::kConfig);

  j = mixtral();
  j["rope_parameters"] = json{{"rope_type", "longrope"}};
  CHECK(code_of(j) == ErrorCode::kUnsupported);

  auto d = deepseek_v3();
  d["n_group"] = 3;
  CHECK(code_of(d) == ErrorCode::kConfig);
  d = deepseek_v3();
  d["topk_group"] = 5;
  CHECK(code_of(d) == ErrorCode::kConfig);
  d = deepseek_v3();
  d["topk_method"] = "group_limited_greedy";
  CHECK(code_of(d) == ErrorCode::kUnsupported);

  CHECK(code_of(json::array()) == ErrorCode::kConfig);
  j = mixtral();
  j["vocab_size"] = 1.5;
  CHECK(code_of(j) == ErrorCode::kConfig);
}

TEST_CASE("config: attention / MLP bias flags per family", "[config]") {
  auto m = mixtral();
  m["attention_bias"] = true;  // not a Mixtral option: transformers builds its projections without bias
  auto c = ModelConfig::from_json(m, "x");
  CHECK_FALSE(c.qkv_bias);
  CHECK_FALSE(c.o_bias);
  json q{{"architectures", {"Qwen2MoeForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
         {"intermediate_size", 64}, {"moe_intermediate_size", 8}, {"num_hidden_layers", 2},
         {"num_attention_heads", 4}, {"num_experts", 8}, {"num_experts_per_tok", 2}};
  c = ModelConfig::from_json(q, "x");
  CHECK(c.qkv_bias);  // qkv_bias defaults to true
  CHECK_FALSE(c.o_bias);
  q["qkv_bias"] = false;
  CHECK_FALSE(ModelConfig::from_json(q, "x").qkv_bias);
  auto d = deepseek_v3();
  d["attention_bias"] = true;
  c = ModelConfig::from_json(d, "x");
  CHECK(c.qkv_bias);
  CHECK(c.o_bias);
  CHECK_FALSE(c.mlp_bias);
}

namespace {

json small(std::string_view arch) {
  return json{{"architectures", {std::string(arch)}}, {"vocab_size", 100}, {"hidden_size", 32},
              {"intermediate_size", 48}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
              {"num_key_value_heads", 2}};
}

}  // namespace

TEST_CASE("config: the unsupported-architecture message lists every family", "[config]") {
  const std::string m = message_of(small("FancyForCausalLM"));
  for (const auto* a : model::kArchitectures) CHECK(m.find(std::string(a->hf_class)) != std::string::npos);
}

TEST_CASE("config: ERNIE-4.5 MoE layer interval, moe_k, shared experts, use_bias, tied head", "[config]") {
  json j = small("Ernie4_5_MoeForCausalLM");
  j["num_hidden_layers"] = 6;
  j.update(json{{"moe_num_experts", 8}, {"moe_k", 3}, {"moe_intermediate_size", 16}, {"use_bias", true}});
  auto c = ModelConfig::from_json(j, "x");
  CHECK(c.top_k == 3);
  CHECK(c.d_ff_shared == 2 * 16);  // moe_num_shared_experts defaults to 2
  CHECK(c.tie_word_embeddings);    // Ernie4_5_MoeConfig's default
  CHECK(c.qkv_bias);
  CHECK(c.o_bias);
  CHECK(c.mlp_bias);
  CHECK(c.lm_head_bias);
  CHECK(c.rope.theta == 5e5);
  CHECK(c.rope_pairing == kernels::RopePairing::interleaved);
  CHECK(c.router.has_correction_bias);
  CHECK(c.moe_layer == std::vector<bool>{false, true, true, true, true, true});  // start index 1, end -1
  j.update(json{{"moe_layer_start_index", 0}, {"moe_layer_end_index", 3}, {"moe_layer_interval", 2},
                {"moe_num_shared_experts", 0}, {"use_bias", false}, {"tie_word_embeddings", false}});
  c = ModelConfig::from_json(j, "x");
  CHECK(c.moe_layer == std::vector<bool>{false, true, false, true, false, false});
  CHECK(c.d_ff_shared == 0);
  CHECK_FALSE(c.lm_head_bias);
  CHECK_FALSE(c.tie_word_embeddings);
  j["moe_layer_interval"] = 0;
  CHECK(code_of(j) == ErrorCode::kConfig);
  CHECK(message_of(j).find("moe_layer_interval") != std::string::npos);
}

TEST_CASE("config: Hunyuan moe_topk lists, shared MLP width, q/k norm after rope, NTK-alpha rope", "[config]") {
  json j = small("HunYuanMoEV1ForCausalLM");
  j.update(json{{"num_experts", 8}, {"moe_topk", {2, 2, 2, 2}}, {"head_dim", 16},
                {"rope_parameters", {{"rope_type", "dynamic"}, {"alpha", 1000.0}, {"rope_theta", 10000.0}}}});
  auto c = ModelConfig::from_json(j, "x");
  CHECK(c.top_k == 2);
  CHECK(c.d_ff_shared == 48);  // the shared MLP is intermediate_size wide, like the experts
  CHECK(c.d_ff_expert == 48);
  CHECK(c.qk_norm == model::QkNorm::kPerHeadAfterRope);
  CHECK(c.rope.type == layers::RopeType::kDefault);
  CHECK(c.rope.theta == Approx(10000.0 * std::pow(1000.0, 16.0 / 14.0)));
  j["moe_topk"] = {2, 4, 2, 2};
  CHECK(code_of(j) == ErrorCode::kUnsupported);
  CHECK(message_of(j).find("moe_topk") != std::string::npos);
  j["moe_topk"] = json::array();
  CHECK(code_of(j) == ErrorCode::kConfig);
}

TEST_CASE("config: Granite muP multipliers", "[config]") {
  json j = small("GraniteMoeForCausalLM");
  j.update(json{{"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"embedding_multiplier", 12.0},
                {"attention_multiplier", 0.125}, {"residual_multiplier", 0.22}, {"logits_scaling", 8.0}});
  auto c = ModelConfig::from_json(j, "x");
  CHECK(c.embedding_multiplier == 12.0f);
  CHECK(c.attention_scale == 0.125f);
  CHECK(c.residual_multiplier == 0.22f);
  CHECK(c.logits_multiplier == 0.125f);
  CHECK(c.router.scoring == layers::RouterScoring::kTopkSoftmax);
  j["logits_scaling"] = 0;
  CHECK(code_of(j) == ErrorCode::kConfig);
  CHECK(message_of(j).find("logits_scaling") != std::string::npos);
  // Other families ignore the keys.
  json m = mixtral();
  m["embedding_multiplier"] = 12.0;
  CHECK(ModelConfig::from_json(m, "x").embedding_multiplier == 1.0f);
}

TEST_CASE("config: GLM-4-MoE-Lite mlp_layer_types, dots.llm1 derived sliding layers, MiniMax-M2", "[config]") {
  json g = small("Glm4MoeLiteForCausalLM");
  g.update(json{{"moe_intermediate_size", 8}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2},
                {"kv_lora_rank", 8}, {"q_lora_rank", 16}, {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 4},
                {"v_head_dim", 8}, {"first_k_dense_replace", 3}});
  auto c = ModelConfig::from_json(g, "x");
  // transformers' config class does not read first_k_dense_replace: only layer 0 is dense.
  CHECK(c.moe_layer == std::vector<bool>{false, true, true, true});
  CHECK(c.mla);
  CHECK(c.router.routed_scaling_factor == 1.8f);
  g["mlp_layer_types"] = {"sparse", "dense", "sparse", "dense"};
  CHECK(ModelConfig::from_json(g, "x").moe_layer == std::vector<bool>{true, false, true, false});
  g["mlp_layer_types"] = {"sparse", "moe", "sparse", "dense"};
  CHECK(code_of(g) == ErrorCode::kConfig);
  CHECK(message_of(g).find("mlp_layer_types[1]") != std::string::npos);
  g["mlp_layer_types"] = {"sparse"};
  CHECK(code_of(g) == ErrorCode::kConfig);

  json d = small("Dots1ForCausalLM");
  d.update(json{{"moe_intermediate_size", 8}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2},
                {"n_shared_experts", 1}, {"sliding_window", 16}, {"max_window_layers", 2}});
  c = ModelConfig::from_json(d, "x");
  CHECK(c.sliding_window == std::vector<index_t>{0, 0, 16, 16});  // layers >= max_window_layers
  d.erase("max_window_layers");
  CHECK(ModelConfig::from_json(d, "x").sliding_window == std::vector<index_t>{0, 0, 0, 0});
  CHECK(c.qk_norm == model::QkNorm::kPerHead);

  json m = small("MiniMaxM2ForCausalLM");
  m.update(json{{"num_local_experts", 8}, {"num_experts_per_tok", 2}, {"head_dim", 16},
                {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 5e6}, {"partial_rotary_factor", 0.5}}}});
  c = ModelConfig::from_json(m, "x");
  CHECK(c.qk_norm == model::QkNorm::kWholeProjection);
  CHECK(c.rope.rotary_dim == 8);
  CHECK(c.router.scoring == layers::RouterScoring::kSigmoid);
  CHECK(c.router.norm_topk_prob);
  CHECK(c.router.has_correction_bias);
}

TEST_CASE("config: Qwen3-Next linear-attention layers and the rope dict's partial rotary", "[config]") {
  json q{{"architectures", {"Qwen3NextForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 32},
         {"intermediate_size", 64}, {"moe_intermediate_size", 8}, {"num_hidden_layers", 8},
         {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16}, {"num_experts", 8},
         {"num_experts_per_tok", 2}, {"linear_num_key_heads", 2}, {"linear_num_value_heads", 4},
         {"linear_key_head_dim", 8}, {"linear_value_head_dim", 8}, {"partial_rotary_factor", 0.25},
         {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e4}, {"partial_rotary_factor", 0.5}}}};
  auto c = ModelConfig::from_json(q, "x");
  CHECK(c.rope.rotary_dim == 8);  // transformers' setdefault: the rope dict's 0.5 wins
  CHECK(c.linear_attention == std::vector<bool>{true, true, true, false, true, true, true, false});
  CHECK(c.delta_net.conv_dim() == 2 * 16 + 32);
  CHECK(c.attention_output_gate);
  q["full_attention_interval"] = 2;
  CHECK(ModelConfig::from_json(q, "x").linear_attention ==
        std::vector<bool>{true, false, true, false, true, false, true, false});
  q["layer_types"] = {"linear_attention", "full_attention", "full_attention", "linear_attention",
                      "full_attention", "full_attention", "full_attention", "full_attention"};
  CHECK(ModelConfig::from_json(q, "x").linear_attention ==
        std::vector<bool>{true, false, false, true, false, false, false, false});
  // Implausible sizes name their key.
  for (const char* key : {"linear_num_key_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim"}) {
    json b = q;
    b[key] = std::int64_t{1} << 40;
    INFO(key);
    CHECK_THROWS_WITH(ModelConfig::from_json(b, "x"), Catch::Contains(key) && Catch::Contains("implausibly large"));
  }
  q["linear_num_value_heads"] = 3;
  CHECK_THROWS_WITH(ModelConfig::from_json(q, "x"), Catch::Contains("linear_num_value_heads = 3"));
  // Families without DeltaNet layers still refuse the layer type.
  json m = q;
  m["architectures"] = {"Qwen3MoeForCausalLM"};
  CHECK_THROWS_WITH(ModelConfig::from_json(m, "x"), Catch::Contains("linear_attention"));
}

TEST_CASE("config: Llama 4 NoPE and chunked layers, temperature tuning, moe_layers, dense MLP width", "[config]") {
  json j = small("Llama4ForCausalLM");
  j.update(json{{"num_local_experts", 4}, {"num_experts_per_tok", 1}, {"head_dim", 8},
                {"intermediate_size_mlp", 96}, {"attention_chunk_size", 8}, {"floor_scale", 4}, {"attn_scale", 0.2}});
  // Defaults: every 4th layer NoPE, the rope layers chunked, MoE on every layer (step 1).
  auto c = ModelConfig::from_json(j, "x");
  CHECK(c.nope_layer == std::vector<bool>{false, false, false, true});
  CHECK(c.attention_chunk == std::vector<index_t>{8, 8, 8, 0});
  CHECK(c.attn_temperature_scale == 0.2f);
  CHECK(c.attn_temperature_floor == 4.0f);
  CHECK(c.moe_layer == std::vector<bool>{true, true, true, true});
  CHECK(c.d_ff == 96);
  CHECK(c.d_ff_expert == 48);
  CHECK(c.d_ff_shared == 48);
  CHECK(c.qk_norm == model::QkNorm::kUnweightedAfterRope);
  CHECK(c.router.weights_scale_inputs);
  // Explicit lists win; interleave_moe_layer_step without moe_layers.
  j["no_rope_layers"] = {1, 0, 1, 1};
  j["layer_types"] = {"chunked_attention", "full_attention", "full_attention", "chunked_attention"};
  j["moe_layers"] = {1, 3};
  c = ModelConfig::from_json(j, "x");
  CHECK(c.nope_layer == std::vector<bool>{false, true, false, false});
  CHECK(c.attention_chunk == std::vector<index_t>{8, 0, 0, 8});
  CHECK(c.moe_layer == std::vector<bool>{false, true, false, true});
  j.erase("moe_layers");
  j["interleave_moe_layer_step"] = 2;
  CHECK(ModelConfig::from_json(j, "x").moe_layer == std::vector<bool>{false, true, false, true});
  j["attn_temperature_tuning"] = false;
  j["use_qk_norm"] = false;
  c = ModelConfig::from_json(j, "x");
  CHECK(c.attn_temperature_scale == 0.0f);
  CHECK(c.qk_norm == model::QkNorm::kNone);
  // Bad values name the key.
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
           {"no_rope_layers", json{1, 2, 1, 1}}, {"no_rope_layers", json{1, 1}}, {"moe_layers", json{0, 4}},
           {"interleave_moe_layer_step", json(0)}, {"floor_scale", json(0)}}) {
    json b = j;
    b.erase("attn_temperature_tuning");  // floor_scale is only read with the tuning on
    b[key] = value;
    INFO(key << " = " << value.dump());
    CHECK(code_of(b) == ErrorCode::kConfig);
    CHECK(message_of(b).find(key) != std::string::npos);
  }
}

TEST_CASE("config: DeepSeek-V3.2 and GLM-5 sparse attention (index_* keys, indexer_types, bad values name the key)",
          "[config][dsa]") {
  json v32 = deepseek_v3();
  v32["architectures"] = {"DeepseekV32ForCausalLM"};
  v32.update(json{{"index_n_heads", 2}, {"index_head_dim", 16}, {"index_topk", 8}});
  json glm = v32;
  glm["architectures"] = {"GlmMoeDsaForCausalLM"};
  glm["index_topk"] = 6;
  glm["indexer_types"] = {"full", "full", "shared"};

  auto c = ModelConfig::from_json(v32, "x");
  CHECK(c.spec->family == model::Family::kDeepseekV32);
  CHECK(c.dsa.n_heads == 2);
  CHECK(c.dsa.head_dim == 16);
  CHECK(c.dsa.top_k == 8);
  CHECK(c.index_rope_pairing == kernels::RopePairing::half_split);
  CHECK(c.indexer_shared == std::vector<bool>{false, false, false});  // V3.2: an indexer on every layer
  c = ModelConfig::from_json(glm, "x");
  CHECK(c.spec->family == model::Family::kGlmMoeDsa);
  CHECK(c.dsa.n_heads == 2);
  CHECK(c.dsa.head_dim == 16);
  CHECK(c.dsa.top_k == 6);
  CHECK(c.index_rope_pairing == kernels::RopePairing::interleaved);
  CHECK(c.indexer_shared == std::vector<bool>{false, false, true});
  // Absent keys: each config class's defaults (GlmMoeDsaConfig has 32 indexer heads, V3.2 64).
  for (const char* key : {"index_n_heads", "index_head_dim", "index_topk"}) v32.erase(key), glm.erase(key);
  c = ModelConfig::from_json(v32, "x");
  CHECK(c.dsa.n_heads == 64);
  CHECK(c.dsa.head_dim == 128);
  CHECK(c.dsa.top_k == 2048);
  c = ModelConfig::from_json(glm, "x");
  CHECK(c.dsa.n_heads == 32);
  CHECK(c.dsa.head_dim == 128);
  CHECK(c.dsa.top_k == 2048);
  v32.update(json{{"index_n_heads", 2}, {"index_head_dim", 16}, {"index_topk", 8}});
  glm.update(json{{"index_n_heads", 2}, {"index_head_dim", 16}, {"index_topk", 6}});
  // GLM without indexer_types: index_topk_pattern, else index_topk_freq / index_skip_topk_offset
  // (GlmMoeDsaConfig.__post_init__; the defaults make every layer full).
  json g = glm;
  g.erase("indexer_types");
  CHECK(ModelConfig::from_json(g, "x").indexer_shared == std::vector<bool>{false, false, false});
  g["index_topk_freq"] = 2, g["index_skip_topk_offset"] = 1;
  CHECK(ModelConfig::from_json(g, "x").indexer_shared == std::vector<bool>{false, true, false});
  g["index_topk_pattern"] = "FFS";
  CHECK(ModelConfig::from_json(g, "x").indexer_shared == std::vector<bool>{false, false, true});
  // A family without sparse attention ignores the keys.
  json v3 = deepseek_v3();
  v3["index_topk"] = 8;
  CHECK(ModelConfig::from_json(v3, "x").dsa.top_k == 0);

  // Bad values: kConfig, the message naming the key and the value seen.
  for (const json* base : {&v32, &glm}) {
    for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{
             {"index_topk", json(-1)},     {"index_topk", json(0)},        {"index_topk", json(2.5)},
             {"index_topk", json("8")},    {"index_n_heads", json(0)},     {"index_n_heads", json(-3)},
             {"index_head_dim", json(0)},  {"index_head_dim", json(2)},  // < qk_rope_head_dim (rope on its first dims)
             {"index_head_dim", json(std::int64_t{1} << 40)}, {"index_topk", json(std::int64_t{1} << 40)}}) {
      json b = *base;
      b[key] = value;
      INFO((*base)["architectures"][0].get<std::string>() << ": " << key << " = " << value.dump());
      CHECK(code_of(b) == ErrorCode::kConfig);
      const std::string msg = message_of(b);
      CHECK(msg.find(key) != std::string::npos);
      CHECK(msg.find(value.is_string() ? value.get<std::string>() : value.dump()) != std::string::npos);
    }
    // The indexer's query is the q_lora latent: sparse attention without q_lora_rank is refused.
    json b = *base;
    b.erase("q_lora_rank");
    CHECK(code_of(b) == ErrorCode::kConfig);
    CHECK(message_of(b).find("q_lora_rank") != std::string::npos);
  }
  for (const auto& types : {json{"shared", "full", "full"}, json{"full", "sparse", "full"}, json{"full", "full"},
                            json("full"), json{"full", 1, "full"}}) {
    json b = glm;
    b["indexer_types"] = types;
    INFO("indexer_types = " << types.dump());
    CHECK(code_of(b) == ErrorCode::kConfig);
    CHECK(message_of(b).find("indexer_types") != std::string::npos);
  }
  g = glm;
  g.erase("indexer_types");
  g["index_topk_pattern"] = "FXF";
  CHECK(code_of(g) == ErrorCode::kConfig);
  CHECK(message_of(g).find("index_topk_pattern") != std::string::npos);
  g["index_topk_pattern"] = "SFF";  // layer 0 cannot share
  CHECK(code_of(g) == ErrorCode::kConfig);
}
