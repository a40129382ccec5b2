// Image loader (PNG, JPEG, BMP: the pre-decode checks, stb_image, then the gray or RGB conversion). The limits
// are tighter than the defaults so that a legitimate decode stays far below the fuzzers' 256 MiB malloc limit
// (a 16 KiB PNG can hold 135 megapixels of 1-bit gray): any allocation beyond them is a finding.
#include <cstdint>
#include <ember/core/error.hpp>
#include <ember/io/image.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size, ".img");
  ember::io::ImageLimits limits;
  limits.max_pixels = std::int64_t(1) << 24;
  limits.max_bytes = std::int64_t(1) << 26;
  const int channels = size % 2 ? 3 : 1;  // both conversions, decided by the input so a run replays exactly
  try {
    const ember::Tensor image = ember::io::load_image(path, channels, limits);
    if (image.dim() != 3 || image.size(0) != channels || image.numel() == 0) __builtin_trap();
    if (image.size(1) * image.size(2) > limits.max_pixels) __builtin_trap();
    for (std::int64_t i = 0; i < image.numel(); ++i)
      if (!(image[i] >= 0.0f && image[i] <= 255.0f)) __builtin_trap();
  } catch (const ember::format_error&) {
  } catch (const ember::io_error&) {
  }
  return 0;
}
