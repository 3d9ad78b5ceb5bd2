// Whole-model speed on random weights of a real shape, made directly in the backend's memory
// (no files): prefill of a long prompt, batch-1 decode and batched decode at several sequence
// counts, each beside the limit measured in the same run.
//   bench_model --synthetic qwen3-30b-a3b|deepseek-v2-lite|mixtral-8x7b [--layers N] [--backend cpu|cuda]
//               [--prompt 2048] [--gen 32] [--batches 8,32,128] [--reps 3] [--threads N] [--print-config]
//               [--no-prefill] [--no-decode] [--telemetry-ab] [--expert-top-k-list 7,6]
//               [--expert-threshold-list 0.2,0.5 [--expert-min-k 1]]
// With MOE_CUDA_PROFILE=1 (CUDA builds) the per-kernel times of the run are printed at exit: run
// it with --no-decode or --no-prefill to see one phase alone.
// Limits: decode is bound by memory bandwidth (CUDA: device-to-device copy bandwidth, cudaMemcpy
// of 2 GiB, counting read + write; CPU: a parallel read of 1 GiB), so the decode roofline is
// bandwidth ÷ bytes read per token (the weights' per-token bytes from the graph's tensor list,
// plus the KV cache at the mean context); batched decode by bandwidth ÷ the bytes a step reads (the
// dense weights, the experts the batch's picks touch, each sequence's cache) or, when it binds
// first, the bf16 peak; prefill is bound by the bf16
// tensor-core peak (CUDA: cuBLAS bf16 GEMM 8192³ with f32 accumulation). Medians of --reps runs
// after a warm-up; min and max beside them.
#include "common/backend.hpp"
#include "common/cli.hpp"
#include <moe/bench/bandwidth_probe.hpp>
#include <moe/bench/prompt_ids.hpp>
#include <moe/bench/step_bytes.hpp>
#include <moe/bench/synthetic_shapes.hpp>

#include <moe/moe.hpp>

#include <fmt/format.h>

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
#include <cublas_v2.h>
#endif

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Options {
  std::string shape, backend = "cuda";
  int layers = 0;
  moe::index_t prompt = 2048, gen = 32, reps = 3;
  bool prefill = true, decode = true;
  std::vector<moe::index_t> batches{8, 32, 128};
  // Decode variants run interleaved rep by rep (the machines are noisy): the model as is, then one
  // per --expert-top-k-list / --expert-threshold-list value; --telemetry-ab adds the model with
  // expert telemetry off.
  std::vector<std::int32_t> top_k_list;
  std::vector<float> threshold_list;
  std::int32_t threshold_min_k = 1;
  bool telemetry_ab = false;
};

struct DecodeVariant {
  std::string name;
  moe::ExpertBudget budget;
  bool telemetry = true;
};

std::vector<DecodeVariant> decode_variants(const Options& o, moe::index_t top_k) {
  std::vector<DecodeVariant> v{{"", {}, true}};
  if (o.telemetry_ab) v.push_back({"telemetry off", {}, false});
  for (const auto k : o.top_k_list) {
    moe::ExpertBudget b;
    b.top_k = k;
    b.validate(top_k, "--expert-top-k-list");
    v.push_back({fmt::format("experts top-{}", k), b, true});
  }
  for (const auto t : o.threshold_list) {
    moe::ExpertBudget b;
    b.threshold = t;
    b.min_k = o.threshold_min_k;
    b.validate(top_k, "--expert-threshold-list");
    v.push_back({fmt::format("experts threshold {} (min {})", t, o.threshold_min_k), b, true});
  }
  return v;
}

struct Stat {
  double median = 0, min = 0, max = 0;
};
Stat stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return {n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v.front(), v.back()};
}

template <class F>
Stat timed(moe::index_t reps, F&& f) {  // seconds per run; run 0 is the warm-up
  std::vector<double> t;
  for (moe::index_t r = 0; r <= reps; ++r) {
    moe::Stopwatch w;
    f();
    if (r > 0) t.push_back(w.seconds());
  }
  return stats(t);
}

