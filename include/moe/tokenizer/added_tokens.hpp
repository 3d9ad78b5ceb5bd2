// Added tokens of tokenizer.json ("added_tokens"): special and non-special tokens matched in the
// text before the model sees it, longest match first, honouring single_word, lstrip, rstrip and
// normalized (normalized=false tokens are matched on the raw text, normalized=true tokens on the
// normalized text of the pieces in between), as the tokenizers library's AddedVocabulary does.
#pragma once

#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/normalizer.hpp"
#include "moe/tokenizer/pre_tokenizer.hpp"
#include "moe/tokenizer/string_hash.hpp"
#include "moe/tokenizer/unicode.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moe::tokenizer {

struct AddedToken {
  std::string content;
  std::int32_t id = -1;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;  // the library's default for a token given without the flag
  bool special = false;
};

namespace detail {
// Automaton steps taken by TokenTrie scans on this thread so far (tests read differences of it to
// check that matching is linear in the text length).
inline std::uint64_t& token_trie_steps() noexcept {
  thread_local std::uint64_t steps = 0;
  return steps;
}
}  // namespace detail

// The token contents, for leftmost-longest matching: at each position of a text, the longest
// content that starts there. Walking a trie from every position costs the text length times the
// longest partial match (quadratic with a long token such as 'a' * 100000 + 'b' over a text of
// 'a'), so instead an Aho-Corasick automaton over the *reversed* contents runs once over the text
// from its end: after reading s[i..n) backwards, the automaton's state is the longest reversed
// trie prefix that ends there, and the deepest terminal on its failure chain (precomputed per
// state) is the longest content starting at i. O(text + contents) time; the failure links cost
// O(1) amortised per byte (Aho & Corasick 1975).
class TokenTrie {
 public:
  TokenTrie() { add_node(0); }

  // Adds a content (reversed internally) with its value; the first value given for a content
  // wins. Call prepare() after the last insert and before longest_matches().
  void insert(std::string_view key, std::int32_t value) {
    if (key.empty()) return;  // an empty pattern would match everywhere; the library never adds one
    std::int32_t node = 0;
    for (std::size_t k = key.size(); k-- > 0;) {
      const auto c = static_cast<unsigned char>(key[k]);
      std::int32_t child = edge(node, c);
      if (child < 0) {
        child = add_node(nodes_[static_cast<std::size_t>(node)].depth + 1);
        edges_.emplace(edge_key(node, c), child);
        children_[static_cast<std::size_t>(node)].emplace_back(c, child);
      }
      node = child;
    }
    Node& n = nodes_[static_cast<std::size_t>(node)];
    if (n.value < 0) n.value = value;
    root_bytes_[static_cast<unsigned char>(key.back())] = true;
    empty_ = false;
  }

  // Failure links (BFS order) and, per state, the deepest terminal state on its failure chain.
  void prepare() {
    std::vector<std::int32_t> queue;
    queue.reserve(nodes_.size());
    nodes_[0].fail = 0;
    nodes_[0].terminal = -1;
    queue.push_back(0);
    for (std::size_t q = 0; q < queue.size(); ++q) {
      const std::int32_t u = queue[q];
      for (const auto& [c, v] : children_[static_cast<std::size_t>(u)]) {
        std::int32_t f = 0;
        if (u != 0) {
          f = nodes_[static_cast<std::size_t>(u)].fail;
          while (f != 0 && edge(f, c) < 0) f = nodes_[static_cast<std::size_t>(f)].fail;
          const std::int32_t next = edge(f, c);
          f = next >= 0 ? next : 0;
        }
        Node& nv = nodes_[static_cast<std::size_t>(v)];
        nv.fail = f;
        nv.terminal = nv.value >= 0 ? v : nodes_[static_cast<std::size_t>(f)].terminal;
        queue.push_back(v);
      }
    }
    children_.clear();
    children_.shrink_to_fit();
  }

  bool empty() const noexcept { return empty_; }

  struct Match {
    std::size_t begin;
    std::size_t length;
    std::int32_t value;
  };
  // For every position of `text` where some content starts: that position, the length of the
  // longest such content and its value, in decreasing order of position.
  void longest_matches(std::string_view text, std::vector<Match>& out) const {
    out.clear();
    std::int32_t state = 0;
    std::uint64_t steps = 0;
    for (std::size_t i = text.size(); i-- > 0;) {
      const auto c = static_cast<unsigned char>(text[i]);
      if (state == 0 && !root_bytes_[c]) continue;  // the common case: no content ends with c
      while (true) {
        ++steps;
        const std::int32_t next = edge(state, c);
        if (next >= 0) {
          state = next;
          break;
        }
        if (state == 0) break;
        state = nodes_[static_cast<std::size_t>(state)].fail;
      }
      const std::int32_t t = nodes_[static_cast<std::size_t>(state)].terminal;
      if (t >= 0) {
        const Node& n = nodes_[static_cast<std::size_t>(t)];
        out.push_back({i, static_cast<std::size_t>(n.depth), n.value});
      }
    }
    detail::token_trie_steps() += steps;
  }

