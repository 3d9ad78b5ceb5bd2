// LoRA adapters against a bound model: which weight matrix (and which rows of it) each adapter
// target names (resolve_lora_target), and the merged mode: W + scale·B·A written into private f32
// copies of the touched matrices (merge_lora), so the forward pass runs unchanged at zero cost.
// Targets follow transformers 5's module names (model.layers.{l}.self_attn.{q,k,v,o}_proj,
// mlp.{gate,up,down}_proj, mlp.shared_expert(s).*, mlp.shared_expert_gate, the fused routed-expert
// parameters mlp.experts.{gate_up_proj,down_proj}, lm_head).
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/io/lora_adapter.hpp"
#include "moe/layers/experts.hpp"
#include "moe/layers/linear.hpp"
#include "moe/layers/lora_linear.hpp"
#include "moe/model/config.hpp"
#include "moe/model/lora_tables.hpp"
#include "moe/model/weights.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe::model {

// Rows [0, rows) of `matrix` receive rows [delta_row, delta_row + rows) of expert `expert`'s
// update (a fused gate_up update splits over the gate and up matrices).
struct LoraSite {
  layers::WeightMatrix<host_memory>* matrix = nullptr;
  index_t expert = 0;
  index_t delta_row = 0;
  index_t rows = 0;
};

namespace detail {

// "model.layers.12.mlp.gate_proj" -> layer 12, rest "mlp.gate_proj"; false when not a layer path.
inline bool split_layer_path(std::string_view path, index_t& layer, std::string_view& rest) {
  constexpr std::string_view kPrefix = "model.layers.";
  if (!path.starts_with(kPrefix)) return false;
  path.remove_prefix(kPrefix.size());
  const auto dot = path.find('.');
  if (dot == std::string_view::npos) return false;
  long long l = -1;
  const auto [p, ec] = std::from_chars(path.data(), path.data() + dot, l);
  if (ec != std::errc() || p != path.data() + dot || l < 0) return false;
  layer = static_cast<index_t>(l);
  rest = path.substr(dot + 1);
  return true;
}

inline layers::WeightMatrix<host_memory>* mlp_matrix(layers::MlpWeights<host_memory>& m, std::string_view name) {
  if (name == "gate_proj") return &m.gate;
  if (name == "up_proj") return &m.up;
  if (name == "down_proj") return &m.down;
  return nullptr;
}

}  // namespace detail

