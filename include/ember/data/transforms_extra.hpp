#pragma once
// Blur and occlusion, as torchvision:
//   gaussian_blur, GaussianBlur(kernel_size, sigma = {0.1, 2.0})   F.gaussian_blur: a normalised Gaussian kernel
//                     per axis on torch.linspace(-(k-1)/2, (k-1)/2, k), reflect padding (k / 2 each side)
//   erase, RandomErasing(p = 0.5, scale = {0.02, 0.33}, ratio = {0.3, 3.3}, value = 0)   F.erase and its window
// Neither cares about the value range: RandomErasing usually runs after Normalize, as in torchvision.
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

namespace ember {
namespace data {

namespace detail {
// torchvision's _get_gaussian_kernel1d.
inline std::vector<float> gaussian_kernel1d(std::int64_t k, float sigma) {
  std::vector<float> w(static_cast<std::size_t>(k));
  const float half = static_cast<float>(k - 1) * 0.5f;
  float sum = 0.0f;
  for (std::int64_t i = 0; i < k; ++i) {
    const float x = k == 1 ? -half : -half + 2.0f * half * static_cast<float>(i) / static_cast<float>(k - 1);
    w[static_cast<std::size_t>(i)] = std::exp(-0.5f * (x / sigma) * (x / sigma));
    sum += w[static_cast<std::size_t>(i)];
  }
  for (float& v : w) v /= sum;
  return w;
}
// torch.nn.functional.pad(mode='reflect'): the edge pixel is not repeated.
inline std::int64_t reflect(std::int64_t i, std::int64_t n) { return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i); }
}  // namespace detail

// F.gaussian_blur(image, [kx, ky], [sigma_x, sigma_y]): kx, ky odd and positive, sigmas positive, each pad
// (k / 2) smaller than the image side (reflect padding, as torch requires).
inline void gaussian_blur(Tensor& image, std::int64_t kx, std::int64_t ky, float sigma_x, float sigma_y) {
  detail::expect_image(image, "gaussian_blur");
  if (kx < 1 || ky < 1 || kx % 2 == 0 || ky % 2 == 0)
    throw std::invalid_argument("gaussian_blur: kernel sizes must be odd and positive, got " + std::to_string(kx) +
                                " x " + std::to_string(ky));
  if (!(sigma_x > 0.0f && sigma_y > 0.0f)) throw std::invalid_argument("gaussian_blur: sigma must be positive");
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  if (kx / 2 >= w || ky / 2 >= h)
    throw std::invalid_argument("gaussian_blur: kernel " + std::to_string(kx) + " x " + std::to_string(ky) +
                                " needs reflect padding larger than the image " + to_string(image.shape()));
  const auto wx = detail::gaussian_kernel1d(kx, sigma_x), wy = detail::gaussian_kernel1d(ky, sigma_y);
  thread_local Tensor rows;  // the horizontal pass
  rows.resize(image.shape());
  for (std::int64_t r = 0; r < c * h; ++r) {
    const float* src = image.data() + r * w;
    float* dst = rows.data() + r * w;
    for (std::int64_t x = 0; x < w; ++x) {
      float s = 0.0f;
      for (std::int64_t t = 0; t < kx; ++t) s += wx[static_cast<std::size_t>(t)] * src[detail::reflect(x + t - kx / 2, w)];
      dst[x] = s;
    }
  }
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t y = 0; y < h; ++y) {
      float* dst = image.data() + (ch * h + y) * w;
      std::fill(dst, dst + w, 0.0f);
      for (std::int64_t t = 0; t < ky; ++t) {
        const float* src = rows.data() + (ch * h + detail::reflect(y + t - ky / 2, h)) * w;
        const float wt = wy[static_cast<std::size_t>(t)];
        for (std::int64_t x = 0; x < w; ++x) dst[x] += wt * src[x];
      }
    }
}

