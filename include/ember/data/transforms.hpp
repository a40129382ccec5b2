#pragma once
// Per-sample image transforms on a C x H x W float tensor, with torchvision's conventions and numbers:
//   resize            F.resize on a tensor, antialias=False: F.interpolate(mode='bilinear', align_corners=False),
//                     or mode='area' (adaptive average pooling), or mode='nearest'
//   center_crop       F.center_crop (offsets rounded half to even as Python's round; zero padding when larger)
//   affine            F.affine(interpolation=BILINEAR or NEAREST, fill, center) on a tensor (RandomAffine's and
//                     the auto-augment policies' sampling)
//   hflip, vflip, normalize  F.hflip, F.vflip, F.normalize
// A Transform is a callable void(Tensor& image, Generator& gen): it edits the image in place (it may change
// its shape) and draws any randomness from gen, so one seed fixes a run. Transforms that produce a new
// image work through a per-thread scratch tensor that is swapped in, so a loader in steady state allocates
// nothing per sample.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/resize.hpp"
#include "ember/kernels/resize_antialias.hpp"

namespace ember {
namespace data {

using Transform = std::function<void(Tensor& image, Generator& gen)>;

using kernels::Interpolation;

namespace detail {

inline void expect_image(const Tensor& image, const char* who) {
  if (image.dim() != 3)
    throw shape_error(std::string(who) + ": expected an image C x H x W, got " + to_string(image.shape()));
}

inline void check_size(std::int64_t h, std::int64_t w, const char* who) {
  if (h <= 0 || w <= 0)
    throw std::invalid_argument(std::string(who) + ": output size must be positive, got " + std::to_string(h) +
                                " x " + std::to_string(w));
}

inline Tensor& scratch() {
  thread_local Tensor t;
  return t;
}

// Python's round(): halves go to the even neighbour.
inline std::int64_t round_half_even(double v) {
  const double r = std::round(v);
  if (std::fabs(v - std::trunc(v)) == 0.5) return static_cast<std::int64_t>(2.0 * std::round(v / 2.0));
  return static_cast<std::int64_t>(r);
}

// torchvision's random window search (RandomResizedCrop, RandomErasing): up to 10 tries of an area fraction
// uniform in `scale` of H x W and an aspect ratio log-uniform in `ratio`; sides(round(sqrt(area * aspect)),
// round(sqrt(area / aspect))) gives the window's {h, w}, or {-1, -1} to try again; its corner is uniform.
// Returns {top, left, h, w}, or {0, 0, -1, -1} when no try fits.
template <class Sides>
std::array<std::int64_t, 4> random_window(std::int64_t H, std::int64_t W, const std::array<double, 2>& scale,
                                          const std::array<double, 2>& ratio, Generator& gen, Sides sides) {
  const double area = static_cast<double>(H * W);
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * gen.uniform(scale[0], scale[1]);
    const double aspect = std::exp(gen.uniform(log_lo, log_hi));
    const std::array<std::int64_t, 2> hw =
        sides(round_half_even(std::sqrt(target * aspect)), round_half_even(std::sqrt(target / aspect)));
    if (hw[0] < 0) continue;
    const auto top = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(H - hw[0] + 1)));
    const auto left = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(W - hw[1] + 1)));
    return {top, left, hw[0], hw[1]};
  }
  return {0, 0, -1, -1};
}

}  // namespace detail

// ------------------------------------------------------------------------------------ deterministic functions

// resize and resize_into (C x H x W -> C x out_h x out_w) live in kernels/resize.hpp, shared with io::resize.
using kernels::resize;
using kernels::resize_into;

// The centre out_h x out_w window, as F.center_crop: top = round((H - out_h) / 2) (half to even); a window
// larger than the image pads with zeros, (out - in) / 2 before and the rest after.
inline void center_crop_into(const Tensor& image, Tensor& out, std::int64_t out_h, std::int64_t out_w) {
  detail::expect_image(image, "center_crop");
  detail::check_size(out_h, out_w, "center_crop");
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  auto offset = [](std::int64_t in, std::int64_t o) {
    return o > in ? -((o - in) / 2) : detail::round_half_even(static_cast<double>(in - o) / 2.0);
  };
  const std::int64_t top = offset(h, out_h), left = offset(w, out_w);
  out.resize({c, out_h, out_w});
  float* dst = out.data();
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t y = 0; y < out_h; ++y) {
      const std::int64_t sy = y + top;
      for (std::int64_t x = 0; x < out_w; ++x) {
        const std::int64_t sx = x + left;
        *dst++ = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? image.data()[(ch * h + sy) * w + sx] : 0.0f;
      }
    }
}

inline Tensor center_crop(const Tensor& image, std::int64_t out_h, std::int64_t out_w) {
  Tensor out;
  center_crop_into(image, out, out_h, out_w);
  return out;
}

