// Tests for moe::io::load_tokenizer / tokenizer_from_gguf / write_gguf_tokenizer: the committed
// tokenizer.json fixtures written to GGUF metadata as llama.cpp's converter would and loaded back
// (same ids as the tokenizer.json path and as the `tokenizers` library's expected.json), the
// pre-tokenizer identification, hand-made SentencePiece vocabularies with ids worked out from
// llama.cpp's SPM algorithm, every preset's regexes, and hostile metadata.
#include "gguf_test_util.hpp"

#include <moe/io/gguf.hpp>
#include <moe/io/gguf_tokenizer.hpp>
#include <moe/io/gguf_writer.hpp>
#include <moe/io/load_chat_template.hpp>
#include <moe/io/load_tokenizer.hpp>

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

using moe::ErrorCode;
using moe::Tokenizer;
using moe::io::GgufTokenType;
using moe::io::GgufWriter;
using moe::test::OwnedGguf;
using moe::test::require_gguf_error;

namespace {
const std::filesystem::path kTokFixtures = std::filesystem::path(MOE_FIXTURES_DIR) / "tokenizers";
const std::string kSp = "\xe2\x96\x81";  // ▁

nlohmann::json read_json_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

std::vector<std::int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<std::int32_t>>(); }

struct Written {
  moe::io::GgufTokenizerSummary summary;
  OwnedGguf gguf;
};
Written write_folder(const std::filesystem::path& dir, const moe::io::GgufTokenizerWriteOptions& opts = {}) {
  GgufWriter w;
  w.set("general.architecture", std::string("llama"));
  auto summary = moe::io::write_gguf_tokenizer(w, dir, opts);
  return Written{summary, OwnedGguf(w.to_bytes(), dir.filename().string() + ".gguf")};
}

// An SPM vocabulary: tokens, scores, types.
OwnedGguf spm_file(const std::vector<std::string>& tokens, const std::vector<float>& scores,
                   const std::vector<std::int32_t>& types, std::optional<bool> space_prefix = std::nullopt) {
  GgufWriter w;
  w.set("tokenizer.ggml.model", std::string("llama"));
  w.set("tokenizer.ggml.tokens", tokens);
  w.set("tokenizer.ggml.scores", scores);
  w.set("tokenizer.ggml.token_type", types);
  if (space_prefix) w.set("tokenizer.ggml.add_space_prefix", *space_prefix);
  return OwnedGguf(w.to_bytes(), "spm.gguf");
}
}  // namespace

TEST_CASE("write_gguf_tokenizer + tokenizer_from_gguf: the fixtures encode and decode as their tokenizer.json",
          "[gguf][tokenizer]") {
  struct Case {
    const char* dir;
    const char* model;
    const char* pre;
  };
  const std::vector<Case> cases{
      {"bytelevel_gpt2", "gpt2", "gpt-2"},   {"bytelevel_llama3", "gpt2", "llama-bpe"},
      {"bytelevel_qwen", "gpt2", "qwen2"},   {"sweep_o200k", "gpt2", "gpt-4o"},
      {"sentencepiece_bpe", "llama", ""},
  };
  for (const Case& c : cases) {
    INFO(c.dir);
    const auto dir = kTokFixtures / c.dir;
    const Written g = write_folder(dir);
    CHECK(g.summary.model == c.model);
    CHECK(g.summary.pre == c.pre);
    const auto data = moe::io::read_gguf_tokenizer(g.gguf.file);
    CHECK(data.model == c.model);
    const Tokenizer from_json = Tokenizer::from_folder(dir);
    const Tokenizer from_gguf = moe::io::tokenizer_from_gguf(g.gguf.file);
    CHECK(from_gguf.vocab_size() == from_json.vocab_size());
    const auto expected = read_json_file(dir / "expected.json");
    // GGUF has no lstrip/rstrip flags for added tokens (llama.cpp sets them for a few models by
    // name), so texts with such a token are tokenized differently on purpose: left out here.
    std::vector<std::string> stripping;
    const auto tokenizer_json = read_json_file(dir / "tokenizer.json");
    for (const auto& a : tokenizer_json["added_tokens"])
      if (a.value("lstrip", false) || a.value("rstrip", false)) stripping.push_back(a["content"].get<std::string>());
    std::size_t checked = 0;
    for (const auto& tc : expected["cases"]) {
      const std::string text = tc["text"].get<std::string>();
      if (std::any_of(stripping.begin(), stripping.end(), [&](const std::string& t) { return text.find(t) != std::string::npos; }))
        continue;
      INFO("text: " << text);
      const auto ids = from_gguf.encode(text);
      CHECK(ids == ids_of(tc["ids"]));
      CHECK(ids == from_json.encode(text));
      CHECK(from_gguf.encode(text, true) == from_json.encode(text, true));
      CHECK(from_gguf.decode(ids) == from_json.decode(ids));
      CHECK(from_gguf.decode(ids, true) == from_json.decode(ids, true));
      ++checked;
    }
    CHECK(checked >= 30);
    // SPM files get llama.cpp's default bos 1 / eos 2 where the metadata names none.
    if (std::string(c.model) == "gpt2") CHECK(from_gguf.bos_id() == from_json.bos_id());
  }
}

