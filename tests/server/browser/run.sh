#!/usr/bin/env bash
# ctest's entry to the chat-page browser test: checks for node, npm and chromium (exit 77, which
# ctest reports as skipped, when one is missing: scripts/install-deps.sh installs them), installs
# the pinned playwright-core with `npm ci` into WORK_DIR (the build tree; never the sources), then
# runs chat_page.test.mjs against the moe-server binary.
#   run.sh MOE_SERVER MODEL_DIR WORK_DIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
server=$1 model=$2 work=$3
chromium=${MOE_CHROMIUM:-/usr/bin/chromium}

skip() { echo "SKIPPED: $* (scripts/install-deps.sh installs it)"; exit 77; }
command -v node >/dev/null 2>&1 || skip "node not found"
command -v npm >/dev/null 2>&1 || skip "npm not found"
[[ -x "$chromium" ]] || skip "$chromium not found"

mkdir -p "$work"
# npm ci only when the lockfile changed since the last install (it deletes node_modules first).
if ! cmp -s "$here/package-lock.json" "$work/package-lock.json" || [[ ! -d "$work/node_modules/playwright-core" ]]; then
  cp "$here/package.json" "$here/package-lock.json" "$work/"
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node "$here/chat_page.test.mjs" --server "$server" --model "$model" --modules "$work/node_modules" \
  --chromium "$chromium" --out "$work"
