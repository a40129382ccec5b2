// Sign-MNIST CSV reader (plain or gzip).
#include <cstdint>
#include <ember/core/error.hpp>
#include <ember/data/sign_mnist.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size, ".csv");
  try {
    const ember::data::Dataset ds = ember::data::load_sign_mnist(path);
    ds.validate();  // a loaded dataset is consistent; validate throws (a finding) otherwise
    if (ds.num_classes != 24 || ds.images.size(2) != ds.images.size(3)) __builtin_trap();
  } catch (const ember::format_error&) {
  } catch (const ember::io_error&) {
  }
  return 0;
}
