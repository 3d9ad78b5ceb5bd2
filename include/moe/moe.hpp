// moecpp umbrella header: the public API. Include this and link the CMake target moe::moe.
#pragma once

// core
#include "moe/core/dtype.hpp"
#include "moe/core/error.hpp"
#include "moe/core/parallel.hpp"
#include "moe/core/tensor.hpp"

// backends
#include "moe/backend/tags.hpp"

// kernels
#include "moe/kernels/kernels.hpp"

// io
#include "moe/io/json_file.hpp"
#include "moe/io/mapped_file.hpp"
#include "moe/io/safetensors.hpp"
#include "moe/io/tensor_store.hpp"

// model

// tokenizer

// runtime
