// The sampler chain, stage by stage against hand-computed distributions, plus reproducibility,
// greedy = argmax, input validation and "no allocation per step".
#include <moe/runtime/sampler.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <vector>

#include "alloc_counter.hpp"

namespace {

using moe::Sampler;
using moe::SamplerConfig;

// Probability of `id` in a distribution (0 if absent).
float prob_of(std::span<const moe::TokenCandidate> d, std::int32_t id) {
  for (const auto& c : d) {
    if (c.id == id) return c.prob;
  }
  return 0.0f;
}

std::vector<float> softmax(const std::vector<double>& logits) {
  double m = -1e300, s = 0;
  for (double l : logits) m = std::max(m, l);
  std::vector<float> p;
  for (double l : logits) s += std::exp(l - m);
  for (double l : logits) p.push_back(static_cast<float>(std::exp(l - m) / s));
  return p;
}

SamplerConfig sampling(float temperature = 1.0f) {
  SamplerConfig c;
  c.temperature = temperature;
  return c;
}

}  // namespace

TEST_CASE("xoshiro256** matches an independent implementation of the published algorithm", "[sampler]") {
  // Reference values from a separate Python implementation of splitmix64 seeding + xoshiro256**.
  moe::Xoshiro256 rng(42);
  CHECK(rng.next() == 0x15780b2e0c2ec716ull);
  CHECK(rng.next() == 0x6104d9866d113a7eull);
  CHECK(rng.next() == 0xae17533239e499a1ull);
  CHECK(rng.next() == 0xecb8ad4703b360a1ull);
  for (int i = 0; i < 1000; ++i) {
    const double u = rng.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
  }
}

TEST_CASE("repetition penalty follows HF: positive logits divided, negative multiplied", "[sampler]") {
  std::vector<float> logits{2.0f, -2.0f, 1.0f, 0.5f, 0.0f};
  const std::array<std::int32_t, 3> seen{0, 1, 4};
  moe::sampling::apply_repetition_penalty(logits, seen, 2.0f);
  CHECK(logits == std::vector<float>{1.0f, -4.0f, 1.0f, 0.5f, 0.0f});

  // Through the Sampler: prompt tokens count, and the greedy pick moves away from them.
  SamplerConfig c;
  c.greedy = true;
  c.repetition_penalty = 2.0f;
  Sampler s(c, 4);
  const std::vector<float> l{3.0f, 2.0f, -1.0f, 1.0f};
  CHECK(s.sample(l) == 0);
  const std::array<std::int32_t, 1> prompt{0};
  s.add_prompt(prompt);  // 3 -> 1.5 < 2
  CHECK(s.sample(l) == 1);
  s.accept(1);  // 2 -> 1.0
  CHECK(s.sample(l) == 0);  // 1.5 is now the largest
}

TEST_CASE("presence and frequency penalties follow OpenAI and count generated tokens only", "[sampler]") {
  std::vector<float> logits{1.0f, 1.0f, 1.0f, 1.0f};
  std::vector<std::int32_t> counts{2, 0, 1, 0};
  const std::array<std::int32_t, 2> ids{0, 2};
  moe::sampling::apply_presence_frequency(logits, ids, counts, 0.5f, 0.25f);
  CHECK(logits[0] == Approx(1.0f - 2 * 0.25f - 0.5f));
  CHECK(logits[1] == 1.0f);
  CHECK(logits[2] == Approx(1.0f - 0.25f - 0.5f));
  CHECK(logits[3] == 1.0f);

  SamplerConfig c = sampling(1.0f);
  c.presence_penalty = 0.5f;
  c.frequency_penalty = 0.25f;
  Sampler s(c, 3);
  const std::array<std::int32_t, 3> prompt{0, 1, 2};
  s.add_prompt(prompt);  // no effect on presence/frequency
  const std::vector<float> l{0.0f, 0.0f, 0.0f};
  auto d = s.distribution(l);
  CHECK(prob_of(d, 0) == Approx(1.0f / 3));
  s.accept(0);
  s.accept(0);
  s.accept(1);
  d = s.distribution(l);
  const auto expect = softmax({-1.0, -0.75, 0.0});
  CHECK(prob_of(d, 0) == Approx(expect[0]));
  CHECK(prob_of(d, 1) == Approx(expect[1]));
  CHECK(prob_of(d, 2) == Approx(expect[2]));
  s.reset();  // forgets history
  d = s.distribution(l);
  CHECK(prob_of(d, 0) == Approx(1.0f / 3));
}

