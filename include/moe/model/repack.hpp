// The cpu backend's load-time repack: the Q4_0, Q8_0, IQ4_NL, Q4_K and Q6_K matrices that only linear() reads
// (attention, MLA and DeltaNet projections, dense and shared MLPs, row-major expert banks, the
// output head) are copied into the row-interleaved layout of quant/rows8.hpp, which the cpu
// kernels read without a horizontal reduction per block (kernels/cpu/interleaved_matmul.hpp).
// Outputs are bitwise those of the stored layout; what changes is speed, the load time (one pass
// over those bytes) and where they live (one host allocation instead of the mapped file, whose
// pages are handed to `release` after each batch of copies, so the peak resident set stays about the file).
// Matrices whose rows are not a multiple of 8, the embedding (rows are gathered), MLA's kv_b
// (sliced per head) and input-major banks stay as stored. MOE_CPU_REPACK=0 in the environment
// turns the repack off.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/parallel.hpp"
#include "moe/model/weights.hpp"
#include "moe/quant/rows8.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <new>
#include <memory>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace moe::model {

// What the repack did (BasicModel::repack_info()).
struct RepackInfo {
  std::size_t tensors = 0;  // matrices interleaved
  std::size_t bytes = 0;    // their bytes
  double seconds = 0;       // time spent copying them
};

// Called with each source matrix's bytes once its interleaved copy exists (a loader passes its
// mapping's madvise(DONTNEED) here); may be empty.
using ReleaseBytes = std::function<void(std::span<const std::byte>)>;

// Whether Backend runs interleaved matrices (a host backend with the cpu kernels for them).
template <class Backend>
constexpr bool interleaves_weights() noexcept {
  return is_host_memory_v<typename Backend::memory> && layers::has_interleaved_matmul<Backend, quant::BlockQ4_0>();
}

inline bool repack_enabled_by_environment() noexcept {
  const char* e = std::getenv("MOE_CPU_REPACK");
  return e == nullptr || std::string_view(e) != "0";
}

namespace repack_detail {

// The copies' memory: uninitialised (every byte is written by the repack) and, on Linux, an
// anonymous mapping advised for transparent huge pages (the decode kernels stream all of it: 2 MiB
// pages take the TLB misses away, and the kernel clears them faster at first touch).
class CopyArena {
 public:
  explicit CopyArena(std::size_t bytes) : bytes_(std::max<std::size_t>(bytes, 1)) {
#if defined(__linux__)
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    require(p != MAP_FAILED, ErrorCode::kOutOfMemory, "repack: cannot map {} bytes for the interleaved weights", bytes_);
    ::madvise(p, bytes_, MADV_HUGEPAGE);  // a hint: ignored where THP is off
    data_ = static_cast<std::byte*>(p);
#else
    data_ = static_cast<std::byte*>(::operator new(bytes_, std::align_val_t{64}, std::nothrow));
    require(data_ != nullptr, ErrorCode::kOutOfMemory, "repack: cannot allocate {} bytes for the interleaved weights",
            bytes_);
#endif
  }
  ~CopyArena() {
#if defined(__linux__)
    ::munmap(data_, bytes_);
#else
    ::operator delete(data_, std::align_val_t{64});
#endif
  }
  CopyArena(const CopyArena&) = delete;
  CopyArena& operator=(const CopyArena&) = delete;
  std::byte* data() const noexcept { return data_; }

