#pragma once
// Image codecs on byte buffers: PNG, JPEG, BMP and GIF (its first frame) in through stb_image, PNG out through stb_image_write. The
// only ember header that touches stb; no file paths here (io/image.hpp reads and writes files), but every
// error names the file through `name`. Every input passes format/image_check.hpp before stb sees it.
// stb's implementation is in format/image_stb.hpp: compiled into each translation unit that includes this header
// in header-only use, and only into ember::compiled in compiled mode.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/exif.hpp"
#include "ember/format/image_check.hpp"

namespace ember {
namespace format {

// An image file's bytes -> C x H x W float tensor of values 0..255, C = `channels`:
// - 1: gray as PIL's convert('L') (ITU-R 601-2 luma, L = R 299/1000 + G 587/1000 + B 114/1000 in PIL's
//   16-bit fixed point, rounded), so the values equal PIL's exactly;
// - 3: RGB as PIL's convert('RGB') (gray files repeat their value).
// Alpha is dropped, as convert('L') and convert('RGB') drop it (a transparent pixel keeps its colour; nothing
// is blended with a background). 16-bit PNGs keep the high byte of each sample (v >> 8, stb's rule): that
// is PIL's reading of 16-bit colour PNGs; PIL's convert('L') of a 16-bit gray PNG instead clips the 16-bit
// value at 255, which turns almost every pixel white, so ember scales gray the same way as colour there.
// `orientation` Apply shows a JPEG upright by its EXIF orientation (format/exif.hpp); Ignore (the default,
// as torchvision's loader) leaves the pixels as stored. `bytes` may be edited (empty PNG IDAT chunks
// dropped). A corrupt, truncated, oversized or unsupported file throws format_error naming `name` and the
// reason.
EMBER_LIB_INLINE Tensor decode_image(std::vector<unsigned char>& bytes, const std::string& name, int channels = 1,
                                     const ImageLimits& limits = {},
                                     ExifOrientation orientation = ExifOrientation::Ignore);

// Interleaved 8-bit pixels (H rows of W x C bytes, C = 1..4) -> the bytes of a PNG file. `name` is for errors.
EMBER_LIB_INLINE std::vector<unsigned char> encode_png(const unsigned char* pixels, int width, int height,
                                                       int channels, const std::string& name);

}  // namespace format
}  // namespace ember

// The definitions, and stb with them: here in header-only use, in ember::compiled in compiled mode.
#if !defined(EMBER_COMPILED)
#include "ember/format/image_stb.hpp"
#endif
