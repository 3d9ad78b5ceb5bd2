// TensorView<T, Rank, Space>: a non-owning strided view (pointer, extents, strides; outermost-first,
// PyTorch order) of memory in `Space` (host by default; only host views have element access). Tensor<T, Rank>: an owning, contiguous tensor with 64-byte aligned storage.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/memory.hpp"

#include <array>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <type_traits>
#include <utility>

#include <unistd.h>

namespace moe {

using index_t = std::size_t;

inline constexpr std::size_t kTensorAlignment = 64;  // one cache line, one AVX-512 register

template <class T, std::size_t Rank, class Space = host_memory>
class TensorView {
  static_assert(Rank >= 1, "TensorView: Rank must be at least 1");
  static_assert(MemorySpace<Space>, "TensorView: Space must be host_memory or device_memory");

 public:
  using memory = Space;
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using extents_type = std::array<index_t, Rank>;
  static constexpr std::size_t rank = Rank;

  TensorView() = default;

  // Contiguous row-major view of `shape` starting at `data`.
  TensorView(T* data, const extents_type& shape) : data_(data), shape_(shape) {
    index_t s = 1;
    for (std::size_t d = Rank; d-- > 0;) {
      strides_[d] = s;
      s *= shape_[d];
    }
  }

  TensorView(T* data, const extents_type& shape, const extents_type& strides)
      : data_(data), shape_(shape), strides_(strides) {}

  // A view of const T from a view of T.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_const_v<U>>>
  TensorView(const TensorView<U, Rank, Space>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  T* data() const noexcept { return data_; }
  const extents_type& shape() const noexcept { return shape_; }
  const extents_type& strides() const noexcept { return strides_; }
  index_t extent(std::size_t d) const noexcept { return shape_[d]; }
  index_t stride(std::size_t d) const noexcept { return strides_[d]; }

  index_t size() const noexcept {
    index_t n = 1;
    for (index_t e : shape_) n *= e;
    return n;
  }
  bool empty() const noexcept { return size() == 0; }

  bool is_contiguous() const noexcept {
    index_t s = 1;
    for (std::size_t d = Rank; d-- > 0;) {
      if (shape_[d] != 1 && strides_[d] != s) return false;
      s *= shape_[d];
    }
    return true;
  }

  // Unchecked element access (hot paths). Indices are outermost-first. Host memory only: a
  // device view has no element access (its pointer goes to kernels, never to a host loop).
  template <class... I>
    requires is_host_memory_v<Space>
  T& operator()(I... idx) const noexcept {
    static_assert(sizeof...(I) == Rank, "TensorView: wrong number of indices");
    const std::array<index_t, Rank> i{static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t d = 0; d < Rank; ++d) {
      assert(i[d] < shape_[d]);
      off += i[d] * strides_[d];
    }
    return data_[off];
  }

  // Checked element access: throws Error(kInvalidArgument) on an out-of-range index.
  template <class... I>
    requires is_host_memory_v<Space>
  T& at(I... idx) const {
    static_assert(sizeof...(I) == Rank, "TensorView: wrong number of indices");
    const std::array<index_t, Rank> i{static_cast<index_t>(idx)...};
    for (std::size_t d = 0; d < Rank; ++d) {
      require(i[d] < shape_[d], ErrorCode::kInvalidArgument,
              "tensor index {} out of range {} in dimension {}", i[d], shape_[d], d);
    }
    return (*this)(idx...);
  }

  // Rank-1 element access, or the sub-view at index i of the outermost dimension.
  decltype(auto) operator[](index_t i) const noexcept
    requires(is_host_memory_v<Space> || Rank > 1)
  {
    assert(i < shape_[0]);
    if constexpr (Rank == 1) {
      return data_[i * strides_[0]];
    } else {
      std::array<index_t, Rank - 1> shape{}, strides{};
      for (std::size_t d = 1; d < Rank; ++d) {
        shape[d - 1] = shape_[d];
        strides[d - 1] = strides_[d];
      }
      return TensorView<T, Rank - 1, Space>(data_ + i * strides_[0], shape, strides);
    }
  }

  // Rows [begin, end) of the outermost dimension.
  TensorView slice(index_t begin, index_t end) const {
    require(begin <= end && end <= shape_[0], ErrorCode::kInvalidArgument,
            "tensor slice [{}, {}) out of range {}", begin, end, shape_[0]);
    extents_type shape = shape_;
    shape[0] = end - begin;
    return TensorView(data_ + begin * strides_[0], shape, strides_);
  }

  // The same contiguous memory under another shape with the same number of elements.
  template <std::size_t R2>
  TensorView<T, R2, Space> reshape(const std::array<index_t, R2>& shape) const {
    index_t n = 1;
    for (index_t e : shape) n *= e;
    require(is_contiguous() && n == size(), ErrorCode::kInvalidArgument,
            "reshape of a {}-element tensor into {} elements (contiguous: {})", size(), n,
            is_contiguous());
    return TensorView<T, R2, Space>(data_, shape);
  }

  // A contiguous innermost row as a span (for Rank 1 the whole view). Host memory only.
  std::span<T> span() const
    requires is_host_memory_v<Space>
  {
    require(is_contiguous(), ErrorCode::kInvalidArgument, "span() of a non-contiguous tensor");
    return std::span<T>(data_, size());
  }

 private:
  T* data_ = nullptr;
  extents_type shape_{};
  extents_type strides_{};
};

// A view of host memory (the common case) and of CUDA device memory.
template <class T, std::size_t Rank>
using View = TensorView<T, Rank, host_memory>;
template <class T, std::size_t Rank>
using DeviceView = TensorView<T, Rank, device_memory>;

// 64-byte aligned heap storage for `n` trivially copyable elements (zero-initialised).
// Bytes of physical memory of this machine (0 if unknown); read once.
inline index_t physical_memory_bytes() noexcept {
  static const index_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES);
    const long page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<index_t>(pages) * static_cast<index_t>(page) : index_t{0};
  }();
  return bytes;
}

