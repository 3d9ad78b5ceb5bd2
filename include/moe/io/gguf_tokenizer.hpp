// The tokenizer a GGUF file carries in its `tokenizer.*` metadata (the keys llama.cpp's converter
// writes, gguf-py constants.py Keys.Tokenizer), read into a plain struct and checked for
// consistency. Turning it into a moe::Tokenizer is the tokenizer's business, not the container's.
#pragma once

#include "moe/core/error.hpp"
#include "moe/io/gguf.hpp"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::io {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_attr predecessor / gguf-py TokenType).
enum class GgufTokenType : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       // special tokens (<s>, <|im_end|>): never produced by splitting text
  user_defined = 4,  // added tokens matched in the text before splitting
  unused = 5,
  byte = 6,          // <0x0A>-style byte tokens of SentencePiece byte fallback
};

struct GgufTokenizerData {
  // tokenizer.ggml.model: "gpt2" (byte-level BPE with merges), "llama" (SentencePiece, scores),
  // and others llama.cpp knows ("bert", "t5", "rwkv", "plamo2", "none"); kept as written.
  std::string model;
  // tokenizer.ggml.pre: the pre-tokenizer (split regex) preset of a gpt2 model, by name ("llama-bpe",
  // "qwen2", "deepseek-v3", ...). "default" when absent, as llama.cpp reads it.
  std::string pre = "default";
  std::vector<std::string> tokens;          // by id
  std::vector<GgufTokenType> token_types;   // by id; empty when the file has none
  std::vector<float> scores;                // by id; empty when the file has none
  std::vector<std::string> merges;          // "left right", highest priority first; empty for SPM
  bool merges_present = false;              // the file has tokenizer.ggml.merges (possibly empty)
  std::optional<std::int32_t> bos_id, eos_id, eot_id, eom_id, unknown_id, separator_id, padding_id, cls_id, mask_id;
  std::optional<bool> add_bos, add_eos, add_sep, add_space_prefix, remove_extra_whitespaces;
  std::optional<std::string> chat_template;             // tokenizer.chat_template
  std::map<std::string, std::string> named_chat_templates;  // tokenizer.chat_template.<name>

  std::size_t vocab_size() const noexcept { return tokens.size(); }
};

// llama.cpp's tokenizer.ggml.model values for a file without a vocabulary (LLAMA_VOCAB_TYPE_NONE:
// llama.cpp loads such a file with {arch}.vocab_size dummy tokens). moecpp writes the first for a
// model without tokenizer.json (gguf_export.hpp), so that llama.cpp runs the weights.
inline constexpr std::string_view kGgufNoVocab = "no_vocab";
inline constexpr std::string_view kGgufNoVocabAlt = "none";

// Whether `f` carries a tokenizer: tokenizer.ggml.model present and not a no-vocabulary value
// (a key of another type counts as present: read_gguf_tokenizer then names the problem).
inline bool has_gguf_tokenizer(const GgufFile& f) noexcept {
  const auto v = f.find("tokenizer.ggml.model");
  if (!v) return false;
  if (!v->holds<std::string_view>()) return true;
  const auto model = v->get<std::string_view>();
  return model != kGgufNoVocab && model != kGgufNoVocabAlt;
}

