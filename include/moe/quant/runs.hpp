// Runs: 8 consecutive elements of a row of ggml blocks, read in two steps, as the CUDA decode
// GEMV reads its weights. load_run(row, k) only loads: it copies the bytes that elements k..k+7
// need into registers (RunBits<Q>), so a kernel can have several runs' loads in flight before any
// arithmetic waits on one; decode_bits(bits, w) then makes the 8 values, equal bit for bit to
// Q::decode(row, k + j) (tests/quant/test_runs.cpp checks every run of every format on the host).
//
// Every block holds a multiple of 8 elements, so a run never straddles two blocks. The hot formats
// have their own RunBits: the run's code bytes in as few loads as the block's alignment allows,
// codes turned into floats without a conversion instruction (2^23 + n read as a float has n in its
// mantissa: an OR and a subtraction, exact for small n), the scales as stored. Other formats
// keep a pointer, and decode_bits reads through Q::decode.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/host_device.hpp"
#include "moe/quant/formats.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace moe::quant::runs {

inline constexpr int kRunElems = 8;

// ---- loads and bit helpers --------------------------------------------------------------------

// Read-only loads of 1, 2, 4 and 8 bytes (p as aligned as its width on the device). kGlobal:
// p is global memory, read through the non-coherent cache (__ldg); false: any address (a row
// the GEMV staged in shared memory, kernels/cuda/matmul.cuh), a plain load. q8_dot.hpp's load_unit
// takes the same flag, default true.
template <bool kGlobal = true>
MOE_HD inline std::uint32_t load8(const void* p) noexcept {
#if defined(__CUDA_ARCH__)
  if constexpr (kGlobal) return __ldg(static_cast<const unsigned char*>(p));
  else return *static_cast<const unsigned char*>(p);
#else
  return *static_cast<const std::uint8_t*>(p);
#endif
}
template <bool kGlobal = true>
MOE_HD inline std::uint32_t load16(const void* p) noexcept {
#if defined(__CUDA_ARCH__)
  if constexpr (kGlobal) return __ldg(static_cast<const unsigned short*>(p));
  else return *static_cast<const unsigned short*>(p);
#else
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
#endif
}
template <bool kGlobal = true>
MOE_HD inline std::uint32_t load32(const void* p) noexcept {
#if defined(__CUDA_ARCH__)
  if constexpr (kGlobal) return __ldg(static_cast<const unsigned int*>(p));
  else return *static_cast<const unsigned int*>(p);
#else
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}
struct Word2 {
  std::uint32_t lo, hi;
};
template <bool kGlobal = true>
MOE_HD inline Word2 load64(const void* p) noexcept {
#if defined(__CUDA_ARCH__)
  uint2 v;
  if constexpr (kGlobal) v = __ldg(static_cast<const uint2*>(p));
  else v = *static_cast<const uint2*>(p);
  return {v.x, v.y};
#else
  Word2 v;
  std::memcpy(&v.lo, p, 4);
  std::memcpy(&v.hi, static_cast<const std::uint8_t*>(p) + 4, 4);
  return v;
#endif
}

// IEEE binary16 bits -> f32, exact (the hardware conversion on the device).
MOE_HD inline float half_bits(std::uint32_t bits) noexcept {
#if defined(__CUDA_ARCH__)
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
#else
  return to_float(f16::from_bits(static_cast<std::uint16_t>(bits)));
#endif
}

// n - bias as a float, for 0 <= n < 2^22 and 0 <= bias < 2^22: exact.
MOE_HD inline float biased_float(std::uint32_t n, std::uint32_t bias) noexcept {
  return f32_from_bits(0x4B000000u | n) - static_cast<float>(0x800000u + bias);
}

// Entries i0 .. i0 + 7 of a 16-entry int8 table, each + 128, packed little-endian into a word: a
// lookup (table_float) without a table in memory.
constexpr std::uint64_t biased_table_half(const std::int8_t (&t)[16], int i0) noexcept {
  std::uint64_t out = 0;
  for (int i = 0; i < 8; ++i) out |= std::uint64_t{static_cast<std::uint8_t>(t[i0 + i] + 128)} << (8 * i);
  return out;
}
// t[i] as a float, t packed by biased_table_half as kLow (entries 0..7) and kHigh (8..15).
template <std::uint64_t kLow, std::uint64_t kHigh>
MOE_HD inline float table_float(std::uint32_t i) noexcept {
  const std::uint64_t half = i < 8 ? kLow : kHigh;
  return biased_float(static_cast<std::uint32_t>(half >> (8 * (i % 8))) & 0xffu, 128);
}
inline constexpr std::uint64_t kIq4Low = biased_table_half(kIq4Values, 0), kIq4High = biased_table_half(kIq4Values, 8);
inline constexpr std::uint64_t kMxfp4Low = biased_table_half(kMxfp4Values, 0),
                               kMxfp4High = biased_table_half(kMxfp4Values, 8);
