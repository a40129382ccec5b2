#pragma once
// Image files: PNG, JPEG and BMP in through stb_image, PNG out through stb_image_write. The only ember header
// that touches stb. stb's implementation is compiled into each translation unit that includes this header
// as static functions (STB_IMAGE_STATIC, STB_IMAGE_WRITE_STATIC), so a header-only library links without
// duplicate symbols. A program that also compiles stb itself should do so in a translation unit that does not
// include this header.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
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

inline void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* p = static_cast<const unsigned char*>(data);
  out->insert(out->end(), p, p + size);
}

// stb_image 2.27 (Debian's libstb, 2022) trusts the code counts of a JPEG Huffman table: counts adding up to
// more than 256 write past the table's arrays inside the decoder (heap overflow, found by fuzz/fuzz_image.cpp).
// So any DHT table that stb could read is checked first. Up to the first scan the segments are walked as
// stb walks them (markers after optional 0xFF fill, padding skipped, APPn/COM payloads skipped by length);
// after it, stb finds markers wherever the entropy decoder stops, so every 0xFF 0xC4 is checked (a real scan
// stuffs 0xFF as 0xFF 0x00, so a valid file never has a stray one). Returns the byte offset of the first bad
// table, or npos. Bytes past the end read as 0, as stb reads them.
inline std::size_t find_bad_jpeg_huffman_table(const std::vector<unsigned char>& b) {
  constexpr std::size_t npos = static_cast<std::size_t>(-1);
  const std::size_t n = b.size();
  auto at = [&](std::size_t i) -> unsigned { return i < n ? b[i] : 0u; };
  // The DHT segment whose length field starts at `i`: each table is a class/id byte, 16 counts and the codes.
  auto dht_is_bad = [&](std::size_t i) {
    long left = static_cast<long>(at(i) << 8 | at(i + 1)) - 2;
    std::size_t p = i + 2;
    while (left > 0 && p < n) {
      unsigned codes = 0;
      for (std::size_t k = 0; k < 16; ++k) codes += at(p + 1 + k);
      if (codes > 256) return true;
      p += 17 + codes;
      left -= 17 + static_cast<long>(codes);
    }
    return false;
  };
  std::size_t i = 0;
  while (i < n && b[i] == 0xFF) ++i;
  if (i == 0 || i >= n || b[i] != 0xD8) return npos;  // not a JPEG (stb's SOI test)
  ++i;
  // Header: segment by segment until the first scan.
  while (i < n) {
    if (b[i] != 0xFF) {  // padding between segments, skipped byte by byte as stb does
      ++i;
      continue;
    }
    while (i < n && b[i] == 0xFF) ++i;
    if (i >= n) return npos;
    const unsigned m = b[i++];
    if (m == 0xD9) return npos;                             // end of image
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // markers without a length
    if (m == 0xC4 && dht_is_bad(i)) return i - 2;
    const std::size_t length = at(i) << 8 | at(i + 1);
    if (m == 0xDA) break;  // start of scan: the entropy-coded data follows the scan header
    i += std::max<std::size_t>(length, 2);
  }
  for (; i + 1 < n; ++i) {
    if (b[i] != 0xFF) continue;
    std::size_t j = i + 1;
    while (j < n && b[j] == 0xFF) ++j;
    if (j < n && b[j] == 0xC4 && dht_is_bad(j + 1)) return i;
  }
  return npos;
}

// stb_image 2.27 copies each IDAT chunk into a buffer it allocates at the first non-empty one, so a zero-length
// IDAT before it makes stb call memcpy(NULL, p, 0): harmless in practice, undefined behaviour all the same
// (found by fuzz/fuzz_image.cpp under UBSan). Empty IDAT chunks carry nothing, so they are dropped before stb
// sees the file. The chunks are walked as stb walks them (length, type, data, CRC). Returns true when `b`
// was changed.
inline bool drop_empty_png_idat_chunks(std::vector<unsigned char>& b) {
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || !std::equal(signature, signature + 8, b.begin())) return false;
  std::vector<std::pair<std::size_t, std::size_t>> drop;  // [begin, end) of each empty IDAT chunk
  std::size_t i = 8;
  while (b.size() - i >= 12) {
    const std::uint64_t length = std::uint64_t(b[i]) << 24 | std::uint64_t(b[i + 1]) << 16 | std::uint64_t(b[i + 2]) << 8 | b[i + 3];
    const bool idat = b[i + 4] == 'I' && b[i + 5] == 'D' && b[i + 6] == 'A' && b[i + 7] == 'T';
    const bool iend = b[i + 4] == 'I' && b[i + 5] == 'E' && b[i + 6] == 'N' && b[i + 7] == 'D';
    if (idat && length == 0) drop.emplace_back(i, i + 12);
    if (iend || length > b.size() - i - 12) break;
    i += 12 + static_cast<std::size_t>(length);
  }
  if (drop.empty()) return false;
  std::vector<unsigned char> kept;
  kept.reserve(b.size());
  std::size_t from = 0;
  for (const auto& [begin, end] : drop) {
    kept.insert(kept.end(), b.begin() + static_cast<std::ptrdiff_t>(from), b.begin() + static_cast<std::ptrdiff_t>(begin));
    from = end;
  }
  kept.insert(kept.end(), b.begin() + static_cast<std::ptrdiff_t>(from), b.end());
  b.swap(kept);
  return true;
}

