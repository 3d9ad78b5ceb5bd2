// Model::forward on small random models of every family, built in memory: prefill of all
// positions equals token-by-token decode, batched chunks equal separate runs, fused and
// per-expert banks give the same logits, bad input throws before any cache changes, expert usage
// counts every routed token. (Agreement with transformers is checked by moe-conformance.)
#include <catch2/catch.hpp>

#include <moe/model/model.hpp>
#include <moe/model/upload.hpp>
#include <moe/io/load_model.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace moe;
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Random weights generated on demand from each tensor's name (so a stacked bank can be assembled
// from the same per-expert tensors), following DESIGN.md §9's scales.
class RandomSource final : public TensorSource {
 public:
  struct Options {
    bool biases = false;
    bool fused_experts = false;
    bool tied = false;
  };
  explicit RandomSource(Options o) : o_(o) {}

  bool contains(std::string_view n) const override {
    const std::string name(n);
    if (ends_with(name, "_blocks")) return false;
    if (name == "lm_head.weight") return !o_.tied;
    if (ends_with(name, "experts.gate_up_proj")) return o_.fused_experts;
    if (name.find(".experts.0.") != std::string::npos) return !o_.fused_experts;
    if (ends_with(name, "e_score_correction_bias")) return true;
    if (ends_with(name, ".bias")) return o_.biases;
    return true;
  }
  std::optional<std::vector<index_t>> shape_of(std::string_view n) const override {
    const auto it = store_.find(std::string(n));
    if (it == store_.end()) return std::nullopt;
    return it->second.shape;
  }
  TensorRef get(std::string_view n, std::span<const index_t> shape) const override {
    const std::string name(n);
    require(contains(name), ErrorCode::kMissingTensor, "tensor {} not found", name);
    auto& t = store_[name];
    if (t.data.empty()) {
      t.shape.assign(shape.begin(), shape.end());
      t.data = make(name, t.shape);
    }
    require(t.shape == std::vector<index_t>(shape.begin(), shape.end()), ErrorCode::kShapeMismatch, "{}", name);
    return TensorRef{DType::f32, reinterpret_cast<const std::byte*>(t.data.data())};
  }

 private:
  struct Stored {
    std::vector<index_t> shape;
    std::vector<float> data;
  };
  static std::vector<float> draw(const std::string& name, std::size_t n, float mean, float sd) {
    std::mt19937 g(static_cast<std::uint32_t>(std::hash<std::string>{}(name)));
    std::normal_distribution<float> d(mean, sd);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
  }
  std::vector<float> make(const std::string& name, const std::vector<index_t>& shape) const {
    std::size_t n = 1;
    for (auto s : shape) n *= s;
    const auto prefix = name.substr(0, name.rfind(".experts.") + 9);  // "...mlp.experts."
    if (o_.fused_experts && ends_with(name, "mlp.experts.gate_up_proj") && !gpt_oss_) {
      // [E, 2F, D] = per-expert gate rows then up rows.
      const index_t E = shape[0], F = shape[1] / 2, D = shape[2];
      std::vector<float> v;
      for (index_t e = 0; e < E; ++e) {
        for (const char* part : {"gate_proj", "up_proj"}) {
          const auto w = draw(prefix + std::to_string(e) + "." + part + ".weight", F * D, 0, 1 / std::sqrt(float(D)));
          v.insert(v.end(), w.begin(), w.end());
        }
      }
      return v;
    }
    if (o_.fused_experts && ends_with(name, "mlp.experts.down_proj") && !gpt_oss_) {
      const index_t E = shape[0], D = shape[1], F = shape[2];
      std::vector<float> v;
      for (index_t e = 0; e < E; ++e) {
        const auto w = draw(prefix + std::to_string(e) + ".down_proj.weight", D * F, 0, 1 / std::sqrt(float(F)));
        v.insert(v.end(), w.begin(), w.end());
      }
      return v;
    }
    if (name.find("norm") != std::string::npos) return draw(name, n, 1.0f, 0.1f);
    if (name == "model.embed_tokens.weight") return draw(name, n, 0.0f, 1.0f);
    if (ends_with(name, "bias") || ends_with(name, "sinks")) return draw(name, n, 0.0f, 0.1f);
    const index_t fan_in = gpt_oss_ && shape.size() == 3 ? shape[1] : shape.back();
    return draw(name, n, 0.0f, 1.0f / std::sqrt(static_cast<float>(fan_in)));
  }

