// The model graph, the model loaders (plain, quantizing, with LoRA merged) and the runtime
// (sessions, generation, batching, perplexity, the server's scheduler and API service) for one
// backend (cpu and reference; cuda too in CUDA builds, where these translation units are nvcc's),
// instantiated once for all of this project's own executables (tools, tests, benchmarks). They
// are compiled with MOE_EXTERN_GRAPH, which makes the headers declare these instantiations
// extern, so each executable skips compiling the forward pass and every kernel it reaches (about
// 30 s of a tool's 80 s at -O3; in a CUDA build nvcc's whole graph for three backends, which kept
// the tools from building within a 10-minute device call), the load path and the runtime, and
// links this library instead. Applications that include <moe/moe.hpp> are unaffected: without the
// macro everything is instantiated where it is used, as in any header-only library. One backend
// per translation unit (MOE_GRAPH_BACKEND), so that they compile side by side.
#include <moe/io/load_lora_model.hpp>
#include <moe/io/load_quantized_model.hpp>
#include <moe/moe.hpp>
#include <moe/server/service.hpp>

#define B backend::MOE_GRAPH_BACKEND

namespace moe {
namespace model {
template struct Transformer<B>;
}  // namespace model
template class BasicWorkspace<B>;
template class BasicModel<B>;
template std::shared_ptr<const BasicModel<B>> load_model<B>(const std::filesystem::path&, const model::UploadProgress&);
template std::shared_ptr<const BasicModel<B>> load_model<B>(const std::filesystem::path&, const LoadOptions&,
                                                             const model::UploadProgress&);
template std::shared_ptr<const BasicModel<B>> load_model_with_lora<B>(const std::filesystem::path&,
                                                                     std::span<const io::LoraAdapter>,
                                                                     const model::UploadProgress&);
template std::shared_ptr<const BasicModel<B>> load_model_with_adapters<B>(const std::filesystem::path&,
                                                                         std::span<const io::LoraAdapter>);
template class BasicSession<B>;
template GenerationResult generate<B>(BasicSession<B>&, const Tokenizer&, std::span<const std::int32_t>,
                                      const GenerationOptions&, const TokenCallback&);
template class BasicBatchGenerator<B>;
template PerplexityResult perplexity<B>(const BasicModel<B>&, std::span<const std::int32_t>, const PerplexityOptions&,
                                        const std::function<void(index_t, index_t)>&);
namespace server {
template class BasicScheduler<B>;
template class BasicApiService<B>;
}  // namespace server
}  // namespace moe
