// The committed GGUF corpus (tests/fixtures/gguf, made by tools/make_malformed_gguf.py, an
// independent Python writer): every malformed file gives its typed error and message, every valid
// file reads back as its manifest says, and parsing any of them (or any truncation or byte
// mutation of them) never allocates more than the file's size at once.
#include "alloc_tracker.hpp"
#include "gguf_test_util.hpp"

#include <moe/io/gguf.hpp>
#include <moe/io/json_file.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

using moe::Error;
using moe::ErrorCode;
using moe::io::GgufArray;
using moe::io::GgufFile;
using moe::io::GgufValue;
using moe_test::MaxAllocationScope;

namespace {

const std::filesystem::path kCorpus = std::filesystem::path(MOE_FIXTURES_DIR) / "gguf";

std::vector<std::byte> read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in.good());
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::transform(chars.begin(), chars.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
  return out;
}

ErrorCode code_from_name(const std::string& s) {
  if (s == "kFormat") return ErrorCode::kFormat;
  if (s == "kUnsupported") return ErrorCode::kUnsupported;
  FAIL("unexpected code in the manifest: " << s);
  return ErrorCode::kInternal;
}

// The outcome of one parse: the error (if any) and the largest allocation made meanwhile.
struct Outcome {
  std::optional<ErrorCode> code;
  std::string message;
  std::size_t largest_allocation = 0;
  std::size_t file_size = 0;
  // Allocations may not exceed the file; on failure the message (a few hundred bytes at most:
  // quoted names are cut at 64 bytes) is formatted too, in buffers up to about twice its length.
  bool allocation_bounded() const {
    const std::size_t allowed = code ? std::max(file_size, 2 * message.size() + 64) : file_size;
    return largest_allocation <= allowed;
  }
};

// Parses `bytes`, then (when it is valid) reads every value and tensor of the result, checking
// that every view stays inside the bytes. Only moe::Error may escape the parser.
Outcome parse_and_walk(const std::vector<std::byte>& bytes, std::string name) {
  Outcome out;
  out.file_size = bytes.size();
  std::optional<GgufFile> file;
  {
    MaxAllocationScope scope;
    try {
      file.emplace(GgufFile::parse(bytes, std::move(name)));
    } catch (const Error& e) {
      out.code = e.code();
      out.message = e.what();
    }
    out.largest_allocation = scope.largest();
  }
  if (!file) return out;
  const std::byte* lo = bytes.data();
  const std::byte* hi = bytes.data() + bytes.size();
  auto inside = [&](const std::byte* p, std::size_t n) { return p >= lo && p + n <= hi; };
  for (std::size_t i = 0; i < file->metadata_count(); ++i) {
    const auto kv = file->metadata_entry(i);
    REQUIRE(inside(reinterpret_cast<const std::byte*>(kv.key.data()), kv.key.size()));
    REQUIRE(inside(kv.value.data(), kv.value.encoded_size()));
    REQUIRE(file->find(kv.key).has_value());
    (void)kv.value.describe();
    if (kv.value.type() == moe::io::GgufValueType::array) {
      std::size_t n = 0;
      for (const GgufValue v : kv.value.get<GgufArray>()) {
        REQUIRE(inside(v.data(), v.encoded_size()));
        (void)v.describe();
        ++n;
      }
      REQUIRE(n == kv.value.get<GgufArray>().size());
    }
  }
  for (const auto& t : file->tensors()) {
    REQUIRE(inside(t.bytes.data(), t.bytes.size()));
    REQUIRE(t.bytes.size() == t.element_count / t.type_info->block_elements * t.type_info->block_bytes);
    REQUIRE(file->find_tensor(t.name)->file_offset == t.file_offset);
  }
  return out;
}

