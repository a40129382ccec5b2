// IDX reader (plain or gzip): read_idx_images and read_idx_labels on the same bytes. The first byte chooses
// which reader goes first, so both see every mutation.
#include <cstdint>
#include <ember/core/error.hpp>
#include <ember/data/idx.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size, ".idx");
  try {
    const ember::Tensor images = ember::data::read_idx_images(path);
    // A successful read is consistent: N x 1 x H x W holding bytes.
    if (images.dim() != 4 || images.size(1) != 1) __builtin_trap();
    for (std::int64_t i = 0; i < images.numel(); ++i)
      if (!(images[i] >= 0.0f && images[i] <= 255.0f)) __builtin_trap();
  } catch (const ember::format_error&) {
  } catch (const ember::io_error&) {
  }
  try {
    const std::vector<std::int64_t> labels = ember::data::read_idx_labels(path);
    for (std::int64_t l : labels)
      if (l < 0 || l > 255) __builtin_trap();
  } catch (const ember::format_error&) {
  } catch (const ember::io_error&) {
  }
  return 0;
}
