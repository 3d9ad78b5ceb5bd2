#!/usr/bin/env bash
# One device session's GPU checks in two calls of at most ~10 minutes each (the device tool's limit),
# self-bounded by BUDGET_S (default 570 s per call). Run from the repository root on the GPU
# machine with .carry/usr holding the dependencies (tools/run_cuda_tests.sh --pack-deps makes it):
#     bash tools/run_cuda_session.sh 1   # build the kernel tests, test_cuda_graph and the tools;
#                                        # kernel tests, the bundled model, moe-conformance --backend cuda
#                                        # on every fixture, greedy text cpu vs cuda
#     bash tools/run_cuda_session.sh 2   # (right after, on the warm machine) the rest of the build,
#                                        # MLA's split GGUF on cuda, moe-bench cuda, the two-server
#                                        # check, tools/run_cuda_model.sh
#     bash tools/run_cuda_session.sh 3   # one call (a fresh machine) for the quantized paths only:
#                                        # test_cuda_quant (GEMV bandwidth), the bundled model quantized
#                                        # on cpu and cuda, moe-bench cuda, test_cuda_grouped
# Logs (at most 8 files come back): $OUT/all.log (everything), build.log (the build), tests.log (the
# kernel tests), conformance.log, greedy.log, model.log, srv.log. Re-runnable: the build is kept.
set -uo pipefail
part=${1:-1}
export build=${build:-build/cuda-model}
start=$(date +%s); deadline=$((start + ${BUDGET_S:-570}))
left() { echo $((deadline - $(date +%s))); }
lim() { local l; l=$(left); (( l > $1 )) && echo "$1" || echo "$(( l > 5 ? l - 5 : 1 ))"; }
exec > >(tee -a "$OUT/all.log") 2>&1
echo "== part $part $(date -u) nproc=$(nproc)"
nvidia-smi --query-gpu=name,memory.total,clocks.max.memory --format=csv,noheader || true
source tools/cuda_configure.sh || { echo configure failed; exit 1; }
R="$build/tests/cuda"; E="$build/examples"
b() {  # b SECONDS TARGETS: build what fits, keep going past errors
  local t0; t0=$(date +%s)
  timeout "$(lim "$1")" cmake --build "$build" -j"$(nproc)" --target $2 -- -k 0 >> "$OUT/build.log" 2>&1
  local rc=$?; echo "build [$2] rc=$rc in $(( $(date +%s) - t0 )) s"
  grep -E "error" "$OUT/build.log" | grep -v "^--\|error.hpp" | head -12; return $rc
}
# Test output goes to one file, tests.log ($OUT brings back at most 8 files).
run_test() { [[ -x $R/$1 ]] || return; (( $(left) > 20 )) || return
  local log="$OUT/tests.log"; echo "==== $1" >> "$log"; local from; from=$(wc -l < "$log")
  timeout "$(lim 60)" "$R/$1" >> "$log" 2>&1; echo "$1 rc=$?"
  tail -n +"$from" "$log" | grep -E "FAILED|failed|passed|assertions|^GEMV|copy bandwidth" | head -30; }
# Quantized models on cuda against cpu: the bundled model through moe-quantize, held-out perplexity
# and greedy text on both backends (used by parts 2 and 3).
quantized_bundled() {
  local Q=$E/moe-quantize/moe-quantize P=$E/moe-perplexity/moe-perplexity M=$E/moe-run/moe-run d=${TMPDIR:-/tmp}/qb
  [[ -x $Q && -x $P && -x $M ]] || return; mkdir -p "$d"
  for type in q8_0 q4_0 q4_k_m q6_k iq4_xs mxfp4; do (( $(left) > 40 )) || break
    $Q models/shakespeare-moe "$d/$type.gguf" --type $type > /dev/null 2>&1 || { echo "$type: moe-quantize failed"; continue; }
    local line="$type:"
    for be in cpu cuda; do
      line="$line $be [$(timeout "$(lim 40)" $P --model "$d/$type.gguf" --text tests/fixtures/demo/heldout.txt --quiet \
        --backend $be 2>&1 | grep -E '^perplexity|^evaluated|error' | paste -sd ' ')]"
      timeout "$(lim 30)" $M --model "$d/$type.gguf" --prompt "ROMEO:" --max-tokens 48 --greedy --backend $be \
        > "$d/${type}_$be.txt" 2> /dev/null
    done
    cmp -s "$d/${type}_cpu.txt" "$d/${type}_cuda.txt" && echo "$line  greedy identical" || echo "$line  greedy differs"
  done
}
cuda_bench() {
  local B=$E/moe-bench/moe-bench
  [[ -x $B ]] || return
  for ty in ${BENCH_TYPES:-q4_0 q4_k q6_k}; do (( $(left) > 60 )) || break
    timeout "$(lim 90)" $B --synthetic qwen3-30b-a3b --layers 8 --type $ty --backend cuda -p 512 -n 64 -r 3 2>&1 | grep -E "^\||t/s:"
    echo "bench $ty rc=$?"
  done
}
if [[ $part == 3 ]]; then  # one call for the quantized paths: GEMV tests and bandwidth, models, moe-bench
  b 300 "test_cuda_quant"
  run_test test_cuda_quant
  (( $(left) > 150 )) && b $(( $(left) - 100 )) "moe-bench moe-quantize moe-perplexity moe-run"
  quantized_bundled
  cuda_bench
  # Where a quantized decode step's time goes: per-kernel times (MOE_CUDA_PROFILE, graphs off).
  (( $(left) > 40 )) && [[ -x $E/moe-bench/moe-bench ]] && { echo "== profile q4_k tg16"
    MOE_CUDA_PROFILE=1 timeout "$(lim 40)" $E/moe-bench/moe-bench --synthetic qwen3-30b-a3b --layers 8 --type q4_k \
      --backend cuda -p 0 -n 16 -r 1 2>&1 | tail -25; }
  (( $(left) > 90 )) && b $(( $(left) - 60 )) "test_cuda_grouped" && run_test test_cuda_grouped
