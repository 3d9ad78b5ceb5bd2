// A row-interleaved layout of the block formats the cpu kernels read this way (Q4_0, Q8_0, IQ4_NL,
// Q4_K and Q6_K): Rows8<B> holds block b of 8 consecutive rows, their 8 scales side
// by side and their code bytes interleaved in 4-byte groups (group g of rows 0..7, then group
// g + 1, ...). A vector of 32 bytes then holds the same 4 codes of 8 rows, so an integer dot
// product broadcasts 4 activation bytes and leaves one row per s32 lane, with no horizontal
// reduction per block, and the 8 f16 scales convert in one instruction. The layout is the cpu
// backend's (model/repack.hpp makes it at load); its bytes per 8 rows equal the format's, so byte
// counts and row offsets at multiples of 8 rows stay those of the stored matrix.
#pragma once

#include "moe/quant/iq4.hpp"
#include "moe/quant/k_quants.hpp"
#include "moe/quant/legacy.hpp"
#include "moe/quant/q8_0.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace moe::quant {

inline constexpr int kInterleavedRows = 8;

template <class B>
concept Interleavable = std::is_same_v<B, BlockQ4_0> || std::is_same_v<B, BlockQ8_0> ||
                        std::is_same_v<B, BlockIq4Nl> || std::is_same_v<B, BlockQ4_K> ||
                        std::is_same_v<B, BlockQ6_K>;

template <Interleavable B>
struct Rows8 {  // the 32-element formats: a scale and 16 or 32 code bytes
  using block = B;
  static constexpr int kGroups = static_cast<int>(sizeof(B::qs)) / 4;  // 4-byte code groups per block
  f16 d[kInterleavedRows];
  std::uint8_t qs[kGroups][kInterleavedRows][4];  // qs[g][r]: row r's code bytes 4g .. 4g+3
};
// Q4_K: the 12 bytes of packed 6-bit scales and mins as 3 words per row, word w of the 8 rows side
// by side, so that the cpu kernel unpacks the 8 rows' scales with the same vector operations.
template <>
struct Rows8<BlockQ4_K> {
  using block = BlockQ4_K;
  static constexpr int kGroups = 32;
  f16 d[kInterleavedRows];
  f16 dmin[kInterleavedRows];
  std::uint32_t scales[3][kInterleavedRows];  // scales[w][r]: row r's scale bytes 4w .. 4w+3
  std::uint8_t qs[kGroups][kInterleavedRows][4];
};
// Q6_K: the 16 signed group scales as 4 words per row, the low-bit bytes (ql) and the high-bit
// bytes (qh) each in 4-byte groups of the 8 rows.
template <>
struct Rows8<BlockQ6_K> {
  using block = BlockQ6_K;
  f16 d[kInterleavedRows];
  std::uint32_t scales[4][kInterleavedRows];   // scales[w][r]: row r's scales 4w .. 4w+3
  std::uint8_t ql[32][kInterleavedRows][4];    // ql[g][r]: row r's ql bytes 4g .. 4g+3
  std::uint8_t qh[16][kInterleavedRows][4];    // qh[g][r]: row r's qh bytes 4g .. 4g+3
};
static_assert(sizeof(Rows8<BlockQ4_0>) == kInterleavedRows * sizeof(BlockQ4_0));
static_assert(sizeof(Rows8<BlockQ8_0>) == kInterleavedRows * sizeof(BlockQ8_0));
static_assert(sizeof(Rows8<BlockIq4Nl>) == kInterleavedRows * sizeof(BlockIq4Nl));
static_assert(sizeof(Rows8<BlockQ4_K>) == kInterleavedRows * sizeof(BlockQ4_K));
static_assert(sizeof(Rows8<BlockQ6_K>) == kInterleavedRows * sizeof(BlockQ6_K));

namespace rows8_detail {
template <int kGroups>
inline void put_groups(const std::uint8_t* src, std::uint8_t (*dst)[kInterleavedRows][4], int r) noexcept {
  for (int g = 0; g < kGroups; ++g) std::memcpy(dst[g][r], src + 4 * g, 4);
}
template <int kGroups>
inline void get_groups(const std::uint8_t (*src)[kInterleavedRows][4], int r, std::uint8_t* dst) noexcept {
  for (int g = 0; g < kGroups; ++g) std::memcpy(dst + 4 * g, src[g][r], 4);
}
}  // namespace rows8_detail

// Block b of 8 rows (rows[r] points at row r's blocks) into the interleaved layout.
template <Interleavable B>
void interleave(const B* const* rows, std::size_t b, Rows8<B>& out) noexcept {
  for (int r = 0; r < kInterleavedRows; ++r) {
    const B& blk = rows[r][b];
    out.d[r] = blk.d;
    if constexpr (std::is_same_v<B, BlockQ6_K>) {
      for (int w = 0; w < 4; ++w) std::memcpy(&out.scales[w][r], blk.scales + 4 * w, 4);
      rows8_detail::put_groups<32>(blk.ql, out.ql, r);
      rows8_detail::put_groups<16>(blk.qh, out.qh, r);
    } else {
      if constexpr (std::is_same_v<B, BlockQ4_K>) {
        out.dmin[r] = blk.dmin;
        for (int w = 0; w < 3; ++w) std::memcpy(&out.scales[w][r], blk.scales + 4 * w, 4);
      }
      rows8_detail::put_groups<Rows8<B>::kGroups>(reinterpret_cast<const std::uint8_t*>(blk.qs), out.qs, r);
    }
  }
}

// Row r's block back out of the interleaved layout (the inverse of interleave).
template <Interleavable B>
B deinterleave(const Rows8<B>& in, int r) noexcept {
  B blk;
  blk.d = in.d[r];
  if constexpr (std::is_same_v<B, BlockQ6_K>) {
    for (int w = 0; w < 4; ++w) std::memcpy(blk.scales + 4 * w, &in.scales[w][r], 4);
    rows8_detail::get_groups<32>(in.ql, r, blk.ql);
    rows8_detail::get_groups<16>(in.qh, r, blk.qh);
  } else {
    if constexpr (std::is_same_v<B, BlockQ4_K>) {
      blk.dmin = in.dmin[r];
      for (int w = 0; w < 3; ++w) std::memcpy(blk.scales + 4 * w, &in.scales[w][r], 4);
    }
    rows8_detail::get_groups<Rows8<B>::kGroups>(in.qs, r, reinterpret_cast<std::uint8_t*>(blk.qs));
  }
  return blk;
}

}  // namespace moe::quant
