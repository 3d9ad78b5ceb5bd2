// Tests for MappedFile, read_json_file and SafetensorsFile: round trips of files written here,
// every validation rule on in-memory variants, and a byte-mutation sweep that must never crash.
#include "io_test_util.hpp"
#include "safetensors_writer.hpp"

#include <moe/io/json_file.hpp>
#include <moe/io/mapped_file.hpp>
#include <moe/io/safetensors.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

using moe::Error;
using moe::ErrorCode;
using moe::index_t;
using moe::io::SafetensorsFile;
using moe::test::make_tensor;
using moe::test::RawTensor;
using moe::test::require_error;
using moe::test::safetensors_bytes;
using Catch::Matchers::Contains;

namespace {

SafetensorsFile parse(const std::vector<std::byte>& bytes, std::string name = "mem.safetensors") {
  return SafetensorsFile::parse(bytes, std::move(name));
}
// The result points into the bytes: a temporary would dangle. Only for calls expected to throw.
void parse_invalid(const std::vector<std::byte>& bytes) { (void)SafetensorsFile::parse(bytes, "mem.safetensors"); }
SafetensorsFile parse(std::vector<std::byte>&&, std::string = "") = delete;

// Bytes and the file parsed from them, kept together.
struct Owned {
  explicit Owned(std::vector<std::byte> b) : bytes(std::move(b)), file(parse(bytes)) {}
  const SafetensorsFile* operator->() const { return &file; }
  std::vector<std::byte> bytes;
  SafetensorsFile file;
};

// A file whose header text is exactly `header` (no padding) followed by `data_size` zero bytes.
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_size,
                                std::uint64_t declared_length = ~std::uint64_t{0}) {
  const std::uint64_t n = declared_length == ~std::uint64_t{0} ? header.size() : declared_length;
  std::vector<std::byte> out(8);
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xffu);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  out.resize(out.size() + data_size);
  return out;
}

std::vector<RawTensor> sample_tensors() {
  std::vector<float> f32{1.0f, -2.5f, 3.25f, 0.0f, 1e-3f, -7.0f};
  std::vector<moe::bf16> b16{moe::to_bf16(1.5f), moe::to_bf16(-0.25f), moe::to_bf16(100.0f), moe::to_bf16(3.0f)};
  std::vector<moe::f16> h16{moe::to_f16(0.5f), moe::to_f16(-65504.0f)};
  std::vector<std::int32_t> ids{7, -1, 123456};
  std::vector<float> scalar{42.0f};
  std::vector<float> none{};
  return {
      make_tensor("a.f32", "F32", {2, 3}, f32),
      make_tensor("b.bf16", "BF16", {2, 2}, b16),
      make_tensor("c.f16", "F16", {2}, h16),
      make_tensor("d.ids", "I32", {3}, ids),
      make_tensor("e.scalar", "F32", {}, scalar),
      make_tensor("f.empty", "F32", {0, 4}, none),
  };
}

}  // namespace

TEST_CASE("MappedFile maps whole files read-only", "[io][mmap]") {
  moe::test::TempDir dir;
  const std::vector<std::byte> content{std::byte{1}, std::byte{2}, std::byte{3}};
  moe::test::write_file(dir / "x.bin", content);
  auto f = moe::io::MappedFile::open(dir / "x.bin");
  REQUIRE(f.size() == 3);
  CHECK(f.bytes()[2] == std::byte{3});
  const auto* address = f.bytes().data();
  moe::io::MappedFile g = std::move(f);
  CHECK(g.bytes().data() == address);  // moves keep the mapping
  CHECK(f.bytes().empty());            // NOLINT(bugprone-use-after-move): moved-from is empty
  g.advise(moe::io::Access::random);
  g.advise(moe::io::Access::will_need, g.bytes().subspan(1, 1));

  moe::test::write_file(dir / "empty.bin", {});
  auto e = moe::io::MappedFile::open(dir / "empty.bin");
  CHECK(e.empty());
  CHECK(e.bytes().empty());

  require_error([&] { (void)moe::io::MappedFile::open(dir / "missing.bin"); }, ErrorCode::kIo,
                {"missing.bin", "does not exist"});
  require_error([&] { (void)moe::io::MappedFile::open(dir.path()); }, ErrorCode::kIo,
                {"not a regular file"});
}

