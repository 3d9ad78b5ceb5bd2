// JSON for every file moecpp reads (config.json, index files, safetensors headers,
// tokenizer.json, generation_config.json): one strict, iterative parser with a nesting cap, and a
// bounded, non-recursive description of a value for error messages.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/file.hpp"
#include "moe/core/limits.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe {

struct JsonParseOptions {
  std::size_t max_depth = limits::kMaxJsonDepth;  // open objects + arrays at any point
  bool reject_duplicate_keys = true;              // false: the last value of a repeated key wins
  ErrorCode code = ErrorCode::kFormat;            // the code of every parse error
};

namespace json_detail {

// SAX handler that builds the DOM like nlohmann's own parser, refuses nesting deeper than
// max_depth and (optionally) duplicate keys. (nlohmann's parser_callback_t could see the keys
// too, but its DOM builder rescans the parent object each time a child object ends: quadratic in
// the number of tensors of a safetensors header, minutes for 100k entries. This builder is
// O(n log n).) The depth cap is what keeps every recursive nlohmann operation (copy, compare,
// dump) safe on a parsed document, and it stops deep-nesting memory amplification early.
class JsonDomBuilder final : public nlohmann::json_sax<nlohmann::json> {
 public:
  using json = nlohmann::json;

  JsonDomBuilder(json& root, std::string_view source, std::size_t text_size, const JsonParseOptions& options)
      : root_(root), source_(source), text_size_(text_size), options_(options) {}

  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t& /*text*/) override { return put(v); }
  bool string(string_t& v) override { return put(std::move(v)); }
  bool binary(binary_t& v) override { return put(json::binary(std::move(v))); }

  bool start_object(std::size_t /*size*/) override { return open(json::object(), false); }
  bool key(string_t& k) override {
    // The object under construction is a std::map: a key already in it is a duplicate.
    auto& object = containers_.back()->get_ref<json::object_t&>();
    auto [it, inserted] = object.emplace(std::move(k), json());
    if (!inserted) {
      if (options_.reject_duplicate_keys) {
        fail(options_.code, "{}: duplicate key \"{}\" in JSON object {}", source_, clip(it->first), path());
      }
      it->second = json();
    }
    // std::map nodes never move, so both pointers stay valid while the object grows.
    frames_.back().current_key = &it->first;
    pending_ = &it->second;
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t /*size*/) override { return open(json::array(), true); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::json::exception& e) override {
    std::string_view what = e.what();
    if (const auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    fail(options_.code, "{}: invalid JSON (byte {} of {}): {}", source_, position, text_size_, clip(what));
  }

 private:
  struct Frame {
    const std::string* current_key = nullptr;  // the last key read in this object
    bool is_array = false;
  };

  bool open(json&& empty, bool is_array) {
    if (containers_.size() >= options_.max_depth) {
      fail(options_.code, "{}: JSON nests deeper than {} levels at {}", source_, options_.max_depth, path_with_top());
    }
    json* s = slot();
    *s = std::move(empty);
    containers_.push_back(s);
    frames_.emplace_back();
    frames_.back().is_array = is_array;
    return true;
  }
  bool close() {
    containers_.pop_back();
    frames_.pop_back();
    return true;
  }
  // Where the next value goes: the root, the end of the open array, or the open object's key.
  // Array elements may move when the array grows, but a pointer to one is only used while that
  // element's own container is open, and nothing is appended to the array meanwhile.
  json* slot() {
    if (containers_.empty()) return &root_;
    json* top = containers_.back();
    if (top->is_array()) {
      top->get_ref<json::array_t&>().emplace_back();
      return &top->get_ref<json::array_t&>().back();
    }
    return pending_;
  }
  template <class V>
  bool put(V&& v) {
    *slot() = json(std::forward<V>(v));
    return true;
  }
  static std::string clip(std::string_view s) {
    constexpr std::size_t kMax = limits::kMaxDescribedJsonChars;
    return s.size() <= kMax ? std::string(s) : std::string(s.substr(0, kMax - 3)) + "...";
  }
  // The key path of the innermost open container (the last frame's own key excluded).
  std::string path() const { return path_of(frames_.size() == 0 ? 0 : frames_.size() - 1); }
  std::string path_with_top() const { return path_of(frames_.size()); }
  std::string path_of(std::size_t n_frames) const {
    std::string out;
    for (std::size_t i = 0; i < n_frames && out.size() < 4 * limits::kMaxDescribedJsonChars; ++i) {
      if (frames_[i].is_array) {
        out += "[]";
        continue;
      }
      out += out.empty() ? "" : ".";
      out += frames_[i].current_key != nullptr ? clip(*frames_[i].current_key) : std::string("?");
    }
    return out.empty() ? std::string("<top level>") : out;
  }

  json& root_;
  std::string_view source_;
  std::size_t text_size_;
  JsonParseOptions options_;
  std::vector<json*> containers_;  // open objects and arrays, innermost last
  std::vector<Frame> frames_;      // one per open container
  json* pending_ = nullptr;        // the value slot of the key just read
};

}  // namespace json_detail

