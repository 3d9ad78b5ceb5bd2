// Threads: what the library promises about concurrency (model.hpp: "many threads may call it at
// once with their own workspaces and caches"; session.hpp: "many Sessions on many threads may
// share one Model"; tokenizer.hpp: every member is const and thread-safe, encode's word cache is
// shared under a mutex; batch.hpp / generate.hpp: cancel flags and stop tokens may be set from
// any thread). Each test runs the same work sequentially and then on several std::threads at
// once, and requires identical results. Run under ThreadSanitizer by scripts/test.sh (the "tsan"
// step, built without OpenMP), where these tests and the cancellation/batch tests of
// test_generation.cpp must report no race.
#include <moe/runtime/batch.hpp>
#include <moe/runtime/generate.hpp>
#include <moe/runtime/session.hpp>
#include <moe/tokenizer/stream_decoder.hpp>

#include "runtime_test_util.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <exception>
#include <fstream>
#include <latch>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace runtime_test;

// A named namespace holding the test cases too: this file shares a unity translation unit with
// test_generation.cpp, whose anonymous-namespace helpers have the same names.
namespace concurrency_test {

constexpr std::size_t kThreads = 4;
constexpr moe::index_t kNewTokens = 8;

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The demo model and its tokenizer when present, else the deepseek_v3 fixture (the demo's
// architecture) with a byte-level tokenizer fixture; kThreads prompts of different lengths.
struct Subject {
  std::shared_ptr<const moe::Model> model;
  std::shared_ptr<const moe::Tokenizer> tokenizer;
  std::filesystem::path tokenizer_file;  // to load a second, cold copy
  std::vector<std::vector<std::int32_t>> prompts;
  std::vector<std::string> texts;  // for the tokenizer test
};

const Subject& subject() {
  static const Subject s = [] {
    Subject r;
    std::vector<std::int32_t> ids;
    const std::string text = read_text(demo_fixture_dir() / "heldout_head.txt");
    if (have_demo()) {
      r.model = demo_model();
      r.tokenizer = demo_tokenizer();
      r.tokenizer_file = demo_dir() / "tokenizer.json";
      ids = r.tokenizer->encode(text, false);
    } else {
      WARN("models/shakespeare-moe not present: the concurrency tests run on the deepseek_v3 fixture");
      r.model = moe::load_model(std::filesystem::path(MOE_FIXTURES_DIR) / "models" / "deepseek_v3");
      r.tokenizer = fixture_tokenizer();
      r.tokenizer_file = std::filesystem::path(MOE_FIXTURES_DIR) / "tokenizers" / "bytelevel_gpt2" / "tokenizer.json";
      const auto vocab = static_cast<std::uint32_t>(r.model->config().vocab_size);
      std::uint32_t x = 4321;
      for (int i = 0; i < 200; ++i) {
        x = x * 1664525u + 1013904223u;
        ids.push_back(static_cast<std::int32_t>((x >> 8) % vocab));
      }
    }
    REQUIRE(ids.size() > 100);
    for (std::size_t i = 0; i < kThreads; ++i) {
      const auto begin = ids.begin() + static_cast<std::ptrdiff_t>(i * 20);
      r.prompts.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(3 + 5 * i));  // 3, 8, 13, 18 tokens
    }
    // Lines of the held-out text, a few hundred bytes each.
    std::istringstream in(text);
    std::string line, chunk;
    while (std::getline(in, line) && r.texts.size() < 24) {
      chunk += line + "\n";
      if (chunk.size() > 200) {
        r.texts.push_back(std::move(chunk));
        chunk.clear();
      }
    }
    REQUIRE(r.texts.size() >= 8);
    return r;
  }();
  return s;
}

// Request i: greedy for even i, seeded sampling for odd i unless greedy_only (the sampler is per
// generation, so a seed gives the same tokens on any thread; a batch's logits differ from a lone
// session's by rounding, so batches compare greedy runs only).
moe::GenerationOptions options_for(std::size_t i, bool greedy_only = false) {
  moe::GenerationOptions o;
  o.max_new_tokens = kNewTokens;
  o.ignore_eos = true;
  if (greedy_only || i % 2 == 0) {
    o.sampler.greedy = true;
  } else {
    o.sampler.temperature = 0.8f;
    o.sampler.top_k = 20;
    o.sampler.seed = 1000 + i;
  }
  return o;
}

moe::GenerationResult run_alone(std::size_t i, bool greedy_only = false) {
  moe::Session session(subject().model, 64);
  return moe::generate(session, *subject().tokenizer, subject().prompts[i], options_for(i, greedy_only));
}

// Runs body(i) for i in [0, n) on n threads released together; rethrows the first exception on
// the calling thread (Catch2's assertions are not thread-safe, so threads only record).
template <class F>
void on_threads(std::size_t n, F body) {
  std::latch start(static_cast<std::ptrdiff_t>(n));
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        body(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}


TEST_CASE("concurrency: sessions on several threads sharing one model give the sequential results",
          "[concurrency]") {
  std::vector<moe::GenerationResult> sequential;
  for (std::size_t i = 0; i < kThreads; ++i) sequential.push_back(run_alone(i));

  std::vector<moe::GenerationResult> concurrent(kThreads);
  on_threads(kThreads, [&](std::size_t i) { concurrent[i] = run_alone(i); });

  for (std::size_t i = 0; i < kThreads; ++i) {
    INFO("request " << i);
    CHECK(sequential[i].tokens.size() == static_cast<std::size_t>(kNewTokens));
    CHECK(concurrent[i].tokens == sequential[i].tokens);
    CHECK(concurrent[i].text == sequential[i].text);
    CHECK(concurrent[i].stop_reason == sequential[i].stop_reason);
  }

  // The same logits, not only the same argmax: every thread prefills the same prompt.
  const auto& prompt = subject().prompts[kThreads - 1];
  moe::Session reference(subject().model, 64);
  const auto ref_span = reference.prefill(prompt);
  const std::vector<float> ref(ref_span.begin(), ref_span.end());
  std::vector<std::vector<float>> logits(kThreads);
  on_threads(kThreads, [&](std::size_t i) {
    moe::Session s(subject().model, 64);
    const auto l = s.prefill(prompt);
    logits[i].assign(l.begin(), l.end());
  });
  for (std::size_t i = 0; i < kThreads; ++i) CHECK(logits[i] == ref);  // parallel.hpp: thread-count independent
}

TEST_CASE("concurrency: one cold tokenizer shared by several threads encodes and decodes like one thread",
          "[concurrency][tokenizer]") {
  const auto& texts = subject().texts;
  std::vector<std::vector<std::int32_t>> expected;
  for (const auto& t : texts) expected.push_back(subject().tokenizer->encode(t, true));

  // A fresh copy (its word cache is empty), so the threads fill the shared cache concurrently;
  // each thread walks the texts in a different order.
  const auto cold = moe::Tokenizer::from_file(subject().tokenizer_file);
  std::vector<std::vector<std::vector<std::int32_t>>> got(kThreads, std::vector<std::vector<std::int32_t>>(texts.size()));
  std::vector<std::vector<std::string>> decoded(kThreads, std::vector<std::string>(texts.size()));
  std::vector<std::vector<std::string>> streamed(kThreads, std::vector<std::string>(texts.size()));
  on_threads(kThreads, [&](std::size_t t) {
    for (std::size_t k = 0; k < texts.size(); ++k) {
      const std::size_t r = (k + 7 * t) % texts.size();  // rotated, and reversed on odd threads
      const std::size_t j = t % 2 == 0 ? r : texts.size() - 1 - r;
      got[t][j] = cold.encode(texts[j], true);
      decoded[t][j] = cold.decode(got[t][j], true);
      moe::StreamDecoder stream(cold, true);
      for (const std::int32_t id : got[t][j]) streamed[t][j] += stream.push(id);
      streamed[t][j] += stream.flush();
    }
  });
  for (std::size_t t = 0; t < kThreads; ++t) {
    for (std::size_t j = 0; j < texts.size(); ++j) {
      INFO("thread " << t << " text " << j);
      CHECK(got[t][j] == expected[j]);
      CHECK(decoded[t][j] == subject().tokenizer->decode(expected[j], true));
      CHECK(streamed[t][j] == decoded[t][j]);
    }
  }
}

TEST_CASE("concurrency: a batch on one thread, sessions on others, a request cancelled from another thread",
          "[concurrency][batch][cancel]") {
  std::vector<moe::GenerationResult> alone;
  for (std::size_t i = 0; i < kThreads; ++i) alone.push_back(run_alone(i, /*greedy_only=*/true));

  std::atomic<bool> cancel{false};
  std::atomic<int> cancelled_tokens{0};
  std::map<moe::RequestId, moe::GenerationResult> batch_results;
  std::vector<moe::RequestId> ids;
  std::vector<moe::GenerationResult> session_results(kThreads);

  // Thread 0 drives a BatchGenerator over requests 0..kThreads-1, where request 0 runs until it
  // is cancelled; thread 1 cancels it after its 2nd token (the callback waits for the flag, so
  // exactly 2 tokens); threads 2.. run requests on their own Sessions meanwhile.
  on_threads(kThreads, [&](std::size_t t) {
    if (t == 0) {
      moe::BatchOptions bo;
      bo.max_sequences = 3;
      bo.n_ctx = 64;
      moe::BatchGenerator batch(subject().model, subject().tokenizer, bo);
      for (std::size_t i = 0; i < kThreads; ++i) {
        moe::BatchRequest r;
        r.prompt = subject().prompts[i];
        r.options = options_for(i, /*greedy_only=*/true);
        if (i == 0) {
          r.options.max_new_tokens = 40;
          r.options.cancel = &cancel;
          r.on_token = [&](std::int32_t id, std::string_view) {
            if (id != moe::kNoToken && cancelled_tokens.fetch_add(1) + 1 == 2) {
              while (!cancel.load()) std::this_thread::yield();
            }
            return true;
          };
        }
        ids.push_back(batch.submit(std::move(r)));
      }
      batch.run();
      for (auto& [id, r] : batch.take_finished()) batch_results[id] = std::move(r);
    } else if (t == 1) {
      while (cancelled_tokens.load() < 2) std::this_thread::yield();
      cancel.store(true);
    } else {
      session_results[t] = run_alone(t, /*greedy_only=*/true);
    }
  });

  REQUIRE(batch_results.size() == kThreads);
  const auto& first = batch_results[ids[0]];
  CHECK(first.stop_reason == moe::StopReason::kCancelled);
  CHECK(first.tokens == std::vector<std::int32_t>(alone[0].tokens.begin(), alone[0].tokens.begin() + 2));
  for (std::size_t i = 1; i < kThreads; ++i) {
    INFO("request " << i);
    CHECK(batch_results[ids[i]].tokens == alone[i].tokens);
  }
  for (std::size_t t = 2; t < kThreads; ++t) {
    INFO("session thread " << t);
    CHECK(session_results[t].tokens == alone[t].tokens);
  }
}

}  // namespace concurrency_test
