// Rows of a block-format matrix staged through shared memory for the decode GEMV (matmul.cuh):
// a warp copies a segment of each of its rows with 16-byte asynchronous copies (cp.async, which
// bypass the registers and L1) into a slot of its own, and decodes the segment from there while
// the next segments' copies are in flight.
//
// Why: ggml blocks are 17-210 bytes and only 1-8-byte aligned, so a lane that reads its run or
// unit straight from global memory issues 2-8-byte loads; the bytes a warp then has in flight are
// a fraction of what HBM needs (an H100 read 12-27% of its copy bandwidth that way on a
// [14336, 4096] Q4_0 / Q4_K matrix, 2026-12-07, where bf16's 16-byte loads read 87%), and holding
// more loads in flight costs registers (182 per thread in the Q4_0 expert GEMV: one block per SM).
// Copies of whole 16-byte chunks cover any block alignment: the chunks span the segment's bytes
// from the 16-byte boundary at or below its start, so a slot holds the segment at the same offset
// modulo 16 as in global memory and every load of quant/runs.hpp and quant/q8_dot.hpp keeps its
// alignment. The chunk past a row's last byte stays inside the allocation because device buffers
// are a multiple of 16 bytes (device_buffer.cuh) and start 256-byte aligned.
//
// A segment is kStageSegElems elements of a row (whole blocks; one block for formats with larger
// blocks), fixed per format: a lane's partial sums follow the segments in order, whatever the
// number of rows or tokens a warp serves, so a product does not change with the batch it is in.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/kernels/cuda/common.cuh"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace moe::kernels::cuda_detail {

inline constexpr int kStageSegElems = 512;  // elements of a row per segment
inline constexpr int kStageSlots = 8;       // segment slots per warp: kRows rows x (kStageSlots / kRows) stages
inline constexpr int kStageWarps = 8;       // warps per block of the kernels that stage (kGemvWarpsPerBlock)

template <class W>
inline constexpr int kSegBlocks =
    W::block_elements >= kStageSegElems ? 1 : static_cast<int>(kStageSegElems / W::block_elements);
// A slot: the segment's bytes plus up to 15 before it (its start's offset in a 16-byte chunk) and
// the rest of its last chunk.
template <class W>
inline constexpr int kSlotBytes = static_cast<int>((kSegBlocks<W> * sizeof(W) + 15 + 15) / 16 * 16);

// The calling warp's kStageSlots slots (one array per format and kernel, shared by every GEMV
// instance the kernel inlines: a warp runs one at a time). Blocks of at most kStageWarps warps.
template <class W>
__device__ __forceinline__ unsigned char* stage_slots() {
  __shared__ __align__(16) unsigned char slots[kStageWarps * kStageSlots * kSlotBytes<W>];
  return slots + (threadIdx.x / kWarpSize) * (kStageSlots * kSlotBytes<W>);
}

// 16 bytes from global to shared memory, asynchronously (sm_80+; a plain copy before that).
__device__ __forceinline__ void stage_copy16(void* shared, const void* global) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(global) : "memory");
#else
  *static_cast<uint4*>(shared) = __ldcs(static_cast<const uint4*>(global));
#endif
}
__device__ __forceinline__ void stage_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void stage_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Offset of p in its 16-byte chunk.
__device__ __forceinline__ unsigned chunk_offset(const void* p) {
  return static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(p) & 15u);
}

// Starts copying blocks [b0, b0 + nb) of `row` into `slot` (by the whole warp).
template <class W>
__device__ __forceinline__ void stage_segment(unsigned char* slot, const W* row, int b0, int nb, int lane) {
  const unsigned char* start = reinterpret_cast<const unsigned char*>(row + b0);
  const unsigned char* base = start - chunk_offset(start);
  const int chunks = static_cast<int>((chunk_offset(start) + static_cast<unsigned>(nb) * sizeof(W) + 15) / 16);
  for (int c = lane; c < chunks; c += kWarpSize) stage_copy16(slot + 16 * c, base + 16 * c);
}

// Calls fn(seg, b0, nb) for the segments of the warp's kRows rows (n_blocks blocks each) in
// order, seg[r] pointing at block b0 of row r in shared memory, nb blocks of it valid; the
// copies of the next kStageSlots / kRows - 1 segments are in flight meanwhile. Called by a whole
// warp; fn reads only its segment (the slot is refilled after it returns).
template <class W, int kRows, class Fn>
__device__ __forceinline__ void for_staged_segments(const W* const (&w_rows)[kRows], int n_blocks, Fn&& fn) {
  constexpr int kStages = kStageSlots / kRows;
  static_assert(kStages >= 2 && kStages * kRows == kStageSlots, "kRows must be 1, 2 or 4");
  constexpr int kSeg = kSegBlocks<W>;
  unsigned char* slots = stage_slots<W>();
  const int lane = threadIdx.x % kWarpSize;
  const int n_seg = (n_blocks + kSeg - 1) / kSeg;
  const auto slot = [&](int s, int r) { return slots + ((s % kStages) * kRows + r) * kSlotBytes<W>; };
  const auto issue = [&](int s) {
    if (s < n_seg) {
      const int b0 = s * kSeg, nb = n_blocks - b0 < kSeg ? n_blocks - b0 : kSeg;
#pragma unroll
      for (int r = 0; r < kRows; ++r) stage_segment(slot(s, r), w_rows[r], b0, nb, lane);
    }
    stage_commit();  // an empty group past the end keeps the wait count below uniform
  };
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) issue(s);
#pragma unroll 1
  for (int s = 0; s < n_seg; ++s) {
    issue(s + kStages - 1);  // into the slot of segment s - 1, done with since the last __syncwarp
    stage_wait<kStages - 1>();
    __syncwarp();
    const int b0 = s * kSeg, nb = n_blocks - b0 < kSeg ? n_blocks - b0 : kSeg;
    const W* seg[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) seg[r] = reinterpret_cast<const W*>(slot(s, r) + chunk_offset(w_rows[r] + b0));
    fn(seg, b0, nb);
    __syncwarp();
  }
  stage_wait<0>();  // nothing of this warp's left in flight (the trailing groups are empty)
}

}  // namespace moe::kernels::cuda_detail

#endif  // MOE_ENABLE_CUDA && __CUDACC__
