#!/usr/bin/env bash
# Runs the libFuzzer targets of an already built fuzz build (tests/fuzz/CMakeLists.txt) for a
# bounded time each; builds nothing. Usage:
#
#   tests/fuzz/run_fuzzers.sh BUILD_DIR [SECONDS_PER_FUZZER] [TARGET...]
#
# SECONDS_PER_FUZZER defaults to $MOE_FUZZ_SECONDS, else 60; TARGETs default to all seven
# (fuzz_safetensors fuzz_config fuzz_generation_config fuzz_tokenizer fuzz_gguf
# fuzz_chat_template, whose seeds are the chat templates and syntax cases of tests/fixtures/chat,
# and fuzz_tool_calls, seeded with one reply per format from tests/fixtures/fuzz/tool_calls).
# For each target:
#   1. replays every file of tests/fuzz/regressions/<target>/ (past crashes; must pass now);
#   2. copies the seed corpus from the committed fixtures into a temporary work dir (nothing big is
#      committed twice): config.json / generation_config.json of every fixture and malformed case,
#      the malformed *.safetensors, every tokenizer.json (alone, and followed by "\0" + a text to
#      encode + "\0" + a tokenizer_config.json: the layout fuzz_tokenizer.cpp documents) and the
#      small tokenizers of tests/fixtures/fuzz/tokenizers/;
#   3. fuzzes for SECONDS with -timeout (one input), -rss_limit_mb and a dictionary.
# Fails (exit 1) if a replay fails or a fuzzer reports a crash, leak, timeout or OOM; each such
# input is copied to tests/fuzz/regressions/<target>/ (minimised first when MOE_FUZZ_MINIMIZE > 0)
# so that every later run, and ctest in the fuzz build, replays it. Commit it with the fix.
#
# Environment: MOE_FUZZ_TIMEOUT (seconds per input, default 10; 20 for fuzz_tokenizer, whose
# inputs are a whole tokenizer.json plus up to 32 KB of text to encode under ASan), MOE_FUZZ_RSS_MB (default 2048),
# MOE_FUZZ_JOBS (fuzzers run side by side, default 1), MOE_FUZZ_MINIMIZE (seconds of
# -minimize_crash per finding, default 0), MOE_FUZZ_WORK (work dir, default a new temporary one,
# removed at the end unless MOE_FUZZ_KEEP=1), MOE_FUZZ_SAVE=0 (report findings without copying
# them into the source tree).
set -uo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,6p' "$0" >&2
  exit 2
