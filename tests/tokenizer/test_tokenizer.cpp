// Tests of moe::Tokenizer and moe::StreamDecoder on hand-made tokenizer.json documents: BPE
// merges (both formats), unk/fuse_unk, ignore_merges, prefix/suffix, byte fallback, added-token
// flags, post-processing, malformed files, and streaming decode against one-shot decode.
#include "tokenizer_test_util.hpp"

#include <moe/tokenizer/stream_decoder.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <string>
#include <vector>

using namespace moe;
using test::Ids;
using test::Json;
using test::G;
using test::S;

namespace {

Json added(int id, const std::string& content, bool special, bool normalized = false, bool lstrip = false,
           bool rstrip = false, bool single_word = false) {
  return Json{{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
              {"rstrip", rstrip}, {"normalized", normalized}, {"special", special}};
}

using test::contains;
using test::error_code_of;

}  // namespace

TEST_CASE("BPE merges by rank, with merges as strings or as pairs", "[tokenizer][bpe]") {
  for (bool pairs : {false, true}) {
    INFO("merges as " << (pairs ? "pairs" : "strings"));
    const Tokenizer tok = test::make_tokenizer(test::tokenizer_doc(test::tiny_bpe_model(pairs)));
    CHECK(tok.encode("abc") == Ids{5});          // (a,b) first, then (ab,c)
    CHECK(tok.encode("bcab") == Ids{4, 3});      // (a,b) rank 0 before (b,c) rank 2
    CHECK(tok.encode("aaaaa") == Ids{9, 0});     // aa aa a -> aaaa a
    CHECK(tok.encode("cab") == Ids{2, 3});
    CHECK(tok.encode("") == Ids{});
    CHECK(tok.encode("abd") == Ids{3, 6});       // d is unknown
    CHECK(tok.encode("abdd") == Ids{3, 6, 6});   // fuse_unk = false: one unk per character
    CHECK(tok.vocab_size() == 10);
    CHECK(tok.token_to_id("abc") == 5);
    CHECK_FALSE(tok.token_to_id("zz").has_value());
    CHECK(tok.decode(Ids{5, 7, 4}) == "abc   bc");  // no decoder: tokens joined with spaces
  }
}

TEST_CASE("BPE on a long run of one character stays fast", "[tokenizer][bpe]") {
  const Tokenizer tok = test::make_tokenizer(test::tokenizer_doc(test::tiny_bpe_model(false)));
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = tok.encode(std::string(200001, 'a'));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(ids.size() == 50001);
  CHECK(std::count(ids.begin(), ids.end(), 9) == 50000);
  CHECK(ids.back() == 0);
  CHECK(seconds < 10.0);  // generous for sanitizer builds; a quadratic merge loop takes minutes here
}

TEST_CASE("BPE options: fuse_unk, ignore_merges, prefix and suffix", "[tokenizer][bpe]") {
  Json model = test::tiny_bpe_model(false);
  model["fuse_unk"] = true;
  CHECK(test::make_tokenizer(test::tokenizer_doc(model)).encode("abddd") == Ids{3, 6});

  model = test::tiny_bpe_model(false);
  model["vocab"]["ca"] = 10;  // a token no merge produces
  CHECK(test::make_tokenizer(test::tokenizer_doc(model)).encode("ca") == Ids{2, 0});
  model["ignore_merges"] = true;
  CHECK(test::make_tokenizer(test::tokenizer_doc(model)).encode("ca") == Ids{10});
  CHECK(test::make_tokenizer(test::tokenizer_doc(model)).encode("cab") == Ids{2, 3});

  Json prefixed = {{"type", "BPE"}, {"continuing_subword_prefix", "##"}, {"unk_token", nullptr},
                   {"vocab", {{"a", 0}, {"##b", 1}, {"ab", 2}, {"##a", 3}}}, {"merges", Json::array({"a ##b"})}};
  const Tokenizer p = test::make_tokenizer(test::tokenizer_doc(prefixed));
  CHECK(p.encode("ab") == Ids{2});
  CHECK(p.encode("aba") == Ids{2, 3});

  Json suffixed = {{"type", "BPE"}, {"end_of_word_suffix", "</w>"},
                   {"vocab", {{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}, {"b", 3}}}, {"merges", Json::array({"a b</w>"})}};
  const Tokenizer s = test::make_tokenizer(test::tokenizer_doc(suffixed));
  CHECK(s.encode("ab") == Ids{2});
  CHECK(s.encode("abb") == Ids{0, 3, 1});
}

TEST_CASE("byte-level BPE: GPT-2 regex, merges and exact round trip", "[tokenizer][byte_level]") {
  const Tokenizer tok = test::make_tokenizer(test::byte_level_doc());
  CHECK(tok.encode("the the") == Ids{'t', 257, 258});
  CHECK(tok.encode("a     b") == Ids{'a', 260, ' ', 'b'});  // "    " (\s+(?!\S)) then " b"
  CHECK(tok.encode("\xE4\xB8\xAD") == Ids{0xE4, 0xB8, 0xAD});
  CHECK(tok.decode(Ids{'t', 257, 258}) == "the the");
  CHECK(tok.encode("text<|endoftext|>more") == Ids{'t', 'e', 'x', 't', 261, 'm', 'o', 'r', 'e'});
  CHECK(tok.decode(Ids{'a', 261, 'b'}) == "a<|endoftext|>b");
  CHECK(tok.decode(Ids{'a', 261, 'b'}, true) == "ab");
  CHECK(tok.is_special(261));
  CHECK_FALSE(tok.is_special('a'));
  CHECK(tok.token_to_id("<|endoftext|>") == 261);
  CHECK(tok.id_to_token(258) == G + "the");
  CHECK(tok.vocab_size() == 262);

  const Tokenizer prefixed = test::make_tokenizer(test::byte_level_doc(true, true));
  CHECK(prefixed.encode("the") == Ids{258});

  // Every valid UTF-8 text comes back unchanged.
  std::mt19937 rng(7);
  const std::vector<std::string> alphabet = {"a", "t", "h", "e", " ", "  ", "\n", "\r\n", "\t", "'s", "1", "!",
                                             "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xD9\x85", "<|endoftext|>"};
  for (int round = 0; round < 200; ++round) {
    std::string text;
    const int n = static_cast<int>(rng() % 30);
    for (int k = 0; k < n; ++k) text += alphabet[rng() % alphabet.size()];
    INFO("text: " << text);
    CHECK(tok.decode(tok.encode(text)) == text);
  }
}

TEST_CASE("SentencePiece-style BPE: byte fallback, unk, template and decoder", "[tokenizer][byte_fallback]") {
  const Tokenizer tok = test::make_tokenizer(test::sentencepiece_doc());
  CHECK(tok.encode("hi") == Ids{263});
  CHECK(tok.encode("hi \xC3\xA9") == Ids{263, 259, 264});
  // 中 is not in the vocabulary: its three bytes E4 B8 AD become <0xE4> <0xB8> <0xAD>.
  CHECK(tok.encode("hi \xE4\xB8\xAD") == Ids{263, 259, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD});
  CHECK(tok.decode(Ids{263, 259, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD}) == "hi \xE4\xB8\xAD");
  CHECK(tok.decode(Ids{263, 3 + 0xE4}) == "hi\xEF\xBF\xBD");
  CHECK(tok.encode("hi", true) == Ids{1, 263});
  CHECK(tok.decode(Ids{1, 263}) == "<s> hi");
  CHECK(tok.decode(Ids{1, 263}, true) == "hi");
  CHECK(tok.encode("<s>hi</s>") == Ids{1, 263, 2});  // added tokens split before the normalizer
  CHECK(tok.bos_id() == 1);
  CHECK_FALSE(tok.eos_id().has_value());

  // Without byte fallback the unknown character becomes <unk>.
  Json doc = test::sentencepiece_doc();
  doc["model"]["byte_fallback"] = false;
  CHECK(test::make_tokenizer(doc).encode("hi \xE4\xB8\xAD\xE6\x96\x87") == Ids{263, 259, 0});  // fused
}

TEST_CASE("tokenizer_config.json: BOS/EOS and add_bos_token/add_eos_token", "[tokenizer][post_processor]") {
  const Json config = {{"bos_token", "<s>"}, {"eos_token", {{"__type", "AddedToken"}, {"content", "</s>"}}},
                       {"add_bos_token", false}, {"add_eos_token", true}};
  const Tokenizer tok = test::make_tokenizer(test::sentencepiece_doc(), config);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.encode("hi", true) == Ids{263, 2});
  CHECK(tok.encode("hi", false) == Ids{263});

