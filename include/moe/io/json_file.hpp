// Strict JSON reading for checkpoint files (config.json, *.index.json, safetensors headers,
// reference.json): invalid JSON, nesting deeper than limits::kMaxJsonDepth and duplicate object
// keys (which nlohmann::json would silently resolve to the last one) become moe::Error naming the
// source and the position. The parser itself is core/json.hpp's.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/json.hpp"
#include "moe/core/limits.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <string_view>

namespace moe::io {

// Parses `text` as one JSON document (Error kFormat naming `source_name` on syntax errors, invalid
// UTF-8, numbers out of range, nesting deeper than max_depth, repeated keys at any depth).
inline nlohmann::json parse_json_text(std::string_view text, std::string_view source_name,
                                      std::size_t max_depth = limits::kMaxJsonDepth) {
  JsonParseOptions options;
  options.max_depth = max_depth;
  return parse_json(text, source_name, options);
}

// Reads and parses a whole JSON file with parse_json_text's rules. Throws Error(kIo) when the file
// is missing, not a regular file (FIFOs and devices are refused without blocking), larger than
// max_bytes or unreadable; Error(kFormat) naming the file and the position when its content is not
// valid JSON or repeats a key.
inline nlohmann::json read_json_file(const std::filesystem::path& path,
                                     std::size_t max_bytes = limits::kMaxJsonFileBytes,
                                     std::string_view what = "JSON file") {
  return read_json(path, max_bytes, what);
}

}  // namespace moe::io
