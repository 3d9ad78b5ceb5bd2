// moe::server without a socket: request parsing and validation, response / chunk / SSE JSON,
// metrics, the chat fallback, the scheduler (batching, budget, queue, cancellation, timeouts,
// logprobs) and the service's routes on the bundled model.
#include "server_test_util.hpp"

#include <moe/server/service.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

using namespace moe::server;
using server_test::demo_tokenizer;
using server_test::eventually;
using server_test::greedy_alone;
using server_test::Served;
using server_test::summarize_stream;

namespace {

// The ApiError a parse throws (fails the test if it does not).
ApiError parse_error(Endpoint e, const std::string& body, const RequestLimits& limits = {}) {
  try {
    (void)parse_request(e, body, limits);
  } catch (const ApiError& err) {
    return err;
  }
  FAIL("no error for " << body);
  return ApiError(0, "", "");
}

ApiError completion_error(const std::string& fields) {
  return parse_error(Endpoint::kCompletions, R"({"model": "m", "prompt": "x")" + (fields.empty() ? "" : ", " + fields) + "}");
}
ApiError chat_error(const std::string& fields) {
  return parse_error(Endpoint::kChat,
                     R"({"model": "m", "messages": [{"role": "user", "content": "hi"}])" + (fields.empty() ? "" : ", " + fields) + "}");
}

nlohmann::json body_of(const HttpResponse& r) { return nlohmann::json::parse(r.body); }

SequenceJob job_for(const std::string& prompt, moe::index_t max_tokens, std::shared_ptr<ResponseChannel> channel,
                    std::size_t choice = 0) {
  SequenceJob j;
  j.prompt = demo_tokenizer()->encode(prompt, true);
  j.options.sampler.greedy = true;
  j.options.max_new_tokens = max_tokens;
  j.channel = std::move(channel);
  j.choice = choice;
  return j;
}

// Collects the events of `n` choices from a channel until each finished or failed.
struct Collected {
  std::vector<std::string> text;
  std::vector<std::optional<FinishReason>> finish;
  std::vector<std::optional<ApiError>> error;
  std::vector<std::vector<TokenLogprob>> logprobs;
  std::vector<moe::index_t> completion_tokens;
};
// `seconds` only bounds a hang: the sanitizer build on a loaded 2-core machine needs minutes for
// the longest case here (8 sequences, 522 tokens).
Collected collect(ResponseChannel& ch, std::size_t n, double seconds = 600.0) {
  Collected c{std::vector<std::string>(n), std::vector<std::optional<FinishReason>>(n),
              std::vector<std::optional<ApiError>>(n), std::vector<std::vector<TokenLogprob>>(n),
              std::vector<moe::index_t>(n, 0)};
  std::size_t remaining = n;
  std::vector<SequenceEvent> events;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (remaining > 0 && std::chrono::steady_clock::now() < end) {
    if (!ch.wait_pop(events, std::chrono::milliseconds(50))) continue;
    for (auto& e : events) {
      c.text[e.choice] += e.text;
      c.logprobs[e.choice].insert(c.logprobs[e.choice].end(), e.logprobs.begin(), e.logprobs.end());
      if (e.kind == SequenceEvent::kFinished) {
        c.finish[e.choice] = e.finish;
        c.completion_tokens[e.choice] = e.completion_tokens;
        --remaining;
      } else if (e.kind == SequenceEvent::kError) {
        c.error[e.choice] = e.error;
        --remaining;
      }
    }
  }
  REQUIRE(remaining == 0);
  return c;
}

}  // namespace

// ---- parsing ----------------------------------------------------------------------------------

TEST_CASE("parse: completions request with every supported field", "[server][parse]") {
  const auto r = parse_request(Endpoint::kCompletions, R"({
    "model": "m", "prompt": "Hello", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
    "min_p": 0.05, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
    "seed": -1, "stop": ["\n\n", "END"], "stream": true, "stream_options": {"include_usage": true},
    "logprobs": 3, "n": 1, "echo": false, "best_of": 1, "logit_bias": {}, "user": "u", "suffix": null})");
  CHECK(r.model == "m");
  REQUIRE(r.prompts.size() == 1);
  CHECK(std::get<std::string>(r.prompts[0]) == "Hello");
  CHECK(r.max_tokens == 7);
  CHECK(r.sampler.temperature == 0.5f);
  CHECK(r.sampler.top_p == 0.9f);
  CHECK(r.sampler.top_k == 40);
  CHECK(r.sampler.min_p == 0.05f);
  CHECK(r.sampler.presence_penalty == 0.5f);
  CHECK(r.sampler.frequency_penalty == -0.5f);
  CHECK(r.sampler.repetition_penalty == 1.1f);
  CHECK(r.sampler.seed == ~std::uint64_t{0});
  CHECK_FALSE(r.sampler.greedy);
  CHECK(r.stop == std::vector<std::string>{"\n\n", "END"});
  CHECK(r.stream);
  CHECK(r.include_usage);
  CHECK(r.logprobs == 3);
}

TEST_CASE("parse: prompt forms and chat messages", "[server][parse]") {
  auto prompts = [](const std::string& p) {
    return parse_request(Endpoint::kCompletions, R"({"model": "m", "prompt": )" + p + "}").prompts;
  };
  CHECK(std::get<std::vector<std::int32_t>>(prompts("[1, 2, 3]")[0]) == std::vector<std::int32_t>{1, 2, 3});
  const auto many = prompts(R"(["a", [4, 5], "c"])");
  REQUIRE(many.size() == 3);
  CHECK(std::get<std::string>(many[2]) == "c");
  CHECK(std::get<std::vector<std::int32_t>>(many[1]) == std::vector<std::int32_t>{4, 5});

  const auto r = parse_request(Endpoint::kChat, R"({"model": "m", "temperature": 0, "max_completion_tokens": 5,
    "logprobs": true, "top_logprobs": 4, "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}], "name": "ann"},
      {"role": "assistant", "content": null, "tool_calls": []}]})");
  REQUIRE(r.messages.size() == 3);
  CHECK(r.messages[1].content == "Hi there");
  CHECK(r.messages[1].name == "ann");
  CHECK(r.messages[2].content.empty());
  CHECK(r.sampler.greedy);
  CHECK(r.max_tokens == 5);
  CHECK(r.logprobs == 4);
  CHECK(parse_request(Endpoint::kChat, R"({"model": "m", "logprobs": true, "messages": [{"role": "user", "content": ""}]})")
            .logprobs == 0);
}

