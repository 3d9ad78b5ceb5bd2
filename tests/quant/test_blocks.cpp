// Block layouts, traits, DType names and hand-made blocks decoded to values computed by hand from
// the format's definition (ggml-common.h / ggml-quants.c), including the sign, min and scale
// packing corners of the K formats.
#include "quant_test_util.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

using namespace quant_test;
using moe::DType;

namespace {

template <class Q>
float at(const Q& b, std::size_t i) {
  float y[Q::block_elements];
  Q::dequantize(b, y);
  REQUIRE(Q::decode(&b, i) == y[i]);  // decode and dequantize agree
  return y[i];
}

}  // namespace

TEST_CASE("block formats: sizes, traits and names as ggml's", "[quant][format]") {
  STATIC_REQUIRE(sizeof(BlockQ8_0) == 34);
  STATIC_REQUIRE(sizeof(BlockQ4_0) == 18);
  STATIC_REQUIRE(sizeof(BlockQ4_1) == 20);
  STATIC_REQUIRE(sizeof(BlockQ5_0) == 22);
  STATIC_REQUIRE(sizeof(BlockQ5_1) == 24);
  STATIC_REQUIRE(sizeof(BlockQ2_K) == 84);
  STATIC_REQUIRE(sizeof(BlockQ3_K) == 110);
  STATIC_REQUIRE(sizeof(BlockQ4_K) == 144);
  STATIC_REQUIRE(sizeof(BlockQ5_K) == 176);
  STATIC_REQUIRE(sizeof(BlockQ6_K) == 210);
  STATIC_REQUIRE(sizeof(BlockQ8_K) == 292);
  STATIC_REQUIRE(sizeof(BlockIq4Nl) == 18);
  STATIC_REQUIRE(sizeof(BlockIq4Xs) == 136);
  STATIC_REQUIRE(sizeof(BlockMxfp4) == 17);

  CHECK(moe::format_row_bytes(DType::q8_0, 4096) == 4096 / 32 * 34);
  CHECK(moe::format_row_bytes(DType::q4_k, 4096) == 16 * 144);
  CHECK(moe::format_row_bytes(DType::mxfp4, 64) == 34);
  CHECK(moe::format_row_bytes(DType::bf16, 7) == 14);
  CHECK(moe::format_block_elements(DType::iq4_xs) == 256);
  CHECK(moe::format_block_elements(DType::f16) == 1);
  CHECK(moe::FormatTraits<BlockQ6_K>::ggml_type == 14);
  CHECK(moe::FormatTraits<BlockMxfp4>::ggml_type == 39);
  STATIC_REQUIRE(sizeof(BlockFp8E4m3) == 132);
  CHECK(moe::format_row_bytes(DType::fp8_e4m3_b128, 7168) == 56 * 132);
  CHECK(moe::FormatTraits<BlockQ4_K>::name == "q4_K");
  // Every DType has a trait, a unique name and parses back (ggml's spelling and lower case).
  for (const DType t : moe::kAllDTypes) {
    CHECK(moe::format_row_bytes(t, 256) > 0);
    CHECK(moe::parse_dtype(moe::dtype_name(t)) == t);
  }
  CHECK(moe::parse_dtype("q4_k") == DType::q4_k);
  CHECK(moe::parse_dtype("Q6_K") == DType::q6_k);
  CHECK(moe::parse_dtype("IQ4_XS") == DType::iq4_xs);
  CHECK(!moe::parse_dtype("q4_k_m").has_value());
  CHECK(!moe::parse_dtype("").has_value());
  // Block formats have no element size; visit_dtype refuses them (typed), visit_format takes them.
  CHECK(moe::dtype_size(DType::q8_0) == 0);
  CHECK(moe::is_block_dtype(DType::q4_0));
  CHECK(!moe::is_block_dtype(DType::bf16));
  CHECK_THROWS_MATCHES(moe::visit_dtype(DType::q4_k, [](auto) { return 0; }), moe::Error,
                       Catch::Predicate<moe::Error>([](const moe::Error& e) {
                         return e.code() == moe::ErrorCode::kUnsupported &&
                                std::string(e.what()).find("q4_K") != std::string::npos;
                       }));
  CHECK(moe::visit_format<moe::backend::cpu>(DType::q5_k, [](auto tag) { return sizeof(tag); }) == 176);
  CHECK(moe::supports_format<moe::backend::reference>(DType::iq4_nl));
  CHECK(!moe::supports_format<moe::backend::reference>(DType::q8_k));  // activations only
}