// The weight rows target t updates in w, checked against t's shapes. kMissingTensor when the base
// model has no such module or parameter (a target that does not exist: the adapter is for another
// model), kShapeMismatch when its in/out features or expert count differ from the base's (base
// model mismatch), kUnsupported for modules this engine cannot adapt (MLA projections, embeddings,
// input-major expert banks); each names the adapter tensor.
inline std::vector<LoraSite> resolve_lora_target(ModelWeights<host_memory>& w, const io::LoraTarget& t) {
  std::vector<LoraSite> sites;
  const auto missing = [&](std::string_view why) {
    fail(ErrorCode::kMissingTensor, "LoRA tensor {}: target {} does not exist in the base model ({})", t.tensor_a,
         t.site(), why);
  };
  const auto check_shape = [&](index_t out, index_t in, std::string_view what) {
    require(t.out == out && t.in == in, ErrorCode::kShapeMismatch,
            "LoRA tensors {} / {}: {} adapts [{} out, {} in] but the base model's {} is [{}, {}] (base model mismatch)",
            t.tensor_a, t.tensor_b, t.site(), t.out, t.in, what, out, in);
  };
  const auto whole = [&](layers::WeightMatrix<host_memory>& m, std::string_view what) {
    if (m.empty()) missing(what);
    check_shape(m.rows, m.cols, what);
    sites.push_back(LoraSite{&m, 0, 0, m.rows});
  };
  if (t.parameter.empty() && t.module == "lm_head") {
    require(!w.tied, ErrorCode::kUnsupported, "LoRA tensor {}: lm_head is tied to the embedding; not supported",
            t.tensor_a);
    whole(w.lm_head, "lm_head.weight");
    return sites;
  }
  if (t.module == "model.embed_tokens") {
    fail(ErrorCode::kUnsupported, "LoRA tensor {}: embedding adapters (lora_embedding_A/B) are not supported",
         t.tensor_a);
  }
  index_t l = 0;
  std::string_view rest;
  if (!detail::split_layer_path(t.module, l, rest)) missing("not a decoder layer module");
  if (l >= static_cast<index_t>(w.layers.size())) missing(fmt::format("the model has {} layers", w.layers.size()));
  LayerWeights<host_memory>& L = w.layers[l];
  if (t.parameter.empty()) {
    if (rest.starts_with("self_attn.")) {
      const std::string_view p = rest.substr(10);
      layers::WeightMatrix<host_memory>* m = p == "q_proj"   ? &L.attn.q
                                             : p == "k_proj" ? &L.attn.k
                                             : p == "v_proj" ? &L.attn.v
                                             : p == "o_proj" ? &L.attn.o
                                                             : nullptr;
      if (m == nullptr) {
        require(L.attn.q.empty(), ErrorCode::kMissingTensor, "LoRA tensor {}: target {} does not exist in the base model",
                t.tensor_a, t.site());
        fail(ErrorCode::kUnsupported, "LoRA tensor {}: {} (an MLA projection) cannot be adapted yet", t.tensor_a,
             t.site());
      }
      whole(*m, std::string(rest) + ".weight");
      return sites;
    }
    if (rest.starts_with("mlp.")) {
      const std::string_view p = rest.substr(4);
      if (!L.moe) {
        if (auto* m = detail::mlp_matrix(L.mlp, p)) {
          whole(*m, std::string(rest) + ".weight");
          return sites;
        }
        missing("layer " + std::to_string(l) + " has a dense MLP");
      }
      for (std::string_view shared : {"shared_expert.", "shared_experts."}) {
        if (p.starts_with(shared)) {
          auto* m = detail::mlp_matrix(L.moe_weights.shared, p.substr(shared.size()));
          if (m == nullptr || m->empty()) missing("no such shared expert matrix");
          whole(*m, std::string(rest) + ".weight");
          return sites;
        }
      }
      if (p == "shared_expert_gate") {
        whole(L.moe_weights.shared_gate, std::string(rest) + ".weight");
        return sites;
      }
      if (p == "gate") {
        fail(ErrorCode::kUnsupported, "LoRA tensor {}: the router {} cannot be adapted", t.tensor_a, t.site());
      }
    }
    missing("unknown module");
  }
  // A parameter of a fused routed-expert module (PEFT target_parameters).
  if (rest != "mlp.experts" || !L.moe) missing("not a routed-expert module");
  layers::ExpertBank<host_memory>& bank = L.moe_weights.experts;
  require(t.n_experts == bank.n_experts, ErrorCode::kShapeMismatch,
          "LoRA tensor {}: {} rows = {} experts x r {}, but the base layer has {} experts (base model mismatch)",
          t.tensor_a, t.n_experts * t.rank, t.n_experts, t.rank, bank.n_experts);
  const index_t f = bank.d_ff, d = bank.d_model;
  const std::string what = t.module + "." + t.parameter;
  if (bank.layout != layers::ExpertLayout::kSeparate && bank.layout != layers::ExpertLayout::kFusedGateUp) {
    fail(ErrorCode::kUnsupported, "LoRA tensor {}: {}: this expert layout (input-major / interleaved GLU) "
         "cannot be adapted yet", t.tensor_a, what);
  }
  if (t.parameter == "gate_up_proj") {
    check_shape(2 * f, d, what);
    for (index_t e = 0; e < bank.n_experts; ++e) {
      if (bank.layout == layers::ExpertLayout::kSeparate) {
        sites.push_back(LoraSite{&bank.gate[e], e, 0, f});  // gate rows first (transformers' chunk order)
        sites.push_back(LoraSite{&bank.up[e], e, f, f});
      } else {
        sites.push_back(LoraSite{&bank.gate_up[e], e, 0, 2 * f});
      }
    }
    return sites;
  }
  if (t.parameter == "down_proj") {
    check_shape(d, f, what);
    for (index_t e = 0; e < bank.n_experts; ++e) sites.push_back(LoraSite{&bank.down[e], e, 0, d});
    return sites;
  }
  missing("unknown expert parameter");
  return sites;
}

