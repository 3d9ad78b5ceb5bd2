// The OpenAI-compatible API without the socket: routes, authentication, request -> sequences ->
// scheduler, and the response (a JSON body, or an SSE stream the HTTP layer pumps). The HTTP
// server (examples/moe-server, cpp-httplib) only copies requests in and bytes out, so everything
// here is testable by calling handle().
#pragma once

#include "moe/core/error.hpp"
#include "moe/runtime/generate.hpp"
#include "moe/server/api_error.hpp"
#include "moe/server/chat_page.hpp"
#include "moe/server/chat_prompt.hpp"
#include "moe/server/metrics.hpp"
#include "moe/server/request.hpp"
#include "moe/server/response.hpp"
#include "moe/server/scheduler.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moe::server {

struct ServiceOptions {
  std::string model_id = "model";   // the base model's id (/v1/models lists it; requests name it or an adapter)
  // Unmerged LoRA adapters resident on the model (its adapter_names()): /v1/models lists each as a
  // model too, and a request's "model" naming one runs with that adapter.
  std::vector<std::string> adapters;
  std::string api_key;              // empty: no authentication
  RequestLimits limits;
  double request_timeout_s = 600.0; // from arrival to the last token; past it the request ends (503)
  std::size_t max_body_bytes = std::size_t{4} << 20;
  index_t default_max_tokens = 16;  // completions without max_tokens (OpenAI's default)
  GenerationDefaults defaults;      // generation_config.json: sampling defaults a request may override
  std::vector<std::int32_t> eos_token_ids;  // extra end ids (generation_config.json's)
};

struct HttpRequest {
  std::string method;         // "GET", "POST", ...
  std::string path;           // without the query string
  std::string authorization;  // the Authorization header, empty if absent
  std::string body;
  // Whether the client is still connected (empty: assume it is). A non-streaming request asks
  // it while it waits for its tokens and ends (cancelled, 499) when the client has gone.
  std::function<bool()> connected;
};

// A streaming response's producer. The HTTP layer calls pump() until it returns kDone (the
// stream is complete: finish the response) or kGone (the client went away or a write failed:
// drop the connection). Destroying it before the end cancels the request's sequences, so a
// connection that closes early frees its batch slots at the next step.
class EventStream {
 public:
  enum class Pump { kMore, kDone, kGone };
  using Write = std::function<bool(std::string_view)>;
  using Alive = std::function<bool()>;

  EventStream(ResponseContext ctx, std::shared_ptr<ResponseChannel> channel, std::shared_ptr<const Tokenizer> tokenizer,
              std::size_t n_choices, bool include_usage, bool logprobs)
      : ctx_(std::move(ctx)), channel_(std::move(channel)), tokenizer_(std::move(tokenizer)), remaining_(n_choices),
        n_choices_(n_choices), include_usage_(include_usage), logprobs_(logprobs), offsets_(n_choices, 0),
        held_(n_choices) {}
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;
  ~EventStream() {
    if (remaining_ > 0) channel_->cancel();
  }

