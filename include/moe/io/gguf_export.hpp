// Writes a model as a llama.cpp model GGUF: the metadata keys and tensor names llama.cpp's
// converter writes for its architecture (gguf_arch.hpp), each matrix converted to the chosen
// type while the file is written (one tensor in f32 at a time, so peak memory is about one
// tensor beyond the mapped input), plus the tokenizer.ggml.* keys when the input folder has a
// tokenizer.json (io/load_tokenizer.hpp) or, from a GGUF, its tokenizer.* keys as they are.
// Input: a Hugging Face folder or a model GGUF.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/warning.hpp"
#include "moe/io/gguf_arch.hpp"
#include "moe/io/gguf_dtype.hpp"
#include "moe/io/gguf_model.hpp"
#include "moe/io/gguf_writer.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/load_tokenizer.hpp"
#include "moe/io/tensor_store.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace moe::io {

struct GgufExportOptions {
  // q8_0 | q4_0 | q4_k | q5_k | q6_k | iq4_xs | q4_k_m | mxfp4 | bf16 | f16 | f32 (mxfp4: the
  // expert banks in MXFP4, other matrices q8_0)
  std::string type = "f32";
  // Called after each tensor is written: (tensors done, total, GGUF name).
  std::function<void(std::size_t, std::size_t, std::string_view)> progress;
};

struct GgufExportReport {
  std::size_t tensors = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, std::size_t> types;  // ggml type name -> tensors
  // One line per tensor whose row length is not a multiple of the chosen type's block
  // ("blk.0.ffn_down_exps.weight: row 24 not a multiple of 256: q4_K -> f16").
  std::vector<std::string> fallbacks;
  bool tokenizer = false;
};

