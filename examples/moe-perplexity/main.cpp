// moe-perplexity: perplexity of a model over a text file, with the sliding-window definition of
// moe::perplexity (the same one the transformers reference in tests/fixtures/demo uses).
#include "common/backend.hpp"
#include "common/cli.hpp"
#include "common/expert_options.hpp"

#include <moe/io/load_quantized_model.hpp>
#include <moe/moe.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace {

const std::string kUsage = R"(usage: moe-perplexity --model DIR|FILE.gguf --text FILE [--window 256] [--stride 128] [--threads N]

  --model DIR     Hugging Face model folder (config.json, *.safetensors, tokenizer.json)
                  or a GGUF file (llama.cpp's model files; tokenizer from its metadata)
  --text FILE     UTF-8 text; encoded without special tokens
  --window W      tokens per forward pass (default 256)
  --stride S      distance between window starts, 1 <= S <= W (default 128)
  --threads N     OpenMP threads (default: all)
  --quiet         no progress line
  --backend NAME  cpu (default), reference or, in a CUDA build, cuda
  --quantize TYPE quantize the weights at load time (moe-quantize's types: q8_0, q4_k_m, ...)
)" + std::string(moe::cli::kExpertBudgetUsage) + R"(  --stats-json FILE  also write the perplexity and the routing statistics of the run as JSON

Scores every token after the first once: window k covers tokens [kS, kS+W) and scores the
positions not scored by earlier windows, each from the logits of the position before it.
Exit status: 0 on success, 2 on any error.
)";

constexpr auto kMaxWindow = static_cast<moe::index_t>(moe::limits::kMaxContext);

}  // namespace

int main(int argc, char** argv) {
  return moe::cli::run_tool("moe-perplexity", [&] {
    std::string model_dir, text_file, backend = "cpu";
    moe::PerplexityOptions options;
    bool quiet = false;
    std::string stats_json, quantize;
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      auto value = [&]() -> std::string_view {
        moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
        return argv[++i];
      };
      if (flag == "--help" || flag == "-h") {
        std::fputs(kUsage.c_str(), stdout);
        return 0;
      } else if (flag == "--model") model_dir = value();
      else if (flag == "--text") text_file = value();
      else if (flag == "--window") options.window = moe::cli::parse_number<moe::index_t>(flag, value(), 2, kMaxWindow);
      else if (flag == "--stride") options.stride = moe::cli::parse_number<moe::index_t>(flag, value(), 1, kMaxWindow);
      else if (flag == "--threads") moe::set_num_threads(moe::cli::parse_threads(flag, value()));
      else if (flag == "--quiet") quiet = true;
      else if (flag == "--backend") backend = value();
      else if (flag == "--stats-json") stats_json = value();
      else if (flag == "--quantize") quantize = value();
      else if (moe::cli::parse_expert_budget_flag(flag, value, options.expert_budget)) continue;
      else moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}' (see --help)", flag);
    }
    moe::require(!model_dir.empty() && !text_file.empty(), moe::ErrorCode::kInvalidArgument,
                 "--model DIR|FILE.gguf and --text FILE are required (see --help)");
    const std::string text = moe::cli::read_text_file(text_file);

    return moe::cli::with_backend(backend, [&](auto tag) {
    const auto model = quantize.empty() ? moe::load_model<decltype(tag)>(model_dir)
                                        : moe::load_model<decltype(tag)>(model_dir, moe::LoadOptions{quantize, nullptr});
    const auto tokenizer = moe::io::load_tokenizer(model_dir);
    const std::vector<std::int32_t> tokens = tokenizer.encode(text, /*add_special_tokens=*/false);
    options.expert_budget.validate(model->config().top_k, "moe-perplexity --expert-*");
    std::fputs(fmt::format("{}: {} bytes, {} tokens; window {}, stride {}, {} threads, experts: {}\n", text_file,
                           text.size(), tokens.size(), options.window, options.stride, moe::max_threads(),
                           moe::cli::describe_budget(options.expert_budget))
                   .c_str(),
               stderr);
    const auto r = moe::perplexity(*model, tokens, options, [&](moe::index_t done, moe::index_t total) {
      if (!quiet) std::fputs(fmt::format("\r{} / {} tokens", done, total).c_str(), stderr);
    });
    if (!quiet) std::fputs("\n", stderr);
    std::fputs(fmt::format("perplexity: {:.4f}\ntokens scored: {}\nmean NLL: {:.6f}\n"
                           "evaluated {} tokens in {} windows, {:.3f} s, {:.1f} tok/s\n",
                           r.perplexity, r.tokens_scored, r.nll_sum / static_cast<double>(r.tokens_scored),
                           r.tokens_evaluated, r.windows, r.seconds, r.tokens_per_second())
                   .c_str(),
               stdout);
    if (!stats_json.empty()) {
      nlohmann::json j;
      j["perplexity"] = r.perplexity;
      j["mean_nll"] = r.nll_sum / static_cast<double>(r.tokens_scored);
      j["tokens_scored"] = r.tokens_scored;
      j["tokens_per_second"] = r.tokens_per_second();
      j["expert_budget"] = {{"top_k", options.expert_budget.top_k}, {"threshold", options.expert_budget.threshold},
                            {"min_k", options.expert_budget.min_k}};
      j["experts"] = moe::expert_stats_json(moe::expert_stats(r.expert_counts));
      moe::cli::write_text(stats_json, j.dump(2) + "\n", "--stats-json");
    }
    return 0;
    });
  });
}
