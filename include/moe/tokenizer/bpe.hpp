// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, merges in both
// file formats ("a b" strings and ["a", "b"] pairs), unk_token/fuse_unk, byte_fallback (<0xNN>
// tokens), ignore_merges, continuing_subword_prefix and end_of_word_suffix, and a word cache.
#pragma once

#include "moe/core/error.hpp"
#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/string_hash.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moe::tokenizer {

// Largest id a vocabulary may use; ids index arrays, so a hostile file must not make us allocate
// gigabytes for a sparse id space (checked against the number of entries as well).
inline constexpr std::int64_t kMaxTokenId = (std::int64_t{1} << 31) - 2;

// Immutable after from_json except for the internal word cache, which is guarded by a mutex;
// tokenize() is thread-safe.
class BpeModel {
 public:
  // Reads the "model" object. Errors (kTokenizer) name `model.file()` and the key.
  static BpeModel from_json(const JsonNode& model) {
    BpeModel m;
    m.read_vocab(model.at("vocab"));
    if (auto unk = model.find("unk_token")) m.unk_token_ = unk->as_string();
    if (auto p = model.find("continuing_subword_prefix")) m.prefix_ = p->as_string();
    if (auto s = model.find("end_of_word_suffix")) m.suffix_ = s->as_string();
    m.fuse_unk_ = model.bool_or("fuse_unk", false);
    m.byte_fallback_ = model.bool_or("byte_fallback", false);
    m.ignore_merges_ = model.bool_or("ignore_merges", false);
    // dropout is a training-time regularizer; inference uses the deterministic merge order.
    if (m.unk_token_) {
      auto it = m.vocab_.find(*m.unk_token_);
      if (it != m.vocab_.end()) m.unk_id_ = it->second;
    }
    for (int b = 0; b < 256; ++b) {
      auto it = m.vocab_.find(fmt::format("<0x{:02X}>", b));
      m.byte_ids_[b] = it == m.vocab_.end() ? -1 : it->second;
    }
    m.char_ids_.assign(kCharTableSize, -1);
    for (const auto& [token, id] : m.vocab_) {
      std::size_t len = 0;
      if (token.empty()) continue;
      const char32_t cp = utf8_decode(token, 0, len);
      if (len == token.size() && cp < kCharTableSize) m.char_ids_[cp] = id;
    }
    m.read_merges(model.at("merges"));
    m.cache_ = std::make_unique<WordCache>();
    return m;
  }

  // Options of a vocabulary given as a token list (a GGUF file's tokenizer.ggml.* arrays).
  struct ListOptions {
    std::string file;                    // names the source in error messages
    bool byte_fallback = false;          // unknown characters become <0xNN> tokens
    bool ignore_merges = false;          // a word that is a token is emitted whole
    std::optional<std::int32_t> unk_id;  // emitted for characters nothing else covers
  };

