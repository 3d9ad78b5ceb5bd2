// --backend NAME for the tools: runs a generic callable with the backend tag the name picks
// (cpu, reference and, in a build with CUDA, cuda). A tool's main is compiled by nvcc when the
// project is configured with MOE_ENABLE_CUDA, so the same source instantiates the graph for every
// backend it was built with.
#pragma once

#include <moe/moe.hpp>

#include <string>
#include <string_view>

namespace moe::cli {

// The backends this build of a tool can run, for help texts and errors.
inline constexpr std::string_view kBackendNames =
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
    "cpu, reference, cuda";
#else
    "cpu, reference";
#endif

// Exit status of a tool asked for a device backend on a machine without one (ctest's "skipped").
inline constexpr int kExitNoDevice = 77;

// Whether `name` is a backend this build knows; kInvalidArgument otherwise.
inline void check_backend_name(std::string_view name) {
  const bool known = name == "cpu" || name == "reference"
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
                     || name == "cuda"
#endif
      ;
  require(known, ErrorCode::kInvalidArgument, "--backend: '{}' is not one of {}{}", name, kBackendNames,
          name == "cuda" ? " (this build has no CUDA: configure with -DMOE_ENABLE_CUDA=ON)" : "");
}

// Whether the backend can run here (a CUDA device present for cuda).
inline bool backend_available(std::string_view name) {
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
  if (name == "cuda") return moe::cuda::device_count() > 0;
#endif
  (void)name;
  return true;
}

// f(backend tag) for the backend `name` (checked with check_backend_name first).
template <class F>
decltype(auto) with_backend(std::string_view name, F&& f) {
  check_backend_name(name);
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
  if (name == "cuda") return f(backend::cuda{});
#endif
  if (name == "reference") return f(backend::reference{});
  return f(backend::cpu{});
}

}  // namespace moe::cli
