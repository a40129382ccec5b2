#pragma once
// Classification losses, as torch.nn.CrossEntropyLoss (class weights, ignore_index, reduction, label
// smoothing) and torch.nn.NLLLoss (reduction='mean', no weights).
//
//   CrossEntropyLoss  logits [N, C], target N class indices in [0, C) (or ignore_index, default -100)
//                     l_i = (1 - eps) * w[y_i] * -logp[i, y_i] + eps / C * sum_c w[c] * -logp[i, c]
//                     mean: sum_i l_i / sum_i w[y_i] over the rows not ignored (PyTorch's formula); w = 1
//                     without weights; logp = log_softmax(logits), eps = label_smoothing;
//                     d l_i / d logits[i, j] = (1 - eps) w[y_i] (p_j - [j == y_i]) + eps / C (W p_j - w[j]),
//                     W = sum_c w[c] (without weights: p_j - (1 - eps) [j == y_i] - eps / C)
//                     target [N, C] class probabilities (soft labels, MixUp, CutMix), as PyTorch:
//                     l_i = -sum_c w[c] q[i, c] logp[i, c], q = (1 - eps) target + eps / C; mean divides by N;
//                     d l_i / d logits[i, j] = p_j sum_c w[c] q[i, c] - w[j] q[i, j]
//   NLLLoss           log-probabilities [N, C]: loss = -mean_i logp[i, y_i]; gradient -onehot / N
//
// forward keeps what backward needs (the softmax and the targets) in buffers reused across calls, and
// backward_into writes into a caller-owned tensor, so a warmed-up training step allocates nothing.
// A loss object is training state: use one per thread.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/loss/reduction.hpp"

namespace ember::loss {

namespace detail {

// Checks [N, C] scores against N targets in [0, C); `who` names the loss in the message.
template <typename T>
void check_classification_inputs(const TensorT<T>& scores, const std::vector<std::int64_t>& target,
                                 const char* who, const char* what,
                                 std::optional<std::int64_t> ignore_index = std::nullopt) {
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
    if ((target[i] < 0 || target[i] >= c) && target[i] != ignore_index)  // nullopt: never equal
      throw std::invalid_argument(std::string(who) + ": target " + std::to_string(target[i]) + " at index " +
                                  std::to_string(i) + " is out of bounds for " + std::to_string(c) +
                                  " classes (expected 0.." + std::to_string(c - 1) + ")");
}

}  // namespace detail

// As torch.nn.CrossEntropyLoss(weight, ignore_index, reduction, label_smoothing), in that order.
struct CrossEntropyLossOptions {
  std::vector<double> weight;        // one per class; empty: every class 1
  std::int64_t ignore_index = -100;  // rows with this target count for nothing (loss and gradient 0)
  Reduction reduction = Reduction::mean;
  double label_smoothing = 0.0;      // in [0, 1]
};

template <typename T>
class CrossEntropyLossT {
 public:
  // As torch.nn.CrossEntropyLoss(label_smoothing=...): 0 <= label_smoothing <= 1.
  explicit CrossEntropyLossT(double label_smoothing = 0.0)
      : CrossEntropyLossT(CrossEntropyLossOptions{{}, -100, Reduction::mean, label_smoothing}) {}
  explicit CrossEntropyLossT(CrossEntropyLossOptions options)
      : label_smoothing_(options.label_smoothing), ignore_index_(options.ignore_index), reduction_(options.reduction) {
    if (!(label_smoothing_ >= 0.0 && label_smoothing_ <= 1.0))
      throw std::invalid_argument("CrossEntropyLoss: label_smoothing must be in [0, 1], got " +
                                  std::to_string(label_smoothing_));
    for (std::size_t c = 0; c < options.weight.size(); ++c) {
      if (!std::isfinite(options.weight[c]))
        throw std::invalid_argument("CrossEntropyLoss: class weight " + std::to_string(c) + " is not finite");
      weight_.push_back(static_cast<T>(options.weight[c]));
    }
  }

  double label_smoothing() const noexcept { return label_smoothing_; }
  std::int64_t ignore_index() const noexcept { return ignore_index_; }
  Reduction reduction() const noexcept { return reduction_; }
  const std::vector<T>& weight() const noexcept { return weight_; }

