// OpenAI request bodies: /v1/completions and /v1/chat/completions parsed and validated into a
// CompletionRequest. Every wrong type, out-of-range value, unknown field and unsupported option
// is an ApiError (400, naming the field and the value seen), before anything is tokenized or
// queued.
#pragma once

#include "moe/core/json.hpp"
#include "moe/kernels/reference/expert_budget.hpp"
#include "moe/runtime/sampler.hpp"
#include "moe/server/api_error.hpp"
#include "moe/tokenizer/utf8.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace moe::server {

enum class Endpoint { kCompletions, kChat };

// What a request may ask for at most (the server's command line sets them).
struct RequestLimits {
  std::int64_t max_tokens = 4096;       // max_tokens / max_completion_tokens
  std::size_t max_prompts = 16;         // elements of a completions "prompt" array
  std::size_t max_prompt_ids = 1 << 20; // token ids given directly in one prompt
  std::size_t max_stops = 4;            // OpenAI allows up to 4 stop sequences
  std::size_t max_stop_bytes = 256;
  std::size_t max_messages = 4096;
};

// One chat message after validation: content flattened to text.
struct ChatMessage {
  std::string role;     // system, developer, user, assistant, tool
  std::string content;
  std::optional<std::string> name;
  // An assistant turn's calls as the client sent them back (validated; the template gets each
  // call's arguments as an object), or null.
  nlohmann::ordered_json tool_calls = nullptr;
  std::optional<std::string> tool_call_id;  // a tool message: the call it answers
};

// A prompt is either text (tokenized by the server) or token ids given by the client.
using Prompt = std::variant<std::string, std::vector<std::int32_t>>;

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;
  std::vector<Prompt> prompts;        // completions: one choice per prompt
  std::vector<ChatMessage> messages;  // chat
  std::optional<std::int64_t> max_tokens;  // absent: the endpoint's default
  SamplerConfig sampler;              // temperature etc.; greedy when temperature == 0
  bool seed_given = false;
  bool temperature_given = false, top_p_given = false, top_k_given = false, min_p_given = false;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int logprobs = -1;           // -1: none; else the number of alternatives per token (0..20)
  bool ignore_eos = false;     // extension (vLLM): generate past end-of-sequence tokens
  // Extension (elastic experts): {"top_k": K, "threshold": T, "min_k": M, "renormalize": bool};
  // ranged against the model's top_k by the scheduler.
  std::optional<ExpertBudget> expert_budget;
  // Chat: the "tools" array as sent (key order kept: templates print it with tojson), null
  // without; and "chat_template_kwargs" (vLLM's extension, e.g. {"enable_thinking": false}),
  // further variables the chat template sees.
  nlohmann::ordered_json tools = nullptr;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
};

namespace request_detail {

// Fields each endpoint knows. A known field the server does not implement is accepted only at
// its neutral value (checked in parse_request); any other name is refused as OpenAI does
// ("Unrecognized request argument supplied").
inline constexpr std::string_view kCompletionFields[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "logprobs",
    "echo", "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "user", "seed", "suffix",
    // common extensions (vLLM, llama.cpp)
    "top_k", "min_p", "repetition_penalty", "ignore_eos", "expert_budget"};
inline constexpr std::string_view kChatFields[] = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stream",
    "stream_options", "stop", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "user", "seed", "response_format", "tools", "tool_choice", "parallel_tool_calls", "store", "metadata",
    "service_tier", "top_k", "min_p", "repetition_penalty", "ignore_eos", "expert_budget", "chat_template_kwargs"};

inline const char* type_name(const nlohmann::json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

inline double number(const nlohmann::json& v, const char* key, double lo, double hi) {
  if (!v.is_number()) bad_request(key, "'{}' must be a number, got {} {}", key, type_name(v), quote_json(v));
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) bad_request(key, "'{}' must be in [{}, {}], got {}", key, lo, hi, quote_json(v));
  return d;
}

