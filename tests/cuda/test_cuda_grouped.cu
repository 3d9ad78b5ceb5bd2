// The grouped expert kernels (kernels/cuda/grouped.cuh) and the CUDA expert pass
// (layers::experts_forward on backend::cuda) against the per-expert composition: one
// kernels::matmul / matmul_in_out / add_bias per non-empty bucket on that bucket's rows. Both run
// the same device code in the same order, so the results must agree bitwise (and every output row
// must be written, padding untouched). Odd sizes, unaligned strides, empty experts, all slots on
// one expert, buckets on both sides of the GEMV / tiled-GEMM threshold (8 slots).
#include "moe/kernels/cuda/cuda.cuh"
#include "moe/layers/experts.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

namespace {

using moe::bf16;
using moe::DeviceView;
using moe::f16;
using moe::index_t;
using moe::cuda::DeviceBuffer;
namespace kernels = moe::kernels;
namespace layers = moe::layers;
constexpr moe::backend::cuda kCuda{};

std::mt19937& grng() {
  static std::mt19937 gen(20261202u);
  return gen;
}

template <class W>
std::vector<W> rand_vec(index_t n, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<W> v(static_cast<std::size_t>(std::max<index_t>(n, 1)));
  for (W& x : v) {
    if constexpr (std::is_same_v<W, float>) x = dist(grng());
    else x = moe::from_float<W>(dist(grng()));
  }
  return v;
}

template <class T>
DeviceBuffer<T> dev(const std::vector<T>& host) {
  DeviceBuffer<T> b(static_cast<index_t>(host.size()));
  b.upload(host);
  return b;
}

DeviceBuffer<float> poison(index_t n) {
  DeviceBuffer<float> b(std::max<index_t>(n, 1));
  b.fill_bytes(0xff);
  return b;
}

std::vector<std::int32_t> offsets_of(const std::vector<index_t>& counts) {
  std::vector<std::int32_t> off(counts.size() + 1, 0);
  for (std::size_t e = 0; e < counts.size(); ++e) off[e + 1] = off[e] + static_cast<std::int32_t>(counts[e]);
  return off;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

index_t count_nan(const std::vector<float>& v, index_t rows, index_t cols, index_t ld) {
  index_t n = 0;
  for (index_t r = 0; r < rows; ++r) {
    for (index_t c = 0; c < cols; ++c) n += std::isnan(v[r * ld + c]) ? 1 : 0;
  }
  return n;
}

const std::vector<std::vector<index_t>> kCountCases = {
    {1},                                   // one expert, one slot
    {0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1},  // decode: 8 distinct experts, most empty
    {0, 0, 37, 0, 0},                      // every slot on one expert (tiled)
    {0, 0, 0, 0, 6},                       // every slot on the last expert (GEMV, slots < experts)
    {2, 2, 4},                             // slots >= experts, all GEMV
    {3, 0, 130, 9, 1, 0, 8, 200, 0},       // both sides of the threshold, several tiles (of 64 slots)
    {0, 150, 70},                          // a mean bucket past 64: tiles of 128 slots ({0, 0, 37, 0, 0}: of 32)
    {0, 0, 0},                             // no slots at all
};

template <class W>
void check_grouped(index_t in, index_t out, bool aligned, bool in_out) {
  constexpr index_t kAlignW = 16 / sizeof(W);
  const index_t w_rows = in_out ? in : out, w_cols = in_out ? out : in;
  const index_t ld_w = aligned ? (w_cols + kAlignW - 1) / kAlignW * kAlignW : w_cols + 1 + (w_cols % 2);
  const index_t ld_x = aligned ? (in + 3) / 4 * 4 : in + 1;
  const index_t ld_y = out + 3;
  for (const auto& counts : kCountCases) {
    const index_t E = static_cast<index_t>(counts.size());
    const index_t slots = std::accumulate(counts.begin(), counts.end(), index_t{0});
    const index_t stride = w_rows * ld_w + (aligned ? 2 * kAlignW : 3);  // elements between experts
    const auto w_dev = dev(rand_vec<W>(E * stride + 1));
    const auto x_dev = dev(rand_vec<float>(slots * ld_x + 1));
    const auto off_host = offsets_of(counts);
    const auto off_dev = dev(off_host);
    const auto xs = x_dev.template view<2>({slots, in}, {ld_x, 1}, 0);
    const auto off = off_dev.view();
    auto want = poison(slots * ld_y), got = poison(slots * ld_y);
    for (index_t e = 0; e < E; ++e) {
      const index_t b = off_host[e], c = counts[e];
      if (c == 0) continue;
      const auto we = w_dev.template view<2>({w_rows, w_cols}, {ld_w, 1}, e * stride);
      const auto ye = want.view<2>({c, out}, {ld_y, 1}, b * ld_y);
      const auto xe = x_dev.template view<2>({c, in}, {ld_x, 1}, b * ld_x);
      if (in_out) kernels::matmul_in_out(kCuda, xe, we, ye);
      else kernels::matmul(kCuda, xe, we, ye);
    }
    const auto w0 = w_dev.template view<2>({w_rows, w_cols}, {ld_w, 1}, 0);
    const auto ys = got.view<2>({slots, out}, {ld_y, 1}, 0);
    const std::size_t stride_bytes = static_cast<std::size_t>(stride) * sizeof(W);
    if (in_out) kernels::grouped_matmul_in_out(kCuda, xs, w0, stride_bytes, off, ys);
    else kernels::grouped_matmul(kCuda, xs, w0, stride_bytes, off, ys);
    const auto g = got.to_host(), w = want.to_host();
    INFO((in_out ? "grouped_matmul_in_out" : "grouped_matmul") << " in=" << in << " out=" << out
                                                                 << " aligned=" << aligned << " experts=" << E
                                                                 << " slots=" << slots);
    CHECK(count_nan(g, slots, out, ld_y) == 0);
    CHECK(bitwise_equal(g, w));
    if (in_out) continue;
    // A bucket-size hint picks the decode GEMV's variant; buckets bigger than the hint run in
    // groups of it (several passes over W) and give the same bits.
    for (const index_t hint : {1, 2, 3, 5, 8, 100}) {
      auto hinted = poison(slots * ld_y);
      kernels::grouped_matmul(kCuda, xs, w0, stride_bytes, off, hinted.view<2>({slots, out}, {ld_y, 1}, 0), hint);
      INFO("max_bucket=" << hint);
      CHECK(bitwise_equal(hinted.to_host(), w));
    }
  }
}

template <class W>
void run_grouped(bool in_out) {
  // {24, 40001}: taller than one resident grid of the decode GEMV (its warps take several turns);
  // {1100, 50}: rows longer than 2 KB (the one-slot GEMV's one-row-per-warp variant); {4100, 37}:
  // rows a team of several warps splits (GemvTeam: 4 warps for f32, 2 for bf16 and f16).
  for (const auto& [in, out] : std::vector<std::pair<index_t, index_t>>{
           {37, 45}, {129, 200}, {256, 64}, {1, 3}, {24, 40001}, {1100, 50}, {4100, 37}}) {
    for (bool aligned : {true, false}) check_grouped<W>(in, out, aligned, in_out);
  }
  std::printf("grouped_matmul%s w=%s: bitwise equal to the per-expert composition\n", in_out ? "_in_out" : "",
              std::is_same_v<W, float> ? "f32" : (std::is_same_v<W, bf16> ? "bf16" : "f16"));
}

// grouped_matmul_swiglu against the composition slot by slot: kernels::matmul of the slot's row
// with its expert's gate and up matrices (the one-row GEMV: the same per-row sums as every pass of
// the fused kernel), then swiglu over all slots; bitwise, for buckets of any size. Gate and up at
// their own strides and row strides; `fused` puts them in one [2f, in] matrix per expert, as a
// gate_up bank does.
template <class W>
void check_grouped_swiglu(index_t in, index_t f, bool aligned, bool fused) {
  constexpr index_t kAlignW = 16 / sizeof(W);
  const index_t ld_w = aligned ? (in + kAlignW - 1) / kAlignW * kAlignW : in + 1 + (in % 2);
  const index_t ld_x = aligned ? (in + 3) / 4 * 4 : in + 1;
  const index_t ld_y = f + 3;
  for (const auto& counts : kCountCases) {
    const index_t E = static_cast<index_t>(counts.size());
    const index_t slots = std::accumulate(counts.begin(), counts.end(), index_t{0});
    const index_t pad = aligned ? 2 * kAlignW : 3;
    const index_t gate_stride = (fused ? 2 : 1) * f * ld_w + pad, up_stride = f * ld_w + pad + (aligned ? kAlignW : 1);
    const auto gate_dev = dev(rand_vec<W>(E * gate_stride + 1));
    const auto up_dev = dev(rand_vec<W>(E * up_stride + 1));
    const auto x_dev = dev(rand_vec<float>(slots * ld_x + 1));
    const auto off_host = offsets_of(counts);
    const auto off_dev = dev(off_host);
    const auto xs = x_dev.template view<2>({slots, in}, {ld_x, 1}, 0);
    const auto gate_at = [&](index_t e) { return gate_dev.template view<2>({f, in}, {ld_w, 1}, e * gate_stride); };
    const auto up_at = [&](index_t e) {
      return fused ? gate_dev.template view<2>({f, in}, {ld_w, 1}, e * gate_stride + f * ld_w)
                   : up_dev.template view<2>({f, in}, {ld_w, 1}, e * up_stride);
    };
    const std::size_t gs = static_cast<std::size_t>(gate_stride) * sizeof(W);
    const std::size_t us = static_cast<std::size_t>(fused ? gate_stride : up_stride) * sizeof(W);
    auto g = poison(slots * ld_y), u = poison(slots * ld_y), want = poison(slots * ld_y);
    for (index_t e = 0; e < E; ++e) {
      for (index_t s = off_host[e]; s < off_host[e + 1]; ++s) {
        const auto xr = x_dev.template view<2>({1, in}, {ld_x, 1}, s * ld_x);
        kernels::matmul(kCuda, xr, gate_at(e), g.view<2>({1, f}, {ld_y, 1}, s * ld_y));
        kernels::matmul(kCuda, xr, up_at(e), u.view<2>({1, f}, {ld_y, 1}, s * ld_y));
      }
    }
    kernels::swiglu(kCuda, g.view<2>({slots, f}, {ld_y, 1}, 0), u.view<2>({slots, f}, {ld_y, 1}, 0),
                    want.view<2>({slots, f}, {ld_y, 1}, 0));
    const auto w = want.to_host();
    for (const index_t hint : {0, 1, 2, 8}) {
      auto got = poison(slots * ld_y);
      kernels::grouped_matmul_swiglu(kCuda, xs, gate_at(0), gs, up_at(0), us, off_dev.view(),
                                     got.view<2>({slots, f}, {ld_y, 1}, 0), hint);
      const auto h = got.to_host();
      INFO("grouped_matmul_swiglu in=" << in << " f=" << f << " aligned=" << aligned << " fused=" << fused
                                       << " experts=" << E << " slots=" << slots << " max_bucket=" << hint);
      CHECK(count_nan(h, slots, f, ld_y) == 0);
      CHECK(bitwise_equal(h, w));
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("grouped_matmul_swiglu(cuda) equals grouped gate and up products then swiglu",
                   "[cuda][grouped]", float, bf16, f16) {
  for (const auto& [in, f] : std::vector<std::pair<index_t, index_t>>{{37, 45}, {256, 64}, {1, 3}, {1100, 50}, {24, 3001}, {4100, 20}}) {
    for (bool aligned : {true, false}) {
      for (bool fused : {false, true}) check_grouped_swiglu<TestType>(in, f, aligned, fused);
    }
  }
}

TEMPLATE_TEST_CASE("grouped_matmul(cuda) equals per-expert matmul bitwise", "[cuda][grouped]", float, bf16, f16) {
  run_grouped<TestType>(false);
}

TEMPLATE_TEST_CASE("grouped_matmul_in_out(cuda) equals per-expert matmul_in_out bitwise", "[cuda][grouped]", float,
                   bf16, f16) {
  run_grouped<TestType>(true);
}

TEST_CASE("grouped_add_bias(cuda) equals per-expert add_bias bitwise", "[cuda][grouped]") {
  for (const auto& counts : kCountCases) {
    const index_t E = static_cast<index_t>(counts.size()), d = 77, ld = 80, stride = 83;
    const index_t slots = std::accumulate(counts.begin(), counts.end(), index_t{0});
    const auto off_host = offsets_of(counts);
    const auto off_dev = dev(off_host);
    const auto bias_dev = dev(rand_vec<bf16>(E * stride + 1));
    const auto y0 = rand_vec<float>(slots * ld);
    auto want = dev(y0), got = dev(y0);
    for (index_t e = 0; e < E; ++e) {
      if (counts[e] == 0) continue;
      kernels::add_bias(kCuda, want.view<2>({counts[e], d}, {ld, 1}, off_host[e] * ld),
                        bias_dev.view<1>({d}, {1}, e * stride));
    }
    kernels::grouped_add_bias(kCuda, got.view<2>({slots, d}, {ld, 1}, 0), bias_dev.view<1>({d}, {1}, 0),
                              stride * sizeof(bf16), off_dev.view());
    CHECK(bitwise_equal(got.to_host(), want.to_host()));
  }
}

TEST_CASE("grouped kernels reject bad arguments", "[cuda][grouped]") {
  const auto w = dev(rand_vec<bf16>(64));
  const auto x = dev(rand_vec<float>(16));
  auto y = poison(16);
  const auto off = dev(std::vector<std::int32_t>{0, 2});
  const auto one = dev(std::vector<std::int32_t>{0});
  const auto check_invalid = [](auto&& f) {
    try {
      f();
      FAIL("no exception");
    } catch (const moe::Error& e) {
      CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
    }
  };
  // shape mismatch, odd byte stride, too few offsets
  check_invalid([&] { kernels::grouped_matmul(kCuda, x.view<2>({2, 8}), w.view<2>({4, 7}), 64, off.view(), y.view<2>({2, 4})); });
  check_invalid([&] { kernels::grouped_matmul(kCuda, x.view<2>({2, 8}), w.view<2>({4, 8}), 63, off.view(), y.view<2>({2, 4})); });
  check_invalid([&] { kernels::grouped_matmul(kCuda, x.view<2>({2, 8}), w.view<2>({4, 8}), 64, one.view(), y.view<2>({2, 4})); });
}

// ---- the CUDA expert pass -------------------------------------------------------------------

namespace {

// A bank of E experts whose tensors sit at a constant stride in `store` (or, when `scatter`, in
// reversed order, which the grouped pass must refuse and hand to the per-expert fallback).
struct DeviceBank {
  DeviceBuffer<bf16> store{1};
  layers::ExpertBank<moe::device_memory> bank;
};

DeviceBank make_bank(layers::ExpertLayout layout, index_t E, index_t d, index_t f, bool scatter) {
  DeviceBank b;
  b.bank.layout = layout, b.bank.n_experts = E, b.bank.d_model = d, b.bank.d_ff = f;
  b.bank.clamped = layout == layers::ExpertLayout::kInputMajorGlu;
  const auto pad = [](index_t n) { return (n + 127) / 128 * 128; };  // 256 bytes of bf16
  std::vector<std::pair<std::vector<layers::WeightMatrix<moe::device_memory>>*, std::pair<index_t, index_t>>> mats;
  std::vector<std::pair<std::vector<layers::WeightVector<moe::device_memory>>*, index_t>> vecs;
  switch (layout) {
    case layers::ExpertLayout::kSeparate:
      mats = {{&b.bank.gate, {f, d}}, {&b.bank.up, {f, d}}, {&b.bank.down, {d, f}}};
      break;
    case layers::ExpertLayout::kFusedGateUp:
      mats = {{&b.bank.gate_up, {2 * f, d}}, {&b.bank.down, {d, f}}};
      break;
    case layers::ExpertLayout::kInputMajorGlu:
      mats = {{&b.bank.gate_up, {d, 2 * f}}, {&b.bank.down, {f, d}}};
      vecs = {{&b.bank.gate_up_bias, 2 * f}, {&b.bank.down_bias, d}};
      break;
  }
  index_t total = 0;
  for (auto& m : mats) total += E * pad(m.second.first * m.second.second);
  for (auto& v : vecs) total += E * pad(v.second);
  b.store = dev(rand_vec<bf16>(total, 0.3f));
  const std::byte* base = reinterpret_cast<const std::byte*>(b.store.view().data());
  index_t at = 0;
  for (auto& [list, shape] : mats) {
    const index_t size = pad(shape.first * shape.second);
    for (index_t e = 0; e < E; ++e) {
      const index_t slot = scatter ? E - 1 - e : e;
      layers::WeightMatrix<moe::device_memory> w;
      w.dtype = moe::DType::bf16, w.data = base + (at + slot * size) * sizeof(bf16);
      w.rows = shape.first, w.cols = shape.second, w.row_stride = shape.second;
      list->push_back(w);
    }
    at += E * size;
  }
  for (auto& [list, n] : vecs) {
    const index_t size = pad(n);
    for (index_t e = 0; e < E; ++e) {
      layers::WeightVector<moe::device_memory> v;
      v.dtype = moe::DType::bf16, v.data = base + (at + e * size) * sizeof(bf16), v.size = n;
      list->push_back(v);
    }
    at += E * size;
  }
  return b;
}

}  // namespace

TEST_CASE("experts_forward(cuda): grouped pass equals the per-expert pass bitwise, every layout", "[cuda][grouped]") {
  const index_t d = 72, f = 40;
  for (auto layout : {layers::ExpertLayout::kSeparate, layers::ExpertLayout::kFusedGateUp,
                      layers::ExpertLayout::kInputMajorGlu}) {
    for (const auto& counts : kCountCases) {
      const index_t E = static_cast<index_t>(counts.size());
      const index_t slots = std::accumulate(counts.begin(), counts.end(), index_t{0});
      const auto off_dev = dev(offsets_of(counts));
      const auto x_dev = dev(rand_vec<float>(slots * d));
      auto scratch = poison(3 * slots * f);  // expert_scratch_floats
      for (bool scatter : {false, true}) {
        const DeviceBank b = make_bank(layout, E, d, f, scatter);
        auto want = poison(slots * d), got = poison(slots * d);
        const auto xs = x_dev.view<2>({slots, d});
        layers::cuda_experts_detail::per_expert(kCuda, b.bank, off_dev.view(), xs, scratch.view(),
                                                want.view<2>({slots, d}));
        layers::experts_forward(kCuda, b.bank, off_dev.view(), xs, scratch.view(), got.view<2>({slots, d}));
        const auto g = got.to_host();
        INFO("layout " << static_cast<int>(layout) << " experts " << E << " slots " << slots << " scatter " << scatter);
        CHECK(count_nan(g, slots, d, d) == 0);
        CHECK(bitwise_equal(g, want.to_host()));
      }
    }
  }
  // The stride detection itself.
  const DeviceBank even = make_bank(layers::ExpertLayout::kFusedGateUp, 4, d, f, false);
  const DeviceBank odd = make_bank(layers::ExpertLayout::kFusedGateUp, 4, d, f, true);
  CHECK(layers::cuda_experts_detail::uniform_stride(even.bank.gate_up, 4) > 0);
  CHECK(layers::cuda_experts_detail::uniform_stride(odd.bank.gate_up, 4) < 0);
}
