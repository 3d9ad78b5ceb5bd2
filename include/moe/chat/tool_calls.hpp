// Tool calls in generated text: the formats the MoE families' chat templates teach their models,
// recognised from the template source, and parsed out of a reply into OpenAI's tool_calls
// (name + arguments as a JSON string) and the remaining content.
//   kHermes    Qwen2.5 / Qwen3 / Qwen3-MoE: <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>
//   kGlm45     GLM-4.5 / 4.6: <tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>...</tool_call>
//   kDeepseek  DeepSeek-V3 / R1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//              \n```json\nARGS\n```<｜tool▁call▁end｜>...; V3.1's NAME<｜tool▁sep｜>ARGS form too
//   kKimiK2    Kimi K2: <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX
//              <|tool_call_argument_begin|>ARGS<|tool_call_end|>...<|tool_calls_section_end|>
//   kMistral   Mixtral / Mistral: [TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]
//   kMiniMax   MiniMax-M2: <minimax:tool_call><invoke name="NAME"><parameter name="K">V</parameter>
//              ...</invoke>...</minimax:tool_call>
//   kHarmony   GPT-OSS: ... to=functions.NAME<|channel|>commentary json<|message|>ARGS<|call|> (the
//              recipient in the header, before or after the channel); the content of a reply with
//              calls is its final-channel text
// Parsing never throws on model output: text that does not form a complete call stays content.
#pragma once

#include "moe/tokenizer/utf8.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moe::chat {

enum class ToolCallFormat : std::uint8_t { kNone, kHermes, kGlm45, kDeepseek, kKimiK2, kMistral, kMiniMax, kHarmony };

struct ToolCall {
  std::string id;         // as the model wrote it (Kimi K2, Mistral), else empty
  std::string name;
  std::string arguments;  // a JSON object as text (OpenAI's "arguments")
};

struct ParsedReply {
  std::string content;  // the text outside the calls (trimmed of the whitespace around them)
  std::vector<ToolCall> calls;
};

