// The limits a chat template runs under. Templates come with model files or, through a server,
// from anyone who can load a model: each limit is far above what a real chat template needs (the
// comments say how far) and turns a hostile template into a TemplateError instead of exhausting
// memory, stack or CPU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::chat {

struct TemplateLimits {
  // Template source size. Real chat templates are 0.3-17 KB (GPT-OSS is the largest seen).
  std::size_t max_template_bytes = std::size_t{1} << 20;
  // Nesting of statements and expressions while parsing (real templates: < 15).
  std::size_t max_nesting = 200;
  // Nested evaluation (statements, expressions and macro calls together) while rendering; this is
  // what bounds the stack. Real templates: < 200 (GPT-OSS's recursive tool-schema macro included).
  std::size_t max_eval_depth = 1500;
  // Macro and caller() recursion (real templates: < 10).
  std::size_t max_call_depth = 64;
  // Work units: every statement run and expression evaluated, plus the elements or 64-byte
  // chunks that loops and filters touch. A 100-message conversation with tools through the
  // largest template (GPT-OSS) takes < 400k (tested); the default stops a runaway template
  // after about a second.
  std::uint64_t max_steps = 20'000'000;
  // Bytes of the rendered text and of any one string the template builds.
  std::size_t max_output_bytes = std::size_t{64} << 20;
  // Elements of any one list or dict the template builds (range(), +, *, filters).
  std::size_t max_items = std::size_t{1} << 20;
  // Nesting of lists and dicts the template builds ([[[...]]]): deeper values would make
  // printing, comparing and freeing them recurse without bound.
  std::size_t max_value_depth = 128;
};

}  // namespace moe::chat