TEST_CASE("write_gguf_tokenizer: token types, merges, padding, special ids and the chat template", "[gguf][tokenizer]") {
  const auto tmp = std::filesystem::temp_directory_path() / ("moe_test_write_gguf_tokenizer_" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  std::filesystem::copy_file(kTokFixtures / "bytelevel_qwen" / "tokenizer.json", tmp / "tokenizer.json");
  {
    std::ofstream cfg(tmp / "tokenizer_config.json");
    cfg << R"({"bos_token": null, "eos_token": "<|im_end|>", "pad_token": {"content": "<|endoftext|>"},
               "add_bos_token": false, "add_eos_token": true,
               "chat_template": [{"name": "default", "template": "{{ messages[0]['content'] }}"},
                                 {"name": "tool_use", "template": "tools"}]})";
  }
  const Written g = write_folder(tmp, {.vocab_size = 1010, .pre = std::nullopt});
  const auto d = moe::io::read_gguf_tokenizer(g.gguf.file);
  REQUIRE(d.tokens.size() == 1010);
  CHECK(d.pre == "qwen2");
  CHECK(d.tokens[1000] == "<|endoftext|>");
  CHECK(d.token_types[1000] == GgufTokenType::control);
  CHECK(d.token_types[1004] == GgufTokenType::user_defined);  // <tool_call>, not special
  CHECK(d.tokens[1005] == "Hello World");
  CHECK(d.token_types[1005] == GgufTokenType::user_defined);
  CHECK(d.tokens[1009] == "[PAD1009]");
  CHECK(d.token_types[1009] == GgufTokenType::unused);
  CHECK(d.token_types[5] == GgufTokenType::normal);
  const auto tj = read_json_file(tmp / "tokenizer.json");
  CHECK(d.merges.size() == tj["model"]["merges"].size());
  CHECK(d.eos_id == 1002);
  CHECK(d.padding_id == 1000);
  CHECK_FALSE(d.bos_id.has_value());
  CHECK(d.add_bos == false);
  CHECK(d.add_eos == true);
  CHECK(d.chat_template == "{{ messages[0]['content'] }}");
  CHECK(d.named_chat_templates.at("tool_use") == "tools");
  const Tokenizer t = moe::io::tokenizer_from_gguf(g.gguf.file);
  CHECK(t.encode("hi", true).back() == 1002);
  CHECK(t.vocab_size() == 1010);

  // load_tokenizer: the folder, and a .gguf file written to disk.
  const Tokenizer folder = moe::io::load_tokenizer(tmp);
  CHECK(folder.encode("Hello World<|im_end|>x") == t.encode("Hello World<|im_end|>x"));
  GgufWriter w;
  moe::io::write_gguf_tokenizer(w, tmp);
  w.write(tmp / "model.gguf");
  const Tokenizer file = moe::io::load_tokenizer(tmp / "model.gguf");
  CHECK(file.encode("Hello World<|im_end|>x") == t.encode("Hello World<|im_end|>x"));

  // A vocab_size below the ids, an unknown pre name, a pre-tokenizer that is no preset.
  require_gguf_error([&] { (void)write_folder(tmp, {.vocab_size = 1000, .pre = std::nullopt}); }, ErrorCode::kInvalidArgument,
                     {"vocab_size 1000 is smaller than the tokenizer's 1006 ids"});
  require_gguf_error([&] { (void)write_folder(tmp, {.vocab_size = std::nullopt, .pre = std::string("nope")}); }, ErrorCode::kInvalidArgument,
                     {"pre 'nope' is not a known pre-tokenizer"});
  CHECK(write_folder(tmp, {.vocab_size = std::nullopt, .pre = std::string("glm4")}).summary.pre == "glm4");
  require_gguf_error([&] { (void)write_folder(kTokFixtures / "sweep_split_inverted"); }, ErrorCode::kUnsupported,
                     {"tokenizer.json", "matches none of the presets"});
  // SentencePiece-style without byte fallback (17 of its 31 fixture texts would differ): refused.
  require_gguf_error([&] { (void)write_folder(kTokFixtures / "metaspace_bpe"); }, ErrorCode::kUnsupported,
                     {"tokenizer.json", "without byte_fallback"});
  // The real DeepSeek-V3 Split regexes are the deepseek-v3 preset; this fixture's are a variant.
  require_gguf_error([&] { (void)write_folder(kTokFixtures / "sweep_deepseek_v3"); }, ErrorCode::kUnsupported,
                     {"matches none of the presets"});
  std::filesystem::remove_all(tmp);
}

