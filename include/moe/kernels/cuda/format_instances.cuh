// The CUDA kernels templated on a matrix format (the GEMV/GEMM products, the grouped expert
// products, MLA's absorbed projections, the embedding gather) as explicit instantiations, one
// format per translation unit. A translation unit that includes the whole backend (a tool built
// for --backend cuda, a CUDA test) otherwise compiles them for all 17 formats itself: with nvcc
// at -O3 for sm_90 that is most of the device code, and a tool's translation unit took 11.7
// minutes on one core (cicc 307 s, ptxas 203 s; longer than one call of the GPU machine allows).
//   MOE_CUDA_FORMAT_INSTANCES defined: the instantiations are declared extern (this project's CUDA
//     executables, which link instances/'s moe_cuda_format_instances);
//   not defined: nothing changes (applications compile what they use, as with any header-only
//     library; instances/cuda_format.cu defines one format's with MOE_CUDA_FORMAT_KERNELS).
#pragma once

#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)

#include "moe/kernels/cuda/copy.cuh"
#include "moe/kernels/cuda/grouped.cuh"
#include "moe/kernels/cuda/matmul.cuh"
#include "moe/kernels/cuda/mla.cuh"

// X: `extern` or nothing; W: the format's storage type.
#define MOE_CUDA_FORMAT_KERNELS(X, W)                                                                                   \
  X template void matmul<W>(backend::cuda, DeviceView<const float, 2>, DeviceView<const W, 2>, DeviceView<float, 2>); \
  X template void matmul_fanout<W>(backend::cuda, DeviceView<const float, 2>, std::span<const DeviceView<const W, 2>>,  \
                                   std::span<const DeviceView<float, 2>>);                                              \
  X template void matmul_in_out<W>(backend::cuda, DeviceView<const float, 2>, DeviceView<const W, 2>,                   \
                                   DeviceView<float, 2>);                                                               \
  X template void grouped_matmul<W>(backend::cuda, DeviceView<const float, 2>, DeviceView<const W, 2>, std::size_t,     \
                                    DeviceView<const std::int32_t, 1>, DeviceView<float, 2>, index_t);                  \
  X template void grouped_matmul_swiglu<W>(backend::cuda, DeviceView<const float, 2>, DeviceView<const W, 2>,          \
                                           std::size_t, DeviceView<const W, 2>, std::size_t,                            \
                                           DeviceView<const std::int32_t, 1>, DeviceView<float, 2>, index_t);           \
  X template void grouped_matmul_in_out<W>(backend::cuda, DeviceView<const float, 2>, DeviceView<const W, 2>,          \
                                           std::size_t, DeviceView<const std::int32_t, 1>, DeviceView<float, 2>);       \
  X template void mla_absorb_queries<W>(backend::cuda, const MlaShape&, DeviceView<const W, 2>,                        \
                                        DeviceView<const float, 2>, DeviceView<float, 2>);                              \
  X template void mla_expand_values<W>(backend::cuda, const MlaShape&, DeviceView<const W, 2>,                         \
                                       DeviceView<const float, 2>, DeviceView<float, 2>);                               \
  X template void embed_rows<W>(backend::cuda, DeviceView<const W, 2>, DeviceView<const std::int32_t, 1>,              \
                                DeviceView<float, 2>);

// F(X, W) for every matrix format of backend::cuda (all_formats, core/format.hpp; checked below:
// a format added there and not here is a compile error).
#define MOE_CUDA_FOR_EACH_FORMAT(F, X)                                                                          \
  F(X, float) F(X, bf16) F(X, f16) F(X, quant::BlockQ8_0) F(X, quant::BlockQ4_0) F(X, quant::BlockQ4_1)         \
  F(X, quant::BlockQ5_0) F(X, quant::BlockQ5_1) F(X, quant::BlockQ2_K) F(X, quant::BlockQ3_K)                  \
  F(X, quant::BlockQ4_K) F(X, quant::BlockQ5_K) F(X, quant::BlockQ6_K) F(X, quant::BlockIq4Nl)                  \
  F(X, quant::BlockIq4Xs) F(X, quant::BlockMxfp4) F(X, quant::BlockFp8E4m3)

namespace moe::kernels {
#define MOE_CUDA_FORMAT_LISTED(X, W) +(backend_supports_format_v<backend::cuda, W> ? 1 : 0)
static_assert((0 MOE_CUDA_FOR_EACH_FORMAT(MOE_CUDA_FORMAT_LISTED, )) ==
                  []<class... L>(type_list<L...>) { return static_cast<int>(sizeof...(L)); }(backend::cuda::formats{}),
              "MOE_CUDA_FOR_EACH_FORMAT must list every format of backend::cuda::formats");
#undef MOE_CUDA_FORMAT_LISTED
#if defined(MOE_CUDA_FORMAT_INSTANCES)
MOE_CUDA_FOR_EACH_FORMAT(MOE_CUDA_FORMAT_KERNELS, extern)
#endif
}  // namespace moe::kernels

#endif  // MOE_ENABLE_CUDA && __CUDACC__
