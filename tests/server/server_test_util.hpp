// Shared helpers of the server tests: the bundled model loaded once, a scheduler + service over
// it, and greedy reference continuations computed with moe::generate on a lone Session.
#pragma once

#include <moe/moe.hpp>
#include <moe/server/service.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>
#include <string>
#include <vector>

namespace server_test {

inline std::filesystem::path demo_dir() { return std::filesystem::path(MOE_MODELS_DIR) / "shakespeare-moe"; }

inline std::shared_ptr<const moe::Model> demo_model() {
  static const std::shared_ptr<const moe::Model> m = moe::load_model(demo_dir());
  return m;
}
inline std::shared_ptr<const moe::Tokenizer> demo_tokenizer() {
  static const auto t = std::make_shared<const moe::Tokenizer>(moe::Tokenizer::from_folder(demo_dir()));
  return t;
}

// The greedy text of `prompt` run alone through moe::generate (EOS ignored only if asked).
inline std::string greedy_alone(const std::string& prompt, moe::index_t max_tokens, bool ignore_eos = false,
                                bool add_special_tokens = true) {
  moe::Session session(demo_model(), 512);
  moe::GenerationOptions o;
  o.sampler.greedy = true;
  o.max_new_tokens = max_tokens;
  o.ignore_eos = ignore_eos;
  const auto ids = demo_tokenizer()->encode(prompt, add_special_tokens);
  return moe::generate(session, *demo_tokenizer(), ids, o).text;
}

// A started scheduler and a service over the demo model.
struct Served {
  std::shared_ptr<moe::server::Scheduler> scheduler;
  std::unique_ptr<moe::server::ApiService> service;

  explicit Served(moe::server::SchedulerOptions so = {}, moe::server::ServiceOptions opts = {}) {
    if (so.n_ctx == 0) so.n_ctx = 256;
    scheduler = std::make_shared<moe::server::Scheduler>(demo_model(), demo_tokenizer(), so);
    scheduler->start();
    if (opts.model_id == "model") opts.model_id = "shakespeare-moe";
    service = std::make_unique<moe::server::ApiService>(scheduler, demo_tokenizer(), opts,
                                                        moe::server::folder_chat_renderer(demo_dir()));
  }

  moe::server::HttpResponse post(const std::string& path, const std::string& body, const std::string& auth = {}) {
    return service->handle({"POST", path, auth, body, {}});
  }
  moe::server::HttpResponse get(const std::string& path, const std::string& auth = {}) {
    return service->handle({"GET", path, auth, {}, {}});
  }
};

// Waits (bounded) until `pred` holds.
template <class Pred>
bool eventually(Pred pred, double seconds = 30.0) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

// The "data: " payloads of an SSE byte stream, in order; fails the test on a malformed frame.
inline std::vector<std::string> sse_payloads(const std::string& bytes) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const auto end = bytes.find("\n\n", pos);
    REQUIRE(end != std::string::npos);
    const std::string frame = bytes.substr(pos, end - pos);
    REQUIRE(frame.rfind("data: ", 0) == 0);
    REQUIRE(frame.find('\n') == std::string::npos);  // one data line per event
    out.push_back(frame.substr(6));
    pos = end + 2;
  }
  return out;
}

// The text a stream of completion or chat chunks spells, and the finish reason of choice 0.
struct StreamSummary {
  std::string text;
  std::string finish_reason;
  bool done = false;       // ended with [DONE]
  bool role_first = false; // chat: the first chunk carried role "assistant"
  nlohmann::json usage;    // the usage chunk, if any
  std::vector<nlohmann::json> errors;
  std::size_t chunks = 0;
};

inline StreamSummary summarize_stream(const std::string& bytes) {
  StreamSummary s;
  const auto payloads = sse_payloads(bytes);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i] == "[DONE]") {
      CHECK(i + 1 == payloads.size());
      s.done = true;
      continue;
    }
    const auto j = nlohmann::json::parse(payloads[i]);
    if (j.contains("error")) {
      s.errors.push_back(j["error"]);
      continue;
    }
    ++s.chunks;
    if (j.contains("usage") && !j["usage"].is_null()) s.usage = j["usage"];
    if (j["choices"].empty()) continue;
    const auto& c = j["choices"][0];
    if (j["object"] == "chat.completion.chunk") {
      if (i == 0) s.role_first = c["delta"].value("role", "") == "assistant";
      if (c["delta"].contains("content")) s.text += c["delta"]["content"].get<std::string>();
    } else {
      s.text += c["text"].get<std::string>();
    }
    if (!c["finish_reason"].is_null()) s.finish_reason = c["finish_reason"];
  }
  return s;
}

}  // namespace server_test
