// Helpers shared by the io tests.
#pragma once

#include <catch2/catch.hpp>

#include <moe/core/error.hpp>

#include <initializer_list>
#include <string>

namespace moe::test {

// Runs f, requires a moe::Error with `code` whose message contains every piece of `parts`.
template <class F>
void require_error(F&& f, ErrorCode code, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const auto& p : parts) CHECK_THAT(e.what(), Catch::Matchers::Contains(p));
    return;
  }
  FAIL("no moe::Error thrown");
}

}  // namespace moe::test