elif [[ $part == 1 ]]; then
  b 450 "test_cuda_kernels test_cuda_quant test_cuda_graph moe-conformance moe-run moe-bench moe-server"
  run_test test_cuda_kernels; run_test test_cuda_quant
  [[ -x $R/test_cuda_graph ]] && { timeout "$(lim 60)" "$R/test_cuda_graph" models/shakespeare-moe 2>&1 | tail -5; echo "graph rc=$?"; }
  pending=$(sed -n 's/^ *set(_moe_pending_fixtures \(.*\))$/\1/p' examples/moe-conformance/CMakeLists.txt)
  fx=(); for d in tests/fixtures/models/*/ tests/fixtures/lora/*/; do [[ " $pending " == *" $(basename "$d") "* ]] || fx+=("$d"); done
  if [[ -x $E/moe-conformance/moe-conformance ]]; then
    echo "== conformance cuda (${#fx[@]} fixtures)"
    timeout "$(lim 120)" $E/moe-conformance/moe-conformance --backend cuda "${fx[@]}" > "$OUT/conformance.log" 2>&1
    echo "conformance rc=$?"; grep -vE "^(ok|PASS)" "$OUT/conformance.log" | head -40; tail -3 "$OUT/conformance.log"
  fi
  if [[ -x $E/moe-run/moe-run ]]; then
    g=${TMPDIR:-/tmp}/greedy; mkdir -p "$g"
    for be in cpu cuda; do
      timeout "$(lim 40)" $E/moe-run/moe-run --model models/shakespeare-moe --prompt "ROMEO:" --max-tokens 64 --greedy \
        --backend $be > "$g/$be.txt" 2> "$g/$be.err"; echo "moe-run $be rc=$?"; tail -4 "$g/$be.err"
      { echo "==== $be"; cat "$g/$be.txt" "$g/$be.err"; } >> "$OUT/greedy.log"
    done
    cmp -s <(head -n 3 "$g/cpu.txt") <(head -n 3 "$g/cuda.txt") && echo "greedy identical" || echo "greedy DIFFERS"
  fi
  (( $(left) > 60 )) && b $(( $(left) - 40 )) "test_cuda_grouped test_cuda_lora moe-quantize"
  run_test test_cuda_grouped; run_test test_cuda_lora
else
  b 200 "test_cuda_grouped test_cuda_lora moe-perplexity moe-quantize bench_generate moe-conformance moe-bench moe-server"
  for t in ${TESTS:-}; do run_test "$t"; done
  # MLA's split attn_k_b / attn_v_b on cuda: fixtures exported to f32 GGUFs, against transformers.
  Q=$E/moe-quantize/moe-quantize; C=$E/moe-conformance/moe-conformance
  if [[ -x $Q && -x $C ]]; then
    for name in deepseek_v3 glm4_moe_lite kimi_k2; do
      d=${TMPDIR:-/tmp}/gcase_$name; mkdir -p "$d"; cp tests/fixtures/models/$name/reference.* "$d"/
      $Q tests/fixtures/models/$name "$d/model-f32.gguf" --type f32 > /dev/null 2>&1
      for be in cpu cuda; do timeout "$(lim 60)" $C --backend $be "$d/model-f32.gguf" 2>&1 | tail -2; echo "gguf $name $be rc=$?"; done
    done
  fi
  cuda_bench
  S=$E/moe-server/moe-server
  if [[ -x $S ]] && (( $(left) > 80 )); then
    $S --model models/shakespeare-moe --port 18081 --backend cuda > "$OUT/srv.log" 2>&1 & P1=$!
    $S --model models/shakespeare-moe --port 18082 --backend cpu > /dev/null 2>&1 & P2=$!
    timeout "$(lim 60)" python3 tools/check_server_backends.py 18081 18082 2>&1 | tail -15; echo "server check rc=$?"
    kill $P1 $P2 2>/dev/null; tail -3 "$OUT/srv.log"
  fi
  (( $(left) > 60 )) && { timeout "$(lim 400)" bash tools/run_cuda_model.sh "$build" > "$OUT/model.log" 2>&1
    echo "model rc=$?"; grep -vE "^ok" "$OUT/model.log" | tail -60; }
fi
echo "== left $(left) s"
