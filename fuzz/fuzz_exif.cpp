// EXIF orientation of JPEGs (format/exif.hpp): the segment walk, the TIFF header and IFD0 of untrusted bytes.
// The parser never throws: it must return 1..8 for any input, and the orientation it gives must transpose an
// image to the right shape.
#include <cstdint>
#include <ember/format/exif.hpp>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<unsigned char> bytes(data, data + size);
  const int o = ember::format::jpeg_exif_orientation(bytes);
  if (o < 1 || o > 8) __builtin_trap();
  const ember::Tensor image({2, 3, 5});
  const ember::Tensor upright = ember::format::apply_exif_orientation(image, o);
  const bool swapped = o >= 5;
  if (upright.size(1) != (swapped ? 5 : 3) || upright.size(2) != (swapped ? 3 : 5)) __builtin_trap();
  return 0;
}
