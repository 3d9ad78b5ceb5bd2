// Tests for the ggml type <-> DType mapping: both directions agree, and for every mapped type the
// GGUF table's block geometry equals the one the format traits of quant/ compute (two tables
// written from ggml-common.h independently).
#include "gguf_test_util.hpp"

#include <moe/core/dtype.hpp>
#include <moe/core/format.hpp>
#include <moe/io/gguf_dtype.hpp>
#include <moe/io/gguf_writer.hpp>

#include <catch2/catch.hpp>

using moe::DType;
using moe::ErrorCode;
using moe::io::GgmlType;

TEST_CASE("dtype_of / ggml_type_of: a round trip, with the block geometry of the format traits", "[gguf][dtype]") {
  std::size_t mapped = 0;
  for (const moe::io::GgmlTypeInfo& info : moe::io::ggml_types()) {
    const auto d = moe::io::dtype_of(info.type);
    if (!d) continue;
    INFO(info.name);
    ++mapped;
    CHECK(moe::io::ggml_type_of(*d) == info.type);
    CHECK(moe::format_block_elements(*d) == info.block_elements);
    CHECK(moe::format_row_bytes(*d, info.block_elements) == info.block_bytes);
    CHECK(moe::format_row_bytes(*d, 3 * info.block_elements) == 3 * info.block_bytes);
  }
  CHECK(mapped >= 17);  // f32, f16, bf16 and the 14 block formats of quant/
  for (DType d : moe::kAllDTypes) {
    if (const auto g = moe::io::ggml_type_of(d)) CHECK(moe::io::dtype_of(*g) == d);
  }
}

TEST_CASE("tensor_dtype: types without kernels are kUnsupported by name", "[gguf][dtype]") {
  moe::io::GgufWriter w;
  const std::vector<std::byte> q8(34), iq2(66);
  w.add_tensor("blk.0.ffn_up.weight", GgmlType::q8_0, {32}, q8);
  w.add_tensor("blk.0.ffn_gate.weight", GgmlType::iq2_xxs, {256}, iq2);
  const moe::test::OwnedGguf g(w.to_bytes(), "model.gguf");
  CHECK(moe::io::tensor_dtype(g->get_tensor("blk.0.ffn_up.weight"), g->name()) == DType::q8_0);
  moe::test::require_gguf_error([&] { (void)moe::io::tensor_dtype(g->get_tensor("blk.0.ffn_gate.weight"), g->name()); },
                                ErrorCode::kUnsupported,
                                {"model.gguf: tensor \"blk.0.ffn_gate.weight\": ggml type iq2_xxs (id 16) is not supported"});
}
