// Tokenizer throughput: encode and decode speed in MB/s of input text on English (a slice of
// tinyshakespeare) and Chinese (benchmarks/data/chinese.txt), single thread, median of several
// runs, with the fixture tokenizers of tests/fixtures/tokenizers (Qwen-, Llama-3- and
// SentencePiece-style pipelines). "cold" loads a fresh tokenizer for every run (empty word
// cache), "warm" reuses one that has seen the text.
//
// Usage: bench_tokenizer [fixtures_dir] [data_dir] [runs]
//   defaults (also for empty arguments): the repository's tests/fixtures/tokenizers and
//   benchmarks/data, 9 runs.
#include <moe/tokenizer/tokenizer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const fs::path here = fs::path(__FILE__).parent_path();
    auto arg = [&](int i) { return argc > i && argv[i][0] != '\0' ? std::string(argv[i]) : std::string(); };
    const fs::path fixtures = !arg(1).empty() ? fs::path(arg(1)) : here / ".." / "tests" / "fixtures" / "tokenizers";
    const fs::path data = !arg(2).empty() ? fs::path(arg(2)) : here / "data";
    const int runs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 9;

    const std::vector<std::pair<std::string, std::string>> texts = {
        {"english", read_file(data / "english.txt")}, {"chinese", read_file(data / "chinese.txt")}};
    const std::vector<std::string> tokenizers = {"bytelevel_qwen", "bytelevel_llama3", "sentencepiece_bpe"};

    std::printf("single thread, median of %d runs; MB = 1e6 bytes of UTF-8 text\n\n", runs);
    std::printf("| tokenizer | text | bytes | tokens | encode cold MB/s | encode warm MB/s | decode MB/s |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (const auto& name : tokenizers) {
      const fs::path dir = fixtures / name;
      if (!fs::exists(dir / "tokenizer.json")) {
        std::printf("| %s | (missing: %s) | | | | | |\n", name.c_str(), dir.string().c_str());
        continue;
      }
      for (const auto& [label, text] : texts) {
        const double mb = static_cast<double>(text.size()) / 1e6;
        std::vector<double> cold, warm, dec;
        std::vector<std::int32_t> ids;
        for (int r = 0; r < runs; ++r) {
          const moe::Tokenizer fresh = moe::Tokenizer::from_folder(dir);
          cold.push_back(mb / seconds([&] { ids = fresh.encode(text); }));
        }
        const moe::Tokenizer tok = moe::Tokenizer::from_folder(dir);
        ids = tok.encode(text);  // warm-up: fills the word cache
        for (int r = 0; r < runs; ++r) warm.push_back(mb / seconds([&] { ids = tok.encode(text); }));
        std::string out;
        for (int r = 0; r < runs; ++r) dec.push_back(mb / seconds([&] { out = tok.decode(ids); }));
        if (out != text) std::printf("(note: %s does not round-trip %s exactly)\n", name.c_str(), label.c_str());
        std::printf("| %s | %s | %zu | %zu | %.1f | %.1f | %.1f |\n", name.c_str(), label.c_str(), text.size(),
                    ids.size(), median(cold), median(warm), median(dec));
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
}
