// Ends what warnings_push.hpp began. No include guard: every inclusion pops once.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