inline std::int64_t integer(const nlohmann::json& v, const char* key, std::int64_t lo, std::int64_t hi) {
  // 3.0 is accepted as 3 (JSON has one number type; JavaScript clients send whole floats).
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && d >= static_cast<double>(lo) && d <= static_cast<double>(hi))
      return static_cast<std::int64_t>(d);
  }
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi))
    bad_request(key, "'{}' must be an integer in [{}, {}], got {}", key, lo, hi, quote_json(v));
  if (!v.is_number_integer()) bad_request(key, "'{}' must be an integer, got {} {}", key, type_name(v), quote_json(v));
  const auto i = v.get<std::int64_t>();
  if (i < lo || i > hi) bad_request(key, "'{}' must be an integer in [{}, {}], got {}", key, lo, hi, i);
  return i;
}

inline bool boolean(const nlohmann::json& v, const char* key) {
  if (!v.is_boolean()) bad_request(key, "'{}' must be true or false, got {} {}", key, type_name(v), quote_json(v));
  return v.get<bool>();
}

inline const std::string& string(const nlohmann::json& v, const char* key) {
  if (!v.is_string()) bad_request(key, "'{}' must be a string, got {} {}", key, type_name(v), quote_json(v));
  return v.get_ref<const std::string&>();
}

// A token-id array: every element an integer in [0, 2^31).
// "expert_budget": an object of top_k (integer >= 0), threshold (number in [0, 1]), min_k
// (integer >= 0) and renormalize (boolean); every key optional, no others.
inline ExpertBudget expert_budget(const nlohmann::json& v) {
  if (!v.is_object())
    bad_request("expert_budget", "'expert_budget' must be an object with top_k, threshold, min_k, got {}", quote_json(v));
  ExpertBudget b;
  for (const auto& [key, value] : v.items()) {
    if (key == "top_k") {
      b.top_k = static_cast<std::int32_t>(integer(value, "expert_budget.top_k", 0, 1 << 16));
    } else if (key == "threshold") {
      b.threshold = static_cast<float>(number(value, "expert_budget.threshold", 0.0, 1.0));
    } else if (key == "min_k") {
      b.min_k = static_cast<std::int32_t>(integer(value, "expert_budget.min_k", 0, 1 << 16));
    } else if (key == "renormalize") {
      b.renormalize = boolean(value, "expert_budget.renormalize") ? ExpertBudget::Renormalize::kAlways
                                                                  : ExpertBudget::Renormalize::kNever;
    } else {
      bad_request("expert_budget", "'expert_budget.{}' is not a budget field (top_k, threshold, min_k, renormalize)",
                  key.substr(0, 64));
    }
  }
  return b;
}

inline std::vector<std::int32_t> token_ids(const nlohmann::json& a, const char* key, std::size_t max_ids) {
  if (a.size() > max_ids) bad_request(key, "'{}': {} token ids exceed the limit of {}", key, a.size(), max_ids);
  std::vector<std::int32_t> ids;
  ids.reserve(a.size());
  for (const auto& v : a) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
        (v.is_number_unsigned() && v.get<std::uint64_t>() > std::numeric_limits<std::int32_t>::max()) ||
        v.get<std::int64_t>() > std::numeric_limits<std::int32_t>::max()) {
      bad_request(key, "'{}': token ids must be integers in [0, 2147483647], got {}", key, quote_json(v));
    }
    ids.push_back(static_cast<std::int32_t>(v.get<std::int64_t>()));
  }
  return ids;
}

// "prompt": a string, an array of strings, an array of token ids, or an array of such arrays.
inline std::vector<Prompt> prompts(const nlohmann::json& v, const RequestLimits& limits) {
  std::vector<Prompt> out;
  if (v.is_string()) {
    out.emplace_back(v.get<std::string>());
    return out;
  }
  if (!v.is_array()) bad_request("prompt", "'prompt' must be a string or an array, got {} {}", type_name(v), quote_json(v));
  if (v.empty()) bad_request("prompt", "'prompt' is an empty array");
  if (v[0].is_number()) {
    out.emplace_back(token_ids(v, "prompt", limits.max_prompt_ids));
    return out;
  }
  if (v.size() > limits.max_prompts)
    bad_request("prompt", "'prompt' has {} prompts; at most {} per request", v.size(), limits.max_prompts);
  for (const auto& p : v) {
    if (p.is_string()) {
      out.emplace_back(p.get<std::string>());
    } else if (p.is_array() && !p.empty()) {
      out.emplace_back(token_ids(p, "prompt", limits.max_prompt_ids));
    } else {
      bad_request("prompt", "'prompt' array elements must be strings or non-empty arrays of token ids, got {}",
                  quote_json(p));
    }
  }
  return out;
}

