#pragma once
// Classification metrics: argmax per row, accuracy, and a confusion matrix with per-class precision and
// recall. Rows of the confusion matrix are the true class, columns the predicted class (sklearn's layout).
// A class never predicted has precision 0, a class never present has recall 0 (sklearn's zero_division=0).
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::train {

// Index of the largest of n values; the first on ties and NaN counts as largest, as torch.argmax.
template <typename T>
std::int64_t argmax(const T* values, std::int64_t n) {
  std::int64_t best = 0;
  for (std::int64_t j = 1; j < n; ++j) {
    const T v = values[j], b = values[best];
    if (b != b) break;  // NaN already wins
    if (v != v || v > b) best = j;
  }
  return best;
}

// Row-wise argmax of an [N, C] tensor into `out` (reusing its capacity).
template <typename T>
void argmax_rows_into(const TensorT<T>& scores, std::vector<std::int64_t>& out) {
  if (scores.dim() != 2 || scores.size(1) == 0)
    throw shape_error("argmax_rows: expected scores of shape [N, C] with C >= 1, got " + to_string(scores.shape()));
  const std::int64_t n = scores.size(0), c = scores.size(1);
  out.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = argmax(scores.data() + i * c, c);
}
template <typename T>
std::vector<std::int64_t> argmax_rows(const TensorT<T>& scores) {
  std::vector<std::int64_t> out;
  argmax_rows_into(scores, out);
  return out;
}

// Fraction of equal entries; std::invalid_argument when the sizes differ or both are empty.
inline double accuracy(const std::vector<std::int64_t>& predictions, const std::vector<std::int64_t>& targets) {
  if (predictions.size() != targets.size())
    throw std::invalid_argument("accuracy: " + std::to_string(predictions.size()) + " predictions for " +
                                std::to_string(targets.size()) + " targets");
  if (targets.empty()) throw std::invalid_argument("accuracy: no samples");
  std::size_t correct = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) correct += predictions[i] == targets[i];
  return static_cast<double>(correct) / static_cast<double>(targets.size());
}
// Accuracy of the row-wise argmax of [N, C] scores.
template <typename T>
double accuracy(const TensorT<T>& scores, const std::vector<std::int64_t>& targets) {
  return accuracy(argmax_rows(scores), targets);
}

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(std::int64_t num_classes = 0) : n_(num_classes) {
    if (num_classes < 0)
      throw std::invalid_argument("ConfusionMatrix: num_classes must be >= 0, got " + std::to_string(num_classes));
    counts_.assign(static_cast<std::size_t>(n_ * n_), 0);
  }

  std::int64_t num_classes() const noexcept { return n_; }

  void add(std::int64_t target, std::int64_t prediction) {
    check(target, "target");
    check(prediction, "prediction");
    ++counts_[static_cast<std::size_t>(target * n_ + prediction)];
  }
  void add(const std::vector<std::int64_t>& predictions, const std::vector<std::int64_t>& targets) {
    if (predictions.size() != targets.size())
      throw std::invalid_argument("ConfusionMatrix: " + std::to_string(predictions.size()) + " predictions for " +
                                  std::to_string(targets.size()) + " targets");
    for (std::size_t i = 0; i < targets.size(); ++i) add(targets[i], predictions[i]);
  }
  void merge(const ConfusionMatrix& other) {
    if (other.n_ != n_)
      throw std::invalid_argument("ConfusionMatrix: cannot merge " + std::to_string(other.n_) + " classes into " +
                                  std::to_string(n_));
    for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  }

  // Samples of true class `target` predicted as `prediction`.
  std::int64_t at(std::int64_t target, std::int64_t prediction) const {
    check(target, "target");
    check(prediction, "prediction");
    return counts_[static_cast<std::size_t>(target * n_ + prediction)];
  }
  std::int64_t total() const {
    std::int64_t t = 0;
    for (auto c : counts_) t += c;
    return t;
  }
  std::int64_t support(std::int64_t c) const {  // samples whose true class is c
    std::int64_t s = 0;
    for (std::int64_t j = 0; j < n_; ++j) s += at(c, j);
    return s;
  }
  std::int64_t predicted(std::int64_t c) const {  // samples predicted as c
    std::int64_t s = 0;
    for (std::int64_t i = 0; i < n_; ++i) s += at(i, c);
    return s;
  }
  double accuracy() const {
    const std::int64_t t = total();
    std::int64_t diag = 0;
    for (std::int64_t c = 0; c < n_; ++c) diag += at(c, c);
    return t == 0 ? 0.0 : static_cast<double>(diag) / static_cast<double>(t);
  }
  double precision(std::int64_t c) const {
    const std::int64_t p = predicted(c);
    return p == 0 ? 0.0 : static_cast<double>(at(c, c)) / static_cast<double>(p);
  }
  double recall(std::int64_t c) const {
    const std::int64_t s = support(c);
    return s == 0 ? 0.0 : static_cast<double>(at(c, c)) / static_cast<double>(s);
  }
  std::vector<double> precision() const {
    std::vector<double> out;
    for (std::int64_t c = 0; c < n_; ++c) out.push_back(precision(c));
    return out;
  }
  std::vector<double> recall() const {
    std::vector<double> out;
    for (std::int64_t c = 0; c < n_; ++c) out.push_back(recall(c));
    return out;
  }
  // Row-major num_classes x num_classes counts.
  const std::vector<std::int64_t>& counts() const noexcept { return counts_; }

 private:
  void check(std::int64_t c, const char* what) const {
    if (c < 0 || c >= n_)
      throw std::invalid_argument(std::string("ConfusionMatrix: ") + what + " " + std::to_string(c) +
                                  " is out of range for " + std::to_string(n_) + " classes");
  }

  std::int64_t n_;
  std::vector<std::int64_t> counts_;
};

inline ConfusionMatrix confusion_matrix(const std::vector<std::int64_t>& predictions,
                                        const std::vector<std::int64_t>& targets, std::int64_t num_classes) {
  ConfusionMatrix m(num_classes);
  m.add(predictions, targets);
  return m;
}

}  // namespace ember::train