  // logits [N, C], target N indices in [0, C) or ignore_index: the reduced loss (see loss/reduction.hpp).
  // With `weight`, row i counts w[y_i] (and its smoothed part sum_c w_c logp_c), and the mean divides by the
  // sum of w[y_i] over the counted rows, as PyTorch; a batch whose every target is ignored has mean NaN (0/0,
  // as PyTorch) and a zero gradient.
  T forward(const TensorT<T>& logits, const std::vector<std::int64_t>& target) {
    check(logits, target);
    const std::int64_t n = logits.size(0);
    const std::int64_t c = logits.size(1);
    probs_.resize(logits.shape());
    if (losses_.dim() != 1 || losses_.size(0) != n) losses_.resize({n});  // a Shape temporary allocates
    target_.assign(target.begin(), target.end());
    soft_mode_ = false;
    const T eps = static_cast<T>(label_smoothing_);
    const bool weighted = !weight_.empty();
    // Accumulate the batch in double: the mean of many per-sample losses keeps its digits in float too.
    double total = 0.0, denom = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t y = target[static_cast<std::size_t>(i)];
      if (y == ignore_index_) {
        losses_[i] = T(0);
        continue;
      }
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
      const T wy = weighted ? weight_[static_cast<std::size_t>(y)] : T(1);
      const T nll = -(z[y] - m - log_sum);
      T row = wy * nll;
      if (eps != T(0)) {
        T sum_logp = 0;
        for (std::int64_t j = 0; j < c; ++j)
          sum_logp += (weighted ? weight_[static_cast<std::size_t>(j)] : T(1)) * (z[j] - m - log_sum);
        row = (T(1) - eps) * row - eps / static_cast<T>(c) * sum_logp;
      }
      losses_[i] = row;
      total += static_cast<double>(row);
      denom += static_cast<double>(wy);
    }
    denom_ = denom;
    if (reduction_ == Reduction::mean) return static_cast<T>(total / denom);
    return static_cast<T>(total);
  }

