// Pre-tokenizers of tokenizer.json ("pre_tokenizer" key): Split, ByteLevel, Metaspace, Digits,
// Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer, CharDelimiterSplit and Sequence.
// They cut the normalized text into pieces ("words") that the model tokenizes independently.
#pragma once

#include "moe/tokenizer/byte_level.hpp"
#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/normalizer.hpp"
#include "moe/tokenizer/pattern.hpp"
#include "moe/tokenizer/unicode.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace moe::tokenizer {

// One piece of the text on its way through the pipeline.
struct Piece {
  std::string text;
  std::int32_t token = -1;  // the id when this piece is an added token: it is never split further
  bool at_start = false;    // the piece begins at offset 0 of the original input (Metaspace "first")
};

// The GPT-2 pre-tokenization regex the ByteLevel pre-tokenizer applies when use_regex is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Immutable after from_json; pre_tokenize() is thread-safe.
class PreTokenizer {
 public:
  PreTokenizer() = default;

  // `node` is the value of the "pre_tokenizer" key; nullptr or JSON null keeps each piece whole.
  static PreTokenizer from_json(const JsonNode* node) {
    PreTokenizer p;
    if (node != nullptr && !node->is_null()) p.add(*node, 0);
    return p;
  }

  bool empty() const noexcept { return steps_.empty(); }

  // Splits every piece that is not an added token; added-token pieces pass through unchanged.
  void pre_tokenize(std::vector<Piece>& pieces) const {
    // Per-thread buffers keep their capacity across calls: large vectors freed and reallocated
    // on every call would each cost fresh (page-faulting) memory.
    thread_local Scratch scratch;
    std::vector<Piece>& next = scratch.next;
    for (const Step& step : steps_) {
      next.clear();
      next.reserve(pieces.size() * 2);
      for (Piece& piece : pieces) {
        if (piece.token >= 0) {
          next.push_back(std::move(piece));
          continue;
        }
        apply(step, piece, next, scratch);
      }
      pieces.swap(next);
    }
    next.clear();
    if (next.capacity() > kMaxRetainedPieces) std::vector<Piece>().swap(next);
  }

  // Above this many pieces, per-thread buffers are released after use instead of kept.
  static constexpr std::size_t kMaxRetainedPieces = std::size_t{1} << 20;

 private:
  enum class Kind { kSplit, kByteLevel, kMetaspace, kWhitespace, kCharSplit, kDigits, kPunctuation };
  enum class CharClass { kWhitespace, kNumeric, kPunctuation, kDelimiter };
  enum class PrependScheme { kAlways, kFirst, kNever };

  struct Step {
    Kind kind;
    Pattern pattern;                       // kSplit, kWhitespace, kByteLevel (GPT-2 regex)
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;                   // kSplit
    bool add_prefix_space = false;         // kByteLevel
    bool use_regex = true;                 // kByteLevel
    CharClass char_class = CharClass::kWhitespace;  // kCharSplit, kDigits, kPunctuation
    char32_t delimiter = 0;                // kCharSplit (CharDelimiter), kMetaspace (replacement)
    std::string replacement;               // kMetaspace, UTF-8 of `delimiter`
    PrependScheme prepend = PrependScheme::kAlways;  // kMetaspace
    bool split = true;                     // kMetaspace
  };

  struct Scratch {
    std::vector<Piece> next;
    std::vector<Span> spans;
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    std::string text;
  };

  void add(const JsonNode& node, int depth) {
    if (depth > kMaxComponentNesting) node.fail_here(ErrorCode::kTokenizer, "pre-tokenizers nested too deeply");
    const std::string& type = node.type();
    Step step{};
    if (type == "Sequence") {
      const JsonNode list = node.at("pretokenizers");
      for (std::size_t i = 0; i < list.size(); ++i) add(list[i], depth + 1);
      return;
    } else if (type == "Split") {
      step.kind = Kind::kSplit;
      step.pattern = Pattern::from_json(node.at("pattern"));
      step.behavior = parse_split_behavior(node.at("behavior"));
      step.invert = node.bool_or("invert", false);
    } else if (type == "ByteLevel") {
      step.kind = Kind::kByteLevel;
      step.add_prefix_space = node.bool_or("add_prefix_space", true);
      step.use_regex = node.bool_or("use_regex", true);
      if (step.use_regex) step.pattern = Pattern::regex(std::string(kGpt2Pattern));
    } else if (type == "Metaspace") {
      step.kind = Kind::kMetaspace;
      const JsonNode rep = node.at("replacement");
      step.delimiter = rep.as_single_char();
      step.replacement = rep.as_string();
      step.split = node.bool_or("split", true);
      step.prepend = PrependScheme::kAlways;
      if (auto scheme = node.find("prepend_scheme")) {
        const std::string& s = scheme->as_string();
        if (s == "always") step.prepend = PrependScheme::kAlways;
        else if (s == "first") step.prepend = PrependScheme::kFirst;
        else if (s == "never") step.prepend = PrependScheme::kNever;
        else scheme->fail_here(ErrorCode::kTokenizer, "unknown prepend_scheme '{}'", s);
      }
      // Files written before prepend_scheme existed say add_prefix_space instead.
      if (auto legacy = node.find("add_prefix_space"); legacy && !legacy->as_bool())
        step.prepend = PrependScheme::kNever;
    } else if (type == "Whitespace") {
      // \w+|[^\w\s]+ with Rust's Unicode \w (alphabetic, marks, decimal digits, connectors).
      step.kind = Kind::kWhitespace;
      step.pattern = Pattern::regex(
          R"([\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}]+|[^\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}\s]+)");
    } else if (type == "WhitespaceSplit") {
      step.kind = Kind::kCharSplit;
      step.char_class = CharClass::kWhitespace;
      step.behavior = SplitBehavior::kRemoved;
    } else if (type == "CharDelimiterSplit") {
      step.kind = Kind::kCharSplit;
      step.char_class = CharClass::kDelimiter;
      step.delimiter = node.at("delimiter").as_single_char();
      step.behavior = SplitBehavior::kRemoved;
    } else if (type == "Digits") {
      step.kind = Kind::kDigits;
      step.char_class = CharClass::kNumeric;
      step.behavior = node.bool_or("individual_digits", false) ? SplitBehavior::kIsolated : SplitBehavior::kContiguous;
    } else if (type == "Punctuation") {
      step.kind = Kind::kPunctuation;
      step.char_class = CharClass::kPunctuation;
      step.behavior = SplitBehavior::kIsolated;
      if (auto b = node.find("behavior")) step.behavior = parse_split_behavior(*b);
    } else if (type == "BertPreTokenizer") {
      Step ws{};
      ws.kind = Kind::kCharSplit;
      ws.char_class = CharClass::kWhitespace;
      ws.behavior = SplitBehavior::kRemoved;
      steps_.push_back(std::move(ws));
      step.kind = Kind::kPunctuation;
      step.char_class = CharClass::kPunctuation;
      step.behavior = SplitBehavior::kIsolated;
    } else {
      node.fail_here(ErrorCode::kUnsupported, "pre-tokenizer type '{}' is not supported", type);
    }
    steps_.push_back(std::move(step));
  }

