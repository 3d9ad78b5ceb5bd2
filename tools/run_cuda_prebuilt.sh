#!/usr/bin/env bash
# GPU checks from binaries compiled on a machine without a GPU (nvcc compiles there; the CI kind
# has it), so that a device call spends its minutes running rather than building: a fresh GPU
# machine needs more than the 10 minutes of one call to build test_cuda_quant and the tools.
#   tools/run_cuda_prebuilt.sh --pack BUILD   # here, after building BUILD's test_cuda_quant,
#                                             # test_cuda_grouped and moe-bench (a CUDA build with
#                                             # -DMOE_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3
#                                             # -DCMAKE_CUDA_FLAGS=-Xcompiler=-march=x86-64-v3, so
#                                             # that the host code runs on the GPU machine's CPU):
#                                             # packs them, stripped, with the shared libraries they
#                                             # need besides glibc into .run/bin.tar.xz (not committed).
#                                             # A call carries 64 MiB with the working tree (~45 MiB):
#                                             # build with CMAKE_CUDA_ARCHITECTURES=90-real (no PTX)
#                                             # and pack what fits (PACK="moe-bench test_cuda_quant
#                                             # test_cuda_kernels test_cuda_grouped", the default;
#                                             # moe-bench-base=PATH adds a baseline build's moe-bench,
#                                             # run alternately with this one's on four formats)
#   BUDGET_S=560 tools/run_cuda_prebuilt.sh   # on the GPU machine, with carry [".run"]: the kernel
#                                             # tests, moe-bench --backend cuda (decode and prefill of
#                                             # the Qwen3-30B-A3B shape in four formats, elastic
#                                             # experts), a per-kernel decode profile
# Logs in $OUT: all.log (everything) and tests.log (the kernel tests' full output).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
run=.run

