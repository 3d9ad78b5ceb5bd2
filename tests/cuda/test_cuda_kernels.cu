// The CUDA backend against the scalar reference kernels on the host: the device Buffer and its
// error paths, then every backend::cuda op on fresh random inputs of odd sizes (not multiples of
// 8 or 32), strided views and the edge cases of the reference (routing ties and NaNs, sinks,
// sliding windows, dropped groups), with tolerances derived from the reduction length and the
// f32 epsilon. Every output buffer is poisoned with NaN before a run, so every element must be
// written and the padding between rows left untouched. A last group of cases prints bandwidth
// and arithmetic rates ([perf]). Set MOE_TEST_SEED to replay a run's inputs.
#include "moe/kernels/cuda/cuda.cuh"
#include "moe/kernels/reference/activation.hpp"
#include "moe/kernels/reference/add.hpp"
#include "moe/kernels/reference/attention.hpp"
#include "moe/kernels/reference/cache.hpp"
#include "moe/kernels/reference/copy.hpp"
#include "moe/kernels/reference/elementwise.hpp"
#include "moe/kernels/reference/expert_budget.hpp"
#include "moe/kernels/reference/fused.hpp"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/mla.hpp"
#include "moe/kernels/reference/moe_dispatch.hpp"
#include "moe/kernels/reference/rmsnorm.hpp"
#include "moe/kernels/reference/rope.hpp"
#include "moe/kernels/reference/router.hpp"
#include "moe/kernels/reference/softmax.hpp"
#include "moe/layers/kv_cache.hpp"

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
using moe::DeviceView;
using moe::f16;
using moe::index_t;
using moe::BasicKvCache;
using moe::device_memory;
using moe::host_memory;
using moe::KvCache;
using moe::KvLayerShape;
using moe::View;
using moe::cuda::DeviceBuffer;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

constexpr float kEps = std::numeric_limits<float>::epsilon();
constexpr std::uint32_t kPoisonBits = 0xffffffffu;  // cudaMemset(0xff): a quiet NaN in every float
constexpr backend::cuda kCuda{};
constexpr backend::reference kRef{};

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

template <class W>
std::vector<W> random_weights(index_t n, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<W> v(n);
  for (W& b : v) b = moe::from_float<W>(dist(rng()));
  return v;
}

std::vector<bf16> random_bf16(index_t n, float lo = -1.0f, float hi = 1.0f) { return random_weights<bf16>(n, lo, hi); }

template <class W>
const char* wname() {
  if constexpr (std::is_same_v<W, float>) return "f32";
  else if constexpr (std::is_same_v<W, bf16>) return "bf16";
  else return "f16";
}

bool is_poison(float f) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  return bits == kPoisonBits;
}

index_t round_up(index_t v, index_t m) { return (v + m - 1) / m * m; }

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> b(std::max<index_t>(host.size(), 1));
  b.upload(host);
  return b;
}

// A device f32 buffer of n elements filled with NaN (0xff bytes).
DeviceBuffer<float> poisoned(index_t n) {
  DeviceBuffer<float> b(std::max<index_t>(n, 1));
  b.fill_bytes(0xff);
  return b;
}

// Worst-case elements: the largest |error| and the largest |error| / tolerance seen.
struct ErrorStats {
  double max_abs = 0.0;
  double max_ratio = 0.0;
  index_t unwritten = 0;  // output elements still holding the poison (or any NaN)
  index_t clobbered = 0;  // padding elements the kernel overwrote
  index_t count = 0;
  void add(double err, double tol) {
    ++count;
    max_abs = std::max(max_abs, err);
    max_ratio = std::max(max_ratio, tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0));
  }
  // Compares got with want (NaN in got where want is a number: unwritten).
  void compare(float got, float want, double tol) {
    if (std::isnan(got) && !std::isnan(want)) {
      ++unwritten;
      return;
    }
    if (std::isnan(want)) {
      add(std::isnan(got) ? 0.0 : INFINITY, tol);
      return;
    }
    if (std::isinf(want) || std::isinf(got)) {
      add(got == want ? 0.0 : INFINITY, tol);
      return;
    }
    add(std::fabs(static_cast<double>(got) - want), tol);
  }
  bool ok() const { return max_ratio <= 1.0 && unwritten == 0 && clobbered == 0; }
};

void report(const std::string& what, const ErrorStats& st) {
  std::printf("%-58s max|err| %.2e  err/tol %.3f  unwritten %zu  clobbered %zu  %s\n", what.c_str(), st.max_abs,
              st.max_ratio, st.unwritten, st.clobbered, st.ok() ? "ok" : "FAIL");
  INFO(what << " seed=" << test_seed());
  CHECK(st.unwritten == 0);
  CHECK(st.clobbered == 0);
  CHECK(st.max_ratio <= 1.0);
}

// Compares an [n, d] output with row stride ld (padding poisoned) against want (same layout).
ErrorStats compare_rows(const std::vector<float>& got, const std::vector<float>& want, index_t n, index_t d, index_t ld,
                        double rel, double abs_tol = 0.0) {
  ErrorStats st;
  for (index_t r = 0; r < n; ++r) {
    for (index_t i = 0; i < d; ++i) {
      const float w = want[r * ld + i];
      st.compare(got[r * ld + i], w, rel * std::fabs(w) + abs_tol + std::numeric_limits<float>::denorm_min());
    }
    for (index_t i = d; i < ld && r * ld + i < got.size(); ++i) st.clobbered += !is_poison(got[r * ld + i]);
  }
  return st;
}

template <class F>
void expect_invalid(F&& f) {
  try {
    f();
    FAIL("no exception");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
  }
}

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

// ---- device Buffer -----------------------------------------------------------------------------

TEST_CASE("device Buffer: upload/download round trip, move-only ownership, checked ranges", "[cuda]") {
  static_assert(std::is_same_v<DeviceBuffer<float>, moe::Buffer<float, moe::device_memory>>);
  static_assert(std::is_same_v<decltype(std::declval<DeviceBuffer<float>&>().view()), DeviceView<float, 1>>);
  const std::vector<float> host = random_floats(1001);
  DeviceBuffer<float> a = DeviceBuffer<float>::from_host(host);
  REQUIRE(a.size() == 1001);
  REQUIRE(a.bytes() == 1001 * sizeof(float));
  CHECK(a.to_host() == host);
  CHECK(a.view().extent(0) == 1001);

  const std::vector<float> patch = {1.0f, 2.0f, 3.0f};
  a.upload(patch, 500);
  std::vector<float> back(3);
  a.download(back, 500);
  CHECK(back == patch);

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

  std::vector<float> big(1002);
  expect_invalid([&] { c.upload(big); });
  CHECK_THROWS_AS(c.download(std::span<float>(big.data(), 2), 1000), moe::Error);
  CHECK_THROWS_AS(c.view<2>({10, 101}), moe::Error);              // 1010 elements > 1001
  CHECK_THROWS_AS(c.view<2>({2, 500}, {501, 1}, 2), moe::Error);  // last element 1002
  CHECK_NOTHROW(c.view<2>({2, 500}, {501, 1}, 0));                // last element 1000

  DeviceBuffer<float> empty(0);
  CHECK(empty.data() == nullptr);
  CHECK(empty.to_host().empty());
}

TEST_CASE("device Buffer: a failed cudaMalloc is kOutOfMemory naming the bytes asked and free", "[cuda]") {
  try {
    DeviceBuffer<float> huge(index_t{1} << 60);  // 4 EiB: no device has it
    FAIL("allocation of 4 EiB succeeded");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kOutOfMemory);
    const std::string what = e.what();
    CHECK(what.find("cudaMalloc") != std::string::npos);
    CHECK(what.find("bytes free") != std::string::npos);
  }
  const std::vector<float> host = {1.0f, -2.0f};
  CHECK(DeviceBuffer<float>::from_host(host).to_host() == host);  // not sticky
  CHECK_THROWS_AS(DeviceBuffer<double>(std::numeric_limits<index_t>::max() / 4), moe::Error);
}

TEST_CASE("MOE_CUDA_CHECK turns a failing runtime call into kDevice with the call's text", "[cuda]") {
  float* dst = nullptr;
  try {
    MOE_CUDA_CHECK(cudaMemcpy(dst, &dst, 4, cudaMemcpyHostToDevice));
    FAIL("cudaMemcpy to nullptr did not fail");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kDevice);
    CHECK(std::string(e.what()).find("cudaMemcpy(dst, &dst, 4, cudaMemcpyHostToDevice)") != std::string::npos);
  }
}

// ---- matmul / matmul_in_out ------------------------------------------------------------------

// How x and W sit in memory. kAligned: padded leading dimensions that keep every row start
// 16-byte aligned. kOddW: W's rows start at odd element offsets (element loads). kOddX: x starts
// one float past an aligned address.
enum class Layout { kAligned, kOddW, kOddX };

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::kAligned: return "aligned";
    case Layout::kOddW: return "odd-w";
    case Layout::kOddX: return "odd-x";
  }
  return "?";
}

// The tensor-core path's extra error: x = hi + lo + r with |r| <= 2^-17 |x| (bf16 keeps 8
// significant bits of x and 8 of the remainder), plus the dropped lo·lo term for f16 weights
// (2^-18); allowed: 2^-15 of Σ|x·w| on top of the f32 bound.
constexpr double kSplitBf16Rel = 1.0 / 32768.0;

double g_worst_mma_rel = 0.0;  // the largest |err| / Σ|x·w| seen on the tensor-core path

template <class W>
ErrorStats check_matmul(index_t n, index_t in, index_t out, Layout layout, bool in_out) {
  constexpr index_t kAlignElems = 16 / sizeof(W);
  const index_t w_rows = in_out ? in : out, w_cols = in_out ? out : in;
  const index_t ld_x = layout == Layout::kOddX ? in + 1 : round_up(std::max<index_t>(in, 1), 4);
  const index_t off_x = layout == Layout::kOddX ? 1 : 0;
  const index_t ld_w =
      layout == Layout::kOddW ? w_cols + 1 + (w_cols % 2) : round_up(std::max<index_t>(w_cols, 1), kAlignElems);
  const index_t off_w = layout == Layout::kOddW ? 1 : 0;
  const index_t ld_y = out + 3;

  const std::vector<float> x_host = random_floats(off_x + n * ld_x + 1);
  const std::vector<W> w_host = random_weights<W>(off_w + w_rows * ld_w + 1);
  const View<const float, 2> x_ref(x_host.data() + off_x, {n, in}, {ld_x, 1});
  const View<const W, 2> w_ref(w_host.data() + off_w, {w_rows, w_cols}, {ld_w, 1});
  std::vector<float> y_ref_host(n * ld_y, 0.0f);
  const View<float, 2> y_ref(y_ref_host.data(), {n, out}, {ld_y, 1});
  if (in > 0) {
    if (in_out) kernels::matmul_in_out(kRef, x_ref, w_ref, y_ref);
    else kernels::matmul(kRef, x_ref, w_ref, y_ref);
  }

  const auto x_dev = to_device(x_host);
  const auto w_dev = to_device(w_host);
  auto y_dev = poisoned(n * ld_y);
  const auto x_view = x_dev.view<2>({n, in}, {ld_x, 1}, off_x);
  const auto w_view = w_dev.template view<2>({w_rows, w_cols}, {ld_w, 1}, off_w);
  const auto y_view = y_dev.view<2>({n, out}, {ld_y, 1});
  const auto args = kernels::cuda_detail::gemm_args(x_view, w_view, y_view, in_out, "test");
  if (!in_out && n >= 1 && n <= kernels::cuda_detail::kGemvMaxTokens) {
    CHECK(kernels::cuda_detail::gemv_vector_loads(args) == (layout == Layout::kAligned));
  }
  if (in_out) kernels::matmul_in_out(kCuda, x_view, w_view, y_view);
  else kernels::matmul(kCuda, x_view, w_view, y_view);
  const std::vector<float> y_gpu = y_dev.to_host();

  // f32 dot product of length in, any order, with or without FMA: |err| <= gamma_in Σ|x·w|,
  // gamma_in ~ in·u; allow in·eps (twice that) plus the reference's half ulp.
  const bool mma = !std::is_same_v<W, float> && n > kernels::cuda_detail::kGemvMaxTokens;
  ErrorStats stats;
  for (index_t t = 0; t < n; ++t) {
    for (index_t o = 0; o < out; ++o) {
      double abs_sum = 0.0;
      for (index_t k = 0; k < in; ++k) {
        const float wk = moe::to_float(in_out ? w_ref(k, o) : w_ref(o, k));
        abs_sum += std::fabs(static_cast<double>(x_ref(t, k)) * wk);
      }
      const float got = y_gpu[t * ld_y + o];
      const float want = y_ref(t, o);
      const double tol = (static_cast<double>(in) * kEps + (mma ? kSplitBf16Rel : 0.0)) * abs_sum +
                         0.5 * kEps * std::fabs(want);
      stats.compare(got, want, tol);
      if (mma && abs_sum > 0 && !std::isnan(got)) {
        g_worst_mma_rel = std::max(g_worst_mma_rel, std::fabs(static_cast<double>(got) - want) / abs_sum);
      }
    }
    for (index_t o = out; o < ld_y; ++o) stats.clobbered += !is_poison(y_gpu[t * ld_y + o]);
  }
  return stats;
}

