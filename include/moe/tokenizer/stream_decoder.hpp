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
    // Slide the window: keep the ids since the previous emission as context for the next one.
    const std::size_t new_prefix_index = ids_.size() - prefix_index_;
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_));
    prefix_ = tokenizer_.decode(ids_);
    prefix_index_ = new_prefix_index;
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
  static bool ends_with_replacement(std::string_view s) noexcept {
    const auto& r = tokenizer::kReplacementUtf8;
    return s.size() >= r.size() && s.substr(s.size() - r.size()) == r;
  }

  Tokenizer tokenizer_;
  bool skip_special_;
  bool hold_byte_tokens_;
  std::vector<std::int32_t> ids_;  // the window: context ids, then ids not yet emitted
  std::string prefix_;             // decode of the ids already emitted within the window
  std::size_t prefix_index_ = 0;   // how many of ids_ the prefix covers
};

}  // namespace moe
