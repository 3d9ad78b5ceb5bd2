// The CUDA backend against the scalar reference kernels on the host: DeviceBuffer ownership and
// error paths, matmul (decode GEMV with 16-byte and 2-byte loads, batched GEMV, tiled GEMM) and
// rmsnorm on fresh random inputs of odd sizes, plus a decode GEMV bandwidth figure (printed).
// Every output buffer is poisoned with NaN before a run; every element must be written and the
// padding between rows left untouched. Set MOE_TEST_SEED to replay a run's inputs.
#include "moe/kernels/cuda/device_buffer.cuh"
#include "moe/kernels/cuda/matmul.cuh"
#include "moe/kernels/cuda/rmsnorm.cuh"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/rmsnorm.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using moe::bf16;
using moe::index_t;
using moe::View;
using moe::cuda::DeviceBuffer;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

constexpr float kEps = std::numeric_limits<float>::epsilon();
constexpr std::uint32_t kPoisonBits = 0xffffffffu;  // cudaMemset(0xff): a quiet NaN in every float

std::uint32_t test_seed() {
  static const std::uint32_t seed = [] {
    std::uint32_t s = 0;
    if (const char* env = std::getenv("MOE_TEST_SEED")) {
      s = static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10));
    } else {
      s = std::random_device{}();
    }
    std::printf("CUDA kernel tests: random seed %u (MOE_TEST_SEED=%u replays it)\n", s, s);
    return s;
  }();
  return seed;
}

std::mt19937& rng() {
  static std::mt19937 gen(test_seed());
  return gen;
}

std::vector<float> random_floats(index_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng());
  return v;
}

std::vector<bf16> random_bf16(index_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<bf16> v(n);
  for (bf16& b : v) b = moe::to_bf16(dist(rng()));
  return v;
}

bool is_poison(float f) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  return bits == kPoisonBits;
}

index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }

// Worst-case elements: the largest |error| and the largest |error| / tolerance seen.
struct ErrorStats {
  double max_abs = 0.0;
  double max_ratio = 0.0;
  index_t unwritten = 0;  // output elements still holding the poison (or any NaN)
  index_t clobbered = 0;  // padding elements the kernel overwrote
  void add(double err, double tol) {
    max_abs = std::max(max_abs, err);
    max_ratio = std::max(max_ratio, tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0));
  }
  bool ok() const { return max_ratio <= 1.0 && unwritten == 0 && clobbered == 0; }
};

// ---- matmul ----------------------------------------------------------------------------------

// How x and W sit in memory. kAligned: padded leading dimensions that keep every row start
// 16-byte aligned (the GEMV's 16-byte path, with a scalar tail when in % 8 != 0). kOddW: W's rows
// start at odd bf16 offsets (2-byte path). kOddX: x starts one float past an aligned address.
enum class Layout { kAligned, kOddW, kOddX };

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kAligned: return "aligned";
    case Layout::kOddW: return "odd-w";
    case Layout::kOddX: return "odd-x";
  }
  return "?";
}

