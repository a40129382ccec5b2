#pragma once
// AvgPool2d(kernel_size, stride = kernel_size, padding = 0), as torch.nn.AvgPool2d with its defaults
// (count_include_pad=True: padding counts as zeros in every average; ceil_mode=False), and
// AdaptiveAvgPool2d(output_size), as torch.nn.AdaptiveAvgPool2d: output_size 1 is global average pooling.
// Both take [N, C, H, W] -> [N, C, out_h, out_w]; kernels/avgpool.hpp has the windows and bins. Backward needs
// only the input's shape.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/avgpool.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/pool_window.hpp"

namespace ember::nn {

namespace detail {
// PyTorch prints the arguments as given; an int stays an int.
inline std::string one_or_pair(const Size2& s) { return s.h == s.w ? std::to_string(s.h) : s.str(); }

// The plane-by-plane loop both layers share: `per_plane(p)` runs one (image, channel) plane.
template <typename F>
void for_each_plane(std::int64_t planes, double work_per_plane, F&& per_plane) {
  parallel_for(threads_for(planes, work_per_plane), planes, per_plane);
}
}  // namespace detail

template <typename T>
class AvgPool2dT : public ModuleT<T> {
 public:
  explicit AvgPool2dT(Size2 kernel_size, std::optional<Size2> stride = std::nullopt, Size2 padding = 0)
      : kernel_(kernel_size), stride_(stride ? *stride : kernel_size), padding_(padding) {
    detail::check_pool_window("AvgPool2d", kernel_, stride_, padding_);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    predict_into(x, out);
    input_shape_ = x.shape();
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    const auto g = geometry(input_shape_);
    if (grad_out.dim() != 4 || grad_out.size(0) != input_shape_[0] || grad_out.size(1) != input_shape_[1] ||
        grad_out.size(2) != g.out_h() || grad_out.size(3) != g.out_w())
      this->require_grad_shape(grad_out, {input_shape_[0], input_shape_[1], g.out_h(), g.out_w()});  // throws
    if (!grad_in) return;
    grad_in->resize(input_shape_);
    grad_in->zero();
    const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h() * g.out_w();
    detail::for_each_plane(input_shape_[0] * input_shape_[1], static_cast<double>(in_plane), [&](std::int64_t p) {
      kernels::avgpool2d_backward(g, grad_in->data() + p * in_plane, grad_out.data() + p * out_plane);
    });
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    if (x.dim() != 4) throw shape_error(this->repr() + ": expected input [N, C, H, W], got " + to_string(x.shape()));
    const auto g = geometry(x.shape());
    if (g.height + 2 * g.pad_h < g.kernel_h || g.width + 2 * g.pad_w < g.kernel_w)
      throw shape_error(this->repr() + ": input " + to_string(x.shape()) + " is smaller than the kernel " +
                        kernel_.str());
    ensure_shape(out, {x.size(0), x.size(1), g.out_h(), g.out_w()});
    kernels::avgpool2d_forward_planes(g, out.data(), x.data(), x.size(0) * x.size(1));
  }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<AvgPool2dT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "AvgPool2d"; }
  // count_include_pad as ours (always: padding counts as zeros).
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    using A = graph::Attribute;
    return t.node("AveragePool", {x},
                  {{"kernel_shape", A::integers({kernel_.h, kernel_.w})},
                   {"strides", A::integers({stride_.h, stride_.w})},
                   {"pads", A::integers({padding_.h, padding_.w, padding_.h, padding_.w})},
                   {"count_include_pad", A::integer(1)}});
  }
  std::string extra_repr() const override {
    return "kernel_size=" + detail::one_or_pair(kernel_) + ", stride=" + detail::one_or_pair(stride_) +
           ", padding=" + detail::one_or_pair(padding_);
  }

  Size2 kernel_size() const { return kernel_; }
  Size2 stride() const { return stride_; }
  Size2 padding() const { return padding_; }
  // PyTorch's other arguments, fixed at their defaults here (for exporters).
  bool count_include_pad() const { return true; }
  bool ceil_mode() const { return false; }

 private:
  kernels::Pool2dGeometry geometry(const Shape& s) const {
    return {s[2], s[3], kernel_.h, kernel_.w, stride_.h, stride_.w, padding_.h, padding_.w};
  }

  Size2 kernel_, stride_, padding_;
  Shape input_shape_;
  bool has_forward_ = false;
};

