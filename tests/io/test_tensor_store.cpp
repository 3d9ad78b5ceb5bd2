// Tests for TensorStore: single-file and sharded folders written here, which file wins, the
// index/shard agreement rules, symlink containment, checked views, and every committed model
// fixture under tests/fixtures/models/.
#include "io_test_util.hpp"
#include "safetensors_writer.hpp"

#include <moe/io/tensor_store.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

using moe::Error;
using moe::ErrorCode;
using moe::io::TensorStore;
using moe::test::make_tensor;
using moe::test::require_error;
using moe::test::safetensors_bytes;
using moe::test::TempDir;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

void write_index(const fs::path& dir, const nlohmann::json& weight_map) {
  moe::test::write_text(dir / "model.safetensors.index.json",
                        nlohmann::json{{"metadata", {{"total_size", 123}}}, {"weight_map", weight_map}}.dump(2));
}

// Two shards: shard 1 holds embed (bf16 [4, 2]) and norm (f32 [2]); shard 2 holds gate (f16 [3, 2]).
void write_sharded(const fs::path& dir) {
  std::vector<moe::bf16> embed;
  for (int i = 0; i < 8; ++i) embed.push_back(moe::to_bf16(static_cast<float>(i)));
  moe::test::write_file(dir / "model-00001-of-00002.safetensors",
                        safetensors_bytes({make_tensor("model.embed_tokens.weight", "BF16", {4, 2}, embed),
                                           make_tensor<float>("model.norm.weight", "F32", {2}, {1.0f, 2.0f})}));
  std::vector<moe::f16> gate;
  for (int i = 0; i < 6; ++i) gate.push_back(moe::to_f16(0.5f * static_cast<float>(i)));
  moe::test::write_file(dir / "model-00002-of-00002.safetensors",
                        safetensors_bytes({make_tensor("model.layers.0.mlp.gate.weight", "F16", {3, 2}, gate)}));
}

nlohmann::json sharded_map() {
  return {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
          {"model.norm.weight", "model-00001-of-00002.safetensors"},
          {"model.layers.0.mlp.gate.weight", "model-00002-of-00002.safetensors"}};
}

}  // namespace

TEST_CASE("TensorStore over a single model.safetensors", "[io][store]") {
  TempDir dir;
  moe::test::write_file(dir / "model.safetensors",
                        safetensors_bytes({make_tensor<float>("b", "F32", {2, 2}, {1, 2, 3, 4}),
                                           make_tensor<float>("a", "F32", {1}, {9})}));
  const TensorStore store = TensorStore::open_folder(dir.path());
  CHECK_FALSE(store.is_sharded());
  CHECK(store.files().size() == 1);
  CHECK(store.names() == std::vector<std::string>{"a", "b"});
  CHECK(store.size() == 2);
  CHECK(store.contains("a"));
  CHECK(store.find("c") == nullptr);
  CHECK(store.view<float, 2>("b", {2, 2})(1, 0) == 3.0f);
  const auto any = store.view_any<float, 2>("b");
  CHECK(any.extent(0) == 2);
  CHECK(any(1, 1) == 4.0f);
  require_error([&] { (void)store.get("model.layers.0.mlp.gate.weight"); }, ErrorCode::kMissingTensor,
                {"model.layers.0.mlp.gate.weight", dir.path().string()});
  require_error([&] { (void)store.view<float, 2>("b", {2, 3}); }, ErrorCode::kShapeMismatch,
                {"b in " + dir.path().string() + ": expected shape [2, 3], found [2, 2]"});
  require_error([&] { (void)store.view<moe::bf16, 2>("b", {2, 2}); }, ErrorCode::kShapeMismatch,
                {"b in " + dir.path().string() + ": expected dtype BF16, found F32"});
  require_error([&] { (void)store.view_any<float, 1>("b"); }, ErrorCode::kShapeMismatch, {"expected rank 1"});
  store.advise(moe::io::Access::random);
  store.advise(moe::io::Access::dont_need);  // private clean pages are dropped and re-read
  store.advise("b", moe::io::Access::will_need);
  CHECK(store.view<float, 2>("b", {2, 2})(0, 1) == 2.0f);  // hints never change the bytes
  require_error([&] { store.advise("zz", moe::io::Access::will_need); }, ErrorCode::kMissingTensor, {"zz"});

  // The store and its views survive a move of the store.
  const auto before = store.view<float, 1>("a", {1}).data();
  TensorStore moved = TensorStore::open_folder(dir.path());
  const auto p = moved.view<float, 1>("a", {1}).data();
  TensorStore moved2 = std::move(moved);
  CHECK(moved2.view<float, 1>("a", {1}).data() == p);
  CHECK(*p == 9.0f);
  CHECK(*before == 9.0f);
}