namespace detail {

// general.file_type (llama.cpp's llama_ftype) of the options' type.
inline std::uint32_t llama_file_type(std::string_view type) {
  if (type == "f32") return 0;
  if (type == "f16") return 1;
  if (type == "q4_0") return 2;
  if (type == "q8_0") return 7;
  if (type == "q4_k") return 14;  // Q4_K_S
  if (type == "q4_k_m") return 15;
  if (type == "q5_k") return 16;  // Q5_K_S
  if (type == "q6_k") return 18;
  if (type == "iq4_xs") return 30;
  if (type == "mxfp4") return 38;  // LLAMA_FTYPE_MOSTLY_MXFP4_MOE
  if (type == "bf16") return 32;
  fail(ErrorCode::kInvalidArgument, "--type {}: not one of q8_0, q4_0, q4_k, q5_k, q6_k, iq4_xs, q4_k_m, mxfp4, bf16, f16, f32",
       type);
}

// llama.cpp's use_more_bits(i_layer, n_layers) of the Q4_K_M mix: the first and last eighth of
// the layers and every third layer in between get Q6_K for attn_v and ffn_down.
inline bool use_more_bits(index_t i, index_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

inline std::int64_t layer_of(std::string_view gguf) {
  if (gguf.substr(0, 4) != "blk.") return -1;
  std::int64_t i = 0;
  for (std::size_t p = 4; p < gguf.size() && gguf[p] >= '0' && gguf[p] <= '9'; ++p) i = i * 10 + (gguf[p] - '0');
  return i;
}
inline bool contains_text(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

// The type of a GGUF tensor of `cols` elements per row under `type`, with llama.cpp's fallbacks
// for rows that are not whole blocks (llama-quantize: q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0,
// iq4_xs -> iq4_nl, then f16 when even 32 does not divide the row).
inline DType tensor_type(std::string_view type, std::string_view name, std::size_t rank, index_t cols,
                         index_t n_layers, std::vector<std::string>& fallbacks) {
  // Norms, biases (GPT-OSS's [E, F] expert bias banks included) and other vectors stay f32; so do
  // the routers. llama-quantize quantizes only tensors of rank >= 2 whose name ends in "weight",
  // never ffn_gate_inp. The DSA indexer's head weights (indexer.proj, [heads, D]) stay f32 as the
  // converter writes them ("DSA indexer weights should be F32"; llama-quantize would quantize them).
  // ssm_conv1d (Gated DeltaNet's [C, K] conv) stays f32 too: the converter forces SSM_CONV1D to F32
  // and llama-quantize leaves it alone.
  if (rank < 2 || !name.ends_with(".weight") || contains_text(name, "ffn_gate_inp") ||
      contains_text(name, ".indexer.proj.") || contains_text(name, ".ssm_conv1d.")) {
    return DType::f32;
  }
  DType want;
  if (type == "q4_k_m") {
    const std::int64_t i = layer_of(name);
    const bool more = name == "output.weight" ||
                      ((contains_text(name, "attn_v.weight") || contains_text(name, "ffn_down")) && i >= 0 &&
                       use_more_bits(static_cast<index_t>(i), n_layers));
    want = more ? DType::q6_k : DType::q4_k;
  } else if (type == "mxfp4") {
    // llama.cpp's MXFP4_MOE is about the experts (GPT-OSS ships them so); the rest here is q8_0.
    want = contains_text(name, "_exps.") ? DType::mxfp4 : DType::q8_0;
  } else {
    want = *parse_dtype(type);
  }
  DType t = want;
  if (static_cast<std::size_t>(cols) % format_block_elements(t) != 0) {
    switch (t) {
      case DType::q4_k: t = DType::q5_0; break;
      case DType::q5_k: t = DType::q5_1; break;
      case DType::q6_k: t = DType::q8_0; break;
      case DType::iq4_xs: t = DType::iq4_nl; break;
      default: break;
    }
    if (static_cast<std::size_t>(cols) % format_block_elements(t) != 0) t = DType::f16;
    fallbacks.push_back(fmt::format("{}: row {} not a multiple of {}: {} -> {}", name, cols,
                                    format_block_elements(want), dtype_name(want), dtype_name(t)));
  }
  return t;
}

// Floats -> one row of t.
inline void float_to_row(DType t, const float* x, std::size_t n, std::byte* out) {
  visit_format<backend::reference>(t, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_block_format_v<T>) {
      quant::quantize_row(x, reinterpret_cast<T*>(out), n);
    } else if constexpr (std::is_same_v<T, float>) {
      std::memcpy(out, x, n * sizeof(float));
    } else if constexpr (std::is_same_v<T, bf16>) {
      for (std::size_t i = 0; i < n; ++i) {
        const bf16 v = to_bf16(x[i]);
        std::memcpy(out + i * sizeof(bf16), &v, sizeof(bf16));
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const f16 v = to_f16(x[i]);
        std::memcpy(out + i * sizeof(f16), &v, sizeof(f16));
      }
    }
  });
}

// The tensors of a safetensors checkpoint folder as a TensorSource (F32 / BF16 / F16 of exactly
// the shape asked for), without pulling in the model graph.
class FolderTensorSource final : public TensorSource {
 public:
  explicit FolderTensorSource(const TensorStore& s) : s_(s) {}
  bool contains(std::string_view name) const override { return s_.contains(name); }
  std::optional<std::vector<index_t>> shape_of(std::string_view name) const override {
    const TensorInfo* t = s_.find(name);
    if (t == nullptr) return std::nullopt;
    return t->shape;
  }
  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    const TensorInfo& t = s_.get(name);
    if (!t.dtype) {
      fail(ErrorCode::kUnsupported, "tensor {} in {} has dtype {}; weights must be F32, BF16 or F16", name,
           s_.folder().string(), t.dtype_name);
    }
    if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end())) {
      fail(ErrorCode::kShapeMismatch, "{} in {}: expected shape [{}], found [{}]", name, s_.folder().string(),
           fmt::join(shape, ", "), fmt::join(t.shape, ", "));
    }
    return TensorRef{*t.dtype, t.bytes.data()};
  }

 private:
  const TensorStore& s_;
};

// GgufWriter as gguf_arch::write_metadata's writer.
struct MetadataPut {
  GgufWriter& w;
  void put_u32(const std::string& k, std::uint32_t v) {
    // The tokenizer's special ids (write_gguf_tokenizer, which runs first) win over config.json's.
    if (k.starts_with("tokenizer.ggml.") && w.has(k)) return;
    w.set(k, v);
  }
  void put_f32(const std::string& k, float v) { w.set(k, v); }
  void put_bool(const std::string& k, bool v) { w.set(k, v); }
  void put_str(const std::string& k, std::string_view v) { w.set(k, v); }
  void put_i32s(const std::string& k, const std::vector<std::int32_t>& v) { w.set(k, GgufArrayValue::of(v)); }
  void put_bools(const std::string& k, const std::vector<bool>& v) {
    GgufArrayValue a(GgufValueType::boolean);
    for (const bool b : v) a.push(b);
    w.set(k, a);
  }
};