MOE_HD inline float iq4_float(std::uint32_t i) noexcept { return table_float<kIq4Low, kIq4High>(i); }
MOE_HD inline float mxfp4_float(std::uint32_t i) noexcept { return table_float<kMxfp4Low, kMxfp4High>(i); }

// Byte i (0..11) of three words.
MOE_HD inline std::uint32_t byte_of3(const std::uint32_t (&w)[3], int i) noexcept {
  const std::uint32_t word = i < 4 ? w[0] : (i < 8 ? w[1] : w[2]);
  return (word >> (8 * (i % 4))) & 0xffu;
}

// ---- the generic run: a pointer, decoded through Q::decode -------------------------------------

template <class Q>
struct RunBits {
  const Q* row;
  int k;
};
template <class Q>
MOE_HD inline RunBits<Q> load_run(const Q* row, int k) noexcept {
  return {row, k};
}
template <class Q>
MOE_HD inline void decode_bits(const RunBits<Q>& r, float (&w)[kRunElems]) noexcept {
  for (int j = 0; j < kRunElems; ++j) w[j] = Q::decode(r.row, static_cast<std::size_t>(r.k + j));
}

// ---- Q8_0: f16 d at byte 0, 32 int8 codes from byte 2 (blocks 2-byte aligned) ------------------

template <>
struct RunBits<BlockQ8_0> {
  std::uint32_t d, q[4];  // q[i]: codes 2i, 2i + 1
};
template <>
MOE_HD inline RunBits<BlockQ8_0> load_run(const BlockQ8_0* row, int k) noexcept {
  const BlockQ8_0* b = row + k / 32;
  RunBits<BlockQ8_0> r;
  r.d = load16(&b->d);
  for (int i = 0; i < 4; ++i) r.q[i] = load16(b->qs + k % 32 + 2 * i);
  return r;
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockQ8_0>& r, float (&w)[kRunElems]) noexcept {
  const float d = half_bits(r.d);
  for (int i = 0; i < 4; ++i) {  // (byte ^ 0x80) = code + 128
    w[2 * i] = biased_float((r.q[i] & 0xffu) ^ 0x80u, 128) * d;
    w[2 * i + 1] = biased_float(((r.q[i] >> 8) & 0xffu) ^ 0x80u, 128) * d;
  }
}

// ---- 32-element nibble formats: element j < 16 in the low nibble of qs[j], j >= 16 in the high
// nibble of qs[j - 16]. A run's 8 code bytes are 2-byte aligned (Q4_0, IQ4_NL: 18-byte blocks)
// or not aligned (MXFP4: 17-byte blocks).

struct NibbleRun {
  std::uint32_t scale;  // the stored scale's bits
  std::uint32_t q[4];   // q[i]: code bytes 2i, 2i + 1 (16 bits)
  int shift;            // 0: low nibbles, 4: high nibbles
};
template <class Q>
MOE_HD inline NibbleRun load_nibble_run(const Q* row, int k) noexcept {
  constexpr bool kMxfp4 = std::is_same_v<Q, BlockMxfp4>;  // E8M0 byte scale, 17-byte blocks
  const Q* b = row + k / 32;
  const int j0 = k % 32;
  const std::uint8_t* q = b->qs + j0 % 16;
  NibbleRun r;
  if constexpr (kMxfp4) {
    r.scale = load8(&b->e);
    for (int i = 0; i < 4; ++i) r.q[i] = load8(q + 2 * i) | (load8(q + 2 * i + 1) << 8);
  } else {
    r.scale = load16(&b->d);
    for (int i = 0; i < 4; ++i) r.q[i] = load16(q + 2 * i);
  }
  r.shift = j0 >= 16 ? 4 : 0;
  return r;
}
// w[e] = value(nibble e) · d (IEEE products commute, so this is each format's decode bit for bit).
template <class Value>
MOE_HD inline void decode_nibbles(const NibbleRun& r, float d, float (&w)[kRunElems]) noexcept {
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t v = (r.q[i] >> r.shift) & 0x0f0fu;  // nibbles 2i (byte 0) and 2i + 1 (byte 1)
    w[2 * i] = Value{}(v & 0xffu) * d;
    w[2 * i + 1] = Value{}(v >> 8) * d;
  }
}
struct Q4Value {
  MOE_HD float operator()(std::uint32_t n) const noexcept { return biased_float(n, 8); }
};
struct Iq4Value {
  MOE_HD float operator()(std::uint32_t n) const noexcept { return iq4_float(n); }
};
struct Mxfp4Value {
  MOE_HD float operator()(std::uint32_t n) const noexcept { return mxfp4_float(n); }
};

