// Unit tests of the tokenizer's parts: UTF-8 helpers, Unicode predicates, the byte-level map,
// regex iteration, split behaviours, normalizers, pre-tokenizers and decoders.
#include "tokenizer_test_util.hpp"

#include <moe/tokenizer/decoder.hpp>
#include <moe/tokenizer/normalizer.hpp>
#include <moe/tokenizer/pre_tokenizer.hpp>
#include <moe/tokenizer/regex.hpp>
#include <moe/tokenizer/unicode.hpp>
#include <moe/tokenizer/utf8.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <vector>

using namespace moe::tokenizer;
using moe::test::Json;
using moe::test::S;
using Strings = std::vector<std::string>;

namespace {

const std::string kFile = "unit-test.json";

std::string normalize(const Json& j, std::string text) {
  const JsonNode node(j, "normalizer", kFile);
  Normalizer::from_json(&node).normalize(text);
  return text;
}

Strings pre_tokenize(const Json& j, const std::string& text, bool at_start = true) {
  const JsonNode node(j, "pre_tokenizer", kFile);
  const PreTokenizer p = PreTokenizer::from_json(&node);
  std::vector<Piece> pieces{Piece{text, -1, at_start}};
  p.pre_tokenize(pieces);
  Strings out;
  for (const auto& piece : pieces) out.push_back(piece.text);
  return out;
}

std::string decode_tokens(const Json& j, Strings tokens) {
  const JsonNode node(j, "decoder", kFile);
  return Decoder::from_json(&node).decode(std::move(tokens));
}

Json split(const std::string& literal, const char* behavior, bool invert = false) {
  return Json{{"type", "Split"}, {"pattern", {{"String", literal}}}, {"behavior", behavior}, {"invert", invert}};
}

std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s.push_back(static_cast<char>(b));
  return s;
}

}  // namespace

TEST_CASE("utf8: validation and incomplete tails", "[tokenizer][utf8]") {
  CHECK(is_valid_utf8("hello \xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"));
  CHECK(utf8_first_invalid("ab\xC3") == 2);               // truncated
  CHECK(utf8_first_invalid("abcdefgh\x80") == 8);         // lone continuation after the ASCII fast path
  CHECK(utf8_first_invalid("\xC0\xAF") == 0);             // overlong
  CHECK(utf8_first_invalid("\xED\xA0\x80") == 0);         // surrogate
  CHECK(utf8_first_invalid("\xF4\x90\x80\x80") == 0);     // above U+10FFFF
  CHECK(utf8_first_invalid("\xFF") == 0);
  CHECK(utf8_incomplete_tail("a\xE4\xB8") == 2);
  CHECK(utf8_incomplete_tail("a\xE4") == 1);
  CHECK(utf8_incomplete_tail("a\xE4\xB8\xAD") == 0);
  CHECK(utf8_incomplete_tail("a\xF0\x9F\x98") == 3);
  CHECK(utf8_incomplete_tail("a\x80") == 0);  // not a prefix of anything
  CHECK(utf8_incomplete_tail("") == 0);
}

TEST_CASE("utf8: lossy conversion matches Rust from_utf8_lossy", "[tokenizer][utf8]") {
  const std::string R = std::string(kReplacementUtf8);
  CHECK(utf8_lossy("Hello\xF0\x90\x80World") == "Hello" + R + "World");  // Rust documentation example
  CHECK(utf8_lossy("\xE0\x80") == R + R);              // E0 needs A0..BF next: two maximal subparts
  CHECK(utf8_lossy("\xF4\x90\x80\x80") == R + R + R + R);
  CHECK(utf8_lossy("\xED\xA0\x80") == R + R + R);
  CHECK(utf8_lossy("\xE4\xB8") == R);                  // one truncated sequence -> one U+FFFD
  CHECK(utf8_lossy("\xE4\xB8" "a") == R + "a");
  CHECK(utf8_lossy("\xE4\xB8\xAD") == "\xE4\xB8\xAD");
  CHECK(utf8_lossy("a\xFF" "b") == "a" + R + "b");
}

TEST_CASE("unicode: character classes", "[tokenizer][unicode]") {
  CHECK(is_whitespace(U' '));
  CHECK(is_whitespace(U'\n'));
  CHECK(is_whitespace(0x3000));
  CHECK(is_whitespace(0x85));
  CHECK_FALSE(is_whitespace(0x200B));  // zero width space is not White_Space
  CHECK(is_numeric(U'7'));
  CHECK(is_numeric(0x00B2));  // ² (No)
  CHECK(is_numeric(0x0663));  // Arabic-Indic three (Nd)
  CHECK_FALSE(is_numeric(U'x'));
  CHECK(is_punctuation(U'$'));  // ASCII punctuation includes ASCII symbols
  CHECK(is_punctuation(0x3002));  // 。
  CHECK_FALSE(is_punctuation(0x2603));  // ☃ is a symbol
  CHECK(is_word_char(U'_'));
  CHECK(is_word_char(0x4E2D));
  CHECK_FALSE(is_word_char(U'.'));
}

