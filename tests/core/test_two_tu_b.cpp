// Header-only hygiene, second translation unit (see test_two_tu_a.cpp).
#include <moe/moe.hpp>

float convert_in_unit_b(float x) { return moe::to_float(moe::to_bf16(x)); }