// A Hugging Face tensor name as stored: the canonical one, else Mixtral hub's spelling.
inline std::string resolve_hf_name(const TensorSource& src, const std::string& name) {
  if (src.contains(name)) return name;
  std::string alt = name;
  if (const auto p = alt.find(".mlp."); p != std::string::npos) alt.replace(p, 5, ".block_sparse_moe.");
  for (const auto& [from, to] : {std::pair{"gate_proj", "w1"}, std::pair{"up_proj", "w3"}, std::pair{"down_proj", "w2"}}) {
    if (const auto p = alt.find(std::string(".experts.")); p != std::string::npos) {
      if (const auto q = alt.find(from, p); q != std::string::npos) alt.replace(q, std::strlen(from), to);
    }
  }
  if (src.contains(alt)) return alt;
  fail(ErrorCode::kMissingTensor, "tensor {} not found in the input", name);
}

// Rows [first, first + count) of the stacked bank `bank` ([E, rows, cols] as stored) as floats.
inline std::vector<float> bank_rows(const TensorSource& src, const std::string& bank, index_t first, index_t count) {
  const std::vector<index_t> shape = *src.shape_of(bank);
  const TensorRef t = src.get(bank, shape);
  const std::size_t cols = static_cast<std::size_t>(shape.back());
  const std::size_t rb = format_row_bytes(t.dtype, cols);
  std::vector<float> out(static_cast<std::size_t>(count) * cols);
  for (index_t r = 0; r < count; ++r) row_to_float(t.dtype, t.data + (first + r) * rb, cols, out.data() + r * cols);
  return out;
}

// Expert tensor `name` ("{moe}.experts.{e}.{gate,up,down}_proj.weight") of `shape` from a
// checkpoint that stacks its experts: transformers 5's experts.gate_up_proj [E, 2F, D] (gate rows,
// then up rows) / experts.down_proj [E, D, F], or the family's other spelling (Granite hub:
// input_linear / output_linear). Empty when the name is not an expert's or no bank holds it.
inline std::vector<float> stacked_expert(const TensorSource& src, const ModelConfig& c, const std::string& name,
                                         std::span<const index_t> shape) {
  const auto at = name.find(".experts.");
  if (at == std::string::npos || shape.size() != 2) return {};
  const std::string moe = name.substr(0, at);
  const std::string rest = name.substr(at + 9);  // "{e}.{proj}.weight"
  const auto dot = rest.find('.');
  if (dot == std::string::npos) return {};
  index_t e = 0;
  for (std::size_t i = 0; i < dot; ++i) {
    if (rest[i] < '0' || rest[i] > '9') return {};
    e = e * 10 + static_cast<index_t>(rest[i] - '0');
  }
  const std::string proj = rest.substr(dot + 1);
  const bool down = proj == "down_proj.weight";
  if (!down && proj != "gate_proj.weight" && proj != "up_proj.weight") return {};
  const model::ArchitectureSpec& s = *c.spec;
  std::string bank = moe + (down ? ".experts.down_proj" : ".experts.gate_up_proj");
  if (!src.contains(bank) && !s.fused_gate_up_alt.empty()) {
    bank = moe + "." + std::string(down ? s.fused_down_alt : s.fused_gate_up_alt);
  }
  if (!src.contains(bank)) return {};
  const index_t rows = shape[0];
  const auto stored = src.shape_of(bank);
  const std::vector<index_t> want = down ? std::vector<index_t>{c.n_experts, rows, shape[1]}
                                         : std::vector<index_t>{c.n_experts, 2 * rows, shape[1]};
  if (!stored || *stored != want) {
    fail(ErrorCode::kShapeMismatch, "tensor {}: expected shape [{}], found [{}]", bank, fmt::join(want, ", "),
         stored ? fmt::format("{}", fmt::join(*stored, ", ")) : std::string("none"));
  }
  const index_t per = down ? rows : 2 * rows;
  return bank_rows(src, bank, e * per + (proj == "up_proj.weight" ? rows : 0), rows);
}

