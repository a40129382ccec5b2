#pragma once
// Antialiased bilinear resize, as PIL's Image.resize(BILINEAR) and PyTorch's F.interpolate(mode='bilinear',
// antialias=True, align_corners=False) (F.resize(antialias=True) in torchvision): separable, each output
// pixel a normalised triangle-filter average of the input whose support widens by the shrink factor, so
// shrinking averages every input pixel instead of sampling two (no aliasing). Enlarging is plain bilinear,
// with the edge weights renormalised rather than clamped (as PIL).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::kernels {

// One axis: for output o, input taps [first[o], first[o] + count[o]) with weights[o * max_taps + k].
struct AntialiasTaps {
  std::vector<std::int64_t> first, count;
  std::vector<float> weights;
  std::int64_t max_taps = 0;
};

// PIL's precompute_coeffs with the triangle filter (support 1), in double, normalised to sum 1.
inline AntialiasTaps antialias_taps(std::int64_t in, std::int64_t out) {
  AntialiasTaps t;
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0), support = filter_scale;
  t.max_taps = static_cast<std::int64_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<std::size_t>(out));
  t.count.resize(static_cast<std::size_t>(out));
  t.weights.assign(static_cast<std::size_t>(out * t.max_taps), 0.0f);
  std::vector<double> w(static_cast<std::size_t>(t.max_taps));
  for (std::int64_t o = 0; o < out; ++o) {
    const double center = (static_cast<double>(o) + 0.5) * scale;
    const std::int64_t lo = std::max<std::int64_t>(static_cast<std::int64_t>(center - support + 0.5), 0);
    const std::int64_t hi = std::min<std::int64_t>(static_cast<std::int64_t>(center + support + 0.5), in);
    const std::int64_t n = std::min(hi - lo, t.max_taps);
    double total = 0.0;
    for (std::int64_t k = 0; k < n; ++k) {
      const double x = (static_cast<double>(k + lo) - center + 0.5) / filter_scale;
      const double v = std::fabs(x) < 1.0 ? 1.0 - std::fabs(x) : 0.0;
      w[static_cast<std::size_t>(k)] = v;
      total += v;
    }
    t.first[static_cast<std::size_t>(o)] = lo;
    t.count[static_cast<std::size_t>(o)] = n;
    for (std::int64_t k = 0; k < n; ++k)
      t.weights[static_cast<std::size_t>(o * t.max_taps + k)] =
          static_cast<float>(total > 0.0 ? w[static_cast<std::size_t>(k)] / total : 0.0);
  }
  return t;
}

// src: c x h x w; dst: c x out_h x out_w (not aliasing src); tmp holds c x h x out_w. All extents positive.
inline void resize_antialias(const float* src, std::int64_t c, std::int64_t h, std::int64_t w, float* dst,
                             std::int64_t out_h, std::int64_t out_w, std::vector<float>& tmp) {
  const AntialiasTaps tx = antialias_taps(w, out_w), ty = antialias_taps(h, out_h);
  tmp.resize(static_cast<std::size_t>(c * h * out_w));
  for (std::int64_t r = 0; r < c * h; ++r) {  // rows: horizontal pass
    const float* in = src + r * w;
    float* o = tmp.data() + r * out_w;
    for (std::int64_t x = 0; x < out_w; ++x) {
      const float* wt = tx.weights.data() + x * tx.max_taps;
      const float* p = in + tx.first[static_cast<std::size_t>(x)];
      float s = 0.0f;
      for (std::int64_t k = 0; k < tx.count[static_cast<std::size_t>(x)]; ++k) s += wt[k] * p[k];
      o[x] = s;
    }
  }
  for (std::int64_t ch = 0; ch < c; ++ch) {  // columns: vertical pass
    const float* plane = tmp.data() + ch * h * out_w;
    for (std::int64_t y = 0; y < out_h; ++y) {
      float* o = dst + (ch * out_h + y) * out_w;
      std::fill(o, o + out_w, 0.0f);
      const float* wt = ty.weights.data() + y * ty.max_taps;
      for (std::int64_t k = 0; k < ty.count[static_cast<std::size_t>(y)]; ++k) {
        const float* row = plane + (ty.first[static_cast<std::size_t>(y)] + k) * out_w;
        for (std::int64_t x = 0; x < out_w; ++x) o[x] += wt[k] * row[x];
      }
    }
  }
}

// C x H x W -> C x out_h x out_w into `out` (not aliasing `image`). Errors as kernels::resize_into.
inline void resize_antialias_into(const Tensor& image, Tensor& out, std::int64_t out_h, std::int64_t out_w) {
  if (image.dim() != 3) throw shape_error("resize: expected an image C x H x W, got " + to_string(image.shape()));
  if (out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("resize: output size must be positive, got " + std::to_string(out_h) + " x " +
                                std::to_string(out_w));
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if (h == 0 || w == 0) throw shape_error("resize: empty input image " + to_string(image.shape()));
  thread_local std::vector<float> tmp;
  out.resize({c, out_h, out_w});
  resize_antialias(image.data(), c, h, w, out.data(), out_h, out_w, tmp);
}

inline Tensor resize_antialias(const Tensor& image, std::int64_t out_h, std::int64_t out_w) {
  Tensor out;
  resize_antialias_into(image, out, out_h, out_w);
  return out;
}

}  // namespace ember::kernels
