// Text primitives of the chat-template interpreter: UTF-8 code points (Python strings count and
// slice code points, our strings are UTF-8 bytes), Python's str.isspace set, ASCII case mapping,
// and Python's repr() of a string.
#pragma once

#include "moe/tokenizer/utf8.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace moe::chat::text {

// Length of the UTF-8 sequence that starts with `lead` (1 for ASCII and, defensively, for a byte
// that cannot start a sequence: the interpreter only sees validated UTF-8, this keeps every loop
// moving forward even if it did not).
constexpr std::size_t sequence_length(unsigned char lead) noexcept {
  if (lead < 0xC0) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Byte offset of the first invalid UTF-8 byte, or s.size() when `s` is well-formed (no overlongs,
// no surrogates, nothing above U+10FFFF).
inline std::size_t first_invalid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    const auto b1 = static_cast<unsigned char>(s[i + 1]);
    if (b1 < lo || b1 > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return i;
    i += len;
  }
  return s.size();
}

// Decodes the code point at s[i] and advances i (never past s.size()).
inline char32_t decode(std::string_view s, std::size_t& i) noexcept {
  const auto b = static_cast<unsigned char>(s[i]);
  const std::size_t len = sequence_length(b);
  if (len == 1 || i + len > s.size()) {
    ++i;
    return b;
  }
  char32_t cp = len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

inline void append_utf8(std::string& out, char32_t cp) { tokenizer::utf8_append(out, cp); }

// Number of code points (Python's len(str)).
inline std::size_t length(std::string_view s) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); i += sequence_length(static_cast<unsigned char>(s[i]))) ++n;
  return n;
}

// Byte offset of every code point, plus s.size() at the end (offsets.size() == length + 1).
inline std::vector<std::size_t> code_point_offsets(std::string_view s) {
  std::vector<std::size_t> offsets;
  offsets.reserve(s.size() + 1);
  for (std::size_t i = 0; i < s.size(); i += sequence_length(static_cast<unsigned char>(s[i]))) offsets.push_back(i);
  offsets.push_back(s.size());
  return offsets;
}

// Python's str.isspace() for one code point (the Unicode White_Space property plus the
// information separators U+001C..U+001F that Python also counts).
constexpr bool is_space(char32_t c) noexcept {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

constexpr bool is_ascii_upper(char32_t c) noexcept { return c >= 'A' && c <= 'Z'; }
constexpr bool is_ascii_lower(char32_t c) noexcept { return c >= 'a' && c <= 'z'; }
constexpr bool is_ascii_alpha(char32_t c) noexcept { return is_ascii_upper(c) || is_ascii_lower(c); }
constexpr bool is_ascii_digit(char32_t c) noexcept { return c >= '0' && c <= '9'; }

// Case mapping covers ASCII only: chat templates upper/lower role names and keywords, never
// message text, and a full Unicode case table is not worth its size here (documented).
inline std::string to_upper(std::string_view s) {
  std::string out(s);
  for (char& ch : out)
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  return out;
}
inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return out;
}

// Python's str.strip / lstrip / rstrip: without `chars` (nullptr) whitespace, else any code
// point of *chars.
inline std::string_view strip(std::string_view s, const std::string* chars, bool left, bool right) {
  auto in_set = [&](char32_t c) {
    if (chars == nullptr) return is_space(c);
    std::size_t j = 0;
    while (j < chars->size())
      if (decode(*chars, j) == c) return true;
    return false;
  };
  std::size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end) {
      std::size_t j = begin;
      if (!in_set(decode(s, j))) break;
      begin = j;
    }
  }
  if (right) {
    while (end > begin) {
      std::size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
      std::size_t j = start;
      if (!in_set(decode(s, j))) break;
      end = start;
    }
  }
  return s.substr(begin, end - begin);
}

// Python's repr() of a str: single quotes unless the text has a ' and no ", backslash escapes for
// the quote, backslash, \n \r \t and other control characters; printable non-ASCII stays.
inline std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back(quote);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == quote || ch == '\\') {
      out.push_back('\\');
      out.push_back(ch);
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(ch);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace moe::chat::text
