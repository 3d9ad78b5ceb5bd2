// The post-processor of tokenizer.json ("post_processor" key), reduced to what encoding one
// sequence with add_special_tokens needs: the ids placed before and after it. Handles
// TemplateProcessing (the "single" template), RobertaProcessing, BertProcessing, ByteLevel (no-op
// for ids) and Sequence.
#pragma once

#include "moe/tokenizer/json_reader.hpp"
#include "moe/tokenizer/normalizer.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace moe::tokenizer {

struct PostProcessor {
  std::vector<std::int32_t> prefix;  // ids before the sequence
  std::vector<std::int32_t> suffix;  // ids after the sequence

  static PostProcessor from_json(const JsonNode* node) {
    PostProcessor p;
    if (node != nullptr && !node->is_null()) p.add(*node, 0);
    return p;
  }

 private:
  static std::int32_t read_id(const JsonNode& n) {
    const std::int64_t id = n.as_int();
    if (id < 0 || id > INT32_MAX) n.fail_here(ErrorCode::kTokenizer, "token id {} out of range", id);
    return static_cast<std::int32_t>(id);
  }

  // Wraps the current result: this processor's tokens go outside the ones already collected.
  void wrap(const std::vector<std::int32_t>& before, const std::vector<std::int32_t>& after) {
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
  }

  void add(const JsonNode& node, int depth) {
    if (depth > kMaxComponentNesting) node.fail_here(ErrorCode::kTokenizer, "post-processors nested too deeply");
    const std::string& type = node.type();
    if (type == "Sequence") {
      const JsonNode list = node.at("processors");
      for (std::size_t i = 0; i < list.size(); ++i) add(list[i], depth + 1);
    } else if (type == "ByteLevel") {
      // Only adjusts offsets.
    } else if (type == "TemplateProcessing") {
      const JsonNode single = node.at("single");
      const JsonNode specials = node.at("special_tokens");
      std::vector<std::int32_t> before, after;
      bool seen_sequence = false;
      for (std::size_t i = 0; i < single.size(); ++i) {
        const JsonNode item = single[i];
        if (auto special = item.find("SpecialToken")) {
          const std::string& name = special->at("id").as_string();
          auto entry = specials.find(name);
          if (!entry) special->fail_here(ErrorCode::kTokenizer, "special token '{}' is not in special_tokens", name);
          const JsonNode ids = entry->at("ids");
          for (std::size_t k = 0; k < ids.size(); ++k) (seen_sequence ? after : before).push_back(read_id(ids[k]));
        } else if (item.find("Sequence")) {
          if (seen_sequence) item.fail_here(ErrorCode::kUnsupported, "a single-sequence template with two sequences");
          seen_sequence = true;
        } else {
          item.fail_here(ErrorCode::kTokenizer, "expected {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}");
        }
      }
      wrap(before, after);
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      const JsonNode cls = node.at("cls"), sep = node.at("sep");
      if (cls.size() != 2 || sep.size() != 2)
        node.fail_here(ErrorCode::kTokenizer, "cls and sep must be [token, id] pairs");
      wrap({read_id(cls[1])}, {read_id(sep[1])});
    } else {
      node.fail_here(ErrorCode::kUnsupported, "post-processor type '{}' is not supported", type);
    }
  }
};

}  // namespace moe::tokenizer
