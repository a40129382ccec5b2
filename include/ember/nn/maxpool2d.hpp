#pragma once
// MaxPool2d(kernel_size, stride = kernel_size, padding = 0), as torch.nn.MaxPool2d with dilation 1 and
// ceil_mode False. [N, C, H, W] -> [N, C, out_h, out_w]. Keeps the argmax of every window for backward.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/pool.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/pool_window.hpp"

namespace ember::nn {

template <typename T>
class MaxPool2dT : public ModuleT<T> {
 public:
  explicit MaxPool2dT(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0)
      : kernel_(kernel_size), stride_(stride ? *stride : kernel_size), padding_(padding) {
    detail::check_pool_window("MaxPool2d", kernel_, stride_, padding_);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    run(x, out, &argmax_);
    input_shape_ = x.shape();
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    const auto g = geometry(input_shape_);
    const std::int64_t planes = input_shape_[0] * input_shape_[1];
    if (grad_out.dim() != 4 || grad_out.size(0) != input_shape_[0] || grad_out.size(1) != input_shape_[1] ||
        grad_out.size(2) != g.out_h() || grad_out.size(3) != g.out_w())
      this->require_grad_shape(grad_out, {input_shape_[0], input_shape_[1], g.out_h(), g.out_w()});  // throws
    if (!grad_in) return;
    grad_in->resize(input_shape_);
    const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h() * g.out_w();
    const int nt = threads_for_elements(planes, in_plane + out_plane);
    parallel_for(nt, planes, [&](std::int64_t p) {
      T* dx = grad_in->data() + p * in_plane;
      std::fill(dx, dx + in_plane, T(0));  // per plane, while it is in cache for the scatter below
      kernels::maxpool2d_backward(g, grad_out.data() + p * out_plane, argmax_.data() + p * out_plane, dx);
    });
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override { run(x, out, nullptr); }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<MaxPool2dT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    using A = graph::Attribute;
    return t.node("MaxPool", {x},
                  {{"kernel_shape", A::integers({kernel_.h, kernel_.w})},
                   {"strides", A::integers({stride_.h, stride_.w})},
                   {"pads", A::integers({padding_.h, padding_.w, padding_.h, padding_.w})}});
  }
  std::string extra_repr() const override {
    return "kernel_size=" + one_or_pair(kernel_) + ", stride=" + one_or_pair(stride_) +
           ", padding=" + one_or_pair(padding_) + ", dilation=1, ceil_mode=False";
  }

  Size2 kernel_size() const { return kernel_; }
  Size2 stride() const { return stride_; }
  Size2 padding() const { return padding_; }

 private:
  // PyTorch prints the arguments as given; an int stays an int.
  static std::string one_or_pair(const Size2& s) { return s.h == s.w ? std::to_string(s.h) : s.str(); }

  kernels::Pool2dGeometry geometry(const Shape& s) const {
    return {s[2], s[3], kernel_.h, kernel_.w, stride_.h, stride_.w, padding_.h, padding_.w};
  }

  void run(const TensorT<T>& x, TensorT<T>& out, std::vector<std::int32_t>* argmax) const {
    if (x.dim() != 4) throw shape_error(this->repr() + ": expected input [N, C, H, W], got " + to_string(x.shape()));
    const auto g = geometry(x.shape());
    if (g.height + 2 * g.pad_h < g.kernel_h || g.width + 2 * g.pad_w < g.kernel_w)
      throw shape_error(this->repr() + ": input " + to_string(x.shape()) + " is smaller than the kernel " +
                        kernel_.str());
    const std::int64_t planes = x.size(0) * x.size(1), oh = g.out_h(), ow = g.out_w();
    ensure_shape(out, {x.size(0), x.size(1), oh, ow});
    if (argmax) argmax->resize(static_cast<std::size_t>(planes * oh * ow));
    kernels::maxpool2d_forward_planes(g, x.data(), out.data(), argmax ? argmax->data() : nullptr, planes);
  }

  Size2 kernel_, stride_, padding_;
  std::vector<std::int32_t> argmax_;
  Shape input_shape_;
  bool has_forward_ = false;
};

using MaxPool2d = MaxPool2dT<float>;
EMBER_EXTERN_TEMPLATE(class MaxPool2dT<float>)
EMBER_EXTERN_TEMPLATE(class MaxPool2dT<double>)

}  // namespace ember::nn
