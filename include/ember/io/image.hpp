#pragma once
// Image files, the user-facing layer: load_image, save_png, resize, make_grid. The codecs and the checks of
// untrusted input are in format/image.hpp (the only header that touches stb); files are read whole and
// written atomically through core/file.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/image.hpp"
#include "ember/kernels/resize.hpp"

namespace ember {
namespace io {

using format::ExifOrientation;
using format::ImageLimits;

// PNG, JPEG or BMP -> C x H x W float tensor of values 0..255: `channels` 1 gives gray values equal to PIL's
// convert('L'), 3 gives RGB as PIL's convert('RGB'), alpha dropped; 16-bit PNGs keep each sample's high byte
// (format::decode_image has the details). `orientation` Apply turns a JPEG upright by its EXIF orientation
// (off by default, as torchvision's loader). A missing or unreadable file throws
// io_error; a corrupt, truncated, unsupported one, or one declaring an image beyond `limits` (by default 179
// megapixels, 1 GiB decoded), throws format_error naming the file and the reason, before stb allocates.
inline Tensor load_image(const std::string& path, int channels = 1, const ImageLimits& limits = {},
                         ExifOrientation orientation = ExifOrientation::Ignore) {
  std::vector<unsigned char> bytes = read_file(path);
  return format::decode_image(bytes, path, channels, limits, orientation);
}

// Bilinear resize of a C x H x W image, the same as data::Resize (F.resize with antialias=False).
inline Tensor resize(const Tensor& image, std::int64_t height, std::int64_t width) {
  return kernels::resize(image, height, width, kernels::Interpolation::Bilinear);
}

// Writes a C x H x W (C = 1, 3 or 4) or H x W tensor as an 8-bit PNG: values rounded to the nearest integer
// and clamped to 0..255 (NaN becomes 0). The file is written atomically (temporary file, then rename).
inline void save_png(const std::string& path, const Tensor& image) {
  if (!(image.dim() == 2 || (image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3 || image.size(0) == 4))))
    throw shape_error("save_png: expected an image C x H x W with C = 1, 3 or 4 (or H x W), got " +
                      to_string(image.shape()));
  const std::int64_t c = image.dim() == 3 ? image.size(0) : 1;
  const std::int64_t h = image.size(-2), w = image.size(-1);
  if (h <= 0 || w <= 0 || h > (1 << 24) || w > (1 << 24))
    throw shape_error("save_png: cannot write an image of shape " + to_string(image.shape()));
  std::vector<unsigned char> pixels(static_cast<std::size_t>(c * h * w));
  for (std::int64_t ch = 0; ch < c; ++ch)
    for (std::int64_t i = 0; i < h * w; ++i) {
      const float v = image.data()[ch * h * w + i];
      const float r = std::isnan(v) ? 0.0f : std::min(255.0f, std::max(0.0f, std::nearbyint(v)));
      pixels[static_cast<std::size_t>(i * c + ch)] = static_cast<unsigned char>(r);
    }
  write_file_atomic(path, format::encode_png(pixels.data(), static_cast<int>(w), static_cast<int>(h),
                                             static_cast<int>(c), path));
}

// torchvision.utils.make_grid: N x C x H x W images tiled nrow per row, `padding` pixels of pad_value around
// and between them -> C x (rows (H + padding) + padding) x (cols (W + padding) + padding).
inline Tensor make_grid(const Tensor& images, std::int64_t nrow = 8, std::int64_t padding = 2, float pad_value = 0.0f) {
  if (images.dim() != 4 || images.size(0) == 0)
    throw shape_error("make_grid: expected images N x C x H x W with N > 0, got " + to_string(images.shape()));
  if (nrow < 1 || padding < 0) throw std::invalid_argument("make_grid: nrow must be >= 1 and padding >= 0");
  const std::int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const std::int64_t cols = std::min(nrow, n), rows = (n + cols - 1) / cols;
  const std::int64_t gh = rows * (h + padding) + padding, gw = cols * (w + padding) + padding;
  Tensor grid({c, gh, gw}, pad_value);
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t top = (k / cols) * (h + padding) + padding, left = (k % cols) * (w + padding) + padding;
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t y = 0; y < h; ++y) {
        const float* src = images.data() + ((k * c + ch) * h + y) * w;
        std::copy(src, src + w, grid.data() + (ch * gh + top + y) * gw + left);
      }
  }
  return grid;
}

// make_grid, then save_png: a sample sheet of a batch (values expected in 0..255).
inline void save_grid_png(const std::string& path, const Tensor& images, std::int64_t nrow = 8,
                          std::int64_t padding = 2, float pad_value = 0.0f) {
  save_png(path, make_grid(images, nrow, padding, pad_value));
}

}  // namespace io
}  // namespace ember
