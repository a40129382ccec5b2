#pragma once
// Early stopping on a monitored validation metric, as Keras's EarlyStopping(monitor, min_delta, patience,
// mode): after every epoch the metric improves when it beats the best so far by more than min_delta (lower for
// mode min, higher for max); fit stops once `patience` epochs in a row have not improved (patience 0: at the
// first epoch that does not improve). mode automatic: min for val_loss, max for val_accuracy. A NaN metric
// never improves. The state (best, best epoch, epochs without improvement) goes into fit's checkpoints under
// "early_stopping.", so a resumed run stops where the uninterrupted one would.
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

#include "ember/core/print.hpp"
#include "ember/optim/scheduler_base.hpp"

namespace ember::train {

// What fit can monitor (early stopping, ReduceLROnPlateau).
enum class Monitor { val_loss, val_accuracy };
enum class MonitorMode { automatic, min, max };

inline const char* monitor_name(Monitor m) { return m == Monitor::val_loss ? "val_loss" : "val_accuracy"; }

// Keras's order: monitor, min_delta, patience, mode.
struct EarlyStopping {
  Monitor monitor = Monitor::val_loss;
  double min_delta = 0.0;     // an improvement must exceed this (>= 0)
  std::int64_t patience = 0;  // epochs without improvement before stopping
  MonitorMode mode = MonitorMode::automatic;
};

// The running state of an EarlyStopping rule.
class EarlyStopper {
 public:
  explicit EarlyStopper(EarlyStopping rule) : rule_(rule) {
    if (!(rule.min_delta >= 0.0))
      throw std::invalid_argument("EarlyStopping: min_delta must be >= 0, got " + std::to_string(rule.min_delta));
    if (rule.patience < 0)
      throw std::invalid_argument("EarlyStopping: patience must be >= 0, got " + std::to_string(rule.patience));
    if (rule_.mode == MonitorMode::automatic)
      rule_.mode = rule.monitor == Monitor::val_accuracy ? MonitorMode::max : MonitorMode::min;
    best_ = rule_.mode == MonitorMode::min ? std::numeric_limits<double>::infinity()
                                           : -std::numeric_limits<double>::infinity();
  }

  // The metric of `epoch`; true when training should stop after it.
  bool update(double value, std::int64_t epoch) {
    const bool better = rule_.mode == MonitorMode::min ? value < best_ - rule_.min_delta
                                                       : value > best_ + rule_.min_delta;
    if (better) {
      best_ = value;
      best_epoch_ = epoch;
      wait_ = 0;
      return false;
    }
    ++wait_;
    return wait_ >= rule_.patience;
  }

  // Why fit stopped, for History::stop_reason.
  std::string reason(std::int64_t epoch) const {
    return std::string(monitor_name(rule_.monitor)) + " did not improve by more than " +
           ember::python_float(rule_.min_delta) + " for " + std::to_string(wait_) + " epoch" +
           (wait_ == 1 ? "" : "s") + " (patience " + std::to_string(rule_.patience) + "; best " +
           ember::python_float(best_) + " at epoch " + std::to_string(best_epoch_) + "); stopped after epoch " +
           std::to_string(epoch);
  }

  const EarlyStopping& rule() const noexcept { return rule_; }
  double best() const noexcept { return best_; }
  std::int64_t best_epoch() const noexcept { return best_epoch_; }
  std::int64_t wait() const noexcept { return wait_; }

  std::map<std::string, std::string> state_dict() const {
    return {{"best", ember::python_float(best_)},
            {"best_epoch", std::to_string(best_epoch_)},
            {"wait", std::to_string(wait_)}};
  }
  void load_state_dict(const std::map<std::string, std::string>& s) {
    best_ = optim::detail::state_number(s, "best");
    best_epoch_ = optim::detail::state_int(s, "best_epoch");
    wait_ = optim::detail::state_int(s, "wait");
  }

 private:
  EarlyStopping rule_;
  double best_;
  std::int64_t best_epoch_ = 0, wait_ = 0;
};

}  // namespace ember::train
