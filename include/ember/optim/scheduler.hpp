#pragma once
// Learning-rate schedules, as torch.optim.lr_scheduler of PyTorch 1.13: each takes the optimiser by reference
// (SGD, Adam, AdamW, RMSprop or any type with lr(), set_lr(x), initial_lr(), set_initial_lr(x)) and sets its
// lr on step(), every parameter group's from that group's own base lr (optim/scheduler_base.hpp). Constructing a schedule performs PyTorch's initial step (so
// last_epoch() is 0 and the lr is the schedule's first value); each step() then uses PyTorch's recursive
// get_lr, so the sequence is torch's to the last bit where the formulas allow it.
//
//   StepLR(opt, step_size, gamma = 0.1)              lr *= gamma every step_size steps
//   MultiStepLR(opt, milestones, gamma = 0.1)        lr *= gamma^(times last_epoch appears in milestones)
//   ExponentialLR(opt, gamma)                        lr *= gamma every step
//   CosineAnnealingLR(opt, T_max, eta_min = 0)       the recursive cosine: climbs again after T_max
//   LinearLR(opt, start_factor = 1/3, end_factor = 1, total_iters = 5)
//   SequentialLR(opt, {&a, &b}, milestones)          a until milestones[0], then b (restarted at 0), ...
//   OneCycleLR, ReduceLROnPlateau                    optim/scheduler_cycle.hpp
//
// The first schedule built on an optimiser records each group's lr as its initial_lr (PyTorch's
// param_group['initial_lr'], set with setdefault); every later one starts from that (its base_lrs()).
//
// Resuming: state_dict() is the schedule's whole state as a string map (exact decimal numbers), ready for a
// checkpoint's metadata; load_state_dict(map) restores it into a schedule built the same way on the restored
// optimiser, and sets the optimiser's lr (and momentum, OneCycleLR) to the saved values. With io:
//   auto meta = scheduler_metadata(sched);           // {"scheduler.last_epoch": "12", ...}
//   io::save_checkpoint(model, path, meta, &opt);
//   load_scheduler_metadata(sched, io::load_checkpoint(model, path, &opt));
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/print.hpp"
#include "ember/optim/scheduler_base.hpp"
#include "ember/optim/scheduler_cycle.hpp"

namespace ember::optim {

class StepLR : public LRScheduler {
 public:
  template <typename Opt>
  StepLR(Opt& opt, std::int64_t step_size, double gamma = 0.1)
      : LRScheduler(LrControl(opt)), step_size_(step_size), gamma_(gamma) {
    if (step_size < 1) throw std::invalid_argument("StepLR: step_size must be at least 1, got " + std::to_string(step_size));
    initial_step();
  }

 protected:
  double get_lr(std::size_t g) override {
    if (last_epoch_ == 0 || last_epoch_ % step_size_ != 0) return opt_.lr(g);
    return opt_.lr(g) * gamma_;
  }
  std::optional<double> closed_form_lr(std::size_t g) const override {
    return base_lrs_[g] * std::pow(gamma_, static_cast<double>(last_epoch_ / step_size_));
  }

 private:
  std::int64_t step_size_;
  double gamma_;
};

class MultiStepLR : public LRScheduler {
 public:
  template <typename Opt>
  MultiStepLR(Opt& opt, std::vector<std::int64_t> milestones, double gamma = 0.1)
      : LRScheduler(LrControl(opt)), milestones_(std::move(milestones)), gamma_(gamma) {
    std::sort(milestones_.begin(), milestones_.end());  // torch keeps a Counter; repeats multiply gamma
    initial_step();
  }

 protected:
  double get_lr(std::size_t g) override {
    const auto n = std::count(milestones_.begin(), milestones_.end(), last_epoch_);
    if (n == 0) return opt_.lr(g);
    return opt_.lr(g) * std::pow(gamma_, static_cast<double>(n));
  }
  std::optional<double> closed_form_lr(std::size_t g) const override {
    const auto n = std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
    return base_lrs_[g] * std::pow(gamma_, static_cast<double>(n));
  }

 private:
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

class ExponentialLR : public LRScheduler {
 public:
  template <typename Opt>
  ExponentialLR(Opt& opt, double gamma) : LRScheduler(LrControl(opt)), gamma_(gamma) {
    initial_step();
  }

 protected:
  double get_lr(std::size_t g) override { return last_epoch_ == 0 ? opt_.lr(g) : opt_.lr(g) * gamma_; }
  std::optional<double> closed_form_lr(std::size_t g) const override {
    return base_lrs_[g] * std::pow(gamma_, static_cast<double>(last_epoch_));
  }

 private:
  double gamma_;
};

// torch's recursive form: after T_max the lr climbs back to base_lr over the next T_max steps, and so on.
class CosineAnnealingLR : public LRScheduler {
 public:
  template <typename Opt>
  CosineAnnealingLR(Opt& opt, std::int64_t T_max, double eta_min = 0.0)
      : LRScheduler(LrControl(opt)), T_max_(T_max), eta_min_(eta_min) {
    if (T_max < 1) throw std::invalid_argument("CosineAnnealingLR: T_max must be at least 1, got " + std::to_string(T_max));
    initial_step();
  }

