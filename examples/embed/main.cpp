// The smallest host application: include <moe/moe.hpp>, link moe::moe, load a Hugging Face
// folder, look at next-token logits, then stream a greedy continuation.
//     embed MODEL_DIR [PROMPT]
#include <moe/moe.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: embed MODEL_DIR [PROMPT]\n");
    return 2;
  }
  const std::string prompt = argc > 2 ? argv[2] : "ROMEO:";
  try {
    // Low level: a model, a tokenizer and a session that returns logits.
    std::shared_ptr<const moe::Model> model = moe::load_model(argv[1]);
    const moe::Tokenizer tokenizer = moe::Tokenizer::from_folder(argv[1]);
    moe::Session session(model, /*n_ctx=*/256);
    const std::vector<std::int32_t> ids = tokenizer.encode(prompt, /*add_special_tokens=*/true);
    std::span<const float> logits = session.prefill(ids);
    const auto best = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = session.decode(best);  // one more step; the cache now holds ids.size() + 1 tokens
    std::printf("prompt %zu tokens, argmax next token %d (\"%s\"), position %lld\n", ids.size(), best,
                tokenizer.decode(std::span<const std::int32_t>(&best, 1)).c_str(),
                static_cast<long long>(session.position()));

    // High level: text in, streamed text out.
    moe::Generator gen = moe::Generator::from_folder(argv[1]);
    moe::GenerationOptions options = gen.default_options();
    options.sampler.greedy = true;
    options.max_new_tokens = 24;
    const moe::GenerationResult r = gen.generate(prompt, options, [](std::int32_t, std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      return true;  // false stops generation
    });
    std::printf("\n[%zu tokens, %.0f tok/s, stopped: %s]\n", r.tokens.size(),
                r.timings.generation_tokens_per_second(), std::string(moe::to_string(r.stop_reason)).c_str());
    return r.tokens.empty() ? 1 : 0;
  } catch (const moe::Error& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
}
