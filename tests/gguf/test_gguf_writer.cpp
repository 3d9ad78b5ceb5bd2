// Tests for GgufWriter: write then read back every metadata type and tensors of several ggml
// types and odd shapes, byte-exact layout of a small file, streaming producers, files on disk and
// the writer's own argument checks.
#include "gguf_test_util.hpp"

#include <moe/io/gguf.hpp>
#include <moe/io/gguf_writer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

using moe::ErrorCode;
using moe::io::GgmlType;
using moe::io::GgufArray;
using moe::io::GgufArrayValue;
using moe::io::GgufFile;
using moe::io::GgufValueType;
using moe::io::GgufWriter;
using moe::test::Bytes;
using moe::test::OwnedGguf;
using moe::test::require_gguf_error;

namespace {

std::vector<std::byte> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(n);
  for (auto& b : out) b = static_cast<std::byte>(rng() & 0xffu);
  return out;
}

}  // namespace

TEST_CASE("GgufWriter: round trip of every metadata type and tensors of several types", "[gguf][writer]") {
  const std::uint32_t alignment = GENERATE(32u, 64u, 1u, 4096u);
  INFO("alignment " << alignment);
  GgufWriter w(alignment);
  w.set("u8", std::uint8_t{255}).set("i8", std::int8_t{-128}).set("u16", std::uint16_t{65535});
  w.set("i16", std::int16_t{-32768}).set("u32", std::uint32_t{0xffffffffu}).set("i32", std::int32_t{-1});
  w.set("u64", std::numeric_limits<std::uint64_t>::max()).set("i64", std::numeric_limits<std::int64_t>::min());
  w.set("f32", -0.0f).set("f64", 3.141592653589793).set("bool.t", true).set("bool.f", false);
  w.set("str", std::string("caf\xc3\xa9")).set("str.empty", std::string_view{});
  w.set("arr.i16", std::vector<std::int16_t>{-1, 2, -3});
  w.set("arr.u64", std::vector<std::uint64_t>{0, std::numeric_limits<std::uint64_t>::max()});
  w.set("arr.f64", std::vector<double>{});
  w.set("arr.str", GgufArrayValue::of({"a", "", "\xc4\xa0world"}));
  GgufArrayValue bools(GgufValueType::boolean);
  bools.push(true);
  bools.push(false);
  w.set("arr.bool", bools);
  GgufArrayValue inner_u8 = GgufArrayValue::of(std::vector<std::uint8_t>{9, 8});
  GgufArrayValue inner_str = GgufArrayValue::of({"x"});
  GgufArrayValue nested(GgufValueType::array);
  nested.push(inner_u8);
  nested.push(inner_str);
  GgufArrayValue deeper(GgufValueType::array);
  deeper.push(nested);
  w.set("arr.nested", deeper);

  // Tensors: odd shapes, 1..4 dims, block types whose rows are whole blocks.
  struct T {
    const char* name;
    GgmlType type;
    std::vector<std::uint64_t> shape;
  };
  const std::vector<T> specs{
      {"f32.odd", GgmlType::f32, {3, 5}},          {"f16.vec", GgmlType::f16, {7}},
      {"bf16.4d", GgmlType::bf16, {2, 3, 1, 5}},   {"q8_0", GgmlType::q8_0, {3, 64}},
      {"q4_K", GgmlType::q4_k, {1, 256}},          {"q6_K", GgmlType::q6_k, {2, 512}},
      {"iq4_xs", GgmlType::iq4_xs, {1, 256}},      {"mxfp4.experts", GgmlType::mxfp4, {3, 2, 32}},
      {"i8.one", GgmlType::i8, {1}},               {"q4_0", GgmlType::q4_0, {5, 32}},
      {"f32.scalar", GgmlType::f32, {}},
  };
  std::vector<std::vector<std::byte>> data;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    data.push_back(random_bytes(GgufWriter::tensor_bytes(specs[i].type, specs[i].shape), static_cast<unsigned>(i)));
    w.add_tensor(specs[i].name, specs[i].type, specs[i].shape, data.back());
  }
  const OwnedGguf g(w.to_bytes());
  CHECK(g->version() == 3);
  CHECK(g->alignment() == alignment);
  CHECK(g->contains("general.alignment") == (alignment != 32));
  CHECK(g->get<std::uint8_t>("u8") == 255);
  CHECK(g->get<std::int8_t>("i8") == -128);
  CHECK(g->get<std::uint16_t>("u16") == 65535);
  CHECK(g->get<std::int16_t>("i16") == -32768);
  CHECK(g->get<std::uint32_t>("u32") == 0xffffffffu);
  CHECK(g->get<std::int32_t>("i32") == -1);
  CHECK(g->get<std::uint64_t>("u64") == std::numeric_limits<std::uint64_t>::max());
  CHECK(g->get<std::int64_t>("i64") == std::numeric_limits<std::int64_t>::min());
  CHECK(std::signbit(g->get<float>("f32")));
  CHECK(g->get<double>("f64") == 3.141592653589793);
  CHECK(g->get<bool>("bool.t"));
  CHECK_FALSE(g->get<bool>("bool.f"));
  CHECK(g->get<std::string>("str") == "caf\xc3\xa9");
  CHECK(g->get<std::string>("str.empty").empty());
  CHECK(g->get<std::vector<std::int16_t>>("arr.i16") == std::vector<std::int16_t>{-1, 2, -3});
  CHECK(g->get<std::vector<std::uint64_t>>("arr.u64") ==
        std::vector<std::uint64_t>{0, std::numeric_limits<std::uint64_t>::max()});
  CHECK(g->get<GgufArray>("arr.f64").element_type() == GgufValueType::f64);
  CHECK(g->get<std::vector<double>>("arr.f64").empty());
  CHECK(g->get<std::vector<std::string>>("arr.str") == std::vector<std::string>{"a", "", "\xc4\xa0world"});
  CHECK(g->get<std::vector<bool>>("arr.bool") == std::vector<bool>{true, false});
  const auto outer = g->get<std::vector<GgufArray>>("arr.nested");
  REQUIRE(outer.size() == 1);
  const auto mid = outer[0].to_vector<GgufArray>();
  REQUIRE(mid.size() == 2);
  CHECK(mid[0].to_vector<std::uint8_t>() == std::vector<std::uint8_t>{9, 8});
  CHECK(mid[1].to_vector<std::string_view>() == std::vector<std::string_view>{"x"});

  REQUIRE(g->tensor_count() == specs.size());
  std::uint64_t previous_end = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    INFO(specs[i].name);
    const auto t = g->tensor(i);
    CHECK(t.name == specs[i].name);
    CHECK(t.type == specs[i].type);
    CHECK(t.shape() == std::vector<moe::index_t>(specs[i].shape.begin(), specs[i].shape.end()));
    CHECK(t.offset % alignment == 0);
    CHECK(t.offset >= previous_end);
    CHECK(static_cast<std::size_t>(t.bytes.data() - g.bytes.data()) % alignment == 0);
    previous_end = t.offset + t.bytes.size();
    REQUIRE(t.bytes.size() == data[i].size());
    CHECK(std::equal(t.bytes.begin(), t.bytes.end(), data[i].begin()));
  }
}

