// moe-prune IN OUT --keep N | --keep-fraction F --calibration FILE: static expert pruning. Measures
// routing on a calibration text (the expert telemetry of a perplexity run), keeps each MoE layer's
// most-used experts (io/expert_prune.hpp), and writes a smaller Hugging Face folder, or a GGUF
// when OUT ends in .gguf (moe-quantize's writer, --type). --eval FILE reports the held-out
// perplexity and speed before and after.
#include "common/cli.hpp"

#include <moe/io/expert_prune.hpp>
#include <moe/io/gguf_export.hpp>
#include <moe/moe.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

namespace {

const std::string kUsage = R"(usage: moe-prune IN OUT (--keep N | --keep-fraction F) --calibration FILE [options]

  IN                 Hugging Face model folder (config.json, *.safetensors, tokenizer.json)
  OUT                the folder to write, or FILE.gguf (written as moe-quantize writes it)
  --keep N           routed experts every MoE layer keeps (num_experts_per_tok <= N <= experts);
                     group-limited routers keep N / n_group of every group when that leaves
                     each group enough experts, else they lose their groups (n_group 1)
  --keep-fraction F  keep round(F * experts) instead (0 < F <= 1)
  --calibration FILE UTF-8 text the routing is measured on (encoded without special tokens)
  --window W         tokens per calibration pass (default 256; windows do not overlap)
  --type T           GGUF output type (default bf16; any moe-quantize --type)
  --eval FILE        also report the perplexity and tok/s of IN and of the result on FILE
  --threads N        OpenMP threads (default: all)

Each layer keeps the experts that were routed the most calibration tokens (ties: the larger
routing-weight sum, then the lower id), renumbered in their original order; the router rows of
the others are dropped. Exit status: 0 on success, 2 on any error.
)";

constexpr auto kMaxWindow = static_cast<moe::index_t>(moe::limits::kMaxContext);

// Perplexity over non-overlapping windows, with the routing counts of the run.
moe::PerplexityResult measure(const moe::Model& model, const std::filesystem::path& model_dir, const std::string& text,
                              moe::index_t window) {
  const auto tokenizer = moe::io::load_tokenizer(model_dir);
  const std::vector<std::int32_t> tokens = tokenizer.encode(text, /*add_special_tokens=*/false);
  moe::PerplexityOptions options;
  options.window = std::min<moe::index_t>(window, model.config().max_position_embeddings);
  options.stride = options.window;
  return moe::perplexity(model, tokens, options);
}

}  // namespace