// Tensor `name` of `shape` from src as floats (row-major).
inline std::vector<float> read_floats(const TensorSource& src, const std::string& name, std::span<const index_t> shape,
                                      const ModelConfig* c = nullptr) {
  if (c != nullptr && !src.contains(name)) {
    if (std::vector<float> x = stacked_expert(src, *c, name, shape); !x.empty()) return x;
  }
  const std::string stored = resolve_hf_name(src, name);
  const TensorRef t = src.get(stored, shape);
  const std::size_t cols = shape.back();
  std::size_t rows = 1;
  for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
  std::vector<float> out(rows * cols);
  const std::size_t rb = format_row_bytes(t.dtype, cols);
  for (std::size_t r = 0; r < rows; ++r) row_to_float(t.dtype, t.data + r * rb, cols, out.data() + r * cols);
  return out;
}

// Rows [offset, offset + dims) of each block of `rows / blocks` rows reordered from rotate_half
// order to adjacent pairs: row 2i+j of the span is row j·(dims/2)+i of the original. With whole
// heads as blocks this is convert_hf_to_gguf.py's LlamaModel.permute (llama attn_q / attn_k);
// with MLA's rope rows, what llama.cpp's adjacent-pair deepseek2 rope needs from a half-split
// checkpoint. dims 0: the whole block.
inline std::vector<float> permute_rope_rows(std::vector<float> x, index_t rows, index_t cols, index_t blocks,
                                            index_t offset, index_t dims) {
  const index_t per = rows / blocks;
  if (dims == 0) dims = per;
  const std::vector<float> src = x;
  const index_t half = dims / 2;
  for (index_t h = 0; h < blocks; ++h) {
    const index_t base = h * per + offset;
    for (index_t i = 0; i < half; ++i) {
      for (index_t j = 0; j < 2; ++j) {
        const index_t to = base + 2 * i + j, from = base + j * half + i;
        std::memcpy(x.data() + to * cols, src.data() + from * cols, cols * sizeof(float));
      }
    }
  }
  return x;
}

// Part p of a kTransformed mapping (gguf_arch.hpp) from the HF tensor: rows / columns reordered,
// values mapped (-exp for ssm_a, + 1 for zero-centred norms), then the part's rows.
inline std::vector<float> transformed_part(const TensorSource& src, const gguf_arch::TensorMapping& m, std::size_t p) {
  const std::vector<float> x = read_floats(src, m.hf, m.hf_shape);
  const index_t R = gguf_arch::transformed_rows(m), C = gguf_arch::transformed_cols(m);
  index_t first = 0;
  for (std::size_t q = 0; q < p; ++q) first += m.parts[q].rows;
  const index_t rows = m.parts[p].rows;
  std::vector<float> y(static_cast<std::size_t>(rows * C));
  for (index_t i = 0; i < rows; ++i) {
    const index_t from = m.row_order.empty() ? first + i : m.row_order[static_cast<std::size_t>(first + i)];
    require(from < R, ErrorCode::kInternal, "{}: row {} of {}", m.hf, from, R);
    for (index_t j = 0; j < C; ++j) {
      const index_t col = m.col_order.empty() ? j : m.col_order[static_cast<std::size_t>(j)];
      const float v = x[static_cast<std::size_t>(from * C + col)];
      float& out = y[static_cast<std::size_t>(i * C + j)];
      switch (m.value) {
        case gguf_arch::ValueMap::kNone: out = v; break;
        case gguf_arch::ValueMap::kNegExp: out = -std::exp(v); break;
        case gguf_arch::ValueMap::kPlusOne: out = v + 1.0f; break;
      }
    }
  }
  return y;
}

