// The CUDA backend's block-format weights (ggml's Q8_0 ... MXFP4 and FP8 blocks) against the
// reference: matmul / matmul_in_out on the decode GEMV and the tensor-core GEMM, the grouped
// expert products, MLA's per-head products (matmul_heads), the embedding lookup and the synthetic
// fill. Plus the decode GEMV's read bandwidth per format beside the device's copy bandwidth
// (printed, not asserted).
#include "moe/kernels/cuda/cuda.cuh"
#include "moe/kernels/reference/copy.hpp"
#include "moe/kernels/reference/matmul.hpp"
#include "moe/kernels/reference/matmul_heads.hpp"
#include "moe/kernels/reference/quant_ops.hpp"
#include "moe/quant/formats.hpp"
#include "moe/quant/q8_dot.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using moe::index_t;
using moe::DeviceView;
using moe::View;
using moe::cuda::DeviceBuffer;
namespace kernels = moe::kernels;
namespace quant = moe::quant;

constexpr moe::backend::reference kRef{};
constexpr moe::backend::cuda kCuda{};
constexpr double kEps = 1.1920928955078125e-07;
constexpr double kSplitRel = 1.0 / 32768.0;  // the tensor-core path: x and W each as bf16 hi + lo

std::mt19937& rng() {
  static std::mt19937 gen([] {
    const char* env = std::getenv("MOE_TEST_SEED");
    const std::uint32_t s = env ? static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10)) : std::random_device{}();
    std::printf("CUDA block-format tests: random seed %u (MOE_TEST_SEED replays it)\n", s);
    return s;
  }());
  return gen;
}

std::vector<float> random_floats(index_t n) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = dist(rng());
  return v;
}

// rows x cols elements quantized row by row with ggml's reference quantizer, ld blocks per row.
template <class Q>
std::vector<Q> random_blocks(index_t rows, index_t cols, index_t ld) {
  const index_t nb = cols / static_cast<index_t>(Q::block_elements);
  std::vector<Q> out(std::max<index_t>(rows * ld, 1));
  for (index_t r = 0; r < rows; ++r) {
    const std::vector<float> x = random_floats(cols);
    quant::quantize_row(x.data(), out.data() + r * ld, static_cast<std::size_t>(nb * Q::block_elements));
  }
  return out;
}

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& host) {
  DeviceBuffer<T> b(std::max<index_t>(host.size(), 1));
  b.upload(host);
  return b;
}

// The formats whose decode GEMV takes x quantized to int8 (quant/q8_dot.hpp).
template <class Q>
constexpr bool kIntGemv = quant::q8dot::kGemvIntDot<Q>;

// x[c0, c0 + width) of a row as that GEMV sees it: 32-blocks from c0 quantized to int8 and back
// (x̂ = d·q, the host rule the device's quantize kernel follows).
void x8_round_trip(float* row, index_t width) {
  for (index_t b = 0; b + 32 <= width; b += 32) {
    std::int8_t q[32];
    float s[2];
    quant::q8dot::quantize_x8(row + b, q, s);
    for (int j = 0; j < 32; ++j) row[b + j] = s[0] * static_cast<float>(q[j]);
  }
}

// Per weight row o and block b: max |w| over the block, which bounds the offset and min terms the
// integer path adds and takes off again (8d of Q4_0, dmin·m of Q4_K).
template <class Q>
std::vector<double> block_max_abs(const View<const Q, 2>& w, index_t rows, index_t cols) {
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  std::vector<double> m(rows * (cols / BE), 0.0);
  for (index_t o = 0; o < rows; ++o) {
    for (index_t k = 0; k < cols; ++k) {
      double& v = m[o * (cols / BE) + k / BE];
      v = std::max(v, std::fabs(static_cast<double>(Q::decode(&w(o, 0), static_cast<std::size_t>(k)))));
    }
  }
  return m;
}

template <class Q>
std::string fname() {
  return std::string(moe::dtype_name(Q::dtype));
}

