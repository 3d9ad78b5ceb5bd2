// A model whose matrices are in a block format runs through the unchanged graph on the cpu and
// reference backends: the bundled model's weights quantized in memory (the matrices whose rows
// are whole blocks of the format; the others, as llama.cpp does for such shapes, in Q8_0 or
// left as stored) and synthetic models made directly in a block format.
#include "quant_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <list>
#include <map>
#include <nlohmann/json.hpp>

using namespace moe;
using quant_test::logits_of, quant_test::max_abs, quant_test::max_diff, quant_test::same_argmax;

namespace {

// The bundled checkpoint's tensors, with every matrix quantized to `dtype` where its rows are
// whole blocks (else Q8_0 where they are whole 32-blocks, else as stored). Vectors stay as stored.
class QuantizingSource final : public TensorSource {
 public:
  QuantizingSource(const io::TensorStore& store, DType dtype) : base_(store), dtype_(dtype) {}
  bool contains(std::string_view name) const override { return base_.contains(name); }
  std::optional<std::vector<index_t>> shape_of(std::string_view name) const override { return base_.shape_of(name); }
  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    const TensorRef t = base_.get(name, shape);
    if (shape.size() < 2) return t;
    const std::size_t cols = shape.back();
    const DType target = cols % format_block_elements(dtype_) == 0 ? dtype_ : cols % 32 == 0 ? DType::q8_0 : t.dtype;
    if (target == t.dtype) return t;
    std::size_t n = 1;
    for (const index_t e : shape) n *= e;
    std::vector<float> f(n);
    visit_dtype(t.dtype, [&](auto tag) {
      using T = decltype(tag);
      const T* p = reinterpret_cast<const T*>(t.data);
      for (std::size_t i = 0; i < n; ++i) f[i] = to_float(p[i]);
    });
    auto& bytes = owned_.emplace_back(format_row_bytes(target, n));
    visit_format<backend::reference>(target, [&](auto tag) {
      using Q = decltype(tag);
      if constexpr (moe::is_block_format_v<Q>) quant::quantize_row(f.data(), reinterpret_cast<Q*>(bytes.data()), n);
    });
    ++quantized_[target];
    return TensorRef{target, bytes.data()};
  }
  std::map<DType, int> quantized() const { return quantized_; }

 private:
  io::StoreTensorSource base_;
  DType dtype_;
  mutable std::list<std::vector<std::byte>> owned_;
  mutable std::map<DType, int> quantized_;
};

struct Loaded {
  std::shared_ptr<io::TensorStore> store;
  std::shared_ptr<QuantizingSource> source;
  ModelConfig config;
};

Loaded open_bundled(DType dtype) {
  const std::filesystem::path dir = std::filesystem::path(MOE_MODELS_DIR) / "shakespeare-moe";
  Loaded l;
  l.config = ModelConfig::from_json(io::read_json_file(dir / "config.json", 1 << 20, "config.json"), "config.json");
  l.store = std::make_shared<io::TensorStore>(io::TensorStore::open_folder(dir));
  l.source = std::make_shared<QuantizingSource>(*l.store, dtype);
  return l;
}

template <class Backend>
std::shared_ptr<const BasicModel<Backend>> build(const Loaded& l) {
  ModelConfig c = l.config;
  auto weights = model::bind_weights(c, *l.source);
  return std::make_shared<const BasicModel<Backend>>(std::move(c), std::move(weights),
                                                     std::shared_ptr<const void>(l.store));
}

const std::vector<std::int32_t> kPrompt{12, 45, 7, 99, 3, 150, 28, 61, 5, 200, 17, 88};

}  // namespace