// GPT-OSS's and Llama 4's checkpoint banks in llama.cpp's layout (gguf_arch.hpp): `part` 0 / 1 of a kGluPair
// (gate_up_proj [E, D, 2F] -> even / odd columns transposed to [E, F, D]; its bias [E, 2F] ->
// [E, F]), or a kTransposedBank (down_proj [E, F, D] -> [E, D, F]).
inline std::vector<float> gpt_oss_part(const TensorSource& src, const gguf_arch::TensorMapping& m, int part) {
  const std::vector<float> x = read_floats(src, m.hf, m.hf_shape);
  const std::vector<index_t>& h = m.hf_shape;
  const index_t E = h[0];
  std::vector<float> y(m.kind == gguf_arch::TensorKind::kGluPair ? x.size() / 2 : x.size());
  if (m.kind == gguf_arch::TensorKind::kTransposedBank) {
    const index_t F = h[1], D = h[2];
    for (index_t e = 0; e < E; ++e)
      for (index_t f = 0; f < F; ++f)
        for (index_t d = 0; d < D; ++d) y[(e * D + d) * F + f] = x[(e * F + f) * D + d];
  } else if (h.size() == 2) {
    const index_t F = h[1] / 2;
    for (index_t e = 0; e < E; ++e)
      for (index_t f = 0; f < F; ++f) y[e * F + f] = x[e * 2 * F + 2 * f + part];
  } else {
    // Column of gate / up unit f: 2f + part (GPT-OSS, interleaved) or part·F + f (Llama 4, halves).
    const index_t D = h[1], F = h[2] / 2;
    const auto col = [&](index_t f) { return m.halves ? part * F + f : 2 * f + part; };
    for (index_t e = 0; e < E; ++e)
      for (index_t f = 0; f < F; ++f)
        for (index_t d = 0; d < D; ++d) y[(e * F + f) * D + d] = x[(e * D + d) * 2 * F + col(f)];
  }
  return y;
}

// The part of export_gguf after "config + TensorSource": writes `c`'s metadata and src's tensors
// (Hugging Face names and row order, or a GGUF's when from_gguf) to `output`; the tokenizer of
// `input` when it is a folder with a tokenizer.json. Defined below export_gguf(input, ...).
inline GgufExportReport export_gguf_tensors(const ModelConfig& c, const TensorSource& source,
                                            const std::filesystem::path& output, const GgufExportOptions& options,
                                            bool from_gguf, const std::filesystem::path& input,
                                            const GgufFile* gguf_in = nullptr);

}  // namespace detail

// Writes `input` (a Hugging Face folder with config.json + safetensors, or a model .gguf) to
// `output` as a GGUF of options.type. Errors: kInvalidArgument (type), everything load_model
// reports for the input, kUnsupported for an architecture or rope without a GGUF mapping, kIo
// for the output. Warnings for what the GGUF cannot say (see gguf_arch::write_metadata).
inline GgufExportReport export_gguf(const std::filesystem::path& input, const std::filesystem::path& output,
                                    const GgufExportOptions& options) {
  return catch_as_error("export_gguf", [&] {
    (void)detail::llama_file_type(options.type);  // validates the name
    const bool from_gguf = input.extension() == ".gguf";
    ModelConfig c;
    const TensorSource* src = nullptr;
    std::optional<TensorStore> store;
    std::optional<detail::FolderTensorSource> store_source;
    std::shared_ptr<GgufModelStorage> gguf_storage;
    if (from_gguf) {
      gguf_storage = std::make_shared<GgufModelStorage>(GgufModelStorage{GgufFile::open(input), nullptr});
      c = gguf_model_config(gguf_storage->file);
      gguf_storage->source = std::make_unique<GgufTensorSource>(gguf_storage->file, c);
      src = gguf_storage->source.get();
    } else {
      const auto config_path = input / "config.json";
      std::error_code ec;
      require(std::filesystem::exists(config_path, ec), ErrorCode::kIo, "no config.json in {}", input.string());
      c = ModelConfig::from_json(read_json_file(config_path, limits::kMaxConfigJsonBytes, "config.json"),
                                 config_path.string());
      store.emplace(TensorStore::open_folder(input));
      store_source.emplace(*store);
      src = &*store_source;
    }
    return detail::export_gguf_tensors(c, *src, output, options, from_gguf, input,
                                       from_gguf ? &gguf_storage->file : nullptr);
  });
}

// Writes a model given as its config and its tensors under Hugging Face names (a checkpoint
// folder's, e.g. model::TensorListSource over model::checkpoint_tensors) to `output` as a GGUF of
// options.type, without a tokenizer. Errors as export_gguf(input, ...) reports them.
inline GgufExportReport export_gguf(const ModelConfig& config, const TensorSource& source,
                                    const std::filesystem::path& output, const GgufExportOptions& options) {
  return catch_as_error("export_gguf", [&] {
    (void)detail::llama_file_type(options.type);  // validates the name
    return detail::export_gguf_tensors(config, source, output, options, false, {});
  });
}

