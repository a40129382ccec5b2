#pragma once
// One training step, the only one: fit runs it, and so do the training benchmarks, the side-by-side
// comparison and the allocation tests, so what they measure is what users run.
//
//   train::Step step(model, loss, optimizer);
//   float l = step(batch.input, batch.target);   // zero_grad, forward, loss, backward, [hooks], optimiser step
//
// The step owns its buffers (the converted input, the output, the output's gradient), kept across calls, so a
// warmed-up step allocates nothing. Two places for gradient work:
//   before_update(fn)     runs between backward and the optimiser step (clipping, averaging across processes);
//   gradients_ready(fn)   runs during backward as each child of the model has its gradients (in backward
//                         order, from the last child), so communication can start while backward goes on.
//                         Containers (Sequential) report their children; a model that is a single layer
//                         reports itself once its backward is done.
// Model: an nn::ModuleT<T> (or any type with forward_into/backward_into/Scalar). Loss: `T forward(output,
// target)` and `backward_into(grad)`. Optimizer: `zero_grad()` and `step()`. The input may be another scalar
// type (float batches for a double model); it is converted into a kept buffer.
#include <algorithm>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"

namespace ember::train {

namespace detail {

// The batch's input as the model's tensor type: itself when the types agree, else converted into `buffer`.
template <typename T, typename U>
const TensorT<T>& as_model_input(const TensorT<U>& input, TensorT<T>& buffer) {
  if constexpr (std::is_same<T, U>::value) {
    (void)buffer;
    return input;
  } else {
    buffer.resize(input.shape());
    std::transform(input.begin(), input.end(), buffer.begin(), [](U v) { return static_cast<T>(v); });
    return buffer;
  }
}

template <class Optimizer, class = void>
struct has_params : std::false_type {};
template <class Optimizer>
struct has_params<Optimizer, std::void_t<decltype(std::declval<const Optimizer&>().params())>> : std::true_type {};

// An optimiser on tensors the model does not read (built on a layer before it was copied into a Sequential,
// or on a copy of the model) would train nothing without a word: fit refuses it (std::invalid_argument).
template <class Model, class Optimizer>
void check_optimizer_params(Model& model, const Optimizer& opt) {
  if constexpr (has_params<Optimizer>::value) {
    const auto mine = model.parameters();
    const auto& theirs = opt.params();
    std::size_t foreign = 0, first = 0;
    for (std::size_t i = theirs.size(); i-- > 0;)
      if (std::find(mine.begin(), mine.end(), theirs[i]) == mine.end()) ++foreign, first = i;
    if (foreign == 0) return;
    throw std::invalid_argument(
        "fit: " + std::to_string(foreign) + " of the optimiser's " + std::to_string(theirs.size()) +
        " parameters (the first: parameter " + std::to_string(first) + ", of shape " +
        to_string(theirs[first]->value.shape()) + ") are not parameters of the model: the "
        "optimiser was built on parameters that are not this model's (was it built on a layer before it "
        "was copied into the Sequential, or on a copy of the model?); build it on model.parameters()");
  }
}

template <class Optimizer, class = void>
struct has_step_and_zero_grad : std::false_type {};
template <class Optimizer>
struct has_step_and_zero_grad<Optimizer, std::void_t<decltype(std::declval<Optimizer&>().step_and_zero_grad())>>
    : std::true_type {};
}  // namespace detail

template <class Model, class Loss, class Optimizer>
class Step {
 public:
  using T = typename Model::Scalar;
  using GradientsReady = typename nn::ModuleT<T>::GradientsReadyHook;

  Step(Model& model, Loss& loss, Optimizer& optimizer) : model_(model), loss_(loss), optimizer_(optimizer) {}
  Step(const Step&) = delete;
  Step& operator=(const Step&) = delete;
  ~Step() {
    if (listener_) model_.remove_gradients_ready_listener(listener_);
  }

  // Runs one step on (input, target); returns the batch's loss (before the update). A loss that is not finite
  // is returned as it is and the update still runs: the caller decides (fit stops with training_error).
  template <class U, class Target>
  T operator()(const TensorT<U>& input, const Target& target) {
    const TensorT<T>& x = detail::as_model_input(input, input_buffer_);
    if (!grads_zeroed_) optimizer_.zero_grad();
    grads_zeroed_ = false;
    model_.forward_into(x, output_);
    const T l = loss_.forward(output_, target);
    loss_.backward_into(grad_);
    model_.backward_into(grad_, nullptr);
    if (gradients_ready_ && !model_.reports_gradients_ready()) gradients_ready_("", model_);
    if (before_update_) before_update_();
    if constexpr (detail::has_step_and_zero_grad<Optimizer>::value) {
      if (fuse_zero_grad_) {
        optimizer_.step_and_zero_grad();
        grads_zeroed_ = true;
        return l;
      }
    }
    optimizer_.step();
    return l;
  }

  // Zero the gradients in the optimiser's pass (SGD's step_and_zero_grad) instead of in a pass of their own
  // at the start of the next step: one pass over every gradient less. Off by default, as in PyTorch: when it
  // is on, the gradients read after a step are zeros, and nothing may add to them between steps. An
  // optimiser without step_and_zero_grad ignores it.
  void fuse_zero_grad(bool on) {
    fuse_zero_grad_ = on;
    if (!on) grads_zeroed_ = false;
  }

  void before_update(std::function<void()> fn) { before_update_ = std::move(fn); }
  // Replaces this step's earlier function; other listeners of the model (a GradientReducer's) stay.
  void gradients_ready(GradientsReady fn) {
    if (listener_) model_.remove_gradients_ready_listener(listener_);
    listener_ = 0;
    gradients_ready_ = fn;
    if (fn && model_.reports_gradients_ready()) listener_ = model_.add_gradients_ready_listener(std::move(fn));
  }

  // The model's output of the last step (logits for a classifier).
  const TensorT<T>& output() const noexcept { return output_; }
  Model& model() noexcept { return model_; }
  Loss& loss() noexcept { return loss_; }
  Optimizer& optimizer() noexcept { return optimizer_; }

 private:
  Model& model_;
  Loss& loss_;
  Optimizer& optimizer_;
  TensorT<T> input_buffer_, output_, grad_;
  std::function<void()> before_update_;
  GradientsReady gradients_ready_;
  std::size_t listener_ = 0;  // non-zero: the model calls gradients_ready_ itself, child by child
  bool fuse_zero_grad_ = false;
  bool grads_zeroed_ = false;  // the last step's update zeroed the gradients
};

}  // namespace ember::train
