// A compiled PCRE2 regular expression (UTF + Unicode properties, JIT when available) that runs
// the patterns of tokenizer.json as written there, with the match iteration rules of the
// Oniguruma engine the Hugging Face tokenizers library uses, and a work budget per text so that
// no pattern can make matching super-linear in the text length.
//
// Hostile patterns. A pattern comes from a file, so it is compiled with
//   - PCRE2_NEVER_BACKSLASH_C: `\C` matches one code unit, i.e. can stop inside a UTF-8 sequence;
//     its offsets would cut pieces that are not UTF-8, and every later match on such a piece runs
//     with PCRE2_NO_UTF_CHECK on invalid input (undefined behaviour in PCRE2). It is a compile
//     error instead (Oniguruma has no `\C` either).
//   - a pattern length limit (kMaxRegexPatternBytes; real pre-tokenizer regexes are < 1 KB);
//   - no (*COMMIT) or (*SKIP): they change where the next match attempt starts, which the
//     windowed search below cannot see (Oniguruma has neither; kUnsupported).
// and matched with a match context that sets PCRE2's match limit (backtracking steps of one match
// attempt), depth limit and heap limit; hitting one is a moe::Error kTokenizer naming the
// pattern and the text length.
//
// Why PCRE2_NO_UTF_CHECK is safe: for_each_match() checks once that the text is UTF-8 (O(n), the
// same order as the search itself; kTokenizer otherwise) and every subject passed to PCRE2 ends
// on a code point boundary of that text. Without `\C`, UTF-mode matches start and end on code
// point boundaries, so the pieces the pipeline cuts from them stay valid UTF-8 too (the check
// in for_each_match is what guarantees it, not this argument).
//
// The work budget. PCRE2's match limit counts backtracking steps of one match attempt, and it
// is reset at every start position; a possessive scan (`a*+`, also what `a*` becomes before `b`)
// is one step for the interpreter and is not counted at all by the JIT (measured with PCRE2
// 10.42: `a(?=a*b)` over 10,000 'a' needs a match limit of 3 interpreted, 1 with JIT). So
// `a(?=a*b)` on n bytes of 'a' does n^2/2 work (200 KB: ~16 s) within every per-call limit, and
// so does `a*b` on "aaa...acb". The search therefore never gives PCRE2 more text than it has
// paid for. Each call sees a window of the text, [0, end) with end on a code point boundary:
//   1. An unanchored call from the search position s with a window of kRegexFirstWindowBytes.
//      PCRE2_PARTIAL_HARD (when `end` is not the true end) makes PCRE2 return
//      PCRE2_ERROR_PARTIAL as soon as an attempt inspects, or would inspect, a character at or
//      past `end` - including inside lookahead and negative lookahead, and for \z, \Z, \b, \B
//      and $ at `end`, which it always reports as partial. So a complete match it returns is
//      the one the whole text gives (every earlier start failed, and this attempt, using only
//      characters before `end`, does what it would do on the whole text); NOMATCH proves that
//      no match starts before `end`, and the search continues from `end`; PARTIAL at start p
//      proves the same for starts before p.
//   2. After PARTIAL at p, anchored calls at p with windows of 2, 4, 8, ... times the first one,
//      until the attempt at p matches, fails (the search continues after p's character) or the
//      window reaches the end of the text. One attempt per call: the work of a call is
//      proportional to its window (times backtracking, below) instead of window^2.
// Every call is charged its window size; a text of n bytes has a budget of
// limits::kRegexBytesPerTextByte * n + kRegexBudgetBaseBytes, and running out is a kTokenizer
// error ("exceeded its work budget"). The match limit of a call is kRegexStepsPerWindowByte
// times its window (at most limits::kRegexMatchLimit), so backtracking is paid for by the same
// budget: a call that hits it is retried with a doubled window (and limit), as if partial.
// Real tokenizer regexes match within the first window at almost every position (a word, a
// number, a run of spaces), so they pay kRegexFirstWindowBytes per match and never come close
// to the budget; a run longer than the first window (a long word, `\s+(?!\S)` on 10,000 spaces)
// costs a few anchored calls whose windows sum to at most 4 times the run. `a(?=a*b)` pays
// about 2(n - s) at each s and exhausts the budget after about 500 matches.
//
// \G (the start of the search, i.e. s in find_at, as in Oniguruma's search start) would be true
// at the window starts the search continues from; a pattern that contains `\G` is compiled a
// second time with `\G` replaced by `(?!)` (never true), used for calls that start after s.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/limits.hpp"
#include "moe/tokenizer/utf8.hpp"

