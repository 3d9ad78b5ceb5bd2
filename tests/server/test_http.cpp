// moe-server's HTTP layer on a loopback port (port 0: a free one), talked to with httplib's
// client: routes and authentication, non-streaming and streaming bodies, concurrent clients,
// greedy equality alone vs in a full batch, cancellation by a client that disconnects, and the
// error classes (each a JSON error, the server serving on).
#include "server_test_util.hpp"

#include "moe-server/http_server.hpp"
#include "moe-server/sse_client.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace moe::server;
using server_test::eventually;
using server_test::greedy_alone;
using server_test::summarize_stream;

namespace {

// The server in this process, on a free loopback port, stopped and joined on destruction.
struct LiveServer {
  server_test::Served served;
  std::unique_ptr<HttpServer<moe::backend::cpu>> http;
  std::thread thread;
  int port = -1;

  explicit LiveServer(SchedulerOptions so = {}, ServiceOptions opts = {}, HttpOptions ho = {}) : served(so, opts) {
    ho.port = 0;
    http = std::make_unique<HttpServer<moe::backend::cpu>>(*served.service, ho, 32);
    port = http->bind();
    REQUIRE(port > 0);
    thread = std::thread([this] { http->listen(); });
    for (int i = 0; i < 2000 && !http->running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LiveServer() {
    http->stop();
    thread.join();
  }

  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_read_timeout(120, 0);
    c->set_connection_timeout(10, 0);
    c->set_tcp_nodelay(true);
    return c;
  }
  ServerMetrics& metrics() { return served.scheduler->metrics(); }
};

std::string completion(const std::string& prompt, int max_tokens, bool stream, const std::string& extra = {}) {
  nlohmann::json j{{"model", "shakespeare-moe"}, {"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0},
                   {"stream", stream}};
  std::string body = j.dump();
  if (!extra.empty()) body = body.substr(0, body.size() - 1) + ", " + extra + "}";
  return body;
}

nlohmann::json error_of(const PostResult& r) {
  const auto j = nlohmann::json::parse(r.body);
  REQUIRE(j.contains("error"));
  REQUIRE(j["error"].is_object());
  for (const char* k : {"message", "type", "param", "code"}) CHECK(j["error"].contains(k));
  return j["error"];
}

}  // namespace

TEST_CASE("http: routes, authentication and JSON errors over a socket", "[server][http]") {
  ServiceOptions opts;
  opts.api_key = "k3y";
  LiveServer s({}, opts);
  auto c = s.client();
  const auto health = c->Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(nlohmann::json::parse(health->body)["status"] == "ok");

  const auto no_key = c->Get("/v1/models");
  REQUIRE(no_key);
  CHECK(no_key->status == 401);
  CHECK(no_key->get_header_value("Content-Type") == "application/json");
  CHECK(nlohmann::json::parse(no_key->body)["error"]["code"] == "invalid_api_key");
  const auto models = c->Get("/v1/models", {{"Authorization", "Bearer k3y"}});
  REQUIRE(models);
  CHECK(models->status == 200);
  CHECK(nlohmann::json::parse(models->body)["data"][0]["id"] == "shakespeare-moe");
  const auto metrics = c->Get("/metrics", {{"Authorization", "Bearer k3y"}});
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->body.find("# TYPE moe_inter_token_latency_seconds histogram") != std::string::npos);
  const auto missing = c->Get("/v2/whatever", {{"Authorization", "Bearer k3y"}});
  REQUIRE(missing);
  CHECK(missing->status == 404);
  const auto del = c->Delete("/v1/models", {{"Authorization", "Bearer k3y"}});
  REQUIRE(del);
  CHECK(del->status == 405);

