// xsimd + OpenMP matrix products with f32 activations and f32, bf16 or f16 weights, accumulating
// in f32:
//   * up to 16 tokens (decode, small batches, experts with few tokens): weight rows are streamed
//     once from memory, 4 rows x up to 4 tokens per pass, each thread a contiguous block of
//     output rows (memory-bandwidth bound);
//   * many tokens (prefill): a packed, register-blocked GEMM in the style of BLIS (Goto & van de
//     Geijn, "Anatomy of high-performance matrix multiplication", 2008): weight panels converted
//     to f32 while packing, an MR x NR tile of outputs held in registers, broadcast FMAs.
// Every output element is computed by the same sequence of operations whatever the thread count,
// so results are bitwise independent of the number of threads.
#pragma once

#include "moe/backend/tags.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cpu/simd.hpp"
#include "moe/kernels/reference/arguments.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "moe/kernels/cpu/warnings_push.hpp"

namespace moe::kernels {

namespace cpu_detail {

// Minimum multiply-adds per thread before a matmul is split across threads (a parallel region
// costs a few microseconds).
inline constexpr index_t kMinWorkPerThread = index_t{1} << 16;

// ---- decode path: a few tokens against streamed weight rows -----------------------------------

// Up to this many tokens use the streaming path (weights read from memory once, groups of 4 tokens
// reusing each block of rows from cache); more use the packed GEMM, whose packing cost per weight
// is amortised over all tokens. Measured on Zen 5 ([768, 2048] bf16 experts, cold): streaming is
// 2.5x faster at 5 tokens, even at 16, and the GEMM wins from ~24 tokens on.
inline constexpr index_t kStreamMaxTokens = 16;
// Output rows per pass: R independent accumulator chains per token hide the FMA latency, and R
// concurrent row streams keep enough memory requests in flight (4 measured faster than 8 for one
// token with the side-by-side sub-ranges of stream_rows_one_token, and 4 x 4 accumulators fit
// the registers for several tokens).
inline constexpr int kStreamRows = 4;
// Software prefetch distance (into L1) on each weight row, in bytes: 1 KB measured best of 0-8 KB
// (L1 or L2 hints) on Zen 5 with 2 threads. Together with the prefetch running on into the next
// rows (stream_dot_block) and long per-stream runs (stream_rows_one_token), bf16 GEMV went from
// ~48 to ~60 GB/s on a machine whose 4-stream read bandwidth measures 50-80 GB/s (noisy).
inline constexpr index_t kStreamPrefetchBytes = 1024;

// out[t * R + r] = dot(x_t, w_r) over n elements, for T tokens (rows of x at stride ldx) and R
// weight rows w_r = w + r*ldw. One f32 batch accumulator per (t, r), reduced across lanes at the
// end, then the scalar tail. `next` is the distance from each row to the row the next call reads
// in its place (the prefetch target past the row's end). (hot spot)
template <class Arch, class W, int T, int R>
inline void stream_dot_block(const float* x, index_t ldx, const W* w, index_t ldw, index_t n,
                             index_t next, float* out) noexcept {
  using B = FloatBatch<Arch>;
  constexpr index_t L = B::size;
  B acc[T][R];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[t][r] = B(0.0f);
  }
  auto step = [&](index_t i) {
    B wv[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) wv[r] = load_widened<Arch>(w + r * ldw + i);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const B xv = B::load_unaligned(x + t * ldx + i);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[t][r] = xsimd::fma(xv, wv[r], acc[t][r]);
    }
  };
  const index_t n_vec = n / L * L;
  // One cache line of every row per iteration, with a software prefetch kStreamPrefetchBytes ahead
  // on each row; near the end of a row it targets the start of the row the next call reads in its
  // place (w_r + next), so new row streams do not start cold (each row is only a few KB: the hardware
  // prefetchers alone retrain on every row and keep too few misses in flight).
  // (Prefetches never fault; the address is formed as an integer so that a prefetch past the
  // last row is not out-of-bounds pointer arithmetic.)
  constexpr index_t kLine = std::max<index_t>(L, 64 / sizeof(W));
  constexpr index_t kAhead = kStreamPrefetchBytes / sizeof(W);
  const index_t n_lines = n_vec / kLine * kLine;
  index_t i = 0;
  for (; i < n_lines; i += kLine) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const index_t ahead = i + kAhead;
      const index_t offset = ahead < n ? r * ldw + ahead : r * ldw + next + (ahead - n);
      prefetch(reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(w) + sizeof(W) * offset));
    }
