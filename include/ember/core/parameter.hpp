#pragma once
// A learnable tensor and its gradient. In core (not nn) so that optimisers, checkpoints and gradient hooks
// need no module code; nn::Parameter names the same type.
#include "ember/core/tensor.hpp"

namespace ember {

// Always of the same shape: backward adds into grad, an optimiser step reads it. requires_grad false (a frozen
// parameter, as PyTorch's): the layer's backward adds nothing into grad and every optimiser leaves the value
// as it is; checkpoints still save it.
template <typename T>
struct ParameterT {
  TensorT<T> value;
  TensorT<T> grad;
  bool requires_grad = true;
};
using Parameter = ParameterT<float>;

}  // namespace ember