namespace tool_detail {

inline constexpr std::string_view kHermesOpen = "<tool_call>", kHermesClose = "</tool_call>";
inline constexpr std::string_view kArgKey = "<arg_key>", kArgKeyEnd = "</arg_key>";
inline constexpr std::string_view kArgValue = "<arg_value>", kArgValueEnd = "</arg_value>";
inline constexpr std::string_view kDsCallsBegin = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "calls\xE2\x96\x81" "begin\xEF\xBD\x9C>";
inline constexpr std::string_view kDsCallsEnd = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "calls\xE2\x96\x81" "end\xEF\xBD\x9C>";
inline constexpr std::string_view kDsCallBegin = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "call\xE2\x96\x81" "begin\xEF\xBD\x9C>";
inline constexpr std::string_view kDsCallEnd = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "call\xE2\x96\x81" "end\xEF\xBD\x9C>";
inline constexpr std::string_view kDsSep = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "sep\xEF\xBD\x9C>";
inline constexpr std::string_view kKimiSection = "<|tool_calls_section_begin|>", kKimiSectionEnd = "<|tool_calls_section_end|>";
inline constexpr std::string_view kKimiBegin = "<|tool_call_begin|>", kKimiArgs = "<|tool_call_argument_begin|>";
inline constexpr std::string_view kKimiEnd = "<|tool_call_end|>";
inline constexpr std::string_view kMistral = "[TOOL_CALLS]";
inline constexpr std::string_view kMiniMaxOpen = "<minimax:tool_call>", kMiniMaxClose = "</minimax:tool_call>";
inline constexpr std::string_view kInvokeOpen = "<invoke name=\"", kInvokeClose = "</invoke>";
inline constexpr std::string_view kParamOpen = "<parameter name=\"", kParamClose = "</parameter>";
inline constexpr std::string_view kHarmonyTo = "to=functions.", kHarmonyCall = "<|call|>";
inline constexpr std::string_view kHarmonyMessage = "<|message|>", kHarmonyFinal = "<|channel|>final<|message|>";

inline std::string_view trim(std::string_view s) {
  const auto ws = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
  while (!s.empty() && ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && ws(s.back())) s.remove_suffix(1);
  return s;
}

// The text as a JSON value, or nullopt.
inline std::optional<nlohmann::json> parse_json(std::string_view s) {
  nlohmann::json j = nlohmann::json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// Raw model output as a JSON string's text: invalid UTF-8 becomes U+FFFD (as the tokenizer's
// lossy decoding does), which nlohmann's dump would otherwise throw on.
inline std::string valid_text(std::string_view s) { return tokenizer::utf8_lossy(s); }

// A value written as text: JSON when it parses as a non-string, else the text itself.
inline nlohmann::json loose_value(std::string_view value) {
  const auto j = parse_json(value);
  return j && !j->is_string() ? *j : nlohmann::json(valid_text(value));
}

// A JSON value as text (its strings are valid UTF-8: parsed JSON, or raw text through
// valid_text; the replacing handler only keeps a miss from throwing).
inline std::string dump_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

// Arguments as OpenAI sends them: a JSON object serialised (a string holding JSON stays as is).
inline std::optional<std::string> arguments_text(const nlohmann::json& args) {
  if (args.is_object()) return dump_text(args);
  if (args.is_string()) {
    const auto inner = parse_json(args.get<std::string>());
    if (inner && inner->is_object()) return dump_text(*inner);
  }
  return std::nullopt;
}

// {"name": string, "arguments" (or "parameters"): object} -> a call.
inline std::optional<ToolCall> call_from_object(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  const nlohmann::json* args = j.contains("arguments") ? &j["arguments"] : j.contains("parameters") ? &j["parameters"] : nullptr;
  ToolCall c;
  c.name = j["name"].get<std::string>();
  if (args == nullptr) {
    c.arguments = "{}";
  } else if (const auto a = arguments_text(*args)) {
    c.arguments = *a;
  } else {
    return std::nullopt;
  }
  if (j.contains("id") && j["id"].is_string()) c.id = j["id"].get<std::string>();
  return c;
}

// Pieces between `open` and `close` from `from` on: each complete block's body; `rest` gets the
// text outside the blocks. False when a block is not closed (the whole text then stays content).
inline bool blocks(std::string_view text, std::string_view open, std::string_view close, std::vector<std::string_view>& out,
                   std::string& rest) {
  std::size_t pos = 0;
  while (true) {
    const std::size_t a = text.find(open, pos);
    if (a == std::string_view::npos) break;
    const std::size_t b = text.find(close, a + open.size());
    if (b == std::string_view::npos) return false;
    rest.append(text.substr(pos, a - pos));
    out.push_back(text.substr(a + open.size(), b - a - open.size()));
    pos = b + close.size();
  }
  rest.append(text.substr(pos));
  return true;
}

inline std::optional<ToolCall> glm_call(std::string_view body) {
  body = trim(body);
  const std::size_t first = body.find(kArgKey);
  ToolCall c;
  c.name = std::string(trim(body.substr(0, first)));
  if (c.name.empty()) return std::nullopt;
  nlohmann::json args = nlohmann::json::object();
  std::size_t pos = first;
  while (pos != std::string_view::npos && pos < body.size()) {
    const std::size_t k0 = body.find(kArgKey, pos);
    if (k0 == std::string_view::npos) break;
    const std::size_t k1 = body.find(kArgKeyEnd, k0);
    const std::size_t v0 = k1 == std::string_view::npos ? k1 : body.find(kArgValue, k1);
    const std::size_t v1 = v0 == std::string_view::npos ? v0 : body.find(kArgValueEnd, v0);
    if (v1 == std::string_view::npos) return std::nullopt;
    const std::string key = valid_text(trim(body.substr(k0 + kArgKey.size(), k1 - k0 - kArgKey.size())));
    const std::string_view value = body.substr(v0 + kArgValue.size(), v1 - v0 - kArgValue.size());
    // GLM's template writes strings as they are and other values as JSON.
    args[key] = loose_value(value);
    pos = v1 + kArgValueEnd.size();
  }
  c.arguments = dump_text(args);
  return c;
}

// The <invoke name="NAME"> blocks of one MiniMax-M2 section, each a call.
inline std::optional<std::vector<ToolCall>> minimax_calls(std::string_view section) {
  std::vector<ToolCall> calls;
  std::size_t pos = 0;
  while (true) {
    const std::size_t a = section.find(kInvokeOpen, pos);
    if (a == std::string_view::npos) break;
    const std::size_t q = section.find("\">", a + kInvokeOpen.size());
    const std::size_t b = q == std::string_view::npos ? q : section.find(kInvokeClose, q);
    if (b == std::string_view::npos) return std::nullopt;
    ToolCall c;
    c.name = std::string(section.substr(a + kInvokeOpen.size(), q - a - kInvokeOpen.size()));
    const std::string_view body = section.substr(q + 2, b - q - 2);
    nlohmann::json args = nlohmann::json::object();
    std::size_t p = 0;
    while (true) {
      const std::size_t p0 = body.find(kParamOpen, p);
      if (p0 == std::string_view::npos) break;
      const std::size_t pq = body.find("\">", p0 + kParamOpen.size());
      const std::size_t p1 = pq == std::string_view::npos ? pq : body.find(kParamClose, pq);
      if (p1 == std::string_view::npos) return std::nullopt;
      const std::string key = valid_text(body.substr(p0 + kParamOpen.size(), pq - p0 - kParamOpen.size()));
      args[key] = loose_value(trim(body.substr(pq + 2, p1 - pq - 2)));
      p = p1 + kParamClose.size();
    }
    c.arguments = dump_text(args);
    if (c.name.empty()) return std::nullopt;
    calls.push_back(std::move(c));
    pos = b + kInvokeClose.size();
  }
  return calls;
}

// GPT-OSS: every "to=functions.NAME ... <|message|>ARGS" up to <|call|> / <|end|> / the end.
inline std::optional<ParsedReply> harmony_reply(std::string_view text) {
  ParsedReply r;
  std::size_t pos = 0;
  while (true) {
    const std::size_t a = text.find(kHarmonyTo, pos);
    if (a == std::string_view::npos) break;
    std::size_t n = a + kHarmonyTo.size();
    const std::size_t name_end = text.find_first_of(" <\n", n);
    const std::size_t m = text.find(kHarmonyMessage, n);
    // No name ("to=functions." then a delimiter): not a call, so the reply stays content.
    if (name_end == std::string_view::npos || m == std::string_view::npos || name_end > m || name_end == n) {
      return std::nullopt;
    }
    const std::size_t body = m + kHarmonyMessage.size();
    std::size_t end = text.find(kHarmonyCall, body);
    const std::size_t alt = text.find("<|end|>", body);
    if (end == std::string_view::npos || (alt != std::string_view::npos && alt < end)) end = alt;
    const std::string_view args_text = trim(text.substr(body, end == std::string_view::npos ? std::string_view::npos : end - body));
    const auto args = parse_json(args_text);
    const auto args_json = args ? arguments_text(*args) : std::nullopt;
    if (!args_json) return std::nullopt;
    r.calls.push_back(ToolCall{{}, std::string(text.substr(n, name_end - n)), *args_json});
    if (end == std::string_view::npos) break;
    pos = end;
  }
  if (const std::size_t f = text.find(kHarmonyFinal); f != std::string_view::npos) {
    const std::size_t b = f + kHarmonyFinal.size();
    const std::size_t e = std::min(text.find("<|return|>", b), text.find("<|end|>", b));
    r.content = std::string(trim(text.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b)));
  }
  return r;
}

inline std::optional<ToolCall> deepseek_call(std::string_view body) {
  const std::size_t sep = body.find(kDsSep);
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view left = trim(body.substr(0, sep)), right = body.substr(sep + kDsSep.size());
  ToolCall c;
  if (left == "function") {  // V3 / R1: NAME, then the arguments in a ```json fence
    const std::size_t nl = right.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    c.name = std::string(trim(right.substr(0, nl)));
    right = right.substr(nl + 1);
    const std::size_t f0 = right.find("```");
    if (f0 != std::string_view::npos) {
      const std::size_t start = right.find('\n', f0);
      const std::size_t f1 = start == std::string_view::npos ? start : right.find("```", start);
      if (f1 == std::string_view::npos) return std::nullopt;
      right = right.substr(start + 1, f1 - start - 1);
    }
  } else {  // V3.1: NAME<｜tool▁sep｜>ARGS
    c.name = std::string(left);
  }
  const auto args = parse_json(trim(right));
  const auto text = args ? arguments_text(*args) : std::nullopt;
  if (c.name.empty() || !text) return std::nullopt;
  c.arguments = *text;
  return c;
}

inline std::optional<ToolCall> kimi_call(std::string_view body) {
  const std::size_t a = body.find(kKimiArgs);
  if (a == std::string_view::npos) return std::nullopt;
  ToolCall c;
  c.id = std::string(trim(body.substr(0, a)));
  std::string_view name = c.id;  // functions.NAME:IDX
  if (name.starts_with("functions.")) name.remove_prefix(10);
  if (const std::size_t colon = name.rfind(':'); colon != std::string_view::npos) name = name.substr(0, colon);
  c.name = std::string(name);
  const auto args = parse_json(trim(body.substr(a + kKimiArgs.size())));
  const auto text = args ? arguments_text(*args) : std::nullopt;
  if (c.name.empty() || !text) return std::nullopt;
  c.arguments = *text;
  return c;
}

// Each body through `one`; all must parse, else nullopt.
template <class F>
std::optional<std::vector<ToolCall>> all_calls(const std::vector<std::string_view>& bodies, F&& one) {
  std::vector<ToolCall> calls;
  for (const auto body : bodies) {
    auto c = one(body);
    if (!c) return std::nullopt;
    calls.push_back(std::move(*c));
  }
  return calls;
}

}  // namespace tool_detail

