#pragma once
// im2row: a convolution's patches as rows (pixels x (channel, ky, kx)), the layout in which the int8 and bf16
// products (gemm_int8.hpp, gemm_bf16.hpp) take their activations, with weights [out_channels x (c, ky, kx)] as
// a Conv's weight is stored. `pad` fills the border: 0 for floats, the zero point for u8. groups == 1 only.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ember/kernels/im2col.hpp"

namespace ember::kernels {

// img: channels x height x width; rows: out_h * out_w rows of col_rows() values.
template <typename T>
void im2row(const Conv2dGeometry& g, const T* img, T* rows, T pad) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), k = g.col_rows();
  for (std::int64_t oy = 0; oy < oh; ++oy)
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      T* r = rows + (oy * ow + ox) * k;
      const std::int64_t x0 = ox * g.stride_w - g.pad_w;
      const bool cols_in = x0 >= 0 && x0 + g.span_w() <= g.width;  // the common case: no test per tap
      for (std::int64_t c = 0; c < g.channels; ++c) {
        const T* plane = img + c * g.height * g.width;
        for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
          const std::int64_t y = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          const bool row_in = y >= 0 && y < g.height;
          if (row_in && cols_in) {
            const T* src = plane + y * g.width + x0;
            for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) *r++ = src[kj * g.dilation_w];
            continue;
          }
          for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
            const std::int64_t x = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            *r++ = row_in && x >= 0 && x < g.width ? plane[y * g.width + x] : pad;
          }
        }
      }
    }
}

// The same from an image stored channels last (height x width x channels), each row ordered (ky, kx, channel):
// a kernel row inside the image is one contiguous run of kernel_w * channels values, copied at once. The
// weights must be ordered the same way ([out_channels x (ky, kx, c)]).
template <typename T>
void im2row_hwc(const Conv2dGeometry& g, const T* img, T* rows, T pad) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), c = g.channels, k = g.col_rows();
  const auto bytes = [](std::int64_t n) { return static_cast<std::size_t>(n) * sizeof(T); };
  for (std::int64_t oy = 0; oy < oh; ++oy)
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      T* r = rows + (oy * ow + ox) * k;
      const std::int64_t x0 = ox * g.stride_w - g.pad_w;
      const bool run = g.dilation_w == 1 && x0 >= 0 && x0 + g.kernel_w <= g.width;
      for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
        const std::int64_t y = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
        const bool row_in = y >= 0 && y < g.height;
        if (row_in && run) {
          std::memcpy(r, img + (y * g.width + x0) * c, bytes(g.kernel_w * c));
          r += g.kernel_w * c;
          continue;
        }
        for (std::int64_t kj = 0; kj < g.kernel_w; ++kj, r += c) {
          const std::int64_t x = x0 + kj * g.dilation_w;
          if (row_in && x >= 0 && x < g.width)
            std::memcpy(r, img + (y * g.width + x) * c, bytes(c));
          else
            std::fill(r, r + c, pad);
        }
      }
    }
}

}  // namespace ember::kernels