TEST_CASE("GgufWriter: the exact bytes of a small file", "[gguf][writer]") {
  GgufWriter w;
  w.set("k", std::uint32_t{7});
  const std::vector<std::byte> data{std::byte{1}, std::byte{2}, std::byte{3}};
  w.add_tensor("t", GgmlType::i8, {3}, data);
  Bytes want;
  want.header(3, 1, 1).str("k").u32(4).u32(7);
  want.str("t").u32(1).u64(3).u32(24).u64(0).pad_to(32);
  want.raw("\x01\x02\x03").pad_to(32);
  CHECK(w.to_bytes() == want.b);
}

TEST_CASE("GgufWriter: producers stream tensor bytes while the file is written", "[gguf][writer]") {
  const auto path = std::filesystem::temp_directory_path() / "moe_test_gguf_writer.gguf";
  GgufWriter w;
  w.set("general.architecture", std::string("llama"));
  // 3 rows of q8_0 made one block at a time: the writer never sees the whole tensor at once.
  w.add_tensor("blocks", GgmlType::q8_0, std::vector<std::uint64_t>{3, 32},
               GgufWriter::Producer([](const GgufWriter::ByteSink& sink) {
                 for (int r = 0; r < 3; ++r) {
                   const std::vector<std::byte> block(34, static_cast<std::byte>(r + 1));
                   sink(block);
                 }
               }));
  w.write(path);
  CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
  const GgufFile g = GgufFile::open(path);
  const auto t = g.get_tensor("blocks");
  REQUIRE(t.bytes.size() == 102);
  CHECK(t.bytes[0] == std::byte{1});
  CHECK(t.bytes[34] == std::byte{2});
  CHECK(t.bytes[101] == std::byte{3});
  CHECK(g.bytes().size() % 32 == 0);
  std::filesystem::remove(path);

  SECTION("a producer that delivers the wrong number of bytes fails and leaves no file") {
    GgufWriter bad;
    bad.add_tensor("short", GgmlType::f32, std::vector<std::uint64_t>{4},
                   GgufWriter::Producer([](const GgufWriter::ByteSink& sink) { sink(std::vector<std::byte>(12)); }));
    require_gguf_error([&] { bad.write(path); }, ErrorCode::kInvalidArgument,
                       {"producer of tensor short delivered 12 bytes, expected 16"});
    CHECK_FALSE(std::filesystem::exists(path));
    CHECK_FALSE(std::filesystem::exists(path.string() + ".tmp"));
    GgufWriter over;
    over.add_tensor("long", GgmlType::f32, std::vector<std::uint64_t>{1},
                    GgufWriter::Producer([](const GgufWriter::ByteSink& sink) { sink(std::vector<std::byte>(8)); }));
    require_gguf_error([&] { (void)over.to_bytes(); }, ErrorCode::kInvalidArgument, {"delivered more than its 4 bytes"});
  }
  SECTION("an unwritable path is a kIo error naming it") {
    require_gguf_error([&] { w.write("/nonexistent-dir/x.gguf"); }, ErrorCode::kIo, {"/nonexistent-dir/x.gguf.tmp"});
  }
}

