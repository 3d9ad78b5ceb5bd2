// A model conformance case: a fixture folder (config.json, model.safetensors, reference.json,
// reference.safetensors; DESIGN.md §9) checked against transformers' logits and greedy output.
// A LoRA case (tests/fixtures/lora/<case>: adapter_config.json, adapter_model.safetensors and the
// same reference files, made by tools/make_lora_fixtures.py) runs its base fixture
// ../../models/<reference.json "base"> with the adapter merged at load.
#pragma once

#include "case_result.hpp"

#include <moe/io/json_file.hpp>
#include <moe/io/load_lora_model.hpp>
#include <moe/io/load_model.hpp>
#include <moe/io/lora_adapter.hpp>
#include <moe/io/safetensors.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace moe::conformance {

inline constexpr float kLogitTolerance = 2e-3f;  // DESIGN.md §9
inline constexpr std::size_t kContinuation = 12;
inline constexpr std::size_t kMaxContinuation = 1024;  // longest greedy continuation a reference may hold

inline bool is_lora_case(const std::filesystem::path& dir) {
  return std::filesystem::is_regular_file(dir / "reference.json") &&
         std::filesystem::is_regular_file(dir / "adapter_config.json");
}

inline bool is_model_case(const std::filesystem::path& dir) {
  return (std::filesystem::is_regular_file(dir / "reference.json") &&
          std::filesystem::is_regular_file(dir / "config.json")) ||
         is_lora_case(dir);
}

// The model a case runs: the folder (or .gguf) itself, or a LoRA case's base with its adapter.
template <class Backend>
std::shared_ptr<const BasicModel<Backend>> load_case_model(const std::filesystem::path& model_path) {
  if (!is_lora_case(model_path)) return load_model<Backend>(model_path);
  const nlohmann::json ref =
      io::read_json_file(model_path / "reference.json", limits::kMaxJsonFileBytes, "reference.json");
  require(ref.is_object() && ref.contains("base") && ref["base"].is_string(), ErrorCode::kFormat,
          "{}: reference.json of a LoRA case has no \"base\"", model_path.string());
  // The case folder without a trailing separator ("lora/case/" names the same folder as "lora/case").
  const std::filesystem::path dir = model_path.has_filename() ? model_path : model_path.parent_path();
  const auto base = dir.parent_path().parent_path() / "models" / ref["base"].get<std::string>();
  const io::LoraAdapter adapter = io::load_lora_adapter(model_path);
  return load_model_with_lora<Backend>(base, std::span<const io::LoraAdapter>(&adapter, 1));
}

namespace detail {

// Index of the largest value; ties go to the lower index (torch.argmax).
inline std::int32_t argmax(const float* row, std::size_t n) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < n; ++i) {
    if (row[i] > row[best]) best = i;
  }
  return static_cast<std::int32_t>(best);
}

