// moe-run: load a model folder, stream a continuation of a prompt to the terminal, and report
// prompt / generation throughput and the experts each MoE layer used most. --batch runs several
// prompts (one per line of a file) through continuous batching.
#include "common/backend.hpp"
#include "common/cli.hpp"
#include "common/expert_options.hpp"

#include <moe/io/load_quantized_model.hpp>
#include <moe/io/load_lora_model.hpp>
#include <moe/io/lora_adapter.hpp>
#include <moe/moe.hpp>

#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

const std::string kUsage = R"(usage: moe-run --model DIR|FILE.gguf (--prompt TEXT | --prompt-file FILE | --batch FILE) [options]

  --model DIR              Hugging Face model folder (config.json, *.safetensors, tokenizer.json)
                           or a GGUF file (llama.cpp's model files; tokenizer from its metadata)
  --prompt TEXT            prompt text
  --prompt-file FILE       read the prompt from a file
  --batch FILE             one prompt per line; all are generated together (continuous batching);
                           with unmerged adapters a line "@NAME prompt" runs with adapter NAME
                           ("@base prompt": the base model)
  --max-tokens N           tokens to generate (default 128)
  --greedy                 argmax decoding (also: --temperature 0)
  --temperature T          sampling temperature (default 1, or generation_config.json's)
  --top-k K                keep the K most likely tokens (0 = off)
  --top-p P                nucleus sampling mass (1 = off)
  --min-p P                drop tokens below P x the top probability (0 = off)
  --repeat-penalty R       HF repetition penalty (1 = off)
  --presence-penalty P     OpenAI presence penalty (0 = off)
  --frequency-penalty F    OpenAI frequency penalty (0 = off)
  --seed S                 PRNG seed (default 0)
  --stop STR               stop when STR appears in the text (repeatable; \n escapes allowed)
  --ignore-eos             do not stop at end-of-sequence tokens
  --threads N              OpenMP threads (default: all)
  --n-ctx N                context length (default: min(max_position_embeddings, 4096))
  --quantize TYPE          quantize the weights at load time (moe-quantize's types: q8_0, q4_k_m, q4_k,
                           q6_k, iq4_xs, mxfp4, bf16, ...); the cpu and reference backends
  --parallel N             with --batch: sequences decoding at once (default 4)
  --top-experts K          experts listed per layer in the report (default 3)
  --backend NAME           cpu (default), reference (the scalar oracle) or, in a CUDA build, cuda
  --lora [NAME=]PATH       a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors);
                           repeatable. The adapters stay resident and unmerged (cpu and reference
                           backends): each sequence runs with one of them or the base model
  --adapter NAME           the resident adapter the prompt runs with ("base": none; default: the
                           only --lora given, or the base model when several are)
  --lora-merge             merge all given adapters into the weights at load, in order
                           (W + scale*B*A, no runtime cost; every backend)
)" + std::string(moe::cli::kExpertBudgetUsage) + R"(  --stats-json FILE        write the run's statistics as JSON: throughput and, per MoE layer, tokens
                           per expert, shares, activation rate, load imbalance, mean routing weight
  --expert-heatmap FILE    draw the layers x experts routing heatmap as SVG
  --no-expert-telemetry    do not count routing (the counts cost well under 1% of decode time)
  --expert-coactivation    also count how often two experts serve one token (per layer, n_experts²
                           counters); --stats-json then lists each layer's most frequent pairs
  --help                   this text

Without --greedy or a sampling option, the model folder's generation_config.json decides
(do_sample false or absent means greedy). Ctrl-C stops generation cleanly.
Exit status: 0 on success, 2 on any error.
)";

constexpr moe::index_t kMaxTokens = static_cast<moe::index_t>(moe::limits::kMaxContext);
constexpr moe::index_t kMaxParallel = static_cast<moe::index_t>(moe::limits::kMaxParallelSequences);

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct Args {
  std::string model, prompt_file, batch_file, backend = "cpu";
  std::optional<std::string> prompt;
  std::optional<moe::index_t> max_tokens, n_ctx;
  std::optional<float> temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
  std::optional<std::int32_t> top_k;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stops;
  bool greedy = false, ignore_eos = false, help = false;
  int threads = 0;
  moe::index_t parallel = 4;
  std::size_t top_experts = 3;
  moe::ExpertBudget expert_budget;
  std::string stats_json, heatmap;
  bool telemetry = true;
  bool coactivation = false;
  std::string quantize;  // load-time quantization type, "" = as stored
  std::vector<std::string> loras;  // [NAME=]PATH
  bool lora_merge = false;
  std::optional<std::string> adapter;  // --adapter
};

