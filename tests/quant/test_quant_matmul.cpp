// Matrix products with block-format weights: the oracle (dequantize in the dot) equals the f32
// oracle on the dequantized weights bit for bit, and the cpu kernels (int8 dot products against
// activations quantized once per call for Q8_0 / Q4_0 / Q4_K / Q6_K, f32 dequantize-and-dot for the
// others, the dequantizing GEMM for prefill) agree with it on odd sizes, strided activations and
// several thread counts, within bounds derived from the activation rounding and the f32 sums.
#include "quant_test_util.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

using namespace quant_test;
using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

namespace {

template <class Q>
inline constexpr bool kIntegerPath = !std::is_void_v<typename kernels::cpu_quant::ActFor<Q>::type>;

template <class Q>
struct Case {
  index_t n_tokens, d_in, d_out, ldx;
  std::vector<float> x, w_f32;  // w_f32: the dequantized weights
  std::vector<Q> w;

  Case(index_t t, index_t in, index_t out, std::uint32_t seed) : n_tokens(t), d_in(in), d_out(out), ldx(in + 3) {
    const auto xv = gaussian(t * in, seed);
    x.assign(t * ldx, 0.0f);
    for (index_t i = 0; i < t; ++i) std::copy_n(xv.data() + i * in, in, x.data() + i * ldx);
    const auto wv = gaussian(out * in, seed + 1000, 1.0f / std::sqrt(static_cast<float>(in)));
    w.resize(out * in / Q::block_elements);
    moe::quant::quantize_row(wv.data(), w.data(), wv.size());
    w_f32.resize(wv.size());
    moe::quant::dequantize_row(w.data(), w_f32.data(), wv.size());
  }
  View<const float, 2> xv() const { return View<const float, 2>(x.data(), {n_tokens, d_in}, {ldx, 1}); }
  View<const Q, 2> wv() const { return View<const Q, 2>(w.data(), {d_out, d_in / Q::block_elements}); }

  // |y_cpu - y_ref| bound for output (t, o): activation rounding (integer path: per activation
  // block of A elements, |x - x̂| <= max|x_b| / 254, times Σ_b |w|) plus f32 summation (d_in·eps·Σ|x·w|).
  double bound(index_t t, index_t o, bool integer) const {
    const double eps = std::numeric_limits<float>::epsilon();
    const index_t A = Q::block_elements;
    double sum_abs = 0, act = 0;
    for (index_t b = 0; b < d_in; b += A) {
      double amax = 0, wsum = 0;
      for (index_t i = b; i < b + A; ++i) {
        amax = std::max(amax, std::fabs(static_cast<double>(x[t * ldx + i])));
        wsum += std::fabs(w_f32[o * d_in + i]);
        sum_abs += std::fabs(static_cast<double>(x[t * ldx + i]) * w_f32[o * d_in + i]);
      }
      act += amax / 254 * wsum;
    }
    return (integer ? 1.01 * act : 0.0) + 2.0 * static_cast<double>(d_in) * eps * sum_abs + 1e-30;
  }
};

template <class Q>
void check_against_reference(index_t n_tokens, index_t d_in, index_t d_out, std::uint32_t seed) {
  Case<Q> c(n_tokens, d_in, d_out, seed);
  std::vector<float> y_ref(n_tokens * d_out), y_f32(n_tokens * d_out), y_cpu(n_tokens * d_out, -1.0f);
  const View<float, 2> ref(y_ref.data(), {n_tokens, d_out}), f32(y_f32.data(), {n_tokens, d_out}),
      cpu(y_cpu.data(), {n_tokens, d_out});
  kernels::matmul(backend::reference{}, c.xv(), c.wv(), ref);
  kernels::matmul(backend::reference{}, c.xv(), View<const float, 2>(c.w_f32.data(), {d_out, d_in}), f32);
  CHECK(std::memcmp(y_ref.data(), y_f32.data(), y_ref.size() * sizeof(float)) == 0);

  const bool integer = kIntegerPath<Q> && kernels::cpu_quant::kIntDot &&
                       (n_tokens <= kernels::cpu_detail::kStreamMaxTokens || kernels::cpu_quant::kIgemm<Q>);
  const int saved = moe::max_threads();
  std::vector<float> first;
  for (const int threads : {1, 2, 3}) {
    moe::set_num_threads(threads);
    std::fill(y_cpu.begin(), y_cpu.end(), -1.0f);
    kernels::matmul(backend::cpu{}, c.xv(), c.wv(), cpu);
    if (first.empty()) {
      first = y_cpu;
      double worst = 0;
      for (index_t t = 0; t < n_tokens; ++t) {
        for (index_t o = 0; o < d_out; ++o) {
          worst = std::max(worst, std::fabs(static_cast<double>(cpu(t, o)) - ref(t, o)) / c.bound(t, o, integer));
        }
      }
      INFO(moe::dtype_name(Q::dtype) << " tokens " << n_tokens << " in " << d_in << " out " << d_out
                                     << ": worst |cpu - ref| / bound " << worst);
      CHECK(worst <= 1.0);
    } else {
      INFO("threads " << threads);
      CHECK(std::memcmp(first.data(), y_cpu.data(), first.size() * sizeof(float)) == 0);
    }
  }
  moe::set_num_threads(saved);
}

}  // namespace

