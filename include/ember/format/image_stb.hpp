#pragma once
// The definitions behind format/image.hpp: stb's decoder and encoder, and ember's decode_image and encode_png
// on them. Header-only, format/image.hpp includes this file, so stb is compiled (as static functions:
// STB_IMAGE_STATIC, STB_IMAGE_WRITE_STATIC, so a header-only library links without duplicate symbols) into each
// translation unit that includes image.hpp. In compiled mode only ember::compiled includes it
// (src/compiled/image.cpp): a program decodes through the library and never compiles stb. A program that also
// compiles stb itself should do so in a translation unit that does not include this header.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/exif.hpp"
#include "ember/format/image.hpp"
#include "ember/format/image_check.hpp"

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
// The decoders stb compiles; every other format is refused by signature in check_image before stb runs.
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
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
namespace format {

namespace detail {

inline void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<unsigned char>*>(context);
  const auto* p = static_cast<const unsigned char*>(data);
  out->insert(out->end(), p, p + size);
}

// stb_image 2.27 copies each IDAT chunk into a buffer it allocates at the first non-empty one, so a zero-length
// IDAT before it makes stb call memcpy(NULL, p, 0): harmless in practice, undefined behaviour all the same
// (found by fuzz/fuzz_image.cpp under UBSan). Empty IDAT chunks carry nothing, so they are dropped before stb
// sees the file. Returns true when `b` was changed.
inline bool drop_empty_png_idat_chunks(std::vector<unsigned char>& b) {
  static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || !std::equal(signature, signature + 8, b.begin())) return false;
  std::vector<std::pair<std::size_t, std::size_t>> drop;  // [begin, end) of each empty IDAT chunk
  std::size_t i = 8;
  while (b.size() - i >= 12) {
    const std::uint64_t length = be32(b, i);
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

struct StbFree {
  void operator()(stbi_uc* p) const noexcept { stbi_image_free(p); }
};

}  // namespace detail

EMBER_LIB_INLINE Tensor decode_image(std::vector<unsigned char>& bytes, const std::string& name, int channels,
                                     const ImageLimits& limits, ExifOrientation orientation) {
  if (channels != 1 && channels != 3)
    throw std::invalid_argument(name + ": decode_image: channels must be 1 or 3, got " + std::to_string(channels));
  detail::drop_empty_png_idat_chunks(bytes);
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw format_error(name + ": file too large for the image decoder (" + std::to_string(bytes.size()) + " bytes)");
  check_image(bytes, name, limits);
  int w = 0, h = 0, comp = 0;
  std::unique_ptr<stbi_uc, detail::StbFree> pixels(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &comp, 0));
  if (!pixels) {
    const char* why = stbi_failure_reason();
    throw format_error(name + ": cannot decode image: " + (why ? why : "unknown error"));
  }
  Tensor image({channels, h, w});
  const std::int64_t n = static_cast<std::int64_t>(w) * h;
  float* dst = image.data();
  for (std::int64_t i = 0; i < n; ++i) {
    const stbi_uc* p = pixels.get() + i * comp;
    if (comp <= 2) {
      for (int c = 0; c < channels; ++c) dst[c * n + i] = p[0];
    } else if (channels == 3) {
      for (int c = 0; c < 3; ++c) dst[c * n + i] = p[c];
    } else {
      // PIL's L24 macro: weights 0.299/0.587/0.114 scaled by 2^16, rounded at the half.
      const std::uint32_t l = (std::uint32_t(p[0]) * 19595u + std::uint32_t(p[1]) * 38470u +
                               std::uint32_t(p[2]) * 7471u + 0x8000u) >> 16;
      dst[i] = static_cast<float>(l);
    }
  }
  if (orientation == ExifOrientation::Apply) {
    const int o = jpeg_exif_orientation(bytes);
    if (o != 1) return apply_exif_orientation(image, o);
  }
  return image;
}

EMBER_LIB_INLINE std::vector<unsigned char> encode_png(const unsigned char* pixels, int width, int height,
                                                       int channels, const std::string& name) {
  std::vector<unsigned char> png;
  if (!stbi_write_png_to_func(&detail::append_bytes, &png, width, height, channels, pixels, width * channels))
    throw io_error(name + ": PNG encoding failed");
  return png;
}

}  // namespace format
}  // namespace ember
