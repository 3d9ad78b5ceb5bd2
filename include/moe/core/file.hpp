// Opening files a user names: only regular files (or links to them) are read, never blocking on a
// FIFO or reading a device without end, and never more than a per-kind size cap.
#pragma once

#include "moe/core/error.hpp"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moe {

// An open, read-only file descriptor of a regular file; closes it on destruction.
class RegularFile {
 public:
  // Opens `path` (following links) and checks that it is a regular file. The open uses
  // O_NONBLOCK, so a FIFO or a device is refused by the fstat check instead of blocking the
  // caller; for a regular file the flag has no effect. `what` names the kind of file in messages
  // ("config.json", "tokenizer.json", ...). Errors: kIo naming the path, with the OS error or
  // "not a regular file (FIFO)" etc.
  static RegularFile open(const std::filesystem::path& path, std::string_view what = "file") {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT) fail(ErrorCode::kIo, "cannot read {} {}: file does not exist", what, path.string());
      fail(ErrorCode::kIo, "cannot open {} {}: {}", what, path.string(), std::strerror(err));
    }
    RegularFile f(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      fail(ErrorCode::kIo, "cannot stat {} {}: {}", what, path.string(), std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      fail(ErrorCode::kIo, "cannot read {} {}: not a regular file ({})", what, path.string(), kind_of(st.st_mode));
    }
    if (st.st_size < 0) fail(ErrorCode::kIo, "cannot read {} {}: negative size {}", what, path.string(), st.st_size);
    f.size_ = static_cast<std::size_t>(st.st_size);
    return f;
  }

  RegularFile(RegularFile&& o) noexcept : fd_(std::exchange(o.fd_, -1)), size_(o.size_) {}
  RegularFile& operator=(RegularFile&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
      size_ = o.size_;
    }
    return *this;
  }
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;
  ~RegularFile() { close(); }

  int fd() const noexcept { return fd_; }
  // The size fstat reported when the file was opened.
  std::size_t size() const noexcept { return size_; }

 private:
  explicit RegularFile(int fd) noexcept : fd_(fd) {}
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  static std::string_view kind_of(mode_t mode) noexcept {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
  }

  int fd_ = -1;
  std::size_t size_ = 0;
};

// The whole content of the regular file `path`, at most `max_bytes` long. Errors (kIo, naming
// `what`, the path and the sizes): not a regular file (see RegularFile::open), larger than
// max_bytes (checked before anything is allocated, and again while reading in case the file
// grows), or a read error.
inline std::string read_file(const std::filesystem::path& path, std::size_t max_bytes, std::string_view what = "file") {
  return catch_as_error("read_file", [&]() -> std::string {
    const RegularFile f = RegularFile::open(path, what);
    if (f.size() > max_bytes) {
      fail(ErrorCode::kIo, "cannot read {} {}: {} bytes exceed the limit of {} bytes for this kind of file", what,
           path.string(), f.size(), max_bytes);
    }
    std::string text(f.size(), '\0');
    std::size_t got = 0;
    for (;;) {
      if (got == text.size()) {
        // The file may have grown since fstat: read on, up to one byte past the cap.
        if (text.size() > max_bytes) break;
        text.resize(std::min(max_bytes + 1, std::max<std::size_t>(2 * text.size(), 4096)));
      }
      const ::ssize_t n = ::read(f.fd(), text.data() + got, text.size() - got);
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        fail(ErrorCode::kIo, "error while reading {} {}: {}", what, path.string(), std::strerror(err));
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got > max_bytes) {
      fail(ErrorCode::kIo, "cannot read {} {}: it grew past the limit of {} bytes while being read", what,
           path.string(), max_bytes);
    }
    text.resize(got);
    return text;
  });
}

}  // namespace moe
