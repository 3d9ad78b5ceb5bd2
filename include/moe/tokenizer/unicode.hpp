// Unicode character classes and text transforms the tokenizer needs, on top of utf8proc:
// normalization forms (NFC/NFD/NFKC/NFKD), lowercasing, and the predicates Rust's `char` offers
// (is_whitespace, is_numeric, is_punctuation, word characters) that Hugging Face tokenizers use.
#pragma once

#include "moe/core/error.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::tokenizer {

inline bool is_ascii(std::string_view s) noexcept {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// Rust char::is_whitespace: the Unicode White_Space property.
constexpr bool is_whitespace(char32_t c) noexcept {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

inline utf8proc_category_t unicode_category(char32_t c) noexcept {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// Rust char::is_numeric: general categories Nd, Nl, No.
inline bool is_numeric(char32_t c) noexcept {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = unicode_category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

// Unicode punctuation (P*) or ASCII punctuation (which also counts ASCII symbols such as `$+<=>^|~`),
// the test of the Punctuation and BertPreTokenizer pre-tokenizers.
inline bool is_punctuation(char32_t c) noexcept {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  const auto cat = unicode_category(c);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

// A regex `\w` character (Unicode word: letters, marks, decimal digits, letter numbers, connector
// punctuation, joiners), used by the single_word rule of added tokens.
inline bool is_word_char(char32_t c) noexcept {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  const auto cat = unicode_category(c);
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND) || cat == UTF8PROC_CATEGORY_NL ||
         cat == UTF8PROC_CATEGORY_PC;
}

enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };

namespace detail {

// The utf8proc options of a normalization form, as utf8proc_NFC/NFD/NFKC/NFKD spell them.
inline utf8proc_option_t normalization_options(NormalizationForm form) noexcept {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalizationForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalizationForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalizationForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  return static_cast<utf8proc_option_t>(options);
}

// Canonical combining class. Every code point below U+0300 (the first combining mark) is a
// starter, which skips the property lookup for ASCII and Latin-1.
inline int canonical_combining_class(utf8proc_int32_t c) noexcept {
  return c < 0x300 ? 0 : utf8proc_get_property(c)->combining_class;
}

// The Canonical Ordering Algorithm: each maximal run of non-starters (ccc != 0) is stably sorted
// by ccc. utf8proc_decompose does this with an adjacent-swap (bubble) sort over the whole buffer,
// O(k^2) for a run of k marks; a stable sort gives the same order (both end with the unique
// stable ordering of the run) in O(k log k). Runs of 0 or 1 marks, and already ordered runs (all
// ordinary text), cost one ccc lookup per code point and no copying.
inline void canonical_reorder(utf8proc_int32_t* cps, std::size_t n) {
  std::vector<std::uint32_t> keyed;  // ccc << 21 | code point (code points need 21 bits)
  std::size_t i = 0;
  while (i < n) {
    int ccc = canonical_combining_class(cps[i]);
    if (ccc == 0) {
      ++i;
      continue;
    }
    const std::size_t begin = i;
    bool ordered = true;
    int prev = ccc;
    for (++i; i < n && (ccc = canonical_combining_class(cps[i])) != 0; ++i) {
      if (ccc < prev) ordered = false;
      prev = ccc;
    }
    if (ordered) continue;
    keyed.clear();
    for (std::size_t k = begin; k < i; ++k)
      keyed.push_back(static_cast<std::uint32_t>(canonical_combining_class(cps[k])) << 21 |
                      static_cast<std::uint32_t>(cps[k]));
    std::stable_sort(keyed.begin(), keyed.end(),
                     [](std::uint32_t a, std::uint32_t b) { return (a >> 21) < (b >> 21); });
    for (std::size_t k = begin; k < i; ++k)
      cps[k] = static_cast<utf8proc_int32_t>(keyed[k - begin] & 0x1FFFFFu);
  }
}

}  // namespace detail

// Applies a Unicode normalization form to valid UTF-8 text. ASCII text is returned unchanged
// without calling into utf8proc (every form is the identity on ASCII).
//
// The result is utf8proc_map's, computed without its quadratic step: utf8proc_map decomposes
// (utf8proc_decompose_custom), puts combining marks in canonical order with a bubble sort, then
// composes (utf8proc_reencode). Here the text is decomposed one code point at a time with
// utf8proc_decompose_char (the same per-character step and options, which never reorders), the
// marks are ordered by detail::canonical_reorder in O(n log n), and utf8proc_normalize_utf32
// composes: one pass with O(1) work per code point, so NFC/NFKC stay O(n log n) as well. A hostile
// "a" followed by tens of thousands of marks of alternating classes took utf8proc seconds to
// minutes.
inline std::string unicode_normalize(std::string_view text, NormalizationForm form) {
  if (is_ascii(text)) return std::string(text);
  const utf8proc_option_t options = detail::normalization_options(form);
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto size = static_cast<utf8proc_ssize_t>(text.size());
  // Decompositions are at most 18 code points (U+FDFA under NFKD); the buffer grows when one
  // does not fit, and utf8proc_decompose_char then reports the length it needs.
  std::vector<utf8proc_int32_t> cps(text.size() + 32);
  std::size_t length = 0;
  int boundclass = UTF8PROC_BOUNDCLASS_START;  // only read with UTF8PROC_CHARBOUND, not used here
  for (utf8proc_ssize_t pos = 0; pos < size;) {
    utf8proc_int32_t c = -1;
    pos += utf8proc_iterate(bytes + pos, size - pos, &c);
    // The same validation as utf8proc_map (it rejects surrogates and overlong forms too).
    if (c < 0)
      fail(ErrorCode::kTokenizer, "unicode normalization failed: {}", utf8proc_errmsg(UTF8PROC_ERROR_INVALIDUTF8));
    for (;;) {
      const std::size_t room = cps.size() - length;
      const utf8proc_ssize_t n = utf8proc_decompose_char(c, cps.data() + length,
                                                         static_cast<utf8proc_ssize_t>(room), options, &boundclass);
      if (n < 0) fail(ErrorCode::kTokenizer, "unicode normalization failed: {}", utf8proc_errmsg(n));
      if (static_cast<std::size_t>(n) <= room) {
        length += static_cast<std::size_t>(n);
        break;
      }
      cps.resize(std::max(cps.size() * 2, length + static_cast<std::size_t>(n)));
    }
  }
  detail::canonical_reorder(cps.data(), length);
  if (options & UTF8PROC_COMPOSE) {
    const utf8proc_ssize_t n = utf8proc_normalize_utf32(cps.data(), static_cast<utf8proc_ssize_t>(length), options);
    if (n < 0) fail(ErrorCode::kTokenizer, "unicode normalization failed: {}", utf8proc_errmsg(n));
    length = static_cast<std::size_t>(n);
  }
  std::string out;
  out.reserve(length + length / 2);
  for (std::size_t i = 0; i < length; ++i) utf8_append(out, static_cast<char32_t>(cps[i]));
  return out;
}

// Full lowercase mapping per code point, without context (Rust char::to_lowercase, as the
// Lowercase normalizer applies it). utf8proc gives the simple mapping; the one code point whose
// full mapping has two code points, U+0130 (İ), is spelled out.
inline std::string unicode_lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
      ++i;
      continue;
    }
    std::size_t len = 0;
    const char32_t c = utf8_decode(text, i, len);
    if (c == 0x130) {
      out.append("i\xCC\x87");
    } else {
      utf8_append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
    i += len;
  }
  return out;
}

// Removes combining marks (categories Mn, Mc and Me), as the StripAccents normalizer does (after
// NFD): tokenizers filters with unicode-normalization's is_combining_mark, the whole Mark class.
inline std::string strip_combining_marks(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t len = 0;
    const char32_t c = utf8_decode(text, i, len);
    const auto cat = c < 0x80 ? UTF8PROC_CATEGORY_LU : unicode_category(c);
    if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME) {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace moe::tokenizer
