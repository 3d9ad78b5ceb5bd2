// KvCache: per-layer rows, append / truncate / clear, capacity errors.
#include <catch2/catch.hpp>

#include <moe/layers/kv_cache.hpp>

using namespace moe;

TEST_CASE("kv cache layout and bookkeeping", "[kv_cache]") {
  KvCache c({{6, 4}, {3, 5}}, 10);
  CHECK(c.capacity() == 10);
  CHECK(c.size() == 0);
  CHECK(c.n_layers() == 2);
  CHECK(c.keys(0).extent(1) == 6);
  CHECK(c.values(1).extent(1) == 5);
  // Every layer's rows are distinct memory: fill each with its own value and read back.
  for (index_t l = 0; l < 2; ++l) {
    for (index_t p = 0; p < 10; ++p) {
      for (index_t i = 0; i < c.keys(l).extent(1); ++i) c.keys(l)(p, i) = static_cast<float>(100 * l + 10 * p + i);
      for (index_t i = 0; i < c.values(l).extent(1); ++i) c.values(l)(p, i) = static_cast<float>(-(100 * l + 10 * p + i));
    }
  }
  for (index_t l = 0; l < 2; ++l) {
    for (index_t p = 0; p < 10; ++p) {
      CHECK(c.keys(l)(p, 2) == static_cast<float>(100 * l + 10 * p + 2));
      CHECK(c.values(l)(p, 1) == static_cast<float>(-(100 * l + 10 * p + 1)));
    }
  }
  c.append(4);
  c.append(3);
  CHECK(c.size() == 7);
  c.truncate(5);
  CHECK(c.size() == 5);
  CHECK_THROWS_AS(c.truncate(6), Error);
  try {
    c.append(6);
    FAIL("append past capacity");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kContextOverflow);
  }
  CHECK(c.size() == 5);
  c.append(5);
  CHECK(c.size() == 10);
  c.clear();
  CHECK(c.size() == 0);
}