TEST_CASE("temperature scales logits before the softmax", "[sampler]") {
  Sampler s(sampling(2.0f), 4);
  const std::vector<float> l{1.0f, 2.0f, 3.0f, 4.0f};
  const auto d = s.distribution(l);
  REQUIRE(d.size() == 4);
  // softmax([0.5, 1, 1.5, 2]) by hand: e^x = 1.64872, 2.71828, 4.48169, 7.38906; sum 16.23775.
  CHECK(prob_of(d, 0) == Approx(0.101536).epsilon(1e-4));
  CHECK(prob_of(d, 1) == Approx(0.167406).epsilon(1e-4));
  CHECK(prob_of(d, 2) == Approx(0.276003).epsilon(1e-4));
  CHECK(prob_of(d, 3) == Approx(0.455055).epsilon(1e-4));
}

TEST_CASE("top-k keeps the k largest, ties broken by lower id", "[sampler]") {
  SamplerConfig c = sampling();
  c.top_k = 2;
  Sampler s(c, 5);
  const std::vector<float> l{1.0f, 3.0f, 2.0f, 3.0f, 0.0f};
  auto d = s.distribution(l);
  REQUIRE(d.size() == 2);
  CHECK(d[0].id == 1);
  CHECK(d[1].id == 3);
  CHECK(d[0].prob == Approx(0.5f));
  c.top_k = 3;
  Sampler s3(c, 5);
  d = s3.distribution(l);
  REQUIRE(d.size() == 3);
  const auto e = softmax({3, 3, 2});
  CHECK(prob_of(d, 1) == Approx(e[0]));
  CHECK(prob_of(d, 2) == Approx(e[2]));
  c.top_k = 1;  // top_k = 1 is greedy with the same tie rule
  Sampler s1(c, 5);
  for (int i = 0; i < 10; ++i) CHECK(s1.sample(l) == 1);
  c.top_k = 9;  // more than the vocabulary: no-op
  Sampler s9(c, 5);
  CHECK(s9.distribution(l).size() == 5);
}

