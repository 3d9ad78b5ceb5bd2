// cpu_simd matmul and matmul_in_out against the reference: odd sizes (not multiples of the vector
// width or of the GEMM tiles), all weight types, unaligned weights, strided operands, thread
// counts; tolerances from float epsilon and the reduction length.
#include "kernel_test_util.hpp"

#include <moe/core/parallel.hpp>
#include <moe/kernels/kernels.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using moe::bf16;
using moe::f16;
using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;
using moe_test::UnalignedMatrix;

namespace {

struct Operands {
  index_t n_tokens, d_in, d_out;
  std::vector<float> x, y, y_ref;
  index_t ldx, ldy;
  static constexpr float kSentinel = -12345.0f;

  Operands(index_t t, index_t in, index_t out, std::vector<float> xv)
      : n_tokens(t), d_in(in), d_out(out), ldx(in + 5), ldy(out + 3) {
    x.assign(t * ldx, 0.0f);
    for (index_t i = 0; i < t; ++i) {
      for (index_t j = 0; j < in; ++j) x[i * ldx + j] = xv[i * in + j];
    }
    y.assign(t * ldy, kSentinel);
    y_ref.assign(t * ldy, kSentinel);
  }
  View<const float, 2> xv() const { return View<const float, 2>(x.data(), {n_tokens, d_in}, {ldx, 1}); }
  View<float, 2> yv() { return View<float, 2>(y.data(), {n_tokens, d_out}, {ldy, 1}); }
  View<float, 2> yv_ref() { return View<float, 2>(y_ref.data(), {n_tokens, d_out}, {ldy, 1}); }
  float xat(index_t t, index_t i) const { return x[t * ldx + i]; }
};

// Checks y against y_ref with the dot-product bound, and that the row padding of y is untouched.
// `w_at(o, i)` is the weight multiplying x[t, i] for output o.
template <class WAt>
void check_against_reference(Operands& op, WAt&& w_at) {
  for (index_t t = 0; t < op.n_tokens; ++t) {
    for (index_t o = 0; o < op.d_out; ++o) {
      double sum_abs = 0.0;
      for (index_t i = 0; i < op.d_in; ++i) sum_abs += std::abs(double(op.xat(t, i)) * w_at(o, i));
      const double bound = moe_test::dot_error_bound(op.d_in, sum_abs);
      const float got = op.y[t * op.ldy + o], want = op.y_ref[t * op.ldy + o];
      if (!(std::abs(double(got) - want) <= bound)) {
        FAIL_CHECK("y[" << t << ", " << o << "] = " << got << ", reference " << want << ", bound "
                        << bound);
      }
    }
    for (index_t o = op.d_out; o < op.ldy; ++o) REQUIRE(op.y[t * op.ldy + o] == Operands::kSentinel);
  }
}

const std::vector<index_t> kInSizes = {1, 3, 17, 67, 1000};
const std::vector<index_t> kOutSizes = {1, 5, 33};
// 1..16 tokens take the streaming path of matmul (1..4 for matmul_in_out), more the packed GEMM.
const std::vector<index_t> kTokenCounts = {1, 2, 7, 19};

}  // namespace

TEMPLATE_TEST_CASE("cpu matmul matches the reference on odd sizes", "[cpu][matmul]", float, bf16, f16) {
  std::uint32_t seed = 1;
  for (index_t d_in : kInSizes) {
    for (index_t d_out : kOutSizes) {
      for (index_t n_tokens : kTokenCounts) {
        CAPTURE(d_in, d_out, n_tokens);
        UnalignedMatrix<TestType> w(moe_test::random_floats(d_out * d_in, seed++), d_out, d_in, d_in + 2);
        Operands op(n_tokens, d_in, d_out, moe_test::random_floats(n_tokens * d_in, seed++, -2.0f, 2.0f));
        kernels::matmul(backend::cpu{}, op.xv(), w.view(), op.yv());
        kernels::matmul(backend::reference{}, op.xv(), w.view(), op.yv_ref());
        check_against_reference(op, [&](index_t o, index_t i) { return w.at(o, i); });
      }
    }
  }
}

TEMPLATE_TEST_CASE("cpu matmul_in_out matches the reference on odd sizes", "[cpu][matmul]", float, bf16, f16) {
  std::uint32_t seed = 100;
  for (index_t d_in : kInSizes) {
    for (index_t d_out : kOutSizes) {
      for (index_t n_tokens : kTokenCounts) {
        CAPTURE(d_in, d_out, n_tokens);
        UnalignedMatrix<TestType> w(moe_test::random_floats(d_in * d_out, seed++), d_in, d_out, d_out + 1);
        Operands op(n_tokens, d_in, d_out, moe_test::random_floats(n_tokens * d_in, seed++, -2.0f, 2.0f));
        kernels::matmul_in_out(backend::cpu{}, op.xv(), w.view(), op.yv());
        kernels::matmul_in_out(backend::reference{}, op.xv(), w.view(), op.yv_ref());
        check_against_reference(op, [&](index_t o, index_t i) { return w.at(i, o); });
      }
    }
  }
}

