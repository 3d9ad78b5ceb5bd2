// Decode steps allocate nothing: every activation lives in the Workspace. Counted with a
// replacement of the global operator new (this test is its own executable for that reason).
#include <catch2/catch.hpp>

#include <moe/model/model.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};
}  // namespace

// The replacements pair malloc with free; GCC cannot see that they replace each other.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using namespace moe;

namespace {

// A tiny dense-weight source: every tensor the binder asks for is served from one zero-padded
// random pool (values only need to be finite here).
class PoolSource final : public TensorSource {
 public:
  PoolSource() : pool_(1 << 20) {
    std::uint32_t x = 12345;
    for (auto& v : pool_) {
      x = x * 1664525u + 1013904223u;
      v = (static_cast<float>(x >> 8) / static_cast<float>(1 << 24) - 0.5f) * 0.2f + 0.0f;
    }
  }
  bool contains(std::string_view name) const override {
    return name.find("_blocks") == std::string_view::npos && name.find("experts.gate_up_proj") == std::string_view::npos;
  }
  std::optional<std::vector<index_t>> shape_of(std::string_view) const override { return std::nullopt; }
  TensorRef get(std::string_view, std::span<const index_t> shape) const override {
    index_t n = 1;
    for (auto s : shape) n *= s;
    REQUIRE(n <= pool_.size());
    return TensorRef{DType::f32, reinterpret_cast<const std::byte*>(pool_.data())};
  }

 private:
  std::vector<float> pool_;
};

}  // namespace

TEST_CASE("decode steps do not allocate", "[forward][alloc]") {
  const nlohmann::json configs[] = {
      {{"architectures", {"MixtralForCausalLM"}}, {"vocab_size", 64}, {"hidden_size", 32}, {"num_hidden_layers", 2},
       {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"intermediate_size", 48}, {"num_local_experts", 4},
       {"num_experts_per_tok", 2}},
      {{"architectures", {"DeepseekV3ForCausalLM"}}, {"vocab_size", 64}, {"hidden_size", 32},
       {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"intermediate_size", 48},
       {"moe_intermediate_size", 16}, {"n_routed_experts", 8}, {"num_experts_per_tok", 2}, {"n_group", 2},
       {"topk_group", 1}, {"q_lora_rank", 16}, {"kv_lora_rank", 16}, {"qk_nope_head_dim", 8},
       {"qk_rope_head_dim", 8}, {"v_head_dim", 8}, {"first_k_dense_replace", 1}}};
  for (const auto& j : configs) {
    INFO(j["architectures"][0].get<std::string>());
    auto src = std::make_shared<PoolSource>();
    auto cfg = ModelConfig::from_json(j, "test");
    auto w = model::bind_weights(cfg, *src);
    const Model model(std::move(cfg), std::move(w), src);
    KvCache cache = model.make_cache(64);
    Workspace ws = model.make_workspace(8);
    Tensor<float, 2> logits({1, 64});
    const std::vector<std::int32_t> prompt{1, 2, 3, 4, 5};
    Model::SequenceChunk p{&cache, prompt};
    model.forward({&p, 1}, ws, logits.view(), false);
    std::int32_t token = 7;
    Model::SequenceChunk step{&cache, std::span<const std::int32_t>(&token, 1)};
    model.forward({&step, 1}, ws, logits.view(), false);  // warm-up (thread pool start)
    g_allocations = 0;
    g_counting = true;
    for (int i = 0; i < 5; ++i) {
      token = (token * 5 + 1) % 64;
      model.forward({&step, 1}, ws, logits.view(), false);
    }
    g_counting = false;
    CHECK(g_allocations.load() == 0);
    CHECK(cache.size() == 11);
  }
}