// Decompression bombs: stb reads the bytes past the end of a truncated BMP or JPEG as zeros and decodes the
// whole claimed image, so a 100-byte file could make us decode (and allocate floats for) hundreds of megapixels
// (found by fuzz/fuzz_image.cpp: a BMP of 5 x 8388612 pixels in 118 bytes). Limits, checked from the header
// before decoding:
// - any format: at most PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS * 2, which PIL refuses);
// - BMP (stb reads it uncompressed only): the pixel rows the header claims must be in the file;
// - JPEG: every 8 x 8 block of the full-resolution component costs at least one bit of Huffman-coded data,
//   so a valid file has at least W * H / 512 bytes.
constexpr std::int64_t kMaxImagePixels = 2 * 89478485;

inline std::uint32_t le32(const std::vector<unsigned char>& b, std::size_t i) {
  return std::uint32_t(b[i]) | std::uint32_t(b[i + 1]) << 8 | std::uint32_t(b[i + 2]) << 16 | std::uint32_t(b[i + 3]) << 24;
}

// Empty when the BMP header is plausible and its pixel rows are present, else the problem.
inline std::string check_bmp_size(const std::vector<unsigned char>& b) {
  if (b.size() < 30 || b[0] != 'B' || b[1] != 'M') return {};  // not a BMP, or too short for stb anyway
  const std::uint32_t offset = le32(b, 10), header = le32(b, 14);
  std::int64_t w = 0, h = 0;
  std::uint32_t bpp = 0;
  if (header == 12) {
    w = std::int16_t(b[18] | b[19] << 8);
    h = std::int16_t(b[20] | b[21] << 8);
    bpp = b[24] | b[25] << 8;
  } else {
    w = static_cast<std::int32_t>(le32(b, 18));
    h = static_cast<std::int32_t>(le32(b, 22));  // negative: rows stored top-down
    bpp = b[28] | b[29] << 8;
  }
  // stb takes abs() of the height, undefined for INT32_MIN; no valid file comes near these extents.
  if (w <= 0 || h == 0 || w > (1 << 24) || h > (1 << 24) || h < -(1 << 24))
    return "bad BMP size " + std::to_string(w) + " x " + std::to_string(h);
  if (bpp == 0 || bpp > 32) return {};  // stb rejects these itself
  const std::uint64_t rows = static_cast<std::uint64_t>(h < 0 ? -h : h);
  const std::uint64_t row_bytes = (static_cast<std::uint64_t>(w) * bpp + 31) / 32 * 4;
  const std::uint64_t last_row = (static_cast<std::uint64_t>(w) * bpp + 7) / 8;  // its padding may be missing
  const std::uint64_t need = std::max<std::uint64_t>(offset, 14 + std::uint64_t(header)) + row_bytes * (rows - 1) + last_row;
  if (b.size() < need)
    return "truncated BMP: " + std::to_string(w) + " x " + std::to_string(rows) + " pixels at " + std::to_string(bpp) +
           " bits need " + std::to_string(need) + " bytes, the file has " + std::to_string(b.size());
  return {};
}

}  // namespace detail

// PNG, JPEG or BMP -> 1 x H x W float tensor of gray values 0..255. Colour converts to gray as PIL's
// convert('L') does (ITU-R 601-2 luma, L = R 299/1000 + G 587/1000 + B 114/1000 in PIL's 16-bit fixed point,
// rounded), so the values equal PIL's exactly. Alpha is ignored, as convert('L') ignores it (a transparent
// pixel keeps its colour; it is not composited on any background). 16-bit PNGs are reduced to 8 bits by stb.
// A missing or unreadable file throws io_error; a corrupt, truncated or unsupported one throws format_error
// naming the file and stb's reason.
inline Tensor load_image(const std::string& path) {
  std::vector<unsigned char> bytes = read_file(path);
  detail::drop_empty_png_idat_chunks(bytes);
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw format_error(path + ": file too large for the image decoder (" + std::to_string(bytes.size()) + " bytes)");
  const std::size_t bad_table = detail::find_bad_jpeg_huffman_table(bytes);
  if (bad_table != static_cast<std::size_t>(-1))
    throw format_error(path + ": cannot decode image: corrupt JPEG: the Huffman table (DHT) at byte " +
                       std::to_string(bad_table) + " defines more than 256 codes");
  const std::string bmp_problem = detail::check_bmp_size(bytes);
  if (!bmp_problem.empty()) throw format_error(path + ": cannot decode image: " + bmp_problem);
  int w = 0, h = 0, comp = 0;
  if (stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp)) {
    const std::int64_t pixels = std::int64_t(w) * h;
    if (pixels > detail::kMaxImagePixels)
      throw format_error(path + ": image of " + std::to_string(w) + " x " + std::to_string(h) + " pixels exceeds the " +
                         std::to_string(detail::kMaxImagePixels) + "-pixel limit (a decompression bomb?)");
    if (bytes[0] == 0xFF && pixels > 512 * static_cast<std::int64_t>(bytes.size()))
      throw format_error(path + ": cannot decode image: truncated JPEG: " + std::to_string(w) + " x " +
                         std::to_string(h) + " pixels need at least " + std::to_string(pixels / 512) +
                         " bytes, the file has " + std::to_string(bytes.size()));
  }
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
  write_file_atomic(path, png);
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
