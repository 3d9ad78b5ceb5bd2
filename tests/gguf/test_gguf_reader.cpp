// Tests for GgufFile: the ggml type table, typed metadata lookups and their errors, tensor views
// into the bytes, and each validation rule on small hand-made files (the committed corpus in
// test_gguf_corpus.cpp covers them again through files made by an independent Python writer).
#include "gguf_test_util.hpp"

#include <moe/io/gguf.hpp>
#include <moe/io/gguf_types.hpp>
#include <moe/io/gguf_writer.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

using moe::ErrorCode;
using moe::io::GgmlType;
using moe::io::GgufArray;
using moe::io::GgufFile;
using moe::io::GgufValueType;
using moe::io::GgufWriter;
using moe::test::Bytes;
using moe::test::OwnedGguf;
using moe::test::parse_invalid;
using moe::test::require_gguf_error;

TEST_CASE("ggml type table: ids, names and block geometry of ggml-common.h", "[gguf][types]") {
  using moe::io::find_ggml_type;
  struct Expected {
    std::uint32_t id;
    const char* name;
    std::uint32_t block, bytes;
  };
  // Independent of the table: the block_* struct sizes of ggml-common.h worked out by hand.
  const std::vector<Expected> expected{
      {0, "f32", 1, 4},        {1, "f16", 1, 2},        {2, "q4_0", 32, 2 + 16},    {3, "q4_1", 32, 4 + 16},
      {6, "q5_0", 32, 2 + 4 + 16}, {7, "q5_1", 32, 4 + 4 + 16}, {8, "q8_0", 32, 2 + 32}, {9, "q8_1", 32, 4 + 32},
      {10, "q2_K", 256, 16 + 64 + 4}, {11, "q3_K", 256, 32 + 64 + 12 + 2}, {12, "q4_K", 256, 4 + 12 + 128},
      {13, "q5_K", 256, 4 + 12 + 32 + 128}, {14, "q6_K", 256, 128 + 64 + 16 + 2}, {15, "q8_K", 256, 4 + 256 + 32},
      {16, "iq2_xxs", 256, 2 + 64}, {17, "iq2_xs", 256, 2 + 64 + 8}, {18, "iq3_xxs", 256, 2 + 96},
      {19, "iq1_s", 256, 2 + 32 + 16}, {20, "iq4_nl", 32, 2 + 16}, {21, "iq3_s", 256, 2 + 64 + 8 + 32 + 4},
      {22, "iq2_s", 256, 2 + 64 + 8 + 8}, {23, "iq4_xs", 256, 2 + 2 + 4 + 128}, {24, "i8", 1, 1},
      {25, "i16", 1, 2}, {26, "i32", 1, 4}, {27, "i64", 1, 8}, {28, "f64", 1, 8}, {29, "iq1_m", 256, 32 + 16 + 8},
      {30, "bf16", 1, 2}, {34, "tq1_0", 256, 48 + 4 + 2}, {35, "tq2_0", 256, 64 + 2}, {39, "mxfp4", 32, 1 + 16},
      {40, "nvfp4", 64, 4 + 32}, {41, "q1_0", 128, 2 + 16}, {42, "q2_0", 64, 2 + 16},
  };
  REQUIRE(moe::io::ggml_types().size() == expected.size());
  for (const Expected& e : expected) {
    INFO(e.name);
    const auto* t = find_ggml_type(e.id);
    REQUIRE(t != nullptr);
    CHECK(t->name == e.name);
    CHECK(t->block_elements == e.block);
    CHECK(t->block_bytes == e.bytes);
    CHECK(to_string(t->type) == e.name);
  }
  for (std::uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u}) {
    CHECK(find_ggml_type(removed) == nullptr);
    CHECK(moe::io::is_removed_ggml_type(removed));
  }
  CHECK(find_ggml_type(43) == nullptr);
  CHECK_FALSE(moe::io::is_removed_ggml_type(43));
}

