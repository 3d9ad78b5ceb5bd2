// How CUDA kernels read weights stored in a ggml block format (quant/): a run of 8 consecutive
// elements of a row of blocks, decoded to f32 in registers by the format's own decode (the
// MOE_HD functions of quant/, the one description of each layout), with the hot formats'
// runs decoded from wider loads of the codes. Every block format's block holds a multiple of 8
// elements, so a run never straddles two blocks. A row of a block-format matrix is `ld` blocks
// apart from the next (views of block formats count blocks in their inner extent).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/core/format.hpp"
#include "moe/quant/formats.hpp"

#include <cstddef>
#include <cstdint>

namespace moe::kernels::cuda_detail {

inline constexpr int kRunElems = 8;

// w[j] = element k + j of the row of blocks `row` (k a multiple of 8), exact as Q::decode.
template <class Q>
__device__ __forceinline__ void decode_run(const Q* row, int k, float (&w)[kRunElems]) {
  static_assert(Q::block_elements % kRunElems == 0, "a run must lie inside one block");
  constexpr int kBlock = static_cast<int>(Q::block_elements);
  const Q* b = row + k / kBlock;
  const int j0 = k % kBlock;
#pragma unroll
  for (int j = 0; j < kRunElems; ++j) w[j] = Q::decode(b, static_cast<std::size_t>(j0 + j));
}

// Q8_0: d = f16 at byte 0, 32 int8 codes from byte 2 (2-byte aligned: four 2-byte loads).
template <>
__device__ __forceinline__ void decode_run(const quant::BlockQ8_0* row, int k, float (&w)[kRunElems]) {
  const quant::BlockQ8_0& b = row[k / 32];
  const float d = to_float(b.d);
  const auto* q = reinterpret_cast<const std::uint16_t*>(b.qs + k % 32);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const std::uint16_t v = __ldg(q + i);
    w[2 * i] = static_cast<float>(static_cast<std::int8_t>(v & 0xff)) * d;
    w[2 * i + 1] = static_cast<float>(static_cast<std::int8_t>(v >> 8)) * d;
  }
}

// Q4_0: element j < 16 in the low nibble of qs[j], j >= 16 in the high nibble of qs[j - 16].
template <>
__device__ __forceinline__ void decode_run(const quant::BlockQ4_0* row, int k, float (&w)[kRunElems]) {
  const quant::BlockQ4_0& b = row[k / 32];
  const int j0 = k % 32;
  const float d = to_float(b.d);
  const auto* q = reinterpret_cast<const std::uint16_t*>(b.qs + (j0 % 16));
  const int shift = j0 >= 16 ? 4 : 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t v = __ldg(q + i);
    w[2 * i] = static_cast<float>(static_cast<int>((v >> shift) & 0xf) - 8) * d;
    w[2 * i + 1] = static_cast<float>(static_cast<int>((v >> (8 + shift)) & 0xf) - 8) * d;
  }
}

// Q4_K: chunk c of 64 elements: the low nibbles of qs[32c .. 32c + 32) then the high ones, group
// 2c + (low ? 0 : 1) of the 6-bit scales and mins.
template <>
__device__ __forceinline__ void decode_run(const quant::BlockQ4_K* row, int k, float (&w)[kRunElems]) {
  const quant::BlockQ4_K& b = row[k / 256];
  const int j = k % 256, c = j / 64, r = j % 64;
  std::uint8_t sc, m;
  quant::detail::scale_min_k4(2 * c + r / 32, b.scales, sc, m);
  const float d1 = to_float(b.d) * sc, m1 = to_float(b.dmin) * m;
  const uint2 v = __ldg(reinterpret_cast<const uint2*>(b.qs + 32 * c + r % 32));  // 8-byte aligned (kRunAlignment)
  const int shift = r >= 32 ? 4 : 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const std::uint32_t word = i < 4 ? v.x : v.y;
    w[i] = d1 * static_cast<float>((word >> (8 * (i % 4) + shift)) & 0xf) - m1;
  }
}

// Q6_K (210-byte blocks: rows are only 2-byte aligned): element j of half n has its low 4 bits in
// ql[64n + l + 32(g&1)] (high nibble for g >= 2), its top 2 bits in (qh[32n + l] >> 2g) & 3 and
// scale 8n + 2g + l/16 (l = j % 32, g = (j % 128) / 32).
template <>
__device__ __forceinline__ void decode_run(const quant::BlockQ6_K* row, int k, float (&w)[kRunElems]) {
  const quant::BlockQ6_K& b = row[k / 256];
  const int j = k % 256, n = j / 128, g = (j % 128) / 32, l = j % 32;
  const float d = to_float(b.d) * static_cast<float>(b.scales[8 * n + 2 * g + l / 16]);
  const auto* lo = reinterpret_cast<const std::uint16_t*>(b.ql + 64 * n + l + 32 * (g & 1));
  const auto* hi = reinterpret_cast<const std::uint16_t*>(b.qh + 32 * n + l);
  const int lo_shift = g >= 2 ? 4 : 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const std::uint32_t lw = __ldg(lo + i), hw = __ldg(hi + i);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int q = static_cast<int>(((lw >> (8 * h + lo_shift)) & 0xf) | (((hw >> (8 * h + 2 * g)) & 3) << 4));
      w[2 * i + h] = d * static_cast<float>(q - 32);
    }
  }
}

// The alignment decode_run needs of a row start (the widest load it issues): rows of Q4_K are
// read 8 bytes at a time, the other specialised formats 2, the generic decode byte-wise.
template <class Q>
inline constexpr std::size_t kRunAlignment = 1;
template <>
inline constexpr std::size_t kRunAlignment<quant::BlockQ8_0> = 2;
template <>
inline constexpr std::size_t kRunAlignment<quant::BlockQ4_0> = 2;
template <>
inline constexpr std::size_t kRunAlignment<quant::BlockQ4_K> = 8;
template <>
inline constexpr std::size_t kRunAlignment<quant::BlockQ6_K> = 2;

}  // namespace moe::kernels::cuda_detail

#endif  // MOE_ENABLE_CUDA && __CUDACC__