  static bool char_in_class(const Step& step, char32_t c) {
    switch (step.char_class) {
      case CharClass::kWhitespace: return is_whitespace(c);
      case CharClass::kNumeric: return is_numeric(c);
      case CharClass::kPunctuation: return is_punctuation(c);
      case CharClass::kDelimiter: return c == step.delimiter;
    }
    return false;
  }

  // Pushes the non-empty kept ranges of `text` as pieces; `transform` maps each range's text.
  template <class Transform>
  static void emit(const std::string& text, bool at_start, const std::vector<std::pair<std::size_t, std::size_t>>& ranges,
                   std::vector<Piece>& out, Transform&& transform) {
    for (const auto& [b, e] : ranges) {
      if (b == e) continue;
      Piece p;
      transform(std::string_view(text).substr(b, e - b), p.text);
      p.at_start = at_start && b == 0;
      out.push_back(std::move(p));
    }
  }

  static void apply(const Step& step, Piece& piece, std::vector<Piece>& out, Scratch& s) {
    auto copy = [](std::string_view in, std::string& dst) { dst.assign(in); };
    switch (step.kind) {
      case Kind::kSplit:
      case Kind::kWhitespace: {
        step.pattern.find_spans(piece.text, s.spans);
        if (step.kind == Kind::kWhitespace) {
          for (Span& sp : s.spans) sp.is_match = !sp.is_match;  // keep the matches, drop the rest
          apply_split_behavior(s.spans, SplitBehavior::kRemoved, s.ranges);
        } else {
          if (step.invert)
            for (Span& sp : s.spans) sp.is_match = !sp.is_match;
          apply_split_behavior(s.spans, step.behavior, s.ranges);
        }
        emit(piece.text, piece.at_start, s.ranges, out, copy);
        break;
      }
      case Kind::kCharSplit:
      case Kind::kDigits:
      case Kind::kPunctuation: {
        spans_from_chars(piece.text, [&](char32_t c) { return char_in_class(step, c); }, s.spans);
        apply_split_behavior(s.spans, step.behavior, s.ranges);
        emit(piece.text, piece.at_start, s.ranges, out, copy);
        break;
      }
      case Kind::kByteLevel: {
        if (step.add_prefix_space && (piece.text.empty() || piece.text[0] != ' ')) piece.text.insert(0, " ");
        if (step.use_regex) {
          step.pattern.find_spans(piece.text, s.spans);
          apply_split_behavior(s.spans, SplitBehavior::kIsolated, s.ranges);
        } else {
          s.ranges.assign(1, {0, piece.text.size()});
        }
        const ByteLevelMap& map = byte_level_map();
        emit(piece.text, piece.at_start, s.ranges, out,
             [&](std::string_view in, std::string& dst) { map.encode(in, dst); });
        break;
      }
      case Kind::kMetaspace: {
        std::string& t = s.text;
        t.clear();
        for (char c : piece.text) {
          if (c == ' ') t.append(step.replacement);
          else t.push_back(c);
        }
        const bool starts_with_rep = t.compare(0, step.replacement.size(), step.replacement) == 0;
        if (!starts_with_rep && (step.prepend == PrependScheme::kAlways ||
                                 (step.prepend == PrependScheme::kFirst && piece.at_start)))
          t.insert(0, step.replacement);
        if (step.split) {
          spans_from_chars(t, [&](char32_t c) { return c == step.delimiter; }, s.spans);
          apply_split_behavior(s.spans, SplitBehavior::kMergedWithNext, s.ranges);
        } else {
          s.ranges.assign(1, {0, t.size()});
        }
        emit(t, piece.at_start, s.ranges, out, copy);
        break;
      }
    }
  }

  std::vector<Step> steps_;
};

}  // namespace moe::tokenizer
