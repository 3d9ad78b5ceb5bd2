// load_model: a Hugging Face checkpoint folder (config.json + model.safetensors or its shards)
// -> an immutable Model whose weights are used in place from the mapped files.
#pragma once

#include "moe/core/error.hpp"
#include "moe/io/checkpoint_quantization.hpp"
#include "moe/io/gguf_model.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/tensor_store.hpp"
#include "moe/model/config.hpp"
#include "moe/model/model.hpp"
#include "moe/model/upload.hpp"
#include "moe/model/weights.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace moe {

namespace io {

// TensorSource over a TensorStore: every tensor is fetched through TensorStore::view, which checks
// its dtype and shape and names the tensor and folder on failure.
class StoreTensorSource final : public TensorSource {
 public:
  explicit StoreTensorSource(const TensorStore& store) : store_(store) {}

  bool contains(std::string_view name) const override { return store_.contains(name); }

  std::optional<std::vector<index_t>> shape_of(std::string_view name) const override {
    const TensorInfo* t = store_.find(name);
    if (t == nullptr) return std::nullopt;
    return t->shape;
  }

  TensorRef get(std::string_view name, std::span<const index_t> shape) const override {
    const TensorInfo& info = store_.get(name);
    if (!info.dtype) {
      fail(ErrorCode::kUnsupported, "tensor {} in {} has dtype {}; weights must be F32, BF16 or F16", name,
           store_.folder().string(), info.dtype_name);
    }
    TensorRef ref;
    ref.dtype = *info.dtype;
    visit_dtype(ref.dtype, [&](auto tag) {
      using T = decltype(tag);
      switch (shape.size()) {
        case 1: ref.data = as_bytes(store_.view<T, 1>(name, {shape[0]}).data()); break;
        case 2: ref.data = as_bytes(store_.view<T, 2>(name, {shape[0], shape[1]}).data()); break;
        case 3: ref.data = as_bytes(store_.view<T, 3>(name, {shape[0], shape[1], shape[2]}).data()); break;
        default: fail(ErrorCode::kInternal, "tensor {}: unsupported rank {}", name, shape.size());
      }
    });
    return ref;
  }

 private:
  template <class T>
  static const std::byte* as_bytes(const T* p) {
    return reinterpret_cast<const std::byte*>(p);
  }
  const TensorStore& store_;
};

}  // namespace io

namespace io {

// A model's config and host-bound weights with what keeps their bytes alive (the mapped files,
// repacked or converted copies): the part of loading that does not depend on the backend.
struct HostModelParts {
  ModelConfig config;
  model::ModelWeights<> weights;
  std::shared_ptr<const void> storage;
  // Hands bytes of the mapped file back to the kernel once a host backend has copied them (the
  // cpu backend's repack, model/repack.hpp); empty where the bytes are not a file mapping.
  model::ReleaseBytes release;
};

// Reads `folder` (or a .gguf file) into host parts; the errors of load_model.
inline HostModelParts load_host_parts(const std::filesystem::path& folder) {
  std::error_code gguf_ec;
  if (folder.extension() == ".gguf" && std::filesystem::is_regular_file(folder, gguf_ec)) {
    // A GGUF file (llama.cpp's layout, io/gguf_model.hpp): config from its metadata, weights in place.
    io::GgufModel g = io::open_gguf_model(folder);
    // (the callback holds the mapping weakly: the model owns it through storage)
    model::ReleaseBytes release = [file = std::weak_ptr<const io::GgufModelStorage>(g.storage)](std::span<const std::byte> b) {
      if (const auto s = file.lock()) s->file.mapping().advise(io::Access::dont_need, b);
    };
    return HostModelParts{std::move(g.config), std::move(g.weights), std::shared_ptr<const void>(g.storage), std::move(release)};
  }
  const auto config_path = folder / "config.json";
  std::error_code ec;
  require(std::filesystem::exists(config_path, ec), ErrorCode::kIo, "no config.json in {}", folder.string());
  const nlohmann::json j = io::read_json_file(config_path, limits::kMaxConfigJsonBytes, "config.json");
  ModelConfig config = ModelConfig::from_json(j, config_path.string());
  auto store = std::make_shared<io::TensorStore>(io::TensorStore::open_folder(folder));
  const io::StoreTensorSource plain(*store);
  // FP8 / MXFP4 checkpoints: their quantized tensors repacked into block formats at load.
  const io::MlaSplit mla =
      config.mla ? io::MlaSplit{config.n_heads, config.qk_nope_head_dim, config.v_head_dim} : io::MlaSplit{};
  const io::CheckpointTensorSource source(store, plain, io::parse_quantization_config(j, config_path.string()), mla);
  model::ModelWeights<> weights = model::bind_weights(config, source);
  return HostModelParts{std::move(config), std::move(weights), source.storage(), {}};
}

// The model of `parts` on `Backend`: host backends use the weights in place, a device backend
// uploads them (progress after each tensor) and drops the host bytes.
template <class Backend>
std::shared_ptr<const BasicModel<Backend>> model_from_parts(HostModelParts parts, const model::UploadProgress& progress) {
  if constexpr (is_host_memory_v<typename Backend::memory>) {
    (void)progress;
    return std::make_shared<const BasicModel<Backend>>(std::move(parts.config), std::move(parts.weights),
                                                       std::move(parts.storage), typename BasicModel<Backend>::Lora{},
                                                       parts.release);
  } else {
    auto uploaded = model::upload_weights<Backend>(parts.weights, progress);
    return std::make_shared<const BasicModel<Backend>>(std::move(parts.config), std::move(uploaded.weights),
                                                       std::move(uploaded.storage));
  }
}

}  // namespace io

// Loads config.json and the safetensors weights of `folder` (or, when `folder` is a .gguf file, a
// llama.cpp model GGUF: see io/gguf_model.hpp) for `Backend` (default: the cpu).
// Host backends use the weights in place in the mapped files; a device backend uploads them once
// (progress, when given, is called after each tensor) and drops the mapping. Errors: kIo (missing
// files), kFormat (bad JSON / safetensors), kConfig / kUnsupported (config, or a weight format
// the backend has no kernels for), kMissingTensor / kShapeMismatch (weights), each naming the
// file, key or tensor; kOutOfMemory / kDevice when the weights do not fit. Only moe::Error escapes.
// (io/load_quantized_model.hpp adds the overload that quantizes at load.)
template <class Backend = backend::cpu>
std::shared_ptr<const BasicModel<Backend>> load_model(const std::filesystem::path& folder,
                                                      const model::UploadProgress& progress = {}) {
  return catch_as_error("load_model", [&] { return io::model_from_parts<Backend>(io::load_host_parts(folder), progress); });
}

// This project's own executables link the host backends' loaders from instances/ (see
// MOE_EXTERN_GRAPH in model/transformer.hpp): the whole load path (config parsing, safetensors
// and GGUF readers, weight binding) is then compiled once, not in every tool and test.
#if defined(MOE_EXTERN_GRAPH)
extern template std::shared_ptr<const BasicModel<backend::cpu>> load_model<backend::cpu>(
    const std::filesystem::path&, const model::UploadProgress&);
extern template std::shared_ptr<const BasicModel<backend::reference>> load_model<backend::reference>(
    const std::filesystem::path&, const model::UploadProgress&);
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template std::shared_ptr<const BasicModel<backend::cuda>> load_model<backend::cuda>(
    const std::filesystem::path&, const model::UploadProgress&);
#endif

}  // namespace moe