template <typename T>
class AdaptiveAvgPool2dT : public ModuleT<T> {
 public:
  explicit AdaptiveAvgPool2dT(Size2 output_size) : out_(output_size) {
    if (out_.h <= 0 || out_.w <= 0)
      throw std::invalid_argument("AdaptiveAvgPool2d: output_size must be positive, got " + out_.str());
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    predict_into(x, out);
    input_shape_ = x.shape();
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    const Shape& s = input_shape_;
    if (grad_out.dim() != 4 || grad_out.size(0) != s[0] || grad_out.size(1) != s[1] || grad_out.size(2) != out_.h ||
        grad_out.size(3) != out_.w)
      this->require_grad_shape(grad_out, {s[0], s[1], out_.h, out_.w});  // throws
    if (!grad_in) return;
    grad_in->resize(s);
    grad_in->zero();
    const std::int64_t in_plane = s[2] * s[3], out_plane = out_.h * out_.w;
    detail::for_each_plane(s[0] * s[1], static_cast<double>(in_plane), [&](std::int64_t p) {
      kernels::adaptive_avgpool2d_backward(grad_in->data() + p * in_plane, grad_out.data() + p * out_plane, s[2],
                                           s[3], out_.h, out_.w);
    });
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    if (x.dim() != 4) throw shape_error(this->repr() + ": expected input [N, C, H, W], got " + to_string(x.shape()));
    if (x.size(2) == 0 || x.size(3) == 0)
      throw shape_error(this->repr() + ": expected a non-empty plane, got input " + to_string(x.shape()));
    ensure_shape(out, {x.size(0), x.size(1), out_.h, out_.w});
    kernels::adaptive_avgpool2d_forward_planes(out.data(), x.data(), x.size(0) * x.size(1), x.size(2), x.size(3),
                                               out_.h, out_.w);
  }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<AdaptiveAvgPool2dT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  // GlobalAveragePool for a 1x1 output; AveragePool with kernel = stride = in / out when the output size
  // divides the input's (PyTorch's bins are then those windows). Other sizes have bins of unequal widths that no
  // ONNX operator expresses.
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    const Shape& s = t.shape(x);
    if (s.size() != 4) throw shape_error(this->repr() + ": expected input [N, C, H, W], got " + to_string(s));
    if (out_.h == 1 && out_.w == 1) return t.node("GlobalAveragePool", {x});
    if (s[2] % out_.h != 0 || s[3] % out_.w != 0)
      throw std::invalid_argument(this->repr() + ": pools " + std::to_string(s[2]) + "x" + std::to_string(s[3]) +
                                  " into " + std::to_string(out_.h) + "x" + std::to_string(out_.w) + ": a graph can express adaptive average pooling only "
                                  "when the output size divides the input size (or is 1x1)");
    const std::vector<std::int64_t> k = {s[2] / out_.h, s[3] / out_.w};
    return t.node("AveragePool", {x}, {{"kernel_shape", graph::Attribute::integers(k)},
                                       {"strides", graph::Attribute::integers(k)}});
  }
  std::string extra_repr() const override { return "output_size=" + detail::one_or_pair(out_); }

  Size2 output_size() const { return out_; }

 private:
  Size2 out_;
  Shape input_shape_;
  bool has_forward_ = false;
};

using AvgPool2d = AvgPool2dT<float>;
EMBER_EXTERN_TEMPLATE(class AvgPool2dT<float>)
EMBER_EXTERN_TEMPLATE(class AvgPool2dT<double>)
using AdaptiveAvgPool2d = AdaptiveAvgPool2dT<float>;
EMBER_EXTERN_TEMPLATE(class AdaptiveAvgPool2dT<float>)
EMBER_EXTERN_TEMPLATE(class AdaptiveAvgPool2dT<double>)

}  // namespace ember::nn
