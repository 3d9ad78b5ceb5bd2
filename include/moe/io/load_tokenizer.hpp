// One entry point for a model's tokenizer, wherever it lives: a Hugging Face folder
// (tokenizer.json + tokenizer_config.json) or a GGUF file (its tokenizer.ggml.* metadata), giving
// the same moe::Tokenizer. And the other direction: the tokenizer.ggml.* keys llama.cpp's
// converter (convert_hf_to_gguf.py, gguf-py SpecialVocab) writes for a folder, for moe-quantize.
//
// GGUF "gpt2" models are byte-level BPE over the merges, split by the preset that
// tokenizer.ggml.pre names (tokenizer/pre_tokenizer_presets.hpp). GGUF "llama" models run
// llama.cpp's SPM algorithm over the scores (BpeModel::from_token_scores) with `▁` for spaces and
// a space prefix (tokenizer.ggml.add_space_prefix, default true). Control, user-defined and
// unknown-type tokens are added tokens, matched in the raw text before anything else (always:
// llama.cpp's parse_special=true, and what the tokenizer.json path does).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/file.hpp"
#include "moe/core/limits.hpp"
#include "moe/io/gguf.hpp"
#include "moe/io/gguf_tokenizer.hpp"
#include "moe/io/gguf_writer.hpp"
#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/post_processor.hpp"
#include "moe/tokenizer/pre_tokenizer_presets.hpp"
#include "moe/tokenizer/tokenizer.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moe::io {

