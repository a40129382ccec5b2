#pragma once
// im2col / col2im for one image: the unrolling that turns a convolution into a GEMM (kernels/conv2d.hpp).
//
// Geometry, as PyTorch's Conv2d:
//   out_h = (h + 2*pad_h - dil_h*(kernel_h - 1) - 1) / stride_h + 1, likewise out_w.
// im2col writes the column matrix
//   cols[(c*kh + i)*kw + j][oy*out_w + ox] = img[c][oy*sh - ph + i*dh][ox*sw - pw + j*dw]
// (zero outside the image), row-major, so that conv = weight[out_c x (c*kh*kw)] * cols[(c*kh*kw) x (out_h*out_w)].
// With groups, channel c belongs to group c / (channels / groups): group gi's rows of cols are the contiguous
// block [gi*K_g, (gi+1)*K_g) with K_g = group_col_rows(), so im2col ignores groups and the GEMMs take slices.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ember/kernels/window_copy.hpp"

namespace ember::kernels {

struct Conv2dGeometry {
  std::int64_t channels, height, width;  // input, per image
  std::int64_t kernel_h, kernel_w;
  std::int64_t stride_h, stride_w;
  std::int64_t pad_h, pad_w;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t groups = 1;

  // The extent a kernel covers, taps included.
  std::int64_t span_h() const { return dilation_h * (kernel_h - 1) + 1; }
  std::int64_t span_w() const { return dilation_w * (kernel_w - 1) + 1; }
  std::int64_t out_h() const { return (height + 2 * pad_h - span_h()) / stride_h + 1; }
  std::int64_t out_w() const { return (width + 2 * pad_w - span_w()) / stride_w + 1; }
  std::int64_t col_rows() const { return channels * kernel_h * kernel_w; }
  std::int64_t group_channels() const { return channels / groups; }
  std::int64_t group_col_rows() const { return group_channels() * kernel_h * kernel_w; }
  std::int64_t col_cols() const { return out_h() * out_w(); }
};

namespace detail {
inline bool dense_windows(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
}
}  // namespace detail

// img: channels x height x width; cols: col_rows x col_cols.
template <typename T>
void im2col(const Conv2dGeometry& g, const T* img, T* cols) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  if (detail::dense_windows(g)) {
    // Stride 1, no padding: column row (c, i, j) is the window of plane c at offset (i*dh, j*dw).
    for (std::int64_t c = 0; c < g.channels; ++c)
      for (std::int64_t ki = 0; ki < g.kernel_h; ++ki)
        for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
          copy_window(cols + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh * ow,
                      img + (c * g.height + ki * g.dilation_h) * g.width + kj * g.dilation_w, oh, ow, g.width);
        }
    return;
  }
  for (std::int64_t c = 0; c < g.channels; ++c) {
    const T* plane = img + c * g.height * g.width;
    for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
      for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
        T* row = cols + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh * ow;
        for (std::int64_t oy = 0; oy < oh; ++oy) {
          const std::int64_t y = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          T* dst = row + oy * ow;
          if (y < 0 || y >= g.height) {
            std::fill(dst, dst + ow, T(0));
            continue;
          }
          const T* src = plane + y * g.width;
          if (g.stride_w == 1) {
            // Contiguous run: only the padded borders need care.
            const std::int64_t x0 = kj * g.dilation_w - g.pad_w;  // x for ox = 0
            const std::int64_t lo = std::clamp<std::int64_t>(-x0, 0, ow);
            const std::int64_t hi = std::clamp<std::int64_t>(g.width - x0, lo, ow);
            std::fill(dst, dst + lo, T(0));
            if (hi > lo) std::memcpy(dst + lo, src + x0 + lo, static_cast<std::size_t>(hi - lo) * sizeof(T));
            std::fill(dst + hi, dst + ow, T(0));
          } else {
            for (std::int64_t ox = 0; ox < ow; ++ox) {
              const std::int64_t x = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
              dst[ox] = (x >= 0 && x < g.width) ? src[x] : T(0);
            }
          }
        }
      }
    }
  }
}

// The adjoint of im2col: adds every column entry back into the image position it came from, into what img
// holds (accumulate), or into zeros (img is then only written).
template <typename T>
void col2im(const Conv2dGeometry& g, const T* cols, T* img, bool accumulate = true) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
#if EMBER_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (detail::dense_windows(g) && active_isa() == Isa::avx512)
      return avx512::col2im_dense(cols, img, g.channels, g.height, g.width, g.kernel_h, g.kernel_w, g.dilation_h,
                                  g.dilation_w, oh, ow, accumulate);
  }
#endif
  if (!accumulate) std::fill(img, img + g.channels * g.height * g.width, T(0));
  if (detail::dense_windows(g)) {
    // Rows added in the same (c, i, j) order as the general loop below: the same sums, the same bits.
    for (std::int64_t c = 0; c < g.channels; ++c)
      for (std::int64_t ki = 0; ki < g.kernel_h; ++ki)
        for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
          add_window(img + (c * g.height + ki * g.dilation_h) * g.width + kj * g.dilation_w, g.width,
                     cols + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh * ow, oh, ow);
        }
    return;
  }
  for (std::int64_t c = 0; c < g.channels; ++c) {
    T* plane = img + c * g.height * g.width;
    for (std::int64_t ki = 0; ki < g.kernel_h; ++ki) {
      for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const T* row = cols + ((c * g.kernel_h + ki) * g.kernel_w + kj) * oh * ow;
        for (std::int64_t oy = 0; oy < oh; ++oy) {
          const std::int64_t y = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          if (y < 0 || y >= g.height) continue;
          T* dst = plane + y * g.width;
          const T* src = row + oy * ow;
          for (std::int64_t ox = 0; ox < ow; ++ox) {
            const std::int64_t x = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            if (x >= 0 && x < g.width) dst[x] += src[ox];
          }
        }
      }
    }
  }
}

// The references: the definition in the header comment, one column entry at a time.
template <typename T>
void im2col_ref(const Conv2dGeometry& g, const T* img, T* cols) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t c = 0; c < g.channels; ++c)
    for (std::int64_t ki = 0; ki < g.kernel_h; ++ki)
      for (std::int64_t kj = 0; kj < g.kernel_w; ++kj)
        for (std::int64_t oy = 0; oy < oh; ++oy)
          for (std::int64_t ox = 0; ox < ow; ++ox) {
            const std::int64_t y = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
            const std::int64_t x = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            const bool inside = y >= 0 && y < g.height && x >= 0 && x < g.width;
            cols[(((c * g.kernel_h + ki) * g.kernel_w + kj) * oh + oy) * ow + ox] =
                inside ? img[(c * g.height + y) * g.width + x] : T(0);
          }
}

template <typename T>
void col2im_ref(const Conv2dGeometry& g, const T* cols, T* img) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t c = 0; c < g.channels; ++c)
    for (std::int64_t ki = 0; ki < g.kernel_h; ++ki)
      for (std::int64_t kj = 0; kj < g.kernel_w; ++kj)
        for (std::int64_t oy = 0; oy < oh; ++oy)
          for (std::int64_t ox = 0; ox < ow; ++ox) {
            const std::int64_t y = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
            const std::int64_t x = ox * g.stride_w - g.pad_w + kj * g.dilation_w;
            if (y >= 0 && y < g.height && x >= 0 && x < g.width)
              img[(c * g.height + y) * g.width + x] +=
                  cols[(((c * g.kernel_h + ki) * g.kernel_w + kj) * oh + oy) * ow + ox];
          }
}

}  // namespace ember::kernels