// y = x·Wᵀ (or x·W) on cuda against the reference, |err| <= (in·eps [+ 2^-15 on the GEMM]) Σ|x·w|.
// The integer decode GEMV against the reference on x̂ (x through int8), |err| <= in·eps ·
// Σ|x̂|·(|w| + the block's max |w|).
template <class Q>
void check_block_matmul(index_t n, index_t in, index_t out, bool in_out, index_t row_offset) {
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  const index_t w_rows = in_out ? in : out, w_cols = in_out ? out : in;
  const index_t ld = w_cols / BE + 1;  // a spare block per row: rows are ld apart
  const std::vector<Q> w_host = random_blocks<Q>(row_offset + w_rows, w_cols, ld);
  const std::vector<float> x_host = random_floats(n * in);
  const View<const Q, 2> w_ref(w_host.data() + row_offset * ld, {w_rows, w_cols / BE}, {ld, 1});
  const bool int8 = kIntGemv<Q> && !in_out && n <= kernels::cuda_detail::kGemvMaxTokens;
  std::vector<float> x_seen = x_host;
  if (int8) {
    for (index_t t = 0; t < n; ++t) x8_round_trip(x_seen.data() + t * in, in);
  }
  const std::vector<double> w_max = int8 ? block_max_abs(w_ref, w_rows, w_cols) : std::vector<double>{};
  const View<const float, 2> x_ref(x_seen.data(), {n, in});
  std::vector<float> want(n * out);
  const View<float, 2> y_ref(want.data(), {n, out});
  if (in_out) kernels::matmul_in_out(kRef, x_ref, w_ref, y_ref);
  else kernels::matmul(kRef, x_ref, w_ref, y_ref);

  const auto w_dev = to_device(w_host);
  const auto x_dev = to_device(x_host);
  DeviceBuffer<float> y_dev(std::max<index_t>(n * out, 1));
  y_dev.fill_bytes(0xff);
  const auto w_view = w_dev.template view<2>({w_rows, w_cols / BE}, {ld, 1}, row_offset * ld);
  const auto x_view = x_dev.template view<2>({n, in});
  const auto y_view = y_dev.template view<2>({n, out});
  if (in_out) kernels::matmul_in_out(kCuda, x_view, w_view, y_view);
  else kernels::matmul(kCuda, x_view, w_view, y_view);
  const std::vector<float> got = y_dev.to_host();

  const bool gemm = n > kernels::cuda_detail::kGemvMaxTokens;
  double worst = 0.0;
  index_t bad = 0;
  for (index_t t = 0; t < n; ++t) {
    for (index_t o = 0; o < out; ++o) {
      double abs_sum = 0.0;
      for (index_t k = 0; k < in; ++k) {
        const float wk = in_out ? Q::decode(&w_ref(k, 0), static_cast<std::size_t>(o))
                                : Q::decode(&w_ref(o, 0), static_cast<std::size_t>(k));
        abs_sum += std::fabs(static_cast<double>(x_ref(t, k))) * (std::fabs(wk) + (int8 ? w_max[o * (in / BE) + k / BE] : 0.0));
      }
      const double tol = (static_cast<double>(in) * kEps + (gemm ? kSplitRel : 0.0)) * abs_sum + 1e-30;
      const double err = std::fabs(static_cast<double>(got[t * out + o]) - want[t * out + o]);
      if (!(err <= tol)) ++bad;
      worst = std::max(worst, err / tol);
    }
  }
  std::printf("%-8s %-13s n=%-3zu in=%-4zu out=%-4zu offset=%zu  err/tol %.3f  %s\n", fname<Q>().c_str(),
              in_out ? "matmul_in_out" : "matmul", n, in, out, row_offset, worst, bad == 0 ? "ok" : "FAIL");
  INFO(fname<Q>() << (in_out ? " matmul_in_out" : " matmul") << " n=" << n << " in=" << in << " out=" << out);
  CHECK(bad == 0);
}