namespace {

// A writer-made file holding one value of every type and two tensors.
std::vector<std::byte> sample_file(std::vector<float>& f32_data, std::vector<std::byte>& q8_data) {
  GgufWriter w;
  w.set("general.architecture", std::string("qwen3moe"))
      .set("a.u8", std::uint8_t{200})
      .set("a.i8", std::int8_t{-100})
      .set("a.u16", std::uint16_t{60000})
      .set("a.i16", std::int16_t{-30000})
      .set("a.u32", std::uint32_t{4000000000u})
      .set("a.i32", std::int32_t{-2000000000})
      .set("a.u64", std::uint64_t{1} << 40)
      .set("a.i64", std::int64_t{-5})
      .set("a.f32", 0.25f)
      .set("a.f64", 1e300)
      .set("a.bool", true)
      .set("a.tokens", std::vector<std::string>{"<s>", "", "hi"})
      .set("a.scores", std::vector<float>{-1.0f, 0.5f});
  f32_data = {1, 2, 3, 4, 5, 6};
  q8_data.assign(2 * 34, std::byte{7});
  w.add_tensor("w.f32", GgmlType::f32, {2, 3}, std::span<const std::byte>(reinterpret_cast<const std::byte*>(f32_data.data()), 24));
  w.add_tensor("w.q8", GgmlType::q8_0, {2, 32}, q8_data);
  return w.to_bytes();
}

}  // namespace

TEST_CASE("GgufFile: typed metadata lookups", "[gguf][reader]") {
  std::vector<float> f32_data;
  std::vector<std::byte> q8_data;
  const OwnedGguf g(sample_file(f32_data, q8_data));
  CHECK(g->version() == 3);
  CHECK(g->alignment() == 32);
  CHECK(g->metadata_count() == 14);
  CHECK(g->get<std::string>("general.architecture") == "qwen3moe");
  CHECK(g->get<std::string_view>("general.architecture") == "qwen3moe");
  CHECK(g->get<std::uint8_t>("a.u8") == 200);
  CHECK(g->get<std::int8_t>("a.i8") == -100);
  CHECK(g->get<std::uint16_t>("a.u16") == 60000);
  CHECK(g->get<std::int16_t>("a.i16") == -30000);
  CHECK(g->get<std::uint32_t>("a.u32") == 4000000000u);
  CHECK(g->get<std::int32_t>("a.i32") == -2000000000);
  CHECK(g->get<std::uint64_t>("a.u64") == (std::uint64_t{1} << 40));
  CHECK(g->get<std::int64_t>("a.i64") == -5);
  CHECK(g->get<float>("a.f32") == 0.25f);
  CHECK(g->get<double>("a.f64") == 1e300);
  CHECK(g->get<bool>("a.bool"));
  CHECK(g->get<std::vector<std::string>>("a.tokens") == std::vector<std::string>{"<s>", "", "hi"});
  CHECK(g->get<std::vector<float>>("a.scores") == std::vector<float>{-1.0f, 0.5f});
  const GgufArray tokens = g->get<GgufArray>("a.tokens");
  CHECK(tokens.element_type() == GgufValueType::string);
  REQUIRE(tokens.size() == 3);
  CHECK(tokens[2].get<std::string_view>() == "hi");
  CHECK(g->metadata_entry(0).key == "general.architecture");
  CHECK(g->contains("a.bool"));
  CHECK_FALSE(g->contains("a.boo"));

  SECTION("optional lookups: absent is nullopt, the wrong type is still an error") {
    CHECK_FALSE(g->get_optional<std::uint32_t>("qwen3moe.expert_count").has_value());
    CHECK(g->get_optional<std::uint32_t>("a.u32") == 4000000000u);
    require_gguf_error([&] { (void)g->get_optional<std::uint64_t>("a.u32"); }, ErrorCode::kConfig,
                       {"mem.gguf", "\"a.u32\"", "has type u32 (4000000000), expected u64"});
  }
  SECTION("missing keys and wrong types name the file, the key and both types") {
    require_gguf_error([&] { (void)g->get<std::uint32_t>("qwen3moe.block_count"); }, ErrorCode::kConfig,
                       {"mem.gguf", "metadata key \"qwen3moe.block_count\" not found"});
    require_gguf_error([&] { (void)g->get<float>("a.f64"); }, ErrorCode::kConfig,
                       {"\"a.f64\"", "has type f64", "expected f32"});
    require_gguf_error([&] { (void)g->get<std::string>("a.u8"); }, ErrorCode::kConfig, {"has type u8 (200), expected string"});
    require_gguf_error([&] { (void)g->get<std::vector<std::int32_t>>("a.scores"); }, ErrorCode::kConfig,
                       {"has type array of f32 (array of 2 f32), expected array of i32"});
    require_gguf_error([&] { (void)g->get<std::vector<float>>("a.f32"); }, ErrorCode::kConfig,
                       {"has type f32 (0.25), expected array of f32"});
  }
  SECTION("get_integer accepts any integer type whose value fits") {
    CHECK(g->get_integer<std::uint64_t>("a.u32") == 4000000000u);
    CHECK(g->get_integer<std::int64_t>("a.u8") == 200);
    CHECK(g->get_integer<int>("a.i64") == -5);
    CHECK(g->get_integer<std::int16_t>("a.i16") == -30000);
    CHECK(g->get_integer_optional<std::uint32_t>("absent") == std::nullopt);
    require_gguf_error([&] { (void)g->get_integer<std::uint32_t>("a.i64"); }, ErrorCode::kConfig,
                       {"\"a.i64\" = -5 (i64) is out of the range 0..4294967295"});
    require_gguf_error([&] { (void)g->get_integer<std::int32_t>("a.u32"); }, ErrorCode::kConfig,
                       {"= 4000000000 (u32) is out of the range -2147483648..2147483647"});
    require_gguf_error([&] { (void)g->get_integer<std::uint8_t>("a.u16"); }, ErrorCode::kConfig, {"out of the range 0..255"});
    require_gguf_error([&] { (void)g->get_integer<int>("a.f32"); }, ErrorCode::kConfig,
                       {"has type f32 (0.25), expected an integer"});
  }
}

