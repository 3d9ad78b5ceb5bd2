// Tests for read_gguf_tokenizer: the two committed tokenizer fixtures (gpt2 with merges, llama/SPM
// with scores and byte tokens, written by tools/make_malformed_gguf.py) and each consistency rule
// on files made here.
#include "gguf_test_util.hpp"

#include <moe/io/gguf.hpp>
#include <moe/io/gguf_tokenizer.hpp>
#include <moe/io/gguf_writer.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

using moe::ErrorCode;
using moe::io::GgufFile;
using moe::io::GgufTokenType;
using moe::io::GgufWriter;
using moe::io::read_gguf_tokenizer;
using moe::test::OwnedGguf;
using moe::test::require_gguf_error;

namespace {
const std::filesystem::path kValid = std::filesystem::path(MOE_FIXTURES_DIR) / "gguf" / "valid";

// A small gpt2 tokenizer; `edit` may add or replace keys before the file is made.
template <class Edit>
OwnedGguf tokenizer_file(Edit&& edit) {
  GgufWriter w;
  w.set("tokenizer.ggml.model", std::string("gpt2"));
  w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b", "ab", "<|end|>"});
  edit(w);
  return OwnedGguf(w.to_bytes(), "tok.gguf");
}
}  // namespace

TEST_CASE("read_gguf_tokenizer: a gpt2 vocabulary with merges, special ids and a chat template", "[gguf][tokenizer]") {
  const GgufFile f = GgufFile::open(kValid / "tokenizer.gguf");
  CHECK(moe::io::has_gguf_tokenizer(f));
  const auto d = read_gguf_tokenizer(f);
  CHECK(d.model == "gpt2");
  CHECK(d.pre == "qwen2");
  CHECK(d.tokens == std::vector<std::string>{"<unk>", "<s>", "</s>", "a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "ab"});
  CHECK(d.vocab_size() == 8);
  REQUIRE(d.token_types.size() == 8);
  CHECK(d.token_types[0] == GgufTokenType::unknown);
  CHECK(d.token_types[1] == GgufTokenType::control);
  CHECK(d.token_types[5] == GgufTokenType::normal);
  CHECK(d.scores.empty());
  CHECK(d.merges == std::vector<std::string>{"a b", "\xc4\xa0 ab"});
  CHECK(d.bos_id == 1);
  CHECK(d.eos_id == 2);
  CHECK(d.padding_id == 0);
  CHECK_FALSE(d.unknown_id.has_value());
  CHECK(d.add_bos == true);
  CHECK_FALSE(d.add_eos.has_value());
  CHECK(d.chat_template == "{% for m in messages %}{{ m['content'] }}{% endfor %}");
  CHECK(d.named_chat_templates.empty());
}

TEST_CASE("read_gguf_tokenizer: a llama/SPM vocabulary with scores and byte tokens", "[gguf][tokenizer]") {
  const GgufFile f = GgufFile::open(kValid / "tokenizer_spm.gguf");
  const auto d = read_gguf_tokenizer(f);
  CHECK(d.model == "llama");
  CHECK(d.pre == "default");  // absent: llama.cpp's default
  CHECK(d.tokens[4] == "\xe2\x96\x81" "a");
  CHECK(d.scores == std::vector<float>{0.0f, 0.0f, 0.0f, 0.0f, -1.5f, -2.0f});
  CHECK(d.token_types[3] == GgufTokenType::byte);
  CHECK(d.merges.empty());
  CHECK(d.unknown_id == 0);
  CHECK_FALSE(d.chat_template.has_value());
}

TEST_CASE("read_gguf_tokenizer: named chat templates and ids of any integer type", "[gguf][tokenizer]") {
  const auto g = tokenizer_file([](GgufWriter& w) {
    w.set("tokenizer.ggml.eos_token_id", std::uint64_t{3});
    w.set("tokenizer.ggml.bos_token_id", std::int32_t{0});
    w.set("tokenizer.chat_template", std::string("default"));
    w.set("tokenizer.chat_template.tool_use", std::string("tools"));
    w.set("tokenizer.chat_template.rag", std::string("rag"));
  });
  const auto d = read_gguf_tokenizer(g.file);
  CHECK(d.eos_id == 3);
  CHECK(d.bos_id == 0);
  CHECK(d.chat_template == "default");
  CHECK(d.named_chat_templates == std::map<std::string, std::string>{{"rag", "rag"}, {"tool_use", "tools"}});
}

TEST_CASE("read_gguf_tokenizer: inconsistent metadata is a typed error naming the file and key", "[gguf][tokenizer]") {
  {
    GgufWriter w;
    w.set("general.architecture", std::string("llama"));
    const OwnedGguf g(w.to_bytes(), "none.gguf");
    CHECK_FALSE(moe::io::has_gguf_tokenizer(g.file));
    require_gguf_error([&] { (void)read_gguf_tokenizer(g.file); }, ErrorCode::kTokenizer,
                       {"none.gguf", "tokenizer.ggml.model is absent"});
  }
  for (const char* none : {"no_vocab", "none"}) {  // llama.cpp's values for a file without a vocabulary
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string(none));
    const OwnedGguf g(w.to_bytes(), "no-vocab.gguf");
    CHECK_FALSE(moe::io::has_gguf_tokenizer(g.file));
    require_gguf_error([&] { (void)read_gguf_tokenizer(g.file); }, ErrorCode::kTokenizer,
                       {"no-vocab.gguf", "no tokenizer", none});
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    const OwnedGguf g(w.to_bytes(), "no-tokens.gguf");
    require_gguf_error([&] { (void)read_gguf_tokenizer(g.file); }, ErrorCode::kTokenizer, {"tokenizer.ggml.tokens is absent"});
  }
  struct Case {
    const char* what;
    std::function<void(GgufWriter&)> edit;
    ErrorCode code;
    std::string message;
  };
  const std::vector<Case> cases{
      {"token_type length", [](GgufWriter& w) { w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>{1, 1}); },
       ErrorCode::kTokenizer, "tokenizer.ggml.token_type has 2 entries for 4 tokens"},
      {"token_type value", [](GgufWriter& w) { w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>{1, 1, 9, 3}); },
       ErrorCode::kTokenizer, "tokenizer.ggml.token_type[2] = 9 (token \"ab\") is not a token type"},
      {"token_type of u32", [](GgufWriter& w) { w.set("tokenizer.ggml.token_type", std::vector<std::uint32_t>{1, 1, 1, 3}); },
       ErrorCode::kConfig, "has type array of u32"},
      {"scores length", [](GgufWriter& w) { w.set("tokenizer.ggml.scores", std::vector<float>{0.0f}); },
       ErrorCode::kTokenizer, "tokenizer.ggml.scores has 1 entries for 4 tokens"},
      {"merge without a space", [](GgufWriter& w) { w.set("tokenizer.ggml.merges", std::vector<std::string>{"a b", "ab"}); },
       ErrorCode::kTokenizer, "tokenizer.ggml.merges[1] = \"ab\" is not two tokens separated by one space"},
      {"merge with two spaces", [](GgufWriter& w) { w.set("tokenizer.ggml.merges", std::vector<std::string>{"a b c"}); },
       ErrorCode::kTokenizer, "merges[0] = \"a b c\""},
      {"merge with an empty side", [](GgufWriter& w) { w.set("tokenizer.ggml.merges", std::vector<std::string>{" b"}); },
       ErrorCode::kTokenizer, "merges[0] = \" b\""},
      {"eos out of range", [](GgufWriter& w) { w.set("tokenizer.ggml.eos_token_id", std::uint32_t{4}); },
       ErrorCode::kTokenizer, "tokenizer.ggml.eos_token_id = 4 is outside the vocabulary of 4 tokens"},
      {"negative pad", [](GgufWriter& w) { w.set("tokenizer.ggml.padding_token_id", std::int32_t{-1}); },
       ErrorCode::kTokenizer, "tokenizer.ggml.padding_token_id = -1 is outside"},
      {"bos as a string", [](GgufWriter& w) { w.set("tokenizer.ggml.bos_token_id", std::string("1")); },
       ErrorCode::kConfig, "expected an integer"},
      {"add_bos as u8", [](GgufWriter& w) { w.set("tokenizer.ggml.add_bos_token", std::uint8_t{1}); },
       ErrorCode::kConfig, "\"tokenizer.ggml.add_bos_token\" has type u8 (1), expected bool"},
      {"named template of u32", [](GgufWriter& w) { w.set("tokenizer.chat_template.x", std::uint32_t{1}); },
       ErrorCode::kConfig, "\"tokenizer.chat_template.x\" has type u32"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    const auto g = tokenizer_file(c.edit);
    require_gguf_error([&] { (void)read_gguf_tokenizer(g.file); }, c.code, {"tok.gguf", c.message});
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::uint32_t{2});
    const OwnedGguf g(w.to_bytes(), "tok.gguf");
    require_gguf_error([&] { (void)read_gguf_tokenizer(g.file); }, ErrorCode::kConfig,
                       {"\"tokenizer.ggml.model\" has type u32 (2), expected string"});
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.tokens", moe::io::GgufArrayValue(moe::io::GgufValueType::string));
    const OwnedGguf g(w.to_bytes(), "tok.gguf");
    require_gguf_error([&] { (void)read_gguf_tokenizer(g.file); }, ErrorCode::kTokenizer, {"tokenizer.ggml.tokens is empty"});
  }
}
