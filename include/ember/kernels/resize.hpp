#pragma once
// Image resize, as torchvision's F.resize on a tensor with antialias=False:
//   Bilinear  F.interpolate(mode='bilinear', align_corners=False)
//   Area      F.interpolate(mode='area'), adaptive average pooling
//   Nearest   F.interpolate(mode='nearest'): source index floor(o * in / out)
// The plane kernels work on raw buffers (C planes of H x W in, C planes of out_h x out_w out); resize and
// resize_into are the checked tensor forms that data::Resize and io::resize share.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::kernels {

enum class Interpolation { Bilinear, Area, Nearest };

// Source indices and weights of PyTorch's linear upsampling, align_corners=False, for one axis.
struct LinearTap {
  std::int64_t i0, i1;
  float w0, w1;
};
inline std::vector<LinearTap> linear_taps(std::int64_t in, std::int64_t out) {
  std::vector<LinearTap> taps(static_cast<std::size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (std::int64_t o = 0; o < out; ++o) {
    float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    const auto i0 = static_cast<std::int64_t>(src);
    const float l1 = std::min(std::max(src - static_cast<float>(i0), 0.0f), 1.0f);
    taps[static_cast<std::size_t>(o)] = {i0, i0 + (i0 < in - 1 ? 1 : 0), 1.0f - l1, l1};
  }
  return taps;
}

// src: c x h x w; dst: c x out_h x out_w (not aliasing src). All extents positive.
inline void resize_bilinear(const float* src, std::int64_t c, std::int64_t h, std::int64_t w, float* dst,
                            std::int64_t out_h, std::int64_t out_w) {
  const auto ty = linear_taps(h, out_h);
  const auto tx = linear_taps(w, out_w);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float* plane = src + ch * h * w;
    for (std::int64_t oy = 0; oy < out_h; ++oy) {
      const LinearTap& y = ty[static_cast<std::size_t>(oy)];
      const float* r0 = plane + y.i0 * w;
      const float* r1 = plane + y.i1 * w;
      for (std::int64_t ox = 0; ox < out_w; ++ox) {
        const LinearTap& x = tx[static_cast<std::size_t>(ox)];
        *dst++ = y.w0 * (x.w0 * r0[x.i0] + x.w1 * r0[x.i1]) + y.w1 * (x.w0 * r1[x.i0] + x.w1 * r1[x.i1]);
      }
    }
  }
}

// Adaptive average pooling: bins [floor(o*in/out), ceil((o+1)*in/out)). Same buffers as resize_bilinear.
inline void resize_area(const float* src, std::int64_t c, std::int64_t h, std::int64_t w, float* dst,
                        std::int64_t out_h, std::int64_t out_w) {
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float* plane = src + ch * h * w;
    for (std::int64_t oy = 0; oy < out_h; ++oy) {
      const std::int64_t y0 = oy * h / out_h, y1 = ((oy + 1) * h + out_h - 1) / out_h;
      for (std::int64_t ox = 0; ox < out_w; ++ox) {
        const std::int64_t x0 = ox * w / out_w, x1 = ((ox + 1) * w + out_w - 1) / out_w;
        float sum = 0.0f;
        for (std::int64_t y = y0; y < y1; ++y)
          for (std::int64_t x = x0; x < x1; ++x) sum += plane[y * w + x];
        *dst++ = sum / static_cast<float>(y1 - y0) / static_cast<float>(x1 - x0);
      }
    }
  }
}

// PyTorch's 'nearest' (not 'nearest-exact'): src = min(floor(o * (in / out)), in - 1), the scale in float.
inline void resize_nearest(const float* src, std::int64_t c, std::int64_t h, std::int64_t w, float* dst,
                           std::int64_t out_h, std::int64_t out_w) {
  auto index = [](std::int64_t o, std::int64_t in, std::int64_t out) {
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    return std::min(static_cast<std::int64_t>(std::floor(static_cast<float>(o) * scale)), in - 1);
  };
  std::vector<std::int64_t> xs(static_cast<std::size_t>(out_w));
  for (std::int64_t ox = 0; ox < out_w; ++ox) xs[static_cast<std::size_t>(ox)] = index(ox, w, out_w);
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t oy = 0; oy < out_h; ++oy) {
      const float* row = src + (ch * h + index(oy, h, out_h)) * w;
      for (std::int64_t x : xs) *dst++ = row[x];
    }
}

// C x H x W -> C x out_h x out_w into `out` (which must not alias `image`; its storage is reused). A tensor
// that is not C x H x W, or is empty, throws shape_error; a non-positive output size std::invalid_argument.
inline void resize_into(const Tensor& image, Tensor& out, std::int64_t out_h, std::int64_t out_w,
                        Interpolation mode = Interpolation::Bilinear) {
  if (image.dim() != 3) throw shape_error("resize: expected an image C x H x W, got " + to_string(image.shape()));
  if (out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("resize: output size must be positive, got " + std::to_string(out_h) + " x " +
                                std::to_string(out_w));
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if (h == 0 || w == 0) throw shape_error("resize: empty input image " + to_string(image.shape()));
  out.resize({c, out_h, out_w});
  if (mode == Interpolation::Bilinear)
    resize_bilinear(image.data(), c, h, w, out.data(), out_h, out_w);
  else if (mode == Interpolation::Nearest)
    resize_nearest(image.data(), c, h, w, out.data(), out_h, out_w);
  else
    resize_area(image.data(), c, h, w, out.data(), out_h, out_w);
}

inline Tensor resize(const Tensor& image, std::int64_t out_h, std::int64_t out_w,
                     Interpolation mode = Interpolation::Bilinear) {
  Tensor out;
  resize_into(image, out, out_h, out_w, mode);
  return out;
}

}  // namespace ember::kernels
