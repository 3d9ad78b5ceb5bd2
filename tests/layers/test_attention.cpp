// The attention kernels of both host backends (reference and cpu) against a naive two-pass
// softmax (GQA, sliding window, chunked attention, sinks), and MLA's absorbed latent attention against the
// expanded (naive) form transformers computes.
#include "layers_test_util.hpp"

#include <catch2/catch.hpp>

#include <moe/layers/attention.hpp>
#include <moe/layers/mla.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>
#include <vector>

using namespace moe;
using namespace moe::layers;
using layers_test::random_vec;

namespace {

// softmax over logits (plus an optional sink logit in the denominator) applied to value rows.
std::vector<double> naive_attend(const std::vector<double>& logits, const std::vector<std::vector<double>>& values,
                                 bool has_sink, double sink) {
  double mx = has_sink ? sink : -1e300;
  for (double l : logits) mx = std::max(mx, l);
  double sum = has_sink ? std::exp(sink - mx) : 0.0;
  for (double l : logits) sum += std::exp(l - mx);
  std::vector<double> out(values.empty() ? 0 : values[0].size(), 0.0);
  for (std::size_t j = 0; j < logits.size(); ++j) {
    const double p = std::exp(logits[j] - mx) / sum;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] += p * values[j][i];
  }
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("attention: GQA, causal, sliding window, chunks and sinks against a naive softmax", "[attention]",
                   backend::reference, backend::cpu) {
  std::mt19937 g(5);
  // (heads, kv heads, head dim, value dim): dims below, at and across the vector width, groups of
  // 3 (cpu: 2 + 1 heads per item) and 12 (8 + 4), MQA.
  struct Dims {
    index_t H, KV, hd, vd;
  };
  for (const Dims& d : {Dims{6, 2, 8, 5}, Dims{24, 2, 40, 36}, Dims{3, 1, 128, 64}}) {
    const index_t H = d.H, KV = d.KV, hd = d.hd, vd = d.vd, ctx = 150, start = 70, n = ctx - start;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const auto q = random_vec(n * H * hd, g), k = random_vec(ctx * KV * hd, g), v = random_vec(ctx * KV * vd, g);
    const auto sinks = random_vec(H, g);
    // (window, chunk): Llama 4's chunked attention sees only keys of the query's own chunk.
    const std::pair<index_t, index_t> masks[] = {{0, 0}, {9, 0}, {100, 0}, {0, 16}, {0, 64}, {20, 32}};
    for (const auto& [window, chunk] : masks) {
      for (bool use_sinks : {false, true}) {
        INFO("heads " << H << "/" << KV << " dims " << hd << "/" << vd << " window " << window << " chunk " << chunk
                      << " sinks " << use_sinks);
        AttentionShape a{H, KV, hd, vd, scale, window, chunk};
        Tensor<float, 2> out({n, H * vd});
        const View<const float, 2> keys(k.data(), {ctx, KV * hd}), values(v.data(), {ctx, KV * vd});
        const View<const float, 1> sink_view(sinks.data(), {use_sinks ? H : 0});
        kernels::attention(TestType{}, a, View<const float, 2>(q.data(), {n, H * hd}), keys, values, start, sink_view,
                           out.view());
        for (index_t t = 0; t < n; t += 7) {
          for (index_t h = 0; h < H; ++h) {
            const index_t pos = start + t, kvh = h / (H / KV);
            std::vector<double> logits;
            std::vector<std::vector<double>> vals;
            for (index_t j = 0; j <= pos; ++j) {
              if (window > 0 && pos - j >= window) continue;
              if (chunk > 0 && j / chunk != pos / chunk) continue;
              double s = 0;
              for (index_t i = 0; i < hd; ++i) s += static_cast<double>(q[(t * H + h) * hd + i]) * k[(j * KV + kvh) * hd + i];
              logits.push_back(static_cast<double>(scale) * s);
              vals.emplace_back(v.begin() + (j * KV + kvh) * vd, v.begin() + (j * KV + kvh + 1) * vd);
            }
            const auto want = naive_attend(logits, vals, use_sinks, sinks[h]);
            for (index_t i = 0; i < vd; ++i) CHECK(out(t, h * vd + i) == Approx(want[i]).margin(2e-6));
          }
        }
        // A token's output does not depend on the tokens computed beside it: the last one alone.
        Tensor<float, 2> last({1, H * vd});
        kernels::attention(TestType{}, a, View<const float, 2>(q.data() + (n - 1) * H * hd, {1, H * hd}), keys, values,
                           ctx - 1, sink_view, last.view());
        CHECK(std::equal(last.data(), last.data() + H * vd, out.data() + (n - 1) * H * vd));
      }
    }
  }
}

TEMPLATE_TEST_CASE("MLA: absorbed latent attention equals the expanded keys and values", "[attention][mla]",
                   backend::reference, backend::cpu) {
  std::mt19937 g(9);
  // (heads, rank, nope, rope, v, scale), context, start: ranks below, across and past the vector
  // width, 12 heads (cpu: items of 8 + 4 heads), 16 heads (two items of 8), several key blocks.
  struct Case {
    MlaShape s;
    index_t ctx, start;
  };
  for (const Case& c : {Case{MlaShape{4, 12, 6, 4, 5, 0.25f}, 40, 33}, Case{MlaShape{12, 40, 8, 8, 6, 0.15f}, 150, 141},
                        Case{MlaShape{16, 128, 8, 16, 8, 0.08f}, 150, 144}}) {
    const MlaShape& s = c.s;
    const index_t ctx = c.ctx, start = c.start, n = ctx - start;
    INFO("heads " << s.n_heads << " rank " << s.kv_lora_rank << " rope " << s.rope);
    const auto kv_b = random_vec(s.n_heads * (s.nope + s.v) * s.kv_lora_rank, g, 0.4f);
    const View<const float, 2> w(kv_b.data(), {s.n_heads * (s.nope + s.v), s.kv_lora_rank});
    const auto q = random_vec(n * s.n_heads * s.qk(), g);
    const auto latent = random_vec(ctx * s.kv_lora_rank, g, 2.0f / std::sqrt(static_cast<float>(s.kv_lora_rank)));
    const auto k_rope = random_vec(ctx * s.rope, g);

    Tensor<float, 2> q_latent({n, s.n_heads * s.kv_lora_rank}), out_latent({n, s.n_heads * s.kv_lora_rank}),
        out({n, s.n_heads * s.v});
    View<const float, 2> qv(q.data(), {n, s.n_heads * s.qk()});
    const View<const float, 2> lat(latent.data(), {ctx, s.kv_lora_rank}), kr(k_rope.data(), {ctx, s.rope});
    kernels::mla_absorb_queries(TestType{}, s, w, qv, q_latent.view());
    kernels::mla_attention(TestType{}, s, qv, q_latent.view(), lat, kr, start, out_latent.view());
    kernels::mla_expand_values(TestType{}, s, w, View<const float, 2>(out_latent.view()), out.view());

    auto W = [&](index_t row, index_t col) { return static_cast<double>(kv_b[row * s.kv_lora_rank + col]); };
    for (index_t t = 0; t < n; ++t) {
      for (index_t h = 0; h < s.n_heads; ++h) {
        std::vector<double> logits;
        std::vector<std::vector<double>> vals;
        for (index_t j = 0; j <= start + t; ++j) {
          // Expanded key: [W_UK c_j, k_rope_j]; expanded value: W_UV c_j (transformers' kv_b_proj).
          double score = 0;
          for (index_t i = 0; i < s.nope; ++i) {
            double kn = 0;
            for (index_t r = 0; r < s.kv_lora_rank; ++r) kn += W(h * (s.nope + s.v) + i, r) * latent[j * s.kv_lora_rank + r];
            score += static_cast<double>(q[(t * s.n_heads + h) * s.qk() + i]) * kn;
          }
          for (index_t i = 0; i < s.rope; ++i) {
            score += static_cast<double>(q[(t * s.n_heads + h) * s.qk() + s.nope + i]) * k_rope[j * s.rope + i];
          }
          logits.push_back(s.scale * score);
          std::vector<double> val(s.v, 0.0);
          for (index_t i = 0; i < s.v; ++i) {
            for (index_t r = 0; r < s.kv_lora_rank; ++r) {
              val[i] += W(h * (s.nope + s.v) + s.nope + i, r) * latent[j * s.kv_lora_rank + r];
            }
          }
          vals.push_back(val);
        }
        const auto want = naive_attend(logits, vals, false, 0.0);
        for (index_t i = 0; i < s.v; ++i) CHECK(out(t, h * s.v + i) == Approx(want[i]).margin(1e-5));
      }
    }
    // A token's latent output does not depend on the tokens computed beside it: the last one alone.
    Tensor<float, 2> last({1, s.n_heads * s.kv_lora_rank});
    kernels::mla_attention(TestType{}, s, qv.slice(n - 1, n), View<const float, 2>(q_latent.view().slice(n - 1, n)), lat,
                           kr, ctx - 1, last.view());
    CHECK(std::equal(last.data(), last.data() + s.n_heads * s.kv_lora_rank,
                     out_latent.data() + (n - 1) * s.n_heads * s.kv_lora_rank));
  }
}
