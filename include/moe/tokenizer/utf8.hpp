// UTF-8 primitives for the tokenizer: validation, code point decoding/encoding, the length of an
// incomplete trailing sequence, and lossy conversion that matches Rust's String::from_utf8_lossy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace moe::tokenizer {

inline constexpr char32_t kReplacementChar = 0xFFFD;
inline constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";

// Length in bytes of the sequence a lead byte announces (1 for ASCII), 0 for a byte that cannot
// start a sequence (continuation bytes 80..BF, C0, C1, F5..FF).
constexpr std::size_t utf8_sequence_length(unsigned char lead) noexcept {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// The valid range of the second byte after `lead` (Unicode Table 3-7): it excludes overlong
// forms (E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points above U+10FFFF (F4 90..).
constexpr bool utf8_second_byte_ok(unsigned char lead, unsigned char b) noexcept {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

constexpr bool is_utf8_continuation(unsigned char b) noexcept { return (b & 0xC0) == 0x80; }

// How many bytes of a well-formed sequence start at s[i] (0 when the bytes there are not a
// complete, valid sequence). Reads at most 4 bytes and never past s.size().
inline std::size_t utf8_valid_sequence_at(std::string_view s, std::size_t i) noexcept {
  const auto lead = static_cast<unsigned char>(s[i]);
  const std::size_t len = utf8_sequence_length(lead);
  if (len <= 1) return len;
  if (s.size() - i < len) return 0;
  if (!utf8_second_byte_ok(lead, static_cast<unsigned char>(s[i + 1]))) return 0;
  for (std::size_t k = 2; k < len; ++k)
    if (!is_utf8_continuation(static_cast<unsigned char>(s[i + k]))) return 0;
  return len;
}

// Byte offset of the first invalid byte, or s.size() when all of `s` is well-formed UTF-8.
inline std::size_t utf8_first_invalid(std::string_view s) noexcept {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const std::size_t len = utf8_valid_sequence_at(s, i);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

inline bool is_valid_utf8(std::string_view s) noexcept { return utf8_first_invalid(s) == s.size(); }

// Decodes the code point at s[i] of a string known to be valid UTF-8; sets `len` to its length.
inline char32_t utf8_decode(std::string_view s, std::size_t i, std::size_t& len) noexcept {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    len = 1;
    return b0;
  }
  len = utf8_sequence_length(b0);
  if (len == 0 || i + len > s.size()) {  // not valid: report one replacement char per byte
    len = 1;
    return kReplacementChar;
  }
  char32_t cp = b0 & (0x7F >> len);
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

inline void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

inline std::string utf8_encode(char32_t cp) {
  std::string s;
  utf8_append(s, cp);
  return s;
}

// Number of code points of a valid UTF-8 string.
inline std::size_t utf8_length(std::string_view s) noexcept {
  std::size_t n = 0;
  for (unsigned char c : s) n += !is_utf8_continuation(c);
  return n;
}

// Length of the trailing bytes of `s` that form a proper prefix of a well-formed sequence (a
// character cut in the middle, which more bytes could complete); 0 if `s` ends cleanly.
inline std::size_t utf8_incomplete_tail(std::string_view s) noexcept {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(s[n - back]);
    if (is_utf8_continuation(b)) continue;
    const std::size_t len = utf8_sequence_length(b);
    if (len <= back) return 0;  // ASCII, invalid lead, or a sequence that is already complete
    if (back >= 2 && !utf8_second_byte_ok(b, static_cast<unsigned char>(s[n - back + 1]))) return 0;
    return back;
  }
  return 0;
}

// Converts arbitrary bytes to valid UTF-8 exactly as Rust's String::from_utf8_lossy does (which
// is what the Hugging Face ByteLevel decoder uses): each maximal prefix of a well-formed sequence
// that cannot be completed ("maximal subpart", Unicode §3.9 U+FFFD substitution) becomes one
// U+FFFD; a byte that cannot start a sequence becomes one U+FFFD.
inline void utf8_append_lossy(std::string& out, std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    const std::size_t len = utf8_sequence_length(b);
    if (len == 0) {
      out.append(kReplacementUtf8);
      ++i;
      continue;
    }
    std::size_t good = 1;
    if (i + 1 < n && utf8_second_byte_ok(b, static_cast<unsigned char>(s[i + 1]))) {
      good = 2;
      while (good < len && i + good < n && is_utf8_continuation(static_cast<unsigned char>(s[i + good])))
        ++good;
    }
    if (good == len) {
      out.append(s.substr(i, len));
    } else {
      out.append(kReplacementUtf8);
    }
    i += good;
  }
}

inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  utf8_append_lossy(out, s);
  return out;
}

}  // namespace moe::tokenizer
