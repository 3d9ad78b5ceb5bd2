// Small hand-made tokenizer.json documents for the tokenizer tests, small enough to work out
// every expected id by hand.
#pragma once

#include <moe/tokenizer/byte_level.hpp>
#include <moe/tokenizer/json_reader.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace moe::test {

using tokenizer::Json;

inline const std::string S = "\xE2\x96\x81";  // ▁, SentencePiece's word boundary
inline const std::string G = "\xC4\xA0";      // Ġ, byte-level BPE's space

// A tokenizer.json skeleton with the given model and everything else null.
inline Json tokenizer_doc(Json model) {
  return Json{{"version", "1.0"},          {"truncation", nullptr}, {"padding", nullptr},
              {"added_tokens", Json::array()}, {"normalizer", nullptr}, {"pre_tokenizer", nullptr},
              {"post_processor", nullptr},   {"decoder", nullptr},    {"model", std::move(model)}};
}

// The hand-checkable BPE: a b c and a few merges.
//   ids: a=0 b=1 c=2 ab=3 bc=4 abc=5 <unk>=6 " "=7 aa=8 aaaa=9
//   merges by rank: (a,b)->ab, (ab,c)->abc, (b,c)->bc, (a,a)->aa, (aa,aa)->aaaa
// `pairs` writes merges as ["a","b"] pairs, otherwise as "a b" strings.
inline Json tiny_bpe_model(bool pairs) {
  Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}, {"<unk>", 6}, {" ", 7}, {"aa", 8}, {"aaaa", 9}};
  std::vector<std::pair<std::string, std::string>> merges = {{"a", "b"}, {"ab", "c"}, {"b", "c"}, {"a", "a"}, {"aa", "aa"}};
  Json m = Json::array();
  for (const auto& [l, r] : merges) {
    if (pairs) m.push_back(Json::array({l, r}));
    else m.push_back(l + " " + r);
  }
  return Json{{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", "<unk>"}, {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
              {"vocab", vocab}, {"merges", m}};
}

inline std::string byte_char(unsigned char b) {
  return tokenizer::utf8_encode(tokenizer::byte_level_map().byte_to_char(b));
}

// A byte-level BPE (GPT-2 style): ids 0..255 are the byte characters in byte order, then
//   256 "Ġt" (Ġ t), 257 "he" (h e), 258 "Ġthe" (Ġt he), 259 "ĠĠ" (Ġ Ġ), 260 "ĠĠĠĠ" (ĠĠ ĠĠ)
// and the special added token 261 "<|endoftext|>".
inline Json byte_level_doc(bool use_regex = true, bool add_prefix_space = false) {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(static_cast<unsigned char>(b))] = b;
  const std::string G = byte_char(' ');
  vocab[G + "t"] = 256;
  vocab["he"] = 257;
  vocab[G + "the"] = 258;
  vocab[G + G] = 259;
  vocab[G + G + G + G] = 260;
  Json merges = Json::array({G + " t", "h e", G + "t he", G + " " + G, G + G + " " + G + G});
  Json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}, {"dropout", nullptr}, {"unk_token", nullptr},
                {"fuse_unk", false}, {"byte_fallback", false}};
  Json doc = tokenizer_doc(model);
  doc["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true},
                          {"use_regex", use_regex}};
  doc["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  doc["added_tokens"] = Json::array({Json{{"id", 261}, {"content", "<|endoftext|>"}, {"single_word", false},
                                          {"lstrip", false}, {"rstrip", false}, {"normalized", false}, {"special", true}}});
  return doc;
}

// A SentencePiece-style BPE with byte fallback (Llama/Mixtral layout):
//   0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, 259 ▁, 260 h, 261 i, 262 ▁h, 263 ▁hi, 264 é
//   merges: (▁,h)->▁h, (▁h,i)->▁hi
// normalizer Prepend(▁) + Replace(" ", ▁); decoder Replace(▁," "), ByteFallback, Fuse, Strip(" ",1,0).
inline Json sentencepiece_doc() {
  const std::string S = "\xE2\x96\x81";  // ▁
  Json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 3 + b;
  vocab[S] = 259;
  vocab["h"] = 260;
  vocab["i"] = 261;
  vocab[S + "h"] = 262;
  vocab[S + "hi"] = 263;
  vocab["\xC3\xA9"] = 264;  // é
  Json model = {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({Json::array({S, "h"}), Json::array({S + "h", "i"})})},
                {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}, {"dropout", nullptr}};
  Json doc = tokenizer_doc(model);
  doc["normalizer"] = {{"type", "Sequence"},
                       {"normalizers", Json::array({Json{{"type", "Prepend"}, {"prepend", S}},
                                                    Json{{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", S}}})}};
  doc["decoder"] = {{"type", "Sequence"},
                    {"decoders", Json::array({Json{{"type", "Replace"}, {"pattern", {{"String", S}}}, {"content", " "}},
                                              Json{{"type", "ByteFallback"}}, Json{{"type", "Fuse"}},
                                              Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  Json added = Json::array();
  for (auto [id, content] : {std::pair<int, const char*>{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}})
    added.push_back(Json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                         {"normalized", false}, {"special", true}});
  doc["added_tokens"] = added;
  doc["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", Json::array({Json{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, Json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", Json::array()},
      {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", Json::array({1})}, {"tokens", Json::array({"<s>"})}}}}}};
  return doc;
}

inline Tokenizer make_tokenizer(const Json& doc, const Json& config = Json()) {
  return Tokenizer::from_json_text(doc.dump(), config.is_null() ? std::string() : config.dump());
}

using Ids = std::vector<std::int32_t>;

// The code of the moe::Error that f throws (its message in *message); fails the test if f
// throws nothing.
inline ErrorCode error_code_of(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  FAIL("expected a moe::Error");
  return ErrorCode::kInternal;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace moe::test
