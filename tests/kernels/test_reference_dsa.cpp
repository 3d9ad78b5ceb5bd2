// DeepSeek sparse attention's reference kernels (kernels/reference/dsa.hpp): the lightning
// indexer's score against the formula written out as a naive loop, the top-k selection against a
// naive sort on rows without ties, and dsa_select over a pass of several sequences (causal, every
// row's own context only).
#include <moe/kernels/kernels.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <random>
#include <set>
#include <vector>

using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

namespace {

std::vector<float> dsa_random(std::size_t n, std::mt19937& g, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// index = Σ_h (w_h · H^-½) · relu(q_h·k · D^-½), in double.
double dsa_naive_score(index_t H, index_t D, const float* q, const float* w, const float* k) {
  double acc = 0.0;
  for (index_t h = 0; h < H; ++h) {
    double dot = 0.0;
    for (index_t i = 0; i < D; ++i) dot += static_cast<double>(q[h * D + i]) * k[i];
    const double s = dot / std::sqrt(static_cast<double>(D));
    acc += static_cast<double>(w[h]) / std::sqrt(static_cast<double>(H)) * std::max(s, 0.0);
  }
  return acc;
}

// The top_k positions among the first `count` scores, by score descending (positions ascending
// on ties, which the rows below never have), listed ascending and padded with -1 to top_k.
std::vector<std::int32_t> dsa_naive_top(const std::vector<float>& score, index_t count, index_t top_k) {
  std::vector<std::pair<float, std::int32_t>> p;
  for (index_t j = 0; j < count; ++j) p.emplace_back(score[j], static_cast<std::int32_t>(j));
  std::sort(p.begin(), p.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::int32_t> out;
  for (index_t i = 0; i < std::min(top_k, count); ++i) out.push_back(p[i].second);
  std::sort(out.begin(), out.end());
  out.resize(top_k, -1);
  return out;
}

// n distinct scores in one of several layouts (random, sorted either way, organ pipe, many
// negative): no two equal, so the selection is unique and any correct algorithm agrees.
std::vector<float> dsa_distinct_scores(index_t n, int layout, std::mt19937& g) {
  std::vector<float> v(n);
  for (index_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) * 0.25f - static_cast<float>(n) * 0.2f;
  switch (layout) {
    case 0: std::shuffle(v.begin(), v.end(), g); break;
    case 1: break;  // ascending
    case 2: std::reverse(v.begin(), v.end()); break;
    case 3:  // organ pipe: ascending to the middle, then descending
      std::sort(v.begin(), v.end());
      std::reverse(v.begin() + n / 2, v.end());
      break;
    default: {  // random floats (checked distinct), mostly negative
      v = dsa_random(n, g, -5.0f, 0.5f);
      std::vector<float> s = v;
      std::sort(s.begin(), s.end());
      REQUIRE(std::adjacent_find(s.begin(), s.end()) == s.end());
    }
  }
  return v;
}

}  // namespace

TEST_CASE("reference dsa_index_score: the indexer formula against a naive loop", "[reference][dsa]") {
  std::mt19937 g(31);
  const std::pair<index_t, index_t> shapes[] = {{1, 1}, {1, 8}, {3, 5}, {4, 16}, {8, 64}, {7, 33}};
  for (const auto& [H, D] : shapes) {
    INFO("heads " << H << " head_dim " << D);
    const kernels::DsaShape d{H, D, 4};
    for (int trial = 0; trial < 20; ++trial) {
      const auto q = dsa_random(H * D, g), w = dsa_random(H, g, -2.0f, 2.0f), k = dsa_random(D, g);
      const double want = dsa_naive_score(H, D, q.data(), w.data(), k.data());
      double bound = 0.0;  // Σ_h |w_h|·Σ_i |q_i k_i|, scaled: what the f32 rounding is relative to
      for (index_t h = 0; h < H; ++h) {
        double s = 0.0;
        for (index_t i = 0; i < D; ++i) s += std::fabs(static_cast<double>(q[h * D + i]) * k[i]);
        bound += std::fabs(w[h]) * s;
      }
      bound /= std::sqrt(static_cast<double>(H * D));
      const float got = kernels::detail::dsa_index_score(d, q.data(), w.data(), k.data());
      CHECK(std::fabs(got - want) <= 2e-5 * bound + 1e-7);  // f32 dot products of <= 64 terms
    }
  }
  // relu: a head whose dot product is negative contributes nothing, whatever its weight.
  const kernels::DsaShape d{2, 2, 1};
  const std::vector<float> q = {1.0f, 0.0f, -1.0f, 0.0f}, w = {0.5f, -100.0f}, k = {2.0f, 7.0f};
  CHECK(kernels::detail::dsa_index_score(d, q.data(), w.data(), k.data()) ==
        Approx(0.5 / std::sqrt(2.0) * 2.0 / std::sqrt(2.0)));
  const std::vector<float> w_neg = {-3.0f, 4.0f}, k_neg = {-2.0f, 1.0f};
  // head 0: -2/√2 -> 0; head 1: 2/√2 · 4/√2
  CHECK(kernels::detail::dsa_index_score(d, q.data(), w_neg.data(), k_neg.data()) == Approx(4.0));
}

TEST_CASE("reference dsa_top_positions: the top_k of rows without ties, causal, -1 padded", "[reference][dsa]") {
  std::mt19937 g(77);
  std::vector<kernels::detail::DsaPair> scratch;
  for (const index_t total : {index_t{1}, index_t{7}, index_t{33}, index_t{300}}) {
    for (const index_t top_k : {index_t{1}, index_t{4}, index_t{64}, total, total + 5}) {
      for (int layout = 0; layout < 5; ++layout) {
        const auto score = dsa_distinct_scores(total, layout, g);
        // count: the row's causal positions (the pass holds `total` keys; the rest are masked).
        for (const index_t count : {total, (total + 1) / 2, index_t{1}}) {
          INFO("row of " << total << ", " << count << " causal, top " << top_k << ", layout " << layout);
          std::vector<std::int32_t> got(top_k, 12345);
          kernels::detail::dsa_top_positions(scratch, score, count, total, top_k, got.data());
          CHECK(got == dsa_naive_top(score, count, top_k));
          for (const auto p : got) CHECK(p < static_cast<std::int32_t>(count));  // never past its own position
        }
      }
    }
  }
}

TEST_CASE("reference dsa_select: every row's top_k among its own causal context, over several sequences",
          "[reference][dsa]") {
  std::mt19937 g(5);
  const index_t H = 3, D = 8, cap = 64;
  const index_t KW = 2, VW = 1;  // the layer's latent / rope widths (unused here, but the index keys follow them)
  struct Seq {
    index_t start, n;
  };
  const Seq seqs[] = {{0, 9}, {20, 1}, {5, 4}, {40, 7}};
  for (const index_t top_k : {index_t{1}, index_t{4}, index_t{16}, index_t{64}}) {
    INFO("top " << top_k);
    std::vector<std::vector<float>> storage;
    std::vector<kernels::CacheSlot> slots;
    std::vector<std::int32_t> token_slot;
    const kernels::CacheLayer layer{0, KW, VW, 0, 0, D};
    index_t n = 0;
    for (std::size_t i = 0; i < std::size(seqs); ++i) {
      storage.push_back(dsa_random(cap * (KW + VW + D), g));  // earlier positions: keys stored by earlier passes
      kernels::CacheSlot s;
      s.data = storage.back().data(), s.capacity = cap, s.start = seqs[i].start;
      s.row0 = static_cast<std::int32_t>(n), s.n = static_cast<std::int32_t>(seqs[i].n);
      slots.push_back(s);
      for (index_t t = 0; t < seqs[i].n; ++t) token_slot.push_back(static_cast<std::int32_t>(i));
      n += seqs[i].n;
    }
    const kernels::PassSlots<moe::host_memory> pass{
        View<const kernels::CacheSlot, 1>(slots.data(), {slots.size()}),
        View<const std::int32_t, 1>(token_slot.data(), {token_slot.size()}), 47};
    const auto q = dsa_random(n * H * D, g), w = dsa_random(n * H, g, -1.0f, 1.0f), k = dsa_random(n * D, g);
    kernels::append_index_keys(backend::reference{}, pass, layer, View<const float, 2>(k.data(), {n, D}));
    std::vector<std::int32_t> sel(n * top_k, 999);
    const kernels::DsaShape d{H, D, top_k};
    kernels::dsa_select(backend::reference{}, d, pass, layer, View<const float, 2>(q.data(), {n, H * D}),
                        View<const float, 2>(w.data(), {n, H}), View<std::int32_t, 2>(sel.data(), {n, top_k}));
    for (std::size_t i = 0; i < std::size(seqs); ++i) {
      const float* keys = storage[i].data() + cap * (KW + VW);
      for (index_t j = 0; j < seqs[i].n; ++j) {
        const index_t t = slots[i].row0 + j, pos = seqs[i].start + j;
        INFO("sequence " << i << " row " << t << " at position " << pos);
        for (index_t c = 0; c < D; ++c) REQUIRE(keys[pos * D + c] == k[t * D + c]);  // the appended key
        std::vector<double> score(pos + 1);
        for (index_t p = 0; p <= pos; ++p) score[p] = dsa_naive_score(H, D, &q[t * H * D], &w[t * H], keys + p * D);
        const index_t want = std::min(top_k, pos + 1);
        const std::int32_t* row = &sel[t * top_k];
        std::set<std::int32_t> chosen;
        for (index_t c = 0; c < top_k; ++c) {
          if (c < want) {
            REQUIRE(row[c] >= 0);
            REQUIRE(row[c] <= static_cast<std::int32_t>(pos));  // causal
            if (c > 0) REQUIRE(row[c] > row[c - 1]);              // ascending, distinct
            chosen.insert(row[c]);
          } else {
            REQUIRE(row[c] == -1);
          }
        }
        // A top set: nothing left out scores above anything chosen (ties, e.g. relu's zeros, may
        // go either way, so the test allows only rounding between the two).
        double min_in = std::numeric_limits<double>::infinity(), max_out = -min_in;
        for (index_t p = 0; p <= pos; ++p) {
          if (chosen.count(static_cast<std::int32_t>(p))) min_in = std::min(min_in, score[p]);
          else max_out = std::max(max_out, score[p]);
        }
        CHECK(max_out <= min_in + 1e-6);
      }
    }
    // A selection of the wrong width, index keys of the wrong width: typed errors.
    std::vector<std::int32_t> narrow(n * 2);
    if (top_k != 2) {
      CHECK_THROWS_AS(kernels::dsa_select(backend::reference{}, d, pass, layer, View<const float, 2>(q.data(), {n, H * D}),
                                          View<const float, 2>(w.data(), {n, H}),
                                          View<std::int32_t, 2>(narrow.data(), {n, 2})),
                      moe::Error);
    }
    kernels::CacheLayer wrong = layer;
    wrong.index_width = D + 1;
    CHECK_THROWS_AS(kernels::dsa_select(backend::reference{}, d, pass, wrong, View<const float, 2>(q.data(), {n, H * D}),
                                        View<const float, 2>(w.data(), {n, H}),
                                        View<std::int32_t, 2>(sel.data(), {n, top_k})),
                    moe::Error);
  }
}
