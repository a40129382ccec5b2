#pragma once
// ONNX export: a module, in eval mode, as an ONNX file that other runtimes load (OpenCV's dnn module, ONNX
// Runtime, TensorRT). The graph reads "input" (input_shape with a dynamic batch "N") and writes "output";
// parameters and running statistics are initialisers under their dotted names ("conv1.weight",
// "batchnorm1.running_mean"); each layer maps to the operators of io/onnx_layers.hpp, Sequential to its
// children in order, Residual to its body and shortcut and an Add. The file's metadata_props hold "model"
// (the printout), "input_shape" (C, H, W as a JSON array) and the caller's entries ("classes",
// "normalize_mean", "normalize_std", ...), which win on equal keys.
//
// The walk runs the model on a sample batch of 2 (predict: nothing in the model changes), so every layer's
// input and output shapes are known and a shape that does not fit is the layer's own shape_error. A layer
// without a mapping (a layer of your own) is a std::invalid_argument naming it; nothing is written then. An
// nn::GraphModule is written as the graph it describes (graph::trace), its initialisers under their names
// (inside a container, under the container's dotted name: "backbone.conv1.weight").
// The file is written atomically (core/file.hpp): io_error naming the path when it cannot be.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/onnx_proto.hpp"
#include "ember/graph/trace.hpp"
#include "ember/io/onnx_builder.hpp"
#include "ember/io/onnx_graph.hpp"
#include "ember/io/onnx_layers.hpp"
#include "ember/nn/graph_module.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/residual.hpp"
#include "ember/nn/sequential.hpp"
#include "ember/version.hpp"

