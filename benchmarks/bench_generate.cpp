// End-to-end throughput of the runtime on a model folder (default: the bundled demo model):
// prompt processing (one prefill pass), token generation (greedy decode steps), and batched
// generation through BatchGenerator. Median of several runs after a warm-up; markdown table.
//   bench_generate [--model DIR] [--backend cpu|reference|cuda] [--threads N] [--prompt-tokens 128]
//                  [--gen-tokens 64] [--batch 4] [--reps 5] [--pin]
// Prints the weights' bytes read per decode token beside the figures (the roofline's input).
#include "../examples/common/backend.hpp"
#include <moe/bench/prompt_ids.hpp>

#include <moe/moe.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

moe::index_t parse_count(std::string_view flag, std::string_view text) {
  moe::index_t v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  moe::require(r.ec == std::errc() && r.ptr == text.data() + text.size() && v > 0, moe::ErrorCode::kInvalidArgument,
               "{}: '{}' is not a positive integer", flag, text);
  return v;
}

using moe::bench::make_ids;

struct Options {
  std::string model_dir = "models/shakespeare-moe";
  std::string backend = "cpu";
  moe::index_t prompt_tokens = 128, gen_tokens = 64, batch = 4, reps = 5;
  bool pin = false;
};

template <class Backend>
int run(const Options& o) {
  const std::string& model_dir = o.model_dir;
  const moe::index_t prompt_tokens = o.prompt_tokens, gen_tokens = o.gen_tokens, batch = o.batch, reps = o.reps;
  const bool pin = o.pin;
  const auto model = moe::load_model<Backend>(model_dir);
  const auto& cfg = model->config();
  const moe::index_t n_ctx = prompt_tokens + gen_tokens;
  const auto prompt = make_ids(prompt_tokens, cfg.vocab_size, 1);

  moe::BasicSession<Backend> session(model, n_ctx, prompt_tokens);
  std::vector<double> pp, tg;
  for (moe::index_t r = 0; r <= reps; ++r) {  // run 0 is the warm-up
    session.reset();
    moe::Stopwatch w;
    auto logits = session.prefill(prompt);
    const double t_pp = w.seconds();
    w.restart();
    for (moe::index_t i = 0; i < gen_tokens; ++i) logits = session.decode(moe::sampling::argmax(logits));
    const double t_tg = w.seconds();
    if (r > 0) {
      pp.push_back(static_cast<double>(prompt_tokens) / t_pp);
      tg.push_back(static_cast<double>(gen_tokens) / t_tg);
    }
  }

  // Batched: `batch` sequences of 16-token prompts, gen_tokens each, greedy, ignoring EOS.
  auto tokenizer = std::make_shared<const moe::Tokenizer>(moe::Tokenizer::from_folder(model_dir));
  std::vector<double> bt;
  for (moe::index_t r = 0; r <= reps; ++r) {
    moe::BatchOptions bo;
    bo.max_sequences = batch;
    bo.n_ctx = 16 + gen_tokens;
    moe::BasicBatchGenerator<Backend> gen(model, tokenizer, bo);
    for (moe::index_t s = 0; s < batch; ++s) {
      moe::BatchRequest req;
      req.prompt = make_ids(16, cfg.vocab_size, static_cast<std::uint32_t>(100 + s));
      req.options.sampler.greedy = true;
      req.options.ignore_eos = true;
      req.options.max_new_tokens = gen_tokens;
      gen.submit(std::move(req));
    }
    moe::Stopwatch w;
    gen.run();
    if (r > 0) bt.push_back(static_cast<double>(batch * gen_tokens) / w.seconds());
  }

  const auto& bytes = model->weight_bytes();
  std::fputs(fmt::format("model {} ({}, {} layers, {} experts top-{}), backend {}, {} threads{}; weights {:.1f} MB, "
                         "{:.1f} MB read per decode token\n\n",
                         model_dir, cfg.architecture, cfg.n_layers, cfg.n_experts, cfg.top_k, Backend::name,
                         moe::max_threads(), pin ? ", pinned" : "", bytes.total / 1e6, bytes.per_token / 1e6)
                 .c_str(),
             stdout);
  std::fputs("| test | tok/s (median) | min | max |\n|---|---:|---:|---:|\n", stdout);
  auto row = [](const std::string& name, const std::vector<double>& v) {
    std::fputs(fmt::format("| {} | {:.1f} | {:.1f} | {:.1f} |\n", name, median(v),
                           *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()))
                   .c_str(),
               stdout);
  };
  row(fmt::format("pp{}", prompt_tokens), pp);
  row(fmt::format("tg{}", gen_tokens), tg);
  row(fmt::format("batch {} x tg{} (total)", batch, gen_tokens), bt);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o;
    int threads = 0;
    for (int i = 1; i < argc; ++i) {
      const std::string_view flag = argv[i];
      auto value = [&]() -> std::string_view {
        moe::require(i + 1 < argc, moe::ErrorCode::kInvalidArgument, "{} needs a value", flag);
        return argv[++i];
      };
      if (flag == "--model") o.model_dir = value();
      else if (flag == "--backend") o.backend = value();
      else if (flag == "--threads") threads = static_cast<int>(parse_count(flag, value()));
      else if (flag == "--prompt-tokens") o.prompt_tokens = parse_count(flag, value());
      else if (flag == "--gen-tokens") o.gen_tokens = parse_count(flag, value());
      else if (flag == "--batch") o.batch = parse_count(flag, value());
      else if (flag == "--reps") o.reps = parse_count(flag, value());
      else if (flag == "--pin") o.pin = true;
      else moe::fail(moe::ErrorCode::kInvalidArgument, "unknown option '{}'", flag);
    }
    if (threads > 0) moe::set_num_threads(threads);
    if (o.pin) moe::pin_threads();
    return moe::cli::with_backend(o.backend, [&](auto tag) { return run<decltype(tag)>(o); });
  } catch (const moe::Error& e) {
    std::fputs(fmt::format("bench_generate: {}\n", e.what()).c_str(), stderr);
    return 2;
  }
}