using moe::cli::parse_number;

// "\n", "\t", "\\" escapes, so stop strings with newlines can be given on a command line.
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") a.help = true;
    else if (flag == "--model") a.model = value();
    else if (flag == "--prompt") a.prompt = std::string(value());
    else if (flag == "--prompt-file") a.prompt_file = value();
    else if (flag == "--batch") a.batch_file = value();
    else if (flag == "--max-tokens") a.max_tokens = parse_number<moe::index_t>(flag, value(), 0, kMaxTokens);
    else if (flag == "--n-ctx") a.n_ctx = parse_number<moe::index_t>(flag, value(), 1, kMaxTokens);
    else if (flag == "--quantize") a.quantize = value();
    else if (flag == "--temperature") a.temperature = parse_number<float>(flag, value());
    else if (flag == "--top-k") a.top_k = parse_number<std::int32_t>(flag, value(), 0);
    else if (flag == "--top-p") a.top_p = parse_number<float>(flag, value());
    else if (flag == "--min-p") a.min_p = parse_number<float>(flag, value());
    else if (flag == "--repeat-penalty") a.repeat_penalty = parse_number<float>(flag, value());
    else if (flag == "--presence-penalty") a.presence_penalty = parse_number<float>(flag, value());
    else if (flag == "--frequency-penalty") a.frequency_penalty = parse_number<float>(flag, value());
    else if (flag == "--seed") a.seed = parse_number<std::uint64_t>(flag, value());
    else if (flag == "--stop") a.stops.push_back(unescape(value()));
    else if (flag == "--threads") a.threads = moe::cli::parse_threads(flag, value());
    else if (flag == "--parallel") a.parallel = parse_number<moe::index_t>(flag, value(), 1, kMaxParallel);
    else if (flag == "--top-experts") a.top_experts = parse_number<std::size_t>(flag, value(), 0, 1 << 16);
    else if (flag == "--backend") a.backend = value();
    else if (flag == "--lora") a.loras.emplace_back(value());
    else if (flag == "--lora-merge") a.lora_merge = true;
    else if (flag == "--adapter") a.adapter = value();
    else if (moe::cli::parse_expert_budget_flag(flag, value, a.expert_budget)) continue;
    else if (flag == "--stats-json") a.stats_json = value();
    else if (flag == "--expert-heatmap") a.heatmap = value();
    else if (flag == "--no-expert-telemetry") a.telemetry = false;
    else if (flag == "--expert-coactivation") a.coactivation = true;
    else if (flag == "--greedy") a.greedy = true;
    else if (flag == "--ignore-eos") a.ignore_eos = true;
    else moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}' (see --help)", flag);
  }
  if (a.help) return a;
  moe::require(!a.model.empty(), moe::ErrorCode::kInvalidArgument, "--model DIR|FILE.gguf is required (see --help)");
  const int sources = a.prompt.has_value() + !a.prompt_file.empty() + !a.batch_file.empty();
  moe::require(sources == 1, moe::ErrorCode::kInvalidArgument,
               "give exactly one of --prompt, --prompt-file, --batch (see --help)");
  moe::require(a.telemetry || (a.stats_json.empty() && a.heatmap.empty() && !a.coactivation),
               moe::ErrorCode::kInvalidArgument,
               "--stats-json, --expert-heatmap and --expert-coactivation need the expert telemetry (drop "
               "--no-expert-telemetry)");
  // Check the sampling values now, before loading anything (the folder's defaults are valid).
  moe::SamplerConfig check;
  if (a.temperature) check.temperature = *a.temperature;
  if (a.top_k) check.top_k = *a.top_k;
  if (a.top_p) check.top_p = *a.top_p;
  if (a.min_p) check.min_p = *a.min_p;
  if (a.repeat_penalty) check.repetition_penalty = *a.repeat_penalty;
  if (a.presence_penalty) check.presence_penalty = *a.presence_penalty;
  if (a.frequency_penalty) check.frequency_penalty = *a.frequency_penalty;
  check.validate();
  for (const auto& stop : a.stops) {
    moe::require(!stop.empty(), moe::ErrorCode::kInvalidArgument, "--stop: empty stop string");
  }
  return a;
}