// Every target of `adapter` resolved against w, the whole adapter checked before anything changes.
inline std::vector<std::pair<const io::LoraTarget*, std::vector<LoraSite>>> resolve_lora(
    ModelWeights<host_memory>& w, const io::LoraAdapter& adapter) {
  std::vector<std::pair<const io::LoraTarget*, std::vector<LoraSite>>> out;
  out.reserve(adapter.targets.size());
  for (const auto& t : adapter.targets) out.emplace_back(&t, resolve_lora_target(w, t));
  return out;
}

// The private copies a merge writes (kept alive with the model's other storage).
struct MergedLoraStorage {
  std::shared_ptr<const void> base;        // the mapped checkpoint
  std::deque<std::vector<float>> copies;  // one f32 copy per touched matrix (stable addresses)
};

// Merged mode: a copy of `w` in which each matrix that some adapter touches points at a private
// f32 copy holding W + Σ scale·B·A (every adapter of `adapters`, in order; f32 / bf16 / f16
// base weights; block formats are kUnsupported). The untouched matrices stay in place. Returns
// the weights and a storage owning base_storage and the copies.
inline std::pair<ModelWeights<host_memory>, std::shared_ptr<const void>> merge_lora(
    const ModelWeights<host_memory>& base, std::shared_ptr<const void> base_storage,
    std::span<const io::LoraAdapter> adapters) {
  ModelWeights<host_memory> w = base;
  auto storage = std::make_shared<MergedLoraStorage>();
  storage->base = std::move(base_storage);
  std::map<const std::byte*, std::vector<float>*> copy_of;  // original bytes -> its private copy
  std::vector<std::vector<std::pair<const io::LoraTarget*, std::vector<LoraSite>>>> all;
  for (const auto& ad : adapters) all.push_back(resolve_lora(w, ad));  // every check first
  for (const auto& resolved : all) {
    for (const auto& [t, sites] : resolved) {
      for (const LoraSite& s : sites) {
        layers::WeightMatrix<host_memory>& m = *s.matrix;
        std::vector<float>* dst = nullptr;
        if (const auto it = copy_of.find(m.data); it != copy_of.end()) {
          dst = it->second;
        } else {
          require(m.dtype == DType::f32 || m.dtype == DType::bf16 || m.dtype == DType::f16, ErrorCode::kUnsupported,
                  "LoRA tensor {}: merging into {} weights of {} is not supported (f32 / bf16 / f16 only)",
                  t->tensor_a, dtype_name(m.dtype), t->site());
          auto& v = storage->copies.emplace_back(static_cast<std::size_t>(m.rows * m.cols));
          visit_dtype(m.dtype, [&](auto tag) {
            using T = decltype(tag);
            const auto* src = reinterpret_cast<const T*>(m.data);
            for (index_t r = 0; r < m.rows; ++r) {
              for (index_t c = 0; c < m.cols; ++c) {
                const T x = src[r * m.row_stride + c];
                if constexpr (std::is_same_v<T, float>) {
                  v[r * m.cols + c] = x;
                } else {
                  v[r * m.cols + c] = to_float(x);
                }
              }
            }
          });
          dst = &v;
          copy_of.emplace(m.data, dst);
          copy_of.emplace(reinterpret_cast<const std::byte*>(v.data()), dst);  // a later adapter adds to it
          m.dtype = DType::f32;
          m.data = reinterpret_cast<const std::byte*>(v.data());
          m.row_stride = m.cols;
        }
        // W[o, i] += scale · Σ_j B_e[delta_row + o, j] · A_e[j, i], summed in double.
        std::vector<double> row(static_cast<std::size_t>(t->in));
        for (index_t o = 0; o < s.rows; ++o) {
          std::fill(row.begin(), row.end(), 0.0);
          for (index_t j = 0; j < t->rank; ++j) {
            const double bj = t->b_at(s.expert, s.delta_row + o, j);
            for (index_t i = 0; i < t->in; ++i) row[i] += bj * t->a_at(s.expert, j, i);
          }
          float* out = dst->data() + o * t->in;
          for (index_t i = 0; i < t->in; ++i) out[i] += static_cast<float>(t->scale * row[i]);
        }
      }
    }
  }
  return {std::move(w), std::shared_ptr<const void>(storage, storage.get())};
}

