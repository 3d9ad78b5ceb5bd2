// Integer dot products of rows of ggml blocks with activations quantized to int8, a unit of a row at
// a time: the CUDA decode GEMV's path for Q8_0, Q4_0, Q4_K and Q6_K (four 8-bit products per
// dp4a instruction where the f32 path spends a conversion and an FMA per element).
//
// Activations (X8): each row of x in blocks of 32 elements, codes q = round(x / d) with
// d = max|x| / 127 (the cpu's ActQ8 rule, quantize_x8 below: the same bytes), stored as the codes
// (one byte per element, rows ld_q bytes apart) and per block the pair {d, d·Σq} (rows ld_s pairs
// apart). A unit of a weight row is what one GPU lane takes per turn: a quarter of a 32-element
// block (8 elements: Q8_0, Q4_0), an eighth of a 64-element chunk of a K super-block (8: Q4_K) or
// a sixteenth of a Q6_K super-block (16). As with quant/runs.hpp, load_unit only loads (UnitBits
// in registers) and unit_dot computes: unit_dot(bits, x row, u) = Σ over the unit's elements of
// ŵ·x̂ (x̂ = d·q) in f32, the integer part exact. Units whose blocks share a per-block term (the
// min of Q4_K, the offset 8 of Q4_0) add it once per block, from its first unit.
// tests/quant/test_runs.cpp checks every unit against a double-precision sum of Q::decode · x̂.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/host_device.hpp"
#include "moe/quant/formats.hpp"
#include "moe/quant/runs.hpp"

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace moe::quant::q8dot {

inline constexpr int kX8Block = 32;

// The formats with an integer unit dot (the units below).
template <class Q>
inline constexpr bool kHasIntDot = false;
template <>
inline constexpr bool kHasIntDot<BlockQ8_0> = true;
template <>
inline constexpr bool kHasIntDot<BlockQ4_0> = true;
template <>
inline constexpr bool kHasIntDot<BlockQ4_K> = true;
template <>
inline constexpr bool kHasIntDot<BlockQ6_K> = true;

// Whether the CUDA decode GEMV takes the integer path for Q (activations quantized per call,
// rows staged through shared memory: kernels/cuda/row_stage.cuh) or the f32 runs. Off by default:
// on an H100 (2026-12-07) the f32 runs read the weights faster and ran the whole model as fast or
// faster (README "Block formats on CUDA"); -DMOE_CUDA_INT8_GEMV=1 builds the integer path, to
// measure one against the other.
#if !defined(MOE_CUDA_INT8_GEMV)
#define MOE_CUDA_INT8_GEMV 0
#endif
template <class Q>
inline constexpr bool kGemvIntDot = MOE_CUDA_INT8_GEMV != 0 && kHasIntDot<Q>;

// Elements per unit.
template <class Q>
inline constexpr int kUnitElems = 8;
template <>
inline constexpr int kUnitElems<BlockQ6_K> = 16;

// One row of quantized activations.
struct X8Row {
  const std::int8_t* q = nullptr;  // codes, 4-byte aligned
  const float* s = nullptr;        // per block: d, d·Σq (8-byte aligned pairs)
};

// ---- integer helpers (the device instructions, their definitions on the host) ------------------

// c + Σ_i a_i·b_i over the four signed bytes of a and b.
MOE_HD inline int dp4a(std::uint32_t a, std::uint32_t b, int c) noexcept {
#if defined(__CUDA_ARCH__)
  return __dp4a(static_cast<int>(a), static_cast<int>(b), c);
#else
  for (int i = 0; i < 4; ++i) {
    c += static_cast<int>(static_cast<std::int8_t>(a >> (8 * i))) * static_cast<int>(static_cast<std::int8_t>(b >> (8 * i)));
  }
  return c;
#endif
}
// Byte-wise a - b modulo 256 (no borrow between bytes).
MOE_HD inline std::uint32_t vsub4(std::uint32_t a, std::uint32_t b) noexcept {
#if defined(__CUDA_ARCH__)
  return __vsub4(a, b);
#else
  std::uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= ((((a >> (8 * i)) & 0xffu) - ((b >> (8 * i)) & 0xffu)) & 0xffu) << (8 * i);
  return r;
#endif
}
MOE_HD inline std::uint32_t x8_word(const X8Row& x, int element) noexcept {  // codes element..element+3
  return runs::load32(x.q + element);
}

// ---- activations ----------------------------------------------------------------------------

// The code of x·id (round half away from zero, clamped, NaN -> 0): detail::round_to_int8.
MOE_HD inline int x8_code(float v) noexcept {
  if (!(v == v)) return 0;
  const float r = roundf(v);
  return r >= 127.0f ? 127 : (r <= -128.0f ? -128 : static_cast<int>(r));
}
// Block scale of amax (max|x| over the block, NaN skipped): d and 1/d (0 when d is 0).
MOE_HD inline void x8_scale(float amax, float& d, float& id) noexcept {
  d = amax / 127.0f;
  id = d != 0.0f ? 1.0f / d : 0.0f;
}
// The host rule for one block (the GPU's quantize kernel does the same per lane).
inline void quantize_x8(const float* x, std::int8_t* q, float* s) noexcept {
  float amax = 0.0f;
  for (int j = 0; j < kX8Block; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  float d, id;
  x8_scale(amax, d, id);
  int sum = 0;
  for (int j = 0; j < kX8Block; ++j) sum += q[j] = static_cast<std::int8_t>(x8_code(x[j] * id));
  s[0] = d, s[1] = d * static_cast<float>(sum);
}

// ---- units ------------------------------------------------------------------------------------

template <class Q>
struct UnitBits;

// Q8_0: unit u = quarter u % 4 of block u / 4: codes 8i..8i+7 (four 2-byte loads: blocks are
// 2-byte aligned).
template <>
struct UnitBits<BlockQ8_0> {
  std::uint32_t d, h[4];
};
template <bool kGlobal = true>
MOE_HD inline UnitBits<BlockQ8_0> load_unit(const BlockQ8_0* row, int u) noexcept {
  const BlockQ8_0* b = row + u / 4;
  UnitBits<BlockQ8_0> o;
  o.d = runs::load16<kGlobal>(&b->d);
  for (int i = 0; i < 4; ++i) o.h[i] = runs::load16<kGlobal>(b->qs + 8 * (u % 4) + 2 * i);
  return o;
}
MOE_HD inline float unit_dot(const UnitBits<BlockQ8_0>& o, const X8Row& x, int u) noexcept {
  const int e = 8 * u;  // the unit's first element in the row
  int s = dp4a(o.h[0] | (o.h[1] << 16), x8_word(x, e), 0);
  s = dp4a(o.h[2] | (o.h[3] << 16), x8_word(x, e + 4), s);
  return runs::half_bits(o.d) * (x.s[2 * (u / 4)] * static_cast<float>(s));
}

// Q4_0: unit u = bytes 4i..4i+3 (i = u % 4) of block u / 4's codes: elements 4i..4i+3 (low
// nibbles) and 16+4i..16+4i+3 (high). Σ (n - 8)·q = Σ n·q - 8·Σq, the second term once per block.
template <>
struct UnitBits<BlockQ4_0> {
  std::uint32_t d, h[2];
};
template <bool kGlobal = true>
MOE_HD inline UnitBits<BlockQ4_0> load_unit(const BlockQ4_0* row, int u) noexcept {
  const BlockQ4_0* b = row + u / 4;
  UnitBits<BlockQ4_0> o;
  o.d = runs::load16<kGlobal>(&b->d);
  o.h[0] = runs::load16<kGlobal>(b->qs + 4 * (u % 4));
  o.h[1] = runs::load16<kGlobal>(b->qs + 4 * (u % 4) + 2);
  return o;
}
MOE_HD inline float unit_dot(const UnitBits<BlockQ4_0>& o, const X8Row& x, int u) noexcept {
  const std::uint32_t v = o.h[0] | (o.h[1] << 16);
  const int base = 32 * (u / 4), i = u % 4;
  int s = dp4a(v & 0x0f0f0f0fu, x8_word(x, base + 4 * i), 0);
  s = dp4a((v >> 4) & 0x0f0f0f0fu, x8_word(x, base + 16 + 4 * i), s);
  const float* xs = x.s + 2 * (u / 4);
  const float r = xs[0] * static_cast<float>(s) - (i == 0 ? 8.0f * xs[1] : 0.0f);
  return runs::half_bits(o.d) * r;
}

// Q4_K (144-byte blocks, rows 8-byte aligned): unit u = lane l = u % 32 of super-block u / 32:
// chunk c = l / 8, bytes 32c + 4k..+3 (k = l % 8) of qs: elements 64c + 4k.. (group 2c, low
// nibbles) and 64c + 32 + 4k.. (group 2c + 1, high). The mins' term dmin·m·Σx̂ once per group (k = 0).
template <>
struct UnitBits<BlockQ4_K> {
  std::uint32_t dm, s[3], q;
};
template <bool kGlobal = true>
MOE_HD inline UnitBits<BlockQ4_K> load_unit(const BlockQ4_K* row, int u) noexcept {
  const BlockQ4_K* b = row + u / 32;
  const int l = u % 32;
  UnitBits<BlockQ4_K> o;
  o.dm = runs::load32<kGlobal>(b);
  for (int i = 0; i < 3; ++i) o.s[i] = runs::load32<kGlobal>(b->scales + 4 * i);
  o.q = runs::load32<kGlobal>(b->qs + 32 * (l / 8) + 4 * (l % 8));
  return o;
}
MOE_HD inline void q4k_scale_min(const std::uint32_t (&s)[3], int g, int& sc, int& m) noexcept {
  if (g < 4) {  // detail::scale_min_k4 on the loaded bytes
    sc = static_cast<int>(runs::byte_of3(s, g) & 63u);
    m = static_cast<int>(runs::byte_of3(s, g + 4) & 63u);
  } else {
    sc = static_cast<int>((runs::byte_of3(s, g + 4) & 0xfu) | ((runs::byte_of3(s, g - 4) >> 6) << 4));
    m = static_cast<int>((runs::byte_of3(s, g + 4) >> 4) | ((runs::byte_of3(s, g) >> 6) << 4));
  }
}
MOE_HD inline float unit_dot(const UnitBits<BlockQ4_K>& o, const X8Row& x, int u) noexcept {
  const int l = u % 32, c = l / 8, k = l % 8;
  const int e = 256 * (u / 32) + 64 * c + 4 * k;  // the low nibbles' first element
  const int s0 = dp4a(o.q & 0x0f0f0f0fu, x8_word(x, e), 0);
  const int s1 = dp4a((o.q >> 4) & 0x0f0f0f0fu, x8_word(x, e + 32), 0);
  int sc0, m0, sc1, m1;
  q4k_scale_min(o.s, 2 * c, sc0, m0);
  q4k_scale_min(o.s, 2 * c + 1, sc1, m1);
  const float* xs = x.s + 2 * (8 * (u / 32) + 2 * c);  // x blocks of groups 2c and 2c + 1
  const float d = runs::half_bits(o.dm & 0xffffu), dmin = runs::half_bits(o.dm >> 16);
  float r = d * (static_cast<float>(sc0) * (xs[0] * static_cast<float>(s0)) +
                 static_cast<float>(sc1) * (xs[2] * static_cast<float>(s1)));
  if (k == 0) r -= dmin * (static_cast<float>(m0) * xs[1] + static_cast<float>(m1) * xs[3]);
  return r;
}

// Q6_K (210-byte blocks: 2-byte aligned): unit u = lane l = u % 16 of super-block u / 16: half
// n = l / 8, k = l % 8; for g = 0..3 the elements 128n + 32g + 4k..+3, whose low 4 bits are in
// bytes 64n + 32(g & 1) + 4k..+3 of ql (high nibbles for g >= 2), the top 2 in bits 2g of bytes
// 32n + 4k.. of qh, scale 8n + 2g + k / 4. Codes - 32 per byte, so every term is signed.
template <>
struct UnitBits<BlockQ6_K> {
  std::uint32_t d, lo[4], hi[2], sc[4];
};
template <bool kGlobal = true>
MOE_HD inline UnitBits<BlockQ6_K> load_unit(const BlockQ6_K* row, int u) noexcept {
  const BlockQ6_K* b = row + u / 16;
  const int l = u % 16, n = l / 8, k = l % 8;
  UnitBits<BlockQ6_K> o;
  o.d = runs::load16<kGlobal>(&b->d);
  for (int i = 0; i < 2; ++i) {
    o.lo[2 * i] = runs::load16<kGlobal>(b->ql + 64 * n + 32 * i + 4 * k);
    o.lo[2 * i + 1] = runs::load16<kGlobal>(b->ql + 64 * n + 32 * i + 4 * k + 2);
    o.hi[i] = runs::load16<kGlobal>(b->qh + 32 * n + 4 * k + 2 * i);
  }
  for (int g = 0; g < 4; ++g) o.sc[g] = runs::load8<kGlobal>(b->scales + 8 * n + 2 * g + k / 4);
  return o;
}
MOE_HD inline float unit_dot(const UnitBits<BlockQ6_K>& o, const X8Row& x, int u) noexcept {
  const int l = u % 16, n = l / 8, k = l % 8;
  const std::uint32_t ql[2] = {o.lo[0] | (o.lo[1] << 16), o.lo[2] | (o.lo[3] << 16)};
  const std::uint32_t qh = o.hi[0] | (o.hi[1] << 16);
  const int e = 256 * (u / 16) + 128 * n + 4 * k;
  const float* xs = x.s + 2 * (8 * (u / 16) + 4 * n);  // x blocks 4n + g of the super-block
  float r = 0.0f;
  for (int g = 0; g < 4; ++g) {
    const std::uint32_t low = (ql[g & 1] >> (g >= 2 ? 4 : 0)) & 0x0f0f0f0fu;
    const std::uint32_t q = low | (((qh >> (2 * g)) & 0x03030303u) << 4);
    const int s = dp4a(vsub4(q, 0x20202020u), x8_word(x, e + 32 * g), 0);
    r += static_cast<float>(static_cast<std::int8_t>(o.sc[g])) * (xs[2 * g] * static_cast<float>(s));
  }
  return runs::half_bits(o.d) * r;
}

}  // namespace moe::quant::q8dot
