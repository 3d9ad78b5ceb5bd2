// The GPU's limits for moe-bench --backend cuda, measured in the same run as the figures beside
// them: the read bandwidth of device memory (a kernel that sums a buffer far larger than L2 with
// 16-byte streaming loads, as the decode GEMV reads weights) and the bf16 tensor-core peak
// (mma.sync m16n8k16 with f32 accumulation, the instruction the prefill GEMM uses, back to back
// on register operands in every warp the device holds).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/core/buffer.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/cuda/device_buffer.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe::bench {

namespace device_probe_detail {

using kernels::cuda_detail::kernel_prologue;

inline constexpr int kThreads = 256;

static __global__ void __launch_bounds__(kThreads) read_kernel(const uint4* __restrict__ p, std::size_t n, float* out) {
  kernel_prologue();
  std::uint32_t acc = 0;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * kThreads + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * kThreads) {
    const uint4 v = __ldcs(p + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x9e3779b9u) out[blockIdx.x] = static_cast<float>(acc);  // keeps the loads; never true for zeros
}

inline constexpr int kMmaChains = 8;

static __global__ void __launch_bounds__(kThreads) mma_kernel(int iterations, float* out) {
  kernel_prologue();
  float acc[kMmaChains][4] = {};
  const std::uint32_t a0 = 0x3f803f80u + threadIdx.x, b0 = 0x3f803f80u ^ threadIdx.x;  // bf16 pairs near 1
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  for (int it = 0; it < iterations; ++it) {
#pragma unroll
    for (int c = 0; c < kMmaChains; ++c) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
          "{%0,%1,%2,%3};\n"
          : "+f"(acc[c][0]), "+f"(acc[c][1]), "+f"(acc[c][2]), "+f"(acc[c][3])
          : "r"(a0), "r"(a0), "r"(a0), "r"(a0), "r"(b0), "r"(b0));
    }
  }
#else
  (void)iterations;
#endif
  float s = 0.0f;
  for (int c = 0; c < kMmaChains; ++c) s += acc[c][0] + acc[c][1] + acc[c][2] + acc[c][3];
  if (s == 1.2345f) out[blockIdx.x] = s;  // keeps the MMAs
}

// Median of `runs` timings (seconds) of f on the stream, after one warm-up.
template <class F>
double median_seconds(F&& f, int runs) {
  cudaEvent_t a{}, b{};
  MOE_CUDA_CHECK(cudaEventCreate(&a));
  MOE_CUDA_CHECK(cudaEventCreate(&b));
  f();
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    MOE_CUDA_CHECK(cudaEventRecord(a, ::moe::cuda::stream()));
    f();
    MOE_CUDA_CHECK(cudaEventRecord(b, ::moe::cuda::stream()));
    MOE_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    MOE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1e-3);
  }
  (void)cudaEventDestroy(a);
  (void)cudaEventDestroy(b);
  std::nth_element(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(t.size() / 2), t.end());
  return t[t.size() / 2];
}

inline int sm_count() {
  int device = 0, sms = 0;
  MOE_CUDA_CHECK(cudaGetDevice(&device));
  MOE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

}  // namespace device_probe_detail

// Device memory read bandwidth: one pass over `bytes` (rounded to 16) of device memory.
class DeviceBandwidthProbe {
 public:
  explicit DeviceBandwidthProbe(std::size_t bytes) : n_(std::max<std::size_t>(bytes / 16, 1)), buf_(n_ * 16), out_(1024) {
    MOE_CUDA_CHECK(cudaMemsetAsync(buf_.data(), 0, n_ * 16, ::moe::cuda::stream()));
  }
  std::size_t bytes() const noexcept { return n_ * 16; }
  // Bytes per second of one pass (the median of three).
  double sample() const {
    namespace d = device_probe_detail;
    const unsigned grid = static_cast<unsigned>(std::min<std::size_t>(4 * d::sm_count(), 1024));
    const double s = d::median_seconds([&] {
      kernels::cuda_detail::launch(d::read_kernel, grid, d::kThreads, 0, reinterpret_cast<const uint4*>(buf_.data()), n_,
                                   out_.data());
      ::moe::cuda::check_launch("device read probe");
    }, 3);
    return static_cast<double>(bytes()) / s;
  }

 private:
  std::size_t n_;
  Buffer<unsigned char, device_memory> buf_;
  mutable Buffer<float, device_memory> out_;  // written only if the sum hits a sentinel
};

// bf16 tensor-core FLOP/s (2 per multiply-add) of mma.sync m16n8k16 on every SM.
inline double measure_device_mma_peak(int iterations = 4096) {
  namespace d = device_probe_detail;
  Buffer<float, device_memory> out(4096);
  const unsigned grid = static_cast<unsigned>(std::min(8 * d::sm_count(), 4096));
  const double s = d::median_seconds([&] {
    kernels::cuda_detail::launch(d::mma_kernel, grid, d::kThreads, 0, iterations, out.data());
    ::moe::cuda::check_launch("device mma probe");
  }, 3);
  const double flops = 2.0 * 16 * 8 * 16 * d::kMmaChains * static_cast<double>(iterations) * grid * (d::kThreads / 32);
  return flops / s;
}

}  // namespace moe::bench

#endif  // MOE_ENABLE_CUDA && __CUDACC__
