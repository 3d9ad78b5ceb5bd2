// Gated DeltaNet: the chunked delta rule equals the token-by-token recurrence (odd lengths, chunk
// boundaries, a state carried across passes), the layer equals a naive composition, and a batch
// of sequences equals each sequence alone.
#include <catch2/catch.hpp>

#include "layers_test_util.hpp"
#include "moe/layers/gated_delta_net.hpp"
#include "moe/layers/kv_cache.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

using namespace moe;
using layers_test::random_vec;

namespace {

const kernels::DeltaNetShape kShape{2, 4, 8, 6, 4};

struct Pass {
  std::vector<kernels::CacheSlot> slots;
  std::vector<std::int32_t> token_slot;
  kernels::PassSlots<host_memory> view() const {
    return {View<const kernels::CacheSlot, 1>(slots.data(), {slots.size()}),
            View<const std::int32_t, 1>(token_slot.data(), {token_slot.size()}), 0};
  }
};

// One pass over `lengths[i]` rows of cache i, rows in order.
Pass make_pass(std::vector<KvCache*> caches, const std::vector<index_t>& lengths) {
  Pass p;
  index_t row = 0;
  for (std::size_t i = 0; i < caches.size(); ++i) {
    p.slots.push_back(caches[i]->slot(row, lengths[i]));
    for (index_t t = 0; t < lengths[i]; ++t) p.token_slot.push_back(static_cast<std::int32_t>(i));
    row += lengths[i];
  }
  return p;
}

KvCache delta_cache(const kernels::DeltaNetShape& d) {
  return KvCache({KvLayerShape{0, 0, d.state_floats()}}, 512);
}

// Inputs of the rule for n tokens: L2-normalised q, k; v; g < 0; beta in (0, 1).
struct RuleInputs {
  std::vector<float> qkv, g, beta;
};
RuleInputs rule_inputs(const kernels::DeltaNetShape& d, index_t n, std::mt19937& rng) {
  RuleInputs in{random_vec(n * d.conv_dim(), rng), random_vec(n * d.n_v_heads, rng), random_vec(n * d.n_v_heads, rng)};
  View<float, 2> qkv(in.qkv.data(), {n, d.conv_dim()}), beta(in.beta.data(), {n, d.n_v_heads}),
      g(in.g.data(), {n, d.n_v_heads});
  const std::vector<float> a_log(d.n_v_heads, -1.0f), dt(d.n_v_heads, 0.5f);
  kernels::delta_net_gates(backend::reference{}, d, qkv, beta, g, View<const float, 1>(a_log.data(), {d.n_v_heads}),
                           View<const float, 1>(dt.data(), {d.n_v_heads}));
  return in;
}

// Runs the rule over rows [r0, r1) of `in` for one cache in the given form; out rows [r0, r1).
void run_rule(kernels::DeltaNetShape d, kernels::DeltaRuleForm form, KvCache& cache, const RuleInputs& in, index_t r0,
              index_t r1, std::vector<float>& out) {
  d.form = form;
  std::vector<float> scratch(d.chunk_scratch());
  const Pass p = make_pass({&cache}, {r1 - r0});
  const index_t n = r1 - r0;
  kernels::gated_delta_rule(backend::reference{}, d, p.view(), cache.layer(0),
                            View<const float, 2>(in.qkv.data() + r0 * d.conv_dim(), {n, d.conv_dim()}),
                            View<const float, 2>(in.g.data() + r0 * d.n_v_heads, {n, d.n_v_heads}),
                            View<const float, 2>(in.beta.data() + r0 * d.n_v_heads, {n, d.n_v_heads}),
                            View<float, 2>(out.data() + r0 * d.value_dim(), {n, d.value_dim()}),
                            View<float, 1>(scratch.data(), {scratch.size()}));
  cache.append(n);
}

std::vector<float> state_of(const KvCache& cache, const kernels::DeltaNetShape& d) {
  KvCache& c = const_cast<KvCache&>(cache);
  const kernels::CacheSlot s = c.slot(0, 1);
  return std::vector<float>(s.state, s.state + d.state_floats());
}

}  // namespace