namespace detail {
inline const char* const kSpmSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

inline std::string known_pre_names() {
  std::string out;
  for (const auto& p : tokenizer::pre_tokenizer_presets())
    for (std::string_view n : p.names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
  return out;
}
}  // namespace detail

// The moe::Tokenizer of GGUF tokenizer metadata (read_gguf_tokenizer's result); `file` names the
// source in errors. Errors: kUnsupported for a tokenizer.ggml.model other than gpt2/llama and
// for a tokenizer.ggml.pre this library has no preset for (llama.cpp refuses an unknown name
// too; guessing "default" would tokenize differently from the model's training without a
// word); kTokenizer for merges over unknown tokens, duplicate tokens, scores of another length,
// and add_bos_token/add_eos_token true without the id.
inline Tokenizer tokenizer_from_gguf(const GgufTokenizerData& d, const std::string& file) {
  return catch_as_error("tokenizer_from_gguf", [&] {
    using tokenizer::Json;
    Tokenizer::Parts parts;
    parts.file = file;
    const std::size_t n = d.tokens.size();
    bool add_bos_default = false;
    std::optional<std::int32_t> bos = d.bos_id, eos = d.eos_id, unk = d.unknown_id;
    if (d.model == "gpt2") {
      const tokenizer::PreTokenizerPreset* preset = tokenizer::find_pre_tokenizer_preset(d.pre);
      if (preset == nullptr)
        fail(ErrorCode::kUnsupported, "{}: tokenizer.ggml.pre = '{}' is not a pre-tokenizer this library knows ({})", file,
             d.pre, detail::known_pre_names());
      parts.normalizer = tokenizer::preset_normalizer_json(*preset);
      parts.pre_tokenizer = tokenizer::preset_pre_tokenizer_json(*preset);
      parts.decoder = Json{{"type", "ByteLevel"}};
      tokenizer::BpeModel::ListOptions opts;
      opts.file = file;
      opts.ignore_merges = preset->ignore_merges;
      opts.unk_id = unk;
      if (d.merges_present) {
        parts.model = tokenizer::BpeModel::from_token_list(d.tokens, d.merges, opts);
      } else if (preset->names[0] == "kimi-k2") {
        // Kimi K2 files may carry no merges (llama.cpp accepts that for this name only). Its
        // vocabulary is tiktoken's: ids are merge ranks, and tiktoken merges the adjacent pair
        // whose concatenation has the lowest rank first, which is the score loop with score -id.
        std::vector<float> scores(n);
        for (std::size_t i = 0; i < n; ++i) scores[i] = -static_cast<float>(i);
        parts.model = tokenizer::BpeModel::from_token_scores(d.tokens, scores, opts);
      } else {
        fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.merges is absent (a gpt2 tokenizer needs its merges)", file);
      }
      add_bos_default = preset->add_bos_default;
    } else if (d.model == "llama") {
      // llama.cpp's SPM defaults: unk 0, bos 1, eos 2 when the keys are absent (and in range).
      auto fallback = [&](std::optional<std::int32_t>& id, std::int32_t v) {
        if (!id && static_cast<std::size_t>(v) < n) id = v;
      };
      fallback(unk, 0);
      fallback(bos, 1);
      fallback(eos, 2);
      const bool prefix = d.add_space_prefix.value_or(true);
      Json norm = Json::array();
      norm.push_back(Json{{"type", "Replace"}, {"pattern", Json{{"String", " "}}}, {"content", detail::kSpmSpace}});
      if (prefix) norm.push_back(Json{{"type", "Prepend"}, {"prepend", detail::kSpmSpace}});
      parts.normalizer = Json{{"type", "Sequence"}, {"normalizers", std::move(norm)}};
      Json dec = Json::array();
      dec.push_back(Json{{"type", "Replace"}, {"pattern", Json{{"String", detail::kSpmSpace}}}, {"content", " "}});
      dec.push_back(Json{{"type", "ByteFallback"}});
      dec.push_back(Json{{"type", "Fuse"}});
      if (prefix) dec.push_back(Json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
      parts.decoder = Json{{"type", "Sequence"}, {"decoders", std::move(dec)}};
      tokenizer::BpeModel::ListOptions opts;
      opts.file = file;
      opts.byte_fallback = true;
      opts.unk_id = unk;
      std::vector<float> scores = d.scores;
      if (scores.empty()) scores.assign(n, 0.0f);
      parts.model = tokenizer::BpeModel::from_token_scores(d.tokens, scores, opts);
      add_bos_default = true;
    } else {
      fail(ErrorCode::kUnsupported, "{}: tokenizer.ggml.model = '{}' is not supported (gpt2 and llama are)", file, d.model);
    }

    Json added = Json::array();
    for (std::size_t i = 0; i < d.token_types.size(); ++i) {
      const GgufTokenType t = d.token_types[i];
      if (t != GgufTokenType::control && t != GgufTokenType::user_defined && t != GgufTokenType::unknown) continue;
      added.push_back(Json{{"id", i},
                           {"content", d.tokens[i]},
                           {"special", t != GgufTokenType::user_defined},
                           {"normalized", false}});
    }
    parts.added_tokens = std::move(added);

    const bool add_bos = d.add_bos.value_or(add_bos_default);
    const bool add_eos = d.add_eos.value_or(false);
    if (d.add_bos == true && !bos)
      fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set", file);
    if (d.add_eos == true && !eos)
      fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set", file);
    if (add_bos && bos) parts.prefix.push_back(*bos);
    if (add_eos && eos) parts.suffix.push_back(*eos);
    parts.bos = bos;
    parts.eos = eos;
    return Tokenizer::from_parts(std::move(parts));
  });
}

inline Tokenizer tokenizer_from_gguf(const GgufFile& f) { return tokenizer_from_gguf(read_gguf_tokenizer(f), f.name()); }

// The tokenizer of `path`: a folder (tokenizer.json, tokenizer_config.json if present), a
// tokenizer.json file, or a GGUF file (by the "GGUF" magic or the .gguf extension). Errors: kIo
// for a path that is missing or unreadable, kInvalidArgument for another kind of file, and the
// errors of Tokenizer::from_folder / read_gguf_tokenizer / tokenizer_from_gguf.
inline Tokenizer load_tokenizer(const std::filesystem::path& path) {
  return catch_as_error("load_tokenizer", [&] {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) return Tokenizer::from_folder(path);
    if (!std::filesystem::exists(path, ec)) fail(ErrorCode::kIo, "{}: no such file or folder", path.string());
    char magic[4] = {};
    {
      std::ifstream in(path, std::ios::binary);
      if (!in) fail(ErrorCode::kIo, "{}: cannot be opened", path.string());
      in.read(magic, 4);
    }
    if (std::memcmp(magic, "GGUF", 4) == 0 || path.extension() == ".gguf") {
      const GgufFile f = GgufFile::open(path);
      return tokenizer_from_gguf(f);
    }
    if (path.extension() == ".json") return Tokenizer::from_file(path);
    fail(ErrorCode::kInvalidArgument, "{}: not a folder, a tokenizer.json or a GGUF file", path.string());
  });
}

// ---- writing ---------------------------------------------------------------------------------

struct GgufTokenizerWriteOptions {
  // Pads the vocabulary to this many tokens ("[PAD<id>]", type unused), as llama.cpp's converter
  // does up to config.json's vocab_size (the rows of the embedding). Smaller than the largest
  // id + 1: kInvalidArgument.
  std::optional<std::size_t> vocab_size;
  // tokenizer.ggml.pre to write instead of the identified one (a name of the preset table; e.g.
  // "glm4" for GLM-4-MoE, whose regex is Llama-3's and would be identified as "dbrx").
  std::optional<std::string> pre;
};

// What write_gguf_tokenizer wrote.
struct GgufTokenizerSummary {
  std::string model;     // "gpt2" or "llama"
  std::string pre;       // "" for llama
  std::size_t n_tokens = 0;
  std::size_t n_merges = 0;
  bool chat_template = false;
};

namespace detail {
// convert_hf_to_gguf.py's does_token_look_special: added tokens some models forget to mark special.
inline bool token_looks_special(std::string_view t) {
  auto starts = [&](std::string_view p) { return t.size() >= p.size() && t.substr(0, p.size()) == p; };
  auto ends = [&](std::string_view s) { return t.size() >= s.size() && t.substr(t.size() - s.size()) == s; };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>")) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) return true;  // <｜...｜> (DeepSeek)
  if (starts("<unused") && ends(">")) return true;
  return false;
}

inline bool is_byte_token_text(std::string_view t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.substr(0, 3) == "<0x" && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// True if a component config (normalizer or pre_tokenizer, Sequences included) has a step of
// `type` for which pred(step) holds.
template <class Pred>
bool has_step(const tokenizer::Json& node, std::string_view type, Pred&& pred, int depth = 0) {
  if (!node.is_object() || depth > 16) return false;
  const std::string t = node.value("type", std::string());
  if (t == "Sequence") {
    for (const char* key : {"pretokenizers", "normalizers"}) {
      auto it = node.find(key);
      if (it != node.end() && it->is_array())
        for (const auto& step : *it)
          if (has_step(step, type, pred, depth + 1)) return true;
    }
    return false;
  }
  return t == type && pred(node);
}
}  // namespace detail

// Writes the tokenizer.ggml.* and tokenizer.chat_template keys for the Hugging Face tokenizer in
// `folder` (tokenizer.json; tokenizer_config.json, config.json and chat_template.jinja when
// present) to `w`, as llama.cpp's converter does:
//  - byte-level BPE (a ByteLevel pre-tokenizer): model "gpt2", tokenizer.ggml.pre from the preset
//    table by comparing the tokenizer.json's pre_tokenizer, normalizer and ignore_merges with
//    each preset (the converter hashes the ids of a test text instead; this needs no Python),
//    tokens (added tokens by their content), token_type (control for special added tokens and
//    those that look special, user-defined for the other added tokens, normal, unused for padding),
//    merges as "a b";
//  - SentencePiece-style BPE (byte_fallback, `▁` normalizer or Metaspace pre-tokenizer): model
//    "llama", tokens, token_type (byte for <0xNN>, unknown for unk_token, control, user-defined),
//    scores and add_space_prefix. Without tokenizer.model there are no SentencePiece scores; the
//    scores are made from the merges so that llama.cpp's highest-score-first merging follows the
//    merge order: a token made by merge r scores -r, any other token -(merges + id);
//  - bos/eos/unknown/seperator/padding ids from tokenizer_config.json's *_token (config.json's
//    *_token_id where the former is absent), add_bos_token / add_eos_token from
//    tokenizer_config.json or else the post-processor's template, always written (llama.cpp's
//    defaults differ per preset); the chat template (chat_template.jinja, else
//    tokenizer_config.json's string, or its named list: "default" as tokenizer.chat_template and
//    the others as tokenizer.chat_template.<name>).
// Errors: kIo / kTokenizer for unreadable or malformed files (naming them), kUnsupported for a
// model type other than BPE or a pre-tokenizer that matches no preset (the message shows its
// steps; pass options.pre to name one), kInvalidArgument for a bad option or a key `w` already has.
inline GgufTokenizerSummary write_gguf_tokenizer(GgufWriter& w, const std::filesystem::path& folder,
                                                 const GgufTokenizerWriteOptions& options = {}) {
  return catch_as_error("write_gguf_tokenizer", [&] {
    using tokenizer::Json;
    using tokenizer::JsonNode;
    GgufTokenizerSummary summary;
    const auto tok_path = folder / "tokenizer.json";
    const std::string tok_file = tok_path.string();
    const Json doc = tokenizer::read_tokenizer_json_file(tok_path, limits::kMaxTokenizerJsonBytes, "tokenizer.json");
    const JsonNode root(doc, "", tok_file);
    root.expect_object();
    std::error_code ec;
    const auto cfg_path = folder / "tokenizer_config.json";
    Json cfg_doc = Json::object();
    if (std::filesystem::exists(cfg_path, ec))
      cfg_doc = tokenizer::read_tokenizer_json_file(cfg_path, limits::kMaxTokenizerConfigBytes, "tokenizer_config.json");
    const std::string cfg_file = cfg_path.string();
    const JsonNode cfg(cfg_doc, "", cfg_file);
    cfg.expect_object();
    const auto model_cfg_path = folder / "config.json";
    Json model_cfg = Json::object();
    if (std::filesystem::exists(model_cfg_path, ec))
      model_cfg = tokenizer::read_tokenizer_json_file(model_cfg_path, limits::kMaxConfigJsonBytes, "config.json");

    const JsonNode model = root.at("model");
    model.expect_object();
    const std::string type = model.string_or("type", model.find("merges") ? "BPE" : "");
    if (type != "BPE") model.fail_here(ErrorCode::kUnsupported, "model type '{}' cannot be written to GGUF (only BPE)", type);

    // Tokens by id: the model's vocabulary, then added tokens (whose content wins for their id).
    std::map<std::int64_t, std::string> vocab;
    std::unordered_map<std::string, std::int64_t> id_of;
    model.at("vocab").for_each_member([&](const std::string& token, const JsonNode& v) {
      const std::int64_t id = v.as_int();
      if (id < 0 || id > tokenizer::kMaxTokenId) v.fail_here(ErrorCode::kTokenizer, "token id {} out of range", id);
      vocab[id] = token;
      id_of.emplace(token, id);
    });
    struct Added {
      std::string content;
      bool special;
    };
    std::map<std::int64_t, Added> added;
    std::unordered_map<std::string, std::int64_t> added_id_of;
    if (auto list = root.find("added_tokens")) {
      for (std::size_t i = 0; i < list->size(); ++i) {
        const JsonNode t = (*list)[i];
        const std::int64_t id = t.at("id").as_int();
        if (id < 0 || id > tokenizer::kMaxTokenId) t.fail_here(ErrorCode::kTokenizer, "token id {} out of range", id);
        added[id] = Added{t.at("content").as_string(), t.bool_or("special", false)};
        added_id_of[t.at("content").as_string()] = id;
      }
    }
    std::int64_t max_id = -1;
    if (!vocab.empty()) max_id = vocab.rbegin()->first;
    if (!added.empty()) max_id = std::max(max_id, added.rbegin()->first);
    if (max_id < 0) model.fail_here(ErrorCode::kTokenizer, "the vocabulary is empty");
    std::size_t n = static_cast<std::size_t>(max_id) + 1;
    if (n > 4 * (vocab.size() + added.size()) + 1024)
      model.fail_here(ErrorCode::kTokenizer, "largest id {} is out of range for {} tokens", max_id, vocab.size() + added.size());
    if (options.vocab_size) {
      if (*options.vocab_size < n)
        fail(ErrorCode::kInvalidArgument, "{}: vocab_size {} is smaller than the tokenizer's {} ids", tok_file,
             *options.vocab_size, n);
      if (*options.vocab_size > static_cast<std::size_t>(limits::kMaxDimension))
        fail(ErrorCode::kInvalidArgument, "{}: vocab_size {} is over the limit of {}", tok_file, *options.vocab_size,
             limits::kMaxDimension);
      n = *options.vocab_size;
    }

    const Json normalizer = doc.contains("normalizer") ? doc["normalizer"] : Json();
    const Json pre_tokenizer = doc.contains("pre_tokenizer") ? doc["pre_tokenizer"] : Json();
    const bool byte_level = detail::has_step(pre_tokenizer, "ByteLevel", [](const Json&) { return true; });
    const bool spm_space_norm = detail::has_step(normalizer, "Replace", [](const Json& s) {
      return s.value("content", std::string()) == detail::kSpmSpace;
    });
    const bool metaspace = detail::has_step(pre_tokenizer, "Metaspace", [](const Json&) { return true; });
    const bool byte_fallback = model.bool_or("byte_fallback", false);
    const bool ignore_merges = model.bool_or("ignore_merges", false);

    // Merges as "a b" strings, in order.
    std::vector<std::string> merges;
    if (auto m = model.find("merges")) {
      merges.reserve(m->size());
      for (std::size_t i = 0; i < m->size(); ++i) {
        const JsonNode item = (*m)[i];
        if (item.is_string()) {
          merges.push_back(item.as_string());
        } else if (item.is_array() && item.size() == 2) {
          merges.push_back(item[0].as_string() + " " + item[1].as_string());
        } else {
          item.fail_here(ErrorCode::kTokenizer, "expected a string \"a b\" or a pair [\"a\", \"b\"], got {}", item.type_name());
        }
      }
    }

    // Special token ids.
    auto config_token = [&](std::string_view key) -> std::optional<std::string> {
      auto node = cfg.find(key);
      if (!node) return std::nullopt;
      if (node->is_string()) return node->as_string();
      if (node->is_object()) return node->at("content").as_string();
      node->fail_here(ErrorCode::kTokenizer, "expected a string or an object with \"content\", got {}", node->type_name());
    };
    auto special_id = [&](std::string_view name) -> std::optional<std::int64_t> {
      if (auto text = config_token(fmt::format("{}_token", name))) {
        if (auto it = added_id_of.find(*text); it != added_id_of.end()) return it->second;
        if (auto it = id_of.find(*text); it != id_of.end()) return it->second;
        cfg.fail_here(ErrorCode::kTokenizer, "{}_token '{}' is not a token of {}", name, *text, tok_file);
      }
      auto it = model_cfg.is_object() ? model_cfg.find(fmt::format("{}_token_id", name)) : model_cfg.end();
      if (model_cfg.is_object() && it != model_cfg.end() && it->is_number_integer()) {
        const auto v = it->get<std::int64_t>();
        if (v >= 0 && static_cast<std::size_t>(v) < n) return v;
      }
      return std::nullopt;
    };
    std::optional<std::int64_t> bos = special_id("bos"), eos = special_id("eos"), unk = special_id("unk"),
                                sep = special_id("sep"), pad = special_id("pad");
    const std::optional<std::string> unk_token = model.find("unk_token") ? std::optional(model.at("unk_token").as_string())
                                                                          : std::nullopt;
    if (!unk && unk_token) {
      if (auto it = id_of.find(*unk_token); it != id_of.end()) unk = it->second;
    }

    // add_bos / add_eos: tokenizer_config.json, else the post-processor's template.
    std::optional<bool> add_bos, add_eos;
    if (auto v = cfg.find("add_bos_token")) add_bos = v->as_bool();
    if (auto v = cfg.find("add_eos_token")) add_eos = v->as_bool();
    if (auto post_node = root.find("post_processor")) {
      const auto post = tokenizer::PostProcessor::from_json(&*post_node);
      if (!add_bos) add_bos = !post.prefix.empty();
      if (!add_eos) add_eos = !post.suffix.empty();
      if (!bos && !post.prefix.empty()) bos = post.prefix.front();
      if (!eos && !post.suffix.empty()) eos = post.suffix.back();
    }

    std::vector<std::string> tokens(n);
    std::vector<std::int32_t> types(n, static_cast<std::int32_t>(GgufTokenType::normal));
    for (std::size_t i = 0; i < n; ++i) {
      const auto id = static_cast<std::int64_t>(i);
      if (auto a = added.find(id); a != added.end()) {
        tokens[i] = a->second.content;
        if (byte_level) {
          if (a->second.special || detail::token_looks_special(tokens[i])) {
            types[i] = static_cast<std::int32_t>(GgufTokenType::control);
          } else {
            // convert_hf_to_gguf.py pre-normalizes user-defined tokens' SentencePiece spaces.
            std::string t;
            for (std::size_t k = 0; k < tokens[i].size();) {
              if (tokens[i].compare(k, 3, detail::kSpmSpace) == 0) {
                t.push_back(' ');
                k += 3;
              } else {
                t.push_back(tokens[i][k++]);
              }
            }
            tokens[i] = std::move(t);
            types[i] = static_cast<std::int32_t>(GgufTokenType::user_defined);
          }
        } else {
          types[i] = static_cast<std::int32_t>(a->second.special ? GgufTokenType::control : GgufTokenType::user_defined);
        }
      } else if (auto v = vocab.find(id); v != vocab.end()) {
        tokens[i] = v->second;
        if (!byte_level && detail::is_byte_token_text(tokens[i])) types[i] = static_cast<std::int32_t>(GgufTokenType::byte);
      } else {
        tokens[i] = fmt::format("[PAD{}]", i);
        types[i] = static_cast<std::int32_t>(GgufTokenType::unused);
      }
      if (!byte_level && unk && *unk == id) types[i] = static_cast<std::int32_t>(GgufTokenType::unknown);
    }

    if (byte_level) {
      const tokenizer::PreTokenizerPreset* preset = nullptr;
      if (options.pre) {
        preset = tokenizer::find_pre_tokenizer_preset(*options.pre);
        if (preset == nullptr)
          fail(ErrorCode::kInvalidArgument, "write_gguf_tokenizer: pre '{}' is not a known pre-tokenizer ({})", *options.pre,
               detail::known_pre_names());
        summary.pre = *options.pre;
      } else {
        preset = tokenizer::identify_pre_tokenizer_preset(pre_tokenizer, normalizer, ignore_merges);
        if (preset == nullptr) {
          std::vector<std::string> steps;
          bool ok = true;
          tokenizer::detail::canonical_steps(pre_tokenizer, steps, ok);
          fail(ErrorCode::kUnsupported,
               "{}: the pre-tokenizer [{}] (normalizer {}, ignore_merges {}) matches none of the presets llama.cpp "
               "knows by name; pass the name to use",
               tok_file, ok ? fmt::format("{}", fmt::join(steps, "; ")) : std::string("with other step types"),
               normalizer.is_null() ? std::string("none") : normalizer.value("type", std::string("?")), ignore_merges);
        }
        summary.pre = std::string(preset->names[0]);
      }
      summary.model = "gpt2";
      w.set("tokenizer.ggml.model", std::string("gpt2"));
      w.set("tokenizer.ggml.pre", summary.pre);
      w.set("tokenizer.ggml.tokens", tokens);
      w.set("tokenizer.ggml.token_type", types);
      w.set("tokenizer.ggml.merges", merges);
      summary.n_merges = merges.size();
    } else if (byte_fallback || spm_space_norm || metaspace) {
      // llama.cpp's SPM loop runs on the whole text between added tokens, covers unknown
      // characters with byte tokens and never fuses unks: a tokenizer.json that splits at `▁`
      // (Metaspace split=true) or has no byte fallback tokenizes differently (gguf-py's
      // LlamaHfVocab refuses the latter too).
      const bool metaspace_split = detail::has_step(pre_tokenizer, "Metaspace", [](const tokenizer::Json& s) {
        auto it = s.find("split");
        return !(it != s.end() && it->is_boolean() && !it->get<bool>());
      });
      if (!byte_fallback || metaspace_split)
        fail(ErrorCode::kUnsupported,
             "{}: a SentencePiece-style tokenizer {} would tokenize differently as a GGUF \"llama\" model", tok_file,
             !byte_fallback ? "without byte_fallback" : "whose Metaspace pre-tokenizer splits at U+2581");
      summary.model = "llama";
      std::unordered_map<std::string, std::int64_t> first_rank;
      for (std::size_t r = 0; r < merges.size(); ++r) {
        const std::string& m = merges[r];
        const std::size_t space = m.empty() ? std::string::npos : m.find(' ', 1);
        if (space == std::string::npos) continue;
        first_rank.try_emplace(m.substr(0, space) + m.substr(space + 1), static_cast<std::int64_t>(r));
      }
      std::vector<float> scores(n);
      for (std::size_t i = 0; i < n; ++i) {
        auto it = first_rank.find(tokens[i]);
        scores[i] = it != first_rank.end() ? -static_cast<float>(it->second)
                                           : -static_cast<float>(merges.size() + i);
      }
      bool space_prefix = detail::has_step(normalizer, "Prepend", [](const Json& s) {
        return s.value("prepend", std::string()) == detail::kSpmSpace;
      });
      space_prefix = space_prefix || detail::has_step(pre_tokenizer, "Metaspace", [](const Json& s) {
                       if (s.value("prepend_scheme", std::string("always")) == "never") return false;
                       auto it = s.find("add_prefix_space");
                       return !(it != s.end() && it->is_boolean() && !it->get<bool>());
                     });
      w.set("tokenizer.ggml.model", std::string("llama"));
      w.set("tokenizer.ggml.tokens", tokens);
      w.set("tokenizer.ggml.scores", scores);
      w.set("tokenizer.ggml.token_type", types);
      w.set("tokenizer.ggml.add_space_prefix", space_prefix);
    } else {
      fail(ErrorCode::kUnsupported,
           "{}: a BPE tokenizer that is neither byte-level (a ByteLevel pre-tokenizer) nor SentencePiece-style "
           "(byte_fallback, a U+2581 normalizer or Metaspace) has no GGUF tokenizer model",
           tok_file);
    }
    summary.n_tokens = n;

    auto put_id = [&](const char* key, const std::optional<std::int64_t>& id) {
      if (id) w.set(key, static_cast<std::uint32_t>(*id));
    };
    put_id("tokenizer.ggml.bos_token_id", bos);
    put_id("tokenizer.ggml.eos_token_id", eos);
    put_id("tokenizer.ggml.unknown_token_id", unk);
    put_id("tokenizer.ggml.seperator_token_id", sep);  // sic: llama.cpp's key
    put_id("tokenizer.ggml.padding_token_id", pad);
    w.set("tokenizer.ggml.add_bos_token", add_bos.value_or(false) && bos.has_value());
    w.set("tokenizer.ggml.add_eos_token", add_eos.value_or(false) && eos.has_value());

    // Chat template.
    const auto jinja = folder / "chat_template.jinja";
    if (std::filesystem::exists(jinja, ec)) {
      w.set("tokenizer.chat_template", read_file(jinja, limits::kMaxTokenizerConfigBytes, "chat_template.jinja"));
      summary.chat_template = true;
    } else if (auto t = cfg.find("chat_template")) {
      if (t->is_string()) {
        w.set("tokenizer.chat_template", t->as_string());
        summary.chat_template = true;
      } else if (t->is_array()) {
        for (std::size_t i = 0; i < t->size(); ++i) {
          const JsonNode e = (*t)[i];
          const std::string name = e.at("name").as_string();
          const std::string& text = e.at("template").as_string();
          if (name == "default") {
            w.set("tokenizer.chat_template", text);
            summary.chat_template = true;
          } else {
            w.set("tokenizer.chat_template." + name, text);
          }
        }
      } else {
        t->fail_here(ErrorCode::kTokenizer, "expected a string or a list of named templates, got {}", t->type_name());
      }
    }
    return summary;
  });
}

}  // namespace moe::io