TEST_CASE("parse: malformed JSON, invalid UTF-8 and structure errors are 400s", "[server][parse]") {
  for (const std::string& body : {std::string("{"), std::string("not json"), std::string("{\"model\": \"m\",}"),
                                 std::string("{\"model\": \"\xff\", \"prompt\": \"x\"}"),
                                 std::string(R"({"model": "m", "prompt": "\ud800"})"),
                                 std::string(R"({"model": "m", "model": "n", "prompt": "x"})"),
                                 std::string(200, '[') + std::string(200, ']'), std::string("")}) {
    const ApiError e = parse_error(Endpoint::kCompletions, body);
    CHECK(e.status == 400);
    CHECK(e.type == "invalid_request_error");
  }
  CHECK(parse_error(Endpoint::kCompletions, "[1, 2]").status == 400);
  CHECK(parse_request(Endpoint::kCompletions, R"({"prompt": "x"})").model.empty());  // absent: the base model
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": "m"})").param == "prompt");
  CHECK(parse_error(Endpoint::kChat, R"({"model": "m"})").param == "messages");
  CHECK(parse_error(Endpoint::kChat, R"({"model": "m", "messages": []})").param == "messages");
}

TEST_CASE("parse: wrong types and out-of-range values name the field", "[server][parse]") {
  struct Case {
    const char* fields;
    const char* param;
  };
  for (const Case c : {Case{R"("max_tokens": -1)", "max_tokens"}, Case{R"("max_tokens": 0)", "max_tokens"},
                       Case{R"("max_tokens": 1e30)", "max_tokens"}, Case{R"("max_tokens": 99999999999999999999)", "max_tokens"},
                       Case{R"("max_tokens": 5000)", "max_tokens"}, Case{R"("max_tokens": "5")", "max_tokens"},
                       Case{R"("max_tokens": 2.5)", "max_tokens"}, Case{R"("temperature": 2.5)", "temperature"},
                       Case{R"("temperature": -0.1)", "temperature"}, Case{R"("temperature": "hot")", "temperature"},
                       Case{R"("top_p": 0)", "top_p"}, Case{R"("top_p": 1.5)", "top_p"}, Case{R"("top_k": -2)", "top_k"},
                       Case{R"("min_p": 2)", "min_p"}, Case{R"("presence_penalty": 3)", "presence_penalty"},
                       Case{R"("frequency_penalty": -9)", "frequency_penalty"},
                       Case{R"("repetition_penalty": 0)", "repetition_penalty"}, Case{R"("seed": 1.5)", "seed"},
                       Case{R"("stop": 5)", "stop"}, Case{R"("stop": [""])", "stop"},
                       Case{R"("stop": ["a", "b", "c", "d", "e"])", "stop"}, Case{R"("stream": "yes")", "stream"},
                       Case{R"("stream_options": {"include_usage": true})", "stream_options"},
                       Case{R"("logprobs": 6)", "logprobs"}, Case{R"("logprobs": true)", "logprobs"},
                       Case{R"("user": 5)", "user"}}) {
    INFO(c.fields);
    const ApiError e = completion_error(c.fields);
    CHECK(e.status == 400);
    CHECK(e.param == c.param);
  }
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": 5, "prompt": "x"})").param == "model");
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": "m", "prompt": [1, -3]})").param == "prompt");
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": "m", "prompt": [1, 3000000000]})").param == "prompt");
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": "m", "prompt": [[]]})").param == "prompt");
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": "m", "prompt": 7})").param == "prompt");
  RequestLimits small;
  small.max_prompts = 2;
  CHECK(parse_error(Endpoint::kCompletions, R"({"model": "m", "prompt": ["a", "b", "c"]})", small).param == "prompt");
  CHECK(chat_error(R"("top_logprobs": 2)").param == "top_logprobs");
  CHECK(chat_error(R"("logprobs": true, "top_logprobs": 21)").param == "top_logprobs");
  CHECK(chat_error(R"("max_tokens": 3, "max_completion_tokens": 3)").param == "max_tokens");
  CHECK(parse_error(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})").param ==
        "messages[0].role");
  CHECK(parse_error(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "user"}]})").param == "messages[0].content");
  CHECK(parse_error(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "user", "content": 3}]})").param ==
        "messages[0].content");
  CHECK(parse_error(Endpoint::kChat,
                    R"({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})")
            .param == "messages[0].content");
  CHECK(parse_error(Endpoint::kChat, R"({"model": "m", "messages": ["hi"]})").param == "messages[0]");
}

TEST_CASE("parse: unknown fields and unsupported values are refused", "[server][parse]") {
  const ApiError unknown = completion_error(R"("temprature": 1)");
  CHECK(unknown.code == "unknown_parameter");
  CHECK(unknown.param == "temprature");
  CHECK(std::string(unknown.what()).find("Unrecognized request argument supplied") != std::string::npos);
  CHECK(chat_error(R"("prompt": "x")").code == "unknown_parameter");       // a completions field in chat
  CHECK(completion_error(R"("messages": [])").code == "unknown_parameter");  // and the other way
  for (const char* f : {R"("n": 2)", R"("echo": true)", R"("best_of": 3)", R"("logit_bias": {"5": 10})", R"("suffix": "x")"}) {
    INFO(f);
    const ApiError e = completion_error(f);
    CHECK(e.status == 400);
    CHECK(e.code == "unsupported_value");
  }
  for (const char* f : {R"("response_format": {"type": "json_object"})", R"("tool_choice": "required")",
                        R"("store": true)"}) {
    INFO(f);
    CHECK(chat_error(f).code == "unsupported_value");
  }
  // Neutral values of the same options pass.
  CHECK_NOTHROW(parse_request(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "x"}],
      "n": 1, "tools": [], "tool_choice": "none", "response_format": {"type": "text"}, "store": false,
      "parallel_tool_calls": true, "metadata": {}, "user": "me", "seed": 3, "stop": null})"));
}