std::string read_text_file(const std::string& path) { return moe::cli::read_text_file(path, "prompt file"); }

moe::GenerationOptions make_options(const Args& a, const moe::GenerationOptions& defaults) {
  moe::GenerationOptions o = defaults;
  auto& s = o.sampler;
  // Any sampling option turns sampling on; unset ones keep the folder's (or HF's) defaults.
  if (a.temperature || a.top_k || a.top_p || a.min_p || a.seed) s.greedy = false;
  if (a.temperature) s.temperature = *a.temperature;
  if (a.top_k) s.top_k = *a.top_k;
  if (a.top_p) s.top_p = *a.top_p;
  if (a.min_p) s.min_p = *a.min_p;
  if (a.repeat_penalty) s.repetition_penalty = *a.repeat_penalty;
  if (a.presence_penalty) s.presence_penalty = *a.presence_penalty;
  if (a.frequency_penalty) s.frequency_penalty = *a.frequency_penalty;
  if (a.seed) s.seed = *a.seed;
  if (a.greedy) s.greedy = true;
  s.validate();
  o.max_new_tokens = a.max_tokens.value_or(128);
  o.stop_strings = a.stops;
  o.ignore_eos = a.ignore_eos;
  o.cancel = &g_interrupted;
  o.expert_budget = a.expert_budget;
  return o;
}

// --stats-json and --expert-heatmap: the run's throughput and its expert statistics.
template <class Model, class Workspace>
void write_expert_outputs(const Args& a, const Model& model, const Workspace& ws, nlohmann::json run) {
  if (a.stats_json.empty() && a.heatmap.empty()) return;
  moe::ExpertCounts counts = moe::ExpertCounts::from(ws.expert_usage(), moe::moe_layers(model));
  counts.coactivation = ws.expert_coactivation_counts();
  const moe::ExpertStats stats = moe::expert_stats(counts);
  const auto& cfg = model.config();
  if (!a.stats_json.empty()) {
    nlohmann::json j;
    j["model"] = {{"architecture", cfg.architecture}, {"n_layers", cfg.n_layers}, {"n_experts", cfg.n_experts},
                  {"top_k", cfg.top_k}};
    j["expert_budget"] = {{"top_k", a.expert_budget.top_k}, {"threshold", a.expert_budget.threshold},
                          {"min_k", a.expert_budget.min_k}};
    j["run"] = std::move(run);
    j["experts"] = moe::expert_stats_json(stats);
    if (a.coactivation) j["coactivation"] = moe::coactivation_json(counts, cfg.top_k);
    moe::cli::write_text(a.stats_json, j.dump(2) + "\n", "--stats-json");
  }
  if (!a.heatmap.empty()) {
    std::filesystem::path folder(a.model);
    if (folder.filename().empty()) folder = folder.parent_path();  // "DIR/"
    moe::cli::write_text(a.heatmap,
                         moe::expert_heatmap_svg(stats, fmt::format("Expert routing of {}: top-{} of {} experts, {}",
                                                                    folder.filename().string(),
                                                                    cfg.top_k, cfg.n_experts,
                                                                    moe::cli::describe_budget(a.expert_budget))),
                         "--expert-heatmap");
  }
}

nlohmann::json timings_json(const moe::GenerationTimings& t) {
  return {{"prompt_tokens", t.prompt_tokens},
          {"prompt_seconds", t.prompt_seconds},
          {"prompt_tokens_per_second", t.prompt_tokens_per_second()},
          {"generated_tokens", t.generated_tokens},
          {"generation_seconds", t.generation_seconds},
          {"generation_tokens_per_second", t.generation_tokens_per_second()}};
}

