// moe-bench: llama-bench style speed of a model (a GGUF, a Hugging Face folder, or random weights
// of a real shape made in memory), each figure beside this machine's limit measured in the same
// run, optionally interleaved with another engine's benchmark (--compare). See --help.
//
// Limits: decode (tg) is bound by memory bandwidth: the read bandwidth (moe/bench/bandwidth_probe.hpp,
// sampled before every run and after the last, median) divided by the bytes one token reads (the
// weights' per-token bytes from the graph's tensor list, plus the KV cache at the mean context).
// Batched decode: bandwidth / the bytes one step reads (moe/bench/step_bytes.hpp: the dense
// weights, the experts the batch's picks touch, every sequence's cache), times the sequences; or
// the FMA peak / FLOPs per token when that is lower. Prefill (pp) is bound by compute: the FMA peak
// (moe/bench/fma_probe.hpp, f32 vector FMAs on every thread, measured before every pp test) divided
// by 2 FLOPs per parameter multiplied per token (model::WeightBytes::per_token_params: every dense
// matrix, top_k / n_experts of the experts, the output head; attention over the context is left
// out, so the limit is slightly optimistic for long prompts). Where the cpu prefill of the model's
// main type multiplies in int8 (Q8_0, Q4_0, IQ4_NL, MXFP4, Q4_K, Q6_K), the limit is the int8
// dot-product peak instead (moe/bench/int8_probe.hpp, measured beside the FMA peak); the other
// block formats dequantize into the f32 GEMM, whose limit is the FMA peak. With --backend cuda
// the probes measure the device (moe/bench/device_probe.cuh): decode against its memory read
// bandwidth, prefill against the bf16 tensor-core peak (mma.sync; the "fma_gflops" of the JSON).
#include "compare.hpp"
#include "options.hpp"

#include <moe/bench/bandwidth_probe.hpp>
#include <moe/bench/device_probe.cuh>
#include <moe/bench/fma_probe.hpp>
#include <moe/bench/int8_probe.hpp>
#include <moe/bench/prompt_ids.hpp>
#include <moe/bench/step_bytes.hpp>
#include <moe/bench/synthetic_shapes.hpp>
#include <moe/io/gguf_export.hpp>
#include <moe/io/hf_export.hpp>
#include <moe/model/checkpoint_tensors.hpp>
#include <moe/model/synthetic.hpp>
#include <moe/moe.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/mman.h>
#include <sys/resource.h>

namespace {

using moe::index_t;
using moe::bench_tool::Options;

// Tokens of context each tg test decodes after (prefilled, not timed).
constexpr index_t kTgContext = 4;

struct Stats {
  double avg = 0, stddev = 0, min = 0, max = 0, median = 0;
};
Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  for (double x : v) s.avg += x;
  s.avg /= static_cast<double>(n);
  for (double x : v) s.stddev += (x - s.avg) * (x - s.avg);
  s.stddev = n > 1 ? std::sqrt(s.stddev / static_cast<double>(n - 1)) : 0.0;
  s.min = v.front(), s.max = v.back();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return s;
}
double median(const std::vector<double>& v) { return stats_of(v).median; }

double peak_rss_bytes() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;  // ru_maxrss is in KiB on Linux
}

// What every row of a run shares.
struct ModelInfo {
  std::string name, type, backend;
  double weights_bytes = 0, params = 0, per_token_bytes = 0, per_token_params = 0, kv_token_bytes = 0;
  bool mmap = false, mlock = false;
  bool int8_prefill = false;  // the cpu prefill GEMM of the main type multiplies in int8
  int threads = 1;
  moe::model::RepackInfo repack;  // the cpu backend's load-time interleaving (model/repack.hpp)
};

struct Row {
  std::string test;  // "pp" or "tg"
  index_t n_prompt = 0, n_gen = 0, n_batch = 1;
  index_t expert_top_k = 0;  // tg: the routed experts each token uses (0: the model's top_k)
  std::vector<double> ts;
  double limit_ts = 0;  // 0: not measured
  std::string limit;    // what bounds it
  double bytes_per_token = 0, flops_per_token = 0, bandwidth = 0, fma_flops = 0, int8_ops = 0;
  std::vector<double> compare_ts;
  std::string compare_output;  // CMD's last line when no figure was found in it

