#pragma once
// The training loop the examples share, as the report's notebook runs it: per epoch, the optimiser over the
// training batches, then the validation loss and accuracy; the checkpoint with the lowest validation loss is
// kept. fit is generic over the loss and the optimiser (any types with the members train/step.hpp names;
// checkpoints with optimiser state need the members optim/sgd.hpp lists).
//
//   train::FitOptions opts;
//   opts.epochs = 20;
//   opts.checkpoint_path = "out/best.safetensors";
//   opts.log = &std::cout;
//   train::History h = train::fit(model, loss, sgd, train_loader, val_loader, opts);
//
// The loader: anything iterable with range-for whose elements have `.input` (a TensorT<U>, converted to the
// model's scalar when U differs) and `.target` (class indices, std::vector<std::int64_t>, or values, a TensorT
// of the output's shape for BCEWithLogitsLoss / MSELoss: then accuracies are NaN), plus `size()` (batches per
// epoch).
// If it has `set_epoch(std::int64_t)`, fit calls it with the 0-based epoch number before iterating, so a
// shuffling loader can derive its order from (seed, epoch): a resumed run then sees the same batches as an
// uninterrupted one (data::DataLoader works this way).
//
// The step is train::Step (train/step.hpp): zero_grad, forward, loss, backward, optimiser step, with its buffers
// kept across steps, so a warmed-up step allocates nothing. FitOptions::before_update is the step's hook
// between backward and the optimiser step. Validation uses model.predict_into, which changes nothing in the model. A loss that
// turns NaN or Inf stops training with training_error naming the epoch and step. When the training loader
// has dataset().num_classes, fit checks it against the model's output width before the first step.
//
// FitOptions::restore_best_weights: fit returns with the weights of the epoch with the lowest validation loss.
// The validation loss is the loss given to fit (label smoothing included): evaluate(model, val_loader, loss)
// with that loss gives the same number. fit throws std::invalid_argument when the optimiser holds parameters
// that are not the model's (it was built on a layer before the layer was copied into a Sequential).
//
// Output: one line per epoch to options.log (if set); with a terminal on stderr (ProgressMode::automatic) or
// ProgressMode::on, a live progress bar on options.progress_stream (standard error when unset). Nothing else is
// printed, and fit never exits: errors are exceptions.
//
// Schedules (FitOptions::scheduler, stepped per epoch, or per batch for OneCycleLR or when schedule_every says
// so; FitOptions::plateau, a ReduceLROnPlateau stepped on plateau_monitor after validation) and early stopping
// (FitOptions::early_stopping, Keras's rule; History says why and when it stopped): train/fit_options.hpp,
// train/early_stopping.hpp.
//
// Resume: FitOptions::last_checkpoint_path writes model + optimiser state after every epoch, with the epoch,
// the best validation loss so far and the schedules' and early stopping's state in the metadata (the best
// checkpoint has them too); resume_from(load_checkpoint(model, path, &opt)) sets start_epoch, the best so far
// and that state, and fit continues with epoch start_epoch + 1. The model's state must be all in its parameters
// and buffers (a layer drawing random numbers from a generator, e.g. Dropout, continues bit-identically only if
// its generator is reseeded the same way).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/core/error.hpp"
#include "ember/io/checkpoint.hpp"
#include "ember/nn/module.hpp"
#include "ember/train/early_stopping.hpp"
#include "ember/train/evaluate.hpp"
#include "ember/train/fit_options.hpp"
#include "ember/train/progress.hpp"
#include "ember/train/step.hpp"

