// Tensors in host memory listed by their Hugging Face checkpoint names, as a TensorSource: the
// weights of a synthetic model (model/synthetic.hpp) laid out as save_pretrained writes them
// (one tensor per expert, Mixtral under block_sparse_moe with w1/w3/w2), so that they can be
// written to a safetensors folder or a GGUF (io::export_gguf) and loaded back unchanged.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/model/config.hpp"
#include "moe/model/weights.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe::model {

// One tensor: its name, element type, shape (outermost first) and bytes (not owned).
struct NamedTensor {
  std::string name;
  DType dtype = DType::f32;
  std::vector<index_t> shape;
  const std::byte* data = nullptr;

  std::size_t bytes() const {
    index_t rows = 1;
    for (std::size_t d = 0; d + 1 < shape.size(); ++d) rows *= shape[d];
    const index_t cols = shape.empty() ? 1 : shape.back();
    return static_cast<std::size_t>(rows) * format_row_bytes(dtype, cols);
  }
};

// A TensorSource over a list of NamedTensors (which must outlive it). get() checks the shape.
class TensorListSource final : public TensorSource {
 public:
  explicit TensorListSource(std::vector<NamedTensor> tensors) : tensors_(std::move(tensors)) {
    for (std::size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }
  bool contains(std::string_view name) const override { return index_.contains(std::string(name)); }
  std::optional<std::vector<index_t>> shape_of(std::string_view name) const override {
    const auto it = index_.find(std::string(name));
    if (it == index_.end()) return std::nullopt;
    return tensors_[it->second].shape;
  }
  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    const auto it = index_.find(std::string(name));
    if (it == index_.end()) fail(ErrorCode::kMissingTensor, "tensor {} not found", name);
    const NamedTensor& t = tensors_[it->second];
    if (!std::equal(t.shape.begin(), t.shape.end(), shape.begin(), shape.end())) {
      fail(ErrorCode::kShapeMismatch, "{}: expected shape [{}], found [{}]", name, fmt::join(shape, ", "),
           fmt::join(t.shape, ", "));
    }
    return TensorRef{t.dtype, t.data};
  }
  const std::vector<NamedTensor>& tensors() const noexcept { return tensors_; }

 private:
  std::vector<NamedTensor> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
};

// `made` (name, shape, host TensorRef of each tensor bind_weights asked for, in that order) under
// checkpoint names: stacked expert banks "{moe}.experts.gate_up_proj" [E, 2F, D] (gate rows, then
// up rows) and "{moe}.experts.down_proj" [E, D, F] become per-expert views
// "{moe}.experts.{e}.gate_proj.weight" [F, D], ".up_proj" [F, D], ".down_proj" [D, F] (no copy).
// A family whose hub checkpoints use other spellings (Mixtral: block_sparse_moe, w1/w3/w2) gets
// them. GPT-OSS's and Llama 4's input-major banks are stored stacked in their checkpoints and stay
// as they are.
template <class MadeList>
std::vector<NamedTensor> checkpoint_tensors(const ModelConfig& c, const MadeList& made) {
  const ArchitectureSpec& s = *c.spec;
  const bool alt = !s.moe_prefix_alt.empty();
  const std::string from = fmt::format(".{}.", s.moe_prefix);
  const std::string to = fmt::format(".{}.", alt ? s.moe_prefix_alt : s.moe_prefix);
  const std::string_view gate = alt && !s.expert_gate_alt.empty() ? s.expert_gate_alt : s.expert_gate;
  const std::string_view up = alt && !s.expert_up_alt.empty() ? s.expert_up_alt : s.expert_up;
  const std::string_view down = alt && !s.expert_down_alt.empty() ? s.expert_down_alt : s.expert_down;
  const bool stacked = s.activation == ExpertActivation::kClampedSwiglu || s.input_major_experts;
  const auto rename = [&](std::string name) {
    // Only the MoE block's prefix is respelled (dense layers' "mlp" stays).
    if (alt && name.find(".experts.") != std::string::npos) {
      if (const auto p = name.find(from); p != std::string::npos) name.replace(p, from.size(), to);
    } else if (alt && (name.ends_with(from + "gate.weight") || name.ends_with(from + "gate.e_score_correction_bias"))) {
      name.replace(name.rfind(from), from.size(), to);
    }
    return name;
  };
  std::vector<NamedTensor> out;
  for (const auto& m : made) {
    const std::string& name = m.name;
    const bool gate_up = name.ends_with(".experts.gate_up_proj"), down_bank = name.ends_with(".experts.down_proj");
    if (stacked || (!gate_up && !down_bank) || m.shape.size() != 3) {
      out.push_back({rename(name), m.ref.dtype, m.shape, m.ref.data});
      continue;
    }
    const std::string base = rename(name.substr(0, name.size() - (gate_up ? 12 : 9)));  // "{moe}.experts."
    const index_t E = m.shape[0], rows = m.shape[1], cols = m.shape[2];
    const std::size_t rb = format_row_bytes(m.ref.dtype, cols);
    for (index_t e = 0; e < E; ++e) {
      const std::byte* bank = m.ref.data + static_cast<std::size_t>(e * rows) * rb;
      if (gate_up) {
        const index_t F = rows / 2;
        out.push_back({fmt::format("{}{}.{}.weight", base, e, gate), m.ref.dtype, {F, cols}, bank});
        out.push_back({fmt::format("{}{}.{}.weight", base, e, up), m.ref.dtype, {F, cols},
                       bank + static_cast<std::size_t>(F) * rb});
      } else {
        out.push_back({fmt::format("{}{}.{}.weight", base, e, down), m.ref.dtype, {rows, cols}, bank});
      }
    }
  }
  return out;
}

}  // namespace moe::model
