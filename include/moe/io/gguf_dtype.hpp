// Between ggml's tensor types (the GGUF table) and moe::DType (the formats the kernels run): a
// GGUF tensor of a type listed here is used in place, its bytes read as that DType's blocks (the
// block layouts in quant/ are byte-identical to ggml's); the other ggml types are reported as
// unsupported by name.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/io/gguf.hpp"
#include "moe/io/gguf_types.hpp"

#include <optional>
#include <string_view>

namespace moe::io {

// The DType a ggml type is run as, or nullopt for types moecpp has no kernels for.
constexpr std::optional<DType> dtype_of(GgmlType t) noexcept {
  switch (t) {
    case GgmlType::f32: return DType::f32;
    case GgmlType::f16: return DType::f16;
    case GgmlType::bf16: return DType::bf16;
    case GgmlType::q8_0: return DType::q8_0;
    case GgmlType::q4_0: return DType::q4_0;
    case GgmlType::q4_1: return DType::q4_1;
    case GgmlType::q5_0: return DType::q5_0;
    case GgmlType::q5_1: return DType::q5_1;
    case GgmlType::q2_k: return DType::q2_k;
    case GgmlType::q3_k: return DType::q3_k;
    case GgmlType::q4_k: return DType::q4_k;
    case GgmlType::q5_k: return DType::q5_k;
    case GgmlType::q6_k: return DType::q6_k;
    case GgmlType::q8_k: return DType::q8_k;
    case GgmlType::iq4_nl: return DType::iq4_nl;
    case GgmlType::iq4_xs: return DType::iq4_xs;
    case GgmlType::mxfp4: return DType::mxfp4;
    default: return std::nullopt;
  }
}

// The ggml type a DType is written as in a GGUF file, or nullopt for a format GGUF has no type
// for (the default case: formats added to DType later map only when listed here).
constexpr std::optional<GgmlType> ggml_type_of(DType d) noexcept {
  switch (d) {
    case DType::f32: return GgmlType::f32;
    case DType::bf16: return GgmlType::bf16;
    case DType::f16: return GgmlType::f16;
    case DType::q8_0: return GgmlType::q8_0;
    case DType::q4_0: return GgmlType::q4_0;
    case DType::q4_1: return GgmlType::q4_1;
    case DType::q5_0: return GgmlType::q5_0;
    case DType::q5_1: return GgmlType::q5_1;
    case DType::q2_k: return GgmlType::q2_k;
    case DType::q3_k: return GgmlType::q3_k;
    case DType::q4_k: return GgmlType::q4_k;
    case DType::q5_k: return GgmlType::q5_k;
    case DType::q6_k: return GgmlType::q6_k;
    case DType::q8_k: return GgmlType::q8_k;
    case DType::iq4_nl: return GgmlType::iq4_nl;
    case DType::iq4_xs: return GgmlType::iq4_xs;
    case DType::mxfp4: return GgmlType::mxfp4;
    default: return std::nullopt;
  }
}

// The DType of tensor `t` of `file`; Error(kUnsupported) naming the tensor, the file and the
// ggml type when moecpp has no kernels for it.
inline DType tensor_dtype(const GgufTensor& t, std::string_view file) {
  const auto d = dtype_of(t.type);
  if (!d) {
    fail(ErrorCode::kUnsupported, "{}: tensor {}: ggml type {} (id {}) is not supported (supported: f32, f16, bf16, "
         "q8_0, q4_0, q4_1, q5_0, q5_1, q2_K..q8_K, iq4_nl, iq4_xs, mxfp4)", file, detail::quote_gguf_string(t.name),
         t.type_info->name, static_cast<std::uint32_t>(t.type));
  }
  return *d;
}

}  // namespace moe::io