namespace ember::train {

using ember::training_error;

namespace detail {

template <typename L, typename = void>
struct has_set_epoch : std::false_type {};
template <typename L>
struct has_set_epoch<L, std::void_t<decltype(std::declval<L&>().set_epoch(std::int64_t{}))>> : std::true_type {};

template <typename L>
void set_epoch(L& loader, std::int64_t epoch0) {
  if constexpr (has_set_epoch<L>::value) loader.set_epoch(epoch0);
}

template <typename L, typename = void>
struct has_dataset_classes : std::false_type {};
template <typename L>
struct has_dataset_classes<L, std::void_t<decltype(std::int64_t{std::declval<L&>().dataset().num_classes})>>
    : std::true_type {};

// 17 significant digits: reads back as the same double.
inline std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// A model whose output width is not the data's class count fails up front, not inside the loss: one image of
// the first batch goes through predict (which changes nothing) before the first step.
template <class Model, class Loader, class Batch>
void check_classes(const Model& model, Loader& loader, const Batch& batch) {
  if constexpr (has_dataset_classes<Loader>::value) {
    using T = typename Model::Scalar;
    const std::int64_t classes = loader.dataset().num_classes;
    if (classes <= 0 || batch.input.dim() < 2 || batch.input.size(0) == 0) return;
    Shape one = batch.input.shape();
    one[0] = 1;
    TensorT<T> x(one), y;
    const std::int64_t per = batch.input.numel() / batch.input.size(0);
    for (std::int64_t i = 0; i < per; ++i) x[i] = static_cast<T>(batch.input[i]);
    model.predict_into(x, y);
    if (y.dim() != 2 || y.size(1) != classes)
      throw std::invalid_argument("fit: the model's output is " + to_string(y.shape()) + " for one image, but the " +
                                  "training data has " + std::to_string(classes) + " classes: expected [1, " +
                                  std::to_string(classes) + "] (is the last layer's out_features right?)");
  }
}

// FitOptions::restore_best_weights: the parameters and buffers of the best epoch, in memory.
template <typename T>
struct WeightsSnapshot {
  std::vector<TensorT<T>> tensors;
  template <class Model>
  void save(Model& model) {
    tensors.clear();
    for (auto& [name, p] : model.named_parameters()) tensors.push_back(p->value);
    for (auto& [name, b] : model.named_buffers()) tensors.push_back(*b);
  }
  template <class Model>
  void restore(Model& model) const {
    if (tensors.empty()) return;
    std::size_t k = 0;
    auto put = [&](TensorT<T>& t) { std::copy(tensors[k].begin(), tensors[k].end(), t.begin()), ++k; };
    for (auto& [name, p] : model.named_parameters()) put(p->value);
    for (auto& [name, b] : model.named_buffers()) put(*b);
  }
};

// Running sums of one training epoch.
struct EpochSums {
  double loss_sum = 0;
  std::int64_t seen = 0, correct = 0, step = 0;
  bool class_targets = true;  // false: value targets, no accuracy
};

// The epoch's training pass: every batch through the step, the progress bar and on_step.
template <class StepT, class Loader, class AfterBatch>
EpochSums train_epoch(StepT& step, Loader& loader, std::int64_t epoch, std::int64_t& global_step,
                      const FitOptions& options, ProgressBar* bar, AfterBatch&& after_batch) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto steps_per_epoch = static_cast<std::int64_t>(loader.size());
  EpochSums s;
  for (const auto& batch : loader) {
    ++s.step;
    ++global_step;
    if (global_step == options.start_epoch * steps_per_epoch + 1) check_classes(step.model(), loader, batch);
    const auto l = step(batch.input, batch.target);
    if (!std::isfinite(l)) {
      if (bar) bar->finish();
      throw training_error(epoch, s.step, static_cast<double>(l),
                           "fit: the training loss is " + std::string(std::isnan(l) ? "NaN" : "infinite") +
                               " at epoch " + std::to_string(epoch) + ", step " + std::to_string(s.step) + " of " +
                               std::to_string(steps_per_epoch) + " (lower the learning rate?)");
    }
    const std::int64_t n = batch_rows(batch);
    if constexpr (is_class_target<decltype(batch.target)>) {
      const auto& logits = step.output();
      const std::int64_t c = logits.size(1);
      for (std::int64_t i = 0; i < n; ++i)
        s.correct += argmax(logits.data() + i * c, c) == batch.target[static_cast<std::size_t>(i)];
    } else {
      s.class_targets = false;
    }
    s.loss_sum += static_cast<double>(l) * static_cast<double>(n);
    s.seen += n;
    if (bar) {
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      bar->update(s.step, s.loss_sum / static_cast<double>(s.seen), secs > 0 ? static_cast<double>(s.seen) / secs : 0.0);
    }
    if (options.on_step)
      options.on_step(StepInfo{epoch, s.step, steps_per_epoch, global_step, n, static_cast<double>(l)});
    after_batch();  // after on_step, which sees the lr this step used
  }
  if (bar) bar->finish();
  if (s.seen == 0) throw std::invalid_argument("fit: the training loader gave no samples in epoch " + std::to_string(epoch));
  return s;
}

// The best (model only) and last (model + optimiser) checkpoints of an epoch, with the run's state in the
// metadata so that FitOptions::resume_from can continue.
template <class Model, class Optimizer>
void save_epoch_checkpoints(const Model& model, const Optimizer& opt, const EpochStats& stats,
                            const History& history, const FitOptions& options,
                            const std::map<std::string, std::string>& run_state) {
  if (!(stats.best && !options.checkpoint_path.empty()) && options.last_checkpoint_path.empty()) return;
  auto metadata = options.metadata;
  for (const auto& [k, v] : run_state) metadata[k] = v;
  metadata["epoch"] = std::to_string(stats.epoch);
  metadata["epochs"] = std::to_string(options.epochs);
  metadata["train_loss"] = exact(stats.train_loss);
  metadata["val_loss"] = exact(stats.val_loss);
  metadata["val_accuracy"] = exact(stats.val_accuracy);
  metadata["best_epoch"] = std::to_string(history.best_epoch);
  metadata["best_val_loss"] = exact(history.best_val_loss);
  metadata["best_val_accuracy"] = exact(history.best_val_accuracy);
  if (stats.best && !options.checkpoint_path.empty()) io::save_checkpoint(model, options.checkpoint_path, metadata);
  if (!options.last_checkpoint_path.empty()) io::save_checkpoint(model, options.last_checkpoint_path, metadata, &opt);
}

inline void log_epoch(std::ostream& log, const EpochStats& stats, const FitOptions& options) {
  char line[320];
  const bool acc = !std::isnan(stats.train_accuracy);  // value targets have no accuracy
  char lr[40] = "";
  if (options.scheduler || options.plateau) std::snprintf(lr, sizeof lr, "  lr %.4g", stats.lr);
  if (acc)
    std::snprintf(line, sizeof line,
                  "epoch %lld/%lld  train_loss %.4f  train_acc %.4f  val_loss %.4f  val_acc %.4f  %.1fs  %.0f img/s%s%s",
                  static_cast<long long>(stats.epoch), static_cast<long long>(options.epochs), stats.train_loss,
                  stats.train_accuracy, stats.val_loss, stats.val_accuracy, stats.seconds, stats.images_per_second, lr,
                  stats.best ? (options.checkpoint_path.empty() ? "  (best)" : "  (best, saved)") : "");
  else
    std::snprintf(line, sizeof line, "epoch %lld/%lld  train_loss %.4f  val_loss %.4f  %.1fs  %.0f img/s%s%s",
                  static_cast<long long>(stats.epoch), static_cast<long long>(options.epochs), stats.train_loss,
                  stats.val_loss, stats.seconds, stats.images_per_second, lr,
                  stats.best ? (options.checkpoint_path.empty() ? "  (best)" : "  (best, saved)") : "");
  log << line << '\n' << std::flush;
}

template <typename Opt, typename = void>
struct has_lr : std::false_type {};
template <typename Opt>
struct has_lr<Opt, std::void_t<decltype(double{std::declval<const Opt&>().lr()})>> : std::true_type {};

template <typename Opt>
double lr_of(const Opt& opt) {
  if constexpr (has_lr<Opt>::value)
    return opt.lr();
  else
    return std::numeric_limits<double>::quiet_NaN();
}

inline double monitored(Monitor m, const EpochStats& stats, const char* who) {
  const double v = m == Monitor::val_loss ? stats.val_loss : stats.val_accuracy;
  if (m == Monitor::val_accuracy && std::isnan(v))
    throw std::invalid_argument(std::string("fit: ") + who + " monitors val_accuracy, but the validation targets " +
                                "are values (BCE, MSE), which have no accuracy: monitor val_loss");
  return v;
}

// The schedules' and early stopping's state for the checkpoints, and back (FitOptions::resume_state).
inline std::map<std::string, std::string> run_state(const FitOptions& options, const EarlyStopper* stopper) {
  std::map<std::string, std::string> out;
  if (options.scheduler) out = optim::scheduler_metadata(*options.scheduler, "scheduler.");
  if (options.plateau)
    for (const auto& [k, v] : optim::scheduler_metadata(*options.plateau, "plateau.")) out[k] = v;
  if (stopper)
    for (const auto& [k, v] : stopper->state_dict()) out["early_stopping." + k] = v;
  return out;
}

inline void restore_run_state(const FitOptions& options, EarlyStopper* stopper) {
  const auto& state = options.resume_state;
  if (state.empty()) return;
  auto has = [&](const std::string& prefix) {
    for (const auto& [k, v] : state)
      if (k.rfind(prefix, 0) == 0) return true;
    return false;
  };
  const struct {
    const char* prefix;
    bool given;
    const char* what;
  } parts[] = {{"scheduler.", options.scheduler != nullptr, "FitOptions::scheduler"},
               {"plateau.", options.plateau != nullptr, "FitOptions::plateau"},
               {"early_stopping.", stopper != nullptr, "FitOptions::early_stopping"}};
  for (const auto& part : parts)
    if (has(part.prefix) != part.given)
      throw std::invalid_argument(std::string("fit: resuming with ") + (part.given ? "" : "no ") + part.what +
                                  ", but the checkpoint has " + (part.given ? "no" : "its") + " '" + part.prefix +
                                  "' state: a resumed run must be set up as the run that wrote it");
  // Each sets the optimiser's lr to its last; the scheduler stepped after the plateau, so it goes last.
  if (options.plateau) optim::load_scheduler_metadata(*options.plateau, state, "plateau.");
  if (options.scheduler) optim::load_scheduler_metadata(*options.scheduler, state, "scheduler.");
  if (stopper) {
    std::map<std::string, std::string> sub;
    for (const auto& [k, v] : state)
      if (k.rfind("early_stopping.", 0) == 0) sub[k.substr(15)] = v;
    stopper->load_state_dict(sub);
  }
}

}  // namespace detail

