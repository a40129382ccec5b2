#pragma once
// OneCycleLR and ReduceLROnPlateau, as torch.optim.lr_scheduler of PyTorch 1.13 (every parameter group alike); the
// other schedules and how to save a schedule's state are in optim/scheduler.hpp.
//
//   OneCycleLR(opt, max_lr, total_steps, pct_start = 0.3, anneal_strategy = cos, div_factor = 25,
//              final_div_factor = 1e4, three_phase = false, cycle_momentum = true, base_momentum = 0.85,
//              max_momentum = 0.95)
//     lr from max_lr / div_factor up to max_lr and down to that / final_div_factor over total_steps steps (a
//     step past total_steps throws std::logic_error); the momentum (SGD's and RMSprop's momentum, Adam's and
//     AdamW's beta1) runs the other way between max_momentum and base_momentum.
//   ReduceLROnPlateau(opt, mode = min, factor = 0.1, patience = 10, threshold = 1e-4, threshold_mode = rel,
//                     cooldown = 0, min_lr = 0, eps = 1e-8), step(metric)
//     lr *= factor (not below min_lr, and only by more than eps) after more than `patience` steps without
//     improvement, then `cooldown` steps of rest.
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/print.hpp"
#include "ember/optim/scheduler_base.hpp"

namespace ember::optim {

enum class AnnealStrategy { cos, linear };

class OneCycleLR : public LRScheduler {
 public:
  template <typename Opt>
  OneCycleLR(Opt& opt, double max_lr, std::int64_t total_steps, double pct_start = 0.3,
             AnnealStrategy anneal_strategy = AnnealStrategy::cos, double div_factor = 25.0,
             double final_div_factor = 1e4, bool three_phase = false, bool cycle_momentum = true,
             double base_momentum = 0.85, double max_momentum = 0.95)
      : LRScheduler(LrControl(opt), checked_initial_lr(max_lr, total_steps, pct_start, div_factor)),
        total_steps_(total_steps),
        anneal_(anneal_strategy),
        cycle_momentum_(cycle_momentum) {
    initial_lr_ = base_lrs_[0];
    max_lr_ = max_lr;
    min_lr_ = initial_lr_ / final_div_factor;
    const double n = static_cast<double>(total_steps);
    if (three_phase) {
      phases_ = {{pct_start * n - 1, initial_lr_, max_lr_, max_momentum, base_momentum},
                 {2 * pct_start * n - 2, max_lr_, initial_lr_, base_momentum, max_momentum},
                 {n - 1, initial_lr_, min_lr_, max_momentum, max_momentum}};
    } else {
      phases_ = {{pct_start * n - 1, initial_lr_, max_lr_, max_momentum, base_momentum},
                 {n - 1, max_lr_, min_lr_, base_momentum, max_momentum}};
    }
    if (cycle_momentum_) {
      if (!opt_.has_momentum())
        throw std::invalid_argument("OneCycleLR: optimizer must support momentum with `cycle_momentum` option enabled");
      for (std::size_t g = 0; g < base_lrs_.size(); ++g) opt_.set_momentum(g, max_momentum);
    }
    initial_step();
  }

  bool steps_per_batch() const noexcept override { return true; }

  // The momentum (or beta1) the last step set; NaN without cycle_momentum.
  double get_last_momentum() const noexcept { return last_momentum_; }

  SchedulerState state_dict() const override {
    SchedulerState s = LRScheduler::state_dict();
    s["last_momentum"] = python_float(last_momentum_);
    return s;
  }
  void load_state_dict(const SchedulerState& s) override {
    LRScheduler::load_state_dict(s);
    last_momentum_ = detail::state_number(s, "last_momentum");
    if (cycle_momentum_)
      for (std::size_t g = 0; g < base_lrs_.size(); ++g) opt_.set_momentum(g, last_momentum_);
  }

 protected:
  // Every group has the same max_lr, so the same lr and momentum.
  double get_lr(std::size_t g) override {
    if (last_epoch_ > total_steps_)
      throw std::logic_error("OneCycleLR: tried to step " + std::to_string(last_epoch_) +
                             " times. The specified number of total steps is " + std::to_string(total_steps_));
    const double step_num = static_cast<double>(last_epoch_);
    double start_step = 0, lr = 0, momentum = 0;
    for (std::size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (step_num <= ph.end_step || i + 1 == phases_.size()) {
        const double pct = (step_num - start_step) / (ph.end_step - start_step);
        lr = anneal(ph.start_lr, ph.end_lr, pct);
        momentum = anneal(ph.start_momentum, ph.end_momentum, pct);
        break;
      }
      start_step = ph.end_step;
    }
    if (cycle_momentum_) {
      opt_.set_momentum(g, momentum);
      last_momentum_ = momentum;
    }
    return lr;
  }

 private:
  struct Phase {
    double end_step, start_lr, end_lr, start_momentum, end_momentum;
  };

