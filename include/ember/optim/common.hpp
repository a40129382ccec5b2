#pragma once
// What every optimiser shares: the checkpoint view of one state tensor (StateTensor), the checks of the
// parameter list and of each gradient, zero_grad, and the parameter group's "initial_lr" that schedules set
// (PyTorch's param_group['initial_lr']: the first schedule on an optimiser records the lr it started from,
// later ones reuse it; optim/scheduler.hpp).
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
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

namespace detail {

// The parameter list and the members every optimiser has in the same form. `name` prefixes every message.
template <typename T>
class ParamList {
 public:
  ParamList(const char* name, std::vector<ParameterT<T>*> params) : name_(name), params_(std::move(params)) {
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i] == nullptr)
        throw std::invalid_argument(std::string(name_) + ": parameter " + std::to_string(i) + " is a null pointer");
  }

  const std::vector<ParameterT<T>*>& params() const noexcept { return params_; }

  // As PyTorch's zero_grad(set_to_none=False): gradients become zeros (their storage is kept).
  void zero_grad() {
    for (auto* p : params_) p->grad.zero();
  }

  // PyTorch's param_group['initial_lr']: empty until a schedule records it.
  const std::optional<double>& initial_lr() const noexcept { return initial_lr_; }
  void set_initial_lr(double lr) { initial_lr_ = lr; }

 protected:
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
  std::vector<ParameterT<T>*> params_;
  std::optional<double> initial_lr_;
};

inline void check_nonnegative(const char* opt, const char* what, double v) {
  if (!(v >= 0.0)) throw std::invalid_argument(std::string(opt) + ": invalid " + what + ": " + python_float(v));
}

}  // namespace detail
}  // namespace ember::optim
