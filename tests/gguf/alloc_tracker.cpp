// Replaces the global operator new/delete with versions over malloc/free that, while a
// MaxAllocationScope is active, record the largest request and the number of requests (the idea
// of tests/runtime/alloc_counter.cpp, with sizes). In its own translation unit so the compiler
// cannot pair an inlined malloc with a delete.
#include "alloc_tracker.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<bool> g_active{false};
std::atomic<std::size_t> g_largest{0};
std::atomic<std::size_t> g_count{0};

void record(std::size_t n) noexcept {
  if (!g_active.load(std::memory_order_relaxed)) return;
  g_count.fetch_add(1, std::memory_order_relaxed);
  std::size_t seen = g_largest.load(std::memory_order_relaxed);
  while (n > seen && !g_largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}
}  // namespace

moe_test::MaxAllocationScope::MaxAllocationScope() noexcept {
  g_largest.store(0);
  g_count.store(0);
  g_active.store(true);
}
moe_test::MaxAllocationScope::~MaxAllocationScope() { g_active.store(false); }
std::size_t moe_test::MaxAllocationScope::largest() const noexcept { return g_largest.load(); }
std::size_t moe_test::MaxAllocationScope::count() const noexcept { return g_count.load(); }

void* operator new(std::size_t n) {
  record(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  record(n);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
// The nothrow forms too, so that every new/delete pair goes through malloc/free here.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  record(n);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  record(n);
  return std::malloc(n == 0 ? 1 : n);
}
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