using moe::bench::make_ids;

// Bytes per second the memory system moves, and the bf16 matrix peak (FLOP/s; 0 if not measured).
struct Limits {
  double bandwidth = 0, bf16_flops = 0;
  std::string bandwidth_name, flops_name;
};

template <class Backend>
Limits measure_limits() {
  Limits l;
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
  if constexpr (std::is_same_v<Backend, moe::backend::cuda>) {
    const std::size_t bytes = std::size_t{2} << 30;
    moe::Buffer<std::byte, moe::device_memory> a(bytes), b(bytes);
    const Stat copy = timed(5, [&] {
      MOE_CUDA_CHECK(cudaMemcpy(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice));
      MOE_CUDA_CHECK(cudaDeviceSynchronize());
    });
    l.bandwidth = 2.0 * static_cast<double>(bytes) / copy.median;
    l.bandwidth_name = "HBM copy bandwidth (D2D, read+write)";
    const int n = 8192;
    moe::Buffer<moe::bf16, moe::device_memory> x(std::size_t(n) * n), w(std::size_t(n) * n);
    moe::Buffer<float, moe::device_memory> y(std::size_t(n) * n);
    moe::kernels::fill_uniform(Backend{}, x.view(), 1, 1.0f, 0.0f);
    moe::kernels::fill_uniform(Backend{}, w.view(), 2, 1.0f, 0.0f);
    cublasHandle_t h;
    moe::require(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, moe::ErrorCode::kDevice, "cublasCreate failed");
    const float one = 1, zero = 0;
    const Stat gemm = timed(5, [&] {
      cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, w.data(), CUDA_R_16BF, n, x.data(), CUDA_R_16BF, n, &zero,
                   y.data(), CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      MOE_CUDA_CHECK(cudaDeviceSynchronize());
    });
    cublasDestroy(h);
    l.bf16_flops = 2.0 * n * double(n) * n / gemm.median;
    l.flops_name = "bf16 tensor-core GEMM (cuBLAS 8192^3, f32 accumulate)";
    return l;
  }
#endif
  // Host: every thread streams its share of 1 GiB (bandwidth_probe.hpp).
  const moe::bench::BandwidthProbe probe(std::size_t{1} << 30);
  std::vector<double> samples;
  for (int r = 0; r < 6; ++r) samples.push_back(probe.sample());
  const Stat read = stats(std::vector<double>(samples.begin() + 1, samples.end()));
  const std::size_t n = probe.bytes() / sizeof(float);
  l.bandwidth = static_cast<double>(n * sizeof(float)) / read.median;
  l.bandwidth_name = "read bandwidth (parallel sum of 1 GiB)";
  return l;
}

using moe::bench::step_bytes;  // moe/bench/step_bytes.hpp

