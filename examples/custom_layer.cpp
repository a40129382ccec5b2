// A layer written in your own program, outside ember's sources: LeakyReLU(negative_slope = 0.01), as
// torch.nn.LeakyReLU. It shows what docs/adding-a-layer.md ("Adding a layer in your own program") explains: the
// includes, the namespace, the module contract, clone(), batch_independent(), the gradient check from
// <ember/testing/gradcheck.hpp>, and the layer inside a Sequential. The test suite builds and runs it.
#include <ember/ember.hpp>
#include <ember/testing/gradcheck.hpp>

#include <iostream>
#include <memory>
#include <string>

namespace myapp {

template <typename T>
class LeakyReLUT : public ember::nn::ModuleT<T> {
 public:
  explicit LeakyReLUT(double negative_slope = 0.01) : slope_(negative_slope) {}

  void forward_into(const ember::TensorT<T>& x, ember::TensorT<T>& out) override {
    predict_into(x, out);
    input_.assign(x);  // what backward needs
    has_forward_ = true;
  }
  void backward_into(const ember::TensorT<T>& grad_out, ember::TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);                 // std::logic_error before any forward
    this->require_grad_shape(grad_out, input_.shape());  // ember::shape_error naming the layer
    if (!grad_in) return;
    grad_in->resize(input_.shape());
    for (std::int64_t i = 0; i < input_.numel(); ++i)
      (*grad_in)[i] = input_[i] > T(0) ? grad_out[i] : static_cast<T>(slope_) * grad_out[i];
  }
  void predict_into(const ember::TensorT<T>& x, ember::TensorT<T>& out) const override {
    out.resize(x.shape());
    for (std::int64_t i = 0; i < x.numel(); ++i) out[i] = x[i] > T(0) ? x[i] : static_cast<T>(slope_) * x[i];
  }

  // Copies of a Sequential holding the layer copy it through this.
  std::unique_ptr<ember::nn::ModuleT<T>> clone() const override { return std::make_unique<LeakyReLUT>(*this); }
  // Each sample on its own: a Sequential may then predict a large batch in chunks on several threads. Left out,
  // the whole Sequential predicts every batch in one piece on one chunk (slower beyond 32 images, same numbers).
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override { return "negative_slope=" + ember::nn::python_float(slope_); }

 private:
  double slope_;
  ember::TensorT<T> input_;
  bool has_forward_ = false;
};

using LeakyReLU = LeakyReLUT<float>;

}  // namespace myapp

int main() {
  using namespace ember;
  // The gradient check, in double.
  myapp::LeakyReLUT<double> layer(0.1);
  Generator gen(7);
  TensorT<double> x({3, 5});
  for (double& v : x) v = gen.normal();
  const testing::GradcheckResult r = testing::gradcheck(layer, x);
  std::cout << "gradcheck: input error " << r.input_error << (r.ok() ? " (ok)" : " (FAILED)") << "\n";

  // In a model, beside ember's layers.
  manual_seed(0);
  nn::Sequential model("Net", {{"fc1", nn::Linear(4, 8)}, {"act", myapp::LeakyReLU(0.1)}, {"fc2", nn::Linear(8, 2)}});
  std::cout << model << "\n";
  const nn::Sequential copy = model;  // deep, through clone()
  const Tensor batch = Tensor::ones({100, 4});
  const bool same = copy.predict(batch).vector() == model.predict(batch).vector();
  std::cout << "copy predicts the same: " << (same ? "yes" : "no") << "\n";
  return r.ok() && same ? 0 : 1;
}
