// cpu_simd: the routed experts of a MoE layer over their buckets in one parallel region, for banks
// whose matrices are all row-interleaved (quant/rows8.hpp; the cpu backend repacks Q4_0, Q8_0,
// IQ4_NL, Q4_K and Q6_K at load). Run expert by expert (layers/experts.hpp: expert_forward), a
// bank opens two parallel regions per chosen expert, each ending in a barrier: a Qwen3-30B-A3B
// layer at 128 prompt tokens chooses ~125 experts of ~8 tokens each, so ~250 regions per layer,
// whose uneven halves and wake-ups were 15% of a Q4_K_M prefill profile (libgomp's barrier wait).
// Here a bank is four phases with three barriers between them:
//   A. every chosen expert's tokens quantized once, as its gate/up kernels read them (and, for a
//      bucket of kInterleavedGemmFrom slots or more, laid out in the GEMM's activation panels);
//   B. the gate and up groups of 8 rows of every expert into the gate/up scratch (the streaming
//      kernel for small buckets, the GEMM tile of the igemm formats for large ones), each thread a
//      contiguous run of (expert, groups) items of an equal share of the cost (tokens + 4 per
//      group: a group's weight read or tile decode counts as 4 tokens' products);
//   C. per slot, silu(gate)·up (cpu_detail::swiglu_row, in place) quantized for the down kernel
//      (and panelled for large buckets);
//   D. the down groups of every expert, shared the same way, into ys.
// (Items claimed one at a time from a shared counter were 12% slower at pp128: the counter's cache
// line moves between the cores per item, and each thread's reads stop being sequential.)
// Each output is computed by the operations of the per-expert path (quantize_act, stream_group or
// the GEMM tile, swiglu_row), so the results are bitwise that path's, whatever the thread count or
// the order.
#pragma once

#include "moe/kernels/cpu/activation.hpp"
#include "moe/kernels/cpu/interleaved_matmul.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

// One expert's matrices for interleaved_experts: its gate and up rows as one matrix (parts 1: the
// fused [2·d_ff, d_model] bank, gate rows first) or two (parts 2: gate, up [d_ff, d_model]), and
// down [d_model, d_ff]; views of groups of 8 rows.
template <class Wg, class Wd>
struct InterleavedExpert {
  View<const quant::Rows8<Wg>, 2> gate_up[2];
  int parts = 0;
  View<const quant::Rows8<Wd>, 2> down;
};

#if defined(__AVX2__)

