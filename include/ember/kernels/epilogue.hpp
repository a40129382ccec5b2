#pragma once
// What a product's last slice may apply to each row of C before storing it, so the layers that follow a
// convolution at inference (ReLU, then an eval-mode BatchNorm: an affine map per channel, one channel per row
// of the convolution's output) cost no pass of their own over its output:
//   v -> relu ? (v <= 0 ? 0 : v) : v            (NaN passes through, as ReLU's)
//   v -> (v - center[r]) * scale[r] + shift[r]   on row r, when scale is set
// The micro-kernels compute the second line as one FMA on AVX-512 and AVX2; apply_rows (the portable kernel and
// the dot-product and double paths) writes the expression as BatchNorm's eval loop does, so a build that
// contracts one contracts both.
#include <cstdint>

#include "ember/kernels/relu.hpp"

namespace ember::kernels {

template <typename T>
struct RowEpilogue {
  bool relu = false;
  const T* center = nullptr;  // with scale and shift, or all three null
  const T* scale = nullptr;
  const T* shift = nullptr;

  // The same epilogue for the rows from `first` on.
  RowEpilogue from_row(std::int64_t first) const {
    return {relu, center ? center + first : nullptr, scale ? scale + first : nullptr, shift ? shift + first : nullptr};
  }
};

template <typename T>
inline T apply_row(T v, const RowEpilogue<T>& e, std::int64_t r) {
  if (e.relu) v = relu_value(v);
  if (e.scale) v = (v - e.center[r]) * e.scale[r] + e.shift[r];
  return v;
}

// The epilogue over C[m x n] (row stride ldc), in place.
template <typename T>
void apply_rows(T* c, std::int64_t ldc, std::int64_t m, std::int64_t n, const RowEpilogue<T>& e) {
  for (std::int64_t i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    for (std::int64_t j = 0; j < n; ++j) row[j] = apply_row(row[j], e, i);
  }
}

}  // namespace ember::kernels
