// LoRA adapters (io/lora_adapter.hpp, model/lora.hpp, io/load_lora_model.hpp) on the committed
// qwen2_moe_sparse_step fixture (dense MLP layers, a shared expert and a routed-expert layer):
// the merged weights against a naive W + scale·B·A, a zero adapter against the base, and each kind
// of bad adapter as a typed error naming the tensor; the unmerged mode (several adapters resident,
// each sequence picking one or none) against the merged mode and the base model. The PEFT references themselves are checked by
// moe-conformance (conformance_lora_*, tests/fixtures/lora/).
#include <catch2/catch.hpp>

#include <moe/io/json_file.hpp>
#include <moe/io/load_lora_model.hpp>
#include <moe/io/load_model.hpp>
#include <moe/io/lora_adapter.hpp>
#include <moe/io/safetensors_writer.hpp>
#include <moe/model/lora.hpp>
#include <moe/runtime/batch.hpp>
#include <moe/runtime/generate.hpp>
#include <moe/runtime/session.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

using namespace moe;
namespace fs = std::filesystem;

namespace {

const fs::path kBase = fs::path(MOE_FIXTURES_DIR) / "models" / "qwen2_moe_sparse_step";
constexpr index_t kD = 64, kE = 4, kF = 24, kDense = 96;  // the fixture's d_model, experts, d_ff_expert, d_ff

struct FakeTensor {
  std::string name;
  std::vector<index_t> shape;
  std::vector<float> data;
};

FakeTensor random_tensor(const std::string& name, index_t rows, index_t cols, std::mt19937& rng, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  FakeTensor t{name, {rows, cols}, std::vector<float>(static_cast<std::size_t>(rows * cols))};
  for (auto& x : t.data) x = nd(rng);
  return t;
}

fs::path write_adapter(const std::string& tag, const nlohmann::json& config, const std::vector<FakeTensor>& tensors) {
  const fs::path dir = fs::temp_directory_path() / ("moe_lora_test_" + std::to_string(::getpid()) + "_" + tag);
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "adapter_config.json") << config.dump(1);
  std::vector<io::SafetensorsTensor> st;
  for (const auto& t : tensors) {
    st.push_back(io::SafetensorsTensor{
        t.name, DType::f32, t.shape,
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(t.data.data()), t.data.size() * sizeof(float)),
        {}});
  }
  io::write_safetensors(dir / "adapter_model.safetensors", st);
  return dir;
}

nlohmann::json lora_config(int r, float alpha, bool rslora, nlohmann::json target_parameters = nullptr) {
  nlohmann::json j = {{"peft_type", "LORA"}, {"r", r}, {"lora_alpha", alpha}, {"use_rslora", rslora},
                      {"target_modules", {"q_proj"}}, {"base_model_name_or_path", "qwen2_moe_sparse_step"}};
  if (!target_parameters.is_null()) j["target_parameters"] = target_parameters;
  return j;
}

std::string key(const std::string& module, const char* ab) { return "base_model.model." + module + "." + ab + ".weight"; }

// The standard test adapter: q_proj of layer 0 (dense), the shared expert's up_proj and both fused
// routed-expert tensors of layer 3 (nested ParamWrappers).
std::vector<FakeTensor> standard_tensors(int r, std::mt19937& rng) {
  std::vector<FakeTensor> t;
  t.push_back(random_tensor(key("model.layers.0.self_attn.q_proj", "lora_A"), r, kD, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.0.self_attn.q_proj", "lora_B"), kD, r, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.3.mlp.shared_expert.up_proj", "lora_A"), r, kD, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.3.mlp.shared_expert.up_proj", "lora_B"), 40, r, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.3.mlp.experts.base_layer", "lora_A"), r * kE, kD, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.3.mlp.experts.base_layer", "lora_B"), 2 * kF, r * kE, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.3.mlp.experts", "lora_A"), r * kE, kF, rng, 0.1f));
  t.push_back(random_tensor(key("model.layers.3.mlp.experts", "lora_B"), kD, r * kE, rng, 0.1f));
  return t;
}

