// bench_kernels: the cpu_simd matmul kernels (f32/bf16/f16 and ggml block-format weights) as
// fractions of this machine's limits, all measured
// in the same run: read bandwidth (2 threads streaming a buffer much larger than the LLC) bounds
// decode GEMV, and the FMA peak (register-resident independent FMA chains on every thread)
// bounds prefill GEMM. Threads pinned; each figure is the median of >= 7 timed runs after a
// warm-up. Each GEMV run is paired with a bandwidth sample taken just before it (memory bandwidth
// on a shared machine drifts by tens of percent within seconds), and its fraction compares the
// two medians.
//
//   bench_kernels [--threads N] [--quick] [--json] [--dtypes LIST]
//     --threads N  OpenMP threads (default: all, i.e. max_threads())
//     --dtypes L   only the rows of these weight formats (comma-separated names: bf16,fp8_e4m3_b128)
//     --quick      small sizes, a few seconds in total (a demo; the fractions are not meaningful)
//     --json       print one JSON document instead of the table
#include <moe/bench/bandwidth_probe.hpp>
#include <moe/bench/fma_probe.hpp>

#include <moe/moe.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using moe::bf16;
using moe::f16;
using moe::index_t;
using moe::View;
using Arch = xsimd::default_arch;
using Batch = xsimd::batch<float, Arch>;
using Clock = std::chrono::steady_clock;

struct Options {
  int threads = 0;
  bool quick = false;
  bool json = false;
  std::vector<std::string> dtypes;  // empty: all

  bool wanted(std::string_view dtype) const {
    return dtypes.empty() || std::find(dtypes.begin(), dtypes.end(), dtype) != dtypes.end();
  }
};