TEST_CASE("tokenizer_from_gguf: SentencePiece merging by score, as llama.cpp's SPM tokenizer", "[gguf][tokenizer]") {
  constexpr std::int32_t N = 1, U = 2, C = 3, B = 6;
  const std::vector<std::string> tokens{"<unk>", "<s>", "</s>", "<0x21>", kSp,          "a",  "b",
                                        "c",     "ab",  "bc",   kSp + "a", kSp + "ab", "abc", "aa"};
  const std::vector<float> scores{0, 0, 0, 0, -10, -10, -10, -10, -1.0f, -0.5f, -2.0f, -3.0f, -4.0f, -1.0f};
  const std::vector<std::int32_t> types{U, C, C, B, N, N, N, N, N, N, N, N, N, N};
  const auto g = spm_file(tokens, scores, types);
  const Tokenizer t = moe::io::tokenizer_from_gguf(g.file);
  // "▁abc": bc (-0.5) beats ab (-1) and ▁a (-2); then ▁a; "abc" (-4) is stale by then.
  CHECK(t.encode("abc") == std::vector<std::int32_t>{10, 9});
  // "▁ab!": ab, then ▁ab (-3); "!" is no token: its byte token <0x21>.
  CHECK(t.encode("ab!") == std::vector<std::int32_t>{11, 3});
  // "é" has neither a token nor byte tokens: unk.
  CHECK(t.encode("\xc3\xa9") == std::vector<std::int32_t>{4, 0});
  // A control token is matched first; the text after it gets the space prefix again.
  CHECK(t.encode("<s>ab") == std::vector<std::int32_t>{1, 11});
  CHECK(t.encode("ab<s>ab") == std::vector<std::int32_t>{11, 1, 11});
  // Spaces are ▁: "a b" -> "▁a▁b".
  CHECK(t.encode("a b") == std::vector<std::int32_t>{10, 4, 6});
  // add_bos defaults to true for SPM, bos to id 1.
  CHECK(t.encode("ab", true) == std::vector<std::int32_t>{1, 11});
  CHECK(t.bos_id() == 1);
  CHECK(t.eos_id() == 2);
  CHECK(t.decode(std::vector<std::int32_t>{11, 3}) == "ab!");
  CHECK(t.decode(std::vector<std::int32_t>{1, 10, 9}, true) == "abc");
  CHECK(t.is_special(1));

  const auto np = spm_file(tokens, scores, types, false);
  const Tokenizer t2 = moe::io::tokenizer_from_gguf(np.file);
  CHECK(t2.encode("ab") == std::vector<std::int32_t>{8});
  // Equal scores: the leftmost pair first ("aaa" -> aa a).
  CHECK(t2.encode("aaa") == std::vector<std::int32_t>{13, 5});
  CHECK(t2.decode(std::vector<std::int32_t>{4, 5}) == " a");  // no prefix to strip
}