TEST_CASE("GgufWriter: argument checks", "[gguf][writer]") {
  GgufWriter w;
  w.set("a", 1.0f);
  const std::vector<std::byte> four(4);
  require_gguf_error([&] { w.set("a", 2.0f); }, ErrorCode::kInvalidArgument, {"duplicate metadata key a"});
  require_gguf_error([&] { w.set("", 2.0f); }, ErrorCode::kInvalidArgument, {"empty metadata key"});
  require_gguf_error([&] { w.set("general.alignment", std::uint32_t{64}); }, ErrorCode::kInvalidArgument,
                     {"general.alignment is set from the constructor"});
  require_gguf_error([] { GgufWriter bad(48); }, ErrorCode::kInvalidArgument, {"alignment 48 is not a power of two"});
  require_gguf_error([&] { w.add_tensor("t", GgmlType::f32, {2}, four); }, ErrorCode::kInvalidArgument,
                     {"tensor t of type f32 and shape [2] needs 8 bytes, got 4"});
  require_gguf_error([&] { w.add_tensor("t", GgmlType::q8_0, {16}, four); }, ErrorCode::kInvalidArgument,
                     {"innermost extent 16 is not a multiple of the 32-element block"});
  require_gguf_error([&] { w.add_tensor("t", GgmlType::f32, {1, 0}, four); }, ErrorCode::kInvalidArgument, {"extent 0"});
  require_gguf_error([&] { w.add_tensor("t", GgmlType::f32, {1, 1, 1, 1, 1}, four); }, ErrorCode::kInvalidArgument,
                     {"5 dimensions, expected 0..4"});
  require_gguf_error([&] { w.add_tensor("", GgmlType::f32, {1}, four); }, ErrorCode::kInvalidArgument, {"tensor name of 0 bytes"});
  w.add_tensor("t", GgmlType::f32, {1}, four);
  require_gguf_error([&] { w.add_tensor("t", GgmlType::f32, {1}, four); }, ErrorCode::kInvalidArgument, {"duplicate tensor name t"});
  GgufArrayValue a(GgufValueType::u32);
  require_gguf_error([&] { a.push(1.0f); }, ErrorCode::kInvalidArgument, {"cannot append a f32 to an array of u32"});
}
