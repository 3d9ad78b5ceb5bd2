// The server's LoRA adapters: several resident unmerged on one base model, a request's "model"
// picking one (or the base by its id or by no "model"), an unknown name a 404 in OpenAI's error
// shape while the server keeps serving; each request's text equals its sequence run alone.
#include "server_test_util.hpp"

#include <moe/io/load_lora_model.hpp>
#include <moe/io/lora_adapter.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace lora_api_test {

namespace fs = std::filesystem;
using moe::server::HttpResponse;

const fs::path kBase = fs::path(MOE_FIXTURES_DIR) / "models" / "qwen2_moe_sparse_step";
const fs::path kLora = fs::path(MOE_FIXTURES_DIR) / "lora";

std::shared_ptr<const moe::Model> multi_model() {
  static const auto m = [] {
    std::vector<moe::io::LoraAdapter> ads;
    ads.push_back(moe::io::load_lora_adapter(kLora / "qwen2_moe_sparse_step_lora_attn_experts", "attn"));
    ads.push_back(moe::io::load_lora_adapter(kLora / "qwen2_moe_sparse_step_lora_mlp_rslora", "mlp"));
    return moe::load_model_with_adapters(kBase, ads);
  }();
  return m;
}
std::shared_ptr<const moe::Tokenizer> tokenizer() {
  static const auto t = std::make_shared<const moe::Tokenizer>(
      moe::Tokenizer::from_file(fs::path(MOE_FIXTURES_DIR) / "tokenizers" / "bytelevel_gpt2" / "tokenizer.json"));
  return t;
}

const std::vector<std::int32_t> kPrompt{5, 17, 200, 3, 99, 42, 7};

// The greedy text of kPrompt alone in a Session with `adapter` (unset: the base).
std::string alone(std::optional<std::string> adapter, moe::index_t n) {
  moe::Session s(multi_model(), 64);
  moe::GenerationOptions o;
  o.sampler.greedy = true;
  o.max_new_tokens = n;
  o.ignore_eos = true;
  o.adapter = std::move(adapter);
  return moe::generate(s, *tokenizer(), kPrompt, o).text;
}

std::string body(const std::string& model_field) {
  return "{" + model_field + R"("prompt": [5, 17, 200, 3, 99, 42, 7], "max_tokens": 8, "temperature": 0, "ignore_eos": true})";
}

struct ServedLora {
  std::shared_ptr<moe::server::Scheduler> scheduler;
  std::unique_ptr<moe::server::ApiService> service;
  ServedLora() {
    moe::server::SchedulerOptions so;
    so.n_ctx = 64;
    so.max_sequences = 4;
    scheduler = std::make_shared<moe::server::Scheduler>(multi_model(), tokenizer(), so);
    scheduler->start();
    moe::server::ServiceOptions opts;
    opts.model_id = "base";
    opts.adapters = multi_model()->adapter_names();
    service = std::make_unique<moe::server::ApiService>(scheduler, tokenizer(), opts,
                                                        moe::server::folder_chat_renderer(kBase));
  }
  HttpResponse post(const std::string& b) { return service->handle({"POST", "/v1/completions", {}, b, {}}); }
};

}  // namespace lora_api_test

TEST_CASE("service: the request's model picks a resident LoRA adapter", "[server][service][lora]") {
  using namespace lora_api_test;
  ServedLora sv;
  const auto text_of = [](const HttpResponse& r) {
    INFO(r.body);
    REQUIRE(r.status == 200);
    return nlohmann::json::parse(r.body)["choices"][0]["text"].get<std::string>();
  };
  const std::string base = alone(std::nullopt, 8), attn = alone("attn", 8), mlp = alone("mlp", 8);
  CHECK(base != attn);
  CHECK(base != mlp);
  CHECK(text_of(sv.post(body(R"("model": "attn", )"))) == attn);
  CHECK(text_of(sv.post(body(R"("model": "mlp", )"))) == mlp);
  CHECK(text_of(sv.post(body(R"("model": "base", )"))) == base);
  CHECK(text_of(sv.post(body(""))) == base);  // no "model": the base
  const auto echoed = nlohmann::json::parse(sv.post(body(R"("model": "attn", )")).body);
  CHECK(echoed["model"] == "attn");

  // Several requests in flight together, each with its own adapter (one batch).
  std::vector<std::thread> threads;
  std::vector<std::string> got(6);
  const std::vector<std::string> fields{R"("model": "attn", )", "", R"("model": "mlp", )",
                                        R"("model": "attn", )", R"("model": "base", )", R"("model": "mlp", )"};
  for (std::size_t i = 0; i < fields.size(); ++i) {
    threads.emplace_back([&, i] {
      const auto r = sv.post(body(fields[i]));
      got[i] = r.status == 200 ? nlohmann::json::parse(r.body)["choices"][0]["text"].get<std::string>() : r.body;
    });
  }
  for (auto& t : threads) t.join();
  const std::vector<std::string> want{attn, base, mlp, attn, base, mlp};
  CHECK(got == want);

  // /v1/models lists the base and each adapter.
  const auto models = nlohmann::json::parse(sv.service->handle({"GET", "/v1/models", {}, {}, {}}).body);
  REQUIRE(models["data"].size() == 3);
  CHECK(models["data"][1]["id"] == "attn");
  CHECK(models["data"][1]["parent"] == "base");
  CHECK(sv.service->handle({"GET", "/v1/models/mlp", {}, {}, {}}).status == 200);

  // An unknown name: a 404 naming it and what is served; the server keeps serving.
  const auto bad = sv.post(body(R"("model": "legal", )"));
  CHECK(bad.status == 404);
  const auto j = nlohmann::json::parse(bad.body);
  CHECK(j["error"]["code"] == "model_not_found");
  CHECK(j["error"]["param"] == "model");
  const std::string msg = j["error"]["message"];
  CHECK(msg.find("legal") != std::string::npos);
  CHECK(msg.find("attn") != std::string::npos);
  CHECK(text_of(sv.post(body(R"("model": "mlp", )"))) == mlp);
}