template <class Q>
void run_block_matmuls() {
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  const index_t in_a = BE <= 32 ? 96 : 2 * BE, in_b = 1024;  // 96: three 32-blocks (an odd count)
  for (const index_t n : {1, 2, 3, 8, 9, 37, 130}) {
    for (const index_t in : {in_a, in_b}) {
      check_block_matmul<Q>(n, in, 33, false, n == 3 ? 1 : 0);
      check_block_matmul<Q>(n, in, 2 * BE, true, n == 2 ? 1 : 0);  // outputs: whole blocks
    }
  }
  check_block_matmul<Q>(1, in_b, 4099, false, 0);  // many rows: several grid turns
  check_block_matmul<Q>(200, in_b, 257, false, 0);
  // The decode GEMV stages rows in segments of 512 elements (kernels/cuda/row_stage.cuh): 768 is
  // one and a half; 4864 is 9.5, past the 8 slots of a warp, so the ring of slots is reused, with
  // 1, 2 and 4 rows per warp (1, 2 and 4+ tokens). Rows are a spare block apart: their starts take
  // every offset in a 16-byte chunk.
  for (const index_t n : {1, 2, 5}) {
    check_block_matmul<Q>(n, 768, 35, false, 0);
    check_block_matmul<Q>(n, 4864, 37, false, n == 2 ? 1 : 0);
  }
}

// A row's decode GEMV result does not depend on how many tokens share the pass (the tokens of a
// batch, the slots of an expert's bucket): y for one token alone is bitwise the same row of y for
// 2..8 tokens, so a sequence's greedy output does not change with the batch it runs in.
template <class Q>
void check_gemv_batch_invariance() {
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  const index_t in = 4864, out = 45, ld = in / BE + 1;
  const std::vector<Q> w_host = random_blocks<Q>(out, in, ld);
  const std::vector<float> x_host = random_floats(8 * in);
  const auto w_dev = to_device(w_host);
  const auto x_dev = to_device(x_host);
  const auto w_view = w_dev.template view<2>({out, in / BE}, {ld, 1});
  std::vector<std::vector<float>> alone(8);
  for (index_t t = 0; t < 8; ++t) {
    DeviceBuffer<float> y(out);
    kernels::matmul(kCuda, x_dev.template view<2>({1, in}, {in, 1}, t * in), w_view, y.template view<2>({1, out}));
    alone[t] = y.to_host();
  }
  for (index_t n = 2; n <= 8; ++n) {
    DeviceBuffer<float> y(n * out);
    kernels::matmul(kCuda, x_dev.template view<2>({n, in}), w_view, y.template view<2>({n, out}));
    const std::vector<float> got = y.to_host();
    for (index_t t = 0; t < n; ++t) {
      INFO(fname<Q>() << ": token " << t << " of " << n);
      CHECK(std::memcmp(got.data() + t * out, alone[t].data(), out * sizeof(float)) == 0);
    }
  }
}

#define MOE_BLOCK_FORMATS                                                                                      \
  quant::BlockQ8_0, quant::BlockQ4_0, quant::BlockQ4_1, quant::BlockQ5_0, quant::BlockQ5_1, quant::BlockQ2_K, \
      quant::BlockQ3_K, quant::BlockQ4_K, quant::BlockQ5_K, quant::BlockQ6_K, quant::BlockIq4Nl,              \
      quant::BlockIq4Xs, quant::BlockMxfp4, quant::BlockFp8E4m3

}  // namespace

TEMPLATE_TEST_CASE("matmul / matmul_in_out(cuda) with block-format weights match the reference", "[cuda][quant]",
                   MOE_BLOCK_FORMATS) {
  run_block_matmuls<TestType>();
}

TEMPLATE_TEST_CASE("matmul(cuda) decode GEMV with block-format weights: a token's row is bitwise the same in any batch",
                   "[cuda][quant]", MOE_BLOCK_FORMATS) {
  check_gemv_batch_invariance<TestType>();
}

