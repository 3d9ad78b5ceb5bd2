// PassRunner<backend::cuda>: decode steps as CUDA graphs. A pass with one row per sequence (a
// decode step of one or many sequences) is captured from the backend's stream the first time its
// shape occurs and replayed from then on: one cudaGraphLaunch instead of ~25 launches per layer,
// so the host no longer paces the GPU and the kernels run back to back. The shape key is the
// rows, the sequences, logits-for-all-rows, whether an expert budget applies and attention's key split (the only launch parameter
// that follows the context length); everything else a step changes lives in device memory.
// Prefill passes (rows > sequences) run eagerly: their launches are long. A body that cannot be
// captured (an op that synchronizes, as the per-expert fallback of experts_forward does) runs
// eagerly too, and its shape is remembered as such. MOE_CUDA_GRAPHS=0 (or MOE_CUDA_PROFILE=1)
// turns capture off.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/error.hpp"
#include "moe/kernels/cuda/attention.cuh"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/reference/pass_runner.hpp"

#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

namespace moe::kernels {

template <>
class PassRunner<backend::cuda> {
 public:
  static constexpr std::size_t kMaxGraphs = 64;  // shapes kept (oldest dropped first)

  PassRunner() = default;
  PassRunner(const PassRunner&) = delete;
  PassRunner& operator=(const PassRunner&) = delete;
  PassRunner(PassRunner&& o) noexcept : graphs_(std::move(o.graphs_)), capture_(o.capture_) { o.graphs_.clear(); }
  PassRunner& operator=(PassRunner&& o) noexcept {
    if (this != &o) {
      release();
      graphs_ = std::move(o.graphs_);
      capture_ = o.capture_;
      o.graphs_.clear();
    }
    return *this;
  }
  ~PassRunner() { release(); }

  // Capture on or off for this runner (on unless MOE_CUDA_GRAPHS=0).
  void set_capture(bool on) noexcept { capture_ = on; }

  template <class Body>
  void run(const PassShape& shape, Body&& body) {
    if (!capture_ || shape.rows != shape.sequences) {
      body();
      return;
    }
    const Key key = key_of(shape);
    for (const auto& g : graphs_) {
      if (g.key == key) {
        if (g.exec == nullptr) {
          body();  // not capturable: eager
        } else {
          MOE_CUDA_CHECK(cudaGraphLaunch(g.exec, ::moe::cuda::stream()));
        }
        return;
      }
    }
    cudaGraphExec_t exec = capture(std::forward<Body>(body));
    if (graphs_.size() >= kMaxGraphs) {
      if (graphs_.front().exec != nullptr) (void)cudaGraphExecDestroy(graphs_.front().exec);
      graphs_.erase(graphs_.begin());
    }
    graphs_.push_back(Graph{key, exec});
    if (exec == nullptr) {
      body();
    } else {
      MOE_CUDA_CHECK(cudaGraphLaunch(exec, ::moe::cuda::stream()));
    }
  }

  // Shapes recorded so far (graphs and shapes found not capturable).
  std::size_t size() const noexcept { return graphs_.size(); }

  // MOE_CUDA_GRAPHS=0 disables capture (for A/B measurements); read once.
  static bool enabled() {
    static const bool on = [] {
      const char* v = std::getenv("MOE_CUDA_GRAPHS");
      return (v == nullptr || v[0] != '0') && !::moe::cuda::KernelProfile::enabled();
    }();
    return on;
  }

 private:
  using Key = std::array<std::int64_t, 5>;
  struct Graph {
    Key key;
    cudaGraphExec_t exec;  // null: the body could not be captured
  };

  static Key key_of(const PassShape& s) {
    return Key{static_cast<std::int64_t>(s.rows), static_cast<std::int64_t>(s.sequences),
               static_cast<std::int64_t>(cuda_detail::attention_split_bucket(s.max_keys)), s.all_positions ? 1 : 0,
               s.expert_budget ? 1 : 0};
  }

  // Records the body's work on the backend's stream into an executable graph; null when some op
  // of the body cannot be captured (its error is cleared; the body then runs eagerly). A moe::Error
  // of the body itself (bad arguments) propagates after the capture is closed.
  template <class Body>
  static cudaGraphExec_t capture(Body&& body) {
    const cudaStream_t stream = ::moe::cuda::stream();
    MOE_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    bool failed = false;
    try {
      body();
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kDevice) {
        end_and_discard(stream);
        throw;
      }
      failed = true;  // an op that cannot run inside a capture
    } catch (...) {
      end_and_discard(stream);
      throw;
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
    if (failed || ended != cudaSuccess || graph == nullptr) {
      if (graph != nullptr) (void)cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      return nullptr;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    (void)cudaGraphDestroy(graph);
    if (made != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return exec;
  }

  static void end_and_discard(cudaStream_t stream) noexcept {
    cudaGraph_t graph = nullptr;
    if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
  }

  void release() noexcept {
    for (auto& g : graphs_) {
      if (g.exec != nullptr) (void)cudaGraphExecDestroy(g.exec);
    }
    graphs_.clear();
  }

  std::vector<Graph> graphs_;
  bool capture_ = enabled();
};

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
