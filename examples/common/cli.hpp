// Command-line helpers shared by the example tools: typed, range-checked option values, bounded
// reading of text files, a thread count the machine can take, and a main() wrapper that turns
// every error into "TOOL: message" on stderr and exit status 2.
#pragma once

#include <moe/moe.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>

namespace moe::cli {

// The value of `flag` as a T in [lo, hi]; kInvalidArgument naming the flag, the text and the
// range otherwise (not a number, trailing characters, NaN, out of range or of T's range).
template <class T>
T parse_number(std::string_view flag, std::string_view text, T lo = std::numeric_limits<T>::lowest(),
               T hi = std::numeric_limits<T>::max()) {
  if constexpr (std::is_floating_point_v<T>) {
    const std::string s(text);
    char* end = nullptr;
    const double d = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !(d >= static_cast<double>(lo) && d <= static_cast<double>(hi))) {
      fail(ErrorCode::kInvalidArgument, "{}: '{}' is not a number in [{}, {}]", flag, text, lo, hi);
    }
    return static_cast<T>(d);
  } else {
    T value{};
    const char* last = text.data() + text.size();
    const auto r = std::from_chars(text.data(), last, value);
    if (r.ec != std::errc() || r.ptr != last || value < lo || value > hi) {
      fail(ErrorCode::kInvalidArgument, "{}: '{}' is not an integer in [{}, {}]", flag, text, lo, hi);
    }
    return value;
  }
}

// The most OpenMP threads a tool accepts: 8 per hardware thread (at least 64), never more than
// limits::kMaxThreads. More only slows a forward pass down, and libgomp ends the whole process
// when it cannot create a thread, so an absurd --threads must be refused before it gets there.
inline int max_thread_option() {
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(std::min<long>(limits::kMaxThreads, std::max<long>(64, 8L * hw)));
}

// --threads N: checked against max_thread_option().
inline int parse_threads(std::string_view flag, std::string_view text) {
  return parse_number<int>(flag, text, 1, max_thread_option());
}

// The content of a text file given on the command line (a regular file of at most
// limits::kMaxTextFileBytes; FIFOs and devices are refused).
inline std::string read_text_file(const std::filesystem::path& path, std::string_view what = "text file") {
  return read_file(path, limits::kMaxTextFileBytes, what);
}

// Runs a tool's body: its return value is the exit status; a moe::Error (or anything else,
// which would be a bug of the library) prints "TOOL: message" and exits 2.
template <class F>
int run_tool(std::string_view tool, F&& body) {
  try {
    return catch_as_error(tool, std::forward<F>(body));
  } catch (const Error& e) {
    std::fputs(fmt::format("{}: {}\n", tool, e.what()).c_str(), stderr);
    return 2;
  } catch (...) {
    std::fputs(fmt::format("{}: internal error: an exception that is not a std::exception\n", tool).c_str(), stderr);
    return 2;
  }
}

}  // namespace moe::cli
