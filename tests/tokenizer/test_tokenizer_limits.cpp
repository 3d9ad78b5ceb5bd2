// Tests of the tokenizer against hostile input: `\C` and backtracking verbs in a regex, the regex
// work budget (a windowed search that must give the same matches as one search over the whole
// text), and cost bounds - work counted at two input sizes must grow at most linearly - for the
// regex search, added-token matching, literal patterns and the streaming decoder.
#include "tokenizer_test_util.hpp"

#include <moe/tokenizer/added_tokens.hpp>
#include <moe/tokenizer/pattern.hpp>
#include <moe/tokenizer/regex.hpp>
#include <moe/tokenizer/stream_decoder.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace moe;
using test::error_code_of;
using test::Ids;
using test::Json;
using tokenizer::Regex;
using tokenizer::RegexBudget;

namespace {

using Matches = std::vector<std::pair<std::size_t, std::size_t>>;

// The matches of one PCRE2 search over the whole text per match, as Regex did before windows
// and budgets (the reference the windowed search must reproduce).
Matches reference_matches(const std::string& pattern, std::string_view text) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error_code, &error_offset, nullptr);
  REQUIRE(code != nullptr);
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  Matches out;
  std::size_t pos = 0;
  std::optional<std::size_t> last_end;
  while (pos <= text.size()) {
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0, data, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    REQUIRE(rc >= 0);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data);
    std::size_t b = ov[0], e = ov[1];
    if (b > e) b = e;
    if (b == e && last_end == e) {
      if (pos >= text.size()) break;
      const std::size_t len = tokenizer::utf8_sequence_length(static_cast<unsigned char>(text[pos]));
      pos += len == 0 ? 1 : len;
      continue;
    }
    out.emplace_back(b, e);
    last_end = e;
    pos = e;
  }
  pcre2_match_data_free(data);
  pcre2_code_free(code);
  return out;
}

Matches windowed_matches(const Regex& r, std::string_view text, std::size_t first_window) {
  RegexBudget budget(text.size(), first_window);
  Matches out;
  r.for_each_match(text, budget, [&](std::size_t b, std::size_t e) { out.emplace_back(b, e); });
  return out;
}

// Random UTF-8 text from pieces that meet the patterns' edge cases: runs of spaces and letters,
// multi-byte and combining characters, CRLF, apostrophes, digits.
std::string random_text(std::mt19937& rng, std::size_t pieces) {
  static const std::vector<std::string> alphabet = {
      "a", "b", "c", "Z", "\xC3\xA9", "e\xCC\x81", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", " ", "  ", "\n", "\r\n", "\r",
      "\t", "1", "23", "'", "'s", "'LL", ".", "_", "-", "\xE2\x80\x83", "ab", "aab", "x"};
  std::string s;
  for (std::size_t k = 0; k < pieces; ++k) {
    const std::string& piece = alphabet[rng() % alphabet.size()];
    const std::size_t repeat = rng() % 4 == 0 ? 1 + rng() % 40 : 1;
    for (std::size_t r = 0; r < repeat; ++r) s += piece;
  }
  return s;
}

// Every "Regex" string in a JSON document.
void collect_regexes(const Json& j, std::vector<std::string>& out) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "Regex" && it.value().is_string()) out.push_back(it.value().get<std::string>());
      collect_regexes(it.value(), out);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) collect_regexes(v, out);
  }
}