TEST_CASE("pre-tokenizer presets: every regex compiles and splits as its family does", "[gguf][tokenizer]") {
  const std::string text = "Hello World 12345 don't\n\n  x \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c!! \xc3\xa9t\xc3\xa9";
  // A vocabulary of every single byte-level character, no merges: each preset's ids are its bytes,
  // so the interesting part is that every preset builds and runs.
  std::vector<std::string> tokens;
  {
    const auto& map = moe::tokenizer::byte_level_map();
    for (int b = 0; b < 256; ++b) {
      std::string s;
      map.encode(std::string(1, static_cast<char>(b)), s);
      tokens.push_back(s);
    }
  }
  for (const auto& p : moe::tokenizer::pre_tokenizer_presets()) {
    INFO(p.names[0]);
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string(p.names[0]));
    w.set("tokenizer.ggml.tokens", tokens);
    w.set("tokenizer.ggml.merges", std::vector<std::string>{});
    const OwnedGguf g(w.to_bytes(), "preset.gguf");
    const Tokenizer t = moe::io::tokenizer_from_gguf(g.file);
    const auto ids = t.encode(text);
    CHECK(ids.size() == text.size());
    CHECK(t.decode(ids) == text);
    for (std::string_view alias : p.names) CHECK(moe::tokenizer::find_pre_tokenizer_preset(alias) == &p);
  }
  // Identification needs the exact steps and flags.
  const auto* llama3 = moe::tokenizer::find_pre_tokenizer_preset("llama-bpe");
  const auto pre = moe::tokenizer::preset_pre_tokenizer_json(*llama3);
  CHECK(moe::tokenizer::identify_pre_tokenizer_preset(pre, nullptr, true) == llama3);
  CHECK(moe::tokenizer::identify_pre_tokenizer_preset(pre, nullptr, false)->names[0] == "dbrx");
  CHECK(moe::tokenizer::identify_pre_tokenizer_preset(pre, nlohmann::json{{"type", "NFKC"}}, true) == nullptr);
}

