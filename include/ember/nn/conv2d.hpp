#pragma once
// Conv2d(in_channels, out_channels, kernel_size, stride = 1, padding = 0, dilation = 1, groups = 1, bias = true),
// as torch.nn.Conv2d with zero padding. [N, C_in, H, W] -> [N, C_out, out_h, out_w] with
//   out_h = (H + 2*padding - dilation*(kernel - 1) - 1) / stride + 1;
// weight [C_out, C_in/groups, kh, kw]: output channel o sees the C_in/groups input channels of its group
// o / (C_out/groups). groups == C_in is a depthwise convolution.
// The arithmetic (im2col + GEMM, parallel over the batch) is kernels/conv2d.hpp's; the layer keeps the
// parameters, what backward needs of every image (its column matrix; a depthwise layer: the image) and the
// kernel's workspaces.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/conv2d.hpp"
#include "ember/nn/init.hpp"
#include "ember/nn/fusion.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

// Conv2d's arguments with chained setters: Conv2dOptions(32, 32, 3).padding(1).groups(32).bias(false).
struct Conv2dOptions {
  Conv2dOptions(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  Conv2dOptions& stride(Size2 s) {
    stride_ = s;
    return *this;
  }
  Conv2dOptions& padding(Size2 p) {
    padding_ = p;
    return *this;
  }
  Conv2dOptions& dilation(Size2 d) {
    dilation_ = d;
    return *this;
  }
  Conv2dOptions& groups(std::int64_t g) {
    groups_ = g;
    return *this;
  }
  Conv2dOptions& bias(bool b) {
    bias_ = b;
    return *this;
  }
  std::int64_t in_channels_, out_channels_;
  Size2 kernel_size_;
  Size2 stride_ = 1;
  Size2 padding_ = 0;
  Size2 dilation_ = 1;
  std::int64_t groups_ = 1;
  bool bias_ = true;
};

template <typename T>
class Conv2dT : public ModuleT<T>, public ChannelFusion<T> {
 public:
  Conv2dT(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size, Size2 stride = 1, Size2 padding = 0,
          Size2 dilation = 1, std::int64_t groups = 1, bool bias = true, Generator& gen = default_generator())
      : Conv2dT(Conv2dOptions(in_channels, out_channels, kernel_size)
                    .stride(stride)
                    .padding(padding)
                    .dilation(dilation)
                    .groups(groups)
                    .bias(bias),
                gen) {}

  // Before 0.2.0 the sixth argument was bias; now it is dilation, as in PyTorch. Such a call stops here rather
  // than mean something else.
  template <typename B, typename... Rest, std::enable_if_t<std::is_same_v<B, bool>, int> = 0>
  Conv2dT(std::int64_t, std::int64_t, Size2, Size2, Size2, B, Rest&&...) : Conv2dT(Conv2dOptions(1, 1, 1)) {
    static_assert(!std::is_same_v<B, B>,
                  "Conv2d: the sixth argument is dilation (since 0.2.0, as PyTorch), not bias: write "
                  "Conv2d(in, out, k, stride, padding, /*dilation*/ 1, /*groups*/ 1, bias) or "
                  "Conv2dOptions(in, out, k).bias(false)");
  }

