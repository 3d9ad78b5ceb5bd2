// The mapping between llama.cpp's GGUF model description and ours, one table per architecture
// (gguf_arch_tables.hpp), used in both directions: GGUF metadata keys <-> Hugging Face config.json
// keys, and GGUF tensor names <-> the Hugging Face tensor names model::bind_weights asks for.
// Names and conventions are those of llama.cpp's convert_hf_to_gguf.py / gguf-py (constants.py,
// tensor_mapping.py) and src/llama-arch.cpp, llama-model.cpp, src/models/*.cpp:
//  - arch names: llama (Mixtral: llama with experts), qwen2moe, qwen3moe, olmoe, deepseek2
//    (DeepSeek-V2/V3, Kimi K2, GLM-4.7-Flash), glm4moe, gpt-oss, granitemoe, ernie4_5-moe,
//    hunyuan-moe, dots1, minimax-m2, llama4, deepseek32 (DeepSeek-V3.2), glm-dsa (GLM-5),
//    qwen3next (Qwen3-Next), qwen35moe (Qwen3.5-MoE, text).
//  - not mapped (write: kUnsupported naming the class and why, unmapped_reason): ERNIE-4.5 with
//    use_bias (llama.cpp's ernie4_5-moe has q/k/v biases only); Llama 4 configs that llama.cpp's
//    graph runs otherwise (write_llama4); a DSA config whose indexer rope pairing is not llama.cpp's
//    (write_dsa).
//  - what a family's llama.cpp graph cannot run is written with a warning and read back here:
//    dots1's expert groups and sliding layers (attention.sliding_window_pattern), ERNIE's
//    moe_layer_end_index, GLM-4.7-Flash's, DeepSeek-V3.2's and GLM-5's dense layers after the
//    leading block (the MoE layers come back from which blk.N hold ffn_gate_inp).
//  - gpt-oss (llama.cpp's LLM_ARCH_OPENAI_MOE): the checkpoint's input-major gate_up_proj
//    [E, D, 2F] (gate in even columns, up in odd) is stored as output-major ffn_gate_exps /
//    ffn_up_exps [E, F, D] (and their biases split alike), down_proj [E, F, D] as ffn_down_exps
//    [E, D, F]; reading reassembles the checkpoint layout (f32 copies). Router bias is
//    ffn_gate_inp.bias, sinks attn_sinks.weight, the post-attention norm post_attention_norm.
//    llama.cpp fixes in its graph what the file does not say: SwiGLU alpha 1.702 / limit 7,
//    sliding window on even layers (set_swa_pattern(2)), yarn's truncated correction range (the
//    GPT-OSS configs say truncate = false, which the reader restores).
//  - experts stacked as 3-D ffn_{gate,up,down}_exps ([E, rows, cols] outermost first; ggml's ne
//    is the reverse), served to the model as per-expert slices (zero copy).
//  - `llama`: the converter permutes attn_q / attn_k rows per head so that ggml's "normal" rope
//    (adjacent pairs) equals transformers' rotate_half. Reading, we do not undo it: we run rope
//    with interleaved pairs on the permuted rows (q·k is unchanged by the same permutation of
//    both). Writing, the permutation is applied (a copy per tensor, unavoidable).
//  - deepseek2: MLA is written as llama.cpp's MQA form (head_count_kv = 1, key_length =
//    kv_lora_rank + rope dims, value_length = kv_lora_rank, key/value_length_mla the per-head
//    sizes); kv_b_proj is written split as attn_k_b ([H, kv_lora_rank, nope], transposed) and
//    attn_v_b ([H, v_head_dim, kv_lora_rank]) as the current converter does; a file with
//    attn_kv_b (older converters) is read in place, a split one is reassembled (a copy).
//    llama.cpp's deepseek2 rope takes adjacent pairs (rope_interleave = true checkpoints); for a
//    rope_interleave = false checkpoint the rope rows of q and kv_a are permuted on write (the
//    converter does not, so llama.cpp runs its files of such checkpoints wrongly).
//  - deepseek32 / glm-dsa: deepseek2's MLA form and keys (their converters subclass
//    DeepseekV2Model) plus DeepSeek sparse attention: attention.indexer.head_count / key_length /
//    top_k (index_n_heads / index_head_dim / index_topk) and per layer blk.N.indexer.attn_q_b
//    (wq_b), indexer.attn_k (wk), indexer.k_norm.weight / .bias (the LayerNorm), indexer.proj
//    (weights_proj, always f32 as the converter writes it). llama.cpp ropes the indexer's first
//    rope.dimension_count dims rotate_half (deepseek32) or in adjacent pairs (glm-dsa), which is
//    what the checkpoints do, so nothing is permuted (llama_index_rope_pairing). GLM-5's "shared"
//    layers (reuse the previous full layer's selection, no indexer tensors) are
//    attention.indexer.types (a bool per layer, true = full; llama.cpp's glm-dsa runs them since
//    PR #25407); a file without it is all full below a 1M context and GLM-5.2's pattern from it
//    on, as llama.cpp reads it. Dense / MoE layers are read back from the tensors
//    (mlp_layer_types).
//  - qwen3next / qwen35moe (convert_hf_to_gguf.py Qwen3NextModel; Qwen3_5MoeTextModel extends it):
//    keys ssm.conv_kernel / state_size / group_count / time_step_rank / inner_size (linear_conv_kernel_dim,
//    linear_key_head_dim, linear_num_key_heads, linear_num_value_heads, value head dim x value heads),
//    full_attention_interval (the linear / full layer mix), rope.dimension_count, qwen35moe's
//    rope.dimension_sections (write_linear_attention). DeltaNet tensors (kTransformed): Qwen3-Next's
//    in_proj_qkvz regrouped into attn_qkv [all q | all k | all v] + attn_gate (z), in_proj_ba as
//    ssm_ba; Qwen3.5's in_proj_qkv / z / b / a as attn_qkv / attn_gate / ssm_beta / ssm_alpha with
//    the value heads reordered grouped -> tiled when there are fewer key heads (tiled_heads; also in
//    conv1d, A_log, dt_bias and out_proj's columns); conv1d [C, 1, K] as ssm_conv1d [C, K] (f32);
//    A_log as ssm_a = -exp(A_log); dt_bias as ssm_dt.bias; norm as ssm_norm; out_proj as ssm_out.
//    Every zero-centred RMSNorm weight (attn_norm, post_attention_norm, output_norm, attn_q_norm,
//    attn_k_norm) is stored as 1 + w; the gated attention's doubled q_proj is attn_q as it is.
//    Reading undoes each of these (f32 copies, or row copies as stored for pure reorders).
//  - MTP layers: converters that keep them (DeepseekV32Model, GlmMoeDsaModel: skip_mtp False)
//    count them in block_count and say how many in nextn_predict_layers; llama.cpp's graphs skip
//    them (n_layer() = block_count - nextn_predict_layers) and so does the reader, for every arch.
//    Written files have none (moecpp binds no MTP weights; llama.cpp runs them the same).
//  - expert_gating_func (1 softmax, 2 sigmoid) picks DeepSeek-V2 vs V3 routing; expert_weights_
//    scale / _norm are routed_scaling_factor / norm_topk_prob; leading_dense_block_count is
//    first_k_dense_replace; tied embeddings are a file without output.weight.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/core/warning.hpp"
#include "moe/io/gguf_arch_tables.hpp"
#include "moe/layers/rope.hpp"
#include "moe/model/architectures/all.hpp"
#include "moe/model/config.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <array>
#include <span>
#include <tuple>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::io::gguf_arch {

// ---- tensors ----------------------------------------------------------------------------------

enum class TensorKind : std::uint8_t {
  kPlain,        // same values, same shape
  kPermuteRows,  // rows [rope_offset, rope_offset + rope_dims) of each of `heads` blocks permuted from
                 // rotate_half order to adjacent pairs (llama attn_q / attn_k: whole heads; MLA with
                 // rope_interleave false: the rope rows of q and kv_a)
  kExpert,       // expert `expert` of a stacked [E, rows, cols] GGUF bank
  kKvB,          // MLA kv_b_proj: GGUF attn_kv_b, or attn_k_b + attn_v_b (see the file comment)
  kGluPair,      // GPT-OSS gate_up_proj [E, D, 2F] / its bias [E, 2F]: even columns are `gguf`
                 // (Llama 4, `halves`: the first F columns)
                 // ([E, F, D] / [E, F]), odd ones `gguf_up`
  kTransposedBank,  // GPT-OSS down_proj [E, F, D]: GGUF [E, D, F]
  kTransformed,     // Qwen3-Next / Qwen3.5: the HF tensor as a matrix [hf_shape[0], rest] whose rows (row_order)
                    // and columns (col_order) are reordered and values mapped (value), split into `parts`
};

// kTransformed's value map, GGUF = f(HF): llama.cpp's converter stores A_log as ssm_a = -exp(A_log)
// and zero-centred RMSNorm weights as 1 + w.
enum class ValueMap : std::uint8_t { kNone, kNegExp, kPlusOne };

// One GGUF tensor of a kTransformed mapping: `rows` consecutive rows of the reordered matrix.
struct GgufPart {
  std::string name;
  index_t rows = 0;
};

struct TensorMapping {
  std::string hf;    // what bind_weights asks for
  std::string gguf;  // the GGUF tensor (kKvB: attn_kv_b.weight; kGluPair: the gate half)
  std::string gguf_up;  // kGluPair: the up half
  TensorKind kind = TensorKind::kPlain;
  index_t expert = 0;     // kExpert
  index_t n_experts = 0;  // kExpert
  index_t heads = 0;        // kPermuteRows: blocks of rows (hf_shape[0] / heads rows each)
  index_t rope_offset = 0;  // kPermuteRows: first permuted row of a block
  index_t rope_dims = 0;    // kPermuteRows: permuted rows of a block (0: the whole block)
  bool squeeze = false;     // a [1, n] HF tensor stored as a GGUF vector [n] (ERNIE's moe_statics)
  bool halves = false;      // kGluPair: gate in columns [0, F), up in [F, 2F) (Llama 4), not even / odd
  std::vector<index_t> hf_shape;  // outermost first
  // kTransformed: GGUF row i (of the parts one after the other) is HF row row_order[i], GGUF column j
  // HF column col_order[j] (empty: in place); the values are `value` of the HF ones.
  std::vector<GgufPart> parts;
  std::vector<index_t> row_order, col_order;
  ValueMap value = ValueMap::kNone;
};

