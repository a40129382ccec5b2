#pragma once
// Flatten(start_dim = 1, end_dim = -1), as torch.nn.Flatten: [N, C, H, W] -> [N, C*H*W].
#include <algorithm>
#include <memory>
#include <string>

#include "ember/core/compiled.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class FlattenT : public ModuleT<T> {
 public:
  explicit FlattenT(std::int64_t start_dim = 1, std::int64_t end_dim = -1) : start_(start_dim), end_(end_dim) {}

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    flat_shape(x.shape(), flat_shape_);
    out.resize(flat_shape_);
    std::copy(x.begin(), x.end(), out.begin());
    input_shape_ = x.shape();
    has_forward_ = true;
  }
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, flat_shape_);
    if (!grad_in) return;
    // resize + copy rather than assign + reshape_: the shape vectors keep their storage across steps.
    grad_in->resize(input_shape_);
    std::copy(grad_out.begin(), grad_out.end(), grad_in->begin());
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    Shape s;
    flat_shape(x.shape(), s);
    out.resize(s);
    std::copy(x.begin(), x.end(), out.begin());
  }
  // Keeps the batch dimension only when flattening starts after it.
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<FlattenT>(*this); }
  bool batch_independent() const override { return start_ >= 1; }
  std::string type_name() const override { return "Flatten"; }
  // Flatten from dim 1 to the last is ONNX's Flatten(axis=1); other ranges are not traced yet.
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    const Shape& in = t.shape(x);
    const auto d = static_cast<std::int64_t>(in.size());
    if ((start_ < 0 ? start_ + d : start_) == 0)
      throw shape_error(this->repr() + ": folds the batch into the features: a graph keeps dimension 0 as "
                                       "the batch (ONNX export makes it dynamic)");
    if (start_ == 1 && (end_ == -1 || end_ == d - 1))
      return t.node("Flatten", {x}, {{"axis", graph::Attribute::integer(1)}});
    // Any other range: a Reshape to the known sizes, 0 (copy the input's) for the batch.
    Shape out;
    flat_shape(in, out);
    out[0] = 0;
    return t.node("Reshape", {x}, {{"shape", graph::Attribute::integers(std::vector<std::int64_t>(out.begin(), out.end()))}});
  }
  std::string extra_repr() const override {
    return "start_dim=" + std::to_string(start_) + ", end_dim=" + std::to_string(end_);
  }

  std::int64_t start_dim() const { return start_; }
  std::int64_t end_dim() const { return end_; }

 private:
  // Writes into `out` (clear + push_back: no allocation once its capacity suffices).
  void flat_shape(const Shape& in, Shape& out) const {
    const auto d = static_cast<std::int64_t>(in.size());
    const std::int64_t s = start_ < 0 ? start_ + d : start_, e = end_ < 0 ? end_ + d : end_;
    if (s < 0 || e >= d || s > e)
      throw shape_error(this->repr() + ": cannot flatten input " + to_string(in));
    out.clear();
    out.insert(out.end(), in.begin(), in.begin() + s);
    std::int64_t prod = 1;
    for (std::int64_t i = s; i <= e; ++i) prod *= in[static_cast<std::size_t>(i)];
    out.push_back(prod);
    out.insert(out.end(), in.begin() + e + 1, in.end());
  }

  std::int64_t start_, end_;
  Shape input_shape_, flat_shape_;
  bool has_forward_ = false;
};

using Flatten = FlattenT<float>;
EMBER_EXTERN_TEMPLATE(class FlattenT<float>)
EMBER_EXTERN_TEMPLATE(class FlattenT<double>)

}  // namespace ember::nn