  explicit Conv2dT(const Conv2dOptions& o, Generator& gen = default_generator())
      : in_(o.in_channels_), out_(o.out_channels_), kernel_(o.kernel_size_), stride_(o.stride_),
        padding_(o.padding_), dilation_(o.dilation_), groups_(o.groups_), has_bias_(o.bias_) {
    if (in_ <= 0 || out_ <= 0 || kernel_.h <= 0 || kernel_.w <= 0 || stride_.h <= 0 || stride_.w <= 0 ||
        padding_.h < 0 || padding_.w < 0 || dilation_.h <= 0 || dilation_.w <= 0 || groups_ <= 0)
      throw std::invalid_argument("Conv2d(" + arguments() +
                                  "): channels, kernel_size, stride, dilation and groups must be positive and "
                                  "padding non-negative");
    if (in_ % groups_ != 0 || out_ % groups_ != 0)
      throw std::invalid_argument("Conv2d(" + arguments() + "): in_channels " + std::to_string(in_) +
                                  " and out_channels " + std::to_string(out_) + " must both be divisible by groups " +
                                  std::to_string(groups_));
    weight_.value = TensorT<T>({out_, in_ / groups_, kernel_.h, kernel_.w});
    weight_.grad = TensorT<T>(weight_.value.shape());
    if (has_bias_) {
      bias_.value = TensorT<T>({out_});
      bias_.grad = TensorT<T>({out_});
    }
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen) {
    // fan_in = in/groups x kernel area: what one output sees (torch.nn.init._calculate_fan_in_and_fan_out).
    init::default_weight_and_bias_(weight_.value, has_bias_ ? &bias_.value : nullptr,
                                   in_ / groups_ * kernel_.h * kernel_.w, gen);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    const auto g = geometry(x);
    input_shape_ = x.shape();
    ensure_shape(cols_, {x.size(0), kernels::conv2d_cache_per_image(g)});
    ensure_shape(out, {x.size(0), out_, g.out_h(), g.out_w()});
    kernels::conv2d_forward(out.data(), cols_.data(), x.data(), weight_.value.data(),
                            has_bias_ ? bias_.value.data() : nullptr, g, x.size(0), out_, ws_);
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    const auto g = geometry_for(input_shape_);
    const std::int64_t n = input_shape_[0], oh = g.out_h(), ow = g.out_w();
    if (grad_out.dim() != 4 || grad_out.size(0) != n || grad_out.size(1) != out_ || grad_out.size(2) != oh ||
        grad_out.size(3) != ow)
      this->require_grad_shape(grad_out, {n, out_, oh, ow});  // throws with the message
    if (grad_in) grad_in->resize(input_shape_);
    kernels::conv2d_backward(grad_in ? grad_in->data() : nullptr, weight_.requires_grad ? weight_.grad.data() : nullptr,
                             has_bias_ && bias_.requires_grad ? bias_.grad.data() : nullptr, grad_out.data(), cols_.data(),
                             weight_.value.data(), g, n, out_, ws_);
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override { predict_with(x, out, nullptr); }

  // The ReLU and eval-mode BatchNorm2d that follow (Sequential's predict), applied as the GEMM stores the
  // output: at inference they would otherwise each read and write all of it.
  bool mapped_output_shape(const Shape& in, Shape& out) const override {
    if (in.size() != 4 || in[1] != in_) return false;
    const auto g = geometry_for(in);
    if (!covers_kernel(g)) return false;
    out.assign({in[0], out_, g.out_h(), g.out_w()});
    return true;
  }
  void predict_into_mapped(const TensorT<T>& x, TensorT<T>& out, const ChannelMap<T>& map) const override {
    const kernels::RowEpilogue<T> epi = map.rows();
    predict_with(x, out, &epi);
  }

  std::string describe(graph::Tracer& t, const std::string& x) const override {
    this->require_parameters();
    std::vector<std::string> in = {x, t.parameter("weight", weight_.value)};
    if (has_bias_) in.push_back(t.parameter("bias", bias_.value));
    using A = graph::Attribute;
    return t.node("Conv", std::move(in),
                  {{"kernel_shape", A::integers({kernel_.h, kernel_.w})},
                   {"strides", A::integers({stride_.h, stride_.w})},
                   {"pads", A::integers({padding_.h, padding_.w, padding_.h, padding_.w})},
                   {"dilations", A::integers({dilation_.h, dilation_.w})},
                   {"group", A::integer(groups_)}});
  }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<Conv2dT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override { return arguments(); }

  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &weight_);
    if (has_bias_) out.emplace_back(prefix + "bias", &bias_);
  }

