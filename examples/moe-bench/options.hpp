// moe-bench's command line: the options, their defaults and the parser (every bad value is a
// kInvalidArgument naming the option and the value; the tool prints it and exits 2).
#pragma once

#include "common/backend.hpp"
#include "common/cli.hpp"

#include <moe/moe.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::bench_tool {

inline constexpr const char* kUsage = R"(usage: moe-bench (-m FILE|DIR | --synthetic SHAPE [--type T] [--layers N]) [options]
Measures prompt processing (pp) and token generation (tg) like llama-bench, each figure beside the
limit of this machine measured in the same run.

model:
  -m, --model FILE|DIR   a model GGUF file or a Hugging Face folder (config.json + *.safetensors)
  --synthetic SHAPE      random weights of a real shape made in memory: qwen3-30b-a3b, deepseek-v2-lite,
                         deepseek-v3, mixtral-8x7b, gpt-oss-20b, olmoe-1b-7b, or a path to a config.json
  --type T               weight type of --synthetic (default bf16): f32, bf16, f16, q8_0, q4_0, q4_1,
                         q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs, mxfp4 (norms, biases and
                         matrices whose rows are not whole blocks stay f32)
  --layers N             --synthetic with N layers instead of the shape's own count
  --seed N               --synthetic's random seed (default 1)
  --write-gguf FILE      write the --synthetic weights as a llama.cpp GGUF (matrices of type T, as
                         moe-quantize --type T writes them: T must be one of q8_0, q4_0, q4_k, q5_k, q6_k,
                         iq4_xs, bf16, f16, f32)
  --write-hf DIR         write them as a Hugging Face folder (config.json + model.safetensors; f32/bf16/f16
                         as they are, a block type T dequantized to bf16, which safetensors can hold)
                         With --write-* and neither -p nor -n, moe-bench writes and exits.
tests:
  -p, --n-prompt N,...   prompt lengths: one pp test each (one prefill pass of N tokens; 0: none; default 512
                         when neither -p nor -n is given)
  -n, --n-gen N,...      generation lengths: one tg test each (N batch-1 greedy decode steps after a
                         4-token context; 0: none; default 128 when neither is given)
  -b, --batch N,...      batched decode: for each -n and each N, a tg test of N sequences decoding together
  --expert-top-k K,...   elastic experts: each tg test again for each K, every sequence using the first K
                         of the K_model experts its router ranks (ExpertBudget::top_k; the routed weights
                         rescaled as --expert-renormalize auto does); the limit counts the bytes of K
                         experts per token. K = the model's top_k (or 0) is the plain test.
  -r, --repetitions N    measured runs of each test, after one warm-up run (default 5)
  -t, --threads N        threads (default: all)
  --backend NAME         )"
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
                                    "cpu, reference, cuda"
#else
                                    "cpu, reference (cuda in a build with -DMOE_ENABLE_CUDA=ON)"
#endif
                                    R"( (default cpu)
  --mlock                lock the weights in memory (mlockall(MCL_CURRENT) after loading: a mapped file is
                         read in) before the runs; a warning when the system refuses (RLIMIT_MEMLOCK)
  --compare "CMD"        run CMD (through /bin/sh -c) after each measured run of each test, interleaved
                         (A B A B ...); parses tokens/s from llama-bench's -o json / jsonl / md output
                         (the row with the same n_prompt / n_gen), else shows its output's last line;
                         prints both figures and their ratio (not for -b rows). A failing CMD is an error.
output:
  -o, --output md|json   markdown table (default) or a JSON array of rows (only the JSON on stdout)
  --probe-mb N           size of the read-bandwidth probe's buffer (default 256; part of the peak RSS)
  --probe-iters N        FMA iterations per chain and thread of the FMA-peak probe (default 20000000)
limits (measured in the same run):
  tg: read bandwidth (median of samples taken around every run) / bytes read per token (weights'
      per-token bytes + KV cache at the mean context); batched: / bytes one step reads (dense weights,
      the experts the batch touches, the caches), or the FMA peak when it binds first.
  pp: FMA peak (f32 vector FMAs on all threads) / (2 x parameters multiplied per token).
JSON fields of each row: test, n_prompt, n_gen, n_batch, expert_top_k (0: the model's), avg_ts, stddev_ts, min_ts, max_ts, median_ts,
samples_ts, limit_ts, limit, roofline_fraction, backend, threads, model, type, weights_bytes, params,
bytes_per_token, flops_per_token, bandwidth_gbs, fma_gflops, mmap, mlock, peak_rss_bytes, probe_bytes
(+ compare_cmd, compare_ts, compare_samples_ts, compare_ratio, compare_output with --compare).
)";

struct Options {
  std::string model, synthetic, type = "bf16", backend = "cpu", output = "md";
  std::string write_gguf, write_hf, compare;
  int layers = 0, threads = 0;
  std::uint64_t seed = 1;
  std::vector<index_t> n_prompt, n_gen, n_batch, expert_top_k;
  index_t reps = 5;
  index_t probe_mb = 256, probe_iters = 20'000'000;
  bool mlock = false, help = false;
};

