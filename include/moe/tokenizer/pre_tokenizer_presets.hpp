// The pre-tokenizer presets a GGUF file names in `tokenizer.ggml.pre` (llama.cpp's
// LLAMA_VOCAB_PRE_TYPE_* and the names its converter writes), each as the tokenizer.json
// pre-tokenizer (and normalizer) of the Hugging Face tokenizer it stands for, so the GGUF path and
// the tokenizer.json path run the same pipeline. Facts (names, regexes, per-name settings) follow
// llama.cpp's src/llama-vocab.cpp and convert_hf_to_gguf.py; where llama.cpp rewrote a regex for
// its own engine (`(?i:...)` spelled out, `&&` intersections), the original tokenizer.json /
// tiktoken regex is used here: PCRE2 runs it as written.
#pragma once

#include "moe/tokenizer/json_reader.hpp"

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe::tokenizer {

// How a preset splits text before byte-level BPE.
enum class PresetSplit {
  kRegexes,        // Split(regex, Isolated) for each regex in turn, then ByteLevel without its regex
  kGpt2,           // ByteLevel with the GPT-2 regex (add_prefix_space false)
  kDigitsThenGpt2, // Digits(individual_digits) then ByteLevel with the GPT-2 regex
};

struct PreTokenizerPreset {
  std::span<const std::string_view> names;  // names[0] is the one the writer puts in a GGUF
  PresetSplit split = PresetSplit::kRegexes;
  std::span<const std::string_view> regexes;  // kRegexes only
  bool nfc = false;                 // the HF tokenizer has an NFC normalizer (Qwen); llama.cpp skips it
  bool ignore_merges = false;       // a word that is a token is emitted whole (llama.cpp sets it per name)
  bool add_bos_default = false;     // llama.cpp's add_bos when tokenizer.ggml.add_bos_token is absent
  bool identify = true;             // the writer may pick this preset for a matching tokenizer.json
  std::string_view checked;         // what the regexes were checked against, for the reader of this table
};

namespace presets {
// Regexes (C++ raw strings: exactly the pattern text of a tokenizer.json Split).
inline constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen35 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kO200k =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Kimi K2's tiktoken pattern: o200k-like with Han characters taken out of the letter classes
// (tiktoken writes [\p{Lu}...&&[^\p{Han}]]; PCRE2 has no class intersection, so a negative
// lookahead in front of each class character says the same) and Han runs as words of their own.
inline constexpr std::string_view kKimiK2 =
    R"([\p{Han}]+|[^\r\n\p{L}\p{N}]?(?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])*(?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}])+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?(?:(?!\p{Han})[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}])+(?:(?!\p{Han})[\p{Ll}\p{Lm}\p{Lo}\p{M}])*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kBailing =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
// GPT-2's regex without its last alternative, as llama.cpp's default and Falcon presets use it
// (text the regex does not match is a piece of its own either way).
inline constexpr std::string_view kGpt2NoTail = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
inline constexpr std::string_view kDeepseekCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";

inline constexpr std::array<std::string_view, 1> kLlama3List{kLlama3};
inline constexpr std::array<std::string_view, 1> kQwen2List{kQwen2};
inline constexpr std::array<std::string_view, 1> kQwen35List{kQwen35};
inline constexpr std::array<std::string_view, 1> kO200kList{kO200k};
inline constexpr std::array<std::string_view, 1> kTekkenList{kTekken};
inline constexpr std::array<std::string_view, 1> kKimiK2List{kKimiK2};
inline constexpr std::array<std::string_view, 1> kBailingList{kBailing};
inline constexpr std::array<std::string_view, 3> kDeepseekV3List{
    R"(\p{N}{1,3})",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};
inline constexpr std::array<std::string_view, 6> kDeepseekLlmList{
    R"([\r\n])",
    // Latin, Greek, Cyrillic, ... letters: the character ranges of DeepSeek LLM's tokenizer.json,
    // with the characters that Unicode normalization would change (U+2126 OHM SIGN, U+212A KELVIN
    // SIGN, U+1FBE, and the range ends U+1F7D, U+1FD3, U+1FDB) written as escapes.
    R"(\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\x{1F7D}ᾀ-ᾴᾶ-ᾼ\x{1FBE}ῂ-ῄῆ-ῌῐ-\x{1FD3}ῖ-\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\x{2126}ℨ\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+)",
    R"(\s?[!-/:-~！-／：-～‘-‟　-。]+)",
    R"(\s+$)",
    kDeepseekCjk,
    R"(\p{N}+)",
};
inline constexpr std::array<std::string_view, 5> kDeepseekCoderList{
    R"([\r\n])", R"(\s?\p{L}+)", R"(\s?\p{P}+)", kDeepseekCjk, R"(\p{N})",
};
inline constexpr std::array<std::string_view, 4> kDefaultList{
    R"([\p{P}\$\+<=>\^~\|]+)", kGpt2NoTail, R"(\p{N}+)", R"([0-9][0-9][0-9])",
};
inline constexpr std::array<std::string_view, 3> kFalconList{
    R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2NoTail, R"([0-9][0-9][0-9])",
};

inline constexpr std::array<std::string_view, 1> kNamesDefault{"default"};
inline constexpr std::array<std::string_view, 6> kNamesGpt2{"gpt-2", "mpt", "olmo", "phi-2", "jais", "exaone4"};
inline constexpr std::array<std::string_view, 7> kNamesStarcoder{"starcoder", "refact", "command-r", "smollm",
                                                                 "codeshell", "exaone", "minerva-7b"};
inline constexpr std::array<std::string_view, 5> kNamesLlama3{"llama-bpe", "llama3", "llama-v3", "falcon3", "pixtral"};
inline constexpr std::array<std::string_view, 2> kNamesDbrx{"dbrx", "smaug-bpe"};
inline constexpr std::array<std::string_view, 2> kNamesGlm4{"glm4", "chatglm-bpe"};
inline constexpr std::array<std::string_view, 3> kNamesQwen2{"qwen2", "deepseek-r1-qwen", "megrez"};
inline constexpr std::array<std::string_view, 4> kNamesQwen2Plain{"stablelm2", "hunyuan", "grok-2", "solar-open"};
inline constexpr std::array<std::string_view, 1> kNamesQwen35{"qwen35"};
inline constexpr std::array<std::string_view, 3> kNamesGpt4o{"gpt-4o", "llama4", "minimax-m2"};
inline constexpr std::array<std::string_view, 1> kNamesTekken{"tekken"};
inline constexpr std::array<std::string_view, 1> kNamesKimiK2{"kimi-k2"};
inline constexpr std::array<std::string_view, 1> kNamesDeepseekV3{"deepseek-v3"};
inline constexpr std::array<std::string_view, 1> kNamesDeepseekLlm{"deepseek-llm"};
inline constexpr std::array<std::string_view, 1> kNamesDeepseekCoder{"deepseek-coder"};
inline constexpr std::array<std::string_view, 1> kNamesFalcon{"falcon"};
inline constexpr std::array<std::string_view, 3> kNamesBailing{"bailingmoe", "bailingmoe2", "llada-moe"};
}  // namespace presets

// The table. Order matters for identification: the first preset whose pipeline equals a
// tokenizer.json's wins (llama-bpe before dbrx before glm4 for the shared Llama-3 regex, told apart
// by ignore_merges; qwen2 before stablelm2, told apart by the NFC normalizer).
inline std::span<const PreTokenizerPreset> pre_tokenizer_presets() {
  using namespace presets;
  static const std::array<PreTokenizerPreset, 17> table{{
      {kNamesGpt2, PresetSplit::kGpt2, {}, false, false, false, true,
       "GPT-2 / OLMoE tokenizer.json: ByteLevel(add_prefix_space=false, use_regex=true) (fixture bytelevel_gpt2)"},
      {kNamesStarcoder, PresetSplit::kDigitsThenGpt2, {}, false, false, false, true,
       "StarCoder / Command-R tokenizer.json: Digits(individual_digits) + ByteLevel(use_regex=true)"},
      {kNamesLlama3, PresetSplit::kRegexes, kLlama3List, false, true, true, true,
       "Llama-3 tokenizer.json Split regex, ignore_merges (fixture bytelevel_llama3)"},
      {kNamesDbrx, PresetSplit::kRegexes, kLlama3List, false, false, false, true, "cl100k regex (same as Llama-3)"},
      {kNamesGlm4, PresetSplit::kRegexes, kLlama3List, false, false, false, false,
       "GLM-4 tokenizer.json Split regex (the Llama-3 one; llama.cpp CHATGLM4)"},
      {kNamesQwen2, PresetSplit::kRegexes, kQwen2List, true, false, false, true,
       "Qwen2/Qwen3 tokenizer.json: NFC + Split regex (fixture bytelevel_qwen)"},
      {kNamesQwen2Plain, PresetSplit::kRegexes, kQwen2List, false, false, false, true,
       "llama.cpp groups these with the Qwen2 regex; no normalizer"},
      {kNamesQwen35, PresetSplit::kRegexes, kQwen35List, true, false, false, true,
       "llama.cpp's quoted original regex; NFC assumed as for Qwen2 (not checked against a file)"},
      {kNamesGpt4o, PresetSplit::kRegexes, kO200kList, false, false, false, true,
       "o200k (GPT-4o, GPT-OSS) tokenizer.json Split regex (fixture sweep_o200k)"},
      {kNamesTekken, PresetSplit::kRegexes, kTekkenList, false, true, true, true,
       "llama.cpp's quoted original tekken regex, ignore_merges"},
      {kNamesKimiK2, PresetSplit::kRegexes, kKimiK2List, false, false, false, false,
       "Kimi K2 tiktoken pattern (tokenization_kimi.py), Han exclusion as lookaheads"},
      {kNamesDeepseekV3, PresetSplit::kRegexes, kDeepseekV3List, false, false, false, true,
       "llama.cpp DEEPSEEK3_LLM regexes (DeepSeek-V3 tokenizer.json)"},
      {kNamesDeepseekLlm, PresetSplit::kRegexes, kDeepseekLlmList, false, false, false, true,
       "llama.cpp DEEPSEEK_LLM regexes"},
      {kNamesDeepseekCoder, PresetSplit::kRegexes, kDeepseekCoderList, false, false, false, true,
       "llama.cpp DEEPSEEK_CODER regexes"},
      {kNamesFalcon, PresetSplit::kRegexes, kFalconList, false, false, false, false, "llama.cpp FALCON regexes"},
      {kNamesBailing, PresetSplit::kRegexes, kBailingList, false, false, false, true,
       "Ling/Bailing MoE original regex (possessive quantifiers, as PCRE2 has them)"},
      {kNamesDefault, PresetSplit::kRegexes, kDefaultList, false, false, false, false,
       "llama.cpp's default BPE regexes (a GGUF without tokenizer.ggml.pre)"},
  }};
  return table;
}

inline const PreTokenizerPreset* find_pre_tokenizer_preset(std::string_view name) {
  for (const PreTokenizerPreset& p : pre_tokenizer_presets())
    for (std::string_view n : p.names)
      if (n == name) return &p;
  return nullptr;
}

// The tokenizer.json "pre_tokenizer" value of a preset.
inline Json preset_pre_tokenizer_json(const PreTokenizerPreset& p) {
  Json steps = Json::array();
  auto byte_level = [](bool use_regex) {
    return Json{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
  };
  switch (p.split) {
    case PresetSplit::kGpt2:
      steps.push_back(byte_level(true));
      break;
    case PresetSplit::kDigitsThenGpt2:
      steps.push_back(Json{{"type", "Digits"}, {"individual_digits", true}});
      steps.push_back(byte_level(true));
      break;
    case PresetSplit::kRegexes:
      for (std::string_view r : p.regexes)
        steps.push_back(Json{{"type", "Split"},
                             {"pattern", Json{{"Regex", std::string(r)}}},
                             {"behavior", "Isolated"},
                             {"invert", false}});
      steps.push_back(byte_level(false));
      break;
  }
  return Json{{"type", "Sequence"}, {"pretokenizers", std::move(steps)}};
}

// The tokenizer.json "normalizer" value of a preset (null: none).
inline Json preset_normalizer_json(const PreTokenizerPreset& p) {
  return p.nfc ? Json{{"type", "NFC"}} : Json();
}

namespace detail {
// A pre-tokenizer config reduced to what decides its splits: one string per step, Sequences
// flattened, defaults filled in, offsets-only fields (trim_offsets) dropped. nullopt for a config
// that has something else than Split / ByteLevel / Digits.
inline void canonical_steps(const Json& node, std::vector<std::string>& out, bool& ok, int depth = 0) {
  if (!ok) return;
  if (!node.is_object() || depth > 8 || !node.contains("type") || !node["type"].is_string()) {
    ok = false;
    return;
  }
  const std::string type = node["type"].get<std::string>();
  auto flag = [&](const char* key, bool fallback) {
    auto it = node.find(key);
    return it != node.end() && it->is_boolean() ? it->get<bool>() : fallback;
  };
  if (type == "Sequence") {
    auto it = node.find("pretokenizers");
    if (it == node.end() || !it->is_array()) {
      ok = false;
      return;
    }
    for (const Json& step : *it) canonical_steps(step, out, ok, depth + 1);
  } else if (type == "ByteLevel") {
    out.push_back(fmt::format("ByteLevel prefix={} regex={}", flag("add_prefix_space", true), flag("use_regex", true)));
  } else if (type == "Digits") {
    out.push_back(fmt::format("Digits individual={}", flag("individual_digits", false)));
  } else if (type == "Split") {
    auto pattern = node.find("pattern");
    auto behavior = node.find("behavior");
    if (pattern == node.end() || !pattern->is_object() || !pattern->contains("Regex") || !(*pattern)["Regex"].is_string() ||
        behavior == node.end() || !behavior->is_string()) {
      ok = false;
      return;
    }
    out.push_back(fmt::format("Split {} invert={} {}", behavior->get<std::string>(), flag("invert", false),
                              (*pattern)["Regex"].get<std::string>()));
  } else {
    ok = false;
  }
}
}  // namespace detail

// The preset whose pipeline is the one of a tokenizer.json: same pre-tokenizer steps (after
// canonical_steps), same NFC-or-nothing normalizer, same ignore_merges if a preset has it (else
// one with the other ignore_merges). llama.cpp's converter
// identifies a tokenizer by hashing the ids it gives for a test text instead, which needs the
// Python tokenizer at conversion time; comparing the configuration needs nothing but the file,
// and says no (nullptr) for anything that is not exactly a preset.
inline const PreTokenizerPreset* identify_pre_tokenizer_preset(const Json& pre_tokenizer, const Json& normalizer,
                                                               bool ignore_merges) {
  std::vector<std::string> want;
  bool ok = true;
  detail::canonical_steps(pre_tokenizer, want, ok);
  if (!ok) return nullptr;
  bool nfc = false;
  if (!normalizer.is_null()) {
    if (!normalizer.is_object() || normalizer.value("type", std::string()) != "NFC") return nullptr;
    nfc = true;
  }
  // Exact first; then the same steps with the other ignore_merges: GGUF has no key for it
  // (llama.cpp sets it per preset), and for vocabularies converted from tiktoken (GPT-4o, GPT-OSS,
  // whose tokenizer.json says ignore_merges) it changes nothing, as tiktoken's merges reach every
  // token that a whole word can be.
  for (int pass = 0; pass < 2; ++pass) {
    for (const PreTokenizerPreset& p : pre_tokenizer_presets()) {
      if (!p.identify || p.nfc != nfc || (pass == 0 && p.ignore_merges != ignore_merges)) continue;
      std::vector<std::string> have;
      bool ok2 = true;
      detail::canonical_steps(preset_pre_tokenizer_json(p), have, ok2);
      if (ok2 && have == want) return &p;
    }
  }
  return nullptr;
}

}  // namespace moe::tokenizer
