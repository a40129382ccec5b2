#pragma once
// The base of the learning-rate schedules (optim/scheduler.hpp): LrControl (what a schedule sees of an
// optimiser), LRScheduler (PyTorch's _LRScheduler), the state as a string map and its metadata helpers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/print.hpp"

namespace ember::optim {

// What a schedule sees of an optimiser, per parameter group: its lr, initial_lr and, if it has one, its
// momentum (SGD's and RMSprop's momentum, Adam's beta1). An optimiser with num_groups() is seen through the
// per-group members (lr(g), set_lr(g, x), ...); any other through lr(), set_lr(x), initial_lr(),
// set_initial_lr(x) as one group. Function pointers over a type-erased pointer: no allocation.
class LrControl {
 public:
  template <typename Opt, typename = std::enable_if_t<!std::is_same<std::decay_t<Opt>, LrControl>::value>>
  explicit LrControl(Opt& opt) : opt_(&opt) {
    if constexpr (has_groups<Opt>(0)) {
      groups_ = [](void* o) { return static_cast<Opt*>(o)->num_groups(); };
      lr_ = [](void* o, std::size_t g) { return static_cast<Opt*>(o)->lr(g); };
      set_lr_ = [](void* o, std::size_t g, double v) { static_cast<Opt*>(o)->set_lr(g, v); };
      initial_lr_ = [](void* o, std::size_t g) { return static_cast<Opt*>(o)->initial_lr(g); };
      set_initial_lr_ = [](void* o, std::size_t g, double v) { static_cast<Opt*>(o)->set_initial_lr(g, v); };
      if constexpr (has_beta1<Opt>(0)) {
        momentum_ = [](void* o, std::size_t g) { return static_cast<Opt*>(o)->beta1(g); };
        set_momentum_ = [](void* o, std::size_t g, double v) { static_cast<Opt*>(o)->set_beta1(g, v); };
      } else if constexpr (has_momentum<Opt>(0)) {
        momentum_ = [](void* o, std::size_t g) { return static_cast<Opt*>(o)->momentum(g); };
        set_momentum_ = [](void* o, std::size_t g, double v) { static_cast<Opt*>(o)->set_momentum(g, v); };
      }
    } else {
      groups_ = [](void*) { return std::size_t{1}; };
      lr_ = [](void* o, std::size_t) { return static_cast<Opt*>(o)->lr(); };
      set_lr_ = [](void* o, std::size_t, double v) { static_cast<Opt*>(o)->set_lr(v); };
      initial_lr_ = [](void* o, std::size_t) { return std::optional<double>(static_cast<Opt*>(o)->initial_lr()); };
      set_initial_lr_ = [](void* o, std::size_t, double v) { static_cast<Opt*>(o)->set_initial_lr(v); };
      if constexpr (has_momentum<Opt>(0)) {
        momentum_ = [](void* o, std::size_t) { return static_cast<Opt*>(o)->momentum(); };
        set_momentum_ = [](void* o, std::size_t, double v) { static_cast<Opt*>(o)->set_momentum(v); };
      }
    }
  }
  std::size_t groups() const { return groups_(opt_); }
  double lr(std::size_t g = 0) const { return lr_(opt_, g); }
  void set_lr(std::size_t g, double v) const { set_lr_(opt_, g, v); }
  std::optional<double> initial_lr(std::size_t g) const { return initial_lr_(opt_, g); }
  void set_initial_lr(std::size_t g, double v) const { set_initial_lr_(opt_, g, v); }
  bool has_momentum() const noexcept { return momentum_ != nullptr; }
  double momentum(std::size_t g) const { return momentum_(opt_, g); }
  void set_momentum(std::size_t g, double v) const { set_momentum_(opt_, g, v); }
  const void* optimizer() const noexcept { return opt_; }

 private:
  template <typename Opt>
  static constexpr auto has_groups(int) -> decltype(std::declval<Opt&>().set_lr(std::size_t{}, 0.0),
                                                    std::declval<Opt&>().num_groups(), bool()) {
    return true;
  }
  template <typename>
  static constexpr bool has_groups(...) { return false; }
  template <typename Opt>
  static constexpr auto has_beta1(int) -> decltype(std::declval<Opt&>().set_beta1(std::size_t{}, 0.0), bool()) {
    return true;
  }
  template <typename>
  static constexpr bool has_beta1(...) { return false; }
  template <typename Opt>
  static constexpr auto has_momentum(int) -> decltype(std::declval<Opt&>().set_momentum(0.0), bool()) { return true; }
  template <typename>
  static constexpr bool has_momentum(...) { return false; }