// kTransformed: the HF tensor's rows and columns as a matrix ([n] is n rows of 1).
inline index_t transformed_rows(const TensorMapping& m) { return m.hf_shape[0]; }
inline index_t transformed_cols(const TensorMapping& m) {
  index_t cols = 1;
  for (std::size_t d = 1; d < m.hf_shape.size(); ++d) cols *= m.hf_shape[d];
  return cols;
}
// The GGUF shape (outermost first) of part p of a kTransformed mapping: [rows] for an HF vector,
// else [rows, cols] (the conv weight [C, 1, K] is stored squeezed, [C, K], as the converter does).
inline std::vector<index_t> part_shape(const TensorMapping& m, std::size_t p) {
  if (m.hf_shape.size() == 1) return {m.parts[p].rows};
  return {m.parts[p].rows, transformed_cols(m)};
}

// llama.cpp's Qwen3.5 converter (_LinearAttentionVReorderBase) reorders the DeltaNet value heads
// from grouped by key head (head g·r + j, r = value heads per key head) to tiled (position
// j·n_k + g), for ggml's broadcast; Qwen3-Next's converter does not. tiled_heads()[p] is the HF
// head at GGUF position p (identity when n_k == n_v).
inline std::vector<index_t> tiled_heads(index_t nk, index_t nv) {
  const index_t r = nv / nk;
  std::vector<index_t> order(static_cast<std::size_t>(nv));
  for (index_t j = 0; j < r; ++j)
    for (index_t g = 0; g < nk; ++g) order[j * nk + g] = g * r + j;
  return order;
}
// Rows (or columns) [offset, offset + heads.size()·width) in the order of `heads`, `width` each.
inline void append_heads(std::vector<index_t>& out, index_t offset, const std::vector<index_t>& heads, index_t width) {
  for (const index_t h : heads)
    for (index_t k = 0; k < width; ++k) out.push_back(offset + h * width + k);
}
inline void append_range(std::vector<index_t>& out, index_t first, index_t count) {
  for (index_t k = 0; k < count; ++k) out.push_back(first + k);
}

// Every tensor model::bind_weights binds for `c`, with its GGUF name: the one list both the
// reader (GGUF -> HF names) and the writer (HF -> GGUF names) use. Experts are listed one entry
// per expert (kind kExpert, all pointing at the stacked bank).
inline std::vector<TensorMapping> tensor_mappings(const ModelConfig& c, const ArchTable& a) {
  std::vector<TensorMapping> out;
  const auto add = [&](std::string hf, std::string gguf, std::vector<index_t> shape,
                       TensorKind kind = TensorKind::kPlain, index_t heads = 0) {
    TensorMapping m;
    m.hf = std::move(hf), m.gguf = std::move(gguf), m.kind = kind, m.heads = heads, m.hf_shape = std::move(shape);
    out.push_back(std::move(m));
  };
  const index_t D = c.d_model, V = c.vocab_size, H = c.n_heads;
  // kTransformed with one part, values mapped, and optionally rows / columns reordered.
  const auto transformed = [&](std::string hf, std::vector<GgufPart> parts, std::vector<index_t> shape,
                               ValueMap value = ValueMap::kNone, std::vector<index_t> rows = {},
                               std::vector<index_t> cols = {}) {
    TensorMapping m;
    m.hf = std::move(hf), m.gguf = parts[0].name, m.kind = TensorKind::kTransformed, m.hf_shape = std::move(shape);
    m.parts = std::move(parts), m.row_order = std::move(rows), m.col_order = std::move(cols), m.value = value;
    out.push_back(std::move(m));
  };
  // Zero-centred RMSNorm weights (Qwen3-Next / Qwen3.5) are stored as 1 + w (the converter adds 1
  // to every "norm.weight" but the DeltaNet's gated linear_attn.norm).
  const auto norm = [&](std::string hf, std::string gguf, index_t n) {
    if (!c.spec->zero_centered_norms) return add(std::move(hf), std::move(gguf), {n});
    transformed(std::move(hf), {{std::move(gguf), n}}, {n}, ValueMap::kPlusOne);
  };
  add("model.embed_tokens.weight", "token_embd.weight", {V, D});
  norm("model.norm.weight", "output_norm.weight", D);
  if (!c.tie_word_embeddings) {
    add("lm_head.weight", "output.weight", {V, D});
  } else if (c.spec->family == model::Family::kMiniMaxM2) {
    // llama.cpp's minimax-m2 requires output.weight (no tied fallback): the embedding is written
    // again under that name, and the file reads back untied with the same values.
    add("model.embed_tokens.weight", "output.weight", {V, D});
  }
  for (index_t i = 0; i < c.n_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i), b = fmt::format("blk.{}.", i);
    norm(p + "input_layernorm.weight", b + "attn_norm.weight", D);
    norm(p + "post_attention_layernorm.weight", b + std::string(a.ffn_norm) + ".weight", D);
    const std::string s = p + "self_attn.";
    if (c.linear_attention[i]) {
      // Gated DeltaNet as llama.cpp's qwen3next / qwen35moe (convert_hf_to_gguf.py Qwen3NextModel and
      // the Qwen3.5 classes): attn_qkv [q | k | v] and attn_gate (z), ssm_ba / ssm_beta + ssm_alpha,
      // ssm_conv1d [C, K], ssm_a = -exp(A_log), ssm_dt.bias (dt_bias), ssm_norm, ssm_out.
      const kernels::DeltaNetShape& d = c.delta_net;
      const index_t nk = d.n_k_heads, nv = d.n_v_heads, dk = d.k_head_dim, dv = d.v_head_dim, r = nv / nk;
      const index_t Kd = nk * dk, Vd = nv * dv, C = 2 * Kd + Vd, K = d.conv_kernel;
      const std::string x = p + "linear_attn.";
      const auto parts1 = [&](const char* gguf, index_t rows) { return std::vector<GgufPart>{{b + gguf, rows}}; };
      if (c.spec->delta_net == model::DeltaNetLayout::kGroupedQkvz) {
        // in_proj_qkvz: per key head g, [q (dk) | k (dk) | v (r·dv) | z (r·dv)]; regrouped into
        // [all q | all k | all v] (attn_qkv) and all z (attn_gate), as the converter does.
        const index_t group = 2 * dk + 2 * r * dv;
        std::vector<index_t> rows;
        for (index_t g = 0; g < nk; ++g) append_range(rows, g * group, dk);
        for (index_t g = 0; g < nk; ++g) append_range(rows, g * group + dk, dk);
        for (index_t g = 0; g < nk; ++g) append_range(rows, g * group + 2 * dk, r * dv);
        for (index_t g = 0; g < nk; ++g) append_range(rows, g * group + 2 * dk + r * dv, r * dv);
        transformed(x + "in_proj_qkvz.weight", {{b + "attn_qkv.weight", C}, {b + "attn_gate.weight", Vd}},
                    {nk * group, D}, ValueMap::kNone, std::move(rows));
        add(x + "in_proj_ba.weight", b + "ssm_ba.weight", {2 * nv, D});
        transformed(x + "conv1d.weight", parts1("ssm_conv1d.weight", C), {C, 1, K});
        transformed(x + "A_log", parts1("ssm_a", nv), {nv}, ValueMap::kNegExp);
        add(x + "dt_bias", b + "ssm_dt.bias", {nv});
        add(x + "out_proj.weight", b + "ssm_out.weight", {D, Vd});
      } else {
        // Separate projections; value heads tiled when there are fewer key heads (tiled_heads).
        const std::vector<index_t> heads = tiled_heads(nk, nv);
        const bool tiled = nk != nv;
        const auto heads_of = [&](index_t offset, index_t width, index_t first) {
          std::vector<index_t> v;
          if (!tiled) return v;
          append_range(v, 0, first);
          append_heads(v, offset, heads, width);
          return v;
        };
        transformed(x + "in_proj_qkv.weight", parts1("attn_qkv.weight", C), {C, D}, ValueMap::kNone,
                    heads_of(2 * Kd, dv, 2 * Kd));
        transformed(x + "in_proj_z.weight", parts1("attn_gate.weight", Vd), {Vd, D}, ValueMap::kNone, heads_of(0, dv, 0));
        transformed(x + "in_proj_b.weight", parts1("ssm_beta.weight", nv), {nv, D}, ValueMap::kNone, heads_of(0, 1, 0));
        transformed(x + "in_proj_a.weight", parts1("ssm_alpha.weight", nv), {nv, D}, ValueMap::kNone, heads_of(0, 1, 0));
        transformed(x + "conv1d.weight", parts1("ssm_conv1d.weight", C), {C, 1, K}, ValueMap::kNone,
                    heads_of(2 * Kd, dv, 2 * Kd));
        transformed(x + "A_log", parts1("ssm_a", nv), {nv}, ValueMap::kNegExp, heads_of(0, 1, 0));
        transformed(x + "dt_bias", parts1("ssm_dt.bias", nv), {nv}, ValueMap::kNone, heads_of(0, 1, 0));
        transformed(x + "out_proj.weight", parts1("ssm_out.weight", D), {D, Vd}, ValueMap::kNone, {},
                    heads_of(0, dv, 0));
      }
      add(x + "norm.weight", b + "ssm_norm.weight", {dv});  // plain weights (no +1)
    } else if (c.mla) {
      const index_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim, R = c.kv_lora_rank;
      // llama.cpp's deepseek2 runs rope on adjacent pairs (what rope_interleave = true checkpoints
      // hold); a half-split checkpoint (rope_interleave false) has its rope rows of q and kv_a
      // permuted on write so that llama.cpp's rope on the file equals transformers' rotate_half
      // (the converter copies them unchanged, which llama.cpp then runs wrongly). Read back, the
      // file is an interleaved one: same scores, since q and k rows move alike.
      const bool permute = c.rope_pairing == kernels::RopePairing::half_split;
      const auto rope_rows = [&](index_t heads, index_t offset) {
        if (!permute) return;
        TensorMapping& m = out.back();
        m.kind = TensorKind::kPermuteRows, m.heads = heads, m.rope_offset = offset, m.rope_dims = c.qk_rope_head_dim;
      };
      if (c.q_lora_rank == 0) {
        add(s + "q_proj.weight", b + "attn_q.weight", {H * qk, D});
        rope_rows(H, c.qk_nope_head_dim);
      } else {
        add(s + "q_a_proj.weight", b + "attn_q_a.weight", {c.q_lora_rank, D});
        if (c.qkv_bias) add(s + "q_a_proj.bias", b + "attn_q_a.bias", {c.q_lora_rank});
        add(s + "q_a_layernorm.weight", b + "attn_q_a_norm.weight", {c.q_lora_rank});
        add(s + "q_b_proj.weight", b + "attn_q_b.weight", {H * qk, c.q_lora_rank});
        rope_rows(H, c.qk_nope_head_dim);
      }
      add(s + "kv_a_proj_with_mqa.weight", b + "attn_kv_a_mqa.weight", {R + c.qk_rope_head_dim, D});
      rope_rows(1, R);
      if (c.qkv_bias) {
        add(s + "kv_a_proj_with_mqa.bias", b + "attn_kv_a_mqa.bias", {R + c.qk_rope_head_dim});
        rope_rows(1, R);
      }
      add(s + "kv_a_layernorm.weight", b + "attn_kv_a_norm.weight", {R});
      add(s + "kv_b_proj.weight", b + "attn_kv_b.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), R},
          TensorKind::kKvB);
      add(s + "o_proj.weight", b + "attn_output.weight", {D, H * c.v_head_dim});
      if (c.o_bias) add(s + "o_proj.bias", b + "attn_output.bias", {D});
      if (c.dsa.top_k > 0 && !c.indexer_shared[i]) {
        // The lightning indexer (gguf-py's INDEXER_* tensors), unpermuted: llama.cpp's indexer rope
        // pairing is the checkpoint's (llama_index_rope_pairing, checked by write_metadata). A
        // GLM-5 "shared" layer has none, as in the checkpoint (llama.cpp loads them as optional).
        const index_t IH = c.dsa.n_heads, ID = c.dsa.head_dim;
        const std::string x = s + "indexer.", g = b + "indexer.";
        add(x + "wq_b.weight", g + "attn_q_b.weight", {IH * ID, c.q_lora_rank});
        add(x + "wk.weight", g + "attn_k.weight", {ID, D});
        add(x + "k_norm.weight", g + "k_norm.weight", {ID});
        add(x + "k_norm.bias", g + "k_norm.bias", {ID});
        add(x + "weights_proj.weight", g + "proj.weight", {IH, D});
      }
    } else {
      const index_t hd = c.head_dim, KV = c.n_kv_heads;
      const TensorKind qk_kind = a.permute_qk ? TensorKind::kPermuteRows : TensorKind::kPlain;
      // Gated attention (Qwen3-Next / Qwen3.5): q_proj holds per head its query then its gate rows,
      // stored as one attn_q of twice the width (llama.cpp splits it per head the same way).
      add(s + "q_proj.weight", b + "attn_q.weight", {(c.attention_output_gate ? 2 : 1) * H * hd, D}, qk_kind, H);
      add(s + "k_proj.weight", b + "attn_k.weight", {KV * hd, D}, qk_kind, KV);
      add(s + "v_proj.weight", b + "attn_v.weight", {KV * hd, D});
      add(s + "o_proj.weight", b + "attn_output.weight", {D, H * hd});
      if (c.qkv_bias) {
        add(s + "q_proj.bias", b + "attn_q.bias", {H * hd}, qk_kind, H);
        add(s + "k_proj.bias", b + "attn_k.bias", {KV * hd}, qk_kind, KV);
        add(s + "v_proj.bias", b + "attn_v.bias", {KV * hd});
      }
      if (c.o_bias) add(s + "o_proj.bias", b + "attn_output.bias", {D});
      if (c.attention_sinks) add(s + "sinks", b + "attn_sinks.weight", {H});
      const std::string qn = s + std::string(c.spec->q_norm_name), kn = s + std::string(c.spec->k_norm_name);
      if (c.qk_norm == model::QkNorm::kPerHead || c.qk_norm == model::QkNorm::kPerHeadAfterRope) {
        // Hunyuan's norms after rope are llama.cpp's hunyuan-moe attn_q_norm / attn_k_norm (its
        // graph applies them after rope too).
        norm(qn + ".weight", b + "attn_q_norm.weight", hd);
        norm(kn + ".weight", b + "attn_k_norm.weight", hd);
      } else if (c.qk_norm == model::QkNorm::kWholeProjection) {
        add(qn + ".weight", b + "attn_q_norm.weight", {H * hd});
        add(kn + ".weight", b + "attn_k_norm.weight", {KV * hd});
      }
    }
    const auto mlp = [&](const std::string& hp, const std::string& suffix, index_t f) {
      add(hp + ".gate_proj.weight", b + "ffn_gate" + suffix + ".weight", {f, D});
      add(hp + ".up_proj.weight", b + "ffn_up" + suffix + ".weight", {f, D});
      add(hp + ".down_proj.weight", b + "ffn_down" + suffix + ".weight", {D, f});
      if (c.mlp_bias) {
        add(hp + ".gate_proj.bias", b + "ffn_gate" + suffix + ".bias", {f});
        add(hp + ".up_proj.bias", b + "ffn_up" + suffix + ".bias", {f});
        add(hp + ".down_proj.bias", b + "ffn_down" + suffix + ".bias", {D});
      }
    };
    if (!c.moe_layer[i]) {
      mlp(p + std::string(c.spec->dense_mlp_prefix), "", c.d_ff);
      continue;
    }
    // The family's spelling of the MoE block, router and correction bias (Granite: block_sparse_moe
    // and router.layer, Hunyuan: gate.wg, MiniMax: the bias beside the gate, ERNIE: moe_statics).
    const std::string m = p + std::string(c.spec->moe_prefix) + ".", router = m + std::string(c.spec->router_name);
    add(router + ".weight", b + "ffn_gate_inp.weight", {c.n_experts, D});
    if (c.spec->router_bias) add(router + ".bias", b + "ffn_gate_inp.bias", {c.n_experts});
    if (c.router.has_correction_bias) {
      const std::string bias = m + std::string(c.spec->correction_bias_name);
      if (c.spec->family == model::Family::kErnie45Moe) {
        add(bias, b + "exp_probs_b.bias", {1, c.n_experts});  // [1, E] in the checkpoint
        out.back().squeeze = true;
      } else {
        add(bias, b + "exp_probs_b.bias", {c.n_experts});
      }
    }
    const index_t F = c.d_ff_expert, E = c.n_experts;
    if (c.spec->input_major_experts) {
      // Llama 4's input-major banks: gate_up_proj [E, D, 2F] (gate columns, then up) and down_proj
      // [E, F, D], transposed to llama.cpp's output-major ffn_*_exps as the converter does.
      const std::string x = m + "experts.";
      add(x + "gate_up_proj", b + "ffn_gate_exps.weight", {E, D, 2 * F}, TensorKind::kGluPair);
      out.back().gguf_up = b + "ffn_up_exps.weight";
      out.back().halves = true;
      add(x + "down_proj", b + "ffn_down_exps.weight", {E, F, D}, TensorKind::kTransposedBank);
    } else if (c.spec->activation == model::ExpertActivation::kClampedSwiglu) {
      const std::string x = m + "experts.";
      add(x + "gate_up_proj", b + "ffn_gate_exps.weight", {E, D, 2 * F}, TensorKind::kGluPair);
      out.back().gguf_up = b + "ffn_up_exps.weight";
      add(x + "gate_up_proj_bias", b + "ffn_gate_exps.bias", {E, 2 * F}, TensorKind::kGluPair);
      out.back().gguf_up = b + "ffn_up_exps.bias";
      add(x + "down_proj", b + "ffn_down_exps.weight", {E, F, D}, TensorKind::kTransposedBank);
      add(x + "down_proj_bias", b + "ffn_down_exps.bias", {E, D});
    } else {
      for (index_t e = 0; e < E; ++e) {
        const std::string x = fmt::format("{}experts.{}.", m, e);
        for (const auto& [hf, gg, rows, cols] : {std::tuple{"gate_proj", "ffn_gate_exps", F, D},
                                                 std::tuple{"up_proj", "ffn_up_exps", F, D},
                                                 std::tuple{"down_proj", "ffn_down_exps", D, F}}) {
          TensorMapping t;
          t.hf = x + hf + ".weight", t.gguf = b + gg + ".weight", t.kind = TensorKind::kExpert;
          t.expert = e, t.n_experts = E, t.hf_shape = {rows, cols};
          out.push_back(std::move(t));
        }
      }
    }
    if (c.d_ff_shared > 0) {
      mlp(m + std::string(a.shared_expert), "_shexp", c.d_ff_shared);
      if (c.spec->shared_expert == model::SharedExpert::kSigmoidGated) {
        add(m + "shared_expert_gate.weight", b + "ffn_gate_inp_shexp.weight", {1, D});
      }
    }
  }
  return out;
}

