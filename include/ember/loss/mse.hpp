#pragma once
// Mean squared error, as torch.nn.MSELoss(reduction) of PyTorch 1.13: l = (x - y)^2 per element,
// d l / d x = 2 (x - y); the mean is over every element. Targets: a TensorT<U> of the input's shape (no
// broadcasting: PyTorch only warns when the shapes differ, here it is an error).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/loss/reduction.hpp"

namespace ember::loss {

template <typename T>
class MSELossT {
 public:
  explicit MSELossT(Reduction reduction = Reduction::mean) : reduction_(reduction) {}

  Reduction reduction() const noexcept { return reduction_; }

  template <typename U>
  T forward(const TensorT<T>& input, const TensorT<U>& target) {
    detail::check_value_target(input, target, "MSELoss");
    const std::int64_t n = input.numel();
    diff_.resize(input.shape());
    losses_.resize(input.shape());
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const T d = input[i] - static_cast<T>(target[i]);
      diff_[i] = d;
      losses_[i] = d * d;
      total += static_cast<double>(d * d);
    }
    if (reduction_ == Reduction::mean) return static_cast<T>(total / static_cast<double>(n));
    return static_cast<T>(total);
  }

  void backward_into(TensorT<T>& grad) const { backward(grad, nullptr); }
  // Reduction::none: `upstream` (the input's shape) is the gradient of each element's loss.
  void backward_into(TensorT<T>& grad, const TensorT<T>& upstream) const {
    detail::check_upstream(upstream, losses_.shape(), "MSELoss");
    backward(grad, &upstream);
  }

  // Each element's loss of the last forward (PyTorch's reduction='none' output).
  const TensorT<T>& losses() const noexcept { return losses_; }

 private:
  void backward(TensorT<T>& grad, const TensorT<T>* upstream) const {
    if (losses_.empty()) throw std::logic_error("MSELoss: backward called before forward");
    grad.resize(diff_.shape());
    const std::int64_t n = diff_.numel();
    const T scale = reduction_ == Reduction::mean ? T(2) / static_cast<T>(n) : T(2);
    for (std::int64_t i = 0; i < n; ++i) grad[i] = diff_[i] * (upstream ? (*upstream)[i] * scale : scale);
  }

  Reduction reduction_;
  TensorT<T> diff_, losses_;
};

using MSELoss = MSELossT<float>;
EMBER_EXTERN_TEMPLATE(class MSELossT<float>)
EMBER_EXTERN_TEMPLATE(class MSELossT<double>)

}  // namespace ember::loss

namespace ember::nn {
using loss::MSELoss;
using loss::MSELossT;
}  // namespace ember::nn