TEST_CASE("parse: an error body has OpenAI's shape", "[server][parse]") {
  const ApiError e = completion_error(R"("top_p": 7)");
  const auto j = e.body();
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["type"] == "invalid_request_error");
  CHECK(j["error"]["param"] == "top_p");
  CHECK(j["error"]["code"].is_null());
  CHECK(j["error"]["message"].get<std::string>().find("top_p") != std::string::npos);
  CHECK(j.size() == 1);
  CHECK(j["error"].size() == 4);
}

// ---- responses --------------------------------------------------------------------------------

TEST_CASE("response: completion and chat bodies, chunks, usage and SSE framing", "[server][response]") {
  const auto& tok = *demo_tokenizer();
  ResponseContext ctx{Endpoint::kCompletions, "cmpl-1", 1700000000, "m"};
  std::vector<ChoiceResult> choices(2);
  choices[0] = {"ab", {}, FinishReason::kLength, 3, 2};
  choices[1] = {"c", {}, FinishReason::kStop, 4, 1};
  const auto body = completion_body(ctx, choices, false, tok);
  CHECK(body["object"] == "text_completion");
  CHECK(body["id"] == "cmpl-1");
  CHECK(body["created"] == 1700000000);
  CHECK(body["choices"].size() == 2);
  CHECK(body["choices"][1]["index"] == 1);
  CHECK(body["choices"][0]["text"] == "ab");
  CHECK(body["choices"][0]["finish_reason"] == "length");
  CHECK(body["choices"][0]["logprobs"].is_null());
  CHECK(body["usage"] == nlohmann::json{{"prompt_tokens", 7}, {"completion_tokens", 3}, {"total_tokens", 10}});

  ctx.endpoint = Endpoint::kChat;
  const std::vector<TokenLogprob> lps = {{tok.encode(" the")[0], -0.5f, {{tok.encode(" the")[0], -0.5f}, {5, -1.5f}}}};
  std::vector<ChoiceResult> chat(1);
  chat[0] = {"hi", lps, FinishReason::kStop, 5, 1};
  const auto cb = completion_body(ctx, chat, true, tok);
  CHECK(cb["object"] == "chat.completion");
  CHECK(cb["choices"][0]["message"]["role"] == "assistant");
  CHECK(cb["choices"][0]["message"]["content"] == "hi");
  const auto& lp = cb["choices"][0]["logprobs"]["content"][0];
  CHECK(lp["token"] == " the");
  CHECK(lp["logprob"] == -0.5);
  CHECK(lp["bytes"] == nlohmann::json{32, 116, 104, 101});
  CHECK(lp["top_logprobs"].size() == 2);
  CHECK(lp["top_logprobs"][1]["logprob"] == -1.5);

  ChunkSpec role;
  role.role_chunk = true;
  role.include_usage = true;
  const auto rc = chunk_body(ctx, role);
  CHECK(rc["object"] == "chat.completion.chunk");
  CHECK(rc["choices"][0]["delta"] == nlohmann::json{{"role", "assistant"}, {"content", ""}});
  CHECK(rc["choices"][0]["finish_reason"].is_null());
  CHECK(rc.contains("usage"));
  CHECK(rc["usage"].is_null());
  ChunkSpec last;
  last.finish = FinishReason::kLength;
  const auto lc = chunk_body(ctx, last);
  CHECK(lc["choices"][0]["delta"] == nlohmann::json::object());
  CHECK(lc["choices"][0]["finish_reason"] == "length");
  CHECK_FALSE(lc.contains("usage"));
  const auto uc = usage_chunk_body(ctx, 5, 3);
  CHECK(uc["choices"].empty());
  CHECK(uc["usage"]["total_tokens"] == 8);

  std::size_t offset = 0;
  const auto legacy = completion_logprobs(lps, tok, offset);
  CHECK(legacy["tokens"] == nlohmann::json{" the"});
  CHECK(legacy["text_offset"] == nlohmann::json{0});
  CHECK(legacy["top_logprobs"][0].contains(" the"));
  CHECK(offset == 4);

  const std::string event = sse_event(nlohmann::json{{"a", "x\ny"}});
  CHECK(event == "data: {\"a\":\"x\\ny\"}\n\n");  // a newline in the text stays escaped: one line per event
  CHECK(kSseDone == "data: [DONE]\n\n");
  CHECK(make_response_id(Endpoint::kChat).rfind("chatcmpl-", 0) == 0);
  CHECK(make_response_id(Endpoint::kCompletions).size() == 5 + 24);
  CHECK(make_response_id(Endpoint::kCompletions) != make_response_id(Endpoint::kCompletions));
}

TEST_CASE("metrics: histogram buckets, quantiles and the Prometheus text", "[server][metrics]") {
  Histogram h({0.1, 1.0, 10.0});
  CHECK(h.quantile(0.5) == 0.0);
  for (int i = 0; i < 90; ++i) h.observe(0.05);
  for (int i = 0; i < 10; ++i) h.observe(5.0);
  CHECK(h.count() == 100);
  CHECK(h.quantile(0.5) <= 0.1);
  CHECK(h.quantile(0.99) > 1.0);
  CHECK(h.quantile(0.99) <= 10.0);
  std::string out;
  h.render(out, "x");
  CHECK(out.find("x_bucket{le=\"0.1\"} 90\n") != std::string::npos);
  CHECK(out.find("x_bucket{le=\"10\"} 100\n") != std::string::npos);
  CHECK(out.find("x_bucket{le=\"+Inf\"} 100\n") != std::string::npos);
  CHECK(out.find("x_count 100\n") != std::string::npos);

  ServerMetrics m;
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 200);
  m.count_request("/v1/completions", 400);
  m.generated_tokens += 5;
  const std::string text = m.prometheus();
  CHECK(text.find("moe_http_requests_total{route=\"/v1/completions\",status=\"200\"} 2\n") != std::string::npos);
  CHECK(text.find("moe_http_requests_total{route=\"/v1/completions\",status=\"400\"} 1\n") != std::string::npos);
  CHECK(text.find("# TYPE moe_generation_tokens_total counter\nmoe_generation_tokens_total 5\n") != std::string::npos);
  CHECK(text.find("# TYPE moe_time_to_first_token_seconds histogram") != std::string::npos);
  CHECK(text.find("moe_queue_depth 0\n") != std::string::npos);
}