TEST_CASE("chunked gated delta rule equals the recurrence", "[layers][delta_net]") {
  std::mt19937 rng(7);
  for (const index_t n : {index_t{1}, index_t{5}, index_t{63}, index_t{64}, index_t{65}, index_t{130}}) {
    const RuleInputs in = rule_inputs(kShape, n, rng);
    std::vector<float> chunked(n * kShape.value_dim()), recurrent(chunked.size()), split(chunked.size());
    KvCache a = delta_cache(kShape), b = delta_cache(kShape), c = delta_cache(kShape);
    run_rule(kShape, kernels::DeltaRuleForm::kChunked, a, in, 0, n, chunked);
    for (index_t t = 0; t < n; ++t) run_rule(kShape, kernels::DeltaRuleForm::kRecurrent, b, in, t, t + 1, recurrent);
    // A prefix chunked, then one token at a time, then the rest chunked (state carried across passes).
    const index_t p1 = n / 2, p2 = std::min(n, p1 + 3);
    if (p1 > 0) run_rule(kShape, kernels::DeltaRuleForm::kAuto, c, in, 0, p1, split);
    for (index_t t = p1; t < p2; ++t) run_rule(kShape, kernels::DeltaRuleForm::kAuto, c, in, t, t + 1, split);
    if (p2 < n) run_rule(kShape, kernels::DeltaRuleForm::kAuto, c, in, p2, n, split);
    for (std::size_t i = 0; i < chunked.size(); ++i) {
      INFO("n " << n << " element " << i);
      REQUIRE(chunked[i] == Approx(recurrent[i]).margin(2e-5));
      REQUIRE(split[i] == Approx(recurrent[i]).margin(2e-5));
    }
    const auto sa = state_of(a, kShape), sb = state_of(b, kShape), sc = state_of(c, kShape);
    for (index_t i = 0; i < kShape.recurrent_floats(); ++i) {
      REQUIRE(sa[i] == Approx(sb[i]).margin(2e-5));
      REQUIRE(sc[i] == Approx(sb[i]).margin(2e-5));
    }
  }
}

namespace {

struct LayerFixture {
  kernels::DeltaNetShape d = kShape;
  index_t D = 12;
  std::vector<float> qkv_w, z_w, b_w, a_w, out_w, conv_w, a_log, dt_bias, norm;
  layers::GatedDeltaNetWeights<> w;

  explicit LayerFixture(std::mt19937& rng) {
    const float s = 1.0f / std::sqrt(static_cast<float>(D));
    qkv_w = random_vec(d.conv_dim() * D, rng, s), z_w = random_vec(d.value_dim() * D, rng, s);
    b_w = random_vec(d.n_v_heads * D, rng, s), a_w = random_vec(d.n_v_heads * D, rng, s);
    out_w = random_vec(D * d.value_dim(), rng, 0.3f), conv_w = random_vec(d.conv_dim() * d.conv_kernel, rng, 0.5f);
    a_log = random_vec(d.n_v_heads, rng, 0.5f), dt_bias = random_vec(d.n_v_heads, rng, 0.5f);
    norm = random_vec(d.v_head_dim, rng, 0.1f);
    for (auto& x : norm) x += 1.0f;
    const auto m = [](const std::vector<float>& v, index_t r, index_t c) {
      return layers::WeightMatrix<>{DType::f32, reinterpret_cast<const std::byte*>(v.data()), r, c, c};
    };
    const auto vec = [](const std::vector<float>& v) {
      return layers::WeightVector<>{DType::f32, reinterpret_cast<const std::byte*>(v.data()), v.size()};
    };
    w.qkv = m(qkv_w, d.conv_dim(), D), w.z = m(z_w, d.value_dim(), D), w.b = m(b_w, d.n_v_heads, D);
    w.a = m(a_w, d.n_v_heads, D), w.out = m(out_w, D, d.value_dim()), w.conv = m(conv_w, d.conv_dim(), d.conv_kernel);
    w.a_log = vec(a_log), w.dt_bias = vec(dt_bias), w.norm = vec(norm);
  }