  ParameterT<T>& weight() { return weight_; }
  ParameterT<T>& bias() { return bias_; }
  const ParameterT<T>& weight() const { return weight_; }
  const ParameterT<T>& bias() const { return bias_; }
  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  Size2 kernel_size() const { return kernel_; }
  Size2 stride() const { return stride_; }
  Size2 padding() const { return padding_; }
  Size2 dilation() const { return dilation_; }
  std::int64_t groups() const { return groups_; }
  bool has_bias() const { return has_bias_; }
  // Everything the layer was built with: Conv2dT<U>(c.options()) builds the same layer.
  Conv2dOptions options() const {
    return Conv2dOptions(in_, out_, kernel_)
        .stride(stride_)
        .padding(padding_)
        .dilation(dilation_)
        .groups(groups_)
        .bias(has_bias_);
  }

 private:
  std::string arguments() const {
    std::string s = std::to_string(in_) + ", " + std::to_string(out_) + ", kernel_size=" + kernel_.str() +
                    ", stride=" + stride_.str();
    if (padding_.h != 0 || padding_.w != 0) s += ", padding=" + padding_.str();
    if (dilation_.h != 1 || dilation_.w != 1) s += ", dilation=" + dilation_.str();
    if (groups_ != 1) s += ", groups=" + std::to_string(groups_);
    if (!has_bias_) s += ", bias=False";
    return s;
  }

  void predict_with(const TensorT<T>& x, TensorT<T>& out, const kernels::RowEpilogue<T>* epi) const {
    const auto g = geometry(x);
    ensure_shape(out, {x.size(0), out_, g.out_h(), g.out_w()});
    // predict is const and may run on several threads at once: one workspace per calling thread, shared by
    // every layer on it and kept, so repeated predictions allocate nothing (a fresh one faulted in its pages
    // on every call, an eighth of CNN inference).
    static thread_local kernels::Conv2dWorkspace<T> ws;
    kernels::conv2d_forward(out.data(), static_cast<T*>(nullptr), x.data(), weight_.value.data(),
                            has_bias_ ? bias_.value.data() : nullptr, g, x.size(0), out_, ws, epi);
  }

  kernels::Conv2dGeometry geometry_for(const Shape& s) const {
    return {s[1],       s[2],       s[3],        kernel_.h,   kernel_.w,   stride_.h,  stride_.w,
            padding_.h, padding_.w, dilation_.h, dilation_.w, groups_};
  }

  kernels::Conv2dGeometry geometry(const TensorT<T>& x) const {
    this->require_parameters();
    if (x.dim() != 4 || x.size(1) != in_)
      throw shape_error(this->repr() + ": expected input [N, " + std::to_string(in_) + ", H, W], got " +
                        to_string(x.shape()));
    const auto g = geometry_for(x.shape());
    const Size2 span(g.span_h(), g.span_w());
    if (!covers_kernel(g))
      throw shape_error(this->repr() + ": input " + to_string(x.shape()) + " (padded " + padding_.str() +
                        ") is smaller than the kernel " + kernel_.str() +
                        (span == kernel_ ? std::string() : " (dilated: " + span.str() + ")"));
    return g;
  }
  // The padded input is at least as large as the (dilated) kernel.
  static bool covers_kernel(const kernels::Conv2dGeometry& g) {
    return g.height + 2 * g.pad_h >= g.span_h() && g.width + 2 * g.pad_w >= g.span_w();
  }

  std::int64_t in_, out_;
  Size2 kernel_, stride_, padding_, dilation_;
  std::int64_t groups_;
  bool has_bias_;
  ParameterT<T> weight_, bias_;
  // Kept across steps so a warmed-up training step allocates nothing.
  TensorT<T> cols_;
  Scratch<kernels::Conv2dWorkspace<T>> ws_;  // kept across steps; a copy starts with its own
  Shape input_shape_;
  bool has_forward_ = false;
};

using Conv2d = Conv2dT<float>;
EMBER_EXTERN_TEMPLATE(class Conv2dT<float>)
EMBER_EXTERN_TEMPLATE(class Conv2dT<double>)

}  // namespace ember::nn
