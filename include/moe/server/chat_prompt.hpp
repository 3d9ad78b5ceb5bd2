// How a chat request becomes prompt text: the model's Jinja chat template (moe::chat::ChatTemplate,
// from tokenizer_config.json or chat_template.jinja) rendered over the validated messages, with
// the assistant's generation prompt; a model without a template gets ChatTemplate's documented
// plain fallback.
#pragma once

#include "moe/chat/chat_template.hpp"
#include "moe/chat/tool_calls.hpp"
#include "moe/io/load_chat_template.hpp"
#include "moe/server/request.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace moe::server {

struct RenderedChat {
  std::string text;
  bool add_special_tokens = true;  // false when the template writes BOS etc. itself
  // How the reply's tool calls are written (chat/tool_calls.hpp): the template's format when the
  // request offered tools, else kNone (the reply is plain content).
  chat::ToolCallFormat tool_format = chat::ToolCallFormat::kNone;
};

// What a request adds to the template's variables besides the messages.
struct ChatVariables {
  nlohmann::ordered_json tools = nullptr;                            // the "tools" array, or null
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
};

// Renders validated messages to the prompt text (the generation prompt for the assistant's turn
// included). May throw (a template error): the request gets a 400 with the message.
using ChatRenderer = std::function<RenderedChat(const std::vector<ChatMessage>&, const ChatVariables&)>;

// The messages as the template sees them: {"role", "content" (text), "name", "tool_calls",
// "tool_call_id" when given}, in that key order.
inline nlohmann::ordered_json messages_json(const std::vector<ChatMessage>& messages) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    nlohmann::ordered_json j;
    j["role"] = m.role;
    j["content"] = m.content;
    if (m.name) j["name"] = *m.name;
    if (!m.tool_calls.is_null()) j["tool_calls"] = m.tool_calls;
    if (m.tool_call_id) j["tool_call_id"] = *m.tool_call_id;
    out.push_back(std::move(j));
  }
  return out;
}

// A renderer over `chat`. A real template writes the special tokens it wants (BOS included), so
// its text is encoded without the tokenizer's, as transformers' apply_chat_template does; the
// fallback writes none, so the tokenizer adds them where its config asks.
inline ChatRenderer template_renderer(std::shared_ptr<const chat::ChatTemplate> chat) {
  const chat::ToolCallFormat format = chat::detect_tool_call_format(chat->source());
  return [chat = std::move(chat), format](const std::vector<ChatMessage>& messages, const ChatVariables& vars) {
    chat::ChatRenderOptions options;
    options.add_generation_prompt = true;
    options.tools = vars.tools;
    options.extra = vars.kwargs;
    const bool tools = vars.tools.is_array() && !vars.tools.empty();
    return RenderedChat{chat->render(messages_json(messages), options), chat->is_fallback(),
                        tools ? format : chat::ToolCallFormat::kNone};
  };
}

// The renderer for a model folder or GGUF file: its template (tokenizer.chat_template in a GGUF),
// or the fallback when it has none. Throws moe::Error (kIo / kFormat, TemplateError for a
// template that does not parse).
inline ChatRenderer folder_chat_renderer(const std::filesystem::path& model) {
  return template_renderer(std::make_shared<const chat::ChatTemplate>(io::load_chat_template(model)));
}

// The plain fallback, for hosts that have no model folder at hand.
inline ChatRenderer fallback_chat_renderer() {
  return template_renderer(std::make_shared<const chat::ChatTemplate>(chat::ChatTemplate::fallback()));
}

}  // namespace moe::server
