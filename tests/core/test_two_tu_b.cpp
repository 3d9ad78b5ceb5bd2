// Header-only hygiene, second translation unit (see test_two_tu_a.cpp). Compiled without the
// precompiled header and without the PCRE2_CODE_UNIT_WIDTH that moe::moe defines, as in a program
// that includes <moe/moe.hpp> without CMake.
#undef PCRE2_CODE_UNIT_WIDTH
#include <moe/moe.hpp>

float convert_in_unit_b(float x) { return moe::to_float(moe::to_bf16(x)); }