TEST_CASE("read_json_file parses JSON and rejects bad files with positions", "[io][json]") {
  moe::test::TempDir dir;
  moe::test::write_text(dir / "ok.json", R"({"a": 1, "b": {"c": [1, 2]}})");
  const auto j = moe::io::read_json_file(dir / "ok.json");
  CHECK(j["b"]["c"][1] == 2);

  moe::test::write_text(dir / "bad.json", "{\n  \"a\": 1,\n  \"b\": tru }");
  require_error([&] { (void)moe::io::read_json_file(dir / "bad.json"); }, ErrorCode::kFormat,
                {"bad.json", "line 3"});
  moe::test::write_text(dir / "dup.json", R"({"a": {"x": 1, "y": 2, "x": 3}})");
  require_error([&] { (void)moe::io::read_json_file(dir / "dup.json"); }, ErrorCode::kFormat,
                {"dup.json", "duplicate key \"x\"", "object a"});
  moe::test::write_text(dir / "dup_top.json", R"({"a": 1, "a": 1})");
  require_error([&] { (void)moe::io::read_json_file(dir / "dup_top.json"); }, ErrorCode::kFormat,
                {"duplicate key \"a\"", "<top level>"});
  // Same key in different objects is fine.
  moe::test::write_text(dir / "nodup.json", R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]})");
  CHECK(moe::io::read_json_file(dir / "nodup.json")["c"][1]["x"] == 2);
  require_error([&] { (void)moe::io::read_json_file(dir / "missing.json"); }, ErrorCode::kIo,
                {"missing.json"});
  require_error([&] { (void)moe::io::read_json_file(dir.path()); }, ErrorCode::kIo, {"not a regular file"});
  require_error([] { (void)moe::io::parse_json_text("[1, 2", "inline"); }, ErrorCode::kFormat, {"inline"});
  require_error([] { (void)moe::io::parse_json_text("{\"a\": 1e999}", "big"); }, ErrorCode::kFormat, {"big"});
}

TEST_CASE("deeply nested JSON neither overflows the stack nor passes", "[io][json]") {
  const std::size_t depth = 100000;
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  // Refused while parsing, so nothing recursive (copy, compare, dump) ever sees such a document.
  require_error([&] { (void)moe::io::parse_json_text(nested, "deep"); }, ErrorCode::kFormat,
                {"deep", "nests deeper than 64 levels"});
  CHECK(moe::io::parse_json_text(nested, "deep", depth + 1).is_array());  // iterative parse and destruction
  std::string header = "{\"w\":" + nested + "}";
  while (header.size() % 8) header.push_back(' ');
  std::vector<std::byte> file(8);
  const std::uint64_t n = header.size();
  std::memcpy(file.data(), &n, 8);
  for (char c : header) file.push_back(static_cast<std::byte>(c));
  require_error([&] { parse_invalid(file); }, ErrorCode::kFormat, {"header", "nests deeper than 3 levels at w[]"});
  // Duplicate keys are found inside arrays of objects too, with the path shown.
  require_error([] { (void)moe::io::parse_json_text(R"({"a": [{"x": 1}, {"y": 1, "y": 2}]})", "arr"); },
                ErrorCode::kFormat, {"duplicate key \"y\"", "a[]"});
}

TEST_CASE("UTF-8 validation", "[io][utf8]") {
  using moe::io::detail::first_invalid_utf8;
  CHECK(first_invalid_utf8("plain ascii") == std::string_view::npos);
  CHECK(first_invalid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == std::string_view::npos);
  CHECK(first_invalid_utf8("ab\xff") == 2);             // never valid
  CHECK(first_invalid_utf8("a\xc0\xaf") == 1);          // overlong '/'
  CHECK(first_invalid_utf8("a\xed\xa0\x80") == 1);      // surrogate D800
  CHECK(first_invalid_utf8("\xf4\x90\x80\x80") == 0);   // > U+10FFFF
  CHECK(first_invalid_utf8("x\xe2\x82") == 1);          // truncated sequence
  CHECK(first_invalid_utf8("\xe2\x28\xa1") == 0);       // bad continuation
}