// A message's "content": a string, or an array of {"type": "text", "text": ...} parts (joined);
// null only for an assistant message.
inline std::string message_content(const nlohmann::json& c, const std::string& role, std::size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  if (c.is_string()) return c.get<std::string>();
  if (c.is_null() && role == "assistant") return {};
  if (!c.is_array()) bad_request(param, "'{}' must be a string or an array of content parts, got {}", param, quote_json(c));
  std::string text;
  for (std::size_t j = 0; j < c.size(); ++j) {
    const auto& part = c[j];
    if (!part.is_object() || !part.contains("type"))
      bad_request(param, "'{}[{}]' must be an object with a 'type', got {}", param, j, quote_json(part));
    const auto& type = part["type"];
    if (type != "text")
      bad_request(param, "'{}[{}]': content part type {} is not supported (text only)", param, j, quote_json(type));
    const auto it = part.find("text");
    if (it == part.end() || !it->is_string())
      bad_request(param, "'{}[{}].text' must be a string", param, j);
    text += it->get<std::string>();
  }
  return text;
}

// An assistant message's "tool_calls": [{"id", "type": "function", "function": {"name": string,
// "arguments": JSON text or object}}] (at most 128), for the template: arguments as an object
// when they parse as one.
inline nlohmann::ordered_json message_tool_calls(const nlohmann::json& v, const std::string& param) {
  if (!v.is_array()) bad_request(param, "'{}' must be an array, got {}", param, quote_json(v));
  if (v.size() > 128) bad_request(param, "'{}' has {} calls; at most 128", param, v.size());
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string p = fmt::format("{}[{}]", param, i);
    const auto& c = v[i];
    if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
      bad_request(p, "'{}' must be an object with a 'function' object, got {}", p, quote_json(c));
    if (c.contains("type") && c["type"] != "function")
      bad_request(p + ".type", "'{}.type' must be \"function\", got {}", p, quote_json(c["type"]));
    const auto& f = c["function"];
    if (!f.contains("name") || !f["name"].is_string()) bad_request(p + ".function.name", "'{}.function.name' must be a string", p);
    nlohmann::ordered_json call;
    if (c.contains("id")) {
      if (!c["id"].is_string()) bad_request(p + ".id", "'{}.id' must be a string", p);
      call["id"] = c["id"];
    }
    call["type"] = "function";
    nlohmann::ordered_json fn;
    fn["name"] = f["name"];
    nlohmann::ordered_json args = nlohmann::ordered_json::object();
    if (f.contains("arguments") && !f["arguments"].is_null()) {
      const auto& a = f["arguments"];
      if (a.is_string()) {
        const std::string& text = a.get_ref<const std::string&>();
        args = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (args.is_discarded() || !args.is_object())
          bad_request(p + ".function.arguments", "'{}.function.arguments' must hold a JSON object, got {}", p, quote_json(a));
      } else if (a.is_object()) {
        args = a;
      } else {
        bad_request(p + ".function.arguments", "'{}.function.arguments' must be a JSON string, got {}", p, quote_json(a));
      }
    }
    fn["arguments"] = std::move(args);
    call["function"] = std::move(fn);
    out.push_back(std::move(call));
  }
  return out;
}

