// ChatTemplate: the front end a server calls. Loading from a model folder (chat_template.jinja,
// tokenizer_config.json's string or named templates, the fallback), the variables it passes,
// the bundled model's template, input checks, and concurrent renders.
#include <fstream>
#include <moe/tokenizer/tokenizer.hpp>
#include <thread>
#include <vector>

#include "chat_test_util.hpp"

using moe::chat::ChatRenderOptions;
using moe::chat::ChatTemplate;
using json = nlohmann::ordered_json;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("moe-chat-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

const json kConversation =
    json::array({json{{"role", "system"}, {"content", "Be brief."}}, json{{"role", "user"}, {"content", "Hi"}},
                 json{{"role", "assistant"}, {"content", "Hello!"}}, json{{"role", "user"}, {"content", "Bye"}}});

}  // namespace

TEST_CASE("ChatTemplate: the plain fallback for a model without a template", "[chat]") {
  const ChatTemplate chat = ChatTemplate::fallback();
  CHECK(chat.is_fallback());
  CHECK(chat.render(kConversation) == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Bye\n\nAssistant:");
  ChatRenderOptions no_prompt;
  no_prompt.add_generation_prompt = false;
  CHECK(chat.render(kConversation, no_prompt) == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nUser: Bye\n\n");
  const json parts = json::array({json{{"role", "user"},
                                       {"content", json::array({json{{"type", "text"}, {"text", "a"}},
                                                                json{{"type", "image_url"}, {"image_url", "x"}},
                                                                json{{"type", "text"}, {"text", "b"}}})}},
                                  json{{"role", "assistant"}, {"content", nullptr}}});
  CHECK(chat.render(parts) == "User: a\nb\n\nAssistant: \n\nAssistant:");

  TempDir empty;
  CHECK(ChatTemplate::from_folder(empty.path).is_fallback());
}

TEST_CASE("ChatTemplate: the bundled model's play-style template", "[chat]") {
  const auto dir = std::filesystem::path(MOE_MODELS_DIR) / "shakespeare-moe";
  const ChatTemplate chat = ChatTemplate::from_folder(dir);
  CHECK_FALSE(chat.is_fallback());
  CHECK(chat.bos_token() == "<|endoftext|>");
  CHECK(chat.render(kConversation) ==
        "CHORUS:\nBe brief.\n\nROMEO:\nHi\n\nJULIET:\nHello!\n\nROMEO:\nBye\n\nJULIET:\n");
  // The tokenizer still loads the folder (the new key is ignored there) and encodes the prompt
  // without special tokens: it is plain play text.
  const auto tok = moe::Tokenizer::from_folder(dir);
  CHECK(tok.bos_id() == tok.eos_id());
  const std::string prompt = chat.render(kConversation);
  const auto ids = tok.encode(prompt);
  CHECK(tok.decode(ids) == prompt);
  for (auto id : ids) CHECK_FALSE(tok.is_special(id));
}

TEST_CASE("ChatTemplate: loading from a folder", "[chat]") {
  TempDir dir;
  dir.write("tokenizer_config.json",
            R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
                "chat_template": [{"name": "default", "template": "D{{ bos_token }}{{ messages | length }}{{ eos_token }}"},
                                  {"name": "tool_use", "template": "T{{ tools | length }}"}]})");
  ChatTemplate chat = ChatTemplate::from_folder(dir.path);
  CHECK(chat.render(kConversation) == "D<s>4</s>");
  ChatRenderOptions with_tools;
  with_tools.tools = json::array({json{{"type", "function"}}});
  CHECK(chat.render(kConversation, with_tools) == "T1");

  // chat_template.jinja takes precedence over tokenizer_config.json, as in transformers.
  dir.write("chat_template.jinja", "J{{ messages[0].role }}\n");
  CHECK(ChatTemplate::from_folder(dir.path).render(kConversation) == "Jsystem");

  TempDir bad;
  bad.write("tokenizer_config.json", R"({"chat_template": 5})");
  CHECK_THROWS_AS(ChatTemplate::from_folder(bad.path), moe::Error);
  bad.write("tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  CHECK_THROWS_AS(ChatTemplate::from_folder(bad.path), moe::chat::TemplateError);
  bad.write("tokenizer_config.json", R"({"chat_template": "ok", "bos_token": 3})");
  CHECK_THROWS_AS(ChatTemplate::from_folder(bad.path), moe::Error);
}

TEST_CASE("ChatTemplate: variables passed as transformers passes them", "[chat]") {
  const ChatTemplate chat(
      "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}|"
      "{{ enable_thinking }}|{{ tools | tojson if tools else '' }}|{{ messages[0].tool_calls[0].function.arguments | "
      "tojson }}",
      "<bos>", "<eos>");
  const json messages = json::array(
      {json{{"role", "assistant"},
            {"tool_calls",
             json::array({json{{"function", json{{"name", "f"}, {"arguments", json{{"z", 1}, {"a", 2}}}}}}})}}});
  ChatRenderOptions options;
  options.extra = json{{"enable_thinking", false}};
  CHECK(chat.render(messages, options) == "<bos>|<eos>|True|True|True|False||{\"z\": 1, \"a\": 2}");
  options.tools = json::array({json{{"name", "t"}}});
  options.extra = json{{"enable_thinking", true}, {"bos_token", "[override]"}};
  options.add_generation_prompt = false;
  CHECK(chat.render(messages, options) ==
        "[override]|<eos>|False|True|False|True|[{\"name\": \"t\"}]|{\"z\": 1, \"a\": 2}");
  // Plain nlohmann::json works too (its objects sort their keys, so tojson does as well).
  const nlohmann::json sorted = nlohmann::json::parse(messages.dump());
  CHECK(chat.render(sorted).substr(chat.render(sorted).rfind('|') + 1) == "{\"a\": 2, \"z\": 1}");
}

TEST_CASE("ChatTemplate: input checks and errors", "[chat]") {
  const ChatTemplate chat("{% for m in messages %}{{ m.content }}{% endfor %}");
  CHECK_THROWS_AS(chat.render(json::object()), moe::Error);
  ChatRenderOptions bad_extra;
  bad_extra.extra = json::array();
  CHECK_THROWS_AS(chat.render(json::array(), bad_extra), moe::Error);
  json deep = json::array();
  for (int i = 0; i < 200; ++i) deep = json::array({deep});
  try {
    (void)chat.render(json::array({json{{"role", "user"}, {"content", deep}}}));
    FAIL("expected an error");
  } catch (const moe::Error& e) {
    CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
  }
  const ChatTemplate raising(
      "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}");
  try {
    (void)raising.render(json::array({json{{"role", "assistant"}, {"content", "x"}}}));
    FAIL("expected raise_exception");
  } catch (const moe::Error& e) {  // a TemplateError is a moe::Error: a server maps it to HTTP 400
    CHECK(e.code() == moe::ErrorCode::kInvalidArgument);
    CHECK(std::string(e.what()).find("first message must be from the user") != std::string::npos);
  }
}

TEST_CASE("ChatTemplate: concurrent renders share one template", "[chat]") {
  const std::string source =
      moe::read_file(chat_test::kChatFixtures / "templates" / "gpt-oss.jinja", 1 << 20, "template");
  const ChatTemplate chat(source);
  ChatRenderOptions options;
  options.clock = chat_test::fixture_time;
  const std::string expected = chat.render(kConversation, options);
  std::vector<std::string> results(4);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < results.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) results[t] = chat.render(kConversation, options);
    });
  for (auto& th : threads) th.join();
  for (const auto& r : results) CHECK(r == expected);
}
