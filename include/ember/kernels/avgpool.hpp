#pragma once
// Average pooling over one plane (height x width in, out_h x out_w out).
//
// avgpool2d: PyTorch's AvgPool2d with count_include_pad=True and ceil_mode=False (its defaults). Windows are
// those of kernels/pool.hpp (out_h = (h + 2 pad_h - kernel_h) / stride_h + 1); padded positions count as
// zeros, so every window divides by kernel_h * kernel_w, padding or not.
//   out[oy, ox] = sum over the window's in-bounds values / (kernel_h kernel_w)
//   grad_in[y, x] += grad_out[oy, ox] / (kernel_h kernel_w) for every window holding (y, x)
//
// adaptive_avgpool2d: PyTorch's AdaptiveAvgPool2d. Output row i averages input rows
// floor(i h / out_h) .. ceil((i + 1) h / out_h) - 1 (columns alike): bins may overlap and differ in size,
// each divided by its own size. out 1 x 1 is global average pooling.
//
// Naming, as in every kernel: *_forward / *_backward are the fast kernels, *_ref the plain references. Outputs
// first; the backward kernels add into grad_in, which the caller zeroes.
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

#include "ember/core/parallel.hpp"
#include "ember/kernels/pool.hpp"

namespace ember::kernels {

template <typename T>
void avgpool2d_forward_ref(const Pool2dGeometry& g, T* out, const T* in) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  const double divisor = static_cast<double>(g.kernel_h * g.kernel_w);
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = oy * g.stride_h - g.pad_h;
    const std::int64_t ylo = std::max<std::int64_t>(y0, 0), yhi = std::min(y0 + g.kernel_h, g.height);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = ox * g.stride_w - g.pad_w;
      const std::int64_t xlo = std::max<std::int64_t>(x0, 0), xhi = std::min(x0 + g.kernel_w, g.width);
      double sum = 0;
      for (std::int64_t y = ylo; y < yhi; ++y)
        for (std::int64_t x = xlo; x < xhi; ++x) sum += in[y * g.width + x];
      out[oy * ow + ox] = static_cast<T>(sum / divisor);
    }
  }
}

template <typename T>
void avgpool2d_backward_ref(const Pool2dGeometry& g, T* grad_in, const T* grad_out) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  const double divisor = static_cast<double>(g.kernel_h * g.kernel_w);
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = oy * g.stride_h - g.pad_h;
    const std::int64_t ylo = std::max<std::int64_t>(y0, 0), yhi = std::min(y0 + g.kernel_h, g.height);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = ox * g.stride_w - g.pad_w;
      const std::int64_t xlo = std::max<std::int64_t>(x0, 0), xhi = std::min(x0 + g.kernel_w, g.width);
      const T share = static_cast<T>(grad_out[oy * ow + ox] / divisor);
      for (std::int64_t y = ylo; y < yhi; ++y)
        for (std::int64_t x = xlo; x < xhi; ++x) grad_in[y * g.width + x] += share;
    }
  }
}

// Fast: the sum in T, in PyTorch's order (row by row through the window), with the bounds of each window
// taken once; without padding the inner loops have no bounds at all. Padded windows go through the reference.
template <typename T>
void avgpool2d_forward(const Pool2dGeometry& g, T* out, const T* in) {
  if (g.pad_h != 0 || g.pad_w != 0) return avgpool2d_forward_ref(g, out, in);
  const std::int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, w = g.width;
  const T inv = T(1) / static_cast<T>(kh * kw);
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const T* rows = in + oy * g.stride_h * w;
    T* o = out + oy * ow;
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const T* p = rows + ox * g.stride_w;
      T sum(0);
      for (std::int64_t y = 0; y < kh; ++y)
        for (std::int64_t x = 0; x < kw; ++x) sum += p[y * w + x];
      o[ox] = sum * inv;
    }
  }
}

template <typename T>
void avgpool2d_backward(const Pool2dGeometry& g, T* grad_in, const T* grad_out) {
  if (g.pad_h != 0 || g.pad_w != 0) return avgpool2d_backward_ref(g, grad_in, grad_out);
  const std::int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, w = g.width;
  const T inv = T(1) / static_cast<T>(kh * kw);
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    T* rows = grad_in + oy * g.stride_h * w;
    const T* go = grad_out + oy * ow;
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      T* p = rows + ox * g.stride_w;
      const T share = go[ox] * inv;
      for (std::int64_t y = 0; y < kh; ++y)
        for (std::int64_t x = 0; x < kw; ++x) p[y * w + x] += share;
    }
  }
}