TEST_CASE("safetensors round trip of f32, bf16, f16, i32, scalar and empty tensors", "[io][safetensors]") {
  moe::test::TempDir dir;
  const auto tensors = sample_tensors();
  const auto bytes = safetensors_bytes(tensors, {{"format", "pt"}, {"note", "caf\xc3\xa9"}});
  moe::test::write_file(dir / "model.safetensors", bytes);

  for (int from_memory = 0; from_memory < 2; ++from_memory) {
    const SafetensorsFile f = from_memory ? parse(bytes) : SafetensorsFile::open(dir / "model.safetensors");
    INFO("from_memory " << from_memory);
    REQUIRE(f.tensors().size() == tensors.size());
    // tensors() is in data order; the writer wrote them in this order.
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& t = f.tensors()[i];
      CHECK(t.name == tensors[i].name);
      CHECK(t.dtype_name == tensors[i].dtype);
      CHECK(t.bytes.size() == tensors[i].data.size());
      CHECK(std::equal(t.bytes.begin(), t.bytes.end(), tensors[i].data.begin()));
      CHECK(t.file_offset == f.data_offset() + static_cast<std::size_t>(t.bytes.data() - f.tensors()[0].bytes.data()));
    }
    CHECK(f.data_offset() % 8 == 0);
    CHECK(f.metadata().at("format") == "pt");
    CHECK(f.metadata().at("note") == "caf\xc3\xa9");

    const auto a = f.view<float, 2>("a.f32", {2, 3});
    CHECK(a(0, 0) == 1.0f);
    CHECK(a(1, 2) == -7.0f);
    CHECK(a(0, 2) == 3.25f);
    // Zero copy: the view points into the file's bytes.
    CHECK(reinterpret_cast<const std::byte*>(a.data()) == f.get("a.f32").bytes.data());
    CHECK(reinterpret_cast<const std::byte*>(a.data()) >= f.bytes().data());
    CHECK(reinterpret_cast<const std::byte*>(a.data()) < f.bytes().data() + f.bytes().size());

    const auto b = f.view<moe::bf16, 2>("b.bf16", {2, 2});
    CHECK(moe::to_float(b(0, 1)) == -0.25f);
    CHECK(moe::to_float(b(1, 0)) == 100.0f);
    CHECK(f.get("b.bf16").dtype == moe::DType::bf16);
    const auto c = f.view_any<moe::f16, 1>("c.f16");
    CHECK(c.extent(0) == 2);
    CHECK(moe::to_float(c(1)) == -65504.0f);
    CHECK(f.get("c.f16").dtype == moe::DType::f16);
    const auto d = f.view<std::int32_t, 1>("d.ids", {3});
    CHECK(d(2) == 123456);
    CHECK(d(1) == -1);
    CHECK_FALSE(f.get("d.ids").dtype.has_value());
    CHECK(f.get("d.ids").element_size == 4);

    const auto& s = f.get("e.scalar");
    CHECK(s.shape.empty());
    CHECK(s.element_count() == 1);
    float sv = 0;
    std::memcpy(&sv, s.bytes.data(), 4);
    CHECK(sv == 42.0f);

    const auto e = f.view<float, 2>("f.empty", {0, 4});
    CHECK(e.size() == 0);
    CHECK(f.get("f.empty").bytes.empty());

    CHECK(f.find("nope") == nullptr);
    require_error([&] { (void)f.get("nope"); }, ErrorCode::kMissingTensor, {"nope"});
    require_error([&] { (void)f.view<float, 2>("a.f32", {3, 2}); }, ErrorCode::kShapeMismatch,
                  {"a.f32", "expected shape [3, 2], found [2, 3]"});
    require_error([&] { (void)f.view<float, 1>("a.f32", {6}); }, ErrorCode::kShapeMismatch,
                  {"expected shape [6], found [2, 3]"});
    require_error([&] { (void)f.view<moe::bf16, 2>("a.f32", {2, 3}); }, ErrorCode::kShapeMismatch,
                  {"a.f32", "expected dtype BF16, found F32"});
    require_error([&] { (void)f.view_any<float, 3>("a.f32"); }, ErrorCode::kShapeMismatch,
                  {"expected rank 3", "[2, 3]"});
  }
}