inline std::vector<ChatMessage> messages(const nlohmann::json& v, const RequestLimits& limits) {
  if (!v.is_array()) bad_request("messages", "'messages' must be an array, got {} {}", type_name(v), quote_json(v));
  if (v.empty()) bad_request("messages", "'messages' must contain at least one message");
  if (v.size() > limits.max_messages)
    bad_request("messages", "'messages' has {} messages; at most {}", v.size(), limits.max_messages);
  std::vector<ChatMessage> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto& m = v[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object()) bad_request(param, "'{}' must be an object, got {}", param, quote_json(m));
    const auto role = m.find("role");
    if (role == m.end() || !role->is_string()) bad_request(param + ".role", "'{}.role' must be a string", param);
    const std::string& r = role->get_ref<const std::string&>();
    if (r != "system" && r != "developer" && r != "user" && r != "assistant" && r != "tool")
      bad_request(param + ".role", "'{}.role' {} is not one of system, developer, user, assistant, tool", param,
                  quote_json(*role));
    for (const auto& [key, value] : m.items()) {
      if (key == "role" || key == "content" || key == "name") continue;
      if (value.is_null() || (key == "tool_calls" && value.is_array() && value.empty())) continue;
      if (key == "tool_call_id" && r == "tool") continue;
      if (key == "tool_calls" && r == "assistant") continue;
      bad_request(param, "'{}.{}' is not supported", param, key);
    }
    const auto content = m.find("content");
    if (content == m.end() && r != "assistant") bad_request(param + ".content", "'{}.content' is required", param);
    ChatMessage msg{r, content == m.end() ? std::string() : message_content(*content, r, i), std::nullopt, nullptr,
                    std::nullopt};
    if (const auto name = m.find("name"); name != m.end() && !name->is_null())
      msg.name = string(*name, "name");
    if (const auto calls = m.find("tool_calls"); r == "assistant" && calls != m.end() && !calls->is_null() && !calls->empty())
      msg.tool_calls = message_tool_calls(*calls, param + ".tool_calls");
    if (const auto id = m.find("tool_call_id"); r == "tool" && id != m.end() && !id->is_null())
      msg.tool_call_id = string(*id, "tool_call_id");
    out.push_back(std::move(msg));
  }
  return out;
}

// "tools": an array of {"type": "function", "function": {"name": string, ...}} (at most 128).
inline void check_tools(const nlohmann::json& v) {
  if (!v.is_array()) bad_request("tools", "'tools' must be an array, got {}", quote_json(v));
  if (v.size() > 128) bad_request("tools", "'tools' has {} tools; at most 128", v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    const auto& t = v[i];
    const std::string param = fmt::format("tools[{}]", i);
    if (!t.is_object() || t.value("type", nlohmann::json()) != "function")
      bad_request(param, "'{}' must be an object with \"type\": \"function\", got {}", param, quote_json(t));
    const auto f = t.find("function");
    if (f == t.end() || !f->is_object() || !f->contains("name") || !(*f)["name"].is_string())
      bad_request(param, "'{}.function' must be an object with a string 'name'", param);
  }
}

// "chat_template_kwargs": an object of template variables; the names the server sets itself
// are refused.
inline void check_template_kwargs(const nlohmann::json& v) {
  if (!v.is_object()) bad_request("chat_template_kwargs", "'chat_template_kwargs' must be an object, got {}", quote_json(v));
  for (const auto& [key, value] : v.items()) {
    for (const char* reserved : {"messages", "tools", "documents", "add_generation_prompt", "bos_token", "eos_token"}) {
      if (key == reserved)
        bad_request("chat_template_kwargs", "'chat_template_kwargs.{}' is set by the server and cannot be given", key);
    }
  }
}

inline std::vector<std::string> stops(const nlohmann::json& v, const RequestLimits& limits) {
  std::vector<std::string> out;
  auto add = [&](const nlohmann::json& s) {
    if (!s.is_string()) bad_request("stop", "'stop' must be a string or an array of strings, got {}", quote_json(s));
    const auto& str = s.get_ref<const std::string&>();
    if (str.empty()) bad_request("stop", "'stop' strings must not be empty");
    if (str.size() > limits.max_stop_bytes)
      bad_request("stop", "'stop' strings are limited to {} bytes, got {}", limits.max_stop_bytes, str.size());
    out.push_back(str);
  };
  if (v.is_array()) {
    if (v.size() > limits.max_stops) bad_request("stop", "'stop' has {} strings; at most {}", v.size(), limits.max_stops);
    for (const auto& s : v) add(s);
  } else {
    add(v);
  }
  return out;
}

}  // namespace request_detail

