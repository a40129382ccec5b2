#pragma once
// Stochastic gradient descent, as torch.optim.SGD (PyTorch 1.12/1.13, maximize=False by default):
//
//   d = g + weight_decay * p
//   if momentum != 0:  buf = d on a parameter's first step, else buf = momentum * buf + (1 - dampening) * d
//                      d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
//
// The update runs element by element in place, so step() allocates nothing after the first step (which
// creates the momentum buffers). The momentum buffers are the optimiser's whole state. An empty buffer means
// "not created yet", as PyTorch's None.
//
// Checkpoints (io/checkpoint.hpp) see an optimiser through five members, which any optimiser provides:
// params(), repr() (PyTorch's printout), state_tensors() (each existing state tensor with its parameter
// index and key), state_keys() (the keys it can restore) and set_state_tensor(i, key, tensor), plus
// reset_state(); optionally state_shape(i, key) when a state tensor's shape is not its parameter's (Adam's
// "step"). io::save_checkpoint writes state as "optimizer.<key>.<parameter name>". Schedules
// (optim/scheduler.hpp) use num_groups(), lr(g), set_lr(g, x), initial_lr(g), set_initial_lr(g, x) and
// momentum(g)/set_momentum(g, x) (optim/common.hpp).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/parameter.hpp"
#include "ember/core/print.hpp"
#include "ember/core/tensor.hpp"
#include "ember/optim/common.hpp"

namespace ember::optim {

struct SGDOptions {
  double lr = 1e-3;  // torch.optim.SGD's default since 2.0 (required in 1.x)
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;  // ascend instead of descend: g is negated first
};

// The momentum buffer of each parameter, in the order of the parameter list.
template <typename T>
struct SGDState {
  std::vector<TensorT<T>> momentum_buffers;  // empty tensor: no buffer yet (first step seeds it)
  std::vector<bool> has_momentum_buffer;
};

template <typename T>
using SGDParamGroupT = ParamGroupT<T, SGDOptions>;

template <typename T>
class SGDT : public detail::ParamGroups<T, SGDOptions> {
  using Base = detail::ParamGroups<T, SGDOptions>;
  using Base::check_index;
  using Base::params_;

 public:
  SGDT(std::vector<ParameterT<T>*> params, SGDOptions options) : SGDT(detail::one_group(std::move(params), options)) {}
  // Parameter groups, each with its own options (PyTorch's SGD([{'params': ..., 'lr': ...}, ...])).
  explicit SGDT(std::vector<SGDParamGroupT<T>> groups) : Base("SGD", std::move(groups), &SGDT::validate) {
    state_.momentum_buffers.resize(params_.size());
    state_.has_momentum_buffer.assign(params_.size(), false);
  }

  // One update of every parameter from its current .grad.
  void step() {
    for (std::size_t g = 0; g < this->num_groups(); ++g) step_group(g, false);
  }
  // step() and zero_grad() in one pass over the gradients (train::Step's fuse_zero_grad option): saves a
  // pass over every gradient, but the gradients are no longer readable after the step.
  void step_and_zero_grad() {
    for (std::size_t g = 0; g < this->num_groups(); ++g) step_group(g, true);
  }

  // For learning-rate schedules, set_lr(x) / set_lr(g, x) (optim/common.hpp); the other options are fixed at
  // construction, as in PyTorch's param_groups, except the momentum, which OneCycleLR cycles
  // (param_group['momentum']): momentum() is the first group's.
  double momentum() const noexcept { return this->options().momentum; }
  double momentum(std::size_t g) const { return this->options(g).momentum; }
  void set_momentum(double momentum) {
    for (std::size_t g = 0; g < this->num_groups(); ++g) set_momentum(g, momentum);
  }
  void set_momentum(std::size_t g, double momentum) { this->set_option(g, &SGDOptions::momentum, momentum); }

 private:
  void step_group(std::size_t g, bool zero_grad) {
    const SGDOptions& o = this->options(g);
    const Coeffs c{static_cast<T>(o.lr), static_cast<T>(o.momentum), static_cast<T>(1.0 - o.dampening),
                   static_cast<T>(o.weight_decay), o.maximize ? T(-1) : T(1)};
    const bool use_momentum = o.momentum != 0.0;
    for (std::size_t i = this->group_begin(g); i < this->group_end(g); ++i) {
      if (!params_[i]->requires_grad) continue;  // frozen: left as it is, as PyTorch skips a None grad
      this->check_grad(i);
      ParameterT<T>& p = *params_[i];
      const bool first = use_momentum && !state_.has_momentum_buffer[i];
      if (first) state_.momentum_buffers[i].resize(p.value.shape());
      Slices s{p.value.data(), p.grad.data(), use_momentum ? state_.momentum_buffers[i].data() : nullptr};
      const int mode = !use_momentum ? 0 : first ? 1 : 2;
      const bool wd = c.wd != T(0);
      // The branches chosen once per parameter, so the loop over its elements has none and vectorises.
      auto run = [&](std::int64_t lo, std::int64_t hi) {
        if (mode == 0) (wd ? update<true, 0, false> : update<false, 0, false>)(s, c, lo, hi);
        else if (mode == 1) (wd ? (o.nesterov ? update<true, 1, true> : update<true, 1, false>)
                                : (o.nesterov ? update<false, 1, true> : update<false, 1, false>))(s, c, lo, hi);
        else (wd ? (o.nesterov ? update<true, 2, true> : update<true, 2, false>)
                 : (o.nesterov ? update<false, 2, true> : update<false, 2, false>))(s, c, lo, hi);
        if (zero_grad) std::fill(s.g + lo, s.g + hi, T(0));  // while the chunk is in cache
      };
      parallel_chunks(p.value.numel(), run);
      if (use_momentum) state_.has_momentum_buffer[i] = true;
    }
  }