TEST_CASE("tokenizer_from_gguf: hostile or inconsistent metadata gives typed errors", "[gguf][tokenizer]") {
  auto gpt2 = [](auto&& edit) {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string("qwen2"));
    w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b", "ab", "<|end|>"});
    w.set("tokenizer.ggml.merges", std::vector<std::string>{"a b"});
    edit(w);
    return OwnedGguf(w.to_bytes(), "tok.gguf");
  };
  auto load = [](const OwnedGguf& g) { (void)moe::io::tokenizer_from_gguf(g.file); };
  {
    const auto g = gpt2([](GgufWriter&) {});
    const Tokenizer t = moe::io::tokenizer_from_gguf(g.file);
    CHECK(t.encode("ab") == std::vector<std::int32_t>{2});
  }
  auto make = [](const std::string& pre, const std::vector<std::string>& tokens, const std::vector<std::string>& merges,
                 auto&& edit) {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", pre);
    w.set("tokenizer.ggml.tokens", tokens);
    w.set("tokenizer.ggml.merges", merges);
    edit(w);
    return OwnedGguf(w.to_bytes(), "tok.gguf");
  };
  const std::vector<std::string> toks{"a", "b", "ab", "<|end|>"};
  auto none = [](GgufWriter&) {};
  require_gguf_error([&] { load(make("qwen2", toks, {"a c"}, none)); }, ErrorCode::kTokenizer,
                     {"tok.gguf", "tokenizer.ggml.merges[0] = 'a c' uses 'c', which is not a token"});
  require_gguf_error([&] { load(make("qwen2", {"a", "b"}, {"a b"}, none)); }, ErrorCode::kTokenizer,
                     {"merges[0] = 'a b' uses 'ab'"});
  require_gguf_error([&] { load(make("qwen2", {"a", "b", "a"}, {}, none)); }, ErrorCode::kTokenizer,
                     {"tok.gguf", "'a' is both token 0 and token 2"});
  require_gguf_error([&] { load(make("made-up", toks, {}, none)); }, ErrorCode::kUnsupported,
                     {"tok.gguf", "tokenizer.ggml.pre = 'made-up' is not a pre-tokenizer this library knows", "qwen2"});
  require_gguf_error(
      [&] { load(make("qwen2", toks, {}, [](GgufWriter& w) { w.set("tokenizer.ggml.add_bos_token", true); })); },
      ErrorCode::kTokenizer, {"add_bos_token is true, but tokenizer.ggml.bos_token_id is not set"});
  require_gguf_error(
      [&] { load(make("qwen2", toks, {}, [](GgufWriter& w) { w.set("tokenizer.ggml.bos_token_id", std::uint32_t{7}); })); },
      ErrorCode::kTokenizer, {"bos_token_id = 7 is outside the vocabulary of 4 tokens"});
  require_gguf_error(
      [&] {
        load(make("qwen2", toks, {}, [](GgufWriter& w) { w.set("tokenizer.ggml.token_type", std::vector<float>{1, 1, 1, 3}); }));
      },
      ErrorCode::kConfig, {"tokenizer.ggml.token_type"});
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.tokens", std::vector<std::int32_t>{1, 2});
    const OwnedGguf g(w.to_bytes(), "tok.gguf");
    require_gguf_error([&] { load(g); }, ErrorCode::kConfig, {"tokenizer.ggml.tokens"});
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string("qwen2"));
    w.set("tokenizer.ggml.tokens", toks);
    const OwnedGguf g(w.to_bytes(), "tok.gguf");
    require_gguf_error([&] { load(g); }, ErrorCode::kTokenizer, {"tok.gguf", "tokenizer.ggml.merges is absent"});
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("bert"));
    w.set("tokenizer.ggml.tokens", toks);
    const OwnedGguf g(w.to_bytes(), "tok.gguf");
    require_gguf_error([&] { load(g); }, ErrorCode::kUnsupported, {"tokenizer.ggml.model = 'bert' is not supported"});
  }
  {  // A huge token array: 2^20 one-byte tokens parse and load (no quadratic work), ids stay checked.
    std::vector<std::string> big;
    big.reserve(1 << 20);
    for (int i = 0; i < (1 << 20); ++i) big.push_back(fmt::format("t{}", i));
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("llama"));
    w.set("tokenizer.ggml.tokens", big);
    w.set("tokenizer.ggml.scores", std::vector<float>(3, 0.0f));
    const OwnedGguf g(w.to_bytes(), "big.gguf");
    require_gguf_error([&] { load(g); }, ErrorCode::kTokenizer, {"tokenizer.ggml.scores has 3 entries for 1048576 tokens"});
  }
  {  // A token count in the header far beyond the bytes of the file: the container refuses it.
    moe::test::Bytes b;
    b.header(3, 0, 2).str("tokenizer.ggml.model").u32(8).str("gpt2");
    b.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(std::uint64_t{1} << 40);
    try {
      moe::test::parse_invalid(b.b);
      FAIL("parsed");
    } catch (const moe::Error& e) {
      CHECK(std::string(e.what()).find("tokenizer.ggml.tokens") != std::string::npos);
    }
  }
}

