// load_model with options: the weights quantized at load time (io/load_quantization.hpp), e.g.
// load_model(dir, {.quantize = "q4_k_m"}) holds what `moe-quantize dir out.gguf --type q4_k_m`
// would write, without writing it. A separate header so that the graph's other users do not
// parse the GGUF writer's type rules.
#pragma once

#include "moe/io/load_model.hpp"
#include "moe/io/load_quantization.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

namespace moe {

struct LoadOptions {
  // "" (the weights as stored) or a moe-quantize type: q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k
  // q5_k q6_k iq4_nl iq4_xs q4_k_m mxfp4 bf16 f16.
  std::string quantize;
  io::LoadQuantizeReport* report = nullptr;  // filled when given
};

// load_model(folder, progress) with `options` applied to the host weights before they are used or
// uploaded. A device backend without kernels for the chosen format answers kUnsupported.
template <class Backend = backend::cpu>
std::shared_ptr<const BasicModel<Backend>> load_model(const std::filesystem::path& folder, const LoadOptions& options,
                                                      const model::UploadProgress& progress = {}) {
  return catch_as_error("load_model", [&] {
    io::HostModelParts parts = io::load_host_parts(folder);
    if (!options.quantize.empty()) {
      auto converted = io::quantize_model_weights(parts.config, parts.weights, options.quantize, options.report);
      // Both the mapped file (what was not converted) and the converted copies stay alive.
      parts.storage = std::make_shared<std::pair<std::shared_ptr<const void>, std::shared_ptr<const void>>>(
          std::move(parts.storage), std::move(converted));
    }
    return io::model_from_parts<Backend>(std::move(parts), progress);
  });
}

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp): the quantizers and the load path are then not compiled in every tool.
#if defined(MOE_EXTERN_GRAPH)
extern template std::shared_ptr<const BasicModel<backend::cpu>> load_model<backend::cpu>(
    const std::filesystem::path&, const LoadOptions&, const model::UploadProgress&);
extern template std::shared_ptr<const BasicModel<backend::reference>> load_model<backend::reference>(
    const std::filesystem::path&, const LoadOptions&, const model::UploadProgress&);
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template std::shared_ptr<const BasicModel<backend::cuda>> load_model<backend::cuda>(
    const std::filesystem::path&, const LoadOptions&, const model::UploadProgress&);
#endif

}  // namespace moe