std::vector<std::string> fixture_regexes() {
  std::vector<std::string> out;
  const std::filesystem::path root = std::filesystem::path(MOE_FIXTURES_DIR) / "tokenizers";
  if (!std::filesystem::is_directory(root)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const auto file = entry.path() / "tokenizer.json";
    if (std::filesystem::exists(file)) collect_regexes(tokenizer::read_tokenizer_json_file(file), out);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// A tokenizer (the tiny BPE) whose pre-tokenizer is one Split on `regex`.
Tokenizer split_tokenizer(const std::string& regex) {
  Json doc = test::tokenizer_doc(test::tiny_bpe_model(false));
  doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
  return test::make_tokenizer(doc);
}

std::uint64_t regex_charge_of(const Regex& r, const std::string& text) {
  const std::uint64_t before = tokenizer::detail::regex_bytes_charged();
  r.for_each_match(text, [](std::size_t, std::size_t) {});
  return tokenizer::detail::regex_bytes_charged() - before;
}

}  // namespace

TEST_CASE("regex: \\C is refused when the pattern is compiled", "[tokenizer][regex][limits]") {
  std::string message;
  CHECK(error_code_of([] { Regex::compile("a\\Cb", "file.json: key"); }, &message) == ErrorCode::kTokenizer);
  CHECK(test::contains(message, "a\\Cb"));
  CHECK(test::contains(message, "file.json: key"));
  // The same in a Split pre-tokenizer of a tokenizer.json: the error names the key and the pattern.
  CHECK(error_code_of([] { split_tokenizer("\\C"); }, &message) == ErrorCode::kTokenizer);
  CHECK(test::contains(message, "pre_tokenizer.pattern.Regex"));
  CHECK(test::contains(message, "'\\C'"));
  // An escaped backslash followed by C is a literal and still fine.
  const Regex literal = Regex::compile("\\\\C", "test");
  CHECK(windowed_matches(literal, "a\\Cb", 128) == Matches{{1, 3}});
}

TEST_CASE("regex: (*COMMIT), (*SKIP) and over-long patterns are refused", "[tokenizer][regex][limits]") {
  std::string message;
  CHECK(error_code_of([] { Regex::compile("a(*COMMIT)b", "test"); }, &message) == ErrorCode::kUnsupported);
  CHECK(test::contains(message, "(*COMMIT)"));
  CHECK(error_code_of([] { Regex::compile("a(*SKIP)b|.", "test"); }) == ErrorCode::kUnsupported);
  const std::string huge(tokenizer::kMaxRegexPatternBytes + 1, 'a');
  CHECK(error_code_of([&] { Regex::compile(huge, "test"); }, &message) == ErrorCode::kTokenizer);
  CHECK(message.size() < 1000);  // the pattern is shortened in the message
}

TEST_CASE("regex: text that is not UTF-8 is refused instead of matched unchecked", "[tokenizer][regex][limits]") {
  const Regex r = Regex::compile("\\p{L}+", "test");
  std::string message;
  CHECK(error_code_of([&] { r.for_each_match("ab\xC3", [](std::size_t, std::size_t) {}); }, &message) ==
        ErrorCode::kTokenizer);
  CHECK(test::contains(message, "not valid UTF-8"));
}

TEST_CASE("regex: windowed search gives the matches of one search over the whole text", "[tokenizer][regex][limits]") {
  std::vector<std::string> patterns = {
      std::string(tokenizer::kGpt2Pattern),
      R"([\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]+|[^\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\s]+)",
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      "a(?=a*b)", R"(\s+(?!\S))", R"(\s+(?!\S)|\s+)", "a$", R"(a\z)", R"(a\Z)", R"(\b\w+\b)", R"(\B.)", "(?<=a)b",
      "(?<!a)b", "a++b", "(?>a+)b", "x*", "$", "^", "^a", R"(\Ga)", R"(a|\Gb)", R"(\G\s*\S)", "(?=(a+))", "a{2,5}?",
      R"(\X)", ".", R"(\R)", R"(\r\n)", "(?i:'s|'t|'ll)", R"(\p{L}+|\p{N}{1,3})", R"([^\s\p{L}]+)", "(a|ab)(c|bcd)(d*)",
      R"(a\Kb)", R"(\d+(?=\D))", R"([\x{4e00}-\x{9fa5}]+)", R"(\s*)", R"((?:\s|a)*?b)", R"(a$\n?)", R"(\p{M}+)",
      R"((?<=\s)\S+)", R"(\S+(?=\s|$))", "(?!a).", R"(.(?!.*a))", R"(\w+?(?=\W))"};
  for (const std::string& p : fixture_regexes()) patterns.push_back(p);
  std::mt19937 rng(20240611);
  std::vector<std::string> texts = {"", "a", " ", "aab", "  \n", std::string(300, ' ') + "x", std::string(300, 'a') + "b"};
  for (int k = 0; k < 40; ++k) texts.push_back(random_text(rng, 1 + rng() % 120));
  for (const std::string& p : patterns) {
    const Regex r = Regex::compile(p, "test");
    for (const std::string& text : texts) {
      const Matches expected = reference_matches(p, text);
      for (std::size_t window : {1, 2, 3, 5, 8, 13, 128}) {
        INFO("pattern " << p << ", window " << window << ", text of " << text.size() << " bytes: " << text);
        REQUIRE(windowed_matches(r, text, window) == expected);
      }
    }
  }
}

TEST_CASE("regex: a lookahead over the whole text exhausts the work budget", "[tokenizer][regex][limits]") {
  // ~16 s of PCRE2 work (n^2 / 2 bytes scanned) before the budget; now an error after
  // kRegexBytesPerTextByte * n bytes.
  const Tokenizer tok = split_tokenizer("a(?=a*b)");
  for (const std::string& text : {std::string(200000, 'a') + "b", std::string(200000, 'a')}) {
    const std::uint64_t before = tokenizer::detail::regex_bytes_charged();
    std::string message;
    CHECK(error_code_of([&] { tok.encode(text); }, &message) == ErrorCode::kTokenizer);
    CHECK(test::contains(message, "a(?=a*b)"));
    CHECK(test::contains(message, "work budget"));
    CHECK(test::contains(message, fmt::format("{} bytes", text.size())));
    const std::uint64_t charged = tokenizer::detail::regex_bytes_charged() - before;
    CHECK(charged <= limits::kRegexBytesPerTextByte * text.size() + tokenizer::kRegexBudgetBaseBytes);
  }
  // The same pattern on a short text still gives its matches.
  CHECK(tok.encode("aab") == Ids{0, 0, 1});
  // `a*b` over "aaa...acb": every start position scans to the 'c'.
  const Regex r = Regex::compile("a*b", "test");
  const std::string text = std::string(200000, 'a') + "cb";
  CHECK(error_code_of([&] { r.for_each_match(text, [](std::size_t, std::size_t) {}); }) == ErrorCode::kTokenizer);
}

TEST_CASE("regex: catastrophic backtracking is a kTokenizer error naming the pattern", "[tokenizer][regex][limits]") {
  const Regex r = Regex::compile("(a|aa)*c", "test");
  const std::string text(5000, 'a');
  std::string message;
  CHECK(error_code_of([&] { r.for_each_match(text, [](std::size_t, std::size_t) {}); }, &message) ==
        ErrorCode::kTokenizer);
  CHECK(test::contains(message, "(a|aa)*c"));
  CHECK(test::contains(message, "5000 bytes"));
}

TEST_CASE("regex: work grows linearly with the text", "[tokenizer][regex][limits][cost]") {
  std::mt19937 rng(7);
  const std::string small = random_text(rng, 4000);
  std::string large;
  for (int k = 0; k < 4; ++k) large += random_text(rng, 4000);
  const double size_ratio = static_cast<double>(large.size()) / static_cast<double>(small.size());
  for (const std::string& p : {std::string(tokenizer::kGpt2Pattern), std::string(R"(\s+(?!\S)|\s+)"),
                              std::string(R"(\p{L}+|\p{N}{1,3}|[^\s\p{L}\p{N}]+|\s+)")}) {
    const Regex r = Regex::compile(p, "test");
    INFO(p);
    const double ratio = static_cast<double>(regex_charge_of(r, large)) / static_cast<double>(regex_charge_of(r, small));
    CHECK(ratio <= 1.25 * size_ratio);
    CHECK(regex_charge_of(r, large) <= limits::kRegexBytesPerTextByte * large.size() / 4);  // far from the budget
  }
  // A long whitespace run: `\s+(?!\S)` backtracks one character at its end; windows double.
  const Regex ws = Regex::compile(R"(\s+(?!\S)|\s+)", "test");
  const std::string run_n = std::string(50000, ' ') + "x";
  const std::string run_4n = std::string(200000, ' ') + "x";
  CHECK(windowed_matches(ws, run_4n, 128) == Matches{{0, 199999}, {199999, 200000}});
  CHECK(static_cast<double>(regex_charge_of(ws, run_4n)) <= 5.0 * static_cast<double>(regex_charge_of(ws, run_n)));
}

TEST_CASE("added tokens: leftmost-longest matching agrees with a trie walk at every position", "[tokenizer][added_tokens][limits]") {
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> keys;
    tokenizer::TokenTrie trie;
    const int n_keys = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < n_keys; ++k) {
      std::string key;
      const std::size_t len = 1 + rng() % 5;
      for (std::size_t i = 0; i < len; ++i) key.push_back("abc"[rng() % 3]);
      keys.push_back(key);
      trie.insert(key, k);
    }
    trie.prepare();
    std::string text;
    const std::size_t len = rng() % 40;
    for (std::size_t i = 0; i < len; ++i) text.push_back("abcd"[rng() % 4]);
    std::vector<tokenizer::TokenTrie::Match> found;
    trie.longest_matches(text, found);
    std::vector<std::pair<std::size_t, std::int32_t>> got(text.size(), {0, -1});
    for (const auto& m : found) got[m.begin] = {m.length, m.value};
    for (std::size_t i = 0; i < text.size(); ++i) {
      std::pair<std::size_t, std::int32_t> best{0, -1};
      for (int k = 0; k < n_keys; ++k) {  // longest key at i; the first of equal keys wins
        const std::string& key = keys[static_cast<std::size_t>(k)];
        if (text.compare(i, key.size(), key) == 0 && key.size() > best.first) best = {key.size(), k};
      }
      INFO("round " << round << " text " << text << " at " << i);
      CHECK(got[i] == best);
    }
  }
}

