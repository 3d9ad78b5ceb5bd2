// Runs the malformed-checkpoint corpus (tests/fixtures/malformed/<case>/ with expected.json):
// each case must fail to load with a moe::Error of the expected code whose message contains every
// expected substring. Loader "tensors" opens the folder with io::TensorStore; loader "model" calls
// load_model; loader "generator" calls Generator::from_folder (config, weights, tokenizer.json,
// tokenizer_config.json, generation_config.json); the loaders are three test cases, tagged
// "[tensors]", "[model]" and "[generator]".
#include <moe/io/json_file.hpp>
#include <moe/io/load_model.hpp>
#include <moe/io/tensor_store.hpp>
#include <moe/runtime/generate.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

std::optional<moe::ErrorCode> parse_code(const std::string& s) {
  using moe::ErrorCode;
  static const std::pair<const char*, ErrorCode> kCodes[] = {
      {"kInvalidArgument", ErrorCode::kInvalidArgument}, {"kIo", ErrorCode::kIo},
      {"kFormat", ErrorCode::kFormat},                   {"kConfig", ErrorCode::kConfig},
      {"kMissingTensor", ErrorCode::kMissingTensor},     {"kShapeMismatch", ErrorCode::kShapeMismatch},
      {"kUnsupported", ErrorCode::kUnsupported},         {"kTokenizer", ErrorCode::kTokenizer},
      {"kContextOverflow", ErrorCode::kContextOverflow}, {"kCancelled", ErrorCode::kCancelled},
      {"kDevice", ErrorCode::kDevice},                   {"kInternal", ErrorCode::kInternal},
      {"kOutOfMemory", ErrorCode::kOutOfMemory},
  };
  for (const auto& [name, code] : kCodes) {
    if (s == name) return code;
  }
  return std::nullopt;
}

struct Case {
  fs::path dir;
  std::string loader;
  moe::ErrorCode code;
  std::vector<std::string> contains;
};

// Every case folder, sorted; a folder without a well-formed expected.json fails the test.
std::vector<Case> load_cases() {
  const fs::path root = fs::path(MOE_FIXTURES_DIR) / "malformed";
  std::vector<fs::path> dirs;
  if (fs::is_directory(root)) {
    for (const auto& e : fs::directory_iterator(root)) {
      if (e.is_directory()) dirs.push_back(e.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  std::vector<Case> cases;
  for (const auto& d : dirs) {
    INFO("case " << d.string());
    const nlohmann::json expected = moe::io::read_json_file(d / "expected.json");
    REQUIRE(expected.is_object());
    REQUIRE(expected.contains("loader"));
    REQUIRE(expected.contains("code"));
    Case c;
    c.dir = d;
    c.loader = expected.at("loader").get<std::string>();
    const auto code = parse_code(expected.at("code").get<std::string>());
    REQUIRE(code.has_value());
    c.code = *code;
    for (const auto& s : expected.value("contains", nlohmann::json::array())) c.contains.push_back(s.get<std::string>());
    REQUIRE((c.loader == "tensors" || c.loader == "model" || c.loader == "generator"));
    cases.push_back(std::move(c));
  }
  return cases;
}

template <class Open>
void check_case(const Case& c, Open&& open) {
  INFO("case " << c.dir.filename().string());
  try {
    open(c.dir);
  } catch (const moe::Error& e) {
    INFO("message: " << e.what());
    CHECK(e.code() == c.code);
    for (const auto& s : c.contains) CHECK_THAT(e.what(), Catch::Matchers::Contains(s));
    return;
  } catch (const std::exception& e) {
    FAIL_CHECK("not a moe::Error: " << e.what());
    return;
  }
  FAIL_CHECK("loaded without an error");
}

}  // namespace

TEST_CASE("malformed corpus: safetensors and shard index cases", "[tensors]") {
  const auto cases = load_cases();
  int n = 0;
  for (const auto& c : cases) {
    if (c.loader != "tensors") continue;
    ++n;
    check_case(c, [](const fs::path& dir) { (void)moe::io::TensorStore::open_folder(dir); });
  }
  // The corpus is committed test data: losing it must not pass silently.
  CHECK(n >= 22);
}

TEST_CASE("malformed corpus: model (config-level) cases", "[model]") {
  const auto cases = load_cases();
  int n = 0;
  for (const auto& c : cases) {
    if (c.loader != "model") continue;
    ++n;
    check_case(c, [](const fs::path& dir) { (void)moe::load_model(dir); });
  }
  CHECK(n >= 33);
}

TEST_CASE("malformed corpus: whole-folder cases (tokenizer, generation config)", "[generator]") {
  const auto cases = load_cases();
  int n = 0;
  for (const auto& c : cases) {
    if (c.loader != "generator") continue;
    ++n;
    check_case(c, [](const fs::path& dir) { (void)moe::Generator::from_folder(dir, 16); });
  }
  CHECK(n >= 10);
}
