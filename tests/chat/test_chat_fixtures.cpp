// Every rendering in tests/fixtures/chat (made by tools/make_chat_fixtures.mjs with
// @huggingface/jinja): the real chat templates of ten MoE model families over a set of
// conversations, the bundled model's template, and the one-feature syntax cases. Each must come
// out byte for byte; each error case must fail with the template's message.
#include <set>

#include "chat_test_util.hpp"

using chat_test::kChatFixtures;
using moe::chat::ChatRenderOptions;
using moe::chat::ChatTemplate;
using moe::chat::TemplateError;
using moe::chat::TemplateErrorKind;

namespace {

ChatTemplate load_template(const nlohmann::ordered_json& doc) {
  const std::string where = doc.at("template").get<std::string>();
  if (where.rfind("models/", 0) == 0) {
    const auto dir = std::filesystem::path(MOE_MODELS_DIR) / std::filesystem::path(where).parent_path().filename();
    return ChatTemplate::from_folder(dir);
  }
  const std::string source = moe::read_file(kChatFixtures / where, std::size_t{1} << 20, "template");
  auto token = [&](const char* key) {
    return doc.at(key).is_string() ? doc.at(key).get<std::string>() : std::string();
  };
  return ChatTemplate(source, token("bos_token"), token("eos_token"));
}

}  // namespace

TEST_CASE("chat fixtures: real templates render byte for byte", "[chat][fixtures]") {
  std::set<std::string> seen;
  std::size_t cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kChatFixtures / "rendered")) {
    if (entry.path().extension() != ".json") continue;
    const auto doc = chat_test::read_ordered_json(entry.path());
    const ChatTemplate chat = load_template(doc);
    seen.insert(entry.path().stem().string());
    for (const auto& c : doc.at("cases")) {
      ChatRenderOptions options;
      options.add_generation_prompt = c.at("add_generation_prompt").get<bool>();
      if (c.contains("tools")) options.tools = c.at("tools");
      if (c.contains("extra")) options.extra = c.at("extra");
      options.clock = chat_test::fixture_time;
      INFO(entry.path().filename().string() << " / " << c.at("name").get<std::string>());
      ++cases;
      if (c.contains("error")) {
        try {
          (void)chat.render(c.at("messages"), options);
          FAIL("expected raise_exception");
        } catch (const TemplateError& e) {
          CHECK(e.kind() == TemplateErrorKind::kRaised);
          CHECK(e.template_message() == c.at("error").get<std::string>());
        }
        continue;
      }
      const std::string got = chat.render(c.at("messages"), options);
      CHECK(got == c.at("expected").get<std::string>());
    }
  }
  // The families the fixtures must cover.
  for (const char* name : {"deepseek-v3", "deepseek-r1", "qwen3", "gpt-oss", "mixtral-8x7b-instruct", "glm-4.5",
                           "kimi-k2", "qwen1.5-moe-chat", "olmoe-instruct", "model-shakespeare-moe"}) {
    INFO(name);
    CHECK(seen.count(name) == 1);
  }
  CHECK(cases >= 100);
}

TEST_CASE("chat fixtures: one-feature syntax cases", "[chat][fixtures]") {
  const auto doc = chat_test::read_ordered_json(kChatFixtures / "syntax_cases.json");
  std::size_t n = 0;
  for (const auto& c : doc.at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    const std::string source = c.at("template").get<std::string>();
    INFO(name << ": " << source);
    ++n;
    if (c.contains("error")) {
      const TemplateError e = chat_test::render_error(source, c.at("vars"));
      if (name == "raise_exception") {
        CHECK(e.kind() == TemplateErrorKind::kRaised);
        CHECK(e.template_message() == c.at("error").get<std::string>());
      }
      continue;
    }
    CHECK(chat_test::render(source, c.at("vars")) == c.at("expected").get<std::string>());
  }
  CHECK(n >= 80);
}
