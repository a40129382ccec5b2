#pragma once
// Transforms for photographs, C x H x W with torchvision's formulas (its tensor path, functional_tensor.py):
//   resized_crop        F.resized_crop: crop [top, top + h) x [left, left + w), then resize (antialiased by
//                       default, as PIL and torchvision >= 0.17; antialias = false is torch's plain bilinear)
//   adjust_brightness   F.adjust_brightness: clamp(f x, 0, bound)
//   adjust_contrast     F.adjust_contrast: clamp(f x + (1 - f) mean(gray(x)), 0, bound)
//   adjust_saturation   F.adjust_saturation: clamp(f x + (1 - f) gray(x), 0, bound); 1 channel unchanged
//   adjust_hue          F.adjust_hue: the hue of HSV turned by a fraction of the circle; 1 channel unchanged
//   RandomResizedCrop, ColorJitter   the random transforms built on them
// gray(x) = 0.2989 R + 0.587 G + 0.114 B (F.rgb_to_grayscale). `bound` is the largest pixel value: 255 for
// ember's raw 0..255 images (before ToUnit), 1 after it; torchvision's float images use 1, and the results
// are the same up to that scale. The random draws come from ember's Generator, so the parameters differ from
// torchvision's for a seed; their distributions and order of use are torchvision's.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/transforms.hpp"
#include "ember/kernels/resize_antialias.hpp"

namespace ember {
namespace data {

// ------------------------------------------------------------------------------------ deterministic functions

inline void resized_crop_into(const Tensor& image, Tensor& out, std::int64_t top, std::int64_t left, std::int64_t h,
                              std::int64_t w, std::int64_t out_h, std::int64_t out_w, bool antialias = true) {
  detail::expect_image(image, "resized_crop");
  detail::check_size(out_h, out_w, "resized_crop");
  if (h <= 0 || w <= 0 || top < 0 || left < 0 || top + h > image.size(1) || left + w > image.size(2))
    throw std::invalid_argument("resized_crop: the window " + std::to_string(h) + " x " + std::to_string(w) + " at (" +
                                std::to_string(top) + ", " + std::to_string(left) + ") is not inside the image " +
                                to_string(image.shape()));
  const std::int64_t c = image.size(0), iw = image.size(2);
  thread_local Tensor crop;
  crop.resize({c, h, w});
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t y = 0; y < h; ++y) {
      const float* src = image.data() + (ch * image.size(1) + top + y) * iw + left;
      std::copy(src, src + w, crop.data() + (ch * h + y) * w);
    }
  if (antialias)
    kernels::resize_antialias_into(crop, out, out_h, out_w);
  else
    kernels::resize_into(crop, out, out_h, out_w);
}

inline Tensor resized_crop(const Tensor& image, std::int64_t top, std::int64_t left, std::int64_t h, std::int64_t w,
                           std::int64_t out_h, std::int64_t out_w, bool antialias = true) {
  Tensor out;
  resized_crop_into(image, out, top, left, h, w, out_h, out_w, antialias);
  return out;
}

namespace detail {
inline void blend(float* x, std::int64_t n, float f, const float* other, float other_scalar, float bound) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = f * x[i] + (1.0f - f) * (other ? other[i] : other_scalar);
    x[i] = std::min(std::max(v, 0.0f), bound);
  }
}
inline void expect_gray_or_rgb(const Tensor& image, const char* who) {
  expect_image(image, who);
  if (image.size(0) != 1 && image.size(0) != 3)
    throw shape_error(std::string(who) + ": expected 1 or 3 channels, got " + to_string(image.shape()));
}
// F.rgb_to_grayscale of a 3-channel image into `gray` (H x W).
inline void gray_of(const Tensor& image, Tensor& gray) {
  const std::int64_t plane = image.size(1) * image.size(2);
  gray.resize({image.size(1), image.size(2)});
  const float *r = image.data(), *g = r + plane, *b = g + plane;
  for (std::int64_t i = 0; i < plane; ++i) gray[i] = 0.2989f * r[i] + 0.587f * g[i] + 0.114f * b[i];
}