  std::string label() const {
    if (test == "pp") return fmt::format("pp{}", n_prompt);
    const std::string k = expert_top_k > 0 ? fmt::format(" k={}", expert_top_k) : "";
    return (n_batch > 1 ? fmt::format("tg{} x{}", n_gen, n_batch) : fmt::format("tg{}", n_gen)) + k;
  }
};

// The weight type that holds most of the bytes (the matrices' type of a quantized file).
template <class W>
std::string main_type(const W& w) {
  std::map<moe::DType, double> bytes;
  const auto count = [&bytes](const char*, const auto& t) {
    if (!t.empty()) bytes[t.dtype] += static_cast<double>(t.bytes());
    return t;
  };
  for (const auto& L : w.layers) (void)L.transform(count);
  (void)count("", w.embed);
  moe::DType best = moe::DType::f32;
  double most = -1;
  for (const auto& [t, b] : bytes) {
    if (b > most) most = b, best = t;
  }
  return std::string(moe::dtype_name(best));
}

// The limits of the machine the backend runs on, sampled while the tests run: the host's read
// bandwidth, FMA and int8 peaks; with --backend cuda the device's read bandwidth and bf16
// tensor-core peak (moe/bench/device_probe.cuh).
class Probes {
 public:
  Probes(const Options& o, bool host) : host_(host), iters_(o.probe_iters) {
    if (host_) bw_.emplace(o.probe_mb << 20);
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
    else device_bw_.emplace(std::max<std::size_t>(o.probe_mb, 64) << 20);  // well past L2 (50 MB on an H100)
#endif
  }
  bool host() const { return host_; }
  // Bytes/s of one pass over the probe's buffer (0: no probe for this backend).
  double bandwidth_sample() const {
    if (host_) return static_cast<double>(bw_->bytes()) / bw_->sample();
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
    return device_bw_->sample();
#else
    return 0.0;
#endif
  }
  // The prefill limit: the host's f32 FMA peak, or the device's bf16 MMA peak.
  double fma_peak() {
    if (host_) fma_ = moe::bench::measure_fma_peak(iters_, 3);
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
    else fma_ = moe::bench::measure_device_mma_peak();
#endif
    return fma_;
  }
  double last_fma_peak() const { return fma_; }
  const char* compute_limit() const { return host_ ? "FMA peak" : "MMA peak"; }
  double int8_peak() {
    if (host_) int8_ = moe::bench::measure_int8_peak(iters_, 3);
    return int8_;
  }

 private:
  bool host_;
  index_t iters_;
  std::optional<moe::bench::BandwidthProbe> bw_;
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
  std::optional<moe::bench::DeviceBandwidthProbe> device_bw_;
#endif
  double fma_ = 0, int8_ = 0;
};

// Runs `once` (returns tokens/s of one run) 1 + reps times, the first as a warm-up; with --compare
// CMD runs after each measured run. Bandwidth is sampled before each measured run and after the last.
template <class F>
void measure(const Options& o, Probes& probes, Row& row, F&& once, std::vector<double>& bw) {
  (void)once();  // warm-up
  for (index_t r = 0; r < o.reps; ++r) {
    bw.push_back(probes.bandwidth_sample());
    row.ts.push_back(once());
    // llama-bench has no batched-decode or expert-budget row to compare with
    if (!o.compare.empty() && row.n_batch == 1 && row.expert_top_k == 0) {
      const auto res = moe::bench_tool::run_command(o.compare);
      if (res.status != 0) {
        moe::fail(moe::ErrorCode::kInvalidArgument, "--compare: '{}' failed with exit status {}; its output ended: '{}'",
                  o.compare, res.status, moe::bench_tool::last_line(res.output));
      }
      const long np = row.test == "pp" ? static_cast<long>(row.n_prompt) : 0;
      const long ng = row.test == "pp" ? 0 : static_cast<long>(row.n_gen);
      if (const auto ts = moe::bench_tool::parse_llama_bench(res.output, np, ng)) row.compare_ts.push_back(*ts);
      else row.compare_output = moe::bench_tool::last_line(res.output);
    }
  }
  bw.push_back(probes.bandwidth_sample());
  if (!o.compare.empty() && row.n_batch > 1) row.compare_output = "not compared: batched";
  else if (!o.compare.empty() && row.expert_top_k > 0) row.compare_output = "not compared: expert budget";
}