template <class T>
class AlignedBuffer {
  static_assert(std::is_trivially_copyable_v<T>, "AlignedBuffer holds trivially copyable types");

 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(index_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer& other) : AlignedBuffer(other.size_) {
    if (size_ != 0) std::memcpy(data_.get(), other.data_.get(), size_ * sizeof(T));
  }
  AlignedBuffer& operator=(const AlignedBuffer& other) {
    if (this != &other) {
      AlignedBuffer copy(other);
      *this = std::move(copy);
    }
    return *this;
  }
  AlignedBuffer(AlignedBuffer&&) noexcept = default;
  AlignedBuffer& operator=(AlignedBuffer&&) noexcept = default;

  // Reallocates to n zeroed elements (old contents are discarded).
  void resize(index_t n) {
    require(n <= (static_cast<index_t>(-1) - kTensorAlignment) / sizeof(T),
            ErrorCode::kInvalidArgument, "buffer of {} elements overflows size_t", n);
    const index_t bytes = (n * sizeof(T) + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
    data_.reset();
    size_ = 0;
    if (n == 0) return;
    // The buffer is zero-filled, so every page is touched: a size beyond physical memory would
    // not fail here but summon the OOM killer later. Refuse it, and report a failed allocation,
    // as kOutOfMemory with the sizes.
    const index_t physical = physical_memory_bytes();
    if (physical != 0 && bytes > physical) {
      fail(ErrorCode::kOutOfMemory, "cannot allocate a buffer of {} bytes: the machine has {} bytes of memory", bytes,
           physical);
    }
    void* p = ::operator new(bytes, std::align_val_t{kTensorAlignment}, std::nothrow);
    if (p == nullptr) fail(ErrorCode::kOutOfMemory, "cannot allocate a buffer of {} bytes", bytes);
    std::memset(p, 0, bytes);
    data_.reset(static_cast<T*>(p));
    size_ = n;
  }

  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  index_t size() const noexcept { return size_; }
  T& operator[](index_t i) noexcept { return data_.get()[i]; }
  const T& operator[](index_t i) const noexcept { return data_.get()[i]; }
  std::span<T> span() noexcept { return {data_.get(), size_}; }
  std::span<const T> span() const noexcept { return {data_.get(), size_}; }

 private:
  struct Deleter {
    void operator()(T* p) const noexcept { ::operator delete(p, std::align_val_t{kTensorAlignment}); }
  };
  std::unique_ptr<T, Deleter> data_;
  index_t size_ = 0;
};

// An owning contiguous tensor. Copyable (deep copy) and movable.
template <class T, std::size_t Rank>
class Tensor {
 public:
  using extents_type = std::array<index_t, Rank>;

  Tensor() = default;
  explicit Tensor(const extents_type& shape) : shape_(shape) {
    index_t n = 1;
    for (index_t e : shape) {
      require(e == 0 || n <= static_cast<index_t>(-1) / e, ErrorCode::kInvalidArgument,
              "tensor shape overflows size_t");
      n *= e;
    }
    storage_.resize(n);
  }

  TensorView<T, Rank> view() noexcept { return {storage_.data(), shape_}; }
  TensorView<const T, Rank> view() const noexcept { return {storage_.data(), shape_}; }
  operator TensorView<T, Rank>() noexcept { return view(); }              // NOLINT
  operator TensorView<const T, Rank>() const noexcept { return view(); }  // NOLINT

  T* data() noexcept { return storage_.data(); }
  const T* data() const noexcept { return storage_.data(); }
  const extents_type& shape() const noexcept { return shape_; }
  index_t extent(std::size_t d) const noexcept { return shape_[d]; }
  index_t size() const noexcept { return storage_.size(); }

  template <class... I>
  T& operator()(I... idx) noexcept { return view()(idx...); }
  template <class... I>
  const T& operator()(I... idx) const noexcept { return view()(idx...); }

 private:
  extents_type shape_{};
  AlignedBuffer<T> storage_;
};

}  // namespace moe