// Compares a metadata value with its manifest entry {"type", "element_type"?, "value"}.
void check_value(const GgufValue& v, const nlohmann::json& want) {
  const std::string type = want.at("type").get<std::string>();
  if (type == "array") {
    REQUIRE(v.type_name() == "array of " + want.at("element_type").get<std::string>());
    const auto& items = want.at("value");
    const GgufArray a = v.get<GgufArray>();
    REQUIRE(a.size() == items.size());
    std::size_t i = 0;
    for (const GgufValue e : a) check_value(e, items[i++]);
    return;
  }
  REQUIRE(v.type_name() == type);
  const auto& value = want.at("value");
  if (type == "string") {
    CHECK(v.get<std::string>() == value.get<std::string>());
  } else if (type == "bool") {
    CHECK(v.get<bool>() == value.get<bool>());
  } else if (type == "f32") {
    CHECK(v.get<float>() == value.get<float>());
  } else if (type == "f64") {
    CHECK(v.get<double>() == value.get<double>());
  } else {
    const auto i = v.integer();
    REQUIRE(i.has_value());
    if (value.is_number_unsigned()) {
      CHECK_FALSE(i->negative);
      CHECK(i->magnitude == value.get<std::uint64_t>());
    } else {
      const auto s = value.get<std::int64_t>();
      CHECK(i->negative == (s < 0));
      CHECK(i->magnitude == (s < 0 ? static_cast<std::uint64_t>(-(s + 1)) + 1 : static_cast<std::uint64_t>(s)));
    }
  }
}

}  // namespace

TEST_CASE("MaxAllocationScope sees the allocations it is meant to bound", "[gguf][corpus]") {
  std::size_t largest = 0;
  {
    MaxAllocationScope scope;
    std::vector<std::byte> v;
    v.reserve(12345);
    largest = scope.largest();
  }
  CHECK(largest >= 12345);  // the replaced operator new is linked and records sizes
}

TEST_CASE("GGUF corpus: every malformed file gives its typed error, with bounded allocations", "[gguf][corpus]") {
  const auto manifest = moe::io::read_json_file(kCorpus / "malformed" / "manifest.json");
  const auto& cases = manifest.at("cases");
  REQUIRE(cases.size() >= 40);
  for (const auto& c : cases) {
    const std::string file = c.at("file").get<std::string>();
    INFO(file << ": " << c.at("description").get<std::string>());
    const std::vector<std::byte> bytes = read_bytes(kCorpus / "malformed" / file);
    CHECK(bytes.size() <= 4096);
    const Outcome o = parse_and_walk(bytes, "malformed/" + file);
    INFO(o.message);
    REQUIRE(o.code.has_value());
    CHECK(*o.code == code_from_name(c.at("code").get<std::string>()));
    CHECK_THAT(o.message, Catch::Matchers::Contains(c.at("message").get<std::string>()));
    CHECK_THAT(o.message, Catch::Matchers::Contains("malformed/" + file));
    INFO("largest allocation " << o.largest_allocation << " bytes, file " << bytes.size() << " bytes");
    CHECK(o.allocation_bounded());
    // Through the mapping too: the same code, the message naming the path.
    moe::test::require_gguf_error([&] { (void)GgufFile::open(kCorpus / "malformed" / file); }, *o.code,
                                  {c.at("message").get<std::string>(), (kCorpus / "malformed" / file).string()});
  }
}

TEST_CASE("GGUF corpus: every valid file reads back as its manifest says", "[gguf][corpus]") {
  const auto manifest = moe::io::read_json_file(kCorpus / "valid" / "manifest.json");
  REQUIRE(manifest.at("files").size() >= 5);
  for (const auto& m : manifest.at("files")) {
    const std::string file = m.at("file").get<std::string>();
    INFO(file << ": " << m.at("description").get<std::string>());
    const std::vector<std::byte> bytes = read_bytes(kCorpus / "valid" / file);
    const Outcome o = parse_and_walk(bytes, file);
    INFO(o.message);
    REQUIRE_FALSE(o.code.has_value());
    INFO("largest allocation " << o.largest_allocation << " bytes, file " << bytes.size() << " bytes");
    CHECK(o.allocation_bounded());
    const GgufFile g = GgufFile::parse(bytes, file);
    CHECK(g.version() == m.at("version").get<std::uint32_t>());
    CHECK(g.alignment() == m.at("alignment").get<std::uint32_t>());
    REQUIRE(g.metadata_count() == m.at("metadata").size());
    std::size_t i = 0;
    for (const auto& entry : m.at("metadata")) {
      const std::string key = entry.at("key").get<std::string>();
      INFO(key);
      CHECK(g.metadata_entry(i++).key == key);
      check_value(g.value(key), entry);
    }
    REQUIRE(g.tensor_count() == m.at("tensors").size());
    i = 0;
    for (const auto& want : m.at("tensors")) {
      const auto t = g.tensor(i++);
      INFO(t.name);
      CHECK(t.name == want.at("name").get<std::string>());
      CHECK(t.type_info->name == want.at("type").get<std::string>());
      CHECK(std::vector<std::uint64_t>(t.ne.begin(), t.ne.begin() + t.n_dims) == want.at("ne").get<std::vector<std::uint64_t>>());
      const auto shape = want.at("shape").get<std::vector<std::size_t>>();
      CHECK(t.shape() == shape);
      REQUIRE(t.bytes.size() == want.at("bytes").get<std::size_t>());
      std::uint64_t sum = 0;
      for (std::byte b : t.bytes) sum += std::to_integer<unsigned>(b);
      CHECK(sum == want.at("byte_sum").get<std::uint64_t>());
      CHECK(std::to_integer<unsigned>(t.bytes[0]) == want.at("first_byte").get<unsigned>());
    }
  }
}

