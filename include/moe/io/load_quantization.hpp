// Load-time quantization: the f32 / bf16 / f16 matrices of a bound model converted in memory to
// a block format with the type rules of moe-quantize (io/gguf_export.hpp: llama-quantize's
// choices, q4_k_m's q6_k layers, mxfp4 for the expert banks, the fallbacks for rows that are not
// whole blocks), so that `load_model(dir, {.quantize = "q8_0"})` holds the same weights as
// `moe-quantize dir out.gguf --type q8_0` writes. Routers and Qwen2-MoE's shared-expert gate stay
// as they are (llama-quantize never quantizes ffn_gate_inp*); vectors (norms, biases) too. Matrices
// already in a block format, and GPT-OSS's input-major expert banks (no block kernels for that
// layout), are kept. Each expert bank is converted into one contiguous buffer. MLA's kv_b_proj is
// split per head into k_b_proj / v_b_proj as the GGUF stores it (attn_k_b / attn_v_b).
#pragma once

#include "moe/core/buffer.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/parallel.hpp"
#include "moe/io/gguf_export.hpp"
#include "moe/model/weights.hpp"

#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moe::io {

struct LoadQuantizeReport {
  std::size_t bytes_before = 0;  // of the matrices converted
  std::size_t bytes_after = 0;
  std::map<std::string, std::size_t> types;  // matrices per resulting type
  std::vector<std::string> fallbacks;        // moe-quantize's fallback messages
};

namespace detail {

class WeightQuantizer {
 public:
  WeightQuantizer(std::string type, index_t n_layers) : type_(std::move(type)), n_layers_(n_layers) {}

  // The matrix as `gguf_name`'s type asks (a view of a new buffer), or m itself.
  layers::WeightMatrix<> matrix(const layers::WeightMatrix<>& m, const std::string& gguf_name) {
    std::vector<layers::WeightMatrix<>> one{m};
    bank(one, gguf_name);
    return one.front();
  }

  // Every matrix of `list` (same shape and type: an expert bank) converted into one buffer.
  void bank(std::vector<layers::WeightMatrix<>>& list, const std::string& gguf_name) {
    if (list.empty() || list.front().empty() || is_block_dtype(list.front().dtype)) return;
    const layers::WeightMatrix<> first = list.front();  // a copy: list is rewritten below
    const DType t = tensor_type(type_, gguf_name, 2, first.cols, n_layers_, report.fallbacks);
    if (t == first.dtype) return;
    const std::size_t row_bytes = format_row_bytes(t, static_cast<std::size_t>(first.cols));
    const std::size_t matrix_bytes = row_bytes * static_cast<std::size_t>(first.rows);
    AlignedBuffer<std::byte> buf(matrix_bytes * list.size());
    for (std::size_t e = 0; e < list.size(); ++e) {
      const layers::WeightMatrix<>& m = list[e];
      require(m.rows == first.rows && m.cols == first.cols && m.dtype == first.dtype, ErrorCode::kInternal,
              "quantize: bank {} mixes shapes", gguf_name);
      std::byte* out = buf.data() + e * matrix_bytes;
      const std::size_t src_row = format_row_bytes(m.dtype, static_cast<std::size_t>(m.row_stride));
      const auto rows = static_cast<std::int64_t>(m.rows);
#pragma omp parallel for schedule(static) if (rows >= 64)
      for (std::int64_t r = 0; r < rows; ++r) {
        thread_local std::vector<float> x;
        x.resize(static_cast<std::size_t>(m.cols));
        row_to_float(m.dtype, m.data + static_cast<std::size_t>(r) * src_row, static_cast<std::size_t>(m.cols), x.data());
        float_to_row(t, x.data(), static_cast<std::size_t>(m.cols), out + static_cast<std::size_t>(r) * row_bytes);
      }
      report.bytes_before += m.bytes();
      list[e] = layers::WeightMatrix<>{t, out, m.rows, m.cols, m.cols};
      report.bytes_after += list[e].bytes();
      ++report.types[std::string(dtype_name(t))];
    }
    buffers_->push_back(std::move(buf));
  }

  // MLA's kv_b_proj [H·(nope+v), R] split per head as moe-quantize writes it (gguf_export.hpp):
  // k_b_proj [H·R, nope] (W_UK[h] transposed, attn_k_b) and v_b_proj [H·v, R] (W_UV[h],
  // attn_v_b), each in its GGUF tensor's type; kv_b_proj becomes empty (layers/mla.hpp).
  void split_kv_b(layers::MlaWeights<>& m, const ModelConfig& c, index_t layer) {
    const layers::WeightMatrix<>& kv = m.kv_b_proj;
    const index_t H = c.n_heads, N = c.qk_nope_head_dim, V = c.v_head_dim, R = c.kv_lora_rank;
    require(kv.rows == H * (N + V) && kv.cols == R, ErrorCode::kInternal, "quantize: kv_b_proj [{}, {}] for {} heads",
            kv.rows, kv.cols, H);
    std::vector<float> k(static_cast<std::size_t>(H * R * N)), v(static_cast<std::size_t>(H * V * R)), row(R);
    const std::size_t src_row = format_row_bytes(kv.dtype, static_cast<std::size_t>(kv.row_stride));
    for (index_t h = 0; h < H; ++h) {
      for (index_t i = 0; i < N + V; ++i) {
        row_to_float(kv.dtype, kv.data + static_cast<std::size_t>(h * (N + V) + i) * src_row, R, row.data());
        for (index_t r = 0; r < R; ++r) {
          if (i < N) k[(h * R + r) * N + i] = row[r];
          else v[(h * V + i - N) * R + r] = row[r];
        }
      }
    }
    report.bytes_before += kv.bytes();
    m.k_b_proj = from_floats(k, H * R, N, fmt::format("blk.{}.attn_k_b.weight", layer));
    m.v_b_proj = from_floats(v, H * V, R, fmt::format("blk.{}.attn_v_b.weight", layer));
    m.kv_b_proj = {};
  }

