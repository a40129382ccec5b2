#pragma once
// Classification losses, as torch.nn.CrossEntropyLoss and torch.nn.NLLLoss with reduction='mean' and no
// class weights.
//
//   CrossEntropyLoss  logits [N, C], target N class indices in [0, C)
//                     loss = mean_i [ -(1 - eps) * logp[i, y_i] - eps / C * sum_c logp[i, c] ]
//                     with logp = log_softmax(logits) and eps = label_smoothing (PyTorch's formula);
//                     d loss / d logits = (softmax - ((1 - eps) * onehot + eps / C)) / N
//   NLLLoss           log-probabilities [N, C]: loss = -mean_i logp[i, y_i]; gradient -onehot / N
//
// forward keeps what backward needs (the softmax and the targets) in buffers reused across calls, and
// backward_into writes into a caller-owned tensor, so a warmed-up training step allocates nothing.
// A loss object is training state: use one per thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::loss {

namespace detail {

// Checks [N, C] scores against N targets in [0, C); `who` names the loss in the message.
template <typename T>
void check_classification_inputs(const TensorT<T>& scores, const std::vector<std::int64_t>& target,
                                 const char* who, const char* what) {
  if (scores.dim() != 2)
    throw shape_error(std::string(who) + ": expected " + what + " of shape [N, C], got " +
                      to_string(scores.shape()));
  const std::int64_t n = scores.size(0);
  const std::int64_t c = scores.size(1);
  if (n == 0) throw shape_error(std::string(who) + ": empty batch (" + what + " " + to_string(scores.shape()) + ")");
  if (c == 0) throw shape_error(std::string(who) + ": expected at least one class, got " + to_string(scores.shape()));
  if (static_cast<std::int64_t>(target.size()) != n)
    throw shape_error(std::string(who) + ": expected " + std::to_string(n) + " targets for " + what + " " +
                      to_string(scores.shape()) + ", got " + std::to_string(target.size()));
  for (std::size_t i = 0; i < target.size(); ++i)
    if (target[i] < 0 || target[i] >= c)
      throw std::invalid_argument(std::string(who) + ": target " + std::to_string(target[i]) + " at index " +
                                  std::to_string(i) + " is out of bounds for " + std::to_string(c) +
                                  " classes (expected 0.." + std::to_string(c - 1) + ")");
}

}  // namespace detail

template <typename T>
class CrossEntropyLossT {
 public:
  // As torch.nn.CrossEntropyLoss(label_smoothing=...): 0 <= label_smoothing <= 1.
  explicit CrossEntropyLossT(double label_smoothing = 0.0) : label_smoothing_(label_smoothing) {
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
      throw std::invalid_argument("CrossEntropyLoss: label_smoothing must be in [0, 1], got " +
                                  std::to_string(label_smoothing));
  }

  double label_smoothing() const noexcept { return label_smoothing_; }

  // logits [N, C], target N indices: the mean loss over the batch. Keeps the softmax for backward.
  T forward(const TensorT<T>& logits, const std::vector<std::int64_t>& target) {
    detail::check_classification_inputs(logits, target, "CrossEntropyLoss", "logits");
    const std::int64_t n = logits.size(0);
    const std::int64_t c = logits.size(1);
    probs_.resize(logits.shape());
    target_.assign(target.begin(), target.end());
    const T eps = static_cast<T>(label_smoothing_);
    // Accumulate the batch in double: the mean of many per-sample losses keeps its digits in float too.
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const T* z = logits.data() + i * c;
      T* p = probs_.data() + i * c;
      // log-sum-exp with the row maximum subtracted, so exp never overflows and the largest term is 1.
      const T m = *std::max_element(z, z + c);
      T sum = 0;
      for (std::int64_t j = 0; j < c; ++j) {
        p[j] = std::exp(z[j] - m);
        sum += p[j];
      }
      const T log_sum = std::log(sum);
      const T inv_sum = T(1) / sum;
      for (std::int64_t j = 0; j < c; ++j) p[j] *= inv_sum;
      // logp[j] = z[j] - m - log_sum
      const T nll = -(z[target[static_cast<std::size_t>(i)]] - m - log_sum);
      T row = nll;
      if (eps != T(0)) {
        T sum_logp = 0;
        for (std::int64_t j = 0; j < c; ++j) sum_logp += z[j] - m - log_sum;
        row = (T(1) - eps) * nll - eps / static_cast<T>(c) * sum_logp;
      }
      total += static_cast<double>(row);
    }
    return static_cast<T>(total / static_cast<double>(n));
  }

  // d loss / d logits of the last forward, into a caller buffer (no allocation once it has the right size).
  void backward_into(TensorT<T>& grad) const {
    if (target_.empty()) throw std::logic_error("CrossEntropyLoss: backward called before forward");
    const std::int64_t n = probs_.size(0);
    const std::int64_t c = probs_.size(1);
    grad.resize(probs_.shape());
    const T inv_n = T(1) / static_cast<T>(n);
    const T eps = static_cast<T>(label_smoothing_);
    const T off = eps / static_cast<T>(c);  // smoothed target mass on every class
    const T on = T(1) - eps + off;           // ... and on the true class
    for (std::int64_t i = 0; i < n; ++i) {
      const T* p = probs_.data() + i * c;
      T* g = grad.data() + i * c;
      const std::int64_t y = target_[static_cast<std::size_t>(i)];
      for (std::int64_t j = 0; j < c; ++j) g[j] = (p[j] - (j == y ? on : off)) * inv_n;
    }
  }
  TensorT<T> backward() const {
    TensorT<T> grad;
    backward_into(grad);
    return grad;
  }

  // The softmax of the last forward's logits.
  const TensorT<T>& probabilities() const noexcept { return probs_; }

 private:
  double label_smoothing_;
  TensorT<T> probs_;
  std::vector<std::int64_t> target_;
};

using CrossEntropyLoss = CrossEntropyLossT<float>;

// As torch.nn.NLLLoss(): the input holds log-probabilities (e.g. from a log-softmax).
template <typename T>
class NLLLossT {
 public:
  T forward(const TensorT<T>& log_probs, const std::vector<std::int64_t>& target) {
    detail::check_classification_inputs(log_probs, target, "NLLLoss", "log-probabilities");
    const std::int64_t n = log_probs.size(0);
    const std::int64_t c = log_probs.size(1);
    shape_ = log_probs.shape();
    target_.assign(target.begin(), target.end());
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) total -= static_cast<double>(log_probs[i * c + target[static_cast<std::size_t>(i)]]);
    return static_cast<T>(total / static_cast<double>(n));
  }

  void backward_into(TensorT<T>& grad) const {
    if (target_.empty()) throw std::logic_error("NLLLoss: backward called before forward");
    const std::int64_t n = shape_[0];
    const std::int64_t c = shape_[1];
    grad.resize(shape_);
    grad.zero();
    const T v = -T(1) / static_cast<T>(n);
    for (std::int64_t i = 0; i < n; ++i) grad[i * c + target_[static_cast<std::size_t>(i)]] = v;
  }
  TensorT<T> backward() const {
    TensorT<T> grad;
    backward_into(grad);
    return grad;
  }

 private:
  Shape shape_;
  std::vector<std::int64_t> target_;
};

using NLLLoss = NLLLossT<float>;

}  // namespace ember::loss

// The losses were in nn before, as torch.nn has them; API.md promises these names.
namespace ember::nn {
using loss::CrossEntropyLoss;
using loss::CrossEntropyLossT;
using loss::NLLLoss;
using loss::NLLLossT;
}  // namespace ember::nn