TEST_CASE("TensorStore over a sharded checkpoint", "[io][store]") {
  TempDir dir;
  write_sharded(dir.path());
  write_index(dir.path(), sharded_map());
  const TensorStore store = TensorStore::open_folder(dir.path());
  CHECK(store.is_sharded());
  CHECK(store.files().size() == 2);
  CHECK(store.size() == 3);
  CHECK(store.index_metadata()["total_size"] == 123);
  const auto embed = store.view<moe::bf16, 2>("model.embed_tokens.weight", {4, 2});
  CHECK(moe::to_float(embed(3, 1)) == 7.0f);
  const auto gate = store.view<moe::f16, 2>("model.layers.0.mlp.gate.weight", {3, 2});
  CHECK(moe::to_float(gate(2, 0)) == 2.0f);
  CHECK(store.get("model.layers.0.mlp.gate.weight").file.find("model-00002-of-00002") != std::string::npos);
  require_error([&] { (void)store.view<moe::bf16, 2>("model.layers.0.mlp.gate.weight", {3, 2}); },
                ErrorCode::kShapeMismatch, {"expected dtype BF16, found F16"});

  // The same shard spelled two ways is still mapped once.
  auto map2 = sharded_map();
  map2["model.norm.weight"] = "./model-00001-of-00002.safetensors";
  write_index(dir.path(), map2);
  CHECK(TensorStore::open_folder(dir.path()).files().size() == 2);

  // A shard in a sub-folder is fine.
  fs::create_directories(dir / "sub");
  fs::rename(dir / "model-00002-of-00002.safetensors", dir / "sub/model-00002-of-00002.safetensors");
  auto map3 = sharded_map();
  map3["model.layers.0.mlp.gate.weight"] = "sub/model-00002-of-00002.safetensors";
  write_index(dir.path(), map3);
  CHECK(TensorStore::open_folder(dir.path()).view_any<moe::f16, 2>("model.layers.0.mlp.gate.weight").extent(0) == 3);
}

TEST_CASE("TensorStore: model.safetensors wins over an index, as in transformers", "[io][store]") {
  TempDir dir;
  moe::test::write_file(dir / "model.safetensors", safetensors_bytes({make_tensor<float>("x", "F32", {1}, {5})}));
  moe::test::write_text(dir / "model.safetensors.index.json", "not json at all");
  const TensorStore store = TensorStore::open_folder(dir.path());
  CHECK_FALSE(store.is_sharded());
  CHECK(store.view<float, 1>("x", {1})(0) == 5.0f);
}

TEST_CASE("TensorStore: index and shards must agree", "[io][store]") {
  TempDir dir;
  write_sharded(dir.path());

  auto extra = sharded_map();
  extra["model.layers.1.mlp.gate.weight"] = "model-00002-of-00002.safetensors";
  write_index(dir.path(), extra);
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat,
                {"model.safetensors.index.json", "model.layers.1.mlp.gate.weight", "does not contain it"});

  auto missing = sharded_map();
  missing.erase("model.norm.weight");
  write_index(dir.path(), missing);
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat,
                {"model.norm.weight", "does not list"});

  auto wrong = sharded_map();
  wrong["model.norm.weight"] = "model-00002-of-00002.safetensors";
  write_index(dir.path(), wrong);
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat,
                {"model.norm.weight", "model-00002-of-00002.safetensors"});

  moe::test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}})");
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat,
                {"model.safetensors.index.json", "duplicate key \"a\"", "weight_map"});
  // Deeply nested metadata is refused by the parser (copy and dump of it would recurse); nesting
  // up to the cap is kept.
  moe::test::write_text(dir / "model.safetensors.index.json",
                        R"({"metadata": {"deep": )" + std::string(100000, '[') + std::string(100000, ']') +
                            "}, \"weight_map\": " + sharded_map().dump() + "}");
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat,
                {"model.safetensors.index.json", "nests deeper than 64 levels at metadata.deep"});
  moe::test::write_text(dir / "model.safetensors.index.json",
                        R"({"metadata": {"deep": )" + std::string(60, '[') + std::string(60, ']') +
                            "}, \"weight_map\": " + sharded_map().dump() + "}");
  {
    const TensorStore deep = TensorStore::open_folder(dir.path());
    CHECK(deep.index_metadata()["deep"].is_array());
  }
  moe::test::write_text(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat, {"weight_map is missing"});
  moe::test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat,
                {"weight_map entry of tensor a", "number"});
  moe::test::write_text(dir / "model.safetensors.index.json", R"([1])");
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat, {"must be a JSON object"});
  moe::test::write_text(dir / "model.safetensors.index.json", R"({"weight_map": {"a": ""}})");
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat, {"empty file name"});
}