 public:
  bool gpt_oss_ = false;

 private:
  Options o_;
  mutable std::map<std::string, Stored> store_;
};

json base(const char* arch) {
  return json{{"architectures", {arch}}, {"vocab_size", 48}, {"hidden_size", 16}, {"num_hidden_layers", 2},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 4}, {"rms_norm_eps", 1e-5},
              {"max_position_embeddings", 64}, {"num_experts_per_tok", 2}};
}

struct Family {
  std::string name;
  json config;
  RandomSource::Options options;
};

std::vector<Family> families() {
  std::vector<Family> f;
  json m = base("MixtralForCausalLM");
  m["intermediate_size"] = 12;
  m["num_local_experts"] = 4;
  f.push_back({"mixtral_fused", m, {false, true, false}});
  m["tie_word_embeddings"] = true;
  f.push_back({"mixtral_separate", m, {false, false, true}});
  json q = base("Qwen2MoeForCausalLM");
  q.update(json{{"intermediate_size", 20}, {"moe_intermediate_size", 6}, {"shared_expert_intermediate_size", 10},
                {"num_experts", 6}, {"decoder_sparse_step", 2}, {"num_hidden_layers", 3}, {"norm_topk_prob", true}});
  f.push_back({"qwen2_moe", q, {true, false, false}});
  json q3 = base("Qwen3MoeForCausalLM");
  q3.update(json{{"intermediate_size", 20}, {"moe_intermediate_size", 6}, {"num_experts", 6}, {"head_dim", 8},
                 {"rope_parameters", {{"rope_type", "llama3"}, {"rope_theta", 5e5}, {"factor", 8.0},
                                      {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                                      {"original_max_position_embeddings", 16}}}});
  f.push_back({"qwen3_moe", q3, {}});
  json o = base("OlmoeForCausalLM");
  o.update(json{{"intermediate_size", 6}, {"num_experts", 4}, {"clip_qkv", 1.5}});
  f.push_back({"olmoe", o, {}});
  json d = base("DeepseekV3ForCausalLM");
  d.update(json{{"intermediate_size", 20}, {"moe_intermediate_size", 6}, {"n_routed_experts", 8},
                {"n_group", 2}, {"topk_group", 1}, {"first_k_dense_replace", 1}, {"q_lora_rank", 8},
                {"kv_lora_rank", 8}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 4}, {"v_head_dim", 6},
                {"n_shared_experts", 1}, {"num_key_value_heads", 4},
                {"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4.0}, {"mscale", 1.0},
                                     {"mscale_all_dim", 0.8}, {"original_max_position_embeddings", 8}}}});
  f.push_back({"deepseek_v3", d, {}});
  json d2 = base("DeepseekV2ForCausalLM");
  d2.update(json{{"intermediate_size", 20}, {"moe_intermediate_size", 6}, {"n_routed_experts", 8},
                 {"n_group", 4}, {"topk_group", 2}, {"topk_method", "group_limited_greedy"},
                 {"kv_lora_rank", 8}, {"qk_nope_head_dim", 4}, {"qk_rope_head_dim", 4}, {"v_head_dim", 4},
                 {"n_shared_experts", 2}, {"routed_scaling_factor", 1.5}});
  f.push_back({"deepseek_v2", d2, {}});
  json g = base("GptOssForCausalLM");
  g.update(json{{"intermediate_size", 6}, {"num_local_experts", 4}, {"sliding_window", 3},
                {"layer_types", {"sliding_attention", "full_attention"}}});
  f.push_back({"gpt_oss", g, {true, true, false}});
  json glm = base("Glm4MoeForCausalLM");
  glm.update(json{{"intermediate_size", 20}, {"moe_intermediate_size", 6}, {"n_routed_experts", 8},
                  {"n_group", 2}, {"topk_group", 1}, {"use_qk_norm", true}, {"head_dim", 8},
                  {"partial_rotary_factor", 0.5}});
  f.push_back({"glm4_moe", glm, {true, false, false}});
  return f;
}

