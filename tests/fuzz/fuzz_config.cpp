// libFuzzer target: config.json text -> parse_json_text -> ModelConfig::from_json, and the same
// JSON's quantization_config -> io::parse_quantization_config, must each either produce a
// consistent result or throw moe::Error; never crash, hang, overflow the stack or throw anything
// else (an escaping std::exception aborts the fuzzer: nothing here catches it).
#include <moe/io/checkpoint_quantization.hpp>
#include <moe/io/json_file.hpp>
#include <moe/model/config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

// Invariants of an accepted configuration that the rest of the library relies on.
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_config: accepted config violates: %s\n", what);
    std::abort();
  }
}

}  // namespace

// The checkpoint quantization settings of an accepted quantization_config.
void check_quantization(const nlohmann::json& j) {
  try {
    const moe::io::QuantizationConfig q = moe::io::parse_quantization_config(j, "fuzz/config.json");
    const auto i64 = [](moe::index_t v) { return static_cast<std::int64_t>(v); };
    check(i64(q.block_rows) > 0 && i64(q.block_rows) <= (1 << 20) && i64(q.block_cols) > 0 &&
              i64(q.block_cols) <= (1 << 20),
          "0 < weight_block_size <= 2^20");
    check(q.method != moe::io::QuantMethod::kNone ||
              !j.is_object() || !j.contains("quantization_config") || j["quantization_config"].is_null(),
          "a quantization_config object names its method");
  } catch (const moe::Error&) {
  }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json j = moe::io::parse_json_text(text, "fuzz/config.json");
    check_quantization(j);
    const moe::ModelConfig c = moe::ModelConfig::from_json(j, "fuzz/config.json");
    check(c.spec != nullptr, "spec set");
    // index_t is unsigned: compare in signed 64-bit so that a wrapped value shows as huge.
    const auto i64 = [](moe::index_t v) { return static_cast<std::int64_t>(v); };
    check(i64(c.n_layers) > 0 && i64(c.n_layers) <= moe::limits::kMaxLayers, "0 < n_layers <= kMaxLayers");
    check(i64(c.d_model) > 0 && i64(c.d_model) <= moe::limits::kMaxDimension, "0 < d_model <= kMaxDimension");
    check(i64(c.vocab_size) > 0 && i64(c.vocab_size) <= moe::limits::kMaxDimension, "0 < vocab_size <= kMaxDimension");
    check(c.n_heads > 0 && c.n_kv_heads > 0 && c.n_heads % c.n_kv_heads == 0, "n_kv_heads divides n_heads");
    check(c.moe_layer.size() == c.n_layers, "moe_layer has one entry per layer");
    check(c.sliding_window.size() == c.n_layers, "sliding_window has one entry per layer");
    check(i64(c.n_experts) >= 0 && i64(c.n_experts) <= moe::limits::kMaxExperts, "0 <= n_experts <= kMaxExperts");
    check(i64(c.top_k) >= 0 && i64(c.top_k) <= moe::limits::kMaxTopK, "0 <= top_k <= kMaxTopK");
    check(c.n_experts == 0 || (c.top_k > 0 && c.top_k <= c.n_experts), "0 < top_k <= n_experts");
    for (const moe::index_t w : c.sliding_window) check(i64(w) >= 0, "sliding windows are >= 0");
  } catch (const moe::Error&) {
  }
  return 0;
}
