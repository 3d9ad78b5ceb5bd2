// The vocabulary of the GGUF container (ggml's model file format, ggml-org/ggml docs/gguf.md):
// metadata value types, the ggml tensor type ids with their block geometry, and the limits the
// reader puts on what a file may ask for. Needs only the standard library; the meaning of each
// block's bytes lives in quant/, this table only knows how many bytes a block of each type takes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace moe::io {

// ---- limits: every length or count read from a GGUF file is checked against these (and against
// the bytes that remain in the file) before it is used. Each is far above what real files hold.
namespace gguf_limits {
// Metadata key length. The spec asks keys to be at most 65535 bytes; real ones are < 64.
inline constexpr std::uint64_t kMaxKeyBytes = 65535;
// Any string value. The largest real ones are chat templates (< 64 KB) and licence texts.
inline constexpr std::uint64_t kMaxStringBytes = std::uint64_t{1} << 24;
// Elements of one array. The largest real ones are vocabularies and merge lists (< 1 M entries).
inline constexpr std::uint64_t kMaxArrayElements = std::uint64_t{1} << 24;
// Arrays of arrays: the spec allows them, no writer we know emits them; bounded so that walking
// a value never recurses deeply.
inline constexpr int kMaxArrayDepth = 8;
// Metadata entries and tensors of one file. Real files: ~50 keys; up to ~50 k tensors for files
// that store every expert as its own tensor (DeepSeek-V3: 61 layers x 256 experts x 3).
inline constexpr std::uint64_t kMaxMetadataEntries = std::uint64_t{1} << 20;
inline constexpr std::uint64_t kMaxTensors = std::uint64_t{1} << 20;
// Tensor name length. ggml's own limit is 63 bytes (GGML_MAX_NAME 64 with the terminator); we
// accept longer names from other writers up to this cap.
inline constexpr std::uint64_t kMaxTensorNameBytes = 1024;
// Dimensions of a tensor: ggml's GGML_MAX_DIMS.
inline constexpr std::uint32_t kMaxDims = 4;
// One extent: ggml stores extents as int64, so anything above INT64_MAX is not a ggml tensor.
inline constexpr std::uint64_t kMaxExtent = std::uint64_t{INT64_MAX};
// `general.alignment`: a power of two, at most this (ggml's default is 32; page alignment 4096
// is the largest anyone has a reason for).
inline constexpr std::uint32_t kMaxAlignment = std::uint32_t{1} << 20;
inline constexpr std::uint32_t kDefaultAlignment = 32;
}  // namespace gguf_limits

// The "GGUF" magic as the file's first four bytes.
inline constexpr std::array<unsigned char, 4> kGgufMagic{'G', 'G', 'U', 'F'};

// Metadata value types (gguf_type in ggml's gguf.h); the numbers are the file's encoding.
enum class GgufValueType : std::uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  boolean = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

inline constexpr std::uint32_t kGgufValueTypeCount = 13;

constexpr std::string_view to_string(GgufValueType t) noexcept {
  switch (t) {
    case GgufValueType::u8: return "u8";
    case GgufValueType::i8: return "i8";
    case GgufValueType::u16: return "u16";
    case GgufValueType::i16: return "i16";
    case GgufValueType::u32: return "u32";
    case GgufValueType::i32: return "i32";
    case GgufValueType::f32: return "f32";
    case GgufValueType::boolean: return "bool";
    case GgufValueType::string: return "string";
    case GgufValueType::array: return "array";
    case GgufValueType::u64: return "u64";
    case GgufValueType::i64: return "i64";
    case GgufValueType::f64: return "f64";
  }
  return "unknown";
}

// Bytes of one value of a fixed-size type; 0 for string and array (variable length).
constexpr std::size_t gguf_value_size(GgufValueType t) noexcept {
  switch (t) {
    case GgufValueType::u8:
    case GgufValueType::i8:
    case GgufValueType::boolean: return 1;
    case GgufValueType::u16:
    case GgufValueType::i16: return 2;
    case GgufValueType::u32:
    case GgufValueType::i32:
    case GgufValueType::f32: return 4;
    case GgufValueType::u64:
    case GgufValueType::i64:
    case GgufValueType::f64: return 8;
    case GgufValueType::string:
    case GgufValueType::array: return 0;
  }
  return 0;
}

// The fewest bytes a value of type t occupies in a file: its size, or the u64 length of a string,
// or the u32 element type + u64 count of an array. Bounds counts against the bytes that remain.
constexpr std::size_t gguf_min_value_bytes(GgufValueType t) noexcept {
  if (t == GgufValueType::string) return 8;
  if (t == GgufValueType::array) return 12;
  return gguf_value_size(t);
}

// ggml tensor type ids (enum ggml_type in ggml.h). Ids 4, 5 (Q4_2, Q4_3), 31-33 (Q4_0_4_4,
// Q4_0_4_8, Q4_0_8_8) and 36-38 (IQ4_NL_4_4, _4_8, _8_8) were removed from ggml and never appear
// in current files; find_ggml_type reports them as removed.
enum class GgmlType : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
  nvfp4 = 40,
  q1_0 = 41,
  q2_0 = 42,
};

// A ggml type's storage geometry: a row of ne[0] elements is ne[0] / block_elements blocks of
// block_bytes each (ggml_blck_size / ggml_type_size). Plain element types have blocks of one.
struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // ggml_type_name spelling: "f32", "q8_0", "q4_K", "iq4_xs", ...
  std::uint32_t block_elements;
  std::uint32_t block_bytes;
  bool quantized;
};

