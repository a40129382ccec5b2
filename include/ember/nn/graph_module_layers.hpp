#pragma once
// nn::GraphModule's nodes (nn/graph_module.hpp): each graph node as an Entry holding the ember layer that
// runs it (with the graph's weights, and the names they had there) or a functional operator of
// nn/graph_module_ops.hpp; the children's names; and the layers described back as graph nodes under their
// initialisers' names.
#include <algorithm>
#include <cctype>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/tracer.hpp"
#include "ember/nn/activation.hpp"
#include "ember/nn/avgpool2d.hpp"
#include "ember/nn/batchnorm1d.hpp"
#include "ember/nn/batchnorm2d.hpp"
#include "ember/nn/conv2d.hpp"
#include "ember/nn/dropout.hpp"
#include "ember/nn/graph_module_ops.hpp"
#include "ember/nn/linear.hpp"
#include "ember/nn/maxpool2d.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn::graph_module_detail {

template <typename T>
struct Entry {
  graph::Node node;
  std::string child, prefix;  // the child's name; what names a tensor the graph does not have
  std::unique_ptr<ModuleT<T>> module;
  std::unique_ptr<FunctionalOp<T>> op;
  std::map<std::string, std::string> names;  // a layer's tensor ("weight") -> its initializer
  std::map<std::string, Tensor> constants;   // a functional node's initializer operands
  std::vector<int> in;                       // the computed inputs' value ids
  std::vector<int> frees;                    // the values this node reads last (predict drops them)
  int out = -1;
  bool no_backward = false;
  std::string no_backward_why;

  Entry copy() const {
    Entry e;
    e.node = node;
    e.child = child;
    e.prefix = prefix;
    if (module) e.module = module->clone();
    if (op) e.op = op->clone();
    e.names = names;
    e.constants = constants;
    e.in = in;
    e.frees = frees;
    e.out = out;
    e.no_backward = no_backward;
    e.no_backward_why = no_backward_why;
    return e;
  }
  std::string name_of(const std::string& leaf) const {
    const auto it = names.find(leaf);
    return it != names.end() ? it->second : prefix + "." + leaf;
  }
  const Tensor& constant(const std::string& v) const { return constants.at(v); }
};

// A Conv or Gemm with the "activation" graph::optimize fused into it, as the node and a Relu after it.
inline std::vector<graph::Node> split_activation(const graph::Node& n) {
  if (!n.has("activation")) return {n};
  const std::string act = n.get_string("activation", "");
  if (act != "Relu") refuse(n, "the fused activation '" + act + "'");
  graph::Node first = n, relu;
  first.attributes.erase("activation");
  first.outputs = {n.outputs.at(0) + "/before_relu"};
  relu.op = "Relu";
  relu.name = n.name + "/relu";
  relu.inputs = first.outputs;
  relu.outputs = {n.outputs[0]};
  return {first, relu};
}

inline bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The module's dotted path in the exporting model: from the weight's name ("layer1.0.conv1.weight"), else
// from torch.onnx.export's node name ("/layer1/layer1.0/conv1/Conv": each scope, the op last).
inline std::string module_path(const graph::Node& n, const std::map<std::string, std::string>& names) {
  const auto w = names.find("weight");
  if (w != names.end() && ends_with(w->second, ".weight") && w->second.find("::") == std::string::npos)
    return w->second.substr(0, w->second.size() - 7);
  std::vector<std::string> parts;
  std::string part;
  for (char ch : n.name + "/") {
    if (ch != '/') {
      part += ch;
    } else if (!part.empty()) {
      parts.push_back(part);
      part.clear();
    }
  }
  if (parts.size() > 1) parts.pop_back();
  // A scope that extends the one before ("layer1", "layer1.0") names the same module deeper.
  std::vector<std::string> kept;
  for (const auto& p : parts)
    if (!kept.empty() && p.rfind(kept.back() + ".", 0) == 0) kept.back() = p;
    else kept.push_back(p);
  std::string path;
  for (const auto& p : kept) path += (path.empty() ? "" : ".") + p;
  return path;
}