  // Writes what is ready, waiting for it in steps of `poll`; `alive` (whether the client is
  // still connected) is asked first and after each empty wait.
  Pump pump(const Write& write, const Alive& alive, std::chrono::milliseconds poll = std::chrono::milliseconds(50)) {
    if (remaining_ == 0) return Pump::kDone;
    if (!started_) {
      started_ = true;
      if (ctx_.endpoint == Endpoint::kChat) {
        for (std::size_t i = 0; i < n_choices_; ++i) {
          ChunkSpec c;
          c.index = i;
          c.role_chunk = true;
          c.include_usage = include_usage_;
          if (!write(sse_event(chunk_body(ctx_, c)))) return gone();
        }
        return Pump::kMore;
      }
    }
    // A client that closed its connection is noticed here even while its sequence still waits
    // in the queue and nothing is written.
    if (alive && !alive()) return gone();
    while (!channel_->wait_pop(events_, poll)) {
      if (alive && !alive()) return gone();
    }
    for (auto& e : events_) {
      if (e.kind == SequenceEvent::kError) {
        --remaining_;
        failed_ = true;
        if (!write(sse_event(e.error->body()))) return gone();
        continue;
      }
      ChunkSpec c;
      c.index = e.choice;
      c.include_usage = include_usage_;
      if (logprobs_) c.logprobs = logprobs_json(e.logprobs, e.choice);
      // With tools, text from a tool-call marker on is held back until the reply ends.
      std::string& held = held_[e.choice];
      held += e.text;
      const std::size_t safe =
          e.kind == SequenceEvent::kFinished ? held.size() : chat::tool_call_safe_prefix(ctx_.tool_format, held);
      std::string text = held.substr(0, safe);
      held.erase(0, safe);
      std::vector<chat::ToolCall> calls;
      if (e.kind == SequenceEvent::kFinished && ctx_.tool_format != chat::ToolCallFormat::kNone) {
        chat::ParsedReply reply = chat::parse_tool_calls(ctx_.tool_format, text);
        // Content already sent stays sent: only the held-back part can turn into calls.
        calls = std::move(reply.calls);
        if (!calls.empty()) text = std::move(reply.content);
      }
      c.text = text;
      if (e.kind == SequenceEvent::kFinished) {
        // The held-back tail (if any) in its own chunk, its calls, then the finish_reason chunk.
        if (!text.empty() || (logprobs_ && !e.logprobs.empty())) {
          if (!write(sse_event(chunk_body(ctx_, c)))) return gone();
        }
        if (!calls.empty()) {
          ChunkSpec tc;
          tc.index = e.choice;
          tc.include_usage = include_usage_;
          tc.tool_calls = tool_calls_json(ctx_, e.choice, calls, true);
          if (!write(sse_event(chunk_body(ctx_, tc)))) return gone();
        }
        ChunkSpec last;
        last.index = e.choice;
        last.finish = e.finish;
        last.called = !calls.empty();
        last.include_usage = include_usage_;
        if (!write(sse_event(chunk_body(ctx_, last)))) return gone();
        prompt_tokens_ += e.prompt_tokens;
        completion_tokens_ += e.completion_tokens;
        --remaining_;
      } else if (!write(sse_event(chunk_body(ctx_, c)))) {
        return gone();
      }
    }
    if (remaining_ > 0) return Pump::kMore;
    if (include_usage_ && !failed_ && !write(sse_event(usage_chunk_body(ctx_, prompt_tokens_, completion_tokens_))))
      return gone();
    if (!write(kSseDone)) return gone();
    return Pump::kDone;
  }

  // Runs pump() to the end (for tests and simple hosts).
  Pump drain(const Write& write, const Alive& alive = {}) {
    Pump p = Pump::kMore;
    while ((p = pump(write, alive)) == Pump::kMore) {
    }
    return p;
  }

 private:
  Pump gone() {
    channel_->cancel();
    remaining_ = 0;
    return Pump::kGone;
  }
  nlohmann::json logprobs_json(std::span<const TokenLogprob> tokens, std::size_t choice) {
    if (ctx_.endpoint == Endpoint::kChat) return chat_logprobs(tokens, *tokenizer_);
    return completion_logprobs(tokens, *tokenizer_, offsets_[choice]);
  }

  ResponseContext ctx_;
  std::shared_ptr<ResponseChannel> channel_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::size_t remaining_;
  std::size_t n_choices_;
  bool include_usage_, logprobs_;
  bool started_ = false, failed_ = false;
  std::vector<std::size_t> offsets_;  // completions: text_offset per choice
  std::vector<std::string> held_;     // per choice: text held back from a possible tool call
  std::vector<SequenceEvent> events_;
  index_t prompt_tokens_ = 0, completion_tokens_ = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::shared_ptr<EventStream> stream;  // stream: true; body is empty and the status 200
};

inline HttpResponse error_response(const ApiError& e) {
  return HttpResponse{e.status, "application/json", dump_json(e.body()), nullptr};
}

template <class Backend>
class BasicApiService {
 public:
  using SchedulerType = BasicScheduler<Backend>;

  // `scheduler` must be started by the caller; `render_chat` turns chat messages into prompt
  // text (folder_chat_renderer(dir): the model's chat template; default: the plain fallback).
  BasicApiService(std::shared_ptr<SchedulerType> scheduler, std::shared_ptr<const Tokenizer> tokenizer,
                  ServiceOptions options, ChatRenderer render_chat = fallback_chat_renderer())
      : scheduler_(std::move(scheduler)), tokenizer_(std::move(tokenizer)), options_(std::move(options)),
        render_chat_(std::move(render_chat)), created_(static_cast<std::int64_t>(std::time(nullptr))) {}

  // Answers one HTTP request. Never throws: every failure is an error response in OpenAI's
  // shape (4xx for the client's mistakes, 5xx for the server's). Thread-safe; blocks until a
  // non-streaming request has finished.
  HttpResponse handle(const HttpRequest& req);

