// Weight upload to a device backend: one allocation of the backend's memory for every tensor the
// model uses (each at a 256-byte aligned offset), filled tensor by tensor from the mapped
// checkpoint as stored (f32 / bf16 / f16 or a block format, byte for byte), driven by the
// weights' one tensor list (transform).
// A host backend never uploads: it uses the mapped bytes in place.
#pragma once

#include "moe/core/buffer.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/kernels/kernels.hpp"
#include "moe/model/weights.hpp"

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <utility>

namespace moe::model {

// Called after each uploaded tensor with the bytes done and the total.
using UploadProgress = std::function<void(std::size_t done, std::size_t total)>;

template <class Space>
struct UploadedWeights {
  ModelWeights<Space> weights;
  std::shared_ptr<const void> storage;  // owns the device allocation
};

template <class Backend>
UploadedWeights<typename Backend::memory> upload_weights(const ModelWeights<host_memory>& host,
                                                         const UploadProgress& progress = {}) {
  using Mem = typename Backend::memory;
  constexpr std::size_t kAlign = 256;
  const auto padded = [](std::size_t b) { return (b + kAlign - 1) / kAlign * kAlign; };
  // Pass 1: the formats (the backend must have kernels for them) and the bytes of every tensor.
  require_backend_formats<Backend>(host);
  std::size_t total = 0;
  (void)host.transform([&](const char*, const auto& t) {
    if (!t.empty()) total += padded(t.bytes());
    return t;
  });
  auto arena = std::make_shared<Buffer<std::byte, Mem>>(std::max<std::size_t>(total, 1));
  std::byte* base = arena->data();
  std::size_t offset = 0, done = 0;
  // Pass 2: copy each tensor and point the device weights at it.
  auto weights = host.transform([&](const char*, const auto& t) {
    using HostT = std::remove_cvref_t<decltype(t)>;
    using DevT = std::conditional_t<std::is_same_v<HostT, layers::WeightMatrix<host_memory>>, layers::WeightMatrix<Mem>,
                                    layers::WeightVector<Mem>>;
    DevT d;
    if constexpr (std::is_same_v<DevT, layers::WeightMatrix<Mem>>) {
      d = DevT{t.dtype, nullptr, t.rows, t.cols, t.row_stride};
    } else {
      d = DevT{t.dtype, nullptr, t.size};
    }
    if (t.empty()) return d;
    const std::size_t bytes = t.bytes();
    kernels::upload(Backend{}, std::span<const std::byte>(t.data, bytes),
                    TensorView<std::byte, 1, Mem>(base + offset, {bytes}));
    d.data = base + offset;
    offset += padded(bytes);
    done += bytes;
    if (progress) progress(done, total);
    return d;
  });
  return UploadedWeights<Mem>{std::move(weights), std::shared_ptr<const void>(arena, arena.get())};
}

}  // namespace moe::model
