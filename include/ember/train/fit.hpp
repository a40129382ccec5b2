#pragma once
// The training loop the examples share, as the report's notebook runs it: per epoch, SGD over the training
// batches, then the validation loss and accuracy; the checkpoint with the lowest validation loss is kept.
//
//   train::FitOptions opts;
//   opts.epochs = 20;
//   opts.checkpoint_path = "out/best.safetensors";
//   opts.log = &std::cout;
//   train::History h = train::fit(model, loss, sgd, train_loader, val_loader, opts);
//
// The loader: anything iterable with range-for whose elements have `.input` (a TensorT<U>, converted to the
// model's scalar when U differs) and `.target` (std::vector<std::int64_t>), plus `size()` (batches per epoch).
// If it has `set_epoch(std::int64_t)`, fit calls it with the 0-based epoch number before iterating, so a
// shuffling loader can derive its order from (seed, epoch): a resumed run then sees the same batches as an
// uninterrupted one (data::DataLoader works this way).
//
// The step: opt.zero_grad(), model.forward_into(x, logits), loss.forward, loss.backward_into(grad),
// model.backward_into(grad, nullptr), opt.step(), with logits and grad kept across steps, so a warmed-up step
// allocates nothing (the loader and the callbacks aside). Validation uses model.predict_into, which changes
// nothing in the model. A loss that turns NaN or Inf stops training with train::training_error naming the
// epoch and step.
//
// Output: one line per epoch to options.log (if set); with a terminal on stderr (ProgressMode::automatic) or
// ProgressMode::on, a live progress bar on options.progress_stream (std::cerr when unset). Nothing else is
// printed, and fit never exits: errors are exceptions.
//
// Resume: FitOptions::last_checkpoint_path writes model + optimiser state after every epoch, with the epoch
// and the best validation loss so far in the metadata; resume_from(load_checkpoint(model, path, &opt)) sets
// start_epoch and the best so far, and fit continues with epoch start_epoch + 1. The model's state must be all
// in its parameters and buffers (a layer drawing random numbers from a generator, e.g. Dropout, continues
// bit-identically only if its generator is reseeded the same way).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/io/safetensors.hpp"
#include "ember/loss/cross_entropy.hpp"
#include "ember/nn/module.hpp"
#include "ember/optim/sgd.hpp"
#include "ember/train/metrics.hpp"
#include "ember/train/progress.hpp"

namespace ember::train {

// Training stopped because the loss is no longer finite.
class training_error : public std::runtime_error {
 public:
  training_error(std::int64_t epoch, std::int64_t step, double loss, const std::string& what)
      : std::runtime_error(what), epoch_(epoch), step_(step), loss_(loss) {}
  std::int64_t epoch() const noexcept { return epoch_; }  // 1-based
  std::int64_t step() const noexcept { return step_; }    // 1-based, within the epoch
  double loss() const noexcept { return loss_; }

 private:
  std::int64_t epoch_, step_;
  double loss_;
};

// Reported after every training step.
struct StepInfo {
  std::int64_t epoch = 0;            // 1-based
  std::int64_t step = 0;             // 1-based, within the epoch
  std::int64_t steps_per_epoch = 0;
  std::int64_t global_step = 0;      // steps since epoch 1 started (counting resumed epochs)
  std::int64_t batch_size = 0;
  double loss = 0;                   // this batch's mean loss
};

struct EpochStats {
  std::int64_t epoch = 0;  // 1-based
  double train_loss = 0;   // mean over the epoch's training samples (of each step's loss, before its update)
  double train_accuracy = 0;
  double val_loss = 0;     // mean over the validation samples
  double val_accuracy = 0;
  double seconds = 0;      // the whole epoch: training and validation
  double train_seconds = 0;
  double images_per_second = 0;  // training images / train_seconds
  bool best = false;       // lowest validation loss so far (and saved, when checkpoint_path is set)
};

struct History {
  std::vector<EpochStats> epochs;  // the epochs run by this call
  std::int64_t best_epoch = 0;     // 0: none yet
  double best_val_loss = std::numeric_limits<double>::infinity();
  double best_val_accuracy = 0;
};

struct FitOptions {
  std::int64_t epochs = 1;           // the last epoch to run (1-based)
  std::int64_t start_epoch = 0;      // epochs already done: fit runs start_epoch + 1 .. epochs
  std::string checkpoint_path;       // the lowest-validation-loss checkpoint (model only); empty: none
  std::string last_checkpoint_path;  // after every epoch: model + optimiser state, for resuming; empty: none
  std::map<std::string, std::string> metadata;  // added to every checkpoint's __metadata__
  std::ostream* log = nullptr;       // one line per epoch; null: none
  ProgressMode progress = ProgressMode::automatic;
  std::ostream* progress_stream = nullptr;  // where the bar goes; null: std::cerr
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const EpochStats&)> on_epoch;
  // The best so far when resuming (restored by resume_from).
  std::int64_t best_epoch = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  double best_val_accuracy = 0;