template <class Backend>
std::vector<Row> run_tests(const Options& o, const moe::BasicModel<Backend>& model, const ModelInfo& info,
                           Probes& probes) {
  using Model = moe::BasicModel<Backend>;
  const auto& cfg = model.config();
  const index_t V = cfg.vocab_size;
  std::vector<Row> rows;
  const auto info_line = [&](const std::string& text) {
    std::fputs((text + "\n").c_str(), stderr);
    std::fflush(stderr);
  };

  for (const index_t n : o.n_prompt) {
    Row row;
    row.test = "pp", row.n_prompt = n;
    info_line(fmt::format("moe-bench: {} ...", row.label()));
    row.fma_flops = probes.fma_peak();
    if (info.int8_prefill) row.int8_ops = probes.int8_peak();
    auto cache = model.make_cache(n);
    auto ws = model.make_workspace(n);
    moe::Tensor<float, 2> logits({1, V});
    const auto prompt = moe::bench::make_ids(n, V, 1);
    const typename Model::SequenceChunk ch{&cache, prompt};
    std::vector<double> bw;
    measure(o, probes, row, [&] {
      cache.clear();
      moe::Stopwatch w;
      model.forward({&ch, 1}, ws, logits.view(), false);
      return static_cast<double>(n) / w.seconds();
    }, bw);
    row.bandwidth = median(bw);
    row.flops_per_token = 2.0 * info.per_token_params;
    row.bytes_per_token = info.per_token_bytes;
    if (row.int8_ops > 0) row.limit_ts = row.int8_ops / row.flops_per_token, row.limit = "int8 peak";
    else if (row.fma_flops > 0) row.limit_ts = row.fma_flops / row.flops_per_token, row.limit = probes.compute_limit();
    rows.push_back(std::move(row));
  }

  std::vector<index_t> batches{1};
  for (const index_t b : o.n_batch) {
    if (b != 1) batches.push_back(b);
  }
  // --expert-top-k: each tg test again per budget (K = the model's top_k is the plain test).
  std::vector<index_t> budgets{0};
  for (const index_t k : o.expert_top_k) {
    if (k == 0 || k == cfg.top_k) continue;
    moe::kernels::ExpertBudget{static_cast<std::int32_t>(k)}.validate(cfg.top_k, "--expert-top-k");
    budgets.push_back(k);
  }
  for (const index_t n : o.n_gen) {
    for (const index_t B : batches) {
      for (const index_t K : budgets) {
        Row row;
        row.test = "tg", row.n_gen = n, row.n_batch = B, row.expert_top_k = K;
        const moe::kernels::ExpertBudget budget{static_cast<std::int32_t>(K)};
        const index_t k_used = K > 0 ? K : cfg.top_k;
        info_line(fmt::format("moe-bench: {} ...", row.label()));
        const index_t n_ctx = kTgContext + n + 1;
        std::vector<typename Model::Cache> caches;
        for (index_t i = 0; i < B; ++i) caches.push_back(model.make_cache(n_ctx));
        auto ws = model.make_workspace(std::max(B, kTgContext));
        moe::Tensor<float, 2> logits({B, V});
        std::vector<std::vector<std::int32_t>> context(B);
        for (index_t i = 0; i < B; ++i) context[i] = moe::bench::make_ids(kTgContext, V, static_cast<std::uint32_t>(100 + i));
        std::vector<std::int32_t> next(B);
        std::vector<typename Model::SequenceChunk> chunks(B);
        std::vector<double> bw;
        measure(o, probes, row, [&] {
          for (index_t i = 0; i < B; ++i) {  // the short context, one sequence at a time (not timed)
            caches[i].clear();
            const typename Model::SequenceChunk c{&caches[i], context[i], budget};
            model.forward({&c, 1}, ws, moe::View<float, 2>(logits.data() + i * V, {1, V}), false);
          }
          moe::Stopwatch w;
          for (index_t step = 0; step < n; ++step) {
            for (index_t i = 0; i < B; ++i) {  // greedy: each sequence's argmax is its next token
              next[i] = moe::sampling::argmax(std::span<const float>(logits.data() + i * V, static_cast<std::size_t>(V)));
            }
            for (index_t i = 0; i < B; ++i) chunks[i] = {&caches[i], std::span<const std::int32_t>(&next[i], 1), budget};
            model.forward(chunks, ws, logits.view(), false);
          }
          return static_cast<double>(n * B) / w.seconds();
        }, bw);
        row.bandwidth = median(bw);
        row.fma_flops = probes.last_fma_peak();
        const double mean_ctx = static_cast<double>(kTgContext) + static_cast<double>(n) / 2.0;
        const auto wk = moe::model::weight_bytes(model.weights(), k_used);  // K experts per token
        const double token_bytes = K > 0 ? wk.per_token : info.per_token_bytes;
        const double step = (B == 1 ? token_bytes : moe::bench::step_bytes(model.weights(), k_used, B)) +
                            static_cast<double>(B) * info.kv_token_bytes * mean_ctx;
        row.bytes_per_token = step / static_cast<double>(B);
        row.flops_per_token = 2.0 * (K > 0 ? wk.per_token_params : info.per_token_params);
        if (row.bandwidth > 0) {
          row.limit_ts = row.bandwidth / row.bytes_per_token;
          row.limit = "bandwidth";
          const double compute = row.fma_flops > 0 ? row.fma_flops / row.flops_per_token : 0;
          if (B > 1 && compute > 0 && compute < row.limit_ts) row.limit_ts = compute, row.limit = probes.compute_limit();
        }
        rows.push_back(std::move(row));
      }
    }
  }
  return rows;
}