// The colour adjustments clamp to [0, bound]: on normalised values (after Normalize, with negatives) they
// would silently zero half the image, so such input is an error (a resize's rounding may stray a little).
inline void expect_pixel_range(const Tensor& image, float bound, const char* who) {
  const auto [lo, hi] = std::minmax_element(image.begin(), image.end());
  if (lo == image.end() || (*lo >= -1e-3f * bound && *hi <= bound * (1 + 1e-3f))) return;
  const float bad = *lo < -1e-3f * bound ? *lo : *hi;
  throw std::invalid_argument(std::string(who) + ": pixel value " + std::to_string(bad) + " is outside [0, " +
                              std::to_string(static_cast<int>(bound)) + "]: it works on pixel values (0..255, or "
                              "0..1 with bound 1, as torchvision's float images), so put it before Normalize in "
                              "the pipeline");
}
}  // namespace detail

inline void adjust_brightness(Tensor& image, float factor, float bound = 255.0f) {
  detail::expect_gray_or_rgb(image, "adjust_brightness");
  detail::blend(image.data(), image.numel(), factor, nullptr, 0.0f, bound);
}

inline void adjust_contrast(Tensor& image, float factor, float bound = 255.0f) {
  detail::expect_gray_or_rgb(image, "adjust_contrast");
  double sum = 0.0;
  if (image.size(0) == 3) {
    thread_local Tensor gray;
    detail::gray_of(image, gray);
    for (float v : gray) sum += v;
  } else {
    for (float v : image) sum += v;
  }
  const float mean = static_cast<float>(sum / static_cast<double>(image.size(1) * image.size(2)));
  detail::blend(image.data(), image.numel(), factor, nullptr, mean, bound);
}

inline void adjust_saturation(Tensor& image, float factor, float bound = 255.0f) {
  detail::expect_gray_or_rgb(image, "adjust_saturation");
  if (image.size(0) == 1) return;  // as torchvision (and PIL): nothing to saturate
  thread_local Tensor gray;
  detail::gray_of(image, gray);
  const std::int64_t plane = gray.numel();
  for (std::int64_t ch = 0; ch < 3; ++ch) detail::blend(image.data() + ch * plane, plane, factor, gray.data(), 0.0f, bound);
}

// F.adjust_hue: the hue turned by hue_factor (in [-0.5, 0.5], a fraction of the colour circle) through
// torchvision's _rgb2hsv and _hsv2rgb on x / bound; 1 channel unchanged.
inline void adjust_hue(Tensor& image, float hue_factor, float bound = 255.0f) {
  detail::expect_gray_or_rgb(image, "adjust_hue");
  if (!(hue_factor >= -0.5f && hue_factor <= 0.5f))
    throw std::invalid_argument("adjust_hue: hue_factor must lie in [-0.5, 0.5], got " + std::to_string(hue_factor));
  if (image.size(0) == 1) return;
  const std::int64_t plane = image.size(1) * image.size(2);
  float *R = image.data(), *G = R + plane, *B = G + plane;
  for (std::int64_t i = 0; i < plane; ++i) {
    const float r = R[i] / bound, g = G[i] / bound, b = B[i] / bound;
    const float maxc = std::max(r, std::max(g, b)), minc = std::min(r, std::min(g, b));
    const bool eqc = maxc == minc;
    const float cr = maxc - minc, s = cr / (eqc ? 1.0f : maxc), div = eqc ? 1.0f : cr;
    const float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    float h = maxc == r ? bc - gc : (maxc == g ? 2.0f + rc - bc : 4.0f + gc - rc);
    h = std::fmod(h / 6.0f + 1.0f, 1.0f);
    h = h + hue_factor;  // Python's %: the result takes the divisor's sign
    h = h - std::floor(h);
    const float v = maxc, h6 = h * 6.0f, i6 = std::floor(h6), f = h6 - i6;
    const float p = std::min(std::max(v * (1.0f - s), 0.0f), 1.0f);
    const float q = std::min(std::max(v * (1.0f - s * f), 0.0f), 1.0f);
    const float t = std::min(std::max(v * (1.0f - s * (1.0f - f)), 0.0f), 1.0f);
    const int sector = ((static_cast<int>(i6) % 6) + 6) % 6;
    const float rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    R[i] = rgb[sector][0] * bound;
    G[i] = rgb[sector][1] * bound;
    B[i] = rgb[sector][2] * bound;
  }
}

// ------------------------------------------------------------------------------------ random transforms

