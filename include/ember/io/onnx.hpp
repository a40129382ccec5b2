#pragma once
// ONNX export: a module, in eval mode, as an ONNX file that other runtimes load (OpenCV's dnn module, ONNX
// Runtime, TensorRT). The module is traced (graph::trace: each layer describes itself, ModuleT::describe;
// containers their children in order) and the graph written as io/onnx_graph.hpp writes one, in the model's
// type (a double model's tensors are DOUBLE). The graph reads "input" (input_shape with a dynamic batch "N")
// and writes "output"; parameters and running statistics are initialisers under their dotted names
// ("conv1.weight", "batchnorm1.running_mean"), in the order the nodes first read them; Dropout and Identity
// leave no node, as torch exports them. The file's metadata_props hold "model" (the printout), "input_shape"
// (C, H, W as a JSON array) and the caller's entries ("classes", "normalize_mean", "normalize_std", ...),
// which win on equal keys.
//
// The trace runs on a sample batch of 2 (a layer that mixes samples across the batch shows in the shapes),
// then predict checks the traced output shape (a describe that disagrees with predict is a logic_error naming
// the model). A shape that does not fit is a shape_error naming the layer; a layer that does not describe
// itself (a layer of your own without describe) is a std::invalid_argument naming it and saying to override
// describe; nothing is written then. An nn::GraphModule is written as the graph it describes.
// The file is written atomically (core/file.hpp): io_error naming the path when it cannot be.
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/onnx_proto.hpp"
#include "ember/graph/trace.hpp"
#include "ember/io/onnx_builder.hpp"
#include "ember/io/onnx_graph.hpp"
#include "ember/nn/graph_module.hpp"
#include "ember/nn/module.hpp"
#include "ember/version.hpp"

namespace ember::io {

namespace onnx_detail {

// The traced graph's nodes into b: Dropout and Identity elided (their readers read their input), each
// initializer written before the first node that reads it, from the module's own tensors (in its type) when
// it has one of that name. Returns the value that holds the model's output ("input" when every node was
// elided: the caller writes an Identity then).
template <typename T>
std::string write_traced(OnnxGraphBuilder<T>& b, const graph::Graph& g, const nn::ModuleT<T>& model) {
  std::map<std::string, const TensorT<T>*> own;
  for (const auto& [name, p] : model.named_parameters()) own[name] = &p->value;
  for (const auto& [name, t] : model.named_buffers()) own[name] = t;
  for (const auto& n : g.nodes()) {
    b.reserve(n.name);
    for (const auto& o : n.outputs) b.reserve(o);
  }
  std::map<std::string, std::string> alias;
  const auto value = [&](const std::string& v) {
    const auto it = alias.find(v);
    return it == alias.end() ? v : it->second;
  };
  std::set<std::string> written;
  const bool leaf = model.children().empty();
  for (graph::Node n : g.nodes()) {
    for (auto& v : n.inputs) v = v.empty() ? v : value(v);
    if (n.op == "Dropout" || n.op == "Identity") {
      alias[n.outputs.at(0)] = n.inputs.at(0);
      continue;
    }
    for (const auto& v : n.inputs) {
      if (!g.has_initializer(v) || !written.insert(v).second) continue;
      const auto it = own.find(v);
      if (it != own.end()) b.parameter(v, *it->second);
      else b.parameter(v, g.initializer(v).template cast<T>());
    }
    // A layer as the whole model: its nodes named after its type ("BatchNorm1d"), as torch names them.
    if (leaf && n.name.rfind(n.op, 0) == 0) n.name = model.type_name() + n.name.substr(n.op.size());
    write_node(b, n);
  }
  return value(g.outputs().at(0).name);
}

template <typename T>
graph::Graph traced(const nn::ModuleT<T>& model, const Shape& input_shape, const std::string& batch_hint,
                    const Shape& batched) {
  Shape sample = input_shape;
  sample[0] = 2;
  try {
    graph::Graph g = graph::trace(model, sample);
    const Shape y = model.predict(TensorT<T>(sample)).shape();
    Shape traced_y = g.outputs().at(0).shape;
    traced_y[0] = 2;
    if (y != traced_y)
      throw std::logic_error("export_onnx: " + model.repr().substr(0, model.repr().find('\n')) +
                             " predicts " + to_string(y) + " for a batch of " + to_string(sample) +
                             " but describes itself as a graph that computes " + to_string(traced_y) +
                             ": a layer's describe and predict disagree");
    return g;
  } catch (const shape_error& e) {
    bool takes_batched = false;  // the model takes the shape once a batch dimension is added in front
    try {
      model.predict(TensorT<T>(batched));
      takes_batched = true;
    } catch (const std::exception&) {
    }
    throw shape_error("export_onnx: " + std::string(e.what()) +
                      " (the input_shape given, with the batch made 2 to follow it through the model)" +
                      (takes_batched ? batch_hint : ""));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("export_onnx: " + std::string(e.what()));
  }
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
  // A graph made a module (nn::GraphModule) is written as the graph it holds, nodes and names as they are.
  if (dynamic_cast<const nn::GraphModuleT<T>*>(&model)) return to_onnx(graph::trace(model, input_shape), metadata);
  const graph::Graph g = onnx_detail::traced(model, input_shape, batch_hint, batched);

  format::OnnxModel onnx;
  onnx.producer_name = "ember";
  onnx.producer_version = ember::version();
  onnx.graph.name = model.type_name();
  OnnxGraphBuilder<T> b(onnx.graph);
  b.reserve("input");
  b.reserve("output");
  const std::string out = onnx_detail::write_traced(b, g, model);
  if (out != "output") b.rename_output(out, "output");

  using Dim = format::OnnxValueInfo::Dim;
  const auto value_info = [](const std::string& name, const Shape& s) {
    format::OnnxValueInfo v{name, OnnxGraphBuilder<T>::kType, {Dim{0, "N"}}};
    for (std::size_t i = 1; i < s.size(); ++i) v.dims.push_back(Dim{s[i], ""});
    return v;
  };
  onnx.graph.inputs.push_back(value_info("input", input_shape));
  onnx.graph.outputs.push_back(value_info("output", g.outputs().at(0).shape));
  std::map<std::string, std::string> meta = g.metadata();
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