 private:
  struct Node {
    std::int32_t value = -1;     // the value of the content ending here, -1 if none
    std::int32_t depth = 0;      // length of the (reversed) content prefix this state stands for
    std::int32_t fail = 0;       // the longest proper suffix that is also a state
    std::int32_t terminal = -1;  // the deepest state with a value on the failure chain (itself included)
  };
  static std::uint64_t edge_key(std::int32_t node, unsigned char c) noexcept {
    return (static_cast<std::uint64_t>(node) << 8) | c;
  }
  std::int32_t edge(std::int32_t node, unsigned char c) const {
    auto it = edges_.find(edge_key(node, c));
    return it == edges_.end() ? -1 : it->second;
  }
  std::int32_t add_node(std::int32_t depth) {
    if (nodes_.size() >= static_cast<std::size_t>(INT32_MAX))
      fail(ErrorCode::kTokenizer, "added_tokens: more than {} bytes of token contents", INT32_MAX);
    nodes_.push_back(Node{-1, depth, 0, -1});
    children_.emplace_back();
    return static_cast<std::int32_t>(nodes_.size() - 1);
  }

  std::vector<Node> nodes_;
  std::unordered_map<std::uint64_t, std::int32_t> edges_;  // (node << 8 | byte) -> child
  std::vector<std::vector<std::pair<unsigned char, std::int32_t>>> children_;  // until prepare()
  std::array<bool, 256> root_bytes_{};  // bytes that some content ends with
  bool empty_ = true;
};

// Immutable after from_json; extract() is thread-safe.
class AddedVocabulary {
 public:
  // `node` is the "added_tokens" array (nullptr: none). Contents of normalized tokens are
  // normalized with `normalizer` to build the trie they are matched with.
  static AddedVocabulary from_json(const JsonNode* node, const Normalizer& normalizer) {
    AddedVocabulary v;
    if (node == nullptr || node->is_null()) return v;
    for (std::size_t i = 0; i < node->size(); ++i) {
      const JsonNode t = (*node)[i];
      AddedToken tok;
      const std::int64_t id = t.at("id").as_int();
      if (id < 0 || id > INT32_MAX - 1) t.fail_here(ErrorCode::kTokenizer, "token id {} out of range", id);
      tok.id = static_cast<std::int32_t>(id);
      tok.content = t.at("content").as_string();
      tok.single_word = t.bool_or("single_word", false);
      tok.lstrip = t.bool_or("lstrip", false);
      tok.rstrip = t.bool_or("rstrip", false);
      tok.normalized = t.bool_or("normalized", true);
      tok.special = t.bool_or("special", false);
      if (tok.content.empty()) continue;  // the library ignores empty added tokens
      if (v.by_id_.count(tok.id))
        t.fail_here(ErrorCode::kTokenizer, "duplicate id {} (tokens '{}' and '{}')", tok.id,
                    v.tokens_[v.by_id_.at(tok.id)].content, tok.content);
      const auto index = static_cast<std::int32_t>(v.tokens_.size());
      v.by_id_.emplace(tok.id, static_cast<std::size_t>(index));
      v.by_content_.emplace(tok.content, tok.id);
      if (tok.normalized) {
        std::string pattern = tok.content;
        normalizer.normalize(pattern);
        v.normalized_trie_.insert(pattern, index);
      } else {
        v.raw_trie_.insert(tok.content, index);
      }
      v.tokens_.push_back(std::move(tok));
    }
    v.raw_trie_.prepare();
    v.normalized_trie_.prepare();
    return v;
  }

  const std::vector<AddedToken>& tokens() const noexcept { return tokens_; }
  const AddedToken* find_id(std::int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
  }
  std::optional<std::int32_t> find_content(std::string_view content) const {
    auto it = by_content_.find(content);
    if (it == by_content_.end()) return std::nullopt;
    return it->second;
  }