ErrorStats check_matmul(index_t n, index_t in, index_t out, Layout layout) {
  const index_t ld_x = layout == Layout::kOddX ? in + 1 : round_up(std::max<index_t>(in, 1), 4);
  const index_t off_x = layout == Layout::kOddX ? 1 : 0;
  const index_t ld_w = layout == Layout::kOddW ? in + 1 + (in % 2) : round_up(std::max<index_t>(in, 1), 8);
  const index_t off_w = layout == Layout::kOddW ? 1 : 0;
  const index_t ld_y = out + 3;  // padding between output rows must stay poisoned

  const std::vector<float> x_host = random_floats(off_x + n * ld_x);
  const std::vector<bf16> w_host = random_bf16(off_w + out * ld_w);
  const View<const float, 2> x_ref(x_host.data() + off_x, {n, in}, {ld_x, 1});
  const View<const bf16, 2> w_ref(w_host.data() + off_w, {out, in}, {ld_w, 1});
  std::vector<float> y_ref_host(n * ld_y, 0.0f);
  const View<float, 2> y_ref(y_ref_host.data(), {n, out}, {ld_y, 1});
  // An empty reduction (in == 0) gives zeros. The reference is not called for it: it takes
  // &x(t, 0) of the empty row, which trips TensorView's bounds assert in builds without NDEBUG.
  if (in > 0) kernels::matmul(backend::reference{}, x_ref, w_ref, y_ref);

  const auto x_dev = DeviceBuffer<float>::from_host(x_host);
  const auto w_dev = DeviceBuffer<bf16>::from_host(w_host);
  DeviceBuffer<float> y_dev(std::max<index_t>(n * ld_y, 1));
  y_dev.fill_bytes(0xff);
  const auto x_view = x_dev.view<2>({n, in}, {ld_x, 1}, off_x);
  const auto w_view = w_dev.view<2>({out, in}, {ld_w, 1}, off_w);
  if (n >= 1 && n <= static_cast<index_t>(kernels::cuda_detail::kGemvMaxTokens)) {
    // The layout decides which GEMV load path runs; make sure each case exercises the intended one.
    CHECK(kernels::cuda_detail::gemv_vector_loads(x_view, w_view) == (layout == Layout::kAligned));
  }
  kernels::matmul(backend::cuda{}, x_view, w_view, y_dev.view<2>({n, out}, {ld_y, 1}));
  const std::vector<float> y_gpu = y_dev.to_host();

  // Error bound of an f32 dot product of length `in` in any summation order (with or without
  // FMA): |err| <= gamma_in * sum|x*w| with gamma_in = in*u/(1-in*u), u = eps/2. The reference
  // is exact to 0.5 ulp; allow in*eps (twice gamma) plus that half ulp.
  ErrorStats stats;
  for (index_t t = 0; t < n; ++t) {
    for (index_t o = 0; o < out; ++o) {
      double abs_sum = 0.0;
      for (index_t k = 0; k < in; ++k) {
        abs_sum += std::fabs(static_cast<double>(x_ref(t, k)) * moe::to_float(w_ref(o, k)));
      }
      const float got = y_gpu[t * ld_y + o];
      const float want = y_ref(t, o);
      if (std::isnan(got)) {
        ++stats.unwritten;
        continue;
      }
      const double tol = static_cast<double>(in) * kEps * abs_sum + 0.5 * kEps * std::fabs(want);
      stats.add(std::fabs(static_cast<double>(got) - want), tol);
    }
    for (index_t o = out; o < ld_y; ++o) stats.clobbered += !is_poison(y_gpu[t * ld_y + o]);
  }
  return stats;
}

struct Shape {
  index_t n, in, out;
};

void run_matmul_cases(const std::vector<Shape>& shapes, const char* path) {
  for (const Shape& s : shapes) {
    for (Layout layout : {Layout::kAligned, Layout::kOddW, Layout::kOddX}) {
      const ErrorStats st = check_matmul(s.n, s.in, s.out, layout);
      std::printf("matmul %-6s n=%-3zu in=%-5zu out=%-4zu %-8s max|err| %.2e  err/tol %.3f  unwritten %zu  "
                  "clobbered %zu  %s\n",
                  path, s.n, s.in, s.out, layout_name(layout), st.max_abs, st.max_ratio, st.unwritten,
                  st.clobbered, st.ok() ? "ok" : "FAIL");
      INFO("matmul n=" << s.n << " in=" << s.in << " out=" << s.out << " layout=" << layout_name(layout)
                       << " seed=" << test_seed());
      CHECK(st.unwritten == 0);
      CHECK(st.clobbered == 0);
      CHECK(st.max_ratio <= 1.0);
    }
  }
}

// ---- rmsnorm ---------------------------------------------------------------------------------

