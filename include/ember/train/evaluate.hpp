#pragma once
// Evaluation of a model over a whole loader, in inference mode (predict_into: the model is not changed): the
// mean loss for any loss and target type; with class targets (std::vector<std::int64_t>, one index per row)
// also the accuracy, the confusion matrix, per-class precision and recall. Value targets (a TensorT<U> of the
// output's shape, for BCEWithLogitsLoss or MSELoss) give the loss only: accuracy is NaN, the rest empty.
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/loss/cross_entropy.hpp"
#include "ember/train/metrics.hpp"
#include "ember/train/step.hpp"

namespace ember::train {

// Class targets: one class index per row, as CrossEntropyLoss takes them.
template <typename Target>
constexpr bool is_class_target = std::is_same<std::decay_t<Target>, std::vector<std::int64_t>>::value;

namespace detail {
// Samples in a batch: rows of the input (class targets: their count, which the loss checks against the rows).
template <typename Batch>
std::int64_t batch_rows(const Batch& batch) {
  if constexpr (is_class_target<decltype(batch.target)>)
    return static_cast<std::int64_t>(batch.target.size());
  else
    return batch.input.dim() == 0 ? 1 : batch.input.size(0);
}
}  // namespace detail

namespace detail {
// The loader's data set's class count, 0 when it does not say.
template <class L>
auto dataset_classes(L& loader, int) -> decltype(std::int64_t{loader.dataset().num_classes}) {
  return loader.dataset().num_classes;
}
template <class L>
std::int64_t dataset_classes(L&, long) {
  return 0;
}
}  // namespace detail

// Validation results over a whole loader.
struct Evaluation {
  double loss = 0;      // mean loss over the samples
  double accuracy = 0;  // NaN for value targets
  std::int64_t samples = 0;
  ConfusionMatrix confusion;
  std::vector<double> precision, recall;  // per class
};

// With any loss that has `T forward(output, target)` (fit passes a copy of its own). num_classes 0: the
// number of logit columns. The loss is averaged over samples weighted by rows (each batch's mean times its
// rows), as fit's training loss.
template <class Model, class Loader, class Loss, typename = std::enable_if_t<!std::is_arithmetic<Loss>::value>>
Evaluation evaluate(const Model& model, Loader& loader, Loss loss, std::int64_t num_classes = 0) {
  using T = typename Model::Scalar;
  TensorT<T> input_buffer, logits;
  std::vector<std::int64_t> predictions;
  Evaluation result;
  double loss_sum = 0;
  bool sized = false;
  for (const auto& batch : loader) {
    const TensorT<T>& x = detail::as_model_input(batch.input, input_buffer);
    model.predict_into(x, logits);
    const T l = loss.forward(logits, batch.target);
    if constexpr (is_class_target<decltype(batch.target)>) {
      if (!sized) {
        result.confusion = ConfusionMatrix(num_classes > 0 ? num_classes : logits.size(1));
        sized = true;
      }
      argmax_rows_into(logits, predictions);
      result.confusion.add(predictions, batch.target);
    }
    const std::int64_t n = detail::batch_rows(batch);
    loss_sum += static_cast<double>(l) * static_cast<double>(n);
    result.samples += n;
  }
  if (result.samples == 0) throw std::invalid_argument("evaluate: the loader gave no samples");
  result.loss = loss_sum / static_cast<double>(result.samples);
  if (!sized) {
    result.accuracy = std::numeric_limits<double>::quiet_NaN();
    return result;
  }
  result.accuracy = result.confusion.accuracy();
  result.precision = result.confusion.precision();
  result.recall = result.confusion.recall();
  return result;
}

// With cross-entropy (and its label smoothing), as the report evaluates.
template <class Model, class Loader>
Evaluation evaluate(const Model& model, Loader& loader, double label_smoothing = 0.0, std::int64_t num_classes = 0) {
  return evaluate(model, loader, nn::CrossEntropyLossT<typename Model::Scalar>(label_smoothing), num_classes);
}

// The confusion matrix of the model's argmax predictions over a loader with class targets (rows: true class,
// columns: predicted, as sklearn.metrics.confusion_matrix), in inference mode. num_classes 0: the loader's
// data set's num_classes if it has one, else the number of logit columns.
template <class Model, class Loader>
ConfusionMatrix confusion_matrix(const Model& model, Loader& loader, std::int64_t num_classes = 0) {
  using T = typename Model::Scalar;
  TensorT<T> input_buffer, logits;
  std::vector<std::int64_t> predictions;
  ConfusionMatrix matrix;
  bool sized = false;
  for (const auto& batch : loader) {
    static_assert(is_class_target<decltype(batch.target)>, "confusion_matrix: the loader's targets must be class indices");
    model.predict_into(detail::as_model_input(batch.input, input_buffer), logits);
    argmax_rows_into(logits, predictions);
    if (!sized) {
      const std::int64_t n = num_classes > 0 ? num_classes : detail::dataset_classes(loader, 0);
      matrix = ConfusionMatrix(n > 0 ? n : logits.size(1));
      sized = true;
    }
    matrix.add(predictions, batch.target);
  }
  if (!sized) throw std::invalid_argument("confusion_matrix: the loader gave no samples");
  return matrix;
}

}  // namespace ember::train