  std::string message;
  CHECK(error_code_of([&] { test::make_tokenizer(test::sentencepiece_doc(), Json{{"eos_token", "<nope>"}}); }, &message) ==
        ErrorCode::kTokenizer);
  CHECK(contains(message, "eos_token"));

  // Roberta-style post-processor, and a folder on disk.
  Json doc = test::byte_level_doc();
  doc["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", Json::array({"<|endoftext|>", 261})},
                           {"sep", Json::array({"<|endoftext|>", 261})}, {"trim_offsets", true}, {"add_prefix_space", false}};
  const auto dir = std::filesystem::temp_directory_path() / "moe_tokenizer_test_folder";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << doc.dump();
  std::ofstream(dir / "tokenizer_config.json") << Json{{"eos_token", "<|endoftext|>"}}.dump();
  const Tokenizer folder = Tokenizer::from_folder(dir);
  CHECK(folder.encode("he", true) == Ids{261, 257, 261});
  CHECK(folder.eos_id() == 261);
  std::filesystem::remove_all(dir);
}

TEST_CASE("added tokens: longest match, lstrip/rstrip, single_word, normalized", "[tokenizer][added_tokens]") {
  Json doc = test::byte_level_doc();
  doc["added_tokens"].push_back(added(262, "<mask>", true, false, true, true));
  doc["added_tokens"].push_back(added(263, "<m>", true));
  doc["added_tokens"].push_back(added(264, "ab", false, false, false, false, true));
  const Tokenizer tok = test::make_tokenizer(doc);
  CHECK(tok.encode("a <mask> b") == Ids{'a', 262, 'b'});          // spaces on both sides absorbed
  CHECK(tok.encode("a <m> b") == Ids{'a', ' ', 263, ' ', 'b'});   // no strip flags: spaces stay
  CHECK(tok.encode("<mask><m>") == Ids{262, 263});                // longest match first
  CHECK(tok.encode("ab cab ab.") == Ids{264, ' ', 'c', 'a', 'b', ' ', 264, '.'});  // single_word
  CHECK(tok.decode(Ids{'a', 262, 'b'}) == "a<mask>b");

  // normalized=true tokens match the normalized text, normalized=false the raw text.
  Json lower = test::byte_level_doc();
  lower["normalizer"] = {{"type", "Lowercase"}};
  lower["added_tokens"].push_back(added(262, "hello", false, true));
  lower["added_tokens"].push_back(added(263, "WORLD", false, false));
  const Tokenizer lt = test::make_tokenizer(lower);
  CHECK(lt.encode("HeLLo") == Ids{262});
  CHECK(lt.encode("WORLD") == Ids{263});
  CHECK(lt.encode("World") == Ids{'w', 'o', 'r', 'l', 'd'});
}