// Unmerged mode: contiguous factors of one weight for one adapter target (the layout
// layers::LoraWeight's table points at: A [rank, in], B [out, rank]).
struct PackedLoraFactors {
  index_t rank = 0, in = 0, out = 0;
  float scale = 0;
  std::vector<float> a;  // [rank, in]
  std::vector<float> b;  // [out, rank]
};

// Expert `expert`'s factors restricted to update rows [row_begin, row_begin + rows) of target t
// (expert 0 and all rows for a module target).
inline PackedLoraFactors pack_lora_factors(const io::LoraTarget& t, index_t expert, index_t row_begin, index_t rows) {
  require(expert < t.n_experts && row_begin + rows <= t.out, ErrorCode::kInvalidArgument,
          "pack_lora_factors: {}: expert {} of {}, rows [{}, {}) of {}", t.site(), expert, t.n_experts, row_begin,
          row_begin + rows, t.out);
  PackedLoraFactors p;
  p.rank = t.rank, p.in = t.in, p.out = rows, p.scale = t.scale;
  p.a.resize(static_cast<std::size_t>(t.rank * t.in));
  p.b.resize(static_cast<std::size_t>(rows * t.rank));
  for (index_t j = 0; j < t.rank; ++j) {
    for (index_t i = 0; i < t.in; ++i) p.a[j * t.in + i] = t.a_at(expert, j, i);
  }
  for (index_t o = 0; o < rows; ++o) {
    for (index_t j = 0; j < t.rank; ++j) p.b[o * t.rank + j] = t.b_at(expert, row_begin + o, j);
  }
  return p;
}

// The packed factors and the per-weight tables a ModelLora's views point into.
struct LoraTableStorage {
  std::deque<PackedLoraFactors> factors;                  // stable addresses
  std::deque<std::vector<kernels::LoraFactorRef>> tables;  // one per adapted matrix, [n_adapters]
};

