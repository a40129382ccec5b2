#pragma once
// What fit (train/fit.hpp) takes and reports: FitOptions, StepInfo, EpochStats, History.
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/optim/scheduler.hpp"
#include "ember/train/early_stopping.hpp"
#include "ember/train/progress.hpp"

namespace ember::train {

// When fit steps FitOptions::scheduler: automatic follows the schedule (OneCycleLR, or a SequentialLR holding
// one, per batch; the others per epoch, as PyTorch's examples step them).
enum class ScheduleEvery { automatic, epoch, batch };

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
  double train_accuracy = 0;  // NaN for value targets (BCE, MSE)
  double val_loss = 0;     // mean over the validation samples
  double val_accuracy = 0;
  double seconds = 0;      // the whole epoch: training and validation
  double train_seconds = 0;
  double images_per_second = 0;  // training images / train_seconds
  double lr = 0;           // the optimiser's lr (its first group's) during the epoch's last step
  bool best = false;       // lowest validation loss so far (and saved, when checkpoint_path is set)
};

struct History {
  std::vector<EpochStats> epochs;  // the epochs run by this call
  std::int64_t best_epoch = 0;     // 0: none yet
  double best_val_loss = std::numeric_limits<double>::infinity();
  double best_val_accuracy = 0;
  bool stopped_early = false;   // early stopping ended the run ...
  std::int64_t stopped_epoch = 0;  // ... after this epoch
  std::string stop_reason;      // e.g. "val_loss did not improve by more than 0.0 for 3 epochs (...)"
};

struct FitOptions {
  std::int64_t epochs = 1;           // the last epoch to run (1-based)
  std::int64_t start_epoch = 0;      // epochs already done: fit runs start_epoch + 1 .. epochs
  std::string checkpoint_path;       // the lowest-validation-loss checkpoint (model only); empty: none
  std::string last_checkpoint_path;  // after every epoch: model + optimiser state, for resuming; empty: none
  std::map<std::string, std::string> metadata;  // added to every checkpoint's __metadata__
  std::ostream* log = nullptr;       // one line per epoch; null: none
  ProgressMode progress = ProgressMode::automatic;
  std::ostream* progress_stream = nullptr;  // where the bar goes; null: standard error
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const EpochStats&)> on_epoch;
  std::function<void()> before_update;  // the step's hook between backward and the optimiser step
  // After the epoch's validation, before the best is chosen, logged and saved: e.g. dist::reduce, which makes
  // the statistics of one process those of all.
  std::function<void(EpochStats&)> reduce_epoch;
  // A learning-rate schedule built on the optimiser, stepped after each epoch, or after each batch when it
  // asks for it (OneCycleLR) or schedule_every says so. Not owned: it must outlive fit.
  optim::LRScheduler* scheduler = nullptr;
  ScheduleEvery schedule_every = ScheduleEvery::automatic;
  // ReduceLROnPlateau, stepped after each epoch's validation with plateau_monitor. Not owned.
  optim::ReduceLROnPlateau* plateau = nullptr;
  Monitor plateau_monitor = Monitor::val_loss;
  std::optional<EarlyStopping> early_stopping;  // none: run every epoch
  // As Keras's EarlyStopping(restore_best_weights=True): when fit returns (done, or stopped early), the model
  // holds the parameters and buffers of this run's epoch with the lowest validation loss, kept in memory (no
  // checkpoint file needed). A resumed run whose best epoch came before the resume keeps its last weights.
  bool restore_best_weights = false;
  // The best so far when resuming (restored by resume_from).
  std::int64_t best_epoch = 0;
  double best_val_loss = std::numeric_limits<double>::infinity();
  double best_val_accuracy = 0;
  // The schedules' and early stopping's state when resuming (restored by resume_from; fit loads it into
  // scheduler, plateau and its early stopping before the first epoch).
  std::map<std::string, std::string> resume_state;

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
    resume_state.clear();
    for (const auto& [key, value] : checkpoint_metadata)
      for (const char* prefix : {"scheduler.", "plateau.", "early_stopping."})
        if (key.rfind(prefix, 0) == 0) resume_state[key] = value;
    return *this;
  }
};

}  // namespace ember::train
