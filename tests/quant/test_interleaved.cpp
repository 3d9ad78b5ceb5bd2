// The row-interleaved layout (quant/rows8.hpp; Q4_0, Q8_0, IQ4_NL, Q4_K, Q6_K) and its cpu kernels (kernels/cpu/interleaved_matmul.hpp):
// interleave / deinterleave are inverses, a product on the interleaved matrix is bitwise the
// product on the matrix it was made from (streaming and GEMM token counts, several thread counts),
// bad shapes are typed errors, and the cpu model's load-time repack (model/repack.hpp) changes
// neither a logit nor a byte count.
#include "quant_test_util.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdlib>
#include <span>
#include <cstring>

using namespace quant_test;
using moe::index_t;
using moe::View;
namespace kernels = moe::kernels;
namespace backend = moe::backend;

namespace {

template <class Q>
struct Matrix {
  index_t rows, nb;
  std::vector<Q> plain;
  std::vector<Rows8<Q>> inter;

  Matrix(index_t r, index_t in, std::uint32_t seed) : rows(r), nb(in / static_cast<index_t>(Q::block_elements)) {
    const auto w = gaussian(r * in, seed, 1.0f / std::sqrt(static_cast<float>(in)));
    plain.resize(r * nb);
    moe::quant::quantize_row(w.data(), plain.data(), w.size());
    inter.resize(r / 8 * nb);
    for (index_t g = 0; g < r / 8; ++g) {
      const Q* rp[8];
      for (int k = 0; k < 8; ++k) rp[k] = plain.data() + (8 * g + k) * nb;
      for (index_t b = 0; b < nb; ++b) interleave(rp, b, inter[g * nb + b]);
    }
  }
  View<const Q, 2> plain_view() const { return View<const Q, 2>(plain.data(), {rows, nb}); }
  View<const Rows8<Q>, 2> inter_view() const { return View<const Rows8<Q>, 2>(inter.data(), {rows / 8, nb}); }
};

}  // namespace

TEMPLATE_TEST_CASE("interleaved rows: deinterleave inverts interleave", "[quant][interleaved]", BlockQ4_0, BlockQ8_0,
                   BlockIq4Nl, BlockQ4_K, BlockQ6_K) {
  using Q = TestType;
  const Matrix<Q> m(16, 3 * static_cast<index_t>(Q::block_elements), 3);
  for (index_t g = 0; g < 2; ++g) {
    for (index_t b = 0; b < m.nb; ++b) {
      for (int r = 0; r < 8; ++r) {
        const Q back = deinterleave(m.inter[g * m.nb + b], r);
        CHECK(std::memcmp(&back, &m.plain[(8 * g + r) * m.nb + b], sizeof(Q)) == 0);
      }
    }
  }
}

TEMPLATE_TEST_CASE("interleaved rows: the cpu product is bitwise the row-major one", "[quant][interleaved]",
                   BlockQ4_0, BlockQ8_0, BlockIq4Nl, BlockQ4_K, BlockQ6_K) {
  using Q = TestType;
  if constexpr (!kernels::kInterleavedKernels) {
    SUCCEED("no interleaved kernels for this target");
  } else {
    const int saved = moe::max_threads();
    constexpr auto BE = static_cast<index_t>(Q::block_elements);  // 1, 9 (3 for Q4_K), 10 (4) and 64 (8) blocks
    for (const auto& [rows, in] : {std::pair<index_t, index_t>{8, BE}, {24, BE == 32 ? 288 : 768},
                                  {40, BE == 32 ? 320 : 1024}, {64, 2048}}) {
      const Matrix<Q> m(rows, in, static_cast<std::uint32_t>(rows + in));
      for (const index_t tokens : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33}) {
        const index_t ldx = in + 5;  // strided activations
        const auto xv = gaussian(tokens * ldx, static_cast<std::uint32_t>(tokens * 7 + rows));
        const View<const float, 2> x(xv.data(), {tokens, in}, {ldx, 1});
        std::vector<float> want(tokens * rows), got(tokens * rows);
        kernels::matmul(backend::cpu{}, x, m.plain_view(), View<float, 2>(want.data(), {tokens, rows}));
        for (const int threads : {1, 2, 3}) {
          moe::set_num_threads(threads);
          std::fill(got.begin(), got.end(), -1.0f);
          kernels::matmul(backend::cpu{}, x, m.inter_view(), View<float, 2>(got.data(), {tokens, rows}));
          INFO(moe::dtype_name(Q::dtype) << " rows " << rows << " in " << in << " tokens " << tokens << " threads "
                                         << threads);
          CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
        }
      }
    }
    moe::set_num_threads(saved);
  }
}

