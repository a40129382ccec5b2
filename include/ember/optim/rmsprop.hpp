#pragma once
// RMSprop, as torch.optim.RMSprop of PyTorch 1.13 (single-tensor path, maximize=False), per element:
//
//   g = g + weight_decay * p
//   v = alpha * v + (1 - alpha) * g * g                    ("square_avg")
//   centered: a = alpha * a + (1 - alpha) * g              ("grad_avg");  avg = sqrt(v - a * a) + eps
//   else:                                                                 avg = sqrt(v) + eps
//   momentum > 0: b = momentum * b + g / avg; p = p - lr * b   ("momentum_buffer", starts at zero)
//   else:         p = p - lr * g / avg
//
// eps is added outside the square root and there is no bias correction. The state tensors are created on a
// parameter's first step (later steps allocate nothing); PyTorch's integer state['step'] does not enter the
// rule and is not kept. The checkpoint interface is the one optim/sgd.hpp describes.
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parameter.hpp"
#include "ember/core/print.hpp"
#include "ember/core/tensor.hpp"
#include "ember/optim/common.hpp"

namespace ember::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};

// Empty tensors: not created yet.
template <typename T>
struct RMSpropState {
  std::vector<TensorT<T>> square_avg, momentum_buffer, grad_avg;
};

template <typename T>
using RMSpropParamGroupT = ParamGroupT<T, RMSpropOptions>;

template <typename T>
class RMSpropT : public detail::ParamGroups<T, RMSpropOptions> {
  using Base = detail::ParamGroups<T, RMSpropOptions>;
  using Base::params_;

 public:
  RMSpropT(std::vector<ParameterT<T>*> params, RMSpropOptions options)
      : RMSpropT(detail::one_group(std::move(params), options)) {}
  explicit RMSpropT(std::vector<RMSpropParamGroupT<T>> groups)
      : Base("RMSprop", std::move(groups), &RMSpropT::validate) {
    for (auto* v : {&state_.square_avg, &state_.momentum_buffer, &state_.grad_avg}) v->resize(params_.size());
  }

  void step() {
    for (std::size_t g = 0; g < this->num_groups(); ++g) step_group(g);
  }

  // For OneCycleLR's momentum cycling (PyTorch sets param_group['momentum']); momentum() is the first group's.
  double momentum() const noexcept { return this->options().momentum; }
  double momentum(std::size_t g) const { return this->options(g).momentum; }
  void set_momentum(double momentum) {
    for (std::size_t g = 0; g < this->num_groups(); ++g) set_momentum(g, momentum);
  }
  void set_momentum(std::size_t g, double momentum) { this->set_option(g, &RMSpropOptions::momentum, momentum); }

 private:
  void step_group(std::size_t group) {
    const RMSpropOptions& o = this->options(group);
    const T lr = static_cast<T>(o.lr), alpha = static_cast<T>(o.alpha), one_minus_alpha = static_cast<T>(1.0 - o.alpha);
    const T eps = static_cast<T>(o.eps), wd = static_cast<T>(o.weight_decay), momentum = static_cast<T>(o.momentum);
    for (std::size_t i = this->group_begin(group); i < this->group_end(group); ++i) {
      if (!params_[i]->requires_grad) continue;  // frozen: no step, no state
      this->check_grad(i);
      ParameterT<T>& p = *params_[i];
      const Shape& shape = p.value.shape();
      Base::ensure_zeros(state_.square_avg[i], shape);
      if (o.momentum > 0) Base::ensure_zeros(state_.momentum_buffer[i], shape);
      if (o.centered) Base::ensure_zeros(state_.grad_avg[i], shape);
      T* w = p.value.data();
      const T* g = p.grad.data();
      T* v = state_.square_avg[i].data();
      T* b = o.momentum > 0 ? state_.momentum_buffer[i].data() : nullptr;
      T* a = o.centered ? state_.grad_avg[i].data() : nullptr;
      const std::int64_t n = p.value.numel();
      for (std::int64_t j = 0; j < n; ++j) {
        T grad = g[j];
        if (wd != T(0)) grad += wd * w[j];
        v[j] = v[j] * alpha + one_minus_alpha * grad * grad;
        T avg;
        if (a) {
          a[j] = a[j] * alpha + one_minus_alpha * grad;
          avg = std::sqrt(v[j] - a[j] * a[j]) + eps;
        } else {
          avg = std::sqrt(v[j]) + eps;
        }
        if (b) {
          b[j] = b[j] * momentum + grad / avg;
          w[j] += -lr * b[j];
        } else {
          w[j] += -lr * (grad / avg);
        }
      }
    }
  }

 public:
  const RMSpropState<T>& state() const noexcept { return state_; }

  // The checkpoint view (optim/sgd.hpp).
  std::string repr() const {
    return this->groups_repr([](const RMSpropOptions& o) {
      return "lr=" + python_float(o.lr) + ", alpha=" + python_float(o.alpha) + ", eps=" + python_float(o.eps) +
             ", weight_decay=" + python_float(o.weight_decay) + ", momentum=" + python_float(o.momentum) +
             ", centered=" + (o.centered ? "True" : "False");
    });
  }
  std::vector<StateTensor<T>> state_tensors() const {
    std::vector<StateTensor<T>> out;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (!state_.square_avg[i].empty()) out.push_back({i, "square_avg", &state_.square_avg[i]});
      if (!state_.momentum_buffer[i].empty()) out.push_back({i, "momentum_buffer", &state_.momentum_buffer[i]});
      if (!state_.grad_avg[i].empty()) out.push_back({i, "grad_avg", &state_.grad_avg[i]});
    }
    return out;
  }
  static std::vector<std::string> state_keys() { return {"square_avg", "momentum_buffer", "grad_avg"}; }
  void set_state_tensor(std::size_t i, const std::string& key, TensorT<T> tensor) {
    this->check_index(i);
    TensorT<T>* slot = key == "square_avg"        ? &state_.square_avg[i]
                       : key == "momentum_buffer" ? &state_.momentum_buffer[i]
                       : key == "grad_avg"        ? &state_.grad_avg[i]
                                                  : nullptr;
    if (slot == nullptr) this->no_state(key);
    this->check_state_shape(i, key, tensor, params_[i]->value.shape());
    *slot = std::move(tensor);
  }
  // Drops every state tensor: the next step starts from zeros.
  void reset_state() {
    for (auto* v : {&state_.square_avg, &state_.momentum_buffer, &state_.grad_avg})
      for (auto& t : *v) t = TensorT<T>();
  }

  // Throws std::invalid_argument for what torch.optim.RMSprop rejects.
  static void validate(const RMSpropOptions& o) {
    detail::check_nonnegative("RMSprop", "learning rate", o.lr);
    detail::check_nonnegative("RMSprop", "epsilon value", o.eps);
    detail::check_nonnegative("RMSprop", "momentum value", o.momentum);
    detail::check_nonnegative("RMSprop", "weight_decay value", o.weight_decay);
    detail::check_nonnegative("RMSprop", "alpha value", o.alpha);
  }

 private:
  RMSpropState<T> state_;
};

using RMSprop = RMSpropT<float>;
EMBER_EXTERN_TEMPLATE(class RMSpropT<float>)
EMBER_EXTERN_TEMPLATE(class RMSpropT<double>)

}  // namespace ember::optim
