#pragma once
// Automatic augmentation policies, as torchvision's TrivialAugmentWide and RandAugment, on C x H x W images
// holding 0..255 values (before ToUnit and Normalize, as torchvision applies them to uint8 images):
//   TrivialAugmentWide(num_magnitude_bins = 31)    one op per image, its magnitude a uniform bin
//   RandAugment(num_ops = 2, magnitude = 9, num_magnitude_bins = 31)   num_ops ops at one fixed bin
// Both pick among torchvision's 14 ops with its magnitude tables (_augmentation_space), a signed magnitude
// negated with probability 1/2, and sample the geometric ops with NEAREST interpolation by default. The ops
// that torchvision runs on uint8 values (posterize, equalize) take each value's integer part, as a cast to
// uint8 does. The single ops are here too (adjust_sharpness, posterize, solarize, autocontrast, equalize).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/transforms.hpp"
#include "ember/data/transforms_color.hpp"

namespace ember {
namespace data {

// ------------------------------------------------------------------------------------ single ops

// F.adjust_sharpness: blend with the image smoothed by [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (border pixels
// kept), clamp(f x + (1 - f) smooth, 0, bound); images of 2 pixels or fewer along a side are unchanged.
inline void adjust_sharpness(Tensor& image, float factor, float bound = 255.0f) {
  detail::expect_image(image, "adjust_sharpness");
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if (h <= 2 || w <= 2) return;
  thread_local Tensor smooth;
  smooth = image;
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float* p = image.data() + ch * h * w;
    float* s = smooth.data() + ch * h * w;
    for (std::int64_t y = 1; y < h - 1; ++y)
      for (std::int64_t x = 1; x < w - 1; ++x) {
        float sum = 0.0f;
        for (std::int64_t dy = -1; dy <= 1; ++dy)
          for (std::int64_t dx = -1; dx <= 1; ++dx) sum += p[(y + dy) * w + x + dx];
        s[y * w + x] = (sum + 4.0f * p[y * w + x]) / 13.0f;
      }
  }
  detail::blend(image.data(), image.numel(), factor, smooth.data(), 0.0f, bound);
}

// F.posterize on uint8 values: keep the top `bits` bits of each value's integer part (0..255).
inline void posterize(Tensor& image, int bits) {
  if (bits < 0 || bits > 8) throw std::invalid_argument("posterize: bits must lie in [0, 8], got " + std::to_string(bits));
  const float step = static_cast<float>(1 << (8 - bits));
  for (float& v : image) v = std::floor(std::floor(std::min(std::max(v, 0.0f), 255.0f)) / step) * step;
}

// F.solarize: values >= threshold become bound - value.
inline void solarize(Tensor& image, float threshold, float bound = 255.0f) {
  for (float& v : image)
    if (v >= threshold) v = bound - v;
}

// F.autocontrast: each channel stretched so its minimum becomes 0 and its maximum bound (a flat channel is
// left as it is).
inline void autocontrast(Tensor& image, float bound = 255.0f) {
  detail::expect_image(image, "autocontrast");
  const std::int64_t plane = image.size(1) * image.size(2);
  for (std::int64_t ch = 0; ch < image.size(0); ++ch) {
    float* p = image.data() + ch * plane;
    const auto mm = std::minmax_element(p, p + plane);
    float lo = *mm.first, scale = bound / (*mm.second - lo);
    if (!std::isfinite(scale)) lo = 0.0f, scale = 1.0f;
    for (std::int64_t i = 0; i < plane; ++i) p[i] = std::min(std::max((p[i] - lo) * scale, 0.0f), bound);
  }
}

// F.equalize on uint8 values (torchvision's _scale_channel): each channel's histogram of integer parts
// flattened through its cumulative counts.
inline void equalize(Tensor& image) {
  detail::expect_image(image, "equalize");
  const std::int64_t plane = image.size(1) * image.size(2);
  for (std::int64_t ch = 0; ch < image.size(0); ++ch) {
    float* p = image.data() + ch * plane;
    std::array<std::int64_t, 256> hist{};
    for (std::int64_t i = 0; i < plane; ++i) {
      p[i] = std::floor(std::min(std::max(p[i], 0.0f), 255.0f));
      ++hist[static_cast<std::size_t>(p[i])];
    }
    std::int64_t last = -1, nonzero_sum = 0;  // the sum of every non-empty bin but the last
    for (std::size_t b = 0; b < 256; ++b)
      if (hist[b] != 0) {
        if (last >= 0) nonzero_sum += hist[static_cast<std::size_t>(last)];
        last = static_cast<std::int64_t>(b);
      }
    const std::int64_t step = nonzero_sum / 255;
    if (step == 0) continue;
    std::array<float, 256> lut{};
    std::int64_t cum = 0;
    for (std::size_t b = 0; b < 256; ++b) {  // lut[b] = (cumsum[b - 1] + step / 2) / step, lut[0] = 0
      lut[b] = static_cast<float>(std::min<std::int64_t>(b == 0 ? 0 : (cum + step / 2) / step, 255));
      cum += hist[b];
    }
    for (std::int64_t i = 0; i < plane; ++i) p[i] = lut[static_cast<std::size_t>(p[i])];
  }
}

// ------------------------------------------------------------------------------------ the policies

enum class AugmentOp {
  Identity, ShearX, ShearY, TranslateX, TranslateY, Rotate, Brightness, Color, Contrast, Sharpness, Posterize,
  Solarize, AutoContrast, Equalize
};
constexpr int augment_op_count = 14;

// torchvision's _apply_op: one op at a (signed) magnitude on 0..255 values.
inline void apply_augment_op(Tensor& image, AugmentOp op, double magnitude,
                             Interpolation mode = Interpolation::Nearest, float fill = 0.0f) {
  const double pi = 3.14159265358979323846;
  auto warp = [&](double angle, std::array<double, 2> translate, std::array<double, 2> shear, bool corner) {
    Tensor& out = detail::scratch();
    affine_into(image, out, angle, translate, 1.0, shear, fill, mode,
                corner ? std::optional<std::array<double, 2>>({0.0, 0.0}) : std::nullopt);
    std::swap(image, out);
  };
  const auto f = static_cast<float>(magnitude);
  switch (op) {
    case AugmentOp::Identity: break;
    case AugmentOp::ShearX: warp(0.0, {0.0, 0.0}, {std::atan(magnitude) * 180.0 / pi, 0.0}, true); break;
    case AugmentOp::ShearY: warp(0.0, {0.0, 0.0}, {0.0, std::atan(magnitude) * 180.0 / pi}, true); break;
    case AugmentOp::TranslateX: warp(0.0, {std::trunc(magnitude), 0.0}, {0.0, 0.0}, false); break;
    case AugmentOp::TranslateY: warp(0.0, {0.0, std::trunc(magnitude)}, {0.0, 0.0}, false); break;
    case AugmentOp::Rotate: warp(-magnitude, {0.0, 0.0}, {0.0, 0.0}, false); break;  // F.rotate's sign
    case AugmentOp::Brightness: adjust_brightness(image, 1.0f + f); break;
    case AugmentOp::Color: adjust_saturation(image, 1.0f + f); break;
    case AugmentOp::Contrast: adjust_contrast(image, 1.0f + f); break;
    case AugmentOp::Sharpness: adjust_sharpness(image, 1.0f + f); break;
    case AugmentOp::Posterize: posterize(image, static_cast<int>(magnitude)); break;
    case AugmentOp::Solarize: solarize(image, f); break;
    case AugmentOp::AutoContrast: autocontrast(image); break;
    case AugmentOp::Equalize: equalize(image); break;
  }
}

namespace detail {
inline double linspace(double lo, double hi, std::int64_t bins, std::int64_t k) {
  return bins == 1 ? lo : lo + (hi - lo) * static_cast<double>(k) / static_cast<double>(bins - 1);
}

// Magnitude of bin k of `bins` and whether it is signed, as torchvision's _augmentation_space tables: the
// wide (TrivialAugmentWide) or the RandAugment one (its translations scale with the image: 150/331 of a side).
struct OpMagnitude {
  double value;
  bool has_bins, is_signed;
};
inline OpMagnitude op_magnitude(AugmentOp op, std::int64_t k, std::int64_t bins, bool wide, std::int64_t h,
                                std::int64_t w) {
  auto lin = [&](double hi) { return OpMagnitude{linspace(0.0, hi, bins, k), true, true}; };
  switch (op) {
    case AugmentOp::ShearX:
    case AugmentOp::ShearY: return lin(wide ? 0.99 : 0.3);
    case AugmentOp::TranslateX: return lin(wide ? 32.0 : 150.0 / 331.0 * static_cast<double>(w));
    case AugmentOp::TranslateY: return lin(wide ? 32.0 : 150.0 / 331.0 * static_cast<double>(h));
    case AugmentOp::Rotate: return lin(wide ? 135.0 : 30.0);
    case AugmentOp::Brightness:
    case AugmentOp::Color:
    case AugmentOp::Contrast:
    case AugmentOp::Sharpness: return lin(wide ? 0.99 : 0.9);
    case AugmentOp::Posterize: {
      // 8 - round(k / ((bins - 1) / span)), span 6 (wide) or 4; torch rounds half to even.
      const double span = wide ? 6.0 : 4.0;
      const double q = bins == 1 ? 0.0 : static_cast<double>(k) / (static_cast<double>(bins - 1) / span);
      return {8.0 - std::nearbyint(q), true, false};
    }
    case AugmentOp::Solarize: return {linspace(255.0, 0.0, bins, k), true, false};
    default: return {0.0, false, false};
  }
}
}  // namespace detail

// torchvision's TrivialAugmentWide: per image one op uniform among the 14, one magnitude bin uniform in
// [0, num_magnitude_bins), its sign flipped with probability 1/2 for signed ops.
struct TrivialAugmentWide {
  std::int64_t num_magnitude_bins;
  Interpolation interpolation;
  float fill;
  explicit TrivialAugmentWide(std::int64_t bins = 31, Interpolation mode = Interpolation::Nearest, float fill_ = 0.0f)
      : num_magnitude_bins(bins), interpolation(mode), fill(fill_) {
    if (bins < 1) throw std::invalid_argument("TrivialAugmentWide: num_magnitude_bins must be >= 1");
    if (mode == Interpolation::Area) throw std::invalid_argument("TrivialAugmentWide: interpolation must be Nearest or Bilinear");
  }
  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_image(image, "TrivialAugmentWide");
    const auto op = static_cast<AugmentOp>(gen.randint(augment_op_count));
    auto m = detail::op_magnitude(op, 0, num_magnitude_bins, true, image.size(1), image.size(2));
    if (m.has_bins) {
      const auto k = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(num_magnitude_bins)));
      m = detail::op_magnitude(op, k, num_magnitude_bins, true, image.size(1), image.size(2));
    }
    if (m.is_signed && gen.randint(2) == 1) m.value = -m.value;
    apply_augment_op(image, op, m.value, interpolation, fill);
  }
};

