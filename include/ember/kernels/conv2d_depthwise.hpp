#pragma once
// Depthwise convolution of one image, directly (no im2col): every output channel o reads the one input channel
// c = o / m, m = C_out / C_in (groups == C_in > 1). conv2d_forward / conv2d_backward (conv2d.hpp) call these
// per image; their references are conv2d_forward_ref / conv2d_backward_ref, which handle every group count.
// Why direct: with one input channel per group, im2col + GEMM does C_in GEMMs of [m x kh*kw] x [kh*kw x P],
// all overhead and a kh*kw-fold copy of the image; here each tap is one multiply-add over an output row.
//   x [C_in, H, W], w [C_out, kh*kw], b [C_out] or null, y and dy [C_out, out_h*out_w]
#include <algorithm>
#include <cstdint>

#include "ember/kernels/im2col.hpp"

namespace ember::kernels {

inline bool conv2d_is_depthwise(const Conv2dGeometry& g) { return g.groups > 1 && g.group_channels() == 1; }

namespace detail {
// The outputs ox whose input column ox*stride + off lies inside [0, width): [lo, hi).
inline void valid_columns(std::int64_t off, std::int64_t stride, std::int64_t width, std::int64_t out_w,
                          std::int64_t& lo, std::int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = width - 1 - off < 0 ? 0 : (width - 1 - off) / stride + 1;
  hi = std::min(hi, out_w);
  lo = std::min(lo, hi);
}

// Calls f(o, tap, out_row, in_row, off, lo, hi) for every (output channel, tap, output row) whose input row
// exists: out_row and in_row are the offsets of column 0 in y and x, and output column ox in [lo, hi) reads
// input column ox * stride_w + off.
template <typename F>
void depthwise_taps(const Conv2dGeometry& g, std::int64_t out_channels, F&& f) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), m = out_channels / g.channels;
  for (std::int64_t o = 0; o < out_channels; ++o) {
    const std::int64_t c = o / m;
    for (std::int64_t ki = 0; ki < g.kernel_h; ++ki)
      for (std::int64_t kj = 0; kj < g.kernel_w; ++kj) {
        const std::int64_t off = kj * g.dilation_w - g.pad_w;
        std::int64_t lo, hi;
        valid_columns(off, g.stride_w, g.width, ow, lo, hi);
        for (std::int64_t oy = 0; oy < oh; ++oy) {
          const std::int64_t iy = oy * g.stride_h - g.pad_h + ki * g.dilation_h;
          if (iy < 0 || iy >= g.height) continue;
          f(o, ki * g.kernel_w + kj, o * oh * ow + oy * ow, (c * g.height + iy) * g.width, off, lo, hi);
        }
      }
  }
}
}  // namespace detail

// y = depthwise(x) + b for one image.
template <typename T>
void conv2d_depthwise_forward_image(T* y, const T* x, const T* w, const T* b, const Conv2dGeometry& g,
                                    std::int64_t out_channels) {
  const std::int64_t p = g.col_cols(), taps = g.kernel_h * g.kernel_w, sw = g.stride_w;
  for (std::int64_t o = 0; o < out_channels; ++o) std::fill(y + o * p, y + (o + 1) * p, b ? b[o] : T(0));
  detail::depthwise_taps(g, out_channels, [&](std::int64_t o, std::int64_t tap, std::int64_t out_at,
                                              std::int64_t in_at, std::int64_t off, std::int64_t lo, std::int64_t hi) {
    const T wv = w[o * taps + tap];
    T* yr = y + out_at;
    const T* xr = x + in_at;
    if (sw == 1) {  // contiguous: vectorised
      for (std::int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox + off];
    } else {
      for (std::int64_t ox = lo; ox < hi; ++ox) yr[ox] += wv * xr[ox * sw + off];
    }
  });
}

// For one image: wgrad_t[tap * C_out + o] += sum dy * x (transposed, as conv2d_backward's per-thread buffers),
// and, when dx is not null, dx = the input gradient (overwritten).
template <typename T>
void conv2d_depthwise_backward_image(T* dx, T* wgrad_t, const T* dy, const T* x, const T* w,
                                     const Conv2dGeometry& g, std::int64_t out_channels) {
  const std::int64_t taps = g.kernel_h * g.kernel_w, sw = g.stride_w;
  if (dx) std::fill(dx, dx + g.channels * g.height * g.width, T(0));
  detail::depthwise_taps(g, out_channels, [&](std::int64_t o, std::int64_t tap, std::int64_t out_at,
                                              std::int64_t in_at, std::int64_t off, std::int64_t lo, std::int64_t hi) {
    const T* dyr = dy + out_at;
    const T* xr = x + in_at;
    T acc = 0;
    for (std::int64_t ox = lo; ox < hi; ++ox) acc += dyr[ox] * xr[ox * sw + off];
    wgrad_t[tap * out_channels + o] += acc;
    if (dx) {
      const T wv = w[o * taps + tap];
      T* dxr = dx + in_at;
      if (sw == 1) {
        for (std::int64_t ox = lo; ox < hi; ++ox) dxr[ox + off] += wv * dyr[ox];
      } else {
        for (std::int64_t ox = lo; ox < hi; ++ox) dxr[ox * sw + off] += wv * dyr[ox];
      }
    }
  });
}

}  // namespace ember::kernels
