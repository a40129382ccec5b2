#pragma once
// Whole-file reads and atomic writes, shared by the data readers, image I/O, checkpoints and the examples'
// outputs. Reads refuse directories (fopen succeeds on one on Linux) and size their buffer from fstat, never
// from a seek. Writes go to a temporary file in the target's directory, are flushed and fsync'ed, then renamed
// over the target: a reader never sees a half-written file, and a failed write leaves the old one in place.
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"

namespace ember {

// The bytes of a file, as they are on disk (data::read_bytes adds gunzipping). io_error names the file.
inline std::vector<unsigned char> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw io_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<unsigned char> bytes;
  // On ext4 a directory's seek-to-end position is LLONG_MAX: a reserve() of 8 EiB. fstat tells the truth.
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      std::fclose(f);
      throw io_error(path + ": cannot read: is a directory");
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) bytes.reserve(static_cast<std::size_t>(st.st_size));
  }
  unsigned char chunk[1 << 16];
  for (;;) {
    const std::size_t got = std::fread(chunk, 1, sizeof chunk, f);
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof chunk) break;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw io_error(path + ": read error after " + std::to_string(bytes.size()) + " bytes");
  return bytes;
}

// A file written under a temporary name (`<path>.tmp-<pid>-<n>`) and renamed over `path` by commit(); the
// temporary is removed if commit() is never reached. Every failure is an io_error naming `path`.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};
    tmp_ = path_ + ".tmp-" + std::to_string(static_cast<long>(::getpid())) + "-" + std::to_string(counter++);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0) fail("cannot create " + tmp_);
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }

  void write(const void* bytes, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(bytes);
    while (n > 0) {
      const ::ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("write failed");
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) fail("fsync failed");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail("cannot rename " + tmp_ + " over it");
    committed_ = true;
    // Make the rename itself durable; a failure here leaves a complete file in place, so it is not an error.
    const auto slash = path_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const std::string reason = std::strerror(errno);
    throw io_error("cannot write " + path_ + ": " + what + ": " + reason);
  }

  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

inline void write_file_atomic(const std::string& path, const void* bytes, std::size_t n) {
  AtomicFile file(path);
  file.write(bytes, n);
  file.commit();
}

inline void write_file_atomic(const std::string& path, const std::vector<unsigned char>& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

inline void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

}  // namespace ember