  std::shared_ptr<std::vector<AlignedBuffer<std::byte>>> buffers() const { return buffers_; }
  LoadQuantizeReport report;

 private:
  // `x` [rows, cols] in the type of 3-D GGUF tensor `gguf_name` (a new buffer).
  layers::WeightMatrix<> from_floats(const std::vector<float>& x, index_t rows, index_t cols, const std::string& gguf_name) {
    const DType t = tensor_type(type_, gguf_name, 3, cols, n_layers_, report.fallbacks);
    const std::size_t row_bytes = format_row_bytes(t, static_cast<std::size_t>(cols));
    AlignedBuffer<std::byte> buf(row_bytes * static_cast<std::size_t>(rows));
    for (index_t r = 0; r < rows; ++r) {
      float_to_row(t, x.data() + r * cols, static_cast<std::size_t>(cols), buf.data() + static_cast<std::size_t>(r) * row_bytes);
    }
    const layers::WeightMatrix<> out{t, buf.data(), rows, cols, cols};
    buffers_->push_back(std::move(buf));
    report.bytes_after += out.bytes();
    ++report.types[std::string(dtype_name(t))];
    return out;
  }

  std::string type_;
  index_t n_layers_;
  std::shared_ptr<std::vector<AlignedBuffer<std::byte>>> buffers_ =
      std::make_shared<std::vector<AlignedBuffer<std::byte>>>();
};

}  // namespace detail

// Converts `w` (bound from `c`'s checkpoint) in place to `type` (moe-quantize's --type values but
// f32). The converted bytes live in the returned storage, which must outlive `w`. Errors:
// kInvalidArgument for an unknown type.
inline std::shared_ptr<const void> quantize_model_weights(const ModelConfig& c, model::ModelWeights<>& w,
                                                          std::string_view type, LoadQuantizeReport* report = nullptr) {
  return catch_as_error("quantize_model_weights", [&]() -> std::shared_ptr<const void> {
    const bool known = type == "q4_k_m" || type == "mxfp4" || (parse_dtype(type) && type != "f32");
    require(known, ErrorCode::kInvalidArgument,
            "quantize: '{}' is not one of q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs q4_k_m "
            "mxfp4 bf16 f16", type);
    detail::WeightQuantizer q{std::string(type), c.n_layers};
    if (w.tied) {
      w.embed = q.matrix(w.embed, "token_embd.weight");  // one tensor, written as token_embd
      w.lm_head = w.embed;
    } else {
      w.embed = q.matrix(w.embed, "token_embd.weight");
      w.lm_head = q.matrix(w.lm_head, "output.weight");
    }
    for (index_t l = 0; l < c.n_layers; ++l) {
      model::LayerWeights<>& L = w.layers[l];
      const auto name = [&](std::string_view part) { return fmt::format("blk.{}.{}.weight", l, part); };
      auto& a = L.attn;
      a.q = q.matrix(a.q, name("attn_q")), a.k = q.matrix(a.k, name("attn_k"));
      a.v = q.matrix(a.v, name("attn_v")), a.o = q.matrix(a.o, name("attn_output"));
      auto& m = L.mla;
      m.q_proj = q.matrix(m.q_proj, name("attn_q")), m.q_a_proj = q.matrix(m.q_a_proj, name("attn_q_a"));
      m.q_b_proj = q.matrix(m.q_b_proj, name("attn_q_b"));
      m.kv_a_proj = q.matrix(m.kv_a_proj, name("attn_kv_a_mqa"));
      if (!m.kv_b_proj.empty() && !is_block_dtype(m.kv_b_proj.dtype)) q.split_kv_b(m, c, l);
      m.o_proj = q.matrix(m.o_proj, name("attn_output"));
      const auto mlp = [&](layers::MlpWeights<>& p, std::string_view suffix) {
        p.gate = q.matrix(p.gate, name(fmt::format("ffn_gate{}", suffix)));
        p.up = q.matrix(p.up, name(fmt::format("ffn_up{}", suffix)));
        p.down = q.matrix(p.down, name(fmt::format("ffn_down{}", suffix)));
      };
      mlp(L.mlp, "");
      mlp(L.moe_weights.shared, "_shexp");
      auto& b = L.moe_weights.experts;
      if (b.layout != layers::ExpertLayout::kInputMajorGlu && b.layout != layers::ExpertLayout::kInputMajorFused) {
        q.bank(b.gate, name("ffn_gate_exps")), q.bank(b.up, name("ffn_up_exps"));
        q.bank(b.gate_up, name("ffn_gate_exps")), q.bank(b.down, name("ffn_down_exps"));
      }
    }
    if (report != nullptr) *report = q.report;
    return q.buffers();
  });
}

}  // namespace moe::io
