// ChatTemplate: turns an OpenAI-style conversation into the prompt text a model was trained on,
// by rendering the model's Jinja chat template (tokenizer_config.json's "chat_template", a
// chat_template.jinja file, or GGUF's tokenizer.chat_template) as transformers'
// apply_chat_template does, or, for a model without one, a documented plain fallback.
//
//   auto chat = moe::chat::ChatTemplate::from_folder("models/shakespeare-moe");
//   std::string prompt = chat.render(messages, {.add_generation_prompt = true});
//
// The template sees the variables transformers passes: messages, tools (None when there are
// none), documents (None), add_generation_prompt, bos_token, eos_token, then every key of
// `extra` (enable_thinking, reasoning_effort, builtin_tools, ...), which may override them.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "moe/chat/template.hpp"
#include "moe/core/file.hpp"
#include "moe/core/json.hpp"
#include "moe/core/limits.hpp"

namespace moe::chat {

struct ChatRenderOptions {
  // Append the opening of an assistant turn (what a server wants before generating).
  bool add_generation_prompt = true;
  // The tool list (OpenAI "tools" array); null: no tools (the template sees None).
  nlohmann::ordered_json tools = nullptr;
  // RAG documents for templates that take them; null: none.
  nlohmann::ordered_json documents = nullptr;
  // Further template variables, an object: {"enable_thinking": false, "reasoning_effort": "high"}.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  // Clock for strftime_now (local time when empty).
  Clock clock;
};

// The plain template a model without one gets: each message as "Role: content" followed by a
// blank line ("User: Hi\n\nAssistant: Hello\n\n"), then "Assistant:" when a generation prompt
// is asked for. Content given as a list of parts contributes its text parts. No special tokens:
// the tokenizer adds BOS if the model's tokenizer_config asks for one.
inline constexpr std::string_view kFallbackChatTemplate =
    "{%- for message in messages -%}\n"
    "{%- if message.content is string -%}{%- set content = message.content -%}\n"
    "{%- elif message.content is none -%}{%- set content = '' -%}\n"
    "{%- else -%}{%- set content = message.content | selectattr('type', 'equalto', 'text') | map(attribute='text') "
    "| join('\\n') -%}{%- endif -%}\n"
    "{{ message.role | capitalize }}: {{ content }}\n\n"
    "{% endfor -%}\n"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}\n";

class ChatTemplate {
 public:
  // Parses `source`. Errors: TemplateError (kSyntax) with the line and column.
  ChatTemplate(std::string_view source, std::string bos_token = {}, std::string eos_token = {},
               const TemplateLimits& limits = {})
      : template_(Template::parse(source, limits)),
        source_(source),
        bos_token_(std::move(bos_token)),
        eos_token_(std::move(eos_token)) {}

  // The plain fallback (kFallbackChatTemplate).
  static ChatTemplate fallback(std::string bos_token = {}, std::string eos_token = {}) {
    ChatTemplate t(kFallbackChatTemplate, std::move(bos_token), std::move(eos_token));
    t.fallback_ = true;
    return t;
  }

