#pragma once
// Linear(in_features, out_features, bias = true): y = x W^T + b, as torch.nn.Linear.
//   x: [*, in]  ->  y: [*, out]; weight [out, in]; bias [out].
// Backward: dW += dy^T x, db += sum_rows dy, dx = dy W. The input is copied for backward (into a buffer
// kept across steps), so the caller's tensor may change or die after forward.
// The arithmetic is kernels/linear.hpp's; the layer keeps the parameters, the input and the kernel's workspaces.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/linear.hpp"
#include "ember/nn/init.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class LinearT : public ModuleT<T> {
 public:
  LinearT(std::int64_t in_features, std::int64_t out_features, bool bias = true,
          Generator& gen = default_generator())
      : in_(in_features), out_(out_features), has_bias_(bias) {
    if (in_features <= 0 || out_features <= 0)
      throw std::invalid_argument("Linear: in_features and out_features must be positive, got " +
                                  std::to_string(in_features) + " and " + std::to_string(out_features));
    weight_.value = TensorT<T>({out_, in_});
    weight_.grad = TensorT<T>({out_, in_});
    if (has_bias_) {
      bias_.value = TensorT<T>({out_});
      bias_.grad = TensorT<T>({out_});
    }
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen) {
    init::default_weight_and_bias_(weight_.value, has_bias_ ? &bias_.value : nullptr, in_, gen);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    check(x);
    out_shape_ = x.shape();  // same length: reuses the vector's storage
    out_shape_.back() = out_;
    out.resize(out_shape_);
    kernels::linear_forward(out.data(), x.data(), weight_.value.data(), has_bias_ ? bias_.value.data() : nullptr,
                            x.numel() / in_, in_, out_, ws_);
    input_.assign(x);
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, out_shape_);
    if (grad_in) grad_in->resize(input_.shape());
    kernels::linear_backward(grad_in ? grad_in->data() : nullptr, weight_.requires_grad ? weight_.grad.data() : nullptr,
                             has_bias_ && bias_.requires_grad ? bias_.grad.data() : nullptr, grad_out.data(), input_.data(),
                             weight_.value.data(), input_.numel() / in_, in_, out_, ws_);
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    check(x);
    Shape s = x.shape();
    s.back() = out_;
    out.resize(s);
    // Inference keeps nothing in the module (several threads may share it): its own workspaces.
    kernels::LinearWorkspace<T> ws;
    kernels::linear_forward(out.data(), x.data(), weight_.value.data(), has_bias_ ? bias_.value.data() : nullptr,
                            x.numel() / in_, in_, out_, ws);
  }

  // Gemm (y = x W^T + b), on 2-d input [N, in] only.
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    this->require_parameters();
    const Shape& s = t.shape(x);
    if (s.size() < 2 || s.back() != in_)
      throw shape_error(this->repr() + ": expected input [N, ..., " + std::to_string(in_) + "], got " +
                        to_string(s));
    const std::string w = t.parameter("weight", weight_.value);
    const std::string b = has_bias_ ? t.parameter("bias", bias_.value) : "";
    // y = x W^T + b: Gemm on 2-d input, as torch exports it; on more dimensions, MatMul by the transposed
    // weight, then Add.
    if (s.size() == 2) {
      std::vector<std::string> in = {x, w};
      if (has_bias_) in.push_back(b);
      return t.node("Gemm", std::move(in), {{"transB", graph::Attribute::integer(1)}});
    }
    const std::string wt = t.node("Transpose", {w}, {{"perm", graph::Attribute::integers({1, 0})}}, "Transpose");
    const std::string y = t.node("MatMul", {x, wt}, {}, has_bias_ ? "MatMul" : "");
    return has_bias_ ? t.node("Add", {y, b}) : y;
  }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<LinearT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override {
    return "in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
           ", bias=" + (has_bias_ ? "True" : "False");
  }

  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &weight_);
    if (has_bias_) out.emplace_back(prefix + "bias", &bias_);
  }

  ParameterT<T>& weight() { return weight_; }
  ParameterT<T>& bias() { return bias_; }
  const ParameterT<T>& weight() const { return weight_; }
  const ParameterT<T>& bias() const { return bias_; }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }

 private:
  void check(const TensorT<T>& x) const {
    this->require_parameters();
    if (x.dim() < 1 || x.size(-1) != in_)
      throw shape_error(this->repr() + ": expected input [*, " + std::to_string(in_) + "], got " +
                        to_string(x.shape()));
  }

  std::int64_t in_, out_;
  bool has_bias_;
  ParameterT<T> weight_, bias_;
  TensorT<T> input_;
  Shape out_shape_;
  Scratch<kernels::LinearWorkspace<T>> ws_;  // kept across steps; a copy starts with its own
  bool has_forward_ = false;
};

using Linear = LinearT<float>;
EMBER_EXTERN_TEMPLATE(class LinearT<float>)
EMBER_EXTERN_TEMPLATE(class LinearT<double>)

}  // namespace ember::nn