// Parses `text` as one JSON document. Rejects (Error options.code, message naming `source_name`):
// syntax errors and invalid UTF-8 (with the byte offset), numbers out of double's range (1e999),
// nesting deeper than options.max_depth, and (unless turned off) any object that has the same
// key twice, at any depth (with the key and the path of keys leading to that object). Comments
// are not allowed. O(n log n) in the number of values and iterative: the stack does not grow
// with the input. Thread-safe (no shared state).
inline nlohmann::json parse_json(std::string_view text, std::string_view source_name, const JsonParseOptions& options = {}) {
  return catch_as_error("parse_json", [&] {
    nlohmann::json root;
    json_detail::JsonDomBuilder builder(root, source_name, text.size(), options);
    try {
      nlohmann::json::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json,
                                /*strict=*/true, /*ignore_comments=*/false);
    } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range for a number like 1e999
      std::string_view what = e.what();
      if (what.size() > limits::kMaxDescribedJsonChars) what = what.substr(0, limits::kMaxDescribedJsonChars);
      fail(options.code, "{}: invalid JSON: {}", source_name, what);
    }
    return root;
  });
}

// Reads the regular file `path` (at most max_bytes; see read_file) and parses it with
// parse_json's rules. kIo for a missing, special, unreadable or oversized file.
inline nlohmann::json read_json(const std::filesystem::path& path, std::size_t max_bytes, std::string_view what,
                                const JsonParseOptions& options = {}) {
  const std::string text = read_file(path, max_bytes, what);
  return parse_json(text, path.string(), options);
}

// A short description of a JSON value for an error message, formatted only when the message is
// (so passing one to require() costs nothing on success): its type, then the value itself when it
// is a scalar or an array of a few scalars, else the number of elements, clipped to
// limits::kMaxDescribedJsonChars characters. Never recursive: dump() is, and a hostile file may
// nest arrays 10^7 deep. Non-owning: the value must outlive the description.
struct JsonDescription {
  const nlohmann::json* value;
};
inline JsonDescription describe(const nlohmann::json& j) noexcept { return JsonDescription{&j}; }

namespace json_detail {

inline std::string describe_scalar(const nlohmann::json& v) {
  // Only called on primitives (no recursion); strings are escaped and may be long: clip them.
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    const nlohmann::json clipped = s.size() > limits::kMaxDescribedJsonChars ? nlohmann::json(s.substr(0, limits::kMaxDescribedJsonChars)) : v;
    return clipped.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
  }
  return v.dump(-1, ' ', /*ensure_ascii=*/true, nlohmann::json::error_handler_t::replace);
}

inline std::string describe_json_text(const nlohmann::json& j) {
  constexpr std::size_t kMax = limits::kMaxDescribedJsonChars;
  const auto clip = [](std::string text) {
    if (text.size() > kMax) text = text.substr(0, kMax - 3) + "...";
    return text;
  };
  if (j.is_object()) return fmt::format("object with {} keys", j.size());
  if (j.is_array()) {
    bool flat = j.size() <= 8;
    for (std::size_t i = 0; flat && i < j.size(); ++i) flat = j[i].is_primitive();
    if (!flat) return fmt::format("array of {} elements", j.size());
    std::string text = "[";
    for (std::size_t i = 0; i < j.size(); ++i) text += (i ? ", " : "") + describe_scalar(j[i]);
    return "array " + clip(text + "]");
  }
  if (j.is_binary()) return "binary";
  return fmt::format("{} {}", j.type_name(), clip(describe_scalar(j)));
}

}  // namespace json_detail

}  // namespace moe

template <>
struct fmt::formatter<moe::JsonDescription> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const moe::JsonDescription& d, FormatContext& ctx) const -> decltype(ctx.out()) {
    const std::string text = moe::json_detail::describe_json_text(*d.value);
    return fmt::formatter<std::string_view>::format(text, ctx);
  }
};