// Unmerged mode: every adapter of `adapters` resident on `base` (host weights), adapter a being
// index a of each table. Each target resolves as in the merged mode (resolve_lora_target: the same
// typed errors naming the tensor, the whole set checked before anything is built); a routed-expert
// target becomes one table per expert (a fused gate_up update split over gate and up for kSeparate
// banks). Names must be non-empty and distinct (kInvalidArgument). Any base weight format works:
// the base matmul is unchanged and the update runs on f32 factors.
inline ModelLora<host_memory> make_lora_tables(const ModelWeights<host_memory>& base,
                                               std::span<const io::LoraAdapter> adapters) {
  using HostMatrix = layers::WeightMatrix<host_memory>;
  ModelWeights<host_memory> w = base;  // resolve_lora_target's sites point into this copy
  const std::size_t n_ad = adapters.size();
  for (std::size_t a = 0; a < n_ad; ++a) {
    require(!adapters[a].name.empty(), ErrorCode::kInvalidArgument,
            "LoRA adapter {} ({}) has no name (an unmerged adapter is selected by name)", a, adapters[a].path);
    for (std::size_t b = 0; b < a; ++b) {
      require(adapters[a].name != adapters[b].name, ErrorCode::kInvalidArgument,
              "LoRA adapters {} and {} are both named '{}'", adapters[b].path, adapters[a].path, adapters[a].name);
    }
  }
  std::vector<std::vector<std::pair<const io::LoraTarget*, std::vector<LoraSite>>>> all;
  for (const auto& ad : adapters) all.push_back(resolve_lora(w, ad));  // every check first
  auto storage = std::make_shared<LoraTableStorage>();
  std::map<const HostMatrix*, std::vector<kernels::LoraFactorRef>*> table_of;
  ModelLora<host_memory> out;
  for (std::size_t a = 0; a < n_ad; ++a) {
    for (const auto& [t, sites] : all[a]) {
      for (const LoraSite& s : sites) {
        auto& table = table_of[s.matrix];
        if (table == nullptr) table = &storage->tables.emplace_back(n_ad);
        require((*table)[a].a == nullptr, ErrorCode::kInvalidArgument,
                "LoRA tensor {}: adapter '{}' adapts {} a second time", t->tensor_a, adapters[a].name, t->site());
        const PackedLoraFactors& p = storage->factors.emplace_back(pack_lora_factors(*t, s.expert, s.delta_row, s.rows));
        (*table)[a] = kernels::LoraFactorRef{p.a.data(), p.b.data(), static_cast<std::int32_t>(p.rank), p.scale};
        out.max_rank = std::max(out.max_rank, p.rank);
      }
    }
  }
  const auto table = [&](const HostMatrix& m) -> layers::LoraWeight<host_memory> {
    const auto it = table_of.find(&m);
    if (it == table_of.end()) return {};
    layers::LoraWeight<host_memory> r;
    r.adapters = TensorView<const kernels::LoraFactorRef, 1>(it->second->data(), {static_cast<index_t>(n_ad)});
    for (const auto& f : *it->second) r.max_rank = std::max<index_t>(r.max_rank, f.rank);
    return r;
  };
  const auto mlp = [&](const layers::MlpWeights<host_memory>& m) {
    return layers::MlpLora<host_memory>{table(m.gate), table(m.up), table(m.down)};
  };
  for (const auto& ad : adapters) out.names.push_back(ad.name);
  out.layers.resize(w.layers.size());
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights<host_memory>& L = w.layers[l];
    LayerLora<host_memory>& LL = out.layers[l];
    LL.attn = layers::AttentionLora<host_memory>{table(L.attn.q), table(L.attn.k), table(L.attn.v), table(L.attn.o)};
    LL.mlp = mlp(L.mlp);
    LL.moe.shared = mlp(L.moe_weights.shared);
    LL.moe.shared_gate = table(L.moe_weights.shared_gate);
    const layers::ExpertBank<host_memory>& bank = L.moe_weights.experts;
    std::vector<layers::ExpertLora<host_memory>> experts(static_cast<std::size_t>(bank.n_experts));
    bool any = false;
    const auto at = [&](const std::vector<HostMatrix>& v, index_t e) {
      return e < static_cast<index_t>(v.size()) ? table(v[e]) : layers::LoraWeight<host_memory>{};
    };
    for (index_t e = 0; e < bank.n_experts; ++e) {
      auto& x = experts[e];
      x = layers::ExpertLora<host_memory>{at(bank.gate, e), at(bank.up, e), at(bank.gate_up, e), at(bank.down, e)};
      any = any || !x.gate.empty() || !x.up.empty() || !x.gate_up.empty() || !x.down.empty();
    }
    if (any) LL.moe.experts = std::move(experts);
  }
  if (!w.tied) out.lm_head = table(w.lm_head);
  out.storage = storage;
  return out;
}

}  // namespace moe::model