struct Shape {
  index_t n, in, out;
};

template <class W>
void run_matmul_cases(const std::vector<Shape>& shapes, const char* path, bool in_out) {
  for (const Shape& s : shapes) {
    for (Layout layout : {Layout::kAligned, Layout::kOddW, Layout::kOddX}) {
      const ErrorStats st = check_matmul<W>(s.n, s.in, s.out, layout, in_out);
      char what[160];
      std::snprintf(what, sizeof what, "%s w=%-4s %-5s n=%-3zu in=%-5zu out=%-4zu %s", in_out ? "matmul_in_out" : "matmul",
                    wname<W>(), path, s.n, s.in, s.out, layout_name(layout));
      report(what, st);
    }
  }
}

const std::vector<Shape> kGemvShapes = {{1, 1, 1},     {1, 7, 5},     {1, 8, 1},     {1, 33, 3},
                                        {1, 257, 129}, {1, 1001, 333}, {1, 4099, 67}, {1, 0, 5},
                                        {1, 24, 70001}};  // taller than one resident grid: several turns
const std::vector<Shape> kBatchShapes = {{2, 129, 33}, {3, 1001, 65}, {4, 16, 9}, {5, 64, 7}, {8, 515, 130},
                                         {3, 40, 50003}, {2, 3001, 45}};  // the last: rows past 4 KB (kGemvLongLoads)
const std::vector<Shape> kGemmShapes = {{9, 17, 3}, {13, 300, 111}, {65, 129, 65}, {130, 37, 200}, {200, 1001, 257}};

TEMPLATE_TEST_CASE("matmul(cuda) matches the reference: GEMV, batched GEMV, GEMM", "[cuda][matmul]", float, bf16, f16) {
  run_matmul_cases<TestType>(kGemvShapes, "gemv", false);
  run_matmul_cases<TestType>(kBatchShapes, "batch", false);
  run_matmul_cases<TestType>(kGemmShapes, "gemm", false);
}

TEMPLATE_TEST_CASE("matmul_in_out(cuda) matches the reference: GEMV, batched GEMV, GEMM", "[cuda][matmul]", float,
                   bf16, f16) {
  run_matmul_cases<TestType>(kGemvShapes, "gemv", true);
  run_matmul_cases<TestType>(kBatchShapes, "batch", true);
  run_matmul_cases<TestType>(kGemmShapes, "gemm", true);
}

TEST_CASE("matmul(cuda) tensor-core precision (bf16x2 split of x)", "[cuda][matmul]") {
  // Printed after the matmul cases have run (Catch2 runs test cases in declaration order).
  std::printf("tensor-core GEMM: worst |err| / sum|x*w| = %.2e (2^%.1f); f32 eps = 2^-23\n", g_worst_mma_rel,
              g_worst_mma_rel > 0 ? std::log2(g_worst_mma_rel) : -INFINITY);
  CHECK(g_worst_mma_rel <= kSplitBf16Rel);
}

