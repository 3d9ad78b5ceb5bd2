// Counts calls of the global operator new in a test executable that links alloc_counter.cpp
// (which replaces the throwing, non-aligned operator new/delete for the whole program).
#pragma once

namespace moe_test {
long allocation_count() noexcept;
}
