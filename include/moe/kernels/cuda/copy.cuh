// Data movement on backend::cuda: host <-> device copies (upload asynchronous, download
// synchronous: the sampler needs the logits), strided row copies (KV-cache appends, picking last
// rows), row gathers by an index list (expert dispatch), the embedding lookup and the widening
// of a stored vector to f32. Index lists are device memory; an index outside the source's rows
// writes NaNs into its output row instead of reading out of bounds.
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/backend/tags.hpp"
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/common.cuh"
#include "moe/kernels/reference/arguments.hpp"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

namespace moe::kernels {
namespace cuda_detail {

inline constexpr int kGatherThreads = 256;

// dst[i, :] = widen(src[rows[i], :]); grid (column blocks, rows). rows outside [0, m) give NaNs.
template <class W>
__global__ void __launch_bounds__(kGatherThreads)
    gather_rows_kernel(const W* __restrict__ src, std::size_t ld_src, std::size_t m, const std::int32_t* __restrict__ rows,
                       std::size_t rows_stride, float* __restrict__ dst, std::size_t ld_dst, int d, unsigned n) {
  kernel_prologue();
  for (unsigned i = blockIdx.y; i < n; i += gridDim.y) {
    const std::int32_t r = __ldg(rows + i * rows_stride);
    const bool valid = r >= 0 && static_cast<std::size_t>(r) < m;
    const W* s = src + (valid ? static_cast<std::size_t>(r) : 0) * ld_src;
    float* o = dst + i * ld_dst;
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < d; c += gridDim.x * blockDim.x) {
      o[c] = valid ? load_as_float(s, static_cast<std::size_t>(c)) : __int_as_float(0x7fc00000);
    }
  }
}

template <class W>
void launch_gather(DeviceView<const W, 2> src, DeviceView<const std::int32_t, 1> rows, DeviceView<float, 2> dst,
                   const char* op) {
  detail::check_unit_inner_stride(src, op, "src");
  detail::check_unit_inner_stride(dst, op, "dst");
  require_int_range(dst.extent(1), op, "d");
  const index_t n = rows.extent(0), d = dst.extent(1);
  if (n == 0 || d == 0) return;
  const dim3 grid(grid_for(d, kGatherThreads, 64), static_cast<unsigned>(std::min<index_t>(n, 65535)));
  cuda_detail::launch(gather_rows_kernel<W>, grid, kGatherThreads, 0, src.data(), src.stride(0), src.extent(0), rows.data(),
                                                   rows.stride(0), dst.data(), dst.stride(0), static_cast<int>(d),
                                                   static_cast<unsigned>(std::min<index_t>(n, 0xffffffffu)));
  ::moe::cuda::check_launch(op);
}

template <class W>
__global__ void to_f32_kernel(const W* __restrict__ src, std::size_t s_stride, float* __restrict__ dst,
                              std::size_t d_stride, std::size_t n) {
  kernel_prologue();
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    dst[i * d_stride] = load_as_float(src, i * s_stride);
  }
}

}  // namespace cuda_detail

// dst[0, host.size()) = host: cudaMemcpyAsync on the backend's stream. From pageable memory the
// call returns once the data is staged (the span may be reused at once); from page-locked
// memory the copy is truly asynchronous and the span must stay valid until the stream reaches
// it. kInvalidArgument if the view is too short or not contiguous.
template <class T>
void upload(backend::cuda, std::span<const T> host, DeviceView<T, 1> dst) {
  require(host.size() <= dst.extent(0) && (dst.extent(0) <= 1 || dst.stride(0) == 1), ErrorCode::kInvalidArgument,
          "upload: {} elements into a view of {}", host.size(), dst.extent(0));
  if (host.empty()) return;
  MOE_CUDA_CHECK(cudaMemcpyAsync(dst.data(), host.data(), host.size_bytes(), cudaMemcpyHostToDevice, ::moe::cuda::stream()));
}