#pragma GCC unroll 4
    for (index_t u = 0; u < kLine; u += L) step(i + u);
  }
  for (; i < n_vec; i += L) step(i);
  for (int t = 0; t < T; ++t) {
    for (int r = 0; r < R; ++r) {
      float s = xsimd::hadd(acc[t][r]);
      for (index_t i = n_vec; i < n; ++i) {
        s += x[t * ldx + i] * detail::weight_to_float(w[r * ldw + i]);
      }
      out[t * R + r] = s;
    }
  }
}

// y[:, o : o+R] for every token, in groups of up to 4 tokens: the R weight rows come from memory
// for the first group and from cache (R rows = R*in elements, a few tens of KB) for the others.
template <class Arch, class W, int R>
inline void stream_row_block(const View<const float, 2>& x, const View<const W, 2>& w,
                             const View<float, 2>& y, index_t o) noexcept {
  const index_t n_tokens = x.extent(0), n = x.extent(1), ldx = x.stride(0), ldw = w.stride(0);
  const W* wp = w.data() + o * ldw;
  float out[4 * R];
  for (index_t t0 = 0; t0 < n_tokens; t0 += 4) {
    const index_t tokens = std::min<index_t>(4, n_tokens - t0);
    const float* xp = x.data() + t0 * ldx;
    switch (tokens) {
      case 1: stream_dot_block<Arch, W, 1, R>(xp, ldx, wp, ldw, n, R * ldw, out); break;
      case 2: stream_dot_block<Arch, W, 2, R>(xp, ldx, wp, ldw, n, R * ldw, out); break;
      case 3: stream_dot_block<Arch, W, 3, R>(xp, ldx, wp, ldw, n, R * ldw, out); break;
      default: stream_dot_block<Arch, W, 4, R>(xp, ldx, wp, ldw, n, R * ldw, out); break;
    }
    for (index_t t = 0; t < tokens; ++t) {
      for (int r = 0; r < R; ++r) y(t0 + t, o + r) = out[t * R + r];
    }
  }
}

// One token: a thread's rows are cut into R equal sub-ranges read side by side, row j of every
// sub-range in pass j. Where rows are adjacent in memory (the usual [out, in] tensor) each of the
// R streams then runs sequentially through its whole sub-range instead of restarting every few KB,
// which is what the hardware prefetchers sustain best. The rows left over go one at a time.
template <class Arch, class W, int R>
inline void stream_rows_one_token(const View<const float, 2>& x, const View<const W, 2>& w,
                                  const View<float, 2>& y, index_t o_begin, index_t o_end) noexcept {
  const index_t n = x.extent(1), ldw = w.stride(0);
  const index_t per = (o_end - o_begin) / R;
  float out[R];
  for (index_t j = 0; j < per; ++j) {
    stream_dot_block<Arch, W, 1, R>(x.data(), 0, w.data() + (o_begin + j) * ldw, per * ldw, n, ldw,
                                    out);
    for (int r = 0; r < R; ++r) y(0, o_begin + r * per + j) = out[r];
  }
  for (index_t o = o_begin + R * per; o < o_end; ++o) {
    stream_dot_block<Arch, W, 1, 1>(x.data(), 0, w.data() + o * ldw, ldw, n, ldw, out);
    y(0, o) = out[0];
  }
}