TEMPLATE_TEST_CASE("embed_rows(cuda) decodes block-format rows as the reference", "[cuda][quant]", quant::BlockQ8_0,
                   quant::BlockQ4_K, quant::BlockQ6_K, quant::BlockMxfp4, quant::BlockIq4Xs) {
  using Q = TestType;
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  const index_t vocab = 37, d = 2 * BE;
  const std::vector<Q> table = random_blocks<Q>(vocab, d, d / BE);
  const std::vector<std::int32_t> tokens{0, 36, 5, 5, 17};
  const index_t n = static_cast<index_t>(tokens.size());
  std::vector<float> want(n * d);
  kernels::embed_rows(kRef, View<const Q, 2>(table.data(), {vocab, d / BE}),
                      View<const std::int32_t, 1>(tokens.data(), {n}), View<float, 2>(want.data(), {n, d}));
  const auto t_dev = to_device(table);
  const auto ids = to_device(tokens);
  DeviceBuffer<float> out(n * d);
  kernels::embed_rows(kCuda, t_dev.template view<2>({vocab, d / BE}), ids.template view<1>({n}),
                      out.template view<2>({n, d}));
  const std::vector<float> got = out.to_host();
  for (index_t i = 0; i < n * d; ++i) {
    INFO(fname<Q>() << " element " << i);
    CHECK(std::fabs(got[i] - want[i]) <= 4 * kEps * std::fabs(want[i]) + 1e-30);  // FMA contraction: an ulp or so
  }
}

// A bank of experts `stride` bytes apart (the device upload's 256-byte aligned offsets: not a
// whole number of blocks apart for Q6_K's 210-byte blocks), from experts stored back to back.
template <class Q>
std::vector<unsigned char> padded_bank(const std::vector<Q>& experts, index_t n_experts, std::size_t stride) {
  const std::size_t bytes = experts.size() * sizeof(Q) / static_cast<std::size_t>(n_experts);
  std::vector<unsigned char> bank(stride * static_cast<std::size_t>(n_experts), 0);
  for (index_t e = 0; e < n_experts; ++e) {
    std::memcpy(bank.data() + static_cast<std::size_t>(e) * stride, reinterpret_cast<const unsigned char*>(experts.data()) + e * bytes, bytes);
  }
  return bank;
}

