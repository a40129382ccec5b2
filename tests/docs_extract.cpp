// Turns the C++ code blocks of docs/*.md into translation units, so that every example in the documentation is
// compiled (and most are run) by the test suite, and a page can never drift from the real API.
//
//   docs_extract tests   OUT.cpp PAGE.md...   every ```cpp block of the pages, for the test_docs executable:
//       ```cpp               statements: the body of a doctest TEST_CASE named "<page>:<line>", run by ctest
//       ```cpp compile-only  statements that need files or data the test does not have: compiled, not run
//       ```cpp file          declarations at file scope (a class, a function, a TEST_CASE), in page order
//     Blocks see <ember/ember.hpp> and `using namespace ember;`, as the pages say. In the blocks that run, a
//     declaration whose comment starts with a value (`std::int64_t n = ds.size();  // 4`, `// "relu1"`,
//     `// {2, 2}`, `// [3, 2]` for a tensor's shape, `// 2/3`) also checks it: the value a page shows is the
//     value the code gives.
//   docs_extract program OUT.cpp PAGE.md      the ```cpp blocks of one page, concatenated: a whole program
//                                             (```cpp compile-only blocks become unused functions)
//   --check (before the mode)                 compares with an existing OUT.cpp instead of writing it:
//                                             exit 1 when the page changed since the build made OUT.cpp
//
// Other fences (```text, ```cmake, ```sh, ...) are prose and left alone. #line directives point compiler errors
// at the markdown.
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Block {
  std::string page;  // as given on the command line
  int line = 0;      // of the first code line
  std::string kind;  // "", "compile-only", "file"
  std::string code;
};

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::vector<Block> read_blocks(const std::string& page) {
  std::ifstream in(page);
  if (!in) throw std::runtime_error("cannot open " + page);
  std::vector<Block> blocks;
  std::string line;
  int n = 0;
  bool in_fence = false, keep = false;
  int fence_line = 0;
  Block current;
  while (std::getline(in, line)) {
    ++n;
    const auto indent = line.find_first_not_of(' ');
    const bool fence = indent != std::string::npos && line.compare(indent, 3, "```") == 0;
    if (!in_fence) {
      if (!fence) continue;
      in_fence = true;
      fence_line = n;
      std::istringstream info(line.substr(indent + 3));
      std::string lang, kind, extra;
      info >> lang >> kind >> extra;
      keep = lang == "cpp";
      if (keep && !(kind.empty() || kind == "compile-only" || kind == "file"))
        throw std::runtime_error(page + ":" + std::to_string(n) + ": unknown block kind '" + kind +
                                 "' (expected nothing, compile-only or file)");
      current = Block{page, n + 1, kind, ""};
      continue;
    }
    if (fence && line.find_first_not_of("` ") == std::string::npos) {
      in_fence = false;
      if (keep) blocks.push_back(current);
      continue;
    }
    if (keep) current.code += line + "\n";
  }
  if (in_fence) throw std::runtime_error(page + ":" + std::to_string(fence_line) + ": unterminated code fence");
  return blocks;
}