template <class Backend = backend::cpu>
std::shared_ptr<const BasicModel<Backend>> build(const Family& f) {
  auto src = std::make_shared<RandomSource>(f.options);
  src->gpt_oss_ = f.name == "gpt_oss";
  auto cfg = ModelConfig::from_json(f.config, f.name);
  auto w = model::bind_weights(cfg, *src);
  return std::make_shared<const BasicModel<Backend>>(std::move(cfg), std::move(w), src);
}

float max_abs_diff(View<const float, 2> a, View<const float, 2> b) {
  float m = 0;
  for (index_t i = 0; i < a.extent(0); ++i)
    for (index_t j = 0; j < a.extent(1); ++j) m = std::max(m, std::fabs(a(i, j) - b(i, j)));
  return m;
}

}  // namespace

TEST_CASE("forward: prefill == decode, chunks == separate runs, usage counts, every family", "[forward]") {
  const std::vector<std::int32_t> a{3, 17, 5, 40, 22, 9, 31, 2, 11, 47}, b{7, 7, 30, 1};
  for (const auto& f : families()) {
    INFO("family " << f.name);
    const auto model = build(f);
    const index_t V = model->config().vocab_size;

    // Prefill all positions of `a` (co-activation counted too).
    KvCache c1 = model->make_cache(16);
    Workspace ws = model->make_workspace(16);
    CHECK(ws.expert_coactivation_counts().empty());  // off by default: nothing allocated
    ws.set_expert_coactivation(true);
    Tensor<float, 2> prefill({a.size(), V});
    Model::SequenceChunk ch{&c1, a};
    model->forward({&ch, 1}, ws, prefill.view(), true);
    CHECK(c1.size() == a.size());
    for (index_t t = 0; t < a.size(); ++t)
      for (index_t v = 0; v < V; ++v) REQUIRE(std::isfinite(prefill(t, v)));

    // Usage: top_k per token per MoE layer.
    const auto& cfg = model->config();
    for (index_t l = 0; l < cfg.n_layers; ++l) {
      std::uint64_t total = 0;
      for (auto u : ws.expert_usage().layer(l)) total += u;
      CHECK(total == (cfg.moe_layer[l] ? a.size() * cfg.top_k : 0));
    }
    // Co-activation: symmetric, no diagonal, and each expert's row sums to its tokens · (top_k - 1).
    const std::vector<std::uint64_t> pairs = ws.expert_coactivation_counts();
    const index_t E = cfg.n_experts;
    REQUIRE(pairs.size() == cfg.n_layers * E * E);
    for (index_t l = 0; l < cfg.n_layers; ++l) {
      for (index_t e = 0; e < E; ++e) {
        std::uint64_t row = 0;
        for (index_t o = 0; o < E; ++o) {
          CHECK(pairs[(l * E + e) * E + o] == pairs[(l * E + o) * E + e]);
          row += pairs[(l * E + e) * E + o];
        }
        CHECK(pairs[(l * E + e) * E + e] == 0);
        CHECK(row == ws.expert_usage().count(l, e) * (cfg.top_k - 1));
      }
    }
    ws.reset_expert_usage();
    CHECK(ws.expert_usage().count(cfg.n_layers - 1, 0) == 0);
    const std::vector<std::uint64_t> cleared = ws.expert_coactivation_counts();
    CHECK(std::all_of(cleared.begin(), cleared.end(), [](std::uint64_t v) { return v == 0; }));
    ws.set_expert_coactivation(false);

    // Token-by-token decode gives the same logits.
    KvCache c2 = model->make_cache(16);
    Tensor<float, 2> one({1, V});
    for (index_t t = 0; t < a.size(); ++t) {
      Model::SequenceChunk s{&c2, std::span<const std::int32_t>(&a[t], 1)};
      model->forward({&s, 1}, ws, one.view(), false);
      float d = 0;
      for (index_t v = 0; v < V; ++v) d = std::max(d, std::fabs(one(0, v) - prefill(t, v)));
      CHECK(d < 1e-4f);
    }

    // Truncate and re-decode the last 3 tokens: same logits again.
    c2.truncate(a.size() - 3);
    Tensor<float, 2> redo({3, V});
    Model::SequenceChunk tail{&c2, std::span<const std::int32_t>(a).subspan(a.size() - 3)};
    model->forward({&tail, 1}, ws, redo.view(), true);
    CHECK(max_abs_diff(redo.view(), View<const float, 2>(prefill.view()).slice(a.size() - 3, a.size())) < 1e-4f);

    // Two sequences in one pass (a continuation of `a` and a fresh `b`) == separate passes.
    KvCache ca = model->make_cache(16), cb = model->make_cache(16), cb2 = model->make_cache(16);
    Model::SequenceChunk first{&ca, std::span<const std::int32_t>(a).first(6)};
    Tensor<float, 2> tmp({1, V});
    model->forward({&first, 1}, ws, tmp.view(), false);
    const std::vector<Model::SequenceChunk> both{{&ca, std::span<const std::int32_t>(a).subspan(6)}, {&cb, b}};
    Tensor<float, 2> batched({a.size() - 6 + b.size(), V});
    model->forward(both, ws, batched.view(), true);
    Model::SequenceChunk alone{&cb2, b};
    Tensor<float, 2> sep({b.size(), V});
    model->forward({&alone, 1}, ws, sep.view(), true);
    CHECK(max_abs_diff(View<const float, 2>(batched.view()).slice(0, a.size() - 6),
                       View<const float, 2>(prefill.view()).slice(6, a.size())) < 1e-4f);
    CHECK(max_abs_diff(View<const float, 2>(batched.view()).slice(a.size() - 6, batched.extent(0)), sep.view()) < 1e-4f);
  }
}

