// Strict JSON reading for checkpoint files (config.json, *.index.json, safetensors headers):
// invalid JSON and duplicate object keys (which nlohmann::json would silently resolve to the last
// one) become moe::Error naming the source and the position.
#pragma once

#include "moe/core/error.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace moe::io {

// Parses `text` as one JSON document. Rejects (Error kFormat, message naming `source_name`):
// syntax errors and invalid UTF-8 (with line, column and byte offset), and any object that has the
// same key twice, at any depth (with the key and the path of keys leading to that object).
// Comments are not allowed. Thread-safe (no shared state).
inline nlohmann::json parse_json_text(std::string_view text, std::string_view source_name) {
  // One frame per open JSON object: the keys seen so far and the key being read. Arrays push no
  // frame; the path shown in messages lists only object keys, which is enough to find the spot.
  struct Frame {
    std::set<std::string, std::less<>> keys;
    std::string current_key;
  };
  std::vector<Frame> frames;
  auto path_of = [&frames]() {
    std::string path;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
      path += path.empty() ? "" : ".";
      path += frames[i].current_key;
    }
    return path.empty() ? std::string("<top level>") : path;
  };
  const nlohmann::json::parser_callback_t on_event =
      [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) -> bool {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      frames.emplace_back();
    } else if (event == Event::object_end) {
      if (!frames.empty()) frames.pop_back();
    } else if (event == Event::key && !frames.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!frames.back().keys.insert(key).second) {
        fail(ErrorCode::kFormat, "{}: duplicate key \"{}\" in JSON object {}", source_name, key,
             path_of());
      }
      frames.back().current_key = key;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), on_event, /*allow_exceptions=*/true,
                                 /*ignore_comments=*/false);
  } catch (const nlohmann::json::parse_error& e) {
    std::string_view what = e.what();
    if (const auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    fail(ErrorCode::kFormat, "{}: invalid JSON (byte {} of {}): {}", source_name, e.byte,
         text.size(), what);
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range for a number like 1e999
    fail(ErrorCode::kFormat, "{}: invalid JSON: {}", source_name, e.what());
  }
}

// Reads and parses a whole JSON file with parse_json_text's rules. Throws Error(kIo) when the file
// is missing, not a regular file or unreadable; Error(kFormat) naming the file and the position
// when its content is not valid JSON or repeats a key.
inline nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    fail(ErrorCode::kIo, "cannot read {}: file does not exist", path.string());
  }
  if (!std::filesystem::is_regular_file(status)) {
    fail(ErrorCode::kIo, "cannot read {}: not a regular file", path.string());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorCode::kIo, "cannot open {}", path.string());
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(ErrorCode::kIo, "error while reading {}", path.string());
  return parse_json_text(text, path.string());
}

}  // namespace moe::io