// Each thread owns a contiguous block of output rows and streams it once.
template <class Arch, class W>
void matmul_streaming(const View<const float, 2>& x, const View<const W, 2>& w,
                      const View<float, 2>& y) {
  const index_t n_tokens = x.extent(0), d_in = x.extent(1), d_out = w.extent(0);
  const index_t work_per_row = std::max<index_t>(d_in * n_tokens, 1);
  const index_t grain = std::max<index_t>(1, kMinWorkPerThread / work_per_row);
  parallel_for_chunks(d_out, grain, [&](index_t o_begin, index_t o_end) {
    if (n_tokens == 1) {
      stream_rows_one_token<Arch, W, kStreamRows>(x, w, y, o_begin, o_end);
      return;
    }
    index_t o = o_begin;
    for (; o + kStreamRows <= o_end; o += kStreamRows) stream_row_block<Arch, W, kStreamRows>(x, w, y, o);
    for (; o < o_end; ++o) stream_row_block<Arch, W, 1>(x, w, y, o);
  });
}

// ---- prefill path: packed, register-blocked GEMM ----------------------------------------------
//
// C[M, N] = A[M, K] · B[K, N] with A = x (f32) and B = Wᵀ (or W for matmul_in_out).
// Loops (per thread, which owns a range of output columns):
//   for nc-panel of columns:  for kc-block of K:  pack B panel [kc][NR]-slivers (-> f32)
//     for mc-block of rows:  pack A block [kc][MR]-slivers
//       for each NR-sliver of the panel (stays in L1):  for each MR-sliver of the A block:
//         micro-kernel: MR x NR outputs in registers, kc broadcast-FMA steps.
// Outputs are overwritten on the first kc block and accumulated on later ones.

template <class Arch>
struct GemmShape {
  static constexpr index_t kLanes = FloatBatch<Arch>::size;
  // A micro-tile is kMr rows x kNr columns of outputs, held in kMr * kNr / kLanes accumulators.
  // AVX-512 (32 registers): 6 x 64 = 24 accumulators + 4 B vectors + 1 broadcast; measured on
  // Zen 5 a little faster than 12 x 32, 9 x 48 or 14 x 32 (fewer loads per FMA: 10 per 24).
  // Elsewhere (16 registers): 6 x 2 vectors.
  static constexpr index_t kNr = (kIsAvx512<Arch> ? 4 : 2) * kLanes;
  static constexpr index_t kMr = 6;
  static constexpr index_t kKc = 256;   // K block: one B sliver is kKc*kNr*4 = 64 KB (L1/L2)
  static constexpr index_t kMc = 144;   // rows of x per packed block: kMc*kKc*4 = 144 KB (L2)
  static constexpr index_t kNc = 512;   // columns per packed B panel: kNc*kKc*4 = 512 KB (L2)
};

// A per-thread scratch area for packed panels: allocated on a thread's first GEMM, then reused
// (no allocation on later calls).
inline float* thread_scratch(index_t n_floats) {
  thread_local AlignedBuffer<float> buffer;
  if (buffer.size() < n_floats) buffer.resize(n_floats);
  return buffer.data();
}

// Packs x[m0 : m0+mc, k0 : k0+kc] into MR-row slivers: dst[(s*kc + k)*MR + i] = x[m0+s*MR+i, k0+k],
// rows past mc padded with zeros.
template <class Arch>
inline void pack_a(const View<const float, 2>& x, index_t m0, index_t mc, index_t k0, index_t kc,
                   float* dst) noexcept {
  constexpr index_t MR = GemmShape<Arch>::kMr;
  const index_t ldx = x.stride(0);
  for (index_t s = 0; s * MR < mc; ++s) {
    const index_t rows = std::min(MR, mc - s * MR);
    float* d = dst + s * kc * MR;
    const float* src = x.data() + (m0 + s * MR) * ldx + k0;
    for (index_t k = 0; k < kc; ++k) {
      for (index_t i = 0; i < rows; ++i) d[k * MR + i] = src[i * ldx + k];
      for (index_t i = rows; i < MR; ++i) d[k * MR + i] = 0.0f;
    }
  }
}