TEMPLATE_TEST_CASE("grouped_matmul / grouped_matmul_swiglu(cuda) with block formats match per-expert products",
                   "[cuda][quant][grouped]", quant::BlockQ8_0, quant::BlockQ4_K, quant::BlockQ6_K, quant::BlockMxfp4) {
  using Q = TestType;
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  // in = 4096: rows long enough that a team of several warps splits each (GemvTeam, 4 or 8 warps
  // here), 512: one warp per row.
  for (const auto& [in, out] : std::vector<std::pair<index_t, index_t>>{{512, 96}, {4096, 40}})
  for (const std::vector<index_t>& counts : std::vector<std::vector<index_t>>{{1, 0, 1, 1}, {2, 1, 0, 2}, {3, 0, 20, 1, 140}}) {
    const index_t nb = in / BE;
    const index_t experts = static_cast<index_t>(counts.size());
    std::vector<std::int32_t> offsets{0};
    for (const index_t c : counts) offsets.push_back(offsets.back() + static_cast<std::int32_t>(c));
    const index_t slots = offsets.back();
    const std::vector<Q> gate = random_blocks<Q>(experts * out, in, nb), up = random_blocks<Q>(experts * out, in, nb);
    const std::vector<float> xs = random_floats(slots * in);
    // x as the kernels see it: the integer GEMV's x̂ for the buckets grouped_matmul's GEMV takes (at
    // most 8 slots; the bigger ones go to the f32-exact GEMM), for every bucket in the fused SwiGLU
    // (a GEMV for buckets of any size).
    std::vector<float> xs_seen = xs, xs_swiglu = xs;
    if constexpr (kIntGemv<Q>) {
      for (index_t e = 0; e < experts; ++e) {
        for (index_t s = offsets[e]; s < offsets[e + 1]; ++s) {
          x8_round_trip(xs_swiglu.data() + s * in, in);
          if (counts[e] <= kernels::cuda_detail::kGemvMaxTokens) x8_round_trip(xs_seen.data() + s * in, in);
        }
      }
    }
    std::vector<float> want(slots * out), want_act(slots * out), tmp_up(slots * out), tmp_gate(slots * out);
    for (index_t e = 0; e < experts; ++e) {
      const index_t b = offsets[e], c = counts[e];
      if (c == 0) continue;
      const View<const Q, 2> ge(gate.data() + e * out * nb, {out, nb}), ue(up.data() + e * out * nb, {out, nb});
      kernels::matmul(kRef, View<const float, 2>(xs_seen.data() + b * in, {c, in}), ge, View<float, 2>(want.data() + b * out, {c, out}));
      const View<const float, 2> xw(xs_swiglu.data() + b * in, {c, in});
      kernels::matmul(kRef, xw, ge, View<float, 2>(tmp_gate.data() + b * out, {c, out}));
      kernels::matmul(kRef, xw, ue, View<float, 2>(tmp_up.data() + b * out, {c, out}));
    }
    for (index_t i = 0; i < slots * out; ++i) want_act[i] = tmp_gate[i] / (1.0f + std::exp(-tmp_gate[i])) * tmp_up[i];
    // Experts at 256-byte aligned offsets, as the device upload places them.
    const std::size_t stride = (static_cast<std::size_t>(out * nb) * sizeof(Q) + 255) / 256 * 256;
    const auto g_dev = to_device(padded_bank(gate, experts, stride)), u_dev = to_device(padded_bank(up, experts, stride));
    const auto x_dev = to_device(xs);
    const auto off_dev = to_device(offsets);
    DeviceBuffer<float> y(slots * out), act(slots * out);
    const DeviceView<const Q, 2> g0(reinterpret_cast<const Q*>(g_dev.data()), {out, nb});
    const DeviceView<const Q, 2> u0(reinterpret_cast<const Q*>(u_dev.data()), {out, nb});
    kernels::grouped_matmul(kCuda, x_dev.template view<2>({slots, in}), g0, stride, off_dev.template view<1>({experts + 1}),
                            y.template view<2>({slots, out}));
    kernels::grouped_matmul_swiglu(kCuda, x_dev.template view<2>({slots, in}), g0, stride, u0, stride,
                                   off_dev.template view<1>({experts + 1}), act.template view<2>({slots, out}));
    const std::vector<float> got = y.to_host(), got_act = act.to_host();
    const bool gemm = *std::max_element(counts.begin(), counts.end()) > kernels::cuda_detail::kGemvMaxTokens;
    double worst = 0.0, worst_act = 0.0;
    for (index_t s = 0; s < slots; ++s) {
      double xabs = 0.0;
      for (index_t k = 0; k < in; ++k) xabs += std::max(std::fabs(xs_seen[s * in + k]), std::fabs(xs_swiglu[s * in + k]));
      for (index_t o = 0; o < out; ++o) {
        // |w| <= ~1: Σ|x·w| <= Σ|x| bounds the dot products' rounding (twice that for the integer
        // path's offset and min terms)
        const double tol = (in * kEps + (gemm ? kSplitRel : 0.0)) * xabs * (kIntGemv<Q> ? 4.0 : 2.0);
        worst = std::max(worst, std::fabs(got[s * out + o] - want[s * out + o]) / tol);
        worst_act = std::max(worst_act, std::fabs(got_act[s * out + o] - want_act[s * out + o]) /
                                            (in * kEps * xabs * (kIntGemv<Q> ? 4.0 : 2.0) * (1.0 + std::fabs(tmp_up[s * out + o])) * 4.0));
      }
    }
    std::printf("%-8s grouped in=%-4zu slots=%-3zu err/tol %.3f  swiglu err/tol %.3f\n", fname<Q>().c_str(), in, slots,
                worst, worst_act);
    INFO(fname<Q>() << " in " << in << " slots " << slots);
    CHECK(worst <= 1.0);
    CHECK(worst_act <= 1.0);
  }
}