namespace cpu_quant::experts_detail {

template <class Wg, class Wd>
struct Active {
  InterleavedExpert<Wg, Wd> w;
  index_t begin = 0;   // first slot of the bucket
  index_t n = 0;       // slots
  index_t panel0 = 0;  // GEMM buckets: first panel in the panel buffers
  bool gemm = false;   // kInterleavedGemmFrom slots or more: the GEMM tiles, else streamed
};

// Panels [panel0, ...) of the n slots of `acts` (nb blocks each) from `begin`, as igemm_gemm_tiles
// lays them out.
template <class W, class A, class Panel>
void fill_panels(const A* acts, index_t begin, index_t n, index_t nb, Panel* panels) noexcept {
  constexpr int P = igemm::kPanel;
  for (index_t p = 0; p * P < n; ++p) {
    const int m = static_cast<int>(std::min<index_t>(P, n - p * P));
    const A* rows[P];
    for (int l = 0; l < m; ++l) rows[l] = acts + (begin + p * P + l) * nb;
    for (index_t b = 0; b < nb; ++b) igemm::fill_panel<igemm::Traits<W>::kCorr>(rows, m, b, panels[p * nb + b]);
  }
}

// Groups [g0, g1) of m (8 rows each, nb blocks) for a GEMM bucket of n slots whose panels are
// `panels`, into y [n, ...] columns 8g ..: igemm_gemm_tiles' tile loop (each tile decoded once,
// then every panel).
template <class W>
void gemm_groups(const View<const quant::Rows8<W>, 2>& m, index_t g0, index_t g1, const typename igemm::Traits<W>::Panel* panels,
                 index_t n, const View<float, 2>& y) noexcept {
  using Dec = typename igemm::Traits<W>::Dec;
  constexpr int P = igemm::kPanel, R = igemm::kTileRows;
  const index_t nb = m.extent(1);
  Dec* dec = act_scratch<Dec>(R * nb);
  Dec* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = dec + r * nb;
  for (index_t g = g0; g < g1; ++g) {
    const quant::Rows8<W>* grp = m.data() + g * m.stride(0);
    for (index_t b = 0; b < nb; ++b) igemm::decode_rows8(grp[b], rows, b);
    igemm_tile_panels<W>(rows, panels, 0, (n + P - 1) / P, nb, n, g, R, y);
  }
}

struct Item {  // groups [g0, g1) of part `part` of active expert `a` (part 0 in phase D)
  index_t a = 0;
  index_t g0 = 0, g1 = 0;
  int part = 0;
};

// Calls f(k) for this thread's share of items [0, n) whose costs have the prefix sums
// prefix[0 .. n] (prefix[0] = 0): the contiguous run of items whose cost starts in the thread's
// equal part of the total. Contiguous runs keep each thread's weight reads sequential (the
// hardware prefetchers follow them) and take no shared counter.
template <class F>
void for_share(const index_t* prefix, std::size_t n, const F& f) noexcept {
  int t = 0, nt = 1;
#if defined(_OPENMP)
  t = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
  const index_t total = prefix[n];
  const auto bound = [&](int k) {
    const index_t c = total / nt * k + total % nt * k / nt;  // total·k/nt without overflow
    return static_cast<std::size_t>(std::lower_bound(prefix, prefix + n, c) - prefix);
  };
  const std::size_t begin = bound(t), end = t + 1 == nt ? n : bound(t + 1);
  for (std::size_t k = begin; k < end; ++k) f(k);
}

template <class W>
void check_part(const View<const quant::Rows8<W>, 2>& m, index_t rows, index_t nb, index_t e, const char* what) {
  constexpr index_t R = quant::kInterleavedRows;
  require(m.extent(0) * R == rows && m.extent(1) == nb && (m.extent(0) == 0 || m.stride(1) == 1),
          ErrorCode::kInvalidArgument,
          "interleaved_experts: expert {}'s {} is [{}, {}] {} interleaved by 8 rows (inner stride {}); expected [{}, {}]", e,
          what, m.extent(0) * R, m.extent(1) * static_cast<index_t>(W::block_elements), FormatTraits<W>::name, m.stride(1),
          rows, nb * static_cast<index_t>(W::block_elements));
}

}  // namespace cpu_quant::experts_detail