namespace detail {
// Block sizes follow the block_* structs of ggml-common.h; QK_K = 256 for the K and IQ types.
inline constexpr std::array<GgmlTypeInfo, 35> kGgmlTypes{{
    {GgmlType::f32, "f32", 1, 4, false},
    {GgmlType::f16, "f16", 1, 2, false},
    {GgmlType::q4_0, "q4_0", 32, 18, true},      // f16 d, 16 B nibbles
    {GgmlType::q4_1, "q4_1", 32, 20, true},      // f16 d, f16 m, 16 B nibbles
    {GgmlType::q5_0, "q5_0", 32, 22, true},      // f16 d, 4 B high bits, 16 B nibbles
    {GgmlType::q5_1, "q5_1", 32, 24, true},      // f16 d, f16 m, 4 B high bits, 16 B nibbles
    {GgmlType::q8_0, "q8_0", 32, 34, true},      // f16 d, 32 int8
    {GgmlType::q8_1, "q8_1", 32, 36, true},      // f16 d, f16 s, 32 int8
    {GgmlType::q2_k, "q2_K", 256, 84, true},     // 16 B scales, 64 B quants, f16 d, f16 dmin
    {GgmlType::q3_k, "q3_K", 256, 110, true},    // 32 B hmask, 64 B quants, 12 B scales, f16 d
    {GgmlType::q4_k, "q4_K", 256, 144, true},    // f16 d, f16 dmin, 12 B scales, 128 B nibbles
    {GgmlType::q5_k, "q5_K", 256, 176, true},    // f16 d, f16 dmin, 12 B scales, 32 B qh, 128 B qs
    {GgmlType::q6_k, "q6_K", 256, 210, true},    // 128 B ql, 64 B qh, 16 int8 scales, f16 d
    {GgmlType::q8_k, "q8_K", 256, 292, true},    // f32 d, 256 int8, 16 int16 bsums
    {GgmlType::iq2_xxs, "iq2_xxs", 256, 66, true},
    {GgmlType::iq2_xs, "iq2_xs", 256, 74, true},
    {GgmlType::iq3_xxs, "iq3_xxs", 256, 98, true},
    {GgmlType::iq1_s, "iq1_s", 256, 50, true},
    {GgmlType::iq4_nl, "iq4_nl", 32, 18, true},  // f16 d, 16 B nibbles (non-linear codebook)
    {GgmlType::iq3_s, "iq3_s", 256, 110, true},
    {GgmlType::iq2_s, "iq2_s", 256, 82, true},
    {GgmlType::iq4_xs, "iq4_xs", 256, 136, true},  // f16 d, u16 scales_h, 4 B scales_l, 128 B qs
    {GgmlType::i8, "i8", 1, 1, false},
    {GgmlType::i16, "i16", 1, 2, false},
    {GgmlType::i32, "i32", 1, 4, false},
    {GgmlType::i64, "i64", 1, 8, false},
    {GgmlType::f64, "f64", 1, 8, false},
    {GgmlType::iq1_m, "iq1_m", 256, 56, true},
    {GgmlType::bf16, "bf16", 1, 2, false},
    {GgmlType::tq1_0, "tq1_0", 256, 54, true},
    {GgmlType::tq2_0, "tq2_0", 256, 66, true},
    {GgmlType::mxfp4, "mxfp4", 32, 17, true},    // E8M0 scale byte, 16 B E2M1 nibbles
    {GgmlType::nvfp4, "nvfp4", 64, 36, true},    // 4 UE4M3 sub-block scales, 32 B E2M1 nibbles
    {GgmlType::q1_0, "q1_0", 128, 18, true},     // f16 d, 16 B sign bits
    {GgmlType::q2_0, "q2_0", 64, 18, true},      // f16 d, 16 B 2-bit quants
}};
}  // namespace detail

// The table entry of a type id, or nullptr for ids that are not (or no longer) ggml types.
constexpr const GgmlTypeInfo* find_ggml_type(std::uint32_t id) noexcept {
  for (const GgmlTypeInfo& t : detail::kGgmlTypes) {
    if (static_cast<std::uint32_t>(t.type) == id) return &t;
  }
  return nullptr;
}

// Every type of the table, in id order.
constexpr std::span<const GgmlTypeInfo> ggml_types() noexcept { return detail::kGgmlTypes; }

// True for the ids ggml once used and has removed (see GgmlType).
constexpr bool is_removed_ggml_type(std::uint32_t id) noexcept {
  return id == 4 || id == 5 || (id >= 31 && id <= 33) || (id >= 36 && id <= 38);
}

constexpr const GgmlTypeInfo& ggml_type_info(GgmlType t) noexcept {
  // Every enumerator is in the table (checked below), so this never falls through.
  for (const GgmlTypeInfo& info : detail::kGgmlTypes) {
    if (info.type == t) return info;
  }
  return detail::kGgmlTypes[0];
}

constexpr std::string_view to_string(GgmlType t) noexcept { return ggml_type_info(t).name; }

namespace detail {
constexpr bool ggml_table_is_sorted_and_sane() noexcept {
  for (std::size_t i = 0; i < kGgmlTypes.size(); ++i) {
    const GgmlTypeInfo& t = kGgmlTypes[i];
    if (t.block_elements == 0 || t.block_bytes == 0) return false;
    if (i > 0 && static_cast<std::uint32_t>(kGgmlTypes[i - 1].type) >= static_cast<std::uint32_t>(t.type)) return false;
    if (is_removed_ggml_type(static_cast<std::uint32_t>(t.type))) return false;
  }
  return true;
}
static_assert(ggml_table_is_sorted_and_sane(), "kGgmlTypes: ids ascending, no removed ids, non-zero blocks");
}  // namespace detail

}  // namespace moe::io
