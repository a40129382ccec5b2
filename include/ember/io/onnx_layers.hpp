#pragma once
// Each layer's ONNX mapping, one small function per layer type (opset 13 operators, eval-mode semantics):
// given the module, it returns the name of the value that holds its output, or nothing when the module is not
// its type. io/onnx.hpp tries them in turn for every leaf module; containers (Sequential) are walked there.
//
// Shapes are known at export except the batch: the context carries the layer's input and output shapes for a
// sample batch, so a mapping can choose (Gemm for 2-d input, MatMul otherwise) or compute constants
// (Reshape).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/io/onnx_builder.hpp"
#include "ember/nn/nn.hpp"

namespace ember::io::onnx_layers {

using format::OnnxAttribute;

template <typename T>
struct Context {
  OnnxGraphBuilder<T>& graph;
  const std::string& name;    // for its nodes: the module's dotted name ("conv1", "block.0"), never empty
  const std::string& module;  // the dotted name itself: "" for the model's root
  const std::string& input;   // the value the layer reads
  const Shape& in_shape;      // input and output shapes of the sample batch
  const Shape& out_shape;
  // A parameter's or buffer's name, as named_parameters() gives it ("conv1.weight"; "weight" at the root).
  std::string param(const std::string& leaf) const { return module.empty() ? leaf : module + "." + leaf; }
};

template <typename T>
using Mapping = std::optional<std::string> (*)(const nn::ModuleT<T>&, Context<T>&);

inline std::vector<std::int64_t> pair(Size2 s) {
  return {s.h, s.w};
}
// ONNX pads list the starts of every spatial axis, then the ends: [top, left, bottom, right].
inline std::vector<std::int64_t> pads(Size2 p) {
  return {p.h, p.w, p.h, p.w};
}

// Linear: Gemm (y = x W^T + b) on 2-d input, as torch exports it; on more dimensions, MatMul with the
// transposed weight, then Add.
template <typename T>
std::optional<std::string> linear(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::LinearT<T>*>(&m);
  if (!l) return std::nullopt;
  const std::string w = c.graph.parameter(c.param("weight"), l->weight().value);
  const bool bias = l->has_bias();
  const std::string b = bias ? c.graph.parameter(c.param("bias"), l->bias().value) : "";
  if (c.in_shape.size() == 2) {
    std::vector<std::string> in = {c.input, w};
    if (bias) in.push_back(b);
    return c.graph.node("Gemm", c.name, in, {OnnxAttribute::integer("transB", 1)});
  }
  const std::string wt =
      c.graph.node("Transpose", c.name + "/Transpose", {w}, {OnnxAttribute::integers("perm", {1, 0})});
  const std::string y = c.graph.node("MatMul", bias ? c.name + "/MatMul" : c.name, {c.input, wt});
  return bias ? c.graph.node("Add", c.name, {y, b}) : y;
}

template <typename T>
std::optional<std::string> conv2d(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::Conv2dT<T>*>(&m);
  if (!l) return std::nullopt;
  std::vector<std::string> in = {c.input, c.graph.parameter(c.param("weight"), l->weight().value)};
  if (l->has_bias()) in.push_back(c.graph.parameter(c.param("bias"), l->bias().value));
  return c.graph.node("Conv", c.name, in,
                      {OnnxAttribute::integers("kernel_shape", pair(l->kernel_size())),
                       OnnxAttribute::integers("strides", pair(l->stride())),
                       OnnxAttribute::integers("pads", pads(l->padding())),
                       OnnxAttribute::integers("dilations", pair(l->dilation())),
                       OnnxAttribute::integer("group", l->groups())});
}

// BatchNormalization with the running statistics: eval mode. num_batches_tracked has no meaning there.
// BatchNorm1d and BatchNorm2d: BatchNormalization (channels on axis 1, any rank) with the running statistics,
// as in eval mode; num_batches_tracked has no meaning there.
template <typename T>
std::optional<std::string> batchnorm(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::BatchNormBaseT<T>*>(&m);
  if (!l) return std::nullopt;
  return c.graph.node("BatchNormalization", c.name,
                      {c.input, c.graph.parameter(c.param("weight"), l->weight().value),
                       c.graph.parameter(c.param("bias"), l->bias().value),
                       c.graph.parameter(c.param("running_mean"), l->running_mean()),
                       c.graph.parameter(c.param("running_var"), l->running_var())},
                      {OnnxAttribute::real("epsilon", static_cast<float>(l->eps()))});
}

template <typename T>
std::optional<std::string> maxpool2d(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::MaxPool2dT<T>*>(&m);
  if (!l) return std::nullopt;
  return c.graph.node("MaxPool", c.name, {c.input},
                      {OnnxAttribute::integers("kernel_shape", pair(l->kernel_size())),
                       OnnxAttribute::integers("strides", pair(l->stride())),
                       OnnxAttribute::integers("pads", pads(l->padding()))});
}

template <typename T>
std::optional<std::string> relu(const nn::ModuleT<T>& m, Context<T>& c) {
  if (!dynamic_cast<const nn::ReLUT<T>*>(&m)) return std::nullopt;
  return c.graph.node("Relu", c.name, {c.input});
}

// Softmax over dim 1 (ember's only dim; -1 on 2-d input is the same axis). Opset 13's Softmax works along one
// axis, as torch.softmax (older opsets flattened everything after the axis).
template <typename T>
std::optional<std::string> softmax(const nn::ModuleT<T>& m, Context<T>& c) {
  if (!dynamic_cast<const nn::SoftmaxT<T>*>(&m)) return std::nullopt;
  return c.graph.node("Softmax", c.name, {c.input}, {OnnxAttribute::integer("axis", 1)});
}

// Flatten from dim 1 to the end is ONNX's Flatten(axis=1); any other range is a Reshape to the known sizes
// with 0 (copy the input's size) for the dynamic batch.
template <typename T>
std::optional<std::string> flatten(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::FlattenT<T>*>(&m);
  if (!l) return std::nullopt;
  if (c.out_shape.size() == 2 && l->start_dim() == 1)
    return c.graph.node("Flatten", c.name, {c.input}, {OnnxAttribute::integer("axis", 1)});
  std::vector<std::int64_t> shape(c.out_shape.begin(), c.out_shape.end());
  shape[0] = 0;
  return c.graph.node("Reshape", c.name, {c.input, c.graph.int64_constant(c.name + "/shape", shape)});
}

// Dropout is the identity in eval mode: no node at all, as torch exports it.
template <typename T>
std::optional<std::string> dropout(const nn::ModuleT<T>& m, Context<T>& c) {
  if (!dynamic_cast<const nn::DropoutT<T>*>(&m)) return std::nullopt;
  return c.input;
}

// AvgPool2d (count_include_pad, as PyTorch's default): padded, it is Pad with zeros then AveragePool without
// pads, as torch exports it: the zeros count in every window, and OpenCV 4.6 honours count_include_pad only
// in files whose producer is PyTorch.
template <typename T>
std::optional<std::string> avgpool2d(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::AvgPool2dT<T>*>(&m);
  if (!l) return std::nullopt;
  const Size2 p = l->padding();
  std::string x = c.input;
  if (p.h != 0 || p.w != 0)
    x = c.graph.node("Pad", c.name + "/Pad",
                     {x, c.graph.int64_constant(c.name + "/pads", {0, 0, p.h, p.w, 0, 0, p.h, p.w})});
  return c.graph.node("AveragePool", c.name, {x},
                      {OnnxAttribute::integers("kernel_shape", pair(l->kernel_size())),
                       OnnxAttribute::integers("strides", pair(l->stride()))});
}

// AdaptiveAvgPool2d: GlobalAveragePool for a 1x1 output; AveragePool with kernel = stride = in / out when the
// output size divides the input's (PyTorch's bins are then exactly those windows). Other sizes have bins of
// unequal widths that no ONNX pooling operator expresses.
template <typename T>
std::optional<std::string> adaptive_avgpool2d(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::AdaptiveAvgPool2dT<T>*>(&m);
  if (!l) return std::nullopt;
  const std::int64_t h = c.in_shape[2], w = c.in_shape[3], oh = c.out_shape[2], ow = c.out_shape[3];
  if (oh == 1 && ow == 1) return c.graph.node("GlobalAveragePool", c.name, {c.input});
  if (h % oh != 0 || w % ow != 0)
    throw std::invalid_argument("export_onnx: layer '" + c.name + "' (" + m.repr() + ") pools " +
                                std::to_string(h) + "x" + std::to_string(w) + " into " + std::to_string(oh) +
                                "x" + std::to_string(ow) +
                                ": ONNX can express adaptive average pooling only when the output size "
                                "divides the input size (or is 1x1)");
  return c.graph.node("AveragePool", c.name, {c.input},
                      {OnnxAttribute::integers("kernel_shape", {h / oh, w / ow}),
                       OnnxAttribute::integers("strides", {h / oh, w / ow})});
}

template <typename T>
std::optional<std::string> leaky_relu(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::LeakyReLUT<T>*>(&m);
  if (!l) return std::nullopt;
  return c.graph.node("LeakyRelu", c.name, {c.input},
                      {OnnxAttribute::real("alpha", static_cast<float>(l->negative_slope()))});
}

template <typename T>
std::optional<std::string> sigmoid(const nn::ModuleT<T>& m, Context<T>& c) {
  if (!dynamic_cast<const nn::SigmoidT<T>*>(&m)) return std::nullopt;
  return c.graph.node("Sigmoid", c.name, {c.input});
}

template <typename T>
std::optional<std::string> tanh_layer(const nn::ModuleT<T>& m, Context<T>& c) {
  if (!dynamic_cast<const nn::TanhT<T>*>(&m)) return std::nullopt;
  return c.graph.node("Tanh", c.name, {c.input});
}

// GELU has no operator before opset 20: its formula, as torch exports it. Exact: x * 0.5 * (1 + erf(x / √2));
// approximate='tanh': x * 0.5 * (1 + tanh(√(2/π) * (x + 0.044715 x³))). The nodes are named name/Op, the last
// one `name`; returns its output.
template <typename T>
std::string gelu_formula(OnnxGraphBuilder<T>& g, const std::string& name, const std::string& x, bool tanh) {
  const auto op = [&](const std::string& type, std::vector<std::string> in) {
    return g.node(type, name + "/" + type, std::move(in));
  };
  const auto constant = [&](const std::string& what, double v) {
    return g.scalar_constant(name + "/" + what, static_cast<T>(v));
  };
  std::string inner;
  if (tanh) {
    const std::string cube = op("Mul", {op("Mul", {x, x}), x});
    const std::string sum = op("Add", {x, op("Mul", {cube, constant("coefficient", 0.044715)})});
    inner = op("Tanh", {op("Mul", {sum, constant("sqrt_2_over_pi", 0.7978845608028654)})});
  } else {
    inner = op("Erf", {op("Div", {x, constant("sqrt_2", 1.4142135623730951)})});
  }
  const std::string half_x = op("Mul", {op("Add", {inner, constant("one", 1.0)}), x});
  return g.node("Mul", name, {half_x, constant("half", 0.5)});
}

template <typename T>
std::optional<std::string> gelu(const nn::ModuleT<T>& m, Context<T>& c) {
  const auto* l = dynamic_cast<const nn::GELUT<T>*>(&m);
  if (!l) return std::nullopt;
  return gelu_formula(c.graph, c.name, c.input, l->approximate() == "tanh");
}

// Identity, like Dropout, leaves no node.
template <typename T>
std::optional<std::string> identity(const nn::ModuleT<T>& m, Context<T>& c) {
  if (!dynamic_cast<const nn::IdentityT<T>*>(&m)) return std::nullopt;
  return c.input;
}

// Every mapping, tried in this order.
template <typename T>
const std::vector<Mapping<T>>& mappings() {
  static const std::vector<Mapping<T>> all = {
      linear<T>,  conv2d<T>,     batchnorm<T>, maxpool2d<T>,  avgpool2d<T>, adaptive_avgpool2d<T>,
      relu<T>,    leaky_relu<T>, sigmoid<T>,   tanh_layer<T>, gelu<T>,      softmax<T>,
      flatten<T>, dropout<T>,    identity<T>};
  return all;
}

}  // namespace ember::io::onnx_layers
