// libFuzzer target: a chat template (and optionally, after a "\0", the JSON variables to render
// it with; a fixed conversation otherwise) -> moe::chat::Template::parse -> render. Both must
// either succeed or throw moe::Error (a TemplateError for template problems), within the limits:
// never crash, hang, recurse without bound or throw anything else (nothing here catches
// std::exception, so one escaping aborts the fuzzer). The limits are lowered so that one input
// stays fast under ASan.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <moe/chat/template.hpp>
#include <string_view>

namespace {

const char* const kDefaultVariables = R"({
  "messages": [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Hi \u00e9\ud83d\ude00 <think>x</think>"},
    {"role": "assistant", "content": "Hello", "reasoning_content": "greet",
     "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": [true, null, 2.5]}}}]},
    {"role": "tool", "content": "42"},
    {"role": "user", "content": ""}
  ],
  "tools": [{"type": "function", "function": {"name": "f", "description": "d",
             "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}],
  "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false
})";

std::tm fixed_time() {
  std::tm t{};
  t.tm_year = 126;
  t.tm_mday = 15;
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find('\0');
  const std::string_view source = input.substr(0, split);
  const std::string_view vars_text =
      split == std::string_view::npos ? std::string_view(kDefaultVariables) : input.substr(split + 1);
  moe::chat::TemplateLimits limits;
  limits.max_steps = 200'000;
  limits.max_output_bytes = std::size_t{1} << 20;
  limits.max_items = 1 << 16;
  try {
    const auto t = moe::chat::Template::parse(source, limits);
    nlohmann::ordered_json vars = nlohmann::ordered_json::parse(vars_text, nullptr, /*allow_exceptions=*/false);
    if (vars.is_discarded() || !vars.is_object()) vars = nlohmann::ordered_json::parse(kDefaultVariables);
    const std::string out = t.render_json(vars, fixed_time);
    if (out.size() > limits.max_output_bytes) {
      std::fprintf(stderr, "fuzz_chat_template: output of %zu bytes passed the limit\n", out.size());
      std::abort();
    }
  } catch (const moe::Error&) {
  }
  return 0;
}