  const auto unauthorized = post_json(*c, "/v1/completions", completion("x", 2, false));
  CHECK(unauthorized.status == 401);
  const auto ok = post_json(*c, "/v1/completions", completion("ROMEO:\nWhat light", 12, false), "k3y");
  REQUIRE(ok.status == 200);
  CHECK(nlohmann::json::parse(ok.body)["choices"][0]["text"] == greedy_alone("ROMEO:\nWhat light", 12));
}

TEST_CASE("http: streaming over SSE equals the non-streaming text; chat streams with a role chunk",
          "[server][http]") {
  LiveServer s;
  auto c = s.client();
  const std::string prompt = "JULIET:\nO Romeo, Romeo";
  const auto full = post_json(*c, "/v1/completions", completion(prompt, 16, false));
  REQUIRE(full.status == 200);
  const std::string text = nlohmann::json::parse(full.body)["choices"][0]["text"];
  CHECK(text == greedy_alone(prompt, 16));

  std::size_t pieces = 0;
  const auto streamed = post_json(*c, "/v1/completions",
                                  completion(prompt, 16, true, R"("stream_options": {"include_usage": true})"), {},
                                  [&](std::string_view) { return ++pieces > 0; });
  REQUIRE(streamed.ok);
  CHECK(streamed.status == 200);
  CHECK(streamed.content_type.rfind("text/event-stream", 0) == 0);
  CHECK(pieces > 2);  // arrived in several pieces, not as one body
  const auto summary = summarize_stream(streamed.body);
  CHECK(summary.text == text);
  CHECK(summary.done);
  CHECK(summary.errors.empty());
  CHECK(summary.usage["completion_tokens"] == 16);

  const auto chat = post_json(*c, "/v1/chat/completions", R"({"model": "shakespeare-moe", "temperature": 0,
      "max_tokens": 10, "stream": true, "messages": [{"role": "system", "content": "A play."},
      {"role": "user", "content": "Speak, friend."}]})");
  REQUIRE(chat.status == 200);
  const auto cs = summarize_stream(chat.body);
  CHECK(cs.role_first);
  CHECK(cs.done);
  CHECK(cs.text == greedy_alone("CHORUS:\nA play.\n\nROMEO:\nSpeak, friend.\n\nJULIET:\n", 10, false, false));
}

TEST_CASE("http: concurrent clients; greedy output alone equals in a full batch", "[server][http]") {
  SchedulerOptions so;
  so.max_sequences = 4;
  so.max_batch_tokens = 16;  // prompts prefilled in pieces beside the others' decoding
  LiveServer s(so);
  const std::vector<std::string> prompts = {"ROMEO:\n", "JULIET:\nWherefore", "KING RICHARD III:\nNow is the winter",
                                            "HAMLET:\nTo be, or not to be", "MERCUTIO:\nA plague", "LEAR:\nBlow, winds"};
  // Alone: one request at a time through the server.
  std::vector<std::string> alone;
  {
    auto c = s.client();
    for (const auto& p : prompts) {
      const auto r = post_json(*c, "/v1/completions", completion(p, 6, false, R"("seed": 1)"));
      REQUIRE(r.status == 200);
      alone.push_back(nlohmann::json::parse(r.body)["choices"][0]["text"]);
    }
  }
  // Together: every prompt at once, half of them streaming, from their own connections.
  // The threads only store what they got: Catch2's assertions are not thread-safe, so the
  // checking (summarize_stream asserts on the framing) happens on this thread after the joins.
  std::vector<std::string> bodies(prompts.size());
  std::vector<int> status(prompts.size(), 0);
  std::vector<std::thread> threads;
  const auto streams = [](std::size_t i) { return i % 2 == 1; };
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] {
      auto c = s.client();
      const auto r = post_json(*c, "/v1/completions", completion(prompts[i], 6, streams(i)));
      status[i] = r.status;
      bodies[i] = r.body;
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO(prompts[i]);
    REQUIRE(status[i] == 200);
    const std::string text = streams(i) ? summarize_stream(bodies[i]).text
                                        : nlohmann::json::parse(bodies[i])["choices"][0]["text"].get<std::string>();
    CHECK(text == alone[i]);
  }
  CHECK(s.metrics().batch_size.quantile(1.0) >= 2.0);
}