template <class W>
ErrorStats check_rmsnorm(index_t n, index_t d, float eps, bool in_place) {
  const index_t ld_x = d + 3;
  const index_t ld_y = in_place ? ld_x : d + 5;
  const std::vector<float> x_host = random_floats(n * ld_x, -2.0f, 2.0f);
  std::vector<W> w_host(d);
  {
    const std::vector<float> w_f = random_floats(d, 0.5f, 1.5f);  // like 1 + 0.1·randn norm weights
    for (index_t i = 0; i < d; ++i) w_host[i] = moe::from_float<W>(w_f[i]);
  }
  const View<const float, 2> x_ref(x_host.data(), {n, d}, {ld_x, 1});
  const View<const W, 1> w_ref(w_host.data(), {d});
  std::vector<float> y_ref_host(n * ld_y, 0.0f);
  const View<float, 2> y_ref(y_ref_host.data(), {n, d}, {ld_y, 1});
  kernels::rmsnorm(backend::reference{}, x_ref, w_ref, eps, y_ref);

  auto x_dev = DeviceBuffer<float>::from_host(x_host);
  const auto w_dev = DeviceBuffer<W>::from_host(w_host);
  DeviceBuffer<float> y_dev(n * ld_y);
  if (in_place) {
    // y aliases x exactly; the padding between rows is poisoned so stray writes show.
    std::vector<float> poison(ld_x - d);
    std::memset(poison.data(), 0xff, poison.size() * sizeof(float));
    for (index_t r = 0; r < n; ++r) x_dev.upload(poison, r * ld_x + d);
    const auto xy = x_dev.view<2>({n, d}, {ld_x, 1});
    kernels::rmsnorm(backend::cuda{}, View<const float, 2>(xy), w_dev.template view<1>({d}), eps, xy);
  } else {
    y_dev.fill_bytes(0xff);
    kernels::rmsnorm(backend::cuda{}, x_dev.view<2>({n, d}, {ld_x, 1}), w_dev.template view<1>({d}), eps,
                     y_dev.view<2>({n, d}, {ld_y, 1}));
  }
  const std::vector<float> y_gpu = in_place ? x_dev.to_host() : y_dev.to_host();

  // Relative error budget (eps = f32 epsilon = 2u) per element, GPU vs the reference, which sums
  // in double: the f32 sum of d positive squares is off by at most (d-1)u relative, halved by
  // the square root; the mean, + eps and rsqrtf (2 ulp) add ~4 eps; the two products 1 eps on
  // each side. Total: (d/4 + 6) eps, doubled for headroom -> (d/2 + 12) eps.
  ErrorStats stats;
  const double rel = (static_cast<double>(d) / 2.0 + 12.0) * kEps;
  for (index_t r = 0; r < n; ++r) {
    for (index_t i = 0; i < d; ++i) {
      const float got = y_gpu[r * ld_y + i];
      const float want = y_ref(r, i);
      if (std::isnan(got)) {
        ++stats.unwritten;
        continue;
      }
      stats.add(std::fabs(static_cast<double>(got) - want),
                rel * std::fabs(want) + std::numeric_limits<float>::denorm_min());
    }
    for (index_t i = d; i < ld_y; ++i) stats.clobbered += !is_poison(y_gpu[r * ld_y + i]);
  }
  return stats;
}

template <class W>
void run_rmsnorm_cases(const char* wname) {
  const std::vector<std::pair<index_t, index_t>> shapes = {{1, 1}, {3, 7}, {2, 33}, {5, 1000},
                                                           {4, 4097}, {2, 7168}, {17, 129}};
  for (const auto& [n, d] : shapes) {
    for (bool in_place : {false, true}) {
      const float eps = in_place ? 1e-5f : 1e-6f;
      const ErrorStats st = check_rmsnorm<W>(n, d, eps, in_place);
      std::printf("rmsnorm w=%-4s n=%-3zu d=%-5zu %-9s max|err| %.2e  err/tol %.3f  unwritten %zu  "
                  "clobbered %zu  %s\n",
                  wname, n, d, in_place ? "in-place" : "separate", st.max_abs, st.max_ratio,
                  st.unwritten, st.clobbered, st.ok() ? "ok" : "FAIL");
      INFO("rmsnorm w=" << wname << " n=" << n << " d=" << d << " in_place=" << in_place
                        << " seed=" << test_seed());
      CHECK(st.unwritten == 0);
      CHECK(st.clobbered == 0);
      CHECK(st.max_ratio <= 1.0);
    }
  }
}

// ---- timing ----------------------------------------------------------------------------------