TEST_CASE("Metaspace prepend_scheme first: only the piece at the start of the input", "[tokenizer][metaspace]") {
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {S, 2}, {"a", 3}, {S + "a", 4}};
  Json doc = test::tokenizer_doc(Json{{"type", "BPE"}, {"unk_token", "<unk>"}, {"vocab", vocab},
                                      {"merges", Json::array({Json::array({S, "a"})})}});
  doc["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "first"}, {"split", true}};
  doc["decoder"] = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "first"}, {"split", true}};
  doc["added_tokens"] = Json::array({added(1, "<s>", true)});
  const Tokenizer tok = test::make_tokenizer(doc);
  CHECK(tok.encode("a a") == Ids{4, 4});
  CHECK(tok.encode("<s>a a") == Ids{1, 3, 4});
  CHECK(tok.decode(Ids{4, 4}) == "a a");
  CHECK(tok.decode(Ids{1, 3, 4}) == "<s>a a");
}

TEST_CASE("invalid input text and ids", "[tokenizer][errors]") {
  const Tokenizer tok = test::make_tokenizer(test::byte_level_doc());
  std::string message;
  CHECK(error_code_of([&] { tok.encode("ok\xC3"); }, &message) == ErrorCode::kTokenizer);
  CHECK(contains(message, "UTF-8"));
  CHECK(error_code_of([&] { tok.encode("\xED\xA0\x80"); }) == ErrorCode::kTokenizer);
  CHECK(error_code_of([&] { tok.decode(Ids{1, 262}); }, &message) == ErrorCode::kInvalidArgument);
  CHECK(contains(message, "262"));
  CHECK(error_code_of([&] { tok.decode(Ids{-1}); }) == ErrorCode::kInvalidArgument);
  StreamDecoder stream(tok);
  CHECK(error_code_of([&] { stream.push(100000); }) == ErrorCode::kInvalidArgument);
  CHECK(stream.push('a') == "a");  // still usable after the error
}