// The scalar oracle runs the whole graph too: Transformer<reference> against Transformer<cpu> on
// every family. The two differ only in summation order, so the bound is derived from the
// reduction lengths: f32 rounding grows at most ~linearly in the terms summed per output
// (d_model, d_ff, the context) and in the layers stacked, times the logits' scale.
TEST_CASE("forward: the reference backend agrees with the cpu backend on every family", "[forward][reference]") {
  const std::vector<std::int32_t> a{3, 17, 5, 40, 22, 9, 31, 2, 11, 47};
  for (const auto& f : families()) {
    INFO("family " << f.name);
    const auto cpu = build<backend::cpu>(f);
    const auto ref = build<backend::reference>(f);
    const auto& cfg = cpu->config();
    const index_t V = cfg.vocab_size;
    Tensor<float, 2> lc({a.size(), V}), lr({a.size(), V});
    auto cc = cpu->make_cache(16);
    auto cr = ref->make_cache(16);
    auto wc = cpu->make_workspace(16);
    auto wr = ref->make_workspace(16);
    const Model::SequenceChunk chc{&cc, a};
    const BasicModel<backend::reference>::SequenceChunk chr{&cr, a};
    cpu->forward({&chc, 1}, wc, lc.view(), true);
    ref->forward({&chr, 1}, wr, lr.view(), true);
    float scale = 1;
    for (index_t t = 0; t < a.size(); ++t)
      for (index_t v = 0; v < V; ++v) scale = std::max(scale, std::fabs(lr(t, v)));
    const index_t widest = std::max({cfg.d_model, cfg.d_ff, cfg.d_ff_expert, static_cast<index_t>(a.size())});
    const float tol = 4.0f * std::numeric_limits<float>::epsilon() * static_cast<float>(widest * cfg.n_layers) * scale;
    CHECK(max_abs_diff(lc.view(), lr.view()) <= tol);
    CHECK(max_abs_diff(lc.view(), lr.view()) > 0);  // really two different kernel sets
    // Same routing, so the same expert usage.
    for (index_t l = 0; l < cfg.n_layers; ++l)
      for (index_t e = 0; e < cfg.n_experts; ++e) CHECK(wc.expert_usage().count(l, e) == wr.expert_usage().count(l, e));
  }
}