inline std::vector<std::int32_t> top_ids(const float* row, std::size_t n, std::size_t k) {
  std::vector<std::int32_t> idx(n);
  for (std::size_t i = 0; i < n; ++i) idx[i] = static_cast<std::int32_t>(i);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(std::min(k, n)), idx.end(),
                    [&](std::int32_t a, std::int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  idx.resize(std::min(k, n));
  return idx;
}

inline std::vector<std::int32_t> int_list(const nlohmann::json& j, const std::string& what) {
  require(j.is_array(), ErrorCode::kFormat, "reference.json: {} must be a list", what);
  std::vector<std::int32_t> out;
  for (const auto& v : j) {
    require(v.is_number_integer(), ErrorCode::kFormat, "reference.json: {} must hold integers", what);
    const auto id = v.get<std::int64_t>();
    require(id >= 0 && id <= std::numeric_limits<std::int32_t>::max(), ErrorCode::kFormat,
            "reference.json: {} holds {}, not a token id", what, id);
    out.push_back(static_cast<std::int32_t>(id));
  }
  return out;
}

inline std::string join(const std::vector<std::int32_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace detail

// Loads the model in `dir` and checks every prompt of reference.json: all-position prefill logits
// within kLogitTolerance of reference.safetensors logits_i, the last position's top-5 ids, and the
// 12-token greedy continuation run through decode steps (EOS not special; sparse-attention models
// recompute the sequence each step, see below). Never throws: errors
// become a failed result carrying the message.
// `model_path` is the folder itself, or a .gguf file whose folder holds the reference files;
// `tolerance` bounds |logit - reference| (kLogitTolerance unless a quantized file asks for more).
// `logits_only` skips the top-5 and greedy checks (quantized files: a few-ulp change of a logit
// may reorder near-ties of these small random models).
template <class Backend = backend::cpu>
CaseResult check_model_case(const std::filesystem::path& model_path, float tolerance = kLogitTolerance,
                            bool logits_only = false) {
  const bool gguf = model_path.extension() == ".gguf";
  const std::filesystem::path dir = gguf ? model_path.parent_path() : model_path;
  CaseResult r;
  r.name = gguf ? model_path.filename().string() : dir.filename().string();
  if (r.name.empty()) r.name = dir.parent_path().filename().string();
  try {
    const auto model = load_case_model<Backend>(model_path);
    using ModelType = BasicModel<Backend>;
    const ModelConfig& cfg = model->config();
    const std::size_t V = cfg.vocab_size;
    const nlohmann::json ref = io::read_json_file(dir / "reference.json", limits::kMaxJsonFileBytes, "reference.json");
    require(ref.is_object() && ref.contains("prompts") && ref["prompts"].is_array() && !ref["prompts"].empty(),
            ErrorCode::kFormat, "{}: reference.json has no prompts", dir.string());
    const auto tensors = io::SafetensorsFile::open(dir / "reference.safetensors");

    float max_diff = 0.0f;
    std::size_t greedy_ok = 0, greedy_total = 0;
    for (std::size_t p = 0; p < ref["prompts"].size(); ++p) {
      const auto& pr = ref["prompts"][p];
      const auto ids = detail::int_list(pr.at("input_ids"), fmt::format("prompts[{}].input_ids", p));
      const auto expected_greedy =
          detail::int_list(pr.at("greedy_continuation"), fmt::format("prompts[{}].greedy_continuation", p));
      const auto expected_top5 = detail::int_list(pr.at("last_top5_ids"), fmt::format("prompts[{}].last_top5_ids", p));
      require(!ids.empty(), ErrorCode::kFormat, "reference.json: prompts[{}] is empty", p);
      const std::size_t n = ids.size();
      // The cache below is sized from these lengths: bound them by the format and the model
      // before anything is allocated.
      require(expected_greedy.size() <= kMaxContinuation, ErrorCode::kFormat,
              "reference.json: prompts[{}].greedy_continuation has {} tokens, more than {}", p,
              expected_greedy.size(), kMaxContinuation);
      require(expected_top5.size() <= V, ErrorCode::kFormat, "reference.json: prompts[{}].last_top5_ids has {} ids for a vocabulary of {}",
              p, expected_top5.size(), V);
      require(cfg.max_position_embeddings == 0 || n + expected_greedy.size() <= cfg.max_position_embeddings,
              ErrorCode::kFormat, "reference.json: prompts[{}] has {} + {} tokens, more than max_position_embeddings {}", p, n,
              expected_greedy.size(), cfg.max_position_embeddings);

      const std::string name = fmt::format("logits_{}", p);
      const io::TensorInfo* lt = tensors.find(name);
      require(lt != nullptr && lt->dtype_name == "F32" && lt->shape.size() == 2 && lt->shape[0] == n &&
                  lt->shape[1] == V,
              ErrorCode::kFormat, "reference.safetensors: {} missing or not F32 [{}, {}]", name, n, V);
      std::vector<float> expected(n * V);
      std::memcpy(expected.data(), lt->bytes.data(), expected.size() * sizeof(float));

      auto cache = model->make_cache(n + expected_greedy.size() + 1);
      auto ws = model->make_workspace(n);
      Tensor<float, 2> logits({n, V});
      const typename ModelType::SequenceChunk prefill{&cache, std::span<const std::int32_t>(ids)};
      model->forward(std::span<const typename ModelType::SequenceChunk>(&prefill, 1), ws, logits.view(), true);

      for (std::size_t t = 0; t < n; ++t) {
        for (std::size_t v = 0; v < V; ++v) {
          const float d = std::fabs(logits(t, v) - expected[t * V + v]);
          if (!(d <= tolerance)) {
            r.detail = fmt::format("prompt {} position {} token {}: logit {:.6f}, reference {:.6f} (|diff| {:.3g} > {})",
                                   p, t, v, logits(t, v), expected[t * V + v], d, tolerance);
            return r;
          }
          max_diff = std::max(max_diff, d);
        }
      }
      if (logits_only) continue;
      const auto top5 = detail::top_ids(&logits(n - 1, 0), V, expected_top5.size());
      if (top5 != expected_top5) {
        r.detail = fmt::format("prompt {}: last top-5 ids {} differ from reference {}", p, detail::join(top5),
                               detail::join(expected_top5));
        return r;
      }

      // Greedy continuation: the first token from the prefill, the rest one decode step each.
      // Sparse attention (DSA) instead recomputes the whole sequence every step, as the reference
      // does (tools/make_fixtures.py: greedy() with use_cache=False): torch's CPU topk resolves
      // tied index scores by where std::nth_element leaves them, which depends on the length of
      // the masked row, so an earlier row may keep other tied positions once the sequence is
      // longer; incremental decode keeps the selection made when the row was new (as
      // transformers' cached generate does), so the two may part on ties.
      std::vector<std::int32_t> got;
      std::int32_t next = detail::argmax(&logits(n - 1, 0), V);
      Tensor<float, 2> step_logits({1, V});
      const bool recompute = cfg.dsa.top_k > 0;
      std::vector<std::int32_t> sequence(ids.begin(), ids.end());
      auto recompute_ws = model->make_workspace(recompute ? n + expected_greedy.size() : 1);
      while (got.size() < expected_greedy.size()) {
        got.push_back(next);
        if (got.size() == expected_greedy.size()) break;
        if (recompute) {
          sequence.push_back(got.back());
          auto fresh = model->make_cache(sequence.size() + 1);
          const typename ModelType::SequenceChunk all{&fresh, std::span<const std::int32_t>(sequence)};
          model->forward(std::span<const typename ModelType::SequenceChunk>(&all, 1), recompute_ws, step_logits.view(),
                         false);
        } else {
          const typename ModelType::SequenceChunk step{&cache, std::span<const std::int32_t>(&got.back(), 1)};
          model->forward(std::span<const typename ModelType::SequenceChunk>(&step, 1), ws, step_logits.view(), false);
        }
        next = detail::argmax(&step_logits(0, 0), V);
      }
      greedy_total += expected_greedy.size();
      for (std::size_t i = 0; i < expected_greedy.size(); ++i) {
        if (got[i] != expected_greedy[i]) {
          r.detail = fmt::format("prompt {}: greedy token {} is {}, reference {} (got [{}], reference [{}])", p, i,
                                 got[i], expected_greedy[i], detail::join(got), detail::join(expected_greedy));
          return r;
        }
        ++greedy_ok;
      }
    }
    r.passed = true;
    r.detail = logits_only ? fmt::format("max|Δ|={:.2e} (logits only, bound {})", max_diff, tolerance)
                           : fmt::format("max|Δ|={:.2e} greedy {}/{}", max_diff, greedy_ok, greedy_total);
  } catch (const std::exception& e) {
    r.passed = false;
    r.detail = e.what();
  }
  return r;
}

}  // namespace moe::conformance