// host = src[0, host.size()). Synchronous: waits for the work queued before it on the backend's
// stream (and reports a fault of any of it as kDevice).
template <class T>
void download(backend::cuda, DeviceView<const T, 1> src, std::span<T> host) {
  require(host.size() <= src.extent(0) && (src.extent(0) <= 1 || src.stride(0) == 1), ErrorCode::kInvalidArgument,
          "download: {} elements from a view of {}", host.size(), src.extent(0));
  if (host.empty()) return;
  MOE_CUDA_CHECK(cudaMemcpyAsync(host.data(), src.data(), host.size_bytes(), cudaMemcpyDeviceToHost,
                                 ::moe::cuda::stream()));
  MOE_CUDA_CHECK(cudaStreamSynchronize(::moe::cuda::stream()));
}

// dst = src, both [n, d] f32 in device memory (any row strides, unit inner stride), no overlap:
// one cudaMemcpy2DAsync on the backend's stream.
inline void copy_rows(backend::cuda, DeviceView<const float, 2> src, DeviceView<float, 2> dst) {
  detail::check_same_shape(src, dst, "copy_rows", "src", "dst");
  const index_t n = src.extent(0), d = src.extent(1);
  if (n == 0 || d == 0) return;
  const std::size_t width = d * sizeof(float);
  const std::size_t spitch = n > 1 ? src.stride(0) * sizeof(float) : width;
  const std::size_t dpitch = n > 1 ? dst.stride(0) * sizeof(float) : width;
  require(spitch >= width && dpitch >= width, ErrorCode::kInvalidArgument,
          "copy_rows: row strides {} and {} are shorter than the rows ({})", src.stride(0), dst.stride(0), d);
  MOE_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), dpitch, src.data(), spitch, width, n, cudaMemcpyDeviceToDevice,
                                   ::moe::cuda::stream()));
}

// dst[i, :] = src[rows[i], :]: src [m, d], rows [n] (device memory), dst [n, d].
inline void gather_rows(backend::cuda, DeviceView<const float, 2> src, DeviceView<const std::int32_t, 1> rows,
                        DeviceView<float, 2> dst) {
  require(dst.extent(0) == rows.extent(0) && dst.extent(1) == src.extent(1), ErrorCode::kInvalidArgument,
          "gather_rows: src [{}, {}], {} rows, dst [{}, {}]", src.extent(0), src.extent(1), rows.extent(0),
          dst.extent(0), dst.extent(1));
  cuda_detail::launch_gather<float>(src, rows, dst, "gather_rows");
}

// The embedding lookup: out[t, :] = f32(table[tokens[t], :]). table [vocab, d] stored as W,
// tokens [n] ids (device memory; Model::forward checks them), out [n, d] f32.
template <class W>
void embed_rows(backend::cuda, DeviceView<const W, 2> table, DeviceView<const std::int32_t, 1> tokens,
                DeviceView<float, 2> out) {
  if constexpr (cuda_detail::is_cuda_matrix_format_v<W>) {
    require(out.extent(0) == tokens.extent(0) && out.extent(1) == detail::weight_cols(table),
            ErrorCode::kInvalidArgument, "embed_rows: table [{}, {}] ({}), {} tokens, out [{}, {}]", table.extent(0),
            detail::weight_cols(table), FormatTraits<W>::name, tokens.extent(0), out.extent(0), out.extent(1));
    cuda_detail::launch_gather<W>(table, tokens, out, "embed_rows");
  } else {
    static_assert(dependent_false<W>, "kernels::embed_rows is not implemented for backend::cuda with this weight "
                                      "type (implemented: float, bf16, f16, the block formats)");
  }
}

// dst = f32(src), both [n] (any strides).
template <class W>
void to_f32(backend::cuda, DeviceView<const W, 1> src, DeviceView<float, 1> dst) {
  if constexpr (cuda_detail::is_cuda_weight_v<W>) {
    require(src.extent(0) == dst.extent(0), ErrorCode::kInvalidArgument, "to_f32: {} elements into {}", src.extent(0),
            dst.extent(0));
    if (src.extent(0) == 0) return;
    cuda_detail::launch(cuda_detail::to_f32_kernel<W>, cuda_detail::grid_for(src.extent(0), 256), 256, 0, 
        src.data(), src.stride(0), dst.data(), dst.stride(0), src.extent(0));
    ::moe::cuda::check_launch("to_f32_kernel");
  } else {
    static_assert(dependent_false<W>, "kernels::to_f32 is not implemented for backend::cuda with this weight type "
                                      "(implemented: float, bf16, f16)");
  }
}

}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