  // The template of a Hugging Face model folder: dir/chat_template.jinja if present (transformers
  // writes it there since 4.43), else tokenizer_config.json's "chat_template" (a string, or a list
  // of {"name", "template"} of which "default" is used, and "tool_use" when tools are given),
  // else the fallback. bos_token / eos_token come from tokenizer_config.json (a string or an
  // AddedToken object). Errors: kIo / kFormat naming the file, TemplateError for a template that
  // does not parse.
  static ChatTemplate from_folder(const std::filesystem::path& dir, const TemplateLimits& limits = {}) {
    return catch_as_error("ChatTemplate::from_folder", [&] {
      std::string bos, eos;
      std::optional<std::string> source, tool_use;
      std::error_code ec;
      const auto config_path = dir / "tokenizer_config.json";
      if (std::filesystem::exists(config_path, ec)) {
        const nlohmann::json cfg = read_json(config_path, limits::kMaxTokenizerConfigBytes, "tokenizer_config.json");
        if (!cfg.is_object()) fail(ErrorCode::kFormat, "{}: expected a JSON object", config_path.string());
        bos = token_text(cfg, "bos_token", config_path);
        eos = token_text(cfg, "eos_token", config_path);
        if (auto it = cfg.find("chat_template"); it != cfg.end() && !it->is_null()) {
          if (it->is_string()) {
            source = it->get<std::string>();
          } else if (it->is_array()) {
            for (const auto& entry : *it) {
              if (!entry.is_object() || !entry.contains("name") || !entry.contains("template") ||
                  !entry["name"].is_string() || !entry["template"].is_string())
                fail(ErrorCode::kFormat,
                     "{}: chat_template: each entry must be {{\"name\": string, \"template\": string}}",
                     config_path.string());
              if (entry["name"] == "default") source = entry["template"].get<std::string>();
              if (entry["name"] == "tool_use") tool_use = entry["template"].get<std::string>();
            }
          } else {
            fail(ErrorCode::kFormat, "{}: chat_template must be a string or a list of named templates, got {}",
                 config_path.string(), describe(*it));
          }
        }
      }
      const auto jinja_path = dir / "chat_template.jinja";
      if (std::filesystem::exists(jinja_path, ec))
        source = read_file(jinja_path, limits.max_template_bytes, "chat_template.jinja");
      if (!source && !tool_use) return fallback(std::move(bos), std::move(eos));
      ChatTemplate t(source ? *source : *tool_use, bos, eos, limits);
      if (tool_use && source) t.tool_use_ = std::make_shared<const Template>(Template::parse(*tool_use, limits));
      return t;
    });
  }

  // Renders `messages` (a JSON array of {"role", "content", optional "name", "tool_calls",
  // "tool_call_id", "reasoning_content", ...}; nlohmann::json or ordered_json: use ordered_json
  // to keep the caller's key order, which tojson reproduces). Errors: kInvalidArgument for
  // messages that are not an array, or nest deeper than the limit; TemplateError (kRuntime,
  // kRaised: the template's raise_exception message) with line and column. Thread-safe.
  template <class Json = nlohmann::ordered_json>
  std::string render(const Json& messages, const ChatRenderOptions& options = {}) const {
    return catch_as_error("ChatTemplate::render", [&] {
      if (!messages.is_array())
        fail(ErrorCode::kInvalidArgument, "chat messages must be a JSON array, got {}", messages.type_name());
      if (!options.extra.is_object())
        fail(ErrorCode::kInvalidArgument, "chat template extra variables must be a JSON object, got {}",
             options.extra.type_name());
      const std::size_t max_depth = template_.limits().max_value_depth;
      for (const auto* j : {&options.tools, &options.documents, &options.extra})
        if (json_depth(*j, max_depth + 1) > max_depth)
          fail(ErrorCode::kInvalidArgument, "chat template variables nest deeper than {} levels", max_depth);
      if (json_depth(messages, max_depth + 1) > max_depth)
        fail(ErrorCode::kInvalidArgument, "chat messages nest deeper than {} levels", max_depth);
      Dict vars;
      vars.set("messages", from_json(messages));
      vars.set("tools", from_json(options.tools));
      vars.set("documents", from_json(options.documents));
      vars.set("add_generation_prompt", Value::boolean(options.add_generation_prompt));
      // transformers passes the special tokens the tokenizer has; one it lacks stays undefined.
      if (!bos_token_.empty()) vars.set("bos_token", Value::string(bos_token_));
      if (!eos_token_.empty()) vars.set("eos_token", Value::string(eos_token_));
      for (auto it = options.extra.begin(); it != options.extra.end(); ++it) vars.set(it.key(), from_json(it.value()));
      const Template& t = tool_use_ && !options.tools.is_null() ? *tool_use_ : template_;
      return t.render(vars, options.clock);
    });
  }

  const std::string& source() const noexcept { return source_; }
  const std::string& bos_token() const noexcept { return bos_token_; }
  const std::string& eos_token() const noexcept { return eos_token_; }
  // True for the plain fallback (the model has no chat template).
  bool is_fallback() const noexcept { return fallback_; }

 private:
  static std::string token_text(const nlohmann::json& cfg, const char* key, const std::filesystem::path& path) {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return {};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      return (*it)["content"].get<std::string>();
    fail(ErrorCode::kFormat, "{}: {} must be a string or an object with \"content\", got {}", path.string(), key,
         describe(*it));
  }

  Template template_;
  std::shared_ptr<const Template> tool_use_;
  std::string source_;
  std::string bos_token_, eos_token_;
  bool fallback_ = false;
};

}  // namespace moe::chat