float element(const layers::WeightMatrix<>& m, index_t r, index_t c) {
  return visit_dtype(m.dtype, [&](auto tag) -> float {
    using T = decltype(tag);
    const T x = reinterpret_cast<const T*>(m.data)[r * m.row_stride + c];
    if constexpr (std::is_same_v<T, float>) {
      return x;
    } else {
      return to_float(x);
    }
  });
}

// Expert e's naive update at [o, i]: scale · Σ_j B[o, j·E + e] · A[e·r + j, i] (PEFT's layout).
double naive_delta(const FakeTensor& a, const FakeTensor& b, index_t r, index_t n_experts, index_t e, index_t o,
                   index_t i, double scale) {
  const index_t in = a.shape[1], cols = b.shape[1];
  double s = 0;
  for (index_t j = 0; j < r; ++j) s += double(b.data[o * cols + j * n_experts + e]) * a.data[(e * r + j) * in + i];
  return scale * s;
}

template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    FAIL("no error; expected " << to_string(code) << " mentioning " << needle);
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("lora: adapter parsing finds the nested expert parameters and the scales", "[lora]") {
  std::mt19937 rng(7);
  const auto dir = write_adapter("parse", lora_config(4, 8, true, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 standard_tensors(4, rng));
  const io::LoraAdapter ad = io::load_lora_adapter(dir, "med");
  CHECK(ad.name == "med");
  REQUIRE(ad.targets.size() == 4);
  std::map<std::string, const io::LoraTarget*> by;
  for (const auto& t : ad.targets) by[t.site()] = &t;
  REQUIRE(by.count("model.layers.3.mlp.experts.gate_up_proj") == 1);
  REQUIRE(by.count("model.layers.3.mlp.experts.down_proj") == 1);
  const auto* gu = by["model.layers.3.mlp.experts.gate_up_proj"];
  CHECK(gu->n_experts == kE);
  CHECK(gu->in == kD);
  CHECK(gu->out == 2 * kF);
  CHECK(by["model.layers.3.mlp.experts.down_proj"]->in == kF);
  CHECK(gu->scale == Approx(8.0 / 2.0));  // rslora: alpha / sqrt(r)
  fs::remove_all(dir);
}

TEST_CASE("lora: merged weights equal W + scale * B * A", "[lora]") {
  std::mt19937 rng(11);
  const auto tensors = standard_tensors(4, rng);
  const auto dir = write_adapter("merge", lora_config(4, 6, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 tensors);
  const io::LoraAdapter ad = io::load_lora_adapter(dir);
  const auto base = load_model<backend::reference>(kBase);
  const auto merged = load_model_with_lora<backend::reference>(kBase, std::span<const io::LoraAdapter>(&ad, 1));
  const double scale = 6.0 / 4.0;
  const auto& bw = base->weights();
  const auto& mw = merged->weights();
  double worst = 0;
  const auto compare = [&](const layers::WeightMatrix<>& b, const layers::WeightMatrix<>& m, const FakeTensor& A,
                           const FakeTensor& B, index_t n_experts, index_t e, index_t row0) {
    REQUIRE(m.rows == b.rows);
    REQUIRE(m.cols == b.cols);
    for (index_t o = 0; o < b.rows; ++o) {
      for (index_t i = 0; i < b.cols; ++i) {
        const double want = element(b, o, i) + naive_delta(A, B, 4, n_experts, e, row0 + o, i, scale);
        worst = std::max(worst, std::fabs(want - element(m, o, i)));
      }
    }
  };
  compare(bw.layers[0].attn.q, mw.layers[0].attn.q, tensors[0], tensors[1], 1, 0, 0);
  compare(bw.layers[3].moe_weights.shared.up, mw.layers[3].moe_weights.shared.up, tensors[2], tensors[3], 1, 0, 0);
  const auto& be = bw.layers[3].moe_weights.experts;
  const auto& me = mw.layers[3].moe_weights.experts;
  REQUIRE(be.layout == layers::ExpertLayout::kSeparate);
  for (index_t e = 0; e < kE; ++e) {
    compare(be.gate[e], me.gate[e], tensors[4], tensors[5], kE, e, 0);
    compare(be.up[e], me.up[e], tensors[4], tensors[5], kE, e, kF);
    compare(be.down[e], me.down[e], tensors[6], tensors[7], kE, e, 0);
  }
  CHECK(worst < 1e-5);
  // Untouched weights stay in place in the mapping; touched ones move to private f32 copies.
  const auto [w, storage] = model::merge_lora(bw, nullptr, std::span<const io::LoraAdapter>(&ad, 1));
  CHECK(w.layers[0].attn.k.data == bw.layers[0].attn.k.data);
  CHECK(w.layers[1].mlp.gate.data == bw.layers[1].mlp.gate.data);
  CHECK(w.layers[0].attn.q.data != bw.layers[0].attn.q.data);
  CHECK(w.layers[0].attn.q.dtype == DType::f32);
  fs::remove_all(dir);
}

TEST_CASE("lora: an adapter with B = 0 leaves the logits unchanged", "[lora]") {
  std::mt19937 rng(3);
  auto tensors = standard_tensors(2, rng);
  for (auto& t : tensors) {
    if (t.name.find("lora_B") != std::string::npos) std::fill(t.data.begin(), t.data.end(), 0.0f);
  }
  const auto dir = write_adapter("zero", lora_config(2, 16, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 tensors);
  const io::LoraAdapter ad = io::load_lora_adapter(dir);
  const auto base = load_model(kBase);
  const auto merged = load_model_with_lora(kBase, std::span<const io::LoraAdapter>(&ad, 1));
  const std::vector<std::int32_t> ids{5, 17, 200, 3, 99, 42, 7};
  const index_t n = ids.size(), V = base->config().vocab_size;
  Tensor<float, 2> a({n, V}), b({n, V});
  for (auto [m, out] : {std::pair{base.get(), &a}, std::pair{merged.get(), &b}}) {
    auto cache = m->make_cache(n);
    auto ws = m->make_workspace(n);
    const Model::SequenceChunk ch{&cache, ids};
    m->forward({&ch, 1}, ws, out->view(), true);
  }
  float diff = 0;
  for (index_t t = 0; t < n; ++t) {
    for (index_t v = 0; v < V; ++v) diff = std::max(diff, std::fabs(a(t, v) - b(t, v)));
  }
  CHECK(diff == 0.0f);
  fs::remove_all(dir);
}

TEST_CASE("lora: bad adapters are typed errors naming the tensor", "[lora]") {
  const nlohmann::json cfg = lora_config(4, 8, false);
  std::mt19937 rng(5);
  const auto base = [] { return load_model<backend::reference>(kBase); };
  const auto merge = [&](const fs::path& dir) {
    const io::LoraAdapter ad = io::load_lora_adapter(dir);
    (void)load_model_with_lora<backend::reference>(kBase, std::span<const io::LoraAdapter>(&ad, 1));
  };
  (void)base;
  const std::string q = "model.layers.0.self_attn.q_proj";

  SECTION("rank mismatch") {
    const auto dir = write_adapter("rank", cfg, {random_tensor(key(q, "lora_A"), 5, kD, rng, 0.1f),
                                                 random_tensor(key(q, "lora_B"), kD, 5, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kShapeMismatch, key(q, "lora_A"));
    fs::remove_all(dir);
  }
  SECTION("A and B disagree") {
    const auto dir = write_adapter("ab", cfg, {random_tensor(key(q, "lora_A"), 4, kD, rng, 0.1f),
                                               random_tensor(key(q, "lora_B"), kD, 8, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kShapeMismatch, key(q, "lora_B"));
    fs::remove_all(dir);
  }
  SECTION("missing B") {
    const auto dir = write_adapter("missing", cfg, {random_tensor(key(q, "lora_A"), 4, kD, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kMissingTensor, "q_proj.lora_A.weight");
    fs::remove_all(dir);
  }
  SECTION("extra tensor") {
    const auto dir = write_adapter("extra", cfg, {random_tensor(key(q, "lora_A"), 4, kD, rng, 0.1f),
                                                  random_tensor(key(q, "lora_B"), kD, 4, rng, 0.1f),
                                                  random_tensor(key(q, "lora_magnitude_vector"), 1, kD, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kFormat, "lora_magnitude_vector");
    fs::remove_all(dir);
  }
  SECTION("target module that does not exist") {
    const std::string m = "model.layers.9.self_attn.q_proj";
    const auto dir = write_adapter("unknown", cfg, {random_tensor(key(m, "lora_A"), 4, kD, rng, 0.1f),
                                                    random_tensor(key(m, "lora_B"), kD, 4, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kMissingTensor, key(m, "lora_A"));
    fs::remove_all(dir);
  }
  SECTION("dense MLP target on a MoE layer") {
    const std::string m = "model.layers.3.mlp.gate_proj";
    const auto dir = write_adapter("moe_dense", cfg, {random_tensor(key(m, "lora_A"), 4, kD, rng, 0.1f),
                                                      random_tensor(key(m, "lora_B"), kDense, 4, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kMissingTensor, key(m, "lora_A"));
    fs::remove_all(dir);
  }
  SECTION("base model mismatch: input features") {
    const auto dir = write_adapter("base_in", cfg, {random_tensor(key(q, "lora_A"), 4, 48, rng, 0.1f),
                                                    random_tensor(key(q, "lora_B"), kD, 4, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kShapeMismatch, key(q, "lora_A"));
    fs::remove_all(dir);
  }
  SECTION("base model mismatch: expert count") {
    const std::string m = "model.layers.3.mlp.experts";
    const auto dir = write_adapter("experts", lora_config(4, 8, false, {"mlp.experts.down_proj"}),
                                   {random_tensor(key(m, "lora_A"), 4 * 8, kF, rng, 0.1f),
                                    random_tensor(key(m, "lora_B"), kD, 4 * 8, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kShapeMismatch, key(m, "lora_A"));
    fs::remove_all(dir);
  }
  SECTION("unsupported variants") {
    nlohmann::json dora = cfg;
    dora["use_dora"] = true;
    const auto dir = write_adapter("dora", dora, {random_tensor(key(q, "lora_A"), 4, kD, rng, 0.1f),
                                                  random_tensor(key(q, "lora_B"), kD, 4, rng, 0.1f)});
    expect_error([&] { merge(dir); }, ErrorCode::kUnsupported, "use_dora");
    fs::remove_all(dir);
  }
  SECTION("missing files") {
    expect_error([&] { (void)io::load_lora_adapter(fs::temp_directory_path() / "moe_lora_no_such_dir"); },
                 ErrorCode::kIo, "adapter_config.json");
  }
}

TEST_CASE("lora: the PEFT fixtures' tensors map to the modules and parameters PEFT wrapped", "[lora]") {
  // tools/make_lora_fixtures.py records, per saved tensor, the module (and parameter) of the LoRA
  // layer that owned it in the PEFT model, and each target's r / alpha / scale.
  const fs::path root = fs::path(MOE_FIXTURES_DIR) / "lora";
  if (!fs::is_directory(root)) return;
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(root)) {
    if (!fs::is_regular_file(entry.path() / "adapter_config.json")) continue;
    ++cases;
    INFO(entry.path().filename().string());
    const io::LoraAdapter ad = io::load_lora_adapter(entry.path());
    const nlohmann::json ref = io::read_json_file(entry.path() / "reference.json", std::size_t{1} << 22, "reference.json");
    std::map<std::string, const io::LoraTarget*> by_tensor;
    for (const auto& t : ad.targets) by_tensor[t.tensor_a] = &t, by_tensor[t.tensor_b] = &t;
    CHECK(by_tensor.size() == ref.at("targets").size());
    for (const auto& [name, info] : ref.at("targets").items()) {
      INFO(name);
      REQUIRE(by_tensor.count(name) == 1);
      const io::LoraTarget& t = *by_tensor[name];
      CHECK(t.module == info.at("module").get<std::string>());
      CHECK(t.parameter == info.value("parameter", std::string()));
      CHECK(t.n_experts == info.value("num_experts", index_t{1}));
    }
    for (const auto& [site, s] : ref.at("scaling").items()) {
      INFO(site);
      bool found = false;
      for (const auto& t : ad.targets) {
        if (t.site() != site) continue;
        found = true;
        CHECK(t.rank == s.at("r").get<index_t>());
        CHECK(t.scale == Approx(s.at("scale").get<double>()));
      }
      CHECK(found);
    }
  }
  CHECK(cases >= 2);
}

namespace {

// Every position's logits of `ids` run alone through m with adapter `adapter` (-1: none).
template <class M>
Tensor<float, 2> logits_of(const M& m, const std::vector<std::int32_t>& ids, std::int32_t adapter = -1) {
  const index_t n = ids.size(), V = m.config().vocab_size;
  Tensor<float, 2> out({n, V});
  auto cache = m.make_cache(n);
  auto ws = m.make_workspace(n);
  typename M::SequenceChunk ch{&cache, ids};
  ch.adapter = adapter;
  m.forward({&ch, 1}, ws, out.view(), true);
  return out;
}

// max |a - b| / max(1, max |a|): the relative difference of two logit tables.
double relative_diff(const Tensor<float, 2>& a, const Tensor<float, 2>& b, index_t row_a = 0, index_t row_b = 0,
                     index_t rows = 0) {
  if (rows == 0) rows = a.extent(0);
  double diff = 0, scale = 1;
  for (index_t t = 0; t < rows; ++t) {
    for (index_t v = 0; v < a.extent(1); ++v) {
      diff = std::max(diff, double(std::fabs(a(row_a + t, v) - b(row_b + t, v))));
      scale = std::max(scale, double(std::fabs(a(row_a + t, v))));
    }
  }
  return diff / scale;
}

bool identical(const Tensor<float, 2>& a, const Tensor<float, 2>& b) {
  if (a.extent(0) != b.extent(0) || a.extent(1) != b.extent(1)) return false;
  return std::memcmp(a.data(), b.data(), a.extent(0) * a.extent(1) * sizeof(float)) == 0;
}

// The adapters the unmerged tests keep resident: two PEFT fixtures (attention + routed experts;
// dense and shared-expert MLPs with rslora) and the synthetic standard adapter.
std::vector<io::LoraAdapter> resident_adapters(const fs::path& synthetic) {
  const fs::path root = fs::path(MOE_FIXTURES_DIR) / "lora";
  std::vector<io::LoraAdapter> ads;
  ads.push_back(io::load_lora_adapter(root / "qwen2_moe_sparse_step_lora_attn_experts", "attn_experts"));
  ads.push_back(io::load_lora_adapter(root / "qwen2_moe_sparse_step_lora_mlp_rslora", "mlp_rslora"));
  ads.push_back(io::load_lora_adapter(synthetic, "synthetic"));
  return ads;
}

const std::vector<std::int32_t> kIdsA{5, 17, 200, 3, 99, 42, 7, 120, 64};
const std::vector<std::int32_t> kIdsB{11, 250, 8, 31, 77};
const std::vector<std::int32_t> kIdsC{2, 150, 19, 91, 33, 4};

template <class Be>
void check_unmerged_matches_merged() {
  std::mt19937 rng(23);
  const auto dir = write_adapter("unmerged", lora_config(4, 6, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 standard_tensors(4, rng));
  const auto ads = resident_adapters(dir);
  const auto base = load_model<Be>(kBase);
  const auto multi = load_model_with_adapters<Be>(kBase, ads);
  REQUIRE(multi->adapter_names() == std::vector<std::string>{"attn_experts", "mlp_rslora", "synthetic"});
  // Adapter "none": exactly the base model (the pass runs the base graph).
  const auto base_a = logits_of(*base, kIdsA);
  CHECK(identical(logits_of(*multi, kIdsA), base_a));
  for (std::size_t a = 0; a < ads.size(); ++a) {
    INFO("adapter " << ads[a].name);
    const auto merged = load_model_with_lora<Be>(kBase, std::span<const io::LoraAdapter>(&ads[a], 1));
    const auto want = logits_of(*merged, kIdsA);
    const auto got = logits_of(*multi, kIdsA, multi->adapter_index(ads[a].name));
    const double rel = relative_diff(want, got);
    INFO("relative difference " << rel);
    CHECK(rel < 1e-4);
    CHECK(relative_diff(want, base_a) > 1e-3);  // the adapter does change the logits
  }
  fs::remove_all(dir);
}

}  // namespace

TEST_CASE("lora unmerged: each adapter equals the merged mode; none equals the base exactly", "[lora]") {
  SECTION("reference") { check_unmerged_matches_merged<backend::reference>(); }
  SECTION("cpu") { check_unmerged_matches_merged<backend::cpu>(); }
}

TEST_CASE("lora unmerged: one pass mixing adapters and no adapter equals each sequence alone", "[lora]") {
  std::mt19937 rng(29);
  const auto dir = write_adapter("mixed", lora_config(4, 6, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 standard_tensors(4, rng));
  const auto ads = resident_adapters(dir);
  const auto multi = load_model_with_adapters(kBase, ads);
  const index_t V = multi->config().vocab_size;
  const std::vector<const std::vector<std::int32_t>*> ids{&kIdsA, &kIdsB, &kIdsC, &kIdsB};
  const std::vector<std::int32_t> pick{0, -1, 1, 2};
  index_t total = 0;
  for (const auto* v : ids) total += v->size();
  for (const bool all_positions : {true, false}) {
    INFO("all_positions " << all_positions);
    std::vector<Model::Cache> caches;
    for (const auto* v : ids) caches.push_back(multi->make_cache(v->size()));
    std::vector<Model::SequenceChunk> chunks;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      Model::SequenceChunk ch{&caches[i], *ids[i]};
      ch.adapter = pick[i];
      chunks.push_back(ch);
    }
    auto ws = multi->make_workspace(total);
    Tensor<float, 2> out({all_positions ? total : ids.size(), V});
    multi->forward(chunks, ws, out.view(), all_positions);
    index_t row = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      INFO("sequence " << i << " adapter " << pick[i]);
      const auto alone = logits_of(*multi, *ids[i], pick[i]);
      const index_t m = ids[i]->size();
      if (all_positions) {
        CHECK(relative_diff(alone, out, 0, row, m) < 1e-5);
        row += m;
      } else {
        CHECK(relative_diff(alone, out, m - 1, i, 1) < 1e-5);
      }
    }
  }
  fs::remove_all(dir);
}

TEST_CASE("lora unmerged: bad adapter picks and names are typed errors", "[lora]") {
  std::mt19937 rng(31);
  const auto dir = write_adapter("names", lora_config(4, 6, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 standard_tensors(4, rng));
  auto ads = resident_adapters(dir);
  const auto multi = load_model_with_adapters(kBase, ads);
  expect_error([&] { (void)multi->adapter_index("legal"); }, ErrorCode::kInvalidArgument,
               "'legal' (loaded: attn_experts, mlp_rslora, synthetic)");
  expect_error([&] { (void)logits_of(*multi, kIdsB, 3); }, ErrorCode::kInvalidArgument, "adapter 3");
  const auto base = load_model(kBase);
  expect_error([&] { (void)logits_of(*base, kIdsB, 0); }, ErrorCode::kInvalidArgument, "0 resident");
  ads[2].name = "attn_experts";
  expect_error([&] { (void)load_model_with_adapters(kBase, ads); }, ErrorCode::kInvalidArgument,
               "both named 'attn_experts'");
  fs::remove_all(dir);
}

namespace {

GenerationOptions greedy(index_t n, std::optional<std::string> adapter) {
  GenerationOptions o;
  o.sampler.greedy = true;
  o.max_new_tokens = n;
  o.ignore_eos = true;
  o.adapter = std::move(adapter);
  return o;
}

std::shared_ptr<const Tokenizer> byte_tokenizer() {
  return std::make_shared<const Tokenizer>(
      Tokenizer::from_file(fs::path(MOE_FIXTURES_DIR) / "tokenizers" / "bytelevel_gpt2" / "tokenizer.json"));
}

}  // namespace

TEST_CASE("lora runtime: a Session's adapter gives the merged model's logits and greedy tokens", "[lora]") {
  std::mt19937 rng(37);
  const auto dir = write_adapter("session", lora_config(4, 6, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 standard_tensors(4, rng));
  const auto ads = resident_adapters(dir);
  const auto multi = load_model_with_adapters(kBase, ads);
  const auto tok = byte_tokenizer();
  for (const auto& ad : ads) {
    INFO("adapter " << ad.name);
    const auto merged = load_model_with_lora(kBase, std::span<const io::LoraAdapter>(&ad, 1));
    Session a(multi, 64), b(merged, 64);
    a.set_adapter(ad.name);
    CHECK(a.adapter() == ad.name);
    const auto la = a.prefill(kIdsA);
    const auto lb = b.prefill(kIdsA);
    double diff = 0, scale = 1;
    for (std::size_t v = 0; v < la.size(); ++v) {
      diff = std::max(diff, double(std::fabs(la[v] - lb[v])));
      scale = std::max(scale, double(std::fabs(lb[v])));
    }
    CHECK(diff / scale < 1e-4);
    Session c(multi, 64), d(merged, 64);
    const auto ga = generate(c, *tok, kIdsB, greedy(10, ad.name)).tokens;
    CHECK(c.adapter().empty());  // the generation's adapter does not stick to the session
    const auto gb = generate(d, *tok, kIdsB, greedy(10, std::nullopt)).tokens;
    CHECK(ga == gb);
  }
  Session s(multi, 64);
  expect_error([&] { s.set_adapter("legal"); }, ErrorCode::kInvalidArgument, "loaded: attn_experts, mlp_rslora, synthetic");
  expect_error([&] { (void)generate(s, *tok, kIdsB, greedy(2, "legal")); }, ErrorCode::kInvalidArgument, "'legal'");
  fs::remove_all(dir);
}

TEST_CASE("lora runtime: a batch mixing two adapters and none equals each sequence alone", "[lora]") {
  std::mt19937 rng(41);
  const auto dir = write_adapter("batch", lora_config(4, 6, false, {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}),
                                 standard_tensors(4, rng));
  const auto ads = resident_adapters(dir);
  const auto multi = load_model_with_adapters(kBase, ads);
  const auto tok = byte_tokenizer();
  const std::vector<std::vector<std::int32_t>> prompts{kIdsA, kIdsB, kIdsC, kIdsB, kIdsA};
  const std::vector<std::optional<std::string>> pick{"attn_experts", std::nullopt, "mlp_rslora", "attn_experts", ""};
  constexpr index_t kNew = 10;
  BatchOptions bo;
  bo.max_sequences = 3;  // later requests join while others decode
  bo.n_ctx = 64;
  bo.max_batch_tokens = 8;  // prompts split over passes shared with decode tokens
  BatchGenerator batch(multi, tok, bo);
  std::vector<RequestId> ids;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    BatchRequest r;
    r.prompt = prompts[i];
    r.options = greedy(kNew, pick[i]);
    ids.push_back(batch.submit(std::move(r)));
  }
  std::map<RequestId, std::vector<std::int32_t>> got;
  while (batch.step()) {
    for (auto& [id, result] : batch.take_finished()) got[id] = result.tokens;
  }
  for (auto& [id, result] : batch.take_finished()) got[id] = result.tokens;
  REQUIRE(got.size() == prompts.size());
  const auto base = load_model(kBase);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("request " << i << " adapter " << pick[i].value_or("(unset)"));
    Session alone(multi, 64);
    const auto want = generate(alone, *tok, prompts[i], greedy(kNew, pick[i])).tokens;
    CHECK(got[ids[i]] == want);
    if (!pick[i] || pick[i]->empty()) {
      Session b(base, 64);
      CHECK(generate(b, *tok, prompts[i], greedy(kNew, std::nullopt)).tokens == want);
    }
  }
  // An unknown name: a typed error naming it and the loaded ones; nothing is queued.
  BatchRequest bad;
  bad.prompt = kIdsA;
  bad.options = greedy(2, "legal");
  expect_error([&] { (void)batch.submit(std::move(bad)); }, ErrorCode::kInvalidArgument,
               "unknown LoRA adapter 'legal' (loaded: attn_experts, mlp_rslora, synthetic)");
  CHECK(batch.queued() == 0);
  fs::remove_all(dir);
}
