// Warnings: things a loader accepts but that the user should know (a GGUF without a key the
// Hugging Face config has, a fallback format). They go to one process-wide sink: stderr by
// default, or a function the host program installs (tests collect them). Not for hot paths.
#pragma once

#include <fmt/format.h>

#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe {

using WarningSink = std::function<void(std::string_view)>;

namespace detail {
struct WarningState {
  std::mutex mutex;
  WarningSink sink;  // empty: stderr
};
inline WarningState& warning_state() {
  static WarningState s;
  return s;
}
}  // namespace detail

// Installs `sink` (an empty function restores stderr) and returns the previous one. Thread-safe;
// the sink is called under a lock, one warning at a time.
inline WarningSink set_warning_sink(WarningSink sink) {
  auto& s = detail::warning_state();
  std::lock_guard lock(s.mutex);
  return std::exchange(s.sink, std::move(sink));
}

// Reports one warning (a sentence naming the file, key or tensor and the values seen).
inline void warn(std::string_view message) {
  auto& s = detail::warning_state();
  std::lock_guard lock(s.mutex);
  if (s.sink) {
    s.sink(message);
  } else {
    std::fprintf(stderr, "moecpp warning: %.*s\n", static_cast<int>(message.size()), message.data());
  }
}

template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  warn(std::string_view(fmt::format(f, std::forward<Args>(args)...)));
}

// Collects the warnings raised while it lives (tests, tools that print them their own way).
class WarningCollector {
 public:
  WarningCollector() : previous_(set_warning_sink([this](std::string_view m) { messages_.emplace_back(m); })) {}
  ~WarningCollector() { set_warning_sink(std::move(previous_)); }
  WarningCollector(const WarningCollector&) = delete;
  WarningCollector& operator=(const WarningCollector&) = delete;
  const std::vector<std::string>& messages() const noexcept { return messages_; }

 private:
  std::vector<std::string> messages_;
  WarningSink previous_;
};

}  // namespace moe
