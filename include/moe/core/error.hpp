// moe::Error: the one exception type of the library. Every failure caused by a file, a config
// value or an argument is reported as an Error whose message names the file, key or tensor and
// the values seen; the code lets a caller react without parsing text.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <new>
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
  kOutOfMemory,       // an allocation failed or would exceed the machine's memory
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
    case ErrorCode::kOutOfMemory: return "out of memory";
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

// Runs f() and lets only moe::Error escape: every public entry point of the library (loading,
// tokenizing, sessions, generation) runs its body through this, so a host that catches
// moe::Error catches everything. std::bad_alloc and std::length_error (a container asked for more
// than it can hold) become kOutOfMemory, any other std::exception kInternal (a bug: please
// report it), each naming `where`. Costs nothing when nothing is thrown.
template <class F>
decltype(auto) catch_as_error(std::string_view where, F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(ErrorCode::kOutOfMemory, std::string(where) + ": out of memory");
  } catch (const std::length_error& e) {
    throw Error(ErrorCode::kOutOfMemory, std::string(where) + ": a size exceeds what can be allocated (" + e.what() + ")");
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInternal, std::string(where) + ": unexpected exception: " + e.what());
  }
}

}  // namespace moe