TEST_CASE("TensorStore: shard paths stay inside the folder", "[io][store]") {
  TempDir outer;
  const fs::path dir = outer / "ckpt";
  fs::create_directories(dir);
  write_sharded(dir);
  // A valid shard outside the checkpoint folder.
  fs::copy_file(dir / "model-00002-of-00002.safetensors", outer / "outside.safetensors");

  auto dotdot = sharded_map();
  dotdot["model.layers.0.mlp.gate.weight"] = "../outside.safetensors";
  write_index(dir, dotdot);
  require_error([&] { (void)TensorStore::open_folder(dir); }, ErrorCode::kFormat, {"\"..\"", "../outside.safetensors"});

  auto absolute = sharded_map();
  absolute["model.layers.0.mlp.gate.weight"] = (outer / "outside.safetensors").string();
  write_index(dir, absolute);
  require_error([&] { (void)TensorStore::open_folder(dir); }, ErrorCode::kFormat, {"absolute path"});

  auto absent = sharded_map();
  absent["model.layers.0.mlp.gate.weight"] = "model-00003-of-00002.safetensors";
  write_index(dir, absent);
  require_error([&] { (void)TensorStore::open_folder(dir); }, ErrorCode::kIo,
                {"model-00003-of-00002.safetensors", "model.layers.0.mlp.gate.weight", "does not exist"});

  // A symlink inside the folder that points outside it is refused unless allowed.
  fs::remove(dir / "model-00002-of-00002.safetensors");
  fs::create_symlink(outer / "outside.safetensors", dir / "model-00002-of-00002.safetensors");
  write_index(dir, sharded_map());
  require_error([&] { (void)TensorStore::open_folder(dir); }, ErrorCode::kFormat, {"outside the folder"});
  TensorStore::Options allow;
  allow.allow_external_symlinks = true;
  CHECK(TensorStore::open_folder(dir, allow).size() == 3);

  // A symlink that stays inside the folder is fine.
  fs::remove(dir / "model-00002-of-00002.safetensors");
  fs::create_directories(dir / "blobs");
  fs::copy_file(outer / "outside.safetensors", dir / "blobs/abc");
  fs::create_symlink("blobs/abc", dir / "model-00002-of-00002.safetensors");
  CHECK(TensorStore::open_folder(dir).size() == 3);

  // The single-file case follows the same rule.
  TempDir single_outer;
  fs::create_directories(single_outer / "m");
  moe::test::write_file(single_outer / "real.safetensors", safetensors_bytes({make_tensor<float>("x", "F32", {1}, {1})}));
  fs::create_symlink(single_outer / "real.safetensors", single_outer / "m/model.safetensors");
  require_error([&] { (void)TensorStore::open_folder(single_outer / "m"); }, ErrorCode::kFormat, {"outside the folder"});
  CHECK(TensorStore::open_folder(single_outer / "m", allow).size() == 1);
}