  // logits [N, C], target [N, C] class probabilities (any scalar type; rows are used as they are, as PyTorch
  // does not check that they sum to 1): the reduced loss; ignore_index does not apply.
  template <typename U>
  T forward(const TensorT<T>& logits, const TensorT<U>& target) {
    check_logits(logits);
    if (target.shape() != logits.shape())
      throw shape_error("CrossEntropyLoss: class-probability targets must have the logits' shape " +
                        to_string(logits.shape()) + ", got " + to_string(target.shape()));
    const std::int64_t n = logits.size(0), c = logits.size(1);
    probs_.resize(logits.shape());
    soft_.resize(logits.shape());
    if (losses_.dim() != 1 || losses_.size(0) != n) losses_.resize({n});
    const T eps = static_cast<T>(label_smoothing_);
    double total = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const T* z = logits.data() + i * c;
      T* p = probs_.data() + i * c;
      T* q = soft_.data() + i * c;
      const T m = *std::max_element(z, z + c);
      T sum = 0;
      for (std::int64_t j = 0; j < c; ++j) sum += p[j] = std::exp(z[j] - m);
      const T log_sum = std::log(sum);
      T row = 0;
      for (std::int64_t j = 0; j < c; ++j) {
        const T t = static_cast<T>(target[i * c + j]);
        if (!std::isfinite(t))
          throw std::invalid_argument("CrossEntropyLoss: target probability [" + std::to_string(i) + ", " +
                                      std::to_string(j) + "] is not finite");
        q[j] = (T(1) - eps) * t + eps / static_cast<T>(c);
        p[j] /= sum;
        row -= (weight_.empty() ? T(1) : weight_[static_cast<std::size_t>(j)]) * q[j] * (z[j] - m - log_sum);
      }
      losses_[i] = row;
      total += static_cast<double>(row);
    }
    soft_mode_ = true;
    denom_ = static_cast<double>(n);
    if (reduction_ == Reduction::mean) return static_cast<T>(total / denom_);
    return static_cast<T>(total);
  }

  // d loss / d logits of the last forward, into a caller buffer (no allocation once it has the right size).
  void backward_into(TensorT<T>& grad) const { backward_rows(grad, nullptr); }
  // Reduction::none: `upstream` [N] is the gradient of each row's loss.
  void backward_into(TensorT<T>& grad, const TensorT<T>& upstream) const {
    detail::check_upstream(upstream, losses_.shape(), "CrossEntropyLoss");
    backward_rows(grad, &upstream);
  }
  TensorT<T> backward() const {
    TensorT<T> grad;
    backward_into(grad);
    return grad;
  }

  // The softmax of the last forward's logits (rows of ignored targets are not computed).
  const TensorT<T>& probabilities() const noexcept { return probs_; }
  // Each row's loss of the last forward (PyTorch's reduction='none' output; 0 for ignored rows).
  const TensorT<T>& losses() const noexcept { return losses_; }

 private:
  void check_logits(const TensorT<T>& logits) const {
    if (logits.dim() != 2)
      throw shape_error("CrossEntropyLoss: expected logits of shape [N, C], got " + to_string(logits.shape()));
    if (!weight_.empty() && logits.size(1) != static_cast<std::int64_t>(weight_.size()))
      throw shape_error("CrossEntropyLoss: " + std::to_string(weight_.size()) + " class weights for logits " +
                        to_string(logits.shape()) + ": expected one weight per class");
    if (logits.size(0) == 0 || logits.size(1) == 0)
      throw shape_error("CrossEntropyLoss: expected a non-empty batch and at least one class, got logits " +
                        to_string(logits.shape()));
  }
  void check(const TensorT<T>& logits, const std::vector<std::int64_t>& target) const {
    check_logits(logits);
    detail::check_classification_inputs(logits, target, "CrossEntropyLoss", "logits", ignore_index_);
  }

  void backward_rows(TensorT<T>& grad, const TensorT<T>* upstream) const {
    if (target_.empty() && !soft_mode_) throw std::logic_error("CrossEntropyLoss: backward called before forward");
    const std::int64_t n = probs_.size(0);
    const std::int64_t c = probs_.size(1);
    grad.resize(probs_.shape());
    if (soft_mode_) {
      soft_rows(grad, upstream);
      return;
    }
    const bool weighted = !weight_.empty();
    const T eps = static_cast<T>(label_smoothing_);
    const T off = eps / static_cast<T>(c);  // smoothed target mass on every class
    const T on = T(1) - eps + off;           // ... and on the true class
    T wsum = 0;                              // sum_c w_c
    if (weighted)
      for (T w : weight_) wsum += w;
    // The scale of every row: 1 / denominator (mean; 0 when nothing counts, as PyTorch's gradient), 1 (sum).
    T scale = T(1);
    if (reduction_ == Reduction::mean) scale = denom_ != 0.0 ? T(1) / static_cast<T>(denom_) : T(0);
    for (std::int64_t i = 0; i < n; ++i) {
      T* g = grad.data() + i * c;
      const std::int64_t y = target_[static_cast<std::size_t>(i)];
      if (y == ignore_index_) {
        std::fill(g, g + c, T(0));
        continue;
      }
      const T* p = probs_.data() + i * c;
      const T s = upstream ? (*upstream)[i] * scale : scale;
      if (!weighted) {
        for (std::int64_t j = 0; j < c; ++j) g[j] = (p[j] - (j == y ? on : off)) * s;
        continue;
      }
      // (1 - eps) w_y (p_j - [j == y]) + eps / C (W p_j - w_j), W = sum_c w_c
      const T wy = (T(1) - eps) * weight_[static_cast<std::size_t>(y)];
      for (std::int64_t j = 0; j < c; ++j) {
        T d = wy * (p[j] - (j == y ? T(1) : T(0)));
        if (eps != T(0)) d += off * (wsum * p[j] - weight_[static_cast<std::size_t>(j)]);
        g[j] = d * s;
      }
    }
  }

  // Probability targets: p_j S - w_j q_j per row, S = sum_c w_c q_c.
  void soft_rows(TensorT<T>& grad, const TensorT<T>* upstream) const {
    const std::int64_t n = probs_.size(0), c = probs_.size(1);
    const T scale = reduction_ == Reduction::mean ? T(1) / static_cast<T>(denom_) : T(1);
    for (std::int64_t i = 0; i < n; ++i) {
      const T *p = probs_.data() + i * c, *q = soft_.data() + i * c;
      T* g = grad.data() + i * c;
      const T s = upstream ? (*upstream)[i] * scale : scale;
      T S = 0;
      for (std::int64_t j = 0; j < c; ++j) S += (weight_.empty() ? T(1) : weight_[static_cast<std::size_t>(j)]) * q[j];
      for (std::int64_t j = 0; j < c; ++j)
        g[j] = (p[j] * S - (weight_.empty() ? T(1) : weight_[static_cast<std::size_t>(j)]) * q[j]) * s;
    }
  }

  double label_smoothing_;
  std::int64_t ignore_index_;
  Reduction reduction_;
  std::vector<T> weight_;
  TensorT<T> probs_, losses_, soft_;  // soft_: the smoothed probability targets of the last forward
  std::vector<std::int64_t> target_;
  bool soft_mode_ = false;  // the last forward took probabilities
  double denom_ = 0;
};

using CrossEntropyLoss = CrossEntropyLossT<float>;
EMBER_EXTERN_TEMPLATE(class CrossEntropyLossT<float>)
EMBER_EXTERN_TEMPLATE(class CrossEntropyLossT<double>)

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
EMBER_EXTERN_TEMPLATE(class NLLLossT<float>)
EMBER_EXTERN_TEMPLATE(class NLLLossT<double>)

}  // namespace ember::loss

// The losses were in nn before, as torch.nn has them; API.md promises these names.
namespace ember::nn {
using loss::CrossEntropyLoss;
using loss::CrossEntropyLossT;
using loss::NLLLoss;
using loss::CrossEntropyLossOptions;
using loss::NLLLossT;
using loss::Reduction;
}  // namespace ember::nn
