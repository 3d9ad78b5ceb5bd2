// Patterns (a literal string, a regex, or a character class) and how a text is split on their
// matches: the SplitDelimiterBehavior rules of Hugging Face tokenizers (Removed, Isolated,
// MergedWithPrevious, MergedWithNext, Contiguous), shared by normalizers and pre-tokenizers.
#pragma once

#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/regex.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe::tokenizer {

// One segment of a text: [begin, end) bytes and whether it is a match of the pattern. A list of
// spans covers the text in order, without gaps.
struct Span {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool is_match = false;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

inline SplitBehavior parse_split_behavior(const JsonNode& node) {
  const std::string& s = node.as_string();
  if (s == "Removed") return SplitBehavior::kRemoved;
  if (s == "Isolated") return SplitBehavior::kIsolated;
  if (s == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (s == "Contiguous") return SplitBehavior::kContiguous;
  node.fail_here(ErrorCode::kTokenizer, "unknown split behavior '{}'", s);
}

// Spans of `text` around the matches reported by `for_each(f)` (f(begin, end) in order).
// An empty text gives one empty non-match span.
template <class ForEachMatch>
void spans_from_matches(std::string_view text, ForEachMatch&& for_each, std::vector<Span>& spans) {
  spans.clear();
  if (text.empty()) {
    spans.push_back({0, 0, false});
    return;
  }
  std::size_t prev = 0;
  for_each([&](std::size_t b, std::size_t e) {
    if (prev != b) spans.push_back({prev, b, false});
    spans.push_back({b, e, true});
    prev = e;
  });
  if (prev != text.size()) spans.push_back({prev, text.size(), false});
}

// Spans where each character satisfying `pred` is a match of its own.
template <class Pred>
void spans_from_chars(std::string_view text, Pred&& pred, std::vector<Span>& spans) {
  spans_from_matches(
      text,
      [&](auto&& emit) {
        std::size_t i = 0;
        while (i < text.size()) {
          std::size_t len = 0;
          const char32_t c = utf8_decode(text, i, len);
          if (pred(c)) emit(i, i + len);
          i += len;
        }
      },
      spans);
}

// Knuth-Morris-Pratt search for a fixed string: O(text + needle) per search, where
// std::string_view::find may take O(text * needle) (a needle 'a' * 100000 + 'b' over a text of
// 'a'). Immutable after construction.
class LiteralSearcher {
 public:
  LiteralSearcher() = default;
  explicit LiteralSearcher(std::string needle) : needle_(std::move(needle)), border_(needle_.size(), 0) {
    // border_[k]: length of the longest proper border (prefix that is also a suffix) of needle_[0, k].
    std::size_t b = 0;
    for (std::size_t k = 1; k < needle_.size(); ++k) {
      while (b > 0 && needle_[k] != needle_[b]) b = border_[b - 1];
      if (needle_[k] == needle_[b]) ++b;
      border_[k] = b;
    }
  }
  const std::string& needle() const noexcept { return needle_; }

  // Calls f(begin, end) for each non-overlapping occurrence, left to right (after an occurrence
  // the search resumes at its end). An empty needle matches nothing.
  template <class F>
  void for_each(std::string_view text, F&& f) const {
    const std::size_t m = needle_.size();
    if (m == 0) return;
    std::size_t matched = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      while (matched > 0 && text[i] != needle_[matched]) matched = border_[matched - 1];
      if (text[i] == needle_[matched]) ++matched;
      if (matched == m) {
        f(i + 1 - m, i + 1);
        matched = 0;  // non-overlapping: the next occurrence starts after this one
      }
    }
  }

 private:
  std::string needle_;
  std::vector<std::size_t> border_;
};

// A literal string or a regex, as tokenizer.json writes them: {"String": "..."} or {"Regex": "..."}.
class Pattern {
 public:
  Pattern() = default;

  static Pattern from_json(const JsonNode& node) {
    node.expect_object();
    Pattern p;
    if (auto s = node.find("String")) {
      p.literal_ = LiteralSearcher(s->as_string());
    } else if (auto r = node.find("Regex")) {
      p.is_regex_ = true;
      p.regex_ = Regex::compile(r->as_string(), fmt::format("{}: {}", node.file(), r->path()));
    } else {
      node.fail_here(ErrorCode::kTokenizer, "expected a pattern {{\"String\": ...}} or {{\"Regex\": ...}}");
    }
    return p;
  }
  static Pattern literal(std::string s) {
    Pattern p;
    p.literal_ = LiteralSearcher(std::move(s));
    return p;
  }
  static Pattern regex(const std::string& pattern) {
    Pattern p;
    p.is_regex_ = true;
    p.regex_ = Regex::compile(pattern, "built-in pattern");
    return p;
  }

  // Calls f(begin, end) for each non-overlapping match, left to right. An empty literal matches
  // nothing (as in the tokenizers library).
  template <class F>
  void for_each_match(std::string_view text, F&& f) const {
    if (is_regex_) {
      regex_.for_each_match(text, f);
      return;
    }
    literal_.for_each(text, f);
  }

  void find_spans(std::string_view text, std::vector<Span>& spans) const {
    spans_from_matches(text, [&](auto&& emit) { for_each_match(text, emit); }, spans);
  }

  bool is_regex() const noexcept { return is_regex_; }
  const std::string& literal_text() const noexcept { return literal_.needle(); }

 private:
  bool is_regex_ = false;
  LiteralSearcher literal_;
  Regex regex_;
};

// Turns match spans into the ranges to keep, following `behavior` (the tokenizers library's
// NormalizedString::split). Ranges may be empty; callers drop empty pieces.
inline void apply_split_behavior(const std::vector<Span>& spans, SplitBehavior behavior,
                                 std::vector<std::pair<std::size_t, std::size_t>>& out) {
  out.clear();
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::kContiguous: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().second = s.end;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      // Walk backwards: a match (not directly followed by another match) joins the piece after it.
      bool previous_match = false;
      for (std::size_t k = spans.size(); k-- > 0;) {
        const Span& s = spans[k];
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().first = s.begin;
        } else {
          out.emplace_back(s.begin, s.end);
        }
        previous_match = s.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
}

}  // namespace moe::tokenizer
