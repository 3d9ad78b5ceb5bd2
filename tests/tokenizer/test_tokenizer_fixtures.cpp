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

TEST_CASE("hand-made documents agree with the tokenizers library (hf_crosscheck)", "[tokenizer][fixtures]") {
  // hf_crosscheck/hf_results.json holds what tokenizers 0.23.2 returns for the documents of
  // hf_crosscheck/docs.json (see make_hf_results.py): encode with and without special tokens,
  // decode of those ids, and decode (plain and skipping specials) of random id sequences.
  using moe::tokenizer::Json;
  const std::filesystem::path dir = std::filesystem::path(__FILE__).parent_path() / "hf_crosscheck";
  const Json docs = moe::tokenizer::read_tokenizer_json_file(dir / "docs.json");
  const Json results = moe::tokenizer::read_tokenizer_json_file(dir / "hf_results.json");
  std::size_t checked = 0;
  for (const auto& [name, entry] : results.at("docs").items()) {
    INFO("document " << name);
    REQUIRE_FALSE(entry.contains("load_error"));
    const moe::Tokenizer tok = moe::Tokenizer::from_json_text(docs.at(name).dump());
    for (const auto& c : entry.at("cases")) {
      const std::string text = c.at("text").get<std::string>();
      INFO("text '" << text << "'");
      if (c.contains("hf_panics")) {  // the library crashes here; we must return normally
        CHECK_NOTHROW(tok.decode(tok.encode(text)));
        continue;
      }
      const auto ids = c.at("ids").get<std::vector<std::int32_t>>();
      CHECK(tok.encode(text) == ids);
      CHECK(tok.encode(text, true) == c.at("ids_special").get<std::vector<std::int32_t>>());
      CHECK(tok.decode(ids) == c.at("decoded").get<std::string>());
      ++checked;
    }
    for (const auto& d : entry.at("decodes")) {
      if (d.contains("hf_panics")) continue;
      const auto ids = d.at("ids").get<std::vector<std::int32_t>>();
      CHECK(tok.decode(ids) == d.at("text").get<std::string>());
      CHECK(tok.decode(ids, true) == d.at("text_skip").get<std::string>());
      ++checked;
    }
  }
  CHECK(checked > 500);
}
