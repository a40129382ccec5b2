#pragma once
// clip_grad_norm_(parameters, max_norm, norm_type = 2, error_if_nonfinite = false), as
// torch.nn.utils.clip_grad_norm_ (PyTorch 1.13): the norm of all gradients together (as if concatenated into
// one vector), then every gradient scaled in place by min(1, max_norm / (total + 1e-6)). Returns the total norm
// before clipping. norm_type is any p > 0 or infinity (the largest |g|). The scaling happens whether or not it
// is below 1 (a factor of 1 changes nothing), as PyTorch does it.
//
// Call it between backward and the optimiser's step, e.g. in train::TrainStep's before_update hook.
// Allocates nothing; the sums run in double in a fixed order.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/parameter.hpp"
#include "ember/core/tensor.hpp"

namespace ember::nn {

namespace detail {
template <typename T>
double clip_grad_norm(ParameterT<T>* const* parameters, std::size_t count, double max_norm, double norm_type,
                      bool error_if_nonfinite) {
  const bool inf_norm = std::isinf(norm_type) && norm_type > 0;
  if (!inf_norm && !(norm_type > 0))
    throw std::invalid_argument("nn::clip_grad_norm_: norm_type must be positive or infinity, got " +
                                std::to_string(norm_type));
  if (!(max_norm >= 0))
    throw std::invalid_argument("nn::clip_grad_norm_: max_norm must be non-negative, got " +
                                std::to_string(max_norm));
  double acc = 0;  // the sum of |g|^p, or the largest |g|
  bool nan = false;
  bool any = false;
  for (std::size_t i = 0; i < count; ++i) {
    const ParameterT<T>* p = parameters[i];
    if (!p || p->grad.numel() == 0 || !p->requires_grad) continue;  // frozen: PyTorch's grad None
    any = true;
    for (const T g : p->grad) {
      const double a = std::fabs(static_cast<double>(g));
      if (std::isnan(a)) nan = true;
      if (inf_norm)
        acc = std::max(acc, a);
      else if (norm_type == 2.0)
        acc += a * a;
      else if (norm_type == 1.0)
        acc += a;
      else
        acc += std::pow(a, norm_type);
    }
  }
  if (!any) return 0.0;  // PyTorch: no gradients, norm 0, nothing scaled
  double total = inf_norm || norm_type == 1.0 ? acc
                 : norm_type == 2.0           ? std::sqrt(acc)
                                              : std::pow(acc, 1.0 / norm_type);
  if (nan) total = std::numeric_limits<double>::quiet_NaN();
  if (error_if_nonfinite && !std::isfinite(total))
    throw std::runtime_error("nn::clip_grad_norm_: the total norm of order " + std::to_string(norm_type) +
                             " of the gradients is non-finite (" + std::to_string(total) +
                             "), so it cannot be clipped (pass error_if_nonfinite = false to scale by it anyway)");
  // NaN stays NaN through the clamp, as torch.clamp does.
  const double coef = max_norm / (total + 1e-6);
  const T scale = static_cast<T>(std::isnan(coef) ? coef : std::min(coef, 1.0));
  for (std::size_t i = 0; i < count; ++i)
    if (parameters[i])
      for (T& g : parameters[i]->grad) g *= scale;
  return total;
}
}  // namespace detail

template <typename T>
double clip_grad_norm_(const std::vector<ParameterT<T>*>& parameters, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  return detail::clip_grad_norm(parameters.data(), parameters.size(), max_norm, norm_type, error_if_nonfinite);
}

// One parameter, as PyTorch accepts a single tensor.
template <typename T>
double clip_grad_norm_(ParameterT<T>& parameter, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false) {
  ParameterT<T>* one = &parameter;
  return detail::clip_grad_norm(&one, 1, max_norm, norm_type, error_if_nonfinite);
}

}  // namespace ember::nn
