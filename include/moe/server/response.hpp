// OpenAI response bodies: text_completion and chat.completion objects, their streaming chunks,
// logprobs in both endpoints' shapes, usage, and Server-Sent Events framing exactly as OpenAI's
// clients parse it ("data: {json}\n\n" per event, then "data: [DONE]\n\n").
#pragma once

#include "moe/chat/tool_calls.hpp"
#include "moe/server/request.hpp"
#include "moe/server/scheduler.hpp"
#include "moe/tokenizer/tokenizer.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe::server {

// The fields every object of one response shares.
struct ResponseContext {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string id;            // "cmpl-..." / "chatcmpl-..."
  std::int64_t created = 0;  // Unix seconds
  std::string model;
  // Chat with tools: how the model writes its calls (kNone: replies are plain content).
  chat::ToolCallFormat tool_format = chat::ToolCallFormat::kNone;
};

// OpenAI's tool_calls array for a reply's calls; ids are the model's or "call_<response id>_<i>".
inline nlohmann::json tool_calls_json(const ResponseContext& ctx, std::size_t choice,
                                      std::span<const chat::ToolCall> calls, bool with_index) {
  nlohmann::json out = nlohmann::json::array();
  for (std::size_t i = 0; i < calls.size(); ++i) {
    nlohmann::json c;
    if (with_index) c["index"] = i;  // stream deltas number their calls
    c["id"] = calls[i].id.empty() ? fmt::format("call_{}_{}_{}", ctx.id, choice, i) : calls[i].id;
    c["type"] = "function";
    c["function"] = {{"name", calls[i].name}, {"arguments", calls[i].arguments}};
    out.push_back(std::move(c));
  }
  return out;
}

// One finished choice of a non-streaming response.
struct ChoiceResult {
  std::string text;
  std::vector<TokenLogprob> logprobs;
  FinishReason finish = FinishReason::kStop;
  index_t prompt_tokens = 0;
  index_t completion_tokens = 0;
};

// A response id: the endpoint's prefix and 24 random alphanumerics. Thread-safe.
inline std::string make_response_id(Endpoint endpoint) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-";
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

// JSON text of a value, never throwing on bad UTF-8 (replaced by U+FFFD; the server only puts
// decoded text in responses, which is valid UTF-8 already).
inline std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// One SSE event carrying `j`.
inline std::string sse_event(const nlohmann::json& j) { return "data: " + dump_json(j) + "\n\n"; }
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

