// moe-server: an OpenAI-compatible HTTP server for one model, with continuous batching
// (/v1/completions, /v1/chat/completions, /v1/models, /health, /metrics).
#include "common/backend.hpp"
#include "common/cli.hpp"
#include "moe-server/http_server.hpp"

#include <moe/io/load_lora_model.hpp>
#include <moe/io/lora_adapter.hpp>
#include <moe/moe.hpp>
#include <moe/server/service.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr const char* kUsage = R"(usage: moe-server --model DIR|FILE.gguf [options]

  --model DIR            Hugging Face model folder (config.json, *.safetensors, tokenizer.json)
                         or a GGUF file (llama.cpp's model files; tokenizer from its metadata)
  --model-name NAME      the model id clients send and /v1/models lists (default: the folder's name)
  --lora NAME=PATH       a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors);
                         repeat for several. All stay resident, unmerged, on the one base model:
                         a request's "model" picks NAME (its own adapter per sequence, batched
                         together with others), the base model's id or no "model" runs the base,
                         an unknown name is a 404. /v1/models lists the base and every NAME.
                         (--backend cuda: one adapter only, merged into the weights at load, and
                         served as NAME.)
  --host ADDR            address to bind (default 127.0.0.1: loopback only)
  --port N               TCP port (default 8080; 0 picks a free one, printed at start)
  --api-key KEY          require "Authorization: Bearer KEY" on every route but /health
  --parallel N           batch slots: sequences decoded together (default 8)
  --ctx N                tokens per sequence, prompt + completion (default: min(max_position_embeddings, 4096))
  --kv-tokens N          KV budget: prompt + max_tokens reserved by the sequences in flight,
                         and the tokens the KV caches hold in all (allocated as sequences
                         are admitted; default: parallel x ctx); a request that can never
                         fit is a 400, one that cannot fit now waits in the queue
  --batch-tokens N       tokens per forward pass (default: max(parallel, min(ctx, 512)))
  --max-queue N          sequences waiting for a slot before requests get 429 (default 64)
  --max-tokens-limit N   largest max_tokens a request may ask for (default 4096)
  --timeout S            per-request limit in seconds, queueing included (default 600; 503 past it)
  --max-body-bytes N     largest request body (default 4194304; 413 past it)
  --http-threads N       connection threads (default: parallel + max-queue + 8)
  --threads N            OpenMP threads of the forward pass (default: all)
  --backend NAME         cpu (default), reference or, in a CUDA build, cuda
  --help                 this text

Chat requests are rendered with the model's chat template (tokenizer_config.json's
"chat_template" or chat_template.jinja; a plain "Role: content" fallback when it has none).
OpenMP threads wait passively between forward passes
(OMP_WAIT_POLICY=passive unless the environment sets it), leaving the cores to the connection
threads. SIGINT or SIGTERM stops the server. Exit status: 0 after a clean
stop, 2 on any error at start.
)";

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true); }

struct Args {
  std::string model, model_name, host = "127.0.0.1", api_key, backend = "cpu";
  std::vector<std::string> lora;  // NAME=PATH, in order
  int port = 8080, threads = 0, http_threads = 0;
  moe::index_t parallel = 8, ctx = 0, kv_tokens = 0, batch_tokens = 0;
  std::size_t max_queue = 64, max_body = std::size_t{4} << 20;
  std::int64_t max_tokens_limit = 4096;
  double timeout = 600.0;
  bool help = false;
};

Args parse_args(int argc, char** argv) {
  using moe::cli::parse_number;
  constexpr auto kMaxCtx = static_cast<moe::index_t>(moe::limits::kMaxContext);
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    auto value = [&]() -> std::string_view {
      moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
      return argv[++i];
    };
    if (flag == "--help" || flag == "-h") a.help = true;
    else if (flag == "--model") a.model = value();
    else if (flag == "--model-name") a.model_name = value();
    else if (flag == "--lora") {
      const std::string v(value());
      moe::require(v.find('=') != std::string::npos && v.front() != '=' && v.back() != '=',
                   moe::ErrorCode::kInvalidArgument, "--lora {}: expected NAME=PATH", v);
      const std::string name = v.substr(0, v.find('='));
      for (const auto& other : a.lora) {
        moe::require(other.substr(0, other.find('=')) != name, moe::ErrorCode::kInvalidArgument,
                     "--lora: two adapters named '{}'", name);
      }
      a.lora.push_back(v);
    }
    else if (flag == "--host") a.host = value();
    else if (flag == "--port") a.port = parse_number<int>(flag, value(), 0, 65535);
    else if (flag == "--api-key") a.api_key = value();
    else if (flag == "--parallel")
      a.parallel = parse_number<moe::index_t>(flag, value(), 1, static_cast<moe::index_t>(moe::limits::kMaxParallelSequences));
    else if (flag == "--ctx") a.ctx = parse_number<moe::index_t>(flag, value(), 1, kMaxCtx);
    else if (flag == "--kv-tokens") a.kv_tokens = parse_number<moe::index_t>(flag, value(), 1, kMaxCtx * 64);
    else if (flag == "--batch-tokens") a.batch_tokens = parse_number<moe::index_t>(flag, value(), 1, kMaxCtx);
    else if (flag == "--max-queue") a.max_queue = parse_number<std::size_t>(flag, value(), 0, 1 << 20);
    else if (flag == "--max-tokens-limit") a.max_tokens_limit = parse_number<std::int64_t>(flag, value(), 1, kMaxCtx);
    else if (flag == "--timeout") a.timeout = parse_number<double>(flag, value(), 0.001, 86400.0 * 365);
    else if (flag == "--max-body-bytes") a.max_body = parse_number<std::size_t>(flag, value(), 64, std::size_t{1} << 30);
    else if (flag == "--http-threads") a.http_threads = parse_number<int>(flag, value(), 1, 4096);
    else if (flag == "--threads") a.threads = moe::cli::parse_threads(flag, value());
    else if (flag == "--backend") a.backend = value();
    else moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}' (see --help)", flag);
  }
  if (a.help) return a;
  moe::require(!a.model.empty(), moe::ErrorCode::kInvalidArgument, "--model DIR|FILE.gguf is required (see --help)");
  moe::cli::check_backend_name(a.backend);
  return a;
}