  // Splits `text` (valid UTF-8) into pieces: added tokens found in the raw text, then the rest
  // normalized and searched for normalized added tokens. Empty pieces are dropped.
  // Piece::at_start (used by Metaspace's prepend_scheme "first") is set for the piece that begins
  // at offset 0 of the input. The library decides this through offset alignments; without them
  // we take normalized offset 0 of the first raw piece, which differs only when the normalizer
  // deletes leading characters (e.g. a Strip normalizer in front of a "first" Metaspace).
  void extract(std::string_view text, const Normalizer& normalizer, std::vector<Piece>& out) const {
    out.clear();
    std::vector<Match> matches;
    find_matches(text, raw_trie_, matches);
    std::vector<Match> inner;
    for (const Match& m : matches) {
      if (m.end == m.begin) continue;
      if (m.token >= 0) {
        out.push_back(Piece{std::string(text.substr(m.begin, m.end - m.begin)), m.token, m.begin == 0});
        continue;
      }
      std::string normalized(text.substr(m.begin, m.end - m.begin));
      normalizer.normalize(normalized);
      if (normalized_trie_.empty()) {
        if (!normalized.empty()) out.push_back(Piece{std::move(normalized), -1, m.begin == 0});
        continue;
      }
      find_matches(normalized, normalized_trie_, inner);
      for (const Match& n : inner) {
        if (n.end == n.begin) continue;
        out.push_back(Piece{normalized.substr(n.begin, n.end - n.begin), n.token, m.begin == 0 && n.begin == 0});
      }
    }
  }

 private:
  struct Match {
    std::size_t begin;
    std::size_t end;
    std::int32_t token;  // added token id, or -1 for text between tokens
  };

  static bool ends_with_word_char(std::string_view s) {
    if (s.empty()) return false;
    std::size_t start = s.size() - 1;
    while (start > 0 && is_utf8_continuation(static_cast<unsigned char>(s[start]))) --start;
    std::size_t len = 0;
    return is_word_char(utf8_decode(s, start, len));
  }
  static bool starts_with_word_char(std::string_view s) {
    if (s.empty()) return false;
    std::size_t len = 0;
    return is_word_char(utf8_decode(s, 0, len));
  }

  // The library's AddedVocabulary::find_matches: leftmost-longest matches in order (the search
  // resumes after each match), filtered by single_word, widened by lstrip/rstrip over whitespace,
  // with the text in between as pieces without a token. Covers the whole sentence.
  void find_matches(std::string_view s, const TokenTrie& trie, std::vector<Match>& out) const {
    out.clear();
    const std::size_t n = s.size();
    std::size_t start_offset = 0;
    if (!trie.empty()) {
      // Leftmost-longest, non-overlapping: the longest content at the first position where one
      // starts, then the search resumes after it (the aho-corasick crate's LeftmostLongest).
      thread_local std::vector<TokenTrie::Match> found;
      trie.longest_matches(s, found);
      std::size_t i = 0;
      for (std::size_t k = found.size(); k-- > 0;) {
        const TokenTrie::Match& m = found[k];
        if (m.begin < i) continue;  // inside the previous match
        const std::size_t len = m.length;
        const std::int32_t index = m.value;
        i = m.begin;
        std::size_t start = i, stop = i + len;
        i = stop;
        const AddedToken& tok = tokens_[static_cast<std::size_t>(index)];
        if (tok.single_word) {
          const bool start_space = start == 0 || !ends_with_word_char(s.substr(0, start));
          const bool stop_space = stop == n || !starts_with_word_char(s.substr(stop));
          if (!start_space || !stop_space) continue;
        }
        if (start < start_offset) continue;  // inside whitespace an earlier rstrip consumed
        if (tok.lstrip) {
          std::size_t b = start;
          while (b > start_offset) {
            std::size_t p = b - 1;
            while (p > 0 && is_utf8_continuation(static_cast<unsigned char>(s[p]))) --p;
            std::size_t clen = 0;
            if (!is_whitespace(utf8_decode(s, p, clen))) break;
            b = p;
          }
          start = b;
        }
        if (tok.rstrip) {
          while (stop < n) {
            std::size_t clen = 0;
            if (!is_whitespace(utf8_decode(s, stop, clen))) break;
            stop += clen;
          }
        }
        if (start_offset < start) out.push_back({start_offset, start, -1});
        out.push_back({start, stop, tok.id});
        start_offset = stop;
      }
    }
    if (start_offset != n || n == 0) out.push_back({start_offset, n, -1});
  }

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::int32_t, std::size_t> by_id_;
  TokenMap by_content_;
  TokenTrie raw_trie_;
  TokenTrie normalized_trie_;
};

}  // namespace moe::tokenizer