#if defined(__AVX512F__)
// In-register transpose of 16 rows of 16 floats: on return rows[c] holds element c of every input
// row (4 stages of 16 shuffles: pairs, quads, 128-bit lanes, 256-bit halves).
inline void transpose_16x16(__m512 rows[16]) noexcept {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);      // r_i[0] r_i+1[0] r_i[1] r_i+1[1] | ...
    t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);  // r_i[2] r_i+1[2] r_i[3] r_i+1[3] | ...
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + c], lane l: rows 4g..4g+3 of column c + 4l
    u[4 * g + 0] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v_even = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);  // g0: c, c+8; g1: c, c+8
    const __m512 v_odd = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);   // g0: c+4, c+12; g1: ...
    const __m512 w_even = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
    const __m512 w_odd = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    rows[c] = _mm512_shuffle_f32x4(v_even, w_even, 0x88);
    rows[c + 8] = _mm512_shuffle_f32x4(v_even, w_even, 0xDD);
    rows[c + 4] = _mm512_shuffle_f32x4(v_odd, w_odd, 0x88);
    rows[c + 12] = _mm512_shuffle_f32x4(v_odd, w_odd, 0xDD);
  }
}
#endif

// Packs B = Wᵀ for W stored [N, K] (matmul): dst[(s*kc + k)*NR + j] = W[n0+s*NR+j, k0+k] widened to
// f32; columns past nc padded with zeros. On AVX-512, whole 16x16 blocks are loaded row-wise
// (contiguous, converted on load) and transposed in registers; the edges go element by element.
template <class Arch, class W>
inline void pack_b_transposed(const View<const W, 2>& w, index_t n0, index_t nc, index_t k0,
                              index_t kc, float* dst) noexcept {
  constexpr index_t NR = GemmShape<Arch>::kNr;
  const index_t ldw = w.stride(0);
  for (index_t s = 0; s * NR < nc; ++s) {
    const index_t cols = std::min(NR, nc - s * NR);
    float* d = dst + s * kc * NR;
    index_t j_done = 0, k_done = 0;
#if defined(__AVX512F__)
    if constexpr (kIsAvx512<Arch> && NR % 16 == 0) {
      j_done = cols / 16 * 16;
      k_done = kc / 16 * 16;
      for (index_t j = 0; j < j_done; j += 16) {
        const W* src = w.data() + (n0 + s * NR + j) * ldw + k0;
        for (index_t k = 0; k < k_done; k += 16) {
          __m512 block[16];
          for (int r = 0; r < 16; ++r) block[r] = load_widened<Arch>(src + r * ldw + k);
          transpose_16x16(block);
          for (int c = 0; c < 16; ++c) _mm512_store_ps(d + (k + c) * NR + j, block[c]);
        }
      }
    }
#endif
    // Element-wise: columns [j_done, cols) for every k, and k in [k_done, kc) for the rest.
    for (index_t j = 0; j < cols; ++j) {
      const W* src = w.data() + (n0 + s * NR + j) * ldw + k0;
      for (index_t k = j < j_done ? k_done : 0; k < kc; ++k) {
        d[k * NR + j] = detail::weight_to_float(src[k]);
      }
    }
    for (index_t j = cols; j < NR; ++j) {
      for (index_t k = 0; k < kc; ++k) d[k * NR + j] = 0.0f;
    }
  }
}