TEMPLATE_TEST_CASE("interleaved rows: a fan-out over one x is bitwise the separate products", "[quant][interleaved]",
                   BlockQ4_0, BlockQ4_K) {
  using Q = TestType;
  if constexpr (!kernels::kInterleavedKernels) {
    SUCCEED("no interleaved kernels for this target");
  } else {
    constexpr auto BE = static_cast<index_t>(Q::block_elements);
    const index_t in = 4 * BE;
    const Matrix<Q> a(16, in, 3), b(40, in, 4), c(8, in, 5);  // q, k, v-like: different row counts
    for (const index_t tokens : {1, 3, 8, 16, 17, 20}) {
      const auto xv = gaussian(tokens * in, static_cast<std::uint32_t>(tokens));
      const View<const float, 2> x(xv.data(), {tokens, in});
      std::vector<float> want(tokens * 64), got(tokens * 64, -1.0f);
      const View<const Rows8<Q>, 2> ws[] = {a.inter_view(), b.inter_view(), c.inter_view()};
      const index_t rows[] = {16, 40, 8}, col0[] = {0, 16, 56};
      std::vector<View<float, 2>> ys, wants;
      for (int i = 0; i < 3; ++i) {
        // outputs side by side in one [tokens, 64] buffer (strided views, as the expert pass's gate and up)
        ys.emplace_back(got.data() + col0[i], std::array<index_t, 2>{tokens, rows[i]}, std::array<index_t, 2>{64, 1});
        wants.emplace_back(want.data() + col0[i], std::array<index_t, 2>{tokens, rows[i]}, std::array<index_t, 2>{64, 1});
        kernels::matmul(backend::cpu{}, x, ws[i], wants.back());
      }
      kernels::matmul_fanout(backend::cpu{}, x, std::span<const View<const Rows8<Q>, 2>>(ws, 3),
                             std::span<const View<float, 2>>(ys.data(), 3));
      INFO(moe::dtype_name(Q::dtype) << " tokens " << tokens);
      CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
    }
    const std::vector<float> bad(3 * (in + BE));
    std::vector<float> out(3 * 64);
    const View<const Rows8<Q>, 2> ws[] = {a.inter_view(), b.inter_view()};
    const View<float, 2> ys[] = {View<float, 2>(out.data(), {3, 16}), View<float, 2>(out.data() + 48, {3, 40})};
    CHECK_THROWS_AS(kernels::matmul_fanout(backend::cpu{}, View<const float, 2>(bad.data(), {3, in + BE}),
                                           std::span<const View<const Rows8<Q>, 2>>(ws, 2),
                                           std::span<const View<float, 2>>(ys, 2)),
                    moe::Error);
  }
}

