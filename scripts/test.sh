#!/usr/bin/env bash
# The whole test suite: installs what is missing, then
#   1. a Release build of everything, run with ctest (unit tests, conformance on all fixtures,
#      header-only hygiene, consumer projects via add_subdirectory and find_package);
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer (with clang when it
#      is installed: it compiles the sanitized suite in a third of GCC's time, and the suite then
#      runs under both compilers), failing on any report;
#   3. ThreadSanitizer (clang when installed) over the tests that use threads: the runtime's
#      (sessions sharing a model on several threads, a batch beside them, cancellation from another
#      thread) and the whole server suite (scheduler thread, HTTP workers, streaming clients,
#      disconnects), built without OpenMP (cmake/MoeDependencies.cmake says why), failing on any
#      report;
#   4. when clang++ is present, the libFuzzer targets of tests/fuzz (ASan + UBSan): their committed
#      reproducers replayed, then each fuzzer run for MOE_FUZZ_SECONDS (default 20 in CI, for the 30-minute budget; 0 skips the
#      step) from seeds made of the fixtures, failing on any crash, leak, timeout or OOM (a finding
#      is saved under tests/fuzz/regressions/<target>/);
#   5. when nvcc is present, a compile-only build of the CUDA backend: its kernel tests and
#      test_cuda_graph, the whole graph (model, upload, sessions, generators, batching) instantiated
#      for backend::cuda (target moe_cuda_ci; the tools' CUDA builds take minutes each on 2 cores
#      and are left to the GPU machine's tools/run_cuda_*.sh), in the background beside 2-4.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh

jobs=$(nproc)
start=$(date +%s)
# Each step line shows the wall time since the start and the CPU time (user + sys) of everything
# the script has run so far: on a shared machine the CPU time is the figure that compares.
times_file=$(mktemp)
cuda_pid=""
# On any exit, the background CUDA check (its own process group) goes too.
trap 'rm -f "$times_file"; [[ -n "$cuda_pid" ]] && kill -- -"$cuda_pid" 2>/dev/null; true' EXIT
step() {
  times >"$times_file"  # the builtin, in this shell: its waited-for children's user and sys time
  local cpu
  cpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] + 0.5 }' "$times_file")
  printf '\n== %s (%ds, cpu %ds)\n' "$1" $(( $(date +%s) - start )) "$cpu"
}

step "release build"
# The tools and benchmarks at -O1 (MOE_TOOL_OPT): their heavy code is the graph instances' (-O3).
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Release -DMOE_BUILD_BENCHMARKS=ON -DMOE_REQUIRE_HTTPLIB=ON \
  -DMOE_TOOL_OPT=-O1 >/dev/null
cmake --build build/test -j"$jobs"
step "release tests"
ctest --test-dir build/test -j"$jobs" --output-on-failure --timeout 600