 private:
  std::size_t bytes_;
  std::byte* data_ = nullptr;
};

// The matrices that reach the kernels only through linear() (names as in the transform lists).
inline bool linear_only(std::string_view name) noexcept {
  constexpr std::string_view kNames[] = {
      "q_proj.weight",        "k_proj.weight",       "v_proj.weight",
      "o_proj.weight",        "q_proj.gate.weight",  "gate_proj.weight",
      "up_proj.weight",       "down_proj.weight",    "lm_head.weight",
      "q_a_proj.weight",      "q_b_proj.weight",     "kv_a_proj_with_mqa.weight",
      "indexer.wq_b.weight",  "indexer.wk.weight",   "indexer.weights_proj.weight",
      "linear_attn.in_proj_qkv.weight", "linear_attn.in_proj_z.weight", "linear_attn.in_proj_b.weight",
      "linear_attn.in_proj_a.weight",   "linear_attn.out_proj.weight",
      "gate", "up", "gate_up", "down"};  // expert banks (the input-major ones are taken out below)
  for (const auto n : kNames) {
    if (n == name) return true;
  }
  return false;
}

template <class F>
void visit_interleavable(DType t, F&& f) {
  switch (t) {
    case DType::q4_0: f(quant::BlockQ4_0{}); break;
    case DType::q8_0: f(quant::BlockQ8_0{}); break;
    case DType::iq4_nl: f(quant::BlockIq4Nl{}); break;
    case DType::q4_k: f(quant::BlockQ4_K{}); break;
    case DType::q6_k: f(quant::BlockQ6_K{}); break;
    default: break;
  }
}

inline bool interleavable(const layers::WeightMatrix<>& m) noexcept {
  bool fmt = false;
  visit_interleavable(m.dtype, [&](auto blk) {
    constexpr auto BE = static_cast<index_t>(decltype(blk)::block_elements);
    fmt = m.cols % BE == 0 && m.row_stride % BE == 0 && m.row_stride >= m.cols;
  });
  return fmt && !m.empty() && m.row_group == 1 && m.rows > 0 && m.rows % quant::kInterleavedRows == 0;
}

inline bool input_major(layers::ExpertLayout l) noexcept {
  return l == layers::ExpertLayout::kInputMajorGlu || l == layers::ExpertLayout::kInputMajorFused;
}

// Groups [g0, g1) of 8 rows of `m` into its interleaved copy at dst.
template <class B>
void interleave_groups(const layers::WeightMatrix<>& m, std::byte* dst, std::size_t g0, std::size_t g1) noexcept {
  constexpr int R = quant::kInterleavedRows;
  const auto nb = static_cast<std::size_t>(m.cols / static_cast<index_t>(B::block_elements));
  const auto stride = static_cast<std::size_t>(m.row_stride / static_cast<index_t>(B::block_elements));
  const auto* src = reinterpret_cast<const B*>(m.data);
  auto* out = reinterpret_cast<quant::Rows8<B>*>(dst);
  for (std::size_t g = g0; g < g1; ++g) {
    const B* rows[R];
    for (int r = 0; r < R; ++r) rows[r] = src + (g * R + static_cast<std::size_t>(r)) * stride;
    for (std::size_t b = 0; b < nb; ++b) quant::interleave(rows, b, out[g * nb + b]);
  }
}

// The copies of `batch` (matrix, destination) in one parallel region over all their 8-row groups:
// one region per batch rather than per matrix (a model has thousands of expert matrices, and each
// region's start and end barrier cost more than a small matrix's copy).
inline void interleave_batch(std::span<const std::pair<const layers::WeightMatrix<>*, std::byte*>> batch) {
  std::vector<std::size_t> first(batch.size() + 1, 0);  // first[k]: the first group of matrix k
  for (std::size_t k = 0; k < batch.size(); ++k) {
    first[k + 1] = first[k] + static_cast<std::size_t>(batch[k].first->rows / quant::kInterleavedRows);
  }
  parallel_for_chunks(first.back(), 16, [&](std::size_t g0, std::size_t g1) {
    auto k = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), g0) - first.begin()) - 1;
    for (std::size_t g = g0; g < g1; ++k) {
      const std::size_t end = std::min(g1, first[k + 1]);
      const layers::WeightMatrix<>& m = *batch[k].first;
      std::byte* const dst = batch[k].second;
      visit_interleavable(m.dtype, [&](auto blk) { interleave_groups<decltype(blk)>(m, dst, g - first[k], end - first[k]); });
      g = end;
    }
  });
}

}  // namespace repack_detail

struct Interleaved {
  ModelWeights<> weights;
  std::shared_ptr<const void> storage;  // the interleaved copies and the source storage
  RepackInfo info;
};

