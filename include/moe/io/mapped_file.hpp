// MappedFile: a read-only, private (copy-on-write, never written) POSIX mmap of a whole file, so
// checkpoint tensors can be used in place and only the pages actually touched become resident.
#pragma once

#include "moe/core/error.hpp"
#include "moe/core/file.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moe::io {

// Access-pattern hints forwarded to madvise(2). They never change what the bytes are, only how
// the kernel pages them in; failures of madvise are ignored (a hint is not a requirement).
enum class Access {
  normal,      // MADV_NORMAL: the kernel's default readahead
  sequential,  // MADV_SEQUENTIAL: e.g. one pass over all weights (checksums, conversion)
  random,      // MADV_RANDOM: e.g. only a few experts' rows are read per token
  will_need,   // MADV_WILLNEED: start reading the range now (prefetch)
  dont_need,   // MADV_DONTNEED: drop the range's pages (clean private pages are re-read on access)
};

class MappedFile {
 public:
  MappedFile() = default;

  // Maps the whole regular file at `path` read-only. An empty file gives an empty bytes() span
  // (mmap of length 0 is not allowed, so nothing is mapped). Throws Error(kIo) naming the path and
  // the OS error when the file cannot be opened, is not a regular file, or cannot be mapped.
  // Caveat: if another process truncates the file while it is mapped, touching the lost pages
  // raises SIGBUS; no library can defend against that short of copying the file.
  static MappedFile open(const std::filesystem::path& path) {
    MappedFile f;
    f.path_ = path;
    // RegularFile refuses FIFOs and devices without blocking; the mapping stays valid after the
    // descriptor is closed (POSIX).
    const RegularFile file = RegularFile::open(path, "file");
    const std::size_t size = file.size();
    if (size == 0) return f;
    const int fd = file.fd();
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      fail(ErrorCode::kIo, "cannot mmap {} ({} bytes): {}", path.string(), size, std::strerror(err));
    }
    f.data_ = static_cast<const std::byte*>(p);
    f.size_ = size;
    return f;
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  // Moving keeps the mapping's address, so spans and views into bytes() stay valid.
  MappedFile(MappedFile&& other) noexcept
      : path_(std::move(other.path_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      unmap();
      path_ = std::move(other.path_);
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  // The whole file. Valid until this object is destroyed or assigned to; safe to read from any
  // number of threads.
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const std::filesystem::path& path() const noexcept { return path_; }

  // Hints the kernel about the access pattern of the whole file or of a sub-range of bytes()
  // (widened to whole pages). Ranges outside the mapping are ignored.
  void advise(Access access) const noexcept { advise(access, bytes()); }
  void advise(Access access, std::span<const std::byte> range) const noexcept {
    if (data_ == nullptr || range.empty()) return;
    const auto base = reinterpret_cast<std::uintptr_t>(data_);
    auto begin = reinterpret_cast<std::uintptr_t>(range.data());
    const std::uintptr_t end = begin + range.size();
    if (begin < base || end > base + size_) return;
    const long page_size = ::sysconf(_SC_PAGESIZE);
    const auto page = static_cast<std::uintptr_t>(page_size > 0 ? page_size : 4096);
    begin -= begin % page;  // the mapping starts on a page boundary, so this stays inside it
    ::madvise(reinterpret_cast<void*>(begin), end - begin, to_madvise(access));
  }

 private:
  static int to_madvise(Access a) noexcept {
    switch (a) {
      case Access::normal: return MADV_NORMAL;
      case Access::sequential: return MADV_SEQUENTIAL;
      case Access::random: return MADV_RANDOM;
      case Access::will_need: return MADV_WILLNEED;
      case Access::dont_need: return MADV_DONTNEED;
    }
    return MADV_NORMAL;
  }

  void unmap() noexcept {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = nullptr;
    size_ = 0;
  }

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace moe::io