TEST_CASE("chat: the model's template renders the validated messages; the fallback without one", "[server][chat]") {
  const std::vector<ChatMessage> m = {{"system", "Be brief.", std::nullopt, nullptr, std::nullopt}, {"user", "Hi", std::nullopt, nullptr, std::nullopt},
                                      {"assistant", "Hello", std::string("Mercutio"), nullptr, std::nullopt}, {"user", "Again", std::nullopt, nullptr, std::nullopt}};
  CHECK(messages_json(m)[2] == nlohmann::ordered_json{{"role", "assistant"}, {"content", "Hello"}, {"name", "Mercutio"}});
  // The bundled model's speaker-style template: a scene with the user as Romeo, the model as Juliet.
  const RenderedChat scene = folder_chat_renderer(server_test::demo_dir())(m, {});
  CHECK(scene.text == "CHORUS:\nBe brief.\n\nROMEO:\nHi\n\nMERCUTIO:\nHello\n\nROMEO:\nAgain\n\nJULIET:\n");
  CHECK_FALSE(scene.add_special_tokens);  // the template writes what it wants
  const RenderedChat plain = fallback_chat_renderer()(m, {});
  CHECK(plain.text.rfind("System: Be brief.\n\nUser: Hi\n\n", 0) == 0);
  CHECK(plain.text.size() >= 10);
  CHECK(plain.text.substr(plain.text.size() - 10) == "Assistant:");
  CHECK(plain.add_special_tokens);
}

TEST_CASE("chat: chat_template_kwargs and tools reach the template", "[server][chat]") {
  // Parsing: both kept as sent (tools' key order too), their shapes checked.
  const auto r = parse_request(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "Hi"}],
      "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "b": 1, "a": 2}}}],
      "tool_choice": "auto", "chat_template_kwargs": {"enable_thinking": false, "user_name": "Hamlet"}})");
  CHECK(r.tools.dump() == R"([{"type":"function","function":{"name":"weather","parameters":{"type":"object","b":1,"a":2}}}])");
  CHECK(r.chat_template_kwargs.dump() == R"({"enable_thinking":false,"user_name":"Hamlet"})");
  const auto plain = parse_request(Endpoint::kChat, R"({"model": "m", "messages": [{"role": "user", "content": "Hi"}], "tools": []})");
  CHECK(plain.tools.is_null());
  CHECK(plain.chat_template_kwargs.empty());
  for (const char* bad : {R"("tools": {})", R"("tools": [1])", R"("tools": [{"type": "retrieval"}])",
                          R"("tools": [{"type": "function", "function": {}}])", R"("chat_template_kwargs": [])",
                          R"("chat_template_kwargs": {"messages": []})", R"("chat_template_kwargs": {"add_generation_prompt": false})"}) {
    INFO(bad);
    const std::string body = std::string(R"({"model": "m", "messages": [{"role": "user", "content": "Hi"}], )") + bad + "}";
    try {
      (void)parse_request(Endpoint::kChat, body);
      FAIL("accepted");
    } catch (const ApiError& e) {
      CHECK(e.status == 400);
      CHECK(e.param.has_value());
    }
  }
  try {  // a chat extension, not a completions field
    (void)parse_request(Endpoint::kCompletions, R"({"model": "m", "prompt": "x", "chat_template_kwargs": {}})");
    FAIL("accepted");
  } catch (const ApiError& e) {
    CHECK(e.code == "unknown_parameter");
  }

  // The renderer passes them on: the bundled template names its speakers by user_name and
  // assistant_name; a template that lists tools and reads enable_thinking (as Qwen3's does).
  const std::vector<ChatMessage> m = {{"user", "Hi", std::nullopt, nullptr, std::nullopt}};
  ChatVariables names;
  names.kwargs = {{"user_name", "Hamlet"}, {"assistant_name", "Ophelia"}};
  CHECK(folder_chat_renderer(server_test::demo_dir())(m, names).text == "HAMLET:\nHi\n\nOPHELIA:\n");
  const auto tools_template = std::make_shared<const moe::chat::ChatTemplate>(
      "{% if tools %}{% for t in tools %}[{{ t.function.name }} {{ t.function.parameters | tojson }}]{% endfor %}{% endif %}"
      "{% if enable_thinking is defined and not enable_thinking %}/no_think{% endif %}"
      "{% for m in messages %}{{ m.content }}{% endfor %}");
  ChatVariables v;
  v.tools = r.tools;
  v.kwargs = r.chat_template_kwargs;
  CHECK(template_renderer(tools_template)(m, v).text == R"([weather {"type": "object", "b": 1, "a": 2}]/no_thinkHi)");
  CHECK(template_renderer(tools_template)(m, {}).text == "Hi");

  // Through the service: the reply is the greedy continuation of the prompt the kwargs render.
  Served sv;
  const auto res = sv.post("/v1/chat/completions", R"({"model": "shakespeare-moe", "messages": [{"role": "user",
      "content": "Hi"}], "max_tokens": 8, "temperature": 0, "ignore_eos": true,
      "chat_template_kwargs": {"user_name": "Hamlet", "assistant_name": "Ophelia"}})");
  REQUIRE(res.status == 200);
  CHECK(body_of(res)["choices"][0]["message"]["content"] == greedy_alone("HAMLET:\nHi\n\nOPHELIA:\n", 8, true, false));
  CHECK(body_of(res)["choices"][0]["message"]["content"] != greedy_alone("ROMEO:\nHi\n\nJULIET:\n", 8, true, false));
  const auto bad = sv.post("/v1/chat/completions", R"({"model": "shakespeare-moe", "messages": [{"role": "user",
      "content": "Hi"}], "max_tokens": 8, "chat_template_kwargs": {"bos_token": "<s>"}})");
  CHECK(bad.status == 400);
  CHECK(body_of(bad)["error"]["param"] == "chat_template_kwargs");
}