TEST_CASE("quantized model: the bundled model in Q8_0, Q6_K, Q4_K and Q4_0 on cpu and reference", "[quant][model]") {
  const Loaded plain = open_bundled(DType::bf16);  // bf16 = as stored: nothing converted
  const auto base = logits_of(*build<backend::reference>(plain), kPrompt);
  CHECK(plain.source->quantized().empty());
  for (const DType dtype : {DType::q8_0, DType::q4_k, DType::q6_k, DType::q4_0}) {
    INFO(dtype_name(dtype));
    const Loaded l = open_bundled(dtype);
    const auto ref = logits_of(*build<backend::reference>(l), kPrompt);
    const auto cpu = logits_of(*build<backend::cpu>(l), kPrompt);
    CHECK(l.source->quantized().count(dtype) == 1);
    const double scale = max_abs(base);
    // cpu against the oracle on the same quantized weights: the cpu quantizes activations to int8
    // (relative error <= 1/254 per block) where the oracle keeps them in f32.
    INFO("max |cpu - ref| " << max_diff(cpu, ref) << ", max |ref - bf16| " << max_diff(ref, base) << ", scale "
                            << scale);
    const int n = static_cast<int>(kPrompt.size());
    for (index_t t = 0; t < cpu.view().extent(0); ++t)
      for (index_t v = 0; v < cpu.view().extent(1); ++v) REQUIRE(std::isfinite(cpu.view()(t, v)));
    // Greedy choices: the cpu (int8 activations) and the oracle (f32 activations) on the same
    // weights agree, and the quantized model agrees with the stored one (near ties aside).
    CHECK(same_argmax(cpu, ref) >= n - 2);
    const bool eight_bit = dtype == DType::q8_0 || dtype == DType::q6_k;
    CHECK(same_argmax(ref, base) >= (eight_bit ? n - 2 : n / 3));
    if (eight_bit) {
      // Logits: with 6-8 bit weights the routing (DeepSeek's group-limited top-k) stays the same,
      // so the differences stay of the order of the weights' and activations' rounding. (With
      // 4-bit weights some tokens take other experts, which moves their logits by O(1); only the
      // greedy choices are compared there.)
      CHECK(max_diff(cpu, ref) <= 0.05 * scale);
      CHECK(max_diff(ref, base) <= 0.1 * scale);
    }
  }
}

TEST_CASE("quantized model: a synthetic model made in a block format runs on cpu and reference", "[quant][model]") {
  const nlohmann::json config = {{"architectures", {"Qwen3MoeForCausalLM"}},
                                 {"vocab_size", 96},
                                 {"hidden_size", 256},
                                 {"intermediate_size", 512},
                                 {"moe_intermediate_size", 256},
                                 {"num_hidden_layers", 2},
                                 {"num_attention_heads", 4},
                                 {"num_key_value_heads", 2},
                                 {"head_dim", 64},
                                 {"num_experts", 4},
                                 {"num_experts_per_tok", 2},
                                 {"max_position_embeddings", 128},
                                 {"rms_norm_eps", 1e-6}};
  for (const DType dtype : {DType::q4_k, DType::iq4_xs, DType::q5_0}) {
    INFO(dtype_name(dtype));
    const auto cpu = model::make_synthetic_model<backend::cpu>(config, dtype);
    const auto ref = model::make_synthetic_model<backend::reference>(config, dtype);
    const std::vector<std::int32_t> ids{1, 5, 9, 90};
    const auto a = logits_of(*cpu, ids);
    const auto b = logits_of(*ref, ids);
    CHECK(max_diff(a, b) <= 0.05 * max_abs(b));
    CHECK(max_abs(b) > 0);
    // The weights really are in the block format (vectors in f32) and their bytes count as such:
    // at most 5.5 bits per weight against f32's 32.
    CHECK(cpu->weights().layers[0].attn.q.dtype == dtype);
    CHECK(cpu->weights().layers[0].input_norm.dtype == DType::f32);
    const auto f32 = model::make_synthetic_model<backend::cpu>(config, DType::f32);
    CHECK(weight_bytes(cpu->weights(), 2).total * 4 < weight_bytes(f32->weights(), 2).total);
  }
}