template <class Workspace>
void print_expert_usage(const Workspace& ws, std::size_t k) {
  const auto layers = moe::expert_usage_report(ws.expert_usage(), k);
  if (layers.empty()) return;
  std::fputs("experts used most (share of routed token slots):\n", stdout);
  for (const auto& l : layers) {
    std::fputs(fmt::format("  layer {}: {}\n", l.layer, moe::format_expert_shares(l.top)).c_str(), stdout);
  }
}

std::string describe_sampler(const moe::SamplerConfig& s) {
  if (s.is_greedy()) return "greedy";
  return fmt::format("temperature {} top-k {} top-p {} min-p {} seed {}", s.temperature, s.top_k, s.top_p,
                     s.min_p, s.seed);
}

// The model of --model, quantized at load with --quantize (and what that converted, on stderr).
template <class Backend>
std::shared_ptr<const moe::BasicModel<Backend>> load(const Args& a, moe::BasicModel<Backend>*) {
  if (a.quantize.empty()) return moe::load_model<Backend>(a.model);
  moe::io::LoadQuantizeReport report;
  auto model = moe::load_model<Backend>(a.model, moe::LoadOptions{a.quantize, &report});
  std::string types;
  for (const auto& [t, n] : report.types) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", n, t);
  std::fputs(fmt::format("quantized at load ({}): {} matrices ({}), {:.1f} -> {:.1f} MB\n", a.quantize,
                         [&] { std::size_t n = 0; for (const auto& [t, k] : report.types) n += k; return n; }(),
                         types.empty() ? "none" : types, report.bytes_before / 1e6, report.bytes_after / 1e6)
                 .c_str(),
             stderr);
  return model;
}

// The weights' size and what one decode token reads (the roofline's denominator).
template <class Model>
void print_weight_bytes(const Model& m, const char* backend) {
  const auto& b = m.weight_bytes();
  std::fputs(fmt::format("backend {}: weights {:.1f} MB, {:.1f} MB read per decode token\n", backend, b.total / 1e6,
                         b.per_token / 1e6)
                 .c_str(),
             stderr);
}

// The --lora adapters, named ([NAME=]PATH; a bare PATH takes load_lora_adapter's default name).
std::vector<moe::io::LoraAdapter> load_run_adapters(const Args& a) {
  std::vector<moe::io::LoraAdapter> adapters;
  for (const auto& spec : a.loras) {
    const auto eq = spec.find('=');
    const std::string name = eq == std::string::npos ? std::string() : spec.substr(0, eq);
    const std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    moe::require(!path.empty(), moe::ErrorCode::kInvalidArgument, "--lora {}: empty path", spec);
    adapters.push_back(moe::io::load_lora_adapter(path, name));
    std::fputs(fmt::format("lora: {} ({} targets, r {}, alpha {}{}) {}\n", adapters.back().name,
                           adapters.back().targets.size(), adapters.back().rank, adapters.back().alpha,
                           adapters.back().use_rslora ? ", rslora" : "", a.lora_merge ? "merged" : "resident, unmerged")
                   .c_str(),
               stderr);
  }
  return adapters;
}

// The model: with the --lora adapters merged in (--lora-merge) or resident beside the base
// weights (unmerged), and the adapter the run's prompts use by default ("" the base model).
template <class Backend>
std::pair<std::shared_ptr<const moe::BasicModel<Backend>>, std::string> load_run_model(const Args& a) {
  moe::require(!a.adapter || (!a.loras.empty() && !a.lora_merge), moe::ErrorCode::kInvalidArgument,
               "--adapter {}: {}", a.adapter.value_or(""),
               a.loras.empty() ? "no adapter was loaded (--lora [NAME=]PATH)"
                               : "merged adapters cannot be chosen per prompt (drop --lora-merge)");
  if (a.loras.empty()) return {load(a, static_cast<moe::BasicModel<Backend>*>(nullptr)), std::string()};
  moe::require(a.quantize.empty(), moe::ErrorCode::kUnsupported, "--lora with --quantize is not supported yet");
  const std::vector<moe::io::LoraAdapter> adapters = load_run_adapters(a);
  const std::span<const moe::io::LoraAdapter> all(adapters);
  if (a.lora_merge) return {moe::load_model_with_lora<Backend>(a.model, all), std::string()};
  auto model = moe::load_model_with_adapters<Backend>(a.model, all);
  std::string chosen = adapters.size() == 1 ? adapters.front().name : std::string();
  if (a.adapter) chosen = *a.adapter == "base" ? std::string() : *a.adapter;
  if (!chosen.empty()) (void)model->adapter_index(chosen);  // an unknown name: the error lists the loaded ones
  std::fputs(fmt::format("lora: the prompts run with {}\n", chosen.empty() ? "the base model" : "adapter " + chosen)
                 .c_str(),
             stderr);
  return {std::move(model), chosen};
}