TEST_CASE("block formats: a row that is not whole blocks is a typed error", "[quant][format]") {
  std::vector<float> x(48, 1.0f);
  std::vector<BlockQ8_0> q(2);
  CHECK_THROWS_MATCHES(moe::quant::quantize_row(x.data(), q.data(), 48), moe::Error,
                       Catch::Predicate<moe::Error>([](const moe::Error& e) {
                         return e.code() == moe::ErrorCode::kInvalidArgument &&
                                std::string(e.what()).find("48") != std::string::npos;
                       }));
  std::vector<BlockQ4_K> k(1);
  std::vector<float> y(300);
  CHECK_THROWS_AS(moe::quant::dequantize_row(k.data(), y.data(), 300), moe::Error);
  CHECK_THROWS_AS(moe::check_row_length(DType::q6_k, 100, "blk.0.ffn_down.weight"), moe::Error);
  CHECK_NOTHROW(moe::check_row_length(DType::q6_k, 512, "blk.0.ffn_down.weight"));
  CHECK_NOTHROW(moe::check_row_length(DType::f32, 7, "x"));
}

TEST_CASE("hand-made blocks decode to the values of the format's definition", "[quant][decode]") {
  SECTION("fp8_e4m3_b128: d·e4m3fn(q), 1 sign, 4 exponent bits (bias 7), 3 mantissa bits, 0x7F NaN") {
    using moe::quant::e4m3_to_float;
    CHECK(e4m3_to_float(0x00) == 0.0f);
    CHECK(std::signbit(e4m3_to_float(0x80)));
    CHECK(e4m3_to_float(0x01) == std::ldexp(1.0f, -9));       // smallest subnormal: 1/8 · 2^-6
    CHECK(e4m3_to_float(0x07) == 7 * std::ldexp(1.0f, -9));   // largest subnormal
    CHECK(e4m3_to_float(0x08) == std::ldexp(1.0f, -6));       // smallest normal
    CHECK(e4m3_to_float(0x38) == 1.0f);                       // exponent 7 = bias
    CHECK(e4m3_to_float(0x3c) == 1.5f);
    CHECK(e4m3_to_float(0xc0) == -2.0f);
    CHECK(e4m3_to_float(0x7e) == 448.0f);                     // largest finite
    CHECK(e4m3_to_float(0xfe) == -448.0f);
    CHECK(std::isnan(e4m3_to_float(0x7f)));
    CHECK(std::isnan(e4m3_to_float(0xff)));
    // Every finite code round-trips through the encoder; halfway values go to the even code.
    for (int c = 0; c < 256; ++c) {
      if ((c & 0x7f) == 0x7f) continue;
      INFO("code " << c);
      CHECK(moe::quant::float_to_e4m3(e4m3_to_float(static_cast<std::uint8_t>(c))) == c);
    }
    CHECK(moe::quant::float_to_e4m3(1.0625f) == 0x38);  // halfway 1 -> 1.125: even mantissa 0
    CHECK(moe::quant::float_to_e4m3(1.1875f) == 0x3a);  // halfway 1.125 -> 1.25: even mantissa 2
    CHECK(moe::quant::float_to_e4m3(1e6f) == 0x7e);     // saturates
    BlockFp8E4m3 b{};
    b.d = 0.25f;
    b.qs[0] = 0x38, b.qs[127] = 0xc4;  // 1, -3
    CHECK(at(b, 0) == 0.25f);
    CHECK(at(b, 127) == -0.75f);
    CHECK(at(b, 5) == 0.0f);
  }
  SECTION("q8_0: d·q") {
    BlockQ8_0 b{};
    b.d = h(0.5f);
    b.qs[0] = -128, b.qs[31] = 127, b.qs[7] = -3;
    CHECK(at(b, 0) == -64.0f);
    CHECK(at(b, 31) == 63.5f);
    CHECK(at(b, 7) == -1.5f);
    CHECK(at(b, 8) == 0.0f);
  }
  SECTION("q4_0: d·(nibble - 8), low nibbles first") {
    BlockQ4_0 b{};
    b.d = h(2.0f);
    b.qs[0] = 0x1f;
    CHECK(at(b, 0) == 14.0f);    // (15 - 8)·2
    CHECK(at(b, 16) == -14.0f);  // (1 - 8)·2
    CHECK(at(b, 1) == -16.0f);   // (0 - 8)·2
  }
  SECTION("q4_1: d·nibble + m") {
    BlockQ4_1 b{};
    b.d = h(0.5f), b.m = h(-1.0f);
    b.qs[3] = 0xa5;
    CHECK(at(b, 3) == 1.5f);   // 5·0.5 - 1
    CHECK(at(b, 19) == 4.0f);  // 10·0.5 - 1
    CHECK(at(b, 0) == -1.0f);
  }
  SECTION("q5_0: the fifth bit of element j is bit j of qh (little endian)") {
    BlockQ5_0 b{};
    b.d = h(1.0f);
    b.qh[0] = 0x01, b.qh[2] = 0x02;  // bits 0 and 17
    b.qs[0] = 0x03, b.qs[1] = 0x20;
    CHECK(at(b, 0) == 3.0f);     // (3 | 16) - 16
    CHECK(at(b, 16) == -16.0f);  // 0 - 16
    CHECK(at(b, 17) == 2.0f);    // (2 | 16) - 16
    CHECK(at(b, 1) == -16.0f);
  }
  SECTION("q5_1: d·(nibble | bit << 4) + m") {
    BlockQ5_1 b{};
    b.d = h(0.25f), b.m = h(1.0f);
    b.qh[3] = 0x80;  // bit 31
    b.qs[15] = 0xf0;
    CHECK(at(b, 31) == 8.75f);  // 31·0.25 + 1
    CHECK(at(b, 15) == 1.0f);
  }
  SECTION("q2_K: d·sc·q - dmin·m, 2-bit codes at bit offsets 0, 2, 4, 6") {
    BlockQ2_K b{};
    b.d = h(1.0f), b.dmin = h(0.5f);
    b.scales[0] = 0x21, b.scales[1] = 0xf2, b.scales[2] = 0x04, b.scales[8] = 0x13, b.scales[15] = 0x11;
    b.qs[0] = 0x0b, b.qs[16] = 0x01, b.qs[32] = 0x02, b.qs[63] = 0xc0;
    CHECK(at(b, 0) == 2.0f);     // 1·3 - 0.5·2
    CHECK(at(b, 16) == -5.5f);   // 2·1 - 0.5·15 (group 1, the largest min)
    CHECK(at(b, 32) == 8.0f);    // 4·2 (bits 2-3 of qs[0], group 2)
    CHECK(at(b, 128) == 5.5f);   // 3·2 - 0.5·1 (second half, group 8)
    CHECK(at(b, 255) == 2.5f);   // 1·3 - 0.5·1 (bits 6-7 of qs[63], group 15)
  }
  SECTION("q3_K: d·(sc - 32)·(q - 4 unless the hmask bit is set), 6-bit scales split 4 + 2") {
    BlockQ3_K b{};
    b.d = h(0.5f);
    b.scales[0] = 0x02, b.scales[8] = 0x02;  // scale 0: low 2 | high 2 << 4 = 34 -> +2
    b.scales[1] = 0xf0, b.scales[9] = 0x30;  // scale 9: low 15 (high nibble of byte 1) | 3 << 4 = 63 -> +31
    // scale 15: low nibble of byte 7 (high) and bits 6-7 of byte 11 are 0 -> -32 (the sign corner)
    b.qs[0] = 0x01, b.hmask[0] = 0x01;
    b.qs[48] = 0x01, b.hmask[16] = 0x10;
    b.qs[63] = 0xc0, b.hmask[31] = 0x80;
    CHECK(at(b, 0) == 1.0f);      // 0.5·2·(1 - 0)
    CHECK(at(b, 1) == -4.0f);     // 0.5·2·(0 - 4)
    CHECK(at(b, 144) == 15.5f);   // 0.5·31·1 (group 9: n = 1, l = 16)
    CHECK(at(b, 240) == 64.0f);   // 0.5·(-32)·(0 - 4)
    CHECK(at(b, 255) == -48.0f);  // 0.5·(-32)·3
  }
  SECTION("q4_K: d·sc·q - dmin·m with scales/mins 4..7 split over bytes 8..11 and the top bits") {
    BlockQ4_K b{};
    b.d = h(1.0f), b.dmin = h(2.0f);
    b.scales[0] = 3, b.scales[4] = 1;        // group 0: sc 3, m 1
    b.scales[1] = 0x80, b.scales[5] = 0xc0;  // top bits of group 5's sc (2) and m (3); groups 1's sc, m = 0
    b.scales[9] = 0x15;                      // group 5: sc low 5, m low 1 -> sc 37, m 49
    b.qs[0] = 0x07, b.qs[64] = 0xa0;
    CHECK(at(b, 0) == 19.0f);     // 3·7 - 2·1
    CHECK(at(b, 160) == 272.0f);  // 37·10 - 2·49 (high nibble of qs[64]: group 5)
    CHECK(at(b, 32) == 0.0f);     // group 1: 0·0 - 2·0
    CHECK(at(b, 128) == 0.0f);    // group 4: scales 0
  }
  SECTION("q5_K: as q4_K plus the qh bit (bit 2c for low nibbles, 2c + 1 for high ones)") {
    BlockQ5_K b{};
    b.d = h(1.0f), b.dmin = h(2.0f);
    b.scales[0] = 3, b.scales[4] = 1, b.scales[1] = 0x80, b.scales[5] = 0xc0, b.scales[9] = 0x15;
    b.qs[0] = 0x07, b.qs[64] = 0xa0;
    b.qh[0] = 0x20;               // bit 5: chunk 2, high nibbles, l = 0
    CHECK(at(b, 0) == 19.0f);     // no fifth bit
    CHECK(at(b, 160) == 864.0f);  // 37·26 - 98
    b.qh[0] = 0x21;
    CHECK(at(b, 0) == 67.0f);     // 3·23 - 2
  }
  SECTION("q6_K: d·sc·(q - 32) with int8 scales (negative scales included)") {
    BlockQ6_K b{};
    b.d = h(0.5f);
    b.scales[0] = -3, b.scales[15] = 5;
    b.ql[0] = 0x0f, b.qh[0] = 0x01;
    b.ql[127] = 0x30, b.qh[63] = 0xc0;
    CHECK(at(b, 0) == 1.5f);     // 0.5·(-3)·((15 | 1 << 4) - 32)
    CHECK(at(b, 255) == 47.5f);  // 0.5·5·((3 | 3 << 4) - 32)
    CHECK(at(b, 64) == 0.0f);    // group 4 has scale 0
    CHECK(at(b, 1) == 48.0f);    // 0.5·(-3)·(0 - 32)
  }
  SECTION("q8_K: f32 d·q") {
    BlockQ8_K b{};
    b.d = 0.25f;
    b.qs[5] = -7;
    CHECK(at(b, 5) == -1.75f);
  }
  SECTION("iq4_nl: d·table[q]") {
    BlockIq4Nl b{};
    b.d = h(2.0f);
    b.qs[0] = 0x8f;
    CHECK(at(b, 0) == 226.0f);  // 2·113
    CHECK(at(b, 16) == 2.0f);   // 2·1
    CHECK(at(b, 1) == -254.0f);  // 2·(-127)
  }
  SECTION("iq4_xs: d·(ls - 32)·table[q], ls 4 bits in scales_l + 2 in scales_h") {
    BlockIq4Xs b{};
    b.d = h(1.0f);
    b.scales_l[0] = 0x01, b.scales_h = 0x0002;  // group 0: 1 | 2 << 4 = 33 -> +1; group 7: 0 -> -32
    b.qs[127] = 0xf0;
    CHECK(at(b, 0) == -127.0f);   // 1·table[0]
    CHECK(at(b, 255) == -3616.0f);  // -32·table[15]
    CHECK(at(b, 240) == 4064.0f);   // -32·table[0]
  }
  SECTION("mxfp4: 2^(e-127)·E2M1, e = 0 a subnormal scale") {
    BlockMxfp4 b{};
    b.e = 127;
    b.qs[0] = 0x97;
    CHECK(at(b, 0) == 6.0f);    // code 7
    CHECK(at(b, 16) == -0.5f);  // code 9
    b.e = 0;
    b.qs[1] = 0x01;
    CHECK(at(b, 1) == std::ldexp(1.0f, -128));  // half of 2^-127 (doubled table) · 1
  }
}

