// Writes a Hugging Face checkpoint folder (config.json + model.safetensors) from a config and
// tensors in host memory under their checkpoint names (model::checkpoint_tensors): f32, bf16 and
// f16 tensors are written as they are; a ggml block format (q8_0, q4_K, ...), which safetensors
// cannot hold, is dequantized and written as bf16 (one tensor at a time).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/io/gguf_model.hpp"
#include "moe/io/safetensors_writer.hpp"
#include "moe/model/checkpoint_tensors.hpp"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

namespace moe::io {

// Writes `folder`/config.json (`config`, indented) and `folder`/model.safetensors (creating the
// folder). Errors: kIo for the files, what write_safetensors reports.
inline void export_hf_folder(const std::filesystem::path& folder, const nlohmann::json& config,
                             std::span<const model::NamedTensor> tensors) {
  catch_as_error("export_hf_folder", [&] {
    std::error_code ec;
    std::filesystem::create_directories(folder, ec);
    require(!ec, ErrorCode::kIo, "cannot create folder {}: {}", folder.string(), ec.message());
    std::vector<SafetensorsTensor> out;
    out.reserve(tensors.size());
    for (const model::NamedTensor& t : tensors) {
      SafetensorsTensor s{t.name, t.dtype, t.shape, {}, {}};
      if (!is_block_dtype(t.dtype)) {
        s.bytes = {t.data, t.bytes()};
      } else {
        s.dtype = DType::bf16;
        s.produce = [&t] {
          const std::size_t cols = static_cast<std::size_t>(t.shape.back());
          const std::size_t rows = cols == 0 ? 0 : t.bytes() / format_row_bytes(t.dtype, cols);
          const std::size_t rb = format_row_bytes(t.dtype, cols);
          std::vector<float> row(cols);
          std::vector<std::byte> b(rows * cols * sizeof(bf16));
          for (std::size_t r = 0; r < rows; ++r) {
            detail::row_to_float(t.dtype, t.data + r * rb, cols, row.data());
            for (std::size_t i = 0; i < cols; ++i) {
              const bf16 v = to_bf16(row[i]);
              std::memcpy(b.data() + (r * cols + i) * sizeof(bf16), &v, sizeof(bf16));
            }
          }
          return b;
        };
      }
      out.push_back(std::move(s));
    }
    write_safetensors(folder / "model.safetensors", out);
    const std::filesystem::path cfg = folder / "config.json";
    std::ofstream f(cfg, std::ios::binary | std::ios::trunc);
    f << config.dump(2) << "\n";
    f.close();
    require(!f.fail(), ErrorCode::kIo, "cannot write {}", cfg.string());
  });
}

}  // namespace moe::io