namespace ember::io {

namespace onnx_detail {

// The value a module reads and, after it, the value it wrote; `sample` is that value for the sample batch.
template <typename T>
struct Flow {
  std::string value;
  TensorT<T> sample;
};

inline std::string child_name(const std::string& parent, const std::string& child) {
  return parent.empty() ? child : parent + "." + child;
}

inline std::string describe(const std::string& name, const std::string& repr) {
  const std::string first_line = repr.substr(0, repr.find('\n'));
  return name.empty() ? first_line : "'" + name + "' (" + first_line + ")";
}

template <typename T>
TensorT<T> run(const std::string& name, const nn::ModuleT<T>& m, const TensorT<T>& x) {
  try {
    return m.predict(x);
  } catch (const shape_error& e) {
    throw shape_error("export_onnx: layer " + describe(name, m.repr()) + ": " + e.what() +
                      " (the input_shape given, with the batch made 2 to follow it through the model)");
  }
}

template <typename T>
void walk(OnnxGraphBuilder<T>& graph, const std::string& name, const nn::ModuleT<T>& m, Flow<T>& x) {
  if (const auto* seq = dynamic_cast<const nn::SequentialT<T>*>(&m)) {
    for (std::size_t i = 0; i < seq->size(); ++i)
      walk(graph, child_name(name, seq->name_of(i)), (*seq)[i], x);
    return;
  }
  // Residual: body and shortcut (the identity without one) from the same value, then Add. Its own predict
  // first, so that a body whose output does not fit the shortcut's is its shape_error, not a broadcast.
  if (const auto* res = dynamic_cast<const nn::ResidualT<T>*>(&m)) {
    TensorT<T> out = run(name, m, x.sample);
    Flow<T> body = x, shortcut = x;
    walk(graph, child_name(name, "body"), res->body(), body);
    if (res->has_shortcut()) walk(graph, child_name(name, "shortcut"), *res->shortcut(), shortcut);
    x.value = graph.node("Add", name.empty() ? "Residual" : name, {body.value, shortcut.value});
    x.sample = std::move(out);
    return;
  }
  // A GraphModule inside a container: its graph (graph::trace), values and initializers renamed into this one.
  if constexpr (std::is_same_v<T, float>) {
    if (dynamic_cast<const nn::GraphModuleT<T>*>(&m)) {
      TensorT<T> out = run(name, m, x.sample);
      const graph::Graph g = graph::trace(m, x.sample.shape());
      std::map<std::string, std::string> renamed{{g.inputs().at(0).name, x.value}};
      for (const auto& [init, t] : g.initializers()) renamed[init] = graph.parameter(child_name(name, init), t);
      for (graph::Node n : g.nodes()) {
        for (auto& v : n.inputs) v = v.empty() ? v : renamed.at(v);
        n.name = graph.fresh(child_name(name, n.name));
        const std::string value = graph.fresh(n.name);
        renamed[n.outputs.at(0)] = value;
        n.outputs = {value};
        write_node(graph, n);
      }
      x.value = renamed.at(g.outputs().at(0).name);
      x.sample = std::move(out);
      return;
    }
  }
  TensorT<T> out = run(name, m, x.sample);
  if (out.dim() == 0 || out.size(0) != x.sample.size(0))
    throw shape_error("export_onnx: layer " + describe(name, m.repr()) + " turns a batch of " +
                      std::to_string(x.sample.size(0)) + ", " + to_string(x.sample.shape()) + ", into " +
                      to_string(out.shape()) + ": ONNX export keeps dimension 0 as the batch");
  const std::string node_name = name.empty() ? m.type_name() : name;
  onnx_layers::Context<T> c{graph, node_name, name, x.value, x.sample.shape(), out.shape()};
  for (const auto map : onnx_layers::mappings<T>()) {
    if (auto value = map(m, c)) {
      x.value = *value;
      x.sample = std::move(out);
      return;
    }
  }
  throw std::invalid_argument("export_onnx: layer " + describe(name, m.repr()) +
                              " has no ONNX mapping (io/onnx_layers.hpp lists the layers that have one)");
}

inline std::string json_array(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace onnx_detail

// The ONNX model of `model` for inputs of `input_shape` (batch first; the batch is exported as dynamic), as
// export_onnx writes it: for programs that want the bytes or to look at the graph.
template <typename T>
format::OnnxModel to_onnx(const nn::ModuleT<T>& model, const Shape& input_shape,
                          const std::map<std::string, std::string>& metadata = {}) {
  bool positive = !input_shape.empty();
  for (auto d : input_shape) positive = positive && d > 0;
  Shape batched{1};  // the shape with a batch dimension in front: the usual mistake is leaving it out
  batched.insert(batched.end(), input_shape.begin(), input_shape.end());
  const std::string batch_hint = "; input_shape starts with the batch dimension (e.g. " + to_string(batched) +
                                 " for one " + to_string(input_shape) + " sample)";
  if (!positive || input_shape.size() < 2)
    throw shape_error("export_onnx: input_shape must be [N, ...] with at least 2 dimensions, all positive, got " +
                      to_string(input_shape) + (positive ? batch_hint : ""));
  // A graph made a module (nn::GraphModule) is written as the graph it describes.
  if (dynamic_cast<const nn::GraphModuleT<T>*>(&model)) return to_onnx(graph::trace(model, input_shape), metadata);
  format::OnnxModel onnx;
  onnx.producer_name = "ember";
  onnx.producer_version = ember::version();
  onnx.graph.name = model.type_name();
  OnnxGraphBuilder<T> graph(onnx.graph);
  graph.reserve("input");
  graph.reserve("output");

  Shape sample_shape = input_shape;
  sample_shape[0] = 2;  // 2, not 1: a layer that mixes samples across the batch shows in the output shape
  onnx_detail::Flow<T> x{"input", TensorT<T>(sample_shape)};
  try {
    onnx_detail::walk(graph, "", model, x);
  } catch (const shape_error& e) {
    bool takes_batched = false;  // the model takes the shape once a batch dimension is added in front
    try {
      model.predict(TensorT<T>(batched));
      takes_batched = true;
    } catch (const std::exception&) {
    }
    if (takes_batched) throw shape_error(std::string(e.what()) + batch_hint);
    throw;
  }
  graph.rename_output(x.value, "output");

  using Dim = format::OnnxValueInfo::Dim;
  const auto value_info = [](const std::string& name, const Shape& s) {
    format::OnnxValueInfo v{name, OnnxGraphBuilder<T>::kType, {Dim{0, "N"}}};
    for (std::size_t i = 1; i < s.size(); ++i) v.dims.push_back(Dim{s[i], ""});
    return v;
  };
  onnx.graph.inputs.push_back(value_info("input", input_shape));
  onnx.graph.outputs.push_back(value_info("output", x.sample.shape()));

  std::map<std::string, std::string> meta = {
      {"model", model.repr()},
      {"input_shape",
       onnx_detail::json_array(std::vector<std::int64_t>(input_shape.begin() + 1, input_shape.end()))}};
  for (const auto& [k, v] : metadata) meta[k] = v;
  onnx.metadata.assign(meta.begin(), meta.end());
  return onnx;
}

// Writes `model` as an ONNX file (see the top of this header) to `path`, atomically.
template <typename T>
void export_onnx(const nn::ModuleT<T>& model, const Shape& input_shape, const std::string& path,
                 const std::map<std::string, std::string>& metadata = {}) {
  format::write_onnx(path, to_onnx(model, input_shape, metadata));
}

}  // namespace ember::io