TEST_CASE("fill_uniform(cuda) makes valid blocks: the reference's bytes up to 256 blocks, pool copies past", "[cuda][quant]") {
  using Q = quant::BlockQ4_K;
  for (const index_t n : {100, 3000}) {
    std::vector<Q> ref(std::min<index_t>(n, 256));
    kernels::fill_uniform(kRef, View<Q, 1>(ref.data(), {static_cast<index_t>(ref.size())}), 42, 0.5f, 0.0f);
    DeviceBuffer<Q> dev(n);
    kernels::fill_uniform(kCuda, dev.template view<1>({n}), 42, 0.5f, 0.0f);
    const std::vector<Q> got = dev.to_host();
    std::set<std::string> pool;
    for (const Q& b : ref) pool.insert(std::string(reinterpret_cast<const char*>(&b), sizeof(Q)));
    index_t outside = 0, same_as_ref = 0;
    for (index_t b = 0; b < n; ++b) {
      const std::string bytes(reinterpret_cast<const char*>(&got[b]), sizeof(Q));
      outside += pool.count(bytes) == 0;
      same_as_ref += b < static_cast<index_t>(ref.size()) && std::memcmp(&got[b], &ref[b], sizeof(Q)) == 0;
    }
    CHECK(outside == 0);
    if (n <= 256) CHECK(same_as_ref == n);
  }
}

TEST_CASE("performance: block-format decode GEMV read bandwidth beside the copy bandwidth", "[cuda][quant][perf]") {
  const index_t in = 4096, out = 14336;  // a large expert-free projection: 58.7M weights
  DeviceBuffer<float> x(in), y(out);
  x.fill_bytes(0);
  const auto time_ms = [](auto&& f) {
    for (int i = 0; i < 3; ++i) f();
    cudaEvent_t a{}, b{};
    MOE_CUDA_CHECK(cudaEventCreate(&a));
    MOE_CUDA_CHECK(cudaEventCreate(&b));
    std::vector<float> ms(15);
    for (float& m : ms) {
      MOE_CUDA_CHECK(cudaEventRecord(a, moe::cuda::stream()));
      f();
      MOE_CUDA_CHECK(cudaEventRecord(b, moe::cuda::stream()));
      MOE_CUDA_CHECK(cudaEventSynchronize(b));
      MOE_CUDA_CHECK(cudaEventElapsedTime(&m, a, b));
    }
    std::nth_element(ms.begin(), ms.begin() + 7, ms.end());
    return static_cast<double>(ms[7]);
  };
  const std::size_t copy_bytes = std::size_t{1} << 30;
  DeviceBuffer<unsigned char> src(copy_bytes), dst(copy_bytes);
  const double copy_ms = time_ms([&] {
    MOE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), copy_bytes, cudaMemcpyDeviceToDevice, moe::cuda::stream()));
  });
  const double copy_gbs = 2.0 * copy_bytes / copy_ms / 1e6;
  std::printf("device copy bandwidth (read + write): %.0f GB/s\n", copy_gbs);
  const auto one = [&]<class W>(W) {
    const index_t nb = in / static_cast<index_t>(moe::FormatTraits<W>::block_elements);
    DeviceBuffer<W> w(out * nb);
    kernels::fill_uniform(kCuda, w.template view<1>({out * nb}), 7, 0.1f, 0.0f);
    const double ms = time_ms([&] {
      kernels::matmul(kCuda, x.template view<2>({1, in}), DeviceView<const W, 2>(w.data(), {out, nb}), y.template view<2>({1, out}));
    });
    const double bytes = static_cast<double>(out * nb) * sizeof(W);
    std::printf("GEMV %-7s %7.1f MB  %7.1f us  %6.0f GB/s  %5.1f%% of copy\n", moe::FormatTraits<W>::name.data(),
                bytes / 1e6, ms * 1e3, bytes / ms / 1e6, 100.0 * bytes / ms / 1e6 / copy_gbs);
  };
  one(moe::bf16{});
  one(quant::BlockQ8_0{});
  one(quant::BlockQ4_0{});
  one(quant::BlockQ4_K{});
  one(quant::BlockQ6_K{});
  one(quant::BlockMxfp4{});
  one(quant::BlockIq4Xs{});
  SUCCEED();
}