// Parses the body of a POST to `endpoint`. `body` must be the raw bytes received; invalid JSON,
// invalid UTF-8 (including lone surrogate escapes), duplicate keys and nesting deeper than
// limits::kMaxJsonDepth are 400 errors, as are wrong types and out-of-range values.
inline CompletionRequest parse_request(Endpoint endpoint, std::string_view body, const RequestLimits& limits = {}) {
  namespace d = request_detail;
  nlohmann::json j;
  try {
    j = parse_json(body, "request body");
  } catch (const Error& e) {
    std::string message = e.what();
    if (const auto p = message.find("request body: "); p != std::string::npos) message = message.substr(p);
    throw ApiError(400, "invalid_request_error", "We could not parse the JSON body of your request: " + message,
                   std::nullopt, "invalid_json");
  }
  if (!j.is_object()) bad_request("", "the request body must be a JSON object, got {}", quote_json(j));

  CompletionRequest r;
  r.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::kChat;
  for (const auto& [key, value] : j.items()) {
    bool known = false;
    if (chat) {
      for (const auto f : d::kChatFields) known = known || f == key;
    } else {
      for (const auto f : d::kCompletionFields) known = known || f == key;
    }
    if (!known) {
      throw ApiError(400, "invalid_request_error",
                     fmt::format("Unrecognized request argument supplied: {}", quote_json(nlohmann::json(key)).substr(0, 80)),
                     key, "unknown_parameter");
    }
  }
  auto get = [&](const char* key) -> const nlohmann::json* {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  };

  // "model" absent (or null): the server's base model (no LoRA adapter).
  if (const auto* model = get("model")) r.model = d::string(*model, "model");

  if (chat) {
    const auto* m = get("messages");
    if (m == nullptr) bad_request("messages", "'messages' is a required property");
    r.messages = d::messages(*m, limits);
  } else {
    const auto* p = get("prompt");
    if (p == nullptr) bad_request("prompt", "'prompt' is a required property");
    r.prompts = d::prompts(*p, limits);
  }

  const auto* max_tokens = get("max_tokens");
  const auto* max_completion = chat ? get("max_completion_tokens") : nullptr;
  if (max_tokens != nullptr && max_completion != nullptr)
    bad_request("max_tokens", "give either 'max_tokens' or 'max_completion_tokens', not both");
  if (max_tokens != nullptr) r.max_tokens = d::integer(*max_tokens, "max_tokens", 1, limits.max_tokens);
  if (max_completion != nullptr)
    r.max_tokens = d::integer(*max_completion, "max_completion_tokens", 1, limits.max_tokens);

  auto& s = r.sampler;
  if (const auto* v = get("temperature")) {
    s.temperature = static_cast<float>(d::number(*v, "temperature", 0.0, 2.0));
    r.temperature_given = true;
  }
  if (const auto* v = get("top_p")) {
    s.top_p = static_cast<float>(d::number(*v, "top_p", 0.0, 1.0));
    if (s.top_p == 0.0f) bad_request("top_p", "'top_p' must be in (0, 1], got 0");
    r.top_p_given = true;
  }
  if (const auto* v = get("top_k")) {
    // -1 and 0 both mean "off" (vLLM uses -1).
    const auto k = d::integer(*v, "top_k", -1, std::numeric_limits<std::int32_t>::max());
    s.top_k = k < 0 ? 0 : static_cast<std::int32_t>(k);
    r.top_k_given = true;
  }
  if (const auto* v = get("min_p")) {
    s.min_p = static_cast<float>(d::number(*v, "min_p", 0.0, 1.0));
    r.min_p_given = true;
  }
  if (const auto* v = get("presence_penalty"))
    s.presence_penalty = static_cast<float>(d::number(*v, "presence_penalty", -2.0, 2.0));
  if (const auto* v = get("frequency_penalty"))
    s.frequency_penalty = static_cast<float>(d::number(*v, "frequency_penalty", -2.0, 2.0));
  if (const auto* v = get("repetition_penalty")) {
    s.repetition_penalty = static_cast<float>(d::number(*v, "repetition_penalty", 0.0, 10.0));
    if (s.repetition_penalty == 0.0f) bad_request("repetition_penalty", "'repetition_penalty' must be > 0, got 0");
  }
  if (const auto* v = get("seed")) {
    // Any 64-bit integer, as OpenAI allows; negative seeds are used as their two's complement.
    if (!v->is_number_integer()) bad_request("seed", "'seed' must be an integer, got {}", quote_json(*v));
    s.seed = v->is_number_unsigned() ? v->get<std::uint64_t>() : static_cast<std::uint64_t>(v->get<std::int64_t>());
    r.seed_given = true;
  }
  if (const auto* v = get("stop")) r.stop = d::stops(*v, limits);

  if (const auto* v = get("ignore_eos")) r.ignore_eos = d::boolean(*v, "ignore_eos");
  if (const auto* v = get("expert_budget"); v != nullptr && !v->is_null()) r.expert_budget = d::expert_budget(*v);
  if (const auto* v = get("stream")) r.stream = d::boolean(*v, "stream");
  if (const auto* v = get("stream_options")) {
    if (!r.stream) bad_request("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (!v->is_object()) bad_request("stream_options", "'stream_options' must be an object, got {}", quote_json(*v));
    for (const auto& [key, value] : v->items()) {
      if (key != "include_usage" && key != "continuous_usage_stats")
        bad_request("stream_options", "'stream_options.{}' is not supported", key);
      if (key == "include_usage" && !value.is_null()) r.include_usage = d::boolean(value, "stream_options.include_usage");
    }
  }

  if (chat) {
    bool want = false;
    if (const auto* v = get("logprobs")) want = d::boolean(*v, "logprobs");
    if (const auto* v = get("top_logprobs")) {
      const auto n = d::integer(*v, "top_logprobs", 0, 20);
      if (!want) bad_request("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
      r.logprobs = static_cast<int>(n);
    } else if (want) {
      r.logprobs = 0;
    }
  } else if (const auto* v = get("logprobs")) {
    r.logprobs = static_cast<int>(d::integer(*v, "logprobs", 0, 5));
  }

  // Known options this server does not implement: only their neutral values pass.
  if (const auto* v = get("n"); v != nullptr && d::integer(*v, "n", 1, 128) != 1)
    throw ApiError(400, "invalid_request_error", "'n' > 1 is not supported; send several requests", "n", "unsupported_value");
  if (const auto* v = get("best_of"); v != nullptr && d::integer(*v, "best_of", 1, 20) != 1)
    throw ApiError(400, "invalid_request_error", "'best_of' > 1 is not supported", "best_of", "unsupported_value");
  if (const auto* v = get("echo"); v != nullptr && d::boolean(*v, "echo"))
    throw ApiError(400, "invalid_request_error", "'echo' is not supported", "echo", "unsupported_value");
  if (const auto* v = get("suffix"); v != nullptr && !(v->is_string() && v->get_ref<const std::string&>().empty()))
    throw ApiError(400, "invalid_request_error", "'suffix' is not supported", "suffix", "unsupported_value");
  if (const auto* v = get("logit_bias"); v != nullptr && !(v->is_object() && v->empty()))
    throw ApiError(400, "invalid_request_error", "'logit_bias' is not supported", "logit_bias", "unsupported_value");
  if (const auto* v = get("user")) (void)d::string(*v, "user");
  const auto* tools = chat ? get("tools") : nullptr;
  if (tools != nullptr) d::check_tools(*tools);
  const auto* kwargs = chat ? get("chat_template_kwargs") : nullptr;
  if (kwargs != nullptr) d::check_template_kwargs(*kwargs);
  if ((tools != nullptr && !tools->empty()) || (kwargs != nullptr && !kwargs->empty())) {
    // Again with the client's key order (the body already passed every check above).
    const auto ordered = nlohmann::ordered_json::parse(body);
    if (tools != nullptr && !tools->empty()) r.tools = ordered["tools"];
    if (kwargs != nullptr) r.chat_template_kwargs = ordered["chat_template_kwargs"];
  }
  if (const auto* v = get("tool_choice"); v != nullptr && *v != "none" && *v != "auto")
    throw ApiError(400, "invalid_request_error", "'tool_choice' is not supported", "tool_choice", "unsupported_value");
  if (const auto* v = get("parallel_tool_calls")) (void)d::boolean(*v, "parallel_tool_calls");
  if (const auto* v = get("response_format");
      v != nullptr && !(v->is_object() && v->size() == 1 && v->contains("type") && (*v)["type"] == "text"))
    throw ApiError(400, "invalid_request_error", "'response_format' other than {\"type\": \"text\"} is not supported",
                   "response_format", "unsupported_value");
  if (const auto* v = get("store"); v != nullptr && d::boolean(*v, "store"))
    throw ApiError(400, "invalid_request_error", "'store' is not supported", "store", "unsupported_value");
  if (const auto* v = get("metadata"); v != nullptr && !v->is_object())
    bad_request("metadata", "'metadata' must be an object");
  if (const auto* v = get("service_tier")) (void)d::string(*v, "service_tier");

  r.sampler.greedy = r.sampler.temperature == 0.0f;
  return r;
}

}  // namespace moe::server
