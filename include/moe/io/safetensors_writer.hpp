// Writes a safetensors file that io::SafetensorsFile reads back: u64 little-endian header length N,
// N bytes of JSON ({"__metadata__": {...}, name: {"dtype", "shape", "data_offsets": [begin, end]}}),
// padded with spaces so that the data buffer starts at a multiple of 8, then the tensors back to
// back with no gap (the reader requires them to tile the buffer exactly). Tensors are laid out by
// element size, largest first, so every tensor's data is aligned to its element size in the
// mapped file (the reader hands out typed views only for aligned data). Tensor bytes come from
// spans or are produced one tensor at a time while the file is written.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace moe::io {

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::f32;        // f32, bf16 or f16
  std::vector<index_t> shape;      // outermost first
  std::span<const std::byte> bytes;  // the data, or empty with `produce` set
  // Called once while the file is written when `bytes` is empty: exactly the tensor's bytes.
  std::function<std::vector<std::byte>()> produce;
};

namespace detail {

inline std::string_view safetensors_dtype_name(DType t, std::string_view tensor) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    default: break;
  }
  fail(ErrorCode::kUnsupported, "safetensors: tensor {} has type {}; only f32, bf16 and f16 are written", tensor,
       dtype_name(t));
}

}  // namespace detail

// Writes `tensors` to `path` (through `path`.tmp, renamed when complete). Errors: kInvalidArgument
// for a repeated name or bytes that do not match the shape, kUnsupported for a type safetensors
// cannot hold, kIo for the file.
inline void write_safetensors(const std::filesystem::path& path, std::span<const SafetensorsTensor> tensors,
                              const nlohmann::json& metadata = {{"format", "pt"}}) {
  std::vector<std::size_t> order(tensors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.is_null()) header["__metadata__"] = metadata;
  std::set<std::string, std::less<>> names;
  std::vector<std::uint64_t> sizes(tensors.size());
  std::uint64_t offset = 0;
  for (const std::size_t i : order) {
    const SafetensorsTensor& t = tensors[i];
    require(names.insert(t.name).second, ErrorCode::kInvalidArgument, "safetensors {}: tensor {} written twice",
            path.string(), t.name);
    const std::string_view dtype = detail::safetensors_dtype_name(t.dtype, t.name);
    std::uint64_t n = 1;
    for (const index_t d : t.shape) n *= static_cast<std::uint64_t>(d);
    sizes[i] = n * dtype_size(t.dtype);
    require(!t.bytes.empty() || t.produce || sizes[i] == 0, ErrorCode::kInvalidArgument,
            "safetensors {}: tensor {} has no data", path.string(), t.name);
    require(t.bytes.empty() || t.bytes.size() == sizes[i], ErrorCode::kInvalidArgument,
            "safetensors {}: tensor {} has {} bytes, its shape needs {}", path.string(), t.name, t.bytes.size(), sizes[i]);
    header[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + sizes[i]}}};
    offset += sizes[i];
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');

  const std::filesystem::path tmp = path.string() + ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  require(out.good(), ErrorCode::kIo, "cannot create {}", tmp.string());
  const auto put = [&](const void* p, std::size_t n) {
    out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    if (!out.good()) {
      out.close();
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      fail(ErrorCode::kIo, "cannot write {} (disk full?)", tmp.string());
    }
  };
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((static_cast<std::uint64_t>(text.size()) >> (8 * i)) & 0xffu);
  put(len, 8);
  put(text.data(), text.size());
  for (const std::size_t i : order) {
    const SafetensorsTensor& t = tensors[i];
    if (!t.bytes.empty() || sizes[i] == 0) {
      put(t.bytes.data(), t.bytes.size());
      continue;
    }
    const std::vector<std::byte> b = t.produce();
    require(b.size() == sizes[i], ErrorCode::kInvalidArgument, "safetensors {}: tensor {} produced {} bytes, its shape needs {}",
            path.string(), t.name, b.size(), sizes[i]);
    put(b.data(), b.size());
  }
  out.close();
  require(!out.fail(), ErrorCode::kIo, "cannot close {}", tmp.string());
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  require(!ec, ErrorCode::kIo, "cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message());
}

}  // namespace moe::io