namespace {

// matmul_heads (MLA's split attn_k_b / attn_v_b) on cuda against the reference's: heads of W
// [heads·rows, in], x read at a head stride wider than the head; the decode GEMV and the GEMM.
template <class Q>
void check_matmul_heads(index_t heads, index_t n, index_t rows, index_t in) {
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  const index_t xs = in + 64, width = heads * rows;  // 64 columns between heads (MLA's rope part)
  const std::vector<Q> w_host = random_blocks<Q>(heads * rows, in, in / BE);
  const std::vector<float> x_host = random_floats(n * heads * xs);
  const View<const Q, 2> w_ref(w_host.data(), {heads * rows, in / BE});
  const bool int8 = kIntGemv<Q> && n <= kernels::cuda_detail::kGemvMaxTokens;
  std::vector<float> x_seen = x_host;  // the integer GEMV quantizes each head's inputs from its start
  for (index_t t = 0; int8 && t < n; ++t) {
    for (index_t h = 0; h < heads; ++h) x8_round_trip(x_seen.data() + t * heads * xs + h * xs, in);
  }
  const std::vector<double> w_max = int8 ? block_max_abs(w_ref, heads * rows, in) : std::vector<double>{};
  const View<const float, 2> x_ref(x_seen.data(), {n, heads * xs});
  std::vector<float> want(n * width);
  kernels::matmul_heads(kRef, heads, xs, x_ref, w_ref, View<float, 2>(want.data(), {n, width}));
  const auto w_dev = to_device(w_host);
  const auto x_dev = to_device(x_host);
  DeviceBuffer<float> y_dev(n * width);
  y_dev.fill_bytes(0xff);
  kernels::matmul_heads(kCuda, heads, xs, x_dev.template view<2>({n, heads * xs}),
                        w_dev.template view<2>({heads * rows, in / BE}), y_dev.template view<2>({n, width}));
  const std::vector<float> got = y_dev.to_host();
  const bool gemm = n > kernels::cuda_detail::kGemvMaxTokens;
  index_t bad = 0;
  for (index_t t = 0; t < n; ++t) {
    for (index_t o = 0; o < width; ++o) {
      const index_t h = o / rows;
      double abs_sum = 0.0;
      for (index_t k = 0; k < in; ++k) {
        abs_sum += std::fabs(static_cast<double>(x_ref(t, h * xs + k))) *
                   (std::fabs(Q::decode(&w_ref(o, 0), static_cast<std::size_t>(k))) + (int8 ? w_max[o * (in / BE) + k / BE] : 0.0));
      }
      const double tol = (static_cast<double>(in) * kEps + (gemm ? kSplitRel : 0.0)) * abs_sum + 1e-30;
      if (!(std::fabs(static_cast<double>(got[t * width + o]) - want[t * width + o]) <= tol)) ++bad;
    }
  }
  INFO(fname<Q>() << " matmul_heads heads=" << heads << " n=" << n << " rows=" << rows << " in=" << in);
  CHECK(bad == 0);
}

}  // namespace

TEMPLATE_TEST_CASE("matmul_heads(cuda) with block-format weights matches the reference", "[cuda][quant][mla]",
                   quant::BlockQ8_0, quant::BlockQ4_0, quant::BlockQ4_K, quant::BlockQ6_K, quant::BlockFp8E4m3) {
  using Q = TestType;
  constexpr index_t BE = static_cast<index_t>(Q::block_elements);
  for (const index_t n : {1, 5, 40}) {
    check_matmul_heads<Q>(3, n, 24, 2 * BE);  // attn_k_b-like: rows per head, short rows
    check_matmul_heads<Q>(16, n, 16, 4 * BE);
  }
}
