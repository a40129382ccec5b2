#pragma once
// Shapes: a plain vector of extents, PyTorch-style printing, and overflow-checked element counts.
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/core/error.hpp"

namespace ember {

using Shape = std::vector<std::int64_t>;

// "[32, 1, 28, 28]", as PyTorch prints torch.Size.
inline std::string to_string(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

// Number of elements; throws on negative extents or when the product overflows int64, so a corrupt header
// can never turn into a wrapped-around (small) allocation. A zero extent makes the count 0 whatever the others
// are (as PyTorch: torch.empty(2**40, 2**40, 0) is a valid empty tensor).
inline std::int64_t shape_numel(const Shape& shape) {
  bool empty = false;
  for (std::int64_t d : shape) {
    if (d < 0) throw shape_error("shape " + to_string(shape) + " has a negative extent");
    empty = empty || d == 0;
  }
  if (empty) return 0;
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    if (n > std::numeric_limits<std::int64_t>::max() / d)
      throw shape_error("shape " + to_string(shape) + " has more elements than fit in int64");
    n *= d;
  }
  return n;
}

}  // namespace ember

namespace ember {

// A 2-d size given as one int (square) or as {h, w}, as PyTorch's kernel_size, stride and padding arguments.
struct Size2 {
  std::int64_t h, w;
  Size2(std::int64_t both) : h(both), w(both) {}  // NOLINT: implicit by design, as in PyTorch
  Size2(std::int64_t h_, std::int64_t w_) : h(h_), w(w_) {}
  // A bool is never a size: without this it would convert to 0 or 1 (Conv2d(3, 8, 3, 1, 1, false), bias sixth
  // as before 0.2.0, would mean dilation 0). A template so that an int argument still picks the int64 one.
  template <typename B, std::enable_if_t<std::is_same_v<B, bool>, int> = 0>
  Size2(B) = delete;
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  // "(3, 3)", as PyTorch prints a tuple.
  std::string str() const { return "(" + std::to_string(h) + ", " + std::to_string(w) + ")"; }
};

}  // namespace ember