// torchvision's RandAugment: num_ops ops in a row, each uniform among the 14 (repeats allowed), all at bin
// `magnitude` of num_magnitude_bins, the sign of signed ops flipped with probability 1/2.
struct RandAugment {
  std::int64_t num_ops, magnitude, num_magnitude_bins;
  Interpolation interpolation;
  float fill;
  explicit RandAugment(std::int64_t ops = 2, std::int64_t magnitude_ = 9, std::int64_t bins = 31,
                       Interpolation mode = Interpolation::Nearest, float fill_ = 0.0f)
      : num_ops(ops), magnitude(magnitude_), num_magnitude_bins(bins), interpolation(mode), fill(fill_) {
    if (ops < 0) throw std::invalid_argument("RandAugment: num_ops must be >= 0, got " + std::to_string(ops));
    if (bins < 1 || magnitude_ < 0 || magnitude_ >= bins)
      throw std::invalid_argument("RandAugment: magnitude must lie in [0, num_magnitude_bins), got " +
                                  std::to_string(magnitude_) + " of " + std::to_string(bins));
    if (mode == Interpolation::Area) throw std::invalid_argument("RandAugment: interpolation must be Nearest or Bilinear");
  }
  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_image(image, "RandAugment");
    for (std::int64_t i = 0; i < num_ops; ++i) {
      const auto op = static_cast<AugmentOp>(gen.randint(augment_op_count));
      auto m = detail::op_magnitude(op, magnitude, num_magnitude_bins, false, image.size(1), image.size(2));
      if (m.is_signed && gen.randint(2) == 1) m.value = -m.value;
      apply_augment_op(image, op, m.value, interpolation, fill);
    }
  }
};

}  // namespace data
}  // namespace ember