// Packs B = W for W stored [K, N] (matmul_in_out): dst[(s*kc + k)*NR + j] = W[k0+k, n0+s*NR+j].
template <class Arch, class W>
inline void pack_b_direct(const View<const W, 2>& w, index_t n0, index_t nc, index_t k0, index_t kc,
                          float* dst) noexcept {
  using B = FloatBatch<Arch>;
  constexpr index_t NR = GemmShape<Arch>::kNr, L = B::size;
  const index_t ldw = w.stride(0);
  for (index_t s = 0; s * NR < nc; ++s) {
    const index_t cols = std::min(NR, nc - s * NR);
    float* d = dst + s * kc * NR;
    for (index_t k = 0; k < kc; ++k) {
      const W* src = w.data() + (k0 + k) * ldw + n0 + s * NR;
      if (cols == NR) {
        for (index_t v = 0; v < NR; v += L) load_widened<Arch>(src + v).store_aligned(d + k * NR + v);
      } else {
        for (index_t j = 0; j < cols; ++j) d[k * NR + j] = detail::weight_to_float(src[j]);
        for (index_t j = cols; j < NR; ++j) d[k * NR + j] = 0.0f;
      }
    }
  }
}

// C tile [rows, cols] (rows <= MR, cols <= NR) at y (row stride ldy) = (accumulate ? C : 0) +
// a_sliver · b_sliver over kc.  (hot spot: MR x 2 FMAs per k, all operands in registers or L1)
template <class Arch>
inline void gemm_micro_kernel(const float* a, const float* b, index_t kc, float* y, index_t ldy,
                              index_t rows, index_t cols, bool accumulate) noexcept {
  using B = FloatBatch<Arch>;
  constexpr index_t MR = GemmShape<Arch>::kMr, NR = GemmShape<Arch>::kNr, L = B::size;
  constexpr index_t NV = NR / L;  // vectors per tile row
  B c[MR][NV];
#pragma GCC unroll 16
  for (index_t i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (index_t v = 0; v < NV; ++v) c[i][v] = B(0.0f);
  }
  for (index_t k = 0; k < kc; ++k) {
    B bv[NV];
#pragma GCC unroll 4
    for (index_t v = 0; v < NV; ++v) bv[v] = B::load_aligned(b + k * NR + v * L);
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) {
      const B av(a[k * MR + i]);
#pragma GCC unroll 4
      for (index_t v = 0; v < NV; ++v) c[i][v] = xsimd::fma(av, bv[v], c[i][v]);
    }
  }
  if (rows == MR && cols == NR) {
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) {
      float* yr = y + i * ldy;
#pragma GCC unroll 4
      for (index_t v = 0; v < NV; ++v) {
        if (accumulate) c[i][v] += B::load_unaligned(yr + v * L);
        c[i][v].store_unaligned(yr + v * L);
      }
    }
  } else {
    alignas(64) float tile[MR * NR];
    for (index_t i = 0; i < MR; ++i) {
      for (index_t v = 0; v < NV; ++v) c[i][v].store_aligned(tile + i * NR + v * L);
    }
    for (index_t i = 0; i < rows; ++i) {
      for (index_t j = 0; j < cols; ++j) {
        y[i * ldy + j] = accumulate ? y[i * ldy + j] + tile[i * NR + j] : tile[i * NR + j];
      }
    }
  }
}