fi
build=$(cd "$1" && pwd) || exit 2
seconds=${2:-${MOE_FUZZ_SECONDS:-60}}
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
((${#targets[@]})) || targets=(fuzz_safetensors fuzz_config fuzz_generation_config fuzz_tokenizer fuzz_gguf fuzz_chat_template
  fuzz_tool_calls)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
fixtures="$root/tests/fixtures"
timeout_default=${MOE_FUZZ_TIMEOUT:-}
rss_mb=${MOE_FUZZ_RSS_MB:-2048}
jobs=${MOE_FUZZ_JOBS:-1}
minimize_s=${MOE_FUZZ_MINIMIZE:-0}
save=${MOE_FUZZ_SAVE:-1}

if [[ -n "${MOE_FUZZ_WORK:-}" ]]; then
  work=$MOE_FUZZ_WORK
  mkdir -p "$work"
else
  work=$(mktemp -d "${TMPDIR:-/tmp}/moe-fuzz.XXXXXX")
  [[ "${MOE_FUZZ_KEEP:-0}" == 1 ]] || trap 'rm -rf "$work"' EXIT
fi

# Leaks are findings; abort_on_error=0 lets libFuzzer write the input that leaked or crashed.
export ASAN_OPTIONS=${ASAN_OPTIONS_FUZZ:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=0}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The library's OpenMP loops are not what is fuzzed; one thread keeps runs reproducible.
export OMP_NUM_THREADS=1

copy_seeds() {  # copy_seeds DEST PATTERN...: each existing file under a unique name
  local dest=$1 f n=0
  shift
  mkdir -p "$dest"
  for f in "$@"; do
    [[ -f "$f" ]] || continue
    cp "$f" "$dest/$(printf '%04d' $n)-$(basename "$(dirname "$f")")-$(basename "$f")"
    n=$((n + 1))
  done
}

make_seeds() {  # make_seeds TARGET DEST
  local t=$1 dest=$2 f
  case $t in
    fuzz_config)
      copy_seeds "$dest" "$fixtures"/models/*/config.json "$fixtures"/malformed/*/config.json \
        "$root"/models/*/config.json "$fixtures"/fuzz/configs/*.json ;;
    fuzz_generation_config)
      copy_seeds "$dest" "$fixtures"/models/*/generation_config.json "$fixtures"/malformed/*/generation_config.json \
        "$root"/models/*/generation_config.json ;;
    fuzz_safetensors)
      copy_seeds "$dest" "$fixtures"/malformed/*/*.safetensors ;;
    fuzz_gguf)
      copy_seeds "$dest" "$fixtures"/gguf/valid/*.gguf "$fixtures"/gguf/malformed/*.gguf ;;
    fuzz_tool_calls)
      copy_seeds "$dest" "$fixtures"/fuzz/tool_calls/*.txt ;;
    fuzz_chat_template)
      # The real templates, and each one-feature case and the bundled model's template alone.
      copy_seeds "$dest" "$fixtures"/chat/templates/*.jinja
      command -v python3 > /dev/null && python3 - "$fixtures/chat/syntax_cases.json" "$dest" "$root"/models/*/tokenizer_config.json <<'PY'
import json, sys
cases, dest = sys.argv[1], sys.argv[2]
for i, c in enumerate(json.load(open(cases))["cases"]):
    open(f"{dest}/syntax-{i:03d}.jinja", "w").write(c["template"])
for j, p in enumerate(sys.argv[3:]):
    t = json.load(open(p)).get("chat_template")
    if isinstance(t, str):
        open(f"{dest}/model-{j}.jinja", "w").write(t)
PY
      ;;
    fuzz_tokenizer)
      copy_seeds "$dest" "$fixtures"/tokenizers/*/tokenizer.json "$root"/models/*/tokenizer.json \
        "$fixtures"/fuzz/tokenizers/*.json
      # Each tokenizer.json again with a text to encode (the head of the demo's held-out text)
      # and, where the folder has one, its tokenizer_config.json.
      local text="$fixtures/demo/heldout_head.txt" n=0
      for f in "$fixtures"/tokenizers/*/tokenizer.json "$root"/models/*/tokenizer.json "$fixtures"/fuzz/tokenizers/*.json; do
        [[ -f "$f" ]] || continue
        {
          cat "$f"
          printf '\0'
          [[ -f "$text" ]] && head -c 600 "$text"
          printf 'caf\xc3\xa9  \xe4\xbd\xa0\xe5\xa5\xbd 12345 <|endoftext|>\n'
          if [[ -f "$(dirname "$f")/tokenizer_config.json" ]]; then
            printf '\0'
            cat "$(dirname "$f")/tokenizer_config.json"
          fi
        } > "$dest/with-text-$(printf '%04d' $n)-$(basename "$(dirname "$f")")-$(basename "$f")"
        n=$((n + 1))
      done ;;
  esac
}

max_len_of() {
  case $1 in
    fuzz_tokenizer) echo 262144 ;;    # the demo tokenizer.json is 116 KiB, the fixtures <= 65 KiB
    fuzz_chat_template) echo 32768 ;; # the largest real template (GPT-OSS) is 17 KB
    fuzz_safetensors) echo 262144 ;;  # the largest malformed case is ~200 KB
    fuzz_config) echo 16384 ;;        # real config.json files are 1-5 KB
    fuzz_gguf) echo 16384 ;;          # the corpus files are at most 2 KB
    *) echo 4096 ;;
  esac
}

timeout_of() {
  if [[ -n "$timeout_default" ]]; then
    echo "$timeout_default"
  elif [[ $1 == fuzz_tokenizer ]]; then
    echo 20
  else
    echo 10
  fi
}

dict_of() {
  case $1 in
    fuzz_safetensors) echo "$here/safetensors.dict" ;;
    fuzz_config) echo "$here/config.dict" ;;
    fuzz_generation_config) echo "$here/generation_config.dict" ;;
    fuzz_tokenizer) echo "$here/tokenizer.dict" ;;
    fuzz_chat_template) echo "$here/chat_template.dict" ;;
    fuzz_tool_calls) echo "$here/tool_calls.dict" ;;
    fuzz_gguf) echo "$here/gguf.dict" ;;
  esac
}

# run_one TARGET: replay, then fuzz; writes $work/TARGET/result (ok / FAIL reasons).
run_one() {
  local t=$1 bin="$build/tests/fuzz/$1" dir="$work/$1" reg="$here/regressions/$1"
  mkdir -p "$dir/corpus" "$dir/artifacts" "$reg"
  local result=ok timeout_s
  timeout_s=$(timeout_of "$t")
  if [[ ! -x "$bin" ]]; then
    echo "FAIL: $bin not built" > "$dir/result"
    return
  fi
  # 1. replay past findings (each file once).
  local files=()
  mapfile -t files < <(find "$reg" -maxdepth 1 -type f ! -name '.*' | sort)
  if ((${#files[@]})); then
    if ! "$bin" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" "${files[@]}" > "$dir/replay.log" 2>&1; then
      result="FAIL: a reproducer in tests/fuzz/regressions/$t/ still fails (log: replay below)"
    fi
  fi
  # 2. seeds, 3. fuzz.
  make_seeds "$t" "$dir/seeds"
  local dict
  dict=$(dict_of "$t")
  "$bin" -max_total_time="$seconds" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" -max_len="$(max_len_of "$t")" \
    ${dict:+-dict="$dict"} -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
    "$dir/corpus" "$dir/seeds" > "$dir/fuzz.log" 2>&1
  local rc=$?
  local found=()
  mapfile -t found < <(find "$dir/artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
  if ((rc != 0 || ${#found[@]})); then
    result="FAIL: fuzzing exited with $rc, ${#found[@]} finding(s)${result#ok}"
    local a name
    for a in "${found[@]}"; do
      name=$(basename "$a")
      if ((minimize_s > 0)) && [[ $name == crash-* || $name == leak-* ]]; then
        "$bin" -minimize_crash=1 -max_total_time="$minimize_s" -timeout="$timeout_s" -rss_limit_mb="$rss_mb" \
          -exact_artifact_path="$dir/artifacts/min-$name" "$a" > "$dir/minimize-$name.log" 2>&1
        [[ -s "$dir/artifacts/min-$name" ]] && a="$dir/artifacts/min-$name"
      fi
      if [[ $save == 1 ]]; then
        cp "$a" "$reg/$name"
        result+=$'\n'"  saved $reg/$name"
      else
        result+=$'\n'"  found $a"
      fi
    done
  fi
  echo "$result" > "$dir/result"
}

start=$(date +%s)
echo "fuzzing ${targets[*]} for ${seconds}s each (timeout ${timeout_default:-10-20}s per input, rss ${rss_mb} MB, ${jobs} at a time; work dir $work)"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n
    running=$((running - 1))
  fi
done
wait

status=0
for t in "${targets[@]}"; do
  dir="$work/$t"
  result=$(cat "$dir/result" 2>/dev/null || echo "FAIL: no result")
  stats=$(grep -E '^stat::number_of_executed_units' "$dir/fuzz.log" 2>/dev/null | awk '{print $2}')
  cov=$(grep -oE 'cov: [0-9]+' "$dir/fuzz.log" 2>/dev/null | tail -n 1)
  printf '%-24s %s (%s runs, %s)\n' "$t" "${result%%$'\n'*}" "${stats:-?}" "${cov:-cov: ?}"
  if [[ $result != ok ]]; then
    status=1
    [[ $result == *$'\n'* ]] && printf '%s\n' "${result#*$'\n'}"
    for log in "$dir/replay.log" "$dir/fuzz.log"; do
      [[ -s "$log" ]] || continue
      if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|SUMMARY:|==[0-9]+==|ALARM|deadly signal|out-of-memory|fuzz_[a-z_]+: ' "$log"; then
        echo "---- $log (tail)"
        grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse|RELOAD)' "$log" | tail -n 40
      fi
    done
  fi
done
echo "fuzzing took $(( $(date +%s) - start ))s"
if ((status != 0)) && [[ $save != 1 ]]; then
  trap - EXIT  # the findings listed above stay where they are
  echo "work dir kept: $work"
fi
exit $status
