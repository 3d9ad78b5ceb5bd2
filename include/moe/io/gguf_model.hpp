// A model GGUF file (llama.cpp's layout) as moecpp's ModelConfig plus a TensorSource: the
// metadata becomes a Hugging Face config through the per-architecture table (gguf_arch.hpp),
// then ModelConfig::from_json validates it as for a folder; tensors are served in place from
// the mapping under the Hugging Face names bind_weights asks for (quantized ones as their block
// DType, stacked experts as per-expert slices, MLA's split attn_k_b / attn_v_b as k_b_proj /
// v_b_proj: layers/mla.hpp). Copied are only kv_b_proj when asked for by that name from a split
// file (an f32 copy, which GGUF -> GGUF export reads), GPT-OSS's expert banks (into the
// checkpoint's input-major layout) and the Gated DeltaNet tensors and zero-centred norms of
// qwen3next / qwen35moe (gguf_arch.hpp kTransformed).
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/io/gguf.hpp"
#include "moe/io/gguf_arch.hpp"
#include "moe/io/gguf_dtype.hpp"
#include "moe/model/config.hpp"
#include "moe/model/weights.hpp"
#include "moe/quant/formats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace moe::io {

namespace detail {

// gguf_arch's metadata reader interface over a GgufFile.
class GgufMetadataReader {
 public:
  explicit GgufMetadataReader(const GgufFile& f) : f_(f) {}
  std::optional<std::string> string(std::string_view key) const {
    const auto v = f_.get_optional<std::string>(key);
    return v;
  }
  std::optional<std::uint64_t> integer(std::string_view key) const {
    return f_.get_integer_optional<std::uint64_t>(key);
  }
  std::optional<double> number(std::string_view key) const {
    const auto v = f_.find(key);
    if (!v) return std::nullopt;
    if (v->holds<float>()) return static_cast<double>(v->get<float>());
    if (v->holds<double>()) return v->get<double>();
    if (v->integer()) return static_cast<double>(f_.get_integer<std::int64_t>(key));
    fail(ErrorCode::kConfig, "{}: metadata key {} has type {} ({}), expected a number", f_.name(), key, v->type_name(),
         v->describe());
  }
  std::optional<bool> boolean(std::string_view key) const { return f_.get_optional<bool>(key); }
  std::optional<std::vector<bool>> bools(std::string_view key) const { return f_.get_optional<std::vector<bool>>(key); }
  // An array of i32 (what gguf-py writes for a list of ints) or u32.
  std::optional<std::vector<std::int64_t>> ints(std::string_view key) const {
    const auto v = f_.find(key);
    if (!v) return std::nullopt;
    std::vector<std::int64_t> out;
    if (v->holds<std::vector<std::uint32_t>>()) {
      for (const std::uint32_t x : v->get<std::vector<std::uint32_t>>()) out.push_back(x);
    } else {
      for (const std::int32_t x : f_.get<std::vector<std::int32_t>>(key)) out.push_back(x);
    }
    return out;
  }
  std::optional<std::vector<index_t>> tensor_shape(std::string_view name) const {
    const auto t = f_.find_tensor(name);
    if (!t) return std::nullopt;
    return t->shape();
  }

 private:
  const GgufFile& f_;
};

// Outermost-first shapes equal after dropping leading 1s (a [1, D] HF tensor stored as [D]).
inline bool same_shape(std::span<const index_t> a, std::span<const index_t> b) {
  while (!a.empty() && a.front() == 1 && a.size() > b.size()) a = a.subspan(1);
  while (!b.empty() && b.front() == 1 && b.size() > a.size()) b = b.subspan(1);
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

inline std::string shape_text(std::span<const index_t> s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Row i of `t` (any DType) as floats.
inline void row_to_float(DType t, const std::byte* row, std::size_t n, float* out) {
  visit_format<backend::reference>(t, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_block_format_v<T>) {
      quant::dequantize_row(reinterpret_cast<const T*>(row), out, n);
    } else {
      const T* p = reinterpret_cast<const T*>(row);
      for (std::size_t i = 0; i < n; ++i) out[i] = to_float(p[i]);
    }
  });
}

}  // namespace detail

