#pragma once
// Adam and AdamW, as torch.optim.Adam / torch.optim.AdamW of PyTorch 1.13 (single-tensor path, maximize=False),
// per element, with t the parameter's step count after increment:
//
//   Adam:  g = g + weight_decay * p                       (L2 on the gradient)
//   AdamW: p = p * (1 - lr * weight_decay)                (decoupled, with the current lr, before the moments)
//   m = beta1 * m + (1 - beta1) * g                       ("exp_avg")
//   v = beta2 * v + (1 - beta2) * g * g                   ("exp_avg_sq")
//   amsgrad: vmax = max(vmax, v); v' = vmax               ("max_exp_avg_sq", the uncorrected second moment)
//   denom = sqrt(v') / sqrt(1 - beta2^t) + eps
//   p = p - lr / (1 - beta1^t) * m / denom
//
// The bias corrections are computed in double, as Python does. State per parameter, created on its first step
// (later steps allocate nothing): exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad only) and "step", a 0-d tensor
// holding the count, as PyTorch 1.13's state['step'] (so checkpoints carry it; exact in float up to 2^24 steps).
// The checkpoint interface is the one optim/sgd.hpp describes.
#include <algorithm>
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

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2: added to the gradient
  bool amsgrad = false;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // decoupled: the weight shrinks by lr * weight_decay each step
  bool amsgrad = false;
};

template <typename T>
struct AdamState {
  std::vector<TensorT<T>> exp_avg, exp_avg_sq, max_exp_avg_sq;
  std::vector<TensorT<T>> step;  // 0-d; empty: the parameter has not been stepped yet
};

namespace detail {

// Adam (Decoupled = false, AdamOptions) and AdamW (Decoupled = true, AdamWOptions): one rule, two options types.
template <typename T, typename Options, bool Decoupled>
class BasicAdam : public ParamGroups<T, Options> {
  using Base = ParamGroups<T, Options>;
  using Base::params_;

 public:
  BasicAdam(std::vector<ParameterT<T>*> params, Options options) : BasicAdam(one_group(std::move(params), options)) {}
  // Parameter groups, each with its own options (e.g. no weight decay for biases: optim/param_groups.hpp).
  explicit BasicAdam(std::vector<ParamGroupT<T, Options>> groups)
      : Base(Decoupled ? "AdamW" : "Adam", std::move(groups), &BasicAdam::validate) {
    const std::size_t n = params_.size();
    for (auto* v : {&state_.exp_avg, &state_.exp_avg_sq, &state_.max_exp_avg_sq, &state_.step}) v->resize(n);
  }

  void step() {
    for (std::size_t g = 0; g < this->num_groups(); ++g) step_group(g);
  }

  // For OneCycleLR's momentum cycling (PyTorch sets param_group['betas'][0]); beta1() is the first group's.
  double beta1() const noexcept { return this->options().beta1; }
  double beta1(std::size_t g) const { return this->options(g).beta1; }
  void set_beta1(double beta1) {
    for (std::size_t g = 0; g < this->num_groups(); ++g) set_beta1(g, beta1);
  }
  void set_beta1(std::size_t g, double beta1) { this->set_option(g, &Options::beta1, beta1); }