TEST_CASE("http: a client that disconnects mid-stream frees its slot", "[server][http]") {
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 512;
  LiveServer s(so);
  auto c = s.client();
  std::size_t events = 0;
  moe::server::SseSplitter split;
  const auto r = post_json(*c, "/v1/completions", completion("ROMEO:", 480, true, R"("ignore_eos": true)"), {},
                           [&](std::string_view bytes) {
                             split.feed(bytes, [&](std::string_view) { ++events; });
                             return events < 3;  // close after three events
                           });
  CHECK_FALSE(r.ok);
  CHECK(r.error == httplib::Error::Canceled);
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0; }));
  CHECK(s.metrics().cancelled_requests.load() == 1);
  CHECK(s.metrics().generated_tokens.load() < 480);

  // A streaming client that gives up while its request still waits in the queue (behind a
  // stream that holds the only slot until we close it).
  std::atomic<bool> release{false};
  auto blocker = std::thread([&] {
    auto c2 = s.client();
    post_json(*c2, "/v1/completions", completion("KING:", 480, true, R"("ignore_eos": true)"), {},
              [&](std::string_view) { return !release.load(); });
  });
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 1; }));
  {
    httplib::Client quitter("127.0.0.1", s.port);
    // 20 ms: gives up while queued. The blocker's 480 tokens are the most n_ctx allows, and the
    // bundled model decodes them in ~170 ms on a 2-core Zen 4 (Release, vectorised MLA), so a
    // 200 ms wait outlasted the blocker and was served.
    quitter.set_read_timeout(0, 20000);
    const auto q = post_json(quitter, "/v1/completions", completion("QUEEN:", 8, true));
    CHECK_FALSE(q.ok);
  }
  CHECK(eventually([&] { return s.metrics().cancelled_requests.load() == 2; }));
  release = true;
  blocker.join();
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0 && s.metrics().queue_depth.load() == 0; }));
  // The server still serves.
  const auto ok = post_json(*c, "/v1/completions", completion("ROMEO:", 3, false));
  CHECK(ok.status == 200);
}

TEST_CASE("http: a non-streaming client that disconnects is cancelled, queued or running", "[server][http]") {
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 512;
  LiveServer s(so);
  // Running: the client gives up after 20 ms of a 500-token request (0.15-0.5 s, however fast
  // the machine: the demo model makes at most ~3,500 tok/s).
  {
    httplib::Client quitter("127.0.0.1", s.port);
    quitter.set_read_timeout(0, 20000);
    const auto q = post_json(quitter, "/v1/completions", completion("ROMEO:", 500, false, R"("ignore_eos": true)"));
    CHECK_FALSE(q.ok);
  }
  CHECK(eventually([&] { return s.metrics().cancelled_requests.load() == 1 && s.metrics().active_sequences.load() == 0; }));
  CHECK(s.metrics().generated_tokens.load() < 500);

  // Queued: behind a stream that holds the only slot until released, a non-streaming request
  // whose client leaves is dropped from the queue (before, it would run once the slot freed).
  // The stream's 480 tokens take 0.14 s on a fast machine, so the quitter gives up after 20 ms;
  // should the stream still have finished before the quitter was cancelled, the case is
  // inconclusive (the quitter may then have run instead of waiting) and only warns.
  std::atomic<bool> release{false}, blocker_done{false};
  auto blocker = std::thread([&] {
    auto c2 = s.client();
    post_json(*c2, "/v1/completions", completion("KING:", 480, true, R"("ignore_eos": true)"), {},
              [&](std::string_view) { return !release.load(); });
    blocker_done = true;
  });
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 1; }));
  {
    httplib::Client quitter("127.0.0.1", s.port);
    quitter.set_read_timeout(0, 20000);
    const auto q = post_json(quitter, "/v1/completions", completion("QUEEN:", 8, false));
    CHECK_FALSE(q.ok);
  }
  const bool cancelled = eventually([&] { return s.metrics().cancelled_requests.load() == 2; });
  if (blocker_done.load()) {
    WARN("the blocking stream finished before the queued request was cancelled: inconclusive");
  } else {
    CHECK(cancelled);
    CHECK(eventually([&] { return s.metrics().queue_depth.load() == 0; }));
    CHECK((s.metrics().active_sequences.load() == 1 || blocker_done.load()));  // the stream still runs
  }
  release = true;
  blocker.join();
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0; }));
  auto c = s.client();
  const auto ok = post_json(*c, "/v1/completions", completion("ROMEO:", 3, false));  // still serving
  CHECK(ok.status == 200);
}

