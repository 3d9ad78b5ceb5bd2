#!/usr/bin/env bash
# Configures, builds and runs the CUDA backend tests on a machine with an NVIDIA GPU, and prints
# a summary (device, pass/fail per check, max errors, decode GEMV bandwidth).
#
#   tools/run_cuda_tests.sh [build-dir]   # on the GPU machine (default build dir: build/cuda-gpu)
#   tools/run_cuda_tests.sh --pack-deps   # on a Debian machine with the -dev packages installed:
#                                         # copies the dependency headers, CMake package files,
#                                         # libpcre2-8/libutf8proc/libfmt and pkgconf into .carry/usr,
#                                         # for GPU machines that lack them (not committed)
#
# The build uses the project's CMake (-DMOE_ENABLE_CUDA=ON, target moe_cuda_targets). Where the
# dependencies are not installed, .carry/usr (or MOE_DEPS_PREFIX) is used as a CMake/pkg-config
# prefix; if configuring still fails, the test is compiled directly with nvcc, which needs only
# the fmt, xsimd and Catch2 headers. Environment: CUDA_ARCH (e.g. 90; default: the GPU's compute
# capability, else 90), NVCC (default: nvcc on PATH, else /usr/local/cuda/bin/nvcc).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ "${1:-}" == "--pack-deps" ]]; then
  dest="$root/.carry/usr"
  rm -rf "$dest"
  mkdir -p "$dest/include" "$dest/lib/x86_64-linux-gnu/cmake" "$dest/lib/cmake" "$dest/share/cmake" \
    "$dest/share/eigen3" "$dest/lib/x86_64-linux-gnu/pkgconfig" "$dest/bin"
  for d in eigen3 xsimd xtl fmt nlohmann catch2; do cp -r "/usr/include/$d" "$dest/include/"; done
  cp /usr/include/pcre2.h /usr/include/utf8proc.h "$dest/include/"
  cp -r /usr/share/eigen3/cmake "$dest/share/eigen3/"
  cp -r /usr/lib/x86_64-linux-gnu/cmake/fmt /usr/lib/x86_64-linux-gnu/cmake/xsimd \
    "$dest/lib/x86_64-linux-gnu/cmake/"
  cp -r /usr/lib/cmake/Catch2 "$dest/lib/cmake/"
  cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/xtl "$dest/share/cmake/"
  cp -L /usr/lib/x86_64-linux-gnu/libpcre2-8.so.0 /usr/lib/x86_64-linux-gnu/libutf8proc.so.2 \
    /lib/x86_64-linux-gnu/libpkgconf.so.3 "$dest/lib/x86_64-linux-gnu/"
  ln -sf libpcre2-8.so.0 "$dest/lib/x86_64-linux-gnu/libpcre2-8.so"
  ln -sf libutf8proc.so.2 "$dest/lib/x86_64-linux-gnu/libutf8proc.so"
  # fmt is linked as a library (moe::moe links fmt::fmt); Catch2WithMain is only checked for.
  cp /usr/lib/x86_64-linux-gnu/libfmt.so.9.1.0 "$dest/lib/x86_64-linux-gnu/"
  ln -sf libfmt.so.9.1.0 "$dest/lib/x86_64-linux-gnu/libfmt.so.9"
  ln -sf libfmt.so.9 "$dest/lib/x86_64-linux-gnu/libfmt.so"
  cp /usr/lib/libCatch2WithMain.a "$dest/lib/"
  # cpp-httplib (moe-server) as Debian builds it: a shared library that needs brotli besides the
  # OpenSSL and zlib that GPU images have.
  cp /usr/include/httplib.h /usr/include/zlib.h /usr/include/zconf.h "$dest/include/"
  cp -r /usr/include/brotli /usr/include/openssl "$dest/include/"
  cp /usr/include/x86_64-linux-gnu/openssl/*.h "$dest/include/openssl/"
  cp -L /usr/lib/x86_64-linux-gnu/libcpp-httplib.so.0.11 /usr/lib/x86_64-linux-gnu/libbrotlidec.so.1 \
    /usr/lib/x86_64-linux-gnu/libbrotlienc.so.1 /usr/lib/x86_64-linux-gnu/libbrotlicommon.so.1 \
    "$dest/lib/x86_64-linux-gnu/"
  ln -sf libcpp-httplib.so.0.11 "$dest/lib/x86_64-linux-gnu/libcpp-httplib.so"
  sed -e 's|^prefix=.*|prefix=${pcfiledir}/../../..|' -e '/^Requires.private/d' \
    /usr/lib/x86_64-linux-gnu/pkgconfig/cpp-httplib.pc > "$dest/lib/x86_64-linux-gnu/pkgconfig/cpp-httplib.pc"
  cp /usr/bin/pkgconf "$dest/bin/"
  # The device call carries at most 64 MiB with the working tree: drop what no target includes.
  rm -rf "$dest/include/eigen3/unsupported"
  # pkg-config files relative to their own folder, so the prefix can move.
  for pc in libpcre2-8.pc libutf8proc.pc; do
    sed 's|^prefix=.*|prefix=${pcfiledir}/../../..|' "/usr/lib/x86_64-linux-gnu/pkgconfig/$pc" \
      > "$dest/lib/x86_64-linux-gnu/pkgconfig/$pc"
  done
  du -sh "$dest"
  exit 0
fi

build=${1:-build/cuda-gpu}
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
prefix=${MOE_DEPS_PREFIX:-$root/.carry/usr}
arch=${CUDA_ARCH:-}
if [[ -z "$arch" ]] && command -v nvidia-smi >/dev/null; then
  arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)
fi
arch=${arch:-90}

echo "== environment"
nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
"$nvcc" --version | tail -n 2
cmake --version | head -n 1 || true
"${CXX:-g++}" --version | head -n 1 || true
echo "CUDA arch: $arch; dependency prefix: $([[ -d "$prefix" ]] && echo "$prefix" || echo none)"

cmake_args=(-DCMAKE_BUILD_TYPE=Release -DMOE_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"
  -DCMAKE_CUDA_ARCHITECTURES="$arch" -DMOE_BUILD_BENCHMARKS=OFF -DMOE_BUILD_EXAMPLES=OFF)
if [[ -d "$prefix" ]]; then
  export PATH="$prefix/bin:$PATH"
  export LD_LIBRARY_PATH="$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$prefix/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  cmake_args+=(-DCMAKE_PREFIX_PATH="$prefix")
  command -v pkg-config >/dev/null || cmake_args+=(-DPKG_CONFIG_EXECUTABLE="$prefix/bin/pkgconf")
fi
command -v ninja >/dev/null && cmake_args+=(-G Ninja)
jobs=$(nproc)

status=0
mkdir -p "$build"
run_log="$build/run.log"
echo "== configure (CMake)"
if [[ "${MOE_CUDA_DIRECT:-0}" != 1 ]] && \
   cmake -S . -B "$build" "${cmake_args[@]}" > "$build/configure.log" 2>&1; then
  echo "== build moe_cuda_targets"
  cmake --build "$build" --target moe_cuda_targets -j"$jobs"
  echo "== run"
  ctest --test-dir "$build" -L cuda -V --timeout 300 2>&1 | tee "$run_log" || status=$?
else
  echo "CMake configure skipped (MOE_CUDA_DIRECT=1) or failed (log: $build/configure.log);" \
    "building directly with nvcc"
  tail -n 15 "$build/configure.log" 2>/dev/null || true
  inc=(-Iinclude)
  [[ -d "$prefix/include" ]] && inc+=(-isystem "$prefix/include")
  flags=(-std=c++20 -O3 -lineinfo -arch=sm_"$arch" -DMOE_ENABLE_CUDA=1 -DFMT_HEADER_ONLY=1
    -DFMT_USE_CONSTEXPR=1 "${inc[@]}")
  echo "== build (nvcc ${flags[*]})"
  "$nvcc" "${flags[@]}" tests/cuda/test_cuda_kernels.cu tests/cuda/cuda_test_main.cpp \
    -o "$build/test_cuda_kernels"
  echo "== compile-fail check: a missing device op must not compile"
  if "$nvcc" "${flags[@]}" -c tests/cuda/compile_fail_matmul_double.cu -o "$build/compile_fail.o" \
      > "$build/compile_fail.log" 2>&1; then
    echo "FAIL: compile_fail_matmul_double.cu compiled"; status=1
  elif grep -q "not implemented for backend::cuda" "$build/compile_fail.log"; then
    echo "PASS: the static_assert fired"
  else
    echo "FAIL: compile failed for another reason:"; cat "$build/compile_fail.log"; status=1
  fi
  echo "== run"
  set +e
  "$build/test_cuda_kernels" --durations yes 2>&1 | tee "$run_log"
  rc=${PIPESTATUS[0]}
  set -e
  [[ $rc -eq 0 || $rc -eq 77 ]] || status=$rc
fi

if grep -q "SKIPPED: no CUDA device" "$run_log"; then
  echo "== result: SKIPPED (no CUDA device; the tests were built but not run)"
else
  echo "== summary"
  sed -E 's/^[0-9]+: //' "$run_log" |
    grep -E "^(CUDA device|CUDA kernel tests|matmul |rmsnorm |device-to-device|prefill GEMM|\||test cases|assertions|All tests passed|.*Test +#|PASS|FAIL)" || true
  echo "== result: $([[ $status -eq 0 ]] && echo PASSED || echo "FAILED (status $status)")"
fi
exit "$status"
