// moe-conformance [--backend cpu|reference|cuda] [--tolerance T] DIR|DIR/model.gguf...: checks
// fixture folders (or a model GGUF, with reference.json / reference.safetensors beside it) against their
// transformers references, running the model on the chosen backend (default cpu). A folder
// with reference.json + config.json is a model case (logits of every prompt position within 2e-3,
// last top-5 ids, 12-token greedy continuation); one with tokenizer.json + expected.json is a
// tokenizer case. Prints one line per case and "N passed, M failed"; exits 1 on any failure.
#include "case_result.hpp"
#include "common/backend.hpp"
#include "model_case.hpp"

#if __has_include("tokenizer_case.hpp")
#include "tokenizer_case.hpp"
#define MOE_CONFORMANCE_HAS_TOKENIZER 1
#endif

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

namespace {

moe::conformance::CaseResult run_case(const std::filesystem::path& dir, const std::string& backend, float tolerance, bool logits_only) {
  using moe::conformance::CaseResult;
  CaseResult r;
  r.name = dir.filename().string();
  if (r.name.empty()) r.name = dir.parent_path().filename().string();
  try {
    if (dir.extension() == ".gguf" && std::filesystem::is_regular_file(dir)) {
      // A model GGUF: the reference files are beside it.
      return moe::cli::with_backend(backend, [&](auto tag) {
        return moe::conformance::check_model_case<decltype(tag)>(dir, tolerance, logits_only);
      });
    }
    if (!std::filesystem::is_directory(dir)) {
      r.detail = fmt::format("{} is not a folder", dir.string());
      return r;
    }
    if (moe::conformance::is_model_case(dir)) {
      return moe::cli::with_backend(backend, [&](auto tag) {
        return moe::conformance::check_model_case<decltype(tag)>(dir, tolerance, logits_only);
      });
    }
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
  std::string backend = "cpu";
  float tolerance = moe::conformance::kLogitTolerance;
  bool logits_only = false;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--backend" && i + 1 < argc) {
      backend = argv[++i];
    } else if (a == "--logits-only") {
      logits_only = true;  // quantized files: logits within --tolerance only, no top-5 / greedy checks
    } else if (a == "--tolerance" && i + 1 < argc) {
      // A looser logit bound for quantized GGUF files (the default is DESIGN.md's 2e-3).
      tolerance = std::strtof(argv[++i], nullptr);
      if (!(tolerance > 0.0f && tolerance < 1e3f)) {
        std::fprintf(stderr, "moe-conformance: --tolerance must be a positive number\n");
        return 2;
      }
    } else {
      dirs.push_back(a);
    }
  }
  if (dirs.empty()) {
    std::fprintf(stderr, "usage: %s [--backend %s] [--tolerance T] [--logits-only] FIXTURE_DIR|MODEL.gguf...\n", argv[0],
                 std::string(moe::cli::kBackendNames).c_str());
    return 2;
  }
  try {
    moe::cli::check_backend_name(backend);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe-conformance: %s\n", e.what());
    return 2;
  }
  if (!moe::cli::backend_available(backend)) {
    std::printf("SKIPPED: no device for backend %s\n", backend.c_str());
    return moe::cli::kExitNoDevice;
  }
  int passed = 0, failed = 0;
  for (const auto& dir : dirs) {
    const auto r = run_case(dir, backend, tolerance, logits_only);
    std::printf("%s %s  %s\n", r.passed ? "PASS" : "FAIL", r.name.c_str(), r.detail.c_str());
    std::fflush(stdout);
    (r.passed ? passed : failed) += 1;
  }
  std::printf("%d passed, %d failed (backend %s)\n", passed, failed, backend.c_str());
  return failed == 0 ? 0 : 1;
}
