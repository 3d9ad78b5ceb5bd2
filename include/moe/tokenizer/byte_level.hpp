// The GPT-2 byte-to-unicode mapping used by byte-level BPE (GPT-2, DeepSeek, Qwen, OLMoE, GPT-OSS,
// GLM): every byte becomes a printable code point, so any byte string is a string of vocabulary
// characters. Bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ` map to themselves; the other 68 bytes map, in
// increasing order, to U+0100, U+0101, ... (so a space is `Ġ` U+0120 and a newline `Ċ` U+010A).
#pragma once

#include "moe/tokenizer/utf8.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace moe::tokenizer {

class ByteLevelMap {
 public:
  ByteLevelMap() {
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(next++);
      byte_to_cp_[b] = cp;
      std::string utf8 = utf8_encode(cp);
      encoded_len_[b] = static_cast<std::uint8_t>(utf8.size());
      for (std::size_t k = 0; k < utf8.size(); ++k) encoded_[b][k] = utf8[k];
    }
    cp_to_byte_.fill(-1);
    for (int b = 0; b < 256; ++b) cp_to_byte_[byte_to_cp_[b]] = static_cast<std::int16_t>(b);
  }

  char32_t byte_to_char(unsigned char b) const noexcept { return byte_to_cp_[b]; }

  // The byte a mapped code point stands for, or -1 if `cp` is not in the mapping's image.
  int char_to_byte(char32_t cp) const noexcept {
    return cp < cp_to_byte_.size() ? cp_to_byte_[cp] : -1;
  }

  // Appends the mapped characters of every byte of `bytes` to `out`.
  void encode(std::string_view bytes, std::string& out) const {
    out.reserve(out.size() + bytes.size() * 2);
    for (unsigned char b : bytes) out.append(encoded_[b], encoded_len_[b]);
  }

  // Appends the bytes a token spells if every character of it is in the mapping's image and
  // returns true; otherwise appends nothing and returns false. `token` must be valid UTF-8.
  bool decode(std::string_view token, std::string& out) const {
    const std::size_t start = out.size();
    std::size_t i = 0;
    while (i < token.size()) {
      std::size_t len = 0;
      const int b = char_to_byte(utf8_decode(token, i, len));
      if (b < 0) {
        out.resize(start);
        return false;
      }
      out.push_back(static_cast<char>(b));
      i += len;
    }
    return true;
  }

 private:
  std::array<char32_t, 256> byte_to_cp_{};
  char encoded_[256][2]{};
  std::array<std::uint8_t, 256> encoded_len_{};
  std::array<std::int16_t, 324> cp_to_byte_{};  // image is U+0021..U+0143
};

inline const ByteLevelMap& byte_level_map() {
  static const ByteLevelMap map;
  return map;
}

}  // namespace moe::tokenizer
