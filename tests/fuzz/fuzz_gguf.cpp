// libFuzzer target: GgufFile::parse over arbitrary bytes must either succeed with every metadata
// value and tensor inside the buffer or throw moe::Error; never crash, hang, read out of bounds
// or allocate more than the input's size at once (a larger request would mean a count or length
// from the file was trusted before being checked against the bytes that remain).
#include <moe/io/gguf.hpp>

#include <sanitizer/allocator_interface.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <span>
#include <vector>

namespace {

// While the parser runs, any single allocation above this many bytes aborts (through ASan's
// malloc hook): the input's size, or 4 KiB for the error message of a tiny input.
std::size_t g_allocation_limit = 0;
bool g_parsing = false;

void on_malloc(const volatile void*, std::size_t n) {
  if (g_parsing && n > g_allocation_limit) {
    g_parsing = false;
    std::fprintf(stderr, "fuzz_gguf: the parser allocated %zu bytes at once (limit %zu)\n", n, g_allocation_limit);
    std::abort();
  }
}
void on_free(const volatile void*) {}

// Reads every value of a (possibly nested) array, checking each element lies in [lo, hi).
void walk(const moe::io::GgufValue& v, const std::byte* lo, const std::byte* hi, volatile std::size_t& sink) {
  if (v.data() < lo || v.data() + v.encoded_size() > hi) std::abort();
  switch (v.type()) {
    case moe::io::GgufValueType::string: sink = sink + v.get<std::string_view>().size(); break;
    case moe::io::GgufValueType::array: {
      const auto a = v.get<moe::io::GgufArray>();
      std::size_t n = 0;
      for (const moe::io::GgufValue e : a) {
        walk(e, lo, hi, sink);
        ++n;
      }
      if (n != a.size()) std::abort();
      break;
    }
    default: sink = sink + v.describe().size();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // A copy in a buffer of exactly `size` bytes, so ASan sees any read past the end.
  static const int installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
  (void)installed;
  std::vector<std::byte> buffer(size);
  if (size != 0) std::memcpy(buffer.data(), data, size);
  std::string name = "fuzz.gguf";
  try {
    g_allocation_limit = std::max<std::size_t>(size, 4096);
    g_parsing = true;
    auto parsed = moe::io::GgufFile::parse(buffer, std::move(name));
    g_parsing = false;
    const auto& f = parsed;
    const std::byte* lo = buffer.data();
    const std::byte* hi = buffer.data() + buffer.size();
    volatile std::size_t sink = 0;
    for (std::size_t i = 0; i < f.metadata_count(); ++i) {
      const auto kv = f.metadata_entry(i);
      if (!f.find(kv.key)) std::abort();
      walk(kv.value, lo, hi, sink);
    }
    if (f.data_offset() > size || (f.tensor_count() != 0 && f.data_offset() % f.alignment() != 0)) std::abort();
    for (const auto& t : f.tensors()) {
      if (t.bytes.data() < lo + f.data_offset() || t.bytes.data() + t.bytes.size() > hi) std::abort();
      if (t.bytes.size() != t.element_count / t.type_info->block_elements * t.type_info->block_bytes) std::abort();
      if (t.ne[0] % t.type_info->block_elements != 0 || t.offset % f.alignment() != 0) std::abort();
      const auto found = f.find_tensor(t.name);
      if (!found || found->file_offset != t.file_offset) std::abort();
      for (const std::byte b : t.bytes) sink = sink + std::to_integer<unsigned>(b);
    }
  } catch (const moe::Error&) {
    g_parsing = false;
  }
  return 0;
}
