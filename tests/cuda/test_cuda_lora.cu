// The CUDA grouped LoRA update (kernels/cuda/lora.cuh) against the reference kernel: a batch
// mixing three adapters, rows with none and an adapter that does not touch the weight, odd sizes;
// results within the f32 reduction tolerance, rows without an adapter untouched bit for bit.
#include "moe/kernels/cuda/cuda.cuh"
#include "moe/kernels/kernels.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace {

using moe::index_t;
using moe::cuda::DeviceBuffer;
namespace kernels = moe::kernels;

std::vector<float> rand_vec(index_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.0f, 0.5f);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = nd(rng);
  return v;
}

}  // namespace

TEST_CASE("cuda lora_add matches the reference on a batch mixing adapters", "[cuda][lora]") {
  std::mt19937 rng(99);
  for (const auto& [in, out] : std::vector<std::pair<index_t, index_t>>{{37, 23}, {130, 257}, {1, 5}}) {
    const index_t n = 13;
    const std::vector<std::int32_t> ranks{3, 8, 1};
    std::vector<std::vector<float>> a, b;
    std::vector<DeviceBuffer<float>> da, db;
    std::vector<kernels::LoraFactorRef> host_table, dev_table;
    for (std::size_t k = 0; k < ranks.size(); ++k) {
      a.push_back(rand_vec(ranks[k] * in, rng));
      b.push_back(rand_vec(out * ranks[k], rng));
      da.push_back(DeviceBuffer<float>::from_host(a.back()));
      db.push_back(DeviceBuffer<float>::from_host(b.back()));
      const float scale = 0.5f + static_cast<float>(k);
      host_table.push_back({a.back().data(), b.back().data(), ranks[k], scale});
      dev_table.push_back({da.back().data(), db.back().data(), ranks[k], scale});
    }
    host_table.push_back({});
    dev_table.push_back({});
    const index_t max_rank = 8;
    const std::vector<std::int32_t> rows{0, -1, 1, 2, 3, 1, 0, -1, 2, 2, 1, 0, 3};
    const auto x = rand_vec(n * in, rng);
    const auto y0 = rand_vec(n * out, rng);
    std::vector<float> want = y0, h(n * max_rank);
    kernels::lora_add(moe::backend::reference{}, moe::View<const float, 2>(x.data(), {n, in}),
                      moe::View<const std::int32_t, 1>(rows.data(), {n}),
                      moe::View<const kernels::LoraFactorRef, 1>(host_table.data(), {host_table.size()}), max_rank,
                      moe::View<float, 2>(h.data(), {n, max_rank}), moe::View<float, 2>(want.data(), {n, out}));
    const auto x_dev = DeviceBuffer<float>::from_host(x);
    const auto rows_dev = DeviceBuffer<std::int32_t>::from_host(rows);
    const auto table_dev = DeviceBuffer<kernels::LoraFactorRef>::from_host(dev_table);
    auto y_dev = DeviceBuffer<float>::from_host(y0);
    DeviceBuffer<float> h_dev(n * max_rank);
    kernels::lora_add(moe::backend::cuda{}, x_dev.view<2>({n, in}), rows_dev.view(), table_dev.view(), max_rank,
                      h_dev.view<2>({n, max_rank}), y_dev.view<2>({n, out}));
    const auto got = y_dev.to_host();
    const float tol = 64.0f * std::numeric_limits<float>::epsilon() * static_cast<float>(in * max_rank);
    INFO("in=" << in << " out=" << out);
    for (index_t t = 0; t < n; ++t) {
      for (index_t o = 0; o < out; ++o) {
        const float g = got[t * out + o], w = want[t * out + o];
        if (rows[t] < 0 || rows[t] == 3) {
          CHECK(g == y0[t * out + o]);
        } else {
          CHECK(std::fabs(g - w) <= tol * std::max(1.0f, std::fabs(w)));
        }
      }
    }
  }
}