  static double checked_initial_lr(double max_lr, std::int64_t total_steps, double pct_start, double div_factor) {
    if (total_steps <= 0)
      throw std::invalid_argument("OneCycleLR: expected positive integer total_steps, but got " +
                                  std::to_string(total_steps));
    if (!(pct_start >= 0.0 && pct_start <= 1.0))
      throw std::invalid_argument("OneCycleLR: expected float between 0 and 1 pct_start, but got " +
                                  python_float(pct_start));
    if (!(max_lr >= 0.0)) throw std::invalid_argument("OneCycleLR: invalid max_lr: " + python_float(max_lr));
    return max_lr / div_factor;
  }
  double anneal(double start, double end, double pct) const {
    if (anneal_ == AnnealStrategy::linear) return (end - start) * pct + start;
    const double cos_out = std::cos(3.141592653589793 * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }

  std::int64_t total_steps_;
  AnnealStrategy anneal_;
  bool cycle_momentum_;
  double initial_lr_ = 0, max_lr_ = 0, min_lr_ = 0;
  std::vector<Phase> phases_;
  double last_momentum_ = std::numeric_limits<double>::quiet_NaN();
};

enum class PlateauMode { min, max };
enum class ThresholdMode { rel, abs };

// Not an LRScheduler (as in PyTorch): it steps on a metric, and its lr depends on the metrics seen.
class ReduceLROnPlateau {
 public:
  template <typename Opt>
  explicit ReduceLROnPlateau(Opt& opt, PlateauMode mode = PlateauMode::min, double factor = 0.1,
                             std::int64_t patience = 10, double threshold = 1e-4,
                             ThresholdMode threshold_mode = ThresholdMode::rel, std::int64_t cooldown = 0,
                             double min_lr = 0.0, double eps = 1e-8)
      : opt_(opt),
        mode_(mode),
        factor_(factor),
        patience_(patience),
        threshold_(threshold),
        threshold_mode_(threshold_mode),
        cooldown_(cooldown),
        min_lr_(min_lr),
        eps_(eps) {
    if (!(factor < 1.0)) throw std::invalid_argument("ReduceLROnPlateau: factor should be < 1.0, got " + python_float(factor));
    if (patience < 0 || cooldown < 0)
      throw std::invalid_argument("ReduceLROnPlateau: patience and cooldown must be >= 0");
    best_ = worst();
    for (std::size_t g = 0; g < opt_.groups(); ++g) last_lrs_.push_back(opt_.lr(g));
  }

  void step(double metric) {
    ++last_epoch_;
    if (is_better(metric, best_)) {
      best_ = metric;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      num_bad_epochs_ = 0;
    }
    if (num_bad_epochs_ > patience_) {
      for (std::size_t g = 0; g < last_lrs_.size(); ++g) {
        const double old_lr = opt_.lr(g);
        const double new_lr = std::max(old_lr * factor_, min_lr_);
        if (old_lr - new_lr > eps_) opt_.set_lr(g, new_lr);
      }
      cooldown_counter_ = cooldown_;
      num_bad_epochs_ = 0;
    }
    for (std::size_t g = 0; g < last_lrs_.size(); ++g) last_lrs_[g] = opt_.lr(g);
  }

  // The first group's lr; get_last_lrs() has every group's.
  double get_last_lr() const noexcept { return last_lrs_[0]; }
  const std::vector<double>& get_last_lrs() const noexcept { return last_lrs_; }
  std::int64_t last_epoch() const noexcept { return last_epoch_; }
  double best() const noexcept { return best_; }
  std::int64_t num_bad_epochs() const noexcept { return num_bad_epochs_; }
  std::int64_t cooldown_counter() const noexcept { return cooldown_counter_; }

  SchedulerState state_dict() const {
    SchedulerState s{{"last_epoch", std::to_string(last_epoch_)},
                     {"best", python_float(best_)},
                     {"num_bad_epochs", std::to_string(num_bad_epochs_)},
                     {"cooldown_counter", std::to_string(cooldown_counter_)}};
    for (std::size_t g = 0; g < last_lrs_.size(); ++g) s["last_lr" + detail::group_suffix(g)] = python_float(last_lrs_[g]);
    return s;
  }
  // Also sets the optimiser's lr to the saved one.
  void load_state_dict(const SchedulerState& s) {
    last_epoch_ = detail::state_int(s, "last_epoch");
    best_ = detail::state_number(s, "best");
    num_bad_epochs_ = detail::state_int(s, "num_bad_epochs");
    cooldown_counter_ = detail::state_int(s, "cooldown_counter");
    for (std::size_t g = 0; g < last_lrs_.size(); ++g) {
      last_lrs_[g] = detail::state_number(s, "last_lr" + detail::group_suffix(g));
      opt_.set_lr(g, last_lrs_[g]);
    }
  }

 private:
  double worst() const {
    return mode_ == PlateauMode::min ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
  }
  bool is_better(double a, double best) const {
    if (mode_ == PlateauMode::min)
      return threshold_mode_ == ThresholdMode::rel ? a < best * (1. - threshold_) : a < best - threshold_;
    return threshold_mode_ == ThresholdMode::rel ? a > best * (threshold_ + 1.) : a > best + threshold_;
  }

  LrControl opt_;
  PlateauMode mode_;
  double factor_;
  std::int64_t patience_;
  double threshold_;
  ThresholdMode threshold_mode_;
  std::int64_t cooldown_;
  double min_lr_, eps_;
  double best_ = 0;
  std::int64_t num_bad_epochs_ = 0, cooldown_counter_ = 0, last_epoch_ = 0;
  std::vector<double> last_lrs_;
};

}  // namespace ember::optim
