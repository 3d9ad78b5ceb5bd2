// PEFT LoRA adapters on disk (adapter_config.json + adapter_model.safetensors, as PEFT 0.21's
// save_pretrained writes them) -> LoraAdapter: each adapted module or parameter with its A and B
// matrices widened to f32 and its scale (lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora;
// rank_pattern / alpha_pattern override both per module). Only parsing and self-consistency live
// here; matching the targets against a base model's weights is model/lora.hpp's job.
#pragma once

#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/safetensors.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace moe::io {

// One adapted weight. For a module (nn.Linear, PEFT's target_modules) n_experts is 1 and the
// update is scale · B · A with A [rank, in], B [out, rank]. For a parameter (PEFT's
// target_parameters, a ParamWrapper) of a fused expert bank stored [n_experts, out, in] (as
// transformers 5 keeps gate_up_proj / down_proj), A is [n_experts·rank, in] with expert e's rows
// e·rank ... e·rank+rank-1, and B is [out, n_experts·rank] with expert e's rank-j column at
// j·n_experts + e (PEFT's ParamWrapper.get_delta_weight: "o r e, e r i -> e o i").
struct LoraTarget {
  std::string module;     // module path in the base model, e.g. "model.layers.0.self_attn.q_proj"
  std::string parameter;  // "" for a module; else the adapted parameter, e.g. "gate_up_proj"
  std::string tensor_a;   // the saved tensor names, for messages
  std::string tensor_b;
  index_t n_experts = 1;
  index_t rank = 0;
  index_t in = 0;
  index_t out = 0;
  float alpha = 0;
  float scale = 0;
  std::vector<float> a;  // [n_experts·rank, in]
  std::vector<float> b;  // [out, n_experts·rank]

  // Expert e's A[j, i] and B[o, j].
  float a_at(index_t e, index_t j, index_t i) const noexcept { return a[static_cast<std::size_t>((e * rank + j) * in + i)]; }
  float b_at(index_t e, index_t o, index_t j) const noexcept {
    return b[static_cast<std::size_t>(o * n_experts * rank + j * n_experts + e)];
  }
  // "module" or "module.parameter".
  std::string site() const { return parameter.empty() ? module : module + "." + parameter; }
};

struct LoraAdapter {
  std::string name;        // how a host selects it (moe-run --lora name=PATH, the server's "model")
  std::string path;        // the folder it was read from
  std::string base_model;  // adapter_config.json's base_model_name_or_path (informative)
  index_t rank = 0;        // the config's r (targets may differ through rank_pattern)
  float alpha = 0;
  bool use_rslora = false;
  std::vector<LoraTarget> targets;  // sorted by site()
};

namespace detail {

inline constexpr std::string_view kPeftPrefix = "base_model.model.";

// The parameter names a fused expert module defines, in definition order. PEFT nests one
// ParamWrapper per targeted parameter in this order (named_parameters(recurse=False)), the first
// one innermost, so a saved name with k ".base_layer" infixes is the k-th targeted parameter
// counted from the last.
inline constexpr std::string_view kExpertParameterOrder[] = {"gate_up_proj", "gate_up_proj_bias", "gate_proj",
                                                             "up_proj",      "down_proj",         "down_proj_bias"};

inline index_t expert_parameter_rank(std::string_view p) {
  for (std::size_t i = 0; i < std::size(kExpertParameterOrder); ++i) {
    if (kExpertParameterOrder[i] == p) return static_cast<index_t>(i);
  }
  return static_cast<index_t>(std::size(kExpertParameterOrder));
}

inline bool ends_with_segment(std::string_view s, std::string_view tail) {
  return s == tail || (s.size() > tail.size() && s.ends_with(tail) && s[s.size() - tail.size() - 1] == '.');
}

// PEFT's get_pattern_key: the first pattern key k (in file order) with re.match("(.*\.)?(k)$").
inline const nlohmann::json* pattern_value(const nlohmann::json& patterns, const std::string& key,
                                           const std::string& source) {
  if (!patterns.is_object()) return nullptr;
  for (auto it = patterns.begin(); it != patterns.end(); ++it) {
    try {
      if (std::regex_match(key, std::regex("(.*\\.)?(" + it.key() + ")"))) return &it.value();
    } catch (const std::regex_error&) {
      fail(ErrorCode::kConfig, "{}: pattern key \"{}\" is not a valid regular expression", source, it.key());
    }
  }
  return nullptr;
}

inline std::vector<float> widen_tensor(const TensorInfo& t) {
  if (!t.dtype) {
    fail(ErrorCode::kUnsupported, "LoRA tensor {} in {} has dtype {}; adapters must be F32, BF16 or F16", t.name,
         t.file, t.dtype_name);
  }
  const index_t n = t.element_count();
  std::vector<float> out(static_cast<std::size_t>(n));
  visit_dtype(*t.dtype, [&](auto tag) {
    using T = decltype(tag);
    const auto* p = reinterpret_cast<const T*>(t.bytes.data());
    for (index_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, float>) {
        out[i] = p[i];
      } else {
        out[i] = to_float(p[i]);
      }
    }
  });
  return out;
}

