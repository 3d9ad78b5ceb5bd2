// Records the largest single allocation made through the global operator new while a
// MaxAllocationScope is alive (the parser under test runs on this thread; the replaced operator
// new is in alloc_tracker.cpp, which a test executable links to enable it).
#pragma once

#include <cstddef>

namespace moe_test {

// Starts recording on construction; largest() is the biggest request seen since then.
class MaxAllocationScope {
 public:
  MaxAllocationScope() noexcept;
  ~MaxAllocationScope();
  MaxAllocationScope(const MaxAllocationScope&) = delete;
  MaxAllocationScope& operator=(const MaxAllocationScope&) = delete;
  std::size_t largest() const noexcept;
  std::size_t count() const noexcept;
};

}  // namespace moe_test
