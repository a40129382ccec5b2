#pragma once
// EXIF orientation of JPEG files: the Orientation tag (0x0112) of IFD0 in the first APP1 "Exif" segment, and
// the transpose that shows the picture upright, as PIL's ImageOps.exif_transpose. The parser reads untrusted
// bytes: every offset and count is checked against the segment before it is used (fuzz/fuzz_exif.cpp). An
// EXIF block that cannot be read, or an orientation outside 1..8, counts as "no orientation" (1): the pixels
// are still good, and PIL's exif_transpose leaves such images alone too.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember {
namespace format {

// Whether decoding applies a JPEG's EXIF orientation. Off by default, as torchvision's loader (PIL's open and
// convert) ignores it.
enum class ExifOrientation { Ignore, Apply };

namespace detail {

// The Orientation value of a TIFF structure (EXIF's payload) in b[begin, end), or 1.
inline int tiff_orientation(const std::vector<unsigned char>& b, std::size_t begin, std::size_t end) {
  if (end < begin || end - begin < 8) return 1;
  const bool little = b[begin] == 'I' && b[begin + 1] == 'I';
  if (!little && !(b[begin] == 'M' && b[begin + 1] == 'M')) return 1;
  auto u16 = [&](std::size_t at) -> std::uint32_t {
    return little ? (b[at] | b[at + 1] << 8) : (b[at] << 8 | b[at + 1]);
  };
  auto u32 = [&](std::size_t at) -> std::uint32_t {
    return little ? (std::uint32_t(b[at]) | std::uint32_t(b[at + 1]) << 8 | std::uint32_t(b[at + 2]) << 16 |
                     std::uint32_t(b[at + 3]) << 24)
                  : (std::uint32_t(b[at]) << 24 | std::uint32_t(b[at + 1]) << 16 | std::uint32_t(b[at + 2]) << 8 |
                     std::uint32_t(b[at + 3]));
  };
  const std::size_t size = end - begin;
  if (u16(begin + 2) != 42) return 1;
  const std::uint64_t ifd = u32(begin + 4);
  if (ifd > size - 2) return 1;
  const std::uint64_t count = u16(begin + static_cast<std::size_t>(ifd));
  // Entries of 12 bytes each; only those inside the segment are read, however many the count claims.
  for (std::uint64_t k = 0; k < count; ++k) {
    const std::uint64_t at = ifd + 2 + 12 * k;
    if (at + 12 > size) break;
    const std::size_t e = begin + static_cast<std::size_t>(at);
    if (u16(e) != 0x0112) continue;
    if (u16(e + 2) != 3 || u32(e + 4) != 1) return 1;  // SHORT, one value, held in the entry itself
    const std::uint32_t v = u16(e + 8);
    return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
  }
  return 1;
}

}  // namespace detail

// The EXIF orientation (1..8) of a JPEG file's bytes; 1 when the file is not a JPEG, has no EXIF segment before
// its first scan, or its EXIF cannot be read. Never throws, never reads outside `b`.
inline int jpeg_exif_orientation(const std::vector<unsigned char>& b) {
  const std::size_t n = b.size();
  if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return 1;
  std::size_t i = 2;
  while (i + 4 <= n) {
    if (b[i] != 0xFF) return 1;
    const unsigned m = b[i + 1];
    if (m == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (m == 0xDA || m == 0xD9) return 1;  // the scan starts (or the image ends): no EXIF
    if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) {
      i += 2;
      continue;
    }
    const std::size_t length = std::size_t(b[i + 2]) << 8 | b[i + 3];
    if (length < 2 || length > n - i - 2) return 1;
    const std::size_t data = i + 4, end = i + 2 + length;
    if (m == 0xE1 && end - data >= 6 && b[data] == 'E' && b[data + 1] == 'x' && b[data + 2] == 'i' &&
        b[data + 3] == 'f' && b[data + 4] == 0 && b[data + 5] == 0)
      return detail::tiff_orientation(b, data + 6, end);
    i = end;
  }
  return 1;
}

// A C x H x W image shown upright for EXIF orientation `o` (1..8), as PIL's exif_transpose: 2 mirrors
// left-right, 3 turns 180 degrees, 4 mirrors top-bottom, 5 transposes, 6 turns 90 degrees clockwise,
// 7 transverses, 8 turns 90 degrees counter-clockwise. 5 to 8 swap height and width.
inline Tensor apply_exif_orientation(const Tensor& image, int o) {
  if (image.dim() != 3) throw shape_error("apply_exif_orientation: expected C x H x W, got " + to_string(image.shape()));
  if (o < 1 || o > 8) throw std::invalid_argument("apply_exif_orientation: orientation must be 1..8, got " + std::to_string(o));
  if (o == 1) return image;
  const std::int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  const bool swap = o >= 5;
  const std::int64_t oh = swap ? w : h, ow = swap ? h : w;
  Tensor out({c, oh, ow});
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const float* src = image.data() + ch * h * w;
    float* dst = out.data() + ch * oh * ow;
    for (std::int64_t y = 0; y < oh; ++y)
      for (std::int64_t x = 0; x < ow; ++x) {
        std::int64_t sy = 0, sx = 0;
        switch (o) {
          case 2: sy = y, sx = w - 1 - x; break;
          case 3: sy = h - 1 - y, sx = w - 1 - x; break;
          case 4: sy = h - 1 - y, sx = x; break;
          case 5: sy = x, sx = y; break;
          case 6: sy = h - 1 - x, sx = y; break;
          case 7: sy = h - 1 - x, sx = w - 1 - y; break;
          default: sy = x, sx = w - 1 - y; break;  // 8
        }
        dst[y * ow + x] = src[sy * w + sx];
      }
  }
  return out;
}

}  // namespace format
}  // namespace ember
