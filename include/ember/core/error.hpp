#pragma once
// The error hierarchy: every public entry point checks its arguments in every build type and throws one of
// these with a message that names the layer or file, what was expected and what came.
#include <stdexcept>
#include <string>

namespace ember {

// A tensor of the wrong shape reached a layer or function.
struct shape_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// A file could not be opened, read or written.
struct io_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A file was read but its contents are not what the format says (bad magic, truncated, bad cell, ...).
struct format_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ember