// The GGUF shape (outermost first) of the tensor `m` belongs to (the stacked bank for experts,
// kv_b as attn_kv_b).
inline std::vector<index_t> gguf_shape(const TensorMapping& m) {
  const auto& h = m.hf_shape;
  switch (m.kind) {
    case TensorKind::kExpert: return {m.n_experts, h[0], h[1]};
    case TensorKind::kGluPair: return h.size() == 3 ? std::vector<index_t>{h[0], h[2] / 2, h[1]} : std::vector<index_t>{h[0], h[1] / 2};
    case TensorKind::kTransposedBank: return {h[0], h[2], h[1]};
    case TensorKind::kTransformed: return part_shape(m, 0);
    default: return m.squeeze && h.size() == 2 && h[0] == 1 ? std::vector<index_t>{h[1]} : h;
  }
}

// ---- metadata ----------------------------------------------------------------------------------

// config.json as the reader hands it to ModelConfig::from_json, in the spelling the mapping
// uses: every value the GGUF writer reads, made explicit from a parsed config (defaults
// included). Keys the family does not read are harmless there.
inline nlohmann::json normalized_hf_config(const ModelConfig& c) {
  const auto& s = *c.spec;
  nlohmann::json j;
  j["architectures"] = nlohmann::json::array({c.architecture});
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j[std::string(s.dense_d_ff_key)] = c.d_ff;
  j["num_experts_per_tok"] = c.top_k;
  j[std::string(s.n_experts_key)] = c.n_experts;
  j[std::string(s.expert_d_ff_key)] = c.d_ff_expert;
  if (!c.mla) j["head_dim"] = c.head_dim;
  if (c.mla) {
    if (c.q_lora_rank > 0) j["q_lora_rank"] = c.q_lora_rank;
    j["kv_lora_rank"] = c.kv_lora_rank;
    j["qk_nope_head_dim"] = c.qk_nope_head_dim;
    j["qk_rope_head_dim"] = c.qk_rope_head_dim;
    j["v_head_dim"] = c.v_head_dim;
  }
  if (c.dsa.top_k > 0) {
    j["index_n_heads"] = c.dsa.n_heads;
    j["index_head_dim"] = c.dsa.head_dim;
    j["index_topk"] = c.dsa.top_k;
  }
  if (c.clip_qkv > 0) j["clip_qkv"] = c.clip_qkv;
  if (c.delta_net.n_v_heads > 0) {
    j["linear_conv_kernel_dim"] = c.delta_net.conv_kernel;
    j["linear_key_head_dim"] = c.delta_net.k_head_dim;
    j["linear_num_key_heads"] = c.delta_net.n_k_heads;
    j["linear_num_value_heads"] = c.delta_net.n_v_heads;
  }
  // Qwen3.5-MoE configs have no dense MLP width (every layer MoE): the converter writes no
  // feed_forward_length for them.
  if (s.family == model::Family::kQwen35Moe) j.erase(std::string(s.dense_d_ff_key));
  if (s.shared_expert == model::SharedExpert::kSigmoidGated && c.d_ff_shared > 0) {
    j["shared_expert_intermediate_size"] = c.d_ff_shared;
  }
  if (s.shared_expert == model::SharedExpert::kPlain) j["n_shared_experts"] = c.d_ff_shared / c.d_ff_expert;
  if (s.dense_layers == model::DenseLayers::kFirstK || s.dense_layers == model::DenseLayers::kMlpLayerTypes) {
    // kMlpLayerTypes (GLM-4.7-Flash): the leading dense block; write_metadata warns about dense
    // layers after it.
    index_t k = 0;
    while (k < c.n_layers && !c.moe_layer[k]) ++k;
    j["first_k_dense_replace"] = k;
  }
  j["norm_topk_prob"] = c.router.norm_topk_prob;
  j["routed_scaling_factor"] = c.router.routed_scaling_factor;
  if (s.grouped_routing) {
    // Written even when 1 (no grouping), so that a reader can tell "no groups" from "not stored".
    j["n_group"] = std::max<index_t>(c.router.n_group, 1);
    j["topk_group"] = std::max<index_t>(c.router.topk_group, 1);
  }
  const auto window = std::find_if(c.sliding_window.begin(), c.sliding_window.end(), [](index_t w) { return w > 0; });
  if (window != c.sliding_window.end()) j["sliding_window"] = *window;
  if (s.mup_multipliers) {
    j["attention_multiplier"] = c.attention_scale;
    j["embedding_multiplier"] = c.embedding_multiplier;
    j["residual_multiplier"] = c.residual_multiplier;
    j["logits_scaling"] = 1.0 / static_cast<double>(c.logits_multiplier);
  }
  if (s.family == model::Family::kErnie45Moe) j["moe_num_shared_experts"] = c.d_ff_shared / c.d_ff_expert;
  return j;
}