// y [M, N] = x [M, K] · B, B given by a packer for column range [n0, n0+nc) and K range.
// Columns are split across threads in multiples of NR.
template <class Arch, class PackB>
void gemm_packed(const View<const float, 2>& x, const View<float, 2>& y, index_t n_cols,
                 PackB&& pack_b) {
  using Shape = GemmShape<Arch>;
  constexpr index_t MR = Shape::kMr, NR = Shape::kNr, KC = Shape::kKc, MC = Shape::kMc,
                    NC = Shape::kNc;
  const index_t M = x.extent(0), K = x.extent(1), N = n_cols;
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (index_t m = 0; m < M; ++m) {
      for (index_t n = 0; n < N; ++n) y(m, n) = 0.0f;
    }
    return;
  }
  const index_t n_slivers = (N + NR - 1) / NR;
  const index_t work_per_sliver = M * K * NR;
  const index_t grain = std::max<index_t>(1, kMinWorkPerThread / std::max<index_t>(work_per_sliver, 1));
  parallel_for_chunks(n_slivers, grain, [&](index_t s_begin, index_t s_end) {
    const index_t col_begin = s_begin * NR, col_end = std::min(N, s_end * NR);
    // The A block holds whole MR-row slivers: round its rows up to a multiple of MR.
    float* b_pack = thread_scratch(NC * KC + (MC + MR - 1) / MR * MR * KC);
    float* a_pack = b_pack + NC * KC;
    const index_t ldy = y.stride(0);
    for (index_t n0 = col_begin; n0 < col_end; n0 += NC) {
      const index_t nc = std::min(NC, col_end - n0);
      for (index_t k0 = 0; k0 < K; k0 += KC) {
        const index_t kc = std::min(KC, K - k0);
        pack_b(n0, nc, k0, kc, b_pack);
        for (index_t m0 = 0; m0 < M; m0 += MC) {
          const index_t mc = std::min(MC, M - m0);
          pack_a<Arch>(x, m0, mc, k0, kc, a_pack);
          for (index_t js = 0; js * NR < nc; ++js) {
            const float* b_sliver = b_pack + js * kc * NR;
            const index_t cols = std::min(NR, nc - js * NR);
            for (index_t is = 0; is * MR < mc; ++is) {
              const index_t rows = std::min(MR, mc - is * MR);
              float* y_tile = y.data() + (m0 + is * MR) * ldy + n0 + js * NR;
              gemm_micro_kernel<Arch>(a_pack + is * kc * MR, b_sliver, kc, y_tile, ldy, rows, cols,
                                      k0 > 0);
            }
          }
        }
      }
    }
  });
}

// ---- matmul_in_out decode path: y[t, :] = Σ_k x[t, k]·W[k, :], rows of W streamed in order -----

inline constexpr index_t kInOutRows = 4;  // rows of W combined per sweep over the outputs
// Up to this many tokens matmul_in_out streams W (each y row is swept once per group of W rows, so
// the cost per token is higher than in matmul's streaming path); more use the packed GEMM.
inline constexpr index_t kInOutStreamMaxTokens = 4;

template <class Arch, class W>
void matmul_in_out_streaming(const View<const float, 2>& x, const View<const W, 2>& w,
                             const View<float, 2>& y) {
  using B = FloatBatch<Arch>;
  constexpr index_t L = B::size;
  const index_t n_tokens = x.extent(0), K = x.extent(1), N = w.extent(1), ldw = w.stride(0);
  // Each thread owns a range of output columns (a multiple of L wide) and sweeps all of K.
  const index_t n_chunks = (N + L - 1) / L;
  const index_t grain = std::max<index_t>(1, kMinWorkPerThread / std::max<index_t>(K * L * n_tokens, 1));
  parallel_for_chunks(n_chunks, grain, [&](index_t c_begin, index_t c_end) {
    const index_t j_begin = c_begin * L, j_end = std::min(N, c_end * L);
    const index_t j_vec_end = j_begin + (j_end - j_begin) / L * L;
    auto y_row = [&](index_t t) { return y.data() + t * y.stride(0); };
    auto x_row = [&](index_t t) { return x.data() + t * x.stride(0); };
    for (index_t t = 0; t < n_tokens; ++t) {
      for (index_t j = j_begin; j < j_end; ++j) y_row(t)[j] = 0.0f;
    }
    // k outer, tokens inner: each group of W rows comes from memory once and from cache for the
    // other tokens; each y element still sums its k terms in order.
    index_t k = 0;
    for (; k + kInOutRows <= K; k += kInOutRows) {
      const W* w0 = w.data() + k * ldw;
      for (index_t t = 0; t < n_tokens; ++t) {
        float* yr = y_row(t);
        const float* xr = x_row(t);
        const B x0(xr[k]), x1(xr[k + 1]), x2(xr[k + 2]), x3(xr[k + 3]);
        for (index_t j = j_begin; j < j_vec_end; j += L) {
          // ((y + x0 w0) + x1 w1) + ...: the same order as the scalar tail below.
          B acc = B::load_unaligned(yr + j);
          acc = xsimd::fma(x0, load_widened<Arch>(w0 + j), acc);
          acc = xsimd::fma(x1, load_widened<Arch>(w0 + ldw + j), acc);
          acc = xsimd::fma(x2, load_widened<Arch>(w0 + 2 * ldw + j), acc);
          acc = xsimd::fma(x3, load_widened<Arch>(w0 + 3 * ldw + j), acc);
          acc.store_unaligned(yr + j);
        }
        for (index_t j = j_vec_end; j < j_end; ++j) {
          float acc = yr[j];
          for (index_t r = 0; r < kInOutRows; ++r) {
            acc += xr[k + r] * detail::weight_to_float(w0[r * ldw + j]);
          }
          yr[j] = acc;
        }
      }
    }
    for (; k < K; ++k) {
      const W* wk = w.data() + k * ldw;
      for (index_t t = 0; t < n_tokens; ++t) {
        float* yr = y_row(t);
        const float xk_s = x_row(t)[k];
        const B xk(xk_s);
        for (index_t j = j_begin; j < j_vec_end; j += L) {
          xsimd::fma(xk, load_widened<Arch>(wk + j), B::load_unaligned(yr + j)).store_unaligned(yr + j);
        }
        for (index_t j = j_vec_end; j < j_end; ++j) yr[j] += xk_s * detail::weight_to_float(wk[j]);
      }
    }
  });
}

}  // namespace cpu_detail