// The 8-bit (UTF-8) PCRE2 API. moe::moe defines this too; defined here so that a program that
// includes <moe/moe.hpp> without CMake compiles. A different width set before is an error.
#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#if PCRE2_CODE_UNIT_WIDTH != 8
#error "moecpp needs PCRE2_CODE_UNIT_WIDTH 8 (UTF-8)"
#endif
#include <pcre2.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace moe::tokenizer {

// Window of the first, unanchored call of a search (bytes). Larger first windows mean fewer
// retries on long words but a larger charge per match (and up to window^2 / 2 bytes inspected
// by a call that tries every start position of its window).
inline constexpr std::size_t kRegexFirstWindowBytes = 128;
// Backtracking steps a call may take per byte of its window (PCRE2 match limit = this * window,
// capped by limits::kRegexMatchLimit). Real pre-tokenizer regexes take < 20 steps per attempt.
inline constexpr std::uint32_t kRegexStepsPerWindowByte = 16;
// The constant part of a text's budget: room for the first windows of a short text.
inline constexpr std::size_t kRegexBudgetBaseBytes = std::size_t{1} << 16;
// PCRE2 interpreter heap for backtracking frames, per thread (KiB; PCRE2's default is 20 GB).
inline constexpr std::uint32_t kRegexHeapLimitKiB = 64 * 1024;
// Longest pattern accepted from a file.
inline constexpr std::size_t kMaxRegexPatternBytes = 64 * 1024;

// The work left to the searches on one text, in window bytes (see the header comment).
class RegexBudget {
 public:
  // `first_window` is the window of the first call of each search (tests make it tiny so that
  // matches cross window ends everywhere).
  explicit RegexBudget(std::size_t text_bytes, std::size_t first_window = kRegexFirstWindowBytes) noexcept
      : left_(text_bytes > (SIZE_MAX - kRegexBudgetBaseBytes) / limits::kRegexBytesPerTextByte
                  ? SIZE_MAX
                  : text_bytes * limits::kRegexBytesPerTextByte + kRegexBudgetBaseBytes),
        first_window_(std::max<std::size_t>(first_window, 1)) {}
  // Takes `bytes` from the budget; false (nothing taken) when less is left.
  bool take(std::size_t bytes) noexcept {
    if (bytes > left_) return false;
    left_ -= bytes;
    return true;
  }
  std::size_t left() const noexcept { return left_; }
  std::size_t first_window() const noexcept { return first_window_; }

 private:
  std::size_t left_;
  std::size_t first_window_;
};

