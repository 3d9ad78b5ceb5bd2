// moe::Tokenizer: text <-> token ids with a Hugging Face tokenizer.json (BPE models: byte-level
// as in GPT-2/DeepSeek/Qwen/OLMoE/GPT-OSS/GLM, SentencePiece-style with byte fallback as in
// Mixtral/Llama), plus BOS/EOS settings from tokenizer_config.json. Pipeline, as the tokenizers
// library runs it: added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor; decoding
// maps ids to token strings and runs the decoder chain.
#pragma once

#include "moe/core/error.hpp"
#include "moe/tokenizer/added_tokens.hpp"
#include "moe/tokenizer/bpe.hpp"
#include "moe/tokenizer/decoder.hpp"
#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/normalizer.hpp"
#include "moe/tokenizer/post_processor.hpp"
#include "moe/tokenizer/pre_tokenizer.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

class StreamDecoder;

// Immutable after loading; every member function is const and thread-safe (encode shares a word
// cache guarded by a mutex). Copies are cheap and share the loaded data.
class Tokenizer {
 public:
  // Loads a tokenizer.json. Errors: kIo (unreadable), kTokenizer (malformed: not JSON, wrong
  // types, merges with unknown tokens, ids out of range or duplicated; the message names the
  // file and the key), kUnsupported (a model, normalizer, pre-tokenizer, decoder or
  // post-processor type this library does not implement, e.g. WordPiece or Unigram).
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json) {
    return catch_as_error("Tokenizer::from_file", [&] { return Tokenizer(load(tokenizer_json, std::nullopt)); });
  }

  // Loads dir/tokenizer.json and, if present, dir/tokenizer_config.json (bos_token, eos_token,
  // add_bos_token, add_eos_token).
  static Tokenizer from_folder(const std::filesystem::path& dir) {
    return catch_as_error("Tokenizer::from_folder", [&] {
      const auto config = dir / "tokenizer_config.json";
      std::optional<std::filesystem::path> cfg;
      std::error_code ec;
      if (std::filesystem::exists(config, ec)) cfg = config;
      return Tokenizer(load(dir / "tokenizer.json", cfg));
    });
  }

  // Builds a tokenizer from the text of a tokenizer.json (and optionally of a
  // tokenizer_config.json); `name` stands for the file in error messages.
  static Tokenizer from_json_text(std::string_view tokenizer_json, std::string_view config_json = {},
                                  std::string name = "tokenizer.json") {
    return catch_as_error("Tokenizer::from_json_text", [&] { return build_from_text(tokenizer_json, config_json, name); });
  }

  // A tokenizer assembled from parts that do not come from one tokenizer.json (a GGUF file's
  // metadata): component configs in tokenizer.json form, a BPE model built from token lists, and
  // the ids placed around a sequence. Errors as from_file, naming parts.file.
  struct Parts {
    std::string file;              // names the source in error messages
    tokenizer::Json normalizer;    // tokenizer.json "normalizer" value (null: none)
    tokenizer::Json pre_tokenizer; // "pre_tokenizer" value (null: none)
    tokenizer::Json decoder;       // "decoder" value (null: none)
    tokenizer::Json added_tokens;  // "added_tokens" array (null: none); ids must be model ids or new ones
    tokenizer::BpeModel model;
    std::vector<std::int32_t> prefix, suffix;  // ids around a sequence with add_special_tokens
    std::optional<std::int32_t> bos, eos;
  };
  static Tokenizer from_parts(Parts parts) {
    return catch_as_error("Tokenizer::from_parts", [&] {
      auto d = std::make_shared<Data>();
      d->file = std::move(parts.file);
      const tokenizer::JsonNode norm(parts.normalizer, "normalizer", d->file);
      d->normalizer = tokenizer::Normalizer::from_json(&norm);
      const tokenizer::JsonNode pre(parts.pre_tokenizer, "pre_tokenizer", d->file);
      d->pre_tokenizer = tokenizer::PreTokenizer::from_json(&pre);
      const tokenizer::JsonNode dec(parts.decoder, "decoder", d->file);
      d->decoder = tokenizer::Decoder::from_json(&dec);
      d->model = std::move(parts.model);
      const tokenizer::JsonNode added(parts.added_tokens, "added_tokens", d->file);
      d->added = tokenizer::AddedVocabulary::from_json(&added, d->normalizer);
      finish_id_table(*d);
      for (const auto* ids : {&parts.prefix, &parts.suffix})
        for (std::int32_t id : *ids)
          if (id < 0 || static_cast<std::size_t>(id) >= d->by_id.size() || d->by_id[static_cast<std::size_t>(id)] == nullptr)
            fail(ErrorCode::kTokenizer, "{}: special token id {} is not in the vocabulary", d->file, id);
      d->prefix = std::move(parts.prefix);
      d->suffix = std::move(parts.suffix);
      d->bos = parts.bos;
      d->eos = parts.eos;
      return Tokenizer(std::shared_ptr<const Data>(std::move(d)));
    });
  }

  // Token ids of `text` (UTF-8; kTokenizer if it is not valid UTF-8). With add_special_tokens,
  // the BOS/EOS ids of the post-processor (or of tokenizer_config.json's add_bos_token /
  // add_eos_token, which take precedence) are placed around the sequence.
  std::vector<std::int32_t> encode(std::string_view text, bool add_special_tokens = false) const {
    return catch_as_error("Tokenizer::encode", [&] { return encode_text(text, add_special_tokens); });
  }

  // Text of `ids`. Every id must be a token of this vocabulary (kInvalidArgument otherwise).
  // Special added tokens are left out when skip_special_tokens is set.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const {
    return catch_as_error("Tokenizer::decode", [&] { return decode_ids(ids, skip_special_tokens); });
  }

 private:
  static Tokenizer build_from_text(std::string_view tokenizer_json, std::string_view config_json,
                                   const std::string& name) {
    const tokenizer::Json doc = tokenizer::parse_tokenizer_json(tokenizer_json, name);
    if (config_json.empty()) return Tokenizer(build(doc, name, nullptr, {}));
    const std::string cfg_name = "tokenizer_config.json";
    const tokenizer::Json cfg = tokenizer::parse_tokenizer_json(config_json, cfg_name);
    return Tokenizer(build(doc, name, &cfg, cfg_name));
  }

  std::vector<std::int32_t> encode_text(std::string_view text, bool add_special_tokens) const {
    const std::size_t bad = tokenizer::utf8_first_invalid(text);
    if (bad != text.size())
      fail(ErrorCode::kTokenizer, "input text is not valid UTF-8 (byte {} of {}: 0x{:02X})", bad, text.size(),
           static_cast<unsigned>(static_cast<unsigned char>(text[bad])));
    const Data& d = *d_;
    thread_local std::vector<tokenizer::Piece> pieces;  // reused: see PreTokenizer::pre_tokenize
    pieces.clear();
    d.added.extract(text, d.normalizer, pieces);
    d.pre_tokenizer.pre_tokenize(pieces);
    std::vector<std::int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    if (add_special_tokens) ids.insert(ids.end(), d.prefix.begin(), d.prefix.end());
    for (const tokenizer::Piece& p : pieces) {
      if (p.token >= 0) {
        ids.push_back(p.token);
      } else {
        d.model.tokenize(p.text, ids);
      }
    }
    if (add_special_tokens) ids.insert(ids.end(), d.suffix.begin(), d.suffix.end());
    pieces.clear();
    if (pieces.capacity() > tokenizer::PreTokenizer::kMaxRetainedPieces) std::vector<tokenizer::Piece>().swap(pieces);
    return ids;
  }

  std::string decode_ids(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
    const Data& d = *d_;
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (std::int32_t id : ids) {
      const std::string& t = token_of(id);
      if (skip_special_tokens && d.special[static_cast<std::size_t>(id)]) continue;
      tokens.push_back(t);
    }
    return d.decoder.decode(std::move(tokens));
  }

 public:
  // One past the largest token id (model vocabulary and added tokens).
  std::size_t vocab_size() const noexcept { return d_->by_id.size(); }

  std::optional<std::int32_t> token_to_id(std::string_view token) const {
    if (auto id = d_->added.find_content(token)) return id;
    return d_->model.token_to_id(token);
  }

  // The token string of `id` (an added token's content, or the model's vocabulary entry);
  // nullopt for an id this tokenizer does not have.
  std::optional<std::string> id_to_token(std::int32_t id) const {
    if (!has_id(id)) return std::nullopt;
    return *d_->by_id[static_cast<std::size_t>(id)];
  }

  std::optional<std::int32_t> bos_id() const noexcept { return d_->bos; }
  std::optional<std::int32_t> eos_id() const noexcept { return d_->eos; }

  // True for added tokens marked special (skipped by decode with skip_special_tokens).
  bool is_special(std::int32_t id) const noexcept { return has_id(id) && d_->special[static_cast<std::size_t>(id)]; }

  bool has_id(std::int32_t id) const noexcept {
    return id >= 0 && static_cast<std::size_t>(id) < d_->by_id.size() && d_->by_id[static_cast<std::size_t>(id)] != nullptr;
  }

 private:
  friend class StreamDecoder;

  struct Data {
    std::string file;
    tokenizer::Normalizer normalizer;
    tokenizer::PreTokenizer pre_tokenizer;
    tokenizer::BpeModel model;
    tokenizer::AddedVocabulary added;
    tokenizer::Decoder decoder;
    std::vector<std::int32_t> prefix, suffix;  // ids added around a sequence with add_special_tokens
    std::optional<std::int32_t> bos, eos;
    std::vector<const std::string*> by_id;      // token string of each id (nullptr: hole)
    std::vector<bool> special;                  // by id
  };

  explicit Tokenizer(std::shared_ptr<const Data> d) : d_(std::move(d)) {}

  const std::string& token_of(std::int32_t id) const {
    if (!has_id(id))
      fail(ErrorCode::kInvalidArgument, "token id {} is not in the vocabulary of {} (vocab size {})", id, d_->file,
           d_->by_id.size());
    return *d_->by_id[static_cast<std::size_t>(id)];
  }

  // The token string used for decoding and whether ByteFallback would read it as a byte.
  bool is_byte_token(std::int32_t id) const noexcept {
    return has_id(id) && tokenizer::parse_byte_token(*d_->by_id[static_cast<std::size_t>(id)]).has_value();
  }

  static std::optional<std::string> config_token(const tokenizer::JsonNode& config, std::string_view key) {
    auto node = config.find(key);
    if (!node) return std::nullopt;
    if (node->is_string()) return node->as_string();
    if (node->is_object()) return node->at("content").as_string();  // serialized AddedToken
    node->fail_here(ErrorCode::kTokenizer, "expected a string or an object with \"content\", got {}", node->type_name());
  }

  // Id table over model vocabulary and added tokens (an added token's content wins for its id).
  static void finish_id_table(Data& dd) {
    Data* d = &dd;
    std::size_t space = d->model.id_space();
    for (const auto& t : d->added.tokens()) space = std::max(space, static_cast<std::size_t>(t.id) + 1);
    const std::size_t entries = d->model.size() + d->added.tokens().size();
    if (space > 4 * entries + 1024)
      fail(ErrorCode::kTokenizer, "{}: added_tokens: largest id {} is out of range for {} tokens", d->file, space - 1,
           entries);
    d->by_id.assign(space, nullptr);
    d->special.assign(space, false);
    for (std::size_t id = 0; id < d->model.id_space(); ++id)
      d->by_id[id] = d->model.id_to_token(static_cast<std::int32_t>(id));
    for (const auto& t : d->added.tokens()) {
      d->by_id[static_cast<std::size_t>(t.id)] = &t.content;
      d->special[static_cast<std::size_t>(t.id)] = t.special;
    }
  }

  static std::shared_ptr<const Data> load(const std::filesystem::path& path,
                                          const std::optional<std::filesystem::path>& config_path) {
    const tokenizer::Json doc =
        tokenizer::read_tokenizer_json_file(path, limits::kMaxTokenizerJsonBytes, "tokenizer.json");
    if (!config_path) return build(doc, path.string(), nullptr, {});
    const tokenizer::Json cfg =
        tokenizer::read_tokenizer_json_file(*config_path, limits::kMaxTokenizerConfigBytes, "tokenizer_config.json");
    return build(doc, path.string(), &cfg, config_path->string());
  }

  static std::shared_ptr<const Data> build(const tokenizer::Json& doc, const std::string& file,
                                           const tokenizer::Json* cfg_doc, const std::string& cfg_file) {
    using tokenizer::JsonNode;
    auto d = std::make_shared<Data>();
    d->file = file;
    const JsonNode root(doc, "", d->file);
    root.expect_object();

    auto optional_node = [&](std::string_view key) { return root.find(key); };
    const auto normalizer_node = optional_node("normalizer");
    d->normalizer = tokenizer::Normalizer::from_json(normalizer_node ? &*normalizer_node : nullptr);
    const auto pre_node = optional_node("pre_tokenizer");
    d->pre_tokenizer = tokenizer::PreTokenizer::from_json(pre_node ? &*pre_node : nullptr);
    const auto decoder_node = optional_node("decoder");
    d->decoder = tokenizer::Decoder::from_json(decoder_node ? &*decoder_node : nullptr);

    const JsonNode model = root.at("model");
    model.expect_object();
    std::string type = model.string_or("type", "");
    if (type.empty() && model.find("merges")) type = "BPE";  // files from before "type" was written
    if (type != "BPE")
      model.fail_here(ErrorCode::kUnsupported, "model type '{}' is not supported (only BPE)", type);
    d->model = tokenizer::BpeModel::from_json(model);

    const auto added_node = optional_node("added_tokens");
    d->added = tokenizer::AddedVocabulary::from_json(added_node ? &*added_node : nullptr, d->normalizer);

    finish_id_table(*d);

    const auto post_node = optional_node("post_processor");
    const auto post = tokenizer::PostProcessor::from_json(post_node ? &*post_node : nullptr);
    for (const auto* ids : {&post.prefix, &post.suffix})
      for (std::int32_t id : *ids)
        if (id < 0 || static_cast<std::size_t>(id) >= d->by_id.size() || d->by_id[static_cast<std::size_t>(id)] == nullptr)
          fail(ErrorCode::kTokenizer, "{}: post_processor: token id {} is not in the vocabulary", d->file, id);
    d->prefix = post.prefix;
    d->suffix = post.suffix;
    if (!post.prefix.empty()) d->bos = post.prefix.front();
    if (!post.suffix.empty()) d->eos = post.suffix.back();

    if (cfg_doc != nullptr) {
      const JsonNode cfg(*cfg_doc, "", cfg_file);
      cfg.expect_object();
      auto resolve = [&](std::string_view key) -> std::optional<std::int32_t> {
        auto name = config_token(cfg, key);
        if (!name) return std::nullopt;
        Tokenizer probe(d);
        auto id = probe.token_to_id(*name);
        if (!id) cfg.at(key).fail_here(ErrorCode::kTokenizer, "token '{}' is not in the vocabulary of {}", *name, d->file);
        return id;
      };
      const auto bos = resolve("bos_token");
      const auto eos = resolve("eos_token");
      if (cfg.find("bos_token")) d->bos = bos;
      if (cfg.find("eos_token")) d->eos = eos;
      // add_bos_token / add_eos_token override the post-processor's choice for their side.
      if (auto add_bos = cfg.find("add_bos_token")) {
        d->prefix.clear();
        if (add_bos->as_bool() && d->bos) d->prefix.push_back(*d->bos);
      }
      if (auto add_eos = cfg.find("add_eos_token")) {
        d->suffix.clear();
        if (add_eos->as_bool() && d->eos) d->suffix.push_back(*d->eos);
      }
    }
    return d;
  }

  std::shared_ptr<const Data> d_;
};

}  // namespace moe

#include "moe/tokenizer/stream_decoder.hpp"