TEST_CASE("GgufFile: get_integer at the edges of the integer types", "[gguf][reader]") {
  GgufWriter w;
  w.set("min64", std::numeric_limits<std::int64_t>::min()).set("max64", std::numeric_limits<std::uint64_t>::max());
  w.set("min8", std::int8_t{-128});
  const OwnedGguf g(w.to_bytes());
  CHECK(g->get_integer<std::int64_t>("min64") == std::numeric_limits<std::int64_t>::min());
  CHECK(g->get_integer<std::uint64_t>("max64") == std::numeric_limits<std::uint64_t>::max());
  CHECK(g->get_integer<std::int8_t>("min8") == -128);
  require_gguf_error([&] { (void)g->get_integer<std::int64_t>("max64"); }, ErrorCode::kConfig, {"out of the range"});
  require_gguf_error([&] { (void)g->get_integer<std::int32_t>("min64"); }, ErrorCode::kConfig, {"out of the range"});
}

TEST_CASE("GgufFile: tensors are views into the bytes with ggml and outermost-first shapes", "[gguf][reader]") {
  std::vector<float> f32_data;
  std::vector<std::byte> q8_data;
  const OwnedGguf g(sample_file(f32_data, q8_data));
  REQUIRE(g->tensor_count() == 2);
  const auto t = g->get_tensor("w.f32");
  CHECK(t.name == "w.f32");
  CHECK(t.type == GgmlType::f32);
  CHECK(t.n_dims == 2);
  CHECK(t.ne[0] == 3);
  CHECK(t.ne[1] == 2);
  CHECK(t.shape() == std::vector<moe::index_t>{2, 3});
  CHECK(t.element_count == 6);
  CHECK(t.rows() == 2);
  CHECK(t.row_bytes() == 12);
  REQUIRE(t.bytes.size() == 24);
  CHECK(t.bytes.data() >= g.bytes.data());
  CHECK(t.bytes.data() + t.bytes.size() <= g.bytes.data() + g.bytes.size());  // in place, no copy
  CHECK(t.file_offset % 32 == 0);
  CHECK(t.file_offset == g->data_offset() + t.offset);
  CHECK(std::memcmp(t.bytes.data(), f32_data.data(), 24) == 0);
  const auto q = g->get_tensor("w.q8");
  CHECK(q.type_info->name == "q8_0");
  CHECK(q.shape() == std::vector<moe::index_t>{2, 32});
  CHECK(q.bytes.size() == 68);
  CHECK(q.offset == 32);  // 24 bytes padded to 32
  CHECK(q.bytes[67] == std::byte{7});
  CHECK_FALSE(g->find_tensor("w.q").has_value());
  require_gguf_error([&] { (void)g->get_tensor("w.absent"); }, ErrorCode::kMissingTensor,
                     {"tensor \"w.absent\" not found in mem.gguf"});
  std::size_t n = 0;
  for (const auto& ti : g->tensors()) CHECK(ti.name == (n++ == 0 ? "w.f32" : "w.q8"));
  CHECK(n == 2);
}

