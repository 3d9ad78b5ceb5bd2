// libFuzzer target: Tokenizer::from_json_text over arbitrary bytes must either build a tokenizer or
// throw moe::Error; a tokenizer it builds must encode, decode and stream-decode any text without
// crashing, hanging or throwing anything but moe::Error (nothing here catches std::exception, so
// one escaping aborts the fuzzer).
//
// Input layout (JSON text cannot contain a raw NUL byte, so NUL is a safe separator):
//
//   <tokenizer.json> [ '\0' <text to encode> [ '\0' <tokenizer_config.json> ] ]
//
// The first part is the tokenizer.json; the second (optional) is UTF-8 text to encode besides the
// fixed strings below, of which the first kMaxText bytes are used (a linear pass over 100 KB
// already takes ~10 s under ASan + UBSan, while anything quadratic shows well within 32 KB); the
// third (optional, non-empty) is passed as tokenizer_config.json. The seed corpus (run_fuzzers.sh)
// is every committed tokenizer.json, alone and followed by a text and its folder's
// tokenizer_config.json.
//
// For every text that encodes: every id is a token of the vocabulary, decode(ids) succeeds (with
// and without skip_special_tokens), and a StreamDecoder fed the ids one by one yields exactly
// decode(ids) (its documented contract).
#include <moe/tokenizer/stream_decoder.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t kMaxText = std::size_t{32} << 10;

// Texts every fuzzed tokenizer encodes: ASCII prose and code, runs of spaces/newlines/digits,
// multi-byte UTF-8 (accents, CJK, emoji, combining marks, ZWJ sequences), common special tokens
// and byte-fallback spellings, and invalid UTF-8 (must be a moe::Error).
constexpr std::array<std::string_view, 16> kTexts = {
    "",
    "Hello, world! To be, or not to be: that is the question.",
    "  leading and trailing spaces  \n\n\ttabs\r\nCRLF   ",
    "1234567890 3.14159 -42 1e10 0x1F",
    "caf\xC3\xA9 na\xC3\xAFve \xC3\x85ngstr\xC3\xB6m e\xCC\x81 \xEF\xAC\x81",
    "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4 \xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82",
    "\xF0\x9F\x98\x80\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 \xF0\x9F\x87\xAB\xF0\x9F\x87\xB7",
    "<s> </s> <unk> <|endoftext|> <|im_start|>user\nhi<|im_end|> <0x0A> \xE2\x96\x81word",
    "def f(x):\n    return x**2  # comment\n\nint main() { return 0; }",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "                                                                ",
    "\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
    "'s 've 're 'll 'd 'm 't n't I'M DON'T",
    std::string_view("\x00\x01\x7F nul and control", 19),
    "\xFF\xFE invalid utf-8",
    "\xED\xA0\x80 surrogate",
};

[[noreturn]] void die(const char* what, std::string_view text) {
  std::fprintf(stderr, "fuzz_tokenizer: %s (text of %zu bytes: \"%.*s\")\n", what, text.size(),
               static_cast<int>(text.size() < 200 ? text.size() : 200), text.data());
  std::abort();
}

std::string stream_decode(const moe::Tokenizer& tok, const std::vector<std::int32_t>& ids, bool skip_special) {
  moe::StreamDecoder stream(tok, skip_special);
  std::string out;
  for (const std::int32_t id : ids) out += stream.push(id);
  out += stream.flush();
  return out;
}

void exercise(const moe::Tokenizer& tok, std::string_view text) {
  for (const bool add_special : {false, true}) {
    std::vector<std::int32_t> ids;
    try {
      ids = tok.encode(text, add_special);
    } catch (const moe::Error&) {
      continue;  // invalid UTF-8, or a budget refused
    }
    for (const std::int32_t id : ids) {
      if (!tok.has_id(id)) die("encode returned an id outside the vocabulary", text);
      if (!tok.id_to_token(id)) die("id_to_token has no string for an encoded id", text);
    }
    for (const bool skip : {false, true}) {
      const std::string whole = tok.decode(ids, skip);
      if (stream_decode(tok, ids, skip) != whole) die("StreamDecoder output differs from decode()", text);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view json = input, text, config;
  if (const auto nul = input.find('\0'); nul != std::string_view::npos) {
    json = input.substr(0, nul);
    text = input.substr(nul + 1);
    if (const auto nul2 = text.find('\0'); nul2 != std::string_view::npos) {
      config = text.substr(nul2 + 1);
      text = text.substr(0, nul2);
    }
  }
  try {
    const moe::Tokenizer tok = moe::Tokenizer::from_json_text(json, config, "fuzz/tokenizer.json");
    for (const std::string_view t : kTexts) exercise(tok, t);
    exercise(tok, text.substr(0, kMaxText));
    // Ids just outside the vocabulary are refused with moe::Error by decode and by StreamDecoder.
    const auto n = static_cast<std::int32_t>(tok.vocab_size());
    for (const std::int32_t bad : {n, -1}) {
      const std::vector<std::int32_t> ids{bad};
      try {
        (void)tok.decode(ids);
        die("decode accepted an id outside the vocabulary", "");
      } catch (const moe::Error&) {
      }
      try {
        moe::StreamDecoder stream(tok);
        (void)stream.push(bad);
        die("StreamDecoder accepted an id outside the vocabulary", "");
      } catch (const moe::Error&) {
      }
    }
  } catch (const moe::Error&) {
  }
  return 0;
}