TEMPLATE_TEST_CASE("cpu matmul crosses every GEMM blocking boundary", "[cpu][matmul]", float, bf16) {
  // 151 tokens > one row block (144) and not a multiple of the 6-row tile; 600 outputs > one
  // 512-column panel and not a multiple of the 32- or 64-column tiles; 530 inputs > two 256-deep
  // k blocks and not a multiple of the 16x16 transpose blocks.
  const index_t n_tokens = 151, d_in = 530, d_out = 600;
  UnalignedMatrix<TestType> w(moe_test::random_floats(d_out * d_in, 7), d_out, d_in, d_in);
  Operands op(n_tokens, d_in, d_out, moe_test::random_floats(n_tokens * d_in, 8));
  kernels::matmul(backend::cpu{}, op.xv(), w.view(), op.yv());
  kernels::matmul(backend::reference{}, op.xv(), w.view(), op.yv_ref());
  check_against_reference(op, [&](index_t o, index_t i) { return w.at(o, i); });

  UnalignedMatrix<TestType> w_io(moe_test::random_floats(d_in * d_out, 9), d_in, d_out, d_out);
  kernels::matmul_in_out(backend::cpu{}, op.xv(), w_io.view(), op.yv());
  kernels::matmul_in_out(backend::reference{}, op.xv(), w_io.view(), op.yv_ref());
  check_against_reference(op, [&](index_t o, index_t i) { return w_io.at(i, o); });
}

TEMPLATE_TEST_CASE("cpu matmul is exact where every partial sum is exact", "[cpu][matmul]", float, bf16, f16) {
  // Small integers: whatever the summation order, each result is the exact integer, so a kernel
  // that drops, repeats or misplaces any term cannot pass.
  for (index_t n_tokens : {index_t{1}, index_t{3}, index_t{4}, index_t{5}, index_t{16}, index_t{17}, index_t{29}}) {
    const index_t d_in = 1000, d_out = 67;
    CAPTURE(n_tokens);
    UnalignedMatrix<TestType> w(moe_test::random_small_ints(d_out * d_in, 11), d_out, d_in, d_in + 3);
    Operands op(n_tokens, d_in, d_out, moe_test::random_small_ints(n_tokens * d_in, 12));
    kernels::matmul(backend::cpu{}, op.xv(), w.view(), op.yv());
    kernels::matmul(backend::reference{}, op.xv(), w.view(), op.yv_ref());
    REQUIRE(op.y == op.y_ref);
    UnalignedMatrix<TestType> w_io(moe_test::random_small_ints(d_in * d_out, 13), d_in, d_out, d_out);
    kernels::matmul_in_out(backend::cpu{}, op.xv(), w_io.view(), op.yv());
    kernels::matmul_in_out(backend::reference{}, op.xv(), w_io.view(), op.yv_ref());
    REQUIRE(op.y == op.y_ref);
  }
}

TEST_CASE("cpu matmul gives the same bits on 1 and 2 threads", "[cpu][matmul][threads]") {
  const int saved = moe::max_threads();
  for (index_t n_tokens : {index_t{1}, index_t{3}, index_t{9}, index_t{40}}) {
    CAPTURE(n_tokens);
    const index_t d_in = 515, d_out = 333;
    UnalignedMatrix<bf16> w(moe_test::random_floats(d_out * d_in, 21), d_out, d_in, d_in);
    UnalignedMatrix<f16> w_io(moe_test::random_floats(d_in * d_out, 22), d_in, d_out, d_out);
    Operands one(n_tokens, d_in, d_out, moe_test::random_floats(n_tokens * d_in, 23));
    Operands two = one;
    moe::set_num_threads(1);
    kernels::matmul(backend::cpu{}, one.xv(), w.view(), one.yv());
    kernels::matmul_in_out(backend::cpu{}, one.xv(), w_io.view(), one.yv_ref());
    moe::set_num_threads(2);
    REQUIRE(moe::max_threads() == 2);
    kernels::matmul(backend::cpu{}, two.xv(), w.view(), two.yv());
    kernels::matmul_in_out(backend::cpu{}, two.xv(), w_io.view(), two.yv_ref());
    REQUIRE(one.y == two.y);
    REQUIRE(one.y_ref == two.y_ref);
  }
  moe::set_num_threads(saved);
}