TEST_CASE("GgufFile::open maps a file and keeps the views valid after moves", "[gguf][reader]") {
  std::vector<float> f32_data;
  std::vector<std::byte> q8_data;
  const std::vector<std::byte> bytes = sample_file(f32_data, q8_data);
  const auto path = std::filesystem::temp_directory_path() / "moe_test_gguf_open.gguf";
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  GgufFile a = GgufFile::open(path);
  const GgufFile b = std::move(a);
  CHECK(b.mapping().size() == bytes.size());
  CHECK(b.get<std::string_view>("general.architecture") == "qwen3moe");
  CHECK(std::memcmp(b.get_tensor("w.f32").bytes.data(), f32_data.data(), 24) == 0);
  std::filesystem::remove(path);
  require_gguf_error([&] { (void)GgufFile::open(path); }, ErrorCode::kIo, {"moe_test_gguf_open.gguf", "does not exist"});
}

TEST_CASE("GgufFile: hand-made edge cases that are valid", "[gguf][reader]") {
  SECTION("version 2 has the same layout") {
    Bytes f;
    f.header(2, 0, 1).str("general.architecture").u32(8).str("llama");
    const OwnedGguf g(f.b);
    CHECK(g->version() == 2);
    CHECK(g->get<std::string>("general.architecture") == "llama");
    CHECK(g->data_offset() == f.b.size());  // no tensors: the file may end without padding
  }
  SECTION("arrays of arrays, each inner array with its own element type") {
    Bytes f;
    f.header(3, 0, 1).str("nested").u32(9).u32(9).u64(2);
    f.u32(4).u64(2).u32(7).u32(8);      // [u32 7, 8]
    f.u32(8).u64(1).str("x");           // [string "x"]
    const OwnedGguf g(f.b);
    const auto outer = g->get<std::vector<GgufArray>>("nested");
    REQUIRE(outer.size() == 2);
    CHECK(outer[0].to_vector<std::uint32_t>() == std::vector<std::uint32_t>{7, 8});
    CHECK(outer[1].to_vector<std::string>() == std::vector<std::string>{"x"});
    CHECK(g->value("nested").describe() == "array of 2 array");
  }
  SECTION("alignment 1 packs tensors; a tensor may end exactly at the end of the file") {
    Bytes f;
    f.header(3, 2, 1).str("general.alignment").u32(4).u32(1);
    f.str("a").u32(1).u64(3).u32(24).u64(0);   // i8 [3] at 0
    f.str("b").u32(1).u64(2).u32(24).u64(3);   // i8 [2] at 3
    f.raw("\x01\x02\x03\x04\x05");
    const OwnedGguf g(f.b);
    CHECK(g->alignment() == 1);
    CHECK(g->get_tensor("b").bytes[1] == std::byte{5});
  }
}