// ---- scheduler --------------------------------------------------------------------------------

TEST_CASE("scheduler: greedy output alone equals generate(), and in a full batch with staggered joins",
          "[server][scheduler]") {
  const std::vector<std::string> prompts = {"ROMEO:\nWhat light", "JULIET:\nO Romeo", "KING:\n", "First Citizen:\nWe are",
                                            "HAMLET:\nTo be, or not to be, that is the question"};
  const moe::index_t n = 8;
  std::vector<std::string> alone;
  for (const auto& p : prompts) alone.push_back(greedy_alone(p, n, true));

  SchedulerOptions so;
  so.max_sequences = 3;  // fewer slots than sequences: some join as others leave
  so.n_ctx = 128;
  so.max_batch_tokens = 8;  // prompts are prefilled in pieces next to others' decode tokens
  Scheduler s(server_test::demo_model(), demo_tokenizer(), so);
  s.start();
  auto ch = std::make_shared<ResponseChannel>();
  std::vector<SequenceJob> jobs;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    jobs.push_back(job_for(prompts[i], n, ch, i));
    jobs.back().options.ignore_eos = true;
  }
  s.submit(std::move(jobs));
  const Collected c = collect(*ch, prompts.size());
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO(prompts[i]);
    CHECK(c.text[i] == alone[i]);
    CHECK(c.finish[i] == FinishReason::kLength);
    CHECK(c.completion_tokens[i] == n);
  }
  CHECK(s.metrics().batch_size.quantile(1.0) >= 2.0);  // it really batched
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0; }));
  CHECK(s.metrics().kv_tokens_reserved.load() == 0);
}

TEST_CASE("scheduler: KV budget, queue bound and validation at submit", "[server][scheduler]") {
  SchedulerOptions so;
  so.max_sequences = 2;
  so.n_ctx = 64;
  so.kv_tokens = 40;
  so.max_queue = 1;
  Scheduler s(server_test::demo_model(), demo_tokenizer(), so);
  CHECK(s.max_sequence_tokens() == 40);
  auto ch = std::make_shared<ResponseChannel>();
  auto expect = [&](SequenceJob job, int status, const char* code) {
    std::vector<SequenceJob> v;
    v.push_back(std::move(job));
    try {
      s.submit(std::move(v));
      FAIL("accepted");
    } catch (const ApiError& e) {
      CHECK(e.status == status);
      if (code != nullptr) CHECK(e.code == code);
    }
  };
  // Can never fit: prompt + max_tokens beyond the budget.
  expect(job_for("ROMEO:", 39, ch), 400, "context_length_exceeded");
  SequenceJob empty = job_for("x", 1, ch);
  empty.prompt.clear();
  expect(std::move(empty), 400, nullptr);
  SequenceJob bad_id = job_for("x", 1, ch);
  bad_id.prompt = {1, 2000};
  expect(std::move(bad_id), 400, nullptr);
  SequenceJob bad_sampler = job_for("x", 1, ch);
  bad_sampler.options.sampler.top_p = 3.0f;
  bad_sampler.options.sampler.greedy = false;
  expect(std::move(bad_sampler), 400, nullptr);
  // Not started: jobs wait in the queue. Two slots take two, the queue one more; then 429.
  std::vector<SequenceJob> three;
  for (int i = 0; i < 3; ++i) three.push_back(job_for("ROMEO:", 30, ch, static_cast<std::size_t>(i)));
  s.submit(std::move(three));
  expect(job_for("ROMEO:", 4, ch, 3), 429, "queue_full");
  CHECK(s.metrics().rejected_queue_full.load() == 1);
  // Started: the KV budget (40) holds one 33-token reservation at a time, so they run one after
  // the other, and all finish.
  s.start();
  const Collected c = collect(*ch, 3);
  for (int i = 0; i < 3; ++i) CHECK(c.finish[static_cast<std::size_t>(i)] == FinishReason::kLength);
  CHECK(s.metrics().batch_size.quantile(1.0) <= 1.0);
  s.stop();
  expect(job_for("ROMEO:", 4, ch), 503, "unavailable");
}

