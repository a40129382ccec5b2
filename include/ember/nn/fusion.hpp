#pragma once
// Execution tricks a container may use, kept out of ModuleT (which only describes the model): a layer takes
// part by also deriving from one of these small interfaces, and Sequential asks for them here, in one place
// (relu_fusion_of, channel_fusion_of).
//
// Training: a ReLU followed by a layer that can read its input through one (BatchNorm in training) runs as
// that layer alone (ReluFusion). Inference: a Conv2d applies the channel maps that follow it (ReLU, Dropout,
// an eval-mode BatchNorm2d) as its GEMM stores the output (ChannelFusion, ChannelMap).
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/kernels/epilogue.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

// A map of each channel c of a [N, C, ...] activation on its own: ReLU if relu, then
// (v - center[c]) * scale[c] + shift[c] if scale is not empty (an eval-mode BatchNorm).
template <typename T>
struct ChannelMap {
  bool relu = false;
  std::vector<T> center, scale, shift;

  void clear() {
    relu = false;
    center.clear();
    scale.clear();
    shift.clear();
  }
  bool affine() const { return !scale.empty(); }
  // As the GEMM epilogue of a product whose rows are the channels.
  kernels::RowEpilogue<T> rows() const {
    if (!affine()) return {relu, nullptr, nullptr, nullptr};
    return {relu, center.data(), scale.data(), shift.data()};
  }
};

// Training fusion, as Sequential's forward and backward use it. A ReLU says is_relu; a layer that can read its
// input through one says absorbs_relu (as it is now). forward_into_relu(x, out) is forward_into_kept(relu(x),
// out), and backward_into_relu(g, gi) its backward followed by the ReLU's (gi: the gradient at the ReLU's
// input), with the same values; the ReLU's own passes over the activation are saved.
template <typename T>
class ReluFusion {
 public:
  virtual ~ReluFusion() = default;
  virtual bool is_relu() const { return false; }
  virtual bool absorbs_relu() const { return false; }
  virtual void forward_into_relu(const TensorT<T>& x, TensorT<T>& out) = 0;
  virtual void backward_into_relu(const TensorT<T>& grad_out, TensorT<T>* grad_in) = 0;
};

// Inference fusion, as Sequential's predict uses it.
template <typename T>
class ChannelFusion {
 public:
  virtual ~ChannelFusion() = default;
  // A layer that can apply a ChannelMap to its output as it writes it (Conv2d) sets `out` to the output shape
  // for an input of shape `in` and returns true; when `in` is not one it takes, it returns false and its
  // predict_into reports the error.
  virtual bool mapped_output_shape(const Shape& in, Shape& out) const {
    (void)in, (void)out;
    return false;
  }
  // predict_into, then `map` on the output: the same values as running the layers the map stands for, within
  // the rounding of a fused multiply-add. Only for layers whose mapped_output_shape returns true.
  virtual void predict_into_mapped(const TensorT<T>& x, TensorT<T>& out, const ChannelMap<T>& map) const {
    (void)x, (void)out, (void)map;
  }
  // A layer whose predict is such a map for an input of shape `in` (ReLU; BatchNorm2d; Dropout, the identity)
  // appends itself to `map` and returns true; false when it cannot (`in` not one it takes, or a ReLU after the
  // affine part, which the map cannot express).
  virtual bool append_channel_map(const Shape& in, ChannelMap<T>& map) const {
    (void)in, (void)map;
    return false;
  }
};

template <typename T>
ReluFusion<T>* relu_fusion_of(ModuleT<T>& m) {
  return dynamic_cast<ReluFusion<T>*>(&m);
}
template <typename T>
const ChannelFusion<T>* channel_fusion_of(const ModuleT<T>& m) {
  return dynamic_cast<const ChannelFusion<T>*>(&m);
}

}  // namespace ember::nn