template <>
struct RunBits<BlockQ4_0> : NibbleRun {};
template <>
MOE_HD inline RunBits<BlockQ4_0> load_run(const BlockQ4_0* row, int k) noexcept {
  return {load_nibble_run(row, k)};
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockQ4_0>& r, float (&w)[kRunElems]) noexcept {
  decode_nibbles<Q4Value>(r, half_bits(r.scale), w);
}

template <>
struct RunBits<BlockIq4Nl> : NibbleRun {};
template <>
MOE_HD inline RunBits<BlockIq4Nl> load_run(const BlockIq4Nl* row, int k) noexcept {
  return {load_nibble_run(row, k)};
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockIq4Nl>& r, float (&w)[kRunElems]) noexcept {
  decode_nibbles<Iq4Value>(r, half_bits(r.scale), w);
}

template <>
struct RunBits<BlockMxfp4> : NibbleRun {};
template <>
MOE_HD inline RunBits<BlockMxfp4> load_run(const BlockMxfp4* row, int k) noexcept {
  return {load_nibble_run(row, k)};
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockMxfp4>& r, float (&w)[kRunElems]) noexcept {
  decode_nibbles<Mxfp4Value>(r, detail::e8m0_half(static_cast<std::uint8_t>(r.scale)), w);
}

// ---- Q4_K (144-byte blocks, rows 8-byte aligned): d, dmin, 12 scale bytes, then chunk c of 64
// elements as the low nibbles of qs[32c .. 32c + 32) and then their high nibbles.

template <>
struct RunBits<BlockQ4_K> {
  std::uint32_t dm;    // d (low half), dmin (high half)
  std::uint32_t s[3];  // the 12 scale bytes
  Word2 q;             // 8 code bytes
  int group, shift;
};
template <>
MOE_HD inline RunBits<BlockQ4_K> load_run(const BlockQ4_K* row, int k) noexcept {
  const BlockQ4_K* b = row + k / 256;
  const int j = k % 256, c = j / 64, r = j % 64;
  RunBits<BlockQ4_K> o;
  o.dm = load32(b);
  for (int i = 0; i < 3; ++i) o.s[i] = load32(b->scales + 4 * i);
  o.q = load64(b->qs + 32 * c + r % 32);
  o.group = 2 * c + r / 32;
  o.shift = r >= 32 ? 4 : 0;
  return o;
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockQ4_K>& o, float (&w)[kRunElems]) noexcept {
  const int g = o.group;  // detail::scale_min_k4 on the loaded bytes
  std::uint32_t sc, m;
  if (g < 4) {
    sc = byte_of3(o.s, g) & 63u;
    m = byte_of3(o.s, g + 4) & 63u;
  } else {
    sc = (byte_of3(o.s, g + 4) & 0xfu) | ((byte_of3(o.s, g - 4) >> 6) << 4);
    m = (byte_of3(o.s, g + 4) >> 4) | ((byte_of3(o.s, g) >> 6) << 4);
  }
  const float d1 = half_bits(o.dm & 0xffffu) * static_cast<float>(sc);
  const float m1 = half_bits(o.dm >> 16) * static_cast<float>(m);
  const std::uint32_t nib[2] = {(o.q.lo >> o.shift) & 0x0f0f0f0fu, (o.q.hi >> o.shift) & 0x0f0f0f0fu};
  for (int e = 0; e < kRunElems; ++e) w[e] = d1 * biased_float((nib[e / 4] >> (8 * (e % 4))) & 0xffu, 0) - m1;
}

// ---- Q6_K (210-byte blocks: 2-byte aligned): element j of half n = j / 128, g = (j % 128) / 32,
// l = j % 32 has its low 4 bits in ql[64n + l + 32(g & 1)] (high nibble for g >= 2), its top 2 in
// (qh[32n + l] >> 2g) & 3, scale 8n + 2g + l / 16.

