// Normalizers of tokenizer.json ("normalizer" key): NFC, NFD, NFKC, NFKD, Lowercase, Strip,
// StripAccents, Replace, Prepend, Append, ByteLevel and Sequence (flattened into one list of
// steps). They rewrite the text of one piece before pre-tokenization; no offsets are tracked.
#pragma once

#include "moe/tokenizer/byte_level.hpp"
#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/pattern.hpp"
#include "moe/tokenizer/unicode.hpp"

#include <string>
#include <vector>

namespace moe::tokenizer {

inline constexpr int kMaxComponentNesting = 32;  // Sequence inside Sequence ... (hostile files)

// Immutable after from_json; normalize() is thread-safe.
class Normalizer {
 public:
  Normalizer() = default;

  // `node` is the value of the "normalizer" key; nullptr or JSON null is the identity.
  static Normalizer from_json(const JsonNode* node) {
    Normalizer n;
    if (node != nullptr && !node->is_null()) n.add(*node, 0);
    return n;
  }

  bool empty() const noexcept { return steps_.empty(); }

  // Normalizes `text` (valid UTF-8) in place.
  void normalize(std::string& text) const {
    for (const Step& step : steps_) apply(step, text);
  }

 private:
  enum class Kind { kNfc, kNfd, kNfkc, kNfkd, kLowercase, kStrip, kStripAccents, kReplace, kPrepend, kAppend, kByteLevel };
  struct Step {
    Kind kind;
    Pattern pattern;
    std::string content;
    bool left = false;
    bool right = false;
  };

  void add(const JsonNode& node, int depth) {
    if (depth > kMaxComponentNesting) node.fail_here(ErrorCode::kTokenizer, "normalizers nested too deeply");
    const std::string& type = node.type();
    Step step{};
    if (type == "Sequence") {
      const JsonNode list = node.at("normalizers");
      for (std::size_t i = 0; i < list.size(); ++i) add(list[i], depth + 1);
      return;
    } else if (type == "NFC") {
      step.kind = Kind::kNfc;
    } else if (type == "NFD") {
      step.kind = Kind::kNfd;
    } else if (type == "NFKC") {
      step.kind = Kind::kNfkc;
    } else if (type == "NFKD") {
      step.kind = Kind::kNfkd;
    } else if (type == "Lowercase") {
      step.kind = Kind::kLowercase;
    } else if (type == "Strip") {
      step.kind = Kind::kStrip;
      step.left = node.bool_or("strip_left", true);
      step.right = node.bool_or("strip_right", true);
    } else if (type == "StripAccents") {
      step.kind = Kind::kStripAccents;
    } else if (type == "Replace") {
      step.kind = Kind::kReplace;
      step.pattern = Pattern::from_json(node.at("pattern"));
      step.content = node.at("content").as_string();
    } else if (type == "Prepend") {
      step.kind = Kind::kPrepend;
      step.content = node.at("prepend").as_string();
    } else if (type == "Append") {
      step.kind = Kind::kAppend;
      step.content = node.at("append").as_string();
    } else if (type == "ByteLevel") {
      step.kind = Kind::kByteLevel;
    } else {
      node.fail_here(ErrorCode::kUnsupported, "normalizer type '{}' is not supported", type);
    }
    steps_.push_back(std::move(step));
  }

  static void apply(const Step& step, std::string& text) {
    switch (step.kind) {
      case Kind::kNfc: text = unicode_normalize(text, NormalizationForm::kNfc); break;
      case Kind::kNfd: text = unicode_normalize(text, NormalizationForm::kNfd); break;
      case Kind::kNfkc: text = unicode_normalize(text, NormalizationForm::kNfkc); break;
      case Kind::kNfkd: text = unicode_normalize(text, NormalizationForm::kNfkd); break;
      case Kind::kLowercase: text = unicode_lowercase(text); break;
      case Kind::kStripAccents: text = strip_combining_marks(text); break;
      case Kind::kStrip: {
        std::size_t b = 0, e = text.size();
        if (step.left) {
          while (b < e) {
            std::size_t len = 0;
            if (!is_whitespace(utf8_decode(text, b, len))) break;
            b += len;
          }
        }
        if (step.right) {
          while (e > b) {
            std::size_t start = e - 1;
            while (start > b && is_utf8_continuation(static_cast<unsigned char>(text[start]))) --start;
            std::size_t len = 0;
            if (!is_whitespace(utf8_decode(text, start, len))) break;
            e = start;
          }
        }
        text = text.substr(b, e - b);
        break;
      }
      case Kind::kReplace: {
        if (text.empty()) break;  // the library reports no match in an empty string
        std::string out;
        out.reserve(text.size());
        std::size_t prev = 0;
        bool any = false;
        step.pattern.for_each_match(text, [&](std::size_t mb, std::size_t me) {
          out.append(text, prev, mb - prev);
          out.append(step.content);
          prev = me;
          any = true;
        });
        if (any) {
          out.append(text, prev, std::string::npos);
          text = std::move(out);
        }
        break;
      }
      case Kind::kPrepend:
        if (!text.empty()) text.insert(0, step.content);
        break;
      case Kind::kAppend:
        if (!text.empty()) text.append(step.content);
        break;
      case Kind::kByteLevel: {
        std::string out;
        byte_level_map().encode(text, out);
        text = std::move(out);
        break;
      }
    }
  }

  std::vector<Step> steps_;
};

}  // namespace moe::tokenizer
