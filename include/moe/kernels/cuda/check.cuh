// Error checking for CUDA runtime calls: a failed call becomes moe::Error(ErrorCode::kDevice)
// whose message names the call and cudaGetErrorString's text. Host code only.
#pragma once

#if defined(MOE_ENABLE_CUDA)

#include "moe/core/error.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace moe::cuda {

// Throws Error(kDevice) if `status` is not cudaSuccess. `call` is the source text of the call
// (MOE_CUDA_CHECK passes it). Clears the runtime's last-error slot, so that a non-sticky error is
// reported once; a sticky error (a kernel fault) keeps failing every later call, as CUDA defines.
inline void check(cudaError_t status, std::string_view call) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  fail(ErrorCode::kDevice, "{} failed: {} ({})", call, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

// MOE_CUDA_PROFILE=1: a per-kernel time profile of everything the process launches. Every
// launch records an event right after it on the backend's stream; the time between consecutive
// events is charged to the later launch (its execution, or the gap before it when the host
// cannot keep up), summed per kernel name and printed to stderr at exit. Capturing CUDA graphs is
// off while profiling (events inside a capture would be graph nodes). A diagnostic for
// development: it synchronises nothing, but creates an event per launch.
class KernelProfile {
 public:
  static bool enabled() {
    static const bool on = [] {
      const char* v = std::getenv("MOE_CUDA_PROFILE");
      return v != nullptr && v[0] == '1';
    }();
    return on;
  }

  // Records a mark for `kernel` on the backend's stream (the calling thread's).
  static void mark(std::string_view kernel) {
    static KernelProfile* profile = [] {
      auto* p = new KernelProfile();  // never destroyed: printed by the atexit handler
      std::atexit([] { instance()->print(); });
      return p;
    }();
    instance() = profile;
    cudaEvent_t e = nullptr;
    if (cudaEventCreate(&e) != cudaSuccess || cudaEventRecord(e, cudaStreamPerThread) != cudaSuccess) {
      (void)cudaGetLastError();
      return;
    }
    const std::lock_guard<std::mutex> lock(profile->mutex_);
    profile->marks_.push_back(Mark{std::string(kernel), e});
  }

 private:
  struct Mark {
    std::string name;
    cudaEvent_t event;
  };
  static KernelProfile*& instance() {
    static KernelProfile* p = nullptr;
    return p;
  }
  void print() {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (marks_.size() < 2 || cudaEventSynchronize(marks_.back().event) != cudaSuccess) return;
    struct Row {
      std::string name;
      double ms = 0;
      std::size_t count = 0;
    };
    std::vector<Row> rows;
    double total = 0;
    for (std::size_t i = 1; i < marks_.size(); ++i) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, marks_[i - 1].event, marks_[i].event) != cudaSuccess) continue;
      if (ms > 100.0f) continue;  // a pause between passes (host work, a benchmark's own timing)
      auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.name == marks_[i].name; });
      if (it == rows.end()) it = rows.insert(rows.end(), Row{marks_[i].name});
      it->ms += ms, ++it->count, total += ms;
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.ms > b.ms; });
    std::fprintf(stderr, "\nMOE_CUDA_PROFILE: %zu launches, %.3f ms\n%-28s %10s %8s %10s %6s\n", marks_.size(), total,
                 "kernel", "ms", "count", "us/launch", "share");
    for (const Row& r : rows) {
      std::fprintf(stderr, "%-28s %10.3f %8zu %10.2f %5.1f%%\n", r.name.c_str(), r.ms, r.count,
                   1000.0 * r.ms / static_cast<double>(r.count), 100.0 * r.ms / total);
    }
  }

  std::mutex mutex_;
  std::vector<Mark> marks_;
};

// Checks that the kernel launch just made was accepted (bad configuration, no device, a sticky
// error from an earlier kernel). Launches are asynchronous: a fault inside the kernel surfaces
// at the next synchronizing call (a download, cudaDeviceSynchronize), which is checked too.
inline void check_launch(std::string_view kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status == cudaSuccess) {
    if (KernelProfile::enabled()) KernelProfile::mark(kernel);
    return;
  }
  fail(ErrorCode::kDevice, "launch of {} failed: {} ({})", kernel, cudaGetErrorString(status),
       cudaGetErrorName(status));
}

// The stream every op of the backend runs on: the calling thread's default stream. Sessions on
// different threads then run concurrently, and a pass can be captured into a CUDA graph (the
// legacy default stream cannot be captured). An op's asynchronous work is ordered after the
// calling thread's earlier ops; a download waits for them.
inline cudaStream_t stream() noexcept { return cudaStreamPerThread; }

// Number of CUDA devices; 0 when there is no driver or no device (never throws). Tests use it to
// skip on machines without a GPU.
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace moe::cuda

// Checks a CUDA runtime call, naming it in the error: MOE_CUDA_CHECK(cudaMemcpy(...));
#define MOE_CUDA_CHECK(call) ::moe::cuda::check((call), #call)

#endif  // MOE_ENABLE_CUDA