// y = x·Wᵀ, overwriting y: x [n_tokens, in] f32, w [out, in] float/bf16/f16 (any alignment),
// y [n_tokens, out] f32; innermost strides 1; y must not alias x or w.
// n_tokens <= 16: weights streamed once (decode); more: packed GEMM (prefill). f32 accumulation.
// Runs on the OpenMP team when the product is large enough; call it from one thread at a time
// per y. The GEMM path keeps a per-thread packing buffer (allocated on a thread's first call).
template <class W, class Arch>
void matmul(backend::cpu_simd<Arch>, View<const float, 2> x, View<const W, 2> w, View<float, 2> y) {
  static_assert(detail::is_weight_type_v<W>,
                "moe::kernels::matmul: weights must be float, bf16 or f16");
  detail::check_matmul(x, w, y, "matmul");
  if (x.extent(0) <= cpu_detail::kStreamMaxTokens) {
    cpu_detail::matmul_streaming<Arch>(x, w, y);
  } else {
    cpu_detail::gemm_packed<Arch>(x, y, w.extent(0),
                                  [&](index_t n0, index_t nc, index_t k0, index_t kc, float* dst) {
                                    cpu_detail::pack_b_transposed<Arch>(w, n0, nc, k0, kc, dst);
                                  });
  }
}

// y = x·W, overwriting y: x [n_tokens, in] f32, w [in, out] float/bf16/f16 (any alignment),
// y [n_tokens, out] f32. Same rules as matmul.
template <class W, class Arch>
void matmul_in_out(backend::cpu_simd<Arch>, View<const float, 2> x, View<const W, 2> w,
                   View<float, 2> y) {
  static_assert(detail::is_weight_type_v<W>,
                "moe::kernels::matmul_in_out: weights must be float, bf16 or f16");
  detail::check_matmul_in_out(x, w, y, "matmul_in_out");
  if (x.extent(0) <= cpu_detail::kInOutStreamMaxTokens) {
    cpu_detail::matmul_in_out_streaming<Arch>(x, w, y);
  } else {
    cpu_detail::gemm_packed<Arch>(x, y, w.extent(1),
                                  [&](index_t n0, index_t nc, index_t k0, index_t kc, float* dst) {
                                    cpu_detail::pack_b_direct<Arch>(w, n0, nc, k0, kc, dst);
                                  });
  }
}

}  // namespace moe::kernels

#include "moe/kernels/cpu/warnings_pop.hpp"