  // The layer's forward over several sequences at once; x rows in sequence order.
  void forward(std::vector<KvCache*> caches, const std::vector<index_t>& lengths, const std::vector<float>& x,
               std::vector<float>& out) const {
    index_t n = 0;
    for (const auto l : lengths) n += l;
    std::vector<float> mixed(n * d.conv_dim()), qkv(mixed.size()), z(n * d.value_dim()), o(z.size()),
        beta(n * d.n_v_heads), g(beta.size()), chunk(d.chunk_scratch());
    const layers::GatedDeltaNetScratch<backend::reference> s{
        View<float, 2>(mixed.data(), {n, d.conv_dim()}), View<float, 2>(qkv.data(), {n, d.conv_dim()}),
        View<float, 2>(z.data(), {n, d.value_dim()}),    View<float, 2>(o.data(), {n, d.value_dim()}),
        View<float, 2>(beta.data(), {n, d.n_v_heads}),   View<float, 2>(g.data(), {n, d.n_v_heads}),
        View<float, 1>(chunk.data(), {chunk.size()})};
    const Pass p = make_pass(caches, lengths);
    out.assign(n * D, 0.0f);
    layers::gated_delta_net_forward(backend::reference{}, d, 1e-6f, w, p.view(), caches[0]->layer(0),
                                    View<const float, 2>(x.data(), {n, D}), s, View<float, 2>(out.data(), {n, D}));
    for (std::size_t i = 0; i < caches.size(); ++i) caches[i]->append(lengths[i]);
  }

  // The naive composition over one whole sequence, in double: projections, conv over zero
  // padding, SiLU, L2 norm, gates, the recurrence, the gated norm, the output projection.
  std::vector<double> naive(const std::vector<float>& x, index_t n) const {
    const index_t C = d.conv_dim(), Vd = d.value_dim(), nv = d.n_v_heads, dk = d.k_head_dim, dv = d.v_head_dim;
    const auto proj = [&](const std::vector<float>& W, index_t rows, index_t t, index_t r) {
      double acc = 0;
      for (index_t i = 0; i < D; ++i) acc += static_cast<double>(W[r * D + i]) * x[t * D + i];
      (void)rows;
      return acc;
    };
    const auto silu = [](double v) { return v / (1 + std::exp(-v)); };
    std::vector<double> mixed(n * C), conv(n * C);
    for (index_t t = 0; t < n; ++t)
      for (index_t c = 0; c < C; ++c) mixed[t * C + c] = proj(qkv_w, C, t, c);
    for (index_t t = 0; t < n; ++t)
      for (index_t c = 0; c < C; ++c) {
        double acc = 0;
        for (index_t j = 0; j < d.conv_kernel; ++j) {
          const std::int64_t tau = static_cast<std::int64_t>(t) - (d.conv_kernel - 1 - j);
          if (tau >= 0) acc += conv_w[c * d.conv_kernel + j] * mixed[tau * C + c];
        }
        conv[t * C + c] = silu(acc);
      }
    for (index_t t = 0; t < n; ++t)
      for (index_t h = 0; h < 2 * d.n_k_heads; ++h) {
        double ss = 0;
        for (index_t i = 0; i < dk; ++i) ss += conv[t * C + h * dk + i] * conv[t * C + h * dk + i];
        const double f = (h < d.n_k_heads ? 1.0 / std::sqrt(static_cast<double>(dk)) : 1.0) / std::sqrt(ss + 1e-6);
        for (index_t i = 0; i < dk; ++i) conv[t * C + h * dk + i] *= f;
      }
    std::vector<double> S(nv * dk * dv, 0.0), o(n * Vd);
    for (index_t t = 0; t < n; ++t)
      for (index_t h = 0; h < nv; ++h) {
        const index_t kh = h / (nv / d.n_k_heads);
        const double beta = 1 / (1 + std::exp(-proj(b_w, nv, t, h)));
        const double av = proj(a_w, nv, t, h) + dt_bias[h];
        const double g = -std::exp(static_cast<double>(a_log[h])) * (av > 20 ? av : std::log1p(std::exp(av)));
        const double* q = &conv[t * C + kh * dk];
        const double* k = &conv[t * C + d.key_dim() + kh * dk];
        const double* v = &conv[t * C + 2 * d.key_dim() + h * dv];
        double* Sh = &S[h * dk * dv];
        for (index_t i = 0; i < dk * dv; ++i) Sh[i] *= std::exp(g);
        for (index_t j = 0; j < dv; ++j) {
          double kv = 0;
          for (index_t i = 0; i < dk; ++i) kv += Sh[i * dv + j] * k[i];
          const double delta = (v[j] - kv) * beta;
          for (index_t i = 0; i < dk; ++i) Sh[i * dv + j] += k[i] * delta;
        }
        double ss = 0;
        for (index_t j = 0; j < dv; ++j) {
          double acc = 0;
          for (index_t i = 0; i < dk; ++i) acc += Sh[i * dv + j] * q[i];
          o[t * Vd + h * dv + j] = acc;
          ss += acc * acc;
        }
        const double inv = 1 / std::sqrt(ss / dv + 1e-6);
        for (index_t j = 0; j < dv; ++j) {
          o[t * Vd + h * dv + j] *= inv * norm[j] * silu(proj(z_w, Vd, t, h * dv + j));
        }
      }
    std::vector<double> y(n * D);
    for (index_t t = 0; t < n; ++t)
      for (index_t r = 0; r < D; ++r) {
        double acc = 0;
        for (index_t i = 0; i < Vd; ++i) acc += out_w[r * Vd + i] * o[t * Vd + i];
        y[t * D + r] = acc;
      }
    return y;
  }
};

}  // namespace