// Median seconds of `runs` timed calls of f after `warmup` untimed ones.
template <class F>
double median_seconds(int runs, int warmup, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    f();
    t.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

volatile float g_sink = 0.0f;  // keeps results alive

// ---- machine limits ----------------------------------------------------------------------------

using moe::bench::BandwidthProbe;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

using moe::bench::measure_fma_peak;  // fma_probe.hpp

// ---- kernels -----------------------------------------------------------------------------------

struct Row {
  std::string kernel, dtype, shape, unit;
  double seconds = 0, rate = 0, fraction = 0;  // rate in GB/s or GFLOP/s
  std::string limit;
  double limit_value = 0;  // the limit the fraction refers to, in the same unit as rate
};

template <class W>
std::vector<W> random_weights(index_t n, std::uint32_t seed) {
  std::vector<W> w(n);
  std::uint32_t state = seed * 2654435761u + 1u;
  moe::parallel_for_chunks(n, 1 << 16, [&](index_t b, index_t e) {
    std::uint32_t s = state ^ static_cast<std::uint32_t>(b);
    for (index_t i = b; i < e; ++i) {
      s = s * 1664525u + 1013904223u;
      w[i] = moe::from_float<W>(static_cast<float>(static_cast<int>(s >> 9) - (1 << 22)) * 0x1p-24f);
    }
  });
  return w;
}

// GEMV, decode-shaped: y [1, out] = x [1, in] · Wᵀ. `copies` distinct weight matrices are cycled
// so that the bytes read per call come from memory, not from the caches, as in decode where each
// weight is touched once per token. Memory bandwidth on a shared machine drifts by tens of
// percent within seconds, so each timed GEMV run is paired with a bandwidth sample taken right
// before it, and the fraction compares the medians of the two.
template <class W>
Row bench_gemv(index_t d_out, index_t d_in, index_t copies, int runs, const BandwidthProbe& probe) {
  const index_t per = d_out * d_in;
  const auto w = random_weights<W>(per * copies, 7);
  std::vector<float> x(d_in, 0.5f), y(d_out);
  auto run = [&] {
    for (index_t c = 0; c < copies; ++c) {
      moe::kernels::matmul(moe::backend::cpu{}, View<const float, 2>(x.data(), {1, d_in}),
                           View<const W, 2>(w.data() + c * per, {d_out, d_in}),
                           View<float, 2>(y.data(), {1, d_out}));
    }
  };
  run();  // warm-up
  std::vector<double> t_gemv, t_bw;
  for (int i = 0; i < runs; ++i) {
    t_bw.push_back(probe.sample());
    const auto start = Clock::now();
    run();
    t_gemv.push_back(std::chrono::duration<double>(Clock::now() - start).count() /
                     static_cast<double>(copies));
  }
  g_sink = y[0];
  Row r;
  r.kernel = copies > 1 ? fmt::format("gemv x{} mats", copies) : "gemv";
  r.dtype = std::string(moe::dtype_name(moe::dtype_of<W>()));
  r.shape = fmt::format("1x{} . {}x{}^T", d_in, d_out, d_in);
  r.seconds = median(t_gemv);
  r.rate = static_cast<double>(per * sizeof(W)) / r.seconds / 1e9;
  r.unit = "GB/s";
  r.limit_value = static_cast<double>(probe.bytes()) / median(t_bw) / 1e9;
  r.fraction = r.rate / r.limit_value;
  r.limit = "read bandwidth";
  return r;
}

// GEMV with weights in a ggml block format (quantized once from random values by the reference
// quantizer, in parallel): the bytes read are the format's row bytes, so the rate compares with
// the read bandwidth as for the dense types.
template <class Q>
Row bench_gemv_block(index_t d_out, index_t d_in, index_t copies, int runs, const BandwidthProbe& probe) {
  // One matrix is quantized (the reference quantizers are slow) and copied to the others.
  const index_t blocks_per_row = d_in / Q::block_elements, rows = d_out;
  std::vector<Q> w(d_out * copies * blocks_per_row);
  moe::parallel_for_chunks(rows, 64, [&](index_t b, index_t e) {
    std::vector<float> row(d_in);
    for (index_t r = b; r < e; ++r) {
      std::uint32_t s = static_cast<std::uint32_t>(r) * 2654435761u + 7u;
      for (auto& v : row) {
        s = s * 1664525u + 1013904223u;
        v = static_cast<float>(static_cast<int>(s >> 9) - (1 << 22)) * 0x1p-24f;
      }
      moe::quant::quantize_row(row.data(), w.data() + r * blocks_per_row, d_in);
    }
  });
  const index_t per = d_out * blocks_per_row;
  for (index_t c = 1; c < copies; ++c) std::copy_n(w.data(), per, w.data() + c * per);
  std::vector<float> x(d_in), y(d_out);
  for (index_t i = 0; i < d_in; ++i) x[i] = 0.5f + 0.25f * static_cast<float>(i % 7);
  auto run = [&] {
    for (index_t c = 0; c < copies; ++c) {
      moe::kernels::matmul(moe::backend::cpu{}, View<const float, 2>(x.data(), {1, d_in}),
                           View<const Q, 2>(w.data() + c * per, {d_out, blocks_per_row}),
                           View<float, 2>(y.data(), {1, d_out}));
    }
  };
  run();  // warm-up
  std::vector<double> t_gemv, t_bw;
  for (int i = 0; i < runs; ++i) {
    t_bw.push_back(probe.sample());
    const auto start = Clock::now();
    run();
    t_gemv.push_back(std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(copies));
  }
  g_sink = y[0];
  Row r;
  r.kernel = copies > 1 ? fmt::format("gemv x{} mats", copies) : "gemv";
  r.dtype = std::string(moe::dtype_name(Q::dtype));
  r.shape = fmt::format("1x{} . {}x{}^T", d_in, d_out, d_in);
  r.seconds = median(t_gemv);
  r.rate = static_cast<double>(per * sizeof(Q)) / r.seconds / 1e9;
  r.unit = "GB/s";
  r.limit_value = static_cast<double>(probe.bytes()) / median(t_bw) / 1e9;
  r.fraction = r.rate / r.limit_value;
  r.limit = "read bandwidth";
  return r;
}

// GEMM, prefill-shaped: y [m, out] = x [m, in] · Wᵀ.
template <class W>
Row bench_gemm(index_t m, index_t d_out, index_t d_in, int runs, double peak) {
  const auto w = random_weights<W>(d_out * d_in, 11);
  const auto x = random_weights<float>(m * d_in, 13);
  std::vector<float> y(m * d_out);
  const double s = median_seconds(runs, 1, [&] {
    moe::kernels::matmul(moe::backend::cpu{}, View<const float, 2>(x.data(), {m, d_in}),
                         View<const W, 2>(w.data(), {d_out, d_in}), View<float, 2>(y.data(), {m, d_out}));
  });
  g_sink = y[0];
  Row r;
  r.kernel = "gemm";
  r.dtype = std::string(moe::dtype_name(moe::dtype_of<W>()));
  r.shape = fmt::format("{}x{} . {}x{}^T", m, d_in, d_out, d_in);
  r.seconds = s;
  r.rate = 2.0 * static_cast<double>(m * d_out * d_in) / s / 1e9;
  r.unit = "GFLOP/s";
  r.limit_value = peak / 1e9;
  r.fraction = r.rate / r.limit_value;
  r.limit = "FMA peak";
  return r;
}

// GEMM with block-format weights (dequantized while packing).
template <class Q>
Row bench_gemm_block(index_t m, index_t d_out, index_t d_in, int runs, double peak) {
  const auto wf = random_weights<float>(d_out * d_in, 11);
  std::vector<Q> w(d_out * d_in / Q::block_elements);
  moe::quant::quantize_row(wf.data(), w.data(), wf.size());
  const auto x = random_weights<float>(m * d_in, 13);
  std::vector<float> y(m * d_out);
  const double s = median_seconds(runs, 1, [&] {
    moe::kernels::matmul(moe::backend::cpu{}, View<const float, 2>(x.data(), {m, d_in}),
                         View<const Q, 2>(w.data(), {d_out, d_in / Q::block_elements}),
                         View<float, 2>(y.data(), {m, d_out}));
  });
  g_sink = y[0];
  Row r;
  r.kernel = "gemm";
  r.dtype = std::string(moe::dtype_name(Q::dtype));
  r.shape = fmt::format("{}x{} . {}x{}^T", m, d_in, d_out, d_in);
  r.seconds = s;
  r.rate = 2.0 * static_cast<double>(m * d_out * d_in) / s / 1e9;
  r.unit = "GFLOP/s";
  r.limit_value = peak / 1e9;
  r.fraction = r.rate / r.limit_value;
  r.limit = "FMA peak";
  return r;
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  if (!(f >> a >> b >> c)) return "n/a";
  return a + " " + b + " " + c;
}

int parse_options(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--json") {
      opt.json = true;
    } else if (a == "--dtypes" && i + 1 < argc) {
      std::string list = argv[++i];
      for (std::size_t b = 0, e; b <= list.size(); b = e + 1) {
        e = std::min(list.find(',', b), list.size());
        if (e > b) opt.dtypes.push_back(list.substr(b, e - b));
      }
    } else if (a == "--threads" && i + 1 < argc) {
      opt.threads = std::atoi(argv[++i]);
      if (opt.threads <= 0) {
        fmt::print(stderr, "bench_kernels: --threads needs a positive number, got '{}'\n", argv[i]);
        return 2;
      }
    } else {
      fmt::print(stderr, "usage: bench_kernels [--threads N] [--quick] [--json] [--dtypes LIST]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const int rc = parse_options(argc, argv, opt); rc >= 0) return rc;
  if (opt.threads > 0) moe::set_num_threads(opt.threads);
  const bool pinned = moe::pin_threads();
  const int threads = moe::max_threads();
  const int runs = 7;
  const std::string load_before = load_average();

  const index_t bw_bytes = opt.quick ? (index_t{64} << 20) : (index_t{1} << 30);
  const BandwidthProbe probe(bw_bytes);
  std::vector<double> bw_samples;
  probe.sample();  // warm-up
  for (int i = 0; i < runs; ++i) bw_samples.push_back(probe.sample());
  const double bandwidth = static_cast<double>(probe.bytes()) / median(bw_samples);
  const double peak = measure_fma_peak(opt.quick ? 2'000'000 : 20'000'000, runs);

  std::vector<Row> rows;
  // The large decode GEMV of the targets: [16384, 4096], far larger than the LLC.
  const index_t big_out = opt.quick ? 4096 : 16384, big_in = opt.quick ? 1024 : 4096;
  if (opt.wanted("bf16")) rows.push_back(bench_gemv<bf16>(big_out, big_in, 1, runs, probe));
  if (opt.wanted("f16")) rows.push_back(bench_gemv<f16>(big_out, big_in, 1, runs, probe));
  if (opt.wanted("f32")) rows.push_back(bench_gemv<float>(big_out, big_in, 1, runs, probe));
  // Decode-sized expert matrices (OLMoE / Qwen3-MoE / DeepSeek-V2-Lite up, gate and down
  // projections), cycling through enough copies to exceed the LLC.
  struct Shape { index_t out, in; };
  const std::vector<Shape> experts = opt.quick ? std::vector<Shape>{{768, 2048}}
                                               : std::vector<Shape>{{768, 2048}, {2048, 768}, {1024, 2048}, {1408, 2048}};
  for (const Shape& e : experts) {
    const index_t copies = std::max<index_t>(1, (opt.quick ? (index_t{48} << 20) : (index_t{512} << 20)) / (e.out * e.in * 2));
    if (opt.wanted("bf16")) rows.push_back(bench_gemv<bf16>(e.out, e.in, copies, runs, probe));
  }
  // Block-format decode GEMV (the formats of Q8_0 and Q4_K_M models first), the big matrix and an
  // expert-sized one cycled past the LLC.
  {
    const auto block_rows = [&](auto tag) {
      using Q = decltype(tag);
      if (!opt.wanted(moe::dtype_name(Q::dtype))) return;
      rows.push_back(bench_gemv_block<Q>(big_out, big_in, 1, runs, probe));
      const index_t bytes = 768 * moe::format_row_bytes(Q::dtype, 2048);
      const index_t copies = std::max<index_t>(1, (opt.quick ? (index_t{48} << 20) : (index_t{512} << 20)) / bytes);
      rows.push_back(bench_gemv_block<Q>(768, 2048, copies, runs, probe));
    };
    block_rows(moe::quant::BlockQ8_0{});
    block_rows(moe::quant::BlockQ4_0{});
    block_rows(moe::quant::BlockQ4_K{});
    block_rows(moe::quant::BlockQ6_K{});
    block_rows(moe::quant::BlockQ5_K{});
    block_rows(moe::quant::BlockIq4Xs{});
    block_rows(moe::quant::BlockFp8E4m3{});  // DeepSeek-V3 / Kimi K2 FP8 checkpoints
  }
  // The prefill GEMM of the targets: 512 x 4096 x 4096.
  const index_t gm = opt.quick ? 128 : 512, gn = opt.quick ? 1024 : 4096, gk = opt.quick ? 1024 : 4096;
  if (opt.wanted("f32")) rows.push_back(bench_gemm<float>(gm, gn, gk, runs, peak));
  if (opt.wanted("bf16")) rows.push_back(bench_gemm<bf16>(gm, gn, gk, runs, peak));
  // Prefill through one expert: few tokens per expert.
  if (opt.wanted("bf16")) rows.push_back(bench_gemm<bf16>(opt.quick ? 16 : 64, 768, 2048, runs, peak));
  if (opt.wanted("q4_K")) rows.push_back(bench_gemm_block<moe::quant::BlockQ4_K>(gm, gn, gk, runs, peak));
  const std::string load_after = load_average();

  if (opt.json) {
    nlohmann::json j;
    j["threads"] = threads;
    j["pinned"] = pinned;
    j["quick"] = opt.quick;
    j["arch"] = Arch::name();
    j["runs"] = runs;
    j["load_average_before"] = load_before;
    j["load_average_after"] = load_after;
    j["read_bandwidth_gbs"] = bandwidth / 1e9;
    j["read_bandwidth_buffer_bytes"] = bw_bytes;
    j["fma_peak_gflops"] = peak / 1e9;
    for (const Row& r : rows) {
      j["results"].push_back({{"kernel", r.kernel}, {"dtype", r.dtype}, {"shape", r.shape},
                              {"median_s", r.seconds}, {"rate", r.rate}, {"unit", r.unit},
                              {"fraction_of_limit", r.fraction}, {"limit", r.limit},
                              {"limit_value", r.limit_value}});
    }
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("bench_kernels: {} threads ({}), xsimd arch {}, median of {} runs{}\n", threads,
             pinned ? "pinned" : "not pinned", Arch::name(), runs, opt.quick ? ", QUICK sizes" : "");
  fmt::print("load average before: {}   after: {}\n", load_before, load_after);
  fmt::print("read bandwidth ({} MiB buffer): {:.1f} GB/s    FMA peak: {:.1f} GFLOP/s\n",
             bw_bytes >> 20, bandwidth / 1e9, peak / 1e9);
  fmt::print("(GEMV fractions use the median of bandwidth samples interleaved with that row's runs)\n\n");
  fmt::print("| {:<16} | {:<6} | {:<24} | {:>10} | {:>15} | {:>28} |\n", "kernel", "dtype", "shape",
             "median", "rate", "fraction of limit");
  fmt::print("|{:-<18}|{:-<8}|{:-<26}|{:->12}|{:->17}|{:->30}|\n", "", "", "", "", "", "");
  for (const Row& r : rows) {
    fmt::print("| {:<16} | {:<6} | {:<24} | {:>7.3f} ms | {:>7.1f} {:<7} | {:>5.1f}% of {:>6.1f} ({:<9}) |\n",
               r.kernel, r.dtype, r.shape, r.seconds * 1e3, r.rate, r.unit, 100.0 * r.fraction,
               r.limit_value, r.limit == "FMA peak" ? "FMA peak" : "bandwidth");
  }
  return 0;
}