// ERNIE-4.5's MoE layers as llama.cpp's rule (MoE iff i >= lead and (i + 1) % step == 0): the
// pair that gives `moe` exactly, else the one that gives it up to its last MoE layer (the
// checkpoint's moe_layer_end_index stops earlier: llama.cpp would expect experts after it;
// `truncated` says so), else nullopt.
struct MoeLayerRule {
  index_t lead = 0, step = 1;
  bool truncated = false;
};
inline std::optional<MoeLayerRule> moe_layer_rule(const std::vector<bool>& moe) {
  const auto n = static_cast<index_t>(moe.size());
  index_t first = 0;
  while (first < n && !moe[first]) ++first;
  if (first == n) return std::nullopt;
  index_t last = n - 1;
  while (!moe[last]) --last;
  std::optional<MoeLayerRule> prefix;
  for (index_t step = n; step >= 1; --step) {  // a truncated fit: the widest step (fewest extra layers)
    bool exact = true, upto_last = true;
    for (index_t i = 0; i < n; ++i) {
      const bool rule = i >= first && (i + 1) % step == 0;
      if (rule != moe[i]) {
        exact = false;
        if (i <= last) upto_last = false;
      }
    }
    if (exact) return MoeLayerRule{first, step, false};
    if (upto_last && !prefix) prefix = MoeLayerRule{first, step, true};
  }
  return prefix;
}

// The rope_freqs.weight tensor (F32 [rotary_dim / 2]) a GGUF of `c` holds, empty for none: the
// frequency factors of llama3 rope as convert_hf_to_gguf.py's LlamaModel computes them (1 where
// the wavelength is below original_context / high_freq_factor, `factor` above
// original_context / low_freq_factor, 1 / ((1 - smooth) / factor + smooth) between, smooth =
// (original_context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)), or
// the factors a config read from a GGUF already carries. Readers divide the default inverse
// frequencies by them, which gives transformers' llama3 table to within rounding.
inline std::vector<float> rope_freqs_of(const ModelConfig& c) {
  const layers::RopeConfig& r = c.rope;
  if (!r.freq_factors.empty()) return r.freq_factors;
  if (r.type != layers::RopeType::kLlama3) return {};
  layers::RopeConfig plain = r;
  plain.type = layers::RopeType::kDefault;
  const std::vector<float> inv_freq = layers::compute_rope_frequencies(plain).inv_freq;
  const double old_ctx = r.original_max_position_embeddings;
  const double low_wavelen = old_ctx / r.low_freq_factor, high_wavelen = old_ctx / r.high_freq_factor;
  const auto factor = static_cast<float>(r.factor);
  std::vector<float> out(inv_freq.size());
  for (std::size_t i = 0; i < inv_freq.size(); ++i) {
    const float wavelen = static_cast<float>(2.0 * std::numbers::pi) / inv_freq[i];
    if (wavelen < high_wavelen) {
      out[i] = 1.0f;
    } else if (wavelen > low_wavelen) {
      out[i] = factor;
    } else {
      const auto smooth = static_cast<float>((old_ctx / wavelen - r.low_freq_factor) /
                                             (r.high_freq_factor - r.low_freq_factor));
      out[i] = 1.0f / ((1.0f - smooth) / factor + smooth);
    }
  }
  return out;
}

// llama4's keys beyond the table, after checking that llama.cpp's llama4 graph runs `c` as written:
// its MoE layers are every interleave_moe_layer_step-th, its chunked layers all but every
// sliding_window_pattern-th (chunk 8192), its NoPE layers every 4th (with the temperature tuning
// at 0.1 / 8192), q/k normalised unless there are 128 experts (Maverick). Anything else is
// kUnsupported naming the config's value: such a file would run differently in llama.cpp.
template <class Writer, class Key>
void write_llama4(Writer& w, const ModelConfig& c, const Key& key) {
  const index_t n = c.n_layers;
  const auto unsupported = [&](std::string_view what) {
    fail(ErrorCode::kUnsupported, "{}: {} has no llama4 GGUF form: {}", c.source, c.architecture, what);
  };
  index_t step = 0;
  for (index_t s = 1; s <= n && step == 0; ++s) {
    bool same = true;
    for (index_t i = 0; i < n; ++i) same = same && c.moe_layer[i] == ((i + 1) % s == 0);
    if (same) step = s;
  }
  if (step == 0) unsupported("its MoE layers (moe_layers) are not every interleave_moe_layer_step-th layer");
  bool any_chunked = false, any_nope = false;
  for (index_t i = 0; i < n; ++i) {
    const index_t chunk = c.attention_chunk_of(i);
    if (chunk != 0 && chunk != kLlama4Chunk) {
      unsupported(fmt::format("attention_chunk_size {} (llama.cpp's llama4 graph chunks by {})", chunk, kLlama4Chunk));
    }
    any_chunked = any_chunked || chunk != 0;
    any_nope = any_nope || c.is_nope_layer(i);
  }
  if (!any_chunked) {
    // attention.sliding_window = 0: llama.cpp's full-attention llama4 (rope on every layer).
    if (any_nope) unsupported("NoPE layers without chunked attention");
    w.put_u32(key("attention.sliding_window"), 0);
  } else {
    index_t period = 0;
    for (index_t p = 2; p <= n + 1 && period == 0; ++p) {
      bool same = true;
      for (index_t i = 0; i < n; ++i) same = same && (c.attention_chunk_of(i) != 0) == (i % p < p - 1);
      if (same) period = p;
    }
    if (period == 0) unsupported("its chunked layers are not all but every n-th layer");
    for (index_t i = 0; i < n; ++i) {
      if (c.is_nope_layer(i) != ((i + 1) % kLlama4NoRopeStep == 0)) {
        unsupported(fmt::format("layer {} is {}: llama.cpp's llama4 graph has NoPE on every {}th layer", i,
                                c.is_nope_layer(i) ? "a NoPE layer" : "a rope layer", kLlama4NoRopeStep));
      }
    }
    if (any_nope && (c.attn_temperature_scale != kLlama4TempScale || c.attn_temperature_floor != kLlama4TempFloor)) {
      unsupported(fmt::format("attention temperature tuning attn_scale {} / floor_scale {} (llama.cpp: {} / {})",
                              c.attn_temperature_scale, c.attn_temperature_floor, kLlama4TempScale, kLlama4TempFloor));
    }
    if (period != 4) w.put_u32(key("attention.sliding_window_pattern"), static_cast<std::uint32_t>(period));
  }
  const bool kq_norm = c.qk_norm != model::QkNorm::kNone;
  if (kq_norm != (c.n_experts != 128)) {
    unsupported(fmt::format("use_qk_norm = {} with {} experts (llama.cpp normalises q/k unless there are 128)",
                            kq_norm, c.n_experts));
  }
  w.put_u32(key("interleave_moe_layer_step"), static_cast<std::uint32_t>(step));
  w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
}

// The DSA families' keys beyond the table (deepseek32, glm-dsa), after checking that llama.cpp's
// graph ropes the indexer as `c` does (the indexer tensors are written unpermuted).
template <class Writer, class Key>
void write_dsa(Writer& w, const ModelConfig& c, const Key& key) {
  const auto pairs = [](kernels::RopePairing p) {
    return p == kernels::RopePairing::interleaved ? "adjacent pairs" : "rotate_half pairs";
  };
  if (c.index_rope_pairing != llama_index_rope_pairing(c.spec->family)) {
    fail(ErrorCode::kUnsupported, "{}: {} has no GGUF form: its lightning indexer ropes {}, llama.cpp's graph {}",
         c.source, c.architecture, pairs(c.index_rope_pairing), pairs(llama_index_rope_pairing(c.spec->family)));
  }
  if (c.spec->family == model::Family::kGlmMoeDsa) {
    // Per layer, true when it runs its own indexer ("full"), false when it reuses the previous full
    // layer's selection ("shared"): the converter's add_indexer_types of indexer_types. Written
    // also when every layer is full, where the converter writes it only if the config lists
    // indexer_types: without it llama.cpp takes GLM-5.2's pattern for contexts of 1M and more.
    std::vector<bool> full(c.n_layers);
    for (index_t i = 0; i < c.n_layers; ++i) full[i] = !c.indexer_shared[i];
    w.put_bools(key("attention.indexer.types"), full);
  }
}

