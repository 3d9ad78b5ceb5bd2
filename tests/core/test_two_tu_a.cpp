// Header-only hygiene, first translation unit: everything in <moe/moe.hpp> must be inline, so a
// second unit that includes it too links without duplicate symbols.
#include <moe/moe.hpp>

#include <catch2/catch.hpp>

float convert_in_unit_b(float x);

TEST_CASE("two translation units including moe.hpp link together", "[hygiene]") {
  REQUIRE(moe::to_float(moe::to_bf16(1.5f)) == convert_in_unit_b(1.5f));
}