TEMPLATE_TEST_CASE("block matmul: cpu against the oracle on odd sizes and thread counts", "[quant][matmul]",
                   MOE_QUANT_TEST_FORMATS) {
  using Q = TestType;
  if constexpr (std::is_same_v<Q, BlockQ8_K>) {
    SUCCEED("Q8_K is an activation format");
  } else {
    const index_t in = Q::block_elements == 256 ? 768 : Q::block_elements == 128 ? 384 : 288;  // 3 / 3 / 9 blocks
    for (const index_t tokens : {index_t{1}, index_t{3}, index_t{16}, index_t{21}}) {
      check_against_reference<Q>(tokens, in, 37, static_cast<std::uint32_t>(tokens));
    }
    check_against_reference<Q>(2, 2 * 256, 1, 5);   // one output row
    check_against_reference<Q>(1, 4096, 67, 6);    // a decode-sized row
    // The prefill GEMM (integer for the igemm formats): token counts around the 8-token panels,
    // rows around the 4-row tiles, one and several blocks per row.
    for (const index_t tokens : {index_t{17}, index_t{33}, index_t{100}}) {
      check_against_reference<Q>(tokens, in, 37, static_cast<std::uint32_t>(40 + tokens));
    }
    check_against_reference<Q>(24, Q::block_elements, 6, 7);  // one block per row, two tiles
    check_against_reference<Q>(41, 4 * in, 3, 8);             // fewer rows than a tile
    check_against_reference<Q>(19, 2048, 129, 9);            // a model-sized row
  }
}

// The integer kernels compute every output by one sequence of operations whatever the number of
// tokens in the call (streaming up to 16, GEMM panels of 8 beyond) and wherever the token falls in
// a panel: a token's output is bitwise the same alone, in a batch and in a prefill.
TEMPLATE_TEST_CASE("block matmul: a token's output does not depend on the tokens beside it", "[quant][matmul]",
                   BlockQ8_0, BlockQ4_0, BlockIq4Nl, BlockMxfp4, BlockQ4_K, BlockQ6_K) {
  using Q = TestType;
  if constexpr (!kernels::cpu_quant::kIgemm<Q>) {
    SUCCEED("no integer GEMM for this target");
  } else {
    const index_t n = 45, in = Q::block_elements == 256 ? 1024 : 320, out = 23;
    Case<Q> c(n, in, out, 11);
    std::vector<float> all(n * out);
    kernels::matmul(backend::cpu{}, c.xv(), c.wv(), View<float, 2>(all.data(), {n, out}));
    // (first token, count): alone, streaming batches, GEMM calls starting inside a panel.
    const std::pair<index_t, index_t> calls[] = {{0, 1}, {7, 1}, {44, 1}, {0, 16}, {3, 5}, {29, 16},
                                                 {1, 17}, {5, 33}, {12, 20}, {0, 44}};
    for (const auto& [first, count] : calls) {
      std::vector<float> part(count * out, -1.0f);
      const View<const float, 2> xs(c.x.data() + first * c.ldx, {count, in}, {c.ldx, 1});
      kernels::matmul(backend::cpu{}, xs, c.wv(), View<float, 2>(part.data(), {count, out}));
      INFO(moe::dtype_name(Q::dtype) << ": tokens " << first << ".." << first + count - 1);
      CHECK(std::memcmp(part.data(), all.data() + first * out, part.size() * sizeof(float)) == 0);
    }
  }
}