TEST_CASE("unicode: normalization forms and lowercase", "[tokenizer][unicode]") {
  const std::string composed = "\xC3\xA9", decomposed = "e\xCC\x81";
  CHECK(unicode_normalize(decomposed, NormalizationForm::kNfc) == composed);
  CHECK(unicode_normalize(composed, NormalizationForm::kNfd) == decomposed);
  CHECK(unicode_normalize("\xEF\xAC\x81 x\xC2\xB2", NormalizationForm::kNfkc) == "fi x2");  // ﬁ x²
  CHECK(unicode_normalize("\xEF\xAC\x81", NormalizationForm::kNfc) == "\xEF\xAC\x81");
  CHECK(unicode_normalize(composed, NormalizationForm::kNfkd) == decomposed);
  CHECK(unicode_lowercase("HeLLo \xC3\x80\xC3\x89 \xC4\xB0 \xCE\xA3") == "hello \xC3\xA0\xC3\xA9 i\xCC\x87 \xCF\x83");
}

TEST_CASE("byte-level map: all 256 bytes round trip", "[tokenizer][byte_level]") {
  const ByteLevelMap& map = byte_level_map();
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string encoded;
  map.encode(all, encoded);
  CHECK(is_valid_utf8(encoded));
  CHECK(utf8_length(encoded) == 256);
  std::string decoded;
  REQUIRE(map.decode(encoded, decoded));
  CHECK(decoded == all);
  // The GPT-2 table: printable bytes map to themselves, space to Ġ, newline to Ċ, 0xAD to Ń.
  CHECK(map.byte_to_char('A') == U'A');
  CHECK(map.byte_to_char(' ') == 0x120);
  CHECK(map.byte_to_char('\n') == 0x10A);
  CHECK(map.byte_to_char(0xAD) == 0x143);
  CHECK(map.byte_to_char(0xFF) == 0xFF);
  std::set<char32_t> image;
  for (int b = 0; b < 256; ++b) image.insert(map.byte_to_char(static_cast<unsigned char>(b)));
  CHECK(image.size() == 256);
  std::string out;
  CHECK_FALSE(map.decode("a\xE4\xB8\xAD", out));  // 中 is not in the image
  CHECK(out.empty());
}

TEST_CASE("regex: Unicode classes and Rust-style empty-match iteration", "[tokenizer][regex]") {
  const Regex r = Regex::compile("a*", "test");
  std::vector<std::pair<std::size_t, std::size_t>> m;
  r.for_each_match("baaac", [&](std::size_t b, std::size_t e) { m.emplace_back(b, e); });
  CHECK(m == std::vector<std::pair<std::size_t, std::size_t>>{{0, 0}, {1, 4}, {5, 5}});

  const Regex letters = Regex::compile(R"(\p{L}+|(?i:'S))", "test");
  std::vector<std::string> words;
  const std::string text = "caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 it'S";
  letters.for_each_match(text, [&](std::size_t b, std::size_t e) { words.push_back(text.substr(b, e - b)); });
  CHECK(words == Strings{"caf\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87", "it", "'S"});

  CHECK_THROWS_AS(Regex::compile("(unclosed", "file.json: key"), moe::Error);
  try {
    Regex::compile("(unclosed", "file.json: key");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kTokenizer);
    CHECK(std::string(e.what()).find("file.json: key") != std::string::npos);
  }
}

TEST_CASE("split behaviours follow the tokenizers library", "[tokenizer][split]") {
  const std::string t = "the-final--countdown";
  CHECK(pre_tokenize(split("-", "Removed"), t) == Strings{"the", "final", "countdown"});
  CHECK(pre_tokenize(split("-", "Isolated"), t) == Strings{"the", "-", "final", "-", "-", "countdown"});
  CHECK(pre_tokenize(split("-", "MergedWithPrevious"), t) == Strings{"the-", "final-", "-", "countdown"});
  CHECK(pre_tokenize(split("-", "MergedWithNext"), t) == Strings{"the", "-final", "-", "-countdown"});
  CHECK(pre_tokenize(split("-", "Contiguous"), t) == Strings{"the", "-", "final", "--", "countdown"});
  CHECK(pre_tokenize(split("-", "Removed", true), t) == Strings{"-", "-", "-"});
  const Json regex = {{"type", "Split"}, {"pattern", {{"Regex", R"(\s+)"}}}, {"behavior", "Isolated"}, {"invert", false}};
  CHECK(pre_tokenize(regex, "a  b\tc") == Strings{"a", "  ", "b", "\t", "c"});
  CHECK(pre_tokenize(regex, "").empty());
  const Json bad = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}, {"invert", false}};
  CHECK_THROWS_AS(pre_tokenize(bad, "x"), moe::Error);
}