  // Byte-level BPE from tokens by id and merges "left right" in priority order (llama.cpp's BPE
  // vocabulary). Errors (kTokenizer) name opts.file, the key and the values: a duplicate token,
  // a merge that is not two tokens and a space, a merge whose halves or result are not tokens.
  // A repeated merge pair keeps its first rank, as llama.cpp's rank map does.
  static BpeModel from_token_list(std::vector<std::string> tokens, std::span<const std::string> merges,
                                  const ListOptions& opts) {
    BpeModel m;
    m.init_list(std::move(tokens), opts);
    std::unordered_map<std::uint64_t, MergeRule, PairHash> rules;
    rules.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const std::string& line = merges[rank];
      const std::size_t space = line.empty() ? std::string::npos : line.find(' ', 1);
      if (space == std::string::npos || space + 1 >= line.size())
        fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.merges[{}] = '{}' is not two tokens separated by a space",
             opts.file, rank, line);
      const std::string_view left(line.data(), space), right(line.data() + space + 1, line.size() - space - 1);
      std::string joined(left);
      joined.append(right);
      auto id_of = [&](std::string_view t) {
        auto it = m.vocab_.find(t);
        if (it == m.vocab_.end())
          fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.merges[{}] = '{}' uses '{}', which is not a token", opts.file,
               rank, line, t);
        return it->second;
      };
      const std::int32_t a = id_of(left), b = id_of(right), result = id_of(joined);
      rules.try_emplace(pair_key(a, b), MergeRule{static_cast<std::int32_t>(rank), result});
    }
    m.merges_.build(rules);
    return m;
  }

  // SentencePiece-style BPE from tokens and scores by id, as llama.cpp's SPM tokenizer runs it:
  // a word starts as its characters, and the adjacent pair whose concatenation is a token with
  // the highest score merges first (ties: leftmost), until no pair is a token. A character that is
  // not a token becomes its byte tokens (<0xNN>, else the byte itself as a token), else unk.
  static BpeModel from_token_scores(std::vector<std::string> tokens, std::span<const float> scores,
                                    const ListOptions& opts) {
    if (scores.size() != tokens.size())
      fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.scores has {} entries for {} tokens", opts.file, scores.size(),
           tokens.size());
    BpeModel m;
    m.init_list(std::move(tokens), opts);
    m.scores_.assign(scores.begin(), scores.end());
    m.spm_ = true;
    return m;
  }

  std::optional<std::int32_t> token_to_id(std::string_view token) const {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
  }
  // The token of `id`, or nullptr for an id the vocabulary does not hold.
  const std::string* id_to_token(std::int32_t id) const noexcept {
    if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size() || !present_[static_cast<std::size_t>(id)]) return nullptr;
    return &tokens_[static_cast<std::size_t>(id)];
  }
  // One past the largest id of the vocabulary.
  std::size_t id_space() const noexcept { return tokens_.size(); }
  std::size_t size() const noexcept { return vocab_.size(); }
  const TokenMap& vocab() const noexcept { return vocab_; }
  bool byte_fallback() const noexcept { return byte_fallback_; }

  // Appends the ids of one pre-tokenized word (non-empty, valid UTF-8) to `out`.
  void tokenize(std::string_view word, std::vector<std::int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
      // Llama-3 style: a word that is itself a token is emitted whole, even if the merges would
      // split it differently.
      auto it = vocab_.find(word);
      if (it != vocab_.end()) {
        out.push_back(it->second);
        return;
      }
    }
    const bool cacheable = word.size() < kMaxCachedWordBytes;
    if (cacheable && cache_->lookup(word, out)) return;
    const std::size_t start = out.size();
    if (spm_) {
      merge_word_by_score(word, out);
    } else {
      merge_word(word, out);
    }
    if (cacheable) cache_->store(word, std::span<const std::int32_t>(out.data() + start, out.size() - start));
  }

 private:
  static constexpr std::size_t kMaxCachedWordBytes = 256;
  static constexpr std::size_t kCacheCapacity = 20000;

  struct MergeRule {
    std::int32_t rank;
    std::int32_t result;
  };
  static constexpr std::size_t kCharTableSize = 0x10000;  // direct id lookup for BMP characters
  struct PairHash {
    std::size_t operator()(std::uint64_t x) const noexcept {  // splitmix64 finalizer
      x ^= x >> 30;
      x *= 0xbf58476d1ce4e5b9ull;
      x ^= x >> 27;
      x *= 0x94d049bb133111ebull;
      x ^= x >> 31;
      return static_cast<std::size_t>(x);
    }
  };
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }

  // Open-addressing (linear probing) map from a pair key to its merge rule: the hot lookup of the
  // merge loop, a few times per character. Ids are below 2^31, so no key has its top bit set and
  // all-ones marks an empty slot.
  class MergeTable {
   public:
    void build(const std::unordered_map<std::uint64_t, MergeRule, PairHash>& rules) {
      std::size_t cap = 16;
      while (cap < 2 * rules.size()) cap *= 2;
      mask_ = cap - 1;
      keys_.assign(cap, kEmpty);
      values_.assign(cap, MergeRule{0, 0});
      for (const auto& [key, rule] : rules) {
        std::size_t i = PairHash{}(key) & mask_;
        while (keys_[i] != kEmpty) i = (i + 1) & mask_;
        keys_[i] = key;
        values_[i] = rule;
      }
    }
    const MergeRule* find(std::uint64_t key) const noexcept {
      if (keys_.empty()) return nullptr;
      std::size_t i = PairHash{}(key) & mask_;
      while (true) {
        const std::uint64_t k = keys_[i];
        if (k == key) return &values_[i];
        if (k == kEmpty) return nullptr;
        i = (i + 1) & mask_;
      }
    }

   private:
    static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
    std::vector<std::uint64_t> keys_;
    std::vector<MergeRule> values_;
    std::size_t mask_ = 0;
  };

  // Words seen before and their ids. Stops growing at capacity (like the library's cache).
  class WordCache {
   public:
    bool lookup(std::string_view word, std::vector<std::int32_t>& out) const {
      std::shared_lock lock(mutex_);
      auto it = map_.find(word);
      if (it == map_.end()) return false;
      out.insert(out.end(), it->second.begin(), it->second.end());
      return true;
    }
    void store(std::string_view word, std::span<const std::int32_t> ids) {
      std::unique_lock lock(mutex_);
      if (map_.size() >= kCacheCapacity) return;
      map_.try_emplace(std::string(word), ids.begin(), ids.end());
    }

   private:
    mutable std::shared_mutex mutex_;
    StringMap<std::vector<std::int32_t>> map_;
  };

  struct Symbol {
    std::int32_t id;
    std::int32_t prev;  // index of the previous live symbol, -1 at the start
    std::int32_t next;  // index of the next live symbol, -1 at the end
    bool alive;
  };
  struct Candidate {  // a pair (symbol pos, its next) that a merge rule applies to
    std::int32_t rank;
    std::int32_t pos;
    std::int32_t result;
  };
  struct Scratch {
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
    std::string piece;
  };

  // Vocabulary tables from a token list (ids = positions). Empty tokens are renamed
  // "[EMPTY_<id>]" as llama.cpp does; a repeated token is an error (llama.cpp refuses it too).
  void init_list(std::vector<std::string> tokens, const ListOptions& opts) {
    if (tokens.size() > static_cast<std::size_t>(kMaxTokenId))
      fail(ErrorCode::kTokenizer, "{}: {} tokens is more than the {} this library allows", opts.file, tokens.size(),
           kMaxTokenId);
    vocab_.reserve(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i].empty()) tokens[i] = fmt::format("[EMPTY_{}]", i);
      auto [it, fresh] = vocab_.emplace(tokens[i], static_cast<std::int32_t>(i));
      if (!fresh)
        fail(ErrorCode::kTokenizer, "{}: tokenizer.ggml.tokens: '{}' is both token {} and token {}", opts.file,
             tokens[i], it->second, i);
    }
    tokens_ = std::move(tokens);
    present_.assign(tokens_.size(), true);
    byte_fallback_ = opts.byte_fallback;
    ignore_merges_ = opts.ignore_merges;
    if (opts.unk_id) {
      if (*opts.unk_id < 0 || static_cast<std::size_t>(*opts.unk_id) >= tokens_.size())
        fail(ErrorCode::kTokenizer, "{}: unknown-token id {} is outside the vocabulary of {}", opts.file, *opts.unk_id,
             tokens_.size());
      unk_id_ = opts.unk_id;
      unk_token_ = tokens_[static_cast<std::size_t>(*opts.unk_id)];
    }
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
      byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
    }
    char_ids_.assign(kCharTableSize, -1);
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
      const std::string& token = tokens_[i];
      std::size_t len = 0;
      const char32_t cp = utf8_decode(token, 0, len);
      if (len == token.size() && cp < kCharTableSize && char_ids_[cp] < 0) char_ids_[cp] = static_cast<std::int32_t>(i);
    }
    cache_ = std::make_unique<WordCache>();
  }

  // llama.cpp's SPM merge loop (llm_tokenizer_spm_session::tokenize): symbols are byte ranges
  // of `w`, always adjacent, so a pair's text is w[left.begin, left.begin + size). A heap entry
  // is stale when either symbol changed size since it was pushed. O(n log n) in the word length.
  void merge_word_by_score(std::string_view w, std::vector<std::int32_t>& out) const {
    struct Sym {
      std::uint32_t begin, len;
      std::int32_t prev, next;
    };
    struct Pair {
      float score;
      std::int32_t left, right;
      std::uint32_t size;
    };
    thread_local std::vector<Sym> syms;
    thread_local std::vector<Pair> heap;
    syms.clear();
    heap.clear();
    for (std::size_t i = 0; i < w.size();) {
      std::size_t len = utf8_sequence_length(static_cast<unsigned char>(w[i]));
      if (len == 0 || i + len > w.size()) len = 1;
      const auto n = static_cast<std::int32_t>(syms.size());
      syms.push_back(Sym{static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(len), n - 1, -1});
      if (n > 0) syms[static_cast<std::size_t>(n - 1)].next = n;
      i += len;
    }
    const auto worse = [](const Pair& a, const Pair& b) {  // max-heap on score, then min on left
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    auto try_pair = [&](std::int32_t l, std::int32_t r) {
      if (l < 0 || r < 0) return;
      const Sym& a = syms[static_cast<std::size_t>(l)];
      const Sym& b = syms[static_cast<std::size_t>(r)];
      auto it = vocab_.find(w.substr(a.begin, a.len + b.len));
      if (it == vocab_.end()) return;
      heap.push_back(Pair{scores_[static_cast<std::size_t>(it->second)], l, r, a.len + b.len});
      std::push_heap(heap.begin(), heap.end(), worse);
    };
    for (std::int32_t k = 1; k < static_cast<std::int32_t>(syms.size()); ++k) try_pair(k - 1, k);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), worse);
      const Pair p = heap.back();
      heap.pop_back();
      Sym& a = syms[static_cast<std::size_t>(p.left)];
      Sym& b = syms[static_cast<std::size_t>(p.right)];
      if (a.len == 0 || b.len == 0 || a.len + b.len != p.size) continue;
      a.len += b.len;
      b.len = 0;
      a.next = b.next;
      if (b.next >= 0) syms[static_cast<std::size_t>(b.next)].prev = p.left;
      try_pair(a.prev, p.left);
      try_pair(p.left, a.next);
    }
    for (std::int32_t k = syms.empty() ? -1 : 0; k >= 0; k = syms[static_cast<std::size_t>(k)].next) {
      const Sym& s = syms[static_cast<std::size_t>(k)];
      const std::string_view text = w.substr(s.begin, s.len);
      if (auto it = vocab_.find(text); it != vocab_.end()) {
        out.push_back(it->second);
        continue;
      }
      // Only a single character can be a non-token here: merged symbols are always tokens.
      {
        const std::size_t mark = out.size();
        bool all = true;
        for (char c : text) {
          const auto u = static_cast<unsigned char>(c);
          std::int32_t id = byte_ids_[u];
          if (id < 0) {
            auto single = vocab_.find(std::string_view(&c, 1));
            id = single == vocab_.end() ? -1 : single->second;
          }
          if (id < 0) {
            all = false;
            break;
          }
          out.push_back(id);
        }
        if (all) continue;
        out.resize(mark);
      }
      if (unk_id_) out.push_back(*unk_id_);
      // Neither bytes nor unk: the character is dropped (llama.cpp would throw out_of_range).
    }
  }

  void read_vocab(const JsonNode& vocab) {
    vocab.expect_object();
    const std::size_t n = vocab.json().size();
    std::int64_t max_id = -1;
    std::vector<std::pair<std::int32_t, const std::string*>> entries;
    entries.reserve(n);
    vocab_.reserve(n);
    vocab.for_each_member([&](const std::string& token, const JsonNode& value) {
      const std::int64_t id = value.as_int();
      if (id < 0 || id > kMaxTokenId) value.fail_here(ErrorCode::kTokenizer, "token id {} out of range", id);
      max_id = std::max(max_id, id);
      vocab_.emplace(token, static_cast<std::int32_t>(id));
    });
    // A sparse id space is legal, but not one that is mostly holes.
    if (max_id >= 0 && static_cast<std::uint64_t>(max_id) > 4 * static_cast<std::uint64_t>(n) + 1024)
      vocab.fail_here(ErrorCode::kTokenizer, "largest id {} is out of range for {} entries", max_id, n);
    tokens_.assign(static_cast<std::size_t>(max_id + 1), std::string());
    present_.assign(static_cast<std::size_t>(max_id + 1), false);
    for (const auto& [token, id] : vocab_) {
      const auto i = static_cast<std::size_t>(id);
      if (present_[i])
        vocab.fail_here(ErrorCode::kTokenizer, "duplicate id {} for tokens '{}' and '{}'", id, tokens_[i], token);
      present_[i] = true;
      tokens_[i] = token;
    }
  }

  std::int32_t merge_operand(const JsonNode& where, const std::string& token) const {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) where.fail_here(ErrorCode::kTokenizer, "merge uses token '{}' which is not in the vocabulary", token);
    return it->second;
  }

  void read_merges(const JsonNode& merges) {
    const std::size_t n = merges.size();
    std::unordered_map<std::uint64_t, MergeRule, PairHash> rules;
    rules.reserve(n);
    std::string left, right, joined;
    for (std::size_t rank = 0; rank < n; ++rank) {
      const JsonNode item = merges[rank];
      if (item.is_string()) {
        const std::string& line = item.as_string();
        const std::size_t first = line.find(' ');
        if (first == std::string::npos)
          item.fail_here(ErrorCode::kTokenizer, "merge '{}' is not two tokens separated by a space", line);
        if (line.find(' ', first + 1) == std::string::npos) {
          left.assign(line, 0, first);
          right.assign(line, first + 1);
        } else if (!split_ambiguous_merge(line, left, right)) {
          // Tokens containing spaces: accept the one split whose halves and concatenation are
          // all tokens; none or several is an error.
          item.fail_here(ErrorCode::kTokenizer, "merge '{}' has several spaces and no unique split into tokens", line);
        }
      } else if (item.is_array()) {
        if (item.size() != 2) item.fail_here(ErrorCode::kTokenizer, "a merge pair must have 2 tokens, got {}", item.size());
        left = item[0].as_string();
        right = item[1].as_string();
      } else {
        item.fail_here(ErrorCode::kTokenizer, "expected a string \"a b\" or a pair [\"a\", \"b\"], got {}", item.type_name());
      }
      const std::int32_t a = merge_operand(item, left);
      const std::int32_t b = merge_operand(item, right);
      if (!prefix_.empty() && right.compare(0, prefix_.size(), prefix_) != 0)
        item.fail_here(ErrorCode::kTokenizer, "merge right token '{}' lacks the continuing_subword_prefix '{}'", right, prefix_);
      joined = left;
      joined.append(right, prefix_.size());
      const std::int32_t result = merge_operand(item, joined);
      // A repeated pair keeps its last rank, as the library's map insertion does.
      rules[pair_key(a, b)] = MergeRule{static_cast<std::int32_t>(rank), result};
    }
    merges_.build(rules);
  }

  bool split_ambiguous_merge(const std::string& line, std::string& left, std::string& right) const {
    int found = 0;
    for (std::size_t pos = line.find(' '); pos != std::string::npos; pos = line.find(' ', pos + 1)) {
      std::string_view a(line.data(), pos), b(line.data() + pos + 1, line.size() - pos - 1);
      if (!vocab_.count(a) || !vocab_.count(b)) continue;
      std::string ab(a);
      ab.append(b);
      if (!vocab_.count(std::string_view(ab))) continue;
      if (++found > 1) return false;
      left.assign(a);
      right.assign(b);
    }
    return found == 1;
  }

  const MergeRule* find_merge(std::int32_t a, std::int32_t b) const noexcept {
    return merges_.find(pair_key(a, b));
  }

  // Splits `w` into characters (with prefix/suffix, byte fallback, unk) and applies merges in
  // rank order: a min-heap of candidate pairs keyed by (rank, position), O(n log n) in the word
  // length even for long runs of one character. Stale heap entries are skipped on pop.
  void merge_word(std::string_view w, std::vector<std::int32_t>& out) const {
    thread_local Scratch scratch;
    auto& symbols = scratch.symbols;
    auto& heap = scratch.heap;
    symbols.clear();
    heap.clear();

    auto add_symbol = [&](std::int32_t id) {
      const auto n = static_cast<std::int32_t>(symbols.size());
      symbols.push_back(Symbol{id, n - 1, -1, true});
      if (n > 0) symbols[static_cast<std::size_t>(n - 1)].next = n;
    };
    std::int32_t pending_unk = -1;  // the unk awaiting more unknown characters (fuse_unk), -1 if none
    std::size_t i = 0;
    while (i < w.size()) {
      std::size_t len = utf8_sequence_length(static_cast<unsigned char>(w[i]));
      if (len == 0 || i + len > w.size()) len = 1;
      const bool is_first = i == 0;
      const bool is_last = i + len == w.size();
      std::string_view s = w.substr(i, len);
      if ((!is_first && !prefix_.empty()) || (is_last && !suffix_.empty())) {
        scratch.piece.clear();
        if (!is_first) scratch.piece.append(prefix_);
        scratch.piece.append(s);
        if (is_last) scratch.piece.append(suffix_);
        s = scratch.piece;
      }
      std::int32_t id = -1;
      if (s.size() == len) {  // a plain character: direct table for the BMP
        std::size_t cp_len = 0;
        const char32_t cp = utf8_decode(s, 0, cp_len);
        if (cp_len == len && cp < kCharTableSize) {
          id = char_ids_[cp];
        } else if (auto it = vocab_.find(s); it != vocab_.end()) {
          id = it->second;
        }
      } else if (auto it = vocab_.find(s); it != vocab_.end()) {
        id = it->second;
      }
      if (id >= 0) {
        if (pending_unk >= 0) add_symbol(pending_unk);
        pending_unk = -1;
        add_symbol(id);
      } else {
        bool fell_back = false;
        if (byte_fallback_) {
          fell_back = std::all_of(s.begin(), s.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; });
          if (fell_back) {
            // Like the library, a pending (fused) unk is not flushed here: it follows the bytes.
            for (char c : s) add_symbol(byte_ids_[static_cast<unsigned char>(c)]);
          }
        }
        if (!fell_back && unk_token_) {
          if (!unk_id_)
            fail(ErrorCode::kTokenizer, "unk_token '{}' is needed but is not in the vocabulary", *unk_token_);
          if (pending_unk >= 0 && !fuse_unk_) add_symbol(pending_unk);
          pending_unk = *unk_id_;
        }
        // Without unk_token or byte fallback, an unknown character is dropped (as the library does).
      }
      i += len;
    }
    if (pending_unk >= 0) add_symbol(pending_unk);

    const auto later = [](const Candidate& x, const Candidate& y) {
      return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
    };
    auto push = [&](std::int32_t pos) {
      const Symbol& s = symbols[static_cast<std::size_t>(pos)];
      if (s.next < 0) return;
      if (const MergeRule* r = find_merge(s.id, symbols[static_cast<std::size_t>(s.next)].id)) {
        heap.push_back(Candidate{r->rank, pos, r->result});
        std::push_heap(heap.begin(), heap.end(), later);
      }
    };
    for (std::int32_t k = 0; k + 1 < static_cast<std::int32_t>(symbols.size()); ++k) push(k);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = symbols[static_cast<std::size_t>(left.next)];
      const MergeRule* rule = find_merge(left.id, right.id);
      if (rule == nullptr || rule->result != top.result) continue;  // stale entry
      left.id = top.result;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
      if (left.prev >= 0) push(left.prev);
      push(top.pos);
    }
    for (const Symbol& s : symbols)
      if (s.alive) out.push_back(s.id);
  }

  TokenMap vocab_;
  std::vector<std::string> tokens_;  // by id; holes are empty and not present_
  std::vector<bool> present_;
  MergeTable merges_;
  std::vector<std::int32_t> char_ids_;  // id of each single-character token below U+10000, -1 if none
  std::optional<std::string> unk_token_;
  std::optional<std::int32_t> unk_id_;
  std::string prefix_;  // continuing_subword_prefix ("" = none)
  std::string suffix_;  // end_of_word_suffix ("" = none)
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  bool spm_ = false;           // merge by token score (from_token_scores), not by merge rank
  std::vector<float> scores_;  // by id, spm_ only
  std::array<std::int32_t, 256> byte_ids_{};  // id of <0xNN>, -1 if absent
  std::unique_ptr<WordCache> cache_;
};

}  // namespace moe::tokenizer
