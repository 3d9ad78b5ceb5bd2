// Helpers shared by the GGUF tests: little-endian byte building for hand-made files, the typed
// error check, and owned bytes parsed together.
#pragma once

#include <catch2/catch.hpp>

#include <moe/core/error.hpp>
#include <moe/io/gguf.hpp>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace moe::test {

// Appends little-endian encodings: the raw material of hand-made (often broken) GGUF files.
struct Bytes {
  std::vector<std::byte> b;
  Bytes& u8(std::uint8_t v) {
    b.push_back(static_cast<std::byte>(v));
    return *this;
  }
  Bytes& u32(std::uint32_t v) { return le(v, 4); }
  Bytes& u64(std::uint64_t v) { return le(v, 8); }
  Bytes& raw(std::string_view s) {
    for (char c : s) b.push_back(static_cast<std::byte>(c));
    return *this;
  }
  Bytes& str(std::string_view s) { return u64(s.size()).raw(s); }
  Bytes& header(std::uint32_t version, std::uint64_t n_tensors, std::uint64_t n_kv) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  Bytes& pad_to(std::size_t alignment) {
    while (b.size() % alignment != 0) b.push_back(std::byte{0});
    return *this;
  }
  Bytes& zeros(std::size_t n) {
    b.resize(b.size() + n);
    return *this;
  }

 private:
  Bytes& le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xffu));
    return *this;
  }
};

// Runs f, requires a moe::Error with `code` whose message contains every piece of `parts`.
template <class F>
void require_gguf_error(F&& f, ErrorCode code, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(e.code() == code);
    for (const auto& p : parts) CHECK_THAT(e.what(), Catch::Matchers::Contains(p));
    return;
  }
  FAIL("no moe::Error thrown");
}

// Bytes and the GgufFile parsed from them, kept together (the file's views point into bytes).
struct OwnedGguf {
  explicit OwnedGguf(std::vector<std::byte> b, std::string name = "mem.gguf")
      : bytes(std::move(b)), file(io::GgufFile::parse(bytes, std::move(name))) {}
  const io::GgufFile* operator->() const { return &file; }
  std::vector<std::byte> bytes;
  io::GgufFile file;
};

inline void parse_invalid(const std::vector<std::byte>& bytes) { (void)io::GgufFile::parse(bytes, "mem.gguf"); }

template <class T>
std::vector<std::byte> as_bytes_of(const std::vector<T>& v) {
  std::vector<std::byte> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

}  // namespace moe::test