template <class Backend>
int serve(const Args& a) {
  namespace ms = moe::server;
  std::shared_ptr<const moe::BasicModel<Backend>> model;
  std::string merged_name;  // a device backend's one adapter, merged and served under its name
  std::vector<moe::io::LoraAdapter> adapters;
  for (const auto& spec : a.lora) {
    const auto eq = spec.find('=');
    adapters.push_back(moe::io::load_lora_adapter(spec.substr(eq + 1), spec.substr(0, eq)));
  }
  if (adapters.empty()) {
    model = moe::load_model<Backend>(a.model);
  } else if constexpr (moe::is_host_memory_v<typename Backend::memory>) {
    model = moe::load_model_with_adapters<Backend>(a.model, adapters);  // resident, unmerged
  } else {
    moe::require(adapters.size() == 1, moe::ErrorCode::kUnsupported,
                 "--backend {}: one --lora adapter only (merged at load; unmerged adapters need a host backend)",
                 Backend::name);
    merged_name = adapters[0].name;
    model = moe::load_model_with_lora<Backend>(a.model, adapters);
  }
  auto tokenizer = std::make_shared<const moe::Tokenizer>(moe::io::load_tokenizer(a.model));
  const moe::GenerationDefaults defaults = moe::read_generation_config(a.model);

  ms::SchedulerOptions so;
  so.max_sequences = a.parallel;
  so.n_ctx = a.ctx;
  so.kv_tokens = a.kv_tokens;
  so.max_batch_tokens = a.batch_tokens;
  so.max_queue = a.max_queue;
  auto scheduler = std::make_shared<ms::BasicScheduler<Backend>>(model, tokenizer, so, defaults.eos_token_ids);

  ms::ServiceOptions opts;
  opts.model_id = merged_name.empty() ? a.model_name : merged_name;
  if (opts.model_id.empty()) {
    opts.model_id = std::filesystem::path(a.model).lexically_normal().filename().string();
    if (opts.model_id.empty()) opts.model_id = std::filesystem::path(a.model).lexically_normal().parent_path().filename().string();
  }
  opts.adapters = model->adapter_names();
  for (const auto& name : opts.adapters) {
    moe::require(name != opts.model_id, moe::ErrorCode::kInvalidArgument,
                 "--lora {}: the adapter's name is the base model's id (pick another, or set --model-name)", name);
  }
  opts.api_key = a.api_key;
  opts.limits.max_tokens = a.max_tokens_limit;
  opts.request_timeout_s = a.timeout;
  opts.max_body_bytes = a.max_body;
  opts.defaults = defaults;
  opts.eos_token_ids = defaults.eos_token_ids;
  // Chat requests are rendered with the folder's chat template (or the plain fallback).
  ms::BasicApiService<Backend> service(scheduler, tokenizer, opts, ms::folder_chat_renderer(a.model));

  ms::HttpOptions ho;
  ho.host = a.host;
  ho.port = a.port;
  ho.threads = a.http_threads;
  ho.max_body_bytes = a.max_body;
  const int default_threads = static_cast<int>(std::min<std::size_t>(4096, a.parallel + a.max_queue + 8));
  ms::HttpServer<Backend> http(service, ho, default_threads);
  const int port = http.bind();
  moe::require(port > 0, moe::ErrorCode::kIo, "cannot listen on {}:{}", a.host, a.port);

  scheduler->start();
  const auto& cfg = model->config();
  std::string adapter_list;
  for (const auto& name : opts.adapters) adapter_list += (adapter_list.empty() ? ", LoRA adapters " : ", ") + name;
  std::fputs(fmt::format("moe-server: model {} ({}, {} layers, {} experts, top-{}) as \"{}\"{}, {} slots x {} tokens, "
                         "KV budget {} tokens, queue {}, {} threads, backend {}\n",
                         a.model, cfg.architecture, cfg.n_layers, cfg.n_experts, cfg.top_k, opts.model_id, adapter_list,
                         scheduler->max_sequences(), scheduler->n_ctx(), scheduler->kv_tokens(), a.max_queue,
                         moe::max_threads(), Backend::name)
                 .c_str(),
             stderr);
  std::fputs(fmt::format("moe-server: listening on http://{}:{}\n", a.host, port).c_str(), stdout);
  std::fflush(stdout);

  std::thread watcher([&] {
    while (!g_stop.load() ) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    http.stop();
  });
  const bool ok = http.listen();
  g_stop.store(true);
  watcher.join();
  scheduler->stop();
  std::fputs("moe-server: stopped\n", stderr);
  return ok ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  moe::server::reexec_with_passive_openmp(argv);
  return moe::cli::run_tool("moe-server", [&] {
    const Args a = parse_args(argc, argv);
    if (a.help) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.threads > 0) moe::set_num_threads(a.threads);
    std::signal(SIGPIPE, SIG_IGN);  // a client that disconnects mid-write is a failed write, not a signal
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    return moe::cli::with_backend(a.backend, [&](auto tag) { return serve<decltype(tag)>(a); });
  });
}