# 5. (started now, run beside steps 2-4) the CUDA compile check, when nvcc is present. A compile
# check: no optimisation (empty build type, and -Xcicc -O0: NVVM's optimiser off, which halves it:
# 433 -> 188 s on a 2-core Xeon, every front-end and code-generation error still reported) and PTX
# only (90-virtual: ptxas, which the GPU machine's build runs, is skipped); without the graph
# instances (the tests' graph compiles inside test_cuda_graph, as the GPU machine's instance
# library would: the same templates, one translation unit less here). At nice 10, so that it
# takes the cores the sanitizer and fuzzing steps leave idle (a third of their time: single long
# translation units, the tail of a test run) rather than slowing them.
cuda_log="$root/build/cuda-check.log"
nvcc_bin=$(command -v nvcc || true)
[[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
if [[ -n "$nvcc_bin" ]]; then
  step "CUDA compile check started in the background ($("$nvcc_bin" --version | tail -n 1)), log $cuda_log"
  set -m  # job control: the check runs in a process group of its own (the trap ends it whole)
  (
    set -e
    t0=$(date +%s)
    nice -n 10 cmake -S . -B build/cuda -DCMAKE_BUILD_TYPE= -DMOE_ENABLE_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc_bin" -DCMAKE_CUDA_ARCHITECTURES=90-virtual "-DCMAKE_CUDA_FLAGS=-Xcicc -O0" \
      -DMOE_GRAPH_INSTANCES=OFF -DMOE_BUILD_BENCHMARKS=OFF -DMOE_BUILD_EXAMPLES=OFF >/dev/null
    nice -n 10 cmake --build build/cuda -j"$jobs" --target moe_cuda_ci
    echo "CUDA compile check passed in $(( $(date +%s) - t0 )) s"
  ) >"$cuda_log" 2>&1 &
  cuda_pid=$!
  set +m
else
  step "CUDA compile check skipped: nvcc not found"
fi

# The sanitized builds use clang when it is there (scripts/install-deps.sh installs it, with libomp
# for OpenMP): on 2 cores the ASan+UBSan build takes 5.5 minutes with clang and 12 with g++.
sanitizer_cc=()
if command -v clang++ >/dev/null 2>&1 && command -v clang >/dev/null 2>&1; then
  sanitizer_cc=(env CC=clang CXX=clang++)
fi

step "sanitizer build (address,undefined${sanitizer_cc:+, clang})"
# The tools whose own code the sanitized unit tests do not cover (moe-bench, moe-prune and
# moe-perplexity are thin over test_moe_bench, test_prune and the perplexity tests).
"${sanitizer_cc[@]}" cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Release -DMOE_SANITIZE=address,undefined \
  -DMOE_BUILD_BENCHMARKS=OFF -DMOE_REQUIRE_HTTPLIB=ON "-DMOE_TOOLS=moe-run;moe-server;moe-conformance;moe-quantize" >/dev/null
cmake --build build/asan -j"$jobs"
step "sanitizer tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build/asan -j"$jobs" --output-on-failure --timeout 900

step "thread sanitizer build (runtime and server tests, without OpenMP)"
"${sanitizer_cc[@]}" cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=Release -DMOE_SANITIZE=thread -DMOE_USE_OPENMP=OFF \
  -DMOE_BUILD_BENCHMARKS=OFF -DMOE_BUILD_EXAMPLES=OFF -DMOE_REQUIRE_HTTPLIB=ON >/dev/null
cmake --build build/tsan -j"$jobs" --target test_runtime_generation test_server
step "thread sanitizer tests"
# halt_on_error: the first report fails the test (exit code 66).
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=4
export OMP_NUM_THREADS=2
build/tsan/tests/runtime/test_runtime_generation "[concurrency],[cancel]"
build/tsan/tests/server/test_server

fuzz_seconds=${MOE_FUZZ_SECONDS:-20}
if [[ "$fuzz_seconds" == 0 ]]; then
  step "fuzzing skipped: MOE_FUZZ_SECONDS=0"
elif command -v clang++ >/dev/null 2>&1 && command -v clang >/dev/null 2>&1; then
  step "fuzz build (clang, libFuzzer + ASan/UBSan)"
  # No OpenMP: the parsers have no parallel loops, and libFuzzer runs one input at a time.
  CC=clang CXX=clang++ cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Release -DMOE_BUILD_FUZZERS=ON \
    -DMOE_USE_OPENMP=OFF -DMOE_BUILD_BENCHMARKS=OFF -DMOE_BUILD_EXAMPLES=OFF -DMOE_GRAPH_INSTANCES=OFF >/dev/null
  cmake --build build/fuzz -j"$jobs" --target moe_fuzzers
  step "fuzzing (${fuzz_seconds}s per fuzzer, ${MOE_FUZZ_JOBS:-$jobs} at a time)"
  MOE_FUZZ_JOBS=${MOE_FUZZ_JOBS:-$jobs} tests/fuzz/run_fuzzers.sh build/fuzz "$fuzz_seconds"
else
  step "fuzzing skipped: clang++ not found"
fi

if [[ -n "$cuda_pid" ]]; then
  step "waiting for the CUDA compile check (started after the release tests)"
  status=0
  wait "$cuda_pid" || status=$?
  cuda_pid=""
  if (( status != 0 )); then
    cat "$cuda_log"
    echo "CUDA compile check failed (exit status $status)" >&2
    exit 1
  fi
  tail -n 4 "$cuda_log"
fi

step "all passed"