// `path` as a child's name (PyTorch's module names hold no '.'), not in `taken`, which it joins.
inline std::string unique_name(const std::string& path, std::set<std::string>& taken) {
  std::string base;
  for (char ch : path) base += std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' ? ch : '_';
  if (base.empty()) base = "node";
  std::string name = base;
  for (int k = 1; taken.count(name); ++k) name = base + "_" + std::to_string(k);
  taken.insert(name);
  return name;
}

// "bn" when the layer's tensors are named "bn.weight", "bn.running_mean", ...; else the child's name.
inline std::string prefix_of(const std::map<std::string, std::string>& names, const std::string& child) {
  for (const auto& [leaf, init] : names)
    if (ends_with(init, "." + leaf)) return init.substr(0, init.size() - leaf.size() - 1);
  return child;
}

// The graph's tensor into a layer's, row o scaled by scales[o] when given (an int8 weight dequantised).
template <typename T>
void copy_weight(TensorT<T>& dst, const Tensor& src, const std::vector<double>& scales = {}) {
  const std::int64_t rows = dst.dim() > 0 ? dst.size(0) : 1, per = dst.numel() / std::max<std::int64_t>(rows, 1);
  for (std::int64_t i = 0; i < dst.numel(); ++i)
    dst[i] = static_cast<T>(scales.empty() ? src[i] : src[i] * scales[static_cast<std::size_t>(i / per)]);
}