// F.affine on a tensor with interpolation=BILINEAR and fill: rotate by `angle` degrees (positive turns the
// content clockwise on screen, y pointing down, as F.affine; F.rotate uses the opposite sign), scale by `scale`, shear by shear[0] (x) and shear[1]
// (y) degrees, about the image centre, then translate by (tx, ty) pixels (x right, y down). Each output pixel
// samples the input bilinearly at the inverse-mapped point (grid_sample, align_corners=False, zero padding);
// like torchvision, the fill is blended in with the sampled coverage of the image, out = v * m + (1 - m) * fill
// where m is the same bilinear sample of an all-ones image (so fill=0 also darkens the border pixels).
// mode Nearest samples the rounded point (grid_sample's nearest, half to even) and puts `fill` outside the
// image. `center`, when given, is the pivot in pixels from the top-left corner (F.affine's center; the
// auto-augment shears use (0, 0)); by default the image centre.
inline void affine_into(const Tensor& image, Tensor& out, double angle, std::array<double, 2> translate,
                        double scale, std::array<double, 2> shear = {0.0, 0.0}, float fill = 0.0f,
                        Interpolation mode = Interpolation::Bilinear,
                        std::optional<std::array<double, 2>> center = std::nullopt) {
  detail::expect_image(image, "affine");
  if (!(scale > 0.0)) throw std::invalid_argument("affine: scale must be positive, got " + std::to_string(scale));
  if (mode == Interpolation::Area) throw std::invalid_argument("affine: interpolation must be Bilinear or Nearest");
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  out.resize(image.shape());
  // The inverse of T * C * R S Sh * C^-1, as torchvision's _get_inverse_affine_matrix with centre (0, 0).
  const double pi = 3.14159265358979323846;
  const double rot = angle * pi / 180.0, sx = shear[0] * pi / 180.0, sy = shear[1] * pi / 180.0;
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double cc = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  double m[6] = {d / scale, -b / scale, 0.0, -cc / scale, a / scale, 0.0};
  // The pivot relative to the image centre, as torchvision's center_f.
  const double cx = center ? (*center)[0] - 0.5 * static_cast<double>(w) : 0.0;
  const double cy = center ? (*center)[1] - 0.5 * static_cast<double>(h) : 0.0;
  m[2] = m[0] * (-cx - translate[0]) + m[1] * (-cy - translate[1]) + cx;
  m[5] = m[3] * (-cx - translate[0]) + m[4] * (-cy - translate[1]) + cy;
  // torchvision's grid is float32; keeping its matrix in float keeps the sample points within a few ulps.
  const float f[6] = {static_cast<float>(m[0]), static_cast<float>(m[1]), static_cast<float>(m[2]),
                      static_cast<float>(m[3]), static_cast<float>(m[4]), static_cast<float>(m[5])};
  const float half_w = 0.5f * static_cast<float>(w), half_h = 0.5f * static_cast<float>(h);
  const float* src = image.data();
  float* dst = out.data();
  const std::int64_t plane = h * w;
  for (std::int64_t oy = 0; oy < h; ++oy) {
    const float y = static_cast<float>(oy) - half_h + 0.5f;
    for (std::int64_t ox = 0; ox < w; ++ox) {
      const float x = static_cast<float>(ox) - half_w + 0.5f;
      // Centre-relative source point -> pixel index (align_corners=False: index = coord + size/2 - 0.5).
      const float ix = f[0] * x + f[1] * y + f[2] + half_w - 0.5f;
      const float iy = f[3] * x + f[4] * y + f[5] + half_h - 0.5f;
      if (mode == Interpolation::Nearest) {
        const auto nx = static_cast<std::int64_t>(std::nearbyint(ix)), ny = static_cast<std::int64_t>(std::nearbyint(iy));
        const bool inside = nx >= 0 && nx < w && ny >= 0 && ny < h;
        for (std::int64_t ch = 0; ch < c; ++ch)
          dst[ch * plane + oy * w + ox] = inside ? src[ch * plane + ny * w + nx] : fill;
        continue;
      }
      const float fx0 = std::floor(ix), fy0 = std::floor(iy);
      const float wx1 = ix - fx0, wy1 = iy - fy0, wx0 = 1.0f - wx1, wy0 = 1.0f - wy1;
      const auto x0 = static_cast<std::int64_t>(fx0), y0 = static_cast<std::int64_t>(fy0);
      const bool in_x0 = x0 >= 0 && x0 < w, in_x1 = x0 + 1 >= 0 && x0 + 1 < w;
      const bool in_y0 = y0 >= 0 && y0 < h, in_y1 = y0 + 1 >= 0 && y0 + 1 < h;
      const float w00 = (in_y0 && in_x0) ? wy0 * wx0 : 0.0f, w01 = (in_y0 && in_x1) ? wy0 * wx1 : 0.0f;
      const float w10 = (in_y1 && in_x0) ? wy1 * wx0 : 0.0f, w11 = (in_y1 && in_x1) ? wy1 * wx1 : 0.0f;
      const float mask = w00 + w01 + w10 + w11;
      const std::int64_t o = oy * w + ox;
      for (std::int64_t ch = 0; ch < c; ++ch) {
        const float* p = src + ch * plane;
        float v = 0.0f;
        if (w00 != 0.0f) v += w00 * p[y0 * w + x0];
        if (w01 != 0.0f) v += w01 * p[y0 * w + x0 + 1];
        if (w10 != 0.0f) v += w10 * p[(y0 + 1) * w + x0];
        if (w11 != 0.0f) v += w11 * p[(y0 + 1) * w + x0 + 1];
        dst[ch * plane + o] = v * mask + (1.0f - mask) * fill;
      }
    }
  }
}

