#pragma once
// Transforms for photographs, C x H x W with torchvision's formulas (its tensor path, functional_tensor.py):
//   resized_crop        F.resized_crop: crop [top, top + h) x [left, left + w), then resize (antialiased by
//                       default, as PIL and torchvision >= 0.17; antialias = false is torch's plain bilinear)
//   adjust_brightness   F.adjust_brightness: clamp(f x, 0, bound)
//   adjust_contrast     F.adjust_contrast: clamp(f x + (1 - f) mean(gray(x)), 0, bound)
//   adjust_saturation   F.adjust_saturation: clamp(f x + (1 - f) gray(x), 0, bound); 1 channel unchanged
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
    const double area = static_cast<double>(H * W);
    const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double target = area * gen.uniform(scale[0], scale[1]);
      const double aspect = std::exp(gen.uniform(log_lo, log_hi));
      const std::int64_t w = detail::round_half_even(std::sqrt(target * aspect));
      const std::int64_t h = detail::round_half_even(std::sqrt(target / aspect));
      if (w > 0 && w <= W && h > 0 && h <= H) {
        const auto top = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(H - h + 1)));
        const auto left = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(W - w + 1)));
        return {top, left, h, w};
      }
    }
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

// torchvision's ColorJitter(brightness, contrast, saturation) without hue: each factor uniform in
// [max(0, 1 - v), 1 + v] (v = 0 leaves that adjustment out), applied in a random order drawn per call
// (a permutation first, then the factors, as torchvision's get_params).
struct ColorJitter {
  float brightness, contrast, saturation, bound;
  explicit ColorJitter(float brightness_ = 0.0f, float contrast_ = 0.0f, float saturation_ = 0.0f,
                       float bound_ = 255.0f)
      : brightness(brightness_), contrast(contrast_), saturation(saturation_), bound(bound_) {
    if (!(brightness >= 0.0f && contrast >= 0.0f && saturation >= 0.0f))
      throw std::invalid_argument("ColorJitter: brightness, contrast and saturation must be >= 0");
    if (!(bound > 0.0f)) throw std::invalid_argument("ColorJitter: bound must be positive");
  }
  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_gray_or_rgb(image, "ColorJitter");
    detail::expect_pixel_range(image, bound, "ColorJitter");
    std::array<int, 3> order = {0, 1, 2};
    gen.shuffle(order.begin(), order.end());
    const float amount[3] = {brightness, contrast, saturation};
    float factor[3] = {1.0f, 1.0f, 1.0f};
    for (int k = 0; k < 3; ++k)
      if (amount[k] > 0.0f)
        factor[k] = static_cast<float>(gen.uniform(std::max(0.0, 1.0 - amount[k]), 1.0 + amount[k]));
    for (int k : order) {
      if (amount[k] == 0.0f) continue;
      if (k == 0) adjust_brightness(image, factor[k], bound);
      if (k == 1) adjust_contrast(image, factor[k], bound);
      if (k == 2) adjust_saturation(image, factor[k], bound);
    }
  }
};

}  // namespace data
}  // namespace ember