  // The scheduler's metrics, with this service's request counts.
  ServerMetrics& metrics() { return scheduler_->metrics(); }
  const ServiceOptions& options() const noexcept { return options_; }

 private:
  // Known routes by name, everything else as "other" (bounded label values for Prometheus).
  static std::string route_name(const std::string& path);

  HttpResponse dispatch(const HttpRequest& req);

  static std::string clip(std::string_view s) {
    std::string out = quote_json(nlohmann::json(std::string(s.substr(0, 200))));
    return out;
  }

  static void require_method(const HttpRequest& req, const char* method) {
    if (req.method != method)
      throw ApiError(405, "invalid_request_error", fmt::format("{} is not allowed on {}; use {}", req.method,
                                                               clip(req.path), method),
                     std::nullopt, "method_not_allowed");
  }

  void authenticate(const HttpRequest& req) const;

  [[noreturn]] void model_not_found(const std::string& name) const {
    std::string served = quote_json(nlohmann::json(options_.model_id));
    for (const auto& a : options_.adapters) served += ", " + quote_json(nlohmann::json(a));
    throw ApiError(404, "invalid_request_error",
                   fmt::format("The model {} does not exist; this server serves {}{}", clip(name), served,
                               options_.adapters.empty() ? "" : " (the base model and its LoRA adapters)"),
                   "model", "model_not_found");
  }
  bool is_adapter(const std::string& name) const {
    return std::find(options_.adapters.begin(), options_.adapters.end(), name) != options_.adapters.end();
  }

  nlohmann::json model_object(const std::string& id) const;

  static HttpResponse json_response(const nlohmann::json& j) { return HttpResponse{200, "application/json", dump_json(j), nullptr}; }

  std::vector<std::int32_t> encode(const std::string& text, bool add_special) const;

  HttpResponse generate(Endpoint endpoint, const std::string& body, const std::function<bool()>& connected);

  // OpenAI's sampling defaults (temperature 1, top_p 1), then generation_config.json's values,
  // then the request's; temperature 0 is greedy. Without a seed each request draws its own.
  SamplerConfig sampler_for(const CompletionRequest& r) const;

  // max_tokens as asked; without it, completions get default_max_tokens and chat the rest of
  // the context (at most limits.max_tokens), as OpenAI's chat endpoint does.
  index_t max_tokens_for(const CompletionRequest& r, index_t prompt_tokens) const;

  std::shared_ptr<SchedulerType> scheduler_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  ServiceOptions options_;
  ChatRenderer render_chat_;
  std::int64_t created_;
};

template <class Backend>
HttpResponse BasicApiService<Backend>::handle(const HttpRequest& req) {
  const std::string route = route_name(req.path);
  HttpResponse res;
  try {
    res = dispatch(req);
  } catch (const ApiError& e) {
    res = error_response(e);
  } catch (const Error& e) {
    const bool client = e.code() == ErrorCode::kTokenizer || e.code() == ErrorCode::kInvalidArgument ||
                        e.code() == ErrorCode::kContextOverflow;
    res = error_response(client ? ApiError(400, "invalid_request_error", e.what())
                                : ApiError(500, "server_error", e.what()));
  } catch (const std::exception& e) {
    res = error_response(ApiError(500, "server_error", fmt::format("internal error: {}", e.what())));
  }
  metrics().count_request(route, res.status);
  return res;
}