inline float config_number(const nlohmann::json& j, const char* key, const std::string& source) {
  const auto it = j.find(key);
  require(it != j.end() && it->is_number(), ErrorCode::kConfig, "{}: \"{}\" is missing or not a number", source, key);
  return it->get<float>();
}

}  // namespace detail

// Reads the adapter folder `dir`. Errors (moe::Error naming the file and key or tensor):
// kIo (missing files), kFormat (bad JSON / safetensors, a tensor that is not a LoRA A/B matrix,
// an A without its B), kConfig (missing r / lora_alpha, not a LoRA adapter), kUnsupported (DoRA,
// lora_bias, fan_in_fan_out, modules_to_save, trainable tokens, non-float tensors),
// kShapeMismatch (A's rows or B's columns disagree with the rank, A and B disagree).
inline LoraAdapter load_lora_adapter(const std::filesystem::path& dir, std::string name = {}) {
  return catch_as_error("load_lora_adapter", [&] {
    using namespace detail;
    LoraAdapter ad;
    ad.path = dir.string();
    ad.name = name.empty() ? dir.filename().string() : std::move(name);
    const auto cfg_path = dir / "adapter_config.json";
    const std::string src = cfg_path.string();
    std::error_code ec;
    require(std::filesystem::is_regular_file(cfg_path, ec), ErrorCode::kIo, "no adapter_config.json in {}", ad.path);
    const nlohmann::json cfg = read_json_file(cfg_path, std::size_t{1} << 20, "adapter_config.json");
    require(cfg.is_object(), ErrorCode::kConfig, "{}: not a JSON object", src);
    const std::string peft_type = cfg.value("peft_type", std::string("LORA"));
    require(peft_type == "LORA", ErrorCode::kUnsupported, "{}: peft_type \"{}\" is not LORA", src, peft_type);
    const float r = config_number(cfg, "r", src);
    ad.alpha = config_number(cfg, "lora_alpha", src);
    require(r >= 1 && r == std::floor(r) && r <= 1 << 16, ErrorCode::kConfig, "{}: r = {} is not a positive integer",
            src, r);
    ad.rank = static_cast<index_t>(r);
    ad.use_rslora = cfg.value("use_rslora", false);
    const auto flag = [&](const char* key) {
      const auto it = cfg.find(key);
      return it != cfg.end() && it->is_boolean() && it->get<bool>();
    };
    require(!flag("use_dora"), ErrorCode::kUnsupported, "{}: use_dora (DoRA) adapters are not supported", src);
    require(!flag("fan_in_fan_out"), ErrorCode::kUnsupported, "{}: fan_in_fan_out adapters are not supported", src);
    require(!flag("lora_bias"), ErrorCode::kUnsupported, "{}: lora_bias adapters are not supported", src);
    for (const char* key : {"modules_to_save", "trainable_token_indices"}) {
      const auto it = cfg.find(key);
      require(it == cfg.end() || it->is_null() || (it->is_array() && it->empty()), ErrorCode::kUnsupported,
              "{}: {} is set ({}); only LoRA A/B matrices are supported", src, key, it == cfg.end() ? "" : it->dump());
    }
    if (const auto it = cfg.find("base_model_name_or_path"); it != cfg.end() && it->is_string()) {
      ad.base_model = it->get<std::string>();
    }
    std::vector<std::string> target_parameters;
    if (const auto it = cfg.find("target_parameters"); it != cfg.end() && it->is_array()) {
      for (const auto& p : *it) {
        require(p.is_string(), ErrorCode::kConfig, "{}: target_parameters holds a non-string {}", src, p.dump());
        target_parameters.push_back(p.get<std::string>());
      }
    }
    const nlohmann::json rank_pattern = cfg.value("rank_pattern", nlohmann::json::object());
    const nlohmann::json alpha_pattern = cfg.value("alpha_pattern", nlohmann::json::object());

    const auto st_path = dir / "adapter_model.safetensors";
    require(std::filesystem::is_regular_file(st_path, ec), ErrorCode::kIo, "no adapter_model.safetensors in {}",
            ad.path);
    const SafetensorsFile file = SafetensorsFile::open(st_path);

    // Group the saved tensors by the wrapper that owns them: "<path>.lora_A.weight" / ".lora_B.weight".
    struct Pair {
      const TensorInfo* a = nullptr;
      const TensorInfo* b = nullptr;
    };
    std::map<std::string, Pair, std::less<>> pairs;
    for (const TensorInfo& t : file.tensors()) {
      std::string_view key = t.name;
      require(key.starts_with(kPeftPrefix), ErrorCode::kFormat,
              "{}: tensor {} does not start with \"{}\" (not a PEFT LoRA adapter tensor)", file.name(), t.name,
              kPeftPrefix);
      key.remove_prefix(kPeftPrefix.size());
      bool is_a = false;
      if (key.ends_with(".lora_A.weight")) {
        is_a = true;
        key.remove_suffix(std::string_view(".lora_A.weight").size());
      } else if (key.ends_with(".lora_B.weight")) {
        key.remove_suffix(std::string_view(".lora_B.weight").size());
      } else {
        fail(ErrorCode::kFormat, "{}: unexpected tensor {} (only lora_A.weight / lora_B.weight are supported)",
             file.name(), t.name);
      }
      require(t.shape.size() == 2, ErrorCode::kShapeMismatch, "{}: tensor {} has rank {}, expected a matrix",
              file.name(), t.name, t.shape.size());
      Pair& p = pairs[std::string(key)];
      (is_a ? p.a : p.b) = &t;
    }
    require(!pairs.empty(), ErrorCode::kFormat, "{}: no LoRA tensors", file.name());

    // Per module: the wrapper depths seen (ParamWrappers nest; see kExpertParameterOrder).
    struct Wrapped {
      std::string path;
      index_t depth = 0;
      const Pair* pair = nullptr;
    };
    std::map<std::string, std::vector<Wrapped>, std::less<>> by_module;
    for (const auto& [path, p] : pairs) {
      require(p.a != nullptr, ErrorCode::kMissingTensor, "{}: {}.lora_B.weight has no lora_A.weight", file.name(),
              std::string(kPeftPrefix) + path);
      require(p.b != nullptr, ErrorCode::kMissingTensor, "{}: {}.lora_A.weight has no lora_B.weight", file.name(),
              std::string(kPeftPrefix) + path);
      std::string module_path = path;
      index_t depth = 0;
      while (module_path.ends_with(".base_layer")) {
        module_path.resize(module_path.size() - std::string_view(".base_layer").size());
        ++depth;
      }
      by_module[module_path].push_back(Wrapped{path, depth, &p});
    }

    for (auto& [module_path, wrappers] : by_module) {
      // The parameters of target_parameters that name this module, in definition order.
      std::vector<std::string> params;
      for (const auto& tp : target_parameters) {
        const auto dot = tp.rfind('.');
        const std::string mod = dot == std::string::npos ? std::string() : tp.substr(0, dot);
        const std::string par = dot == std::string::npos ? tp : tp.substr(dot + 1);
        if ((mod.empty() || ends_with_segment(module_path, mod)) &&
            std::find(params.begin(), params.end(), par) == params.end()) {
          params.push_back(par);
        }
      }
      std::stable_sort(params.begin(), params.end(),
                       [](const auto& x, const auto& y) { return expert_parameter_rank(x) < expert_parameter_rank(y); });
      for (const Wrapped& w : wrappers) {
        LoraTarget t;
        t.module = module_path;
        t.tensor_a = w.pair->a->name;
        t.tensor_b = w.pair->b->name;
        if (!params.empty()) {
          require(w.depth < static_cast<index_t>(params.size()), ErrorCode::kFormat,
                  "{}: tensor {} is nested {} wrappers deep but target_parameters names {} parameter(s) of {}",
                  file.name(), t.tensor_a, w.depth, params.size(), module_path);
          t.parameter = params[params.size() - 1 - static_cast<std::size_t>(w.depth)];
        } else {
          require(w.depth == 0, ErrorCode::kFormat,
                  "{}: tensor {} is a nested wrapper but target_parameters does not name {}", file.name(), t.tensor_a,
                  module_path);
        }
        const std::string key = t.site();
        index_t rank = ad.rank;
        if (const auto* v = pattern_value(rank_pattern, t.parameter.empty() ? module_path : key, src)) {
          require(v->is_number_integer() && v->get<long long>() >= 1, ErrorCode::kConfig,
                  "{}: rank_pattern value {} for {} is not a positive integer", src, v->dump(), key);
          rank = static_cast<index_t>(v->get<long long>());
        }
        t.alpha = ad.alpha;
        if (const auto* v = pattern_value(alpha_pattern, t.parameter.empty() ? module_path : key, src)) {
          require(v->is_number(), ErrorCode::kConfig, "{}: alpha_pattern value {} for {} is not a number", src,
                  v->dump(), key);
          t.alpha = v->get<float>();
        }
        t.rank = rank;
        t.scale = ad.use_rslora ? t.alpha / std::sqrt(static_cast<float>(rank)) : t.alpha / static_cast<float>(rank);
        const auto& as = w.pair->a->shape;
        const auto& bs = w.pair->b->shape;
        require(as[0] % rank == 0 && as[0] > 0, ErrorCode::kShapeMismatch,
                "{}: rank mismatch: {} is [{}, {}], its rows are not a multiple of r = {}", file.name(), t.tensor_a,
                as[0], as[1], rank);
        t.n_experts = as[0] / rank;
        require(t.parameter.empty() ? t.n_experts == 1 : true, ErrorCode::kShapeMismatch,
                "{}: rank mismatch: {} is [{}, {}] but r = {} for module {}", file.name(), t.tensor_a, as[0], as[1],
                rank, module_path);
        require(bs[1] == as[0], ErrorCode::kShapeMismatch,
                "{}: rank mismatch: {} is [{}, {}] but {} is [{}, {}] (B's columns must equal A's rows)", file.name(),
                t.tensor_b, bs[0], bs[1], t.tensor_a, as[0], as[1]);
        t.in = as[1];
        t.out = bs[0];
        t.a = widen_tensor(*w.pair->a);
        t.b = widen_tensor(*w.pair->b);
        ad.targets.push_back(std::move(t));
      }
    }
    std::sort(ad.targets.begin(), ad.targets.end(),
              [](const LoraTarget& x, const LoraTarget& y) { return x.site() < y.site(); });
    return ad;
  });
}

}  // namespace moe::io
