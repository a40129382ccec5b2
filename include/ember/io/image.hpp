#pragma once
// Image files: PNG, JPEG and BMP in through stb_image, PNG out through stb_image_write. The only ember header
// that touches stb. stb's implementation is compiled into each translation unit that includes this header
// as static functions (STB_IMAGE_STATIC, STB_IMAGE_WRITE_STATIC), so a header-only library links without
// duplicate symbols. A program that also compiles stb itself should do so in a translation unit that does not
// include this header.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/transforms.hpp"

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wconversion"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
#ifndef STB_IMAGE_STATIC
#define STB_IMAGE_STATIC
#endif
#ifndef STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_STATIC
#endif
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image.h>
#include <stb_image_write.h>
#undef STB_IMAGE_IMPLEMENTATION
#undef STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace ember {
namespace io {

namespace detail {

inline std::vector<unsigned char> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw io_error(path + ": cannot open: " + std::strerror(errno));
  std::vector<unsigned char> bytes;
  unsigned char chunk[1 << 16];
  for (;;) {
    const std::size_t got = std::fread(chunk, 1, sizeof chunk, f);
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof chunk) break;
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw io_error(path + ": read error after " + std::to_string(bytes.size()) + " bytes");
  return bytes;
}

// Writes bytes to a temporary file in the destination's directory, then renames it over the destination, so
// a reader never sees a half-written file and a failed write leaves the old file in place.
inline void write_file_atomic(const std::string& path, const std::vector<unsigned char>& bytes) {
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp-" +
                          std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()) % 1000000) + "-" +
                          std::to_string(counter++);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw io_error(path + ": cannot create " + tmp + ": " + std::strerror(errno));
  const bool wrote = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
  const int saved = errno;
  if (std::fclose(f) != 0 || !wrote) {
    std::remove(tmp.c_str());
    throw io_error(path + ": write failed: " + std::strerror(wrote ? errno : saved));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    throw io_error(path + ": cannot rename " + tmp + " into place: " + std::strerror(e));
  }
}

inline void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* p = static_cast<const unsigned char*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace detail

// PNG, JPEG or BMP -> 1 x H x W float tensor of gray values 0..255. Colour converts to gray as PIL's
// convert('L') does (ITU-R 601-2 luma, L = R 299/1000 + G 587/1000 + B 114/1000 in PIL's 16-bit fixed point,
// rounded), so the values equal PIL's exactly. Alpha is ignored, as convert('L') ignores it (a transparent
// pixel keeps its colour; it is not composited on any background). 16-bit PNGs are reduced to 8 bits by stb.
// A missing or unreadable file throws io_error; a corrupt, truncated or unsupported one throws format_error
// naming the file and stb's reason.
inline Tensor load_image(const std::string& path) {
  const std::vector<unsigned char> bytes = detail::read_file(path);
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw format_error(path + ": file too large for the image decoder (" + std::to_string(bytes.size()) + " bytes)");
  int w = 0, h = 0, comp = 0;
  stbi_uc* pixels = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp, 0);
  if (!pixels) {
    const char* why = stbi_failure_reason();
    throw format_error(path + ": cannot decode image: " + (why ? why : "unknown error"));
  }
  Tensor image;
  try {
    image = Tensor({1, h, w});
  } catch (...) {
    stbi_image_free(pixels);
    throw;
  }
  const std::int64_t n = static_cast<std::int64_t>(w) * h;
  float* dst = image.data();
  for (std::int64_t i = 0; i < n; ++i) {
    const stbi_uc* p = pixels + i * comp;
    if (comp <= 2) {
      dst[i] = p[0];
    } else {
      // PIL's L24 macro: weights 0.299/0.587/0.114 scaled by 2^16, rounded at the half.
      const std::uint32_t l = (std::uint32_t(p[0]) * 19595u + std::uint32_t(p[1]) * 38470u +
                               std::uint32_t(p[2]) * 7471u + 0x8000u) >> 16;
      dst[i] = static_cast<float>(l);
    }
  }
  stbi_image_free(pixels);
  return image;
}

// Bilinear resize of a C x H x W image, the same as data::Resize (F.resize with antialias=False).
inline Tensor resize(const Tensor& image, std::int64_t height, std::int64_t width) {
  return data::resize(image, height, width, data::Interpolation::Bilinear);
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
  std::vector<unsigned char> png;
  if (!stbi_write_png_to_func(&detail::append_bytes, &png, static_cast<int>(w), static_cast<int>(h),
                              static_cast<int>(c), pixels.data(), static_cast<int>(w * c)))
    throw io_error(path + ": PNG encoding failed");
  detail::write_file_atomic(path, png);
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