// Trains for epochs start_epoch + 1 .. epochs (see the top of this file).
template <class Model, class Loss, class Optimizer, class TrainLoader, class ValLoader>
History fit(Model& model, Loss& loss, Optimizer& opt, TrainLoader& train_loader, ValLoader& val_loader,
            const FitOptions& options = {}) {
  using Clock = std::chrono::steady_clock;
  if (options.epochs < 0 || options.start_epoch < 0)
    throw std::invalid_argument("fit: epochs and start_epoch must be >= 0, got " + std::to_string(options.epochs) +
                                " and " + std::to_string(options.start_epoch));
  const bool show_bar = options.progress == ProgressMode::on ||
                        (options.progress == ProgressMode::automatic && stderr_is_terminal());
  std::ostream& bar_stream = options.progress_stream ? *options.progress_stream : stderr_stream();

  History history;
  history.best_epoch = options.best_epoch;
  history.best_val_loss = options.best_val_loss;
  history.best_val_accuracy = options.best_val_accuracy;

  detail::check_optimizer_params(model, opt);
  Step<Model, Loss, Optimizer> step(model, loss, opt);
  if (options.before_update) step.before_update(options.before_update);
  // fit leaves the model in the mode it found it in, also when it throws.
  struct ModeGuard {
    Model& model;
    bool mode;
    ~ModeGuard() { model.train(mode); }
  } mode_guard{model, model.is_training()};
  std::int64_t global_step = options.start_epoch * static_cast<std::int64_t>(train_loader.size());
  detail::WeightsSnapshot<typename Model::Scalar> best_weights;  // restore_best_weights: the best epoch's
  std::optional<EarlyStopper> stopper;
  if (options.early_stopping) stopper.emplace(*options.early_stopping);
  detail::restore_run_state(options, stopper ? &*stopper : nullptr);
  const bool per_batch = options.scheduler && (options.schedule_every == ScheduleEvery::automatic
                                                   ? options.scheduler->steps_per_batch()
                                                   : options.schedule_every == ScheduleEvery::batch);
  double step_lr = std::numeric_limits<double>::quiet_NaN();  // the lr of the last training step
  auto after_batch = [&] {
    step_lr = detail::lr_of(opt);
    if (per_batch) options.scheduler->step();
  };

  for (std::int64_t epoch = options.start_epoch + 1; epoch <= options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    model.train(true);
    detail::set_epoch(train_loader, epoch - 1);
    ProgressBar bar(bar_stream, static_cast<std::int64_t>(train_loader.size()),
                    "epoch " + std::to_string(epoch) + "/" + std::to_string(options.epochs));
    const detail::EpochSums sums =
        detail::train_epoch(step, train_loader, epoch, global_step, options, show_bar ? &bar : nullptr, after_batch);
    const double train_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();

    detail::set_epoch(val_loader, epoch - 1);
    const Evaluation val = evaluate(model, val_loader, loss);

    EpochStats stats;
    stats.epoch = epoch;
    stats.train_loss = sums.loss_sum / static_cast<double>(sums.seen);
    stats.train_accuracy = sums.class_targets ? static_cast<double>(sums.correct) / static_cast<double>(sums.seen)
                                              : std::numeric_limits<double>::quiet_NaN();
    stats.val_loss = val.loss;
    stats.val_accuracy = val.accuracy;
    stats.train_seconds = train_seconds;
    stats.images_per_second = train_seconds > 0 ? static_cast<double>(sums.seen) / train_seconds : 0.0;
    stats.lr = step_lr;
    if (options.reduce_epoch) options.reduce_epoch(stats);
    stats.best = stats.val_loss < history.best_val_loss;  // strictly lower: the earliest of equal losses stays
    if (stats.best) {
      history.best_epoch = epoch;
      history.best_val_loss = stats.val_loss;
      history.best_val_accuracy = stats.val_accuracy;
      if (options.restore_best_weights) best_weights.save(model);
    }
    // The schedules step after validation, before the checkpoint, so the saved state is the next epoch's.
    if (options.plateau) options.plateau->step(detail::monitored(options.plateau_monitor, stats, "ReduceLROnPlateau"));
    if (options.scheduler && !per_batch) options.scheduler->step();
    const bool stop =
        stopper && stopper->update(detail::monitored(stopper->rule().monitor, stats, "early stopping"), epoch);
    detail::save_epoch_checkpoints(model, opt, stats, history, options,
                                   detail::run_state(options, stopper ? &*stopper : nullptr));
    stats.seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    history.epochs.push_back(stats);
    if (options.log) detail::log_epoch(*options.log, stats, options);
    if (options.on_epoch) options.on_epoch(stats);
    if (stop) {
      history.stopped_early = true;
      history.stopped_epoch = epoch;
      history.stop_reason = stopper->reason(epoch);
      if (options.log) *options.log << "early stopping: " << history.stop_reason << '\n' << std::flush;
      break;
    }
  }
  best_weights.restore(model);  // nothing when this run had no best epoch (or restore_best_weights is off)
  return history;
}

}  // namespace ember::train
