#pragma once
// Evaluation of a classifier over a whole loader, in inference mode (predict_into: the model is not changed):
// mean loss, accuracy, the confusion matrix, per-class precision and recall.
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/loss/cross_entropy.hpp"
#include "ember/train/metrics.hpp"
#include "ember/train/step.hpp"

namespace ember::train {

// Validation results over a whole loader.
struct Evaluation {
  double loss = 0;      // mean loss over the samples
  double accuracy = 0;
  std::int64_t samples = 0;
  ConfusionMatrix confusion;
  std::vector<double> precision, recall;  // per class
};

// With any loss that has `T forward(logits, target)` (fit passes a copy of its own). num_classes 0: the
// number of logit columns.
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
    if (!sized) {
      result.confusion = ConfusionMatrix(num_classes > 0 ? num_classes : logits.size(1));
      sized = true;
    }
    argmax_rows_into(logits, predictions);
    result.confusion.add(predictions, batch.target);
    const auto n = static_cast<std::int64_t>(batch.target.size());
    loss_sum += static_cast<double>(l) * static_cast<double>(n);
    result.samples += n;
  }
  if (result.samples == 0) throw std::invalid_argument("evaluate: the loader gave no samples");
  result.loss = loss_sum / static_cast<double>(result.samples);
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

}  // namespace ember::train
