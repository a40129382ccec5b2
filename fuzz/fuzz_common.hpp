#pragma once
// Shared by the fuzz targets: ember's readers take paths, so each input is written to a per-process file
// (in /dev/shm when there is one, so the file system is not the bottleneck) and the reader is run on it.
// A reader may throw ember's errors (the documented reaction to bad input); anything else escaping, a
// sanitizer report, a leak or a giant allocation is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

inline const std::string& input_path(const char* suffix) {
  static const std::string path = [suffix] {
    const char* dir = std::getenv("EMBER_FUZZ_TMP");
    if (!dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/ember-fuzz-" + std::to_string(static_cast<long>(getpid())) + suffix;
  }();
  return path;
}

inline const std::string& write_input(const std::uint8_t* data, std::size_t size, const char* suffix) {
  const std::string& path = input_path(suffix);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();  // the harness, not the library, failed
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace fuzz
