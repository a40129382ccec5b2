// The documentation's own checks. The C++ blocks of docs/*.md are compiled into this executable as well (see the
// end of tests/CMakeLists.txt and tests/docs_extract.cpp); here: the version agrees everywhere, and every file
// path the pages name exists.
#include <doctest/doctest.h>

#include <ember/version.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::filesystem::path source_dir = EMBER_SOURCE_DIR;

}  // namespace

TEST_CASE("the version macros agree with CMake's project(VERSION) and with CHANGELOG.md") {
  // EMBER_PROJECT_VERSION comes from CMake's PROJECT_VERSION.
  CHECK(std::string(EMBER_VERSION_STRING) == EMBER_PROJECT_VERSION);
  CHECK(std::string(ember::version()) == EMBER_VERSION_STRING);
  const std::string parts = std::to_string(EMBER_VERSION_MAJOR) + "." + std::to_string(EMBER_VERSION_MINOR) + "." +
                            std::to_string(EMBER_VERSION_PATCH);
  CHECK(parts == EMBER_VERSION_STRING);
  static_assert(EMBER_VERSION_MAJOR >= 0 && EMBER_VERSION_MINOR >= 0 && EMBER_VERSION_PATCH >= 0);

  const std::string changelog = read_text(source_dir / "CHANGELOG.md");
  CHECK_MESSAGE(changelog.find("## [" + std::string(EMBER_VERSION_STRING) + "]") != std::string::npos,
                "CHANGELOG.md has no section for " << EMBER_VERSION_STRING);
}

TEST_CASE("every repository path named in docs/*.md exists") {
  // Paths such as include/ember/nn/linear.hpp or tests/gradcheck.hpp; placeholders (<layer>) are not paths.
  const std::regex path_re(R"(\b((?:include|tests|benchmarks|examples|scripts|cmake|tools)/[A-Za-z0-9_./-]*[A-Za-z0-9_]\.(?:hpp|cpp|py|sh|cmake|txt|in)))");
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(source_dir / "docs")) {
    if (entry.path().extension() != ".md") continue;
    const std::string text = read_text(entry.path());
    std::set<std::string> seen;
    for (std::sregex_iterator it(text.begin(), text.end(), path_re), end; it != end; ++it) {
      const std::string p = (*it)[1].str();
      if (!seen.insert(p).second) continue;
      ++checked;
      CHECK_MESSAGE(std::filesystem::exists(source_dir / p),
                    entry.path().filename().string() << " names " << p << ", which does not exist");
    }
  }
  MESSAGE(checked << " paths checked");
  CHECK(checked > 0);
}