template <class Backend>
std::string BasicApiService<Backend>::route_name(const std::string& path) {
  if (path == "/") return "/";  // the chat page
  for (const char* r : {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics",
                        "/stats/experts.svg"}) {
    if (path == r) return r;
  }
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

template <class Backend>
HttpResponse BasicApiService<Backend>::dispatch(const HttpRequest& req) {
  const std::string& p = req.path;
  const bool known = route_name(p) != "other";
  if (p == "/health") {
    require_method(req, "GET");
    return json_response({{"status", "ok"}});
  }
  if (p == "/") {
    // The chat page: static, without secrets, so it needs no key (a browser cannot send one
    // when it opens a page); the page sends the key it is given with its API calls.
    require_method(req, "GET");
    return HttpResponse{200, "text/html; charset=utf-8", std::string(kChatPage), nullptr};
  }
  authenticate(req);
  if (!known) throw ApiError(404, "invalid_request_error", fmt::format("Unknown route {} {}", req.method, clip(p)),
                             std::nullopt, "not_found");
  if (p == "/metrics") {
    require_method(req, "GET");
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", scheduler_->metrics().prometheus(), nullptr};
  }
  if (p == "/stats/experts.svg") {  // the layers x experts routing heatmap of the last minute
    require_method(req, "GET");
    return HttpResponse{200, "image/svg+xml", scheduler_->metrics().expert_heatmap(), nullptr};
  }
  if (p == "/v1/models") {
    require_method(req, "GET");
    nlohmann::json data = nlohmann::json::array({model_object(options_.model_id)});
    for (const auto& a : options_.adapters) data.push_back(model_object(a));
    return json_response({{"object", "list"}, {"data", data}});
  }
  if (p.rfind("/v1/models/", 0) == 0) {
    require_method(req, "GET");
    const std::string id = p.substr(11);
    if (id != options_.model_id && !is_adapter(id)) model_not_found(id);
    return json_response(model_object(id));
  }
  require_method(req, "POST");
  return generate(p == "/v1/chat/completions" ? Endpoint::kChat : Endpoint::kCompletions, req.body, req.connected);
}

template <class Backend>
void BasicApiService<Backend>::authenticate(const HttpRequest& req) const {
  if (options_.api_key.empty()) return;
  const std::string expected = "Bearer " + options_.api_key;
  // Compared in time independent of where the first difference is.
  bool same = req.authorization.size() == expected.size();
  unsigned diff = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned>(static_cast<unsigned char>(expected[i]) ^
                                  static_cast<unsigned char>(i < req.authorization.size() ? req.authorization[i] : 0));
  }
  if (!same || diff != 0) {
    throw ApiError(401, "invalid_request_error",
                   req.authorization.empty()
                       ? "You didn't provide an API key. Provide it in an Authorization header: Bearer YOUR_KEY"
                       : "Incorrect API key provided",
                   std::nullopt, "invalid_api_key");
  }
}

template <class Backend>
nlohmann::json BasicApiService<Backend>::model_object(const std::string& id) const {
  nlohmann::json m = {{"id", id}, {"object", "model"}, {"created", created_}, {"owned_by", "moecpp"},
                      {"max_model_len", scheduler_->max_sequence_tokens()}};
  if (id != options_.model_id) m["parent"] = options_.model_id;  // a LoRA adapter on the base model
  return m;
}

template <class Backend>
std::vector<std::int32_t> BasicApiService<Backend>::encode(const std::string& text, bool add_special) const {
  try {
    return tokenizer_->encode(text, add_special);
  } catch (const Error& e) {
    bad_request("prompt", "the prompt could not be tokenized: {}", e.what());
  }
}