namespace {

template <class Q>
moe::layers::WeightMatrix<> weight_of(const Matrix<Q>& m, bool interleaved) {
  moe::layers::WeightMatrix<> w;
  w.dtype = Q::dtype;
  w.data = interleaved ? reinterpret_cast<const std::byte*>(m.inter.data()) : reinterpret_cast<const std::byte*>(m.plain.data());
  w.rows = m.rows;
  w.cols = m.nb * static_cast<index_t>(Q::block_elements);
  w.row_stride = w.cols;
  w.row_group = interleaved ? 8 : 1;
  return w;
}

// A bank of 9 experts (buckets of 0 to 40 slots: streamed, GEMM and empty) with gate/up in G and
// down in D, run by experts_forward on the matrices as stored and interleaved (one parallel region
// for the small buckets: kernels/cpu/interleaved_experts.hpp): bitwise the same ys.
template <class G, class D>
void check_interleaved_bank(moe::layers::ExpertLayout layout, index_t d_model, index_t d_ff) {
  using moe::layers::ExpertLayout;
  const std::vector<index_t> sizes{0, 1, 5, 16, 17, 3, 0, 8, 40};
  const auto E = static_cast<index_t>(sizes.size());
  const bool separate = layout == ExpertLayout::kSeparate;
  std::vector<Matrix<G>> gates, ups;
  std::vector<Matrix<D>> downs;
  for (index_t e = 0; e < E; ++e) {
    const auto seed = static_cast<std::uint32_t>(100 + 3 * e);
    gates.emplace_back(separate ? d_ff : 2 * d_ff, d_model, seed);
    if (separate) ups.emplace_back(d_ff, d_model, seed + 1);
    downs.emplace_back(d_model, d_ff, seed + 2);
  }
  moe::layers::ExpertBank<> banks[2];
  for (int k = 0; k < 2; ++k) {
    auto& b = banks[k];
    b.layout = layout, b.n_experts = E, b.d_model = d_model, b.d_ff = d_ff;
    for (index_t e = 0; e < E; ++e) {
      (separate ? b.gate : b.gate_up).push_back(weight_of(gates[e], k == 1));
      if (separate) b.up.push_back(weight_of(ups[e], k == 1));
      b.down.push_back(weight_of(downs[e], k == 1));
    }
  }
  std::vector<std::int32_t> offsets{0};
  for (const index_t n : sizes) offsets.push_back(offsets.back() + static_cast<std::int32_t>(n));
  const index_t slots = offsets.back();
  const auto xv = gaussian(slots * d_model, 7);
  const View<const float, 2> xs(xv.data(), {slots, d_model});
  const View<const std::int32_t, 1> off(offsets.data(), {E + 1});
  std::vector<float> scratch(3 * slots * d_ff), want(slots * d_model), got(slots * d_model);
  const View<float, 1> sv(scratch.data(), {3 * slots * d_ff});
  moe::layers::experts_forward(backend::cpu{}, banks[0], off, xs, sv, View<float, 2>(want.data(), {slots, d_model}));
  const int saved = moe::max_threads();
  for (const int threads : {1, 2, 3}) {
    moe::set_num_threads(threads);
    std::fill(got.begin(), got.end(), -1.0f);
    moe::layers::experts_forward(backend::cpu{}, banks[1], off, xs, sv, View<float, 2>(got.data(), {slots, d_model}));
    INFO(moe::dtype_name(G::dtype) << " / " << moe::dtype_name(D::dtype) << (separate ? " separate" : " fused")
                                   << " threads " << threads);
    CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
  }
  moe::set_num_threads(saved);
  // The kernel itself refuses a d_ff that disagrees with the matrices, before any work.
  const auto expert_of = [&](index_t e) {
    const auto i = static_cast<std::size_t>(e);
    kernels::InterleavedExpert<G, D> w;
    w.parts = separate ? 2 : 1;
    w.gate_up[0] = (separate ? banks[1].gate[i] : banks[1].gate_up[i]).template view_interleaved<G>();
    if (separate) w.gate_up[1] = banks[1].up[i].template view_interleaved<G>();
    w.down = banks[1].down[i].template view_interleaved<D>();
    return w;
  };
  const auto wrong_d_ff = [&] {
    kernels::interleaved_experts<G, D>(backend::cpu{}, off, xs, d_ff / 2, expert_of, sv,
                                       View<float, 2>(got.data(), {slots, d_model}));
  };
  CHECK_THROWS_AS(wrong_d_ff(), moe::Error);
}

}  // namespace

TEST_CASE("interleaved rows: a bank's experts in one region are bitwise the per-expert pass", "[quant][interleaved]") {
  using moe::layers::ExpertLayout;
  if constexpr (!kernels::kInterleavedKernels) {
    SUCCEED("no interleaved kernels for this target");
  } else {
    check_interleaved_bank<BlockQ4_K, BlockQ6_K>(ExpertLayout::kSeparate, 512, 256);  // Q4_K_M's expert formats
    check_interleaved_bank<BlockQ4_K, BlockQ4_K>(ExpertLayout::kFusedGateUp, 256, 512);
    check_interleaved_bank<BlockQ4_0, BlockQ8_0>(ExpertLayout::kSeparate, 96, 64);
    check_interleaved_bank<BlockIq4Nl, BlockIq4Nl>(ExpertLayout::kFusedGateUp, 64, 96);
  }
}

