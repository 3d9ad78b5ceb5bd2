// Included at the top of each cpu kernel header (and warnings_pop.hpp at its end): GCC 12 reports
// -W(maybe-)uninitialized inside AVX-512 intrinsics inlined from xsimd into the kernels (the
// intrinsics' internal _mm512_undefined_* operand; GCC bug 105593, fixed in 13). No include guard:
// every inclusion pushes once.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
