// How a chat request becomes prompt text. The server takes a ChatRenderer; until the Jinja
// chat-template interpreter (moe/chat/) is wired in, every model uses render_chat_plain.
#pragma once

#include "moe/server/request.hpp"

#include <functional>
#include <string>
#include <vector>

namespace moe::server {

// Renders validated messages to the prompt text (the generation prompt for the assistant's turn
// included). May throw moe::Error or ApiError (a template error): the request gets a 400.
struct RenderedChat {
  std::string text;
  bool add_special_tokens = true;  // false when the template writes BOS etc. itself
};
using ChatRenderer = std::function<RenderedChat(const std::vector<ChatMessage>&)>;

// FALLBACK chat format (to be replaced by moe::chat::ChatTemplate when a model has a template):
// each message as its speaker's name, a colon and a newline, its content and a blank line,
// then "Assistant:" and a newline for the reply. The speaker is the message's "name" when given,
// else its role capitalized ("System", "User", "Assistant", "Developer", "Tool"). Encoded with
// the tokenizer's special tokens (BOS where the tokenizer adds one).
//
//   System:\nYou are terse.\n\nUser:\nHi\n\nAssistant:\n
inline RenderedChat render_chat_plain(const std::vector<ChatMessage>& messages) {
  std::string out;
  for (const auto& m : messages) {
    std::string speaker = m.name ? *m.name : m.role;
    if (!m.name && !speaker.empty()) speaker[0] = static_cast<char>(speaker[0] - 'a' + 'A');
    out += speaker;
    out += ":\n";
    out += m.content;
    out += "\n\n";
  }
  out += "Assistant:\n";
  return {std::move(out), true};
}

}  // namespace moe::server
