// Shared helpers of the runtime tests: where the demo model and the fixture checkpoints are, and
// lazily loaded (once per executable) models and tokenizer.
#pragma once

#include <moe/io/json_file.hpp>
#include <moe/io/load_model.hpp>
#include <moe/tokenizer/tokenizer.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace runtime_test {

inline std::filesystem::path demo_dir() { return std::filesystem::path(MOE_MODELS_DIR) / "shakespeare-moe"; }
inline std::filesystem::path demo_fixture_dir() { return std::filesystem::path(MOE_FIXTURES_DIR) / "demo"; }

inline bool have_demo() {
  return std::filesystem::exists(demo_dir() / "config.json") &&
         std::filesystem::exists(demo_fixture_dir() / "reference.json");
}

// The bundled demo model and its tokenizer, loaded once.
inline std::shared_ptr<const moe::Model> demo_model() {
  static const std::shared_ptr<const moe::Model> m = moe::load_model(demo_dir());
  return m;
}
inline std::shared_ptr<const moe::Tokenizer> demo_tokenizer() {
  static const auto t = std::make_shared<const moe::Tokenizer>(moe::Tokenizer::from_folder(demo_dir()));
  return t;
}
inline const nlohmann::json& demo_reference() {
  static const nlohmann::json j = moe::io::read_json_file(demo_fixture_dir() / "reference.json");
  return j;
}

// A byte-level tokenizer fixture, for streaming the text of fixture models (which have none); ids
// it lacks simply have no text.
inline std::shared_ptr<const moe::Tokenizer> fixture_tokenizer() {
  static const auto t = std::make_shared<const moe::Tokenizer>(moe::Tokenizer::from_file(
      std::filesystem::path(MOE_FIXTURES_DIR) / "tokenizers" / "bytelevel_gpt2" / "tokenizer.json"));
  return t;
}

// Fixture checkpoints (tests/fixtures/models/<case>/) that have a config.json, sorted by name.
inline std::vector<std::filesystem::path> fixture_models() {
  std::vector<std::filesystem::path> out;
  const auto root = std::filesystem::path(MOE_FIXTURES_DIR) / "models";
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) return out;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    if (std::filesystem::exists(e.path() / "config.json") && std::filesystem::exists(e.path() / "reference.json")) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::vector<std::int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<std::int32_t>>(); }

}  // namespace runtime_test
