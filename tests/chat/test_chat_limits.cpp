// Hostile templates: every limit of TemplateLimits turns runaway input into a TemplateError
// (never a crash, a hang or unbounded memory), and stays far above what real templates need.
#include <chrono>

#include "chat_test_util.hpp"

using chat_test::render_error;
using moe::chat::TemplateErrorKind;
using moe::chat::TemplateLimits;
using json = nlohmann::ordered_json;

namespace {

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Runs a hostile template and checks it fails fast with the message fragment.
void check_refused(const std::string& source, const std::string& fragment, const TemplateLimits& limits = {}) {
  const auto start = std::chrono::steady_clock::now();
  const auto e = render_error(source, json::object(), limits);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  INFO(source.substr(0, 120) << " -> " << e.what());
  CHECK(std::string(e.what()).find(fragment) != std::string::npos);
  CHECK(seconds < 20.0);  // generous for sanitizer builds; typical runs take milliseconds
}

}  // namespace

TEST_CASE("chat limits: parsing", "[chat][limits]") {
  check_refused("{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}", "nests deeper");
  check_refused("{{ 1" + repeat(" + 1", 100000) + " }}", "nests deeper");
  check_refused("{{ x" + repeat(" | trim", 100000) + " }}", "nests deeper");
  check_refused("{{ x" + repeat(" and x", 100000) + " }}", "nests deeper");
  check_refused("{{ x" + repeat("[0]", 100000) + " }}", "nests deeper");
  check_refused("{{ x" + repeat(" is defined", 10000) + " }}", "");
  check_refused("{{ " + repeat("-", 5000) + "1 }}", "nests deeper");
  check_refused("{{ " + repeat("[", 5000) + repeat("]", 5000) + " }}", "nests deeper");
  check_refused(repeat("{% if true %}", 1000) + repeat("{% endif %}", 1000), "nests deeper");
  check_refused("{{ x" + repeat(".a", 100000) + " }}", "nests deeper");
  TemplateLimits small;
  small.max_template_bytes = 100;
  check_refused(std::string(200, 'x'), "more than the limit", small);
  check_refused("ok \xff\xfe", "not valid UTF-8");
}

TEST_CASE("chat limits: rendering", "[chat][limits]") {
  check_refused("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "nested deeper");
  check_refused("{% for i in range(10000000000) %}{% endfor %}", "range()");
  check_refused("{{ 'x' * 10000000000 }}", "exceed the limit");
  check_refused("{{ [1] * 10000000000 }}", "exceed the limit");
  check_refused("{% set ns = namespace(s='xx') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                "exceed the limit");
  check_refused("{% set ns = namespace(l=[1]) %}{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                "exceed the limit");
  check_refused("{% set ns = namespace(v=1) %}{% for i in range(1000) %}{% set ns.v = [ns.v] %}{% endfor %}", "nested");
  check_refused("{% set ns = namespace(a=1) %}{% set ns.a = ns %}", "cannot hold a namespace");
  check_refused("{% set ns = namespace(a=1) %}{% set ns.a = [ns] %}", "cannot hold a namespace");
  check_refused("{% for i in range(1000000) %}{{ 'abcdefghijklmnopqrstuvwxyz' * 100 }}{% endfor %}", "limit");
  TemplateLimits small;
  small.max_output_bytes = 1000;
  check_refused("{% for i in range(100) %}0123456789abcdef{% endfor %}", "rendered text would exceed", small);
  small = {};
  small.max_steps = 1000;
  check_refused("{% for i in range(500) %}{% for j in range(10) %}{% endfor %}{% endfor %}", "steps", small);
  small.max_steps = 1'000'000;
  check_refused("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", "steps", small);
  // A long loop body is charged per statement, not per iteration.
  check_refused("{% for i in range(10000) %}" + repeat("{% if false %}{% endif %}", 1000) + "{% endfor %}", "steps",
                small);
  // A recursive macro inside a deep loop: the call depth, not the stack, gives out.
  check_refused(
      "{% macro f(n) %}{% for x in [1] %}{% if true %}{{ f(n) }}{% endif %}{% endfor %}{% endmacro %}{{ f(0) }}",
      "nested deeper");
}

TEST_CASE("chat limits: real templates use a small share of the budget", "[chat][limits]") {
  // The largest template (GPT-OSS) over a 100-turn conversation with tools renders within 2% of
  // the default work budget.
  const std::string source =
      moe::read_file(chat_test::kChatFixtures / "templates" / "gpt-oss.jinja", 1 << 20, "template");
  TemplateLimits tight;
  tight.max_steps = 400'000;  // 2% of the default
  const moe::chat::ChatTemplate chat(source, "", "", tight);
  json messages = json::array();
  for (int i = 0; i < 50; ++i) {
    messages.push_back(json{{"role", "user"}, {"content", "question " + std::to_string(i)}});
    messages.push_back(json{{"role", "assistant"}, {"content", "answer " + std::to_string(i)}});
  }
  moe::chat::ChatRenderOptions options;
  options.clock = chat_test::fixture_time;
  options.tools =
      chat_test::read_ordered_json(chat_test::kChatFixtures / "rendered" / "gpt-oss.json")["cases"][19]["tools"];
  const std::string out = chat.render(messages, options);
  CHECK(out.find("answer 49") != std::string::npos);
  CHECK(out.size() < 20000);
}