inline nlohmann::json usage_json(index_t prompt_tokens, index_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

// The text of one token as logprobs report it: the tokenizer's decoding of that token alone
// (special tokens included).
inline std::string token_text(const Tokenizer& tokenizer, std::int32_t id) {
  if (!tokenizer.has_id(id)) return {};
  const std::int32_t ids[] = {id};
  return tokenizer.decode(ids, false);
}

inline nlohmann::json token_bytes(const std::string& text) {
  nlohmann::json bytes = nlohmann::json::array();
  for (const char c : text) bytes.push_back(static_cast<unsigned>(static_cast<unsigned char>(c)));
  return bytes;
}

// Chat logprobs: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}.
inline nlohmann::json chat_logprobs(std::span<const TokenLogprob> tokens, const Tokenizer& tokenizer) {
  nlohmann::json content = nlohmann::json::array();
  for (const auto& t : tokens) {
    const std::string text = token_text(tokenizer, t.id);
    nlohmann::json top = nlohmann::json::array();
    for (const auto& [id, lp] : t.top) {
      const std::string alt = token_text(tokenizer, id);
      top.push_back({{"token", alt}, {"logprob", lp}, {"bytes", token_bytes(alt)}});
    }
    content.push_back({{"token", text}, {"logprob", t.logprob}, {"bytes", token_bytes(text)}, {"top_logprobs", top}});
  }
  return {{"content", std::move(content)}, {"refusal", nullptr}};
}

// Completions (legacy) logprobs: {"tokens", "token_logprobs", "top_logprobs": [{text: lp}],
// "text_offset"}; offsets count bytes of the choice's text from `offset`, advanced per token.
inline nlohmann::json completion_logprobs(std::span<const TokenLogprob> tokens, const Tokenizer& tokenizer,
                                          std::size_t& offset) {
  nlohmann::json texts = nlohmann::json::array(), lps = nlohmann::json::array(), tops = nlohmann::json::array(),
                 offsets = nlohmann::json::array();
  for (const auto& t : tokens) {
    const std::string text = token_text(tokenizer, t.id);
    texts.push_back(text);
    lps.push_back(t.logprob);
    nlohmann::json top = nlohmann::json::object();
    for (const auto& [id, lp] : t.top) top[token_text(tokenizer, id)] = lp;
    tops.push_back(std::move(top));
    offsets.push_back(offset);
    offset += text.size();
  }
  return {{"tokens", texts}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
}

// The non-streaming body: a text_completion with one choice per prompt, or a chat.completion.
// `with_logprobs`: the request asked for logprobs (else "logprobs": null).
inline nlohmann::json completion_body(const ResponseContext& ctx, std::span<const ChoiceResult> choices,
                                      bool with_logprobs, const Tokenizer& tokenizer) {
  nlohmann::json out;
  out["id"] = ctx.id;
  out["object"] = ctx.endpoint == Endpoint::kChat ? "chat.completion" : "text_completion";
  out["created"] = ctx.created;
  out["model"] = ctx.model;
  out["system_fingerprint"] = nullptr;
  nlohmann::json list = nlohmann::json::array();
  index_t prompt = 0, completion = 0;
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    nlohmann::json choice;
    choice["index"] = i;
    bool called = false;
    if (ctx.endpoint == Endpoint::kChat) {
      const chat::ParsedReply reply = chat::parse_tool_calls(ctx.tool_format, c.text);
      called = !reply.calls.empty();
      choice["message"] = {{"role", "assistant"},
                           {"content", called && reply.content.empty() ? nlohmann::json(nullptr) : nlohmann::json(reply.content)},
                           {"refusal", nullptr}};
      if (called) choice["message"]["tool_calls"] = tool_calls_json(ctx, i, reply.calls, false);
      choice["logprobs"] = with_logprobs ? chat_logprobs(c.logprobs, tokenizer) : nlohmann::json(nullptr);
    } else {
      choice["text"] = c.text;
      std::size_t offset = 0;
      choice["logprobs"] = with_logprobs ? completion_logprobs(c.logprobs, tokenizer, offset) : nlohmann::json(nullptr);
    }
    choice["finish_reason"] = called && c.finish == FinishReason::kStop ? "tool_calls" : finish_reason_name(c.finish);
    list.push_back(std::move(choice));
    prompt += c.prompt_tokens;
    completion += c.completion_tokens;
  }
  out["choices"] = std::move(list);
  out["usage"] = usage_json(prompt, completion);
  return out;
}

// One streaming chunk of choice `index`: `text` (chat: delta.content; a chat's first chunk has
// role "assistant" instead when `role_chunk`), its tokens' logprobs (null unless requested),
// and finish_reason (null until the last chunk of the choice). With include_usage every chunk
// carries "usage": null, as OpenAI's do.
struct ChunkSpec {
  std::size_t index = 0;
  std::string_view text;
  bool role_chunk = false;
  std::optional<nlohmann::json> logprobs;  // already in the endpoint's shape
  std::optional<FinishReason> finish;
  bool include_usage = false;
  std::optional<nlohmann::json> tool_calls;  // chat: delta.tool_calls (the reply's calls, at its end)
  bool called = false;                       // with finish: the reply made tool calls ("tool_calls")
};

inline nlohmann::json chunk_body(const ResponseContext& ctx, const ChunkSpec& c) {
  nlohmann::json out;
  out["id"] = ctx.id;
  out["object"] = ctx.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
  out["created"] = ctx.created;
  out["model"] = ctx.model;
  out["system_fingerprint"] = nullptr;
  nlohmann::json choice;
  choice["index"] = c.index;
  if (ctx.endpoint == Endpoint::kChat) {
    nlohmann::json delta = nlohmann::json::object();
    if (c.role_chunk) {
      delta["role"] = "assistant";
      delta["content"] = "";
    } else if (c.tool_calls) {
      delta["tool_calls"] = *c.tool_calls;
    } else if (!c.finish || !c.text.empty()) {
      delta["content"] = c.text;
    }
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = c.text;
  }
  choice["logprobs"] = c.logprobs ? *c.logprobs : nlohmann::json(nullptr);
  if (c.finish) {
    choice["finish_reason"] = c.called && *c.finish == FinishReason::kStop ? "tool_calls" : finish_reason_name(*c.finish);
  } else {
    choice["finish_reason"] = nullptr;
  }
  out["choices"] = nlohmann::json::array({std::move(choice)});
  if (c.include_usage) out["usage"] = nullptr;
  return out;
}

// The chunk after the last choice when stream_options.include_usage is set: no choices, the
// usage of the whole request.
inline nlohmann::json usage_chunk_body(const ResponseContext& ctx, index_t prompt_tokens, index_t completion_tokens) {
  nlohmann::json out;
  out["id"] = ctx.id;
  out["object"] = ctx.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion";
  out["created"] = ctx.created;
  out["model"] = ctx.model;
  out["system_fingerprint"] = nullptr;
  out["choices"] = nlohmann::json::array();
  out["usage"] = usage_json(prompt_tokens, completion_tokens);
  return out;
}

}  // namespace moe::server