// The entry of node n (its layer or functional operator), in: its inputs' shapes (computed ones batch 1).
template <typename T>
Entry<T> make_entry(const graph::Node& n, const graph::Graph& g, const std::vector<Shape>& in, const Shape& out) {
  Entry<T> e;
  e.node = n;
  const std::string& op = n.op;
  const auto init = [&](std::size_t k) -> const Tensor* {
    if (k >= n.inputs.size() || n.inputs[k].empty()) return nullptr;
    return g.has_initializer(n.inputs[k]) ? &g.initializer(n.inputs[k]) : nullptr;
  };
  const auto need = [&](std::size_t k, const std::string& what) -> const Tensor& {
    if (!init(k)) refuse(n, what + " (input " + std::to_string(k) + ") must be an initializer");
    return *init(k);
  };
  const auto name = [&](const std::string& leaf, std::size_t k) {
    if (init(k)) e.names[leaf] = n.inputs[k];
  };
  const auto pair = [&](const char* key, std::vector<std::int64_t> fallback) {
    const auto v = n.get_ints(key, fallback);
    if (v.size() < 2) refuse(n, std::string(key) + " needs 2 values");
    return Size2(v[0], v[1]);
  };
  const auto symmetric_pads = [&] {
    const auto p = n.get_ints("pads", {0, 0, 0, 0});
    if (p.size() != 4 || p[0] != p[2] || p[1] != p[3]) refuse(n, "pads must be symmetric");
    return Size2(p[0], p[1]);
  };
  std::vector<double> scales;
  if (n.has("ember_input_scale")) {  // graph::quantize_int8's mark (graph/plan_quantized.hpp's quant_attr)
    scales = n.attributes.at("ember_weight_scales").floats;
    for (const char* key : {"ember_input_scale", "ember_input_zero_point", "ember_weight_scales"})
      e.node.attributes.erase(key);
    e.no_backward = true;
    e.no_backward_why = "int8 from graph::quantize_int8";
  }
  const bool rank4 = !in.empty() && in[0].size() == 4;
  Generator gen(0);  // the graph's weights replace the layers' initial ones; the global generator stays
  if (op == "Conv") {
    const Tensor& w = need(1, "the weight");
    const std::int64_t groups = n.get_int("group", 1);
    if (!rank4 || w.dim() != 4 || groups <= 0 || in[0][1] != w.size(1) * groups)
      refuse(n, "the weight " + to_string(w.shape()) + " does not fit the input " + to_string(in.at(0)));
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) need(2, "the bias");
    auto c = std::make_unique<Conv2dT<T>>(Conv2dOptions(in[0][1], w.size(0), Size2(w.size(2), w.size(3)))
                                              .stride(pair("strides", {1, 1}))
                                              .padding(symmetric_pads())
                                              .dilation(pair("dilations", {1, 1}))
                                              .groups(groups)
                                              .bias(init(2) != nullptr),
                                          gen);
    copy_weight(c->weight().value, w, scales);
    if (init(2)) copy_weight(c->bias().value, *init(2));
    name("weight", 1);
    name("bias", 2);
    e.module = std::move(c);
  } else if (op == "Gemm" || op == "MatMul") {
    const Tensor& b = need(1, "the weight");
    if (b.dim() != 2 || (op == "Gemm" && n.get_int("transA", 0) != 0))
      refuse(n, "a weight of rank 2 and no transA (a Linear)");
    const bool tb = op == "Gemm" && n.get_int("transB", 0) != 0;
    const double alpha = op == "Gemm" ? n.get_float("alpha", 1) : 1, beta = n.get_float("beta", 1);
    const std::int64_t rows = b.size(0), cols = b.size(1), in_f = tb ? cols : rows, out_f = tb ? rows : cols;
    const Tensor* c = op == "Gemm" ? init(2) : nullptr;
    if (op == "Gemm" && n.inputs.size() > 2 && !n.inputs[2].empty()) need(2, "C");
    if (c && c->numel() != out_f && c->numel() != 1) refuse(n, "C must hold one value per output or one");
    auto l = std::make_unique<LinearT<T>>(in_f, out_f, c != nullptr, gen);
    for (std::int64_t o = 0; o < out_f; ++o) {
      const double s = scales.empty() ? 1.0 : scales[static_cast<std::size_t>(o)];
      for (std::int64_t i = 0; i < in_f; ++i)
        l->weight().value[o * in_f + i] = static_cast<T>(alpha * s * (tb ? b[o * cols + i] : b[i * cols + o]));
      if (c) l->bias().value[o] = static_cast<T>(static_cast<float>(beta) * (*c)[c->numel() == 1 ? 0 : o]);
    }
    if (alpha != 1 && !scales.empty()) refuse(n, "an int8 Gemm with alpha");
    name("weight", 1);
    name("bias", 2);
    e.module = std::move(l);
  } else if (op == "BatchNormalization") {
    const std::int64_t ch = in.at(0).size() >= 2 ? in[0][1] : 0;
    for (std::size_t k = 1; k < 5; ++k)
      if (need(k, "scale, bias, mean and var").numel() != ch) refuse(n, "one scale, bias, mean and var per channel");
    const double eps = n.get_float("epsilon", 1e-5), momentum = 1.0 - n.get_float("momentum", 0.9);
    std::unique_ptr<BatchNormBaseT<T>> bn;
    if (rank4) bn = std::make_unique<BatchNorm2dT<T>>(ch, eps, momentum);
    else if (in[0].size() == 2 || in[0].size() == 3) bn = std::make_unique<BatchNorm1dT<T>>(ch, eps, momentum);
    else refuse(n, "an input of rank " + std::to_string(in[0].size()));
    copy_weight(bn->weight().value, *init(1));
    copy_weight(bn->bias().value, *init(2));
    copy_weight(bn->running_mean(), *init(3));
    copy_weight(bn->running_var(), *init(4));
    const char* leaves[] = {"", "weight", "bias", "running_mean", "running_var"};
    for (std::size_t k = 1; k < 5; ++k) name(leaves[k], k);
    e.module = std::move(bn);
  } else if (op == "Relu") {
    e.module = std::make_unique<ReLUT<T>>();
  } else if (op == "LeakyRelu") {
    e.module = std::make_unique<LeakyReLUT<T>>(static_cast<float>(n.get_float("alpha", 0.01)));
  } else if (op == "Sigmoid") {
    e.module = std::make_unique<SigmoidT<T>>();
  } else if (op == "Tanh") {
    e.module = std::make_unique<TanhT<T>>();
  } else if (op == "Gelu") {
    e.module = std::make_unique<GELUT<T>>(n.get_string("approximate", "none"));
  } else if (op == "MaxPool" || op == "AveragePool") {
    if (!rank4) refuse(n, "an input of rank other than 4");
    const Size2 k = pair("kernel_shape", {}), s = pair("strides", {1, 1}), p = symmetric_pads();
    if (op == "MaxPool") {
      e.module = std::make_unique<MaxPool2dT<T>>(k, s, p);
    } else {
      if (n.get_int("count_include_pad", 0) == 0 && (p.h != 0 || p.w != 0))
        refuse(n, "padded AveragePool needs count_include_pad=1 (AvgPool2d's)");
      e.module = std::make_unique<AvgPool2dT<T>>(k, s, p);
    }
  } else if (op == "GlobalAveragePool") {
    if (!rank4) refuse(n, "an input of rank other than 4");
    e.module = std::make_unique<AdaptiveAvgPool2dT<T>>(Size2(1));
  } else if (op == "Dropout") {
    e.module = std::make_unique<DropoutT<T>>(n.get_float("ratio", 0.5));
  } else {
    if (op == "Flatten" && n.get_int("axis", 1) != 1) refuse(n, "a Flatten from an axis other than 1");
    e.op = make_op<T>(n, in, out, [&](std::size_t k) { return init(k); });
    if (!e.op) refuse(n, "the operator " + op + " is not supported by GraphModule");
    for (std::size_t k = 0; k < n.inputs.size(); ++k)
      if (init(k)) e.constants.emplace(n.inputs[k], *init(k));
  }
  if (!scales.empty() && op != "Conv" && op != "Gemm") refuse(n, "int8 on an operator other than Conv and Gemm");
  return e;
}