 protected:
  double get_lr(std::size_t g) override {
    const double pi = 3.141592653589793, T = static_cast<double>(T_max_), e = static_cast<double>(last_epoch_);
    const double lr = opt_.lr(g);
    if (last_epoch_ == 0) return lr;
    if (detail::floor_mod(last_epoch_ - 1 - T_max_, 2 * T_max_) == 0)
      return lr + (base_lrs_[g] - eta_min_) * (1 - std::cos(pi / T)) / 2;
    return (1 + std::cos(pi * e / T)) / (1 + std::cos(pi * (e - 1) / T)) * (lr - eta_min_) + eta_min_;
  }
  std::optional<double> closed_form_lr(std::size_t g) const override {
    const double pi = 3.141592653589793;
    return eta_min_ + (base_lrs_[g] - eta_min_) * (1 + std::cos(pi * static_cast<double>(last_epoch_) / T_max_)) / 2;
  }

 private:
  std::int64_t T_max_;
  double eta_min_;
};

class LinearLR : public LRScheduler {
 public:
  template <typename Opt>
  LinearLR(Opt& opt, double start_factor = 1.0 / 3, double end_factor = 1.0, std::int64_t total_iters = 5)
      : LRScheduler(LrControl(opt)), start_(start_factor), end_(end_factor), total_(total_iters) {
    if (!(start_factor > 0.0 && start_factor <= 1.0))
      throw std::invalid_argument("LinearLR: starting multiplicative factor expected to be greater than 0 and less "
                                  "or equal to 1, got " + python_float(start_factor));
    if (!(end_factor >= 0.0 && end_factor <= 1.0))
      throw std::invalid_argument("LinearLR: ending multiplicative factor expected to be between 0 and 1, got " +
                                  python_float(end_factor));
    if (total_iters < 1)
      throw std::invalid_argument("LinearLR: total_iters must be at least 1, got " + std::to_string(total_iters));
    initial_step();
  }

 protected:
  double get_lr(std::size_t g) override {
    const double lr = opt_.lr(g);
    if (last_epoch_ == 0) return lr * start_;
    if (last_epoch_ > total_) return lr;
    return lr * (1. + (end_ - start_) / (static_cast<double>(total_) * start_ +
                                         static_cast<double>(last_epoch_ - 1) * (end_ - start_)));
  }
  std::optional<double> closed_form_lr(std::size_t g) const override {
    return base_lrs_[g] * (start_ + (end_ - start_) * static_cast<double>(std::min(total_, last_epoch_)) /
                                    static_cast<double>(total_));
  }

 private:
  double start_, end_;
  std::int64_t total_;
};

// Runs schedulers[0] until milestones[0], then schedulers[1] restarted at epoch 0, and so on: a warm-up is
// SequentialLR(opt, {&linear, &main}, {warmup_steps}). The schedules must outlive it and be built on `opt`.
// As in PyTorch, construction puts the lr back to the initial lr and redoes the first schedule's first step.
class SequentialLR : public LRScheduler {
 public:
  template <typename Opt>
  SequentialLR(Opt& opt, std::vector<LRScheduler*> schedulers, std::vector<std::int64_t> milestones)
      : LRScheduler(LrControl(opt)), schedulers_(std::move(schedulers)), milestones_(std::move(milestones)) {
    if (schedulers_.empty()) throw std::invalid_argument("SequentialLR: no schedulers");
    for (std::size_t i = 0; i < schedulers_.size(); ++i)
      if (schedulers_[i] == nullptr || schedulers_[i]->opt_.optimizer() != static_cast<const void*>(&opt))
        throw std::invalid_argument("SequentialLR: expects all schedulers to belong to the same optimizer, but got "
                                    "scheduler at index " + std::to_string(i) + " to be different");
    if (milestones_.size() != schedulers_.size() - 1)
      throw std::invalid_argument("SequentialLR: expects number of schedulers provided to be one more than the "
                                  "number of milestone points, but got number of schedulers " +
                                  std::to_string(schedulers_.size()) + " and the number of milestones to be equal to " +
                                  std::to_string(milestones_.size()));
    last_epoch_ = 0;
    for (std::size_t g = 0; g < base_lrs_.size(); ++g) opt_.set_lr(g, base_lrs_[g]);
    for (auto* s : schedulers_) s->last_epoch_ -= 1;
    schedulers_[0]->initial_step();
    last_lrs_ = schedulers_[0]->get_last_lrs();
  }

  void step() override {
    ++last_epoch_;
    const auto idx = static_cast<std::size_t>(
        std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin());
    LRScheduler& s = *schedulers_[idx];
    if (idx > 0 && milestones_[idx - 1] == last_epoch_)
      s.step_to(0);
    else
      s.step();
    last_lrs_ = s.get_last_lrs();
  }

  bool steps_per_batch() const noexcept override {
    return std::any_of(schedulers_.begin(), schedulers_.end(), [](const LRScheduler* s) { return s->steps_per_batch(); });
  }

  // Its own last_epoch and last_lr, and each schedule's state under "<index>.".
  SchedulerState state_dict() const override {
    SchedulerState out = LRScheduler::state_dict();
    for (std::size_t i = 0; i < schedulers_.size(); ++i)
      for (const auto& [k, v] : schedulers_[i]->state_dict()) out[std::to_string(i) + "." + k] = v;
    return out;
  }
  void load_state_dict(const SchedulerState& s) override {
    for (std::size_t i = 0; i < schedulers_.size(); ++i) {
      SchedulerState sub;
      const std::string prefix = std::to_string(i) + ".";
      for (const auto& [k, v] : s)
        if (k.rfind(prefix, 0) == 0) sub[k.substr(prefix.size())] = v;
      schedulers_[i]->load_state_dict(sub);
    }
    LRScheduler::load_state_dict(s);
  }

 protected:
  double get_lr(std::size_t g) override { return opt_.lr(g); }  // unused: step() is overridden

 private:
  std::vector<LRScheduler*> schedulers_;
  std::vector<std::int64_t> milestones_;
};

}  // namespace ember::optim
