// A compiled PCRE2 regular expression (UTF + Unicode properties, JIT when available) that runs
// the patterns of tokenizer.json as written there, with the match iteration rules of the
// Oniguruma engine the Hugging Face tokenizers library uses.
#pragma once

#include "moe/core/error.hpp"
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

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace moe::tokenizer {

namespace detail {

// Per-thread match state shared by every pattern: match data with room for the whole match only
// (we never read groups), and a JIT stack large enough for patterns such as `\s+(?!\S)` on long
// whitespace runs (the default JIT stack is 32 KiB of machine stack).
struct RegexScratch {
  pcre2_match_data* match_data = nullptr;
  pcre2_match_context* match_context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;

  RegexScratch() {
    match_data = pcre2_match_data_create(1, nullptr);
    match_context = pcre2_match_context_create(nullptr);
    jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    if (match_context && jit_stack) pcre2_jit_stack_assign(match_context, nullptr, jit_stack);
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

}  // namespace detail

// Immutable after compile(); matching is thread-safe (each thread has its own match data).
class Regex {
 public:
  Regex() = default;

  // Compiles `pattern` with PCRE2_UTF | PCRE2_UCP (\s, \w, \d and POSIX classes follow Unicode, as
  // in Oniguruma) and PCRE2_MULTILINE (Oniguruma's default Ruby syntax makes ^ and $ line
  // anchors). `where` names the file and key for the error message.
  static Regex compile(std::string_view pattern, std::string_view where) {
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &error_code,
                                     &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error_code, message, sizeof(message));
      fail(ErrorCode::kTokenizer, "{}: cannot compile regex '{}': {} at offset {}", where, pattern,
           reinterpret_cast<const char*>(message), static_cast<std::size_t>(error_offset));
    }
    // JIT is an optimization only: when it is unavailable, pcre2_match interprets the pattern.
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    Regex r;
    r.code_ = std::shared_ptr<pcre2_code>(code, detail::Pcre2CodeDeleter{});
    r.pattern_ = std::string(pattern);
    return r;
  }

  bool empty() const noexcept { return code_ == nullptr; }
  const std::string& pattern() const noexcept { return pattern_; }

  // Finds the first match in `text` starting the search at byte `start`; `text` must be valid
  // UTF-8 (it is not re-checked). Returns [begin, end) byte offsets.
  std::optional<std::pair<std::size_t, std::size_t>> find_at(std::string_view text, std::size_t start) const {
    auto& scratch = detail::regex_scratch();
    const int rc = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                               PCRE2_NO_UTF_CHECK, scratch.match_data, scratch.match_context);
    if (rc == PCRE2_ERROR_NOMATCH) return std::nullopt;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      fail(ErrorCode::kTokenizer, "regex '{}' failed on a text of {} bytes: {}", pattern_, text.size(),
           reinterpret_cast<const char*>(message));
    }
    // rc == 0 only says the one-pair ovector could not hold the groups; the whole match is there.
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch.match_data);
    std::size_t b = ov[0], e = ov[1];
    if (b > e) b = e;  // \K inside a lookahead can report start > end; treat it as empty
    return std::make_pair(b, e);
  }

  // Calls f(begin, end) for each successive non-overlapping match in `text` (valid UTF-8), in
  // order. Like Rust's onig/regex find_iter: after a match the search resumes at its end, and an
  // empty match that ends where the previous match ended is skipped by advancing one character.
  template <class F>
  void for_each_match(std::string_view text, F&& f) const {
    std::size_t pos = 0;
    std::optional<std::size_t> last_match_end;
    while (pos <= text.size()) {
      const auto m = find_at(text, pos);
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
  std::shared_ptr<pcre2_code> code_;
  std::string pattern_;
};

}  // namespace moe::tokenizer
