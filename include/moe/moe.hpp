// moecpp umbrella header: the public API. Include this and link the CMake target moe::moe.
#pragma once

// core
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/format.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"
#include "moe/quant/formats.hpp"  // ggml block formats: layouts, (de)quantize_row

// backends
#include "moe/backend/tags.hpp"

// kernels
#include "moe/kernels/kernels.hpp"
#if defined(MOE_ENABLE_CUDA) && defined(__CUDACC__)
#include "moe/kernels/cuda/check.cuh"
#include "moe/kernels/cuda/device_buffer.cuh"
#include "moe/kernels/cuda/matmul.cuh"
#include "moe/kernels/cuda/rmsnorm.cuh"
#endif

// io
#include "moe/io/gguf.hpp"
#include "moe/io/gguf_dtype.hpp"
#include "moe/io/gguf_tokenizer.hpp"
#include "moe/io/gguf_writer.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/mapped_file.hpp"
#include "moe/io/safetensors.hpp"
#include "moe/io/tensor_store.hpp"
#include "moe/io/load_model.hpp"

// model
#include "moe/layers/kv_cache.hpp"
#include "moe/model/config.hpp"
#include "moe/model/model.hpp"
#include "moe/model/synthetic.hpp"
#include "moe/model/workspace.hpp"

// tokenizer
#include "moe/tokenizer/stream_decoder.hpp"
#include "moe/tokenizer/tokenizer.hpp"

// chat templates
#include "moe/chat/chat_template.hpp"

// runtime
#include "moe/runtime/batch.hpp"
#include "moe/runtime/generate.hpp"
#include "moe/runtime/perplexity.hpp"
#include "moe/runtime/sampler.hpp"
#include "moe/runtime/session.hpp"
#include "moe/runtime/stats.hpp"
#include "moe/runtime/stop_strings.hpp"
