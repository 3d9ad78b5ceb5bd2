#!/usr/bin/env bash
# The whole test suite: installs what is missing, then
#   1. a Release build of everything, run with ctest (unit tests, conformance on all fixtures,
#      header-only hygiene, consumer projects via add_subdirectory and find_package);
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer, failing on any report;
#   3. when nvcc is present, a compile-only build of the CUDA backend and its tests.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh

jobs=$(nproc)
start=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$1" $(( $(date +%s) - start )); }

step "release build"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Release -DMOE_BUILD_BENCHMARKS=ON >/dev/null
cmake --build build/test -j"$jobs"
step "release tests"
ctest --test-dir build/test -j"$jobs" --output-on-failure --timeout 600

step "sanitizer build (address,undefined)"
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Release -DMOE_SANITIZE=address,undefined \
  -DMOE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build/asan -j"$jobs"
step "sanitizer tests"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build/asan -j"$jobs" --output-on-failure --timeout 900

nvcc_bin=$(command -v nvcc || true)
[[ -z "$nvcc_bin" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_bin=/usr/local/cuda/bin/nvcc
if [[ -n "$nvcc_bin" ]]; then
  step "CUDA compile check ($("$nvcc_bin" --version | tail -n 1))"
  cmake -S . -B build/cuda -DCMAKE_BUILD_TYPE=Release -DMOE_ENABLE_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc_bin" -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DMOE_BUILD_BENCHMARKS=OFF -DMOE_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build build/cuda -j"$jobs" --target moe_cuda_targets
else
  step "CUDA compile check skipped: nvcc not found"
fi

step "all passed"
