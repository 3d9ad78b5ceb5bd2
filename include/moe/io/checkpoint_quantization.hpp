// Quantized Hugging Face checkpoints: config.json's `quantization_config` and a TensorSource that
// reads the quantized tensors it describes into the library's block formats, once, at load.
//   * FP8 blocks (DeepSeek-V3/R1, Kimi K2: quant_method "fp8", fmt "e4m3", weight_block_size
//     [128, 128], activation_scheme "dynamic"): a float8_e4m3fn tensor W [rows, cols] ("F8_E4M3")
//     with `<name>_scale_inv` (F32, [ceil(rows/br), ceil(cols/bc)]) means W[r, c] =
//     e4m3(W[r, c]) · scale_inv[r / br, c / bc]. Repacked into rows of quant::BlockFp8E4m3 (128
//     codes and their tile's scale: 1.03x the FP8 bytes, kernels in kernels/cpu/quant_matmul.hpp).
//     Rows whose tiles do not cut them into whole 128-element blocks (cols or bc not a multiple
//     of 128: none in those models, only small test models) are dequantized to f32 instead
//     (exactly the value the format decodes to; 4x the FP8 bytes).
//   * MXFP4 experts (GPT-OSS: quant_method "mxfp4"): `<name>_blocks` (U8, [..., C/32, 16]) and
//     `<name>_scales` (U8 E8M0, [..., C/32]) hold a matrix [..., C] output-major, element 2k of a
//     block in the low nibble of byte k and 2k+1 in the high one, x = fp4(q) · 2^(scale - 127)
//     (transformers integrations/mxfp4.py, convert_moe_packed_tensors, which then transposes to
//     the bf16 bank's [E, d_model, 2·d_ff]). Repacked into ggml's block_mxfp4 (quant/mxfp4.hpp:
//     same exponent, element j < 16 in the low nibble of byte j, j + 16 in its high nibble): one
//     pass, the MXFP4 size, and the existing MXFP4 kernels run the output-major bank unchanged
//     (layers::ExpertLayout::kOutputMajorGlu; the binder asks for `<name>_blocks` with the
//     logical shape). A repack rather than a trait reading the two tensors in place because the
//     kernels' row-block traits need a block's scale next to its codes.
//   * MLA's kv_b_proj in FP8 is also offered split per head, as GGUF stores it (k_b_proj
//     [H·R, nope] = W_UK[h]ᵀ, v_b_proj [H·v, R] = W_UV[h]; layers/mla.hpp), so both MLA products
//     run the FP8 matmul per head. Transposing W_UK keeps every element's code and tile scale;
//     each 128-element block of the result takes its codes' common scale (nope a multiple of 128
//     and heads starting on tile rows, as DeepSeek-V3 / Kimi K2's 128 / 128 / 512), else the split
//     halves are f32 (the same values).
// Every other tensor (norms, router, embeddings, biases; modules_to_not_convert) is read as
// before. The repacked bytes live as long as the source's storage(); the mapped source bytes are
// advised away after the repack. Errors name the file, the tensor or key and the values seen.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/json.hpp"
#include "moe/core/tensor.hpp"
#include "moe/io/safetensors.hpp"
#include "moe/io/tensor_store.hpp"
#include "moe/model/weights.hpp"
#include "moe/quant/fp8.hpp"
#include "moe/quant/mxfp4.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe::io {

enum class QuantMethod : std::uint8_t { kNone, kFp8, kMxfp4 };

struct QuantizationConfig {
  QuantMethod method = QuantMethod::kNone;
  index_t block_rows = 128, block_cols = 128;  // fp8: weight_block_size [rows (out), cols (in)]
  std::vector<std::string> modules_to_not_convert;
  std::string source;  // config.json's path, for messages
};