// torchvision's RandomResizedCrop(size, scale = (0.08, 1), ratio = (3/4, 4/3)): up to 10 tries of an area
// fraction uniform in `scale` and a log-uniform aspect ratio in `ratio`, the window's sides rounded (half to
// even) and its position uniform; if none fits, the centre crop of the clamped ratio. Then resized to
// height x width.
struct RandomResizedCrop {
  std::int64_t height, width;
  std::array<double, 2> scale, ratio;
  bool antialias;
  RandomResizedCrop(std::int64_t h, std::int64_t w, std::array<double, 2> scale_range = {0.08, 1.0},
                    std::array<double, 2> ratio_range = {3.0 / 4.0, 4.0 / 3.0}, bool antialias_ = true)
      : height(h), width(w), scale(scale_range), ratio(ratio_range), antialias(antialias_) {
    detail::check_size(h, w, "RandomResizedCrop");
    if (!(scale[0] > 0.0 && scale[0] <= scale[1]))
      throw std::invalid_argument("RandomResizedCrop: scale must be a range 0 < lo <= hi");
    if (!(ratio[0] > 0.0 && ratio[0] <= ratio[1]))
      throw std::invalid_argument("RandomResizedCrop: ratio must be a range 0 < lo <= hi");
  }

  // The window (top, left, h, w) as torchvision's get_params.
  std::array<std::int64_t, 4> window(std::int64_t H, std::int64_t W, Generator& gen) const {
    // Here the first side is the width: w = round(sqrt(area * aspect)).
    const auto found = detail::random_window(H, W, scale, ratio, gen, [&](std::int64_t w, std::int64_t h) {
      return w > 0 && w <= W && h > 0 && h <= H ? std::array<std::int64_t, 2>{h, w} : std::array<std::int64_t, 2>{-1, -1};
    });
    if (found[2] >= 0) return found;
    const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
    std::int64_t w = W, h = H;
    if (in_ratio < ratio[0]) h = detail::round_half_even(static_cast<double>(w) / ratio[0]);
    else if (in_ratio > ratio[1]) w = detail::round_half_even(static_cast<double>(h) * ratio[1]);
    return {(H - h) / 2, (W - w) / 2, h, w};
  }

  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_image(image, "RandomResizedCrop");
    const auto win = window(image.size(1), image.size(2), gen);
    Tensor& out = detail::scratch();
    resized_crop_into(image, out, win[0], win[1], win[2], win[3], height, width, antialias);
    std::swap(image, out);
  }
};

// torchvision's ColorJitter(brightness, contrast, saturation, hue): each factor uniform in
// [max(0, 1 - v), 1 + v] (v = 0 leaves that adjustment out), the hue shift uniform in [-hue, hue] (hue in
// [0, 0.5]), applied in a random order drawn per call (a permutation first, then the factors, as
// torchvision's get_params).
struct ColorJitter {
  float brightness, contrast, saturation, hue, bound;
  explicit ColorJitter(float brightness_ = 0.0f, float contrast_ = 0.0f, float saturation_ = 0.0f,
                       float hue_ = 0.0f, float bound_ = 255.0f)
      : brightness(brightness_), contrast(contrast_), saturation(saturation_), hue(hue_), bound(bound_) {
    if (!(brightness >= 0.0f && contrast >= 0.0f && saturation >= 0.0f))
      throw std::invalid_argument("ColorJitter: brightness, contrast and saturation must be >= 0");
    if (!(hue >= 0.0f && hue <= 0.5f))
      throw std::invalid_argument("ColorJitter: hue must lie in [0, 0.5], got " + std::to_string(hue));
    if (!(bound > 0.0f)) throw std::invalid_argument("ColorJitter: bound must be positive");
  }
  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_gray_or_rgb(image, "ColorJitter");
    detail::expect_pixel_range(image, bound, "ColorJitter");
    std::array<int, 4> order = {0, 1, 2, 3};
    gen.shuffle(order.begin(), order.end());
    const float amount[4] = {brightness, contrast, saturation, hue};
    float factor[4] = {1.0f, 1.0f, 1.0f, 0.0f};
    for (int k = 0; k < 3; ++k)
      if (amount[k] > 0.0f)
        factor[k] = static_cast<float>(gen.uniform(std::max(0.0, 1.0 - amount[k]), 1.0 + amount[k]));
    if (hue > 0.0f) factor[3] = static_cast<float>(gen.uniform(-hue, hue));
    for (int k : order) {
      if (amount[k] == 0.0f) continue;
      if (k == 0) adjust_brightness(image, factor[k], bound);
      if (k == 1) adjust_contrast(image, factor[k], bound);
      if (k == 2) adjust_saturation(image, factor[k], bound);
      if (k == 3) adjust_hue(image, factor[k], bound);
    }
  }
};

}  // namespace data
}  // namespace ember