  void* opt_;
  std::size_t (*groups_)(void*);
  double (*lr_)(void*, std::size_t);
  void (*set_lr_)(void*, std::size_t, double);
  std::optional<double> (*initial_lr_)(void*, std::size_t);
  void (*set_initial_lr_)(void*, std::size_t, double);
  double (*momentum_)(void*, std::size_t) = nullptr;
  void (*set_momentum_)(void*, std::size_t, double) = nullptr;
};

using SchedulerState = std::map<std::string, std::string>;

namespace detail {
inline double state_number(const SchedulerState& s, const std::string& key) {
  const auto it = s.find(key);
  if (it == s.end()) throw std::invalid_argument("scheduler state: missing '" + key + "'");
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0')
    throw std::invalid_argument("scheduler state: '" + key + "' is not a number: '" + it->second + "'");
  return v;
}
inline std::int64_t state_int(const SchedulerState& s, const std::string& key) {
  const double v = state_number(s, key);
  if (v != std::floor(v)) throw std::invalid_argument("scheduler state: '" + key + "' is not an integer");
  return static_cast<std::int64_t>(v);
}
// "" for group 0, ".<g>" for the others: the state keys of one group stay those of before groups.
inline std::string group_suffix(std::size_t g) { return g == 0 ? std::string() : "." + std::to_string(g); }
// Python's a % b for b > 0 (never negative).
inline std::int64_t floor_mod(std::int64_t a, std::int64_t b) { return ((a % b) + b) % b; }
}  // namespace detail

class SequentialLR;

// PyTorch's _LRScheduler: last_epoch, each group's base_lr, the recursive get_lr and, where torch has one,
// the closed form (used by step_to(epoch), torch's step(epoch), which SequentialLR uses to restart a schedule
// at 0). Every parameter group follows the schedule from its own base_lr, as in PyTorch.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  virtual void step() {
    ++last_epoch_;
    for (std::size_t g = 0; g < next_.size(); ++g) next_[g] = get_lr(g);
    apply();
  }
  // torch's step(epoch): jumps to `epoch`, with the closed form when the schedule has one.
  void step_to(std::int64_t epoch) {
    last_epoch_ = epoch;
    for (std::size_t g = 0; g < next_.size(); ++g) {
      const std::optional<double> closed = closed_form_lr(g);
      next_[g] = closed ? *closed : get_lr(g);
    }
    apply();
  }
  // The first group's last lr; get_last_lrs() has every group's (PyTorch's get_last_lr() list).
  double get_last_lr() const noexcept { return last_lrs_[0]; }
  const std::vector<double>& get_last_lrs() const noexcept { return last_lrs_; }
  std::int64_t last_epoch() const noexcept { return last_epoch_; }
  double base_lr() const noexcept { return base_lrs_[0]; }
  const std::vector<double>& base_lrs() const noexcept { return base_lrs_; }
  // True for a schedule counted in batches (OneCycleLR's total_steps): train::fit steps it after every batch.
  virtual bool steps_per_batch() const noexcept { return false; }

  // Group 0 as "base_lr" and "last_lr" (one group: the keys of before groups existed), group g > 0 as
  // "base_lr.<g>" and "last_lr.<g>".
  virtual SchedulerState state_dict() const {
    SchedulerState s{{"last_epoch", std::to_string(last_epoch_)}};
    for (std::size_t g = 0; g < base_lrs_.size(); ++g) {
      s["base_lr" + detail::group_suffix(g)] = python_float(base_lrs_[g]);
      s["last_lr" + detail::group_suffix(g)] = python_float(last_lrs_[g]);
    }
    return s;
  }
  virtual void load_state_dict(const SchedulerState& s) {
    last_epoch_ = detail::state_int(s, "last_epoch");
    for (std::size_t g = 0; g < base_lrs_.size(); ++g) {
      base_lrs_[g] = detail::state_number(s, "base_lr" + detail::group_suffix(g));
      last_lrs_[g] = detail::state_number(s, "last_lr" + detail::group_suffix(g));
      opt_.set_lr(g, last_lrs_[g]);
    }
  }

 protected:
  friend class SequentialLR;
  // `initial_lr`: what OneCycleLR writes over param_group['initial_lr']; otherwise setdefault(lr), per group.
  explicit LRScheduler(LrControl opt, std::optional<double> initial_lr = std::nullopt) : opt_(opt) {
    const std::size_t groups = opt_.groups();
    for (std::size_t g = 0; g < groups; ++g) {
      if (initial_lr)
        opt_.set_initial_lr(g, *initial_lr);
      else if (!opt_.initial_lr(g))
        opt_.set_initial_lr(g, opt_.lr(g));
      base_lrs_.push_back(*opt_.initial_lr(g));
    }
    last_lrs_.assign(groups, 0.0);
    next_.assign(groups, 0.0);
  }
  // PyTorch's _initial_step: the constructor's step to last_epoch 0. Derived constructors call it last.
  void initial_step() { step(); }
  virtual double get_lr(std::size_t g) = 0;
  virtual std::optional<double> closed_form_lr(std::size_t) const { return std::nullopt; }
  // Every group's new lr is computed before any is set, as PyTorch's list comprehension does.
  void apply() {
    for (std::size_t g = 0; g < next_.size(); ++g) {
      opt_.set_lr(g, next_[g]);
      last_lrs_[g] = next_[g];
    }
  }

  LrControl opt_;
  std::vector<double> base_lrs_;
  std::int64_t last_epoch_ = -1;
  std::vector<double> last_lrs_, next_;
};

// A schedule's state as checkpoint metadata: each key of state_dict() prefixed (default "scheduler.").
template <typename Sched>
std::map<std::string, std::string> scheduler_metadata(const Sched& s, const std::string& prefix = "scheduler.") {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : s.state_dict()) out[prefix + k] = v;
  return out;
}
// Restores a schedule from metadata written with scheduler_metadata (std::invalid_argument if a key is missing).
template <typename Sched>
void load_scheduler_metadata(Sched& s, const std::map<std::string, std::string>& metadata,
                             const std::string& prefix = "scheduler.") {
  SchedulerState state;
  for (const auto& [k, v] : metadata)
    if (k.rfind(prefix, 0) == 0) state[k.substr(prefix.size())] = v;
  s.load_state_dict(state);
}

}  // namespace ember::optim