  struct Coeffs {
    T lr, momentum, damp, wd, sign;
  };
  struct Slices {
    T* w;
    T* g;
    T* buf;
  };
  // Elements [lo, hi) of one parameter. kMode: 0 no momentum, 1 the first step (seeds the buffer), 2 later.
  template <bool kWd, int kMode, bool kNesterov>
  static void update(const Slices& s, const Coeffs& c, std::int64_t lo, std::int64_t hi) {
    T* __restrict w = s.w;
    const T* __restrict g = s.g;
    T* __restrict buf = s.buf;
    for (std::int64_t j = lo; j < hi; ++j) {
      T d = c.sign * g[j];
      if constexpr (kWd) d += c.wd * w[j];
      if constexpr (kMode == 0) {
        w[j] -= c.lr * d;
      } else {
        if constexpr (kMode == 1) buf[j] = d;
        else buf[j] = c.momentum * buf[j] + c.damp * d;
        if constexpr (kNesterov) d = d + c.momentum * buf[j];
        else d = buf[j];
        w[j] -= c.lr * d;
      }
    }
  }

 public:
  const SGDState<T>& state() const noexcept { return state_; }

  // Restores the momentum buffer of parameter i (checks the shape).
  void set_momentum_buffer(std::size_t i, TensorT<T> buffer) {
    check_index(i);
    if (buffer.shape() != params_[i]->value.shape())
      throw shape_error("SGD: momentum buffer for parameter " + std::to_string(i) + " must have shape " +
                        to_string(params_[i]->value.shape()) + ", got " + to_string(buffer.shape()));
    state_.momentum_buffers[i] = std::move(buffer);
    state_.has_momentum_buffer[i] = true;
  }
  // Back to "no buffer yet": the next step seeds it from the gradient.
  void clear_momentum_buffer(std::size_t i) {
    check_index(i);
    state_.momentum_buffers[i] = TensorT<T>();
    state_.has_momentum_buffer[i] = false;
  }
  // The checkpoint view (see the top of this file).
  std::string repr() const {
    return this->groups_repr([](const SGDOptions& o) {
      return "lr=" + python_float(o.lr) + ", momentum=" + python_float(o.momentum) +
             ", dampening=" + python_float(o.dampening) + ", weight_decay=" + python_float(o.weight_decay) +
             ", nesterov=" + (o.nesterov ? "True" : "False") + ", maximize=" + (o.maximize ? "True" : "False");
    });
  }
  std::vector<StateTensor<T>> state_tensors() const {
    std::vector<StateTensor<T>> out;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (state_.has_momentum_buffer[i]) out.push_back({i, "momentum_buffer", &state_.momentum_buffers[i]});
    return out;
  }
  static std::vector<std::string> state_keys() { return {"momentum_buffer"}; }
  void set_state_tensor(std::size_t i, const std::string& key, TensorT<T> tensor) {
    if (key != "momentum_buffer") throw std::invalid_argument("SGD: no state named '" + key + "'");
    set_momentum_buffer(i, std::move(tensor));
  }

  // Drops every momentum buffer: the next step seeds them again.
  void reset_state() {
    for (std::size_t i = 0; i < params_.size(); ++i) clear_momentum_buffer(i);
  }

  // Throws std::invalid_argument for what torch.optim.SGD rejects.
  static void validate(const SGDOptions& o) {
    if (!(o.lr >= 0.0)) throw std::invalid_argument("SGD: invalid learning rate: " + std::to_string(o.lr));
    if (!(o.momentum >= 0.0)) throw std::invalid_argument("SGD: invalid momentum value: " + std::to_string(o.momentum));
    if (!(o.weight_decay >= 0.0))
      throw std::invalid_argument("SGD: invalid weight_decay value: " + std::to_string(o.weight_decay));
    if (o.dampening != o.dampening) throw std::invalid_argument("SGD: invalid dampening value: nan");
    if (o.nesterov && (o.momentum <= 0.0 || o.dampening != 0.0))
      throw std::invalid_argument("SGD: Nesterov momentum requires a momentum and zero dampening (got momentum=" +
                                  std::to_string(o.momentum) + ", dampening=" + std::to_string(o.dampening) + ")");
  }

 private:
  SGDState<T> state_;
};

using SGD = SGDT<float>;
EMBER_EXTERN_TEMPLATE(class SGDT<float>)
EMBER_EXTERN_TEMPLATE(class SGDT<double>)

}  // namespace ember::optim