namespace detail {

// Per-thread match state shared by every pattern: match data with room for the whole match only
// (we never read groups), a match context with the limits, and a JIT stack large enough for
// patterns such as `\s+(?!\S)` on long whitespace runs (the default JIT stack is 32 KiB).
struct RegexScratch {
  pcre2_match_data* match_data = nullptr;
  pcre2_match_context* match_context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  RegexScratch() {
    match_data = pcre2_match_data_create(1, nullptr);
    match_context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (match_context) {
      if (jit_stack) pcre2_jit_stack_assign(match_context, nullptr, jit_stack);
      pcre2_set_match_limit(match_context, limits::kRegexMatchLimit);
      pcre2_set_depth_limit(match_context, limits::kRegexDepthLimit);
      pcre2_set_heap_limit(match_context, kRegexHeapLimitKiB);
    }
  }
  ~RegexScratch() {
    if (jit_stack) pcre2_jit_stack_free(jit_stack);
    if (match_context) pcre2_match_context_free(match_context);
    if (match_data) pcre2_match_data_free(match_data);
  }
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;
};

inline RegexScratch& regex_scratch() {
  thread_local RegexScratch scratch;
  if (!scratch.match_data || !scratch.match_context)
    fail(ErrorCode::kInternal, "PCRE2 could not allocate match data");
  return scratch;
}

struct Pcre2CodeDeleter {
  void operator()(pcre2_code* code) const noexcept { pcre2_code_free(code); }
};

// Window bytes charged to regex budgets on this thread so far (tests read differences of it to
// check that the work on a text grows linearly with its length).
inline std::uint64_t& regex_bytes_charged() noexcept {
  thread_local std::uint64_t bytes = 0;
  return bytes;
}

// `pattern` with every `\G` escape replaced by `(?!)`; sets `found` if there was one. Skips
// escaped characters (`\\G` is a backslash and a G), `\cX` and \Q...\E quoting. (`\G` inside a
// character class is a compile error, so classes need no tracking.)
inline std::string without_search_start_anchor(std::string_view pattern, bool& found) {
  std::string out;
  out.reserve(pattern.size() + 8);
  found = false;
  std::size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] != '\\' || i + 1 == pattern.size()) {
      out.push_back(pattern[i++]);
      continue;
    }
    const char next = pattern[i + 1];
    std::size_t len = 2;
    if (next == 'G') {
      out.append("(?!)");
      found = true;
      i += 2;
      continue;
    }
    if (next == 'Q') {
      const std::size_t close = pattern.find("\\E", i + 2);
      len = close == std::string_view::npos ? pattern.size() - i : close + 2 - i;
    } else if (next == 'c' && i + 2 < pattern.size()) {
      len = 3;
    }
    out.append(pattern.substr(i, len));
    i += len;
  }
  return out;
}

// At most ~200 bytes of `s` for an error message, cut on a code point boundary.
inline std::string shortened(std::string_view s) {
  constexpr std::size_t kMax = 200;
  if (s.size() <= kMax) return std::string(s);
  std::size_t cut = kMax;
  while (cut > 0 && is_utf8_continuation(static_cast<unsigned char>(s[cut]))) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

}  // namespace detail

// Immutable after compile(); matching is thread-safe (each thread has its own match data).
class Regex {
 public:
  Regex() = default;

  // Compiles `pattern` with PCRE2_UTF | PCRE2_UCP (\s, \w, \d and POSIX classes follow Unicode, as
  // in Oniguruma), PCRE2_MULTILINE (Oniguruma's default Ruby syntax makes ^ and $ line anchors)
  // and PCRE2_NEVER_BACKSLASH_C. `where` names the file and key for the error message.
  // Errors: kTokenizer (does not compile, `\C`, longer than kMaxRegexPatternBytes),
  // kUnsupported ((*COMMIT) or (*SKIP)).
  static Regex compile(std::string_view pattern, std::string_view where) {
    for (std::string_view verb : {"(*COMMIT", "(*SKIP"})
      if (pattern.find(verb) != std::string_view::npos)
        fail(ErrorCode::kUnsupported, "{}: regex '{}': the backtracking verb {}) is not supported", where,
             detail::shortened(pattern), verb);
    Regex r;
    r.pattern_ = std::string(pattern);
    r.code_ = compile_code(pattern, pattern, where);
    bool has_search_start = false;
    const std::string resumed = detail::without_search_start_anchor(pattern, has_search_start);
    r.resumed_code_ = has_search_start ? compile_code(resumed, pattern, where) : r.code_;
    return r;
  }

