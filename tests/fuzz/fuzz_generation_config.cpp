// libFuzzer target: generation_config.json text -> parse_json_text -> parse_generation_config must
// either succeed or throw moe::Error, and the sampler settings it yields must either be refused
// with moe::Error or sample ids inside the vocabulary. Never crash, hang or throw anything else
// (nothing here catches std::exception, so one escaping aborts the fuzzer).
#include <moe/io/json_file.hpp>
#include <moe/runtime/generate.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json j = moe::io::parse_json_text(text, "fuzz/generation_config.json");
    const moe::GenerationDefaults d = moe::parse_generation_config(j, "fuzz/generation_config.json");
    for (const std::int32_t id : d.eos_token_ids) {
      if (id < 0) {
        std::fprintf(stderr, "fuzz_generation_config: negative eos id %d accepted\n", id);
        std::abort();
      }
    }
    if (d.bos_token_id && *d.bos_token_id < 0) std::abort();
    // The sampler settings it asks for, on a small vocabulary: validated (moe::Error) or usable.
    moe::SamplerConfig sc = d.apply_to(moe::SamplerConfig{});
    sc.seed = size;
    moe::Sampler sampler(sc, 64);
    std::vector<float> logits(64);
    for (std::size_t i = 0; i < logits.size(); ++i) logits[i] = static_cast<float>((i * 37 + size) % 17) - 8.0f;
    for (int step = 0; step < 4; ++step) {
      const std::int32_t id = sampler.sample(logits);
      if (id < 0 || id >= 64) {
        std::fprintf(stderr, "fuzz_generation_config: sampled id %d outside [0, 64)\n", id);
        std::abort();
      }
      sampler.accept(id);
    }
  } catch (const moe::Error&) {
  }
  return 0;
}
