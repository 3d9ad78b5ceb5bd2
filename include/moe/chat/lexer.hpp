// Lexer of the chat-template language: template text into data and tag tokens, as jinja2's lexer
// does with the environment transformers uses (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False): newlines normalised to "\n", one trailing newline dropped, "-"
// whitespace control on every tag, "+" to keep a block's indentation, {% raw %} sections,
// comments, and the end of a {{ }} recognised only outside brackets ({{ {'a': 1} }} works).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "moe/chat/error.hpp"
#include "moe/chat/limits.hpp"
#include "moe/chat/text.hpp"

namespace moe::chat {

enum class TokenType : std::uint8_t {
  kText,        // template data (value: the text, whitespace control already applied)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier or keyword
  kString,      // string literal (value: decoded)
  kInteger,     // value: the digits (underscores removed)
  kFloat,
  kOperator,  // value: + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
  kEnd,
};

struct Token {
  TokenType type;
  std::string value;
  SourceLocation where;
};

namespace lexer_detail {

// Maps byte offsets of the (newline-normalised) source to line/column.
class LineIndex {
 public:
  explicit LineIndex(std::string_view s) {
    starts_.push_back(0);
    for (std::size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n') starts_.push_back(i + 1);
  }
  SourceLocation at(std::size_t offset) const {
    const auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
    const std::size_t line = static_cast<std::size_t>(it - starts_.begin());
    return {static_cast<std::uint32_t>(line), static_cast<std::uint32_t>(offset - starts_[line - 1] + 1)};
  }

 private:
  std::vector<std::size_t> starts_;
};

inline bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline bool is_name_start(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool is_name_char(char c) noexcept { return is_name_start(c) || (c >= '0' && c <= '9'); }
inline bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Removes trailing whitespace (Python's \s: what "{%-" strips).
inline void rstrip_ws(std::string& s) {
  while (true) {
    if (s.empty()) return;
    const std::size_t before = s.size();
    const std::string_view kept = text::strip(s, nullptr, false, true);
    if (kept.size() == before) return;
    s.resize(kept.size());
  }
}

}  // namespace lexer_detail

class Lexer {
 public:
  Lexer(std::string_view source, const TemplateLimits& limits) : limits_(limits) {
    // jinja2 splits the source on \r\n, \r and \n, drops one empty last line (keep_trailing_newline
    // False) and joins with "\n".
    src_.reserve(source.size());
    for (std::size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_.push_back('\n');
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_.push_back(source[i]);
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    lines_ = lexer_detail::LineIndex(src_);
  }

  std::vector<Token> tokenize() {
    while (pos_ < src_.size()) lex_data();
    flush_text();
    tokens_.push_back({TokenType::kEnd, {}, where(src_.size())});
    return std::move(tokens_);
  }

 private:
  SourceLocation where(std::size_t offset) const { return lines_.at(offset); }

  void flush_text() {
    if (!text_.empty()) tokens_.push_back({TokenType::kText, std::move(text_), where(text_start_)});
    text_.clear();
  }

  // Applies the whitespace control of a tag that opens at `open` to the pending text: "-" strips
  // all whitespace before it; otherwise lstrip_blocks removes the spaces/tabs that precede a block
  // or comment tag on its line (only when nothing else precedes it there), unless the tag says "+".
  void control_before(char modifier, bool is_block_or_comment) {
    if (modifier == '-') {
      lexer_detail::rstrip_ws(text_);
      return;
    }
    if (modifier == '+' || !is_block_or_comment) return;
    std::size_t i = text_.size();
    while (i > 0 && (text_[i - 1] == ' ' || text_[i - 1] == '\t')) --i;
    const bool line_start = i == 0 ? at_line_start_ : text_[i - 1] == '\n';
    if (line_start) text_.resize(i);
  }

  // After a tag closes at pos_: "-" skips all following whitespace; trim_blocks drops one newline
  // after a block or comment.
  void control_after(bool strip, bool is_block_or_comment) {
    if (strip) {
      while (pos_ < src_.size() && lexer_detail::is_ws(src_[pos_])) ++pos_;
    } else if (is_block_or_comment && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
  }

  void append_text(std::size_t from, std::size_t to) {
    if (text_.empty()) {
      text_start_ = from;
      at_line_start_ = from == 0 || src_[from - 1] == '\n';
    }
    text_.append(src_, from, to - from);
  }

  void lex_data() {
    const std::size_t open = src_.find('{', pos_);
    std::size_t tag = std::string::npos;
    for (std::size_t p = open; p != std::string::npos && p + 1 < src_.size(); p = src_.find('{', p + 1)) {
      const char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') {
        tag = p;
        break;
      }
    }
    if (tag == std::string::npos) {
      append_text(pos_, src_.size());
      pos_ = src_.size();
      return;
    }
    append_text(pos_, tag);
    if (text_.empty()) at_line_start_ = tag == 0 || src_[tag - 1] == '\n';
    const char kind = src_[tag + 1];
    pos_ = tag + 2;
    char modifier = pos_ < src_.size() ? src_[pos_] : '\0';
    if (modifier == '-' || (modifier == '+' && kind != '{')) {
      ++pos_;
    } else {
      modifier = '\0';
    }
    if (kind == '#') return lex_comment(tag, modifier);
    control_before(modifier, kind == '%');
    if (kind == '%' && try_raw(tag)) return;
    flush_text();
    tokens_.push_back({kind == '{' ? TokenType::kVarBegin : TokenType::kBlockBegin, {}, where(tag)});
    lex_tag(kind == '{' ? '}' : '%', tag);
  }

  void lex_comment(std::size_t open, char modifier) {
    const std::size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) syntax_error(where(open), "missing end of comment tag '#}}'");
    const bool strip_after = close > pos_ && src_[close - 1] == '-';
    control_before(modifier, true);
    // The text before a comment is its own data token in jinja2: a "{%-" after the comment
    // strips only what follows the comment.
    flush_text();
    pos_ = close + 2;
    control_after(strip_after, true);
  }

  // {% raw %} ... {% endraw %}: the text in between is data, tags and all.
  bool try_raw(std::size_t open) {
    std::size_t p = pos_;
    while (p < src_.size() && lexer_detail::is_ws(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0 || (p + 3 < src_.size() && lexer_detail::is_name_char(src_[p + 3])))
      return false;
    p += 3;
    while (p < src_.size() && lexer_detail::is_ws(src_[p])) ++p;
    bool strip_after = false;
    if (p < src_.size() && src_[p] == '-') {
      strip_after = true;
      ++p;
    }
    if (src_.compare(p, 2, "%}") != 0) return false;
    pos_ = p + 2;
    control_after(strip_after, true);
    // Find {%[-+]? endraw [-]?%}
    std::size_t search = pos_;
    while (true) {
      const std::size_t t = src_.find("{%", search);
      if (t == std::string::npos) syntax_error(where(open), "missing {{% endraw %}} for this {{% raw %}}");
      std::size_t q = t + 2;
      char mod = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) mod = src_[q++];
      while (q < src_.size() && lexer_detail::is_ws(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") == 0) {
        q += 6;
        while (q < src_.size() && lexer_detail::is_ws(src_[q])) ++q;
        bool end_strip = false;
        if (q < src_.size() && src_[q] == '-') {
          end_strip = true;
          ++q;
        }
        if (src_.compare(q, 2, "%}") == 0) {
          append_text(pos_, t);
          control_before(mod, true);
          flush_text();  // raw text is data of its own: later whitespace control stops at it
          pos_ = q + 2;
          control_after(end_strip, true);
          return true;
        }
      }
      search = t + 2;
    }
  }

  // Tokens inside {{ }} or {% %} up to the closing delimiter (closer is '}' or '%').
  void lex_tag(char closer, std::size_t open) {
    std::size_t depth = 0;  // open ( [ { : the end of the tag is only recognised at depth 0
    while (true) {
      while (pos_ < src_.size() && lexer_detail::is_ws(src_[pos_])) ++pos_;
      if (pos_ >= src_.size())
        syntax_error(where(open), "unexpected end of template: this tag is not closed with '{}}}'",
                     closer == '}' ? "}" : "%");
      const char c = src_[pos_];
      if (depth == 0 || closer == '%') {
        const bool dash = c == '-' && pos_ + 2 < src_.size() && src_[pos_ + 1] == closer && src_[pos_ + 2] == '}';
        if (dash || (c == closer && pos_ + 1 < src_.size() && src_[pos_ + 1] == '}')) {
          tokens_.push_back({closer == '}' ? TokenType::kVarEnd : TokenType::kBlockEnd, {}, where(pos_)});
          pos_ += dash ? 3 : 2;
          control_after(dash, closer == '%');
          return;
        }
      }
      if (tokens_.size() > limits_.max_template_bytes)
        syntax_error(where(pos_), "too many tokens");  // cannot happen: one token needs >= 1 byte
      const std::size_t start = pos_;
      if (lexer_detail::is_name_start(c)) {
        while (pos_ < src_.size() && lexer_detail::is_name_char(src_[pos_])) ++pos_;
        tokens_.push_back({TokenType::kName, src_.substr(start, pos_ - start), where(start)});
      } else if (lexer_detail::is_digit(c)) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (std::string_view t : kTwo)
          if (src_.compare(pos_, 2, t) == 0) op = std::string(t);
        if (op.empty()) {
          static constexpr std::string_view kOne = "+-*/%~<>=()[]{},.:|";
          if (kOne.find(c) == std::string_view::npos) {
            if (static_cast<unsigned char>(c) >= 0x80)
              syntax_error(where(pos_), "unexpected character (non-ASCII byte 0x{:02X}) in a tag",
                           static_cast<unsigned>(static_cast<unsigned char>(c)));
            syntax_error(where(pos_), "unexpected character '{}' in a tag", c);
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        pos_ += op.size();
        tokens_.push_back({TokenType::kOperator, std::move(op), where(start)});
      }
    }
  }

  void lex_number() {
    const std::size_t start = pos_;
    std::string digits;
    auto take_digits = [&] {
      while (pos_ < src_.size() &&
             (lexer_detail::is_digit(src_[pos_]) ||
              (src_[pos_] == '_' && pos_ + 1 < src_.size() && lexer_detail::is_digit(src_[pos_ + 1])))) {
        if (src_[pos_] != '_') digits.push_back(src_[pos_]);
        ++pos_;
      }
    };
    take_digits();
    bool is_float = false;
    // A fraction only when a digit follows the dot and the number is not itself an attribute
    // (foo.0.1 is foo[0][1] in jinja2).
    const bool after_dot =
        !tokens_.empty() && tokens_.back().type == TokenType::kOperator && tokens_.back().value == ".";
    if (!after_dot && pos_ + 1 < src_.size() && src_[pos_] == '.' && lexer_detail::is_digit(src_[pos_ + 1])) {
      is_float = true;
      digits.push_back('.');
      ++pos_;
      take_digits();
    }
    if (!after_dot && pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      std::size_t q = pos_ + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && lexer_detail::is_digit(src_[q])) {
        is_float = true;
        digits.append(src_, pos_, q - pos_);
        pos_ = q;
        take_digits();
      }
    }
    tokens_.push_back({is_float ? TokenType::kFloat : TokenType::kInteger, std::move(digits), where(start)});
  }

  // A string literal, decoded as Python's "unicode-escape" codec does (what jinja2 applies):
  // \n \t \r \\ \' \" \a \b \f \v, \ooo octal, \xhh, \uXXXX, \UXXXXXXXX, backslash-newline
  // dropped; any other backslash stays as it is.
  void lex_string() {
    const std::size_t start = pos_;
    const char quote = src_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) syntax_error(where(start), "unterminated string literal");
      const char c = src_[pos_];
      if (c == quote) {
        ++pos_;
        break;
      }
      if (c != '\\') {
        out.push_back(c);
        ++pos_;
        continue;
      }
      if (pos_ + 1 >= src_.size()) syntax_error(where(start), "unterminated string literal");
      const char e = src_[pos_ + 1];
      pos_ += 2;
      switch (e) {
        case 'n':
          out.push_back('\n');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case '\n':
          break;
        case 'x':
        case 'u':
        case 'U': {
          const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (std::size_t k = 0; k < n; ++k) {
            const int h = pos_ + k < src_.size() ? lexer_detail::hex_value(src_[pos_ + k]) : -1;
            if (h < 0) syntax_error(where(pos_ - 2), "truncated \\{} escape in a string literal", e);
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          pos_ += n;
          if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            syntax_error(where(pos_ - n - 2), "escape \\{} gives U+{:04X}, which is not a valid character", e,
                         static_cast<std::uint32_t>(cp));
          text::append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = static_cast<char32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k)
              cp = cp * 8 + static_cast<char32_t>(src_[pos_++] - '0');
            text::append_utf8(out, cp);
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    tokens_.push_back({TokenType::kString, std::move(out), where(start)});
  }

  const TemplateLimits& limits_;
  std::string src_;
  lexer_detail::LineIndex lines_{std::string_view{}};
  std::size_t pos_ = 0;
  std::string text_;
  std::size_t text_start_ = 0;
  bool at_line_start_ = true;
  std::vector<Token> tokens_;
};

// Tokenizes a template source. Errors: TemplateError kSyntax (with line/column) for an
// unterminated tag, comment, string or raw block, a bad escape, or a character that is not part
// of the language; kSyntax too for a source that is not UTF-8 or is larger than
// limits.max_template_bytes.
inline std::vector<Token> tokenize(std::string_view source, const TemplateLimits& limits = {}) {
  if (source.size() > limits.max_template_bytes)
    syntax_error({1, 1}, "template is {} bytes, more than the limit of {}", source.size(), limits.max_template_bytes);
  const std::size_t bad = text::first_invalid_utf8(source);
  if (bad != source.size()) {
    const lexer_detail::LineIndex lines(source.substr(0, bad));
    syntax_error(lines.at(bad), "template is not valid UTF-8 (byte {} of {}: 0x{:02X})", bad, source.size(),
                 static_cast<unsigned>(static_cast<unsigned char>(source[bad])));
  }
  return Lexer(source, limits).tokenize();
}

}  // namespace moe::chat
