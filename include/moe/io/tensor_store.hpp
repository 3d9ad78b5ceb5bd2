// TensorStore: every tensor of a Hugging Face checkpoint folder (one model.safetensors, or the shards
// listed by model.safetensors.index.json), each shard mapped once, looked up by name and handed out
// as checked zero-copy views.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/tensor.hpp"
#include "moe/io/json_file.hpp"
#include "moe/io/safetensors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace moe::io {

inline constexpr std::string_view kSingleFileName = "model.safetensors";
inline constexpr std::string_view kShardIndexName = "model.safetensors.index.json";

class TensorStore {
 public:
  struct Options {
    // Shard files (and model.safetensors) must resolve, after following symlinks, to a path inside
    // the folder, or, when the folder is a Hugging Face hub cache snapshot
    // (<repo>/snapshots/<revision>), inside that repository's blobs folder (<repo>/blobs), where
    // the hub links every file. Set this to accept any target. Index entries that are absolute or
    // contain ".." are rejected either way.
    bool allow_external_symlinks = false;
  };

  // Opens the checkpoint in `dir`:
  //  - model.safetensors when it exists (it wins over an index, as in transformers), else
  //  - model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file}}.
  //    Each shard path must be a relative path without "..", name an existing regular file inside
  //    `dir` (symlinks resolved, see Options), and is mapped once however many tensors it holds.
  //    The index and the shards must agree exactly: every tensor of the weight_map is in the shard
  //    it names, and every tensor of every shard is listed in the weight_map for that shard
  //    (so no tensor exists twice). Shard files not named by the index are ignored.
  //  - neither: Error(kIo).
  // Errors: kIo (missing folder, file or shard; unreadable file), kFormat (invalid safetensors,
  // invalid index, disagreement), each naming the file, the tensor and the values seen.
  static TensorStore open_folder(const std::filesystem::path& dir) { return open_folder(dir, Options{}); }
  static TensorStore open_folder(const std::filesystem::path& dir, const Options& options) {
    return catch_as_error("TensorStore::open_folder", [&] { return open_folder_unchecked(dir, options); });
  }

