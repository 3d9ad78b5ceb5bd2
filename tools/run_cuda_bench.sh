#!/usr/bin/env bash
# Issue-10 targets on the GPU machine: bench_model on random bf16 weights of real shapes made in
# device memory (prefill, batch-1 and batched decode, each beside the HBM copy bandwidth and the
# cuBLAS bf16 peak measured in the same run), then transformers on the same shapes.
#   tools/run_cuda_bench.sh [build-dir] [shapes]   (default build/cuda-model; all three shapes)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${1:-build/cuda-model}
shapes=${2:-qwen3-30b-a3b deepseek-v2-lite mixtral-8x7b}
source tools/cuda_configure.sh
cmake --build "$build" -j"$(nproc)" --target bench_model > "$build/build.log" 2>&1 || { tail -n 40 "$build/build.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory,clocks.max.sm --format=csv,noheader
for shape in $shapes; do
  echo "== $shape"
  "$build/benchmarks/bench_model" --synthetic "$shape" --backend cuda ${BENCH_ARGS:-}
  if [[ "${SKIP_TRANSFORMERS:-0}" != 1 ]]; then
    "$build/benchmarks/bench_model" --synthetic "$shape" --print-config > "$build/$shape.json"
    python3 tools/bench_transformers.py "$build/$shape.json" ${TRANSFORMERS_ARGS:-}
  fi
done