  bool empty() const noexcept { return code_ == nullptr; }
  const std::string& pattern() const noexcept { return pattern_; }

  // Finds the first match in `text` at or after byte `start` (a code point boundary), as one
  // PCRE2 search over the whole text from `start` would, paying for the work from `budget`
  // (see the header comment). `text` must be valid UTF-8 (for_each_match checks it; this does
  // not). Returns [begin, end) byte offsets. Errors (kTokenizer): budget exhausted, a PCRE2
  // limit hit, or another PCRE2 matching error.
  std::optional<std::pair<std::size_t, std::size_t>> find_at(std::string_view text, std::size_t start,
                                                             RegexBudget& budget) const {
    const std::size_t n = text.size();
    std::size_t s = start;  // no match starts in [start, s)
    while (true) {
      Call c = call(text, start, s, budget.first_window(), /*anchored=*/false, budget);
      std::size_t p = s;  // where the anchored attempts go
      if (c.outcome == Outcome::kMatch) return c.match;
      if (c.outcome == Outcome::kNoMatch) {
        if (c.subject_end == n) return std::nullopt;
        s = c.subject_end;
        continue;
      }
      if (c.outcome == Outcome::kPartial) p = std::clamp(c.partial_start, s, c.subject_end);
      // kPartial or kStepLimit: one attempt at p, with growing windows.
      std::size_t window = 2 * budget.first_window();
      while (true) {
        c = call(text, start, p, window, /*anchored=*/true, budget);
        if (c.outcome == Outcome::kMatch) return c.match;
        if (c.outcome == Outcome::kNoMatch) break;
        window = window > SIZE_MAX / 4 ? SIZE_MAX / 2 : window * 2;  // the budget runs out long before
      }
      if (p >= n) return std::nullopt;
      const std::size_t len = utf8_sequence_length(static_cast<unsigned char>(text[p]));
      s = p + (len == 0 ? 1 : len);
    }
  }

  // Calls f(begin, end) for each successive non-overlapping match in `text`, in order. Like
  // Rust's onig/regex find_iter: after a match the search resumes at its end, and an empty match
  // that ends where the previous match ended is skipped by advancing one character. All the
  // searches share one budget proportional to the text length. Errors (kTokenizer): `text` is
  // not valid UTF-8, the budget runs out, a PCRE2 limit is hit.
  template <class F>
  void for_each_match(std::string_view text, F&& f) const {
    RegexBudget budget(text.size());
    for_each_match(text, budget, f);
  }
  template <class F>
  void for_each_match(std::string_view text, RegexBudget& budget, F&& f) const {
    const std::size_t bad = utf8_first_invalid(text);
    if (bad != text.size())
      fail(ErrorCode::kTokenizer, "regex '{}' was given a text of {} bytes that is not valid UTF-8 (byte {})",
           detail::shortened(pattern_), text.size(), bad);
    std::size_t pos = 0;
    std::optional<std::size_t> last_match_end;
    while (pos <= text.size()) {
      const auto m = find_at(text, pos, budget);
      if (!m) break;
      const auto [b, e] = *m;
      if (b == e && last_match_end == e) {
        if (pos >= text.size()) break;
        const std::size_t len = utf8_sequence_length(static_cast<unsigned char>(text[pos]));
        pos += len == 0 ? 1 : len;
        continue;
      }
      f(b, e);
      last_match_end = e;
      pos = e;
    }
  }

 private:
  enum class Outcome { kMatch, kNoMatch, kPartial, kStepLimit };
  struct Call {
    Outcome outcome;
    std::pair<std::size_t, std::size_t> match;  // kMatch
    std::size_t partial_start = 0;              // kPartial: where the attempt that hit the end began
    std::size_t subject_end = 0;                // the end of the window that was searched
  };