TEST_CASE("added tokens: matching is linear in the text with a long token", "[tokenizer][added_tokens][limits][cost]") {
  Json doc = test::tokenizer_doc(test::tiny_bpe_model(false));
  const std::string long_token = std::string(100000, 'a') + "b";
  doc["added_tokens"] = Json::array({Json{{"id", 10}, {"content", long_token}, {"single_word", false}, {"lstrip", false},
                                          {"rstrip", false}, {"normalized", false}, {"special", true}},
                                     Json{{"id", 11}, {"content", "aab"}, {"single_word", false}, {"lstrip", false},
                                          {"rstrip", false}, {"normalized", true}, {"special", false}}});
  const Tokenizer tok = test::make_tokenizer(doc);
  auto steps_of = [&](const std::string& text) {
    const std::uint64_t before = tokenizer::detail::token_trie_steps();
    tok.encode(text);
    return tokenizer::detail::token_trie_steps() - before;
  };
  // A trie walk from every position of 'a' * n + 'b' follows the long token to the 'b': n^2 / 2.
  const std::uint64_t small = steps_of(std::string(10000, 'a') + "b");
  const std::uint64_t large = steps_of(std::string(40000, 'a') + "b");
  CHECK(large <= 5 * small);
  CHECK(large <= 4 * 40000);
  // Matches still found: the long token itself, and the short one after the normalizer.
  CHECK(tok.encode(long_token + "aab") == Ids{10, 11});
  CHECK(tok.encode("c" + long_token) == Ids{2, 10});
}

