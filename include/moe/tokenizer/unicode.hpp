// Unicode character classes and text transforms the tokenizer needs, on top of utf8proc:
// normalization forms (NFC/NFD/NFKC/NFKD), lowercasing, and the predicates Rust's `char` offers
// (is_whitespace, is_numeric, is_punctuation, word characters) that Hugging Face tokenizers use.
#pragma once

#include "moe/core/error.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

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

// Applies a Unicode normalization form to valid UTF-8 text. ASCII text is returned unchanged
// without calling into utf8proc (every form is the identity on ASCII).
inline std::string unicode_normalize(std::string_view text, NormalizationForm form) {
  if (is_ascii(text)) return std::string(text);
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalizationForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalizationForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalizationForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalizationForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                                          static_cast<utf8proc_option_t>(options));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> guard(out, &std::free);
  if (n < 0)
    fail(ErrorCode::kTokenizer, "unicode normalization failed: {}", utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
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