// torchvision's GaussianBlur(kernel_size, sigma): one sigma per call, uniform in [sigma[0], sigma[1]] (a fixed
// sigma: both the same), used on both axes.
struct GaussianBlur {
  std::int64_t kernel_x, kernel_y;
  std::array<float, 2> sigma;
  GaussianBlur(std::int64_t kernel_size, std::array<float, 2> sigma_range = {0.1f, 2.0f})
      : GaussianBlur(kernel_size, kernel_size, sigma_range) {}
  GaussianBlur(std::int64_t kernel_size, float fixed_sigma) : GaussianBlur(kernel_size, kernel_size, {fixed_sigma, fixed_sigma}) {}
  GaussianBlur(std::int64_t kx, std::int64_t ky, std::array<float, 2> sigma_range)
      : kernel_x(kx), kernel_y(ky), sigma(sigma_range) {
    if (kx < 1 || ky < 1 || kx % 2 == 0 || ky % 2 == 0)
      throw std::invalid_argument("GaussianBlur: kernel_size must be odd and positive, got " + std::to_string(kx) +
                                  " x " + std::to_string(ky));
    if (!(sigma[0] > 0.0f && sigma[0] <= sigma[1]))
      throw std::invalid_argument("GaussianBlur: sigma must be positive, or a range 0 < min <= max");
  }
  void operator()(Tensor& image, Generator& gen) const {
    const auto s = sigma[0] == sigma[1] ? sigma[0] : static_cast<float>(gen.uniform(sigma[0], sigma[1]));
    gaussian_blur(image, kernel_x, kernel_y, s, s);
  }
};

// F.erase: the window [top, top + h) x [left, left + w) set to value[c] (one value, or one per channel).
inline void erase(Tensor& image, std::int64_t top, std::int64_t left, std::int64_t h, std::int64_t w,
                  const std::vector<float>& value) {
  detail::expect_image(image, "erase");
  const std::int64_t c = image.size(0), H = image.size(1), W = image.size(2);
  if (value.size() != 1 && static_cast<std::int64_t>(value.size()) != c)
    throw std::invalid_argument("erase: " + std::to_string(value.size()) + " values for an image of " +
                                std::to_string(c) + " channels");
  if (top < 0 || left < 0 || h < 0 || w < 0 || top + h > H || left + w > W)
    throw std::invalid_argument("erase: the window is not inside the image " + to_string(image.shape()));
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float v = value.size() == 1 ? value[0] : value[static_cast<std::size_t>(ch)];
    for (std::int64_t y = top; y < top + h; ++y) std::fill_n(image.data() + (ch * H + y) * W + left, w, v);
  }
}

// torchvision's RandomErasing(p, scale, ratio, value): with probability p, up to 10 tries of an area fraction
// uniform in `scale` and a log-uniform aspect ratio in `ratio`; the window's height round(sqrt(area * ratio))
// and width round(sqrt(area / ratio)) must be smaller than the image's; its corner is uniform. No fit: no
// erasing. value: one for all channels or one per channel (torchvision's "random" is not offered).
struct RandomErasing {
  double p;
  std::array<double, 2> scale, ratio;
  std::vector<float> value;
  explicit RandomErasing(double prob = 0.5, std::array<double, 2> scale_range = {0.02, 0.33},
                         std::array<double, 2> ratio_range = {0.3, 3.3}, std::vector<float> value_ = {0.0f})
      : p(prob), scale(scale_range), ratio(ratio_range), value(std::move(value_)) {
    if (!(p >= 0.0 && p <= 1.0)) throw std::invalid_argument("RandomErasing: p must lie in [0, 1]");
    if (!(scale[0] >= 0.0 && scale[0] <= scale[1] && scale[1] <= 1.0))
      throw std::invalid_argument("RandomErasing: scale must be a range 0 <= lo <= hi <= 1");
    if (!(ratio[0] > 0.0 && ratio[0] <= ratio[1]))
      throw std::invalid_argument("RandomErasing: ratio must be a range 0 < lo <= hi");
    if (value.empty()) throw std::invalid_argument("RandomErasing: value needs at least one number");
  }
  // The window (top, left, h, w) as torchvision's get_params; h = 0 when nothing fits.
  std::array<std::int64_t, 4> window(std::int64_t H, std::int64_t W, Generator& gen) const {
    // Here the first side is the height: h = round(sqrt(area * aspect)), and it must be smaller than H.
    const auto found = detail::random_window(H, W, scale, ratio, gen, [&](std::int64_t h, std::int64_t w) {
      return h < H && w < W ? std::array<std::int64_t, 2>{h, w} : std::array<std::int64_t, 2>{-1, -1};
    });
    return found[2] >= 0 ? found : std::array<std::int64_t, 4>{0, 0, 0, 0};
  }
  void operator()(Tensor& image, Generator& gen) const {
    detail::expect_image(image, "RandomErasing");
    if (!(gen.uniform() < p)) return;
    const auto win = window(image.size(1), image.size(2), gen);
    if (win[2] > 0) erase(image, win[0], win[1], win[2], win[3], value);
  }
};

}  // namespace data
}  // namespace ember
