// TemplateError: how a chat template reports a syntax error, a runtime error or its own
// raise_exception(). It is a moe::Error (kFormat for a template that does not parse, kInvalidArgument
// for one that fails on the given messages), so a caller that catches moe::Error catches it; the
// line/column and the template's own message are kept apart for an API error body.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <utility>

#include "moe/core/error.hpp"

namespace moe::chat {

// 1-based line and column (in bytes) of a place in the template source; 0/0 when unknown.
struct SourceLocation {
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

enum class TemplateErrorKind {
  kSyntax,   // the template does not parse (ErrorCode::kFormat)
  kRuntime,  // evaluating it failed: a type error, an unknown filter, a limit (kInvalidArgument)
  kRaised,   // the template called raise_exception(message) (kInvalidArgument)
};

class TemplateError : public Error {
 public:
  TemplateError(TemplateErrorKind kind, SourceLocation where, std::string message)
      : Error(kind == TemplateErrorKind::kSyntax ? ErrorCode::kFormat : ErrorCode::kInvalidArgument,
              format_message(kind, where, message)),
        kind_(kind),
        where_(where),
        message_(std::move(message)) {}

  TemplateErrorKind kind() const noexcept { return kind_; }
  SourceLocation where() const noexcept { return where_; }
  // The message alone: for kRaised exactly the string the template passed to raise_exception.
  const std::string& template_message() const noexcept { return message_; }

 private:
  static std::string format_message(TemplateErrorKind kind, SourceLocation where, const std::string& message) {
    const char* what = kind == TemplateErrorKind::kSyntax   ? "syntax error"
                       : kind == TemplateErrorKind::kRaised ? "raise_exception"
                                                            : "error";
    return fmt::format("chat template {} at line {}, column {}: {}", what, where.line, where.column, message);
  }

  TemplateErrorKind kind_;
  SourceLocation where_;
  std::string message_;
};

template <class... Args>
[[noreturn]] void syntax_error(SourceLocation where, fmt::format_string<Args...> f, Args&&... args) {
  throw TemplateError(TemplateErrorKind::kSyntax, where, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace moe::chat
