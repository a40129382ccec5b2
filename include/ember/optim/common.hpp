#pragma once
// What every optimiser shares: the checkpoint view of one state tensor (StateTensor), parameter groups
// (ParamGroupT, each with its own options, as PyTorch's param_groups), the checks of the groups and of each
// gradient, zero_grad, the lr setters (copy the options, set the field, validate, store) and each group's
// "initial_lr" that schedules set (PyTorch's param_group['initial_lr']: the first schedule on an optimiser
// records each group's lr, later ones reuse it; optim/scheduler.hpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/parameter.hpp"
#include "ember/core/print.hpp"
#include "ember/core/tensor.hpp"

namespace ember::optim {

// One state tensor of an optimiser, as checkpoints see it.
template <typename T>
struct StateTensor {
  std::size_t param;  // index into params()
  std::string key;    // "momentum_buffer", "exp_avg", ...
  const TensorT<T>* tensor;
};

// A parameter group, as an entry of PyTorch's param_groups: its parameters and its own options (every field
// given: there are no defaults from the optimiser to fall back on). optim/param_groups.hpp splits a model's
// parameters into the usual weight-decay / no-weight-decay groups.
template <typename T, typename Options>
struct ParamGroupT {
  std::vector<ParameterT<T>*> params;
  Options options;
};

namespace detail {

// The parameter groups and the members every optimiser has in the same form. `name` prefixes every message;
// `validate` is the optimiser's check of one group's options. Parameters are numbered across the groups in
// order (params()): state and checkpoints use that index, so one group or several, a parameter's state has
// the same name in a checkpoint.
template <typename T, typename Options>
class ParamGroups {
 public:
  using Validate = void (*)(const Options&);

  ParamGroups(const char* name, std::vector<ParamGroupT<T, Options>> groups, Validate validate)
      : name_(name), validate_(validate) {
    if (groups.empty()) throw std::invalid_argument(std::string(name_) + ": no parameter groups");
    begin_.push_back(0);
    for (std::size_t g = 0; g < groups.size(); ++g) {
      validate_(groups[g].options);
      for (auto* p : groups[g].params) {
        if (p == nullptr)
          throw std::invalid_argument(std::string(name_) + ": parameter " + std::to_string(params_.size()) +
                                      " is a null pointer");
        if (std::find(params_.begin(), params_.end(), p) != params_.end())
          throw std::invalid_argument(std::string(name_) + ": parameter " + std::to_string(params_.size()) +
                                      " (group " + std::to_string(g) +
                                      ") appears more than once: some parameters appear in more than one "
                                      "parameter group");
        params_.push_back(p);
      }
      begin_.push_back(params_.size());
      options_.push_back(groups[g].options);
    }
    initial_lr_.resize(groups.size());
  }

  // Every parameter, group after group.
  const std::vector<ParameterT<T>*>& params() const noexcept { return params_; }
  std::size_t num_groups() const noexcept { return options_.size(); }
  // Group g's parameters are params()[group_begin(g) .. group_end(g)).
  std::size_t group_begin(std::size_t g) const { return begin_.at(g); }
  std::size_t group_end(std::size_t g) const { return begin_.at(g + 1); }

  // As PyTorch's zero_grad(set_to_none=False): gradients become zeros (their storage is kept).
  void zero_grad() {
    for (auto* p : params_) {
      T* g = p->grad.data();
      parallel_chunks(p->grad.numel(), [&](std::int64_t lo, std::int64_t hi) { std::fill(g + lo, g + hi, T(0)); });
    }
  }

  // The first group's options (the only group's, for an optimiser built from one parameter list).
  const Options& options() const noexcept { return options_[0]; }
  const Options& options(std::size_t g) const { return options_.at(check_group(g)); }
  // The first group's lr; lr(g) is group g's.
  double lr() const noexcept { return options_[0].lr; }
  double lr(std::size_t g) const { return options(g).lr; }
  // Every group's lr becomes `lr` (std::invalid_argument if negative: nothing changes).
  void set_lr(double lr) {
    for (std::size_t g = 0; g < options_.size(); ++g) set_option(g, &Options::lr, lr);
  }
  void set_lr(std::size_t g, double lr) { set_option(g, &Options::lr, lr); }