  // Continue after the checkpoint whose metadata this is (from last_checkpoint_path).
  FitOptions& resume_from(const std::map<std::string, std::string>& checkpoint_metadata) {
    auto get = [&](const char* key) -> const std::string& {
      const auto it = checkpoint_metadata.find(key);
      if (it == checkpoint_metadata.end())
        throw std::invalid_argument(std::string("FitOptions::resume_from: checkpoint metadata has no '") + key + "'");
      return it->second;
    };
    start_epoch = std::stoll(get("epoch"));
    best_epoch = std::stoll(get("best_epoch"));
    best_val_loss = std::stod(get("best_val_loss"));
    best_val_accuracy = std::stod(get("best_val_accuracy"));
    return *this;
  }
};

// Validation results over a whole loader.
struct Evaluation {
  double loss = 0;      // mean cross-entropy over the samples
  double accuracy = 0;
  std::int64_t samples = 0;
  ConfusionMatrix confusion;
  std::vector<double> precision, recall;  // per class
};

namespace detail {

template <typename L, typename = void>
struct has_set_epoch : std::false_type {};
template <typename L>
struct has_set_epoch<L, std::void_t<decltype(std::declval<L&>().set_epoch(std::int64_t{}))>> : std::true_type {};

template <typename L>
void set_epoch(L& loader, std::int64_t epoch0) {
  if constexpr (has_set_epoch<L>::value) loader.set_epoch(epoch0);
}

// The batch's input as the model's tensor type: itself when the types agree, else converted into `buffer`.
template <typename T, typename U>
const TensorT<T>& as_model_input(const TensorT<U>& input, TensorT<T>& buffer) {
  if constexpr (std::is_same<T, U>::value) {
    (void)buffer;
    return input;
  } else {
    buffer.resize(input.shape());
    std::transform(input.begin(), input.end(), buffer.begin(), [](U v) { return static_cast<T>(v); });
    return buffer;
  }
}

// 17 significant digits: reads back as the same double.
inline std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace detail

// Mean loss, accuracy and the confusion matrix of the model over every batch of the loader, in inference
// mode (predict_into: the model is not changed). num_classes 0: the number of logit columns.
template <class Model, class Loader>
Evaluation evaluate(const Model& model, Loader& loader, double label_smoothing = 0.0, std::int64_t num_classes = 0) {
  using T = typename Model::Scalar;
  nn::CrossEntropyLossT<T> loss(label_smoothing);
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

// Trains for epochs start_epoch + 1 .. epochs (see the top of this file).
template <class Model, class TrainLoader, class ValLoader>
History fit(Model& model, nn::CrossEntropyLossT<typename Model::Scalar>& loss,
            optim::SGDT<typename Model::Scalar>& opt, TrainLoader& train_loader, ValLoader& val_loader,
            const FitOptions& options = {}) {
  using T = typename Model::Scalar;
  using Clock = std::chrono::steady_clock;
  if (options.epochs < 0 || options.start_epoch < 0)
    throw std::invalid_argument("fit: epochs and start_epoch must be >= 0, got " + std::to_string(options.epochs) +
                                " and " + std::to_string(options.start_epoch));
  const bool show_bar = options.progress == ProgressMode::on ||
                        (options.progress == ProgressMode::automatic && stderr_is_terminal());
  std::ostream& bar_stream = options.progress_stream ? *options.progress_stream : std::cerr;

  History history;
  history.best_epoch = options.best_epoch;
  history.best_val_loss = options.best_val_loss;
  history.best_val_accuracy = options.best_val_accuracy;

  // Kept across steps: after the first step, these have their final sizes.
  TensorT<T> input_buffer, logits, grad;
  // fit leaves the model in the mode it found it in, also when it throws.
  struct ModeGuard {
    Model& model;
    bool mode;
    ~ModeGuard() { model.train(mode); }
  } mode_guard{model, model.is_training()};
  const auto steps_per_epoch = static_cast<std::int64_t>(train_loader.size());
  std::int64_t global_step = options.start_epoch * steps_per_epoch;

  for (std::int64_t epoch = options.start_epoch + 1; epoch <= options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    model.train(true);
    detail::set_epoch(train_loader, epoch - 1);
    ProgressBar bar(bar_stream, steps_per_epoch,
                    "epoch " + std::to_string(epoch) + "/" + std::to_string(options.epochs));
    double loss_sum = 0;
    std::int64_t seen = 0, correct = 0, step = 0;
    for (const auto& batch : train_loader) {
      ++step;
      ++global_step;
      const TensorT<T>& x = detail::as_model_input(batch.input, input_buffer);
      opt.zero_grad();
      model.forward_into(x, logits);
      const T l = loss.forward(logits, batch.target);
      if (!std::isfinite(l)) {
        if (show_bar) bar.finish();
        throw training_error(epoch, step, static_cast<double>(l),
                             "fit: the training loss is " + std::string(std::isnan(l) ? "NaN" : "infinite") +
                                 " at epoch " + std::to_string(epoch) + ", step " + std::to_string(step) + " of " +
                                 std::to_string(steps_per_epoch) + " (lower the learning rate?)");
      }
      loss.backward_into(grad);
      model.backward_into(grad, nullptr);
      opt.step();

      const auto n = static_cast<std::int64_t>(batch.target.size());
      const std::int64_t c = logits.size(1);
      for (std::int64_t i = 0; i < n; ++i)
        correct += argmax(logits.data() + i * c, c) == batch.target[static_cast<std::size_t>(i)];
      loss_sum += static_cast<double>(l) * static_cast<double>(n);
      seen += n;
      if (show_bar) {
        const double secs = std::chrono::duration<double>(Clock::now() - epoch_start).count();
        bar.update(step, loss_sum / static_cast<double>(seen), secs > 0 ? static_cast<double>(seen) / secs : 0.0);
      }
      if (options.on_step) options.on_step(StepInfo{epoch, step, steps_per_epoch, global_step, n, static_cast<double>(l)});
    }
    if (show_bar) bar.finish();
    const double train_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    if (seen == 0)
      throw std::invalid_argument("fit: the training loader gave no samples in epoch " + std::to_string(epoch));

    detail::set_epoch(val_loader, epoch - 1);
    const Evaluation val = evaluate(model, val_loader, loss.label_smoothing());

    EpochStats stats;
    stats.epoch = epoch;
    stats.train_loss = loss_sum / static_cast<double>(seen);
    stats.train_accuracy = static_cast<double>(correct) / static_cast<double>(seen);
    stats.val_loss = val.loss;
    stats.val_accuracy = val.accuracy;
    stats.train_seconds = train_seconds;
    stats.images_per_second = train_seconds > 0 ? static_cast<double>(seen) / train_seconds : 0.0;
    stats.best = val.loss < history.best_val_loss;  // strictly lower: the earliest of equal losses stays
    if (stats.best) {
      history.best_epoch = epoch;
      history.best_val_loss = val.loss;
      history.best_val_accuracy = val.accuracy;
    }

    auto metadata = options.metadata;
    metadata["epoch"] = std::to_string(epoch);
    metadata["epochs"] = std::to_string(options.epochs);
    metadata["train_loss"] = detail::exact(stats.train_loss);
    metadata["val_loss"] = detail::exact(stats.val_loss);
    metadata["val_accuracy"] = detail::exact(stats.val_accuracy);
    metadata["best_epoch"] = std::to_string(history.best_epoch);
    metadata["best_val_loss"] = detail::exact(history.best_val_loss);
    metadata["best_val_accuracy"] = detail::exact(history.best_val_accuracy);
    if (stats.best && !options.checkpoint_path.empty()) io::save_checkpoint(model, options.checkpoint_path, metadata);
    if (!options.last_checkpoint_path.empty())
      io::save_checkpoint(model, options.last_checkpoint_path, metadata, &opt);

    stats.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    history.epochs.push_back(stats);
    if (options.log) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "epoch %lld/%lld  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs  %.0f img/s%s",
                    static_cast<long long>(epoch), static_cast<long long>(options.epochs), stats.train_loss,
                    stats.train_accuracy, stats.val_loss, stats.val_accuracy, stats.seconds, stats.images_per_second,
                    stats.best ? (options.checkpoint_path.empty() ? "  (best)" : "  (best, saved)") : "");
      *options.log << line << '\n' << std::flush;
    }
    if (options.on_epoch) options.on_epoch(stats);
  }
  return history;
}

}  // namespace ember::train
