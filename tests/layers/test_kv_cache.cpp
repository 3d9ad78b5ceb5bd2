// KvCache: per-layer rows, append / truncate / clear, capacity errors; the pass-wide cache ops
// and the fused steps on the host backends.
#include <catch2/catch.hpp>

#include <moe/kernels/kernels.hpp>
#include <moe/layers/kv_cache.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

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

// The pass-wide cache ops on the host backends: three sequences at different starts in one
// table. The appends land at each cache's own positions; cpu's single parallel region over every
// (row, head) gives bitwise the reference's per-sequence loop (the same per-item code); a table
// that does not describe the rows is a typed error before any write.
TEST_CASE("pass-wide cache ops: append_cache, cached_attention, cached_mla_attention", "[kv_cache][cache_ops]") {
  struct Seq {
    index_t start, n;
  };
  const Seq seqs[] = {{0, 5}, {9, 1}, {3, 4}};
  const index_t cap = 16, n = 10;
  std::uint32_t state = 12345;
  const auto rnd = [&] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  for (const bool mla : {false, true}) {
    kernels::AttentionShape a;
    a.n_heads = 4, a.n_kv_heads = 2, a.head_dim = 8, a.v_head_dim = 6, a.scale = 0.3f, a.sliding_window = mla ? 0 : 6;
    kernels::MlaShape m;
    m.n_heads = 3, m.kv_lora_rank = 10, m.nope = 4, m.rope = 2, m.v = 3, m.scale = 0.25f;
    const index_t kw = mla ? m.kv_lora_rank : a.n_kv_heads * a.head_dim;
    const index_t vw = mla ? m.rope : a.n_kv_heads * a.v_head_dim;
    std::vector<KvCache> caches;
    std::vector<kernels::CacheSlot> slots;
    std::vector<std::int32_t> token_slot;
    for (std::size_t i = 0; i < 3; ++i) {
      caches.emplace_back(std::vector<KvLayerShape>{{3, 2}, {kw, vw}}, cap);
      auto keys = caches[i].keys(1), values = caches[i].values(1);
      for (index_t p = 0; p < cap; ++p) {
        for (index_t c = 0; c < kw; ++c) keys(p, c) = rnd();
        for (index_t c = 0; c < vw; ++c) values(p, c) = rnd();
      }
      caches[i].append(seqs[i].start);
      slots.push_back(caches[i].slot(token_slot.size(), seqs[i].n));
      for (index_t j = 0; j < seqs[i].n; ++j) token_slot.push_back(static_cast<std::int32_t>(i));
    }
    const kernels::PassSlots<host_memory> pass{View<const kernels::CacheSlot, 1>(slots.data(), {slots.size()}),
                                               View<const std::int32_t, 1>(token_slot.data(), {n}), 13};
    const kernels::CacheLayer layer = caches[0].layer(1);
    std::vector<float> k(n * kw), v(n * vw);
    for (auto& x : k) x = rnd();
    for (auto& x : v) x = rnd();
    kernels::append_cache(backend::reference{}, pass, layer, View<const float, 2>(k.data(), {n, kw}),
                          View<const float, 2>(v.data(), {n, vw}));
    for (std::size_t i = 0; i < 3; ++i) {
      for (index_t j = 0; j < seqs[i].n; ++j) {
        const index_t row = slots[i].row0 + j, pos = seqs[i].start + j;
        CHECK(caches[i].keys(1)(pos, kw - 1) == k[row * kw + kw - 1]);
        CHECK(caches[i].values(1)(pos, 0) == v[row * vw]);
      }
    }
    const index_t qw = mla ? m.n_heads * m.qk() : a.n_heads * a.head_dim;
    const index_t ow = mla ? m.n_heads * m.kv_lora_rank : a.n_heads * a.v_head_dim;
    std::vector<float> q(n * qw), ql(n * ow), out_ref(n * ow), out_cpu(n * ow);
    for (auto& x : q) x = rnd();
    for (auto& x : ql) x = rnd();
    const View<const float, 2> qv(q.data(), {n, qw}), qlv(ql.data(), {n, ow});
    if (mla) {
      kernels::cached_mla_attention(backend::reference{}, m, pass, layer, qv, qlv, View<float, 2>(out_ref.data(), {n, ow}));
      kernels::cached_mla_attention(backend::cpu{}, m, pass, layer, qv, qlv, View<float, 2>(out_cpu.data(), {n, ow}));
    } else {
      kernels::cached_attention(backend::reference{}, a, pass, layer, qv, View<const float, 1>(),
                                View<float, 2>(out_ref.data(), {n, ow}));
      kernels::cached_attention(backend::cpu{}, a, pass, layer, qv, View<const float, 1>(),
                                View<float, 2>(out_cpu.data(), {n, ow}));
      // Row 5 (the second sequence's only row) against the single-sequence op directly.
      std::vector<float> one(ow);
      kernels::attention(backend::reference{}, a, qv.slice(5, 6), View<const float, 2>(caches[1].keys(1)),
                         View<const float, 2>(caches[1].values(1)), 9, View<const float, 1>(),
                         View<float, 2>(one.data(), {1, ow}));
      CHECK(std::equal(one.begin(), one.end(), out_ref.begin() + 5 * ow));
    }
    // cpu: vector dot products (kernels/cpu/attention.hpp), so not bitwise the reference's sums.
    for (std::size_t i = 0; i < out_ref.size(); ++i) CHECK(out_cpu[i] == Approx(out_ref[i]).margin(1e-6));
    // A row naming a slot that does not exist, or outside its slot's rows.
    std::vector<std::int32_t> bad = token_slot;
    bad[2] = 7;
    const kernels::PassSlots<host_memory> bad_pass{pass.slots, View<const std::int32_t, 1>(bad.data(), {n}), 13};
    CHECK_THROWS_AS(kernels::append_cache(backend::reference{}, bad_pass, layer, View<const float, 2>(k.data(), {n, kw}),
                                          View<const float, 2>(v.data(), {n, vw})),
                    Error);
    bad[2] = 1;
    CHECK_THROWS_AS(kernels::cached_attention(backend::cpu{}, a, bad_pass, layer, qv, View<const float, 1>(),
                                              View<float, 2>(out_cpu.data(), {n, ow})),
                    Error);
  }
}

