#pragma once
// Binary cross-entropy on logits, as torch.nn.BCEWithLogitsLoss(weight, reduction, pos_weight) of PyTorch 1.13,
// per element (x a logit, y a target, usually in [0, 1]):
//
//   l = w * [ (1 - y) x + (1 + (pw - 1) y) * softplus(-x) ]        softplus(-x) = log(1 + exp(-x))
//     = w * -[ pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)) ]
//   d l / d x = w * [ (1 + (pw - 1) y) sigmoid(x) - pw y ]           (w = weight, pw = pos_weight; 1 if unset)
//
// softplus(-x) is taken as m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0), PyTorch's stable form: no
// exp overflows and a logit of +-100 gives its exact loss, where log(sigmoid(x)) would give -inf. `weight` and
// `pos_weight` hold one value per column (the last dimension, e.g. per label of a multi-label output), as the
// [C] tensors PyTorch broadcasts; the mean is over every element. Targets: a TensorT<U> of the input's shape.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/loss/reduction.hpp"

namespace ember::loss {

// In the order of torch.nn.BCEWithLogitsLoss(weight, reduction, pos_weight).
struct BCEWithLogitsLossOptions {
  std::vector<double> weight;      // one per column; empty: 1
  Reduction reduction = Reduction::mean;
  std::vector<double> pos_weight;  // one per column; empty: 1
};

template <typename T>
class BCEWithLogitsLossT {
 public:
  BCEWithLogitsLossT() = default;
  explicit BCEWithLogitsLossT(BCEWithLogitsLossOptions options) : reduction_(options.reduction) {
    weight_ = checked("weight", options.weight);
    pos_weight_ = checked("pos_weight", options.pos_weight);
  }

  Reduction reduction() const noexcept { return reduction_; }

  // input (logits) and target of the same shape: the reduced loss (loss/reduction.hpp).
  template <typename U>
  T forward(const TensorT<T>& input, const TensorT<U>& target) {
    detail::check_value_target(input, target, "BCEWithLogitsLoss");
    const std::int64_t cols = input.dim() == 0 ? 1 : input.size(input.dim() - 1);
    for (const auto* v : {&weight_, &pos_weight_})
      if (!v->empty() && static_cast<std::int64_t>(v->size()) != cols)
        throw shape_error("BCEWithLogitsLoss: " + std::to_string(v->size()) + " " +
                          (v == &weight_ ? "weights" : "pos_weights") + " for input " + to_string(input.shape()) +
                          ": expected one per column (" + std::to_string(cols) + ")");
    const std::int64_t n = input.numel();
    sigmoid_.resize(input.shape());
    target_.resize(input.shape());
    losses_.resize(input.shape());
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const T x = input[i];
      const T y = static_cast<T>(target[i]);
      const std::size_t col = static_cast<std::size_t>(i % cols);
      const T m = std::max(-x, T(0));
      const T softplus_neg = m + std::log(std::exp(-m) + std::exp(-x - m));
      const T log_weight = pos_weight_.empty() ? T(1) : T(1) + (pos_weight_[col] - T(1)) * y;
      T l = (T(1) - y) * x + log_weight * softplus_neg;
      if (!weight_.empty()) l *= weight_[col];
      losses_[i] = l;
      target_[i] = y;
      sigmoid_[i] = T(1) / (T(1) + std::exp(-x));
      total += static_cast<double>(l);
    }
    if (reduction_ == Reduction::mean) return static_cast<T>(total / static_cast<double>(n));
    return static_cast<T>(total);
  }

  void backward_into(TensorT<T>& grad) const { backward(grad, nullptr); }
  // Reduction::none: `upstream` (the input's shape) is the gradient of each element's loss.
  void backward_into(TensorT<T>& grad, const TensorT<T>& upstream) const {
    detail::check_upstream(upstream, losses_.shape(), "BCEWithLogitsLoss");
    backward(grad, &upstream);
  }

  // Each element's loss of the last forward (PyTorch's reduction='none' output).
  const TensorT<T>& losses() const noexcept { return losses_; }

 private:
  std::vector<T> checked(const char* what, const std::vector<double>& v) {
    std::vector<T> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!std::isfinite(v[i]))
        throw std::invalid_argument(std::string("BCEWithLogitsLoss: ") + what + " " + std::to_string(i) +
                                    " is not finite");
      out.push_back(static_cast<T>(v[i]));
    }
    return out;
  }

  void backward(TensorT<T>& grad, const TensorT<T>* upstream) const {
    if (losses_.empty()) throw std::logic_error("BCEWithLogitsLoss: backward called before forward");
    grad.resize(losses_.shape());
    const std::int64_t n = losses_.numel();
    const std::int64_t cols = losses_.dim() == 0 ? 1 : losses_.size(losses_.dim() - 1);
    const T scale = reduction_ == Reduction::mean ? T(1) / static_cast<T>(n) : T(1);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::size_t col = static_cast<std::size_t>(i % cols);
      const T y = target_[i];
      T d;
      if (pos_weight_.empty()) {
        d = sigmoid_[i] - y;
      } else {
        const T t = pos_weight_[col] * y;
        d = (t + T(1) - y) * sigmoid_[i] - t;
      }
      if (!weight_.empty()) d *= weight_[col];
      grad[i] = d * (upstream ? (*upstream)[i] * scale : scale);
    }
  }

  Reduction reduction_ = Reduction::mean;
  std::vector<T> weight_, pos_weight_;
  TensorT<T> sigmoid_, target_, losses_;
};

using BCEWithLogitsLoss = BCEWithLogitsLossT<float>;
EMBER_EXTERN_TEMPLATE(class BCEWithLogitsLossT<float>)
EMBER_EXTERN_TEMPLATE(class BCEWithLogitsLossT<double>)

}  // namespace ember::loss

namespace ember::nn {
using loss::BCEWithLogitsLoss;
using loss::BCEWithLogitsLossOptions;
using loss::BCEWithLogitsLossT;
}  // namespace ember::nn