TEST_CASE("GgufFile: each validation rule, with the values seen in the message", "[gguf][reader]") {
  SECTION("magic, version and endianness") {
    require_gguf_error([] { parse_invalid({}); }, ErrorCode::kFormat, {"mem.gguf", "0 bytes, too short for the GGUF magic"});
    Bytes bad;
    bad.raw("GGJT").u32(3).u64(0).u64(0);
    require_gguf_error([&] { parse_invalid(bad.b); }, ErrorCode::kFormat, {"magic bytes 47 47 4a 54"});
    for (std::uint32_t v : {1u, 4u, 0x03000000u, 0u, 0x12345678u}) {
      Bytes f;
      f.header(v, 0, 0);
      const ErrorCode want = v == 0 || v == 0x12345678u ? ErrorCode::kFormat : ErrorCode::kUnsupported;
      const std::string part = v == 1 ? "version 1" : v == 4 ? "version 4 is newer" : v == 0x03000000u ? "big-endian" : "invalid GGUF version";
      require_gguf_error([&] { parse_invalid(f.b); }, want, {part});
    }
  }
  SECTION("counts are bounded by the bytes that remain before anything is reserved") {
    Bytes f;
    f.header(3, 0, 3).str("k").u32(0).u8(1);  // claims 3 entries, holds 1 (14 bytes)
    require_gguf_error([&] { parse_invalid(f.b); }, ErrorCode::kFormat,
                       {"3 metadata entries and 0 tensor infos need at least 42 bytes", "only 14 bytes follow the header"});
    Bytes t;
    t.header(3, std::uint64_t{1} << 20, 0).zeros(64);
    require_gguf_error([&] { parse_invalid(t.b); }, ErrorCode::kFormat, {"need at least 26214400 bytes"});
    Bytes over;
    over.header(3, (std::uint64_t{1} << 20) + 1, 0);
    require_gguf_error([&] { parse_invalid(over.b); }, ErrorCode::kFormat, {"tensor count 1048577 exceeds the limit of 1048576"});
  }
  SECTION("metadata values") {
    Bytes f;
    f.header(3, 0, 1).str("a").u32(5).raw("\x01\x02");  // i32 cut short
    require_gguf_error([&] { parse_invalid(f.b); }, ErrorCode::kFormat,
                       {"metadata key \"a\" (entry #0)", "truncated: i32 at offset 37 needs 4 bytes, 2 remain"});
    Bytes b;
    b.header(3, 0, 1).str("flag").u32(7).u8(0xff);
    require_gguf_error([&] { parse_invalid(b.b); }, ErrorCode::kFormat, {"\"flag\"", "bool value 0xff"});
    Bytes d;
    d.header(3, 0, 2).str("k").u32(0).u8(1).str("k").u32(0).u8(2);
    require_gguf_error([&] { parse_invalid(d.b); }, ErrorCode::kFormat, {"duplicate metadata key \"k\" (entries #0 and #1)"});
    Bytes s;
    s.header(3, 0, 1).str("s").u32(8).u64(moe::io::gguf_limits::kMaxStringBytes + 1).zeros(4);
    require_gguf_error([&] { parse_invalid(s.b); }, ErrorCode::kFormat, {"string value length 16777217 exceeds the limit"});
    Bytes deep;
    deep.header(3, 0, 1).str("d").u32(9);
    for (int i = 0; i < 8; ++i) deep.u32(9).u64(1);
    deep.u32(0).u64(1).u8(1);  // 9 levels: the innermost is an array of u8
    require_gguf_error([&] { parse_invalid(deep.b); }, ErrorCode::kFormat, {"arrays nested 9 deep"});
  }
  SECTION("alignment") {
    for (std::uint32_t a : {0u, 3u, 96u, 1u << 21}) {
      Bytes f;
      f.header(3, 0, 1).str("general.alignment").u32(4).u32(a);
      require_gguf_error([&] { parse_invalid(f.b); }, ErrorCode::kFormat,
                         {fmt::format("general.alignment {} is not a power of two between 1 and 1048576", a)});
    }
    Bytes t;
    t.header(3, 0, 1).str("general.alignment").u32(5).u32(32);
    require_gguf_error([&] { parse_invalid(t.b); }, ErrorCode::kFormat, {"must be a u32, found i32 32"});
  }
  SECTION("tensor infos") {
    auto one = [](std::uint32_t n_dims, std::vector<std::uint64_t> ne, std::uint32_t type, std::uint64_t offset,
                  std::size_t data = 64) {
      Bytes f;
      f.header(3, 1, 0).str("blk.0.w").u32(n_dims);
      for (auto e : ne) f.u64(e);
      f.u32(type).u64(offset).pad_to(32).zeros(data);
      return f.b;
    };
    require_gguf_error([&] { parse_invalid(one(5, {1, 1, 1, 1, 1}, 0, 0)); }, ErrorCode::kFormat,
                       {"tensor \"blk.0.w\" (#0): n_dims 5 is outside 0..4"});
    {
      const OwnedGguf scalar(one(0, {}, 0, 0));  // n_dims 0: a scalar, as ggml reads it
      const auto t = scalar->get_tensor("blk.0.w");
      CHECK(t.n_dims == 0);
      CHECK(t.shape().empty());
      CHECK(t.element_count == 1);
      CHECK(t.bytes.size() == 4);
    }
    require_gguf_error([&] { parse_invalid(one(2, {4, 0}, 0, 0)); }, ErrorCode::kFormat, {"ne[1] = 0 is outside"});
    require_gguf_error([&] { parse_invalid(one(1, {16}, 8, 0)); }, ErrorCode::kFormat,
                       {"ne[0] = 16 is not a multiple of the 32-element block of type q8_0 (ne = [16])"});
    require_gguf_error([&] { parse_invalid(one(1, {16}, 5, 0)); }, ErrorCode::kUnsupported, {"ggml type id 5", "removed"});
    require_gguf_error([&] { parse_invalid(one(1, {16}, 43, 0)); }, ErrorCode::kUnsupported, {"unknown ggml type id 43"});
    require_gguf_error([&] { parse_invalid(one(1, {16}, 0, 16)); }, ErrorCode::kFormat,
                       {"data offset 16 is not a multiple of the alignment 32"});
    require_gguf_error([&] { parse_invalid(one(1, {17}, 0, 0)); }, ErrorCode::kFormat,
                       {"data at offset 0 of 68 bytes (type f32, ne = [17]) runs past the end of the data section of 64 bytes"});
    require_gguf_error([&] { parse_invalid(one(1, {16}, 0, 32)); }, ErrorCode::kFormat, {"data at offset 32 of 64 bytes"});
    CHECK_NOTHROW(parse_invalid(one(1, {16}, 0, 0)));
    CHECK_NOTHROW(parse_invalid(one(4, {1, 2, 2, 4}, 0, 0)));  // 16 f32 in 4 dims
  }
  SECTION("overlap and duplicate names") {
    auto two = [](std::string_view n0, std::uint64_t off0, std::string_view n1, std::uint64_t off1) {
      Bytes f;
      f.header(3, 2, 0);
      f.str(n0).u32(1).u64(8).u32(0).u64(off0);  // f32 [8]: 32 bytes
      f.str(n1).u32(1).u64(8).u32(0).u64(off1);
      f.pad_to(32).zeros(64);
      return f.b;
    };
    CHECK_NOTHROW(parse_invalid(two("a", 32, "b", 0)));  // out of order is fine
    require_gguf_error([&] { parse_invalid(two("a", 0, "b", 0)); }, ErrorCode::kFormat,
                       {"tensor \"b\" (#1): data [0, 32) overlaps tensor \"a\" (#0) at [0, 32)"});
    require_gguf_error([&] { parse_invalid(two("a", 0, "a", 32)); }, ErrorCode::kFormat,
                       {"duplicate tensor name \"a\" (tensor infos #0 and #1)"});
  }
  SECTION("hostile strings are quoted, escaped and cut in messages") {
    Bytes f;
    const std::string name = "\x1b[31m" + std::string(200, 'n');
    f.header(3, 1, 0).str(name).u32(9);
    require_gguf_error([&] { parse_invalid(f.b); }, ErrorCode::kFormat,
                       {"tensor \"\\x1b[31mnnn", "... (205 bytes) (#0): n_dims 9 is outside 0..4"});
  }
}