// Median time of one call of f in milliseconds, over `reps` calls after `warmup` calls, timed
// with CUDA events on the default stream.
template <class F>
double median_ms(F&& f, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) f();
  cudaEvent_t start{}, stop{};
  MOE_CUDA_CHECK(cudaEventCreate(&start));
  MOE_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms(reps);
  for (int i = 0; i < reps; ++i) {
    MOE_CUDA_CHECK(cudaEventRecord(start));
    f();
    MOE_CUDA_CHECK(cudaEventRecord(stop));
    MOE_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0.0f;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    ms[i] = t;
  }
  MOE_CUDA_CHECK(cudaEventDestroy(start));
  MOE_CUDA_CHECK(cudaEventDestroy(stop));
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[reps / 2];
}

}  // namespace

// ---- DeviceBuffer ----------------------------------------------------------------------------

TEST_CASE("DeviceBuffer: upload/download round trip, move-only ownership, checked ranges", "[cuda]") {
  const std::vector<float> host = random_floats(1001);
  DeviceBuffer<float> a = DeviceBuffer<float>::from_host(host);
  REQUIRE(a.size() == 1001);
  REQUIRE(a.bytes() == 1001 * sizeof(float));
  CHECK(a.to_host() == host);

  // Partial upload/download at an offset.
  const std::vector<float> patch = {1.0f, 2.0f, 3.0f};
  a.upload(patch, 500);
  std::vector<float> back(3);
  a.download(back, 500);
  CHECK(back == patch);

  // Moves transfer the allocation; the source is left empty.
  const float* p = a.data();
  DeviceBuffer<float> b(std::move(a));
  CHECK(b.data() == p);
  CHECK(a.data() == nullptr);  // NOLINT(bugprone-use-after-move): documented moved-from state
  CHECK(a.size() == 0);
  DeviceBuffer<float> c(7);
  c = std::move(b);
  CHECK(c.data() == p);
  CHECK(b.empty());  // NOLINT(bugprone-use-after-move)
  static_assert(!std::is_copy_constructible_v<DeviceBuffer<float>>);
  static_assert(!std::is_copy_assignable_v<DeviceBuffer<float>>);

  // Ranges are checked before any copy.
  std::vector<float> big(1002);
  try {
    c.upload(big);
    FAIL("upload past the end did not throw");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
  }
  CHECK_THROWS_AS(c.download(std::span<float>(big.data(), 2), 1000), moe::Error);
  CHECK_THROWS_AS(c.view<2>({10, 101}), moe::Error);                // 1010 elements > 1001
  CHECK_THROWS_AS(c.view<2>({2, 500}, {501, 1}, 2), moe::Error);    // last element 1002
  CHECK_NOTHROW(c.view<2>({2, 500}, {501, 1}, 0));                  // last element 1000

  DeviceBuffer<float> empty(0);
  CHECK(empty.data() == nullptr);
  CHECK(empty.to_host().empty());
}

TEST_CASE("DeviceBuffer: a failed cudaMalloc is a moe::Error(kDevice) naming the call", "[cuda]") {
  try {
    DeviceBuffer<float> huge(index_t{1} << 60);  // 4 EiB: no device has it
    FAIL("allocation of 4 EiB succeeded");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kDevice);
    const std::string what = e.what();
    CHECK(what.find("cudaMalloc") != std::string::npos);
    CHECK(what.find("out of memory") != std::string::npos);  // cudaGetErrorString's text
  }
  // The failure is not sticky: the device still works.
  const std::vector<float> host = {1.0f, -2.0f};
  CHECK(DeviceBuffer<float>::from_host(host).to_host() == host);
  // Byte counts that overflow size_t are rejected before calling CUDA.
  CHECK_THROWS_AS(DeviceBuffer<double>(std::numeric_limits<index_t>::max() / 4), moe::Error);
}

TEST_CASE("MOE_CUDA_CHECK turns a failing runtime call into kDevice with the call's text", "[cuda]") {
  float* dst = nullptr;
  try {
    // Copying to a null device pointer is rejected by the runtime (invalid argument).
    MOE_CUDA_CHECK(cudaMemcpy(dst, &dst, 4, cudaMemcpyHostToDevice));
    FAIL("cudaMemcpy to nullptr did not fail");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kDevice);
    CHECK(std::string(e.what()).find("cudaMemcpy(dst, &dst, 4, cudaMemcpyHostToDevice)") !=
          std::string::npos);
  }
}