if [[ "${1:-}" == "--pack" ]]; then
  build=${2:?usage: tools/run_cuda_prebuilt.sh --pack BUILD}
  stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/lib"
  for name in ${PACK:-moe-bench test_cuda_quant test_cuda_kernels test_cuda_grouped}; do  # NAME, or NAME=PATH (any build)
    if [[ $name == *=* ]]; then src=${name#*=}; name=${name%%=*}
    else src=$build/tests/cuda/$name; [[ $name == moe-bench ]] && src=$build/examples/moe-bench/moe-bench; fi
    [[ -x "$src" ]] && strip -o "$stage/$name" "$src"
  done
  # The libraries outside glibc (the GPU machine's own may be older or missing).
  for b in "$stage"/*; do [[ -f "$b" && -x "$b" ]] && ldd "$b"; done | awk '/=> \// {print $3}' | sort -u |
    grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' | while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  echo "$root" > "$stage/root"  # the checkout whose tests/fixtures the binaries name
  mkdir -p "$run" && rm -f "$run/bin.tar.xz"
  tar -C "$stage" -cf - . | xz -T0 -9e > "$run/bin.tar.xz"
  ls -la "$stage" "$stage/lib" "$run"
  exit 0
fi

start=$(date +%s); deadline=$((start + ${BUDGET_S:-560}))
left() { echo $((deadline - $(date +%s))); }
lim() { local l; l=$(left); (( l > $1 )) && echo "$1" || echo "$(( l > 5 ? l - 5 : 1 ))"; }
exec > >(tee -a "$OUT/all.log") 2>&1
echo "== prebuilt $(date -u) nproc=$(nproc)"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv,noheader || true
# Unpacked with Python's tarfile (lzma is in every Python; xz(1) may not be installed).
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$run/bin.tar.xz" "$run" ||
  { echo "unpacking $run/bin.tar.xz failed"; exit 1; }
export LD_LIBRARY_PATH="$PWD/$run/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The binaries read fixtures under the checkout they were built in: point that path here.
built=$(cat "$run/root" 2>/dev/null || true)
if [[ -n "$built" && "$built" != "$PWD" && ! -e "$built" ]]; then
  mkdir -p "$(dirname "$built")" && ln -s "$PWD" "$built"
fi
run_test() { [[ -x $run/$1 ]] || return; (( $(left) > 20 )) || return
  local log="$OUT/tests.log"; echo "==== $1" >> "$log"; local from; from=$(wc -l < "$log")
  timeout "$(lim "$2")" "$run/$1" >> "$log" 2>&1; echo "$1 rc=$?"
  tail -n +"$from" "$log" | grep -E "FAILED|failed|passed|assertions|^GEMV|copy bandwidth|error" | head -40; }
B=$run/moe-bench
bench() { (( $(left) > 40 )) || return; timeout "$(lim "$1")" $B "${@:2}" 2>&1 | grep -vE "^moe-bench: (pp|tg)[0-9]+"; }

run_test test_cuda_quant 150
run_test test_cuda_grouped 60
run_test test_cuda_kernels 60
run_test test_cuda_quant-int8 150  # optional: built with -DMOE_CUDA_INT8_GEMV=1 (the GEMV lines of the integer path)
# The decode GEMV's warp teams and the one-warp router (2026-12-08, first run on a GPU pending)
# against the single-warp rows and the block router they replaced, alternating, in one binary.
if [[ ${AB_TEAMS:-1} == 1 ]]; then
  echo "== GEMV bandwidth with teams of one warp (MOE_CUDA_GEMV_TEAM=1; the run above: auto teams)"
  MOE_CUDA_GEMV_TEAM=1 timeout "$(lim 60)" $run/test_cuda_quant "[perf]" 2>&1 | grep -E "^GEMV|copy bandwidth"
  for ty in q4_0 q4_k; do
    for pass in 1 2; do
      echo "== $ty tg64 pass $pass: MOE_CUDA_GEMV_TEAM=1 MOE_CUDA_WARP_ROUTE=0, then the defaults"
      MOE_CUDA_GEMV_TEAM=1 MOE_CUDA_WARP_ROUTE=0 bench 40 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 0 -n 64 -r 3 | grep tg64
      bench 40 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 0 -n 64 -r 3 | grep tg64
    done
  done
fi
# Prefill: the tensor-core GEMM's tile heights (2026-12-08, unmeasured): all 128-row tiles (the
# kernels before), the rule's choice, 64 and 32 everywhere.
if [[ ${AB_TILES:-1} == 1 ]]; then
  for ty in q4_0 bf16; do
    for tiles in "128 128" "0 0" "64 64" "32 32"; do
      set -- $tiles
      echo "== $ty pp512: MOE_CUDA_GROUPED_TILE_M=$1 MOE_CUDA_MMA_TILE_M=$2 (0: the rule)"
      MOE_CUDA_GROUPED_TILE_M=$1 MOE_CUDA_MMA_TILE_M=$2 bench 40 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" \
        --backend cuda -p 512 -n 0 -r 3 | grep pp512
    done
  done
fi
for ty in ${BENCH_TYPES:-q4_0 q4_k q8_0 q6_k}; do
  echo "== moe-bench cuda $ty"
  bench 70 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 512 -n 64 -r 3
done
# moe-bench-int8 (optional): a build with -DMOE_CUDA_INT8_GEMV=1, the decode GEMV of Q8_0, Q4_0,
# Q4_K and Q6_K on the integer path instead of the f32 runs, beside this build's.
if [[ -x $run/moe-bench-int8 ]]; then
  for ty in q4_0 q4_k q8_0; do
    echo "== moe-bench-int8 (MOE_CUDA_INT8_GEMV=1) cuda $ty, then this build again"
    B=$run/moe-bench-int8 bench 50 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 0 -n 64 -r 3
    bench 50 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 0 -n 64 -r 3
  done
fi
# moe-bench-base (optional): the moe-bench of a baseline build, alternating with this build's.
if [[ -x $run/moe-bench-base ]]; then
  for ty in q4_0 q4_k q8_0 q6_k; do
    for pass in 1 2; do
      echo "== $ty tg64: baseline build (moe-bench-base), then this build (pass $pass)"
      B=$run/moe-bench-base bench 40 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 0 -n 64 -r 3 | grep tg64
      bench 40 --synthetic qwen3-30b-a3b --layers 8 --type "$ty" --backend cuda -p 0 -n 64 -r 3 | grep tg64
    done
  done
fi
echo "== elastic experts (q4_0; top-k 8 of 128, then 6, 4, 2)"
bench 90 --synthetic qwen3-30b-a3b --layers 8 --type q4_0 --backend cuda -p 0 -n 64 -b 1,8 -r 3 --expert-top-k 6,4,2
if (( $(left) > 40 )); then
  echo "== profile q4_0 pp512 (MOE_CUDA_PROFILE): where prefill's time goes (2.8x behind llama.cpp on 2026-12-07)"
  MOE_CUDA_PROFILE=1 timeout "$(lim 40)" $B --synthetic qwen3-30b-a3b --layers 8 --type q4_0 --backend cuda \
    -p 512 -n 0 -r 1 2>&1 | tail -32
fi
if (( $(left) > 40 )); then
  echo "== profile q4_k tg16 (MOE_CUDA_PROFILE: graphs off, a sync per kernel)"
  MOE_CUDA_PROFILE=1 timeout "$(lim 40)" $B --synthetic qwen3-30b-a3b --layers 8 --type q4_k --backend cuda \
    -p 0 -n 16 -r 1 2>&1 | tail -32
fi
echo "== left $(left) s"
