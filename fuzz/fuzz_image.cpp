// Image loader (PNG, JPEG, BMP through stb_image, then the gray conversion).
#include <cstdint>
#include <ember/core/error.hpp>
#include <ember/io/image.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size, ".img");
  try {
    const ember::Tensor image = ember::io::load_image(path);
    if (image.dim() != 3 || image.size(0) != 1 || image.numel() == 0) __builtin_trap();
    for (std::int64_t i = 0; i < image.numel(); ++i)
      if (!(image[i] >= 0.0f && image[i] <= 255.0f)) __builtin_trap();
  } catch (const ember::format_error&) {
  } catch (const ember::io_error&) {
  }
  return 0;
}