nlohmann::ordered_json row_json(const Row& r, const ModelInfo& m, const Options& o) {
  using json = nlohmann::ordered_json;
  const Stats s = stats_of(r.ts);
  json j;
  j["test"] = r.test;
  j["n_prompt"] = r.n_prompt;
  j["n_gen"] = r.n_gen;
  j["n_batch"] = r.n_batch;
  j["expert_top_k"] = r.expert_top_k;
  j["avg_ts"] = s.avg;
  j["stddev_ts"] = s.stddev;
  j["min_ts"] = s.min;
  j["max_ts"] = s.max;
  j["median_ts"] = s.median;
  j["samples_ts"] = r.ts;
  j["limit_ts"] = r.limit_ts > 0 ? json(r.limit_ts) : json(nullptr);
  j["limit"] = r.limit_ts > 0 ? json(r.limit) : json(nullptr);
  j["roofline_fraction"] = r.limit_ts > 0 ? json(s.median / r.limit_ts) : json(nullptr);
  j["backend"] = m.backend;
  j["threads"] = m.threads;
  j["model"] = m.name;
  j["type"] = m.type;
  j["weights_bytes"] = m.weights_bytes;
  j["params"] = m.params;
  j["bytes_per_token"] = r.bytes_per_token;
  j["flops_per_token"] = r.flops_per_token;
  j["bandwidth_gbs"] = r.bandwidth / 1e9;
  j["fma_gflops"] = r.fma_flops / 1e9;
  j["int8_gops"] = r.int8_ops > 0 ? json(r.int8_ops / 1e9) : json(nullptr);
  j["mmap"] = m.mmap;
  j["mlock"] = m.mlock;
  j["repacked_tensors"] = m.repack.tensors;
  j["repacked_bytes"] = m.repack.bytes;
  j["repack_s"] = m.repack.seconds;
  j["peak_rss_bytes"] = peak_rss_bytes();
  j["probe_bytes"] = static_cast<double>(o.probe_mb << 20);  // the bandwidth probe's buffer, part of the RSS
  if (!o.compare.empty()) {
    j["compare_cmd"] = o.compare;
    const double other = median(r.compare_ts);
    j["compare_samples_ts"] = r.compare_ts;
    j["compare_ts"] = r.compare_ts.empty() ? json(nullptr) : json(other);
    j["compare_ratio"] = r.compare_ts.empty() || other <= 0 ? json(nullptr) : json(s.median / other);
    j["compare_output"] = r.compare_output;
  }
  return j;
}

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
  return fmt::format("{:.2f} MiB", b / (1024.0 * 1024));
}
std::string human_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f} B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.2f} M", n / 1e6);
  return fmt::format("{:.0f}", n);
}