TEST_CASE("scheduler: --kv-tokens bounds the KV memory the slots allocate, not only the reservations",
          "[server][scheduler]") {
  // 6 slots of 256 tokens would be 1,536 tokens of caches; the budget is 200.
  SchedulerOptions so;
  so.max_sequences = 6;
  so.n_ctx = 256;
  so.kv_tokens = 200;
  so.max_batch_tokens = 16;
  Scheduler s(server_test::demo_model(), demo_tokenizer(), so);
  CHECK(s.kv_tokens_allocated() == 0);  // nothing until a sequence is admitted
  const std::vector<std::string> prompts = {"ROMEO:\nWhat light", "JULIET:\nO Romeo, Romeo", "KING:\n",
                                            "HAMLET:\nTo be, or not to be, that is the question", "First Citizen:\n",
                                            "LEAR:\nBlow, winds", "ROMEO:\nWhat light", "Nurse:\n"};
  const moe::index_t lengths[] = {40, 120, 8, 60, 150, 24, 90, 30};
  std::vector<std::string> alone;
  for (std::size_t i = 0; i < prompts.size(); ++i) alone.push_back(greedy_alone(prompts[i], lengths[i], true));
  auto ch = std::make_shared<ResponseChannel>();
  std::vector<SequenceJob> jobs;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    jobs.push_back(job_for(prompts[i], lengths[i], ch, i));
    jobs.back().options.ignore_eos = true;
  }
  s.start();
  std::atomic<moe::index_t> peak{0};
  // A jthread: a failed REQUIRE in collect() unwinds through its destructor, which stops and joins
  // it (a joinable std::thread would call std::terminate there).
  std::jthread watch([&](std::stop_token stop) {
    while (!stop.stop_requested()) {
      peak.store(std::max(peak.load(), s.kv_tokens_allocated()));
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  s.submit(std::move(jobs));
  const Collected c = collect(*ch, prompts.size());
  watch.request_stop();
  watch.join();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO(prompts[i] << " " << lengths[i]);
    CHECK(c.text[i] == alone[i]);  // caches of any capacity give the same text
    CHECK(c.completion_tokens[i] == lengths[i]);
  }
  CHECK(peak.load() > 0);
  CHECK(peak.load() <= 200);
  CHECK(s.kv_tokens_allocated() <= 200);
  CHECK(s.metrics().kv_tokens_allocated.load() == static_cast<std::int64_t>(s.kv_tokens_allocated()));
  CHECK(s.metrics().kv_cache_bytes.load() ==
        static_cast<std::int64_t>(server_test::demo_model()->kv_cache_bytes(s.kv_tokens_allocated())));
  const std::string prom = s.metrics().prometheus();
  CHECK(prom.find("\nmoe_kv_tokens_allocated " + std::to_string(s.kv_tokens_allocated()) + "\n") != std::string::npos);
  CHECK(prom.find("\nmoe_kv_cache_bytes ") != std::string::npos);
  CHECK(s.metrics().batch_size.quantile(1.0) >= 2.0);  // several sequences shared the budget
}

TEST_CASE("scheduler: cancellation frees the slot; timeouts end queued and running sequences", "[server][scheduler]") {
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 512;
  Scheduler s(server_test::demo_model(), demo_tokenizer(), so);
  s.start();
  auto a = std::make_shared<ResponseChannel>();
  auto b = std::make_shared<ResponseChannel>();
  SequenceJob long_job = job_for("ROMEO:", 500, a);
  long_job.options.ignore_eos = true;
  std::vector<SequenceJob> v;
  v.push_back(std::move(long_job));
  s.submit(std::move(v));
  // The second waits for the only slot with a short deadline: it times out in the queue. (The
  // deadlines here are a few milliseconds: the demo model makes a token in ~0.1 ms on a fast
  // machine, so the 500-token job must still be running when they pass.)
  SequenceJob waiting = job_for("JULIET:", 5, b);
  waiting.deadline = Clock::now() + std::chrono::milliseconds(5);
  v.clear();
  v.push_back(std::move(waiting));
  s.submit(std::move(v));
  const Collected cb = collect(*b, 1);
  REQUIRE(cb.error[0].has_value());
  CHECK(cb.error[0]->status == 503);
  CHECK(cb.error[0]->code == "timeout");
  // Cancel the running one: the slot frees and a new request runs.
  std::vector<SequenceEvent> events;
  CHECK(a->wait_pop(events, std::chrono::seconds(20)));
  a->cancel();
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0; }));
  auto c = std::make_shared<ResponseChannel>();
  SequenceJob running = job_for("KING:", 500, c);
  running.options.ignore_eos = true;
  running.deadline = Clock::now() + std::chrono::milliseconds(10);
  v.clear();
  v.push_back(std::move(running));
  s.submit(std::move(v));
  const Collected cc = collect(*c, 1);
  REQUIRE(cc.error[0].has_value());  // ran out of time (500 tokens do not fit in 10 ms)
  CHECK(cc.error[0]->code == "timeout");
  CHECK(s.metrics().cancelled_requests.load() == 3);
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0; }));
}

TEST_CASE("scheduler: logprobs are the log-softmax of the logits; stop strings and EOS end with stop",
          "[server][scheduler]") {
  SchedulerOptions so;
  so.max_sequences = 2;
  so.n_ctx = 128;
  Scheduler s(server_test::demo_model(), demo_tokenizer(), so);
  s.start();
  auto ch = std::make_shared<ResponseChannel>();
  std::vector<SequenceJob> v;
  v.push_back(job_for("ROMEO:\nWhat light", 6, ch, 0));
  v.back().logprobs = 3;
  v.back().options.ignore_eos = true;
  v.push_back(job_for("ROMEO:\nWhat light", 32, ch, 1));
  v.back().options.stop_strings = {"\n\n"};
  s.submit(std::move(v));
  const Collected c = collect(*ch, 2);
  REQUIRE(c.logprobs[0].size() == 6);
  const auto& tok = *demo_tokenizer();
  std::vector<std::int32_t> ids;
  for (const auto& t : c.logprobs[0]) {
    REQUIRE(t.top.size() == 3);
    CHECK(t.top[0].first == t.id);  // greedy: the chosen token is the most likely
    CHECK(t.top[0].second == t.logprob);
    CHECK(t.logprob <= 0.0f);
    CHECK(t.top[1].second <= t.top[0].second);
    CHECK(t.top[2].second <= t.top[1].second);
    ids.push_back(t.id);
  }
  CHECK(tok.decode(ids) == c.text[0]);
  CHECK(c.text[0] == greedy_alone("ROMEO:\nWhat light", 6, true));
  CHECK(c.text[1] == " is this?");  // the greedy text before the first blank line
  CHECK(c.finish[1] == FinishReason::kStop);
  CHECK(c.logprobs[1].empty());
}

// ---- the service: routes and generation without HTTP -------------------------------------------

