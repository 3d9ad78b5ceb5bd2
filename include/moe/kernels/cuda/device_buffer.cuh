// DeviceBuffer<T>: RAII ownership of one cudaMalloc allocation (move-only), with checked copies
// from and to host spans, and TensorViews onto it whose pointers are device pointers
// (backend::cuda's memory is device_memory: never dereference them on the host).
#pragma once

#if defined(MOE_ENABLE_CUDA)

#include "moe/core/error.hpp"
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

namespace moe::cuda {

template <class T>
class DeviceBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "DeviceBuffer holds trivially copyable types");

 public:
  DeviceBuffer() = default;

  // Allocates n elements of device memory (uninitialised; cudaMalloc aligns to 256 bytes).
  // Throws kInvalidArgument if the byte count overflows, kDevice if cudaMalloc fails.
  explicit DeviceBuffer(index_t n) {
    require(n <= std::numeric_limits<std::size_t>::max() / sizeof(T), ErrorCode::kInvalidArgument,
            "DeviceBuffer of {} elements of {} bytes overflows size_t", n, sizeof(T));
    if (n == 0) return;
    void* p = nullptr;
    const cudaError_t status = cudaMalloc(&p, n * sizeof(T));
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      fail(ErrorCode::kDevice, "cudaMalloc({} bytes) failed: {} ({})", n * sizeof(T),
           cudaGetErrorString(status), cudaGetErrorName(status));
    }
    data_ = static_cast<T*>(p);
    size_ = n;
  }

  // A buffer holding a copy of `host`.
  static DeviceBuffer from_host(std::span<const T> host) {
    DeviceBuffer buffer(host.size());
    buffer.upload(host);
    return buffer;
  }

  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  T* data() noexcept { return data_; }  // device pointer
  const T* data() const noexcept { return data_; }
  index_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }

  // Copies `host` into elements [offset, offset + host.size()). Synchronous (cudaMemcpy: waits
  // for earlier work on the default stream). kInvalidArgument if the range does not fit.
  void upload(std::span<const T> host, index_t offset = 0) {
    check_range(offset, host.size(), "upload");
    if (host.empty()) return;
    MOE_CUDA_CHECK(cudaMemcpy(data_ + offset, host.data(), host.size_bytes(), cudaMemcpyHostToDevice));
  }

  // Copies elements [offset, offset + host.size()) into `host`. Synchronous: waits for the
  // kernels launched before it on the default stream, so it also reports their faults.
  void download(std::span<T> host, index_t offset = 0) const {
    check_range(offset, host.size(), "download");
    if (host.empty()) return;
    MOE_CUDA_CHECK(cudaMemcpy(host.data(), data_ + offset, host.size_bytes(), cudaMemcpyDeviceToHost));
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

  // Contiguous row-major view of `shape` over the start of the buffer (device pointer inside).
  template <std::size_t R>
  View<T, R> view(const std::array<index_t, R>& shape) {
    View<T, R> v(data_, shape);
    check_view(v);
    return v;
  }
  template <std::size_t R>
  View<const T, R> view(const std::array<index_t, R>& shape) const {
    View<const T, R> v(data_, shape);
    check_view(v);
    return v;
  }

  // Strided view starting `offset` elements into the buffer (e.g. a padded leading dimension,
  // or a deliberately misaligned start in tests). Every element it can address must lie inside.
  template <std::size_t R>
  View<T, R> view(const std::array<index_t, R>& shape, const std::array<index_t, R>& strides,
                  index_t offset = 0) {
    View<T, R> v(data_ + offset, shape, strides);
    check_view(v, offset);
    return v;
  }
  template <std::size_t R>
  View<const T, R> view(const std::array<index_t, R>& shape, const std::array<index_t, R>& strides,
                        index_t offset = 0) const {
    View<const T, R> v(data_ + offset, shape, strides);
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
            "DeviceBuffer::{} of {} elements at offset {} exceeds the buffer's {} elements", what,
            count, offset, size_);
  }

  // The last addressable element (offset + sum of (extent-1)*stride) must be inside the buffer.
  template <class V>
  void check_view(const V& v, index_t offset = 0) const {
    if (v.empty()) {
      require(offset <= size_, ErrorCode::kInvalidArgument,
              "DeviceBuffer view offset {} exceeds the buffer's {} elements", offset, size_);
      return;
    }
    index_t last = offset;
    bool overflow = false;
    for (std::size_t d = 0; d < V::rank; ++d) {
      const index_t e = v.extent(d) - 1;
      const index_t s = v.stride(d);
      if (s != 0 && e > (std::numeric_limits<index_t>::max() - last) / s) overflow = true;
      else last += e * s;
    }
    require(!overflow && last < size_, ErrorCode::kInvalidArgument,
            "DeviceBuffer view (offset {}, {} elements) reaches past the buffer's {} elements",
            offset, v.size(), size_);
  }

  T* data_ = nullptr;  // device pointer, or null when empty
  index_t size_ = 0;
};

}  // namespace moe::cuda

#endif  // MOE_ENABLE_CUDA
