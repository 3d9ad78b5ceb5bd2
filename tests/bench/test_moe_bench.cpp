// moe-bench's option lists and llama-bench parser; write_safetensors -> SafetensorsFile; synthetic
// weights -> export_hf_folder / export_gguf -> load_model gives the same logits.
#include "moe-bench/compare.hpp"
#include "moe-bench/options.hpp"

#include <moe/bench/int8_probe.hpp>
#include <moe/bench/synthetic_shapes.hpp>
#include <moe/io/gguf_export.hpp>
#include <moe/io/hf_export.hpp>
#include <moe/io/safetensors.hpp>
#include <moe/io/safetensors_writer.hpp>
#include <moe/model/checkpoint_tensors.hpp>
#include <moe/model/synthetic.hpp>
#include <moe/moe.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

using moe::index_t;
using moe::bench_tool::parse_count_list;
using moe::bench_tool::parse_llama_bench;

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> n{0};
    path = std::filesystem::temp_directory_path() /
           ("moe_bench_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + "_" +
            std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const moe::Error& e) {
    return e.what();
  }
  return "";
}

moe::bench_tool::Options parse(std::vector<const char*> args) {
  args.insert(args.begin(), "moe-bench");
  return moe::bench_tool::parse_options(static_cast<int>(args.size()), args.data());
}

// Last-position logits of a 5-token prompt.
template <class M>
std::vector<float> logits_of(const M& model) {
  moe::Session s(model, 16);
  const std::vector<std::int32_t> ids{1, 7, 3, 42, 5};
  const auto l = s.prefill(ids);
  return {l.begin(), l.end()};
}

}  // namespace

TEST_CASE("moe-bench comma lists", "[bench]") {
  CHECK(parse_count_list("-p", "128", 1, 4096) == std::vector<index_t>{128});
  CHECK(parse_count_list("-p", "128,512,1", 1, 4096) == std::vector<index_t>{128, 512, 1});
  CHECK_THAT(error_of([] { (void)parse_count_list("-p", "", 1, 10); }), Catch::Contains("-p: empty list"));
  CHECK_THAT(error_of([] { (void)parse_count_list("-p", "8,,9", 1, 10); }), Catch::Contains("'8,,9' has an empty element"));
  CHECK_THAT(error_of([] { (void)parse_count_list("-p", "8,", 1, 10); }), Catch::Contains("empty element"));
  CHECK_THAT(error_of([] { (void)parse_count_list("-n", "4,x", 1, 10); }), Catch::Contains("-n: 'x' is not an integer"));
  CHECK_THAT(error_of([] { (void)parse_count_list("-n", "0", 1, 10); }), Catch::Contains("-n: '0' is not an integer in [1, 10]"));
  CHECK_THAT(error_of([] { (void)parse_count_list("-n", "-3", 1, 10); }), Catch::Contains("'-3'"));
}

TEST_CASE("moe-bench options", "[bench]") {
  const auto o = parse({"-m", "x.gguf", "-p", "128,512", "-n", "32", "-b", "4,8", "-r", "3", "-o", "json"});
  CHECK(o.model == "x.gguf");
  CHECK(o.n_prompt == std::vector<index_t>{128, 512});
  CHECK(o.n_gen == std::vector<index_t>{32});
  CHECK(o.n_batch == std::vector<index_t>{4, 8});
  CHECK(o.reps == 3);
  CHECK(o.output == "json");
  const auto d = parse({"-m", "x"});  // llama-bench's defaults
  CHECK(d.n_prompt == std::vector<index_t>{512});
  CHECK(d.n_gen == std::vector<index_t>{128});
  CHECK(d.reps == 5);
  const auto w = parse({"--synthetic", "olmoe-1b-7b", "--write-gguf", "x.gguf"});  // write only
  CHECK(w.n_prompt.empty());
  CHECK(w.n_gen.empty());
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "-o", "xml"}); }), Catch::Contains("-o: 'xml' is not one of md, json"));
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "--backend", "tpu"}); }), Catch::Contains("--backend: 'tpu'"));
  CHECK_THAT(error_of([] { (void)parse({"-p", "8"}); }), Catch::Contains("give a model"));
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "--synthetic", "y"}); }), Catch::Contains("give one of them"));
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "-r"}); }), Catch::Contains("-r needs a value"));
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "--write-hf", "d"}); }), Catch::Contains("write --synthetic weights"));
  CHECK_THAT(error_of([] { (void)parse({"--synthetic", "x", "--type", "q9"}); }), Catch::Contains("--type: 'q9'"));
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "-p", "8", "-b", "4"}); }), Catch::Contains("-b needs -n"));
  CHECK(parse({"-m", "x", "-n", "4", "--expert-top-k", "4,2"}).expert_top_k == std::vector<index_t>{4, 2});
  CHECK(parse({"-m", "x", "-n", "4"}).expert_top_k.empty());
  CHECK_THAT(error_of([] { (void)parse({"-m", "x", "-p", "8", "--expert-top-k", "2"}); }),
             Catch::Contains("--expert-top-k needs -n"));
}

