// Buffer<T, Space>: owning storage of n elements in a memory space, the allocation every backend
// goes through (`Buffer<T, typename Backend::memory>`). The host buffer is an AlignedBuffer
// (64-byte aligned, zero-filled); the device buffer lives in kernels/cuda/device_buffer.cuh.
// Both hand out TensorViews of their own space, so a view onto device memory has no element
// access on the host.
#pragma once

#include "moe/core/memory.hpp"
#include "moe/core/tensor.hpp"

#include <array>
#include <cstddef>

namespace moe {

template <class T, class Space>
class Buffer;

template <class T>
class Buffer<T, host_memory> {
 public:
  Buffer() = default;
  explicit Buffer(index_t n) : storage_(n) {}

  T* data() noexcept { return storage_.data(); }
  const T* data() const noexcept { return storage_.data(); }
  index_t size() const noexcept { return storage_.size(); }
  std::size_t bytes() const noexcept { return storage_.size() * sizeof(T); }
  bool empty() const noexcept { return storage_.size() == 0; }

  // Contiguous row-major view of `shape` over the start of the buffer (shape must fit).
  template <std::size_t R>
  View<T, R> view(const std::array<index_t, R>& shape) noexcept {
    return View<T, R>(storage_.data(), shape);
  }
  template <std::size_t R>
  View<const T, R> view(const std::array<index_t, R>& shape) const noexcept {
    return View<const T, R>(storage_.data(), shape);
  }
  View<T, 1> view() noexcept { return View<T, 1>(storage_.data(), {storage_.size()}); }
  View<const T, 1> view() const noexcept { return View<const T, 1>(storage_.data(), {storage_.size()}); }

 private:
  AlignedBuffer<T> storage_;
};

template <class T>
using HostBuffer = Buffer<T, host_memory>;

}  // namespace moe
