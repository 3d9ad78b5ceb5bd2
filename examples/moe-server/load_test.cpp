// moe-server-load: a bounded load test of moe-server over loopback. It starts the server in this
// process on a free 127.0.0.1 port (or uses one already running with --port), runs C concurrent
// streaming clients that send R requests each, and reports requests/s, generated tokens/s, time
// to first token and inter-token latency (P50/P99), and the process's RSS before and after. Every
// response is checked: status 200, well-formed SSE ending in [DONE], one id per response,
// finish_reason "length" after exactly max_tokens tokens, and the same text as the greedy
// reference of its prompt (so nothing is lost, truncated or mixed up between clients).
#include "common/cli.hpp"
#include "moe-server/http_server.hpp"
#include "moe-server/sse_client.hpp"

#include <moe/moe.hpp>
#include <moe/server/service.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: moe-server-load --model DIR [options]

  --model DIR          model folder; the server runs in this process on a free loopback port
  --port N             instead of --model: a moe-server already listening on 127.0.0.1:N
  --model-name NAME    the model id to send (default: the folder's name, or the first of /v1/models)
  --clients C          concurrent streaming clients (default 64)
  --requests R         requests per client (default 4)
  --max-tokens N       tokens per request, EOS ignored (default 32)
  --parallel N         in-process server: batch slots (default 16)
  --threads N          OpenMP threads of the forward pass (default: all)
  --help               this text

Exit status: 0 when every response was complete and correct, 1 otherwise, 2 on an error.
)";

using Clock = std::chrono::steady_clock;

const char* const kPrompts[] = {"ROMEO:\n", "JULIET:\nO Romeo, Romeo", "KING RICHARD III:\nNow is the winter",
                                "HAMLET:\nTo be, or not to be", "First Citizen:\nBefore we proceed any further",
                                "MERCUTIO:\nA plague o' both your houses", "PORTIA:\nThe quality of mercy",
                                "LEAR:\nBlow, winds, and crack your cheeks"};
constexpr std::size_t kNumPrompts = std::size(kPrompts);