template <>
struct RunBits<BlockQ6_K> {
  std::uint32_t d, scale;
  std::uint32_t lo[4], hi[4];  // 16 bits each
  int lo_shift, hi_shift;
};
template <>
MOE_HD inline RunBits<BlockQ6_K> load_run(const BlockQ6_K* row, int k) noexcept {
  const BlockQ6_K* b = row + k / 256;
  const int j = k % 256, n = j / 128, g = (j % 128) / 32, l = j % 32;
  RunBits<BlockQ6_K> o;
  o.d = load16(&b->d);
  o.scale = load8(b->scales + 8 * n + 2 * g + l / 16);
  for (int i = 0; i < 4; ++i) {
    o.lo[i] = load16(b->ql + 64 * n + l + 32 * (g & 1) + 2 * i);
    o.hi[i] = load16(b->qh + 32 * n + l + 2 * i);
  }
  o.lo_shift = g >= 2 ? 4 : 0;
  o.hi_shift = 2 * g;
  return o;
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockQ6_K>& o, float (&w)[kRunElems]) noexcept {
  const float ds = half_bits(o.d) * static_cast<float>(static_cast<std::int8_t>(o.scale));
  for (int i = 0; i < 4; ++i) {  // both codes of a pair at once: low 4 bits, then the top 2 above them
    const std::uint32_t q = ((o.lo[i] >> o.lo_shift) & 0x0f0fu) | (((o.hi[i] >> o.hi_shift) & 0x0303u) << 4);
    w[2 * i] = ds * biased_float(q & 0xffu, 32);
    w[2 * i + 1] = ds * biased_float(q >> 8, 32);
  }
}

// ---- IQ4_XS (136-byte blocks, rows 8-byte aligned): d, 2 bytes of high scale bits, 4 of low,
// then 16 code bytes per group of 32 (low nibbles: elements 0..15, high: 16..31).

template <>
struct RunBits<BlockIq4Xs> {
  std::uint32_t dh;  // d (low half), scales_h (high half)
  std::uint32_t sl;  // scales_l
  Word2 q;
  int group, shift;
};
template <>
MOE_HD inline RunBits<BlockIq4Xs> load_run(const BlockIq4Xs* row, int k) noexcept {
  const BlockIq4Xs* b = row + k / 256;
  const int j = k % 256, g = j / 32, r = j % 32;
  RunBits<BlockIq4Xs> o;
  o.dh = load32(b);
  o.sl = load32(b->scales_l);
  o.q = load64(b->qs + 16 * g + r % 16);
  o.group = g;
  o.shift = r >= 16 ? 4 : 0;
  return o;
}
template <>
MOE_HD inline void decode_bits(const RunBits<BlockIq4Xs>& o, float (&w)[kRunElems]) noexcept {
  const int g = o.group;  // BlockIq4Xs::group_scale on the loaded bytes
  const int ls = static_cast<int>(((o.sl >> (4 * g)) & 0xfu) | (((o.dh >> (16 + 2 * g)) & 3u) << 4)) - 32;
  const float dl = half_bits(o.dh & 0xffffu) * static_cast<float>(ls);
  const std::uint32_t nib[2] = {(o.q.lo >> o.shift) & 0x0f0f0f0fu, (o.q.hi >> o.shift) & 0x0f0f0f0fu};
  for (int e = 0; e < kRunElems; ++e) w[e] = dl * iq4_float((nib[e / 4] >> (8 * (e % 4))) & 0xffu);
}

// ---- the alignment load_run needs of a row start on the device (its widest load) --------------

template <class Q>
inline constexpr std::size_t kRunAlignment = 1;
template <>
inline constexpr std::size_t kRunAlignment<BlockQ8_0> = 2;
template <>
inline constexpr std::size_t kRunAlignment<BlockQ4_0> = 2;
template <>
inline constexpr std::size_t kRunAlignment<BlockIq4Nl> = 2;
template <>
inline constexpr std::size_t kRunAlignment<BlockQ4_K> = 8;
template <>
inline constexpr std::size_t kRunAlignment<BlockQ6_K> = 2;
template <>
inline constexpr std::size_t kRunAlignment<BlockIq4Xs> = 8;

// How many runs per row a GEMV lane loads before decoding the first: the register cost of a
// run's bits bounds it (MXFP4's unaligned codes arrive a byte at a time).
template <class Q>
inline constexpr int kRunsInFlight = 4;
template <>
inline constexpr int kRunsInFlight<BlockMxfp4> = 2;

// The 8 values of run k (a multiple of 8) of `row`.
template <class Q>
MOE_HD inline void decode_run(const Q* row, int k, float (&w)[kRunElems]) noexcept {
  static_assert(Q::block_elements % kRunElems == 0, "a run must lie inside one block");
  decode_bits(load_run(row, k), w);
}

}  // namespace moe::quant::runs
