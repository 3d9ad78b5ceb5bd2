// Text-level stop strings for streaming generation: a stop string may span several token
// pieces, is never emitted itself, and text that might be the beginning of one is held back until
// it is known not to be.
#pragma once

#include "moe/core/error.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

class StopStringMatcher {
 public:
  StopStringMatcher() = default;

  // Empty stop strings are rejected (they would match before any text): Error(kInvalidArgument).
  explicit StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    for (std::size_t i = 0; i < stops_.size(); ++i) {
      require(!stops_[i].empty(), ErrorCode::kInvalidArgument, "stop string {} is empty", i);
      max_len_ = std::max(max_len_, stops_[i].size());
    }
    held_.reserve(max_len_ * 2 + 64);
  }

  struct Step {
    std::string_view emit;  // text that is now final (valid until the next call)
    bool stopped = false;   // a stop string was completed; `emit` is the text before it
  };

  // Appends `piece` after the held text. If a stop string now occurs, returns the text before its
  // earliest occurrence with stopped = true (later calls are not expected). Otherwise returns all
  // text except the longest suffix that is a proper prefix of some stop string.
  Step push(std::string_view piece) {
    emitted_.clear();
    if (stops_.empty()) {
      emitted_.assign(piece);
      return {emitted_, false};
    }
    held_.append(piece);
    std::size_t earliest = std::string::npos;
    for (const auto& s : stops_) earliest = std::min(earliest, held_.find(s));
    if (earliest != std::string::npos) {
      emitted_.assign(held_, 0, earliest);
      held_.clear();
      stopped_ = true;
      return {emitted_, true};
    }
    const std::size_t keep = partial_suffix_length();
    emitted_.assign(held_, 0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return {emitted_, false};
  }

  // Releases the held text at the end of generation (when no stop string completed).
  std::string flush() {
    std::string out = std::move(held_);
    held_.clear();
    return out;
  }

  bool stopped() const noexcept { return stopped_; }
  bool empty() const noexcept { return stops_.empty(); }

  void reset() noexcept {
    held_.clear();
    stopped_ = false;
  }

 private:
  // Length of the longest suffix of held_ that equals a proper prefix of some stop string.
  std::size_t partial_suffix_length() const noexcept {
    const std::string_view h = held_;
    const std::size_t limit = std::min(h.size(), max_len_ == 0 ? 0 : max_len_ - 1);
    for (std::size_t len = limit; len > 0; --len) {
      const std::string_view suffix = h.substr(h.size() - len);
      for (const auto& s : stops_) {
        if (s.size() > len && std::string_view(s).substr(0, len) == suffix) return len;
      }
    }
    return 0;
  }

  std::vector<std::string> stops_;
  std::size_t max_len_ = 0;
  std::string held_;
  std::string emitted_;
  bool stopped_ = false;
};

}  // namespace moe