TEST_CASE("llama-bench output parser", "[bench]") {
  const std::string json = R"(ggml_cuda_init: found 1 device
[
  {"model_type": "qwen3moe 30B.A3B Q8_0", "n_prompt": 128, "n_gen": 0, "avg_ts": 42.5, "stddev_ts": 0.5},
  {"model_type": "qwen3moe 30B.A3B Q8_0", "n_prompt": 0, "n_gen": 32, "avg_ts": 10.25, "stddev_ts": 0.1}
]
)";
  CHECK(parse_llama_bench(json, 128, 0) == Approx(42.5));
  CHECK(parse_llama_bench(json, 0, 32) == Approx(10.25));
  CHECK_FALSE(parse_llama_bench(json, 512, 0).has_value());  // no such row, and more than one
  CHECK(parse_llama_bench(R"([{"n_prompt": 1, "n_gen": 1, "avg_ts": 7}])", 128, 0) == Approx(7.0));  // the only row
  const std::string jsonl = "{\"n_prompt\": 512, \"n_gen\": 0, \"avg_ts\": 99.5}\n{\"n_prompt\": 0, \"n_gen\": 128, \"avg_ts\": 12}\n";
  CHECK(parse_llama_bench(jsonl, 512, 0) == Approx(99.5));
  CHECK(parse_llama_bench(jsonl, 0, 128) == Approx(12.0));
  const std::string md = R"(| model                          |       size |     params | backend    | threads |          test |                  t/s |
| ------------------------------ | ---------: | ---------: | ---------- | ------: | ------------: | -------------------: |
| qwen3moe 30B.A3B Q8_0          |   1.59 GiB |     1.54 B | CPU        |       2 |         pp128 |         42.80 ± 0.31 |
| qwen3moe 30B.A3B Q8_0          |   1.59 GiB |     1.54 B | CPU        |       2 |          tg32 |         10.01 ± 0.02 |
| qwen3moe 30B.A3B Q8_0          |   1.59 GiB |     1.54 B | CPU        |       2 |   tg32 @ d512 |          9.50 ± 0.02 |
)";
  CHECK(parse_llama_bench(md, 128, 0) == Approx(42.80));
  CHECK(parse_llama_bench(md, 0, 32) == Approx(10.01));
  CHECK_FALSE(parse_llama_bench(md, 512, 0).has_value());
  CHECK_FALSE(parse_llama_bench("", 128, 0).has_value());
  CHECK_FALSE(parse_llama_bench("[ not json ]\n{broken\n| a | b |\n", 128, 0).has_value());
  CHECK_FALSE(parse_llama_bench(R"([{"n_prompt": "x", "avg_ts": "fast"}])", 128, 0).has_value());
}

TEST_CASE("--compare commands", "[bench]") {
  const auto ok = moe::bench_tool::run_command("echo hello; echo world");
  CHECK(ok.status == 0);
  CHECK(ok.output == "hello\nworld\n");
  CHECK(moe::bench_tool::last_line(ok.output) == "world");
  CHECK(moe::bench_tool::run_command("exit 3").status == 3);
}

TEST_CASE("the int8 peak is the prefill limit of the formats whose cpu GEMM multiplies in int8", "[bench]") {
  namespace kc = moe::kernels::cpu_quant;
  namespace q = moe::quant;
  CHECK(moe::bench::cpu_prefill_is_int8(moe::DType::q8_0) == kc::kIgemm<q::BlockQ8_0>);
  CHECK(moe::bench::cpu_prefill_is_int8(moe::DType::q4_0) == kc::kIgemm<q::BlockQ4_0>);
  CHECK(moe::bench::cpu_prefill_is_int8(moe::DType::q4_k) == kc::kIgemm<q::BlockQ4_K>);
  CHECK(moe::bench::cpu_prefill_is_int8(moe::DType::q6_k) == kc::kIgemm<q::BlockQ6_K>);
  CHECK_FALSE(moe::bench::cpu_prefill_is_int8(moe::DType::q5_k));  // dequantized into the f32 GEMM
  CHECK_FALSE(moe::bench::cpu_prefill_is_int8(moe::DType::bf16));
  CHECK_FALSE(moe::bench::cpu_prefill_is_int8(moe::DType::f32));
  const double peak = moe::bench::measure_int8_peak(20000, 1);
#if defined(__AVX2__)
  CHECK(kc::kIgemm<q::BlockQ8_0>);
  CHECK(std::isfinite(peak));
  CHECK(peak > 0.0);
#else
  CHECK(peak == 0.0);
#endif
}

