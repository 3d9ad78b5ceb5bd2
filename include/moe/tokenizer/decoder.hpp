// Decoders of tokenizer.json ("decoder" key): ByteLevel, ByteFallback, Fuse, Strip, Replace,
// Metaspace, BPEDecoder and Sequence. They turn the token strings of a sequence of ids back into
// text, each step mapping a list of strings to a list of strings (the library's decode_chain).
#pragma once

#include "moe/tokenizer/byte_level.hpp"
#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/normalizer.hpp"
#include "moe/tokenizer/pattern.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace moe::tokenizer {

// The byte a ByteFallback token spells: "<0xNN>" (6 bytes; the two characters after "0x" parsed
// as hexadecimal, as Rust's u8::from_str_radix does, which also accepts a leading '+').
inline std::optional<unsigned char> parse_byte_token(std::string_view t) noexcept {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (t[3] == '+') {
    const int lo = hex(t[4]);
    if (lo < 0) return std::nullopt;
    return static_cast<unsigned char>(lo);
  }
  const int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

// Immutable after from_json; decode() is thread-safe.
class Decoder {
 public:
  Decoder() = default;

  // `node` is the value of the "decoder" key; nullptr or JSON null joins tokens with spaces.
  static Decoder from_json(const JsonNode* node) {
    Decoder d;
    if (node != nullptr && !node->is_null()) {
      d.present_ = true;
      d.add(*node, 0);
    }
    return d;
  }

  // True when a ByteFallback step groups consecutive <0xNN> tokens: a streaming decoder must not
  // treat text as final while the sequence ends in such a token.
  bool has_byte_fallback() const noexcept {
    return std::any_of(steps_.begin(), steps_.end(), [](const Step& s) { return s.kind == Kind::kByteFallback; });
  }

  // True if some Strip step removes character `c` at the start or end of a token.
  bool strips(char32_t c) const noexcept {
    return std::any_of(steps_.begin(), steps_.end(),
                       [c](const Step& s) { return s.kind == Kind::kStrip && (s.start > 0 || s.stop > 0) && s.ch == c; });
  }

  // True when every step sees at most one token's text or applies per token: no Replace step
  // comes after a step that joins tokens (ByteLevel, Fuse), where a pattern could match across
  // token boundaries and make the text of a token depend on tokens far before it. A streaming
  // decoder may then drop the middle of a long run of tokens from its window.
  bool is_token_local() const noexcept {
    bool joined = false;
    for (const Step& s : steps_) {
      if (s.kind == Kind::kByteLevel || s.kind == Kind::kFuse) joined = true;
      if (s.kind == Kind::kReplace && joined) return false;
    }
    return true;
  }

  // The most characters Strip steps remove at the start (`start`) or the end (`stop`) of a token,
  // summed over the steps (saturating).
  std::size_t strip_start_total() const noexcept { return strip_total(true); }
  std::size_t strip_stop_total() const noexcept { return strip_total(false); }

  std::string decode(std::vector<std::string> tokens) const {
    if (!present_) {
      std::string out;
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (i) out.push_back(' ');
        out.append(tokens[i]);
      }
      return out;
    }
    for (const Step& step : steps_) apply(step, tokens);
    std::string out;
    for (const std::string& t : tokens) out.append(t);
    return out;
  }

 private:
  enum class Kind { kByteLevel, kByteFallback, kFuse, kStrip, kReplace, kMetaspace, kBpeSuffix };
  struct Step {
    Kind kind;
    Pattern pattern;         // kReplace; kBpeSuffix: the suffix as a literal
    std::string content;     // kReplace: replacement; kStrip, kMetaspace: the character (UTF-8)
    char32_t ch = 0;         // kStrip, kMetaspace
    std::size_t start = 0;   // kStrip
    std::size_t stop = 0;    // kStrip
    bool drop_first = true;  // kMetaspace: prepend_scheme != never
    std::string suffix;      // kBpeSuffix
  };

  static std::size_t count(const JsonNode& parent, std::string_view key) {
    const std::int64_t v = parent.int_or(key, 0);
    if (v < 0) parent.at(key).fail_here(ErrorCode::kTokenizer, "expected a non-negative count, got {}", v);
    return static_cast<std::size_t>(v);
  }

  void add(const JsonNode& node, int depth) {
    if (depth > kMaxComponentNesting) node.fail_here(ErrorCode::kTokenizer, "decoders nested too deeply");
    const std::string& type = node.type();
    Step step{};
    if (type == "Sequence") {
      const JsonNode list = node.at("decoders");
      for (std::size_t i = 0; i < list.size(); ++i) add(list[i], depth + 1);
      return;
    } else if (type == "ByteLevel") {
      step.kind = Kind::kByteLevel;
    } else if (type == "ByteFallback") {
      step.kind = Kind::kByteFallback;
    } else if (type == "Fuse") {
      step.kind = Kind::kFuse;
    } else if (type == "Strip") {
      step.kind = Kind::kStrip;
      const JsonNode content = node.at("content");
      step.ch = content.as_single_char();
      step.content = content.as_string();
      step.start = count(node, "start");
      step.stop = count(node, "stop");
    } else if (type == "Replace") {
      step.kind = Kind::kReplace;
      step.pattern = Pattern::from_json(node.at("pattern"));
      step.content = node.at("content").as_string();
    } else if (type == "Metaspace") {
      step.kind = Kind::kMetaspace;
      const JsonNode rep = node.at("replacement");
      step.ch = rep.as_single_char();
      step.content = rep.as_string();
      step.drop_first = true;
      if (auto scheme = node.find("prepend_scheme")) step.drop_first = scheme->as_string() != "never";
      if (auto legacy = node.find("add_prefix_space"); legacy && !legacy->as_bool()) step.drop_first = false;
    } else if (type == "BPEDecoder") {
      step.kind = Kind::kBpeSuffix;
      step.suffix = node.string_or("suffix", "</w>");
      step.pattern = Pattern::literal(step.suffix);
    } else {
      node.fail_here(ErrorCode::kUnsupported, "decoder type '{}' is not supported", type);
    }
    steps_.push_back(std::move(step));
  }

  static void apply(const Step& step, std::vector<std::string>& tokens) {
    switch (step.kind) {
      case Kind::kByteLevel: {
        // Each token becomes bytes through the byte-level map (or its own UTF-8 bytes when it has
        // a character outside the map, as added tokens do); the concatenation is decoded lossily.
        const ByteLevelMap& map = byte_level_map();
        std::string bytes;
        for (const std::string& t : tokens)
          if (!map.decode(t, bytes)) bytes.append(t);
        tokens.assign(1, utf8_lossy(bytes));
        break;
      }
      case Kind::kByteFallback: {
        std::vector<std::string> out;
        out.reserve(tokens.size());
        std::string pending;  // consecutive byte tokens
        std::size_t pending_count = 0;
        auto flush = [&] {
          if (pending_count == 0) return;
          if (is_valid_utf8(pending)) {
            out.push_back(pending);
          } else {
            for (std::size_t k = 0; k < pending_count; ++k) out.emplace_back(kReplacementUtf8);
          }
          pending.clear();
          pending_count = 0;
        };
        for (std::string& t : tokens) {
          if (auto b = parse_byte_token(t)) {
            pending.push_back(static_cast<char>(*b));
            ++pending_count;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case Kind::kFuse: {
        std::string joined;
        for (const std::string& t : tokens) joined.append(t);
        tokens.assign(1, std::move(joined));
        break;
      }
      case Kind::kStrip:
        for (std::string& t : tokens) strip(step, t);
        break;
      case Kind::kReplace:
        for (std::string& t : tokens) {
          if (t.empty()) continue;
          std::string out;
          std::size_t prev = 0;
          step.pattern.for_each_match(t, [&](std::size_t b, std::size_t e) {
            out.append(t, prev, b - prev);
            out.append(step.content);
            prev = e;
          });
          out.append(t, prev, std::string::npos);
          t = std::move(out);
        }
        break;
      case Kind::kMetaspace:
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          std::string& t = tokens[i];
          if (t.find(step.content) == std::string::npos) continue;
          std::string out;
          std::size_t pos = 0;
          while (pos < t.size()) {
            if (t.compare(pos, step.content.size(), step.content) == 0) {
              if (!(i == 0 && step.drop_first)) out.push_back(' ');
              pos += step.content.size();
            } else {
              out.push_back(t[pos++]);
            }
          }
          t = std::move(out);
        }
        break;
      case Kind::kBpeSuffix:
        for (std::size_t i = 0; i < tokens.size(); ++i) {
          std::string& t = tokens[i];
          if (step.suffix.empty()) continue;
          const std::string_view with = i + 1 == tokens.size() ? "" : " ";
          std::string out;
          std::size_t prev = 0;
          step.pattern.for_each_match(t, [&](std::size_t b, std::size_t e) {  // linear in t (KMP)
            out.append(t, prev, b - prev);
            out.append(with);
            prev = e;
          });
          out.append(t, prev, std::string::npos);
          t = std::move(out);
        }
        break;
    }
  }

  // Removes up to `start` leading and `stop` trailing copies of the character (per token).
  static void strip(const Step& step, std::string& t) {
    const std::string& c = step.content;
    std::size_t b = 0;
    for (std::size_t k = 0; k < step.start && t.compare(b, c.size(), c) == 0 && b + c.size() <= t.size(); ++k)
      b += c.size();
    std::size_t e = t.size();
    for (std::size_t k = 0; k < step.stop && e >= b + c.size() && t.compare(e - c.size(), c.size(), c) == 0; ++k)
      e -= c.size();
    t = t.substr(b, e - b);
  }

  std::size_t strip_total(bool at_start) const noexcept {
    std::size_t total = 0;
    for (const Step& s : steps_) {
      if (s.kind != Kind::kStrip) continue;
      const std::size_t k = at_start ? s.start : s.stop;
      total = k > SIZE_MAX - total ? SIZE_MAX : total + k;
    }
    return total;
  }

  bool present_ = false;
  std::vector<Step> steps_;
};

}  // namespace moe::tokenizer
