// The whole graph instantiated for backend::cuda, compiled by nvcc: the model's forward pass, the
// weight upload, sessions, generators, continuous batching, perplexity and the synthetic models.
// Built in CI without a GPU (target moe_cuda_ci), so a host loop over device memory or a missing
// device op anywhere in model/, layers/ or runtime/ fails the build. Run, it loads a model folder
// on the device and generates a few tokens (exit 77 without a device).
#include <moe/moe.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

namespace {

using Cuda = moe::backend::cuda;

// Decode steps replayed from captured CUDA graphs give bitwise the logits of eager launches while
// token ids, positions and caches change between replays: three sequences of different lengths
// decoding together, then one alone.
bool graphs_replay_exactly(const moe::BasicModel<Cuda>& model) {
  using Cache = moe::BasicModel<Cuda>::Cache;
  using Chunk = moe::BasicModel<Cuda>::SequenceChunk;
  const auto vocab = static_cast<std::int32_t>(model.config().vocab_size);
  auto ws_graph = model.make_workspace(16), ws_eager = model.make_workspace(16);
  ws_eager.runner().set_capture(false);
  std::vector<Cache> caches;
  for (int i = 0; i < 6; ++i) caches.push_back(model.make_cache(64));
  const auto pass = [&](moe::BasicWorkspace<Cuda>& ws, std::vector<Chunk> chunks) {
    std::vector<float> logits(chunks.size() * vocab);
    model.forward(chunks, ws, moe::View<float, 2>(logits.data(), {chunks.size(), static_cast<std::size_t>(vocab)}),
                  false);
    return logits;
  };
  std::vector<std::vector<std::int32_t>> prompts{{1}, {2, 3, 4, 5}, {6, 7, 8, 9, 10, 11, 12, 13, 14}};
  for (int i = 0; i < 3; ++i) {
    (void)pass(ws_graph, {Chunk{&caches[i], prompts[i]}});
    (void)pass(ws_eager, {Chunk{&caches[3 + i], prompts[i]}});
  }
  std::vector<std::int32_t> tokens(3);
  for (int step = 0; step < 8; ++step) {
    const int n = step < 5 ? 3 : 1;
    std::vector<Chunk> a, b;
    for (int i = 0; i < n; ++i) {
      tokens[i] = (step * 7 + i * 3 + 1) % vocab;
      a.push_back(Chunk{&caches[i], std::span<const std::int32_t>(&tokens[i], 1)});
      b.push_back(Chunk{&caches[3 + i], std::span<const std::int32_t>(&tokens[i], 1)});
    }
    if (pass(ws_graph, a) != pass(ws_eager, b)) {
      std::fprintf(stderr, "decode step %d: graph replay and eager logits differ\n", step);
      return false;
    }
  }
  if (moe::kernels::PassRunner<Cuda>::enabled() && ws_graph.runner().size() == 0) {
    std::fprintf(stderr, "no decode step was captured\n");
    return false;
  }
  return true;
}

int run(const char* folder) {
  auto model = moe::load_model<Cuda>(folder, [](std::size_t, std::size_t) {});
  moe::BasicSession<Cuda> session(model, 64);
  const std::vector<std::int32_t> prompt{1, 2, 3};
  (void)session.prefill(prompt);
  // Bad input gets the same typed errors as on the CPU (the checks run on the host before any
  // kernel), and the session stays usable.
  const auto expect = [](moe::ErrorCode code, auto&& f) {
    try {
      f();
    } catch (const moe::Error& e) {
      if (e.code() == code) return;
      std::fprintf(stderr, "wrong error: %s\n", e.what());
      std::exit(1);
    }
    std::fprintf(stderr, "no error\n");
    std::exit(1);
  };
  const auto vocab = static_cast<std::int32_t>(model->config().vocab_size);
  expect(moe::ErrorCode::kInvalidArgument, [&] { (void)session.decode(vocab); });
  expect(moe::ErrorCode::kInvalidArgument, [&] { (void)session.decode(-1); });
  expect(moe::ErrorCode::kContextOverflow, [&] { (void)session.prefill(std::vector<std::int32_t>(100, 1)); });
  if (session.position() != prompt.size()) return 1;
  (void)session.decode(4);
  auto gen = moe::BasicGenerator<Cuda>::from_folder(folder, 64);
  moe::BasicBatchGenerator<Cuda> batch(model, gen.tokenizer_ptr());
  moe::GenerationOptions o;
  o.max_new_tokens = 4;
  o.sampler.greedy = true;
  (void)batch.submit("a", o);
  batch.run();
  (void)moe::perplexity(*model, std::vector<std::int32_t>{1, 2, 3, 4});
  const auto config = moe::io::read_json_file(std::string(folder) + "/config.json", moe::limits::kMaxConfigJsonBytes,
                                              "config.json");
  const auto synthetic = moe::model::make_synthetic_model<Cuda>(config, moe::DType::bf16);
  // fill_uniform on the device writes exactly the reference's values (f32 and bf16).
  {
    const std::size_t n = 10007;
    std::vector<float> host(n), back(n);
    std::vector<moe::bf16> host16(n), back16(n);
    moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<float, 1>(host.data(), {n}), 9, 0.3f, -0.1f);
    moe::kernels::fill_uniform(moe::backend::reference{}, moe::View<moe::bf16, 1>(host16.data(), {n}), 9, 0.3f, -0.1f);
    moe::Buffer<float, moe::device_memory> d(n);
    moe::Buffer<moe::bf16, moe::device_memory> d16(n);
    moe::kernels::fill_uniform(Cuda{}, d.view(), 9, 0.3f, -0.1f);
    moe::kernels::fill_uniform(Cuda{}, d16.view(), 9, 0.3f, -0.1f);
    moe::kernels::download(Cuda{}, moe::DeviceView<const float, 1>(d.view()), std::span<float>(back));
    moe::kernels::download(Cuda{}, moe::DeviceView<const moe::bf16, 1>(d16.view()), std::span<moe::bf16>(back16));
    if (back != host || back16 != host16) {
      std::fprintf(stderr, "fill_uniform: device values differ from the reference\n");
      return 1;
    }
  }
  if (!graphs_replay_exactly(*model)) return 1;
  std::printf("%s: ran on cuda (%zu bytes of weights)\n", folder, model->weight_bytes().total);
  return synthetic != nullptr ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (moe::cuda::device_count() == 0) {
    std::puts("SKIPPED: no CUDA device");
    return 77;
  }
  return run(argc > 1 ? argv[1] : "models/shakespeare-moe");
}