namespace {

// Every block of a row filled with one code byte (the scales set apart): the largest weight codes
// of a format against activations all +1 or all -1 give the largest partial sums the integer
// kernels form (the AVX2 kernels add up to 8 vpmaddubsw pair sums in 16-bit lanes: a wrong run
// length wraps them). Row r takes code byte bytes[r % size].
template <class Q>
std::vector<Q> extreme_rows(index_t rows, index_t nb, std::span<const std::uint8_t> bytes) {
  std::vector<Q> w(rows * nb);
  for (index_t r = 0; r < rows; ++r) {
    for (index_t b = 0; b < nb; ++b) {
      Q& q = w[r * nb + b];
      std::memset(static_cast<void*>(&q), bytes[r % bytes.size()], sizeof(Q));  // (blocks are trivially copyable bytes)
      if constexpr (std::is_same_v<Q, BlockMxfp4>) q.e = 127;  // scale 1
      else if constexpr (std::is_same_v<Q, BlockQ4_K>) q.d = h(0.002f), q.dmin = h(0.001f);
      else q.d = h(std::is_same_v<Q, BlockQ6_K> ? 0.001f : 0.01f);  // (Q6_K's scales: the code byte)
    }
  }
  return w;
}

template <class Q, class WView>
void check_extremes(const std::vector<float>& x, index_t n, index_t in, index_t rows, const WView& w,
                    const std::vector<float>& want, const char* layout) {
  std::vector<float> got(n * rows, -1.0f);
  kernels::matmul(backend::cpu{}, View<const float, 2>(x.data(), {n, in}), w, View<float, 2>(got.data(), {n, rows}));
  for (index_t t = 0; t < n; ++t) {
    for (index_t o = 0; o < rows; ++o) {
      const double ref = want[t * rows + o];
      INFO(moe::dtype_name(Q::dtype) << " " << layout << " tokens " << n << " token " << t << " row " << o);
      CHECK(std::fabs(got[t * rows + o] - ref) <= 1e-4 * std::fabs(ref) + 1e-6);
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("block matmul: the largest codes against the largest activations do not overflow",
                   "[quant][matmul]", BlockQ8_0, BlockQ4_0, BlockIq4Nl, BlockMxfp4, BlockQ4_K, BlockQ6_K) {
  using Q = TestType;
  // Code bytes: both ends of each format's code range (nibbles 0 / 15, Q8_0's -128 / 127, IQ4_NL's
  // -127 / 113, MXFP4's ±6, Q6_K's code 63 and 0 with scales -1, 127 and -128, Q4_K's 15 with
  // scales and mins 63).
  const std::vector<std::uint8_t> bytes = std::is_same_v<Q, BlockQ8_0>
                                              ? std::vector<std::uint8_t>{0x7f, 0x80, 0x81, 0x01}
                                          : std::is_same_v<Q, BlockQ6_K> ? std::vector<std::uint8_t>{0xff, 0x7f, 0x80, 0x00}
                                          : std::is_same_v<Q, BlockMxfp4> ? std::vector<std::uint8_t>{0x77, 0xff, 0x00}
                                                                          : std::vector<std::uint8_t>{0xff, 0x00, 0x88};
  constexpr auto BE = static_cast<index_t>(Q::block_elements);
  const index_t in = 2 * std::max<index_t>(BE, 256), nb = in / BE, rows = 16;
  const auto w = extreme_rows<Q>(rows, nb, bytes);
  std::vector<float> w_f32(rows * in);
  moe::quant::dequantize_row(w.data(), w_f32.data(), w_f32.size());
  for (const float sign : {1.0f, -1.0f}) {
    for (const index_t n : {index_t{1}, index_t{5}, index_t{16}, index_t{17}, index_t{40}}) {
      const std::vector<float> x(n * in, sign);
      std::vector<float> want(n * rows);  // x̂ = x exactly here (|x| = max|x| maps to code ±127)
      kernels::matmul(backend::reference{}, View<const float, 2>(x.data(), {n, in}),
                      View<const float, 2>(w_f32.data(), {rows, in}), View<float, 2>(want.data(), {n, rows}));
      check_extremes<Q>(x, n, in, rows, View<const Q, 2>(w.data(), {rows, nb}), want, "row-major");
      if constexpr (moe::quant::Interleavable<Q> && kernels::kInterleavedKernels) {
        std::vector<moe::quant::Rows8<Q>> inter(rows / 8 * nb);
        for (index_t g = 0; g < rows / 8; ++g) {
          const Q* rp[8];
          for (int k = 0; k < 8; ++k) rp[k] = w.data() + (8 * g + k) * nb;
          for (index_t b = 0; b < nb; ++b) moe::quant::interleave(rp, static_cast<std::size_t>(b), inter[g * nb + b]);
        }
        check_extremes<Q>(x, n, in, rows, View<const moe::quant::Rows8<Q>, 2>(inter.data(), {rows / 8, nb}), want,
                          "interleaved");
      }
    }
  }
}

TEST_CASE("block matmul: an FP8 NaN code (0x7F / 0xFF) makes its output NaN on cpu as in the oracle",
          "[quant][matmul]") {
  for (const index_t n : {index_t{1}, index_t{2}}) {  // the single-token path and the staged one
    Case<BlockFp8E4m3> c(n, 384, 5, 9);
    c.w[1 * 3 + 2].qs[17] = 0x7f;  // row 1, block 2
    c.w[3 * 3 + 0].qs[0] = 0xff;   // row 3, block 0
    std::vector<float> y_ref(n * 5), y_cpu(n * 5);
    kernels::matmul(backend::reference{}, c.xv(), c.wv(), View<float, 2>(y_ref.data(), {n, 5}));
    kernels::matmul(backend::cpu{}, c.xv(), c.wv(), View<float, 2>(y_cpu.data(), {n, 5}));
    for (index_t t = 0; t < n; ++t) {
      for (index_t o = 0; o < 5; ++o) {
        INFO("tokens " << n << " token " << t << " row " << o);
        CHECK(std::isnan(y_ref[t * 5 + o]) == (o == 1 || o == 3));
        CHECK(std::isnan(y_cpu[t * 5 + o]) == (o == 1 || o == 3));
      }
    }
  }
}

TEST_CASE("block matmul: mismatched shapes are typed errors", "[quant][matmul]") {
  Case<BlockQ8_0> c(1, 64, 4, 1);
  std::vector<float> y(4);
  const View<const BlockQ8_0, 2> narrow(c.w.data(), {4, 1});  // 32 columns for an input of 64
  CHECK_THROWS_AS(kernels::matmul(backend::cpu{}, c.xv(), narrow, View<float, 2>(y.data(), {1, 4})), moe::Error);
  CHECK_THROWS_AS(kernels::matmul(backend::reference{}, c.xv(), narrow, View<float, 2>(y.data(), {1, 4})), moe::Error);
  CHECK_THROWS_AS(kernels::matmul(backend::cpu{}, c.xv(), c.wv(), View<float, 2>(y.data(), {1, 3})), moe::Error);
}

TEST_CASE("block formats: embedding rows, vectors and input-major products through the traits", "[quant][ops]") {
  const index_t vocab = 5, d = 64;
  const auto table = gaussian(vocab * d, 3);
  std::vector<BlockQ4_1> q(vocab * d / 32);
  moe::quant::quantize_row(table.data(), q.data(), table.size());
  std::vector<float> deq(table.size());
  moe::quant::dequantize_row(q.data(), deq.data(), table.size());
  const std::vector<std::int32_t> ids{4, 0, 4};
  std::vector<float> out(ids.size() * d);
  kernels::embed_rows(backend::cpu{}, View<const BlockQ4_1, 2>(q.data(), {vocab, d / 32}),
                      View<const std::int32_t, 1>(ids.data(), {ids.size()}), View<float, 2>(out.data(), {3, d}));
  for (index_t t = 0; t < ids.size(); ++t) {
    for (index_t i = 0; i < d; ++i) CHECK(out[t * d + i] == deq[ids[t] * d + i]);
  }
  // matmul_in_out with W [in = vocab, out = d] stored in blocks along out.
  const auto x = gaussian(2 * vocab, 4);
  std::vector<float> y(2 * d), y_f32(2 * d);
  kernels::matmul_in_out(backend::cpu{}, View<const float, 2>(x.data(), {2, vocab}),
                         View<const BlockQ4_1, 2>(q.data(), {vocab, d / 32}), View<float, 2>(y.data(), {2, d}));
  kernels::matmul_in_out(backend::reference{}, View<const float, 2>(x.data(), {2, vocab}),
                         View<const float, 2>(deq.data(), {vocab, d}), View<float, 2>(y_f32.data(), {2, d}));
  CHECK(std::memcmp(y.data(), y_f32.data(), y.size() * sizeof(float)) == 0);
  // rmsnorm and to_f32 with a block-format vector decode it element by element.
  std::vector<float> v(d);
  kernels::to_f32(backend::reference{}, View<const BlockQ4_1, 1>(q.data(), {2}), View<float, 1>(v.data(), {d}));
  for (index_t i = 0; i < d; ++i) CHECK(v[i] == deq[i]);
  std::vector<float> rows = gaussian(2 * d, 5), a(2 * d), b(2 * d);
  kernels::rmsnorm(backend::cpu{}, View<const float, 2>(rows.data(), {2, d}), View<const BlockQ4_1, 1>(q.data(), {2}),
                   1e-6f, View<float, 2>(a.data(), {2, d}));
  kernels::rmsnorm(backend::reference{}, View<const float, 2>(rows.data(), {2, d}),
                   View<const float, 1>(deq.data(), {d}), 1e-6f, View<float, 2>(b.data(), {2, d}));
  CHECK(a == b);
}

TEST_CASE("cpu igemm: the vectorised Q8_K activation quantizer gives BlockQ8_K::quantize's bytes", "[quant][matmul]") {
  namespace cq = moe::kernels::cpu_quant;
  std::uint32_t state = 777;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f - 0.5f;
  };
  const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();
  for (int trial = 0; trial < 2000; ++trial) {
    float x[256];
    const float scale = std::ldexp(1.0f, (trial % 40) - 20);
    for (float& v : x) v = next() * scale;
    switch (trial % 9) {
      case 1: std::fill(x, x + 256, 0.0f); break;
      case 2: x[trial % 256] = kNaN; break;
      case 3: x[trial % 256] = (trial & 16) ? kInf : -kInf; break;
      case 4: x[trial % 256] = -std::numeric_limits<float>::max(); break;
      case 5:  // ties in magnitude with both signs: the first one's sign wins
        x[(trial * 7) % 256] = 4.0f * scale, x[(trial * 13) % 256] = -4.0f * scale;
        break;
      case 6:  // codes at exact halves: amax 127 after scaling, ties to even
        for (int j = 0; j < 256; ++j) x[j] = -(static_cast<float>(j % 200) - 100.0f) - 0.5f;
        x[255] = -127.0f;
        break;
      case 7: std::fill(x, x + 256, kNaN); break;
      case 8: x[0] = std::numeric_limits<float>::denorm_min(); std::fill(x + 1, x + 256, 0.0f); break;
      default: break;
    }
    moe::quant::BlockQ8_K a{}, b{};
    cq::quantize_act(x, a);
    moe::quant::BlockQ8_K::quantize(x, b);
    INFO("trial " << trial);
    REQUIRE(std::memcmp(&a, &b, sizeof(a)) == 0);
  }
}

TEST_CASE("cpu igemm: the vectorised activation quantizer gives the scalar rule's bytes", "[quant][matmul]") {
  namespace cq = moe::kernels::cpu_quant;
  std::uint32_t state = 12345;
  const auto next = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f - 0.5f;
  };
  const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();
  for (int trial = 0; trial < 4000; ++trial) {
    float x[32];
    const float scale = std::ldexp(1.0f, (trial % 40) - 20);
    for (float& v : x) v = next() * scale;
    switch (trial % 8) {
      case 1:  // exact halves after scaling: amax 127 makes id 1, so x is p itself
        for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16) + 0.5f;
        x[31] = 127.0f;
        break;
      case 2: std::fill(x, x + 32, 0.0f); break;
      case 3: x[trial % 32] = kNaN; break;
      case 4: x[trial % 32] = (trial & 16) ? kInf : -kInf; break;
      case 5: x[0] = std::numeric_limits<float>::denorm_min(); std::fill(x + 1, x + 32, 0.0f); break;
      case 6: x[trial % 32] = -std::numeric_limits<float>::max(); break;
      case 7: for (int j = 0; j < 32; ++j) x[j] = std::nextafter(0.5f, 0.0f) * static_cast<float>(j % 3) * scale; break;
      default: break;
    }
    cq::ActQ8 a{}, b{};
    cq::quantize_act(x, a);
    cq::quantize_act_scalar(x, b);
    INFO("trial " << trial);
    REQUIRE(std::memcmp(&a, &b, sizeof(a)) == 0);
  }
}

// MLA's query absorption with kv_b_proj in a block format: the cpu's (each head's W_UK decoded once
// into f32, then the f32 input-major product) against the oracle's, prefill and decode token
// counts, several thread counts. (The value expansion is the quantized matmul tested above.)
TEMPLATE_TEST_CASE("block MLA query absorption: cpu against the oracle", "[quant][mla]", BlockQ4_0, BlockQ8_0,
                   BlockQ4_K, BlockQ6_K) {
  using Q = TestType;
  constexpr auto BE = static_cast<index_t>(Q::block_elements);
  const kernels::MlaShape s{5, 2 * BE, 24, 8, 16, 0.1f};  // heads, rank, nope, rope, v, scale
  const index_t rows = s.n_heads * (s.nope + s.v);
  const auto wv = gaussian(rows * s.kv_lora_rank, 41, 0.2f);
  std::vector<Q> kv(rows * s.kv_lora_rank / BE);
  moe::quant::quantize_row(wv.data(), kv.data(), wv.size());
  const View<const Q, 2> kv_b(kv.data(), {rows, s.kv_lora_rank / BE});
  const int saved = moe::max_threads();
  const index_t lw = s.n_heads * s.kv_lora_rank;
  for (const index_t n : {1, 3, 9, 40}) {
    const auto qv = gaussian(n * s.n_heads * s.qk(), static_cast<std::uint32_t>(n));
    const View<const float, 2> q(qv.data(), {n, s.n_heads * s.qk()});
    std::vector<float> want(n * lw), got(n * lw);
    kernels::mla_absorb_queries(backend::reference{}, s, kv_b, q, View<float, 2>(want.data(), {n, lw}));
    for (const int threads : {1, 2, 3}) {
      moe::set_num_threads(threads);
      std::fill(got.begin(), got.end(), -7.0f);
      kernels::mla_absorb_queries(backend::cpu{}, s, kv_b, q, View<float, 2>(got.data(), {n, lw}));
      INFO(moe::dtype_name(Q::dtype) << " tokens " << n << " threads " << threads);
      for (std::size_t i = 0; i < want.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(1e-5).epsilon(1e-5));
    }
  }
  moe::set_num_threads(saved);
  std::vector<float> small(2 * s.n_heads * s.qk()), out(2 * lw);
  CHECK_THROWS_AS(kernels::mla_absorb_queries(backend::cpu{}, s, kv_b,
                                              View<const float, 2>(small.data(), {2, s.n_heads * s.qk() - 1}),
                                              View<float, 2>(out.data(), {2, lw})),
                  moe::Error);
}

namespace {

template <class W>
std::vector<W> weights_of(const std::vector<float>& v) {
  if constexpr (moe::is_block_format_v<W>) {
    std::vector<W> w(v.size() / W::block_elements);
    moe::quant::quantize_row(v.data(), w.data(), v.size());
    return w;
  } else {
    std::vector<W> w(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) w[i] = moe::from_float<W>(v[i]);
    return w;
  }
}

}  // namespace

// A matmul per head (MLA's split attn_k_b / attn_v_b): every head's block of outputs is bitwise
// what the same backend's matmul gives for that head alone (the cpu splits heads across threads
// when there are enough of them, else each head's rows), for strided activations read at a head
// stride wider than the head, at decode and prefill token counts and several thread counts.
TEMPLATE_TEST_CASE("matmul_heads: each head is its own matmul, on the oracle and the cpu", "[quant][matmul][mla]",
                   float, moe::bf16, BlockQ4_0, BlockQ8_0, BlockQ4_K, BlockQ6_K) {
  using W = TestType;
  constexpr index_t BE = moe::FormatTraits<W>::block_elements;
  const index_t k = BE == 1 ? 40 : 2 * BE, rows = 24, xs = k + 8;  // 8 extra columns per head (MLA's rope part)
  const int saved = moe::max_threads();
  for (const index_t heads : {index_t{1}, index_t{3}, index_t{5}}) {
    const auto wf = gaussian(heads * rows * k, static_cast<std::uint32_t>(heads), 1.0f / std::sqrt(static_cast<float>(k)));
    const std::vector<W> wq = weights_of<W>(wf);
    const View<const W, 2> w(wq.data(), {heads * rows, k / BE});
    for (const index_t n : {index_t{1}, index_t{4}, index_t{19}, index_t{70}}) {
      const index_t ldx = heads * xs + 3;
      const auto xv = gaussian(n * ldx, static_cast<std::uint32_t>(100 * heads + n));
      const View<const float, 2> x(xv.data(), {n, heads * xs}, {ldx, 1});
      const index_t width = heads * rows;
      for (const bool cpu : {false, true}) {
        std::vector<float> want(n * width, 0.0f);
        for (index_t h = 0; h < heads; ++h) {  // each head alone through matmul
          const View<const float, 2> xh(xv.data() + h * xs, {n, k}, {ldx, 1});
          const View<const W, 2> wh = w.slice(h * rows, (h + 1) * rows);
          const View<float, 2> yh(want.data() + h * rows, {n, rows}, {width, 1});
          if (cpu) kernels::matmul(backend::cpu{}, xh, wh, yh);
          else kernels::matmul(backend::reference{}, xh, wh, yh);
        }
        for (const int threads : {1, 2, 3, 4}) {
          moe::set_num_threads(threads);
          std::vector<float> got(n * width, -7.0f);
          const View<float, 2> y(got.data(), {n, width});
          if (cpu) kernels::matmul_heads(backend::cpu{}, heads, xs, x, w, y);
          else kernels::matmul_heads(backend::reference{}, heads, xs, x, w, y);
          INFO(moe::FormatTraits<W>::name << (cpu ? " cpu" : " reference") << " heads " << heads << " tokens " << n
                                          << " threads " << threads);
          CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
          if (!cpu) break;
        }
      }
    }
  }
  moe::set_num_threads(saved);
  // Typed errors: rows not a multiple of the heads, x too narrow for the last head, y too narrow.
  const auto wf = gaussian(3 * rows * k, 9);
  const std::vector<W> wq = weights_of<W>(wf);
  std::vector<float> xv(2 * 3 * xs), yv(2 * 3 * rows);
  const View<const float, 2> x(xv.data(), {2, 3 * xs});
  const View<float, 2> y(yv.data(), {2, 3 * rows});
  const View<const W, 2> w(wq.data(), {3 * rows, k / BE});
  CHECK_THROWS_AS(kernels::matmul_heads(backend::cpu{}, 5, xs, x, w, y), moe::Error);
  CHECK_THROWS_AS(kernels::matmul_heads(backend::cpu{}, 3, xs + 8, x, w, y), moe::Error);
  CHECK_THROWS_AS(kernels::matmul_heads(backend::reference{}, 3, xs, x, w, View<float, 2>(yv.data(), {2, 3 * rows - 1})),
                  moe::Error);
  CHECK_THROWS_AS(kernels::matmul_heads(backend::reference{}, 0, xs, x, w, y), moe::Error);
}