// Reads the tokenizer metadata of `f`. Errors name the file and the key:
//  kConfig: a key of the wrong GGUF type (GgufFile::get), an id key that is not an integer;
//  kTokenizer: no tokenizer.ggml.model or tokens; an empty vocabulary; token_type or scores of
//    another length than tokens; a token type outside 0..6; a special-token id outside the
//    vocabulary; a merge that is not two non-empty tokens separated by one space.
inline GgufTokenizerData read_gguf_tokenizer(const GgufFile& f) {
  return catch_as_error("read_gguf_tokenizer", [&] {
    GgufTokenizerData d;
    const std::string& file = f.name();
    if (!has_gguf_tokenizer(f)) {
      fail(ErrorCode::kTokenizer, "{}: no tokenizer (metadata key tokenizer.ggml.model is absent or \"{}\")", file,
           f.contains("tokenizer.ggml.model") ? f.get<std::string>("tokenizer.ggml.model") : std::string(kGgufNoVocab));
    }
    d.model = f.get<std::string>("tokenizer.ggml.model");
    if (auto pre = f.get_optional<std::string>("tokenizer.ggml.pre")) d.pre = std::move(*pre);
    if (!f.contains("tokenizer.ggml.tokens")) fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.tokens is absent", file);
    d.tokens = f.get<std::vector<std::string>>("tokenizer.ggml.tokens");
    if (d.tokens.empty()) fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.tokens is empty", file);
    const std::size_t n = d.tokens.size();

    if (auto types = f.get_optional<std::vector<std::int32_t>>("tokenizer.ggml.token_type")) {
      if (types->size() != n) {
        fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.token_type has {} entries for {} tokens", file, types->size(), n);
      }
      d.token_types.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::int32_t t = (*types)[i];
        if (t < 0 || t > static_cast<std::int32_t>(GgufTokenType::byte)) {
          fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.token_type[{}] = {} (token {}) is not a token type (0..6)",
               file, i, t, detail::quote_gguf_string(d.tokens[i]));
        }
        d.token_types.push_back(static_cast<GgufTokenType>(t));
      }
    }
    if (auto scores = f.get_optional<std::vector<float>>("tokenizer.ggml.scores")) {
      if (scores->size() != n) {
        fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.scores has {} entries for {} tokens", file, scores->size(), n);
      }
      d.scores = std::move(*scores);
    }
    if (auto merges = f.get_optional<std::vector<std::string>>("tokenizer.ggml.merges")) {
      for (std::size_t i = 0; i < merges->size(); ++i) {
        const std::string& m = (*merges)[i];
        const std::size_t space = m.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == m.size() || m.find(' ', space + 1) != std::string::npos) {
          fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.merges[{}] = {} is not two tokens separated by one space", file,
               i, detail::quote_gguf_string(m));
        }
      }
      d.merges = std::move(*merges);
      d.merges_present = true;
    }

    auto id = [&](std::string_view key, std::optional<std::int32_t>& out) {
      const auto v = f.get_integer_optional<std::int64_t>(key);
      if (!v) return;
      if (*v < 0 || static_cast<std::uint64_t>(*v) >= n) {
        fail(ErrorCode::kTokenizer, "{}: {} = {} is outside the vocabulary of {} tokens", file, key, *v, n);
      }
      out = static_cast<std::int32_t>(*v);
    };
    id("tokenizer.ggml.bos_token_id", d.bos_id);
    id("tokenizer.ggml.eos_token_id", d.eos_id);
    id("tokenizer.ggml.eot_token_id", d.eot_id);
    id("tokenizer.ggml.eom_token_id", d.eom_id);
    id("tokenizer.ggml.unknown_token_id", d.unknown_id);
    id("tokenizer.ggml.seperator_token_id", d.separator_id);  // sic: the key llama.cpp writes
    id("tokenizer.ggml.padding_token_id", d.padding_id);
    id("tokenizer.ggml.cls_token_id", d.cls_id);
    id("tokenizer.ggml.mask_token_id", d.mask_id);
    d.add_bos = f.get_optional<bool>("tokenizer.ggml.add_bos_token");
    d.add_eos = f.get_optional<bool>("tokenizer.ggml.add_eos_token");
    d.add_sep = f.get_optional<bool>("tokenizer.ggml.add_sep_token");
    d.add_space_prefix = f.get_optional<bool>("tokenizer.ggml.add_space_prefix");
    d.remove_extra_whitespaces = f.get_optional<bool>("tokenizer.ggml.remove_extra_whitespaces");

    d.chat_template = f.get_optional<std::string>("tokenizer.chat_template");
    constexpr std::string_view kNamed = "tokenizer.chat_template.";
    for (std::size_t i = 0; i < f.metadata_count(); ++i) {
      const auto kv = f.metadata_entry(i);
      if (kv.key.size() > kNamed.size() && kv.key.substr(0, kNamed.size()) == kNamed) {
        d.named_chat_templates.emplace(std::string(kv.key.substr(kNamed.size())), f.get<std::string>(kv.key));
      }
    }
    return d;
  });
}

}  // namespace moe::io