template <class Backend>
int run_single(const Args& a) {
  const std::string prompt = a.prompt_file.empty() ? *a.prompt : read_text_file(a.prompt_file);
  auto [model, adapter] = load_run_model<Backend>(a);
  auto gen = moe::BasicGenerator<Backend>(std::move(model),
                                          std::make_shared<const moe::Tokenizer>(moe::io::load_tokenizer(a.model)),
                                          a.n_ctx.value_or(0), moe::read_generation_config(a.model));
  print_weight_bytes(gen.model(), Backend::name);
  moe::GenerationOptions options = make_options(a, gen.default_options());
  if (!adapter.empty()) options.adapter = adapter;
  const auto& cfg = gen.model().config();
  std::fputs(fmt::format("model: {} ({} layers, {} experts, top-{}), n_ctx {}, {} threads, {}\n",
                         cfg.architecture, cfg.n_layers, cfg.n_experts, cfg.top_k,
                         gen.session().n_ctx(), moe::max_threads(), describe_sampler(options.sampler))
                 .c_str(),
             stderr);
  const std::vector<std::int32_t> ids = gen.tokenizer().encode(prompt, options.add_special_tokens);
  gen.session().workspace().reset_expert_usage();
  gen.session().workspace().set_expert_telemetry(a.telemetry);
  gen.session().workspace().set_expert_coactivation(a.coactivation);
  a.expert_budget.validate(cfg.top_k, "moe-run --expert-*");
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  const moe::GenerationResult r = gen.generate(ids, options, [](std::int32_t, std::string_view piece) {
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputs("\n\n", stdout);
  const auto& t = r.timings;
  std::fputs(fmt::format("prompt: {} tokens in {:.3f} s, {:.1f} tok/s\n", t.prompt_tokens, t.prompt_seconds,
                         t.prompt_tokens_per_second())
                 .c_str(),
             stdout);
  std::fputs(fmt::format("generation: {} tokens in {:.3f} s, {:.1f} tok/s (stopped: {})\n", t.generated_tokens,
                         t.generation_seconds, t.generation_tokens_per_second(), moe::to_string(r.stop_reason))
                 .c_str(),
             stdout);
  print_expert_usage(gen.session().workspace(), a.top_experts);
  nlohmann::json run = timings_json(t);
  run["stop_reason"] = moe::to_string(r.stop_reason);
  write_expert_outputs(a, gen.model(), gen.session().workspace(), std::move(run));
  return 0;
}

template <class Backend>
int run_batch(const Args& a) {
  std::vector<std::string> prompts;
  {
    std::istringstream lines(read_text_file(a.batch_file));
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) prompts.push_back(unescape(line));
    }
  }
  moe::require(!prompts.empty(), moe::ErrorCode::kInvalidArgument, "{}: no prompts (one per line)", a.batch_file);
  auto [model, adapter] = load_run_model<Backend>(a);
  // Unmerged adapters: "@NAME prompt" picks a line's adapter ("@base": none); the others run
  // with the run's (--adapter, or the only one given).
  std::vector<std::string> line_adapter(prompts.size(), adapter);
  if (!a.loras.empty() && !a.lora_merge) {
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      if (prompts[i].empty() || prompts[i][0] != '@') continue;
      const std::size_t sp = prompts[i].find_first_of(" \t");
      const std::string name = prompts[i].substr(1, sp == std::string::npos ? std::string::npos : sp - 1);
      moe::require(!name.empty() && sp != std::string::npos && sp + 1 < prompts[i].size(),
                   moe::ErrorCode::kInvalidArgument, "{} line {}: '@NAME prompt' needs a name and a prompt",
                   a.batch_file, i + 1);
      line_adapter[i] = name == "base" ? std::string() : name;
      if (!line_adapter[i].empty()) (void)model->adapter_index(line_adapter[i]);  // names the loaded ones
      prompts[i] = prompts[i].substr(sp + 1);
    }
  }
  print_weight_bytes(*model, Backend::name);
  auto tokenizer = std::make_shared<const moe::Tokenizer>(moe::io::load_tokenizer(a.model));
  const moe::GenerationDefaults defaults = moe::read_generation_config(a.model);
  moe::GenerationOptions base;
  base.sampler = defaults.apply_to(base.sampler);
  const moe::GenerationOptions options = make_options(a, base);
  moe::BatchOptions bo;
  bo.max_sequences = std::max<moe::index_t>(1, a.parallel);
  bo.n_ctx = a.n_ctx.value_or(0);
  moe::BasicBatchGenerator<Backend> batch(model, tokenizer, bo, defaults.eos_token_ids);
  std::fputs(fmt::format("batch: {} prompts, {} at a time, n_ctx {}, {} threads, {}\n", prompts.size(),
                         bo.max_sequences, batch.n_ctx(), moe::max_threads(), describe_sampler(options.sampler))
                 .c_str(),
             stderr);
  batch.workspace().reset_expert_usage();
  batch.workspace().set_expert_telemetry(a.telemetry);
  batch.workspace().set_expert_coactivation(a.coactivation);
  a.expert_budget.validate(model->config().top_k, "moe-run --expert-*");
  std::vector<moe::RequestId> ids;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    moe::GenerationOptions o = options;
    if (!line_adapter[i].empty()) o.adapter = line_adapter[i];
    ids.push_back(batch.submit(prompts[i], o));
  }
  moe::Stopwatch clock;
  std::vector<std::optional<moe::GenerationResult>> results(prompts.size());
  while (true) {
    const bool more = batch.step();
    for (auto& [id, r] : batch.take_finished()) {
      const auto i = static_cast<std::size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin());
      std::fputs(fmt::format("--- [{}] {} tokens, {} ---\n{}{}\n", i, r.tokens.size(), moe::to_string(r.stop_reason),
                             prompts[i], r.text)
                     .c_str(),
                 stdout);
      std::fflush(stdout);
      results[i] = std::move(r);
    }
    if (!more) break;
  }
  const double seconds = clock.seconds();
  moe::index_t generated = 0, prompt_tokens = 0;
  for (const auto& r : results) {
    generated += r->timings.generated_tokens;
    prompt_tokens += r->timings.prompt_tokens;
  }
  std::fputs(fmt::format("\nbatch: {} prompt + {} generated tokens in {:.3f} s over {} forward passes: {:.1f} "
                         "generated tok/s overall\n",
                         prompt_tokens, generated, seconds, batch.forward_calls(), generated / seconds)
                 .c_str(),
             stdout);
  print_expert_usage(batch.workspace(), a.top_experts);
  nlohmann::json run = {{"prompts", prompts.size()},
                        {"prompt_tokens", prompt_tokens},
                        {"generated_tokens", generated},
                        {"seconds", seconds},
                        {"forward_passes", batch.forward_calls()},
                        {"generation_tokens_per_second", generated / seconds}};
  nlohmann::json per = nlohmann::json::array();
  for (const auto& r : results) per.push_back(timings_json(r->timings));
  run["requests"] = std::move(per);
  write_expert_outputs(a, *model, batch.workspace(), std::move(run));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return moe::cli::run_tool("moe-run", [&] {
    const Args a = parse_args(argc, argv);
    if (a.help) {
      std::fputs(kUsage.c_str(), stdout);
      return 0;
    }
    if (a.threads > 0) moe::set_num_threads(a.threads);
    std::signal(SIGINT, on_sigint);
    return moe::cli::with_backend(a.backend, [&](auto tag) {
      using Backend = decltype(tag);
      return a.batch_file.empty() ? run_single<Backend>(a) : run_batch<Backend>(a);
    });
  });
}