// Config of a model GGUF: kUnsupported for an architecture without a mapping, kConfig naming the
// file and key for missing or inconsistent metadata, kShapeMismatch when expert counts disagree
// with the tensors. Warnings (core/warning.hpp) for what GGUF does not store (expert groups).
inline ModelConfig gguf_model_config(const GgufFile& f) {
  return catch_as_error("gguf_model_config", [&] {
    const detail::GgufMetadataReader r(f);
    const nlohmann::json j = gguf_arch::hf_config_from_metadata(r, f.name());
    ModelConfig c = ModelConfig::from_json(j, f.name());
    // llama, granitemoe: the converter permuted attn_q / attn_k for ggml's normal (adjacent-pair)
    // rope; run that rope instead of undoing the permutation.
    if (const gguf_arch::ArchTable* a = gguf_arch::table_for_family(c.spec->family); a != nullptr && a->permute_qk) {
      c.rope_pairing = kernels::RopePairing::interleaved;
    }
    // rope_freqs.weight: llama.cpp's per-frequency divisors (how its converter stores llama3 rope).
    if (const auto t = f.find_tensor("rope_freqs.weight")) {
      const index_t half = c.rope.rotary_dim / 2;
      if (t->type != GgmlType::f32 || t->shape().size() != 1 || t->shape()[0] != half) {
        fail(ErrorCode::kShapeMismatch, "{}: tensor rope_freqs.weight is {} {}, expected f32 [{}] (rotary dimension {})",
             f.name(), to_string(t->type), detail::shape_text(t->shape()), half, c.rope.rotary_dim);
      }
      c.rope.freq_factors.resize(static_cast<std::size_t>(half));
      std::memcpy(c.rope.freq_factors.data(), t->bytes.data(), c.rope.freq_factors.size() * sizeof(float));
      for (std::size_t i = 0; i < c.rope.freq_factors.size(); ++i) {
        const float v = c.rope.freq_factors[i];
        require(std::isfinite(v) && v > 0, ErrorCode::kConfig,
                "{}: tensor rope_freqs.weight: rope frequency factor {} is {}; must be positive", f.name(), i, v);
      }
    }
    return c;
  });
}

// The tensors of a model GGUF under Hugging Face names (gguf_arch::tensor_mappings). Thread-safe
// for concurrent get() (the only state it changes is the list of reassembled kv_b copies).
class GgufTensorSource final : public TensorSource {
 public:
  GgufTensorSource(const GgufFile& f, const ModelConfig& c) : f_(f) {
    const gguf_arch::ArchTable* a = gguf_arch::table_for_family(c.spec->family);
    require(a != nullptr, ErrorCode::kUnsupported, "{}: no GGUF mapping for {}", f.name(), c.architecture);
    c_heads_ = c.n_heads, nope_ = c.qk_nope_head_dim, v_dim_ = c.v_head_dim, rank_ = c.kv_lora_rank;
    for (auto& m : gguf_arch::tensor_mappings(c, *a)) {
      const std::string hf = m.hf;
      if (m.kind == gguf_arch::TensorKind::kKvB) {
        const index_t H = c_heads_, N = nope_, Vd = v_dim_, R = rank_;
        split_.emplace(replaced(hf, "kv_b_proj", "k_b_proj"), SplitHalf{split_name(m.gguf, "attn_k_b"), {H, R, N}});
        split_.emplace(replaced(hf, "kv_b_proj", "v_b_proj"), SplitHalf{split_name(m.gguf, "attn_v_b"), {H, Vd, R}});
      }
      by_hf_.emplace(hf, std::move(m));
    }
  }

  bool contains(std::string_view name) const override {
    if (const SplitHalf* h = find_split(name)) return f_.find_tensor(h->gguf).has_value();
    const auto* m = find(name);
    if (m == nullptr) return false;
    if (m->kind == gguf_arch::TensorKind::kKvB) return f_.find_tensor(m->gguf) || split_kvb_present(*m);
    if (m->kind == gguf_arch::TensorKind::kGluPair) return f_.find_tensor(m->gguf) && f_.find_tensor(m->gguf_up);
    if (m->kind == gguf_arch::TensorKind::kTransformed) {
      return std::all_of(m->parts.begin(), m->parts.end(), [&](const auto& p) { return f_.find_tensor(p.name).has_value(); });
    }
    return f_.find_tensor(m->gguf).has_value();
  }

