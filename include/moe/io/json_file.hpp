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
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace moe::io {

namespace detail {

// SAX handler that builds the DOM like nlohmann's own parser and rejects duplicate keys.
// (nlohmann's parser_callback_t could see the keys too, but its DOM builder rescans the parent
// object each time a child object ends: quadratic in the number of tensors of a safetensors
// header, minutes for 100k entries. This builder is O(n log n).)
class StrictJsonBuilder final : public nlohmann::json_sax<nlohmann::json> {
 public:
  using json = nlohmann::json;

  StrictJsonBuilder(json& root, std::string_view source, std::size_t text_size)
      : root_(root), source_(source), text_size_(text_size) {}

  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t& /*text*/) override { return put(v); }
  bool string(string_t& v) override { return put(std::move(v)); }
  bool binary(binary_t& v) override { return put(json::binary(std::move(v))); }

  bool start_object(std::size_t /*size*/) override {
    containers_.push_back(slot());
    *containers_.back() = json::object();
    frames_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    // The object under construction is a std::map: a key already in it is a duplicate.
    auto& object = containers_.back()->get_ref<json::object_t&>();
    const auto [it, inserted] = object.emplace(std::move(k), json());
    if (!inserted) {
      fail(ErrorCode::kFormat, "{}: duplicate key \"{}\" in JSON object {}", source_, it->first, path());
    }
    // std::map nodes never move, so both pointers stay valid while the object grows.
    frames_.back().current_key = &it->first;
    pending_ = &it->second;
    return true;
  }
  bool end_object() override {
    containers_.pop_back();
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t /*size*/) override {
    containers_.push_back(slot());
    *containers_.back() = json::array();
    frames_.emplace_back();
    frames_.back().is_array = true;
    return true;
  }
  bool end_array() override {
    containers_.pop_back();
    frames_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string& /*last_token*/,
                   const nlohmann::json::exception& e) override {
    std::string_view what = e.what();
    if (const auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    fail(ErrorCode::kFormat, "{}: invalid JSON (byte {} of {}): {}", source_, position, text_size_, what);
  }

 private:
  struct Frame {
    const std::string* current_key = nullptr;  // the last key read in this object
    bool is_array = false;
  };

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
  std::string path() const {
    std::string out;
    for (std::size_t i = 0; i + 1 < frames_.size(); ++i) {
      if (frames_[i].is_array) {
        out += "[]";
        continue;
      }
      out += out.empty() ? "" : ".";
      out += frames_[i].current_key != nullptr ? *frames_[i].current_key : std::string("?");
    }
    return out.empty() ? std::string("<top level>") : out;
  }

  json& root_;
  std::string_view source_;
  std::size_t text_size_;
  std::vector<json*> containers_;  // open objects and arrays, innermost last
  std::vector<Frame> frames_;      // one per open container
  json* pending_ = nullptr;        // the value slot of the key just read
};

}  // namespace detail

// Parses `text` as one JSON document. Rejects (Error kFormat, message naming `source_name`):
// syntax errors and invalid UTF-8 (with line, column and byte offset), and any object that has the
// same key twice, at any depth (with the key and the path of keys leading to that object).
// Comments are not allowed. O(n log n) in the number of values; nesting depth is bounded only by
// memory (the parser and the DOM's destructor are iterative). Thread-safe (no shared state).
inline nlohmann::json parse_json_text(std::string_view text, std::string_view source_name) {
  nlohmann::json root;
  detail::StrictJsonBuilder builder(root, source_name, text.size());
  try {
    nlohmann::json::sax_parse(text.begin(), text.end(), &builder, nlohmann::json::input_format_t::json,
                              /*strict=*/true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {  // e.g. out_of_range for a number like 1e999
    fail(ErrorCode::kFormat, "{}: invalid JSON: {}", source_name, e.what());
  }
  return root;
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