TEST_CASE("http: every error class is a 4xx/5xx JSON error and the server keeps serving", "[server][http]") {
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 512;
  so.max_queue = 0;
  ServiceOptions opts;
  opts.limits.max_tokens = 500;
  opts.max_body_bytes = 2048;
  opts.request_timeout_s = 30;
  HttpOptions ho;
  ho.max_body_bytes = 2048;
  LiveServer s(so, opts, ho);
  auto c = s.client();
  struct Case {
    std::string body;
    int status;
    const char* code;
  };
  std::string long_prompt;
  for (int i = 0; i < 12; ++i) long_prompt += "ROMEO: what light through yonder window breaks? ";
  const std::vector<Case> cases = {
      {"{\"model\": ", 400, "invalid_json"},
      {"{\"model\": \"shakespeare-moe\", \"prompt\": \"\xf0\x9f\x98\"}", 400, "invalid_json"},  // cut UTF-8
      {R"({"model": "shakespeare-moe", "prompt": "\udc00"})", 400, "invalid_json"},
      {R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": "many"})", 400, nullptr},
      {R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": -1})", 400, nullptr},
      {R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": 1e300})", 400, nullptr},
      {R"({"model": "shakespeare-moe", "prompt": "x", "temperature": 1e9})", 400, nullptr},
      {R"({"model": "shakespeare-moe", "prompt": "x", "wat": true})", 400, "unknown_parameter"},
      {R"({"model": "shakespeare-moe", "prompt": "x", "echo": true})", 400, "unsupported_value"},
      {R"({"model": "shakespeare-moe", "prompt": [1, 2, 70000]})", 400, nullptr},
      {R"({"model": "gpt-4o", "prompt": "x"})", 404, "model_not_found"},
      {R"({"model": "shakespeare-moe", "prompt": "x", "max_tokens": 501})", 400, nullptr},
      {R"({"model": "shakespeare-moe", "prompt": ")" + long_prompt + R"(", "max_tokens": 500})", 400,
       "context_length_exceeded"},
      {R"({"model": "shakespeare-moe", "prompt": ")" + std::string(3000, 'x') + R"("})", 413, nullptr},
  };
  for (const auto& k : cases) {
    INFO(k.body.substr(0, 100));
    const auto r = post_json(*c, "/v1/completions", k.body);
    CHECK(r.status == k.status);
    const auto e = error_of(r);
    if (k.code != nullptr) CHECK(e["code"] == k.code);
  }
  // Queue full: the only slot busy and no queue -> 429 for the next request.
  std::atomic<bool> started{false}, release{false};
  auto busy = std::thread([&] {
    auto c2 = s.client();
    post_json(*c2, "/v1/completions", completion("ROMEO:", 500, true, R"("ignore_eos": true)"), {}, [&](std::string_view) {
      started = true;
      return !release.load();  // holds the slot until released, then disconnects
    });
  });
  CHECK(eventually([&] { return started.load() && s.metrics().active_sequences.load() == 1; }));
  const auto full = post_json(*c, "/v1/completions", completion("x", 2, false));
  CHECK(full.status == 429);
  CHECK(error_of(full)["code"] == "queue_full");
  release = true;
  busy.join();
  CHECK(eventually([&] { return s.metrics().active_sequences.load() == 0; }));  // its disconnect freed the slot
  // Still serving, and counting.
  const auto ok = post_json(*c, "/v1/completions", completion("ROMEO:", 2, false));
  CHECK(ok.status == 200);
  const auto m = c->Get("/metrics");
  REQUIRE(m);
  CHECK(m->body.find("moe_http_requests_total{route=\"/v1/completions\",status=\"429\"} 1") != std::string::npos);
  CHECK(m->body.find("moe_requests_rejected_queue_full_total 1") != std::string::npos);
}

TEST_CASE("http: a request past its timeout gets a 503", "[server][http]") {
  SchedulerOptions so;
  so.max_sequences = 1;
  so.n_ctx = 512;
  ServiceOptions opts;
  opts.request_timeout_s = 0.05;
  LiveServer s(so, opts);
  auto c = s.client();
  const auto r = post_json(*c, "/v1/completions", completion("ROMEO:", 500, false, R"("ignore_eos": true)"));
  // 500 tokens take longer than 50 ms even on a fast machine (about 1 ms a token here).
  CHECK(r.status == 503);
  CHECK(error_of(r)["code"] == "timeout");
  const auto streamed = post_json(*c, "/v1/completions", completion("ROMEO:", 500, true, R"("ignore_eos": true)"));
  CHECK(streamed.status == 200);  // the stream had begun: the error comes as an event
  const auto summary = summarize_stream(streamed.body);
  REQUIRE(summary.errors.size() == 1);
  CHECK(summary.errors[0]["code"] == "timeout");
  CHECK(summary.done);
}
