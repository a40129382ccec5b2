#pragma once
// Scratch files for the tests that read and write files: one directory per test area under the build's
// EMBER_TEST_TMP_DIR, plain byte writers (deliberately not atomic: the tests write broken and truncated files on
// purpose), and the message of an expected exception.
#include <doctest/doctest.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace scratch {

// A check that needs something outside the repository (PyTorch, a tool): in CI (CI=true) its absence is a
// failure, since the check would not run at all; elsewhere it is a visible skip. Returns whether to go on.
inline bool prerequisite(bool available, const std::string& what) {
  if (available) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true")
    FAIL_CHECK("CI=true but " << what << ": this test cannot run its check");
  else
    MESSAGE("skipped: " << what);
  return false;
}

using Bytes = std::vector<unsigned char>;

// EMBER_TEST_TMP_DIR/<area>/<name>, the directory created on first use.
inline std::string path(const std::string& area, const std::string& name) {
  const std::filesystem::path dir = std::filesystem::path(EMBER_TEST_TMP_DIR) / area;
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out.good(), "cannot write " << path);
}

inline void write_file(const std::string& path, const std::string& text) {
  write_file(path, Bytes(text.begin(), text.end()));
}

inline Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The message of the exception of type E that f throws; "" and a failed check if it throws nothing or another.
template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("threw another exception: " << e.what());
    return "";
  }
  FAIL_CHECK("did not throw");
  return "";
}

}  // namespace scratch