template <class Backend>
int run(const Options& o) {
  const Limits lim = measure_limits<Backend>();
  const auto model = moe::model::make_synthetic_model<Backend>(moe::bench::synthetic_config(o.shape, o.layers),
                                                               moe::DType::bf16);
  const auto& cfg = model->config();
  const auto& wb = model->weight_bytes();
  const moe::index_t V = cfg.vocab_size;
  const moe::index_t n_ctx = o.prompt + o.gen + 1;
  std::fputs(fmt::format("{} ({} layers, {} experts top-{}), bf16 random weights made in {} memory, "
                         "backend {}\nweights {:.2f} GB, {:.1f} MB read per decode token; {}: {:.0f} GB/s; {}: "
                         "{:.0f} TFLOP/s\n\n",
                         o.shape, cfg.n_layers, cfg.n_experts, cfg.top_k, Backend::memory::name,
                         Backend::name, wb.total / 1e9, wb.per_token / 1e6, lim.bandwidth_name, lim.bandwidth / 1e9,
                         lim.flops_name.empty() ? "matrix peak (not measured here)" : lim.flops_name,
                         lim.bf16_flops / 1e12)
                 .c_str(),
             stdout);
  // FLOPs per token of the weight matmuls (2 per weight read); attention's are left out.
  const double flops_per_token = 2.0 * wb.per_token / 2.0;
  const double kv_token_bytes = static_cast<double>(model->kv_cache_bytes(1));
  std::fputs("| test | tok/s (median) | min | max | limit tok/s | fraction of limit |\n|---|---:|---:|---:|---:|---:|\n",
             stdout);
  const auto row = [&](const std::string& name, moe::index_t tokens, const Stat& s, double limit) {
    const std::string lim_text = limit > 0 ? fmt::format("{:.1f}", limit) : "n/a";
    const std::string frac = limit > 0 ? fmt::format("{:.1f}%", 100.0 * (tokens / s.median) / limit) : "n/a";
    std::fputs(fmt::format("| {} | {:.1f} | {:.1f} | {:.1f} | {} | {} |\n", name, tokens / s.median, tokens / s.max,
                           tokens / s.min, lim_text, frac)
                   .c_str(),
               stdout);
    std::fflush(stdout);
  };

  // Prefill of one prompt.
  const auto prompt = make_ids(o.prompt, V, 1);
  if (o.prefill) {
    auto cache = model->make_cache(n_ctx);
    auto ws = model->make_workspace(o.prompt);
    moe::Tensor<float, 2> logits({1, V});
    const typename moe::BasicModel<Backend>::SequenceChunk ch{&cache, prompt};
    const Stat s = timed(o.reps, [&] {
      cache.clear();
      model->forward({&ch, 1}, ws, logits.view(), false);
    });
    row(fmt::format("pp{}", o.prompt), o.prompt, s, lim.bf16_flops > 0 ? lim.bf16_flops / flops_per_token : 0);
  }
  // Decode: batch 1 after a short prompt, then `batch` sequences at once.
  for (const moe::index_t batch : [&] {
         std::vector<moe::index_t> b;
         if (!o.decode) return b;
         b.push_back(1);
         b.insert(b.end(), o.batches.begin(), o.batches.end());
         return b;
       }()) {
    std::vector<typename moe::BasicModel<Backend>::Cache> caches;
    for (moe::index_t i = 0; i < batch; ++i) caches.push_back(model->make_cache(o.gen + 2));
    auto ws = model->make_workspace(std::max<moe::index_t>(batch, 1));
    moe::Tensor<float, 2> logits({batch, V});
    std::vector<std::int32_t> tokens = make_ids(batch, V, 7);
    std::vector<typename moe::BasicModel<Backend>::SequenceChunk> chunks(batch);
    const auto variants = decode_variants(o, cfg.top_k);
    std::vector<std::vector<double>> times(variants.size());
    for (moe::index_t r = 0; r <= o.reps; ++r) {  // rep 0 warms up; variants interleaved
      for (std::size_t v = 0; v < variants.size(); ++v) {
        ws.set_expert_telemetry(variants[v].telemetry);
        moe::Stopwatch w;
        for (auto& c : caches) c.clear();
        for (moe::index_t step = 0; step < o.gen; ++step) {
          for (moe::index_t i = 0; i < batch; ++i) {
            chunks[i] = {&caches[i], std::span<const std::int32_t>(&tokens[i], 1), variants[v].budget};
          }
          model->forward(chunks, ws, logits.view(), false);
        }
        if (r > 0) times[v].push_back(w.seconds());
      }
    }
    const Stat s = stats(times[0]);
    // A step reads the dense weights, the experts the batch touches, and every sequence's KV
    // cache at the mean context: bandwidth-bound until the bf16 peak binds.
    const double bytes = step_bytes(model->weights(), cfg.top_k, batch) + batch * kv_token_bytes * (o.gen / 2.0);
    const double bw_limit = lim.bandwidth / bytes * static_cast<double>(batch);
    const double fl_limit = lim.bf16_flops > 0 ? lim.bf16_flops / flops_per_token : 0;
    const bool compute_bound = fl_limit > 0 && fl_limit < bw_limit;
    const double limit = compute_bound ? fl_limit : bw_limit;
    const char* why = compute_bound ? "bf16 peak" : "bandwidth / bytes per step";
    row(batch == 1 ? fmt::format("tg{} (batch 1; limit: {})", o.gen, why)
                   : fmt::format("tg{} x {} sequences ({:.2f} GB per step; limit: {})", o.gen, batch, bytes / 1e9, why),
        batch * o.gen, s, limit);
    for (std::size_t v = 1; v < variants.size(); ++v) {
      const Stat sv = stats(times[v]);
      row(fmt::format("tg{} x {}, {} ({:+.2f}% time vs the model; limit: the model's)", o.gen, batch,
                      variants[v].name, 100.0 * (sv.median / s.median - 1.0)),
          batch * o.gen, sv, limit);
    }
  }
  return 0;
}