// The tensor-core GEMM's tile height (32, 64 or 128 rows: cuda_detail::mma_tile_rows picks one
// from the pass's shape) changes no bit: the same product with each, y = x·Wᵀ and y = x·W, and
// the first rows of a product alone (the rule's pick for 9-32 rows) against the whole.
TEMPLATE_TEST_CASE("matmul(cuda) GEMM results do not depend on the tile height", "[cuda][matmul]", bf16, f16) {
  namespace cd = kernels::cuda_detail;
  for (const bool in_out : {false, true}) {
    for (const index_t n : {index_t{40}, index_t{200}}) {
      const index_t in = 200, out = 150;
      const auto x_d = to_device(random_floats(n * in));
      const auto w_d = to_device(random_weights<TestType>(out * in));
      const auto w = in_out ? w_d.template view<2>({in, out}) : w_d.template view<2>({out, in});
      std::vector<std::vector<float>> got;
      for (const int tile : {32, 64, 128}) {
        DeviceBuffer<float> y(n * out);
        auto args = cd::gemm_args(x_d.view<2>({n, in}), w, y.view<2>({n, out}), in_out, "test");
        args.mma_tile_m = tile;
        cd::gemm_dispatch(args, in_out);
        got.push_back(y.to_host());
      }
      INFO("in_out " << in_out << " rows " << n);
      CHECK(std::memcmp(got[0].data(), got[1].data(), n * out * sizeof(float)) == 0);
      CHECK(std::memcmp(got[1].data(), got[2].data(), n * out * sizeof(float)) == 0);
      for (const index_t m : {9, 17, 32}) {  // alone: the rule's 32-row tiles
        DeviceBuffer<float> part(m * out);
        if (in_out) kernels::matmul_in_out(kCuda, x_d.view<2>({m, in}), w, part.view<2>({m, out}));
        else kernels::matmul(kCuda, x_d.view<2>({m, in}), w, part.view<2>({m, out}));
        INFO("first " << m << " rows alone");
        CHECK(std::memcmp(part.to_host().data(), got[2].data(), m * out * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("matmul(cuda) rejects mismatched shapes and non-unit inner strides", "[cuda][matmul]") {
  DeviceBuffer<float> x(64), y(64);
  const DeviceBuffer<bf16> w(64);
  expect_invalid([&] { kernels::matmul(kCuda, x.view<2>({2, 4}), w.view<2>({4, 8}), y.view<2>({2, 4})); });
  expect_invalid([&] { kernels::matmul(kCuda, x.view<2>({2, 8}), w.view<2>({4, 8}), y.view<2>({2, 5})); });
  expect_invalid([&] { kernels::matmul(kCuda, x.view<2>({2, 8}, {16, 2}), w.view<2>({4, 8}), y.view<2>({2, 4})); });
  expect_invalid([&] { kernels::matmul_in_out(kCuda, x.view<2>({2, 8}), w.view<2>({4, 8}), y.view<2>({2, 8})); });
}

// ---- rmsnorm ---------------------------------------------------------------------------------

template <class W>
void run_rmsnorm_cases() {
  const std::vector<std::pair<index_t, index_t>> shapes = {{1, 1}, {3, 7}, {2, 33}, {5, 1000}, {4, 4097}, {17, 129}};
  for (const auto& [n, d] : shapes) {
    for (bool in_place : {false, true}) {
      const float eps = in_place ? 1e-5f : 1e-6f;
      const index_t ld_x = d + 3, ld_y = in_place ? ld_x : d + 5;
      const std::vector<float> x_host = random_floats(n * ld_x, -2.0f, 2.0f);
      const std::vector<W> w_host = random_weights<W>(d, 0.5f, 1.5f);
      std::vector<float> want(n * ld_y, 0.0f);
      kernels::rmsnorm(kRef, View<const float, 2>(x_host.data(), {n, d}, {ld_x, 1}), View<const W, 1>(w_host.data(), {d}),
                       eps, View<float, 2>(want.data(), {n, d}, {ld_y, 1}));
      auto x_dev = to_device(x_host);
      const auto w_dev = to_device(w_host);
      auto y_dev = poisoned(n * ld_y);
      std::vector<float> got;
      if (in_place) {
        std::vector<float> poison(ld_x - d);
        std::memset(poison.data(), 0xff, poison.size() * sizeof(float));
        for (index_t r = 0; r < n; ++r) x_dev.upload(poison, r * ld_x + d);
        const auto xy = x_dev.view<2>({n, d}, {ld_x, 1});
        kernels::rmsnorm(kCuda, DeviceView<const float, 2>(xy), w_dev.template view<1>({d}), eps, xy);
        got = x_dev.to_host();
      } else {
        kernels::rmsnorm(kCuda, x_dev.view<2>({n, d}, {ld_x, 1}), w_dev.template view<1>({d}), eps,
                         y_dev.view<2>({n, d}, {ld_y, 1}));
        got = y_dev.to_host();
      }
      // Both sum the squares in double and round 1/sqrt once: the inverse rms agrees to 1 ulp
      // (rarely off by the double sum's order), then two f32 products: 4 eps relative.
      char what[128];
      std::snprintf(what, sizeof what, "rmsnorm w=%-4s n=%-3zu d=%-5zu %s", wname<W>(), n, d,
                    in_place ? "in-place" : "separate");
      report(what, compare_rows(got, want, n, d, ld_y, 4.0 * kEps));
    }
  }
}

TEMPLATE_TEST_CASE("rmsnorm(cuda) matches the reference", "[cuda][rmsnorm]", float, bf16, f16) {
  run_rmsnorm_cases<TestType>();
}

TEST_CASE("rmsnorm(cuda) rejects mismatched shapes", "[cuda][rmsnorm]") {
  DeviceBuffer<float> x(64), y(64);
  const DeviceBuffer<float> w(64);
  expect_invalid([&] { kernels::rmsnorm(kCuda, x.view<2>({2, 8}), w.view<1>({7}), 1e-5f, y.view<2>({2, 8})); });
}

// ---- rope ------------------------------------------------------------------------------------

TEST_CASE("rope(cuda) matches the reference in both pairings, on strided views", "[cuda][rope]") {
  struct Case {
    index_t n, heads, head_dim, half, head_stride, row_pad;
  };
  // Contiguous heads; partial rotary (GLM); and an MLA-like view: the rope part (last 7 dims) of
  // query heads of 12 + 7 dims, rows padded.
  const Case cases[] = {{5, 3, 16, 8, 16, 0}, {7, 2, 20, 5, 20, 3}, {9, 4, 7, 3, 19, 5}, {1, 1, 2, 1, 2, 0}};
  for (const Case& c : cases) {
    for (auto pairing : {kernels::RopePairing::half_split, kernels::RopePairing::interleaved}) {
      const index_t row = c.heads * c.head_stride + c.row_pad;
      const index_t off = c.head_stride - c.head_dim;  // rope dims at the end of each head
      std::vector<float> x_host = random_floats(c.n * row + off, -2.0f, 2.0f);
      const std::vector<float> cos_h = random_floats(c.n * c.half), sin_h = random_floats(c.n * c.half);
      std::vector<float> want = x_host;
      kernels::rope(kRef, View<float, 3>(want.data() + off, {c.n, c.heads, c.head_dim}, {row, c.head_stride, 1}),
                    View<const float, 2>(cos_h.data(), {c.n, c.half}), View<const float, 2>(sin_h.data(), {c.n, c.half}),
                    pairing);
      auto x_dev = to_device(x_host);
      const auto cos_d = to_device(cos_h), sin_d = to_device(sin_h);
      kernels::rope(kCuda, x_dev.view<3>({c.n, c.heads, c.head_dim}, {row, c.head_stride, 1}, off),
                    cos_d.view<2>({c.n, c.half}), sin_d.view<2>({c.n, c.half}), pairing);
      const std::vector<float> got = x_dev.to_host();
      ErrorStats st;  // a·c - b·s with or without FMA: 2 eps of |a·c| + |b·s|; untouched elements exact
      for (index_t i = 0; i < got.size(); ++i) st.compare(got[i], want[i], 2.0 * kEps * 4.0 * 2.0);
      char what[128];
      std::snprintf(what, sizeof what, "rope %s n=%zu heads=%zu dim=%zu half=%zu stride=%zu",
                    pairing == kernels::RopePairing::half_split ? "half-split " : "interleaved", c.n, c.heads,
                    c.head_dim, c.half, c.head_stride);
      report(what, st);
    }
  }
  DeviceBuffer<float> x(64), t(64);
  expect_invalid([&] {  // rotary_dim 10 > head_dim 8
    kernels::rope(kCuda, x.view<3>({2, 2, 8}), t.view<2>({2, 5}), t.view<2>({2, 5}), kernels::RopePairing::half_split);
  });
}

TEST_CASE("rope_tables(cuda) agrees with the reference to the last bit (or 1 ulp)", "[cuda][rope]") {
  const index_t n = 37, half = 29;
  std::vector<float> inv_freq(half);
  for (index_t i = 0; i < half; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / (2.0f * half));
  std::vector<std::int64_t> pos(n);
  for (index_t t = 0; t < n; ++t) pos[t] = static_cast<std::int64_t>(t * 997 + 3);  // up to ~36k
  const float scaling = 1.2f;
  std::vector<float> cw(n * half), sw(n * half);
  kernels::rope_tables(kRef, View<const float, 1>(inv_freq.data(), {half}), scaling,
                       View<const std::int64_t, 1>(pos.data(), {n}), View<float, 2>(cw.data(), {n, half}),
                       View<float, 2>(sw.data(), {n, half}));
  const auto f_d = to_device(inv_freq);
  const auto p_d = to_device(pos);
  auto c_d = poisoned(n * half), s_d = poisoned(n * half);
  kernels::rope_tables(kCuda, f_d.view<1>({half}), scaling, p_d.view<1>({n}), c_d.view<2>({n, half}),
                       s_d.view<2>({n, half}));
  const auto cg = c_d.to_host(), sg = s_d.to_host();
  index_t exact = 0;
  ErrorStats st;
  for (index_t i = 0; i < n * half; ++i) {
    exact += (cg[i] == cw[i]) + (sg[i] == sw[i]);
    st.compare(cg[i], cw[i], kEps * std::fabs(cw[i]) * 1.01);
    st.compare(sg[i], sw[i], kEps * std::fabs(sw[i]) * 1.01);
  }
  std::printf("rope_tables: %zu of %zu values bit-identical\n", exact, 2 * n * half);
  report("rope_tables n=37 half=29", st);
}

// ---- element-wise ----------------------------------------------------------------------------

TEST_CASE("element-wise ops(cuda) match the reference on strided rows", "[cuda][elementwise]") {
  const index_t n = 13, d = 37, ld = 41;
  const std::vector<float> a_h = random_floats(n * ld, -4.0f, 4.0f), b_h = random_floats(n * ld, -4.0f, 4.0f);
  auto run = [&](const char* name, double rel, auto&& ref_op, auto&& cuda_op) {
    std::vector<float> want(n * ld);
    std::memset(want.data(), 0xff, want.size() * sizeof(float));
    for (index_t r = 0; r < n; ++r) std::copy_n(a_h.begin() + r * ld, d, want.begin() + r * ld);
    auto y_dev = DeviceBuffer<float>::from_host(want);  // padding poisoned, rows = a
    const auto b_dev = to_device(b_h);
    ref_op(View<float, 2>(want.data(), {n, d}, {ld, 1}), View<const float, 2>(b_h.data(), {n, d}, {ld, 1}));
    cuda_op(y_dev.view<2>({n, d}, {ld, 1}), b_dev.view<2>({n, d}, {ld, 1}));
    report(name, compare_rows(y_dev.to_host(), want, n, d, ld, rel));
  };
  run("add", 0.0, [](auto y, auto x) { kernels::add(kRef, y, x); }, [](auto y, auto x) { kernels::add(kCuda, y, x); });
  run("clamp 1.5", 0.0, [](auto y, auto) { kernels::clamp(kRef, y, 1.5f); },
      [](auto y, auto) { kernels::clamp(kCuda, y, 1.5f); });
  run("scale 0.22", 0.0, [](auto y, auto) { kernels::scale(kRef, y, 0.22f); },
      [](auto y, auto) { kernels::scale(kCuda, y, 0.22f); });
  run("silu", 2.0 * kEps, [](auto y, auto) { kernels::silu(kRef, y); }, [](auto y, auto) { kernels::silu(kCuda, y); });
  // Llama 4: scale_rows (weights from column 3 of b), the weightless rms_normalize (unit strides
  // only: the [n, ld] rows as a whole), attention_temperature at positions far apart.
  run("scale_rows", 0.0,
      [](auto y, auto x) { kernels::scale_rows(kRef, y, View<const float, 1>(&x(0, 3), {x.extent(0)}, {x.stride(0)})); },
      [](auto y, auto x) {
        kernels::scale_rows(kCuda, y, DeviceView<const float, 1>(x.data() + 3, {x.extent(0)}, {x.stride(0)}));
      });
  {
    std::vector<float> want = a_h;
    kernels::rms_normalize(kRef, View<float, 2>(want.data(), {n, ld}), 1e-5f);
    auto y_dev = to_device(a_h);
    kernels::rms_normalize(kCuda, y_dev.view<2>({n, ld}), 1e-5f);
    report("rms_normalize", compare_rows(y_dev.to_host(), want, n, ld, ld, 4.0 * kEps));
    std::vector<std::int64_t> pos(n);
    for (index_t r = 0; r < n; ++r) pos[r] = static_cast<std::int64_t>(r * r * 997);
    const auto pos_d = to_device(pos);
    // The columns [d, ld) poisoned: the kernel must leave them alone.
    want = a_h;
    std::memset(want.data(), 0xff, want.size() * sizeof(float));
    for (index_t r = 0; r < n; ++r) std::copy_n(a_h.begin() + r * ld, d, want.begin() + r * ld);
    y_dev = to_device(want);
    kernels::attention_temperature(kRef, View<float, 2>(want.data(), {n, d}, {ld, 1}),
                                   View<const std::int64_t, 1>(pos.data(), {n}), 4.0f, 0.1f);
    kernels::attention_temperature(kCuda, y_dev.view<2>({n, d}, {ld, 1}), pos_d.view<1>({n}), 4.0f, 0.1f);
    report("attention_temperature", compare_rows(y_dev.to_host(), want, n, d, ld, 2.0 * kEps));
    std::vector<float> f(n + 1, 7.0f);
    auto f_dev = to_device(f);
    kernels::fill(kCuda, f_dev.view<1>({n}), -1.5f);
    std::fill_n(f.begin(), n, -1.5f);
    report("fill", compare_rows(f_dev.to_host(), f, 1, n + 1, n + 1, 0.0));
  }
  run("swiglu (out aliases gate)", 3.0 * kEps,
      [](auto y, auto x) { kernels::swiglu(kRef, View<const float, 2>(y), x, y); },
      [](auto y, auto x) { kernels::swiglu(kCuda, DeviceView<const float, 2>(y), x, y); });
  run("softmax", 4.0 * kEps, [](auto y, auto) { kernels::softmax(kRef, y); },
      [](auto y, auto) { kernels::softmax(kCuda, y); });

  // sigmoid_gate_add: gate [n, 1] with a row stride.
  {
    std::vector<float> want(n * ld);
    std::memset(want.data(), 0xff, want.size() * sizeof(float));
    for (index_t r = 0; r < n; ++r) std::copy_n(a_h.begin() + r * ld, d, want.begin() + r * ld);
    auto y_dev = DeviceBuffer<float>::from_host(want);
    const auto b_dev = to_device(b_h);
    kernels::sigmoid_gate_add(kRef, View<float, 2>(want.data(), {n, d}, {ld, 1}),
                              View<const float, 2>(b_h.data() + 5, {n, 1}, {ld, 1}),
                              View<const float, 2>(b_h.data(), {n, d}, {ld, 1}));
    kernels::sigmoid_gate_add(kCuda, y_dev.view<2>({n, d}, {ld, 1}), b_dev.view<2>({n, 1}, {ld, 1}, 5),
                              b_dev.view<2>({n, d}, {ld, 1}));
    report("sigmoid_gate_add", compare_rows(y_dev.to_host(), want, n, d, ld, 2.0 * kEps, 2.0 * kEps * 4.0));
  }
  // swiglu over the two halves of a [n, 2f] buffer (row stride 2f + pad, width f).
  {
    const index_t f = 19, row = 2 * f + 3;
    const std::vector<float> gu = random_floats(n * row, -6.0f, 6.0f);
    std::vector<float> want(n * f);
    kernels::swiglu(kRef, View<const float, 2>(gu.data(), {n, f}, {row, 1}),
                    View<const float, 2>(gu.data() + f, {n, f}, {row, 1}), View<float, 2>(want.data(), {n, f}));
    const auto gu_d = to_device(gu);
    auto out_d = poisoned(n * f);
    kernels::swiglu(kCuda, gu_d.view<2>({n, f}, {row, 1}), gu_d.view<2>({n, f}, {row, 1}, f), out_d.view<2>({n, f}));
    report("swiglu halves of [n, 2f]", compare_rows(out_d.to_host(), want, n, f, f, 3.0 * kEps));
  }
  // glu_interleaved, clamped and not (values beyond the limit exercise the clamps).
  for (bool clamped : {true, false}) {
    const index_t f = 23;
    const std::vector<float> gu = random_floats(n * 2 * f, -10.0f, 10.0f);
    kernels::GluParams p;
    p.clamped = clamped;
    std::vector<float> want(n * f);
    kernels::glu_interleaved(kRef, View<const float, 2>(gu.data(), {n, 2 * f}), p, View<float, 2>(want.data(), {n, f}));
    const auto gu_d = to_device(gu);
    auto out_d = poisoned(n * f);
    kernels::glu_interleaved(kCuda, gu_d.view<2>({n, 2 * f}), p, out_d.view<2>({n, f}));
    report(clamped ? "glu_interleaved clamped" : "glu_interleaved unclamped",
           compare_rows(out_d.to_host(), want, n, f, f, 4.0 * kEps, 1e-30));
  }
  // add_bias with every weight type.
  auto bias_case = [&](auto tag) {
    using W = decltype(tag);
    const std::vector<W> bias = random_weights<W>(d);
    std::vector<float> want = a_h;
    for (index_t r = 0; r < n; ++r) std::fill(want.begin() + r * ld + d, want.begin() + (r + 1) * ld, NAN);
    auto y_dev = DeviceBuffer<float>::from_host(want);
    y_dev.fill_bytes(0xff);
    y_dev.upload(a_h);
    for (index_t r = 0; r < n; ++r) {
      std::vector<float> poison(ld - d);
      std::memset(poison.data(), 0xff, poison.size() * sizeof(float));
      y_dev.upload(poison, r * ld + d);
    }
    kernels::add_bias(kRef, View<float, 2>(want.data(), {n, d}, {ld, 1}), View<const W, 1>(bias.data(), {d}));
    const auto b_d = to_device(bias);
    kernels::add_bias(kCuda, y_dev.view<2>({n, d}, {ld, 1}), b_d.template view<1>({d}));
    report(std::string("add_bias w=") + wname<W>(), compare_rows(y_dev.to_host(), want, n, d, ld, 0.0));
  };
  bias_case(float{});
  bias_case(bf16{});
  bias_case(f16{});
}

// ---- data movement -----------------------------------------------------------------------------

TEST_CASE("copy ops(cuda): upload/download, copy_rows, gather_rows, embed_rows, to_f32", "[cuda][copy]") {
  // upload / download through the kernels API.
  const std::vector<float> h = random_floats(333);
  DeviceBuffer<float> buf(400);
  kernels::upload(kCuda, std::span<const float>(h), buf.view());
  std::vector<float> back(333);
  kernels::download(kCuda, DeviceView<const float, 1>(buf.view()), std::span<float>(back));
  CHECK(back == h);
  expect_invalid([&] { kernels::upload(kCuda, std::span<const float>(h), buf.view<1>({300})); });

  // copy_rows between strided views (a KV-cache append).
  const index_t n = 7, d = 29, ld_s = 31, ld_d = 45;
  const std::vector<float> src = random_floats(n * ld_s);
  const auto src_d = to_device(src);
  auto dst_d = poisoned(n * ld_d + 3);
  kernels::copy_rows(kCuda, src_d.view<2>({n, d}, {ld_s, 1}), dst_d.view<2>({n, d}, {ld_d, 1}, 3));
  {
    const auto got = dst_d.to_host();
    std::vector<float> want(got.size(), NAN);
    kernels::copy_rows(kRef, View<const float, 2>(src.data(), {n, d}, {ld_s, 1}),
                       View<float, 2>(want.data() + 3, {n, d}, {ld_d, 1}));
    index_t mismatched = 0;
    for (index_t i = 0; i < got.size(); ++i) mismatched += std::isnan(want[i]) ? !is_poison(got[i]) : got[i] != want[i];
    INFO("copy_rows");
    CHECK(mismatched == 0);
  }

  // gather_rows and embed_rows: repeated and out-of-order ids.
  const index_t m = 11;
  const std::vector<std::int32_t> rows = {3, 0, 10, 3, 7};
  const auto rows_d = to_device(rows);
  {
    const std::vector<float> table = random_floats(m * d);
    std::vector<float> want(rows.size() * d);
    kernels::gather_rows(kRef, View<const float, 2>(table.data(), {m, d}), View<const std::int32_t, 1>(rows.data(), {rows.size()}),
                         View<float, 2>(want.data(), {rows.size(), d}));
    const auto t_d = to_device(table);
    auto out_d = poisoned(rows.size() * d);
    kernels::gather_rows(kCuda, t_d.view<2>({m, d}), rows_d.view<1>({rows.size()}), out_d.view<2>({rows.size(), d}));
    CHECK(out_d.to_host() == want);
  }
  auto embed_case = [&](auto tag) {
    using W = decltype(tag);
    const std::vector<W> table = random_weights<W>(m * d);
    std::vector<float> want(rows.size() * d);
    kernels::embed_rows(kRef, View<const W, 2>(table.data(), {m, d}), View<const std::int32_t, 1>(rows.data(), {rows.size()}),
                        View<float, 2>(want.data(), {rows.size(), d}));
    const auto t_d = to_device(table);
    auto out_d = poisoned(rows.size() * d);
    kernels::embed_rows(kCuda, t_d.template view<2>({m, d}), rows_d.view<1>({rows.size()}), out_d.view<2>({rows.size(), d}));
    INFO("embed_rows w=" << wname<W>());
    CHECK(out_d.to_host() == want);

    std::vector<float> wide(m * d);
    kernels::to_f32(kRef, View<const W, 1>(table.data(), {m * d}), View<float, 1>(wide.data(), {m * d}));
    auto wide_d = poisoned(m * d);
    kernels::to_f32(kCuda, t_d.template view<1>({m * d}), wide_d.view<1>({m * d}));
    INFO("to_f32 w=" << wname<W>());
    CHECK(wide_d.to_host() == wide);
  };
  embed_case(float{});
  embed_case(bf16{});
  embed_case(f16{});
}

// ---- attention ---------------------------------------------------------------------------------

// Error bound of one attention output, relative to max|v| over the visible keys: each score is an
// f32 dot product (error <= D·eps·S with S = scale·max_j Σ|q·k_j|), which perturbs the softmax
// weights by up to 2x that relative; the K-term weighted sums and the online rescaling add
// (K + 8) eps. Both the reference and the kernel carry such errors: doubled.
double attention_tol(double D, double S, double K, double vmax) {
  return 2.0 * (2.0 * D * kEps * S + (K + 8.0) * kEps) * vmax + 1e-30;
}

struct AttnCase {
  index_t n, start, heads, kv_heads, hd, vhd, window;
  bool sinks;
  index_t chunk = 0;  // Llama 4's chunked attention
};

void check_attention_case(const AttnCase& c) {
  kernels::AttentionShape s;
  s.n_heads = c.heads, s.n_kv_heads = c.kv_heads, s.head_dim = c.hd, s.v_head_dim = c.vhd;
  s.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  s.sliding_window = c.window;
  s.chunk = c.chunk;
  const index_t cap = c.start + c.n + 5;
  const index_t kw = c.kv_heads * c.hd, vw = c.kv_heads * c.vhd, ldk = kw + 3, ldv = vw + 1;
  const index_t qw = c.heads * c.hd, ow = c.heads * c.vhd, ldq = qw + 2, ldo = ow + 3;
  const auto q = random_floats(c.n * ldq, -2.0f, 2.0f), k = random_floats(cap * ldk, -2.0f, 2.0f);
  const auto v = random_floats(cap * ldv);
  const auto sinks = random_floats(c.sinks ? c.heads : 0, -1.0f, 3.0f);
  std::vector<float> want(c.n * ldo, NAN);
  kernels::attention(kRef, s, View<const float, 2>(q.data(), {c.n, qw}, {ldq, 1}),
                     View<const float, 2>(k.data(), {cap, kw}, {ldk, 1}), View<const float, 2>(v.data(), {cap, vw}, {ldv, 1}),
                     c.start, View<const float, 1>(sinks.data(), {sinks.size()}), View<float, 2>(want.data(), {c.n, ow}, {ldo, 1}));
  const auto q_d = to_device(q), k_d = to_device(k), v_d = to_device(v), s_d = to_device(sinks);
  auto o_d = poisoned(c.n * ldo);
  kernels::attention(kCuda, s, q_d.view<2>({c.n, qw}, {ldq, 1}), k_d.view<2>({cap, kw}, {ldk, 1}),
                     v_d.view<2>({cap, vw}, {ldv, 1}), c.start, s_d.view<1>({sinks.size()}), o_d.view<2>({c.n, ow}, {ldo, 1}));
  const auto got = o_d.to_host();
  ErrorStats st;
  const index_t group = c.heads / c.kv_heads;
  for (index_t t = 0; t < c.n; ++t) {
    const index_t pos = c.start + t;
    const index_t lo = kernels::first_visible_key(c.window, c.chunk, pos);
    for (index_t h = 0; h < c.heads; ++h) {
      const index_t kvh = h / group;
      double S = 0.0, vmax = 0.0;
      for (index_t j = lo; j <= pos; ++j) {
        double a = 0.0;
        for (index_t d = 0; d < c.hd; ++d) a += std::fabs(q[t * ldq + h * c.hd + d] * k[j * ldk + kvh * c.hd + d]);
        S = std::max(S, a * s.scale);
        for (index_t d = 0; d < c.vhd; ++d) vmax = std::max(vmax, static_cast<double>(std::fabs(v[j * ldv + kvh * c.vhd + d])));
      }
      const double tol = attention_tol(c.hd, S, pos + 1 - lo, vmax);
      for (index_t d = 0; d < c.vhd; ++d) st.compare(got[t * ldo + h * c.vhd + d], want[t * ldo + h * c.vhd + d], tol);
    }
    for (index_t i = ow; i < ldo; ++i) st.clobbered += !is_poison(got[t * ldo + i]);
  }
  char what[160];
  std::snprintf(what, sizeof what, "attention n=%zu start=%zu heads=%zu/%zu hd=%zu/%zu window=%zu chunk=%zu%s", c.n,
                c.start, c.heads, c.kv_heads, c.hd, c.vhd, c.window, c.chunk, c.sinks ? " sinks" : "");
  report(what, st);
}

TEST_CASE("attention(cuda) matches the reference: GQA/MQA, sliding windows, sinks, decode splits", "[cuda][attention]") {
  const AttnCase cases[] = {
      {9, 0, 4, 2, 19, 23, 0, false},     // prefill from position 0, GQA, odd head sizes
      {37, 20, 6, 1, 32, 32, 5, true},    // MQA, window 5, sinks, prefill after a cached prefix
      {1, 0, 3, 3, 7, 5, 0, true},        // the first token: one key plus a sink
      {1, 2999, 8, 2, 64, 64, 0, true},   // decode over 3000 keys: split across a cluster
      {1, 2999, 8, 2, 64, 64, 700, false},// decode with a window of 700
      {3, 1500, 4, 4, 128, 128, 0, false},// a small batch of new tokens over a long context
      {2, 40, 2, 1, 16, 512, 0, false},   // the widest value rows (512)
      {130, 0, 4, 2, 64, 64, 0, true},    // query tiles (prefill): several tiles, sinks
      {100, 300, 6, 3, 128, 128, 50, false},  // query tiles after a cached prefix, window 50
      {33, 7, 2, 2, 19, 23, 0, false},    // query tiles with odd head sizes
      {64, 0, 2, 1, 200, 300, 0, false},  // wide heads: the 16-row tiles
      {70, 0, 4, 2, 64, 64, 0, false, 16},    // Llama 4 chunks: query tiles crossing chunk bounds
      {50, 90, 4, 1, 32, 32, 0, true, 32},    // chunks after a cached prefix, sinks
      {1, 2999, 8, 2, 64, 64, 0, false, 1024},  // decode in the third chunk (split decode)
      {40, 10, 2, 2, 16, 16, 12, false, 20},  // window and chunk together
  };
  for (const AttnCase& c : cases) check_attention_case(c);
  DeviceBuffer<float> b(4096);
  kernels::AttentionShape s;
  s.n_heads = 4, s.n_kv_heads = 3, s.head_dim = 8, s.v_head_dim = 8;  // 4 % 3 != 0
  expect_invalid([&] {
    kernels::attention(kCuda, s, b.view<2>({1, 32}), b.view<2>({4, 24}), b.view<2>({4, 24}), 0, DeviceView<const float, 1>(),
                       b.view<2>({1, 32}));
  });
}

TEST_CASE("mla_attention(cuda) matches the reference (prefill and split decode)", "[cuda][attention][mla]") {
  struct Case {
    index_t n, start, heads, rank, nope, rope;
  };
  for (const Case& c : {Case{4, 6, 3, 40, 5, 7}, Case{1, 1500, 2, 64, 16, 8}, Case{2, 33, 2, 512, 8, 64},
                        Case{45, 20, 2, 512, 8, 64}, Case{70, 0, 3, 40, 5, 7}}) {
    kernels::MlaShape s;
    s.n_heads = c.heads, s.kv_lora_rank = c.rank, s.nope = c.nope, s.rope = c.rope, s.v = 9;
    s.scale = 1.0f / std::sqrt(static_cast<float>(c.nope + c.rope));
    const index_t cap = c.start + c.n + 2, qw = c.heads * s.qk(), lw = c.heads * c.rank;
    const auto q = random_floats(c.n * qw), ql = random_floats(c.n * lw);
    const auto lat = random_floats(cap * c.rank), kr = random_floats(cap * c.rope);
    std::vector<float> want(c.n * lw);
    kernels::mla_attention(kRef, s, View<const float, 2>(q.data(), {c.n, qw}), View<const float, 2>(ql.data(), {c.n, lw}),
                           View<const float, 2>(lat.data(), {cap, c.rank}), View<const float, 2>(kr.data(), {cap, c.rope}),
                           c.start, View<float, 2>(want.data(), {c.n, lw}));
    const auto q_d = to_device(q), ql_d = to_device(ql), lat_d = to_device(lat), kr_d = to_device(kr);
    auto o_d = poisoned(c.n * lw);
    kernels::mla_attention(kCuda, s, q_d.view<2>({c.n, qw}), ql_d.view<2>({c.n, lw}), lat_d.view<2>({cap, c.rank}),
                           kr_d.view<2>({cap, c.rope}), c.start, o_d.view<2>({c.n, lw}));
    const auto got = o_d.to_host();
    ErrorStats st;
    for (index_t t = 0; t < c.n; ++t) {
      for (index_t h = 0; h < c.heads; ++h) {
        double S = 0.0;
        for (index_t j = 0; j <= c.start + t; ++j) {
          double a = 0.0;
          for (index_t d = 0; d < c.rank; ++d) a += std::fabs(ql[t * lw + h * c.rank + d] * lat[j * c.rank + d]);
          for (index_t d = 0; d < c.rope; ++d) a += std::fabs(q[t * qw + h * s.qk() + c.nope + d] * kr[j * c.rope + d]);
          S = std::max(S, a * s.scale);
        }
        const double tol = attention_tol(c.rank + c.rope, S, c.start + t + 1, 1.0);
        for (index_t d = 0; d < c.rank; ++d) st.compare(got[t * lw + h * c.rank + d], want[t * lw + h * c.rank + d], tol);
      }
    }
    char what[128];
    std::snprintf(what, sizeof what, "mla_attention n=%zu start=%zu heads=%zu rank=%zu rope=%zu", c.n, c.start, c.heads,
                  c.rank, c.rope);
    report(what, st);
  }
}

TEMPLATE_TEST_CASE("mla_absorb_queries / mla_expand_values(cuda) match the reference", "[cuda][mla]", float, bf16, f16) {
  using W = TestType;
  kernels::MlaShape s;
  s.n_heads = 3, s.kv_lora_rank = 40, s.nope = 5, s.rope = 7, s.v = 9;
  const index_t rows = s.n_heads * (s.nope + s.v), ld_kvb = s.kv_lora_rank + 3;
  const auto kvb = random_weights<W>(rows * ld_kvb);
  std::vector<W> kvb_abs(kvb.size());
  for (index_t i = 0; i < kvb.size(); ++i) kvb_abs[i] = moe::from_float<W>(std::fabs(moe::to_float(kvb[i])));
  const View<const W, 2> kvb_v(kvb.data(), {rows, s.kv_lora_rank}, {ld_kvb, 1});
  const View<const W, 2> kvb_abs_v(kvb_abs.data(), {rows, s.kv_lora_rank}, {ld_kvb, 1});
  const auto kvb_d = to_device(kvb);
  const auto kvb_dv = kvb_d.template view<2>({rows, s.kv_lora_rank}, {ld_kvb, 1});
  for (index_t n : {index_t{1}, index_t{20}}) {
    const bool mma = !std::is_same_v<W, float> && n > kernels::cuda_detail::kGemvMaxTokens;
    auto abs_of = [](std::vector<float> v) {
      for (float& f : v) f = std::fabs(f);
      return v;
    };
    // absorb: q [n, heads·qk] -> q_latent [n, heads·rank]
    {
      const index_t qw = s.n_heads * s.qk(), lw = s.n_heads * s.kv_lora_rank;
      const auto q = random_floats(n * qw), qa = abs_of(q);
      std::vector<float> want(n * lw), bound(n * lw);
      kernels::mla_absorb_queries(kRef, s, kvb_v, View<const float, 2>(q.data(), {n, qw}), View<float, 2>(want.data(), {n, lw}));
      kernels::mla_absorb_queries(kRef, s, kvb_abs_v, View<const float, 2>(qa.data(), {n, qw}),
                                  View<float, 2>(bound.data(), {n, lw}));
      const auto q_d = to_device(q);
      auto o_d = poisoned(n * lw);
      kernels::mla_absorb_queries(kCuda, s, kvb_dv, q_d.view<2>({n, qw}), o_d.view<2>({n, lw}));
      const auto got = o_d.to_host();
      ErrorStats st;
      for (index_t i = 0; i < got.size(); ++i) {
        st.compare(got[i], want[i], (s.nope * kEps + (mma ? kSplitBf16Rel : 0.0)) * bound[i] + 0.5 * kEps * std::fabs(want[i]));
      }
      report(std::string("mla_absorb_queries w=") + wname<W>() + " n=" + std::to_string(n), st);
    }
    // expand: out_latent [n, heads·rank] -> out [n, heads·v]
    {
      const index_t lw = s.n_heads * s.kv_lora_rank, ow = s.n_heads * s.v;
      const auto ol = random_floats(n * lw), ola = abs_of(ol);
      std::vector<float> want(n * ow), bound(n * ow);
      kernels::mla_expand_values(kRef, s, kvb_v, View<const float, 2>(ol.data(), {n, lw}), View<float, 2>(want.data(), {n, ow}));
      kernels::mla_expand_values(kRef, s, kvb_abs_v, View<const float, 2>(ola.data(), {n, lw}),
                                 View<float, 2>(bound.data(), {n, ow}));
      const auto ol_d = to_device(ol);
      auto o_d = poisoned(n * ow);
      kernels::mla_expand_values(kCuda, s, kvb_dv, ol_d.view<2>({n, lw}), o_d.view<2>({n, ow}));
      const auto got = o_d.to_host();
      ErrorStats st;
      for (index_t i = 0; i < got.size(); ++i) {
        st.compare(got[i], want[i],
                   (s.kv_lora_rank * kEps + (mma ? kSplitBf16Rel : 0.0)) * bound[i] + 0.5 * kEps * std::fabs(want[i]));
      }
      report(std::string("mla_expand_values w=") + wname<W>() + " n=" + std::to_string(n), st);
    }
  }
}

// ---- routing ---------------------------------------------------------------------------------

struct RouteCase {
  const char* name;
  kernels::RouterConfig c;
  index_t n_tokens;
  float quantum;  // > 0: logits rounded to multiples of it (many exact ties)
  bool nans;      // some NaN logits
};

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// route_and_bucket(cuda) against route then bucket_by_expert (cuda), bitwise: the first token alone
// (the one-block fused kernel) and all of them (the two ops).
void check_route_and_bucket(const kernels::RouterConfig& c, const DeviceBuffer<float>& logits_d,
                            const DeviceBuffer<float>& bias_d, index_t n) {
  const index_t e = c.n_experts, k = c.top_k;
  for (const index_t rows : {index_t{1}, n}) {
    struct Out {
      DeviceBuffer<float> scratch, w, sw;
      DeviceBuffer<std::int32_t> ids, off, tok;
      DeviceBuffer<std::uint64_t> usage;
      DeviceBuffer<double> wsum;
    };
    const auto make = [&] {
      Out o{DeviceBuffer<float>(kernels::router_scratch_floats(c)), poisoned(rows * k), poisoned(rows * k),
            DeviceBuffer<std::int32_t>(rows * k), DeviceBuffer<std::int32_t>(e + 1), DeviceBuffer<std::int32_t>(rows * k),
            to_device(std::vector<std::uint64_t>(e, 3)), to_device(std::vector<double>(e, 0.5))};
      return o;
    };
    Out a = make(), b = make();
    const auto logits = logits_d.view<2>({rows, e});
    const auto bias = bias_d.view<1>({c.has_correction_bias ? e : 0});
    kernels::route(kCuda, c, logits, bias, a.scratch.view(), a.ids.view<2>({rows, k}), a.w.view<2>({rows, k}));
    kernels::bucket_by_expert(kCuda, DeviceView<const std::int32_t, 2>(a.ids.view<2>({rows, k})),
                              DeviceView<const float, 2>(a.w.view<2>({rows, k})), a.off.view(), a.tok.view(), a.sw.view(),
                              a.usage.view(), a.wsum.view());
    kernels::route_and_bucket(kCuda, c, logits, bias, b.scratch.view(), b.ids.view<2>({rows, k}), b.w.view<2>({rows, k}),
                              b.off.view(), b.tok.view(), b.sw.view(), b.usage.view(), b.wsum.view());
    INFO("route_and_bucket rows=" << rows << " experts=" << e << " top " << k);
    CHECK(a.ids.to_host() == b.ids.to_host());
    CHECK(bitwise_equal(a.w.to_host(), b.w.to_host()));
    CHECK(a.off.to_host() == b.off.to_host());
    CHECK(a.tok.to_host() == b.tok.to_host());
    CHECK(bitwise_equal(a.sw.to_host(), b.sw.to_host()));
    CHECK(a.usage.to_host() == b.usage.to_host());
    CHECK(a.wsum.to_host() == b.wsum.to_host());
  }
}

void check_route_case(const RouteCase& rc) {
  const auto& c = rc.c;
  const index_t n = rc.n_tokens, e = c.n_experts, k = c.top_k;
  auto logits = random_floats(n * e, -3.0f, 3.0f);
  if (rc.quantum > 0) {
    for (float& f : logits) f = std::round(f / rc.quantum) * rc.quantum;
  }
  if (rc.nans) {
    for (index_t i = 0; i < logits.size(); i += 7) logits[i] = NAN;
  }
  const auto bias = random_floats(c.has_correction_bias ? e : 0, -0.2f, 0.2f);
  std::vector<float> scratch(kernels::router_scratch_floats(c));
  std::vector<std::int32_t> ids(n * k);
  std::vector<float> w(n * k);
  kernels::route(kRef, c, View<const float, 2>(logits.data(), {n, e}), View<const float, 1>(bias.data(), {bias.size()}),
                 View<float, 1>(scratch.data(), {scratch.size()}), View<std::int32_t, 2>(ids.data(), {n, k}),
                 View<float, 2>(w.data(), {n, k}));
  const auto l_d = to_device(logits), b_d = to_device(bias);
  DeviceBuffer<float> s_d(scratch.size());
  DeviceBuffer<std::int32_t> ids_d(n * k);
  ids_d.fill_bytes(0xff);
  auto w_d = poisoned(n * k);
  kernels::route(kCuda, c, l_d.view<2>({n, e}), b_d.view<1>({bias.size()}), s_d.view<1>({scratch.size()}),
                 ids_d.view<2>({n, k}), w_d.view<2>({n, k}));
  check_route_and_bucket(c, l_d, b_d, n);
  const auto ids_g = ids_d.to_host();
  const auto w_g = w_d.to_host();
  index_t id_mismatch = 0;
  for (index_t i = 0; i < ids.size(); ++i) id_mismatch += ids[i] != ids_g[i];
  ErrorStats st;
  // Weights: the same scores (double-evaluated exp, one rounding) divided by sums formed in a
  // different order: a few eps relative.
  for (index_t i = 0; i < w.size(); ++i) st.compare(w_g[i], w[i], 8.0 * kEps * std::fabs(w[i]) + 1e-30);
  char what[128];
  std::snprintf(what, sizeof what, "route %s (%zu tokens, top %zu of %zu)", rc.name, n, k, e);
  report(what, st);
  INFO(what << " seed=" << test_seed());
  CHECK(id_mismatch == 0);
}

TEST_CASE("route(cuda) matches the reference ids exactly and weights to rounding", "[cuda][router]") {
  using kernels::GroupScore;
  using kernels::RouterScoring;
  std::vector<RouteCase> cases;
  {
    kernels::RouterConfig c;
    c.n_experts = 13, c.top_k = 4;
    cases.push_back({"softmax, ties", c, 29, 0.5f, false});
    c.norm_topk_prob = true, c.routed_scaling_factor = 2.5f;
    cases.push_back({"softmax, renormalised, scaled", c, 17, 0.0f, false});
  }
  {
    kernels::RouterConfig c;  // DeepSeek-V3 / GLM-4-MoE noaux_tc
    c.scoring = RouterScoring::kSigmoid, c.group_score = GroupScore::kTopTwo;
    c.n_experts = 16, c.top_k = 4, c.n_group = 4, c.topk_group = 2;
    c.norm_topk_prob = true, c.renorm_epsilon = 1e-20f, c.routed_scaling_factor = 2.5f, c.has_correction_bias = true;
    cases.push_back({"sigmoid, bias, top-two groups", c, 31, 0.0f, false});
    cases.push_back({"sigmoid, bias, groups, ties", c, 31, 0.25f, false});
    c.n_experts = 256, c.top_k = 8, c.n_group = 8, c.topk_group = 4;
    cases.push_back({"DeepSeek-V3 shape", c, 37, 0.0f, false});
    c.group_score = GroupScore::kNone, c.n_group = 1, c.n_experts = 64;
    cases.push_back({"sigmoid with NaN logits", c, 9, 0.0f, true});
  }
  {
    kernels::RouterConfig c;  // DeepSeek-V2 group_limited_greedy: dropped groups score 0
    c.group_score = GroupScore::kMax, c.n_experts = 12, c.top_k = 5, c.n_group = 4, c.topk_group = 1;
    c.dropped_groups_to_minus_inf = false;
    cases.push_back({"softmax, max groups, dropped -> 0", c, 23, 0.0f, false});
    c.dropped_groups_to_minus_inf = true;
    cases.push_back({"softmax, max groups, dropped -> -inf", c, 23, 0.0f, false});
  }
  {
    kernels::RouterConfig c;  // GPT-OSS
    c.scoring = RouterScoring::kTopkSoftmax, c.n_experts = 32, c.top_k = 4;
    cases.push_back({"top-k then softmax", c, 19, 0.0f, false});
    cases.push_back({"top-k then softmax, ties", c, 19, 1.0f, false});
    c.n_experts = 40, c.top_k = 5;
    cases.push_back({"top-k then softmax, NaN logits", c, 11, 0.0f, true});
  }
  {
    kernels::RouterConfig c;  // Qwen3-MoE: one warp per token (route_warp_kernel), 4 experts per lane
    c.n_experts = 128, c.top_k = 8, c.norm_topk_prob = true;
    cases.push_back({"Qwen3 shape, one warp per token", c, 21, 0.0f, false});
    cases.push_back({"Qwen3 shape, ties", c, 5, 0.5f, false});
    c.n_experts = 512, c.top_k = 32;  // the most the warp path takes: 16 experts a lane, a choice a lane
    cases.push_back({"softmax, 512 experts, top 32, one warp", c, 6, 0.25f, false});
    c.top_k = 33;  // one choice more: a block per token
    cases.push_back({"softmax, 512 experts, top 33, a block", c, 3, 0.0f, false});
    c.scoring = RouterScoring::kSigmoid, c.n_experts = 1024, c.top_k = 6, c.has_correction_bias = true;
    cases.push_back({"sigmoid, bias, 1024 experts, a block", c, 4, 0.0f, false});
    c.n_experts = 300;
    cases.push_back({"sigmoid, bias, 300 experts, one warp", c, 7, 0.0f, false});
  }
  {
    kernels::RouterConfig c;  // the most experts a config may have: scores exceed 48 KiB of shared memory
    c.n_experts = 8192, c.top_k = 16;
    cases.push_back({"softmax, 8192 experts", c, 3, 0.0f, false});
  }
  for (const RouteCase& rc : cases) check_route_case(rc);
}

// ---- expert dispatch -----------------------------------------------------------------------------

TEST_CASE("bucket_by_expert and combine_experts(cuda) match the reference exactly / to rounding", "[cuda][moe]") {
  struct Case {
    index_t n, k, n_experts, d;
  };
  // The single-block scan with several counts per thread (3000 experts), and the multi-block path
  // with more experts than threads.
  for (const Case& c : {Case{37, 3, 13, 29}, Case{1, 8, 128, 67}, Case{300, 6, 64, 33}, Case{5, 8, 3000, 16},
                        Case{200, 8, 2500, 9}}) {
    const index_t slots = c.n * c.k;
    std::vector<std::int32_t> ids(slots);
    std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(c.n_experts - 1));
    for (auto& id : ids) id = pick(rng());
    const auto weights = random_floats(slots, 0.0f, 1.0f);
    std::vector<std::uint64_t> usage(c.n_experts, 5);
    std::vector<std::int32_t> offsets(c.n_experts + 1), slot_token(slots);
    std::vector<float> slot_weight(slots);
    auto ref_bucket = [&] {
      kernels::bucket_by_expert(kRef, View<const std::int32_t, 2>(ids.data(), {c.n, c.k}),
                                View<const float, 2>(weights.data(), {c.n, c.k}),
                                View<std::int32_t, 1>(offsets.data(), {offsets.size()}),
                                View<std::int32_t, 1>(slot_token.data(), {slots}), View<float, 1>(slot_weight.data(), {slots}),
                                View<std::uint64_t, 1>(usage.data(), {usage.size()}));
    };
    ref_bucket();
    ref_bucket();  // usage accumulates
    const auto ids_d = to_device(ids);
    const auto w_d = to_device(weights);
    auto usage_d = to_device(std::vector<std::uint64_t>(c.n_experts, 5));
    DeviceBuffer<std::int32_t> off_d(c.n_experts + 1), tok_d(slots);
    auto sw_d = poisoned(slots);
    for (int rep = 0; rep < 2; ++rep) {
      kernels::bucket_by_expert(kCuda, ids_d.view<2>({c.n, c.k}), w_d.view<2>({c.n, c.k}), off_d.view(), tok_d.view(),
                                sw_d.view<1>({slots}), usage_d.view());
    }
    INFO("bucket_by_expert n=" << c.n << " k=" << c.k << " experts=" << c.n_experts << " seed=" << test_seed());
    CHECK(off_d.to_host() == offsets);
    CHECK(tok_d.to_host() == slot_token);
    CHECK(sw_d.to_host() == slot_weight);
    CHECK(usage_d.to_host() == usage);

    // combine: the expert outputs ys [slots, d] back to y [n, d] (row stride d + 3).
    const index_t ld_y = c.d + 3;
    const auto ys = random_floats(slots * c.d);
    std::vector<float> want(c.n * ld_y, NAN);
    kernels::combine_experts(kRef, View<const float, 2>(ys.data(), {slots, c.d}),
                             View<const std::int32_t, 1>(slot_token.data(), {slots}),
                             View<const float, 1>(slot_weight.data(), {slots}), View<float, 2>(want.data(), {c.n, c.d}, {ld_y, 1}));
    const auto ys_d = to_device(ys);
    auto y_d = poisoned(c.n * ld_y);
    kernels::combine_experts(kCuda, ys_d.view<2>({slots, c.d}), tok_d.view(), DeviceView<const float, 1>(sw_d.view<1>({slots})),
                             y_d.view<2>({c.n, c.d}, {ld_y, 1}));
    // k terms summed in the same (slot) order, with or without FMA on the host: (k + 1) eps of Σ|w·y|
    // (|w| <= 1, |y| <= 1).
    char what[128];
    std::snprintf(what, sizeof what, "combine_experts n=%zu k=%zu d=%zu", c.n, c.k, c.d);
    report(what, compare_rows(y_d.to_host(), want, c.n, c.d, ld_y, 0.0, (c.k + 1) * kEps * c.k));
  }
}

// ---- elastic experts and expert telemetry ------------------------------------------------------

TEST_CASE("limit_experts, bucket_by_expert with dropped slots, gather/combine, accumulate_expert_weights(cuda) "
          "equal the reference bit for bit", "[cuda][moe][budget]") {
  struct Case {
    index_t n, k, n_experts, d;
  };
  // Decode-sized (one-block bucket) and prefill-sized (three-launch bucket) passes.
  for (const Case& c : {Case{37, 4, 13, 29}, Case{1, 8, 128, 67}, Case{400, 6, 64, 33}}) {
    const index_t slots = c.n * c.k;
    std::vector<std::int32_t> ids(slots);
    for (index_t t = 0; t < c.n; ++t) {  // distinct experts per row, as a router gives
      std::vector<std::int32_t> all(c.n_experts);
      for (index_t e = 0; e < c.n_experts; ++e) all[e] = static_cast<std::int32_t>(e);
      std::shuffle(all.begin(), all.end(), rng());
      for (index_t j = 0; j < c.k; ++j) ids[t * c.k + j] = all[j];
    }
    const auto weights0 = random_floats(slots, 0.0f, 1.0f);
    std::vector<kernels::ExpertBudgetRow> budget(c.n);
    for (index_t t = 0; t < c.n; ++t) {  // every kind of row: none, top-k', threshold, both, renorm or not
      const auto kk = static_cast<std::int32_t>(c.k);
      budget[t] = kernels::ExpertBudgetRow{static_cast<std::int32_t>(1 + t % kk), static_cast<std::int32_t>(1 + t % 2),
                                           (t % 3) * 0.3f, static_cast<std::int32_t>(t % 2)};
    }
    // Reference.
    std::vector<std::int32_t> ids_ref = ids;
    std::vector<float> w_ref = weights0;
    kernels::limit_experts(kRef, View<const kernels::ExpertBudgetRow, 1>(budget.data(), {c.n}),
                           View<std::int32_t, 2>(ids_ref.data(), {c.n, c.k}), View<float, 2>(w_ref.data(), {c.n, c.k}));
    std::vector<std::uint64_t> usage(c.n_experts, 3);
    std::vector<double> wsum(c.n_experts, 0.5);
    std::vector<std::int32_t> offsets(c.n_experts + 1), slot_token(slots);
    std::vector<float> slot_weight(slots);
    kernels::bucket_by_expert(kRef, View<const std::int32_t, 2>(ids_ref.data(), {c.n, c.k}),
                              View<const float, 2>(w_ref.data(), {c.n, c.k}),
                              View<std::int32_t, 1>(offsets.data(), {offsets.size()}),
                              View<std::int32_t, 1>(slot_token.data(), {slots}), View<float, 1>(slot_weight.data(), {slots}),
                              View<std::uint64_t, 1>(usage.data(), {usage.size()}));
    kernels::accumulate_expert_weights(kRef, View<const std::int32_t, 1>(offsets.data(), {offsets.size()}),
                                       View<const float, 1>(slot_weight.data(), {slots}),
                                       View<double, 1>(wsum.data(), {wsum.size()}));
    REQUIRE(offsets.back() < static_cast<std::int32_t>(slots));  // some slots were dropped
    // Device.
    const auto b_d = to_device(budget);
    auto ids_d = to_device(ids);
    auto w_d = to_device(weights0);
    kernels::limit_experts(kCuda, DeviceView<const kernels::ExpertBudgetRow, 1>(b_d.view()), ids_d.view<2>({c.n, c.k}),
                           w_d.view<2>({c.n, c.k}));
    INFO("n=" << c.n << " k=" << c.k << " experts=" << c.n_experts << " seed=" << test_seed());
    CHECK(ids_d.to_host() == ids_ref);
    CHECK(w_d.to_host() == w_ref);
    auto usage_d = to_device(std::vector<std::uint64_t>(c.n_experts, 3));
    auto wsum_d = to_device(std::vector<double>(c.n_experts, 0.5));
    DeviceBuffer<std::int32_t> off_d(c.n_experts + 1), tok_d(slots);
    tok_d.fill_bytes(0x55);  // stale values from an earlier pass must not survive in the tail
    auto sw_d = poisoned(slots);
    kernels::bucket_by_expert(kCuda, DeviceView<const std::int32_t, 2>(ids_d.view<2>({c.n, c.k})),
                              DeviceView<const float, 2>(w_d.view<2>({c.n, c.k})), off_d.view(), tok_d.view(),
                              sw_d.view<1>({slots}), usage_d.view());
    kernels::accumulate_expert_weights(kCuda, DeviceView<const std::int32_t, 1>(off_d.view()),
                                       DeviceView<const float, 1>(sw_d.view<1>({slots})), wsum_d.view());
    CHECK(off_d.to_host() == offsets);
    CHECK(tok_d.to_host() == slot_token);
    CHECK(sw_d.to_host() == slot_weight);
    CHECK(usage_d.to_host() == usage);
    CHECK(wsum_d.to_host() == wsum);
    // The weight sums folded into the bucketing (moe_forward's call): the same counters, bitwise.
    auto wsum2_d = to_device(std::vector<double>(c.n_experts, 0.5));
    DeviceBuffer<std::uint64_t> no_usage(0);
    kernels::bucket_by_expert(kCuda, DeviceView<const std::int32_t, 2>(ids_d.view<2>({c.n, c.k})),
                              DeviceView<const float, 2>(w_d.view<2>({c.n, c.k})), off_d.view(), tok_d.view(),
                              sw_d.view<1>({slots}), no_usage.view(), wsum2_d.view());
    CHECK(wsum2_d.to_host() == wsum);
    CHECK(off_d.to_host() == offsets);
    CHECK(sw_d.to_host() == slot_weight);
    // Co-activation pairs of the limited ids (dropped slots skipped), as the reference counts them.
    std::vector<std::uint64_t> pairs(c.n_experts * c.n_experts, 2);
    kernels::accumulate_coactivation(kRef, View<const std::int32_t, 2>(ids_ref.data(), {c.n, c.k}),
                                     View<std::uint64_t, 1>(pairs.data(), {pairs.size()}), c.n_experts);
    auto pairs_d = to_device(std::vector<std::uint64_t>(c.n_experts * c.n_experts, 2));
    kernels::accumulate_coactivation(kCuda, DeviceView<const std::int32_t, 2>(ids_d.view<2>({c.n, c.k})),
                                     pairs_d.view(), c.n_experts);
    CHECK(pairs_d.to_host() == pairs);

    // gather_rows / combine_experts skip the dropped tail (token -1).
    const auto x = random_floats(c.n * c.d);
    const auto x_d = to_device(x);
    auto xs_d = poisoned(slots * c.d);
    kernels::gather_rows(kCuda, DeviceView<const float, 2>(x_d.view<2>({c.n, c.d})),
                         DeviceView<const std::int32_t, 1>(tok_d.view()), xs_d.view<2>({slots, c.d}));
    const auto xs = xs_d.to_host();
    for (index_t s2 = 0; s2 < static_cast<index_t>(offsets.back()); ++s2) {
      REQUIRE(std::memcmp(&xs[s2 * c.d], &x[static_cast<index_t>(slot_token[s2]) * c.d], c.d * sizeof(float)) == 0);
    }
    const auto ys = random_floats(slots * c.d);
    std::vector<float> want(c.n * c.d);
    kernels::combine_experts(kRef, View<const float, 2>(ys.data(), {slots, c.d}),
                             View<const std::int32_t, 1>(slot_token.data(), {slots}),
                             View<const float, 1>(slot_weight.data(), {slots}), View<float, 2>(want.data(), {c.n, c.d}));
    const auto ys_d = to_device(ys);
    auto y_d = poisoned(c.n * c.d);
    kernels::combine_experts(kCuda, DeviceView<const float, 2>(ys_d.view<2>({slots, c.d})), tok_d.view(),
                             DeviceView<const float, 1>(sw_d.view<1>({slots})), y_d.view<2>({c.n, c.d}));
    char what[128];
    std::snprintf(what, sizeof what, "combine_experts with dropped slots n=%zu k=%zu d=%zu", c.n, c.k, c.d);
    report(what, compare_rows(y_d.to_host(), want, c.n, c.d, c.d, 0.0, (c.k + 1) * kEps * c.k));
  }
}

// ---- performance (printed) ---------------------------------------------------------------------

// The pass-wide cache ops: three sequences (a prefill chunk, a decode row over a long context
// that takes the cluster split, a short chunk) in one launch each, against the reference's
// per-sequence composition over the same caches. Appends are exact copies; attention within
// the usual f32 bound.
TEST_CASE("append_cache / cached_attention / cached_mla_attention(cuda) match the reference", "[cuda][attention][cache]") {
  struct Seq {
    index_t start, n;
  };
  const std::vector<Seq> decode_like{{0, 6}, {900, 1}, {13, 3}};   // the per-row kernel (cluster split)
  const std::vector<Seq> prefill_like{{0, 40}, {100, 70}, {5, 2}};  // the query-tile kernel
  const index_t cap = 1000;
  for (const bool mla : {false, true})
  for (const auto& seqs : {decode_like, prefill_like}) {
    kernels::AttentionShape a;
    a.n_heads = 4, a.n_kv_heads = 2, a.head_dim = 24, a.v_head_dim = 16, a.scale = 0.2f;
    kernels::MlaShape m;
    m.n_heads = 3, m.kv_lora_rank = 40, m.nope = 8, m.rope = 6, m.v = 5, m.scale = 0.15f;
    const index_t kw = mla ? m.kv_lora_rank : a.n_kv_heads * a.head_dim;
    const index_t vw = mla ? m.rope : a.n_kv_heads * a.v_head_dim;
    const std::vector<KvLayerShape> shapes{{7, 3}, {kw, vw}};  // the op works on layer 1
    std::vector<KvCache> host;
    std::vector<BasicKvCache<device_memory>> dev;
    index_t n = 0;
    for (const Seq& q : seqs) {
      host.emplace_back(shapes, cap);
      dev.emplace_back(shapes, cap);
      n += q.n;
    }
    std::vector<kernels::CacheSlot> hs, ds;
    std::vector<std::int32_t> token_slot;
    index_t max_keys = 0;
    for (std::size_t i = 0; i < host.size(); ++i) {
      // The cached prefix: random rows, the same on both sides.
      const auto prefix = random_floats(cap * (kw + vw), -1.0f, 1.0f);
      std::copy(prefix.begin(), prefix.end(), host[i].keys(1).data());
      kernels::upload(kCuda, std::span<const float>(prefix), DeviceView<float, 1>(dev[i].keys(1).data(), {prefix.size()}));
      host[i].append(seqs[i].start), dev[i].append(seqs[i].start);
      hs.push_back(host[i].slot(token_slot.size(), seqs[i].n));
      ds.push_back(dev[i].slot(token_slot.size(), seqs[i].n));
      for (index_t j = 0; j < seqs[i].n; ++j) token_slot.push_back(static_cast<std::int32_t>(i));
      max_keys = std::max(max_keys, seqs[i].start + seqs[i].n);
    }
    const kernels::CacheLayer layer = host[0].layer(1);
    const kernels::PassSlots<host_memory> hp{View<const kernels::CacheSlot, 1>(hs.data(), {hs.size()}),
                                             View<const std::int32_t, 1>(token_slot.data(), {n}), max_keys};
    auto ds_d = to_device(ds);
    auto ts_d = to_device(token_slot);
    const kernels::PassSlots<device_memory> dp{ds_d.view<1>({ds.size()}), ts_d.view<1>({n}), max_keys};
    const auto k = random_floats(n * kw, -1.0f, 1.0f), v = random_floats(n * vw, -1.0f, 1.0f);
    const auto k_d = to_device(k), v_d = to_device(v);
    kernels::append_cache(kRef, hp, layer, View<const float, 2>(k.data(), {n, kw}), View<const float, 2>(v.data(), {n, vw}));
    kernels::append_cache(kCuda, dp, layer, k_d.view<2>({n, kw}), v_d.view<2>({n, vw}));
    for (std::size_t i = 0; i < host.size(); ++i) {
      std::vector<float> got(cap * (kw + vw));
      kernels::download(kCuda, DeviceView<const float, 1>(dev[i].keys(1).data(), {got.size()}), std::span<float>(got));
      CHECK(std::equal(got.begin(), got.end(), host[i].keys(1).data()));
    }
    const index_t qw = mla ? m.n_heads * m.qk() : a.n_heads * a.head_dim;
    const index_t ow = mla ? m.n_heads * m.kv_lora_rank : a.n_heads * a.v_head_dim;
    const auto q = random_floats(n * qw, -1.0f, 1.0f), ql = random_floats(n * ow, -1.0f, 1.0f);
    const auto q_d = to_device(q), ql_d = to_device(ql);
    std::vector<float> want(n * ow, NAN);
    auto o_d = poisoned(n * ow);
    if (mla) {
      kernels::cached_mla_attention(kRef, m, hp, layer, View<const float, 2>(q.data(), {n, qw}),
                                    View<const float, 2>(ql.data(), {n, ow}), View<float, 2>(want.data(), {n, ow}));
      kernels::cached_mla_attention(kCuda, m, dp, layer, q_d.view<2>({n, qw}), ql_d.view<2>({n, ow}),
                                    o_d.view<2>({n, ow}));
    } else {
      kernels::cached_attention(kRef, a, hp, layer, View<const float, 2>(q.data(), {n, qw}), View<const float, 1>(),
                                View<float, 2>(want.data(), {n, ow}));
      kernels::cached_attention(kCuda, a, dp, layer, q_d.view<2>({n, qw}), DeviceView<const float, 1>(),
                                o_d.view<2>({n, ow}));
    }
    const auto got = o_d.to_host();
    ErrorStats st;
    for (index_t i = 0; i < n * ow; ++i) st.compare(got[i], want[i], 2e-5);
    report(std::string(mla ? "cached_mla_attention" : "cached_attention") + (seqs.size() && seqs[1].n > 1 ? " (query tiles)" : ""), st);
    // A table whose token_slot extent does not match the rows is refused before any launch.
    expect_invalid([&] {
      kernels::append_cache(kCuda, kernels::PassSlots<device_memory>{dp.slots, dp.token_slot.slice(0, n - 1), max_keys},
                            layer, k_d.view<2>({n, kw}), v_d.view<2>({n, vw}));
    });
  }
}

// qk_norm_rope_append: q, k and both sequences' caches bitwise qk_norm_rope then append_cache.
TEST_CASE("qk_norm_rope_append(cuda) is bitwise qk_norm_rope then append_cache", "[cuda][fused][cache]") {
  const index_t H = 6, KV = 2, hd = 40, half = 16, vw = KV * 24, cap = 64;
  const index_t kw = KV * hd;
  const std::vector<index_t> starts{0, 50}, lens{3, 2};  // two sequences: prefill-like and decode-like rows
  const index_t n = lens[0] + lens[1];
  const std::vector<KvLayerShape> shapes{{5, 3}, {kw, vw}};
  for (const bool norm : {true, false}) {
    std::vector<BasicKvCache<device_memory>> a, b;
    std::vector<kernels::CacheSlot> sa, sb;
    std::vector<std::int32_t> token_slot;
    for (std::size_t i = 0; i < starts.size(); ++i) {
      a.emplace_back(shapes, cap), b.emplace_back(shapes, cap);
      const auto prefix = random_floats(cap * (kw + vw), -1.0f, 1.0f);
      for (auto* c : {&a[i], &b[i]}) {
        kernels::upload(kCuda, std::span<const float>(prefix), DeviceView<float, 1>(c->keys(1).data(), {prefix.size()}));
        c->append(starts[i]);
      }
      sa.push_back(a[i].slot(token_slot.size(), lens[i]));
      sb.push_back(b[i].slot(token_slot.size(), lens[i]));
      for (index_t j = 0; j < lens[i]; ++j) token_slot.push_back(static_cast<std::int32_t>(i));
    }
    const kernels::CacheLayer layer = a[0].layer(1);
    auto sa_d = to_device(sa), sb_d = to_device(sb);
    auto ts_d = to_device(token_slot);
    const kernels::PassSlots<device_memory> pa{sa_d.view<1>({sa.size()}), ts_d.view<1>({n}), cap};
    const kernels::PassSlots<device_memory> pb{sb_d.view<1>({sb.size()}), ts_d.view<1>({n}), cap};
    const auto q = random_floats(n * H * hd, -2.0f, 2.0f), k = random_floats(n * kw, -2.0f, 2.0f);
    const auto v = random_floats(n * vw, -1.0f, 1.0f);
    const auto qn = random_floats(hd, 0.5f, 1.5f), kn = random_floats(hd, 0.5f, 1.5f);
    const auto c = random_floats(n * half), sn = random_floats(n * half);
    auto q1 = to_device(q), q2 = to_device(q), k1 = to_device(k), k2 = to_device(k);
    const auto v_d = to_device(v), qn_d = to_device(qn), kn_d = to_device(kn), c_d = to_device(c), s_d = to_device(sn);
    const auto cos = c_d.view<2>({n, half}), sin = s_d.view<2>({n, half});
    const DeviceView<const float, 1> qw = norm ? qn_d.view<1>({hd}) : DeviceView<const float, 1>();
    const DeviceView<const float, 1> kwt = norm ? kn_d.view<1>({hd}) : DeviceView<const float, 1>();
    const auto vv = v_d.view<2>({n, vw});
    kernels::qk_norm_rope(kCuda, q1.view<3>({n, H, hd}), k1.view<3>({n, KV, hd}), qw, kwt, 1e-6f, cos, sin,
                          kernels::RopePairing::half_split);
    kernels::append_cache(kCuda, pa, layer, k1.view<2>({n, kw}), vv);
    kernels::qk_norm_rope_append(kCuda, q2.view<3>({n, H, hd}), k2.view<3>({n, KV, hd}), vv, qw, kwt, 1e-6f, cos, sin,
                                 kernels::RopePairing::half_split, pb, layer);
    CHECK(q1.to_host() == q2.to_host());
    CHECK(k1.to_host() == k2.to_host());
    for (std::size_t i = 0; i < starts.size(); ++i) {
      std::vector<float> ga(cap * (kw + vw)), gb(cap * (kw + vw));
      kernels::download(kCuda, DeviceView<const float, 1>(a[i].keys(1).data(), {ga.size()}), std::span<float>(ga));
      kernels::download(kCuda, DeviceView<const float, 1>(b[i].keys(1).data(), {gb.size()}), std::span<float>(gb));
      CHECK(ga == gb);
    }
    // Value rows of the wrong width are refused before any launch.
    expect_invalid([&] {
      kernels::qk_norm_rope_append(kCuda, q2.view<3>({n, H, hd}), k2.view<3>({n, KV, hd}), v_d.view<2>({n, vw - 1}), qw,
                                   kwt, 1e-6f, cos, sin, kernels::RopePairing::half_split, pb, layer);
    });
  }
}

// The fused steps are bitwise the CUDA composition of the ops they replace.
TEST_CASE("add_rmsnorm / qk_norm_rope / matmul_fanout(cuda) are bitwise their unfused composition", "[cuda][fused]") {
  const index_t n = 5, d = 700;
  const auto h = random_floats(n * d, -2.0f, 2.0f), dl = random_floats(n * d, -1.0f, 1.0f);
  const auto wv = random_floats(d, 0.5f, 1.5f);
  auto h1 = to_device(h), h2 = to_device(h);
  const auto dl_d = to_device(dl), w_d = to_device(wv);
  auto y1 = poisoned(n * d), y2 = poisoned(n * d);
  kernels::add_rmsnorm(kCuda, h1.view<2>({n, d}), dl_d.view<2>({n, d}), w_d.view<1>({d}), 1e-6f, y1.view<2>({n, d}));
  kernels::add(kCuda, h2.view<2>({n, d}), dl_d.view<2>({n, d}));
  kernels::rmsnorm(kCuda, DeviceView<const float, 2>(h2.view<2>({n, d})), w_d.view<1>({d}), 1e-6f, y2.view<2>({n, d}));
  CHECK(h1.to_host() == h2.to_host());
  CHECK(y1.to_host() == y2.to_host());
  {  // a row longer than add_rmsnorm_kernel keeps in registers (512 threads x 16)
    const index_t dl2 = 9001;
    const auto hh = random_floats(2 * dl2, -2.0f, 2.0f), dd = random_floats(2 * dl2, -1.0f, 1.0f);
    const auto ww = random_floats(dl2, 0.5f, 1.5f);
    auto a1 = to_device(hh), a2 = to_device(hh);
    const auto dd_d = to_device(dd), ww_d = to_device(ww);
    auto z1 = poisoned(2 * dl2), z2 = poisoned(2 * dl2);
    kernels::add_rmsnorm(kCuda, a1.view<2>({2, dl2}), dd_d.view<2>({2, dl2}), ww_d.view<1>({dl2}), 1e-6f,
                         z1.view<2>({2, dl2}));
    kernels::add(kCuda, a2.view<2>({2, dl2}), dd_d.view<2>({2, dl2}));
    kernels::rmsnorm(kCuda, DeviceView<const float, 2>(a2.view<2>({2, dl2})), ww_d.view<1>({dl2}), 1e-6f,
                     z2.view<2>({2, dl2}));
    CHECK(a1.to_host() == a2.to_host());
    CHECK(z1.to_host() == z2.to_host());
  }
  // matmul_fanout: q, k, v of different heights in one launch, bitwise matmul's, 1 to 8 rows and
  // a 9-row pass (separate matmuls).
  // The second set is taller than one resident grid: the warps take several turns.
  struct FanoutCase {
    index_t rows, in, outs[3];
  };
  for (const FanoutCase& fc : {FanoutCase{1, 264, {96, 40, 33}}, FanoutCase{3, 264, {96, 40, 33}},
                               FanoutCase{8, 264, {96, 40, 33}}, FanoutCase{9, 264, {96, 40, 33}},
                               FanoutCase{1, 40, {60001, 7, 9000}}, FanoutCase{5, 40, {33, 70003, 5}},
                               // rows past 4 KB: matmul's long-row variant (16 loads a lane) gives the fan-out's bits
                               FanoutCase{1, 3000, {96, 40, 33}}, FanoutCase{2, 2056, {64, 9, 17}},
                               // rows a team of 2 and of 4 warps splits (GemvTeam)
                               FanoutCase{1, 4104, {96, 40, 33}}, FanoutCase{3, 8200, {20, 9, 17}}}) {
    const index_t rows = fc.rows, in = fc.in;
    const index_t* outs = fc.outs;
    const auto x = random_floats(rows * in);
    const auto x_d = to_device(x);
    std::vector<DeviceBuffer<bf16>> ws;
    std::vector<DeviceBuffer<float>> ya, yb;
    std::vector<DeviceView<const bf16, 2>> wv;
    std::vector<DeviceView<float, 2>> yv;
    for (int p = 0; p < 3; ++p) {
      const index_t o = outs[p];
      const auto wf = random_floats(o * in);
      std::vector<bf16> w16(wf.size());
      for (std::size_t i = 0; i < wf.size(); ++i) w16[i] = moe::to_bf16(wf[i]);
      ws.push_back(to_device(w16));
      ya.push_back(poisoned(rows * o));
      yb.push_back(poisoned(rows * o));
    }
    for (int i = 0; i < 3; ++i) {
      wv.push_back(ws[i].view<2>({outs[i], in}));
      yv.push_back(ya[i].view<2>({rows, outs[i]}));
    }
    kernels::matmul_fanout(kCuda, x_d.view<2>({rows, in}), std::span<const DeviceView<const bf16, 2>>(wv),
                           std::span<const DeviceView<float, 2>>(yv));
    for (int i = 0; i < 3; ++i) {
      kernels::matmul(kCuda, x_d.view<2>({rows, in}), wv[i], yb[i].view<2>({rows, outs[i]}));
      CHECK(ya[i].to_host() == yb[i].to_host());
    }
  }
  for (const bool norm : {true, false}) {
    for (const auto pairing : {kernels::RopePairing::half_split, kernels::RopePairing::interleaved}) {
      const index_t H = 6, KV = 2, hd = 40, half = 16;  // partial rotary (32 of 40 dims)
      const auto q = random_floats(n * H * hd, -2.0f, 2.0f), k = random_floats(n * KV * hd, -2.0f, 2.0f);
      const auto qn = random_floats(hd, 0.5f, 1.5f), kn = random_floats(hd, 0.5f, 1.5f);
      const auto c = random_floats(n * half), sn = random_floats(n * half);
      auto q1 = to_device(q), q2 = to_device(q), k1 = to_device(k), k2 = to_device(k);
      const auto qn_d = to_device(qn), kn_d = to_device(kn), c_d = to_device(c), s_d = to_device(sn);
      const auto cos = c_d.view<2>({n, half}), sin = s_d.view<2>({n, half});
      const DeviceView<const float, 1> qw = norm ? qn_d.view<1>({hd}) : DeviceView<const float, 1>();
      const DeviceView<const float, 1> kw = norm ? kn_d.view<1>({hd}) : DeviceView<const float, 1>();
      kernels::qk_norm_rope(kCuda, q1.view<3>({n, H, hd}), k1.view<3>({n, KV, hd}), qw, kw, 1e-6f, cos, sin, pairing);
      if (norm) {
        kernels::rmsnorm(kCuda, DeviceView<const float, 2>(q2.view<2>({n * H, hd})), qw, 1e-6f, q2.view<2>({n * H, hd}));
        kernels::rmsnorm(kCuda, DeviceView<const float, 2>(k2.view<2>({n * KV, hd})), kw, 1e-6f, k2.view<2>({n * KV, hd}));
      }
      kernels::rope(kCuda, q2.view<3>({n, H, hd}), cos, sin, pairing);
      kernels::rope(kCuda, k2.view<3>({n, KV, hd}), cos, sin, pairing);
      CHECK(q1.to_host() == q2.to_host());
      CHECK(k1.to_host() == k2.to_host());
    }
  }
}

TEST_CASE("performance: decode GEMV bandwidth, prefill tensor-core GEMM, decode attention", "[cuda][perf]") {
  constexpr int kWarmup = 3, kReps = 15;
  const index_t copy_elems = index_t{4096} * 14336 / 2;
  DeviceBuffer<float> src(copy_elems), dst(copy_elems);
  src.fill_bytes(0);
  const double copy_ms = median_ms(
      [&] { MOE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), cudaMemcpyDeviceToDevice)); }, kWarmup,
      kReps);
  const double copy_gbs = 2.0 * static_cast<double>(src.bytes()) / (copy_ms * 1e-3) / 1e9;
  std::printf("\ndevice-to-device copy %.0f MiB: %.3f ms, %.0f GB/s (read + write)\n",
              static_cast<double>(src.bytes()) / (1 << 20), copy_ms, copy_gbs);
  std::printf("| op            | W    | n_tokens | in    | out   | time (us) | GB/s  | of copy |\n");
  std::printf("|---------------|------|---------:|------:|------:|----------:|------:|--------:|\n");
  auto gemv = [&](auto tag, index_t n, index_t in, index_t out, bool in_out) {
    using W = decltype(tag);
    const auto w_dev = to_device(random_weights<W>(out * in));
    const auto x_dev = to_device(random_floats(n * in));
    DeviceBuffer<float> y_dev(n * out);
    const auto x = x_dev.view<2>({n, in});
    const auto y = y_dev.view<2>({n, out});
    const double ms = median_ms(
        [&] {
          if (in_out) kernels::matmul_in_out(kCuda, x, w_dev.template view<2>({in, out}), y);
          else kernels::matmul(kCuda, x, w_dev.template view<2>({out, in}), y);
        },
        kWarmup, kReps);
    const double gbs = static_cast<double>(w_dev.bytes() + x_dev.bytes() + y_dev.bytes()) / (ms * 1e-3) / 1e9;
    std::printf("| %-13s | %-4s | %8zu | %5zu | %5zu | %9.1f | %5.0f | %6.1f%% |\n", in_out ? "matmul_in_out" : "matmul",
                wname<W>(), n, in, out, ms * 1e3, gbs, 100.0 * gbs / copy_gbs);
  };
  gemv(bf16{}, 1, 4096, 14336, false);
  gemv(bf16{}, 1, 14336, 4096, false);
  gemv(bf16{}, 8, 4096, 14336, false);
  gemv(f16{}, 1, 4096, 14336, false);
  gemv(float{}, 1, 4096, 7168, false);
  gemv(bf16{}, 1, 2880, 5760, true);
  gemv(bf16{}, 1, 4096, 14336, true);

  for (index_t n : {index_t{256}, index_t{2048}}) {
    const index_t in = 4096, out = 14336;
    const auto w_dev = to_device(random_bf16(out * in));
    const auto x_dev = to_device(random_floats(n * in));
    DeviceBuffer<float> y_dev(n * out);
    const double ms = median_ms(
        [&] { kernels::matmul(kCuda, x_dev.view<2>({n, in}), w_dev.view<2>({out, in}), y_dev.view<2>({n, out})); }, 1, 5);
    std::printf("prefill GEMM bf16 n_tokens=%zu in=%zu out=%zu: %.3f ms, %.1f TFLOP/s useful (2 bf16 MMAs per tile: "
                "%.1f TFLOP/s of tensor-core work)\n",
                n, in, out, ms, 2.0 * n * in * out / (ms * 1e-3) / 1e12, 4.0 * n * in * out / (ms * 1e-3) / 1e12);
  }

  // Decode attention: Qwen3-30B-A3B's shape (32 query heads, 4 kv heads, head_dim 128).
  for (index_t ctx : {index_t{4096}, index_t{32768}}) {
    kernels::AttentionShape s;
    s.n_heads = 32, s.n_kv_heads = 4, s.head_dim = 128, s.v_head_dim = 128, s.scale = 0.088f;
    const index_t kw = s.n_kv_heads * s.head_dim;
    DeviceBuffer<float> kv(ctx * kw), q(s.n_heads * s.head_dim), o(s.n_heads * s.head_dim);
    kv.upload(random_floats(ctx * kw));
    q.upload(random_floats(s.n_heads * s.head_dim));
    const double ms = median_ms(
        [&] {
          kernels::attention(kCuda, s, q.view<2>({1, s.n_heads * s.head_dim}), kv.view<2>({ctx, kw}), kv.view<2>({ctx, kw}),
                             ctx - 1, DeviceView<const float, 1>(), o.view<2>({1, s.n_heads * s.head_dim}));
        },
        kWarmup, kReps);
    std::printf("decode attention ctx=%zu (32/4 heads of 128, f32 cache, %d blocks per query; device cc %d.x, %d SMs): "
                "%.1f us, %.0f GB/s of K+V cache\n",
                ctx, kernels::cuda_detail::attention_splits(1, s.n_heads, ctx), kernels::cuda_detail::device_major(),
                kernels::cuda_detail::device_sm_count(), ms * 1e3, 2.0 * kv.bytes() / (ms * 1e-3) / 1e9);
  }
}
