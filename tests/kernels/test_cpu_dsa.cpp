// DeepSeek sparse attention on cpu_simd (kernels/cpu/dsa.hpp) against the reference: the
// selection is bitwise the reference's and the sparse MLA within 1e-6 of it (vector dot products)
// over a pass of several sequences (a prefill of more rows than one scoring block, a decode row
// against a context of several key chunks, ties from relu's zeros), whatever the thread count; a
// selection listing a later position is a typed error, as on the reference.
#include <moe/kernels/kernels.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <iterator>
#include <random>
#include <span>
#include <vector>

using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

namespace {

std::vector<float> uniform(std::size_t n, std::mt19937& g, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

struct Pass {
  std::vector<std::vector<float>> storage;
  std::vector<kernels::CacheSlot> slots;
  std::vector<std::int32_t> token_slot;
  index_t n = 0;
  kernels::PassSlots<moe::host_memory> view() const {
    return {View<const kernels::CacheSlot, 1>(slots.data(), {slots.size()}),
            View<const std::int32_t, 1>(token_slot.data(), {token_slot.size()}), 0};
  }
};

struct Seq {
  index_t start, n;
};

// Caches of `width` floats per token holding random earlier tokens, one slot per sequence.
Pass make_pass(std::span<const Seq> seqs, index_t cap, index_t width, std::mt19937& g, float lo, float hi) {
  Pass p;
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    p.storage.push_back(uniform(static_cast<std::size_t>(cap * width), g, lo, hi));
    kernels::CacheSlot s;
    s.data = p.storage.back().data(), s.capacity = cap, s.start = seqs[i].start;
    s.row0 = static_cast<std::int32_t>(p.n), s.n = static_cast<std::int32_t>(seqs[i].n);
    p.slots.push_back(s);
    for (index_t t = 0; t < seqs[i].n; ++t) p.token_slot.push_back(static_cast<std::int32_t>(i));
    p.n += seqs[i].n;
  }
  return p;
}

}  // namespace

TEST_CASE("cpu dsa_select equals the reference bitwise, cached_sparse_mla_attention within 1e-6", "[cpu][dsa]") {
  std::mt19937 g(2027);
  const index_t H = 4, D = 16, R = 12, nope = 8, rope = 6, cap = 1400;
  const kernels::CacheLayer layer{0, R, rope, 0, 0, D};
  // 70 prefill rows (two scoring blocks), one decode row at position 1300 (six key chunks), a
  // short sequence, a row with a single causal position.
  const Seq seqs[] = {{0, 70}, {1300, 1}, {40, 5}, {0, 1}};
  for (const bool ties : {false, true}) {
    // ties: keys mostly opposite to the queries, so many relu(q·k) are exactly 0 and equal scores.
    Pass pass = make_pass(seqs, cap, R + rope + D, g, -1.0f, ties ? 0.05f : 1.0f);
    const index_t n = pass.n;
    const auto q = uniform(n * H * D, g, ties ? 0.0f : -1.0f, 1.0f);
    const auto w = uniform(n * H, g, -1.0f, 1.0f);
    const auto k = uniform(n * D, g, -1.0f, ties ? 0.05f : 1.0f);
    kernels::append_index_keys(backend::reference{}, pass.view(), layer, View<const float, 2>(k.data(), {n, D}));
    for (const index_t top_k : {index_t{1}, index_t{32}, index_t{2048}}) {
      INFO("top " << top_k << (ties ? ", with ties" : ""));
      const kernels::DsaShape d{H, D, top_k};
      std::vector<std::int32_t> want(n * top_k, 7), got(n * top_k, 9);
      kernels::dsa_select(backend::reference{}, d, pass.view(), layer, View<const float, 2>(q.data(), {n, H * D}),
                          View<const float, 2>(w.data(), {n, H}), View<std::int32_t, 2>(want.data(), {n, top_k}));
      kernels::dsa_select(backend::cpu{}, d, pass.view(), layer, View<const float, 2>(q.data(), {n, H * D}),
                          View<const float, 2>(w.data(), {n, H}), View<std::int32_t, 2>(got.data(), {n, top_k}));
      REQUIRE(got == want);

      const kernels::MlaShape m{H, R, nope, rope, 8, 0.3f};
      const auto qm = uniform(n * H * (nope + rope), g, -1.0f, 1.0f), ql = uniform(n * H * R, g, -1.0f, 1.0f);
      std::vector<float> out_ref(n * H * R, 1.0f), out_cpu(n * H * R, 2.0f);
      const View<const float, 2> qv(qm.data(), {n, H * (nope + rope)}), qlv(ql.data(), {n, H * R});
      const View<const std::int32_t, 2> sv(want.data(), {n, top_k});
      kernels::cached_sparse_mla_attention(backend::reference{}, m, pass.view(), layer, qv, qlv, sv,
                                           View<float, 2>(out_ref.data(), {n, H * R}));
      kernels::cached_sparse_mla_attention(backend::cpu{}, m, pass.view(), layer, qv, qlv, sv,
                                           View<float, 2>(out_cpu.data(), {n, H * R}));
      for (std::size_t i = 0; i < out_ref.size(); ++i) REQUIRE(out_cpu[i] == Approx(out_ref[i]).margin(1e-6));
    }
  }
  // A selection naming a position after the row's own: the reference's typed error, before any work.
  Pass pass = make_pass(std::span<const Seq>(seqs, 1), cap, R + rope + D, g, -1.0f, 1.0f);
  const index_t n = pass.n, top_k = 2;
  std::vector<std::int32_t> sel(n * top_k, -1);
  sel[3 * top_k] = 0, sel[3 * top_k + 1] = 5;  // row 3 (position 3) selects position 5
  const kernels::MlaShape m{H, R, nope, rope, 8, 0.3f};
  const auto qm = uniform(n * H * (nope + rope), g, -1.0f, 1.0f), ql = uniform(n * H * R, g, -1.0f, 1.0f);
  std::vector<float> out(n * H * R);
  CHECK_THROWS_WITH(kernels::cached_sparse_mla_attention(
                        backend::cpu{}, m, pass.view(), layer, View<const float, 2>(qm.data(), {n, H * (nope + rope)}),
                        View<const float, 2>(ql.data(), {n, H * R}), View<const std::int32_t, 2>(sel.data(), {n, top_k}),
                        View<float, 2>(out.data(), {n, H * R})),
                    Catch::Contains("row 3 at position 3 selects position 5"));
}