TEST_CASE("GGUF corpus: truncations and byte mutations never crash and keep allocations bounded", "[gguf][corpus]") {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(kCorpus / "valid")) {
    if (e.path().extension() == ".gguf") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 5);
  files.push_back(kCorpus / "hf" / "written.gguf");  // another writer's layout
  std::mt19937 rng(20261202);
  std::size_t runs = 0, errors = 0;
  for (const auto& path : files) {
    INFO(path.filename().string());
    const std::vector<std::byte> original = read_bytes(path);
    auto check = [&](const std::vector<std::byte>& bytes) {
      const Outcome o = parse_and_walk(bytes, "mutated.gguf");
      INFO(o.message);
      ++runs;
      if (o.code) {
        ++errors;
        CHECK((*o.code == ErrorCode::kFormat || *o.code == ErrorCode::kUnsupported));
      }
      CHECK(o.allocation_bounded());
    };
    for (std::size_t n = 0; n < original.size(); ++n) {
      check(std::vector<std::byte>(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(n)));
    }
    // Random overwrites: one to four bytes set to random or boundary values (0, 0xff, 0x80).
    constexpr unsigned char kSpecial[] = {0x00, 0xff, 0x80, 0x7f, 0x01, 0x20};
    for (int k = 0; k < 1500; ++k) {
      std::vector<std::byte> bytes = original;
      const int n = 1 + static_cast<int>(rng() % 4);
      for (int j = 0; j < n && !bytes.empty(); ++j) {
        const std::size_t at = rng() % bytes.size();
        bytes[at] = static_cast<std::byte>(rng() % 2 ? kSpecial[rng() % sizeof(kSpecial)] : rng() & 0xffu);
      }
      check(bytes);
    }
  }
  CHECK(errors > runs / 2);  // the sweep mostly lands on broken files, so it exercises the checks
}

namespace {

std::uint64_t hf_u64(const nlohmann::json& v) {
  return v.is_string() ? std::stoull(v.get<std::string>()) : v.get<std::uint64_t>();
}

// Compares one of our values with @huggingface/gguf's reading of it (tools/make_gguf_hf_fixtures.mjs):
// `type` is the GGUF type code it reported; elements of nested arrays carry no code of their own
// there, so they are compared under our element type.
void check_hf_value(const GgufValue& v, int type, const nlohmann::json& value) {
  using moe::io::GgufValueType;
  REQUIRE(static_cast<int>(v.type()) == type);
  switch (v.type()) {
    case GgufValueType::string: CHECK(v.get<std::string>() == value.get<std::string>()); break;
    case GgufValueType::boolean: CHECK(v.get<bool>() == value.get<bool>()); break;
    case GgufValueType::f32: CHECK(static_cast<double>(v.get<float>()) == value.get<double>()); break;
    case GgufValueType::f64: CHECK(v.get<double>() == value.get<double>()); break;
    case GgufValueType::u64: CHECK(v.get<std::uint64_t>() == hf_u64(value)); break;
    case GgufValueType::i64: CHECK(v.get<std::int64_t>() == std::stoll(value.get<std::string>())); break;
    case GgufValueType::array: {
      const GgufArray a = v.get<GgufArray>();
      REQUIRE(a.size() == value.size());
      std::size_t i = 0;
      for (const GgufValue e : a) check_hf_value(e, static_cast<int>(a.element_type()), value[i++]);
      break;
    }
    default: {
      const auto i = v.integer();
      REQUIRE(i.has_value());
      const auto want = value.get<std::int64_t>();
      CHECK(i->negative == (want < 0));
      CHECK(i->magnitude == (want < 0 ? static_cast<std::uint64_t>(-(want + 1)) + 1 : static_cast<std::uint64_t>(want)));
    }
  }
}

}  // namespace