// `w` with its interleavable matrices (see the top) copied into the interleaved layout; `storage`
// keeps the source bytes alive (the matrices left as stored still point into them).
inline Interleaved interleave_weights(const ModelWeights<>& w, std::shared_ptr<const void> storage,
                                      const ReleaseBytes& release = {}) {
  using Matrix = layers::WeightMatrix<>;
  const auto t0 = std::chrono::steady_clock::now();
  // Pass 1: the matrices to copy, once per source pointer (a tensor bound twice is copied once).
  std::unordered_map<const std::byte*, std::size_t> offsets;  // source -> offset in the copy
  std::vector<const Matrix*> order;
  (void)w.transform([&](const char* name, const auto& t) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(t)>, Matrix>) {
      if (repack_detail::linear_only(name) && repack_detail::interleavable(t) && !offsets.contains(t.data)) {
        offsets.emplace(t.data, 0);
        order.push_back(&t);
      }
    }
    return t;
  });
  for (const auto& L : w.layers) {  // an input-major bank's matrices are read by linear_in_out
    const auto& bank = L.moe_weights.experts;
    if (!repack_detail::input_major(bank.layout)) continue;
    for (const auto* list : {&bank.gate_up, &bank.down}) {
      for (const auto& m : *list) offsets.erase(m.data);
    }
  }
  std::erase_if(order, [&](const Matrix* m) { return !offsets.contains(m->data); });
  // A tensor bound twice with different shapes is left as stored.
  (void)w.transform([&](const char*, const auto& t) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(t)>, Matrix>) {
      const auto it = offsets.find(t.data);
      if (it != offsets.end()) {
        const auto first = std::find_if(order.begin(), order.end(), [&](const Matrix* m) { return m->data == t.data; });
        if (first != order.end() && ((*first)->rows != t.rows || (*first)->cols != t.cols ||
                                     (*first)->row_stride != t.row_stride || (*first)->dtype != t.dtype)) {
          order.erase(first);
          offsets.erase(it);
        }
      }
    }
    return t;
  });
  Interleaved out;
  if (order.empty()) {
    out.weights = w;
    out.storage = std::move(storage);
    return out;
  }
  // Pass 2: one allocation, each copy at a 64-byte aligned offset.
  std::size_t total = 0;
  for (const Matrix* m : order) {
    offsets[m->data] = total;
    total += (format_row_bytes(m->dtype, m->rows * m->cols) + 63) / 64 * 64;
  }
  auto copy = std::make_shared<repack_detail::CopyArena>(total);
  // In batches of about 64 MiB of source, each batch's source bytes released once it is copied (so
  // that a mapped file's pages can leave memory while the copies fill it).
  constexpr std::size_t kBatchBytes = std::size_t{64} << 20;
  std::vector<std::pair<const Matrix*, std::byte*>> batch;
  std::size_t batch_bytes = 0;
  const auto flush = [&] {
    repack_detail::interleave_batch(batch);
    for (const auto& [m, dst] : batch) {
      if (release) release(std::span<const std::byte>(m->data, m->bytes()));
      out.info.tensors += 1;
      out.info.bytes += format_row_bytes(m->dtype, m->rows * m->cols);
    }
    batch.clear();
    batch_bytes = 0;
  };
  for (const Matrix* m : order) {
    batch.emplace_back(m, copy->data() + offsets[m->data]);
    batch_bytes += m->bytes();
    if (batch_bytes >= kBatchBytes) flush();
  }
  if (!batch.empty()) flush();
  // Pass 3: point the matrices at their copies.
  std::byte* base = copy->data();
  out.weights = w.transform([&](const char* name, const auto& t) {
    auto r = t;
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(t)>, Matrix>) {
      const auto it = offsets.find(t.data);
      if (it != offsets.end() && repack_detail::linear_only(name)) {
        r.data = base + it->second;
        r.row_stride = t.cols;
        r.row_group = quant::kInterleavedRows;
      }
    }
    return r;
  });
  out.storage = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<repack_detail::CopyArena>>>(
      std::move(storage), std::move(copy));
  out.info.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace moe::model
