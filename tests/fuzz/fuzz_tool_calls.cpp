// libFuzzer target: model output -> chat::parse_tool_calls in every format (the first byte picks
// it, the rest is the reply), and the streaming helpers beside it. Parsing never throws on model
// output (nothing here catches anything, so an exception aborts the fuzzer); an accepted call has
// a name and arguments that are a JSON object's text; a reply with no calls comes back as its
// content unchanged (but for harmony's channels); the safe streaming prefix is never longer than
// the text.
#include <moe/chat/tool_calls.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_tool_calls: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  using moe::chat::ToolCallFormat;
  const auto format = static_cast<ToolCallFormat>(data[0] % 8);  // kNone .. kHarmony
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const moe::chat::ParsedReply r = moe::chat::parse_tool_calls(format, text);
  // (harmony's content is its final channel's text, with or without calls)
  if (r.calls.empty() && format != ToolCallFormat::kHarmony) {
    check(r.content == text, "a reply without calls is its content unchanged");
  }
  for (const auto& c : r.calls) {
    check(!c.name.empty(), "a call has a name");
    const nlohmann::json args = nlohmann::json::parse(c.arguments, nullptr, false);
    check(!args.is_discarded() && args.is_object(), "a call's arguments are a JSON object");
  }
  check(moe::chat::tool_call_safe_prefix(format, text) <= text.size(), "the safe prefix fits the text");
  (void)moe::chat::detect_tool_call_format(text);
  return 0;
}