// The fused steps' host compositions (kernels/reference/fused.hpp) equal the ops they fuse.
TEST_CASE("fused steps on the host: add_rmsnorm, qk_norm_rope, matmul_fanout", "[cache_ops][fused]") {
  const index_t n = 3, d = 24;
  std::vector<float> h(n * d), delta(n * d), w(d), y1(n * d), y2(n * d);
  for (index_t i = 0; i < n * d; ++i) h[i] = 0.1f * static_cast<float>(i % 7) - 0.3f, delta[i] = 0.05f * static_cast<float>(i % 5);
  for (index_t i = 0; i < d; ++i) w[i] = 1.0f + 0.01f * static_cast<float>(i);
  std::vector<float> h2 = h;
  kernels::add_rmsnorm(backend::cpu{}, View<float, 2>(h.data(), {n, d}), View<const float, 2>(delta.data(), {n, d}),
                       View<const float, 1>(w.data(), {d}), 1e-6f, View<float, 2>(y1.data(), {n, d}));
  kernels::add(backend::cpu{}, View<float, 2>(h2.data(), {n, d}), View<const float, 2>(delta.data(), {n, d}));
  kernels::rmsnorm(backend::cpu{}, View<const float, 2>(h2.data(), {n, d}), View<const float, 1>(w.data(), {d}), 1e-6f,
                   View<float, 2>(y2.data(), {n, d}));
  CHECK(h == h2);
  CHECK(y1 == y2);
  // qk_norm_rope: 2 tokens, 3 q heads, 1 k head of 8, rotary 6 of 8.
  std::vector<float> q(2 * 3 * 8), k(2 * 8), c(2 * 3), s(2 * 3), qn(8, 1.5f), kn(8, 0.5f);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = 0.1f * static_cast<float>(i % 9) - 0.4f;
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = 0.2f * static_cast<float>(i % 4) - 0.3f;
  for (std::size_t i = 0; i < c.size(); ++i) c[i] = 0.9f - 0.1f * static_cast<float>(i), s[i] = 0.1f * static_cast<float>(i);
  std::vector<float> q2 = q, k2 = k;
  kernels::qk_norm_rope(backend::cpu{}, View<float, 3>(q.data(), {2, 3, 8}), View<float, 3>(k.data(), {2, 1, 8}),
                        View<const float, 1>(qn.data(), {8}), View<const float, 1>(kn.data(), {8}), 1e-6f,
                        View<const float, 2>(c.data(), {2, 3}), View<const float, 2>(s.data(), {2, 3}),
                        kernels::RopePairing::half_split);
  kernels::rmsnorm(backend::cpu{}, View<const float, 2>(q2.data(), {6, 8}), View<const float, 1>(qn.data(), {8}), 1e-6f,
                   View<float, 2>(q2.data(), {6, 8}));
  kernels::rmsnorm(backend::cpu{}, View<const float, 2>(k2.data(), {2, 8}), View<const float, 1>(kn.data(), {8}), 1e-6f,
                   View<float, 2>(k2.data(), {2, 8}));
  kernels::rope(backend::cpu{}, View<float, 3>(q2.data(), {2, 3, 8}), View<const float, 2>(c.data(), {2, 3}),
                View<const float, 2>(s.data(), {2, 3}), kernels::RopePairing::half_split);
  kernels::rope(backend::cpu{}, View<float, 3>(k2.data(), {2, 1, 8}), View<const float, 2>(c.data(), {2, 3}),
                View<const float, 2>(s.data(), {2, 3}), kernels::RopePairing::half_split);
  CHECK(q == q2);
  CHECK(k == k2);
  // Norms of the wrong size are refused.
  CHECK_THROWS_AS(kernels::qk_norm_rope(backend::cpu{}, View<float, 3>(q.data(), {2, 3, 8}),
                                        View<float, 3>(k.data(), {2, 1, 8}), View<const float, 1>(qn.data(), {7}),
                                        View<const float, 1>(kn.data(), {8}), 1e-6f,
                                        View<const float, 2>(c.data(), {2, 3}), View<const float, 2>(s.data(), {2, 3}),
                                        kernels::RopePairing::half_split),
                  Error);
  // matmul_fanout: two weights of different heights.
  std::vector<float> x(2 * 5), w0(4 * 5), w1(3 * 5), a0(2 * 4), a1(2 * 3), b0(2 * 4), b1(2 * 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) * 0.1f;
  for (std::size_t i = 0; i < w0.size(); ++i) w0[i] = static_cast<float>(i % 3) - 1.0f;
  for (std::size_t i = 0; i < w1.size(); ++i) w1[i] = static_cast<float>(i % 4) * 0.5f;
  const View<const float, 2> xv(x.data(), {2, 5});
  const std::array<View<const float, 2>, 2> ws{View<const float, 2>(w0.data(), {4, 5}), View<const float, 2>(w1.data(), {3, 5})};
  const std::array<View<float, 2>, 2> ys{View<float, 2>(a0.data(), {2, 4}), View<float, 2>(a1.data(), {2, 3})};
  kernels::matmul_fanout(backend::cpu{}, xv, std::span<const View<const float, 2>>(ws), std::span<const View<float, 2>>(ys));
  kernels::matmul(backend::cpu{}, xv, ws[0], View<float, 2>(b0.data(), {2, 4}));
  kernels::matmul(backend::cpu{}, xv, ws[1], View<float, 2>(b1.data(), {2, 3}));
  CHECK(a0 == b0);
  CHECK(a1 == b1);
}