// The format a chat template teaches, from its source text (kNone: no tool calls recognised).
inline ToolCallFormat detect_tool_call_format(std::string_view template_source) {
  using namespace tool_detail;
  if (template_source.find(kMiniMaxOpen) != std::string_view::npos) return ToolCallFormat::kMiniMax;
  if (template_source.find(kHarmonyCall) != std::string_view::npos) return ToolCallFormat::kHarmony;
  if (template_source.find(kArgKey) != std::string_view::npos) return ToolCallFormat::kGlm45;
  if (template_source.find(kHermesOpen) != std::string_view::npos) return ToolCallFormat::kHermes;
  if (template_source.find(kKimiSection) != std::string_view::npos) return ToolCallFormat::kKimiK2;
  if (template_source.find(kDsCallsBegin) != std::string_view::npos) return ToolCallFormat::kDeepseek;
  if (template_source.find(kMistral) != std::string_view::npos) return ToolCallFormat::kMistral;
  return ToolCallFormat::kNone;
}

// The marker a call of `format` starts with ("" for kNone): a streaming reply holds text back
// from the first marker on (and any tail that could still become one).
inline std::string_view tool_call_marker(ToolCallFormat format) {
  using namespace tool_detail;
  switch (format) {
    case ToolCallFormat::kHermes:
    case ToolCallFormat::kGlm45:
      return kHermesOpen;
    case ToolCallFormat::kDeepseek:
      return kDsCallsBegin;
    case ToolCallFormat::kKimiK2:
      return kKimiSection;
    case ToolCallFormat::kMistral:
      return kMistral;
    case ToolCallFormat::kMiniMax:
      return kMiniMaxOpen;
    case ToolCallFormat::kHarmony:
      return kHarmonyTo;
    case ToolCallFormat::kNone:
      break;
  }
  return {};
}