// Parses `quantization_config` of a config.json object (absent or null: kNone). Errors
// (kUnsupported for methods and settings without kernels, kConfig for malformed values) name
// the key and the value seen.
inline QuantizationConfig parse_quantization_config(const nlohmann::json& config, std::string_view source) {
  QuantizationConfig q;
  q.source = std::string(source);
  if (!config.is_object()) return q;
  const auto it = config.find("quantization_config");
  if (it == config.end() || it->is_null()) return q;
  const nlohmann::json& j = *it;
  require(j.is_object(), ErrorCode::kConfig, "{}: quantization_config must be an object, found {}", source,
          describe(j));
  const auto m = j.find("quant_method");
  require(m != j.end() && m->is_string(), ErrorCode::kConfig,
          "{}: quantization_config.quant_method must be a string (\"fp8\" or \"mxfp4\"), found {}", source,
          m == j.end() ? std::string("nothing") : fmt::format("{}", describe(*m)));
  const std::string& method = m->get_ref<const std::string&>();
  if (method == "fp8") {
    q.method = QuantMethod::kFp8;
  } else if (method == "mxfp4") {
    q.method = QuantMethod::kMxfp4;
  } else {
    fail(ErrorCode::kUnsupported, "{}: quantization_config.quant_method {} is not supported (supported: \"fp8\" "
         "block checkpoints, \"mxfp4\" experts)", source, describe(*m));
  }
  if (const auto f = j.find("fmt"); f != j.end() && q.method == QuantMethod::kFp8) {
    require(f->is_string() && f->get_ref<const std::string&>() == "e4m3", ErrorCode::kUnsupported,
            "{}: quantization_config.fmt {} is not supported (only \"e4m3\")", source, describe(*f));
  }
  if (const auto a = j.find("activation_scheme"); a != j.end() && q.method == QuantMethod::kFp8) {
    require(a->is_string() && a->get_ref<const std::string&>() == "dynamic", ErrorCode::kUnsupported,
            "{}: quantization_config.activation_scheme {} is not supported (only \"dynamic\": activations "
            "stay in f32, no input scales)", source, describe(*a));
  }
  if (const auto b = j.find("weight_block_size"); b != j.end() && q.method == QuantMethod::kFp8) {
    const auto valid = [](const nlohmann::json& v) {
      return v.is_number_integer() && v.get<std::int64_t>() > 0 && v.get<std::int64_t>() <= (1 << 20);
    };
    require(b->is_array() && b->size() == 2 && valid((*b)[0]) && valid((*b)[1]), ErrorCode::kConfig,
            "{}: quantization_config.weight_block_size must be [rows, cols] of integers in [1, 2^20], found {}",
            source, describe(*b));
    q.block_rows = (*b)[0].get<index_t>();
    q.block_cols = (*b)[1].get<index_t>();
  }  // absent: DeepSeek's [128, 128]
  if (const auto n = j.find("modules_to_not_convert"); n != j.end() && !n->is_null()) {
    require(n->is_array(), ErrorCode::kConfig,
            "{}: quantization_config.modules_to_not_convert must be an array of strings, found {}", source,
            describe(*n));
    for (std::size_t i = 0; i < n->size(); ++i) {
      require((*n)[i].is_string(), ErrorCode::kConfig,
              "{}: quantization_config.modules_to_not_convert[{}] must be a string, found {}", source, i,
              describe((*n)[i]));
      q.modules_to_not_convert.push_back((*n)[i].get<std::string>());
    }
  }
  return q;
}

// The MLA shape a CheckpointTensorSource splits an FP8 kv_b_proj by (n_heads 0: a model without MLA).
struct MlaSplit {
  index_t n_heads = 0, nope = 0, v = 0;
};

// A TensorSource over a checkpoint's store that turns the quantized tensors of `config` into
// block formats (see the top of this file) and forwards every other name to `plain` (the store's
// plain reader). Binding is single-threaded; the repacked bytes are owned by storage(), which also
// keeps the store alive.
class CheckpointTensorSource final : public TensorSource {
 public:
  CheckpointTensorSource(std::shared_ptr<const TensorStore> store, const TensorSource& plain, QuantizationConfig config,
                         MlaSplit mla = {})
      : store_(*store), plain_(plain), config_(std::move(config)), mla_(mla), storage_(std::make_shared<Storage>()) {
    storage_->store = std::move(store);
  }