TEST_CASE("interleaved rows: mismatched shapes are typed errors", "[quant][interleaved]") {
  if constexpr (kernels::kInterleavedKernels) {
    const Matrix<BlockQ4_0> m(16, 64, 1);
    std::vector<float> x(2 * 64), y(2 * 16);
    const View<const float, 2> xs(x.data(), {2, 64});
    const auto call = [&](index_t out) {
      kernels::matmul(backend::cpu{}, xs, m.inter_view(), View<float, 2>(y.data(), {2, out}));
    };
    CHECK_NOTHROW(call(16));
    try {
      call(8);
      FAIL("no error");
    } catch (const moe::Error& e) {
      CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
      CHECK(std::string(e.what()).find("interleaved") != std::string::npos);
    }
  }
}

namespace {

// A synthetic Qwen3-MoE model in fmt (every matrix row count a multiple of 8 but the router's 4,
// every column count a multiple of 256).
std::shared_ptr<const moe::Model> synthetic(moe::DType fmt) {
  const nlohmann::json config = {{"architectures", {"Qwen3MoeForCausalLM"}},
                                 {"hidden_size", 256},
                                 {"intermediate_size", 512},
                                 {"moe_intermediate_size", 256},
                                 {"num_hidden_layers", 2},
                                 {"num_attention_heads", 4},
                                 {"num_key_value_heads", 2},
                                 {"head_dim", 64},
                                 {"num_experts", 4},
                                 {"num_experts_per_tok", 2},
                                 {"vocab_size", 256},
                                 {"max_position_embeddings", 256},
                                 {"rms_norm_eps", 1e-6},
                                 {"rope_theta", 10000.0},
                                 {"norm_topk_prob", true},
                                 {"tie_word_embeddings", false}};
  return moe::model::make_synthetic_model<moe::backend::cpu>(config, fmt, 5);
}

}  // namespace

TEST_CASE("interleaved rows: the cpu model's repack changes no logit and no byte count", "[quant][interleaved][model]") {
  if constexpr (!moe::model::interleaves_weights<backend::cpu>()) {
    SUCCEED("the cpu backend does not repack on this target");
  } else {
    const std::vector<std::int32_t> prompt{3, 17, 250, 9, 64, 128, 1, 77, 200, 5, 33};
    for (const moe::DType fmt : {moe::DType::q4_0, moe::DType::q8_0, moe::DType::iq4_nl, moe::DType::q4_k, moe::DType::q6_k}) {
      INFO(moe::dtype_name(fmt));
      const auto packed = synthetic(fmt);
      ::setenv("MOE_CPU_REPACK", "0", 1);
      const auto stored = synthetic(fmt);
      ::unsetenv("MOE_CPU_REPACK");
      CHECK(stored->repack_info().tensors == 0);
      // q, k, v, o and every expert matrix of each layer, and the output head (not the router:
      // 4 rows; not the embedding: gathered).
      std::size_t expected = 1;
      for (const auto& L : stored->weights().layers) {
        const auto& bank = L.moe_weights.experts;
        expected += 4 + bank.gate.size() + bank.up.size() + bank.gate_up.size() + bank.down.size();
      }
      CHECK(expected >= 2 * (4 + 2 * 4) + 1);
      CHECK(packed->repack_info().tensors == expected);
      CHECK(packed->weights().layers[0].attn.o.row_group == 8);
      CHECK(packed->weights().layers[0].moe_weights.router.row_group == 1);
      CHECK(packed->weights().embed.row_group == 1);
      CHECK(packed->weight_bytes().total == stored->weight_bytes().total);
      CHECK(packed->weight_bytes().per_token == stored->weight_bytes().per_token);
      // Prefill (the GEMM from 8 tokens) and one-token decode steps.
      const auto a = logits_of(*packed, prompt), b = logits_of(*stored, prompt);
      CHECK(std::memcmp(a.view().data(), b.view().data(), a.view().extent(0) * a.view().extent(1) * sizeof(float)) == 0);
      const std::vector<std::int32_t> one{42};
      const auto c = logits_of(*packed, one), d = logits_of(*stored, one);
      CHECK(std::memcmp(c.view().data(), d.view().data(), c.view().extent(1) * sizeof(float)) == 0);
    }
  }
}