TEST_CASE("normalizers", "[tokenizer][normalizer]") {
  CHECK(normalize({{"type", "NFC"}}, "cafe\xCC\x81") == "caf\xC3\xA9");
  CHECK(normalize({{"type", "NFD"}}, "caf\xC3\xA9") == "cafe\xCC\x81");
  CHECK(normalize({{"type", "NFKC"}}, "\xEF\xBC\xA1\xEF\xBC\x91") == "A1");  // Ａ１ fullwidth
  CHECK(normalize({{"type", "NFKD"}}, "\xC2\xBD") == "1\xE2\x81\x84" "2");    // ½ -> 1⁄2
  CHECK(normalize({{"type", "Lowercase"}}, "HeLLo W\xC3\x96RLD") == "hello w\xC3\xB6rld");
  CHECK(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, " \t hi \xE3\x80\x80") == "hi");
  CHECK(normalize({{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}}, "  hi  ") == "  hi");
  CHECK(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", S}}, "a b  c") == "a" + S + "b" + S + S + "c");
  CHECK(normalize({{"type", "Replace"}, {"pattern", {{"Regex", R"(\s+)"}}}, {"content", " "}}, "a \t\n b") == "a b");
  CHECK(normalize({{"type", "Prepend"}, {"prepend", S}}, "hi") == S + "hi");
  CHECK(normalize({{"type", "Prepend"}, {"prepend", S}}, "").empty());
  CHECK(normalize({{"type", "StripAccents"}}, "cafe\xCC\x81") == "cafe");
  // Spacing (Mc: Devanagari vowel sign AA U+093E) and enclosing (Me: U+20DD) marks go too.
  CHECK(normalize({{"type", "StripAccents"}}, "\xE0\xA4\xA8\xE0\xA4\xBE 1\xE2\x83\x9D") == "\xE0\xA4\xA8 1");
  const Json seq = {{"type", "Sequence"},
                    {"normalizers", Json::array({Json{{"type", "NFKC"}}, Json{{"type", "Lowercase"}},
                                                 Json{{"type", "Prepend"}, {"prepend", S}}})}};
  CHECK(normalize(seq, "\xEF\xBC\xA8I") == S + "hi");
  CHECK(normalize(nullptr, "unchanged") == "unchanged");
  try {
    normalize({{"type", "Precompiled"}, {"precompiled_charsmap", "AAAA"}}, "x");
    FAIL("Precompiled should be unsupported");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kUnsupported);
    CHECK(std::string(e.what()).find("Precompiled") != std::string::npos);
  }
}

TEST_CASE("pre-tokenizers", "[tokenizer][pre_tokenizer]") {
  const std::string G = "\xC4\xA0", C = "\xC4\x8A";  // Ġ Ċ
  const Json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  CHECK(pre_tokenize(byte_level, "Hello  world\n") == Strings{"Hello", G, G + "world", C});
  CHECK(pre_tokenize(byte_level, "it's 2024!") == Strings{"it", "'s", G + "2024", "!"});
  const Json prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", false}};
  CHECK(pre_tokenize(prefix, "a b") == Strings{G + "a" + G + "b"});
  CHECK(pre_tokenize(prefix, " a") == Strings{G + "a"});

  const Json always = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "always"}, {"split", true}};
  CHECK(pre_tokenize(always, "Hey   friend!") == Strings{S + "Hey", S, S, S + "friend!"});
  const Json first = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "first"}, {"split", true}};
  CHECK(pre_tokenize(first, "Hey friend", true) == Strings{S + "Hey", S + "friend"});
  CHECK(pre_tokenize(first, "Hey friend", false) == Strings{"Hey", S + "friend"});
  const Json nosplit = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "never"}, {"split", false}};
  CHECK(pre_tokenize(nosplit, "a b") == Strings{"a" + S + "b"});
  const Json legacy = {{"type", "Metaspace"}, {"replacement", S}, {"add_prefix_space", false}};
  CHECK(pre_tokenize(legacy, "a b") == Strings{"a", S + "b"});

  CHECK(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "a123b45") ==
        Strings{"a", "1", "2", "3", "b", "4", "5"});
  CHECK(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "a123b45") == Strings{"a", "123", "b", "45"});
  CHECK(pre_tokenize({{"type", "Whitespace"}}, "Hey friend!  ok?") == Strings{"Hey", "friend", "!", "ok", "?"});
  CHECK(pre_tokenize({{"type", "WhitespaceSplit"}}, "Hey friend!  ok?") == Strings{"Hey", "friend!", "ok?"});
  CHECK(pre_tokenize({{"type", "Punctuation"}, {"behavior", "Isolated"}}, "Hey, you!") == Strings{"Hey", ",", " you", "!"});
  CHECK(pre_tokenize({{"type", "BertPreTokenizer"}}, "Hey, you!") == Strings{"Hey", ",", "you", "!"});
  CHECK(pre_tokenize({{"type", "CharDelimiterSplit"}, {"delimiter", "|"}}, "a|b||c") == Strings{"a", "b", "c"});
  const Json seq = {{"type", "Sequence"},
                    {"pretokenizers", Json::array({Json{{"type", "WhitespaceSplit"}},
                                                   Json{{"type", "Digits"}, {"individual_digits", true}}})}};
  CHECK(pre_tokenize(seq, "ab12 c3") == Strings{"ab", "1", "2", "c", "3"});
  try {
    pre_tokenize({{"type", "UnicodeScripts"}}, "x");
    FAIL("UnicodeScripts should be unsupported");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kUnsupported);
  }
}

