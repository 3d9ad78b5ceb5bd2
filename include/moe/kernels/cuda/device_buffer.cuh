// Buffer<T, device_memory>: the device half of the backend memory policy (core/buffer.hpp
// declares the template; backend::cuda::memory is device_memory). RAII ownership of one cudaMalloc
// allocation (move-only), checked copies from and to host spans, and DeviceViews onto it: views
// of device memory have no element access on the host, so a host loop over them does not compile.
// moe::cuda::DeviceBuffer<T> is the same type.
#pragma once

#if defined(MOE_ENABLE_CUDA)

#include "moe/core/buffer.hpp"
#include "moe/core/error.hpp"
#include "moe/core/memory.hpp"
#include "moe/core/tensor.hpp"
#include "moe/kernels/cuda/check.cuh"

#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace moe {

template <class T>
class Buffer<T, device_memory> {
  static_assert(std::is_trivially_copyable_v<T>, "a device Buffer holds trivially copyable types");

 public:
  Buffer() = default;

  // Allocates n elements of device memory (uninitialised; cudaMalloc aligns to 256 bytes), the
  // byte count rounded up to a multiple of 16: kernels may read the whole 16-byte chunk that holds
  // a buffer's last byte (the GEMV's staged rows, row_stage.cuh). Throws kInvalidArgument if the byte count overflows; kOutOfMemory naming the bytes asked for
  // and the bytes free when the device has not enough; kDevice for any other cudaMalloc failure.
  explicit Buffer(index_t n) {
    require(n <= (std::numeric_limits<std::size_t>::max() - 15) / sizeof(T), ErrorCode::kInvalidArgument,
            "device Buffer of {} elements of {} bytes overflows size_t", n, sizeof(T));
    if (n == 0) return;
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, (n * sizeof(T) + 15) / 16 * 16);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      std::size_t free_bytes = 0, total_bytes = 0;
      if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
      fail(status == cudaErrorMemoryAllocation ? ErrorCode::kOutOfMemory : ErrorCode::kDevice,
           "cudaMalloc({} bytes) failed: {} ({}); the device has {} bytes free of {}", n * sizeof(T),
           cudaGetErrorString(status), cudaGetErrorName(status), free_bytes, total_bytes);
    }
    data_ = static_cast<T*>(p);
    size_ = n;
  }

  // A buffer holding a copy of `host`.
  static Buffer from_host(std::span<const T> host) {
    Buffer buffer(host.size());
    buffer.upload(host);
    return buffer;
  }

  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~Buffer() { release(); }

  T* data() noexcept { return data_; }  // device pointer
  const T* data() const noexcept { return data_; }
  index_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }

  // Copies `host` into elements [offset, offset + host.size()). Synchronous (waits for earlier
  // work on the backend's stream, cuda::stream()). kInvalidArgument if the range does not fit.
  void upload(std::span<const T> host, index_t offset = 0) {
    check_range(offset, host.size(), "upload");
    if (host.empty()) return;
    MOE_CUDA_CHECK(cudaMemcpyAsync(data_ + offset, host.data(), host.size_bytes(), cudaMemcpyHostToDevice,
                                   ::moe::cuda::stream()));
    MOE_CUDA_CHECK(cudaStreamSynchronize(::moe::cuda::stream()));
  }

  // Copies elements [offset, offset + host.size()) into `host`. Synchronous: waits for the
  // kernels launched before it on the backend's stream, so it also reports their faults.
  void download(std::span<T> host, index_t offset = 0) const {
    check_range(offset, host.size(), "download");
    if (host.empty()) return;
    MOE_CUDA_CHECK(cudaMemcpyAsync(host.data(), data_ + offset, host.size_bytes(), cudaMemcpyDeviceToHost,
                                   ::moe::cuda::stream()));
    MOE_CUDA_CHECK(cudaStreamSynchronize(::moe::cuda::stream()));
  }

  std::vector<T> to_host() const {
    std::vector<T> out(size_);
    download(out);
    return out;
  }

  // Sets every byte to `value` (cudaMemset), e.g. 0xff to poison a float output with NaNs.
  void fill_bytes(unsigned char value) {
    if (size_ == 0) return;
    MOE_CUDA_CHECK(cudaMemset(data_, value, bytes()));
  }

  // Contiguous row-major view of `shape` over the start of the buffer (shape must fit).
  template <std::size_t R>
  DeviceView<T, R> view(const std::array<index_t, R>& shape) {
    DeviceView<T, R> v(data_, shape);
    check_view(v);
    return v;
  }
  template <std::size_t R>
  DeviceView<const T, R> view(const std::array<index_t, R>& shape) const {
    DeviceView<const T, R> v(data_, shape);
    check_view(v);
    return v;
  }
  DeviceView<T, 1> view() noexcept { return DeviceView<T, 1>(data_, {size_}); }
  DeviceView<const T, 1> view() const noexcept { return DeviceView<const T, 1>(data_, {size_}); }

  // Strided view starting `offset` elements into the buffer (e.g. a padded leading dimension,
  // or a deliberately misaligned start in tests). Every element it can address must lie inside.
  template <std::size_t R>
  DeviceView<T, R> view(const std::array<index_t, R>& shape, const std::array<index_t, R>& strides,
                        index_t offset = 0) {
    require(offset <= size_, ErrorCode::kInvalidArgument, "device Buffer view offset {} exceeds the buffer's {} elements",
            offset, size_);
    DeviceView<T, R> v(data_ + offset, shape, strides);
    check_view(v, offset);
    return v;
  }
  template <std::size_t R>
  DeviceView<const T, R> view(const std::array<index_t, R>& shape, const std::array<index_t, R>& strides,
                              index_t offset = 0) const {
    require(offset <= size_, ErrorCode::kInvalidArgument, "device Buffer view offset {} exceeds the buffer's {} elements",
            offset, size_);
    DeviceView<const T, R> v(data_ + offset, shape, strides);
    check_view(v, offset);
    return v;
  }

 private:
  void release() noexcept {
    // cudaFree's status is ignored: a destructor cannot report it, and after a sticky error every
    // call fails anyway (the context is gone and so is the memory).
    if (data_ != nullptr) (void)cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
  }

  void check_range(index_t offset, index_t count, const char* what) const {
    require(offset <= size_ && count <= size_ - offset, ErrorCode::kInvalidArgument,
            "device Buffer::{} of {} elements at offset {} exceeds the buffer's {} elements", what, count, offset,
            size_);
  }

  // The last addressable element (offset + sum of (extent-1)*stride) must be inside the buffer.
  template <class V>
  void check_view(const V& v, index_t offset = 0) const {
    if (v.empty()) return;
    index_t last = offset;
    bool overflow = false;
    for (std::size_t d = 0; d < V::rank; ++d) {
      const index_t e = v.extent(d) - 1;
      const index_t s = v.stride(d);
      if (s != 0 && e > (std::numeric_limits<index_t>::max() - last) / s) overflow = true;
      else last += e * s;
    }
    require(!overflow && last < size_, ErrorCode::kInvalidArgument,
            "device Buffer view (offset {}, {} elements) reaches past the buffer's {} elements", offset, v.size(),
            size_);
  }

  T* data_ = nullptr;  // device pointer, or null when empty
  index_t size_ = 0;
};

namespace cuda {
template <class T>
using DeviceBuffer = Buffer<T, device_memory>;
}  // namespace cuda

}  // namespace moe

#endif  // MOE_ENABLE_CUDA
