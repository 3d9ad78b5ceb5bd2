// ApiError: an HTTP error in the OpenAI API's shape. Request parsing, validation and scheduling
// throw it; the HTTP layer turns it into a status code and {"error": {message, type, param, code}}.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <exception>
#include <string>
#include <utility>

namespace moe::server {

// The error kinds the server reports and their OpenAI `type` strings. The message is an own
// std::string rather than std::runtime_error's: libstdc++ shares that one between copies through a
// reference count, and an error is copied from the scheduler thread to an HTTP worker (the
// sequence's event), where ThreadSanitizer cannot see the count's synchronisation (it reported
// the worker reading the text while the scheduler freed its copy).
struct ApiError : std::exception {
  int status;               // HTTP status
  std::string type;         // "invalid_request_error", "authentication_error", ...
  std::optional<std::string> param;  // the request field at fault, if one is
  std::optional<std::string> code;   // machine-readable detail ("context_length_exceeded", ...)
  std::string message;

  ApiError(int status_, std::string type_, std::string message_, std::optional<std::string> param_ = std::nullopt,
           std::optional<std::string> code_ = std::nullopt)
      : status(status_),
        type(std::move(type_)),
        param(std::move(param_)),
        code(std::move(code_)),
        message(std::move(message_)) {}

  const char* what() const noexcept override { return message.c_str(); }

  // The body OpenAI sends with an error: {"error": {"message", "type", "param", "code"}}, nulls
  // where a field does not apply.
  nlohmann::json body() const {
    nlohmann::json e;
    e["message"] = what();
    e["type"] = type;
    e["param"] = param ? nlohmann::json(*param) : nlohmann::json(nullptr);
    e["code"] = code ? nlohmann::json(*code) : nlohmann::json(nullptr);
    return nlohmann::json{{"error", std::move(e)}};
  }
};

// 400 with `param` naming the field.
template <class... Args>
[[noreturn]] void bad_request(std::string param, fmt::format_string<Args...> f, Args&&... args) {
  throw ApiError(400, "invalid_request_error", fmt::format(f, std::forward<Args>(args)...), std::move(param));
}

// The JSON text of a value for a message, ASCII-escaped and clipped (never the whole of a large
// request field).
inline std::string quote_json(const nlohmann::json& v, std::size_t max_chars = 60) {
  std::string s;
  if (v.is_string()) {
    const auto& str = v.get_ref<const std::string&>();
    s = nlohmann::json(str.substr(0, max_chars)).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    if (str.size() > max_chars) s.insert(s.size() - 1, "...");
    return s;
  }
  if (v.is_structured()) return v.is_array() ? fmt::format("an array of {} elements", v.size()) : "an object";
  s = v.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  return s.size() > max_chars ? s.substr(0, max_chars) + "..." : s;
}

}  // namespace moe::server