TEST_CASE("GGUF corpus: @huggingface/gguf reads the valid files as GgufFile does", "[gguf][corpus]") {
  const auto parsed = moe::io::read_json_file(kCorpus / "hf" / "parsed.json");
  INFO(parsed.at("parser").get<std::string>());
  REQUIRE(parsed.at("files").size() >= 5);
  for (const auto& f : parsed.at("files")) {
    const std::string file = f.at("file").get<std::string>();
    INFO(file);
    const std::vector<std::byte> bytes = read_bytes(kCorpus / "valid" / file);
    const GgufFile g = GgufFile::parse(bytes, file);
    CHECK(g.version() == f.at("version").get<std::uint32_t>());
    // A file without tensors has no data section to agree on (theirs is aligned past the end).
    if (g.tensor_count() != 0) CHECK(g.data_offset() == hf_u64(f.at("tensor_data_offset")));
    REQUIRE(g.metadata_count() == f.at("metadata").size());
    for (const auto& m : f.at("metadata")) {
      const std::string key = m.at("key").get<std::string>();
      INFO(key);
      const auto v = g.find(key);
      REQUIRE(v.has_value());
      if (m.contains("subType")) CHECK(static_cast<int>(*v->element_type()) == m.at("subType").get<int>());
      check_hf_value(*v, m.at("type").get<int>(), m.at("value"));
    }
    REQUIRE(g.tensor_count() == f.at("tensors").size());
    std::size_t i = 0;
    for (const auto& want : f.at("tensors")) {
      const auto t = g.tensor(i++);
      INFO(t.name);
      CHECK(t.name == want.at("name").get<std::string>());
      CHECK(t.n_dims == want.at("n_dims").get<std::uint32_t>());
      REQUIRE(want.at("ne").size() == t.n_dims);
      for (std::uint32_t d = 0; d < t.n_dims; ++d) CHECK(t.ne[d] == hf_u64(want.at("ne")[d]));
      CHECK(static_cast<int>(t.type) == want.at("type").get<int>());
      CHECK(t.offset == hf_u64(want.at("offset")));
    }
  }
}

TEST_CASE("GGUF corpus: a file written by @huggingface/gguf's serializer reads back", "[gguf][corpus]") {
  const std::vector<std::byte> theirs = read_bytes(kCorpus / "hf" / "written.gguf");
  const std::vector<std::byte> ours = read_bytes(kCorpus / "valid" / "every_type.gguf");
  const GgufFile w = GgufFile::parse(theirs, "hf/written.gguf");
  const GgufFile e = GgufFile::parse(ours, "every_type.gguf");
  CHECK(w.tensor_count() == 0);
  CHECK_THAT(w.get<std::string>("t.written_by"), Catch::Matchers::StartsWith("@huggingface/gguf"));
  // Every key of every_type.gguf but the two its serializer cannot write, with the same bytes.
  std::size_t same = 0;
  for (std::size_t i = 0; i < e.metadata_count(); ++i) {
    const auto kv = e.metadata_entry(i);
    if (kv.key == "t.array.nested" || kv.key == "t.array.u8") continue;
    INFO(kv.key);
    const auto v = w.find(kv.key);
    REQUIRE(v.has_value());
    REQUIRE(v->type() == kv.value.type());
    REQUIRE(v->encoded_size() == kv.value.encoded_size());
    CHECK(std::memcmp(v->data(), kv.value.data(), v->encoded_size()) == 0);
    ++same;
  }
  CHECK(same + 1 == w.metadata_count());
  CHECK(same == e.metadata_count() - 2);
}