  // PyTorch's param_group['initial_lr']: empty until a schedule records it.
  const std::optional<double>& initial_lr(std::size_t g = 0) const { return initial_lr_.at(check_group(g)); }
  void set_initial_lr(double lr) { set_initial_lr(0, lr); }
  void set_initial_lr(std::size_t g, double lr) { initial_lr_.at(check_group(g)) = lr; }

 protected:
  // The setters' one pattern: copy the group's options, change one field, validate, then store.
  template <typename V>
  void set_option(std::size_t g, V Options::*field, V value) {
    Options o = options_.at(check_group(g));
    o.*field = value;
    validate_(o);
    options_[g] = o;
  }
  std::size_t check_group(std::size_t g) const {
    if (g >= options_.size())
      throw std::out_of_range(std::string(name_) + ": parameter group " + std::to_string(g) + " out of range for " +
                              std::to_string(options_.size()) + " groups");
    return g;
  }
  // The single-group repr when there is one group, else each group's after "group <g> (<n> parameters): ".
  template <typename Fields>
  std::string groups_repr(Fields fields) const {
    if (options_.size() == 1) return std::string(name_) + "(" + fields(options_[0]) + ")";
    std::string s = std::string(name_) + "(";
    for (std::size_t g = 0; g < options_.size(); ++g)
      s += (g ? "; group " : "group ") + std::to_string(g) + " (" + std::to_string(group_end(g) - group_begin(g)) +
           " parameters): " + fields(options_[g]);
    return s + ")";
  }
  void check_grad(std::size_t i) const {
    const ParameterT<T>& p = *params_[i];
    if (p.grad.shape() != p.value.shape())
      throw shape_error(std::string(name_) + ": parameter " + std::to_string(i) + " has value " +
                        to_string(p.value.shape()) + " but grad " + to_string(p.grad.shape()));
  }
  void check_index(std::size_t i) const {
    if (i >= params_.size())
      throw std::out_of_range(std::string(name_) + ": parameter index " + std::to_string(i) + " out of range for " +
                              std::to_string(params_.size()) + " parameters");
  }
  // A restored state tensor must have `expected` shape.
  void check_state_shape(std::size_t i, const std::string& key, const TensorT<T>& t, const Shape& expected) const {
    check_index(i);
    if (t.shape() != expected)
      throw shape_error(std::string(name_) + ": state '" + key + "' for parameter " + std::to_string(i) +
                        " must have shape " + to_string(expected) + ", got " + to_string(t.shape()));
  }
  [[noreturn]] void no_state(const std::string& key) const {
    throw std::invalid_argument(std::string(name_) + ": no state named '" + key + "'");
  }
  // A zero tensor of p's shape, if t is not one yet (the first step).
  static void ensure_zeros(TensorT<T>& t, const Shape& shape) {
    if (t.shape() != shape || t.empty()) {
      t.resize(shape);
      t.zero();
    }
  }

  const char* name_;
  Validate validate_;
  std::vector<ParameterT<T>*> params_;
  std::vector<std::size_t> begin_;
  std::vector<Options> options_;
  std::vector<std::optional<double>> initial_lr_;
};

// One group from a plain parameter list.
template <typename T, typename Options>
std::vector<ParamGroupT<T, Options>> one_group(std::vector<ParameterT<T>*> params, const Options& options) {
  std::vector<ParamGroupT<T, Options>> g(1);
  g[0].params = std::move(params);
  g[0].options = options;
  return g;
}

inline void check_nonnegative(const char* opt, const char* what, double v) {
  if (!(v >= 0.0)) throw std::invalid_argument(std::string(opt) + ": invalid " + what + ": " + python_float(v));
}

}  // namespace detail
}  // namespace ember::optim