std::vector<moe::index_t> parse_list(std::string_view flag, std::string_view text) {
  std::vector<moe::index_t> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    out.push_back(moe::cli::parse_number<moe::index_t>(flag, text.substr(0, comma), 1, 4096));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  moe::require(!out.empty(), moe::ErrorCode::kInvalidArgument, "{}: empty list", flag);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  return moe::cli::run_tool("bench_model", [&] {
    Options o;
    bool print_config = false;
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      auto value = [&]() -> std::string_view {
        moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
        return argv[++i];
      };
      if (flag == "--synthetic") o.shape = value();
      else if (flag == "--layers") o.layers = moe::cli::parse_number<int>(flag, value(), 1, 1024);
      else if (flag == "--backend") o.backend = value();
      else if (flag == "--prompt") o.prompt = moe::cli::parse_number<moe::index_t>(flag, value(), 1, 1 << 16);
      else if (flag == "--gen") o.gen = moe::cli::parse_number<moe::index_t>(flag, value(), 1, 1 << 16);
      else if (flag == "--reps") o.reps = moe::cli::parse_number<moe::index_t>(flag, value(), 1, 100);
      else if (flag == "--batches") o.batches = parse_list(flag, value());
      else if (flag == "--threads") moe::set_num_threads(moe::cli::parse_threads(flag, value()));
      else if (flag == "--print-config") print_config = true;
      else if (flag == "--no-prefill") o.prefill = false;
      else if (flag == "--no-decode") o.decode = false;
      else if (flag == "--telemetry-ab") o.telemetry_ab = true;
      else if (flag == "--expert-top-k-list") {
        for (const auto k : parse_list(flag, value())) o.top_k_list.push_back(static_cast<std::int32_t>(k));
      } else if (flag == "--expert-threshold-list") {
        std::string_view text = value();
        while (!text.empty()) {
          const auto comma = text.find(',');
          o.threshold_list.push_back(moe::cli::parse_number<float>(flag, text.substr(0, comma)));
          text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        }
      } else if (flag == "--expert-min-k") {
        o.threshold_min_k = moe::cli::parse_number<std::int32_t>(flag, value(), 1, 1 << 16);
      }
      else moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}'", flag);
    }
    moe::require(!o.shape.empty(), moe::ErrorCode::kInvalidArgument, "--synthetic SHAPE is required ({})",
                 moe::bench::kSyntheticShapes);
    const nlohmann::json config = moe::bench::synthetic_config(o.shape, o.layers);  // checks the name first
    if (print_config) {  // the config.json other engines build the same shape from
      std::fputs((config.dump(2) + "\n").c_str(), stdout);
      return 0;
    }
    return moe::cli::with_backend(o.backend, [&](auto tag) { return run<decltype(tag)>(o); });
  });
}