// Appends a CHECK to each line `T name = expr;  // value` whose comment starts with a value (a number, a
// fraction, a string, a bool, a {list} or a [shape]) that ends the comment or is followed by ; : or , (on the
// same line, so #line numbering holds).
std::string with_value_checks(const std::string& code) {
  static const std::regex decl(R"(^\s*(?:const\s+)?[A-Za-z_][\w:<>, ]*?[\s*&]+([A-Za-z_]\w*)\s*=\s*[^;]+;\s*//\s*(.*)$)");
  static const std::regex value(
      R"(^(-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?(?:/[0-9]+)?|"[^"]*"|true|false|\{[-0-9., ]*\}|\[[0-9, ]*\])\s*(?:$|[;:,].*))");
  std::istringstream in(code);
  std::string out, line;
  while (std::getline(in, line)) {
    std::smatch d, v;
    std::string comment;
    if (std::regex_match(line, d, decl) && (comment = d[2].str(), std::regex_match(comment, v, value))) {
      const std::string var = d[1], x = v[1];
      if (x[0] == '"')
        line += "  CHECK(std::string(" + var + ") == " + x + ");";
      else if (x == "true" || x == "false")
        line += "  CHECK(" + var + " == " + x + ");";
      else if (x[0] == '{')
        line += "  CHECK(" + var + " == std::decay_t<decltype(" + var + ")>" + x + ");";
      else if (x[0] == '[')
        line += "  CHECK(to_string(" + var + ".shape()) == \"" + x + "\");";
      else if (x.find('/') != std::string::npos)
        line += "  CHECK(static_cast<double>(" + var + ") == doctest::Approx(" + x.substr(0, x.find('/')) +
                ".0 / " + x.substr(x.find('/') + 1) + "));";
      else
        line += "  CHECK(static_cast<double>(" + var + ") == doctest::Approx(" + x + ").epsilon(1e-6));";
    }
    out += line + "\n";
  }
  return out;
}

std::string line_directive(const Block& b) {
  return "#line " + std::to_string(b.line) + " \"" + b.page + "\"\n";
}

std::string tests_unit(const std::vector<std::string>& pages) {
  std::string out =
      "// Generated by docs_extract from the documentation pages; edit the pages, not this file.\n"
      "#include <doctest/doctest.h>\n#include <ember/ember.hpp>\n"
      // The pages print as a user's program does; the umbrella no longer brings <iostream> along.
      "#include <iostream>\n\nusing namespace ember;\n\n";
  int compile_only = 0;
  for (const auto& page : pages) {
    const auto blocks = read_blocks(page);
    for (const auto& b : blocks) {
      const std::string id = base_name(page) + ":" + std::to_string(b.line - 1);
      if (b.kind == "file") {
        out += "// " + id + "\n" + line_directive(b) + b.code + "\n";
      } else if (b.kind == "compile-only") {
        out += "[[maybe_unused]] static void docs_compile_only_" + std::to_string(++compile_only) + "() {\n" +
               line_directive(b) + b.code + "}\n\n";
      } else {
        out += "TEST_CASE(\"docs: " + id + "\") {\n" + line_directive(b) + with_value_checks(b.code) + "}\n\n";
      }
    }
  }
  return out;
}

std::string program_unit(const std::string& page) {
  const auto blocks = read_blocks(page);
  if (blocks.empty()) throw std::runtime_error(page + ": no ```cpp blocks");
  std::string out = "// Generated by docs_extract from " + base_name(page) + "; edit the page, not this file.\n";
  int compile_only = 0;
  for (const auto& b : blocks) {
    if (b.kind == "compile-only")
      out += "[[maybe_unused]] static void docs_compile_only_" + std::to_string(++compile_only) + "() {\n" +
             line_directive(b) + b.code + "}\n";
    else
      out += line_directive(b) + b.code;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool check = !args.empty() && args[0] == "--check";
  if (check) args.erase(args.begin());
  if (args.size() < 3 || (args[0] != "tests" && args[0] != "program") || (args[0] == "program" && args.size() != 3)) {
    std::cerr << "usage: docs_extract [--check] tests OUT.cpp PAGE.md...\n"
                 "       docs_extract [--check] program OUT.cpp PAGE.md\n";
    return 2;
  }
  try {
    const std::string text = args[0] == "tests" ? tests_unit({args.begin() + 2, args.end()}) : program_unit(args[2]);
    if (check) {
      std::ifstream in(args[1]);
      std::stringstream old;
      old << in.rdbuf();
      if (!in || old.str() != text) {
        std::cerr << "docs_extract: " << args[1] << " is not what the pages hold now: the compiled examples are "
                  << "stale; rebuild (cmake --build) to compile the pages as they are\n";
        return 1;
      }
      return 0;
    }
    std::ofstream out(args[1]);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + args[1]);
  } catch (const std::exception& e) {
    std::cerr << "docs_extract: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
