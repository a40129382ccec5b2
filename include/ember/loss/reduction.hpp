#pragma once
// What the losses share: PyTorch's `reduction` argument and the checks of float ("value") targets.
//
//   Reduction::mean  the loss is the mean over the batch (elements for BCE/MSE; CrossEntropyLoss divides by
//                    the summed class weights of the counted targets)
//   Reduction::sum   the sum
//   Reduction::none  losses() holds one loss per sample (CrossEntropyLoss) or per element (BCE, MSE), as
//                    PyTorch returns them; forward() returns their sum (a scalar for fit's log) and
//                    backward_into(grad, upstream) takes the gradient of each of them, as PyTorch's backward
//                    of the unreduced tensor does (backward_into(grad) is that with ones: the sum's gradient).
//
// Class targets are std::vector<std::int64_t> (one index per row); value targets (BCEWithLogitsLoss,
// MSELoss) are a TensorT<U> of the input's shape, any scalar type U (a double model trains on float targets).
#include <cstdint>
#include <string>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"

namespace ember::loss {

enum class Reduction { mean, sum, none };  // mean first: a value-initialised Reduction{} is the default

inline const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

namespace detail {

// A value target must have exactly the input's shape (no broadcasting, so a [N] target for [N, 1] logits is
// an error rather than an N x N loss).
template <typename T, typename U>
void check_value_target(const TensorT<T>& input, const TensorT<U>& target, const char* who) {
  if (input.numel() == 0) throw shape_error(std::string(who) + ": empty input " + to_string(input.shape()));
  if (target.shape() != input.shape())
    throw shape_error(std::string(who) + ": expected a target of the input's shape " + to_string(input.shape()) +
                      ", got " + to_string(target.shape()));
}

// The upstream gradient of Reduction::none must have the shape of losses().
template <typename T>
void check_upstream(const TensorT<T>& upstream, const Shape& expected, const char* who) {
  if (upstream.shape() != expected)
    throw shape_error(std::string(who) + ": expected an upstream gradient of shape " + to_string(expected) +
                      " (the shape of losses()), got " + to_string(upstream.shape()));
}

}  // namespace detail
}  // namespace ember::loss