TEST_CASE("decoders", "[tokenizer][decoder]") {
  const std::string G = "\xC4\xA0", C = "\xC4\x8A", R = std::string(kReplacementUtf8);
  const ByteLevelMap& map = byte_level_map();
  auto bl = [&](const std::string& raw) {
    std::string s;
    map.encode(raw, s);
    return s;
  };
  const Json byte_level = {{"type", "ByteLevel"}};
  CHECK(decode_tokens(byte_level, {"Hello", G + "world", C}) == "Hello world\n");
  CHECK(decode_tokens(byte_level, {bl(bytes({0xE4, 0xB8})), bl(bytes({0xAD}))}) == "\xE4\xB8\xAD");  // 中 split
  CHECK(decode_tokens(byte_level, {bl(bytes({0xE4, 0xB8}))}) == R);
  CHECK(decode_tokens(byte_level, {"a", "<\xEF\xBD\x9C" "end\xEF\xBD\x9C>"}) == "a<\xEF\xBD\x9C" "end\xEF\xBD\x9C>");

  const Json fallback = {{"type", "ByteFallback"}};
  CHECK(decode_tokens(fallback, {"<0xE4>", "<0xB8>", "<0xAD>", "a"}) == "\xE4\xB8\xAD" "a");
  CHECK(decode_tokens(fallback, {"<0xE4>", "a", "<0x41>"}) == R + "aA");
  CHECK(decode_tokens(fallback, {"<0x41>", "<0xB8>"}) == R + R);  // an invalid group: one U+FFFD per byte
  CHECK(decode_tokens(fallback, {"<0x4g>", "<0x0A>"}) == "<0x4g>\n");

  CHECK(decode_tokens({{"type", "Fuse"}}, {"a", "b"}) == "ab");
  const Json strip = {{"type", "Strip"}, {"content", " "}, {"start", 2}, {"stop", 1}};
  CHECK(decode_tokens(strip, {"   x  ", " y"}) == " x y");  // per token: 2 leading, 1 trailing
  CHECK(decode_tokens(strip, {" "}) == "");

  const Json metaspace = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "always"}, {"split", true}};
  CHECK(decode_tokens(metaspace, {S + "Hey", S + "friend!"}) == "Hey friend!");
  CHECK(decode_tokens(metaspace, {S + S + "a", S + "b"}) == "a b");  // every ▁ of the first token goes
  const Json never = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "never"}, {"split", true}};
  CHECK(decode_tokens(never, {S + "Hey", S + "friend!"}) == " Hey friend!");

  CHECK(decode_tokens({{"type", "BPEDecoder"}, {"suffix", "</w>"}}, {"hel", "lo</w>", "wor", "ld</w>"}) == "hello world");
  CHECK(decode_tokens({{"type", "Replace"}, {"pattern", {{"String", S}}}, {"content", " "}}, {S + "a" + S, "b"}) == " a b");

  const Json llama = {{"type", "Sequence"},
                      {"decoders", Json::array({Json{{"type", "Replace"}, {"pattern", {{"String", S}}}, {"content", " "}},
                                                Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
                                                Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  CHECK(decode_tokens(llama, {S + "Hello", S + "w", "<0xC3>", "<0xB6>", "rld"}) == "Hello w\xC3\xB6rld");
  CHECK(decode_tokens(nullptr, {"a", "b"}) == "a b");
  try {
    decode_tokens({{"type", "CTC"}}, {"a"});
    FAIL("CTC should be unsupported");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kUnsupported);
  }
}