TEST_CASE("literal patterns: KMP search agrees with find and is linear", "[tokenizer][pattern][limits][cost]") {
  std::mt19937 rng(5);
  for (int round = 0; round < 300; ++round) {
    std::string needle, text;
    for (std::size_t i = 0, n = 1 + rng() % 4; i < n; ++i) needle.push_back("ab"[rng() % 2]);
    for (std::size_t i = 0, n = rng() % 30; i < n; ++i) text.push_back("ab"[rng() % 2]);
    Matches expected;
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size()))
      expected.emplace_back(at, at + needle.size());
    Matches got;
    tokenizer::Pattern::literal(needle).for_each_match(text, [&](std::size_t b, std::size_t e) { got.emplace_back(b, e); });
    INFO(needle << " in " << text);
    CHECK(got == expected);
  }
  // 'a' * 20000 + 'b' over 'a' * n: std::string_view::find compares up to 20000 bytes per start.
  const tokenizer::Pattern p = tokenizer::Pattern::literal(std::string(20000, 'a') + "b");
  auto seconds_of = [&](std::size_t n) {
    const std::string text(n, 'a');
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t count = 0;
    for (int rep = 0; rep < 5; ++rep) p.for_each_match(text, [&](std::size_t, std::size_t) { ++count; });
    CHECK(count == 0);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const double t_n = seconds_of(400000), t_8n = seconds_of(3200000);
  CHECK(t_8n <= 24.0 * t_n + 0.01);  // linear: ~8x; the quadratic search was 64x
}