 private:
  static TensorStore open_folder_unchecked(const std::filesystem::path& dir, const Options& options) {
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      fail(ErrorCode::kIo, "checkpoint folder {} does not exist or is not a folder", dir.string());
    }
    TensorStore store;
    store.folder_ = dir;
    const auto single = dir / kSingleFileName;
    const auto index = dir / kShardIndexName;
    if (std::filesystem::exists(std::filesystem::symlink_status(single, ec))) {
      store.check_inside_folder(single, options, single.string(), "");
      store.files_.push_back(SafetensorsFile::open(single));
      for (const TensorInfo& t : store.files_.back().tensors()) store.by_name_.emplace(t.name, &t);
    } else if (std::filesystem::exists(std::filesystem::symlink_status(index, ec))) {
      store.open_shards(index, options);
    } else {
      fail(ErrorCode::kIo, "no {} or {} in {}", kSingleFileName, kShardIndexName, dir.string());
    }
    return store;
  }

 public:

  TensorStore(TensorStore&&) noexcept = default;
  TensorStore& operator=(TensorStore&&) noexcept = default;
  TensorStore(const TensorStore&) = delete;
  TensorStore& operator=(const TensorStore&) = delete;

  // The tensor called `name`, or nullptr.
  const TensorInfo* find(std::string_view name) const {
    const auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  // The tensor called `name`; Error(kMissingTensor) naming the tensor and the folder otherwise.
  const TensorInfo& get(std::string_view name) const {
    const TensorInfo* t = find(name);
    if (t == nullptr) fail(ErrorCode::kMissingTensor, "tensor {} not found in {}", name, folder_.string());
    return *t;
  }

  // A read-only view of tensor `name` straight into the mapping, after checking that its dtype is
  // T's (float/F32, bf16/BF16, f16/F16, std::int32_t/I32, ...) and its shape is `expected_shape`.
  // Errors: kMissingTensor; kShapeMismatch as "<name> in <folder>: expected shape [8, 64], found
  // [8, 32]" or "... expected dtype BF16, found F32"; kUnsupported for misaligned data. The view is
  // contiguous (row-major) and valid as long as this store. Thread-safe.
  template <class T, std::size_t R>
  View<const T, R> view(std::string_view name, const std::array<index_t, R>& expected_shape) const {
    return tensor_view<T, R>(get(name), folder_.string(), expected_shape);
  }
  // As view(), checking only dtype and rank: for callers that learn the shape from the tensor
  // (e.g. to validate a config against it, or to infer a dimension).
  template <class T, std::size_t R>
  View<const T, R> view_any(std::string_view name) const {
    return tensor_view<T, R>(get(name), folder_.string());
  }

  // madvise hints for every mapped file, or for one tensor's pages (e.g. Access::will_need to
  // prefetch an expert, Access::random for expert banks read a few rows at a time). Hints only:
  // they never fail and never change the bytes. Safe to call from any thread.
  void advise(Access access) const noexcept {
    for (const SafetensorsFile& f : files_) f.mapping().advise(access);
  }
  void advise(std::string_view name, Access access) const {
    const TensorInfo& t = get(name);
    for (const SafetensorsFile& f : files_) f.mapping().advise(access, t.bytes);  // ignored outside
  }

  // All tensor names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, info] : by_name_) out.push_back(name);
    return out;
  }
  std::size_t size() const noexcept { return by_name_.size(); }
  const std::filesystem::path& folder() const noexcept { return folder_; }
  // The opened files: one for model.safetensors, else one per distinct shard (in index order of
  // first appearance).
  const std::vector<SafetensorsFile>& files() const noexcept { return files_; }
  // The index's "metadata" object (null for a single file or when absent).
  const nlohmann::json& index_metadata() const noexcept { return index_metadata_; }
  bool is_sharded() const noexcept { return sharded_; }

 private:
  TensorStore() = default;

  // Rejects `file` when it resolves (through symlinks) outside folder_, unless allowed.
  void check_inside_folder(const std::filesystem::path& file, const Options& options,
                           const std::string& source, const std::string& tensor) const {
    if (options.allow_external_symlinks) return;
    std::error_code ec;
    const auto root = std::filesystem::canonical(folder_, ec);
    if (ec) fail(ErrorCode::kIo, "cannot resolve folder {}: {}", folder_.string(), ec.message());
    const auto target = std::filesystem::canonical(file, ec);
    if (ec) fail(ErrorCode::kIo, "{}: cannot resolve {}: {}", source, file.string(), ec.message());
    if (is_within(root, target)) return;
    // A hub cache snapshot: <repo>/snapshots/<revision>/<file> -> <repo>/blobs/<hash>.
    const auto snapshots = root.parent_path();
    if (snapshots.filename() == "snapshots" && is_within(snapshots.parent_path() / "blobs", target)) return;
    fail(ErrorCode::kFormat, "{}: {}{} resolves to {}, outside the folder {} (symlink)", source,
         file.filename().string(), tensor.empty() ? "" : " (shard of tensor " + tensor + ")", target.string(),
         root.string());
  }

  // True when `path` is `folder` or below it (both canonical).
  static bool is_within(const std::filesystem::path& folder, const std::filesystem::path& path) {
    const auto [f, p] = std::mismatch(folder.begin(), folder.end(), path.begin(), path.end());
    return f == folder.end();
  }

  void open_shards(const std::filesystem::path& index_path, const Options& options) {
    sharded_ = true;
    const std::string source = index_path.string();
    // Non-const: "metadata" is moved out below, never copied (nlohmann's copy is recursive, and
    // a hostile index may nest arrays deep enough to overflow the stack).
    nlohmann::json index = read_json_file(index_path, limits::kMaxIndexJsonBytes, "shard index");
    if (!index.is_object()) {
      fail(ErrorCode::kFormat, "{}: the index must be a JSON object, found {}", source,
           describe(index));
    }
    if (const auto m = index.find("metadata"); m != index.end()) {
      if (!m->is_object() && !m->is_null()) {
        fail(ErrorCode::kFormat, "{}: metadata must be an object, found {}", source, describe(*m));
      }
      index_metadata_ = std::move(*m);
    }
    const auto wm = index.find("weight_map");
    if (wm == index.end()) fail(ErrorCode::kFormat, "{}: weight_map is missing", source);
    if (!wm->is_object()) {
      fail(ErrorCode::kFormat, "{}: weight_map must be an object of tensor name -> shard file, found {}",
           source, describe(*wm));
    }

    // Validate every entry's path and group the tensors by shard (canonical path -> file slot).
    std::map<std::string, std::size_t> slot_of_path;
    std::vector<std::filesystem::path> shard_paths;
    std::map<std::string, std::size_t, std::less<>> slot_of_tensor;
    std::map<std::string, std::size_t, std::less<>> slot_of_name;  // shard string -> slot (checked once)
    for (const auto& [tensor, shard] : wm->items()) {
      if (tensor.empty()) fail(ErrorCode::kFormat, "{}: weight_map has an empty tensor name", source);
      if (!shard.is_string()) {
        fail(ErrorCode::kFormat, "{}: weight_map entry of tensor {} must be a file name string, found {}",
             source, tensor, describe(shard));
      }
      const std::string& name = shard.get_ref<const std::string&>();
      if (const auto known = slot_of_name.find(name); known != slot_of_name.end()) {
        slot_of_tensor.emplace(tensor, known->second);  // a big index names few distinct shards
        continue;
      }
      const std::filesystem::path rel(name);
      if (name.empty()) fail(ErrorCode::kFormat, "{}: weight_map entry of tensor {} is an empty file name", source, tensor);
      if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory()) {
        fail(ErrorCode::kFormat, "{}: weight_map entry of tensor {} is an absolute path \"{}\"; shards "
             "must be inside the folder", source, tensor, name);
      }
      for (const auto& part : rel) {
        if (part == "..") {
          fail(ErrorCode::kFormat, "{}: weight_map entry of tensor {} is \"{}\", which contains \"..\"; "
               "shards must be inside the folder", source, tensor, name);
        }
      }
      const auto full = folder_ / rel;
      std::error_code ec;
      if (!std::filesystem::is_regular_file(full, ec)) {
        fail(ErrorCode::kIo, "{}: shard {} of tensor {} does not exist or is not a regular file", source,
             name, tensor);
      }
      check_inside_folder(full, options, source, tensor);
      const auto key = std::filesystem::canonical(full, ec);
      const std::string key_text = ec ? full.lexically_normal().string() : key.string();
      auto [it, inserted] = slot_of_path.emplace(key_text, shard_paths.size());
      if (inserted) shard_paths.push_back(full);
      slot_of_name.emplace(name, it->second);
      slot_of_tensor.emplace(tensor, it->second);
    }

    // Each shard mapped and validated once.
    files_.reserve(shard_paths.size());
    for (const auto& p : shard_paths) files_.push_back(SafetensorsFile::open(p));

    // The index and the shards must agree in both directions.
    for (const auto& [tensor, slot] : slot_of_tensor) {
      const TensorInfo* t = files_[slot].find(tensor);
      if (t == nullptr) {
        fail(ErrorCode::kFormat, "{}: tensor {} is listed in shard {}, but that file does not contain it",
             source, tensor, files_[slot].name());
      }
      by_name_.emplace(tensor, t);
    }
    for (std::size_t slot = 0; slot < files_.size(); ++slot) {
      for (const TensorInfo& t : files_[slot].tensors()) {
        const auto it = slot_of_tensor.find(t.name);
        if (it == slot_of_tensor.end()) {
          fail(ErrorCode::kFormat, "{}: shard {} contains tensor {}, which the weight_map does not list",
               source, files_[slot].name(), t.name);
        }
        if (it->second != slot) {
          fail(ErrorCode::kFormat, "{}: shard {} contains tensor {}, which the weight_map assigns to {}",
               source, files_[slot].name(), t.name, files_[it->second].name());
        }
      }
    }
  }

  std::filesystem::path folder_;
  std::vector<SafetensorsFile> files_;
  // Points into files_[i].tensors(); those vectors' storage does not move when files_ or the
  // store is moved, so the pointers stay valid for the store's lifetime.
  std::map<std::string, const TensorInfo*, std::less<>> by_name_;
  nlohmann::json index_metadata_;
  bool sharded_ = false;
};

}  // namespace moe::io
