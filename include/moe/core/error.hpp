// moe::Error: the one exception type of the library. Every failure caused by a file, a config
// value or an argument is reported as an Error whose message names the file, key or tensor and
// the values seen; the code lets a caller react without parsing text.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace moe {

enum class ErrorCode {
  kInvalidArgument,   // a caller passed a bad value (shape, token id, option)
  kIo,                // a file could not be opened, mapped or read
  kFormat,            // a file's bytes do not follow its format (safetensors, GGUF, JSON)
  kConfig,            // config.json is missing a key or has an inconsistent value
  kMissingTensor,     // a checkpoint lacks a tensor the architecture needs
  kShapeMismatch,     // a tensor's shape or dtype differs from what the config implies
  kUnsupported,       // a valid input we do not handle (architecture, dtype, feature)
  kTokenizer,         // tokenizer.json is malformed or input text is not valid UTF-8
  kContextOverflow,   // a sequence would exceed the context length
  kCancelled,         // generation was cancelled from another thread
  kDevice,            // a CUDA runtime call failed
  kInternal,          // a broken invariant inside the library (a bug)
};

constexpr std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kFormat: return "format error";
    case ErrorCode::kConfig: return "config error";
    case ErrorCode::kMissingTensor: return "missing tensor";
    case ErrorCode::kShapeMismatch: return "shape mismatch";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kTokenizer: return "tokenizer error";
    case ErrorCode::kContextOverflow: return "context overflow";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kDevice: return "device error";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown error";
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(std::string(to_string(code)) + ": " + message), code_(code) {}

  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

// Throws Error(code, fmt::format(f, args...)). Use at input-validation sites:
//   if (n > limit) fail(ErrorCode::kFormat, "{}: header length {} exceeds file size {}", path, n, size);
template <class... Args>
[[noreturn]] void fail(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(code, fmt::format(f, std::forward<Args>(args)...));
}

// Checks an invariant of the caller's arguments; the message is only formatted on failure.
template <class... Args>
void require(bool condition, ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  if (!condition) fail(code, f, std::forward<Args>(args)...);
}

}  // namespace moe