TEST_CASE("tokenizer_from_gguf: the committed GGUF tokenizer fixtures, ids worked out by hand", "[gguf][tokenizer]") {
  const auto valid = std::filesystem::path(MOE_FIXTURES_DIR) / "gguf" / "valid";
  {
    // gpt2, pre qwen2: tokens <unk> <s> </s> a b ab Ġ Ġab, merges "a b", "Ġ ab"; bos 1, add_bos.
    const Tokenizer t = moe::io::load_tokenizer(valid / "tokenizer.gguf");
    CHECK(t.encode("ab ab") == std::vector<std::int32_t>{5, 7});  // "ab" | "Ġab": a b -> ab, Ġ ab -> Ġab
    CHECK(t.encode("ab ab", true) == std::vector<std::int32_t>{1, 5, 7});
    CHECK(t.encode("ba<s>") == std::vector<std::int32_t>{4, 3, 1});
    CHECK(t.decode(std::vector<std::int32_t>{5, 7}) == "ab ab");
    CHECK(t.decode(std::vector<std::int32_t>{1, 5}, true) == "ab");
  }
  {
    // llama: <unk> <s> </s> <0x0A> ▁a b, scores -1.5 for ▁a; bos 1, eos 2, unk 0.
    const Tokenizer t = moe::io::load_tokenizer(valid / "tokenizer_spm.gguf");
    CHECK(t.encode("ab\n") == std::vector<std::int32_t>{4, 5, 3});  // ▁a, b, and \n as its byte token
    CHECK(t.encode("ab\n", true) == std::vector<std::int32_t>{1, 4, 5, 3});
    CHECK(t.encode("b") == std::vector<std::int32_t>{0, 5});  // ▁ alone is no token and has no byte tokens
    CHECK(t.decode(std::vector<std::int32_t>{4, 5, 3}) == "ab\n");
  }
}

TEST_CASE("load_chat_template: a GGUF file's tokenizer.chat_template with its bos/eos texts", "[gguf][tokenizer]") {
  const auto tmp = std::filesystem::temp_directory_path() / ("moe_test_gguf_chat_template_" + std::to_string(::getpid()));
  std::filesystem::remove_all(tmp);
  std::filesystem::create_directories(tmp);
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string("qwen2"));
    w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "<B>", "<E>"});
    w.set("tokenizer.ggml.merges", std::vector<std::string>{});
    w.set("tokenizer.ggml.bos_token_id", std::uint32_t{1});
    w.set("tokenizer.ggml.eos_token_id", std::uint32_t{2});
    w.set("tokenizer.chat_template",
          std::string("{{ bos_token }}{% for m in messages %}{{ m['role'] }}:{{ m['content'] }}{{ eos_token }}{% endfor %}"));
    w.write(tmp / "t.gguf");
  }
  const auto chat = moe::io::load_chat_template(tmp / "t.gguf");
  CHECK_FALSE(chat.is_fallback());
  const auto messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "hi"}])");
  CHECK(chat.render(messages) == "<B>user:hi<E>");
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a"});
    w.write(tmp / "none.gguf");
  }
  CHECK(moe::io::load_chat_template(tmp / "none.gguf").is_fallback());
  // A folder goes through ChatTemplate::from_folder.
  std::filesystem::create_directories(tmp / "hf");
  {
    std::ofstream(tmp / "hf" / "chat_template.jinja") << "{% for m in messages %}[{{ m['content'] }}]{% endfor %}";
  }
  CHECK(moe::io::load_chat_template(tmp / "hf").render(messages) == "[hi]");
  require_gguf_error([&] { (void)moe::io::load_chat_template(tmp / "missing.gguf"); }, ErrorCode::kIo, {"missing.gguf"});
  std::filesystem::remove_all(tmp);
}

