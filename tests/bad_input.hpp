#pragma once
// Helpers of the bad-input tests, which live with their area (test_<area>.cpp, in namespace bad_input) and, for
// what crosses areas (fuzz regressions, readers, full disks, killed runs), in test_robustness.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <ember/ember.hpp>
#include <filesystem>
#include <string>

#include "alloc_counter.hpp"
#include "scratch.hpp"

namespace bad_input {

namespace fs = std::filesystem;
using ember::Shape;
using ember::Tensor;
namespace nn = ember::nn;
namespace data = ember::data;
namespace io = ember::io;
namespace train = ember::train;
using scratch::Bytes;


constexpr std::size_t kMiB = std::size_t(1) << 20;

inline std::string tmp_path(const std::string& name) { return scratch::path("robustness", name); }
using scratch::contains;
using scratch::message_of;
using scratch::read_file;
using scratch::write_file;

// 1 x 4 x 4 inputs -> 3 logits: the smallest model fit can train (the tests of fit are not about layers).
inline nn::Sequential flat_linear(std::uint64_t seed) {
  ember::Generator gen(seed);
  nn::Sequential net("Net", {});
  net.add("flatten", nn::Flatten());
  net.add("fc1", nn::Linear(16, 3, true, gen));
  return net;
}

// Runs f and reports the largest single allocation it made. Under a sanitizer nothing is counted (0): there the
// asan test preset's max_allocation_size_mb=512 makes any giant allocation abort the test instead.
template <typename F>
std::size_t largest_allocation_of(F&& f) {
  reset_largest_allocation();
  f();
  return largest_allocation();
}

inline void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

inline Bytes safetensors_file(const std::string& json, const Bytes& data = {}) {
  // Sized once and filled in place (growing an 8-byte vector by insert trips a false -Warray-bounds in GCC 12).
  Bytes b(8 + json.size() + data.size());
  for (std::size_t i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(json.size() >> (8 * i));
  std::copy(json.begin(), json.end(), b.begin() + 8);
  std::copy(data.begin(), data.end(), b.begin() + 8 + static_cast<std::ptrdiff_t>(json.size()));
  return b;
}

inline bool all_nan(const Tensor& t, std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i)
    if (!std::isnan(t[i])) return false;
  return true;
}
inline bool all_finite(const Tensor& t, std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i)
    if (!std::isfinite(t[i])) return false;
  return true;
}

inline Tensor random_tensor(const Shape& shape, std::uint64_t seed) {
  ember::Generator gen(seed);
  Tensor t(shape);
  for (auto& v : t) v = static_cast<float>(gen.normal());
  return t;
}

}  // namespace bad_input