// How much of `text` a stream can send now: everything before the first marker, and with no
// marker everything but a tail that is a prefix of it. text.size() for kNone.
inline std::size_t tool_call_safe_prefix(ToolCallFormat format, std::string_view text) {
  const std::string_view marker = tool_call_marker(format);
  if (marker.empty()) return text.size();
  if (const std::size_t at = text.find(marker); at != std::string_view::npos) return at;
  for (std::size_t keep = std::min(marker.size() - 1, text.size()); keep > 0; --keep) {
    if (marker.starts_with(text.substr(text.size() - keep))) return text.size() - keep;
  }
  return text.size();
}

namespace tool_detail {

inline ParsedReply parse_calls(ToolCallFormat format, std::string_view text) {
  ParsedReply plain{std::string(text), {}};
  std::vector<std::string_view> bodies;
  std::string rest;
  std::optional<std::vector<ToolCall>> calls;
  switch (format) {
    case ToolCallFormat::kNone:
      return plain;
    case ToolCallFormat::kHermes:
      if (!blocks(text, kHermesOpen, kHermesClose, bodies, rest)) return plain;
      calls = all_calls(bodies, [](std::string_view b) -> std::optional<ToolCall> {
        const auto j = parse_json(trim(b));
        return j ? call_from_object(*j) : std::nullopt;
      });
      break;
    case ToolCallFormat::kGlm45:
      if (!blocks(text, kHermesOpen, kHermesClose, bodies, rest)) return plain;
      calls = all_calls(bodies, glm_call);
      break;
    case ToolCallFormat::kHarmony: {
      auto r = harmony_reply(text);
      if (!r || r->calls.empty()) return plain;
      return std::move(*r);
    }
    case ToolCallFormat::kMiniMax: {
      if (!blocks(text, kMiniMaxOpen, kMiniMaxClose, bodies, rest)) return plain;
      std::vector<ToolCall> out;
      for (const auto body : bodies) {
        auto some = minimax_calls(body);
        if (!some || some->empty()) return plain;
        for (auto& c : *some) out.push_back(std::move(c));
      }
      calls = std::move(out);
      break;
    }
    case ToolCallFormat::kDeepseek:
    case ToolCallFormat::kKimiK2: {
      const bool ds = format == ToolCallFormat::kDeepseek;
      const std::string_view section = ds ? kDsCallsBegin : kKimiSection, section_end = ds ? kDsCallsEnd : kKimiSectionEnd;
      const std::size_t a = text.find(section);
      if (a == std::string_view::npos) return plain;
      std::size_t b = text.find(section_end, a);
      const std::string_view inner =
          text.substr(a + section.size(), b == std::string_view::npos ? std::string_view::npos : b - a - section.size());
      std::string ignored;
      if (!blocks(inner, ds ? kDsCallBegin : kKimiBegin, ds ? kDsCallEnd : kKimiEnd, bodies, ignored) || bodies.empty()) {
        return plain;
      }
      rest = std::string(text.substr(0, a));
      if (b != std::string_view::npos) rest += std::string(text.substr(b + section_end.size()));
      calls = ds ? all_calls(bodies, deepseek_call) : all_calls(bodies, kimi_call);
      break;
    }
    case ToolCallFormat::kMistral: {
      const std::size_t a = text.find(kMistral);
      if (a == std::string_view::npos) return plain;
      const auto j = parse_json(trim(text.substr(a + kMistral.size())));
      if (!j) return plain;
      const nlohmann::json list = j->is_array() ? *j : nlohmann::json::array({*j});
      std::vector<ToolCall> out;
      for (const auto& item : list) {
        auto c = call_from_object(item);
        if (!c) return plain;
        out.push_back(std::move(*c));
      }
      calls = std::move(out);
      rest = std::string(text.substr(0, a));
      break;
    }
  }
  if (!calls || calls->empty()) return plain;
  return ParsedReply{std::string(trim(rest)), std::move(*calls)};
}

}  // namespace tool_detail

// The calls in a finished reply and the content around them. A reply whose calls do not all
// parse (or one of which has no name) is returned whole as content with no calls. The calls'
// names, ids and arguments are valid UTF-8 (invalid bytes of the model's text become U+FFFD); the
// content is the model's text.
inline ParsedReply parse_tool_calls(ToolCallFormat format, std::string_view text) {
  ParsedReply r = tool_detail::parse_calls(format, text);
  for (auto& c : r.calls) {
    // A call without a name (Mistral's {"name": ""}, ...) is no call: the reply stays content.
    if (c.name.empty()) return ParsedReply{std::string(text), {}};
    c.name = tool_detail::valid_text(c.name);
    c.id = tool_detail::valid_text(c.id);
  }
  return r;
}

}  // namespace moe::chat