TEST_CASE("malformed tokenizer.json files give moe::Error naming the key", "[tokenizer][errors]") {
  struct Case {
    const char* what;
    std::function<void(Json&)> edit;
    ErrorCode code;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"model missing", [](Json& d) { d.erase("model"); }, ErrorCode::kTokenizer, "model"},
      {"model not an object", [](Json& d) { d["model"] = 3; }, ErrorCode::kTokenizer, "model"},
      {"WordPiece", [](Json& d) { d["model"]["type"] = "WordPiece"; }, ErrorCode::kUnsupported, "WordPiece"},
      {"Unigram", [](Json& d) { d["model"] = {{"type", "Unigram"}, {"vocab", Json::array()}}; }, ErrorCode::kUnsupported, "Unigram"},
      {"vocab id is a string", [](Json& d) { d["model"]["vocab"]["a"] = "0"; }, ErrorCode::kTokenizer, "model.vocab.a"},
      {"vocab id negative", [](Json& d) { d["model"]["vocab"]["a"] = -4; }, ErrorCode::kTokenizer, "model.vocab.a"},
      {"vocab id huge", [](Json& d) { d["model"]["vocab"]["a"] = 4000000000LL; }, ErrorCode::kTokenizer, "model.vocab.a"},
      {"sparse id space", [](Json& d) { d["model"]["vocab"]["zz"] = 100000000; }, ErrorCode::kTokenizer, "model.vocab"},
      {"duplicate id", [](Json& d) { d["model"]["vocab"]["zz"] = 3; }, ErrorCode::kTokenizer, "duplicate id 3"},
      {"merge with unknown token", [](Json& d) { d["model"]["merges"].push_back("a q"); }, ErrorCode::kTokenizer, "model.merges[5]"},
      {"merge result unknown", [](Json& d) { d["model"]["merges"].push_back("c c"); }, ErrorCode::kTokenizer, "'cc'"},
      {"merge without space", [](Json& d) { d["model"]["merges"].push_back("abc"); }, ErrorCode::kTokenizer, "model.merges[5]"},
      {"merge pair of 3", [](Json& d) { d["model"]["merges"].push_back(Json::array({"a", "b", "c"})); }, ErrorCode::kTokenizer, "model.merges[5]"},
      {"merge is a number", [](Json& d) { d["model"]["merges"].push_back(7); }, ErrorCode::kTokenizer, "model.merges[5]"},
      {"merges not an array", [](Json& d) { d["model"]["merges"] = "a b"; }, ErrorCode::kTokenizer, "model.merges"},
      {"unknown normalizer", [](Json& d) { d["normalizer"] = {{"type", "Shout"}}; }, ErrorCode::kUnsupported, "Shout"},
      {"normalizer without type", [](Json& d) { d["normalizer"] = Json::object(); }, ErrorCode::kTokenizer, "normalizer"},
      {"unknown pre-tokenizer", [](Json& d) { d["pre_tokenizer"] = {{"type", "Scramble"}}; }, ErrorCode::kUnsupported, "Scramble"},
      {"unknown decoder", [](Json& d) { d["decoder"] = {{"type", "Garble"}}; }, ErrorCode::kUnsupported, "Garble"},
      {"bad regex", [](Json& d) { d["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(["}}}, {"behavior", "Isolated"}}; },
       ErrorCode::kTokenizer, "pre_tokenizer.pattern.Regex"},
      {"added token id is a bool", [](Json& d) { d["added_tokens"] = Json::array({added(0, "x", true)}); d["added_tokens"][0]["id"] = true; },
       ErrorCode::kTokenizer, "added_tokens[0].id"},
      {"added tokens duplicate id", [](Json& d) { d["added_tokens"] = Json::array({added(10, "x", true), added(10, "y", true)}); },
       ErrorCode::kTokenizer, "duplicate id 10"},
      {"added token id far out", [](Json& d) { d["added_tokens"] = Json::array({added(2000000000, "x", true)}); },
       ErrorCode::kTokenizer, "out of range"},
      {"post-processor unknown id", [](Json& d) {
         d["post_processor"] = {{"type", "BertProcessing"}, {"cls", Json::array({"x", 99})}, {"sep", Json::array({"x", 1})}};
       }, ErrorCode::kTokenizer, "post_processor"},
      {"flag of wrong type", [](Json& d) { d["model"]["byte_fallback"] = "yes"; }, ErrorCode::kTokenizer, "model.byte_fallback"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Json doc = test::tokenizer_doc(test::tiny_bpe_model(false));
    c.edit(doc);
    std::string message;
    CHECK(error_code_of([&] { test::make_tokenizer(doc); }, &message) == c.code);
    INFO(message);
    CHECK(contains(message, c.needle));
    CHECK(contains(message, "tokenizer.json"));
  }
  std::string message;
  CHECK(error_code_of([&] { Tokenizer::from_json_text("{\"model\": [1, 2"); }, &message) == ErrorCode::kTokenizer);
  CHECK(error_code_of([&] { Tokenizer::from_json_text("[]"); }) == ErrorCode::kTokenizer);
  CHECK(error_code_of([&] { Tokenizer::from_file("/nonexistent/tokenizer.json"); }, &message) == ErrorCode::kIo);
  CHECK(contains(message, "/nonexistent/tokenizer.json"));
}

