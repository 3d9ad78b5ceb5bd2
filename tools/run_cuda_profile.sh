#!/usr/bin/env bash
# Where a decode step's time goes, on the GPU machine: bench_model's decode of a real shape (random
# bf16 weights in device memory) under Nsight Compute with CUDA graphs off, every kernel of a window
# of steps measured alone (gpu__time_duration; a kernel alone costs ~1.5 us more than inside a graph,
# and the overlap that programmatic dependent launch gives is not visible here), summarised per
# kernel: launches, median time, DRAM throughput (% of peak), achieved occupancy, registers, grid,
# MB read. With DETAIL=1 the decode GEMVs are profiled once more with the full memory-workload and
# warp-state sections.
#   tools/run_cuda_profile.sh [build-dir] [shape] [batches]   (default build/cuda-model, qwen3-30b-a3b, 1)
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${1:-build/cuda-model}
shape=${2:-qwen3-30b-a3b}
batches=${3:-1}
source tools/cuda_configure.sh
cmake --build "$build" -j"$(nproc)" --target bench_model > "$build/build.log" 2>&1 || { tail -n 40 "$build/build.log"; exit 1; }
bench=("$build/benchmarks/bench_model" --synthetic "$shape" --backend cuda --no-prefill --prompt 128 --gen 8 --reps 1
       --batches "$batches")
csv="$build/profile-$shape.csv"
# Skip the warm-up and the first steps (weights made, caches filled), then a window of launches.
MOE_CUDA_GRAPHS=0 ncu --clock-control none --launch-skip "${SKIP:-4000}" --launch-count "${COUNT:-600}" --csv \
  --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,launch__registers_per_thread,launch__grid_size,dram__bytes_read.sum \
  "${bench[@]}" > "$csv" 2> "$build/profile.err" || { tail -n 20 "$build/profile.err"; exit 1; }
python3 - "$csv" <<'PY'
import collections, csv, statistics, sys
rows = list(csv.reader(line for line in open(sys.argv[1]) if line.startswith('"')))
col = {name: i for i, name in enumerate(rows[0])}
per = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows[1:]:
    name = r[col["Kernel Name"]].split("(")[0].split("<")[0].replace("void ", "")
    try:
        per[name][r[col["Metric Name"]]].append(float(r[col["Metric Value"]].replace(",", "")))
    except ValueError:
        pass
def med(m, key):
    return statistics.median(m[key]) if m[key] else float("nan")
print(f"{'kernel':34} {'n':>4} {'us':>7} {'dram%':>6} {'warps%':>6} {'regs':>5} {'grid':>6} {'MB':>7}")
for name, m in sorted(per.items(), key=lambda kv: -sum(kv[1]["gpu__time_duration.sum"])):
    print(f"{name[-34:]:34} {len(m['gpu__time_duration.sum']):4d} {med(m, 'gpu__time_duration.sum') / 1e3:7.2f} "
          f"{med(m, 'dram__throughput.avg.pct_of_peak_sustained_elapsed'):6.1f} "
          f"{med(m, 'sm__warps_active.avg.pct_of_peak_sustained_active'):6.1f} "
          f"{med(m, 'launch__registers_per_thread'):5.0f} {med(m, 'launch__grid_size'):6.0f} "
          f"{med(m, 'dram__bytes_read.sum') / 1e6:7.2f}")
PY
if [[ "${DETAIL:-0}" == 1 ]]; then
  MOE_CUDA_GRAPHS=0 ncu --clock-control none --launch-skip "${SKIP:-4000}" --launch-count 12 \
    --kernel-name regex:'gemv_kernel|gemv_fanout_kernel|grouped_gemv_kernel|grouped_gemv_swiglu_kernel' \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section WarpStateStats \
    --section SchedulerStats "${bench[@]}" 2>&1 | grep -v "^==PROF==" | tail -n 400
fi