TEST_CASE("write_safetensors is read back by SafetensorsFile", "[bench]") {
  TempDir dir;
  const std::vector<moe::bf16> a{moe::to_bf16(1.0f), moe::to_bf16(-2.5f), moe::to_bf16(3.0f)};  // odd count
  const std::vector<float> b{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f};
  std::vector<moe::io::SafetensorsTensor> t(3);
  t[0] = {"a", moe::DType::bf16, {3}, std::as_bytes(std::span(a)), {}};
  t[1] = {"b.weight", moe::DType::f32, {2, 3}, {}, [&] {
            const auto s = std::as_bytes(std::span(b));
            return std::vector<std::byte>(s.begin(), s.end());
          }};
  t[2] = {"empty", moe::DType::f16, {0, 4}, {}, {}};
  moe::io::write_safetensors(dir.path / "m.safetensors", t);
  const auto f = moe::io::SafetensorsFile::open(dir.path / "m.safetensors");
  REQUIRE(f.find("a") != nullptr);
  REQUIRE(f.find("b.weight") != nullptr);
  REQUIRE(f.find("empty") != nullptr);
  CHECK(f.find("a")->dtype_name == "BF16");
  CHECK(f.find("a")->shape == std::vector<index_t>{3});
  CHECK(std::memcmp(f.find("a")->bytes.data(), a.data(), 6) == 0);
  CHECK(f.find("b.weight")->shape == std::vector<index_t>{2, 3});
  CHECK(std::memcmp(f.find("b.weight")->bytes.data(), b.data(), b.size() * 4) == 0);
  CHECK(f.find("b.weight")->file_offset % 4 == 0);  // f32 first: aligned in the mapping
  // Bad input is an error naming the tensor.
  t[1].produce = [] { return std::vector<std::byte>(3); };
  CHECK_THAT(error_of([&] { moe::io::write_safetensors(dir.path / "x.safetensors", t); }),
             Catch::Contains("tensor b.weight produced 3 bytes, its shape needs 24"));
  std::vector<moe::io::SafetensorsTensor> twice{t[0], t[0]};
  CHECK_THAT(error_of([&] { moe::io::write_safetensors(dir.path / "y.safetensors", twice); }),
             Catch::Contains("tensor a written twice"));
  std::vector<moe::io::SafetensorsTensor> q8{{"q", moe::DType::q8_0, {1, 32}, {}, {}}};
  CHECK_THAT(error_of([&] { moe::io::write_safetensors(dir.path / "z.safetensors", q8); }),
             Catch::Contains("only f32, bf16 and f16"));
}

TEST_CASE("synthetic weights written as a folder and a GGUF load back unchanged", "[bench]") {
  for (const char* fixture : {"qwen3_moe", "mixtral", "deepseek_v3"}) {
    INFO(fixture);
    const nlohmann::json config =
        moe::bench::synthetic_config_from(std::string(MOE_FIXTURES_DIR) + "/models/" + fixture + "/config.json");
    auto source = std::make_shared<moe::model::SyntheticSource<moe::backend::cpu>>(moe::DType::bf16, 3);
    const auto model = moe::model::make_synthetic_model<moe::backend::cpu>(config, source);
    const std::vector<float> want = logits_of(model);
    const auto tensors = moe::model::checkpoint_tensors(model->config(), source->made());
    TempDir dir;
    moe::io::export_hf_folder(dir.path / "hf", config, tensors);
    CHECK(logits_of(moe::load_model(dir.path / "hf")) == want);
    const moe::model::TensorListSource src(tensors);
    moe::io::GgufExportOptions eo;
    eo.type = "bf16";
    (void)moe::io::export_gguf(model->config(), src, dir.path / "m.gguf", eo);
    const std::vector<float> gguf = logits_of(moe::load_model(dir.path / "m.gguf"));
    REQUIRE(gguf.size() == want.size());
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(double(gguf[i]) - want[i]));
    CHECK(worst < 1e-4);  // same weights; llama's permuted q/k rows and MLA's split kv_b reorder sums
  }
  // A shape's name gives its published config.
  const nlohmann::json v3 = moe::bench::synthetic_config_from("deepseek-v3", 4);
  CHECK(v3["hidden_size"] == 7168);
  CHECK(v3["num_hidden_layers"] == 4);
  CHECK(moe::bench::synthetic_config_from("gpt-oss-20b")["num_local_experts"] == 32);
  CHECK(moe::bench::synthetic_config_from("olmoe-1b-7b")["num_experts"] == 64);
  CHECK_THAT(error_of([] { (void)moe::bench::synthetic_config_from("nope"); }), Catch::Contains("'nope' is not one of"));
  CHECK_THAT(error_of([] { (void)moe::bench::synthetic_config_from("/nonexistent/config.json"); }),
             Catch::Contains("nonexistent"));
}