// A layer of e as graph nodes reading x, its tensors under e's names: Conv2d, Linear and BatchNorm as the
// operators they came from, any other module (a new head) described as itself under e's prefix.
template <typename T>
std::string describe_layer(graph::Tracer& t, const Entry<T>& e, const std::string& x) {
  using A = graph::Attribute;
  const ModuleT<T>& m = *e.module;
  if (const auto* c = dynamic_cast<const Conv2dT<T>*>(&m)) {
    std::vector<std::string> in = {x, t.parameter(e.name_of("weight"), c->weight().value)};
    if (c->has_bias()) in.push_back(t.parameter(e.name_of("bias"), c->bias().value));
    const Size2 k = c->kernel_size(), s = c->stride(), p = c->padding(), d = c->dilation();
    return t.node("Conv", in,
                  {{"kernel_shape", A::integers({k.h, k.w})},
                   {"strides", A::integers({s.h, s.w})},
                   {"pads", A::integers({p.h, p.w, p.h, p.w})},
                   {"dilations", A::integers({d.h, d.w})},
                   {"group", A::integer(c->groups())}});
  }
  if (const auto* l = dynamic_cast<const LinearT<T>*>(&m)) {
    if (t.shape(x).size() == 2) {
      std::vector<std::string> in = {x, t.parameter(e.name_of("weight"), l->weight().value)};
      if (l->has_bias()) in.push_back(t.parameter(e.name_of("bias"), l->bias().value));
      return t.node("Gemm", in, {{"transB", A::integer(1)}});
    }
    // MatMul's weight is [in, out]: the Linear's transposed.
    const std::int64_t in_f = l->in_features(), out_f = l->out_features();
    TensorT<T> w({in_f, out_f});
    for (std::int64_t o = 0; o < out_f; ++o)
      for (std::int64_t i = 0; i < in_f; ++i) w[i * out_f + o] = l->weight().value[o * in_f + i];
    std::string y = t.node("MatMul", {x, t.parameter(e.name_of("weight"), w)});
    if (l->has_bias()) y = t.node("Add", {y, t.parameter(e.name_of("bias"), l->bias().value)}, {}, "bias");
    return y;
  }
  if (const auto* b = dynamic_cast<const BatchNormBaseT<T>*>(&m))
    return t.node("BatchNormalization",
                  {x, t.parameter(e.name_of("weight"), b->weight().value), t.parameter(e.name_of("bias"), b->bias().value),
                   t.parameter(e.name_of("running_mean"), b->running_mean()),
                   t.parameter(e.name_of("running_var"), b->running_var())},
                  {{"epsilon", A::real(b->eps())}, {"momentum", A::real(1.0 - b->momentum())}});
  return t.child(e.prefix, m, x);
}

}  // namespace ember::nn::graph_module_detail
