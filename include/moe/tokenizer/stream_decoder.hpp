// moe::StreamDecoder: incremental detokenization for generation. push(id) returns the text that
// became final with that token; the concatenation of every push() and the final flush() equals
// Tokenizer::decode of all the ids at once.
#pragma once

#include "moe/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <cstdint>
#include <span>
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
// decoded as a whole, valid or not; the window is not even decoded then). Not thread-safe; one
// instance per sequence.
//
// Cost. A chunk whose text is only whitespace or characters a Strip step removes cannot be the
// whole context (the window's own start and end rules could overlap on it and differ from the
// full decode), so the window keeps a head before it: the last chunk with such an "anchor"
// character, or the first ids of the sequence. A long run of such chunks (all-whitespace output)
// would make the window, and the work of every push, grow with the run. When the decoder chain
// is token-local (Decoder::is_token_local: no Replace after a step that joins tokens, Strip
// counts of at most kMaxTrimmedStrip), the middle of the run is dropped from the window: the
// head, whose decoded text is not empty (so start rules end inside it), and the shortest tail of
// at most kMaxTailIds ids whose decoded text is not empty (so end rules end inside it) decode to
// the same text added by the next ids as the whole run would. The window then stays a few ids
// long and a push costs time proportional to its own token plus a constant. Still proportional
// to the held-back run (so quadratic over it): a run that keeps the text ending in U+FFFD, and a
// run of chunks a Strip at the end removes entirely (both only with hostile vocabularies or
// decoders).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens),
        hold_byte_tokens_(tokenizer.d_->decoder.has_byte_fallback()),
        may_trim_(tokenizer.d_->decoder.is_token_local() &&
                  tokenizer.d_->decoder.strip_start_total() <= kMaxTrimmedStrip &&
                  tokenizer.d_->decoder.strip_stop_total() <= kMaxTrimmedStrip) {}

  // Adds one token; returns the text that is final now (possibly empty). Never ends inside a
  // UTF-8 code point. kInvalidArgument for an id outside the vocabulary (state unchanged).
  std::string push(std::int32_t id) {
    tokenizer_.token_of(id);  // validates
    if (skip_special_ && tokenizer_.is_special(id)) return {};
    ids_.push_back(id);
    if (hold_byte_tokens_ && tokenizer_.is_byte_token(id)) return {};
    std::string text = decode(ids_);
    if (text.size() <= prefix_.size() || ends_with_replacement(text) || text.compare(0, prefix_.size(), prefix_) != 0)
      return {};
    std::string fresh = text.substr(prefix_.size());
    // Slide the window: keep the ids since the previous emission as context for the next one,
    // unless their text is only characters a Strip step could remove (then keep the longer
    // context, without the middle of the run when the chain allows it).
    std::vector<std::int32_t> candidate(ids_.begin() + static_cast<std::ptrdiff_t>(prefix_index_), ids_.end());
    std::string candidate_text = decode(candidate);
    if (has_anchor(candidate_text)) {
      ids_ = std::move(candidate);
      prefix_ = std::move(candidate_text);
      head_ = ids_.size();
    } else if (!drop_middle_of_window()) {
      prefix_ = std::move(text);
    }
    prefix_index_ = ids_.size();
    return fresh;
  }

  // Ids run through the decoder chain so far (a cost measure: linear in the number of pushes
  // for every decoder chain real tokenizers use).
  std::uint64_t decoded_ids() const noexcept { return decoded_ids_; }

  // Returns the text still held back and resets the decoder for a new sequence.
  std::string flush() {
    std::string out;
    if (!ids_.empty()) {
      const std::string text = decode(ids_);
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
    head_ = 0;
    return out;
  }

 private:
  static constexpr std::size_t kMaxTrimmedStrip = 64;  // real decoders strip 1 character
  static constexpr std::size_t kMaxHeadIds = 8;
  static constexpr std::size_t kMaxTailIds = 8;

  std::string decode(std::span<const std::int32_t> ids) {
    decoded_ids_ += ids.size();
    return tokenizer_.decode(ids);
  }

  // After an emission whose chunk has no anchor: keeps ids_[0, head_) and the shortest suffix
  // with a non-empty text, dropping the ids in between (see the class comment). False when the
  // chain does not allow it or nothing would be dropped; then prefix_ is left to the caller.
  bool drop_middle_of_window() {
    if (!may_trim_) return false;
    if (head_ == 0) {  // the window still starts at the sequence start
      const std::size_t limit = std::min(ids_.size(), kMaxHeadIds);
      for (std::size_t h = 1; h <= limit && head_ == 0; ++h)
        if (!decode(std::span<const std::int32_t>(ids_.data(), h)).empty()) head_ = h;
      if (head_ == 0) return false;
    }
    const std::size_t lowest = std::max(head_, ids_.size() > kMaxTailIds ? ids_.size() - kMaxTailIds : 0);
    std::size_t tail = ids_.size();
    bool found = false;
    while (!found && tail > lowest) {
      --tail;
      found = !decode(std::span<const std::int32_t>(ids_.data() + tail, ids_.size() - tail)).empty();
    }
    if (!found) return false;
    if (tail <= head_) return false;
    ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(head_), ids_.begin() + static_cast<std::ptrdiff_t>(tail));
    prefix_ = decode(ids_);
    return true;
  }

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
  std::size_t head_ = 0;           // ids_[0, head_): the anchored context, or the sequence's first ids; 0: none yet
  bool may_trim_;
  std::uint64_t decoded_ids_ = 0;
};

}  // namespace moe