inline Tensor affine(const Tensor& image, double angle, std::array<double, 2> translate, double scale,
                     std::array<double, 2> shear = {0.0, 0.0}, float fill = 0.0f,
                     Interpolation mode = Interpolation::Bilinear,
                     std::optional<std::array<double, 2>> center = std::nullopt) {
  Tensor out;
  affine_into(image, out, angle, translate, scale, shear, fill, mode, center);
  return out;
}

// Mirror left-right in place.
inline void hflip(Tensor& image) {
  detail::expect_image(image, "hflip");
  const std::int64_t rows = image.size(0) * image.size(1), w = image.size(2);
  for (std::int64_t r = 0; r < rows; ++r) std::reverse(image.data() + r * w, image.data() + (r + 1) * w);
}

// Mirror top-bottom in place (F.vflip).
inline void vflip(Tensor& image) {
  detail::expect_image(image, "vflip");
  const std::int64_t h = image.size(1), w = image.size(2);
  for (std::int64_t ch = 0; ch < image.size(0); ++ch) {
    float* p = image.data() + ch * h * w;
    for (std::int64_t y = 0; y < h / 2; ++y) std::swap_ranges(p + y * w, p + (y + 1) * w, p + (h - 1 - y) * w);
  }
}

// (x - mean[c]) / std[c] in place; mean and std hold one value per channel or a single value for all.
inline void normalize(Tensor& image, const std::vector<float>& mean, const std::vector<float>& std) {
  detail::expect_image(image, "normalize");
  const std::int64_t c = image.size(0), plane = image.size(1) * image.size(2);
  auto pick = [c](const std::vector<float>& v, std::int64_t ch, const char* what) {
    if (v.size() != 1 && static_cast<std::int64_t>(v.size()) != c)
      throw std::invalid_argument(std::string("normalize: ") + what + " has " + std::to_string(v.size()) +
                                  " values for an image of " + std::to_string(c) + " channels");
    return v.size() == 1 ? v[0] : v[static_cast<std::size_t>(ch)];
  };
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float m = pick(mean, ch, "mean"), s = pick(std, ch, "std");
    float* p = image.data() + ch * plane;
    for (std::int64_t i = 0; i < plane; ++i) p[i] = (p[i] - m) / s;
  }
}

// ------------------------------------------------------------------------------------ transform objects

// 0..255 -> 0..1, dividing by 255 exactly as ToTensor does.
struct ToUnit {
  void operator()(Tensor& image, Generator&) const {
    for (float& v : image) v = v / 255.0f;
  }
};

// x * factor.
struct Scale {
  float factor;
  explicit Scale(float f) : factor(f) {}
  void operator()(Tensor& image, Generator&) const {
    for (float& v : image) v *= factor;
  }
};

// torchvision's Normalize: per-channel (x - mean) / std. Normalize(0.5, 0.5) after ToUnit maps 0..255 to [-1, 1].
struct Normalize {
  std::vector<float> mean, std;
  Normalize(float m, float s) : Normalize(std::vector<float>{m}, std::vector<float>{s}) {}
  Normalize(std::vector<float> m, std::vector<float> s) : mean(std::move(m)), std(std::move(s)) {
    if (mean.empty() || mean.size() != std.size())
      throw std::invalid_argument("Normalize: mean and std need the same, non-zero number of values");
    for (float v : std)
      if (!(v != 0.0f)) throw std::invalid_argument("Normalize: std must be non-zero");
  }
  void operator()(Tensor& image, Generator&) const { normalize(image, mean, std); }
};

