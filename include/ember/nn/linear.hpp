#pragma once
// Linear(in_features, out_features, bias = true): y = x W^T + b, as torch.nn.Linear.
//   x: [*, in]  ->  y: [*, out]; weight [out, in]; bias [out].
// Backward: dW += dy^T x, db += sum_rows dy, dx = dy W. The input is copied for backward (into a buffer
// kept across steps), so the caller's tensor may change or die after forward.
#include <cstdint>
#include <string>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
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
    compute(x, out);
    input_.assign(x);
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, out_shape(input_.shape()));
    const std::int64_t rows = input_.numel() / in_;
    auto dy = grad_out.matrix(rows, out_);
    auto x = input_.matrix(rows, in_);
    weight_.grad.matrix().noalias() += dy.transpose() * x;
    if (has_bias_) bias_.grad.vector() += dy.colwise().sum().transpose();
    if (grad_in) {
      grad_in->resize(input_.shape());
      grad_in->matrix(rows, in_).noalias() = dy * weight_.value.matrix();
    }
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override { compute(x, out); }

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
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }

 private:
  Shape out_shape(Shape s) const {
    s.back() = out_;
    return s;
  }

  void compute(const TensorT<T>& x, TensorT<T>& out) const {
    if (x.dim() < 1 || x.size(-1) != in_)
      throw shape_error(this->repr() + ": expected input [*, " + std::to_string(in_) + "], got " +
                        to_string(x.shape()));
    const std::int64_t rows = x.numel() / in_;
    out.resize(out_shape(x.shape()));
    auto y = out.matrix(rows, out_);
    y.noalias() = x.matrix(rows, in_) * weight_.value.matrix().transpose();
    if (has_bias_) y.rowwise() += bias_.value.vector().transpose();
  }

  std::int64_t in_, out_;
  bool has_bias_;
  ParameterT<T> weight_, bias_;
  TensorT<T> input_;
  bool has_forward_ = false;
};

using Linear = LinearT<float>;

}  // namespace ember::nn
