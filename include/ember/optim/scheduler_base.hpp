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

#include "ember/core/print.hpp"

namespace ember::optim {

// What a schedule sees of an optimiser: its lr, initial_lr and, if it has one, its momentum (SGD's and
// RMSprop's momentum, Adam's beta1). Function pointers over a type-erased pointer: no allocation.
class LrControl {
 public:
  template <typename Opt, typename = std::enable_if_t<!std::is_same<std::decay_t<Opt>, LrControl>::value>>
  explicit LrControl(Opt& opt)
      : opt_(&opt),
        lr_([](void* o) { return static_cast<Opt*>(o)->lr(); }),
        set_lr_([](void* o, double v) { static_cast<Opt*>(o)->set_lr(v); }),
        initial_lr_([](void* o) { return static_cast<Opt*>(o)->initial_lr(); }),
        set_initial_lr_([](void* o, double v) { static_cast<Opt*>(o)->set_initial_lr(v); }) {
    if constexpr (has_beta1<Opt>(0)) {
      momentum_ = [](void* o) { return static_cast<Opt*>(o)->beta1(); };
      set_momentum_ = [](void* o, double v) { static_cast<Opt*>(o)->set_beta1(v); };
    } else if constexpr (has_momentum<Opt>(0)) {
      momentum_ = [](void* o) { return static_cast<Opt*>(o)->momentum(); };
      set_momentum_ = [](void* o, double v) { static_cast<Opt*>(o)->set_momentum(v); };
    }
  }
  double lr() const { return lr_(opt_); }
  void set_lr(double v) const { set_lr_(opt_, v); }
  std::optional<double> initial_lr() const { return initial_lr_(opt_); }
  void set_initial_lr(double v) const { set_initial_lr_(opt_, v); }
  bool has_momentum() const noexcept { return momentum_ != nullptr; }
  double momentum() const { return momentum_(opt_); }
  void set_momentum(double v) const { set_momentum_(opt_, v); }
  const void* optimizer() const noexcept { return opt_; }

 private:
  template <typename Opt>
  static constexpr auto has_beta1(int) -> decltype(std::declval<Opt&>().set_beta1(0.0), bool()) { return true; }
  template <typename>
  static constexpr bool has_beta1(...) { return false; }
  template <typename Opt>
  static constexpr auto has_momentum(int) -> decltype(std::declval<Opt&>().set_momentum(0.0), bool()) { return true; }
  template <typename>
  static constexpr bool has_momentum(...) { return false; }

  void* opt_;
  double (*lr_)(void*);
  void (*set_lr_)(void*, double);
  std::optional<double> (*initial_lr_)(void*);
  void (*set_initial_lr_)(void*, double);
  double (*momentum_)(void*) = nullptr;
  void (*set_momentum_)(void*, double) = nullptr;
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
// Python's a % b for b > 0 (never negative).
inline std::int64_t floor_mod(std::int64_t a, std::int64_t b) { return ((a % b) + b) % b; }
}  // namespace detail

class SequentialLR;

// PyTorch's _LRScheduler: last_epoch, base_lr, the recursive get_lr and, where torch has one, the closed form
// (used by step_to(epoch), torch's step(epoch), which SequentialLR uses to restart a schedule at 0).
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  virtual void step() {
    ++last_epoch_;
    apply(get_lr());
  }
  // torch's step(epoch): jumps to `epoch`, with the closed form when the schedule has one.
  void step_to(std::int64_t epoch) {
    last_epoch_ = epoch;
    const std::optional<double> closed = closed_form_lr();
    apply(closed ? *closed : get_lr());
  }
  double get_last_lr() const noexcept { return last_lr_; }
  std::int64_t last_epoch() const noexcept { return last_epoch_; }
  // True for a schedule counted in batches (OneCycleLR's total_steps): train::fit steps it after every batch.
  virtual bool steps_per_batch() const noexcept { return false; }
  double base_lr() const noexcept { return base_lr_; }

  virtual SchedulerState state_dict() const {
    return {{"last_epoch", std::to_string(last_epoch_)}, {"base_lr", python_float(base_lr_)},
            {"last_lr", python_float(last_lr_)}};
  }
  virtual void load_state_dict(const SchedulerState& s) {
    last_epoch_ = detail::state_int(s, "last_epoch");
    base_lr_ = detail::state_number(s, "base_lr");
    last_lr_ = detail::state_number(s, "last_lr");
    opt_.set_lr(last_lr_);
  }

 protected:
  friend class SequentialLR;
  // `initial_lr`: what OneCycleLR writes over param_group['initial_lr']; otherwise setdefault(lr).
  explicit LRScheduler(LrControl opt, std::optional<double> initial_lr = std::nullopt) : opt_(opt) {
    if (initial_lr)
      opt_.set_initial_lr(*initial_lr);
    else if (!opt_.initial_lr())
      opt_.set_initial_lr(opt_.lr());
    base_lr_ = *opt_.initial_lr();
  }
  // PyTorch's _initial_step: the constructor's step to last_epoch 0. Derived constructors call it last.
  void initial_step() { step(); }
  virtual double get_lr() = 0;
  virtual std::optional<double> closed_form_lr() const { return std::nullopt; }
  void apply(double lr) {
    opt_.set_lr(lr);
    last_lr_ = lr;
  }

  LrControl opt_;
  double base_lr_ = 0;
  std::int64_t last_epoch_ = -1;
  double last_lr_ = 0;
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