// "128,512" -> {128, 512}: each a whole number in [lo, hi]; an empty list or element is an error.
inline std::vector<index_t> parse_count_list(std::string_view flag, std::string_view text, index_t lo, index_t hi) {
  std::vector<index_t> out;
  require(!text.empty(), ErrorCode::kInvalidArgument, "{}: empty list", flag);
  std::string_view rest = text;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    require(!item.empty(), ErrorCode::kInvalidArgument, "{}: '{}' has an empty element", flag, text);
    out.push_back(cli::parse_number<index_t>(flag, item, lo, hi));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

// -p / -n: as llama-bench, a 0 in the list means no test of that kind ("-p 0 -n 128": decode only).
inline std::vector<index_t> parse_test_sizes(std::string_view flag, std::string_view text, index_t hi) {
  std::vector<index_t> sizes = parse_count_list(flag, text, 0, hi);
  std::erase(sizes, index_t{0});
  return sizes;
}

// The options of argv (argv[0] is the program). Checks values and combinations; does not touch
// files (a missing model is reported when it is loaded).
inline Options parse_options(int argc, const char* const* argv) {
  Options o;
  bool given = false;  // -p or -n seen: no default tests
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    const auto value = [&]() -> std::string_view {
      require(i + 1 < argc, ErrorCode::kInvalidArgument, "{} needs a value", flag);
      return argv[++i];
    };
    constexpr index_t kMaxTokens = index_t{1} << 20;
    if (flag == "-h" || flag == "--help") o.help = true;
    else if (flag == "-m" || flag == "--model") o.model = value();
    else if (flag == "--synthetic") o.synthetic = value();
    else if (flag == "--type") o.type = value();
    else if (flag == "--layers") o.layers = cli::parse_number<int>(flag, value(), 1, static_cast<int>(limits::kMaxLayers));
    else if (flag == "--seed") o.seed = cli::parse_number<std::uint64_t>(flag, value());
    else if (flag == "--write-gguf") o.write_gguf = value();
    else if (flag == "--write-hf") o.write_hf = value();
    else if (flag == "-p" || flag == "--n-prompt") o.n_prompt = parse_test_sizes(flag, value(), kMaxTokens), given = true;
    else if (flag == "-n" || flag == "--n-gen") o.n_gen = parse_test_sizes(flag, value(), kMaxTokens), given = true;
    else if (flag == "-b" || flag == "--batch") o.n_batch = parse_count_list(flag, value(), 1, limits::kMaxParallelSequences);
    else if (flag == "--expert-top-k") o.expert_top_k = parse_count_list(flag, value(), 0, limits::kMaxTopK);
    else if (flag == "-r" || flag == "--repetitions") o.reps = cli::parse_number<index_t>(flag, value(), 1, 1000);
    else if (flag == "-t" || flag == "--threads") o.threads = cli::parse_threads(flag, value());
    else if (flag == "--backend") o.backend = value();
    else if (flag == "-o" || flag == "--output") o.output = value();
    else if (flag == "--mlock") o.mlock = true;
    else if (flag == "--compare") o.compare = value();
    else if (flag == "--probe-mb") o.probe_mb = cli::parse_number<index_t>(flag, value(), 1, 1 << 16);
    else if (flag == "--probe-iters") o.probe_iters = cli::parse_number<index_t>(flag, value(), 1, index_t{1} << 40);
    else fail(ErrorCode::kInvalidArgument, "unknown option '{}' (see --help)", flag);
  }
  if (o.help) return o;
  require(o.output == "md" || o.output == "json", ErrorCode::kInvalidArgument, "-o: '{}' is not one of md, json",
          o.output);
  cli::check_backend_name(o.backend);
  require(!o.model.empty() || !o.synthetic.empty(), ErrorCode::kInvalidArgument,
          "give a model: -m FILE|DIR or --synthetic SHAPE (see --help)");
  require(o.model.empty() || o.synthetic.empty(), ErrorCode::kInvalidArgument,
          "-m '{}' and --synthetic '{}': give one of them", o.model, o.synthetic);
  require(parse_dtype(o.type).has_value(), ErrorCode::kInvalidArgument, "--type: '{}' is not a weight type", o.type);
  require(o.synthetic.empty() == false || (o.write_gguf.empty() && o.write_hf.empty()), ErrorCode::kInvalidArgument,
          "--write-gguf / --write-hf write --synthetic weights (moe-quantize converts a model file)");
  require(o.synthetic.empty() == false || o.layers == 0, ErrorCode::kInvalidArgument, "--layers needs --synthetic");
  const bool writes = !o.write_gguf.empty() || !o.write_hf.empty();
  if (!given && !writes) {
    o.n_prompt = {512};
    o.n_gen = {128};
  }
  require(!given || writes || !o.n_prompt.empty() || !o.n_gen.empty(), ErrorCode::kInvalidArgument,
          "-p and -n: no test left to run (0 in a list means none)");
  require(o.n_batch.empty() || !o.n_gen.empty(), ErrorCode::kInvalidArgument, "-b needs -n (the steps each sequence decodes)");
  require(o.expert_top_k.empty() || !o.n_gen.empty(), ErrorCode::kInvalidArgument,
          "--expert-top-k needs -n (it applies to the tg tests)");
  return o;
}

}  // namespace moe::bench_tool
