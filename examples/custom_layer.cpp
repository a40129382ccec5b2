// A layer written in your own program, outside ember's sources: LeakyReLU(negative_slope = 0.01), as
// torch.nn.LeakyReLU. It shows what docs/adding-a-layer.md ("Adding a layer in your own program") explains: the
// includes, the namespace, the module contract, clone(), batch_independent(), describe() (the layer as a graph
// node: ONNX export and the summary's shapes come from it), the gradient check from
// <ember/testing/gradcheck.hpp>, and the layer inside a Sequential, printed in nn::summary and exported to
// ONNX. The test suite builds and runs it; with `--onnx DIR` it also writes DIR/custom_layer.onnx with a batch
// and ember's output of it, which tests/onnx_graph_check.py runs through OpenCV's dnn module.
#include <ember/ember.hpp>
#include <ember/graph/tracer.hpp>
#include <ember/io/onnx.hpp>
#include <ember/nn/summary.hpp>
#include <ember/testing/gradcheck.hpp>

#include <fstream>
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
  // The layer as ONNX's LeakyRelu node (eval-mode semantics): graph::trace, io::export_onnx and nn::summary
  // read it. Left out, export throws naming the layer and the summary prints its row without an output shape.
  std::string describe(ember::graph::Tracer& t, const std::string& x) const override {
    return t.node("LeakyRelu", {x}, {{"alpha", ember::graph::Attribute::real(slope_)}});
  }

 private:
  double slope_;
  ember::TensorT<T> input_;
  bool has_forward_ = false;
};

using LeakyReLU = LeakyReLUT<float>;

}  // namespace myapp

namespace {

// Raw float32, as tests/onnx_graph_check.py reads it.
void write_raw(const std::string& path, const ember::Tensor& t) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.numel() * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
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

  // The summary: the layer's row with its output shape, traced through describe.
  std::cout << nn::summary(model, {1, 4});

  // ONNX: the layer is a LeakyRelu node of the file.
  const format::OnnxModel onnx = io::to_onnx(model, {1, 4});
  std::string ops;
  for (const auto& n : onnx.graph.nodes) ops += (ops.empty() ? "" : " ") + n.op_type + "(" + n.name + ")";
  std::cout << "onnx nodes: " << ops << "\n";
  if (argc == 3 && std::string(argv[1]) == "--onnx") {
    const std::string dir = argv[2];
    io::export_onnx(model, {1, 4}, dir + "/custom_layer.onnx");
    Tensor input({5, 4});
    for (float& v : input) v = static_cast<float>(gen.normal());
    write_raw(dir + "/custom_layer.input", input);
    write_raw(dir + "/custom_layer.output", model.predict(input));
    std::ofstream(dir + "/custom_layer.json") << R"({"input": [5, 4], "output": [5, 2]})";
    std::cout << "wrote " << dir << "/custom_layer.onnx\n";
  }
  return r.ok() && same ? 0 : 1;
}
