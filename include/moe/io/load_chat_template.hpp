// The chat template of a model, wherever it lives: a Hugging Face folder (chat_template.jinja or
// tokenizer_config.json, as chat::ChatTemplate::from_folder reads it) or a GGUF file's
// tokenizer.chat_template, in the same chat::ChatTemplate shape the server renders with.
#pragma once

#include "moe/chat/chat_template.hpp"
#include "moe/core/error.hpp"
#include "moe/io/gguf.hpp"
#include "moe/io/gguf_tokenizer.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

namespace moe::io {

// The template of GGUF tokenizer metadata: tokenizer.chat_template with bos_token / eos_token
// set to the texts of tokenizer.ggml.bos_token_id / eos_token_id (as llama.cpp's server passes
// them to the template), or ChatTemplate's plain fallback when the file has no template.
// Named templates (tokenizer.chat_template.<name>) are not used. Errors: TemplateError for a
// template that does not parse.
inline chat::ChatTemplate chat_template_from_gguf(const GgufTokenizerData& d, const chat::TemplateLimits& limits = {}) {
  auto text = [&](const std::optional<std::int32_t>& id) {
    return id ? d.tokens[static_cast<std::size_t>(*id)] : std::string();  // ids are checked by read_gguf_tokenizer
  };
  if (!d.chat_template) return chat::ChatTemplate::fallback(text(d.bos_id), text(d.eos_id));
  return chat::ChatTemplate(*d.chat_template, text(d.bos_id), text(d.eos_id), limits);
}

// The chat template of `path`: a folder (ChatTemplate::from_folder) or a GGUF file (by its
// "GGUF" magic or the .gguf extension). Errors: kIo for a missing path, kInvalidArgument for
// another kind of file, and those of the readers.
inline chat::ChatTemplate load_chat_template(const std::filesystem::path& path, const chat::TemplateLimits& limits = {}) {
  return catch_as_error("load_chat_template", [&] {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) return chat::ChatTemplate::from_folder(path, limits);
    if (!std::filesystem::exists(path, ec)) fail(ErrorCode::kIo, "{}: no such file or folder", path.string());
    char magic[4] = {};
    {
      std::ifstream in(path, std::ios::binary);
      if (!in) fail(ErrorCode::kIo, "{}: cannot be opened", path.string());
      in.read(magic, 4);
    }
    if (std::memcmp(magic, "GGUF", 4) != 0 && path.extension() != ".gguf")
      fail(ErrorCode::kInvalidArgument, "{}: not a model folder or a GGUF file", path.string());
    const GgufFile f = GgufFile::open(path);
    return chat_template_from_gguf(read_gguf_tokenizer(f), limits);
  });
}

}  // namespace moe::io
