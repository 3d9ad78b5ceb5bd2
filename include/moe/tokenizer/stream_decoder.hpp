// moe::StreamDecoder: incremental detokenization for generation. push(id) returns the text that
// became final with that token; the concatenation of every push() and the final flush() equals
// Tokenizer::decode of all the ids at once.
#pragma once

#include "moe/tokenizer/tokenizer.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

// How it stays equal to a one-shot decode: the decoder chain is run on a short window of ids
// (the ids of the last emitted chunk as context, plus the new ones), and the text it adds beyond
// the context's own decoding is emitted once it is stable. Context keeps "first token" rules
// (Metaspace dropping the leading space, Strip at the start) applied only where they apply in
// the full decode. Text is held back while it may still change: while it ends in U+FFFD (a
// byte-level sequence cut inside a character, possibly completed by the next token), and while
// the sequence ends in a <0xNN> token under a ByteFallback decoder (a group of byte tokens is
// decoded as a whole, valid or not). Cost per push is proportional to the window, not to the
// length of the whole sequence. Not thread-safe; one instance per sequence.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens),
        hold_byte_tokens_(tokenizer.d_->decoder.has_byte_fallback()) {}

  // Adds one token; returns the text that is final now (possibly empty). Never ends inside a
  // UTF-8 code point. kInvalidArgument for an id outside the vocabulary (state unchanged).
  std::string push(std::int32_t id) {
    tokenizer_.token_of(id);  // validates
    if (skip_special_ && tokenizer_.is_special(id)) return {};
    ids_.push_back(id);
    std::string text = tokenizer_.decode(ids_);
    if (text.size() <= prefix_.size() || ends_with_replacement(text) ||
        (hold_byte_tokens_ && tokenizer_.is_byte_token(id)) || text.compare(0, prefix_.size(), prefix_) != 0)
      return {};
    std::string fresh = text.substr(prefix_.size());
    // Slide the window: keep the ids since the previous emission as context for the next one,
    // unless their text is only characters a Strip step could remove (then the window's own
    // start and end rules could overlap on them and differ from the full decode; keep the
    // longer context instead).
    std::vector<std::int32_t> candidate(ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_), ids_.end());
    std::string candidate_text = tokenizer_.decode(candidate);
    if (has_anchor(candidate_text)) {
      ids_ = std::move(candidate);
      prefix_ = std::move(candidate_text);
    } else {
      prefix_ = std::move(text);
    }
    prefix_index_ = ids_.size();
    return fresh;
  }

  // Returns the text still held back and resets the decoder for a new sequence.
  std::string flush() {
    std::string out;
    if (!ids_.empty()) {
      const std::string text = tokenizer_.decode(ids_);
      std::size_t common = 0;
      while (common < prefix_.size() && common < text.size() && prefix_[common] == text[common]) ++common;
      // Only reachable with a decoder whose output for a prefix of ids is not a prefix of its
      // output for all of them (none of the supported ones): stay on a character boundary.
      while (common > 0 && common < text.size() &&
             tokenizer::is_utf8_continuation(static_cast<unsigned char>(text[common])))
        --common;
      out = text.substr(common);
    }
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return out;
  }

 private:
  // A character no decoder step strips: text containing one has fixed start and end regions.
  bool has_anchor(std::string_view s) const {
    std::size_t i = 0;
    while (i < s.size()) {
      std::size_t len = 0;
      const char32_t c = tokenizer::utf8_decode(s, i, len);
      if (!tokenizer::is_whitespace(c) && !decoder_strips(c)) return true;
      i += len;
    }
    return false;
  }
  bool decoder_strips(char32_t c) const noexcept { return tokenizer_.d_->decoder.strips(c); }

  static bool ends_with_replacement(std::string_view s) noexcept {
    const auto& r = tokenizer::kReplacementUtf8;
    return s.size() >= r.size() && s.substr(s.size() - r.size()) == r;
  }

  Tokenizer tokenizer_;
  bool skip_special_;
  bool hold_byte_tokens_;
  std::vector<std::int32_t> ids_;  // the window: context ids, then ids not yet emitted
  std::string prefix_;             // decode of the ids already emitted within the window
  std::size_t prefix_index_ = 0;   // how many of ids_ have been emitted (all of them after a push that emits)
};

}  // namespace moe