// ---- matmul ----------------------------------------------------------------------------------

TEST_CASE("matmul(cuda) decode GEMV matches the reference (16-byte and 2-byte loads)", "[cuda][matmul]") {
  run_matmul_cases({{1, 1, 1}, {1, 7, 5}, {1, 8, 1}, {1, 33, 3}, {1, 257, 129}, {1, 1000, 257},
                    {1, 1001, 333}, {1, 4099, 67}, {1, 0, 5}},
                   "gemv");
}

TEST_CASE("matmul(cuda) batched GEMV (2..8 tokens) matches the reference", "[cuda][matmul]") {
  run_matmul_cases({{2, 129, 33}, {3, 1001, 65}, {4, 16, 9}, {5, 64, 7}, {6, 300, 17}, {7, 9, 31},
                    {8, 515, 130}},
                   "batch");
}

TEST_CASE("matmul(cuda) tiled GEMM (more than 8 tokens) matches the reference", "[cuda][matmul]") {
  run_matmul_cases({{9, 17, 3}, {13, 300, 111}, {64, 128, 64}, {65, 129, 65}, {100, 1001, 257},
                    {130, 37, 200}},
                   "gemm");
}

TEST_CASE("matmul(cuda) rejects mismatched shapes and non-unit inner strides", "[cuda][matmul]") {
  DeviceBuffer<float> x(64), y(64);
  const DeviceBuffer<bf16> w(64);  // const: its views are View<const bf16>, as the kernels take
  auto expect_invalid = [](auto&& f) {
    try {
      f();
      FAIL("no exception");
    } catch (const moe::Error& e) {
      CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
    }
  };
  expect_invalid([&] {  // in of x (4) != in of w (8)
    kernels::matmul(backend::cuda{}, x.view<2>({2, 4}), w.view<2>({4, 8}), y.view<2>({2, 4}));
  });
  expect_invalid([&] {  // y has the wrong number of columns
    kernels::matmul(backend::cuda{}, x.view<2>({2, 8}), w.view<2>({4, 8}), y.view<2>({2, 5}));
  });
  expect_invalid([&] {  // innermost stride 2
    kernels::matmul(backend::cuda{}, x.view<2>({2, 8}, {16, 2}), w.view<2>({4, 8}), y.view<2>({2, 4}));
  });
}

// ---- rmsnorm ---------------------------------------------------------------------------------

TEST_CASE("rmsnorm(cuda) with f32 weights matches the reference", "[cuda][rmsnorm]") {
  run_rmsnorm_cases<float>("f32");
}

TEST_CASE("rmsnorm(cuda) with bf16 weights matches the reference", "[cuda][rmsnorm]") {
  run_rmsnorm_cases<bf16>("bf16");
}

TEST_CASE("rmsnorm(cuda) rejects mismatched shapes", "[cuda][rmsnorm]") {
  DeviceBuffer<float> x(64), y(64);
  const DeviceBuffer<float> w(64);
  try {
    kernels::rmsnorm(backend::cuda{}, x.view<2>({2, 8}), w.view<1>({7}), 1e-5f, y.view<2>({2, 8}));
    FAIL("no exception");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
  }
}

// ---- decode bandwidth (printed for information) ---------------------------------------------