TEST_CASE("safetensors files with no tensors, zero-size tensors only, and many tensors", "[io][safetensors]") {
  CHECK(Owned(safetensors_bytes({}))->tensors().empty());
  CHECK(Owned(raw_file("{}", 0))->tensors().empty());
  CHECK(Owned(raw_file("{}      ", 0))->tensors().empty());  // trailing-space padding is allowed
  const auto only_meta = Owned(raw_file(R"({"__metadata__":{}})", 0));
  CHECK(only_meta->metadata().empty());
  // Several zero-size tensors at the same offset do not count as overlapping.
  const auto zeros = Owned(safetensors_bytes({make_tensor<float>("z1", "F32", {0}, {}),
                                              make_tensor<float>("x", "F32", {1}, {5.0f}),
                                              make_tensor<float>("z2", "F32", {3, 0}, {}),
                                              make_tensor<float>("z3", "F32", {0}, {})}));
  CHECK(zeros->tensors().size() == 4);
  CHECK(zeros->view<float, 1>("x", {1})(0) == 5.0f);

  std::vector<RawTensor> many;
  for (int i = 0; i < 300; ++i) {
    many.push_back(make_tensor<std::int32_t>(fmt::format("t{}", i), "I32", {1}, {i}));
  }
  const auto m = Owned(safetensors_bytes(many));
  REQUIRE(m->tensors().size() == 300);
  CHECK(m->view<std::int32_t, 1>("t299", {1})(0) == 299);
  // Every byte-sized dtype of the spec is accepted with its element size.
  for (const auto& [name, size] : std::vector<std::pair<std::string, std::size_t>>{
           {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
           {"I16", 2}, {"U16", 2}, {"F64", 8}, {"I64", 8}, {"U64", 8}, {"U32", 4}, {"C64", 8}}) {
    const auto f = Owned(safetensors_bytes({RawTensor{"t", name, {3}, std::vector<std::byte>(3 * size)}}));
    CHECK(f->get("t").element_size == size);
  }
}

TEST_CASE("safetensors validation rejects each kind of malformed header", "[io][safetensors]") {
  const std::string ok = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  CHECK(Owned(raw_file("{" + ok + "}", 8))->tensors().size() == 1);

  require_error([] { parse_invalid({}); }, ErrorCode::kFormat, {"mem.safetensors", "0 bytes"});
  require_error([] { parse_invalid(std::vector<std::byte>(5)); }, ErrorCode::kFormat, {"5 bytes"});
  require_error([] { parse_invalid(raw_file("", 0, 0)); }, ErrorCode::kFormat, {"header length 0"});
  require_error([] { parse_invalid(raw_file("{", 0, 1)); }, ErrorCode::kFormat, {"header length 1"});
  require_error([] { parse_invalid(raw_file("{}", 0, 100)); }, ErrorCode::kFormat,
                {"header length 100", "file size 10"});
  require_error([] { parse_invalid(raw_file("{}", 0, ~std::uint64_t{0} - 3)); }, ErrorCode::kFormat,
                {"18446744073709551612", "limit"});
  require_error([] { parse_invalid(raw_file("[]", 0)); }, ErrorCode::kFormat, {"does not start with '{'", "0x5b"});
  require_error([] { parse_invalid(raw_file("  {}", 0)); }, ErrorCode::kFormat, {"does not start with '{'"});
  require_error([] { parse_invalid(raw_file("{\"a\":", 0)); }, ErrorCode::kFormat, {"invalid JSON"});
  require_error([] { parse_invalid(raw_file("{}x", 0)); }, ErrorCode::kFormat, {"invalid JSON"});
  require_error([] { parse_invalid(raw_file("{\"\xff\":1}", 0)); }, ErrorCode::kFormat, {"UTF-8", "0xff"});
  require_error([&] { parse_invalid(raw_file("{" + ok + "," + ok + "}", 8)); }, ErrorCode::kFormat,
                {"duplicate key \"w\""});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","dtype":"F32","shape":[0],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"duplicate key \"dtype\"", "object w"});
  require_error([] { parse_invalid(raw_file(R"({"__metadata__":{"a":1}})", 0)); }, ErrorCode::kFormat,
                {"__metadata__", "\"a\"", "number"});
  require_error([] { parse_invalid(raw_file(R"({"__metadata__":["a"]})", 0)); }, ErrorCode::kFormat,
                {"__metadata__", "array"});
  require_error([] { parse_invalid(raw_file(R"({"":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"empty name"});
  require_error([] { parse_invalid(raw_file(R"({"w":[1]})", 0)); }, ErrorCode::kFormat, {"\"w\"", "must be an object"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"shape":[0],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"missing \"dtype\""});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":7,"shape":[0],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"dtype must be a string"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F33","shape":[0],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"unknown dtype \"F33\""});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1)); },
                ErrorCode::kUnsupported, {"F4"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"missing \"shape\""});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":3,"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"shape must be an array"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"shape", "-1"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,0]}})", 0)); },
                ErrorCode::kFormat, {"shape", "1.5"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8)); },
                ErrorCode::kFormat, {"shape", "string"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,8]}})", 8)); },
                ErrorCode::kFormat, {"overflows", "[1099511627776, 1099511627776]"});
  // 2^62 elements fit u64 but 4 bytes each do not.
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8)); },
                ErrorCode::kFormat, {"overflows"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2]}})", 8)); }, ErrorCode::kFormat,
                {"missing \"data_offsets\""});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8)); },
                ErrorCode::kFormat, {"data_offsets must be an array [begin, end]"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":{"a":1}}})", 8)); },
                ErrorCode::kFormat, {"data_offsets must be an array"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)); },
                ErrorCode::kFormat, {"\"w\"", "[8, 0]"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8)); },
                ErrorCode::kFormat, {"[0, 16]", "past the data buffer of 8 bytes"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)); },
                ErrorCode::kFormat, {"shape [3]", "needs 12 bytes", "span 8"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8)); },
                ErrorCode::kFormat, {"data_offsets", "-8"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)); },
                ErrorCode::kFormat, {"must begin at 0"});
  require_error([] { parse_invalid(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", 12)); },
                ErrorCode::kFormat, {"\"b\"", "gap of 4 bytes", "\"a\""});
  require_error([] { parse_invalid(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8)); },
                ErrorCode::kFormat, {"overlap"});
  // Two names for the same bytes (aliasing) is an overlap too.
  require_error([] { parse_invalid(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)); },
                ErrorCode::kFormat, {"overlap"});
  require_error([] { parse_invalid(raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12)); },
                ErrorCode::kFormat, {"4 trailing bytes"});
  require_error([] { parse_invalid(raw_file("{}", 3)); }, ErrorCode::kFormat, {"3 trailing bytes"});
}

