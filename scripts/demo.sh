#!/usr/bin/env bash
# The demo: installs what is missing, builds moe-run and lets the bundled Shakespeare MoE write.
# Usage: scripts/demo.sh ["prompt"]   (extra moe-run options may follow the prompt)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash scripts/install-deps.sh

jobs=$(nproc)
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DMOE_BUILD_TESTS=OFF >/dev/null
prompt=${1:-"ROMEO:"}
shift || true

if [[ -f models/shakespeare-moe/config.json && -f examples/moe-run/CMakeLists.txt ]]; then
  cmake --build build/release --target moe-run -j"$jobs"
  exec build/release/examples/moe-run/moe-run --model models/shakespeare-moe --prompt "$prompt" \
    --max-tokens 200 --temperature 0.8 --top-p 0.95 --seed 7 "$@"
else
  # Until the bundled model lands, the demo shows the kernel benchmark summary.
  cmake --build build/release --target bench_kernels -j"$jobs"
  exec build/release/benchmarks/bench_kernels --quick
fi