// Adaptive pooling's bin edges, as PyTorch's start_index / end_index.
inline std::int64_t adaptive_start(std::int64_t i, std::int64_t out, std::int64_t in) { return (i * in) / out; }
inline std::int64_t adaptive_end(std::int64_t i, std::int64_t out, std::int64_t in) {
  return ((i + 1) * in + out - 1) / out;
}

// in: h x w; out: oh x ow.
template <typename T>
void adaptive_avgpool2d_forward_ref(T* out, const T* in, std::int64_t h, std::int64_t w, std::int64_t oh,
                                    std::int64_t ow) {
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = adaptive_start(oy, oh, h), y1 = adaptive_end(oy, oh, h);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = adaptive_start(ox, ow, w), x1 = adaptive_end(ox, ow, w);
      double sum = 0;
      for (std::int64_t y = y0; y < y1; ++y)
        for (std::int64_t x = x0; x < x1; ++x) sum += in[y * w + x];
      out[oy * ow + ox] = static_cast<T>(sum / static_cast<double>((y1 - y0) * (x1 - x0)));
    }
  }
}

template <typename T>
void adaptive_avgpool2d_backward_ref(T* grad_in, const T* grad_out, std::int64_t h, std::int64_t w,
                                     std::int64_t oh, std::int64_t ow) {
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = adaptive_start(oy, oh, h), y1 = adaptive_end(oy, oh, h);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = adaptive_start(ox, ow, w), x1 = adaptive_end(ox, ow, w);
      const T share = static_cast<T>(grad_out[oy * ow + ox] / static_cast<double>((y1 - y0) * (x1 - x0)));
      for (std::int64_t y = y0; y < y1; ++y)
        for (std::int64_t x = x0; x < x1; ++x) grad_in[y * w + x] += share;
    }
  }
}

// Fast: global pooling (the common case, at the end of every ResNet) is one vectorised plane sum; other
// sizes sum in T bin by bin.
template <typename T>
void adaptive_avgpool2d_forward(T* out, const T* in, std::int64_t h, std::int64_t w, std::int64_t oh,
                                std::int64_t ow) {
  using Plane = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  if (oh == 1 && ow == 1) {
    out[0] = Plane(in, h * w).sum() / static_cast<T>(h * w);
    return;
  }
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = adaptive_start(oy, oh, h), y1 = adaptive_end(oy, oh, h);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = adaptive_start(ox, ow, w), x1 = adaptive_end(ox, ow, w);
      T sum(0);
      for (std::int64_t y = y0; y < y1; ++y)
        for (std::int64_t x = x0; x < x1; ++x) sum += in[y * w + x];
      out[oy * ow + ox] = sum / static_cast<T>((y1 - y0) * (x1 - x0));
    }
  }
}

template <typename T>
void adaptive_avgpool2d_backward(T* grad_in, const T* grad_out, std::int64_t h, std::int64_t w, std::int64_t oh,
                                 std::int64_t ow) {
  if (oh == 1 && ow == 1) {
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(grad_in, h * w) += grad_out[0] / static_cast<T>(h * w);
    return;
  }
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = adaptive_start(oy, oh, h), y1 = adaptive_end(oy, oh, h);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = adaptive_start(ox, ow, w), x1 = adaptive_end(ox, ow, w);
      const T share = grad_out[oy * ow + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
      for (std::int64_t y = y0; y < y1; ++y)
        for (std::int64_t x = x0; x < x1; ++x) grad_in[y * w + x] += share;
    }
  }
}

// The forward kernels over `planes` planes (images x channels) one after another, split over threads by plane.
template <typename T>
void avgpool2d_forward_planes(const Pool2dGeometry& g, T* out, const T* in, std::int64_t planes) {
  const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h() * g.out_w();
  parallel_for(threads_for(planes, static_cast<double>(out_plane * g.kernel_h * g.kernel_w)), planes,
               [&](std::int64_t p) { avgpool2d_forward(g, out + p * out_plane, in + p * in_plane); });
}
template <typename T>
void adaptive_avgpool2d_forward_planes(T* out, const T* in, std::int64_t planes, std::int64_t h, std::int64_t w,
                                       std::int64_t oh, std::int64_t ow) {
  // Each input value is read about once per bin it falls in.
  parallel_for(threads_for(planes, static_cast<double>(h * w + oh * ow)), planes, [&](std::int64_t p) {
    adaptive_avgpool2d_forward(out + p * oh * ow, in + p * h * w, h, w, oh, ow);
  });
}

}  // namespace ember::kernels
