# Sourced by tools/run_cuda_model.sh and tools/run_cuda_bench.sh: configures "$build" (set by the
# caller, from the repository root) as a CUDA build with the tools and benchmarks, using the
# installed dependencies or .carry/usr (MOE_DEPS_PREFIX; see tools/run_cuda_tests.sh --pack-deps).
# Environment: NVCC, CUDA_ARCH (default 90).
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
prefix=${MOE_DEPS_PREFIX:-$PWD/.carry/usr}
cuda_args=(-DCMAKE_BUILD_TYPE=Release -DMOE_ENABLE_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DMOE_BUILD_BENCHMARKS=ON -DMOE_BUILD_EXAMPLES=ON)
if [[ -d "$prefix" ]]; then
  export PATH="$prefix/bin:$PATH" LD_LIBRARY_PATH="$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PKG_CONFIG_PATH="$prefix/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  cuda_args+=(-DCMAKE_PREFIX_PATH="$prefix")
fi
command -v ninja >/dev/null && cuda_args+=(-G Ninja)
mkdir -p "$build"
cmake -S . -B "$build" "${cuda_args[@]}" > "$build/configure.log" 2>&1 || { tail -n 30 "$build/configure.log"; exit 1; }