TEST_CASE("Gated DeltaNet layer equals the naive composition, split or whole", "[layers][delta_net]") {
  std::mt19937 rng(11);
  const LayerFixture f(rng);
  const index_t n = 70;  // crosses a chunk boundary
  const auto x = random_vec(n * f.D, rng);
  const auto ref = f.naive(x, n);
  KvCache whole = delta_cache(f.d), split = delta_cache(f.d);
  std::vector<float> out_whole, part, out_split;
  f.forward({&whole}, {n}, x, out_whole);
  // 3 tokens, 1, 1, then 65: the conv state and the recurrent state carry over each pass.
  index_t at = 0;
  for (const index_t len : {index_t{3}, index_t{1}, index_t{1}, index_t{65}}) {
    const std::vector<float> xs(x.begin() + at * f.D, x.begin() + (at + len) * f.D);
    f.forward({&split}, {len}, xs, part);
    out_split.insert(out_split.end(), part.begin(), part.end());
    at += len;
  }
  for (std::size_t i = 0; i < ref.size(); ++i) {
    INFO("element " << i);
    REQUIRE(out_whole[i] == Approx(ref[i]).margin(1e-4));
    REQUIRE(out_split[i] == Approx(ref[i]).margin(1e-4));
  }
}

TEST_CASE("Gated DeltaNet: a batch equals each sequence alone", "[layers][delta_net]") {
  std::mt19937 rng(5);
  const LayerFixture f(rng);
  const std::vector<index_t> prompt{9, 1, 66}, step{1, 1, 1};
  std::vector<KvCache> alone, batched;
  for (int i = 0; i < 3; ++i) alone.push_back(delta_cache(f.d)), batched.push_back(delta_cache(f.d));
  for (const auto& lengths : {prompt, step, step}) {
    index_t n = 0;
    for (const auto l : lengths) n += l;
    const auto x = random_vec(n * f.D, rng);
    std::vector<float> out_batch, out_one;
    f.forward({&batched[0], &batched[1], &batched[2]}, lengths, x, out_batch);
    index_t at = 0;
    for (int i = 0; i < 3; ++i) {
      const std::vector<float> xs(x.begin() + at * f.D, x.begin() + (at + lengths[i]) * f.D);
      f.forward({&alone[i]}, {lengths[i]}, xs, out_one);
      for (std::size_t e = 0; e < out_one.size(); ++e) REQUIRE(out_batch[at * f.D + e] == out_one[e]);
      at += lengths[i];
    }
  }
}

TEST_CASE("a cache with DeltaNet state rewinds only to 0 or its size", "[layers][delta_net]") {
  KvCache c({KvLayerShape{4, 4, 0}, KvLayerShape{0, 0, kShape.state_floats()}}, 8);
  c.append(5);
  REQUIRE_NOTHROW(c.truncate(5));
  REQUIRE_THROWS_AS(c.truncate(3), moe::Error);
  REQUIRE_NOTHROW(c.truncate(0));
}