namespace {

// Streams `ids` one at a time and checks each piece is valid UTF-8 and that the pieces plus the
// flush equal the one-shot decode.
void check_stream(const Tokenizer& tok, const Ids& ids, bool skip_special) {
  StreamDecoder stream(tok, skip_special);
  std::string streamed, shown;
  for (std::int32_t id : ids) shown += std::to_string(id) + " ";
  INFO("ids: " << shown << (skip_special ? "(skip special)" : ""));
  for (std::int32_t id : ids) {
    const std::string piece = stream.push(id);
    REQUIRE(tokenizer::is_valid_utf8(piece));
    streamed += piece;
  }
  streamed += stream.flush();
  REQUIRE(streamed == tok.decode(ids, skip_special));
}

void check_random_streams(const Tokenizer& tok, const Ids& interesting, std::uint32_t seed) {
  std::mt19937 rng(seed);
  const auto n_vocab = static_cast<std::int32_t>(tok.vocab_size());
  for (int round = 0; round < 300; ++round) {
    Ids ids;
    const int n = 1 + static_cast<int>(rng() % 24);
    for (int k = 0; k < n; ++k) {
      std::int32_t id = rng() % 2 ? interesting[rng() % interesting.size()] : static_cast<std::int32_t>(rng() % n_vocab);
      if (tok.has_id(id)) ids.push_back(id);
    }
    INFO("round " << round);
    check_stream(tok, ids, round % 3 == 0);
  }
}

}  // namespace