TEST_CASE("TensorStore: a Hugging Face hub cache snapshot loads in place", "[io][store]") {
  // models--org--name/snapshots/<rev>/model.safetensors -> ../../blobs/<hash>, as the hub lays it out.
  TempDir cache;
  const fs::path repo = cache / "models--org--name";
  fs::create_directories(repo / "blobs");
  fs::create_directories(repo / "snapshots/0123abcd");
  moe::test::write_file(repo / "blobs/9f8e7d", safetensors_bytes({make_tensor<float>("x", "F32", {2}, {1, 2})}));
  fs::create_symlink("../../blobs/9f8e7d", repo / "snapshots/0123abcd/model.safetensors");
  CHECK(TensorStore::open_folder(repo / "snapshots/0123abcd").size() == 1);

  // A link from a snapshot to anywhere else is still refused.
  moe::test::write_file(cache / "elsewhere.safetensors", safetensors_bytes({make_tensor<float>("x", "F32", {1}, {1})}));
  fs::create_directories(repo / "snapshots/bad");
  fs::create_symlink(cache / "elsewhere.safetensors", repo / "snapshots/bad/model.safetensors");
  require_error([&] { (void)TensorStore::open_folder(repo / "snapshots/bad"); }, ErrorCode::kFormat,
                {"outside the folder", "elsewhere.safetensors"});

  // Only a folder named "snapshots" gets the blobs rule.
  fs::create_directories(repo / "other/rev");
  fs::create_symlink("../../blobs/9f8e7d", repo / "other/rev/model.safetensors");
  require_error([&] { (void)TensorStore::open_folder(repo / "other/rev"); }, ErrorCode::kFormat, {"outside the folder"});
}

TEST_CASE("TensorStore: missing folders and files", "[io][store]") {
  TempDir dir;
  require_error([&] { (void)TensorStore::open_folder(dir / "nope"); }, ErrorCode::kIo, {"nope", "does not exist"});
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kIo,
                {"no model.safetensors or model.safetensors.index.json", dir.path().string()});
  moe::test::write_file(dir / "model.safetensors", {});
  require_error([&] { (void)TensorStore::open_folder(dir.path()); }, ErrorCode::kFormat, {"model.safetensors", "0 bytes"});
}

// Views a weight tensor (f32/bf16/f16, rank 1..4) with its own dtype and shape; returns its size.
std::size_t viewable_size(const moe::io::TensorInfo& t, const std::string& where) {
  return moe::visit_dtype(*t.dtype, [&](auto tag) -> std::size_t {
    using T = decltype(tag);
    switch (t.shape.size()) {
      case 1: return moe::io::tensor_view<T, 1>(t, where).size();
      case 2: return moe::io::tensor_view<T, 2>(t, where).size();
      case 3: return moe::io::tensor_view<T, 3>(t, where).size();
      case 4: return moe::io::tensor_view<T, 4>(t, where).size();
      default: return t.element_count();
    }
  });
}

// Every committed model fixture must parse (and every tensor of every file must be viewable with
// its own dtype when it is one of the weight types).
TEST_CASE("committed model fixtures parse", "[io][fixtures]") {
  const fs::path models = fs::path(MOE_FIXTURES_DIR) / "models";
  std::size_t files = 0;
  if (fs::is_directory(models)) {
    for (const auto& entry : fs::directory_iterator(models)) {
      if (!entry.is_directory()) continue;
      for (const char* name : {"model.safetensors", "reference.safetensors"}) {
        const fs::path p = entry.path() / name;
        if (!fs::exists(p)) continue;
        INFO(p.string());
        const auto f = moe::io::SafetensorsFile::open(p);
        CHECK_FALSE(f.tensors().empty());
        for (const auto& t : f.tensors()) {
          if (t.dtype) CHECK(viewable_size(t, p.string()) == t.element_count());
          CHECK(t.bytes.size() == t.element_count() * t.element_size);
          CHECK(reinterpret_cast<std::uintptr_t>(t.bytes.data()) % t.element_size == 0);  // usable in place
        }
        ++files;
      }
      if (fs::exists(entry.path() / "model.safetensors") || fs::exists(entry.path() / "model.safetensors.index.json")) {
        INFO(entry.path().string());
        CHECK(TensorStore::open_folder(entry.path()).size() > 0);
      }
    }
  }
  if (files == 0) WARN("no model fixtures under " << models.string() << " yet; nothing checked");
}