TEST_CASE("matmul(cuda) decode GEMV bandwidth against a device-to-device copy", "[cuda][perf]") {
  // Mixtral-8x7B expert shapes: w1/w3 [14336, 4096] and w2 [4096, 14336], 112 MiB of bf16 each,
  // larger than the 50 MiB L2, so every call streams W from HBM.
  struct PerfShape {
    index_t n, in, out;
  };
  const PerfShape shapes[] = {{1, 4096, 14336}, {1, 14336, 4096}, {4, 4096, 14336}, {8, 4096, 14336}};
  constexpr int kWarmup = 3, kReps = 20;

  // Copy bandwidth on a buffer of the same size, counting bytes read plus bytes written.
  const index_t copy_elems = index_t{4096} * 14336 / 2;  // floats: the same bytes as one W
  DeviceBuffer<float> src(copy_elems), dst(copy_elems);
  src.fill_bytes(0);
  const double copy_ms = median_ms(
      [&] { MOE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), cudaMemcpyDeviceToDevice)); },
      kWarmup, kReps);
  const double copy_gbs = 2.0 * static_cast<double>(src.bytes()) / (copy_ms * 1e-3) / 1e9;
  std::printf("\ndevice-to-device copy %.0f MiB: %.3f ms, %.0f GB/s (read + write)\n",
              static_cast<double>(src.bytes()) / (1 << 20), copy_ms, copy_gbs);
  std::printf("| n_tokens | in    | out   | path        | time (us) | GB/s  | of copy |\n");
  std::printf("|---------:|------:|------:|-------------|----------:|------:|--------:|\n");

  for (const PerfShape& s : shapes) {
    const std::vector<bf16> w_host = random_bf16(s.out * s.in);
    const std::vector<float> x_host = random_floats(s.n * s.in);
    const auto w_dev = DeviceBuffer<bf16>::from_host(w_host);
    const auto x_dev = DeviceBuffer<float>::from_host(x_host);
    DeviceBuffer<float> y_dev(s.n * s.out);
    const auto x = x_dev.view<2>({s.n, s.in});
    const auto w = w_dev.view<2>({s.out, s.in});
    const auto y = y_dev.view<2>({s.n, s.out});
    REQUIRE(kernels::cuda_detail::gemv_vector_loads(x, w));
    const double ms = median_ms([&] { kernels::matmul(backend::cuda{}, x, w, y); }, kWarmup, kReps);
    const double bytes = static_cast<double>(w_dev.bytes() + x_dev.bytes() + y_dev.bytes());
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    std::printf("| %8zu | %5zu | %5zu | gemv 16-byte | %9.1f | %5.0f | %6.1f%% |\n", s.n, s.in, s.out,
                ms * 1e3, gbs, 100.0 * gbs / copy_gbs);

    // The timed result is also checked, on a sample of rows (the full reference is slow on the host).
    y_dev.fill_bytes(0xff);
    kernels::matmul(backend::cuda{}, x, w, y);
    const std::vector<float> y_gpu = y_dev.to_host();
    const View<const float, 2> x_ref(x_host.data(), {s.n, s.in});
    double worst = 0.0;
    for (index_t o = 0; o < s.out; o += 97) {
      const View<const bf16, 2> w_row(w_host.data() + o * s.in, {1, s.in});
      std::vector<float> want(s.n);
      kernels::matmul(backend::reference{}, x_ref, w_row, View<float, 2>(want.data(), {s.n, 1}));
      for (index_t t = 0; t < s.n; ++t) {
        double abs_sum = 0.0;
        for (index_t k = 0; k < s.in; ++k) {
          abs_sum += std::fabs(static_cast<double>(x_host[t * s.in + k]) * moe::to_float(w_host[o * s.in + k]));
        }
        const double tol = static_cast<double>(s.in) * kEps * abs_sum;
        const float got = y_gpu[t * s.out + o];
        const double err = std::isnan(got) ? INFINITY : std::fabs(static_cast<double>(got) - want[t]);
        worst = std::max(worst, tol > 0 ? err / tol : err);
      }
    }
    INFO("n=" << s.n << " in=" << s.in << " out=" << s.out << " seed=" << test_seed());
    CHECK(worst <= 1.0);
    CHECK(gbs > 0.0);
  }

  // Prefill through the tiled f32 GEMM, for information: arithmetic rate, not bandwidth.
  {
    const index_t n = 256, in = 4096, out = 14336;
    const auto w_dev = DeviceBuffer<bf16>::from_host(random_bf16(out * in));
    const auto x_dev = DeviceBuffer<float>::from_host(random_floats(n * in));
    DeviceBuffer<float> y_dev(n * out);
    const double ms = median_ms(
        [&] { kernels::matmul(backend::cuda{}, x_dev.view<2>({n, in}), w_dev.view<2>({out, in}), y_dev.view<2>({n, out})); },
        1, 5);
    std::printf("prefill GEMM n_tokens=%zu in=%zu out=%zu: %.3f ms, %.1f TFLOP/s (f32 CUDA cores)\n", n, in,
                out, ms, 2.0 * n * in * out / (ms * 1e-3) / 1e12);
  }
}
