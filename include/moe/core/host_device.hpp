// MOE_HD marks the few functions that host and device code share (a weight format's element
// decode, f16/bf16 widening, DSA's selection): __host__ __device__ under nvcc, nothing otherwise.
// Such functions must not call host-only code (std::bit_cast included: f32_from_bits below is
// the builtin both compilers have).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MOE_HD __host__ __device__
#else
#define MOE_HD
#endif

namespace moe {

MOE_HD constexpr float f32_from_bits(std::uint32_t u) noexcept { return __builtin_bit_cast(float, u); }

// Entry i (0..15) of a 16-entry int8 table packed little-endian into two 64-bit words: a lookup
// that device code can use without a table in device memory.
MOE_HD constexpr std::int8_t packed_table_entry(std::uint64_t low, std::uint64_t high, int i) noexcept {
  return static_cast<std::int8_t>(static_cast<std::uint8_t>((i < 8 ? low : high) >> (8 * (i & 7))));
}

// Whether the packed lookup `entry` gives table[i] for all 16 entries (for static_asserts).
template <class Entry>
constexpr bool packed_table_matches(Entry entry, const std::int8_t (&table)[16]) noexcept {
  for (int i = 0; i < 16; ++i) {
    if (entry(i) != table[i]) return false;
  }
  return true;
}

}  // namespace moe