TEST_CASE("service: routes, methods, authentication and model names", "[server][service]") {
  ServiceOptions opts;
  opts.api_key = "sekret";
  Served sv({}, opts);
  CHECK(sv.get("/health").status == 200);  // no key needed
  CHECK(body_of(sv.get("/health"))["status"] == "ok");
  const auto no_key = sv.get("/v1/models");
  CHECK(no_key.status == 401);
  CHECK(body_of(no_key)["error"]["code"] == "invalid_api_key");
  CHECK(sv.get("/v1/models", "Bearer wrong").status == 401);
  CHECK(sv.get("/v1/models", "Bearer sekret2").status == 401);
  CHECK(sv.get("/metrics").status == 401);
  CHECK(sv.post("/v1/completions", "{}").status == 401);
  const auto models = sv.get("/v1/models", "Bearer sekret");
  REQUIRE(models.status == 200);
  CHECK(body_of(models)["object"] == "list");
  CHECK(body_of(models)["data"][0]["id"] == "shakespeare-moe");
  CHECK(sv.get("/v1/models/shakespeare-moe", "Bearer sekret").status == 200);
  CHECK(sv.get("/v1/models/gpt-4", "Bearer sekret").status == 404);
  CHECK(sv.get("/nope", "Bearer sekret").status == 404);
  CHECK(body_of(sv.get("/nope", "Bearer sekret"))["error"]["type"] == "invalid_request_error");
  CHECK(sv.get("/v1/completions", "Bearer sekret").status == 405);
  CHECK(sv.post("/health", "").status == 405);
  const auto wrong_model =
      sv.post("/v1/completions", R"({"model": "gpt-4", "prompt": "x", "max_tokens": 1})", "Bearer sekret");
  CHECK(wrong_model.status == 404);
  CHECK(body_of(wrong_model)["error"]["code"] == "model_not_found");
  const auto metrics = sv.get("/metrics", "Bearer sekret");
  CHECK(metrics.status == 200);
  CHECK(metrics.content_type.rfind("text/plain", 0) == 0);
  CHECK(metrics.body.find("moe_http_requests_total{route=\"/v1/models\",status=\"401\"} 3") != std::string::npos);
}

TEST_CASE("service: GET / is the self-contained chat page, served without the API key", "[server][service]") {
  ServiceOptions opts;
  opts.api_key = "sekret";
  Served sv({}, opts);
  const auto page = sv.get("/");
  REQUIRE(page.status == 200);
  CHECK(page.content_type == "text/html; charset=utf-8");
  CHECK(page.body.rfind("<!doctype html>", 0) == 0);
  CHECK(page.body.find("</html>") != std::string::npos);
  // Self-contained: nothing loaded from another origin (no CDN, no web fonts).
  for (const char* external : {"http://", "https://", "src=\"//", "href=\"//", "@import", "url("}) {
    INFO(external);
    CHECK(page.body.find(external) == std::string::npos);
  }
  for (const char* api : {"/v1/chat/completions", "/v1/models", "/metrics", "/stats/experts.svg", "Bearer "}) {
    INFO(api);
    CHECK(page.body.find(api) != std::string::npos);
  }
  // Every Prometheus series the page reads exists in /metrics (a rename would blank its panel).
  const std::string prom = sv.get("/metrics", "Bearer sekret").body;
  std::size_t series = 0;
  for (std::size_t at = page.body.find("\"moe_"); at != std::string::npos; at = page.body.find("\"moe_", at + 1)) {
    const std::string name = page.body.substr(at + 1, page.body.find('"', at + 1) - at - 1);
    INFO(name);
    CHECK(prom.find("\n" + name) != std::string::npos);
    ++series;
  }
  CHECK(series >= 10);
  CHECK(sv.post("/", "").status == 405);
  CHECK(prom.find("moe_http_requests_total{route=\"/\",status=\"200\"} 1") != std::string::npos);
}

TEST_CASE("service: completions and chat, non-streaming and streaming, give the same greedy text",
          "[server][service]") {
  Served sv;
  const std::string expected = greedy_alone("ROMEO:\nWhat light", 12);
  const auto r = sv.post("/v1/completions",
                         R"({"model": "shakespeare-moe", "prompt": "ROMEO:\nWhat light", "max_tokens": 12, "temperature": 0})");
  REQUIRE(r.status == 200);
  const auto j = body_of(r);
  CHECK(j["choices"][0]["text"] == expected);
  CHECK(j["usage"]["prompt_tokens"] == demo_tokenizer()->encode("ROMEO:\nWhat light", true).size());
  CHECK(j["usage"]["completion_tokens"] == 12);

  const auto s = sv.post("/v1/completions", R"({"model": "shakespeare-moe", "prompt": "ROMEO:\nWhat light",
      "max_tokens": 12, "temperature": 0, "stream": true, "stream_options": {"include_usage": true}})");
  REQUIRE(s.status == 200);
  REQUIRE(s.stream != nullptr);
  CHECK(s.content_type == "text/event-stream");
  std::string bytes;
  CHECK(s.stream->drain([&](std::string_view d) { bytes += d; return true; }) == EventStream::Pump::kDone);
  const auto summary = summarize_stream(bytes);
  CHECK(summary.text == expected);
  CHECK(summary.done);
  CHECK(summary.finish_reason == "length");
  CHECK(summary.usage["completion_tokens"] == 12);

  // Token-id prompts and several prompts: one choice each.
  const auto ids = demo_tokenizer()->encode("ROMEO:\nWhat light", true);
  const auto multi = sv.post("/v1/completions", R"({"model": "shakespeare-moe", "max_tokens": 12, "temperature": 0,
      "prompt": [)" + nlohmann::json(ids).dump() + R"(, "JULIET:\nO Romeo"]})");
  REQUIRE(multi.status == 200);
  const auto mj = body_of(multi);
  REQUIRE(mj["choices"].size() == 2);
  CHECK(mj["choices"][0]["text"] == expected);
  CHECK(mj["choices"][1]["text"] == greedy_alone("JULIET:\nO Romeo", 12));

  // Chat through the fallback format, streaming with logprobs.
  const std::string chat_prompt = "ROMEO:\nSpeak.\n\nJULIET:\n";  // the bundled model's template
  const auto chat = sv.post("/v1/chat/completions", R"({"model": "shakespeare-moe", "temperature": 0, "max_tokens": 8,
      "messages": [{"role": "user", "content": "Speak."}], "stream": true, "logprobs": true, "top_logprobs": 2})");
  REQUIRE(chat.stream != nullptr);
  bytes.clear();
  chat.stream->drain([&](std::string_view d) { bytes += d; return true; });
  const auto cs = summarize_stream(bytes);
  CHECK(cs.role_first);
  CHECK(cs.text == greedy_alone(chat_prompt, 8, false, false));
  CHECK(cs.done);
  CHECK(cs.usage.is_null());  // not asked for
  CHECK(bytes.find("\"top_logprobs\":[{") != std::string::npos);
  const auto chat_full = sv.post("/v1/chat/completions", R"({"model": "shakespeare-moe", "temperature": 0,
      "max_tokens": 8, "messages": [{"role": "user", "content": "Speak."}]})");
  REQUIRE(chat_full.status == 200);
  CHECK(body_of(chat_full)["choices"][0]["message"]["content"] == cs.text);
  CHECK(body_of(chat_full)["object"] == "chat.completion");
}

