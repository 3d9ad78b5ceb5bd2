// Helpers shared by the chat-template tests.
#pragma once

#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <moe/chat/chat_template.hpp>
#include <moe/core/file.hpp>
#include <string>

namespace chat_test {

inline const std::filesystem::path kChatFixtures = std::filesystem::path(MOE_FIXTURES_DIR) / "chat";

// The fixed clock of the fixtures: 2026-01-15 09:30:00 (a Thursday).
inline std::tm fixture_time() {
  std::tm t{};
  t.tm_year = 126;
  t.tm_mon = 0;
  t.tm_mday = 15;
  t.tm_hour = 9;
  t.tm_min = 30;
  t.tm_wday = 4;
  t.tm_yday = 14;
  return t;
}

inline nlohmann::ordered_json read_ordered_json(const std::filesystem::path& p) {
  return nlohmann::ordered_json::parse(moe::read_file(p, std::size_t{64} << 20, "fixture"));
}

// Renders `source` with JSON variables (ordered: key order matters for tojson).
inline std::string render(const std::string& source,
                          const nlohmann::ordered_json& vars = nlohmann::ordered_json::object()) {
  return moe::chat::Template::parse(source).render_json(vars, fixture_time);
}

// The TemplateError a render throws (fails the test when it does not throw one).
inline moe::chat::TemplateError render_error(const std::string& source,
                                             const nlohmann::ordered_json& vars = nlohmann::ordered_json::object(),
                                             const moe::chat::TemplateLimits& limits = {}) {
  try {
    (void)moe::chat::Template::parse(source, limits).render_json(vars, fixture_time);
  } catch (const moe::chat::TemplateError& e) {
    return e;
  }
  FAIL("expected a TemplateError from: " << source);
  throw;  // unreachable
}

}  // namespace chat_test