template <class Backend>
HttpResponse BasicApiService<Backend>::generate(Endpoint endpoint, const std::string& body, const std::function<bool()>& connected) {
  if (body.size() > options_.max_body_bytes) {
    throw ApiError(413, "invalid_request_error",
                   fmt::format("the request body of {} bytes exceeds the limit of {} bytes", body.size(),
                               options_.max_body_bytes),
                   std::nullopt, "request_too_large");
  }
  CompletionRequest r = parse_request(endpoint, body, options_.limits);
  if (r.model.empty()) r.model = options_.model_id;  // no "model": the base
  // The base model's id runs the base; an adapter's name runs with that adapter.
  const bool adapter = r.model != options_.model_id;
  if (adapter && !is_adapter(r.model)) model_not_found(r.model);

  std::vector<std::vector<std::int32_t>> prompts;
  chat::ToolCallFormat tool_format = chat::ToolCallFormat::kNone;
  if (endpoint == Endpoint::kChat) {
    RenderedChat chat;
    try {
      chat = render_chat_(r.messages, ChatVariables{r.tools, r.chat_template_kwargs});
    } catch (const ApiError&) {
      throw;
    } catch (const std::exception& e) {
      bad_request("messages", "the chat template failed: {}", e.what());
    }
    prompts.push_back(encode(chat.text, chat.add_special_tokens));
    tool_format = chat.tool_format;
  } else {
    for (const auto& p : r.prompts) {
      if (const auto* text = std::get_if<std::string>(&p)) {
        prompts.push_back(encode(*text, true));
      } else {
        prompts.push_back(std::get<std::vector<std::int32_t>>(p));
      }
    }
  }

  GenerationOptions o;
  o.sampler = sampler_for(r);
  o.stop_strings = r.stop;
  o.eos_token_ids = options_.eos_token_ids;
  o.ignore_eos = r.ignore_eos;
  o.expert_budget = r.expert_budget;
  if (adapter) o.adapter = r.model;
  const auto channel = std::make_shared<ResponseChannel>();
  const auto now = Clock::now();
  const auto deadline =
      now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options_.request_timeout_s));
  std::vector<SequenceJob> jobs;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    SequenceJob job;
    job.options = o;
    job.options.max_new_tokens = max_tokens_for(r, prompts[i].size());
    job.prompt = std::move(prompts[i]);
    job.logprobs = r.logprobs;
    job.choice = i;
    job.channel = channel;
    job.arrival = now;
    job.deadline = deadline;
    jobs.push_back(std::move(job));
  }
  const std::size_t n = jobs.size();
  scheduler_->submit(std::move(jobs));

  ResponseContext ctx{endpoint, make_response_id(endpoint), static_cast<std::int64_t>(std::time(nullptr)),
                      r.model, tool_format};
  if (r.stream) {
    HttpResponse res{200, "text/event-stream", {}, nullptr};
    res.stream = std::make_shared<EventStream>(std::move(ctx), channel, tokenizer_, n, r.include_usage, r.logprobs >= 0);
    return res;
  }
  // Not streaming: collect every choice, asking every 100 ms whether the client is still there
  // (a client that left cancels its sequences: queued ones never run, running ones stop at the
  // next step). 499 is nginx's "client closed request"; nobody reads it.
  std::vector<ChoiceResult> results(n);
  std::size_t remaining = n;
  std::vector<SequenceEvent> events;
  std::optional<ApiError> error;
  auto next_check = Clock::now();
  while (remaining > 0) {
    const bool got = channel->wait_pop(events, std::chrono::milliseconds(50));
    if (connected && Clock::now() >= next_check) {
      next_check = Clock::now() + std::chrono::milliseconds(100);
      if (!connected()) {
        channel->cancel();
        throw ApiError(499, "invalid_request_error", "the client closed the connection before the response was ready",
                       std::nullopt, "client_closed_request");
      }
    }
    if (!got) continue;
    for (auto& e : events) {
      ChoiceResult& c = results[e.choice];
      c.text += e.text;
      c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      if (e.kind == SequenceEvent::kFinished) {
        c.finish = e.finish;
        c.prompt_tokens = e.prompt_tokens;
        c.completion_tokens = e.completion_tokens;
        --remaining;
      } else if (e.kind == SequenceEvent::kError) {
        if (!error) error = e.error;
        --remaining;
      }
    }
  }
  if (error) {
    channel->cancel();  // the other choices of the request, if any are still running
    throw *error;
  }
  return json_response(completion_body(ctx, results, r.logprobs >= 0, *tokenizer_));
}

template <class Backend>
SamplerConfig BasicApiService<Backend>::sampler_for(const CompletionRequest& r) const {
  SamplerConfig s = r.sampler;
  const auto& d = options_.defaults;
  if (!r.temperature_given && d.temperature) s.temperature = *d.temperature;
  if (!r.top_p_given && d.top_p) s.top_p = *d.top_p;
  if (!r.top_k_given && d.top_k) s.top_k = *d.top_k;
  if (!r.min_p_given && d.min_p) s.min_p = *d.min_p;
  s.greedy = s.temperature == 0.0f;
  if (!r.seed_given) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    s.seed = rng();
  }
  return s;
}

template <class Backend>
index_t BasicApiService<Backend>::max_tokens_for(const CompletionRequest& r, index_t prompt_tokens) const {
  if (r.max_tokens) return static_cast<index_t>(*r.max_tokens);
  if (r.endpoint == Endpoint::kCompletions) return options_.default_max_tokens;
  const index_t room = scheduler_->max_sequence_tokens() > prompt_tokens ? scheduler_->max_sequence_tokens() - prompt_tokens : 1;
  return std::max<index_t>(1, std::min<index_t>(room, static_cast<index_t>(options_.limits.max_tokens)));
}

using ApiService = BasicApiService<backend::cpu>;

// Compiled once for this project's own executables (instances/; see MOE_EXTERN_GRAPH in
// model/transformer.hpp).
#if defined(MOE_EXTERN_GRAPH)
extern template class BasicApiService<backend::cpu>;
extern template class BasicApiService<backend::reference>;
#endif
#if defined(MOE_EXTERN_GRAPH_CUDA)
extern template class BasicApiService<backend::cuda>;
#endif

}  // namespace moe::server