// qwen3next / qwen35moe keys beyond the table (convert_hf_to_gguf.py Qwen3NextModel, which the
// Qwen3.5 classes extend): ssm.inner_size (value head dim x value heads), full_attention_interval
// (llama.cpp: layer i is linear iff (i + 1) % interval != 0; a layer mix of another form is
// kUnsupported, naming the layer), rope.dimension_count (the rotated width), and for qwen35moe
// rope.dimension_sections (mrope_section padded to 4 with 0, the converter's default [11, 11, 10, 0]
// without one; text runs plain rope whatever it says).
template <class Writer, class Key>
void write_linear_attention(Writer& w, const ModelConfig& c, const Key& key) {
  const index_t n = c.n_layers;
  index_t interval = 0;
  for (index_t k = 1; k <= n + 1 && interval == 0; ++k) {
    bool same = true;
    for (index_t i = 0; i < n; ++i) same = same && c.linear_attention[i] == ((i + 1) % k != 0);
    if (same) interval = k;
  }
  if (interval == 0) {
    index_t first = 0;
    while (first < n && c.linear_attention[first]) ++first;
    fail(ErrorCode::kUnsupported, "{}: {} has no GGUF form: its linear / full attention layers (layer_types) are not "
         "llama.cpp's every full_attention_interval-th layer full (layer {} is the first full one)", c.source,
         c.architecture, first);
  }
  const kernels::DeltaNetShape& d = c.delta_net;
  w.put_u32(key("ssm.inner_size"), static_cast<std::uint32_t>(d.v_head_dim * d.n_v_heads));
  w.put_u32(key("full_attention_interval"), static_cast<std::uint32_t>(interval));
  w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
  if (c.spec->family == model::Family::kQwen35Moe) {
    std::vector<std::int32_t> sections{11, 11, 10, 0};
    if (!c.mrope_section.empty()) {
      sections.assign(c.mrope_section.begin(), c.mrope_section.end());
      if (sections.size() > 4) {
        fail(ErrorCode::kUnsupported, "{}: mrope_section has {} entries (GGUF's rope.dimension_sections holds 4)",
             c.source, sections.size());
      }
      sections.resize(4, 0);
    }
    w.put_i32s(key("rope.dimension_sections"), sections);
  }
}

// Writes the architecture's metadata for `c` (all keys below "{arch}.", plus
// general.architecture). `put_u32/put_f32/put_bool/put_str(key, value)` store one key,
// `put_bools(key, std::vector<bool>)` an array of bools, `put_i32s(key, std::vector<std::int32_t>)` of i32.
template <class Writer>
void write_metadata(Writer& w, const ModelConfig& c) {
  const ArchTable* a = table_for_family(c.spec->family);
  if (a == nullptr) {
    fail(ErrorCode::kUnsupported, "{}: {} has no GGUF mapping: {}", c.source, c.architecture,
         unmapped_reason(c.spec->family));
  }
  if (c.spec->family == model::Family::kErnie45Moe && (c.qkv_bias || c.o_bias || c.mlp_bias || c.lm_head_bias)) {
    // llama.cpp's ernie4_5-moe graph adds optional q/k/v biases only: no attn_output, MLP, shared
    // expert or output biases, so such a file would not load there (and moecpp would drop them).
    fail(ErrorCode::kUnsupported, "{}: {} with use_bias = true has no GGUF form: llama.cpp's ernie4_5-moe has no "
         "o_proj, MLP or lm_head biases", c.source, c.architecture);
  }
  if (c.spec->family == model::Family::kGlm4MoeLite && !c.mla) {
    fail(ErrorCode::kUnsupported, "{}: {} without MLA has no GGUF mapping", c.source, c.architecture);
  }
  const nlohmann::json j = normalized_hf_config(c);
  const std::string arch(a->gguf_arch);
  const auto key = [&](std::string_view k) { return fmt::format("{}.{}", arch, k); };
  w.put_str("general.architecture", arch);
  const auto one = [&](const KeyMapping& k) {
    const auto it = j.find(std::string(k.hf));
    if (it == j.end()) return;
    switch (k.type) {
      case KeyType::kU32: w.put_u32(key(k.gguf), it->template get<std::uint32_t>()); break;
      case KeyType::kF32: w.put_f32(key(k.gguf), it->template get<float>()); break;
      case KeyType::kBool: w.put_bool(key(k.gguf), it->template get<bool>()); break;
    }
  };
  const auto overridden = [&](const KeyMapping& k) {
    return std::any_of(a->keys.begin(), a->keys.end(), [&](const KeyMapping& x) { return x.gguf == k.gguf; });
  };
  for (const auto& k : kCommonKeys) {
    if (!overridden(k)) one(k);  // llama4: feed_forward_length is the dense MLP's width
  }
  for (const auto& k : a->keys) one(k);
  if (c.mla) {
    // llama.cpp's MQA form of MLA (convert_hf_to_gguf.py DeepseekV2Model).
    w.put_u32(key("attention.head_count_kv"), 1);
    w.put_u32(key("attention.key_length"), static_cast<std::uint32_t>(c.kv_lora_rank + c.qk_rope_head_dim));
    w.put_u32(key("attention.value_length"), static_cast<std::uint32_t>(c.kv_lora_rank));
    w.put_u32(key("attention.key_length_mla"), static_cast<std::uint32_t>(c.qk_nope_head_dim + c.qk_rope_head_dim));
    w.put_u32(key("expert_gating_func"),
              c.router.scoring == layers::RouterScoring::kSigmoid ? kGatingSigmoid : kGatingSoftmax);
    if (c.dsa.top_k > 0) write_dsa(w, c, key);
  } else if (c.spec->family == model::Family::kGlm4Moe) {
    w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
    w.put_u32(key("expert_gating_func"), kGatingSigmoid);
  } else if (c.spec->family == model::Family::kGraniteMoe) {
    // LlamaModel writes the rotated width (the whole head); the muP keys come from the table.
    w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
  } else if (c.spec->family == model::Family::kErnie45Moe) {
    w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
    const auto rule = moe_layer_rule(c.moe_layer);
    if (!rule) {
      fail(ErrorCode::kUnsupported, "{}: {}: its MoE layers fit no leading_dense_block_count / "
           "interleave_moe_layer_step rule (llama.cpp's ernie4_5-moe)", c.source, c.architecture);
    }
    if (rule->truncated) {
      warn("{}: the MoE layers end before the last layer (moe_layer_end_index); llama.cpp's ernie4_5-moe expects "
           "experts wherever (i + 1) % {} == 0 from layer {} on and would refuse the file (moecpp reads the MoE "
           "layers back from its tensors)", c.source, rule->step, rule->lead);
    }
    w.put_u32(key("leading_dense_block_count"), static_cast<std::uint32_t>(rule->lead));
    w.put_u32(key("interleave_moe_layer_step"), static_cast<std::uint32_t>(rule->step));
    // The converter derives this width as intermediate_size / num_key_value_heads (what ERNIE-4.5's
    // configs give); llama.cpp reads it as the shared experts' width, which this is.
    if (c.d_ff_shared > 0) w.put_u32(key("expert_shared_feed_forward_length"), static_cast<std::uint32_t>(c.d_ff_shared));
  } else if (c.spec->family == model::Family::kHunYuanMoeV1) {
    // The NTK-alpha base (theta · alpha^(d / (d - 2))) is already in rope.theta: the converter
    // writes that scaled base as rope.freq_base with no rope scaling, as here.
    w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
    w.put_u32(key("expert_shared_count"), 1);
    w.put_u32(key("expert_shared_feed_forward_length"), static_cast<std::uint32_t>(c.d_ff_shared));
  } else if (c.spec->family == model::Family::kDots1) {
    w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
    w.put_u32(key("expert_gating_func"), kGatingSigmoid);
    if (c.router.n_group > 1) {
      warn("{}: expert groups (n_group {}, topk_group {}): llama.cpp's dots1 graph routes without groups (the keys "
           "are written; moecpp reads them back)", c.source, c.router.n_group, c.router.topk_group);
    }
    if (std::any_of(c.sliding_window.begin(), c.sliding_window.end(), [](index_t v) { return v > 0; })) {
      // No llama.cpp key says which layers slide for dots1; llama.cpp's own per-layer form
      // (attention.sliding_window_pattern, an array of bools, true = sliding) records it.
      std::vector<bool> pattern(c.sliding_window.size());
      for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = c.sliding_window[i] > 0;
      w.put_bools(key("attention.sliding_window_pattern"), pattern);
      warn("{}: sliding-window layers: llama.cpp's dots1 graph attends to the whole context on every layer (the "
           "window and its layers are written; moecpp reads them back)", c.source);
    }
  } else if (c.spec->family == model::Family::kMiniMaxM2) {
    w.put_u32(key("rope.dimension_count"), static_cast<std::uint32_t>(c.rope.rotary_dim));
    w.put_u32(key("expert_gating_func"), kGatingSigmoid);
  } else if (c.spec->family == model::Family::kLlama4) {
    write_llama4(w, c, key);
  } else if (c.spec->family == model::Family::kQwen3Next || c.spec->family == model::Family::kQwen35Moe) {
    write_linear_attention(w, c, key);
  } else if (c.spec->family == model::Family::kGptOss) {
    // What llama.cpp's gpt-oss graph fixes rather than reads (see the file comment).
    if (c.swiglu_alpha != 1.702f || c.swiglu_limit != 7.0f) {
      warn("{}: swiglu alpha {} / limit {}: llama.cpp's gpt-oss graph uses 1.702 / 7 (the file cannot say "
           "otherwise; moecpp reads it back with those)", c.source, c.swiglu_alpha, c.swiglu_limit);
    }
    for (index_t i = 0; i < c.n_layers; ++i) {
      if ((c.sliding_window[i] > 0) != (i % 2 == 0)) {
        warn("{}: layer {} is {}; llama.cpp's gpt-oss slides the window on even layers only (moecpp reads the "
             "file back that way)", c.source, i, c.sliding_window[i] > 0 ? "sliding" : "full attention");
        break;
      }
    }
    if (c.rope.type == layers::RopeType::kYarn && c.rope.truncate) {
      warn("{}: yarn truncate = true: GPT-OSS files are read back with truncate = false (the GPT-OSS configs' "
           "value; the file has no key for it)", c.source);
    }
  }
  const layers::RopeConfig& r = c.rope;
  w.put_f32(key("rope.freq_base"), static_cast<float>(r.theta));
  switch (r.type) {
    case layers::RopeType::kDefault: break;
    case layers::RopeType::kLinear:
      w.put_str(key("rope.scaling.type"), "linear");
      w.put_f32(key("rope.scaling.factor"), static_cast<float>(r.factor));
      break;
    case layers::RopeType::kYarn:
      w.put_str(key("rope.scaling.type"), "yarn");
      w.put_f32(key("rope.scaling.factor"), static_cast<float>(r.factor));
      w.put_u32(key("rope.scaling.original_context_length"),
                static_cast<std::uint32_t>(r.original_max_position_embeddings));
      w.put_f32(key("rope.scaling.yarn_beta_fast"), static_cast<float>(r.beta_fast));
      w.put_f32(key("rope.scaling.yarn_beta_slow"), static_cast<float>(r.beta_slow));
      if (r.attention_factor >= 0) w.put_f32(key("rope.scaling.attn_factor"), static_cast<float>(r.attention_factor));
      if (c.mla && r.mscale_all_dim != 0) {
        // convert_hf_to_gguf.py: yarn_log_multiplier = 0.1 * mscale_all_dim (deepseek2 only).
        w.put_f32(key("rope.scaling.yarn_log_multiplier"), static_cast<float>(0.1 * r.mscale_all_dim));
      }
      if (c.mla && r.attention_factor < 0 && r.mscale != r.mscale_all_dim) {
        // deepseek2 keeps only mscale_all_dim (as the log multiplier); YaRN's rope magnitude
        // mscale(factor, mscale) / mscale(factor, mscale_all_dim) then goes in attn_factor.
        w.put_f32(key("rope.scaling.attn_factor"),
                  static_cast<float>(layers::yarn_mscale(r.factor, r.mscale) / layers::yarn_mscale(r.factor, r.mscale_all_dim)));
      }
      break;
    case layers::RopeType::kLlama3:
      // No metadata: llama.cpp's converter writes llama3 rope only as the rope_freqs.weight
      // tensor (rope_freqs_of; the exporter adds it). llama.cpp's llama graph divides by it; the
      // other graphs (qwen3moe, olmoe, ...) pass no frequency factors to ggml_rope_ext.
      if (arch != "llama" && arch != "llama4") {
        warn("{}: llama3 rope is written as rope_freqs.weight, which llama.cpp's {} graph does not read (moecpp "
             "does); llama.cpp would run default rope or refuse the extra tensor", c.source, arch);
      }
      break;
    default:
      fail(ErrorCode::kUnsupported, "{}: rope type {} has no GGUF form (none, linear, yarn, llama3)", c.source,
           layers::to_string(r.type));
  }
  if (c.spec->dense_layers == model::DenseLayers::kMlpLayerTypes) {
    index_t i = 0;
    while (i < c.n_layers && !c.moe_layer[i]) ++i;
    for (; i < c.n_layers; ++i) {
      if (!c.moe_layer[i]) {
        warn("{}: layer {} is a dense MLP after the leading dense block; llama.cpp's {} expects experts in every "
             "layer from leading_dense_block_count on (moecpp reads the file back from its tensors)", c.source, i,
             arch);
        break;
      }
    }
  }
  if (c.spec->dense_layers == model::DenseLayers::kSparseStep) {
    for (index_t i = 0; i < c.n_layers; ++i) {
      if (!c.moe_layer[i]) {
        warn("{}: layer {} is a dense MLP; llama.cpp's {} expects every layer to be MoE (moecpp reads the "
             "file back from its tensors)", c.source, i, arch);
        break;
      }
    }
  }
  if (!c.eos_token_ids.empty()) w.put_u32("tokenizer.ggml.eos_token_id", static_cast<std::uint32_t>(c.eos_token_ids[0]));
  if (c.bos_token_id) w.put_u32("tokenizer.ggml.bos_token_id", static_cast<std::uint32_t>(*c.bos_token_id));
}

