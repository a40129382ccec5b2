#pragma once
// Weight initialisers by name, as torch.nn.init (PyTorch 1.13): the same names, arguments, defaults and
// distributions, drawn from an ember::Generator (so the numbers differ from PyTorch's: another RNG).
// Each takes a tensor or a Parameter (its value) and, last, the generator (default: default_generator()).
//
// Fans, from the weight's shape as torch.nn.init._calculate_fan_in_and_fan_out: for [out, in, *kernel],
// fan_in = in x kernel area and fan_out = out x kernel area. A grouped Conv2d's weight is
// [out, in/groups, kh, kw], so its fan_in is in/groups x kh x kw.
//
// The default of Linear and Conv2d (reset_parameters() in PyTorch): weight ~ kaiming_uniform_(a = sqrt(5)),
// i.e. U(-b, b) with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), so b = 1/sqrt(fan_in);
// bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

#include "ember/core/parameter.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"

namespace ember::nn::init {

// The recommended gain for a nonlinearity (torch.nn.init.calculate_gain): 1 for linear, conv*, sigmoid;
// 5/3 for tanh; sqrt(2) for relu; sqrt(2 / (1 + slope^2)) for leaky_relu (param: the slope, default 0.01);
// 3/4 for selu.
inline double calculate_gain(const std::string& nonlinearity, std::optional<double> param = std::nullopt) {
  for (const char* linear : {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                             "conv_transpose3d", "sigmoid"})
    if (nonlinearity == linear) return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") {
    const double slope = param.value_or(0.01);
    return std::sqrt(2.0 / (1 + slope * slope));
  }
  if (nonlinearity == "selu") return 3.0 / 4;
  throw std::invalid_argument("nn::init::calculate_gain: unsupported nonlinearity '" + nonlinearity +
                              "' (expected linear, conv1d, conv2d, conv3d, conv_transpose1d/2d/3d, sigmoid, tanh, "
                              "relu, leaky_relu or selu)");
}

// {fan_in, fan_out} of a weight [out, in, *kernel]; at least 2 dimensions.
template <typename T>
std::pair<std::int64_t, std::int64_t> calculate_fan_in_and_fan_out(const TensorT<T>& t) {
  if (t.dim() < 2)
    throw shape_error("nn::init: fan in and fan out need a tensor of at least 2 dimensions, got " +
                      to_string(t.shape()));
  std::int64_t receptive = 1;
  for (std::int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

namespace detail {
// mode "fan_in" keeps the forward pass's variance, "fan_out" the backward pass's.
template <typename T>
double correct_fan(const TensorT<T>& t, const std::string& mode, const char* who) {
  if (mode != "fan_in" && mode != "fan_out")
    throw std::invalid_argument(std::string("nn::init::") + who + ": mode must be 'fan_in' or 'fan_out', got '" +
                                mode + "'");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  return static_cast<double>(mode == "fan_in" ? fan_in : fan_out);
}
}  // namespace detail

// U(a, b).
template <typename T>
void uniform_(TensorT<T>& t, double a = 0.0, double b = 1.0, Generator& gen = default_generator()) {
  for (T& v : t) v = static_cast<T>(gen.uniform(a, b));
}

// N(mean, std^2).
template <typename T>
void normal_(TensorT<T>& t, double mean = 0.0, double sd = 1.0, Generator& gen = default_generator()) {
  for (T& v : t) v = static_cast<T>(mean + sd * gen.normal());
}

template <typename T>
void constant_(TensorT<T>& t, double value) {
  for (T& v : t) v = static_cast<T>(value);
}
template <typename T>
void zeros_(TensorT<T>& t) {
  constant_(t, 0.0);
}
template <typename T>
void ones_(TensorT<T>& t) {
  constant_(t, 1.0);
}

// U(-b, b), b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a). He et al. (2015).
template <typename T>
void kaiming_uniform_(TensorT<T>& t, double a = 0.0, const std::string& mode = "fan_in",
                      const std::string& nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  if (t.numel() == 0) return;  // PyTorch: a no-op (with a warning)
  const double sd = calculate_gain(nonlinearity, a) / std::sqrt(detail::correct_fan(t, mode, "kaiming_uniform_"));
  const double bound = std::sqrt(3.0) * sd;
  uniform_(t, -bound, bound, gen);
}

// N(0, std^2), std = gain / sqrt(fan).
template <typename T>
void kaiming_normal_(TensorT<T>& t, double a = 0.0, const std::string& mode = "fan_in",
                     const std::string& nonlinearity = "leaky_relu", Generator& gen = default_generator()) {
  if (t.numel() == 0) return;
  const double sd = calculate_gain(nonlinearity, a) / std::sqrt(detail::correct_fan(t, mode, "kaiming_normal_"));
  normal_(t, 0.0, sd, gen);
}

// U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out)). Glorot and Bengio (2010).
template <typename T>
void xavier_uniform_(TensorT<T>& t, double gain = 1.0, Generator& gen = default_generator()) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  uniform_(t, -bound, bound, gen);
}

// N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).
template <typename T>
void xavier_normal_(TensorT<T>& t, double gain = 1.0, Generator& gen = default_generator()) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

// The same on a Parameter: its value (the gradient is left alone).
template <typename T, typename... Args>
void uniform_(ParameterT<T>& p, Args&&... args) {
  uniform_(p.value, std::forward<Args>(args)...);
}
template <typename T, typename... Args>
void normal_(ParameterT<T>& p, Args&&... args) {
  normal_(p.value, std::forward<Args>(args)...);
}
template <typename T>
void constant_(ParameterT<T>& p, double value) {
  constant_(p.value, value);
}
template <typename T>
void zeros_(ParameterT<T>& p) {
  zeros_(p.value);
}
template <typename T>
void ones_(ParameterT<T>& p) {
  ones_(p.value);
}
template <typename T, typename... Args>
void kaiming_uniform_(ParameterT<T>& p, Args&&... args) {
  kaiming_uniform_(p.value, std::forward<Args>(args)...);
}
template <typename T, typename... Args>
void kaiming_normal_(ParameterT<T>& p, Args&&... args) {
  kaiming_normal_(p.value, std::forward<Args>(args)...);
}
template <typename T, typename... Args>
void xavier_uniform_(ParameterT<T>& p, Args&&... args) {
  xavier_uniform_(p.value, std::forward<Args>(args)...);
}
template <typename T, typename... Args>
void xavier_normal_(ParameterT<T>& p, Args&&... args) {
  xavier_normal_(p.value, std::forward<Args>(args)...);
}
template <typename T>
std::pair<std::int64_t, std::int64_t> calculate_fan_in_and_fan_out(const ParameterT<T>& p) {
  return calculate_fan_in_and_fan_out(p.value);
}

// The default for Linear and Conv2d: weight then bias, as reset_parameters() in PyTorch, with the weight's
// fan_in given (the same as calculate_fan_in_and_fan_out(weight).first).
template <typename T>
void default_weight_and_bias_(TensorT<T>& weight, TensorT<T>* bias, std::int64_t fan_in, Generator& gen) {
  // kaiming_uniform_(weight, a = sqrt(5)), its bound computed as it always was (same seed, same bits).
  const double a = std::sqrt(5.0), gain = std::sqrt(2.0 / (1.0 + a * a));
  const double w_bound = fan_in > 0 ? gain * std::sqrt(3.0 / static_cast<double>(fan_in)) : 0.0;
  uniform_(weight, -w_bound, w_bound, gen);
  if (bias) {
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    uniform_(*bias, -bound, bound, gen);
  }
}

}  // namespace ember::nn::init
