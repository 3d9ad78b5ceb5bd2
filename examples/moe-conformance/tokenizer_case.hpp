// Tokenizer conformance case: a folder with tokenizer.json and expected.json
// ({"cases": [{"text", "ids", "decoded"}]}, made with the Hugging Face tokenizers library:
// ids = encode(text, add_special_tokens=False), decoded = decode(ids, skip_special_tokens=False)).
// Every case must match exactly; the detail line reports the first mismatch.
#pragma once

#include "case_result.hpp"

#include <moe/core/error.hpp>
#include <moe/tokenizer/json_reader.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <fmt/format.h>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace moe::conformance {

namespace detail {

// A short, printable rendering of a text for a one-line report (escapes control characters,
// keeps other UTF-8 as is, cuts long texts).
inline std::string shorten_text(std::string_view s, std::size_t max_bytes = 60) {
  std::string out = "\"";
  std::size_t i = 0;
  while (i < s.size() && out.size() < max_bytes) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '"') out += "\\\"";
    else if (c < 0x20 || c == 0x7F) out += fmt::format("\\x{:02x}", c);
    else {
      std::size_t len = moe::tokenizer::utf8_sequence_length(c);
      if (len == 0 || i + len > s.size()) len = 1;
      out.append(s.substr(i, len));
      i += len;
      continue;
    }
    ++i;
  }
  out += i < s.size() ? "\"..." : "\"";
  return out;
}

// The ids around the first difference, e.g. "[.. 12 (at 7) 40 ..] vs [.. 12 (at 7) 41 ..]".
inline std::string ids_around(const std::vector<std::int32_t>& a, std::size_t at) {
  std::string out = "[";
  const std::size_t from = at > 2 ? at - 2 : 0;
  if (from > 0) out += ".. ";
  for (std::size_t k = from; k < a.size() && k < at + 3; ++k) {
    if (k > from) out += ' ';
    if (k == at) out += '>';
    out += std::to_string(a[k]);
  }
  if (at >= a.size()) out += " >end";
  if (at + 3 < a.size()) out += " ..";
  out += fmt::format("] ({} ids)", a.size());
  return out;
}

}  // namespace detail

// Checks every case of the fixture folder `dir`: encode(text) == ids and decode(ids) == decoded.
// Never throws: a load error or malformed expected.json is reported as a failed case.
inline CaseResult check_tokenizer_case(const std::filesystem::path& dir) {
  CaseResult result;
  result.name = dir.filename().string();
  try {
    const Tokenizer tok = Tokenizer::from_folder(dir);
    const std::string expected_file = (dir / "expected.json").string();
    const tokenizer::Json doc = tokenizer::read_tokenizer_json_file(expected_file);
    const tokenizer::JsonNode root(doc, "", expected_file);
    const tokenizer::JsonNode cases = root.at("cases");
    for (std::size_t i = 0; i < cases.size(); ++i) {
      const tokenizer::JsonNode c = cases[i];
      const std::string& text = c.at("text").as_string();
      const tokenizer::JsonNode ids_node = c.at("ids");
      std::vector<std::int32_t> expected_ids;
      for (std::size_t k = 0; k < ids_node.size(); ++k) {
        const std::int64_t id = ids_node[k].as_int();
        if (id < 0 || id > INT32_MAX) ids_node[k].fail_here(ErrorCode::kFormat, "id {} out of range", id);
        expected_ids.push_back(static_cast<std::int32_t>(id));
      }
      const std::string& expected_text = c.at("decoded").as_string();

      const std::vector<std::int32_t> got = tok.encode(text, false);
      if (got != expected_ids) {
        std::size_t at = 0;
        while (at < got.size() && at < expected_ids.size() && got[at] == expected_ids[at]) ++at;
        result.detail = fmt::format("case {} encode {}: expected {} got {}", i, detail::shorten_text(text),
                                    detail::ids_around(expected_ids, at), detail::ids_around(got, at));
        return result;
      }
      const std::string decoded = tok.decode(expected_ids, false);
      if (decoded != expected_text) {
        result.detail = fmt::format("case {} decode of {}: expected {} got {}", i, detail::shorten_text(text),
                                    detail::shorten_text(expected_text), detail::shorten_text(decoded));
        return result;
      }
    }
    result.passed = true;
    result.detail = fmt::format("{} cases: ids and decoded text match", cases.size());
  } catch (const std::exception& e) {
    result.passed = false;
    result.detail = fmt::format("error: {}", e.what());
  }
  return result;
}

}  // namespace moe::conformance
