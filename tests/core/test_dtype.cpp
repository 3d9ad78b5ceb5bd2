// DType conversions: exact, round-to-nearest-even, NaN and Inf preserved.
#include <moe/core/dtype.hpp>

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#if defined(__F16C__)
#include <immintrin.h>
#endif

using moe::bf16;
using moe::f16;

namespace {

// Independent oracle: the representable neighbours of x in a format with `mant_bits` explicit
// mantissa bits, chosen by round-to-nearest-even in double precision.
double round_to_format(double x, int mant_bits, int min_exp, double max_finite) {
  if (x == 0) return x;
  const double ax = std::fabs(x);
  int e = std::ilogb(ax);
  if (e < min_exp) e = min_exp;  // subnormal spacing
  const double ulp = std::ldexp(1.0, e - mant_bits);
  const double q = ax / ulp;
  double r = std::nearbyint(q);  // default rounding mode: ties to even
  double out = r * ulp;
  if (out > max_finite) {
    // Past the largest finite value: rounds to Inf when at or beyond the half-way point.
    out = std::numeric_limits<double>::infinity();
  }
  return std::copysign(out, x);
}

}  // namespace

TEST_CASE("bf16 round trip is exact for every bf16 value", "[dtype]") {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const bf16 v = bf16::from_bits(static_cast<std::uint16_t>(b));
    const float f = moe::to_float(v);
    const bf16 back = moe::to_bf16(f);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(moe::to_float(back)));
      REQUIRE((back.bits & 0x8000u) == (b & 0x8000u));
    } else {
      REQUIRE(back.bits == b);
    }
  }
}

TEST_CASE("f16 round trip is exact for every f16 value", "[dtype]") {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const f16 v = f16::from_bits(static_cast<std::uint16_t>(b));
    const float f = moe::to_float(v);
    const f16 back = moe::to_f16(f);
    if (std::isnan(f)) {
      REQUIRE(std::isnan(moe::to_float(back)));
      REQUIRE((back.bits & 0x8000u) == (b & 0x8000u));
    } else {
      REQUIRE(back.bits == b);
    }
  }
}

TEST_CASE("f16 decoding matches the IEEE formula", "[dtype]") {
  for (std::uint32_t b = 0; b < 0x7c00u; ++b) {  // all positive finite values
    const int e = static_cast<int>(b >> 10);
    const int m = static_cast<int>(b & 0x3ff);
    const double expected = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    REQUIRE(static_cast<double>(moe::to_float(f16::from_bits(static_cast<std::uint16_t>(b)))) == expected);
  }
  REQUIRE(std::isinf(moe::to_float(f16::from_bits(0x7c00))));
  REQUIRE(std::isinf(moe::to_float(f16::from_bits(0xfc00))));
  REQUIRE(std::signbit(moe::to_float(f16::from_bits(0x8000))));
}

TEST_CASE("rounding is to nearest even, with Inf on overflow", "[dtype]") {
  // 1 + 2^-8 is exactly half-way between bf16 1.0 and 1.0078125: ties to even keeps 1.0.
  REQUIRE(moe::to_bf16(1.0f + std::ldexp(1.0f, -8)).bits == 0x3f80u);
  // 1 + 3*2^-8 is half-way between 1.0078125 (odd) and 1.015625 (even): rounds up.
  REQUIRE(moe::to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits == 0x3f82u);
  REQUIRE(moe::to_f16(65504.0f).bits == 0x7bffu);
  REQUIRE(moe::to_f16(65519.0f).bits == 0x7bffu);
  REQUIRE(moe::to_f16(65520.0f).bits == 0x7c00u);  // the tie rounds to even = Inf
  REQUIRE(moe::to_f16(-1e9f).bits == 0xfc00u);
  REQUIRE(moe::to_f16(std::ldexp(1.0f, -25)).bits == 0x0000u);   // tie with 0 -> 0
  REQUIRE(moe::to_f16(std::ldexp(1.5f, -25)).bits == 0x0001u);   // above the tie -> min subnormal
  REQUIRE(moe::to_f16(std::ldexp(3.0f, -25)).bits == 0x0002u);   // 1.5 ulp tie -> even (2)
  REQUIRE(moe::to_bf16(std::numeric_limits<float>::max()).bits == 0x7f80u);
  REQUIRE(std::isinf(moe::to_float(moe::to_bf16(std::numeric_limits<float>::infinity()))));
  REQUIRE(std::isnan(moe::to_float(moe::to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  REQUIRE(std::isnan(moe::to_float(moe::to_f16(std::numeric_limits<float>::quiet_NaN()))));
  // A signalling NaN whose payload sits only in the low bits must not become Inf.
  const float snan = std::bit_cast<float>(0x7f800001u);
  REQUIRE(std::isnan(moe::to_float(moe::to_bf16(snan))));
  REQUIRE(std::isnan(moe::to_float(moe::to_f16(snan))));
}

TEST_CASE("f32 -> bf16 and f16 agree with a double-precision oracle on random values", "[dtype]") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 200000; ++i) {
    const float f = std::bit_cast<float>(bits(rng));
    if (!std::isfinite(f)) continue;
    const double want_bf16 = round_to_format(f, 7, -126, 3.3895313892515355e38);
    const double got_bf16 = moe::to_float(moe::to_bf16(f));
    REQUIRE(got_bf16 == want_bf16);
    const double want_f16 = round_to_format(f, 10, -14, 65504.0 + 16.0 - 1e-9);
    const double got_f16 = moe::to_float(moe::to_f16(f));
    if (std::fabs(want_f16) > 65504.0) {
      REQUIRE(std::isinf(got_f16));
    } else {
      REQUIRE(got_f16 == want_f16);
    }
#if defined(__F16C__)
    const auto hw = static_cast<std::uint16_t>(_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
    REQUIRE(moe::to_f16(f).bits == hw);
#endif
  }
}

TEST_CASE("dtype metadata and visit_dtype", "[dtype]") {
  REQUIRE(moe::dtype_size(moe::DType::f32) == 4);
  REQUIRE(moe::dtype_size(moe::DType::bf16) == 2);
  REQUIRE(moe::dtype_name(moe::DType::f16) == "f16");
  REQUIRE(moe::dtype_of<moe::bf16>() == moe::DType::bf16);
  const auto size = moe::visit_dtype(moe::DType::f16, [](auto t) { return sizeof(t); });
  REQUIRE(size == 2);
  REQUIRE_THROWS_AS(moe::visit_dtype(static_cast<moe::DType>(42), [](auto) { return 0; }), moe::Error);
}