TEMPLATE_TEST_CASE("cpu_simd on narrower instruction sets (AVX2 intrinsics, portable fallback)",
                   "[cpu][matmul][arch]", bf16, f16) {
  // The portable paths must stay correct even though this machine runs the AVX-512 ones.
  const index_t d_in = 67, d_out = 33;
  UnalignedMatrix<TestType> w(moe_test::random_floats(d_out * d_in, 31), d_out, d_in, d_in);
  for (index_t n_tokens : {index_t{1}, index_t{7}, index_t{20}}) {
    Operands op(n_tokens, d_in, d_out, moe_test::random_floats(n_tokens * d_in, 32));
    kernels::matmul(backend::reference{}, op.xv(), w.view(), op.yv_ref());
    kernels::matmul(backend::cpu_simd<xsimd::fma3<xsimd::avx2>>{}, op.xv(), w.view(), op.yv());
    check_against_reference(op, [&](index_t o, index_t i) { return w.at(o, i); });
    kernels::matmul(backend::cpu_simd<xsimd::sse4_2>{}, op.xv(), w.view(), op.yv());
    check_against_reference(op, [&](index_t o, index_t i) { return w.at(o, i); });
  }
}

TEST_CASE("cpu matmul rejects mismatched shapes and non-unit inner strides", "[cpu][matmul]") {
  std::vector<float> x(12), w(12), y(12);
  View<const float, 2> x34(x.data(), {3, 4});
  View<const float, 2> w24(w.data(), {2, 4});
  REQUIRE_THROWS_AS(kernels::matmul(backend::cpu{}, x34, w24, View<float, 2>(y.data(), {3, 3})), moe::Error);
  REQUIRE_THROWS_AS(kernels::matmul(backend::cpu{}, x34, View<const float, 2>(w.data(), {2, 4}, {4, 2}),
                                    View<float, 2>(y.data(), {3, 2})),
                    moe::Error);
  REQUIRE_NOTHROW(kernels::matmul(backend::cpu{}, x34, w24, View<float, 2>(y.data(), {3, 2})));
}

TEMPLATE_TEST_CASE("matmul with an empty dimension", "[cpu][matmul]", float, bf16, f16) {
  // in = 0: every output is the empty sum, 0; tokens = 0 or out = 0: nothing is written.
  for (index_t n_tokens : {index_t{1}, index_t{5}, index_t{20}}) {
    CAPTURE(n_tokens);
    UnalignedMatrix<TestType> w(std::vector<float>{}, 7, 0, 1);
    UnalignedMatrix<TestType> w_io(std::vector<float>{}, 0, 7, 7);
    Operands op(n_tokens, 0, 7, {});
    kernels::matmul(backend::reference{}, op.xv(), w.view(), op.yv_ref());
    kernels::matmul(backend::cpu{}, op.xv(), w.view(), op.yv());
    for (index_t t = 0; t < n_tokens; ++t) {
      for (index_t o = 0; o < 7; ++o) {
        REQUIRE(op.y_ref[t * op.ldy + o] == 0.0f);
        REQUIRE(op.y[t * op.ldy + o] == 0.0f);
      }
    }
    std::fill(op.y.begin(), op.y.end(), Operands::kSentinel);
    std::fill(op.y_ref.begin(), op.y_ref.end(), Operands::kSentinel);
    kernels::matmul_in_out(backend::reference{}, op.xv(), w_io.view(), op.yv_ref());
    kernels::matmul_in_out(backend::cpu{}, op.xv(), w_io.view(), op.yv());
    REQUIRE(op.y == op.y_ref);
    REQUIRE(op.y[0] == 0.0f);
  }
  UnalignedMatrix<TestType> w(moe_test::random_floats(3 * 4, 41), 3, 4, 4);
  Operands no_tokens(0, 4, 3, {});
  kernels::matmul(backend::reference{}, no_tokens.xv(), w.view(), no_tokens.yv_ref());
  kernels::matmul(backend::cpu{}, no_tokens.xv(), w.view(), no_tokens.yv());
  UnalignedMatrix<TestType> w_none(std::vector<float>{}, 0, 4, 4);
  Operands no_outputs(3, 4, 0, moe_test::random_floats(3 * 4, 42));
  kernels::matmul(backend::reference{}, no_outputs.xv(), w_none.view(), no_outputs.yv_ref());
  kernels::matmul(backend::cpu{}, no_outputs.xv(), w_none.view(), no_outputs.yv());
  REQUIRE(no_outputs.y == no_outputs.y_ref);
}
