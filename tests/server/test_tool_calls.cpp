// Tool calls: the formats recognised from the committed real chat templates, parsing of each
// family's call syntax (and malformed calls staying content), and the OpenAI response shapes:
// message.tool_calls with finish_reason "tool_calls", and a stream that holds a call back and
// sends it as delta.tool_calls at the end.
#include <catch2/catch.hpp>

#include <moe/chat/tool_calls.hpp>
#include <moe/server/response.hpp>
#include <moe/server/service.hpp>

#include "server_test_util.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace moe;
using chat::ToolCallFormat;

namespace {

std::string read_template(const std::string& name) {
  std::ifstream f(std::filesystem::path(MOE_FIXTURES_DIR) / "chat" / "templates" / name, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json args_of(const chat::ToolCall& c) { return nlohmann::json::parse(c.arguments); }

// The SSE events of a stream fed `events`, as JSON (the [DONE] line left out).
std::vector<nlohmann::json> stream_events(ToolCallFormat format, std::vector<server::SequenceEvent> events) {
  auto channel = std::make_shared<server::ResponseChannel>();
  for (auto& e : events) channel->push(std::move(e));
  server::ResponseContext ctx{server::Endpoint::kChat, "chatcmpl-x", 0, "m", format};
  server::EventStream stream(ctx, channel, server_test::demo_tokenizer(), 1, false, false);
  std::string out;
  const auto write = [&](std::string_view s) {
    out += s;
    return true;
  };
  while (stream.pump(write, {}, std::chrono::milliseconds(1)) == server::EventStream::Pump::kMore) {
  }
  std::vector<nlohmann::json> parsed;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("data: {", 0) == 0) parsed.push_back(nlohmann::json::parse(line.substr(6)));
  }
  return parsed;
}

server::SequenceEvent text_event(std::string text) {
  server::SequenceEvent e;
  e.text = std::move(text);
  return e;
}

server::SequenceEvent finished(std::string text = {}) {
  server::SequenceEvent e;
  e.kind = server::SequenceEvent::kFinished;
  e.text = std::move(text);
  return e;
}

}  // namespace

TEST_CASE("tool calls: the format is recognised from real chat templates", "[tools]") {
  CHECK(chat::detect_tool_call_format(read_template("qwen3.jinja")) == ToolCallFormat::kHermes);
  CHECK(chat::detect_tool_call_format(read_template("glm-4.5.jinja")) == ToolCallFormat::kGlm45);
  CHECK(chat::detect_tool_call_format(read_template("deepseek-v3.jinja")) == ToolCallFormat::kDeepseek);
  CHECK(chat::detect_tool_call_format(read_template("deepseek-v3.1.jinja")) == ToolCallFormat::kDeepseek);
  CHECK(chat::detect_tool_call_format(read_template("deepseek-r1.jinja")) == ToolCallFormat::kDeepseek);
  CHECK(chat::detect_tool_call_format(read_template("kimi-k2-thinking.jinja")) == ToolCallFormat::kKimiK2);
  CHECK(chat::detect_tool_call_format(read_template("minimax-m2.jinja")) == ToolCallFormat::kMiniMax);
  CHECK(chat::detect_tool_call_format(read_template("gpt-oss.jinja")) == ToolCallFormat::kHarmony);
  CHECK(chat::detect_tool_call_format(read_template("olmoe-instruct.jinja")) == ToolCallFormat::kNone);
  CHECK(chat::detect_tool_call_format("{{ '[TOOL_CALLS]' + tools | tojson }}") == ToolCallFormat::kMistral);
}

