#pragma once
// PyTorch's default initialisation (torch.nn.init), drawn from an ember::Generator.
// Linear and Conv2d: weight ~ kaiming_uniform(a = sqrt(5)), i.e. U(-b, b) with
//   b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) = sqrt(1/3)  =>  b = 1 / sqrt(fan_in);
// bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Same distributions as PyTorch; the numbers differ (other RNG).
#include <cmath>
#include <cstdint>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"

namespace ember::nn::init {

template <typename T>
void uniform_(TensorT<T>& t, double lo, double hi, Generator& gen) {
  for (T& v : t) v = static_cast<T>(gen.uniform(lo, hi));
}

template <typename T>
void kaiming_uniform_(TensorT<T>& t, double a, std::int64_t fan_in, Generator& gen) {
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = fan_in > 0 ? gain * std::sqrt(3.0 / static_cast<double>(fan_in)) : 0.0;
  uniform_(t, -bound, bound, gen);
}

// The default for Linear and Conv2d: weight then bias, as reset_parameters() in PyTorch.
template <typename T>
void default_weight_and_bias_(TensorT<T>& weight, TensorT<T>* bias, std::int64_t fan_in, Generator& gen) {
  kaiming_uniform_(weight, std::sqrt(5.0), fan_in, gen);
  if (bias) {
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    uniform_(*bias, -bound, bound, gen);
  }
}

}  // namespace ember::nn::init