// antialias (bilinear only): shrink as PIL and F.resize(antialias=True) do (kernels/resize_antialias.hpp).
struct Resize {
  std::int64_t height, width;
  Interpolation mode;
  bool antialias;
  Resize(std::int64_t h, std::int64_t w, Interpolation m = Interpolation::Bilinear, bool antialias_ = false)
      : height(h), width(w), mode(m), antialias(antialias_) {
    detail::check_size(h, w, "Resize");
  }
  void operator()(Tensor& image, Generator&) const {
    Tensor& out = detail::scratch();
    if (antialias && mode == Interpolation::Bilinear)
      kernels::resize_antialias_into(image, out, height, width);
    else
      resize_into(image, out, height, width, mode);
    std::swap(image, out);
  }
};

struct CenterCrop {
  std::int64_t height, width;
  CenterCrop(std::int64_t h, std::int64_t w) : height(h), width(w) { detail::check_size(h, w, "CenterCrop"); }
  void operator()(Tensor& image, Generator&) const {
    Tensor& out = detail::scratch();
    center_crop_into(image, out, height, width);
    std::swap(image, out);
  }
};

// Flips with probability p (one uniform draw per call, as torch.rand(1) < p).
struct RandomHorizontalFlip {
  double p;
  explicit RandomHorizontalFlip(double prob = 0.5) : p(prob) {
    if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("RandomHorizontalFlip: p must lie in [0, 1]");
  }
  void operator()(Tensor& image, Generator& gen) const {
    if (gen.uniform() < p) hflip(image);
  }
};

// As RandomHorizontalFlip, top-bottom (torchvision's RandomVerticalFlip).
struct RandomVerticalFlip {
  double p;
  explicit RandomVerticalFlip(double prob = 0.5) : p(prob) {
    if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("RandomVerticalFlip: p must lie in [0, 1]");
  }
  void operator()(Tensor& image, Generator& gen) const {
    if (gen.uniform() < p) vflip(image);
  }
};

// torchvision's RandomAffine(degrees, translate, scale, shear, interpolation=BILINEAR, fill): the angle is
// uniform in [-degrees, degrees]; tx, ty uniform in +-translate * (W, H), rounded half to even to whole pixels;
// the scale uniform in [lo, hi]; the x-shear uniform in [-shear, shear]. Draws happen in that order, and only
// for the parameters that are enabled (translate != 0, scale != {1, 1}, shear != 0), as torchvision skips None.
struct RandomAffine {
  double degrees;
  std::array<double, 2> translate, scale;
  double shear;
  float fill;
  explicit RandomAffine(double deg, std::array<double, 2> translate_fraction = {0.0, 0.0},
                        std::array<double, 2> scale_range = {1.0, 1.0}, double shear_degrees = 0.0,
                        float fill_value = 0.0f)
      : degrees(deg), translate(translate_fraction), scale(scale_range), shear(shear_degrees), fill(fill_value) {
    if (!(degrees >= 0.0)) throw std::invalid_argument("RandomAffine: degrees must be >= 0");
    for (double t : translate)
      if (!(t >= 0.0 && t <= 1.0)) throw std::invalid_argument("RandomAffine: translate must lie in [0, 1]");
    if (!(scale[0] > 0.0 && scale[0] <= scale[1]))
      throw std::invalid_argument("RandomAffine: scale must be a range 0 < lo <= hi");
    if (!(shear >= 0.0)) throw std::invalid_argument("RandomAffine: shear must be >= 0");
  }
  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_image(image, "RandomAffine");
    const double angle = gen.uniform(-degrees, degrees);
    std::array<double, 2> t = {0.0, 0.0};
    if (translate[0] > 0.0 || translate[1] > 0.0) {
      const double max_dx = translate[0] * static_cast<double>(image.size(2));
      const double max_dy = translate[1] * static_cast<double>(image.size(1));
      t[0] = static_cast<double>(detail::round_half_even(gen.uniform(-max_dx, max_dx)));
      t[1] = static_cast<double>(detail::round_half_even(gen.uniform(-max_dy, max_dy)));
    }
    const double s = (scale[0] != 1.0 || scale[1] != 1.0) ? gen.uniform(scale[0], scale[1]) : 1.0;
    const double sh = shear > 0.0 ? gen.uniform(-shear, shear) : 0.0;
    Tensor& out = detail::scratch();
    affine_into(image, out, angle, t, s, {sh, 0.0}, fill);
    std::swap(image, out);
  }
};

// Applies its transforms in order.
class Compose {
 public:
  Compose(std::vector<Transform> transforms) : transforms_(std::move(transforms)) {}
  Compose(std::initializer_list<Transform> transforms) : transforms_(transforms) {}
  void operator()(Tensor& image, Generator& gen) const {
    for (const Transform& t : transforms_)
      if (t) t(image, gen);
  }
  std::size_t size() const { return transforms_.size(); }

 private:
  std::vector<Transform> transforms_;
};

}  // namespace data
}  // namespace ember