TEST_CASE("tool calls: each family's syntax", "[tools]") {
  SECTION("Hermes (Qwen3): two calls, content around them") {
    const auto r = chat::parse_tool_calls(ToolCallFormat::kHermes,
                                          "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                          "{\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"now\", "
                                          "\"arguments\": {}}\n</tool_call>");
    REQUIRE(r.calls.size() == 2);
    CHECK(r.content == "Let me check.");
    CHECK(r.calls[0].name == "get_weather");
    CHECK(args_of(r.calls[0]) == nlohmann::json{{"city", "Paris"}});
    CHECK(r.calls[1].name == "now");
    CHECK(r.calls[1].arguments == "{}");
  }
  SECTION("GLM-4.5: arg_key / arg_value pairs, JSON values typed") {
    const auto r = chat::parse_tool_calls(
        ToolCallFormat::kGlm45,
        "<tool_call>search\n<arg_key>query</arg_key>\n<arg_value>moe kernels</arg_value>\n<arg_key>limit</arg_key>\n"
        "<arg_value>5</arg_value>\n</tool_call>");
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].name == "search");
    CHECK(args_of(r.calls[0]) == nlohmann::json{{"query", "moe kernels"}, {"limit", 5}});
    CHECK(r.content.empty());
  }
  SECTION("DeepSeek-V3 fenced arguments and V3.1's plain form") {
    const std::string begin = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "calls\xE2\x96\x81" "begin\xEF\xBD\x9C>";
    const std::string end = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "calls\xE2\x96\x81" "end\xEF\xBD\x9C>";
    const std::string call = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "call\xE2\x96\x81" "begin\xEF\xBD\x9C>";
    const std::string call_end = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "call\xE2\x96\x81" "end\xEF\xBD\x9C>";
    const std::string sep = "<\xEF\xBD\x9Ctool\xE2\x96\x81" "sep\xEF\xBD\x9C>";
    auto r = chat::parse_tool_calls(ToolCallFormat::kDeepseek, begin + call + "function" + sep +
                                                                   "get_weather\n```json\n{\"city\": \"Oslo\"}\n```" +
                                                                   call_end + end);
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].name == "get_weather");
    CHECK(args_of(r.calls[0]) == nlohmann::json{{"city", "Oslo"}});
    r = chat::parse_tool_calls(ToolCallFormat::kDeepseek,
                               "ok" + begin + call + "now" + sep + "{}" + call_end + call + "add" + sep +
                                   "{\"a\": 1, \"b\": 2}" + call_end + end);
    REQUIRE(r.calls.size() == 2);
    CHECK(r.content == "ok");
    CHECK(r.calls[1].name == "add");
    CHECK(args_of(r.calls[1]) == nlohmann::json{{"a", 1}, {"b", 2}});
  }
  SECTION("Kimi K2: functions.NAME:IDX ids") {
    const auto r = chat::parse_tool_calls(
        ToolCallFormat::kKimiK2,
        "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>"
        "{\"city\": \"Rome\"}<|tool_call_end|><|tool_calls_section_end|>");
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].id == "functions.get_weather:0");
    CHECK(r.calls[0].name == "get_weather");
  }
  SECTION("Mistral: a JSON list after [TOOL_CALLS]") {
    const auto r = chat::parse_tool_calls(
        ToolCallFormat::kMistral, "[TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"x\": 1}}, {\"name\": \"b\", "
                                  "\"arguments\": \"{\\\"y\\\": 2}\"}]");
    REQUIRE(r.calls.size() == 2);
    CHECK(args_of(r.calls[1]) == nlohmann::json{{"y", 2}});  // arguments given as a JSON string
  }
  SECTION("MiniMax-M2: invoke / parameter blocks") {
    const auto r = chat::parse_tool_calls(
        ToolCallFormat::kMiniMax,
        "<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris</parameter>\n"
        "<parameter name=\"days\">3</parameter>\n</invoke>\n</minimax:tool_call>");
    REQUIRE(r.calls.size() == 1);
    CHECK(args_of(r.calls[0]) == nlohmann::json{{"city", "Paris"}, {"days", 3}});
  }
  SECTION("GPT-OSS harmony: recipient after or before the channel, final-channel content") {
    auto r = chat::parse_tool_calls(ToolCallFormat::kHarmony,
                                    "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>"
                                    "commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}");
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].name == "get_weather");
    CHECK(args_of(r.calls[0]) == nlohmann::json{{"city", "Paris"}});
    CHECK(r.content.empty());
    r = chat::parse_tool_calls(ToolCallFormat::kHarmony,
                               " to=functions.now<|channel|>commentary json<|message|>{}<|call|>");
    REQUIRE(r.calls.size() == 1);
    CHECK(r.calls[0].name == "now");
    CHECK(chat::parse_tool_calls(ToolCallFormat::kHarmony, "<|channel|>final<|message|>Hi<|return|>").calls.empty());
    CHECK(chat::parse_tool_calls(ToolCallFormat::kMistral, "[TOOL_CALLS] [{\"name\": \"\", \"x\": 1}]").calls.empty());
    // A recipient without a name is no call (fuzz_tool_calls found an empty-named one accepted).
    CHECK(chat::parse_tool_calls(ToolCallFormat::kHarmony, " to=functions.<|channel|>commentary json<|message|>{}<|call|>")
              .calls.empty());
  }
  SECTION("invalid UTF-8 in a parameter's raw text: replaced, never a throw (fuzz_tool_calls found it)") {
    for (const auto format : {ToolCallFormat::kGlm45, ToolCallFormat::kMiniMax}) {
      const std::string text = format == ToolCallFormat::kGlm45
                                   ? "<tool_call>search\n<arg_key>q</arg_key>\n<arg_value>a\xFF\xFE" "b</arg_value>\n</tool_call>"
                                   : "<minimax:tool_call>\n<invoke name=\"search\">\n<parameter name=\"q\">a\xFF\xFE" "b"
                                     "</parameter>\n</invoke>\n</minimax:tool_call>";
      const auto r = chat::parse_tool_calls(format, text);
      REQUIRE(r.calls.size() == 1);
      CHECK(args_of(r.calls[0]) == nlohmann::json{{"q", "a\xEF\xBF\xBD\xEF\xBF\xBD" "b"}});  // two U+FFFD
    }
  }
  SECTION("malformed or unfinished calls stay content") {
    for (const std::string text : {"<tool_call>\n{\"name\": \"x\", \"arguments\": {\"a\": 1}\n",  // not closed
                                   "<tool_call>{not json}</tool_call>", "<tool_call>{\"arguments\": {}}</tool_call>",
                                   "plain text, no call"}) {
      const auto r = chat::parse_tool_calls(ToolCallFormat::kHermes, text);
      CHECK(r.calls.empty());
      CHECK(r.content == text);
    }
    CHECK(chat::parse_tool_calls(ToolCallFormat::kNone, "<tool_call>{\"name\": \"x\"}</tool_call>").calls.empty());
  }
}

