// The model graph for the host backends, instantiated once for all of this project's own
// executables (tools, tests, benchmarks). They are compiled with MOE_EXTERN_GRAPH, which makes
// model/transformer.hpp declare these instantiations extern, so each executable skips compiling
// the forward pass and every kernel it reaches (about 30 s of a tool's 80 s at -O3) and links
// this library instead. Applications that include <moe/moe.hpp> are unaffected: without the macro
// the graph is instantiated where it is used, as in any header-only library. One backend per
// translation unit (MOE_GRAPH_BACKEND), so that the two compile side by side.
#include <moe/moe.hpp>

namespace moe::model {
template struct Transformer<backend::MOE_GRAPH_BACKEND>;
}  // namespace moe::model
