// Typed, error-reporting access to tokenizer.json: every wrong type or missing key becomes a
// moe::Error (kTokenizer) that names the file and the key path, e.g.
// "tokenizer.json: model.merges[12]: expected a string or a pair of strings, got number".
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/file.hpp"
#include "moe/core/json.hpp"
#include "moe/core/limits.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace moe::tokenizer {

using Json = nlohmann::json;

// Parses JSON text with core/json.hpp's iterative parser: kTokenizer with the byte position if it
// is not JSON, nests deeper than limits::kMaxJsonDepth or holds a number out of range. A repeated
// key keeps its last value, as serde_json's maps do in the tokenizers library. `name` is the file
// the text came from, for the message.
inline Json parse_tokenizer_json(std::string_view text, std::string_view name) {
  JsonParseOptions options;
  options.reject_duplicate_keys = false;
  options.code = ErrorCode::kTokenizer;
  return parse_json(text, name, options);
}

// Reads and parses a JSON file of at most max_bytes: kIo if it is missing, not a regular file
// (FIFOs and devices are refused without blocking), too large or unreadable; kTokenizer with the
// parse position if it is not JSON.
inline Json read_tokenizer_json_file(const std::filesystem::path& path,
                                     std::size_t max_bytes = limits::kMaxJsonFileBytes,
                                     std::string_view what = "JSON file") {
  return parse_tokenizer_json(read_file(path, max_bytes, what), path.string());
}

// A position in a parsed JSON document: the value, its key path and the file it came from.
// Non-owning: the document and the file name must outlive it.
class JsonNode {
 public:
  JsonNode(const Json& value, std::string path, const std::string& file)
      : value_(&value), path_(std::move(path)), file_(&file) {}

  const Json& json() const noexcept { return *value_; }
  const std::string& path() const noexcept { return path_; }
  const std::string& file() const noexcept { return *file_; }
  bool is_null() const noexcept { return value_->is_null(); }
  bool is_object() const noexcept { return value_->is_object(); }
  bool is_array() const noexcept { return value_->is_array(); }
  bool is_string() const noexcept { return value_->is_string(); }

  template <class... Args>
  [[noreturn]] void fail_here(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) const {
    throw Error(code, fmt::format("{}: {}: {}", *file_, path_.empty() ? std::string("(root)") : path_,
                                  fmt::format(f, std::forward<Args>(args)...)));
  }

  // The member `key` of this object; nullopt if absent or null. Fails if this is not an object.
  std::optional<JsonNode> find(std::string_view key) const {
    expect_object();
    auto it = value_->find(key);
    if (it == value_->end() || it->is_null()) return std::nullopt;
    return JsonNode(*it, child_path(key), *file_);
  }
  // The member `key`, which must be present and not null.
  JsonNode at(std::string_view key) const {
    auto node = find(key);
    if (!node) fail_here(ErrorCode::kTokenizer, "missing required key '{}'", key);
    return *node;
  }

  std::size_t size() const {
    expect_array();
    return value_->size();
  }
  JsonNode operator[](std::size_t i) const {
    expect_array();
    return JsonNode((*value_)[i], fmt::format("{}[{}]", path_, i), *file_);
  }

  std::string_view type_name() const noexcept { return value_->type_name(); }

  const std::string& as_string() const {
    if (!value_->is_string()) fail_here(ErrorCode::kTokenizer, "expected a string, got {}", type_name());
    return value_->get_ref<const std::string&>();
  }
  // A string holding exactly one code point (Metaspace's replacement, a Split delimiter, ...).
  char32_t as_single_char() const {
    const std::string& s = as_string();
    std::size_t len = 0;
    if (s.empty() || (utf8_decode(s, 0, len), len != s.size()))
      fail_here(ErrorCode::kTokenizer, "expected a single character, got '{}'", s);
    return utf8_decode(s, 0, len);
  }
  bool as_bool() const {
    if (!value_->is_boolean()) fail_here(ErrorCode::kTokenizer, "expected a boolean, got {}", type_name());
    return value_->get<bool>();
  }
  std::int64_t as_int() const {
    if (!value_->is_number_integer())
      fail_here(ErrorCode::kTokenizer, "expected an integer, got {}", describe(*value_));
    if (value_->is_number_unsigned()) {
      const auto u = value_->get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(INT64_MAX)) fail_here(ErrorCode::kTokenizer, "integer {} out of range", u);
      return static_cast<std::int64_t>(u);
    }
    return value_->get<std::int64_t>();
  }
  double as_number() const {
    if (!value_->is_number()) fail_here(ErrorCode::kTokenizer, "expected a number, got {}", type_name());
    return value_->get<double>();
  }

  std::string string_or(std::string_view key, std::string fallback) const {
    auto n = find(key);
    return n ? n->as_string() : fallback;
  }
  bool bool_or(std::string_view key, bool fallback) const {
    auto n = find(key);
    return n ? n->as_bool() : fallback;
  }
  std::int64_t int_or(std::string_view key, std::int64_t fallback) const {
    auto n = find(key);
    return n ? n->as_int() : fallback;
  }

  // The "type" member of a component object (normalizer, pre-tokenizer, model, ...).
  const std::string& type() const { return at("type").as_string(); }

  // Calls f(key, JsonNode) for each member of this object.
  template <class F>
  void for_each_member(F&& f) const {
    expect_object();
    for (auto it = value_->begin(); it != value_->end(); ++it)
      f(it.key(), JsonNode(it.value(), child_path(it.key()), *file_));
  }

  void expect_object() const {
    if (!value_->is_object()) fail_here(ErrorCode::kTokenizer, "expected an object, got {}", type_name());
  }
  void expect_array() const {
    if (!value_->is_array()) fail_here(ErrorCode::kTokenizer, "expected an array, got {}", type_name());
  }

 private:
  std::string child_path(std::string_view key) const {
    return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key);
  }

  const Json* value_;
  std::string path_;
  const std::string* file_;
};

}  // namespace moe::tokenizer