int main(int argc, char** argv) {
  return moe::cli::run_tool("moe-prune", [&] {
    std::vector<std::string> positional;
    std::string calibration, eval, type = "bf16";
    moe::index_t keep = 0, window = 256;
    double fraction = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      auto value = [&]() -> std::string_view {
        moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
        return argv[++i];
      };
      if (flag == "--help" || flag == "-h") {
        std::fputs(kUsage.c_str(), stdout);
        return 0;
      } else if (flag == "--keep") keep = moe::cli::parse_number<moe::index_t>(flag, value(), 1, moe::limits::kMaxExperts);
      else if (flag == "--keep-fraction") fraction = moe::cli::parse_number<double>(flag, value(), 1e-9, 1.0);
      else if (flag == "--calibration") calibration = value();
      else if (flag == "--window") window = moe::cli::parse_number<moe::index_t>(flag, value(), 2, kMaxWindow);
      else if (flag == "--type") type = value();
      else if (flag == "--eval") eval = value();
      else if (flag == "--threads") moe::set_num_threads(moe::cli::parse_threads(flag, value()));
      else if (flag.size() > 1 && flag[0] == '-') moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}' (see --help)", flag);
      else positional.emplace_back(flag);
    }
    moe::require(positional.size() == 2 && !calibration.empty() && (keep > 0) != (fraction > 0),
                 moe::ErrorCode::kInvalidArgument,
                 "IN, OUT, --calibration FILE and one of --keep N / --keep-fraction F are required (see --help)");
    const std::filesystem::path in = positional[0], out = positional[1];
    moe::require(std::filesystem::is_directory(in), moe::ErrorCode::kUnsupported,
                 "moe-prune: {} is not a Hugging Face model folder (GGUF input is not supported: prune the folder, "
                 "then write a GGUF with OUT.gguf)", in.string());
    const std::string text = moe::cli::read_text_file(calibration);
    const std::string eval_text = eval.empty() ? std::string() : moe::cli::read_text_file(eval);

    const auto model = moe::load_model(in);
    const moe::ModelConfig& config = model->config();
    if (fraction > 0) {
      keep = static_cast<moe::index_t>(std::lround(fraction * static_cast<double>(config.n_experts)));
    }
    const moe::PerplexityResult calib = measure(*model, in, text, window);
    std::printf("calibration: %s, %zu tokens in %zu windows, perplexity %.4f\n", calibration.c_str(),
                static_cast<std::size_t>(calib.tokens_evaluated), static_cast<std::size_t>(calib.windows),
                calib.perplexity);
    const moe::io::ExpertPrunePlan plan = moe::io::plan_expert_pruning(config, calib.expert_counts, keep);
    for (moe::index_t l = 0; l < config.n_layers; ++l) {
      if (plan.kept[l].empty()) continue;
      std::uint64_t all = 0, kept = 0;
      for (moe::index_t e = 0; e < config.n_experts; ++e) all += calib.expert_counts.tokens[l * config.n_experts + e];
      for (const std::int32_t e : plan.kept[l]) kept += calib.expert_counts.tokens[l * config.n_experts + e];
      std::printf("layer %zu: keeps %zu of %zu experts (%s), %.1f%% of the routed slots\n", static_cast<std::size_t>(l),
                  static_cast<std::size_t>(plan.keep), static_cast<std::size_t>(plan.n_experts),
                  fmt::format("{}", fmt::join(plan.kept[l], " ")).c_str(),
                  all == 0 ? 0.0 : 100.0 * static_cast<double>(kept) / static_cast<double>(all));
    }

    if (plan.ungrouped) {
      std::printf("note: %zu experts cannot keep the router's %zu groups evenly: the result routes without "
                  "groups (n_group 1)\n", static_cast<std::size_t>(plan.keep), static_cast<std::size_t>(config.router.n_group));
    }
    const bool gguf = out.extension() == ".gguf";
    const std::filesystem::path folder = gguf ? std::filesystem::path(out.string() + ".pruned-hf") : out;
    const moe::io::PruneReport r = moe::io::prune_experts(in, config, plan, folder);
    std::printf("wrote %s: %zu tensors (%zu cut to the kept experts), %.2f MiB of %.2f MiB\n", folder.string().c_str(),
                r.tensors, r.sliced, static_cast<double>(r.bytes_out) / (1024.0 * 1024.0),
                static_cast<double>(r.bytes_in) / (1024.0 * 1024.0));
    std::filesystem::path evaluated = folder;
    if (gguf) {
      moe::io::GgufExportOptions options;
      options.type = type;
      const auto g = moe::io::export_gguf(folder, out, options);
      std::printf("wrote %s: %zu tensors, %.2f MiB of tensor data (%s)\n", out.string().c_str(), g.tensors,
                  static_cast<double>(g.bytes) / (1024.0 * 1024.0), type.c_str());
      evaluated = out;
    }
    if (!eval.empty()) {
      const moe::PerplexityResult before = measure(*model, in, eval_text, window);
      const moe::PerplexityResult after = measure(*moe::load_model(evaluated), evaluated, eval_text, window);
      std::printf("eval %s: perplexity %.4f -> %.4f, %.1f -> %.1f tok/s\n", eval.c_str(), before.perplexity,
                  after.perplexity, before.tokens_per_second(), after.tokens_per_second());
    }
    if (gguf) std::filesystem::remove_all(folder);
    return 0;
  });
}
