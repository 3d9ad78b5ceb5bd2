// moe-conformance DIR...: checks fixture folders against their transformers references. A folder
// with reference.json + config.json is a model case (logits of every prompt position within 2e-3,
// last top-5 ids, 12-token greedy continuation); one with tokenizer.json + expected.json is a
// tokenizer case. Prints one line per case and "N passed, M failed"; exits 1 on any failure.
#include "case_result.hpp"
#include "model_case.hpp"

#if __has_include("tokenizer_case.hpp")
#include "tokenizer_case.hpp"
#define MOE_CONFORMANCE_HAS_TOKENIZER 1
#endif

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

moe::conformance::CaseResult run_case(const std::filesystem::path& dir) {
  using moe::conformance::CaseResult;
  CaseResult r;
  r.name = dir.filename().string();
  if (r.name.empty()) r.name = dir.parent_path().filename().string();
  try {
    if (!std::filesystem::is_directory(dir)) {
      r.detail = fmt::format("{} is not a folder", dir.string());
      return r;
    }
    if (moe::conformance::is_model_case(dir)) return moe::conformance::check_model_case(dir);
    if (std::filesystem::is_regular_file(dir / "tokenizer.json") &&
        std::filesystem::is_regular_file(dir / "expected.json")) {
#if defined(MOE_CONFORMANCE_HAS_TOKENIZER)
      return moe::conformance::check_tokenizer_case(dir);
#else
      r.detail = "tokenizer support not built";
      return r;
#endif
    }
    r.detail = "neither a model case (config.json + reference.json) nor a tokenizer case "
               "(tokenizer.json + expected.json)";
  } catch (const std::exception& e) {
    r.passed = false;
    r.detail = e.what();
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FIXTURE_DIR...\n", argv[0]);
    return 2;
  }
  int passed = 0, failed = 0;
  for (int i = 1; i < argc; ++i) {
    const auto r = run_case(argv[i]);
    std::printf("%s %s  %s\n", r.passed ? "PASS" : "FAIL", r.name.c_str(), r.detail.c_str());
    std::fflush(stdout);
    (r.passed ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
