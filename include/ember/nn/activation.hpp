#pragma once
// ReLU() and Softmax(dim = 1), as torch.nn.ReLU and torch.nn.Softmax; LeakyReLU(negative_slope = 0.01),
// GELU(approximate = "none"), Sigmoid() and Tanh(), as their torch.nn namesakes (kernels/activation.hpp has
// the formulas). ReLU's gradient at exactly 0 is 0, as PyTorch's threshold_backward. ReLU keeps a mask,
// Softmax, Sigmoid and Tanh their output, LeakyReLU and GELU their input for backward.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/activation.hpp"
#include "ember/kernels/relu.hpp"
#include "ember/kernels/softmax.hpp"
#include "ember/nn/fusion.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class ReLUT : public ModuleT<T>, public ReluFusion<T>, public ChannelFusion<T> {
 public:
  // Keeps one byte per element (x > 0) for backward rather than a copy of the output: a quarter of the memory
  // and of the traffic.
  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    out.resize(x.shape());
    shape_ = x.shape();
    mask_.resize(static_cast<std::size_t>(x.numel()));
    const T* in = x.data();
    T* y = out.data();
    std::uint8_t* m = mask_.data();
    // NaN passes through, as torch.relu (and its gradient, as threshold_backward).
    parallel_chunks(x.numel(), [&](std::int64_t lo, std::int64_t hi) {
      kernels::relu_mask_forward(in + lo, y + lo, m + lo, hi - lo);
    });
    has_forward_ = true;
  }
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, shape_);
    if (!grad_in) return;
    grad_in->resize(shape_);
    const std::uint8_t* m = mask_.data();
    const T* g = grad_out.data();
    T* d = grad_in->data();
    parallel_chunks(grad_out.numel(), [&](std::int64_t lo, std::int64_t hi) {
      kernels::relu_mask_backward(g + lo, m + lo, d + lo, hi - lo);
    });
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    out.resize(x.shape());
    kernels::relu_forward(x.data(), out.data(), x.numel());
  }
  bool is_relu() const override { return true; }
  void forward_into_relu(const TensorT<T>&, TensorT<T>&) override { throw std::logic_error("ReLU: takes no ReLU's input"); }
  void backward_into_relu(const TensorT<T>&, TensorT<T>*) override { throw std::logic_error("ReLU: takes no ReLU's input"); }
  std::string describe(graph::Tracer& t, const std::string& x) const override { return t.node("Relu", {x}); }
  // The map applies ReLU before its affine part, so not after one.
  bool append_channel_map(const Shape& in, ChannelMap<T>& map) const override {
    (void)in;
    if (map.affine()) return false;
    map.relu = true;
    return true;
  }
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<ReLUT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "ReLU"; }

 private:
  Shape shape_;
  std::vector<std::uint8_t> mask_;
  bool has_forward_ = false;
};

template <typename T>
class SoftmaxT : public ModuleT<T> {
 public:
  explicit SoftmaxT(std::int64_t dim = 1) : dim_(dim) {
    if (dim != 1 && dim != -1)
      throw std::invalid_argument("Softmax: only dim=1 (or -1 on 2-d input) is supported, got dim=" +
                                  std::to_string(dim));
  }
  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    predict_into(x, out);
    output_.assign(out);
    has_forward_ = true;
  }
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, output_.shape());
    if (!grad_in) return;
    grad_in->resize(output_.shape());
    const auto [outer, cols, inner] = layout(output_);
    kernels::softmax_backward(output_.data(), grad_out.data(), grad_in->data(), outer, cols, inner);
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    const auto [outer, cols, inner] = layout(x);
    out.resize(x.shape());
    kernels::softmax_forward(x.data(), out.data(), outer, cols, inner);
  }
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<SoftmaxT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Softmax"; }
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    return t.node("Softmax", {x}, {{"axis", graph::Attribute::integer(1)}});
  }
  std::string extra_repr() const override { return "dim=" + std::to_string(dim_); }
  std::int64_t dim() const { return dim_; }

 private:
  struct Layout {
    std::int64_t outer, cols, inner;
  };
  Layout layout(const TensorT<T>& x) const {
    if (x.dim() < 2 || (dim_ == -1 && x.dim() != 2))
      throw shape_error(this->repr() + ": expected input [N, C, ...], got " + to_string(x.shape()));
    const std::int64_t cols = x.size(1);
    if (cols == 0) throw shape_error(this->repr() + ": softmax over an empty dimension, input " + to_string(x.shape()));
    return {x.size(0), cols, x.numel() / std::max<std::int64_t>(1, x.size(0) * cols)};
  }

  std::int64_t dim_;
  TensorT<T> output_;
  bool has_forward_ = false;
};