  std::optional<std::vector<index_t>> shape_of(std::string_view name) const override {
    if (const SplitHalf* h = find_split(name)) {
      if (!contains(name)) return std::nullopt;
      return std::vector<index_t>{h->shape[0] * h->shape[1], h->shape[2]};
    }
    const auto* m = find(name);
    if (m == nullptr || !contains(name)) return std::nullopt;
    return m->hf_shape;
  }

  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    if (const SplitHalf* h = find_split(name)) return split_half(*h, name, shape);
    const auto* m = find(name);
    if (m == nullptr) fail(ErrorCode::kMissingTensor, "{}: no GGUF tensor maps to {}", f_.name(), name);
    if (!detail::same_shape(shape, m->hf_shape)) {
      fail(ErrorCode::kShapeMismatch, "{}: {} is bound as {}, the mapping expects {}", f_.name(), name,
           detail::shape_text(shape), detail::shape_text(m->hf_shape));
    }
    if (m->kind == gguf_arch::TensorKind::kKvB && !f_.find_tensor(m->gguf)) return assemble_kvb(*m);
    if (m->kind == gguf_arch::TensorKind::kGluPair || m->kind == gguf_arch::TensorKind::kTransposedBank) {
      return assemble_gpt_oss(*m);
    }
    if (m->kind == gguf_arch::TensorKind::kTransformed) return assemble_transformed(*m, name);
    const GgufTensor t = f_.get_tensor(m->gguf);
    const DType d = tensor_dtype(t, f_.name());
    const std::vector<index_t> want = gguf_arch::gguf_shape(*m);
    const std::vector<index_t> got = t.shape();
    if (!detail::same_shape(got, want)) {
      fail(ErrorCode::kShapeMismatch, "{}: tensor {} (for {}): expected shape {}, found {}", f_.name(), m->gguf, name,
           detail::shape_text(want), detail::shape_text(got));
    }
    TensorRef ref{d, t.bytes.data()};
    if (m->kind == gguf_arch::TensorKind::kExpert) {
      const std::size_t expert_bytes = static_cast<std::size_t>(m->hf_shape[0]) * t.row_bytes();
      ref.data += static_cast<std::size_t>(m->expert) * expert_bytes;
    }
    return ref;
  }

 private:
  const gguf_arch::TensorMapping* find(std::string_view name) const {
    const auto it = by_hf_.find(name);
    return it == by_hf_.end() ? nullptr : &it->second;
  }
  static std::string replaced(const std::string& name, std::string_view from, std::string_view to) {
    std::string s = name;
    s.replace(s.find(from), from.size(), to);
    return s;
  }
  static std::string split_name(const std::string& kvb, std::string_view part) { return replaced(kvb, "attn_kv_b", part); }
  bool split_kvb_present(const gguf_arch::TensorMapping& m) const {
    return f_.find_tensor(split_name(m.gguf, "attn_k_b")) && f_.find_tensor(split_name(m.gguf, "attn_v_b"));
  }

  // MLA's kv_b_proj as the file stores it, split per head: k_b_proj [H·R, nope] is attn_k_b
  // [H, R, nope] (W_UK[h] transposed) and v_b_proj [H·v, R] is attn_v_b [H, v, R], each used in
  // place under its stored type (model/weights.hpp binds these when both are present).
  struct SplitHalf {
    std::string gguf;
    std::array<index_t, 3> shape;  // GGUF, outermost first
  };
  const SplitHalf* find_split(std::string_view name) const {
    const auto it = split_.find(name);
    return it == split_.end() ? nullptr : &it->second;
  }
  TensorRef split_half(const SplitHalf& h, std::string_view name, std::span<const index_t> shape) const {
    const std::vector<index_t> want{h.shape[0] * h.shape[1], h.shape[2]};
    if (!detail::same_shape(shape, want)) {
      fail(ErrorCode::kShapeMismatch, "{}: {} is bound as {}, the mapping expects {}", f_.name(), name,
           detail::shape_text(shape), detail::shape_text(want));
    }
    const GgufTensor t = f_.get_tensor(h.gguf);
    const std::vector<index_t> got = t.shape();
    if (!detail::same_shape(got, std::vector<index_t>(h.shape.begin(), h.shape.end())) && !detail::same_shape(got, want)) {
      fail(ErrorCode::kShapeMismatch, "{}: tensor {} (for {}): expected shape {}, found {}", f_.name(), h.gguf, name,
           detail::shape_text(std::vector<index_t>(h.shape.begin(), h.shape.end())), detail::shape_text(got));
    }
    return TensorRef{tensor_dtype(t, f_.name()), t.bytes.data()};
  }

  // kv_b_proj [H·(nope+v), R] from attn_k_b [H, R, nope] (transposed per head) and attn_v_b
  // [H, v, R]: a copy in f32 (the split halves are not in kv_b's row order).
  TensorRef assemble_kvb(const gguf_arch::TensorMapping& m) const {
    const GgufTensor kb = f_.get_tensor(split_name(m.gguf, "attn_k_b"));
    const GgufTensor vb = f_.get_tensor(split_name(m.gguf, "attn_v_b"));
    const index_t H = c_heads_, N = nope_, Vd = v_dim_, R = rank_;
    const std::vector<index_t> kwant{H, R, N}, vwant{H, Vd, R};
    if (!detail::same_shape(kb.shape(), kwant)) {
      fail(ErrorCode::kShapeMismatch, "{}: tensor {}: expected shape {}, found {}", f_.name(), kb.name,
           detail::shape_text(kwant), detail::shape_text(kb.shape()));
    }
    if (!detail::same_shape(vb.shape(), vwant)) {
      fail(ErrorCode::kShapeMismatch, "{}: tensor {}: expected shape {}, found {}", f_.name(), vb.name,
           detail::shape_text(vwant), detail::shape_text(vb.shape()));
    }
    const DType kd = tensor_dtype(kb, f_.name()), vd = tensor_dtype(vb, f_.name());
    std::vector<float> krow(N), out(static_cast<std::size_t>(H * (N + Vd) * R));
    for (index_t h = 0; h < H; ++h) {
      float* head = out.data() + h * (N + Vd) * R;
      for (index_t r = 0; r < R; ++r) {  // k_b row (h, r) holds kv_b[h·(N+V) + n, r] for n < N
        detail::row_to_float(kd, kb.bytes.data() + (h * R + r) * kb.row_bytes(), N, krow.data());
        for (index_t n = 0; n < N; ++n) head[n * R + r] = krow[n];
      }
      for (index_t v = 0; v < Vd; ++v) {
        detail::row_to_float(vd, vb.bytes.data() + (h * Vd + v) * vb.row_bytes(), R, head + (N + v) * R);
      }
    }
    return keep(std::move(out));
  }

  // GGUF tensor `name` of outermost-first `want` as floats (row-major).
  std::vector<float> floats_of(const std::string& name, std::span<const index_t> want) const {
    const GgufTensor t = f_.get_tensor(name);
    if (!detail::same_shape(t.shape(), want)) {
      fail(ErrorCode::kShapeMismatch, "{}: tensor {}: expected shape {}, found {}", f_.name(), name,
           detail::shape_text(want), detail::shape_text(t.shape()));
    }
    const DType d = tensor_dtype(t, f_.name());
    const std::size_t cols = static_cast<std::size_t>(want.back());
    const std::size_t rows = static_cast<std::size_t>(t.element_count) / cols;
    std::vector<float> out(rows * cols);
    for (std::size_t r = 0; r < rows; ++r) detail::row_to_float(d, t.bytes.data() + r * t.row_bytes(), cols, out.data() + r * cols);
    return out;
  }
  // The HF tensor of a kTransformed mapping (Qwen3-Next / Qwen3.5, gguf_arch.hpp) from its parts:
  // the converter's row / column order and value map undone (A_log = log(-ssm_a), w = norm - 1). Rows
  // that are only reordered are copied as stored (a quantized attn_qkv + attn_gate gives a quantized
  // in_proj_qkvz); anything else is an f32 copy.
  TensorRef assemble_transformed(const gguf_arch::TensorMapping& m, std::string_view hf) const {
    std::vector<GgufTensor> parts;
    for (std::size_t p = 0; p < m.parts.size(); ++p) {
      const auto t = f_.find_tensor(m.parts[p].name);
      if (!t) fail(ErrorCode::kMissingTensor, "{}: tensor {} (for {}) not found", f_.name(), m.parts[p].name, hf);
      const std::vector<index_t> want = gguf_arch::part_shape(m, p);
      if (!detail::same_shape(t->shape(), want)) {
        fail(ErrorCode::kShapeMismatch, "{}: tensor {} (for {}): expected shape {}, found {}", f_.name(), t->name, hf,
             detail::shape_text(want), detail::shape_text(t->shape()));
      }
      if (m.hf_shape.size() == 1 && format_block_elements(tensor_dtype(*t, f_.name())) != 1) {
        fail(ErrorCode::kUnsupported, "{}: tensor {} (for {}) is a vector of type {}; expected f32, f16 or bf16",
             f_.name(), t->name, hf, to_string(t->type));
      }
      parts.push_back(*t);
    }
    const index_t R = gguf_arch::transformed_rows(m), C = gguf_arch::transformed_cols(m);
    // GGUF row i of the parts one after the other -> (part, row in it).
    std::vector<std::pair<std::size_t, index_t>> where;
    for (std::size_t p = 0; p < parts.size(); ++p)
      for (index_t r = 0; r < m.parts[p].rows; ++r) where.emplace_back(p, r);
    const auto hf_row = [&](index_t i) { return m.row_order.empty() ? i : m.row_order[static_cast<std::size_t>(i)]; };
    const DType d0 = tensor_dtype(parts[0], f_.name());
    const bool same_type = std::all_of(parts.begin(), parts.end(), [&](const GgufTensor& t) { return t.type == parts[0].type; });
    if (m.value == gguf_arch::ValueMap::kNone && m.col_order.empty() && same_type && m.hf_shape.size() > 1) {
      const std::size_t rb = parts[0].row_bytes();
      std::vector<std::byte> out(static_cast<std::size_t>(R) * rb);
      for (index_t i = 0; i < R; ++i) {
        const auto [p, r] = where[static_cast<std::size_t>(i)];
        std::memcpy(out.data() + static_cast<std::size_t>(hf_row(i)) * rb, parts[p].bytes.data() + static_cast<std::size_t>(r) * rb, rb);
      }
      return keep_bytes(std::move(out), d0);
    }
    std::vector<float> row(static_cast<std::size_t>(C)), out(static_cast<std::size_t>(R * C));
    for (index_t i = 0; i < R; ++i) {
      const auto [p, r] = where[static_cast<std::size_t>(i)];
      const GgufTensor& t = parts[p];
      const std::size_t rb = m.hf_shape.size() > 1 ? t.row_bytes() : format_row_bytes(tensor_dtype(t, f_.name()), 1);
      detail::row_to_float(tensor_dtype(t, f_.name()), t.bytes.data() + static_cast<std::size_t>(r) * rb,
                           static_cast<std::size_t>(C), row.data());
      float* dst = out.data() + static_cast<std::size_t>(hf_row(i) * C);
      for (index_t j = 0; j < C; ++j) {
        const float v = row[static_cast<std::size_t>(j)];
        float& o = dst[m.col_order.empty() ? j : m.col_order[static_cast<std::size_t>(j)]];
        switch (m.value) {
          case gguf_arch::ValueMap::kNone: o = v; break;
          case gguf_arch::ValueMap::kNegExp:
            // ssm_a = -exp(A_log) is negative; anything else has no A_log.
            require(v < 0.0f, ErrorCode::kConfig, "{}: tensor {} (for {}): value {} at {} must be negative (-exp(A_log))",
                    f_.name(), t.name, hf, v, i * C + j);
            o = std::log(-v);
            break;
          case gguf_arch::ValueMap::kPlusOne: o = v - 1.0f; break;
        }
      }
    }
    return keep(std::move(out));
  }
  TensorRef keep_bytes(std::vector<std::byte> v, DType d) const {
    std::lock_guard lock(mutex_);
    const auto& kept = owned_bytes_.emplace_back(std::move(v));
    return TensorRef{d, kept.data()};
  }

  // Keeps a reassembled copy alive with the source; its TensorRef.
  TensorRef keep(std::vector<float> v) const {
    std::lock_guard lock(mutex_);
    const auto& kept = owned_.emplace_back(std::move(v));
    return TensorRef{DType::f32, reinterpret_cast<const std::byte*>(kept.data())};
  }

  // GPT-OSS's (and Llama 4's) checkpoint layout from llama.cpp's (gguf_arch.hpp): gate_up_proj [E, D, 2F] with
  // gate/up in even/odd columns from ffn_gate_exps / ffn_up_exps [E, F, D], its bias [E, 2F] from
  // the [E, F] biases, down_proj [E, F, D] from ffn_down_exps [E, D, F]. f32 copies (transposed,
  // so not usable in place; a quantized file is dequantized here).
  TensorRef assemble_gpt_oss(const gguf_arch::TensorMapping& m) const {
    const std::vector<index_t> g = gguf_arch::gguf_shape(m);
    const index_t E = m.hf_shape[0];
    std::vector<float> out;
    if (m.kind == gguf_arch::TensorKind::kTransposedBank) {
      const index_t D = g[1], F = g[2];
      const std::vector<float> down = floats_of(m.gguf, g);
      out.resize(down.size());
      for (index_t e = 0; e < E; ++e)
        for (index_t d = 0; d < D; ++d)
          for (index_t f = 0; f < F; ++f) out[(e * F + f) * D + d] = down[(e * D + d) * F + f];
      return keep(std::move(out));
    }
    const std::vector<float> gate = floats_of(m.gguf, g), up = floats_of(m.gguf_up, g);
    out.resize(gate.size() * 2);
    if (g.size() == 2) {  // biases [E, F] -> [E, 2F]
      const index_t F = g[1];
      for (index_t e = 0; e < E; ++e)
        for (index_t f = 0; f < F; ++f) {
          out[e * 2 * F + 2 * f] = gate[e * F + f];
          out[e * 2 * F + 2 * f + 1] = up[e * F + f];
        }
      return keep(std::move(out));
    }
    const index_t F = g[1], D = g[2];  // [E, F, D] twice -> [E, D, 2F]
    // Gate / up unit f in columns 2f / 2f + 1 (GPT-OSS) or f / F + f (Llama 4's halves).
    const index_t up_at = m.halves ? F : 1, stride = m.halves ? 1 : 2;
    for (index_t e = 0; e < E; ++e)
      for (index_t f = 0; f < F; ++f)
        for (index_t d = 0; d < D; ++d) {
          out[(e * D + d) * 2 * F + stride * f] = gate[(e * F + f) * D + d];
          out[(e * D + d) * 2 * F + stride * f + up_at] = up[(e * F + f) * D + d];
        }
    return keep(std::move(out));
  }

  const GgufFile& f_;
  std::map<std::string, gguf_arch::TensorMapping, std::less<>> by_hf_;
  std::map<std::string, SplitHalf, std::less<>> split_;  // k_b_proj / v_b_proj names -> their GGUF half
  index_t c_heads_ = 0, nope_ = 0, v_dim_ = 0, rank_ = 0;
  mutable std::mutex mutex_;
  mutable std::list<std::vector<float>> owned_;
  mutable std::list<std::vector<std::byte>> owned_bytes_;
};

// What a host model keeps alive: the mapped file and the reassembled copies.
struct GgufModelStorage {
  GgufFile file;
  std::unique_ptr<GgufTensorSource> source;
};

// Opens `path` and binds every weight: config, bound weights, and the storage they point into.
struct GgufModel {
  ModelConfig config;
  model::ModelWeights<> weights;
  std::shared_ptr<GgufModelStorage> storage;
};

inline GgufModel open_gguf_model(const std::filesystem::path& path) {
  return catch_as_error("open_gguf_model", [&] {
    auto storage = std::make_shared<GgufModelStorage>(GgufModelStorage{GgufFile::open(path), nullptr});
    GgufModel m;
    m.config = gguf_model_config(storage->file);
    storage->source = std::make_unique<GgufTensorSource>(storage->file, m.config);
    m.weights = model::bind_weights(m.config, *storage->source);
    m.storage = std::move(storage);
    return m;
  });
}

}  // namespace moe::io