TEST_CASE("reference quantizers: known blocks from ggml's algorithms", "[quant][quantize]") {
  SECTION("q8_0: d = max|x|/127, round half away from zero") {
    float x[32] = {};
    x[0] = 127.0f, x[1] = -0.5f, x[2] = 1.5f, x[3] = 2.5f;
    BlockQ8_0 b;
    BlockQ8_0::quantize(x, b);
    CHECK(b.d.bits == h(1.0f).bits);
    CHECK(b.qs[0] == 127);
    CHECK(b.qs[1] == -1);  // roundf(-0.5) = -1
    CHECK(b.qs[2] == 2);
    CHECK(b.qs[3] == 3);
  }
  SECTION("q4_0: d = max / -8 keeps the sign of the largest element") {
    float x[32] = {};
    x[5] = -16.0f, x[6] = 14.0f;
    BlockQ4_0 b;
    BlockQ4_0::quantize(x, b);
    CHECK(moe::to_float(b.d) == 2.0f);
    CHECK((b.qs[5] & 0x0f) == 0);  // -16 -> code 0 (-8·2)
    CHECK((b.qs[6] & 0x0f) == 15);  // d = -16 / -8 = 2: 14/2 + 8.5 = 15.5 -> 15 (decodes to 14)
    CHECK((b.qs[0] & 0x0f) == 8);
  }
  SECTION("q6_K / q4_K / iq4_xs of an all-zero block: zero scales, every element decodes to 0") {
    float x[256] = {};
    BlockQ6_K a;
    BlockQ6_K::quantize(x, a);
    CHECK(a.d.bits == 0);
    BlockQ4_K b;
    BlockQ4_K::quantize(x, b);
    CHECK(b.d.bits == 0);
    CHECK(b.dmin.bits == 0);
    BlockIq4Xs c;
    BlockIq4Xs::quantize(x, c);
    CHECK(c.d.bits == 0x8000);  // ggml writes -0: d = -max_scale/32 with max_scale = 0
    float y[256];
    BlockIq4Xs::dequantize(c, y);
    for (float v : y) CHECK(v == 0.0f);
  }
  SECTION("mxfp4: e = floor(log2 max) - 2 + 127, codes the nearest value") {
    float x[32] = {};
    x[0] = 6.0f, x[1] = -3.0f, x[2] = 0.74f, x[17] = 1.2f;
    BlockMxfp4 b;
    BlockMxfp4::quantize(x, b);
    CHECK(b.e == 127);  // floor(log2 6) = 2
    CHECK((b.qs[0] & 0xf) == 7);
    CHECK((b.qs[1] & 0xf) == 13);  // -3
    CHECK((b.qs[2] & 0xf) == 1);   // 0.5 nearer than 1
    CHECK((b.qs[1] >> 4) == 2);    // element 17: 1.2 -> 1.0
  }
}
