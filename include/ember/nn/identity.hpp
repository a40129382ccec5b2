#pragma once
// Identity(), as torch.nn.Identity: the output is the input, the input gradient the output gradient. A
// placeholder where a layer is optional (a Residual's shortcut, a head to switch off).
#include <memory>
#include <string>

#include "ember/core/compiled.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class IdentityT : public ModuleT<T> {
 public:
  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    out.assign(x);
    shape_ = x.shape();
    has_forward_ = true;
  }
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, shape_);
    if (grad_in) grad_in->assign(grad_out);
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override { out.assign(x); }
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<IdentityT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Identity"; }
  std::string describe(graph::Tracer& t, const std::string& x) const override { return t.node("Identity", {x}); }

 private:
  Shape shape_;
  bool has_forward_ = false;
};

using Identity = IdentityT<float>;
EMBER_EXTERN_TEMPLATE(class IdentityT<float>)
EMBER_EXTERN_TEMPLATE(class IdentityT<double>)

}  // namespace ember::nn