 private:
  void step_group(std::size_t group) {
    const Options& o = this->options(group);
    const T lr = static_cast<T>(o.lr);
    const T beta1 = static_cast<T>(o.beta1), beta2 = static_cast<T>(o.beta2);
    const T one_minus_beta1 = static_cast<T>(1.0 - o.beta1), one_minus_beta2 = static_cast<T>(1.0 - o.beta2);
    const T eps = static_cast<T>(o.eps), wd = static_cast<T>(o.weight_decay);
    const T shrink = static_cast<T>(1.0 - o.lr * o.weight_decay);
    for (std::size_t i = this->group_begin(group); i < this->group_end(group); ++i) {
      if (!params_[i]->requires_grad) continue;  // frozen: no step, no state
      this->check_grad(i);
      ParameterT<T>& p = *params_[i];
      if (state_.step[i].empty()) init_state(i, o.amsgrad);
      if (o.amsgrad) Base::ensure_zeros(state_.max_exp_avg_sq[i], p.value.shape());  // amsgrad turned on later
      T& step_t = state_.step[i][0];
      step_t += T(1);
      const double t = static_cast<double>(step_t);
      const double bias_correction1 = 1.0 - std::pow(o.beta1, t);
      const T step_size = static_cast<T>(o.lr / bias_correction1);
      const T bias_correction2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(o.beta2, t)));
      T* w = p.value.data();
      const T* g = p.grad.data();
      T* m = state_.exp_avg[i].data();
      T* v = state_.exp_avg_sq[i].data();
      T* vmax = o.amsgrad ? state_.max_exp_avg_sq[i].data() : nullptr;
      const std::int64_t n = p.value.numel();
      for (std::int64_t j = 0; j < n; ++j) {
        T grad = g[j];
        if constexpr (Decoupled) {
          if (lr * wd != T(0)) w[j] *= shrink;
        } else {
          if (wd != T(0)) grad += wd * w[j];
        }
        m[j] = m[j] * beta1 + one_minus_beta1 * grad;
        v[j] = v[j] * beta2 + one_minus_beta2 * grad * grad;
        T second = v[j];
        if (vmax) {
          vmax[j] = std::max(vmax[j], v[j]);
          second = vmax[j];
        }
        const T denom = std::sqrt(second) / bias_correction2_sqrt + eps;
        w[j] += -step_size * (m[j] / denom);
      }
    }
  }

 public:
  const AdamState<T>& state() const noexcept { return state_; }

  // The checkpoint view (optim/sgd.hpp).
  std::string repr() const {
    return this->groups_repr([](const Options& o) {
      return "lr=" + python_float(o.lr) + ", betas=(" + python_float(o.beta1) + ", " + python_float(o.beta2) +
             "), eps=" + python_float(o.eps) + ", weight_decay=" + python_float(o.weight_decay) +
             ", amsgrad=" + (o.amsgrad ? "True" : "False");
    });
  }
  std::vector<StateTensor<T>> state_tensors() const {
    std::vector<StateTensor<T>> out;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      if (state_.step[i].empty()) continue;
      out.push_back({i, "step", &state_.step[i]});
      out.push_back({i, "exp_avg", &state_.exp_avg[i]});
      out.push_back({i, "exp_avg_sq", &state_.exp_avg_sq[i]});
      if (!state_.max_exp_avg_sq[i].empty()) out.push_back({i, "max_exp_avg_sq", &state_.max_exp_avg_sq[i]});
    }
    return out;
  }
  static std::vector<std::string> state_keys() { return {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}; }
  // "step" is 0-d; the moments have the parameter's shape.
  Shape state_shape(std::size_t i, const std::string& key) const {
    this->check_index(i);
    return key == "step" ? Shape{} : params_[i]->value.shape();
  }
  // Restores one state tensor. A parameter whose "step" is restored without its moments gets zero moments.
  void set_state_tensor(std::size_t i, const std::string& key, TensorT<T> tensor) {
    this->check_index(i);
    TensorT<T>* slot = key == "step"             ? &state_.step[i]
                       : key == "exp_avg"        ? &state_.exp_avg[i]
                       : key == "exp_avg_sq"     ? &state_.exp_avg_sq[i]
                       : key == "max_exp_avg_sq" ? &state_.max_exp_avg_sq[i]
                                                 : nullptr;
    if (slot == nullptr) this->no_state(key);
    this->check_state_shape(i, key, tensor, state_shape(i, key));
    *slot = std::move(tensor);
    if (key != "max_exp_avg_sq" && state_.step[i].empty()) init_state(i, false);
  }
  // Back to "never stepped": the next step starts from zero moments and t = 1.
  void reset_state() {
    for (auto* v : {&state_.exp_avg, &state_.exp_avg_sq, &state_.max_exp_avg_sq, &state_.step})
      for (auto& t : *v) t = TensorT<T>();
  }

  // Throws std::invalid_argument for what torch.optim.Adam / AdamW reject.
  static void validate(const Options& o) {
    const char* name = Decoupled ? "AdamW" : "Adam";
    check_nonnegative(name, "learning rate", o.lr);
    check_nonnegative(name, "epsilon value", o.eps);
    if (!(o.beta1 >= 0.0 && o.beta1 < 1.0))
      throw std::invalid_argument(std::string(name) + ": invalid beta parameter at index 0: " + python_float(o.beta1) +
                                  " (must be in [0, 1))");
    if (!(o.beta2 >= 0.0 && o.beta2 < 1.0))
      throw std::invalid_argument(std::string(name) + ": invalid beta parameter at index 1: " + python_float(o.beta2) +
                                  " (must be in [0, 1))");
    check_nonnegative(name, "weight_decay value", o.weight_decay);
  }

 private:
  // Zero moments and step 0 for what is not there yet (first step, or a partial restore).
  void init_state(std::size_t i, bool amsgrad) {
    const Shape& shape = params_[i]->value.shape();
    if (state_.step[i].empty()) state_.step[i] = TensorT<T>(Shape{});
    Base::ensure_zeros(state_.exp_avg[i], shape);
    Base::ensure_zeros(state_.exp_avg_sq[i], shape);
    if (amsgrad) Base::ensure_zeros(state_.max_exp_avg_sq[i], shape);
  }

  AdamState<T> state_;
};

}  // namespace detail

template <typename T>
using AdamParamGroupT = ParamGroupT<T, AdamOptions>;
template <typename T>
using AdamWParamGroupT = ParamGroupT<T, AdamWOptions>;
template <typename T>
using AdamT = detail::BasicAdam<T, AdamOptions, false>;
template <typename T>
using AdamWT = detail::BasicAdam<T, AdamWOptions, true>;
using Adam = AdamT<float>;
using AdamW = AdamWT<float>;
EMBER_EXTERN_TEMPLATE(class detail::BasicAdam<float, AdamOptions, false>)
EMBER_EXTERN_TEMPLATE(class detail::BasicAdam<double, AdamOptions, false>)
EMBER_EXTERN_TEMPLATE(class detail::BasicAdam<float, AdamWOptions, true>)
EMBER_EXTERN_TEMPLATE(class detail::BasicAdam<double, AdamWOptions, true>)

}  // namespace ember::optim