namespace {

// Streams `ids` and checks the pieces against the one-shot decode; returns the ids decoded.
std::uint64_t stream_and_check(const Tokenizer& tok, const Ids& ids) {
  StreamDecoder stream(tok);
  std::string streamed;
  for (std::int32_t id : ids) {
    const std::string piece = stream.push(id);
    REQUIRE(tokenizer::is_valid_utf8(piece));
    streamed += piece;
  }
  streamed += stream.flush();
  REQUIRE(streamed == tok.decode(ids));
  return stream.decoded_ids();
}

struct StreamCase {
  const char* name;
  Json doc;
  Ids whitespace;  // ids whose text is only whitespace
  Ids others;
};

std::vector<StreamCase> stream_cases() {
  const std::string S = test::S;
  std::vector<StreamCase> cases;
  cases.push_back({"byte-level", test::byte_level_doc(), Ids{' ', 259, 260, '\n', '\t'}, Ids{258, 't', 0xE4, 0xB8, 0xAD, 0x80, 261}});
  cases.push_back({"sentencepiece, Strip start 1", test::sentencepiece_doc(), Ids{259, 3 + ' ', 3 + '\n'},
                   Ids{263, 262, 260, 3 + 0x41, 3 + 0xC3, 3 + 0xA9, 264, 1}});
  Json strip_stop = test::sentencepiece_doc();
  strip_stop["decoder"]["decoders"][3]["stop"] = 2;
  cases.push_back({"sentencepiece, Strip stop 2", strip_stop, Ids{259, 3 + ' '}, Ids{263, 262, 3 + 0x41, 264}});
  Json strip_two = test::sentencepiece_doc();
  strip_two["decoder"]["decoders"][3]["start"] = 3;
  cases.push_back({"sentencepiece, Strip start 3", strip_two, Ids{259, 3 + ' '}, Ids{263, 262, 264}});
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {S, 2}, {"a", 3}, {S + "a", 4}, {S + S, 5}};
  Json metaspace = test::tokenizer_doc(Json{{"type", "BPE"}, {"unk_token", "<unk>"}, {"vocab", vocab}, {"merges", Json::array()}});
  metaspace["decoder"] = {{"type", "Metaspace"}, {"replacement", S}, {"prepend_scheme", "always"}, {"split", true}};
  cases.push_back({"Metaspace", metaspace, Ids{2, 5}, Ids{3, 4, 1}});
  Json bpe_suffix = test::tokenizer_doc(Json{{"type", "BPE"}, {"vocab", {{"a</w>", 0}, {"</w>", 1}, {"b", 2}}}, {"merges", Json::array()}});
  bpe_suffix["decoder"] = {{"type", "BPEDecoder"}, {"suffix", "</w>"}};
  cases.push_back({"BPEDecoder", bpe_suffix, Ids{1}, Ids{0, 2}});
  return cases;
}

}  // namespace

TEST_CASE("stream decode: long whitespace runs equal the one-shot decode", "[tokenizer][stream][limits]") {
  std::mt19937 rng(11);
  for (const StreamCase& c : stream_cases()) {
    const Tokenizer tok = test::make_tokenizer(c.doc);
    for (int round = 0; round < 60; ++round) {
      Ids ids;
      const std::size_t n = 1 + rng() % 300;
      while (ids.size() < n) {
        const bool run = rng() % 3 != 0;
        const std::size_t len = run ? 1 + rng() % 40 : 1 + rng() % 3;
        const Ids& from = run ? c.whitespace : c.others;
        for (std::size_t k = 0; k < len; ++k) ids.push_back(from[rng() % from.size()]);
      }
      INFO(c.name << ", round " << round);
      stream_and_check(tok, ids);
    }
  }
}

TEST_CASE("stream decode: work is linear in all-whitespace output and byte-token runs", "[tokenizer][stream][limits][cost]") {
  for (const StreamCase& c : stream_cases()) {
    const Tokenizer tok = test::make_tokenizer(c.doc);
    auto work = [&](std::size_t n, bool leading_word) {
      Ids ids;
      if (leading_word) ids.push_back(c.others[0]);
      for (std::size_t k = 0; k < n; ++k) ids.push_back(c.whitespace[k % c.whitespace.size()]);
      ids.push_back(c.others[0]);
      return stream_and_check(tok, ids);
    };
    for (bool leading_word : {false, true}) {
      INFO(c.name << (leading_word ? ", after a word" : ", from the start"));
      const std::uint64_t small = work(500, leading_word), large = work(2000, leading_word);
      CHECK(large <= 5 * small);
      CHECK(large <= 200 * 2000);
    }
  }
  // A run of byte tokens under ByteFallback is decoded once, when it ends.
  const Tokenizer sp = test::make_tokenizer(test::sentencepiece_doc());
  auto byte_run = [&](std::size_t n) {
    Ids ids(n, 3 + 0x41);
    ids.push_back(263);
    return stream_and_check(sp, ids);
  };
  CHECK(byte_run(2000) <= 5 * byte_run(500));
}