namespace detail {
// The common part of a pointwise layer: shapes, the saved tensor (the input or the output, as the
// derivative needs) and the checks. A layer supplies apply (the forward kernel) and derive (the backward one).
template <typename T>
class PointwiseT : public ModuleT<T> {
 public:
  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    out.resize(x.shape());
    apply_all(out.data(), x.data(), x.numel());
    saved_.assign(saves_output() ? out : x);
    has_forward_ = true;
  }
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, saved_.shape());
    if (!grad_in) return;
    grad_in->resize(saved_.shape());
    T* d = grad_in->data();
    const T *g = grad_out.data(), *s = saved_.data();
    const std::int64_t n = saved_.numel(), body = n / kPacket * kPacket;
    parallel_chunks(body, [&](std::int64_t lo, std::int64_t hi) { derive(d + lo, g + lo, s + lo, hi - lo); }, kFlops);
    if (body < n) {
      alignas(64) T tg[kPacket] = {}, ts[kPacket] = {}, td[kPacket];
      std::copy(g + body, g + n, tg);
      std::copy(s + body, s + n, ts);
      derive(td, tg, ts, kPacket);
      std::copy(td, td + (n - body), d + body);
    }
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    out.resize(x.shape());
    apply_all(out.data(), x.data(), x.numel());
  }
  bool batch_independent() const override { return true; }

 protected:
  virtual bool saves_output() const = 0;
  virtual void apply(T* out, const T* in, std::int64_t n) const = 0;
  virtual void derive(T* dinp, const T* dout, const T* saved, std::int64_t n) const = 0;

 private:
  static constexpr double kFlops = kernels::kPointwiseFlops;
  static constexpr std::int64_t kPacket = kernels::kPointwisePacket;
  void apply_all(T* out, const T* in, std::int64_t n) const {
    kernels::pointwise_forward(out, in, n, [this](T* o, const T* i, std::int64_t k) { apply(o, i, k); });
  }

  TensorT<T> saved_;
  bool has_forward_ = false;
};
}  // namespace detail

template <typename T>
class LeakyReLUT : public detail::PointwiseT<T> {
 public:
  explicit LeakyReLUT(double negative_slope = 0.01) : slope_(negative_slope) {}
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<LeakyReLUT>(*this); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    return t.node("LeakyRelu", {x}, {{"alpha", graph::Attribute::real(slope_)}});
  }
  std::string extra_repr() const override { return "negative_slope=" + python_float(slope_); }
  double negative_slope() const { return slope_; }

 protected:
  bool saves_output() const override { return false; }
  void apply(T* out, const T* in, std::int64_t n) const override {
    kernels::leaky_relu_forward(out, in, n, static_cast<T>(slope_));
  }
  void derive(T* dinp, const T* dout, const T* in, std::int64_t n) const override {
    kernels::leaky_relu_backward(dinp, dout, in, n, static_cast<T>(slope_));
  }

 private:
  double slope_;
};

template <typename T>
class GELUT : public detail::PointwiseT<T> {
 public:
  // approximate: "none" (the exact erf form, PyTorch's default) or "tanh".
  explicit GELUT(const std::string& approximate = "none") : approximate_(approximate) {
    if (approximate != "none" && approximate != "tanh")
      throw std::invalid_argument("GELU: approximate must be 'none' or 'tanh', got '" + approximate + "'");
  }
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<GELUT>(*this); }
  std::string type_name() const override { return "GELU"; }
  // ONNX's Gelu (opset 20); io::export_onnx writes it as its formula for older runtimes.
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    return t.node("Gelu", {x}, {{"approximate", graph::Attribute::text(approximate_)}});
  }
  std::string extra_repr() const override { return "approximate='" + approximate_ + "'"; }
  const std::string& approximate() const { return approximate_; }

 protected:
  bool saves_output() const override { return false; }
  void apply(T* out, const T* in, std::int64_t n) const override {
    kernels::gelu_forward(out, in, n, approximate_ == "tanh");
  }
  void derive(T* dinp, const T* dout, const T* in, std::int64_t n) const override {
    kernels::gelu_backward(dinp, dout, in, n, approximate_ == "tanh");
  }

 private:
  std::string approximate_;
};

template <typename T>
class SigmoidT : public detail::PointwiseT<T> {
 public:
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<SigmoidT>(*this); }
  std::string type_name() const override { return "Sigmoid"; }
  std::string describe(graph::Tracer& t, const std::string& x) const override { return t.node("Sigmoid", {x}); }

 protected:
  bool saves_output() const override { return true; }
  void apply(T* out, const T* in, std::int64_t n) const override { kernels::sigmoid_forward(out, in, n); }
  void derive(T* dinp, const T* dout, const T* out, std::int64_t n) const override {
    kernels::sigmoid_backward(dinp, dout, out, n);
  }
};

template <typename T>
class TanhT : public detail::PointwiseT<T> {
 public:
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<TanhT>(*this); }
  std::string type_name() const override { return "Tanh"; }
  std::string describe(graph::Tracer& t, const std::string& x) const override { return t.node("Tanh", {x}); }

 protected:
  bool saves_output() const override { return true; }
  void apply(T* out, const T* in, std::int64_t n) const override { kernels::tanh_forward(out, in, n); }
  void derive(T* dinp, const T* dout, const T* out, std::int64_t n) const override {
    kernels::tanh_backward(dinp, dout, out, n);
  }
};

using ReLU = ReLUT<float>;
EMBER_EXTERN_TEMPLATE(class ReLUT<float>)
EMBER_EXTERN_TEMPLATE(class ReLUT<double>)
using LeakyReLU = LeakyReLUT<float>;
EMBER_EXTERN_TEMPLATE(class LeakyReLUT<float>)
EMBER_EXTERN_TEMPLATE(class LeakyReLUT<double>)
using GELU = GELUT<float>;
EMBER_EXTERN_TEMPLATE(class GELUT<float>)
EMBER_EXTERN_TEMPLATE(class GELUT<double>)
using Sigmoid = SigmoidT<float>;
EMBER_EXTERN_TEMPLATE(class SigmoidT<float>)
EMBER_EXTERN_TEMPLATE(class SigmoidT<double>)
using Tanh = TanhT<float>;
EMBER_EXTERN_TEMPLATE(class TanhT<float>)
EMBER_EXTERN_TEMPLATE(class TanhT<double>)
using Softmax = SoftmaxT<float>;
EMBER_EXTERN_TEMPLATE(class SoftmaxT<float>)
EMBER_EXTERN_TEMPLATE(class SoftmaxT<double>)

}  // namespace ember::nn