TEST_CASE("tool calls: what a stream may send before a call can start", "[tools]") {
  CHECK(chat::tool_call_safe_prefix(ToolCallFormat::kHermes, "Hello") == 5);
  CHECK(chat::tool_call_safe_prefix(ToolCallFormat::kHermes, "Hello <tool") == 6);  // "<tool" may grow into a call
  CHECK(chat::tool_call_safe_prefix(ToolCallFormat::kHermes, "Hi <tool_call>{") == 3);
  CHECK(chat::tool_call_safe_prefix(ToolCallFormat::kHermes, "a < b") == 5);
  CHECK(chat::tool_call_safe_prefix(ToolCallFormat::kNone, "<tool") == 5);
}

TEST_CASE("tool calls: chat.completion message and stream deltas", "[tools]") {
  const std::string reply = "Checking.\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"q\": 1}}\n</tool_call>";
  server::ResponseContext ctx{server::Endpoint::kChat, "chatcmpl-x", 0, "m", ToolCallFormat::kHermes};
  server::ChoiceResult c;
  c.text = reply;
  const auto tokenizer = server_test::demo_tokenizer();
  const auto body = server::completion_body(ctx, std::span<const server::ChoiceResult>(&c, 1), false, *tokenizer);
  const auto& choice = body["choices"][0];
  CHECK(choice["finish_reason"] == "tool_calls");
  CHECK(choice["message"]["content"] == "Checking.");
  REQUIRE(choice["message"]["tool_calls"].size() == 1);
  CHECK(choice["message"]["tool_calls"][0]["type"] == "function");
  CHECK(choice["message"]["tool_calls"][0]["function"]["name"] == "f");
  CHECK(choice["message"]["tool_calls"][0]["function"]["arguments"] == "{\"q\":1}");
  CHECK(choice["message"]["tool_calls"][0]["id"] == "call_chatcmpl-x_0_0");
  // Without tools in the request the same text is plain content.
  ctx.tool_format = ToolCallFormat::kNone;
  const auto plain = server::completion_body(ctx, std::span<const server::ChoiceResult>(&c, 1), false, *tokenizer);
  CHECK(plain["choices"][0]["message"]["content"] == reply);
  CHECK(plain["choices"][0]["finish_reason"] == "stop");
  CHECK_FALSE(plain["choices"][0]["message"].contains("tool_calls"));

  // Streamed in pieces that split the marker: the text before it streams, the call comes at the end.
  const auto events = stream_events(ToolCallFormat::kHermes, {text_event("Checking.\n<to"), text_event("ol_call>\n{\"name\""),
                                                              text_event(": \"f\", \"arguments\": {\"q\": 1}}\n</tool_call>"),
                                                              finished()});
  std::string content;
  nlohmann::json calls;
  std::string finish;
  for (const auto& e : events) {
    const auto& d = e["choices"][0]["delta"];
    if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
    if (d.contains("tool_calls")) calls = d["tool_calls"];
    if (e["choices"][0]["finish_reason"].is_string()) finish = e["choices"][0]["finish_reason"];
  }
  CHECK(content == "Checking.\n");  // sent before the call began (the whole-body form trims it)
  REQUIRE(calls.size() == 1);
  CHECK(calls[0]["index"] == 0);
  CHECK(calls[0]["function"]["name"] == "f");
  CHECK(finish == "tool_calls");
  // A held-back "<tool" that never became a call is sent at the end.
  const auto plain_events = stream_events(ToolCallFormat::kHermes, {text_event("x <tool"), finished("!")});
  content.clear();
  for (const auto& e : plain_events) {
    const auto& d = e["choices"][0]["delta"];
    if (d.contains("content") && d["content"].is_string()) content += d["content"].get<std::string>();
  }
  CHECK(content == "x <tool!");
}