TEST_CASE("views refuse data that is not aligned for the element type", "[io][safetensors]") {
  // U8[1] then F32[1]: the float starts at an odd offset (legal, but not usable in place).
  const auto f = Owned(safetensors_bytes({make_tensor<std::uint8_t>("pad", "U8", {1}, {9}),
                                          make_tensor<float>("w", "F32", {1}, {2.0f})}));
  CHECK(f->view<std::uint8_t, 1>("pad", {1})(0) == 9);
  require_error([&] { (void)f->view<float, 1>("w", {1}); }, ErrorCode::kUnsupported, {"w", "aligned"});
}

TEST_CASE("truncations and byte mutations of a valid file never crash", "[io][safetensors]") {
  const auto good = safetensors_bytes(sample_tensors(), {{"k", "v"}});
  // Every strict prefix is invalid (the data must end exactly at the end of the file).
  for (std::size_t n = 0; n < good.size(); ++n) {
    std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    CHECK_THROWS_AS(parse(cut), Error);
  }
  // Every single-byte change of the length field and the header either parses (e.g. a digit
  // changed inside a metadata string) or throws moe::Error; sanitizers catch any bad read.
  std::size_t accepted = 0, rejected = 0, outside = 0;
  const std::size_t header_end = parse(good).data_offset();
  for (std::size_t i = 0; i < header_end; ++i) {
    for (const unsigned v : {0x00u, 0x22u, 0x2cu, 0x30u, 0x39u, 0x5bu, 0x7bu, 0x7du, 0x80u, 0xffu}) {
      auto m = good;
      if (m[i] == static_cast<std::byte>(v)) continue;
      m[i] = static_cast<std::byte>(v);
      try {
        const auto f = parse(m);
        for (const auto& t : f.tensors()) {  // whatever parsed must lie inside the buffer
          if (t.bytes.data() < m.data() + f.data_offset() || t.bytes.data() + t.bytes.size() > m.data() + m.size()) {
            ++outside;
          }
        }
        ++accepted;
      } catch (const Error&) {
        ++rejected;
      }
    }
  }
  INFO("accepted " << accepted << " rejected " << rejected);
  CHECK(rejected > 0);
  CHECK(outside == 0);
}