TEST_CASE("top-p keeps the smallest prefix whose mass reaches p, including the crossing token", "[sampler]") {
  // Probabilities 0.5, 0.3, 0.15, 0.05 as log-probabilities, in shuffled id order.
  const std::vector<float> l{std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SamplerConfig c = sampling();
  c.top_p = 0.75f;  // 0.5 (<0.75, continue) + 0.3 -> stop: {1, 3}
  Sampler a(c, 4);
  auto d = a.distribution(l);
  REQUIRE(d.size() == 2);
  CHECK(prob_of(d, 1) == Approx(0.5 / 0.8));
  CHECK(prob_of(d, 3) == Approx(0.3 / 0.8));
  c.top_p = 0.85f;  // 0.8 < 0.85 -> also 0.15
  Sampler b(c, 4);
  d = b.distribution(l);
  REQUIRE(d.size() == 3);
  CHECK(prob_of(d, 0) == Approx(0.15 / 0.95));
  CHECK(prob_of(d, 2) == 0.0f);
  c.top_p = 0.1f;  // always at least one token
  Sampler t(c, 4);
  d = t.distribution(l);
  REQUIRE(d.size() == 1);
  CHECK(d[0].id == 1);
  CHECK(d[0].prob == Approx(1.0f));
}

TEST_CASE("min-p drops tokens below min_p times the top probability", "[sampler]") {
  const std::vector<float> l{std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SamplerConfig c = sampling();
  c.min_p = 0.2f;  // threshold 0.1: drops 0.05
  Sampler s(c, 4);
  const auto d = s.distribution(l);
  REQUIRE(d.size() == 3);
  CHECK(prob_of(d, 1) == Approx(0.5 / 0.95));
  CHECK(prob_of(d, 3) == Approx(0.3 / 0.95));
  CHECK(prob_of(d, 0) == Approx(0.15 / 0.95));
  CHECK(prob_of(d, 2) == 0.0f);
}

TEST_CASE("the stages compose in HF order: penalties, temperature, top-k, top-p, min-p", "[sampler]") {
  // logits 4, 3, 2, 1, 0 (ids 0..4); repetition penalty 2 on id 0 -> 2; temperature 0.5 ->
  // {4, 6, 4, 2, 0}; top-k 4 -> ids 1, 0, 2, 3 (0 before 2 on the tie); softmax of {6, 4, 4, 2}
  // = {0.7758, 0.1050, 0.1050, 0.0142}; top-p 0.95: mass before id 3 is 0.9858 -> drop id 3;
  // min-p 0.1 of the renormalized max 0.787 keeps the rest.
  SamplerConfig c = sampling(0.5f);
  c.repetition_penalty = 2.0f;
  c.top_k = 4;
  c.top_p = 0.95f;
  c.min_p = 0.1f;
  Sampler s(c, 5);
  const std::array<std::int32_t, 1> prompt{0};
  s.add_prompt(prompt);
  const std::vector<float> l{4, 3, 2, 1, 0};
  const auto d = s.distribution(l);
  const auto p4 = softmax({6, 4, 4, 2});  // ids 1, 0, 2, 3
  const float kept = p4[0] + p4[1] + p4[2];
  REQUIRE(d.size() == 3);
  CHECK(prob_of(d, 1) == Approx(p4[0] / kept));
  CHECK(prob_of(d, 0) == Approx(p4[1] / kept));
  CHECK(prob_of(d, 2) == Approx(p4[2] / kept));
  CHECK(prob_of(d, 3) == 0.0f);
  c.min_p = 0.15f;  // threshold 0.118 > 0.1065: only id 1 is left
  Sampler strict(c, 5);
  strict.add_prompt(prompt);
  const auto one = strict.distribution(l);
  REQUIRE(one.size() == 1);
  CHECK(one[0].id == 1);
}

TEST_CASE("greedy is argmax: lowest id among ties, NaN ignored, penalties applied", "[sampler]") {
  const std::vector<float> l{0.5f, std::nanf(""), 2.0f, -1.0f, 2.0f};
  CHECK(moe::sampling::argmax(l) == 2);
  SamplerConfig c;
  c.greedy = true;
  Sampler s(c, 5);
  CHECK(s.sample(l) == 2);
  SamplerConfig zero_t = sampling(0.0f);
  Sampler z(zero_t, 5);
  CHECK(z.sample(l) == 2);
  const auto d = z.distribution(l);
  REQUIRE(d.size() == 1);
  CHECK(d[0].id == 2);
  // A random vector: greedy equals the index of the maximum.
  moe::Xoshiro256 rng(7);
  std::vector<float> r(1000);
  for (auto& v : r) v = static_cast<float>(rng.uniform() * 10 - 5);
  Sampler g(c, r.size());
  CHECK(g.sample(r) == std::max_element(r.begin(), r.end()) - r.begin());
}

TEST_CASE("a seed makes sampling reproducible and the draws follow the distribution", "[sampler]") {
  const std::vector<float> l{std::log(0.15f), std::log(0.5f), std::log(0.05f), std::log(0.3f)};
  SamplerConfig c = sampling();
  c.seed = 1234;
  Sampler a(c, 4), b(c, 4);
  std::vector<std::int32_t> xa, xb;
  for (int i = 0; i < 200; ++i) {
    xa.push_back(a.sample(l));
    xb.push_back(b.sample(l));
  }
  CHECK(xa == xb);
  a.reset();  // restarts the PRNG from the seed
  for (int i = 0; i < 200; ++i) REQUIRE(a.sample(l) == xa[static_cast<std::size_t>(i)]);
  c.seed = 4321;
  Sampler other(c, 4);
  std::vector<std::int32_t> xo;
  for (int i = 0; i < 200; ++i) xo.push_back(other.sample(l));
  CHECK(xo != xa);

  // Frequencies over 40000 draws: each within 5 standard deviations of its probability.
  std::array<int, 4> hist{};
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++hist[static_cast<std::size_t>(a.sample(l))];
  const std::array<double, 4> p{0.15, 0.5, 0.05, 0.3};
  for (std::size_t i = 0; i < 4; ++i) {
    const double sd = std::sqrt(p[i] * (1 - p[i]) / n);
    CHECK(std::abs(hist[i] / double(n) - p[i]) < 5 * sd);
  }
}

TEST_CASE("bad options, token ids and logit sizes are typed errors", "[sampler]") {
  auto bad = [](auto mutate) {
    SamplerConfig c;
    mutate(c);
    try {
      Sampler s(c, 4);
    } catch (const moe::Error& e) {
      return e.code() == moe::ErrorCode::kInvalidArgument;
    }
    return false;
  };
  CHECK(bad([](SamplerConfig& c) { c.temperature = -1; }));
  CHECK(bad([](SamplerConfig& c) { c.temperature = std::nanf(""); }));
  CHECK(bad([](SamplerConfig& c) { c.top_k = -3; }));
  CHECK(bad([](SamplerConfig& c) { c.top_p = 0; }));
  CHECK(bad([](SamplerConfig& c) { c.top_p = 1.5f; }));
  CHECK(bad([](SamplerConfig& c) { c.min_p = 2; }));
  CHECK(bad([](SamplerConfig& c) { c.repetition_penalty = 0; }));
  CHECK(bad([](SamplerConfig& c) { c.presence_penalty = INFINITY; }));
  Sampler s(SamplerConfig{}, 4);
  CHECK_THROWS_AS(s.accept(4), moe::Error);
  CHECK_THROWS_AS(s.accept(-1), moe::Error);
  const std::array<std::int32_t, 2> prompt{1, 9};
  CHECK_THROWS_AS(s.add_prompt(prompt), moe::Error);
  const std::vector<float> three{1, 2, 3};
  CHECK_THROWS_AS(s.sample(three), moe::Error);
}

TEST_CASE("sampling steps do not allocate", "[sampler]") {
  const std::size_t vocab = 5000;
  std::vector<float> l(vocab);
  moe::Xoshiro256 rng(3);
  for (auto& v : l) v = static_cast<float>(rng.uniform() * 8);
  SamplerConfig c = sampling(0.8f);
  c.top_k = 50;
  c.top_p = 0.9f;
  c.min_p = 0.05f;
  c.repetition_penalty = 1.1f;
  c.presence_penalty = 0.2f;
  c.frequency_penalty = 0.1f;
  Sampler s(c, vocab);
  SamplerConfig nucleus = sampling(1.0f);
  nucleus.top_p = 0.95f;  // sorts the whole vocabulary
  Sampler n(nucleus, vocab);
  std::vector<std::int32_t> prompt(300);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>(i * 7 % vocab);
  const long probe = moe_test::allocation_count();
  Sampler(c, vocab).sample(l);  // construction allocates: the counter is live
  REQUIRE(moe_test::allocation_count() > probe);
  const long before = moe_test::allocation_count();
  s.add_prompt(prompt);
  for (int i = 0; i < 200; ++i) {
    const std::int32_t id = s.sample(l);
    s.accept(id);
    n.accept(n.sample(l));
  }
  s.reset();
  const long after = moe_test::allocation_count();
  CHECK(after == before);
}