inline GgufExportReport detail::export_gguf_tensors(const ModelConfig& c, const TensorSource& source,
                                                    const std::filesystem::path& output,
                                                    const GgufExportOptions& options, bool from_gguf,
                                                    const std::filesystem::path& input,
                                                    const GgufFile* gguf_in) {
  {
    GgufExportReport report;
    const TensorSource* src = &source;
    const gguf_arch::ArchTable* a = gguf_arch::table_for_family(c.spec->family);
    if (a == nullptr) {
      fail(ErrorCode::kUnsupported, "{}: {} has no GGUF mapping: {}", c.source, c.architecture,
           gguf_arch::unmapped_reason(c.spec->family));
    }
    GgufWriter w;
    if (from_gguf) {
      // The tokenizer (tokenizer.ggml.*) and chat template (tokenizer.chat_template*) as they are.
      const GgufFile& in = *gguf_in;
      for (std::size_t i = 0; i < in.metadata_count(); ++i) {
        const auto kv = in.metadata_entry(i);
        if (!kv.key.starts_with("tokenizer.")) continue;
        w.set_value(kv.key, kv.value);
        if (kv.key == "tokenizer.ggml.model") report.tokenizer = true;
      }
    } else if (!input.empty() && std::filesystem::is_regular_file(input / "tokenizer.json")) {
      GgufTokenizerWriteOptions topt;
      topt.vocab_size = static_cast<std::size_t>(c.vocab_size);
      (void)write_gguf_tokenizer(w, input, topt);
      report.tokenizer = true;
    }
    // No tokenizer (a folder without tokenizer.json, moe-bench's random weights): llama.cpp still
    // needs tokenizer.ggml.model, and loads "no_vocab" with {arch}.vocab_size dummy tokens.
    if (!w.has("tokenizer.ggml.model")) w.set("tokenizer.ggml.model", std::string(kGgufNoVocab));
    detail::MetadataPut put{w};
    gguf_arch::write_metadata(put, c);
    w.set("general.name", input.stem().string().empty() ? std::string("model") : input.filename().string());
    w.set("general.file_type", detail::llama_file_type(options.type));
    w.set("general.quantization_version", std::uint32_t{2});

    // Group the mappings by GGUF tensor, in order of first appearance.
    const std::vector<gguf_arch::TensorMapping> maps = gguf_arch::tensor_mappings(c, *a);
    struct Out {
      std::string name;
      std::vector<index_t> shape;  // GGUF, outermost first
      std::vector<const gguf_arch::TensorMapping*> parts;
      int part = -1;  // kKvB: 0 attn_k_b, 1 attn_v_b; kGluPair: 0 gate (even columns), 1 up (odd); kTransformed: its part
      DType type = DType::f32;
    };
    std::vector<Out> outs;
    std::map<std::string, std::size_t> index;
    for (const auto& m : maps) {
      if (m.kind == gguf_arch::TensorKind::kKvB) {
        const index_t H = c.n_heads, N = c.qk_nope_head_dim, Vd = c.v_head_dim, R = c.kv_lora_rank;
        std::string kb = m.gguf, vb = m.gguf;
        kb.replace(kb.find("attn_kv_b"), 9, "attn_k_b");
        vb.replace(vb.find("attn_kv_b"), 9, "attn_v_b");
        outs.push_back({kb, {H, R, N}, {&m}, 0});
        outs.push_back({vb, {H, Vd, R}, {&m}, 1});
        continue;
      }
      if (m.kind == gguf_arch::TensorKind::kTransformed) {
        for (std::size_t p = 0; p < m.parts.size(); ++p) {
          outs.push_back({m.parts[p].name, gguf_arch::part_shape(m, p), {&m}, static_cast<int>(p)});
        }
        continue;
      }
      if (m.kind == gguf_arch::TensorKind::kGluPair) {
        outs.push_back({m.gguf, gguf_arch::gguf_shape(m), {&m}, 0});
        outs.push_back({m.gguf_up, gguf_arch::gguf_shape(m), {&m}, 1});
        continue;
      }
      const auto [it, inserted] = index.emplace(m.gguf, outs.size());
      if (inserted) outs.push_back({m.gguf, gguf_arch::gguf_shape(m), {}, -1});
      outs[it->second].parts.push_back(&m);
    }
    for (Out& o : outs) {
      o.type = detail::tensor_type(options.type, o.name, o.shape.size(), o.shape.back(), c.n_layers, report.fallbacks);
    }
    // llama3 rope: the rope_freqs.weight tensor (F32, never quantized), before the layers as the
    // converter writes it.
    const std::vector<float> rope_freqs = gguf_arch::rope_freqs_of(c);
    const std::vector<std::uint64_t> rope_freqs_shape{rope_freqs.size()};
    if (!rope_freqs.empty()) {
      w.add_tensor("rope_freqs.weight", GgmlType::f32, rope_freqs_shape,
                   std::as_bytes(std::span<const float>(rope_freqs)));
      report.types["f32"] += 1;
      report.bytes += rope_freqs.size() * sizeof(float);
    }
    const std::size_t total = outs.size();
    std::size_t done = 0;
    for (const Out& o : outs) {
      std::vector<std::uint64_t> shape(o.shape.begin(), o.shape.end());
      const GgmlType gt = *ggml_type_of(o.type);
      report.types[std::string(to_string(gt))] += 1;
      w.add_tensor(o.name, gt, shape, [&, op = &o](const GgufWriter::ByteSink& sink) {
        const Out& t = *op;
        std::vector<float> x;
        const gguf_arch::TensorKind kind = t.parts[0]->kind;
        if (kind == gguf_arch::TensorKind::kTransformed) {
          x = detail::transformed_part(*src, *t.parts[0], static_cast<std::size_t>(t.part));
        } else if (kind == gguf_arch::TensorKind::kGluPair || kind == gguf_arch::TensorKind::kTransposedBank) {
          x = detail::gpt_oss_part(*src, *t.parts[0], t.part);
        } else if (t.part >= 0) {
          const auto& m = *t.parts[0];
          const std::vector<float> kv = detail::read_floats(*src, m.hf, m.hf_shape);
          const index_t N = c.qk_nope_head_dim, Vd = c.v_head_dim, R = c.kv_lora_rank, H = c.n_heads;
          x.resize(static_cast<std::size_t>(t.part == 0 ? H * R * N : H * Vd * R));
          for (index_t h = 0; h < H; ++h) {
            const float* head = kv.data() + h * (N + Vd) * R;
            if (t.part == 0) {
              for (index_t r = 0; r < R; ++r)
                for (index_t n = 0; n < N; ++n) x[(h * R + r) * N + n] = head[n * R + r];
            } else {
              std::memcpy(x.data() + h * Vd * R, head + N * R, static_cast<std::size_t>(Vd * R) * sizeof(float));
            }
          }
        } else {
          for (const auto* m : t.parts) {
            std::vector<float> part = detail::read_floats(*src, m->hf, m->hf_shape, &c);
            if (m->kind == gguf_arch::TensorKind::kPermuteRows && !from_gguf) {
              const index_t rows = m->hf_shape[0], cols = m->hf_shape.size() > 1 ? m->hf_shape[1] : 1;
              part = detail::permute_rope_rows(std::move(part), rows, cols, m->heads, m->rope_offset, m->rope_dims);
            }
            x.insert(x.end(), part.begin(), part.end());
          }
        }
        const std::size_t cols = static_cast<std::size_t>(t.shape.back());
        const std::size_t rows = x.size() / cols;
        const std::size_t rb = format_row_bytes(t.type, cols);
        std::vector<std::byte> bytes(rows * rb);
        // Rows quantize independently (the k-quants' scale searches make this the slow part of a
        // conversion: minutes per GB of Q4_K on one core), so across the threads. Row 0 first, on
        // its own: whatever float_to_row could throw (type, length) it throws there, outside the
        // parallel region; the other rows have the same type and length.
        if (rows > 0) detail::float_to_row(t.type, x.data(), cols, bytes.data());
        parallel_for_chunks(rows > 0 ? rows - 1 : 0, 64, [&](std::size_t begin, std::size_t end) {
          for (std::size_t i = begin + 1; i < end + 1; ++i) detail::float_to_row(t.type, x.data() + i * cols, cols, bytes.data() + i * rb);
        });
        x = {};
        sink(bytes);
        ++done;
        if (options.progress) options.progress(done, total, t.name);
      });
      report.bytes += GgufWriter::tensor_bytes(gt, shape);
    }
    report.tensors = total + (rope_freqs.empty() ? 0 : 1);
    w.write(output);
    return report;
  }
}

}  // namespace moe::io
