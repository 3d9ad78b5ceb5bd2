// libFuzzer target: SafetensorsFile::parse over arbitrary bytes must either succeed with every
// tensor inside the buffer or throw moe::Error; never crash, hang or read out of bounds.
#include <moe/io/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

namespace {

// Views a weight tensor with its own dtype and rank (1..3), and reads its first and last element.
float touch(const moe::io::TensorInfo& t) {
  if (!t.dtype || t.shape.empty() || t.shape.size() > 3) return 0.0f;
  return moe::visit_dtype(*t.dtype, [&](auto tag) -> float {
    using T = decltype(tag);
    auto first_last = [](auto v) {
      if (v.size() == 0) return 0.0f;
      const auto s = v.data();
      return moe::to_float(s[0]) + moe::to_float(s[v.size() - 1]);
    };
    try {
      switch (t.shape.size()) {
        case 1: return first_last(moe::io::tensor_view<T, 1>(t, "fuzz"));
        case 2: return first_last(moe::io::tensor_view<T, 2>(t, "fuzz"));
        default: return first_last(moe::io::tensor_view<T, 3>(t, "fuzz"));
      }
    } catch (const moe::Error&) {  // misaligned data is reported, not read
      return 0.0f;
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A copy in a buffer of exactly `size` bytes, so ASan sees any read past the end.
  std::vector<std::byte> buffer(size);
  if (size != 0) std::memcpy(buffer.data(), data, size);
  try {
    const auto f = moe::io::SafetensorsFile::parse(buffer, "fuzz.safetensors");
    const std::byte* lo = buffer.data() + f.data_offset();
    const std::byte* hi = buffer.data() + buffer.size();
    volatile float sink = 0;
    std::size_t total = 0;
    for (const auto& t : f.tensors()) {
      if (t.bytes.data() < lo || t.bytes.data() + t.bytes.size() > hi) std::abort();
      if (t.bytes.size() != t.element_count() * t.element_size) std::abort();
      if (f.find(t.name) != &t) std::abort();
      total += t.bytes.size();
      for (const std::byte b : t.bytes) sink = sink + static_cast<float>(b);
      sink = sink + touch(t);
    }
    if (total != static_cast<std::size_t>(hi - lo)) std::abort();  // tensors tile the data buffer
    for (const auto& [k, v] : f.metadata()) sink = sink + static_cast<float>(k.size() + v.size());
  } catch (const moe::Error&) {
  }
  return 0;
}
