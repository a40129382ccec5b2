#pragma once
// Reads the golden-value files written by tests/fixtures/make_fixtures.py: named tensors (float32 or float64
// values, read here into double), <name> <ndim> <dims...>\n<values...>\n; lines starting with '#' are comments.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <ember/core/random.hpp>
#include <ember/core/tensor.hpp>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace fixture {

inline std::string path(const std::string& name) { return std::string(EMBER_FIXTURE_DIR) + "/" + name; }

inline std::map<std::string, ember::TensorT<double>> load(const std::string& name) {
  std::ifstream in(path(name));
  REQUIRE_MESSAGE(in.good(), "missing fixture " << path(name));
  std::map<std::string, ember::TensorT<double>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream header(line);
    std::string key;
    int ndim = 0;
    header >> key >> ndim;
    ember::Shape shape(static_cast<std::size_t>(ndim));
    for (auto& d : shape) header >> d;
    ember::TensorT<double> t(shape);
    REQUIRE(std::getline(in, line));
    std::istringstream values(line);
    for (double& v : t) values >> v;
    REQUIRE_MESSAGE(!values.fail(), "fixture " << name << ": short value line for " << key);
    out.emplace(key, std::move(t));
  }
  return out;
}

// Largest error of `got` against `want`, relative to the larger of |want| and a tenth of the tensor's scale (its
// largest magnitude): elementwise relative error means nothing for entries that are zero up to rounding (sums
// that cancel), and float sums taken in another order differ by ~1e-7 of the tensor's scale. Below 1e-10 a
// difference is rounding noise (e.g. the gradient of a conv bias that a BatchNorm cancels, exactly 0 in theory).
template <typename T>
double max_rel_error(const ember::TensorT<T>& got, const ember::TensorT<double>& want) {
  REQUIRE_MESSAGE(got.shape() == want.shape(),
                  "shape " << ember::to_string(got.shape()) << " vs " << ember::to_string(want.shape()));
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  double worst = 0;
  for (std::int64_t i = 0; i < want.numel(); ++i) {
    const double w = want[i], g = static_cast<double>(got[i]);
    const double denom = std::max({std::fabs(w), 0.1 * scale, 1e-10});
    worst = std::max(worst, std::fabs(g - w) / denom);
  }
  return worst;
}

// The same for a float tensor compared with a fixture tensor.
template <typename T>
double max_rel_error(const ember::TensorT<T>& got, const ember::TensorT<float>& want) {
  return max_rel_error(got, want.template cast<double>());
}

// A tensor of standard normal values from `seed`: the tests' random inputs.
inline ember::Tensor normal_tensor(const ember::Shape& s, std::uint64_t seed) {
  ember::Generator gen(seed);
  ember::Tensor t(s);
  for (auto& v : t) v = static_cast<float>(gen.normal());
  return t;
}

}  // namespace fixture