TEST_CASE("service: a stream whose client goes away cancels its sequence", "[server][service]") {
  Served sv;
  const auto s = sv.post("/v1/completions", R"({"model": "shakespeare-moe", "prompt": "ROMEO:", "max_tokens": 200,
      "stream": true, "temperature": 0})");
  REQUIRE(s.stream != nullptr);
  int writes = 0;
  // The third write fails, as a write to a closed socket does.
  CHECK(s.stream->drain([&](std::string_view) { return ++writes < 3; }) == EventStream::Pump::kGone);
  CHECK(eventually([&] { return sv.scheduler->metrics().active_sequences.load() == 0; }));
  CHECK(sv.scheduler->metrics().cancelled_requests.load() == 1);
  // A client that is gone before anything is written (alive() false while waiting).
  auto s2 = sv.post("/v1/completions", R"({"model": "shakespeare-moe", "prompt": "ROMEO:", "max_tokens": 200,
      "stream": true})");
  REQUIRE(s2.stream != nullptr);
  CHECK(s2.stream->drain([](std::string_view) { return true; }, [] { return false; }) != EventStream::Pump::kDone);
  // And a stream dropped without being read at all.
  auto s3 = sv.post("/v1/completions", R"({"model": "shakespeare-moe", "prompt": "ROMEO:", "max_tokens": 200,
      "stream": true})");
  s3.stream.reset();
  CHECK(eventually([&] { return sv.scheduler->metrics().active_sequences.load() == 0 &&
                                sv.scheduler->metrics().queue_depth.load() == 0; }));
}

TEST_CASE("service: a non-streaming request whose client has gone is cancelled", "[server][service]") {
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 512;
  Served sv(so);
  std::atomic<int> asked{0};
  HttpRequest req{"POST", "/v1/completions", "",
                  R"({"model": "shakespeare-moe", "prompt": "ROMEO:", "max_tokens": 500, "ignore_eos": true})",
                  [&] { return ++asked <= 1; }};  // there at the first ask, gone at the next
  const auto r = sv.service->handle(req);
  CHECK(r.status == 499);
  CHECK(body_of(r)["error"]["code"] == "client_closed_request");
  CHECK(asked.load() == 2);
  CHECK(eventually([&] { return sv.scheduler->metrics().active_sequences.load() == 0; }));
  CHECK(sv.scheduler->metrics().cancelled_requests.load() == 1);
  CHECK(sv.scheduler->metrics().generated_tokens.load() < 500);  // stopped early, 100 ms in
  // A client that stays gets its whole answer, however often it is asked.
  req.connected = [] { return true; };
  req.body = R"({"model": "shakespeare-moe", "prompt": "ROMEO:", "max_tokens": 8})";
  CHECK(sv.service->handle(req).status == 200);
}

TEST_CASE("service: every error class is a JSON error and the service keeps serving", "[server][service]") {
  ServiceOptions opts;
  opts.max_body_bytes = 4096;
  opts.limits.max_tokens = 64;
  moe::server::SchedulerOptions so;
  so.n_ctx = 64;
  Served sv(so, opts);
  struct Case {
    std::string body;
    int status;
    const char* code;
  };
  std::string long_prompt;
  for (int i = 0; i < 20; ++i) long_prompt += "ROMEO: what light through yonder window breaks? ";
  for (const Case& c : {Case{"{", 400, "invalid_json"}, Case{"{\"model\": \"shakespeare-moe\", \"prompt\": \"\xc3\x28\"}", 400, "invalid_json"},
                        Case{R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": -5})", 400, nullptr},
                        Case{R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": 65})", 400, nullptr},
                        Case{R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": 64})", 400, "context_length_exceeded"},
                        Case{R"({"model": "shakespeare-moe", "prompt": ")" + long_prompt + R"("})", 400, "context_length_exceeded"},
                        Case{R"({"model": "shakespeare-moe", "prompt": [5, 99999]})", 400, nullptr},
                        Case{R"({"model": "shakespeare-moe", "prompt": "x", "frobnicate": 1})", 400, "unknown_parameter"},
                        Case{R"({"model": "shakespeare-moe", "prompt": "x", "n": 3})", 400, "unsupported_value"},
                        Case{"{\"model\": \"shakespeare-moe\", \"prompt\": \"" + std::string(5000, 'a') + "\"}", 413, "request_too_large"}}) {
    INFO(c.body.substr(0, 120));
    const auto r = sv.post("/v1/completions", c.body);
    CHECK(r.status == c.status);
    const auto j = body_of(r);
    REQUIRE(j.contains("error"));
    CHECK(j["error"].contains("message"));
    CHECK(j["error"].contains("type"));
    CHECK(j["error"].contains("param"));
    if (c.code != nullptr) CHECK(j["error"]["code"] == c.code);
  }
  // A chat renderer that fails (as a template error would) is a 400 with its message.
  moe::server::ApiService failing(sv.scheduler, demo_tokenizer(), [] {
    ServiceOptions o;
    o.model_id = "shakespeare-moe";
    return o;
  }(), [](const std::vector<ChatMessage>&, const ChatVariables&) -> RenderedChat {
    moe::fail(moe::ErrorCode::kFormat, "unknown filter 'x'");
  });
  const auto bad_template = failing.handle({"POST", "/v1/chat/completions", "",
                                            R"({"model": "shakespeare-moe", "messages": [{"role": "user", "content": "x"}]})", {}});
  CHECK(bad_template.status == 400);
  CHECK(body_of(bad_template)["error"]["message"].get<std::string>().find("unknown filter 'x'") != std::string::npos);
  // Still serving.
  const auto ok = sv.post("/v1/completions", R"({"model": "shakespeare-moe", "prompt": "ROMEO:", "max_tokens": 3})");
  CHECK(ok.status == 200);
  CHECK(body_of(ok)["usage"]["completion_tokens"].get<int>() <= 3);
}
