// load_model_with_lora: a base checkpoint (HF folder or GGUF, as load_model) with PEFT LoRA
// adapters merged at load (model/lora.hpp): the touched matrices become private f32 copies of
// W + scale·B·A, everything else stays in place in the mapped files; the forward pass is unchanged.
// load_model_with_adapters: the unmerged mode, every adapter resident (model/lora.hpp's
// make_lora_tables) and each sequence picking one by name or none.
#pragma once

#include "moe/core/error.hpp"
#include "moe/io/load_model.hpp"
#include "moe/io/lora_adapter.hpp"
#include "moe/model/lora.hpp"
#include "moe/model/model.hpp"
#include "moe/model/upload.hpp"

#include <filesystem>
#include <memory>
#include <span>

namespace moe {

// Loads `folder` for Backend with every adapter of `adapters` merged in (in order; a host backend
// keeps the untouched weights mapped, a device backend uploads the merged set once). Errors: those
// of load_model, plus the adapter errors of model::resolve_lora_target / merge_lora (target not in
// the base, shape or expert-count mismatch with the base, unsupported module or weight format),
// each naming the adapter tensor. Only moe::Error escapes.
template <class Backend = backend::cpu>
std::shared_ptr<const BasicModel<Backend>> load_model_with_lora(const std::filesystem::path& folder,
                                                                std::span<const io::LoraAdapter> adapters,
                                                                const model::UploadProgress& progress = {}) {
  return catch_as_error("load_model_with_lora", [&] {
    // The base as the host sees it: its weights in place, the model object keeping the mapping alive.
    const std::shared_ptr<const BasicModel<backend::reference>> host = load_model<backend::reference>(folder);
    auto [weights, storage] = model::merge_lora(host->weights(), std::shared_ptr<const void>(host), adapters);
    ModelConfig config = host->config();
    if constexpr (is_host_memory_v<typename Backend::memory>) {
      (void)progress;
      return std::make_shared<const BasicModel<Backend>>(std::move(config), std::move(weights), std::move(storage));
    } else {
      auto uploaded = model::upload_weights<Backend>(weights, progress);
      return std::make_shared<const BasicModel<Backend>>(std::move(config), std::move(uploaded.weights),
                                                         std::move(uploaded.storage));
    }
  });
}

// Loads `folder` for a host Backend with every adapter of `adapters` kept unmerged and resident
// (adapter a is SequenceChunk::adapter a; BasicModel::adapter_index finds it by name). The base
// weights stay in place in the mapped files, unchanged; a sequence without an adapter runs the
// base model exactly. Errors: those of load_model, plus the adapter errors of resolve_lora_target
// (as the merged mode) and kInvalidArgument for unnamed or duplicate names; device backends are
// kUnsupported for now. Only moe::Error escapes.
template <class Backend = backend::cpu>
std::shared_ptr<const BasicModel<Backend>> load_model_with_adapters(const std::filesystem::path& folder,
                                                                    std::span<const io::LoraAdapter> adapters) {
  return catch_as_error("load_model_with_adapters", [&]() -> std::shared_ptr<const BasicModel<Backend>> {
    if constexpr (is_host_memory_v<typename Backend::memory>) {
      const std::shared_ptr<const BasicModel<backend::reference>> host = load_model<backend::reference>(folder);
      model::ModelLora<host_memory> lora = model::make_lora_tables(host->weights(), adapters);
      return std::make_shared<const BasicModel<Backend>>(host->config(), host->weights(),
                                                         std::shared_ptr<const void>(host), std::move(lora));
    } else {
      fail(ErrorCode::kUnsupported, "load_model_with_adapters: unmerged LoRA adapters are not supported by backend "
           "{} yet (load_model_with_lora merges them)", Backend::name);
    }
  });
}

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template std::shared_ptr<const BasicModel<backend::cpu>> load_model_with_lora<backend::cpu>(
    const std::filesystem::path&, std::span<const io::LoraAdapter>, const model::UploadProgress&);
extern template std::shared_ptr<const BasicModel<backend::reference>> load_model_with_lora<backend::reference>(
    const std::filesystem::path&, std::span<const io::LoraAdapter>, const model::UploadProgress&);
extern template std::shared_ptr<const BasicModel<backend::cpu>> load_model_with_adapters<backend::cpu>(
    const std::filesystem::path&, std::span<const io::LoraAdapter>);
extern template std::shared_ptr<const BasicModel<backend::reference>> load_model_with_adapters<backend::reference>(
    const std::filesystem::path&, std::span<const io::LoraAdapter>);
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template std::shared_ptr<const BasicModel<backend::cuda>> load_model_with_lora<backend::cuda>(
    const std::filesystem::path&, std::span<const io::LoraAdapter>, const model::UploadProgress&);
extern template std::shared_ptr<const BasicModel<backend::cuda>> load_model_with_adapters<backend::cuda>(
    const std::filesystem::path&, std::span<const io::LoraAdapter>);
#endif

}  // namespace moe
