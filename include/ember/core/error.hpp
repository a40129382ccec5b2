#pragma once
// The error hierarchy: every public entry point checks its arguments in every build type and throws one of
// these with a message that names the layer or file, what was expected and what came.
#include <cstdint>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>

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

// Training stopped because the loss is no longer finite.
class training_error : public std::runtime_error {
 public:
  training_error(std::int64_t epoch, std::int64_t step, double loss, const std::string& what)
      : std::runtime_error(what), epoch_(epoch), step_(step), loss_(loss) {}
  std::int64_t epoch() const noexcept { return epoch_; }  // 1-based
  std::int64_t step() const noexcept { return step_; }    // 1-based, within the epoch
  double loss() const noexcept { return loss_; }

 private:
  std::int64_t epoch_, step_;
  double loss_;
};
// Bytes from a file, fit for a message: printable ASCII as is, anything else (a NUL, a control character,
// binary data, UTF-8 continuation bytes) as \xNN, so a message is never cut short or garbled by what it quotes.
// At most `max_bytes` of the input are shown, then "...".
inline std::string escape_bytes(std::string_view bytes, std::size_t max_bytes = 40) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  const std::size_t n = bytes.size() < max_bytes ? bytes.size() : max_bytes;
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (bytes.size() > n) out += "...";
  return out;
}

}  // namespace ember
