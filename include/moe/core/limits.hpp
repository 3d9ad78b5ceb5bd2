// The limits moecpp puts on what a file, a config or a caller may ask for. Each one is far above
// what any real checkpoint needs (the comment says how far) and exists so that a hostile input
// fails fast with a typed error instead of exhausting memory, stack or CPU. The README lists them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moe::limits {

// ---- file sizes (bytes): a file of its kind larger than this is refused before it is read ----
inline constexpr std::size_t kMaxConfigJsonBytes = std::size_t{16} << 20;      // config.json: real ones < 100 KB
inline constexpr std::size_t kMaxGenerationConfigBytes = std::size_t{1} << 20;  // generation_config.json: < 2 KB
inline constexpr std::size_t kMaxIndexJsonBytes = std::size_t{256} << 20;      // *.safetensors.index.json: DeepSeek-V3's is 9 MB
inline constexpr std::size_t kMaxTokenizerJsonBytes = std::size_t{512} << 20;  // tokenizer.json: the largest seen are ~35 MB
inline constexpr std::size_t kMaxTokenizerConfigBytes = std::size_t{64} << 20; // tokenizer_config.json: < 10 MB
inline constexpr std::size_t kMaxJsonFileBytes = std::size_t{256} << 20;       // any other JSON file (reference.json, ...)
inline constexpr std::size_t kMaxTextFileBytes = std::size_t{1} << 30;         // a prompt or corpus file given to a tool
// safetensors: the header length the format's reference implementation accepts.
inline constexpr std::size_t kMaxSafetensorsHeaderBytes = std::size_t{100} << 20;

// ---- JSON structure ----
// Nesting depth of any JSON document (config.json nests 3-4 levels, tokenizer.json 6-8). Deeper
// documents are refused while parsing, so nothing recursive (copy, compare, dump) ever sees one.
inline constexpr std::size_t kMaxJsonDepth = 64;
// A safetensors header is {name: {dtype, shape: [...], data_offsets: [...]}}: 3 levels.
inline constexpr std::size_t kMaxSafetensorsHeaderDepth = 3;
// Characters of a JSON value quoted in an error message.
inline constexpr std::size_t kMaxDescribedJsonChars = 80;

// ---- model configuration ----
inline constexpr std::int64_t kMaxDimension = std::int64_t{1} << 24;  // any single size (hidden, vocab, d_ff, ...)
inline constexpr std::int64_t kMaxLayers = 1024;     // real models: 24-126 layers
inline constexpr std::int64_t kMaxExperts = 8192;    // real models: 8-512 routed experts (Kimi K2 384, Qwen3-Next 512)
inline constexpr std::int64_t kMaxTopK = 512;        // real models: 1-22 experts per token
inline constexpr std::int64_t kMaxExpertGroups = 256; // DeepSeek-V3: 8 groups

// ---- runtime arguments ----
inline constexpr std::int64_t kMaxContext = std::int64_t{1} << 24;  // tokens per sequence (16.7 M)
inline constexpr std::int64_t kMaxParallelSequences = 4096;        // sequences decoded together
inline constexpr int kMaxThreads = 1024;                           // OpenMP threads of a forward pass

// ---- tokenizer ----
// PCRE2 limits for the regexes of tokenizer.json: per match call, backtracking steps (PCRE2's
// own default is 10 M) and the depth of nested backtracking. The per-text budget bounds the work
// of all match calls over one text to kRegexBytesPerTextByte times its length (see regex.hpp).
inline constexpr std::uint32_t kRegexMatchLimit = 10'000'000;
inline constexpr std::uint32_t kRegexDepthLimit = 100'000;
inline constexpr std::size_t kRegexBytesPerTextByte = 1024;

}  // namespace moe::limits