void print_markdown(const std::vector<Row>& rows, const ModelInfo& m, const Options& o) {
  const bool cmp = !o.compare.empty();
  std::string out = "| model | size | params | backend | threads | type | test | t/s | limit t/s | % of limit | limit |";
  out += cmp ? " other t/s | ratio |\n" : "\n";
  out += "| --- | ---: | ---: | --- | ---: | --- | --- | ---: | ---: | ---: | --- |";
  out += cmp ? " ---: | ---: |\n" : "\n";
  for (const Row& r : rows) {
    const Stats s = stats_of(r.ts);
    const std::string limit = r.limit_ts > 0 ? fmt::format("{:.2f}", r.limit_ts) : "n/a";
    const std::string frac = r.limit_ts > 0 ? fmt::format("{:.1f}%", 100.0 * s.median / r.limit_ts) : "n/a";
    std::string why = "not measured";
    if (r.limit == "FMA peak") why = fmt::format("FMA {:.0f} GFLOP/s", r.fma_flops / 1e9);
    else if (r.limit == "MMA peak") why = fmt::format("bf16 MMA {:.0f} TFLOP/s", r.fma_flops / 1e12);
    else if (r.limit == "int8 peak") why = fmt::format("int8 {:.0f} GOP/s", r.int8_ops / 1e9);
    else if (r.limit_ts > 0) why = fmt::format("BW {:.1f} GB/s", r.bandwidth / 1e9);
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {:.2f} ± {:.2f} | {} | {} | {} |", m.name,
                       human_bytes(m.weights_bytes), human_count(m.params), m.backend, m.threads, m.type, r.label(),
                       s.median, s.stddev, limit, frac, why);
    if (cmp) {
      if (r.compare_ts.empty()) {
        out += fmt::format(" n/a ({}) | n/a |", r.compare_output.empty() ? "no output" : r.compare_output);
      } else {
        const double other = median(r.compare_ts);
        out += fmt::format(" {:.2f} | {:.3f} |", other, other > 0 ? s.median / other : 0.0);
      }
    }
    out += "\n";
  }
  const std::string place = !m.mmap                 ? "made or loaded into memory"
                            : m.repack.tensors == 0 ? "used in place from the mapped file"
                                                    : "mapped from the file";
  const std::string repacked =
      m.repack.tensors == 0 ? ""
                            : fmt::format(", {} matrices ({}) repacked at load into the cpu's 8-row interleaved layout in {:.2f} s",
                                          m.repack.tensors, human_bytes(static_cast<double>(m.repack.bytes)), m.repack.seconds);
  out += fmt::format("\nt/s: median of {} runs after a warm-up (± stddev); weights {}{} ({}), peak RSS {} (with the {} MiB "
                     "bandwidth probe){}\n", o.reps, place, repacked,
                     m.mlock ? "locked" : "not locked", human_bytes(peak_rss_bytes()), o.probe_mb,
                     cmp ? fmt::format("; other: '{}', run after each of moe-bench's runs", o.compare) : "");
  std::fputs(out.c_str(), stdout);
}

// --write-gguf / --write-hf of the synthetic weights (host tensors under their bind names).
template <class MadeList>
void write_files(const Options& o, const nlohmann::json& config, const moe::ModelConfig& cfg, const MadeList& made) {
  const std::vector<moe::model::NamedTensor> tensors = moe::model::checkpoint_tensors(cfg, made);
  if (!o.write_gguf.empty()) {
    const moe::model::TensorListSource src(tensors);
    moe::io::GgufExportOptions eo;
    eo.type = o.type;
    const auto report = moe::io::export_gguf(cfg, src, o.write_gguf, eo);
    std::fputs(fmt::format("moe-bench: wrote {} ({} tensors, {:.1f} MB of tensor data{})\n", o.write_gguf, report.tensors,
                           static_cast<double>(report.bytes) / 1e6,
                           report.fallbacks.empty() ? "" : fmt::format(", {} fell back to another type", report.fallbacks.size()))
                   .c_str(),
               stderr);
  }
  if (!o.write_hf.empty()) {
    moe::io::export_hf_folder(o.write_hf, config, tensors);
    std::fputs(fmt::format("moe-bench: wrote {}/config.json and model.safetensors ({} tensors{})\n", o.write_hf,
                           tensors.size(), moe::is_block_dtype(*moe::parse_dtype(o.type)) ? ", block type as bf16" : "")
                   .c_str(),
               stderr);
  }
}

