// Runs the conformance check over every committed tokenizer fixture
// (tests/fixtures/tokenizers/<case>/ with tokenizer.json + expected.json from the Hugging Face
// tokenizers library): ids and decoded text must match exactly for every case.
#include "tokenizer_test_util.hpp"

#include "moe-conformance/tokenizer_case.hpp"

#include <moe/tokenizer/stream_decoder.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

namespace {

std::vector<std::filesystem::path> fixture_folders() {
  std::vector<std::filesystem::path> out;
  const std::filesystem::path root = std::filesystem::path(MOE_FIXTURES_DIR) / "tokenizers";
  if (!std::filesystem::is_directory(root)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(root))
    if (entry.is_directory() && std::filesystem::exists(entry.path() / "tokenizer.json") &&
        std::filesystem::exists(entry.path() / "expected.json"))
      out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("tokenizer fixtures from the tokenizers library match exactly", "[tokenizer][fixtures]") {
  const auto folders = fixture_folders();
  if (folders.empty()) {
    WARN("no tokenizer fixtures under " MOE_FIXTURES_DIR "/tokenizers yet; nothing to compare");
    return;
  }
  for (const auto& dir : folders) {
    const moe::conformance::CaseResult r = moe::conformance::check_tokenizer_case(dir);
    INFO(r.name << ": " << r.detail);
    CHECK(r.passed);
  }
}

TEST_CASE("check_tokenizer_case reports a mismatch", "[tokenizer][fixtures]") {
  const auto dir = std::filesystem::temp_directory_path() / "moe_tokenizer_case_mismatch";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << moe::test::byte_level_doc().dump();
  std::ofstream(dir / "expected.json")
      << moe::test::Json{{"cases", moe::test::Json::array({moe::test::Json{{"text", "the"}, {"ids", {116, 257}}, {"decoded", "the"}},
                                                          moe::test::Json{{"text", "the the"}, {"ids", {116, 257, 259}}, {"decoded", "the the"}}})}}
             .dump();
  const auto r = moe::conformance::check_tokenizer_case(dir);
  CHECK_FALSE(r.passed);
  CHECK(r.detail.find("case 1") != std::string::npos);
  CHECK(r.detail.find(">258") != std::string::npos);
  std::ofstream(dir / "expected.json") << moe::test::Json{{"cases", moe::test::Json::array({moe::test::Json{{"text", "the"}, {"ids", {116, 257}}, {"decoded", "the"}}})}}.dump();
  CHECK(moe::conformance::check_tokenizer_case(dir).passed);
  std::filesystem::remove(dir / "tokenizer.json");
  const auto missing = moe::conformance::check_tokenizer_case(dir);
  CHECK_FALSE(missing.passed);
  CHECK(missing.detail.find("tokenizer.json") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("fixture tokenizers stream-decode their cases like one-shot decode", "[tokenizer][fixtures][stream]") {
  for (const auto& dir : fixture_folders()) {
    const moe::Tokenizer tok = moe::Tokenizer::from_folder(dir);
    const auto expected = moe::tokenizer::read_tokenizer_json_file(dir / "expected.json");
    for (const auto& c : expected.at("cases")) {
      const std::vector<std::int32_t> ids = c.at("ids").get<std::vector<std::int32_t>>();
      moe::StreamDecoder stream(tok);
      std::string streamed;
      for (std::int32_t id : ids) streamed += stream.push(id);
      streamed += stream.flush();
      INFO(dir.filename().string() << ": " << c.at("text").get<std::string>());
      CHECK(streamed == tok.decode(ids));
    }
  }
}