TEST_CASE("streaming decode equals one-shot decode", "[tokenizer][stream]") {
  SECTION("byte-level, characters split across tokens") {
    const Tokenizer tok = test::make_tokenizer(test::byte_level_doc());
    StreamDecoder stream(tok);
    CHECK(stream.push('a') == "a");
    CHECK(stream.push(0xE4) == "");  // 中 = E4 B8 AD arrives one byte per token
    CHECK(stream.push(0xB8) == "");
    CHECK(stream.push(0xAD) == "\xE4\xB8\xAD");
    CHECK(stream.push(258) == " the");
    CHECK(stream.push(0xF0) == "");
    CHECK(stream.flush() == "\xEF\xBF\xBD");  // an unfinished character decodes to U+FFFD at the end
    // Multi-byte, invalid and special ids at random.
    check_random_streams(tok, Ids{0xE4, 0xB8, 0xAD, 0xF0, 0x9F, 0x98, 0x80, 0xC3, 0xA9, 0x80, 0xFF, 261, 258, ' '}, 1);
  }
  SECTION("SentencePiece style: byte fallback groups, leading-space strip") {
    const Tokenizer tok = test::make_tokenizer(test::sentencepiece_doc());
    StreamDecoder stream(tok);
    CHECK(stream.push(263) == "hi");  // "▁hi": the decoder strips the first space
    CHECK(stream.push(259) == " ");
    CHECK(stream.push(3 + 0x41) == "");  // <0x41> is held: a following byte could make the group invalid
    CHECK(stream.push(3 + 0xB8) == "");
    CHECK(stream.push(263) == "\xEF\xBF\xBD\xEF\xBF\xBD hi");
    CHECK(stream.flush() == "");
    check_random_streams(tok, Ids{259, 262, 263, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD, 3 + 0x41, 3 + 0x0A, 1, 2, 264}, 2);
  }
  SECTION("Metaspace decoder: the first token loses its ▁") {
    Json vocab = {{"<unk>", 0}, {"<s>", 1}, {S, 2}, {"a", 3}, {S + "a", 4}, {S + S, 5}};
    Json doc = test::tokenizer_doc(Json{{"type", "BPE"}, {"unk_token", "<unk>"}, {"vocab", vocab}, {"merges", Json::array()}});
    doc["decoder"] = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "always"}, {"split", true}};
    doc["added_tokens"] = Json::array({added(1, "<s>", true)});
    const Tokenizer tok = test::make_tokenizer(doc);
    check_stream(tok, Ids{5, 4, 2, 4}, false);
    check_stream(tok, Ids{1, 4, 4}, true);
    check_random_streams(tok, Ids{1, 2, 3, 4, 5}, 3);
  }
  SECTION("strip at the end: Strip decoder with stop") {
    Json doc = test::sentencepiece_doc();
    doc["decoder"]["decoders"][3]["stop"] = 2;
    const Tokenizer tok = test::make_tokenizer(doc);
    check_stream(tok, Ids{263, 259, 259, 259, 263, 259}, false);
    check_random_streams(tok, Ids{259, 263, 3 + 0x20, 3 + 0xC3, 3 + 0xA9}, 4);
  }
}

TEST_CASE("one tokenizer encodes and decodes from several threads", "[tokenizer][threads]") {
  const Tokenizer tok = test::make_tokenizer(test::byte_level_doc());
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) texts.push_back(fmt::format("the {} the\n  {}<|endoftext|>\xE4\xB8\xAD {}", i, i * 7, i % 5));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w)
    threads.emplace_back([&, w] {
      const Tokenizer copy = tok;  // copies share the loaded data and the word cache
      for (int round = 0; round < 20; ++round)
        for (std::size_t i = 0; i < texts.size(); ++i)
          if (copy.encode(texts[i]) != expected[i] || copy.decode(expected[i]) != texts[i]) ++mismatches[w];
    });
  for (auto& t : threads) t.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}