TEST_CASE("write_gguf_tokenizer: every identifiable preset is found from its tokenizer.json form and round-trips",
          "[gguf][tokenizer]") {
  // bytelevel_qwen's vocabulary and merges under each preset's pre-tokenizer, normalizer and
  // ignore_merges: the writer must name that preset, and the GGUF path must then encode the
  // fixture texts as the tokenizer.json path does.
  const auto base = read_json_file(kTokFixtures / "bytelevel_qwen" / "tokenizer.json");
  const auto expected = read_json_file(kTokFixtures / "bytelevel_qwen" / "expected.json");
  const auto tmp = std::filesystem::temp_directory_path() / ("moe_test_gguf_presets_" + std::to_string(::getpid()));
  std::size_t presets = 0;
  for (const auto& p : moe::tokenizer::pre_tokenizer_presets()) {
    if (!p.identify) continue;
    INFO(p.names[0]);
    std::filesystem::remove_all(tmp);
    std::filesystem::create_directories(tmp);
    auto doc = base;
    doc["pre_tokenizer"] = moe::tokenizer::preset_pre_tokenizer_json(p);
    doc["normalizer"] = moe::tokenizer::preset_normalizer_json(p);
    doc["model"]["ignore_merges"] = p.ignore_merges;
    for (auto& a : doc["added_tokens"]) a["lstrip"] = a["rstrip"] = false;
    std::ofstream(tmp / "tokenizer.json") << doc.dump();
    const Written g = write_folder(tmp);
    CHECK(g.summary.pre == p.names[0]);
    const Tokenizer from_json = Tokenizer::from_folder(tmp);
    const Tokenizer from_gguf = moe::io::tokenizer_from_gguf(g.gguf.file);
    for (const auto& tc : expected["cases"]) {
      const std::string text = tc["text"].get<std::string>();
      INFO("text: " << text);
      CHECK(from_gguf.encode(text) == from_json.encode(text));
    }
    ++presets;
  }
  CHECK(presets >= 12);
  std::filesystem::remove_all(tmp);
}

TEST_CASE("tokenizer_from_gguf: kimi-k2 without merges merges by rank (tiktoken)", "[gguf][tokenizer]") {
  // tiktoken: the adjacent pair whose concatenation has the lowest id merges first.
  auto file = [](std::vector<std::string> tokens) {
    GgufWriter w;
    w.set("tokenizer.ggml.model", std::string("gpt2"));
    w.set("tokenizer.ggml.pre", std::string("kimi-k2"));
    w.set("tokenizer.ggml.tokens", tokens);
    return OwnedGguf(w.to_bytes(), "kimi.gguf");
  };
  const auto bc_first = file({"a", "b", "c", "bc", "ab"});
  CHECK(moe::io::tokenizer_from_gguf(bc_first.file).encode("abc") == std::vector<std::int32_t>{0, 3});
  const auto ab_first = file({"a", "b", "c", "ab", "bc"});
  CHECK(moe::io::tokenizer_from_gguf(ab_first.file).encode("abc") == std::vector<std::int32_t>{3, 2});
  const auto whole = file({"a", "b", "c", "ab", "bc", "abc"});
  CHECK(moe::io::tokenizer_from_gguf(whole.file).encode("abc") == std::vector<std::int32_t>{5});
  // Han runs are words of their own in Kimi's regex ("a中" is "a" | "中"), not in o200k's.
  std::vector<std::string> bytes;
  const auto& map = moe::tokenizer::byte_level_map();
  for (int b = 0; b < 256; ++b) {
    std::string t;
    map.encode(std::string(1, static_cast<char>(b)), t);
    bytes.push_back(t);
  }
  std::string x, y, z;
  map.encode("\xe4", x);
  map.encode("\xb8", y);
  map.encode("\xad", z);
  auto tokens = bytes;
  for (const std::string& t : {"a" + x, "a" + x + y, "a" + x + y + z}) tokens.push_back(t);
  const auto kimi = file(tokens);
  const std::string text = "a\xe4\xb8\xad";
  CHECK(moe::io::tokenizer_from_gguf(kimi.file).encode(text) ==
        std::vector<std::int32_t>{'a', 0xe4, 0xb8, 0xad});  // byte b is token b here
  GgufWriter w;
  w.set("tokenizer.ggml.model", std::string("gpt2"));
  w.set("tokenizer.ggml.pre", std::string("gpt-4o"));
  w.set("tokenizer.ggml.tokens", tokens);
  w.set("tokenizer.ggml.merges", std::vector<std::string>{"a " + x, "a" + x + " " + y, "a" + x + y + " " + z});
  const OwnedGguf o200k(w.to_bytes(), "o200k.gguf");
  CHECK(moe::io::tokenizer_from_gguf(o200k.file).encode(text) == std::vector<std::int32_t>{258});
}