// ys[offsets[e], offsets[e+1]) = down_e(silu(gate_e · x) · up_e · x) over xs's rows of the same
// range, for every expert e with a non-empty bucket. offsets [n_experts + 1] (bucket_by_expert's), xs and ys
// [slots, d_model] with unit inner strides, expert_of(e) -> InterleavedExpert<Wg, Wd> (called on
// this thread, before any work), scratch >= 2·slots·d_ff floats. Bitwise the per-expert path.
template <quant::Interleavable Wg, quant::Interleavable Wd, class Arch, class ExpertOf>
void interleaved_experts(backend::cpu_simd<Arch>, View<const std::int32_t, 1> offsets, View<const float, 2> xs,
                         index_t d_ff, const ExpertOf& expert_of, View<float, 1> scratch, View<float, 2> ys) {
  namespace ed = cpu_quant::experts_detail;
  using Ag = typename cpu_quant::ActFor<Wg>::type;
  using Ad = typename cpu_quant::ActFor<Wd>::type;
  constexpr index_t R = quant::kInterleavedRows;
  constexpr auto BEg = static_cast<index_t>(Wg::block_elements), BEd = static_cast<index_t>(Wd::block_elements);
  const index_t slots = xs.extent(0), d_model = xs.extent(1), f = d_ff;
  require(offsets.extent(0) >= 1 && ys.extent(0) == slots && ys.extent(1) == d_model && d_model % BEg == 0 &&
              d_model % R == 0 && f % BEd == 0 && f % R == 0 && f > 0 && scratch.extent(0) >= 2 * slots * f,
          ErrorCode::kInvalidArgument,
          "interleaved_experts: {} offsets, xs [{}, {}], ys [{}, {}], d_ff {} ({} gate/up, {} down), {} scratch floats "
          "(need {})",
          offsets.extent(0), slots, d_model, ys.extent(0), ys.extent(1), f, FormatTraits<Wg>::name,
          FormatTraits<Wd>::name, scratch.extent(0), 2 * slots * f);
  detail::check_unit_inner_stride(xs, "interleaved_experts", "xs");
  detail::check_unit_inner_stride(ys, "interleaved_experts", "ys");
  const index_t n_experts = offsets.extent(0) - 1, nbg = d_model / BEg, nbd = f / BEd;

  // The chosen experts, their items and the quantized activations: the calling thread's buffers,
  // reused from call to call (no allocation once warm). The team reaches them through these
  // pointers (a thread_local named inside the region would be each thread's own).
  thread_local std::vector<ed::Active<Wg, Wd>> active_buffer;
  thread_local std::vector<ed::Item> items_buffer;
  thread_local std::vector<index_t> cost_buffer;
  thread_local AlignedBuffer<std::byte> act_buffer;
  auto& active = active_buffer;
  auto& items = items_buffer;
  auto& cost = cost_buffer;  // prefix sums: active experts' tokens, then up items', then down items'
  active.clear();
  items.clear();
  cost.clear();
  constexpr int P = cpu_quant::igemm::kPanel;
  using PanelG = typename cpu_quant::igemm::Traits<Wg>::Panel;
  using PanelD = typename cpu_quant::igemm::Traits<Wd>::Panel;
  index_t prev = 0, macs = 0, panels = 0;
  for (index_t e = 0; e < n_experts; ++e) {
    const index_t begin = offsets[e], end = offsets[e + 1];
    require(begin == prev && end >= begin && end <= slots, ErrorCode::kInvalidArgument,
            "interleaved_experts: expert {}'s bucket [{}, {}) does not follow [.., {}) within {} slots", e, begin, end,
            prev, slots);
    prev = end;
    const index_t n = end - begin;
    if (n == 0) continue;
    ed::Active<Wg, Wd> a{expert_of(e), begin, n, 0, n >= cpu_quant::kInterleavedGemmFrom};
    if (a.gemm) a.panel0 = panels, panels += (n + P - 1) / P;
    require(a.w.parts == 1 || a.w.parts == 2, ErrorCode::kInvalidArgument,
            "interleaved_experts: expert {} has {} gate/up parts (1 or 2)", e, a.w.parts);
    for (int p = 0; p < a.w.parts; ++p) ed::check_part(a.w.gate_up[p], 2 * f / a.w.parts, nbg, e, "gate/up");
    ed::check_part(a.w.down, d_model, nbd, e, "down");
    active.push_back(a);
    macs += n * 3 * f * d_model;
  }
  if (active.empty()) return;
  const std::size_t n_active = active.size();
  constexpr index_t kWeightCost = 4;  // a group's weight read, in tokens' products
  const auto push = [&](index_t a, index_t g0, index_t g1, int part, index_t cost_per_group) {
    items.push_back({a, g0, g1, part});
    cost.push_back(cost.back() + (g1 - g0) * cost_per_group);
  };
  cost.push_back(0);
  for (std::size_t i = 0; i < n_active; ++i) cost.push_back(cost.back() + active[i].n);
  cost.push_back(0);
  for (std::size_t i = 0; i < n_active; ++i) {
    const auto& a = active[i];
    for (int p = 0; p < a.w.parts; ++p) {
      const index_t groups = a.w.gate_up[p].extent(0), grain = cpu_quant::stream_grain<Wg>(nbg, a.n);  // also the GEMM's
      for (index_t g = 0; g < groups; g += grain) {
        push(static_cast<index_t>(i), g, std::min(groups, g + grain), p, a.n + kWeightCost);
      }
    }
  }
  const std::size_t n_up_items = items.size();
  cost.push_back(0);
  for (std::size_t i = 0; i < n_active; ++i) {
    const index_t groups = d_model / R, grain = cpu_quant::stream_grain<Wd>(nbd, active[i].n);
    for (index_t g = 0; g < groups; g += grain) {
      push(static_cast<index_t>(i), g, std::min(groups, g + grain), 0, active[i].n + kWeightCost);
    }
  }
  const auto round64 = [](std::size_t b) { return (b + 63) / 64 * 64; };
  const std::size_t xq_bytes = round64(static_cast<std::size_t>(slots * nbg) * sizeof(Ag));
  const std::size_t aq_bytes = round64(static_cast<std::size_t>(slots * nbd) * sizeof(Ad));
  const std::size_t gp_bytes = round64(static_cast<std::size_t>(panels * nbg) * sizeof(PanelG));
  const std::size_t act_bytes = xq_bytes + aq_bytes + gp_bytes + static_cast<std::size_t>(panels * nbd) * sizeof(PanelD);
  if (act_buffer.size() < act_bytes) act_buffer.resize(act_bytes);
  auto* xq = reinterpret_cast<Ag*>(act_buffer.data());
  auto* aq = reinterpret_cast<Ad*>(act_buffer.data() + xq_bytes);
  auto* gpan = reinterpret_cast<PanelG*>(act_buffer.data() + xq_bytes + aq_bytes);
  auto* dpan = reinterpret_cast<PanelD*>(act_buffer.data() + xq_bytes + aq_bytes + gp_bytes);
  const ed::Active<Wg, Wd>* act = active.data();
  const ed::Item* item = items.data();
  float* gu = scratch.data();  // [slots, 2·d_ff]: gate columns, then up; the activation replaces gate
  const index_t gu_stride = 2 * f;
  const index_t* tokens_prefix = cost.data();
  const index_t* up_prefix = tokens_prefix + n_active + 1;
  const index_t* down_prefix = up_prefix + n_up_items + 1;

  const auto quantize_inputs = [&](std::size_t i) {
    for (index_t t = act[i].begin; t < act[i].begin + act[i].n; ++t) {
      const float* xr = xs.data() + t * xs.stride(0);
      for (index_t b = 0; b < nbg; ++b) cpu_quant::quantize_act(xr + b * BEg, xq[t * nbg + b]);
    }
    if (act[i].gemm) ed::fill_panels<Wg>(xq, act[i].begin, act[i].n, nbg, gpan + act[i].panel0 * nbg);
  };
  const auto gate_up = [&](std::size_t k) {
    const ed::Item& it = item[k];
    const auto& a = act[it.a];
    const auto& m = a.w.gate_up[it.part];
    const View<float, 2> y(gu + a.begin * gu_stride + it.part * f, {a.n, m.extent(0) * R}, {gu_stride, 1});
    if (a.gemm) {
      ed::gemm_groups<Wg>(m, it.g0, it.g1, gpan + a.panel0 * nbg, a.n, y);
      return;
    }
    for (index_t g = it.g0; g < it.g1; ++g) {
      cpu_quant::stream_group<Wg>(m.data() + g * m.stride(0), xq + a.begin * nbg, a.n, nbg, y, g);
    }
  };
  const auto activate = [&](std::size_t i) {
    for (index_t t = act[i].begin; t < act[i].begin + act[i].n; ++t) {
      float* g = gu + t * gu_stride;
      cpu_detail::swiglu_row<Arch>(g, g + f, g, f);
      for (index_t b = 0; b < nbd; ++b) cpu_quant::quantize_act(g + b * BEd, aq[t * nbd + b]);
    }
    if (act[i].gemm) ed::fill_panels<Wd>(aq, act[i].begin, act[i].n, nbd, dpan + act[i].panel0 * nbd);
  };
  const auto down = [&](std::size_t k) {
    const ed::Item& it = item[n_up_items + k];
    const auto& a = act[it.a];
    const View<float, 2> y(ys.data() + a.begin * ys.stride(0), {a.n, d_model}, {ys.stride(0), 1});
    if (a.gemm) {
      ed::gemm_groups<Wd>(a.w.down, it.g0, it.g1, dpan + a.panel0 * nbd, a.n, y);
      return;
    }
    for (index_t g = it.g0; g < it.g1; ++g) {
      cpu_quant::stream_group<Wd>(a.w.down.data() + g * a.w.down.stride(0), aq + a.begin * nbd, a.n, nbd, y, g);
    }
  };
  const std::size_t n_down_items = items.size() - n_up_items;
  const auto phases = [&] {
    ed::for_share(tokens_prefix, n_active, quantize_inputs);
#if defined(_OPENMP)
#pragma omp barrier
#endif
    ed::for_share(up_prefix, n_up_items, gate_up);
#if defined(_OPENMP)
#pragma omp barrier
#endif
    ed::for_share(tokens_prefix, n_active, activate);
#if defined(_OPENMP)
#pragma omp barrier
#endif
    ed::for_share(down_prefix, n_down_items, down);
  };
  [[maybe_unused]] const bool team = max_threads() > 1 && macs >= 2 * cpu_detail::kMinWorkPerThread;
#if defined(_OPENMP)
  if (team) {
#pragma omp parallel
    phases();
    return;
  }
#endif
  phases();  // one thread: the barriers are no-ops outside a parallel region
}

#else
// Without AVX2 there are no interleaved matrices (model/repack.hpp makes none): never called.
template <class Wg, class Wd, class... Args>
void interleaved_experts(Args&&...) = delete;
#endif

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