double rss_mb() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0.0;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(v.size() - 1, q * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

std::string body_for(const std::string& model, std::size_t prompt, int max_tokens, bool stream) {
  return nlohmann::json{{"model", model},       {"prompt", kPrompts[prompt]}, {"max_tokens", max_tokens},
                        {"temperature", 0},     {"ignore_eos", true},          {"stream", stream}}
      .dump();
}

struct Outcome {
  bool ok = false;
  std::string why;
  double ttft = 0.0;
  std::vector<double> gaps;
  int tokens = 0;
};

// One streaming request, checked against the expected text.
Outcome run_one(httplib::Client& client, const std::string& model, std::size_t prompt, int max_tokens,
                const std::string& expected) {
  Outcome o;
  const auto start = Clock::now();
  auto last = start;
  bool first = true;
  std::string text, id, finish, usage_error;
  bool done = false, bad_frame = false, mixed = false;
  int content_chunks = 0;
  moe::server::SseSplitter split;
  const auto r = moe::server::post_json(client, "/v1/completions", body_for(model, prompt, max_tokens, true), {},
                                        [&](std::string_view bytes) {
                                          split.feed(bytes, [&](std::string_view data) {
                                            if (data == "[DONE]") {
                                              done = true;
                                              return;
                                            }
                                            const auto j = nlohmann::json::parse(data, nullptr, false);
                                            if (j.is_discarded() || !j.contains("choices")) {
                                              bad_frame = true;
                                              return;
                                            }
                                            if (id.empty()) id = j.value("id", "");
                                            mixed = mixed || j.value("id", "") != id;
                                            if (j["choices"].empty()) return;
                                            const auto& c = j["choices"][0];
                                            const std::string piece = c.value("text", "");
                                            if (!c["finish_reason"].is_null()) finish = c["finish_reason"];
                                            if (piece.empty()) return;
                                            const auto now = Clock::now();
                                            if (first) {
                                              o.ttft = std::chrono::duration<double>(now - start).count();
                                              first = false;
                                            } else {
                                              o.gaps.push_back(std::chrono::duration<double>(now - last).count());
                                            }
                                            last = now;
                                            text += piece;
                                            ++content_chunks;
                                          });
                                          return true;
                                        });
  o.tokens = content_chunks;
  if (!r.ok) o.why = fmt::format("transport error {}", static_cast<int>(r.error));
  else if (r.status != 200) o.why = fmt::format("status {}: {}", r.status, r.body.substr(0, 200));
  else if (bad_frame) o.why = "malformed SSE frame";
  else if (!done) o.why = "no [DONE]";
  else if (!split.empty()) o.why = "trailing bytes after the last event";
  else if (mixed) o.why = "chunks of different ids in one response";
  else if (finish != "length") o.why = fmt::format("finish_reason '{}'", finish);
  else if (text != expected) o.why = fmt::format("text differs from the reference: '{}' vs '{}'", text, expected);
  else o.ok = true;
  return o;
}

int run(int argc, char** argv) {
  using moe::cli::parse_number;
  std::string model_dir, model_name;
  int port = 0, clients = 64, requests = 4, max_tokens = 32, threads = 0;
  moe::index_t parallel = 16;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (flag == "--model") model_dir = value();
    else if (flag == "--port") port = parse_number<int>(flag, value(), 1, 65535);
    else if (flag == "--model-name") model_name = value();
    else if (flag == "--clients") clients = parse_number<int>(flag, value(), 1, 1024);
    else if (flag == "--requests") requests = parse_number<int>(flag, value(), 1, 100000);
    else if (flag == "--max-tokens") max_tokens = parse_number<int>(flag, value(), 1, 4096);
    else if (flag == "--parallel") parallel = parse_number<moe::index_t>(flag, value(), 1, 4096);
    else if (flag == "--threads") threads = moe::cli::parse_threads(flag, value());
    else moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}' (see --help)", flag);
  }
  moe::require(!model_dir.empty() || port != 0, moe::ErrorCode::kInvalidArgument, "give --model DIR or --port N");
  if (threads > 0) moe::set_num_threads(threads);

  namespace ms = moe::server;
  std::shared_ptr<ms::Scheduler> scheduler;
  std::unique_ptr<ms::ApiService> service;
  std::unique_ptr<ms::HttpServer<moe::backend::cpu>> http;
  std::thread server_thread;
  if (!model_dir.empty()) {
    auto model = moe::load_model(model_dir);
    auto tokenizer = std::make_shared<const moe::Tokenizer>(moe::Tokenizer::from_folder(model_dir));
    ms::SchedulerOptions so;
    so.max_sequences = parallel;
    so.max_queue = static_cast<std::size_t>(clients) + 8;
    so.n_ctx = std::min<moe::index_t>(512, model->config().max_position_embeddings == 0 ? 512 : model->config().max_position_embeddings);
    scheduler = std::make_shared<ms::Scheduler>(model, tokenizer, so);
    ms::ServiceOptions opts;
    opts.model_id = model_name.empty() ? std::filesystem::path(model_dir).lexically_normal().filename().string() : model_name;
    if (opts.model_id.empty()) opts.model_id = "model";
    model_name = opts.model_id;
    service = std::make_unique<ms::ApiService>(scheduler, tokenizer, opts, ms::folder_chat_renderer(model_dir));
    ms::HttpOptions ho;
    ho.port = 0;
    http = std::make_unique<ms::HttpServer<moe::backend::cpu>>(*service, ho, clients + static_cast<int>(parallel) + 8);
    port = http->bind();
    moe::require(port > 0, moe::ErrorCode::kIo, "cannot bind a loopback port");
    scheduler->start();
    server_thread = std::thread([&] { http->listen(); });
    while (!http->running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  httplib::Client probe("127.0.0.1", port);
  probe.set_read_timeout(300, 0);
  if (model_name.empty()) {
    const auto m = probe.Get("/v1/models");
    moe::require(m && m->status == 200, moe::ErrorCode::kIo, "GET /v1/models failed on port {}", port);
    model_name = nlohmann::json::parse(m->body)["data"][0]["id"];
  }

  // The reference text of each prompt: one non-streaming request at a time (also the warm-up).
  std::vector<std::string> expected;
  for (std::size_t p = 0; p < kNumPrompts; ++p) {
    const auto r = ms::post_json(probe, "/v1/completions", body_for(model_name, p, max_tokens, false));
    moe::require(r.ok && r.status == 200, moe::ErrorCode::kIo, "reference request failed: {} {}", r.status, r.body);
    expected.push_back(nlohmann::json::parse(r.body)["choices"][0]["text"]);
  }
  const double rss_before = rss_mb();
  std::atomic<double> rss_peak{rss_before};

  std::mutex mu;
  std::vector<double> ttft, gaps;
  std::vector<std::string> failures;
  std::atomic<int> ok{0};
  std::atomic<std::size_t> failures_count{0};
  std::atomic<long> tokens{0};
  std::atomic<bool> finished{false};
  const int total = clients * requests;
  std::vector<double> rss_at_quarter;  // RSS when 1/4, 1/2 and 3/4 of the requests are done
  std::thread sampler([&] {
    while (!finished.load()) {
      const double r = rss_mb();
      if (r > rss_peak.load()) rss_peak.store(r);
      const int done = ok.load() + static_cast<int>(failures_count.load());
      while (rss_at_quarter.size() < 3 && done * 4 >= total * static_cast<int>(rss_at_quarter.size() + 1))
        rss_at_quarter.push_back(r);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  const auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int c = 0; c < clients; ++c) {
    pool.emplace_back([&, c] {
      httplib::Client client("127.0.0.1", port);
      client.set_read_timeout(600, 0);
      client.set_connection_timeout(30, 0);
      client.set_tcp_nodelay(true);
      for (int i = 0; i < requests; ++i) {
        const std::size_t p = static_cast<std::size_t>(c * requests + i) % kNumPrompts;
        Outcome o = run_one(client, model_name, p, max_tokens, expected[p]);
        tokens += o.tokens;
        const std::lock_guard lock(mu);
        if (o.ok) {
          ++ok;
          ttft.push_back(o.ttft);
          gaps.insert(gaps.end(), o.gaps.begin(), o.gaps.end());
        } else {
          failures.push_back(fmt::format("client {} request {}: {}", c, i, o.why));
          ++failures_count;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  finished.store(true);
  sampler.join();
  const double rss_after = rss_mb();

  std::fputs(fmt::format("moe-server-load: {} clients x {} requests = {} streaming requests of {} tokens, port {}\n",
                         clients, requests, total, max_tokens, port)
                 .c_str(),
             stdout);
  std::fputs(fmt::format("  complete and correct: {} / {}\n", ok.load(), total).c_str(), stdout);
  std::fputs(fmt::format("  wall {:.2f} s: {:.1f} requests/s, {:.0f} generated tokens/s\n", seconds, total / seconds,
                         static_cast<double>(tokens.load()) / seconds)
                 .c_str(),
             stdout);
  std::fputs(fmt::format("  time to first token: P50 {:.1f} ms, P99 {:.1f} ms\n", 1e3 * percentile(ttft, 0.5),
                         1e3 * percentile(ttft, 0.99))
                 .c_str(),
             stdout);
  std::fputs(fmt::format("  inter-token latency: P50 {:.2f} ms, P99 {:.2f} ms ({} gaps)\n", 1e3 * percentile(gaps, 0.5),
                         1e3 * percentile(gaps, 0.99), gaps.size())
                 .c_str(),
             stdout);
  if (scheduler) {
    std::string quarters;
    for (const double r : rss_at_quarter) quarters += fmt::format("{:.1f} MB, ", r);
    std::fputs(fmt::format("  RSS: {:.1f} MB after warm-up; at 1/4, 1/2, 3/4 of the requests: {}peak {:.1f} MB, "
                           "{:.1f} MB at the end\n",
                           rss_before, quarters, rss_peak.load(), rss_after)
                   .c_str(),
               stdout);
    auto& m = scheduler->metrics();
    std::fputs(fmt::format("  server: {} forward passes, batch size P50 {:.0f} / max {:.0f}, queue depth now {}\n",
                           m.forward_passes.load(), m.batch_size.quantile(0.5), m.batch_size.quantile(1.0),
                           m.queue_depth.load())
                   .c_str(),
               stdout);
  }
  for (std::size_t i = 0; i < failures.size() && i < 10; ++i) std::fputs(("  FAIL " + failures[i] + "\n").c_str(), stdout);
  probe.stop();  // its keep-alive connection would hold a server thread until the idle timeout
  if (http) {
    http->stop();
    server_thread.join();
    scheduler->stop();
  }
  return ok.load() == total ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  moe::server::reexec_with_passive_openmp(argv);
  return moe::cli::run_tool("moe-server-load", [&] { return run(argc, argv); });
}
