#pragma once
// Softmax along one axis of an outer x cols x inner array (dim 1 of N x C x ... with inner = the rest), and
// its backward.
//   y = exp(x - max) / sum exp(x - max)          (the max shift keeps exp from overflowing)
//   dx = y * (dy - sum_j dy_j y_j)
#include <cmath>
#include <cstdint>

namespace ember::kernels {

template <typename T>
void softmax_forward(const T* x, T* y, std::int64_t outer, std::int64_t cols, std::int64_t inner = 1) {
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t k = 0; k < inner; ++k) {
      const T* xr = x + o * cols * inner + k;
      T* yr = y + o * cols * inner + k;
      T mx = xr[0];
      for (std::int64_t j = 1; j < cols; ++j) mx = xr[j * inner] > mx ? xr[j * inner] : mx;
      T sum = 0;
      for (std::int64_t j = 0; j < cols; ++j) sum += (yr[j * inner] = std::exp(xr[j * inner] - mx));
      const T inv = T(1) / sum;
      for (std::int64_t j = 0; j < cols; ++j) yr[j * inner] *= inv;
    }
}

template <typename T>
void softmax_backward(const T* y, const T* dy, T* dx, std::int64_t outer, std::int64_t cols, std::int64_t inner = 1) {
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t k = 0; k < inner; ++k) {
      const std::int64_t base = o * cols * inner + k;
      T dot = 0;
      for (std::int64_t j = 0; j < cols; ++j) dot += dy[base + j * inner] * y[base + j * inner];
      for (std::int64_t j = 0; j < cols; ++j)
        dx[base + j * inner] = y[base + j * inner] * (dy[base + j * inner] - dot);
    }
}

}  // namespace ember::kernels
