// The server's elastic-experts request field (validated into 400s in OpenAI's error shape,
// per-request budgets mixed in one batch) and its expert telemetry (/metrics series and the
// /stats/experts.svg heatmap).
#include "server_test_util.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace expert_api_test {

using moe::server::HttpResponse;
using server_test::Served;

nlohmann::json json_of(const HttpResponse& r) { return nlohmann::json::parse(r.body); }

// Greedy text of `prompt` alone in a Session with `budget` (unset: none).
std::string greedy_with(const std::string& prompt, moe::index_t n, std::optional<moe::ExpertBudget> budget) {
  moe::Session session(server_test::demo_model(), 512);
  moe::GenerationOptions o;
  o.sampler.greedy = true;
  o.max_new_tokens = n;
  o.expert_budget = budget;
  const auto ids = server_test::demo_tokenizer()->encode(prompt, true);
  return moe::generate(session, *server_test::demo_tokenizer(), ids, o).text;
}

std::string body(const std::string& budget, bool stream = false) {
  return std::string(R"({"model": "shakespeare-moe", "prompt": "ROMEO:\nWhat light", "max_tokens": 10, "temperature": 0)") +
         (budget.empty() ? "" : ", \"expert_budget\": " + budget) + (stream ? ", \"stream\": true" : "") + "}";
}

}  // namespace expert_api_test

TEST_CASE("service: expert_budget is validated into 400s naming the field", "[server][service][budget]") {
  using namespace expert_api_test;
  Served sv;
  const auto k = sv.scheduler->model().config().top_k;
  for (const std::string& bad : std::vector<std::string>{"3", "\"two\"", "[1]", R"({"top_k": -1})", R"({"top_k": 1.5})",
                                R"({"top_k": )" + std::to_string(k + 1) + "}", R"({"threshold": 1.5})",
                                R"({"threshold": -0.1})", R"({"threshold": "high"})", R"({"min_k": 99})",
                                R"({"renormalize": 1})", R"({"topk": 1})"}) {
    INFO(bad);
    const auto r = sv.post("/v1/completions", body(bad));
    CHECK(r.status == 400);
    const auto j = json_of(r);
    REQUIRE(j.contains("error"));
    CHECK(j["error"]["type"] == "invalid_request_error");
    CHECK(j["error"]["param"].get<std::string>().rfind("expert_budget", 0) == 0);
    CHECK(j["error"]["message"].get<std::string>().find("expert") != std::string::npos);
  }
  // The chat endpoint knows the field too; null means "none".
  const auto chat = sv.post("/v1/chat/completions", R"({"model": "shakespeare-moe", "max_tokens": 2,
      "messages": [{"role": "user", "content": "Speak."}], "expert_budget": {"threshold": 2}})");
  CHECK(chat.status == 400);
  CHECK(sv.post("/v1/completions", body("null")).status == 200);
  CHECK(sv.get("/health").status == 200);  // still serving
}

TEST_CASE("service: per-request expert budgets, mixed in one batch, equal each request run alone",
          "[server][service][budget]") {
  using namespace expert_api_test;
  Served sv;
  const std::string prompt = "ROMEO:\nWhat light";
  const std::string full = greedy_with(prompt, 10, std::nullopt);
  const std::string one = greedy_with(prompt, 10, moe::ExpertBudget{1, 0.0f, 0, moe::ExpertBudget::Renormalize::kAuto});
  const std::string thr = greedy_with(prompt, 10, moe::ExpertBudget{0, 0.8f, 1, moe::ExpertBudget::Renormalize::kNever});
  CHECK(json_of(sv.post("/v1/completions", body(R"({"top_k": 2})")))["choices"][0]["text"] == full);  // k' = k
  CHECK(one != full);  // the budget really applied (top-1 changes this continuation)
  // Three streams at once: the loop runs them in the same forward passes, each with its budget.
  const auto a = sv.post("/v1/completions", body(R"({"top_k": 1})", true));
  const auto b = sv.post("/v1/completions", body("", true));
  const auto c = sv.post("/v1/completions", body(R"({"threshold": 0.8, "min_k": 1, "renormalize": false})", true));
  REQUIRE((a.stream && b.stream && c.stream));
  std::string ba, bb, bc;
  a.stream->drain([&](std::string_view d) { ba += d; return true; });
  b.stream->drain([&](std::string_view d) { bb += d; return true; });
  c.stream->drain([&](std::string_view d) { bc += d; return true; });
  CHECK(server_test::summarize_stream(ba).text == one);
  CHECK(server_test::summarize_stream(bb).text == full);
  CHECK(server_test::summarize_stream(bc).text == thr);
}

TEST_CASE("service: /metrics has the expert series and /stats/experts.svg the heatmap", "[server][service][experts]") {
  using namespace expert_api_test;
  moe::server::ServiceOptions opts;
  opts.api_key = "k";
  Served sv({}, opts);
  REQUIRE(sv.post("/v1/completions", body(""), "Bearer k").status == 200);
  const auto& model = *server_test::demo_model();
  std::string first_moe;
  for (std::size_t l = 0; l < model.weights().layers.size(); ++l) {
    if (model.weights().layers[l].moe) {
      first_moe = std::to_string(l);
      break;
    }
  }
  REQUIRE(!first_moe.empty());
  // Published by the loop once the batch drained.
  REQUIRE(server_test::eventually([&] {
    return sv.get("/metrics", "Bearer k").body.find("moe_expert_routed_slots_total{layer=\"" + first_moe + "\"}") !=
           std::string::npos;
  }));
  const std::string m = sv.get("/metrics", "Bearer k").body;
  CHECK(m.find("# TYPE moe_expert_activation_rate gauge") != std::string::npos);
  CHECK(m.find("moe_expert_activation_rate{layer=\"" + first_moe + "\"}") != std::string::npos);
  CHECK(m.find("moe_expert_load_max_over_mean{layer=") != std::string::npos);
  CHECK(m.find("moe_expert_load_cv{layer=") != std::string::npos);
  CHECK(m.find("moe_expert_tokens_total{layer=\"" + first_moe + "\",expert=\"0\"}") != std::string::npos);
  CHECK(m.find("moe_expert_share{layer=") != std::string::npos);
  CHECK(m.find("moe_expert_mean_weight{layer=") != std::string::npos);
  CHECK(m.find("moe_expert_tokens_total{layer=\"0\",") == std::string::npos);  // layer 0 is dense
  const auto svg = sv.get("/stats/experts.svg", "Bearer k");
  CHECK(svg.status == 200);
  CHECK(svg.content_type == "image/svg+xml");
  CHECK(svg.body.rfind("<svg", 0) == 0);
  CHECK(svg.body.find(">layer " + first_moe + "</text>") != std::string::npos);
  CHECK(sv.get("/stats/experts.svg").status == 401);  // behind the API key like /metrics
  CHECK(sv.post("/stats/experts.svg", "{}", "Bearer k").status == 405);
}
