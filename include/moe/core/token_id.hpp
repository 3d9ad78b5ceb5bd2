// The one check of a token id against a vocabulary, shared by the model, the runtime and the
// samplers: an id outside [0, vocab_size) is a kInvalidArgument naming the caller and the values.
#pragma once

#include "moe/core/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace moe {

inline bool is_valid_token_id(std::int64_t id, std::size_t vocab_size) noexcept {
  return id >= 0 && static_cast<std::uint64_t>(id) < vocab_size;
}

inline void check_token_id(std::int64_t id, std::size_t vocab_size, std::string_view where) {
  require(is_valid_token_id(id, vocab_size), ErrorCode::kInvalidArgument, "{}: token id {} outside the vocabulary [0, {})",
          where, id, vocab_size);
}

}  // namespace moe