  static std::shared_ptr<pcre2_code> compile_code(std::string_view text, std::string_view pattern,
                                                  std::string_view where) {
    pcre2_compile_context* context = pcre2_compile_context_create(nullptr);
    if (context == nullptr) fail(ErrorCode::kInternal, "PCRE2 could not allocate a compile context");
    pcre2_set_max_pattern_length(context, kMaxRegexPatternBytes);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_NEVER_BACKSLASH_C, &error_code,
                                     &error_offset, context);
    pcre2_compile_context_free(context);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      fail(ErrorCode::kTokenizer, "{}: cannot compile regex '{}': {} at offset {}", where, detail::shortened(pattern),
           reinterpret_cast<const char*>(message), static_cast<std::size_t>(error_offset));
    }
    // JIT is an optimization only: when it is unavailable, pcre2_match interprets the pattern.
    // Windowed calls are partial matches, which need their own JIT code. (Anchored calls are
    // always interpreted: PCRE2's JIT does not take PCRE2_ANCHORED at match time.)
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
    return std::shared_ptr<pcre2_code>(code, detail::Pcre2CodeDeleter{});
  }

  // One pcre2_match call: the attempts starting at `from` (only that one if `anchored`) on the
  // text cut at a code point boundary `window` bytes after `from`, charged `window` bytes.
  // `search_start` is where \G holds.
  Call call(std::string_view text, std::size_t search_start, std::size_t from, std::size_t window, bool anchored,
            RegexBudget& budget) const {
    const std::size_t n = text.size();
    std::size_t end = window >= n - from ? n : from + window;
    while (end < n && is_utf8_continuation(static_cast<unsigned char>(text[end]))) ++end;
    if (!budget.take(window))
      fail(ErrorCode::kTokenizer, "regex '{}' exceeded its work budget on a text of {} bytes (at byte {})",
           detail::shortened(pattern_), n, from);
    detail::regex_bytes_charged() += window;
    const std::uint32_t step_limit =
        window >= limits::kRegexMatchLimit / kRegexStepsPerWindowByte
            ? limits::kRegexMatchLimit
            : static_cast<std::uint32_t>(window) * kRegexStepsPerWindowByte;
    auto& scratch = detail::regex_scratch();
    pcre2_set_match_limit(scratch.match_context, step_limit);
    std::uint32_t options = PCRE2_NO_UTF_CHECK;
    if (anchored) options |= PCRE2_ANCHORED;
    if (end < n) options |= PCRE2_PARTIAL_HARD;
    const pcre2_code* code = from == search_start ? code_.get() : resumed_code_.get();
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), end, from, options,
                               scratch.match_data, scratch.match_context);
    Call c{Outcome::kNoMatch, {0, 0}, 0, end};
    if (rc == PCRE2_ERROR_NOMATCH) return c;
    if (rc == PCRE2_ERROR_PARTIAL) {
      c.outcome = Outcome::kPartial;
      c.partial_start = pcre2_get_startchar(scratch.match_data);
      return c;
    }
    if (rc == PCRE2_ERROR_MATCHLIMIT && step_limit < limits::kRegexMatchLimit) {
      c.outcome = Outcome::kStepLimit;
      return c;
    }
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail(ErrorCode::kTokenizer, "regex '{}' failed on a text of {} bytes (at byte {}): {}",
           detail::shortened(pattern_), n, from, reinterpret_cast<const char*>(message));
    }
    // rc == 0 only says the one-pair ovector could not hold the groups; the whole match is there.
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.match_data);
    std::size_t b = ov[0], e = ov[1];
    if (b > e) b = e;  // \K inside a lookahead can report start > end; treat it as empty
    c.outcome = Outcome::kMatch;
    c.match = {b, e};
    return c;
  }

  std::shared_ptr<pcre2_code> code_;
  std::shared_ptr<pcre2_code> resumed_code_;  // code_ with \G never true (calls after the search start)
  std::string pattern_;
};

}  // namespace moe::tokenizer
