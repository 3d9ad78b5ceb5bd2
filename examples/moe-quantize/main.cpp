// moe-quantize IN OUT --type TYPE: a Hugging Face checkpoint folder (or a model GGUF) to a GGUF
// that llama.cpp loads (its metadata keys and tensor names), every matrix converted to TYPE
// (q8_0 q4_0 q4_k q5_k q6_k iq4_xs q4_k_m mxfp4 bf16 f16 f32) while the file is written. Prints the
// tensors that fell back to another type (rows not whole blocks) and a summary; a progress bar
// on a terminal. Exit status 0, or 2 with "moe-quantize: message" on any error.
#include <moe/io/gguf_export.hpp>

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

constexpr const char* kUsage =
    "usage: moe-quantize IN OUT --type q8_0|q4_0|q4_k|q5_k|q6_k|iq4_xs|q4_k_m|mxfp4|bf16|f16|f32\n"
    "  (mxfp4: expert banks in MXFP4, the other matrices q8_0)\n"
    "  IN   a Hugging Face folder (config.json + *.safetensors) or a model .gguf\n"
    "  OUT  the GGUF file to write\n";

int run(int argc, char** argv) {
  std::vector<std::string> positional;
  moe::io::GgufExportOptions options;
  bool have_type = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--type") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "moe-quantize: --type needs a value\n%s", kUsage);
        return 2;
      }
      options.type = argv[++i];
      have_type = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "moe-quantize: unknown option '%s'\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2 || !have_type) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  if (tty) {
    options.progress = [](std::size_t done, std::size_t total, std::string_view name) {
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(kWidth * done / (total == 0 ? 1 : total));
      std::printf("\r[%s%s] %zu/%zu %-40.40s", std::string(filled, '#').c_str(),
                  std::string(kWidth - filled, ' ').c_str(), done, total, std::string(name).c_str());
      if (done == total) std::printf("\n");
      std::fflush(stdout);
    };
  }
  const auto report = moe::io::export_gguf(positional[0], positional[1], options);
  for (const auto& f : report.fallbacks) std::printf("fallback %s\n", f.c_str());
  std::string types;
  for (const auto& [t, n] : report.types) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", n, t);
  std::printf("wrote %s: %zu tensors (%s), %.2f MiB of tensor data%s\n", positional[1].c_str(), report.tensors,
              types.c_str(), static_cast<double>(report.bytes) / (1024.0 * 1024.0),
              report.tokenizer ? ", tokenizer metadata" : ", no tokenizer (none in the input)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moe-quantize: %s\n", e.what());
    return 2;
  }
}