  bool contains(std::string_view name) const override {
    if (fp8_kv_b_of(name)) return true;
    return plain_.contains(name);
  }
  std::optional<std::vector<index_t>> shape_of(std::string_view name) const override {
    if (fp8_kv_b_of(name)) return std::nullopt;  // asked for by shape only
    return plain_.shape_of(name);
  }

  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    if (const auto kv = fp8_kv_b_of(name)) return fp8_kv_b_half(*kv->first, kv->second, name, shape);
    const TensorInfo& t = store_.get(name);
    if (t.dtype_name == "F8_E4M3") return fp8(t, shape);
    if (name.ends_with("_blocks") && t.dtype_name == "U8") return mxfp4(t, shape);
    return plain_.get(name, shape);
  }

  // Owns the repacked tensors and the store (the model's storage).
  std::shared_ptr<const void> storage() const noexcept { return storage_; }
  // Tensors repacked so far into each format (f32: FP8 rows dequantized).
  index_t repacked(DType t) const noexcept {
    index_t n = 0;
    for (const Repacked& r : storage_->tensors) n += r.dtype == t;
    return n;
  }

 private:
  struct Repacked {
    DType dtype;
    AlignedBuffer<std::byte> bytes;
  };
  struct Storage {
    std::shared_ptr<const TensorStore> store;
    std::list<Repacked> tensors;  // list: element addresses stay put
  };

  std::string where(const TensorInfo& t) const { return fmt::format("tensor {} in {}", t.name, store_.folder().string()); }

  void check_method(const TensorInfo& t, QuantMethod want, std::string_view what, std::string_view method) const {
    if (config_.method == want) return;
    const std::string_view seen = config_.method == QuantMethod::kNone ? "none" : config_.method == QuantMethod::kFp8
                                                                                      ? "\"fp8\""
                                                                                      : "\"mxfp4\"";
    fail(ErrorCode::kUnsupported, "{}: {} needs quantization_config.quant_method \"{}\" in {}, found {}", where(t),
         what, method, config_.source, seen);
  }

  void check_shape(const TensorInfo& t, std::span<const index_t> want, std::string_view what) const {
    const bool same = t.shape.size() == want.size() && std::equal(want.begin(), want.end(), t.shape.begin());
    require(same, ErrorCode::kShapeMismatch, "{}: expected shape {} ({}), found {}", where(t), format_shape(want), what,
            format_shape(t.shape));
  }

  // The companion tensor `name` of `of`, of dtype `dtype` and shape `shape`.
  const TensorInfo& companion(const TensorInfo& of, const std::string& name, std::string_view dtype,
                              std::span<const index_t> shape, std::string_view role) const {
    const TensorInfo* s = store_.find(name);
    require(s != nullptr, ErrorCode::kMissingTensor, "{}: its {} {} not found", where(of), role, name);
    require(s->dtype_name == dtype, ErrorCode::kShapeMismatch, "{}: expected dtype {} ({} of {}), found {}", where(*s),
            dtype, role, of.name, s->dtype_name);
    check_shape(*s, shape, fmt::format("{} of {}", role, of.name));
    return *s;
  }

  template <class T>
  T* allocate(DType dtype, index_t count) const {
    Repacked& r = storage_->tensors.emplace_back(Repacked{dtype, AlignedBuffer<std::byte>(count * sizeof(T))});
    return reinterpret_cast<T*>(r.bytes.data());
  }

  // The tile scales of FP8 matrix t [rows, cols], checked finite.
  std::vector<float> fp8_scales(const TensorInfo& t, index_t rows, index_t cols) const {
    const index_t br = config_.block_rows, bc = config_.block_cols;
    const std::array<index_t, 2> tiles{(rows + br - 1) / br, (cols + bc - 1) / bc};
    const TensorInfo& s = companion(t, t.name + "_scale_inv", "F32", tiles, "block scales");
    std::vector<float> scale(static_cast<std::size_t>(tiles[0] * tiles[1]));
    if (!scale.empty()) std::memcpy(scale.data(), s.bytes.data(), scale.size() * sizeof(float));
    for (std::size_t i = 0; i < scale.size(); ++i) {
      require(std::isfinite(scale[i]), ErrorCode::kFormat, "{}: scale [{}, {}] is {}; block scales must be finite",
              where(s), i / tiles[1], i % tiles[1], scale[i]);
    }
    return scale;
  }

  // For "<p>.k_b_proj.weight" / "<p>.v_b_proj.weight": the FP8 "<p>.kv_b_proj.weight" and whether
  // the key half was asked for; nothing when there is no such FP8 tensor.
  std::optional<std::pair<const TensorInfo*, bool>> fp8_kv_b_of(std::string_view name) const {
    constexpr std::string_view kKey = "k_b_proj.weight", kValue = "v_b_proj.weight";
    const bool key = name.ends_with(kKey);
    if (!key && !name.ends_with(kValue)) return std::nullopt;
    const std::string kv = std::string(name.substr(0, name.size() - kKey.size())) + "kv_b_proj.weight";
    const TensorInfo* t = store_.find(kv);
    if (mla_.n_heads == 0 || t == nullptr || t->dtype_name != "F8_E4M3" || config_.method != QuantMethod::kFp8) {
      return std::nullopt;
    }
    return std::pair{t, key};
  }

  // Half `name` of FP8 kv_b_proj t [H·(N+V), R]: key [H·R, N] (W_UK[h] transposed) or value
  // [H·V, R] (W_UV[h]), gathered code by code; FP8 blocks when every 128-element block's codes
  // share one tile scale, else f32.
  TensorRef fp8_kv_b_half(const TensorInfo& t, bool key, std::string_view name, std::span<const index_t> shape) const {
    const index_t H = mla_.n_heads, N = mla_.nope, V = mla_.v;
    const index_t R = t.shape.size() == 2 ? t.shape[1] : 0;
    check_shape(t, std::array<index_t, 2>{H * (N + V), R}, "MLA kv_b_proj");
    const std::array<index_t, 2> want = key ? std::array<index_t, 2>{H * R, N} : std::array<index_t, 2>{H * V, R};
    require(shape.size() == 2 && shape[0] == want[0] && shape[1] == want[1], ErrorCode::kShapeMismatch,
            "{}: {} asked for as {}; the split of kv_b_proj is {}", where(t), name, format_shape(shape),
            format_shape(want));
    const index_t rows = want[0], cols = want[1];
    const std::vector<float> scale = fp8_scales(t, H * (N + V), R);
    const index_t br = config_.block_rows, bc = config_.block_cols, tc = (R + bc - 1) / bc;
    // kv_b_proj's (row, column) of the half's element (i, j).
    const auto src = [&](index_t i, index_t j) -> std::pair<index_t, index_t> {
      if (key) return {(i / R) * (N + V) + j, i % R};
      return {(i / V) * (N + V) + N + i % V, j};
    };
    const auto* q = reinterpret_cast<const std::uint8_t*>(t.bytes.data());
    const auto code = [&](index_t i, index_t j) {
      const auto [r, c] = src(i, j);
      return q[r * R + c];
    };
    const auto tile_scale = [&](index_t i, index_t j) {
      const auto [r, c] = src(i, j);
      return scale[(r / br) * tc + c / bc];
    };
    constexpr index_t B = quant::BlockFp8E4m3::block_elements;
    bool uniform = cols % B == 0;
    for (index_t i = 0; uniform && i < rows; ++i) {
      for (index_t j = 0; uniform && j < cols; ++j) uniform = tile_scale(i, j) == tile_scale(i, j - j % B);
    }
    TensorRef ref;
    if (uniform) {
      auto* out = allocate<quant::BlockFp8E4m3>(DType::fp8_e4m3_b128, rows * cols / B);
      for (index_t i = 0; i < rows; ++i) {
        for (index_t k = 0; k < cols / B; ++k) {
          quant::BlockFp8E4m3& b = out[i * (cols / B) + k];
          b.d = tile_scale(i, k * B);
          for (index_t e = 0; e < B; ++e) b.qs[e] = code(i, k * B + e);
        }
      }
      ref = TensorRef{DType::fp8_e4m3_b128, reinterpret_cast<const std::byte*>(out)};
    } else {
      auto* out = allocate<float>(DType::f32, rows * cols);
      for (index_t i = 0; i < rows; ++i) {
        for (index_t j = 0; j < cols; ++j) out[i * cols + j] = quant::e4m3_to_float(code(i, j)) * tile_scale(i, j);
      }
      ref = TensorRef{DType::f32, reinterpret_cast<const std::byte*>(out)};
    }
    if (!key) store_.advise(t.name, Access::dont_need);  // the binder asks for the key half first
    return ref;
  }

  TensorRef fp8(const TensorInfo& t, std::span<const index_t> shape) const {
    check_method(t, QuantMethod::kFp8, "an F8_E4M3 tensor", "fp8");
    require(shape.size() == 2, ErrorCode::kUnsupported, "{}: FP8 weights must be matrices; asked for shape {}",
            where(t), format_shape(shape));
    check_shape(t, shape, "FP8 e4m3 weights");
    const index_t rows = shape[0], cols = shape[1], br = config_.block_rows, bc = config_.block_cols;
    const std::array<index_t, 2> tiles{(rows + br - 1) / br, (cols + bc - 1) / bc};
    const std::vector<float> scale = fp8_scales(t, rows, cols);
    const auto* q = reinterpret_cast<const std::uint8_t*>(t.bytes.data());
    constexpr index_t B = quant::BlockFp8E4m3::block_elements;
    TensorRef ref;
    if (cols % B == 0 && bc % B == 0) {
      auto* out = allocate<quant::BlockFp8E4m3>(DType::fp8_e4m3_b128, rows * cols / B);
      for (index_t r = 0; r < rows; ++r) {
        for (index_t k = 0; k < cols / B; ++k) {
          quant::BlockFp8E4m3& b = out[r * (cols / B) + k];
          b.d = scale[(r / br) * tiles[1] + k * B / bc];
          std::memcpy(b.qs, q + r * cols + k * B, B);
        }
      }
      ref = TensorRef{DType::fp8_e4m3_b128, reinterpret_cast<const std::byte*>(out)};
    } else {
      auto* out = allocate<float>(DType::f32, rows * cols);
      for (index_t r = 0; r < rows; ++r) {
        for (index_t c = 0; c < cols; ++c) {
          out[r * cols + c] = quant::e4m3_to_float(q[r * cols + c]) * scale[(r / br) * tiles[1] + c / bc];
        }
      }
      ref = TensorRef{DType::f32, reinterpret_cast<const std::byte*>(out)};
    }
    store_.advise(t.name, Access::dont_need);  // read once; the repacked copy is what runs
    return ref;
  }

  TensorRef mxfp4(const TensorInfo& t, std::span<const index_t> shape) const {
    check_method(t, QuantMethod::kMxfp4, "an MXFP4 *_blocks tensor", "mxfp4");
    require(!shape.empty(), ErrorCode::kUnsupported, "{}: MXFP4 blocks asked for as a scalar", where(t));
    const index_t cols = shape.back();
    require(cols % 32 == 0, ErrorCode::kShapeMismatch,
            "{}: rows of {} elements (logical shape {}) are not whole MXFP4 blocks of 32", where(t), cols,
            format_shape(shape));
    std::vector<index_t> block_shape(shape.begin(), shape.end());
    block_shape.back() = cols / 32;
    const std::vector<index_t> scale_shape = block_shape;
    block_shape.push_back(16);
    check_shape(t, block_shape, fmt::format("MXFP4 blocks of a {} matrix", format_shape(shape)));
    const std::string base = t.name.substr(0, t.name.size() - std::string_view("_blocks").size());
    const TensorInfo& s = companion(t, base + "_scales", "U8", scale_shape, "E8M0 scales");
    const index_t n = s.element_count();
    const auto* blocks = reinterpret_cast<const std::uint8_t*>(t.bytes.data());
    const auto* scales = reinterpret_cast<const std::uint8_t*>(s.bytes.data());
    auto* out = allocate<quant::BlockMxfp4>(DType::mxfp4, n);
    for (index_t i = 0; i < n; ++i) {
      const std::uint8_t* in = blocks + 16 * i;
      // Element j of the block: byte j/2, low nibble for even j.
      const auto nibble = [in](int j) { return (in[j / 2] >> (4 * (j & 1))) & 0x0f; };
      out[i].e = scales[i];
      for (int j = 0; j < 16; ++j) out[i].qs[j] = static_cast<std::uint8_t>(nibble(j) | nibble(j + 16) << 4);
    }
    store_.advise(t.name, Access::dont_need);
    store_.advise(s.name, Access::dont_need);
    return TensorRef{DType::mxfp4, reinterpret_cast<const std::byte*>(out)};
  }

  const TensorStore& store_;
  const TensorSource& plain_;
  QuantizationConfig config_;
  MlaSplit mla_;
  std::shared_ptr<Storage> storage_;
};

}  // namespace moe::io
