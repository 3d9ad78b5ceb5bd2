// Template: a parsed chat template, ready to render any number of times from any number of
// threads (it is immutable; each render has its own Runtime).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "moe/chat/evaluator.hpp"
#include "moe/chat/parser.hpp"
#include "moe/core/error.hpp"

namespace moe::chat {

class Template {
 public:
  // Parses `source`. Errors: TemplateError (kSyntax, ErrorCode::kFormat) with line and column.
  static Template parse(std::string_view source, const TemplateLimits& limits = {}) {
    return catch_as_error("chat template parse", [&] {
      Template t;
      t.limits_ = limits;
      t.program_ = std::make_shared<const Program>(parse_template(source, limits));
      return t;
    });
  }

  // Renders with `variables` as the template's globals (after range/dict/namespace/
  // raise_exception/strftime_now, which they may override). `clock` feeds strftime_now (local
  // time when empty). Errors: TemplateError (kRuntime or kRaised, ErrorCode::kInvalidArgument)
  // with line and column; kOutOfMemory if an allocation fails. Thread-safe.
  std::string render(const Dict& variables, const Clock& clock = {}) const {
    return catch_as_error("chat template render", [&] {
      Runtime rt(limits_, clock);
      Dict globals;
      add_globals(globals);
      for (const auto& [k, v] : variables.items()) globals.set(k, v);
      auto root = std::make_shared<Scope>();
      for (const auto& [k, v] : globals.items()) root->set(k, v);
      return Evaluator(rt).render(*program_, std::move(root));
    });
  }

  // The same with the variables given as a JSON object (nlohmann::json or ordered_json).
  template <class Json>
  std::string render_json(const Json& variables, const Clock& clock = {}) const {
    return catch_as_error("chat template render", [&] {
      if (!variables.is_object()) fail(ErrorCode::kInvalidArgument, "chat template variables must be a JSON object");
      if (json_depth(variables, limits_.max_value_depth + 1) > limits_.max_value_depth)
        fail(ErrorCode::kInvalidArgument, "chat template variables nest deeper than {} levels",
             limits_.max_value_depth);
      return render(from_json(variables).as_dict(), clock);
    });
  }

  const TemplateLimits& limits() const noexcept { return limits_; }

 private:
  Template() = default;
  std::shared_ptr<const Program> program_;
  TemplateLimits limits_;
};

}  // namespace moe::chat