template <class Backend>
int run(const Options& o) {
  constexpr bool kHost = moe::is_host_memory_v<typename Backend::memory>;
  const bool writes = !o.write_gguf.empty() || !o.write_hf.empty();
  const bool tests = !o.n_prompt.empty() || !o.n_gen.empty();
  ModelInfo info;
  info.backend = std::string(Backend::name);
  std::shared_ptr<const moe::BasicModel<Backend>> model;
  if (!o.synthetic.empty()) {
    const nlohmann::json config = moe::bench::synthetic_config_from(o.synthetic, o.layers);
    const moe::DType dtype = *moe::parse_dtype(o.type);
    // A shape's name, or the folder of a config.json path ("tests/.../qwen3_moe/config.json": qwen3_moe).
    const std::string folder = std::filesystem::path(o.synthetic).parent_path().filename().string();
    info.name = moe::bench::is_config_path(o.synthetic) && !folder.empty() ? folder : o.synthetic;
    if (o.layers > 0) info.name += fmt::format(" ({} layer{})", o.layers, o.layers == 1 ? "" : "s");
    if constexpr (kHost) {
      auto source = std::make_shared<moe::model::SyntheticSource<Backend>>(dtype, o.seed);
      model = moe::model::make_synthetic_model<Backend>(config, source);
      if (writes) write_files(o, config, model->config(), source->made());
    } else {
      if (writes) {  // the files come from host weights of the same seed
        auto host = std::make_shared<moe::model::SyntheticSource<moe::backend::cpu>>(dtype, o.seed);
        const auto host_model = moe::model::make_synthetic_model<moe::backend::cpu>(config, host);
        write_files(o, config, host_model->config(), host->made());
      }
      if (tests) model = moe::model::make_synthetic_model<Backend>(config, dtype, o.seed);
    }
    info.mmap = false;
  } else {
    model = moe::load_model<Backend>(o.model);
    info.name = std::filesystem::path(o.model).filename().string();
    if (info.name.empty()) info.name = std::filesystem::path(o.model).parent_path().filename().string();
    info.mmap = kHost;  // host backends use the mapped file in place; a device backend uploads
  }
  if (!tests) return 0;
  if (o.mlock) {
    info.mlock = ::mlockall(MCL_CURRENT) == 0;  // what is mapped now: the weights
    if (!info.mlock) {
      std::fputs(fmt::format("moe-bench: warning: --mlock: mlockall failed ({}); running unlocked\n", std::strerror(errno)).c_str(),
                 stderr);
    }
  }
  const auto& wb = model->weight_bytes();
  info.repack = model->repack_info();
  info.type = main_type(model->weights());
  if constexpr (moe::backend::is_cpu_simd_v<Backend>) info.int8_prefill = moe::bench::cpu_prefill_is_int8(*moe::parse_dtype(info.type));
  info.weights_bytes = static_cast<double>(wb.total);
  info.params = wb.params;
  info.per_token_bytes = wb.per_token;
  info.per_token_params = wb.per_token_params;
  info.kv_token_bytes = static_cast<double>(model->kv_cache_bytes(1));
  info.threads = moe::max_threads();
  Probes probes(o, kHost);
  const std::vector<Row> rows = run_tests(o, *model, info, probes);
  if (o.output == "json") {
    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
    for (const Row& r : rows) arr.push_back(row_json(r, info, o));
    std::fputs((arr.dump(2) + "\n").c_str(), stdout);
  } else {
    print_markdown(rows, info, o);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return moe::cli::run_tool("moe-bench", [&] {
    const Options o = moe::bench_tool::parse_options(argc, argv);
    if (o.help) {
      std::fputs(moe::bench_tool::kUsage, stdout);
      return 0;
    }
    if (o.threads > 0) moe::set_num_threads(o.threads);
    if (!moe::cli::backend_available(o.backend)) {
      std::fputs(fmt::format("moe-bench: --backend {}: no device\n", o.backend).c_str(), stderr);
      return moe::cli::kExitNoDevice;
    }
    return moe::cli::with_backend(o.backend, [&](auto tag) { return run<decltype(tag)>(o); });
  });
}