// A view of GGUF metadata for config_from_metadata: integer(key) / number(key) / boolean(key) /
// string(key) / bools(key) (an array of bools) return nullopt when absent and throw kConfig when of
// the wrong type; tensor_shape(name).
template <class Reader>
nlohmann::json hf_config_from_metadata(const Reader& f, std::string_view source) {
  const auto arch_v = f.string("general.architecture");
  if (!arch_v) fail(ErrorCode::kConfig, "{}: metadata key general.architecture not found", source);
  const std::string arch = *arch_v;
  const ArchTable* a = table_for_arch(arch);
  if (a == nullptr) {
    fail(ErrorCode::kUnsupported, "{}: GGUF architecture \"{}\" is not supported (llama with experts, qwen2moe, "
         "qwen3moe, olmoe, deepseek2, glm4moe, gpt-oss, granitemoe, ernie4_5-moe, hunyuan-moe, dots1, minimax-m2, "
         "llama4, deepseek32, glm-dsa, qwen3next, qwen35moe)", source, arch);
  }
  const auto key = [&](std::string_view k) { return fmt::format("{}.{}", arch, k); };
  const auto need_u = [&](std::string_view k) {
    const auto v = f.integer(key(k));
    if (!v) fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key(k));
    return *v;
  };
  // deepseek32 and glm-dsa: deepseek2's MLA plus DeepSeek sparse attention (DSA).
  const bool dsa = a->family == model::Family::kDeepseekV32 || a->family == model::Family::kGlmMoeDsa;
  const bool mla = arch == "deepseek2" || dsa;
  if (arch == "deepseek2") {
    const std::uint64_t gating = f.integer(key("expert_gating_func")).value_or(kGatingSoftmax);
    if (gating == kGatingSigmoid) {
      a = table_for_family(model::Family::kDeepseekV3);
    } else if (gating != kGatingSoftmax) {
      fail(ErrorCode::kUnsupported, "{}: {} = {} is not supported (1 softmax, 2 sigmoid)", source,
           key("expert_gating_func"), gating);
    }
  }
  nlohmann::json j;
  j["architectures"] = nlohmann::json::array({std::string(a->hf_class)});
  const auto one = [&](const KeyMapping& k) {
    const std::string gk = key(k.gguf);
    switch (k.type) {
      case KeyType::kU32:
        if (const auto v = f.integer(gk)) j[std::string(k.hf)] = *v;
        break;
      case KeyType::kF32:
        if (const auto v = f.number(gk)) j[std::string(k.hf)] = *v;
        break;
      case KeyType::kBool:
        if (const auto v = f.boolean(gk)) j[std::string(k.hf)] = *v;
        break;
    }
  };
  for (const auto& k : kCommonKeys) one(k);
  for (const auto& k : a->keys) one(k);
  (void)need_u("block_count");
  (void)need_u("embedding_length");
  (void)need_u("attention.head_count");
  const std::uint64_t n_experts = need_u("expert_count");
  if (n_experts == 0) {
    fail(ErrorCode::kUnsupported, "{}: {} = 0: a dense model, not a mixture of experts", source, key("expert_count"));
  }
  (void)need_u("expert_used_count");
  // NextN / MTP layers (DeepSeek-V3.2's and GLM-5's converters keep them): the last
  // nextn_predict_layers blocks, which llama.cpp's graphs skip (n_layer() = block_count - them)
  // and no model of ours runs; their tensors stay unread.
  if (const auto nextn = f.integer(key("nextn_predict_layers")); nextn && *nextn > 0) {
    const std::uint64_t blocks = j["num_hidden_layers"].get<std::uint64_t>();
    if (*nextn >= blocks) {
      fail(ErrorCode::kConfig, "{}: {} = {} must be below {} = {}", source, key("nextn_predict_layers"), *nextn,
           key("block_count"), blocks);
    }
    j["num_hidden_layers"] = blocks - *nextn;
  }
  // vocab_size: the key, else the embedding's rows.
  if (!j.contains("vocab_size")) {
    const auto shape = f.tensor_shape("token_embd.weight");
    if (!shape || shape->size() != 2) fail(ErrorCode::kMissingTensor, "{}: tensor token_embd.weight not found", source);
    j["vocab_size"] = (*shape)[0];
  }
  if (!j.contains("intermediate_size")) {
    // Dense layers' width from the first dense MLP, else the experts' (unused then).
    for (std::uint64_t i = 0; i < j["num_hidden_layers"].get<std::uint64_t>(); ++i) {
      const auto shape = f.tensor_shape(fmt::format("blk.{}.ffn_gate.weight", i));
      if (shape && shape->size() == 2) {
        j["intermediate_size"] = (*shape)[0];
        break;
      }
    }
  }
  const std::uint64_t n_layers = j["num_hidden_layers"].get<std::uint64_t>();
  if (a->family == model::Family::kMixtral) {
    // llama's expert width is feed_forward_length; Mixtral's config says intermediate_size.
    if (!j.contains("intermediate_size")) fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("feed_forward_length"));
  }
  if (mla) {
    const std::uint64_t kl = need_u("attention.key_length_mla");
    const std::uint64_t rope = need_u("rope.dimension_count");
    if (kl <= rope) {
      fail(ErrorCode::kConfig, "{}: {} = {} must exceed {} = {}", source, key("attention.key_length_mla"), kl,
           key("rope.dimension_count"), rope);
    }
    j["qk_nope_head_dim"] = kl - rope;
    j["num_key_value_heads"] = j["num_attention_heads"];
    if (!j.contains("v_head_dim")) fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("attention.value_length_mla"));
    if (!j.contains("routed_scaling_factor")) j["routed_scaling_factor"] = 1.0;  // absent: no scaling in llama.cpp
    if (!j.contains("norm_topk_prob")) j["norm_topk_prob"] = false;             // the converter writes only true
    if (a->family == model::Family::kDeepseekV2 && j.contains("n_group") && j["n_group"].get<std::uint64_t>() > 1) {
      j["topk_method"] = "group_limited_greedy";
    }
    if (!j.contains("n_group") && !f.integer(key("expert_group_used_count"))) {
      warn("{}: no {} / {}: routing without expert groups (DeepSeek's n_group / topk_group); if the original "
           "model limits routing to groups, results differ", source, key("expert_group_count"),
           key("expert_group_used_count"));
    }
    // Biases of MLA's projections (attention_bias), from the tensors.
    j["attention_bias"] = f.tensor_shape("blk.0.attn_kv_a_mqa.bias").has_value();
    j["mlp_bias"] = f.tensor_shape("blk.0.ffn_gate.bias").has_value() ||
                    f.tensor_shape(fmt::format("blk.{}.ffn_gate_shexp.bias", n_layers - 1)).has_value();
  } else if (!j.contains("num_key_value_heads")) {
    j["num_key_value_heads"] = j["num_attention_heads"];
  }
  if (a->family == model::Family::kGlm4Moe) {
    if (!j.contains("routed_scaling_factor")) j["routed_scaling_factor"] = 1.0;
    if (!j.contains("n_group") && !f.integer(key("expert_group_used_count"))) {
      warn("{}: no {} / {}: routing without expert groups (n_group / topk_group = 1)", source,
           key("expert_group_count"), key("expert_group_used_count"));
    }
    j["use_qk_norm"] = f.tensor_shape("blk.0.attn_q_norm.weight").has_value();
    j["attention_bias"] = f.tensor_shape("blk.0.attn_q.bias").has_value();
    const auto rot = f.integer(key("rope.dimension_count"));
    if (rot) {
      const std::uint64_t hd = j.contains("head_dim") ? j["head_dim"].get<std::uint64_t>()
                                                      : j["hidden_size"].get<std::uint64_t>() /
                                                            j["num_attention_heads"].get<std::uint64_t>();
      j["partial_rotary_factor"] = static_cast<double>(*rot) / static_cast<double>(hd);
    }
  }
  if (a->family == model::Family::kQwen2Moe) {
    j["qkv_bias"] = f.tensor_shape("blk.0.attn_q.bias").has_value();
    if (j.contains("norm_topk_prob") == false) j["norm_topk_prob"] = false;
  }
  if (a->family == model::Family::kQwen3Moe && j.contains("sliding_window")) j["use_sliding_window"] = true;
  if (a->family == model::Family::kGptOss) {
    j["attention_bias"] = f.tensor_shape("blk.0.attn_q.bias").has_value();
    // llama.cpp: sliding window on even layers, full attention on odd ones.
    nlohmann::json types = nlohmann::json::array();
    for (std::uint64_t i = 0; i < n_layers; ++i) {
      types.push_back(j.contains("sliding_window") && i % 2 == 0 ? "sliding_attention" : "full_attention");
    }
    j["layer_types"] = types;
  }
  const auto has_experts = [&](std::uint64_t i) {
    return f.tensor_shape(fmt::format("blk.{}.ffn_gate_inp.weight", i)).has_value();
  };
  const auto head_dim = [&]() -> double {
    return j.contains("head_dim") ? j["head_dim"].get<double>()
                                  : j["hidden_size"].get<double>() / j["num_attention_heads"].get<double>();
  };
  nlohmann::json mrope_section;  // qwen35moe: rope.dimension_sections, into the rope dict below
  const auto require_sigmoid = [&] {
    const auto g = f.integer(key("expert_gating_func"));
    if (g && *g != kGatingSigmoid) {
      fail(ErrorCode::kUnsupported, "{}: {} = {} is not supported for {} (2, sigmoid)", source,
           key("expert_gating_func"), *g, arch);
    }
  };
  if (mla && a->family == model::Family::kDeepseekV3) {
    // Dense layers after the first MoE layer: GLM-4.7-Flash's mlp_layer_types (the only family of
    // ours with MLA and sigmoid routing that has them; the file names no class). llama.cpp's
    // deepseek2 itself has leading dense layers only.
    std::uint64_t first = 0;
    while (first < n_layers && !has_experts(first)) ++first;
    bool later_dense = false;
    for (std::uint64_t i = first; i < n_layers; ++i) later_dense = later_dense || !has_experts(i);
    if (later_dense) {
      a = table_for_family(model::Family::kGlm4MoeLite);
      j["architectures"] = nlohmann::json::array({std::string(a->hf_class)});
      nlohmann::json types = nlohmann::json::array();
      for (std::uint64_t i = 0; i < n_layers; ++i) types.push_back(has_experts(i) ? "sparse" : "dense");
      j["mlp_layer_types"] = types;
      j.erase("first_k_dense_replace");
    }
  }
  if (dsa) {
    require_sigmoid();  // both route with sigmoid scores (deepseek32 requires the key, glm-dsa defaults to it)
    // The indexer's shape: required by llama.cpp (so no config-class default stands in), and its
    // rope covers the first rope.dimension_count dims of a head.
    for (const char* k : {"attention.indexer.head_count", "attention.indexer.key_length", "attention.indexer.top_k"}) {
      if (need_u(k) == 0) fail(ErrorCode::kConfig, "{}: {} = 0 must be positive", source, key(k));
    }
    const std::uint64_t width = need_u("attention.indexer.key_length"), rope = need_u("rope.dimension_count");
    if (width < rope) {
      fail(ErrorCode::kConfig, "{}: {} = {} is smaller than {} = {} (the indexer ropes its first rope dims)", source,
           key("attention.indexer.key_length"), width, key("rope.dimension_count"), rope);
    }
    // Dense or MoE per layer (mlp_layer_types) from the tensors: llama.cpp's graphs have leading
    // dense layers only, which write_metadata warns about otherwise.
    nlohmann::json types = nlohmann::json::array();
    for (std::uint64_t i = 0; i < n_layers; ++i) types.push_back(has_experts(i) ? "sparse" : "dense");
    j["mlp_layer_types"] = types;
    j.erase("first_k_dense_replace");
    if (a->family == model::Family::kGlmMoeDsa) {
      // Full / shared indexer layers as llama.cpp's glm-dsa loader takes them: attention.indexer.types
      // (a bool per layer, true = full), else every layer full below GLM-5.2's 1M context and GLM-5.2's
      // own pattern from it on (GLM-5.2 GGUFs converted before the key existed).
      std::vector<bool> full(n_layers, true);
      if (const auto t = f.bools(key("attention.indexer.types"))) {
        // One per layer (the config's indexer_types), or per block when a converter counted the MTP
        // blocks too (their entries are unused, as the blocks are).
        const std::uint64_t blocks = need_u("block_count");
        if (t->size() != n_layers && t->size() != blocks) {
          fail(ErrorCode::kConfig, "{}: {} has {} entries for {} layers ({} blocks)", source,
               key("attention.indexer.types"), t->size(), n_layers, blocks);
        }
        full.assign(t->begin(), t->begin() + static_cast<std::ptrdiff_t>(n_layers));
      } else if (f.integer(key("context_length")).value_or(0) >= kGlm52Context) {
        for (std::uint64_t i = 0; i < n_layers; ++i) full[i] = glm52_default_indexer_full(i);
        warn("{}: no {}: with a context of {} or more, the indexer layers are GLM-5.2's (full at 0, 1, 2, 6, 10, "
             "..., 74), as llama.cpp reads such a file", source, key("attention.indexer.types"), kGlm52Context);
      }
      nlohmann::json kinds = nlohmann::json::array();
      for (const bool x : full) kinds.push_back(x ? "full" : "shared");
      j["indexer_types"] = kinds;
    }
  }
  if (a->family == model::Family::kGraniteMoe) {
    if (!j.contains("logits_scaling")) {  // llama.cpp's granite loader requires it too
      fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("logit_scale"));
    }
    // llama.cpp: no attention.scale is 1/sqrt(head_dim); 0 embedding / residual scales are none.
    if (!j.contains("attention_multiplier")) j["attention_multiplier"] = 1.0 / std::sqrt(head_dim());
    for (const char* k : {"embedding_multiplier", "residual_multiplier"}) {
      if (j.contains(k) && j[k].get<double>() == 0.0) j.erase(k);
    }
    if (f.integer(key("expert_shared_feed_forward_length")) || f.tensor_shape("blk.0.ffn_gate_shexp.weight")) {
      fail(ErrorCode::kUnsupported, "{}: {} with shared experts (GraniteMoeShared, {}) is not supported", source,
           arch, key("expert_shared_feed_forward_length"));
    }
  }
  if (a->family == model::Family::kErnie45Moe) {
    const auto step = f.integer(key("interleave_moe_layer_step"));
    if (!step || *step == 0) {  // llama.cpp's ernie4_5-moe graph asserts it too
      fail(ErrorCode::kConfig, "{}: metadata key {} {}", source, key("interleave_moe_layer_step"),
           step ? "is 0" : "not found");
    }
    if (!j.contains("moe_intermediate_size")) {
      fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("expert_feed_forward_length"));
    }
    j["moe_layer_interval"] = *step;
    j["moe_layer_start_index"] = f.integer(key("leading_dense_block_count")).value_or(0);
    // llama.cpp has no end index (experts to the last layer); ours stops at the last layer with
    // experts, which moecpp's own files need (write_metadata warns for them).
    std::int64_t last = static_cast<std::int64_t>(n_layers) - 1;
    while (last > 0 && !has_experts(static_cast<std::uint64_t>(last))) --last;
    j["moe_layer_end_index"] = last;
    if (!j.contains("moe_num_shared_experts")) j["moe_num_shared_experts"] = 0;
    if (const auto w = f.integer(key("expert_shared_feed_forward_length"));
        w && j["moe_num_shared_experts"].get<std::uint64_t>() > 0 &&
        *w != j["moe_num_shared_experts"].get<std::uint64_t>() * j["moe_intermediate_size"].get<std::uint64_t>()) {
      fail(ErrorCode::kUnsupported, "{}: {} = {} is not {} x {} = {} (shared experts as wide as the routed ones)",
           source, key("expert_shared_feed_forward_length"), *w, key("expert_shared_count"),
           key("expert_feed_forward_length"),
           j["moe_num_shared_experts"].get<std::uint64_t>() * j["moe_intermediate_size"].get<std::uint64_t>());
    }
    if (f.tensor_shape("blk.0.attn_q.bias")) {
      fail(ErrorCode::kUnsupported, "{}: tensor blk.0.attn_q.bias: ERNIE-4.5's use_bias puts biases on every "
           "projection; q/k/v biases alone are not supported", source);
    }
    j["use_bias"] = false;
  }
  if (a->family == model::Family::kHunYuanMoeV1) {
    if (!f.integer(key("expert_feed_forward_length"))) {
      fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("expert_feed_forward_length"));
    }
    const std::uint64_t width = j["intermediate_size"].get<std::uint64_t>();
    if (const auto w = f.integer(key("expert_shared_feed_forward_length")); w && *w != width) {
      fail(ErrorCode::kUnsupported, "{}: {} = {} differs from {} = {} (moecpp's Hunyuan shared MLP is as wide as "
           "an expert)", source, key("expert_shared_feed_forward_length"), *w, key("expert_feed_forward_length"), width);
    }
    if (const auto n = f.integer(key("expert_shared_count")); n && *n != 1) {
      fail(ErrorCode::kUnsupported, "{}: {} = {} is not supported (one shared MLP)", source, key("expert_shared_count"), *n);
    }
  }
  if (a->family == model::Family::kDots1) {
    require_sigmoid();
    if (!j.contains("routed_scaling_factor")) j["routed_scaling_factor"] = 1.0;  // llama.cpp: no scaling
    if (!j.contains("norm_topk_prob")) j["norm_topk_prob"] = false;
    if (!j.contains("first_k_dense_replace")) {
      std::uint64_t k = 0;
      while (k < n_layers && !has_experts(k)) ++k;
      j["first_k_dense_replace"] = k;
    }
    if (j.contains("sliding_window")) {
      const auto pattern = f.bools(key("attention.sliding_window_pattern"));
      if (pattern && pattern->size() == n_layers) {
        nlohmann::json types = nlohmann::json::array();
        for (const bool slides : *pattern) types.push_back(slides ? "sliding_attention" : "full_attention");
        j["layer_types"] = types;
      } else {
        warn("{}: {} without a {} of {} layers: read as full attention on every layer (as llama.cpp's dots1 runs "
             "it)", source, key("attention.sliding_window"), key("attention.sliding_window_pattern"), n_layers);
        j.erase("sliding_window");
      }
    }
  }
  if (a->family == model::Family::kLlama4) {
    // What llama.cpp's llama4 graph fixes (write_llama4): restored as the HF config's keys.
    const auto step = f.integer(key("interleave_moe_layer_step"));
    if (!step || *step == 0) {
      fail(ErrorCode::kConfig, "{}: metadata key {} {}", source, key("interleave_moe_layer_step"),
           step ? "is 0" : "not found");
    }
    j["interleave_moe_layer_step"] = *step;
    if (!f.integer(key("expert_feed_forward_length"))) {
      fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("expert_feed_forward_length"));
    }
    const auto window = f.integer(key("attention.sliding_window"));
    const bool chunked = !(window && *window == 0);
    const std::uint64_t period = f.integer(key("attention.sliding_window_pattern")).value_or(4);
    if (period < 2) {
      fail(ErrorCode::kConfig, "{}: {} = {} must be >= 2", source, key("attention.sliding_window_pattern"), period);
    }
    nlohmann::json types = nlohmann::json::array(), no_rope = nlohmann::json::array();
    for (std::uint64_t i = 0; i < n_layers; ++i) {
      types.push_back(chunked && i % period < period - 1 ? "chunked_attention" : "full_attention");
      no_rope.push_back(chunked && (i + 1) % kLlama4NoRopeStep == 0 ? 0 : 1);
    }
    j["layer_types"] = types;
    j["no_rope_layers"] = no_rope;
    j["attention_chunk_size"] = kLlama4Chunk;
    j["attn_temperature_tuning"] = true;
    j["attn_scale"] = kLlama4TempScale;
    j["floor_scale"] = kLlama4TempFloor;
    j["use_qk_norm"] = n_experts != 128;
    if (!j.contains("intermediate_size_mlp")) j["intermediate_size_mlp"] = j["intermediate_size"];
  }
  if (a->family == model::Family::kQwen3Next || a->family == model::Family::kQwen35Moe) {
    // Gated DeltaNet's shape: llama.cpp requires the five ssm keys (llama_model_qwen3next /
    // qwen35moe load_arch_hparams); linear_value_head_dim is inner_size / time_step_rank.
    for (const char* k : {"ssm.conv_kernel", "ssm.state_size", "ssm.group_count", "ssm.time_step_rank", "ssm.inner_size"}) {
      if (need_u(k) == 0) fail(ErrorCode::kConfig, "{}: {} = 0 must be positive", source, key(k));
    }
    const std::uint64_t inner = need_u("ssm.inner_size"), nv = need_u("ssm.time_step_rank"), nk = need_u("ssm.group_count");
    if (inner % nv != 0) {
      fail(ErrorCode::kConfig, "{}: {} = {} is not a multiple of {} = {} (value heads of equal width)", source,
           key("ssm.inner_size"), inner, key("ssm.time_step_rank"), nv);
    }
    if (nv % nk != 0) {
      fail(ErrorCode::kConfig, "{}: {} = {} (value heads) is not a multiple of {} = {} (key heads)", source,
           key("ssm.time_step_rank"), nv, key("ssm.group_count"), nk);
    }
    j["linear_value_head_dim"] = inner / nv;
    // Linear / full attention layers as llama.cpp derives them (full_attention_interval, default 4).
    const std::uint64_t interval = f.integer(key("full_attention_interval")).value_or(4);
    if (interval == 0) fail(ErrorCode::kConfig, "{}: {} = 0 must be positive", source, key("full_attention_interval"));
    nlohmann::json types = nlohmann::json::array();
    for (std::uint64_t i = 0; i < n_layers; ++i) {
      types.push_back((i + 1) % interval != 0 ? "linear_attention" : "full_attention");
    }
    j["layer_types"] = types;
    // The rotated width (llama.cpp: the whole head without the key).
    const std::uint64_t rot = f.integer(key("rope.dimension_count")).value_or(static_cast<std::uint64_t>(head_dim()));
    j["partial_rotary_factor"] = static_cast<double>(rot) / head_dim();
    if (a->family == model::Family::kQwen35Moe) {
      // Required by llama.cpp's qwen35moe loader; for text it changes nothing (plain partial rope).
      const auto sections = f.ints(key("rope.dimension_sections"));
      if (!sections) fail(ErrorCode::kConfig, "{}: metadata key {} not found", source, key("rope.dimension_sections"));
      if (sections->size() != 4) {
        fail(ErrorCode::kConfig, "{}: {} has {} entries, expected 4", source, key("rope.dimension_sections"),
             sections->size());
      }
      std::vector<std::int64_t> mrope(sections->begin(), sections->end());
      if (mrope.back() == 0) mrope.pop_back();  // the converter pads transformers' three sections with 0
      mrope_section = nlohmann::json(mrope);
    }
  }
  if (a->family == model::Family::kMiniMaxM2) {
    require_sigmoid();
    if (const auto rot = f.integer(key("rope.dimension_count"))) {
      j["partial_rotary_factor"] = static_cast<double>(*rot) / head_dim();
    }
  }
  // The family's spelling of the top-k key (ERNIE: moe_k, Hunyuan: moe_topk).
  if (const model::ArchitectureSpec* spec = model::find_architecture(a->hf_class);
      spec != nullptr && spec->top_k_key != "num_experts_per_tok" && j.contains("num_experts_per_tok")) {
    j[std::string(spec->top_k_key)] = j["num_experts_per_tok"];
  }
  if (a->family == model::Family::kMixtral && j.contains("head_dim") && j["head_dim"].get<std::uint64_t>() == 0) {
    j.erase("head_dim");
  }
  // Dense vs MoE layers, from the tensors (leading_dense_block_count for deepseek2/glm4moe is
  // checked against them by the binder: a dense layer has no ffn_gate_inp).
  if (a->family == model::Family::kQwen2Moe || a->family == model::Family::kQwen3Moe ||
      a->family == model::Family::kQwen3Next) {
    nlohmann::json dense = nlohmann::json::array();
    for (std::uint64_t i = 0; i < n_layers; ++i) {
      if (!f.tensor_shape(fmt::format("blk.{}.ffn_gate_inp.weight", i))) dense.push_back(i);
    }
    if (!dense.empty()) j["mlp_only_layers"] = dense;
  }
  // Expert counts against the tensors.
  for (std::uint64_t i = 0; i < n_layers; ++i) {
    const std::string name = fmt::format("blk.{}.ffn_gate_exps.weight", i);
    const auto shape = f.tensor_shape(name);
    if (shape && (shape->size() != 3 || (*shape)[0] != n_experts)) {
      fail(ErrorCode::kShapeMismatch, "{}: tensor {} has shape [{}], but {} = {}", source, name,
           fmt::join(*shape, ", "), key("expert_count"), n_experts);
    }
  }
  // rope
  nlohmann::json rope;
  if (const auto theta = f.number(key("rope.freq_base"))) {
    rope["rope_theta"] = *theta;
  } else {
    warn("{}: no {}: rope theta defaults to the family's", source, key("rope.freq_base"));
  }
  const auto type = f.string(key("rope.scaling.type"));
  if (type && *type == "yarn") {
    rope["rope_type"] = "yarn";
    if (const auto v = f.number(key("rope.scaling.factor"))) rope["factor"] = *v;
    if (const auto v = f.integer(key("rope.scaling.original_context_length"))) rope["original_max_position_embeddings"] = *v;
    if (const auto v = f.number(key("rope.scaling.yarn_beta_fast"))) rope["beta_fast"] = *v;
    if (const auto v = f.number(key("rope.scaling.yarn_beta_slow"))) rope["beta_slow"] = *v;
    if (const auto v = f.number(key("rope.scaling.attn_factor"))) rope["attention_factor"] = *v;
    if (const auto v = f.number(key("rope.scaling.yarn_log_multiplier")); v && mla) {
      // mscale_all_dim = log_mul / 0.1; without attn_factor, mscale is taken equal to it.
      rope["mscale_all_dim"] = *v / 0.1;
      if (!rope.contains("attention_factor")) rope["mscale"] = *v / 0.1;
    }
  } else if (type && *type == "linear") {
    rope["rope_type"] = "linear";
    if (const auto v = f.number(key("rope.scaling.factor"))) rope["factor"] = *v;
  } else if (type && *type != "none") {
    fail(ErrorCode::kUnsupported, "{}: {} = \"{}\" is not supported (none, linear, yarn)", source,
         key("rope.scaling.type"), *type);
  }
  if (a->family == model::Family::kGptOss && rope.is_object() && rope.value("rope_type", "") == "yarn") {
    rope["truncate"] = false;
  }
  if (!mrope_section.is_null()) {
    rope["mrope_section"] = mrope_section;
    rope["mrope_interleaved"] = true;  // Qwen3.5's (llama.cpp's qwen35moe ropes LLAMA_ROPE_TYPE_IMROPE)
  }
  if (!rope.empty()) {
    if (!rope.contains("rope_type")) rope["rope_type"] = "default";
    j["rope_parameters"] = rope;
  }
  j["tie_word_embeddings"] = !f.tensor_shape("output.weight").has_value();
  if (const auto v = f.integer("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = *v;
  if (const auto v = f.integer("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = *v;
  return j;
}

}  // namespace moe::io::gguf_arch