TEST_CASE("tool calls: a call and its result sent back render through the template", "[tools]") {
  const std::string body = R"({"model": "m", "messages": [
      {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})";
  const server::CompletionRequest r = server::parse_request(server::Endpoint::kChat, body, {});
  REQUIRE(r.messages.size() == 3);
  CHECK(r.messages[1].tool_calls[0]["function"]["arguments"] == nlohmann::ordered_json{{"city", "Paris"}});
  CHECK(r.messages[2].tool_call_id == "call_1");
  const auto render = server::template_renderer(
      std::make_shared<const chat::ChatTemplate>(read_template("qwen3.jinja")));
  const server::RenderedChat chat = render(r.messages, server::ChatVariables{r.tools, nlohmann::ordered_json::object()});
  CHECK(chat.tool_format == ToolCallFormat::kHermes);
  CHECK(chat.text.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>") !=
        std::string::npos);
  CHECK(chat.text.find("<tool_response>\nsunny\n</tool_response>") != std::string::npos);
  // Without tools in the request the reply is not parsed for calls.
  CHECK(render(r.messages, server::ChatVariables{}).tool_format == ToolCallFormat::kNone);

  for (const std::string bad :
       {R"({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": 5}]}]})",
        R"({"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}]})",
        R"({"model": "m", "messages": [{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}]})"}) {
    CHECK_THROWS_AS(server::parse_request(server::Endpoint::kChat, bad, {}), server::ApiError);
  }
}