TEST_CASE("forward: fused and per-expert banks of the same weights agree", "[forward]") {
  const auto fs = families();
  const auto fused = build(fs[0]);
  const auto separate = build(fs[1]);  // tied embeddings too: lm_head is the embedding
  REQUIRE(fused->weights().layers[0].moe_weights.experts.layout == layers::ExpertLayout::kFusedGateUp);
  REQUIRE(separate->weights().layers[0].moe_weights.experts.layout == layers::ExpertLayout::kSeparate);
  // fs[1] ties the embeddings; compare the fused build with an untied per-expert build.
  auto untied = fs[1];
  untied.options.tied = false;
  untied.config["tie_word_embeddings"] = false;
  const auto sep_untied = build(untied);
  const std::vector<std::int32_t> ids{1, 2, 3, 4, 5};
  Tensor<float, 2> la({5, 48}), lb({5, 48});
  KvCache ca = fused->make_cache(8), cb = sep_untied->make_cache(8);
  Workspace wa = fused->make_workspace(5), wb = sep_untied->make_workspace(5);
  Model::SequenceChunk x{&ca, ids}, y{&cb, ids};
  fused->forward({&x, 1}, wa, la.view(), true);
  sep_untied->forward({&y, 1}, wb, lb.view(), true);
  CHECK(max_abs_diff(la.view(), lb.view()) < 1e-5f);
  CHECK(separate->weights().lm_head.data == separate->weights().embed.data);
}

