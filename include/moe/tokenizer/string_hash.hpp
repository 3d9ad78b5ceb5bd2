// Transparent string hashing, so maps keyed by std::string can be searched with std::string_view
// without building a temporary string (C++20 heterogeneous lookup).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace moe::tokenizer {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

using TokenMap = StringMap<std::int32_t>;

}  // namespace moe::tokenizer
