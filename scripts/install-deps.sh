#!/usr/bin/env bash
# Installs the Debian packages moecpp builds with, when any is missing. Safe to run repeatedly.
set -euo pipefail

packages=(
  g++ cmake make pkg-config
  libeigen3-dev libxsimd-dev xtl-dev libfmt-dev nlohmann-json3-dev catch2
  libpcre2-dev libutf8proc-dev
  # moe-server's HTTP layer (cpp-httplib 0.11, a shared library with its header)
  libcpp-httplib-dev
  # scripts/test.sh's sanitizer and fuzzing steps: clang with libFuzzer and the ASan/UBSan/TSan
  # runtimes (libclang-rt-14-dev), and libomp for the OpenMP of the ASan build
  clang libclang-rt-14-dev libomp-dev
  # the chat page's browser test (tests/server/browser): headless Chromium, driven from Node by
  # playwright-core, which the test installs with npm into the build tree
  chromium
)
# Node.js and npm from Debian, unless a node and npm are already on PATH (nodesource's nodejs
# package brings its own npm and conflicts with Debian's).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "moecpp: installing missing Debian packages: ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1; then
  sudo_cmd=(sudo)
else
  echo "moecpp: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