TEST_CASE("forward: invalid input throws and leaves every cache untouched", "[forward]") {
  const auto model = build(families()[0]);
  KvCache c = model->make_cache(6), d = model->make_cache(6);
  Workspace ws = model->make_workspace(4);
  Tensor<float, 2> logits({1, 48});
  const std::vector<std::int32_t> ok{1, 2}, bad{1, 48}, neg{-1}, many{1, 2, 3, 4, 5};
  auto code = [&](std::vector<Model::SequenceChunk> chunks, View<float, 2> out, bool all = false) {
    try {
      model->forward(chunks, ws, out, all);
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  Model::SequenceChunk first{&c, ok};
  model->forward({&first, 1}, ws, logits.view(), false);
  REQUIRE(c.size() == 2);
  CHECK(code({{&c, bad}}, logits.view()) == ErrorCode::kInvalidArgument);
  CHECK(code({{&c, neg}}, logits.view()) == ErrorCode::kInvalidArgument);
  CHECK(code({{&c, many}}, logits.view()) == ErrorCode::kContextOverflow);  // 2 + 5 > 6
  CHECK(code({{&d, many}}, logits.view()) == ErrorCode::kInvalidArgument);  // 5 > workspace 4
  CHECK(code({{&c, ok}, {&c, ok}}, logits.view()) == ErrorCode::kInvalidArgument);  // shared cache
  CHECK(code({{&c, ok}, {&d, bad}}, logits.view()) == ErrorCode::kInvalidArgument);
  CHECK(code({{&c, ok}}, logits.view(), true) == ErrorCode::kInvalidArgument);  // logits rows != 2
  CHECK(code({{nullptr, ok}}, logits.view()) == ErrorCode::kInvalidArgument);
  CHECK(code({}, logits.view()) == ErrorCode::kInvalidArgument);
  const auto other = build(families()[5]);  // DeepSeek: MLA cache rows of another width
  KvCache foreign = other->make_cache(6);
  CHECK(code({{&foreign, ok}}, logits.view()) == ErrorCode::kInvalidArgument);
  CHECK(c.size() == 2);
  CHECK(d.size() == 0);
  CHECK(foreign.size() == 0);
  Workspace small_other = other->make_workspace(4);
  Model::SequenceChunk again{&d, ok};
  CHECK_THROWS_AS(model->forward({&again, 1}, small_other, logits.view(), false), Error);
  CHECK(d.size() == 0);
}

TEST_CASE("forward: dynamic NTK rope is the default table within max_position_embeddings, per sequence beyond",
          "[forward][rope]") {
  Family dyn = families()[0];
  dyn.config["max_position_embeddings"] = 6;
  Family plain = dyn;
  dyn.config["rope_parameters"] = json{{"rope_type", "dynamic"}, {"rope_theta", 1e4}, {"factor", 4.0}};
  plain.config["rope_parameters"] = json{{"rope_type", "default"}, {"rope_theta", 1e4}};
  const auto md = build(dyn), mp = build(plain);
  const index_t V = md->config().vocab_size;
  const std::vector<std::int32_t> a{3, 17, 5, 40, 22, 9, 31, 2, 11, 47}, b{7, 7, 30, 1};
  Workspace ws = md->make_workspace(16), wp = mp->make_workspace(16);
  auto run = [&](const Model& m, Workspace& w, std::span<const std::int32_t> ids) {
    KvCache c = m.make_cache(16);
    Tensor<float, 2> out({ids.size(), V});
    Model::SequenceChunk ch{&c, ids};
    m.forward({&ch, 1}, w, out.view(), true);
    return out;
  };
  const auto short_d = run(*md, ws, b), short_p = run(*mp, wp, b);
  CHECK(max_abs_diff(short_d.view(), short_p.view()) == 0.0f);
  const auto long_d = run(*md, ws, a), long_p = run(*mp, wp, a);
  CHECK(max_abs_diff(View<const float, 2>(long_d.view()).slice(1, 2), View<const float, 2>(long_p.view()).slice(1, 2)) >
        1e-4f);  // all positions of a 10-token pass use the scaled base

  // In a batch each sequence keeps its own length: a short one beside a long one is unscaled.
  KvCache ca = md->make_cache(16), cb = md->make_cache(16);
  const std::vector<Model::SequenceChunk> both{{&ca, a}, {&cb, b}};
  Tensor<float, 2> batched({a.size() + b.size(), V});
  md->forward(both, ws, batched.view(), true);
  CHECK(max_abs_diff(View<const float, 2>(batched.view()).slice(0, a.size()), long_d.view()) < 1e-5f);
  CHECK(max_abs_diff(View<const float, 2>(batched.view()).slice(a.size(), a.size() + b.size()), short_d.view()) <
        1e-5f);
}

namespace {

// A host backend that supports f32 weights only (the scalar kernels), to test visit_format's
// refusal of the other formats and the weight upload on a machine without a device.
struct f32_only_backend : backend::reference {
  using formats = type_list<float>;
  using vector_formats = type_list<float>;
  static constexpr const char* name = "f32-only";
};

}  // namespace

TEST_CASE("formats: visit_format instantiates only a backend's formats and refuses the rest", "[forward][format]") {
  int seen = 0;
  visit_format<f32_only_backend>(DType::f32, [&](auto tag) {
    static_assert(std::is_same_v<decltype(tag), float>);
    ++seen;
  });
  CHECK(seen == 1);
  try {
    visit_format<f32_only_backend>(DType::bf16, [](auto) {});
    FAIL("bf16 accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnsupported);
    CHECK_THAT(e.what(), Catch::Contains("bf16") && Catch::Contains("f32-only"));
  }
  CHECK(backend_supports_format_v<backend::cpu, bf16>);
  CHECK(supports_format<f32_only_backend>(DType::f32));
  CHECK(!supports_format<f32_only_backend>(DType::bf16));
  CHECK(!backend_supports_format_v<f32_only_backend, f16>);
  CHECK(format_row_bytes(DType::bf16, 7) == 14);
  CHECK(FormatTraits<f16>::decode(std::array<f16, 2>{to_f16(1.5f), to_f16(-2.0f)}.data(), 1) == -2.0f);
}

TEST_CASE("upload: weights copied through the tensor list give the same logits; bytes per token", "[forward][upload]") {
  const std::vector<std::int32_t> a{3, 17, 5, 40, 22, 9};
  for (const auto& f : families()) {
    INFO("family " << f.name);
    const auto in_place = build<backend::reference>(f);
    const auto& cfg = in_place->config();
    std::size_t calls = 0, last_done = 0, last_total = 0;
    auto up = model::upload_weights<backend::reference>(in_place->weights(), [&](std::size_t done, std::size_t total) {
      ++calls;
      CHECK(done > last_done);
      last_done = done;
      last_total = total;
    });
    CHECK(calls > 0);
    CHECK(last_done <= last_total);
    // Every uploaded tensor lives in the new allocation at a 256-byte multiple from its start (the
    // embedding, visited first; cudaMalloc aligns the start itself to 256).
    const auto original = in_place->weights().transform([](const char*, const auto& t) { return t; });
    std::size_t tensors = 0;
    const std::byte* base = up.weights.embed.data;
    (void)up.weights.transform([&](const char*, const auto& t) {
      if (!t.empty()) {
        ++tensors;
        CHECK(static_cast<std::size_t>(t.data - base) % 256 == 0);
      }
      return t;
    });
    CHECK(tensors > 0);
    CHECK(up.weights.embed.data != original.embed.data);
    CHECK(up.weights.tied == in_place->weights().tied);
    if (up.weights.tied) CHECK(up.weights.lm_head.data == up.weights.embed.data);
    const auto copy = std::make_shared<const BasicModel<backend::reference>>(cfg, std::move(up.weights), up.storage);
    CHECK(copy->weight_bytes().total == in_place->weight_bytes().total);

    Tensor<float, 2> l1({a.size(), cfg.vocab_size}), l2({a.size(), cfg.vocab_size});
    auto c1 = in_place->make_cache(8);
    auto c2 = copy->make_cache(8);
    auto w1 = in_place->make_workspace(8);
    auto w2 = copy->make_workspace(8);
    const BasicModel<backend::reference>::SequenceChunk ch1{&c1, a}, ch2{&c2, a};
    in_place->forward({&ch1, 1}, w1, l1.view(), true);
    copy->forward({&ch2, 1}, w2, l2.view(), true);
    CHECK(max_abs_diff(l1.view(), l2.view()) == 0.0f);

    // The bytes one decode token reads: all dense tensors, one embedding row, and top_k / n_experts
    // of every expert bank (f32 weights here).
    const auto& wb = in_place->weight_bytes();
    double experts = 0;
    std::size_t bank_layers = 0;
    for (const auto& L : in_place->weights().layers) {
      if (!L.moe) continue;
      ++bank_layers;
      std::size_t bank = 0;
      (void)L.moe_weights.experts.transform([&](const char*, const auto& t) {
        bank += t.bytes();
        return t;
      });
      experts += static_cast<double>(bank);
    }
    const double embed_row = static_cast<double>(cfg.d_model * sizeof(float));
    const double embed_all = static_cast<double>(cfg.vocab_size * cfg.d_model * sizeof(float));
    const double untied_head = in_place->weights().tied ? 0.0 : embed_all;
    const double dense = static_cast<double>(wb.total) - experts - embed_all - untied_head;
    const double expected = dense + untied_head + (in_place->weights().tied ? embed_all : 0.0) + embed_row +
                            experts * static_cast<double>(cfg.top_k) / static_cast<double>(cfg.n_experts);
    CHECK(bank_layers > 0);
    CHECK(wb.per_token == Approx(expected).epsilon(1e-12));
    CHECK(wb.per_token < static_cast<double>(wb.total));
  }
}

TEST_CASE("formats: a checkpoint in a format the backend lacks fails at load, naming the tensor", "[forward][format]") {
  const std::string dir = std::string(MOE_FIXTURES_DIR) + "/models/mixtral_bf16";
  try {
    (void)load_model<f32_only_backend>(dir);
    FAIL("bf16 checkpoint accepted by an f32-only backend");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kUnsupported);
    CHECK_THAT(e.what(), Catch::Contains("tensor ") && Catch::Contains("bf16") && Catch::Contains("f32-only"));
  }
  CHECK(load_model<backend::reference>(dir) != nullptr);  // the same folder on a backend with bf16
}
