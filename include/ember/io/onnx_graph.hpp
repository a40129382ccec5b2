#pragma once
// ONNX export of a graph::Graph (graph/graph.hpp): its nodes, initializers, input and output as they are,
// opset 13, with the batch dimension dynamic ("N"). What opset 13 or common runtimes (OpenCV's dnn) do not
// take is written as io/onnx_layers.hpp writes it for a module:
//   - ember's "activation" attribute on a Conv or Gemm (graph::optimize's fusion): the node, then a Relu
//   node;
//   - Gelu (an opset 20 operator): its formula (Erf or Tanh, Mul, Add, Div);
//   - a padded AveragePool with count_include_pad: Pad with zeros, then AveragePool without pads;
//   - a node graph::quantize_int8 marked: QuantizeLinear / DequantizeLinear pairs (io/onnx_quantized.hpp).
// The file's metadata_props are the graph's metadata() with the caller's entries, which win on equal keys.
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/format/onnx_proto.hpp"
#include "ember/graph/graph.hpp"
#include "ember/io/onnx_builder.hpp"
#include "ember/io/onnx_layers.hpp"
#include "ember/io/onnx_quantized.hpp"
#include "ember/version.hpp"

namespace ember::io {

namespace onnx_detail {

inline std::vector<format::OnnxAttribute> onnx_attributes(const graph::Node& n, bool skip_pads = false) {
  std::vector<format::OnnxAttribute> out;
  for (const auto& [key, a] : n.attributes) {
    if (key == "activation" || (skip_pads && (key == "pads" || key == "count_include_pad"))) continue;
    using K = graph::Attribute::Kind;
    switch (a.kind) {
      case K::Int:
        out.push_back(format::OnnxAttribute::integer(key, a.i));
        break;
      case K::Float:
        out.push_back(format::OnnxAttribute::real(key, static_cast<float>(a.f)));
        break;
      case K::String:
        out.push_back(format::OnnxAttribute::text(key, a.s));
        break;
      case K::Ints:
        out.push_back(format::OnnxAttribute::integers(key, a.ints));
        break;
      case K::Floats:
        throw std::invalid_argument("export_onnx: node " + n.describe() + ": attribute '" + key +
                                    "' is a list of floats, which this writer does not write");
    }
  }
  return out;
}

inline void write_node(OnnxGraphBuilder<float>& b, const graph::Node& n) {
  if (graph::is_quantized(n)) return write_node(b, onnx_quantized::dequantized(b, n));
  auto& nodes = b.graph().nodes;
  const std::string out = n.outputs.at(0);
  if (n.op == "Gelu") {
    // The formula's last node writes a fresh name; the value keeps its own through an Identity-free rename.
    const std::string v =
        onnx_layers::gelu_formula(b, n.name, n.inputs.at(0), n.get_string("approximate", "none") == "tanh");
    b.rename_output(v, out);
    return;
  }
  if (n.op == "AveragePool" && n.get_ints("pads", {0, 0, 0, 0}) != std::vector<std::int64_t>{0, 0, 0, 0}) {
    if (n.get_int("count_include_pad", 0) == 0)
      throw std::invalid_argument("export_onnx: node " + n.describe() +
                                  ": padded AveragePool without "
                                  "count_include_pad is not what ember computes");
    const auto p = n.get_ints("pads", {});
    const std::string padded =
        b.node("Pad", n.name + "/Pad",
               {n.inputs.at(0), b.int64_constant(n.name + "/pads", {0, 0, p[0], p[1], 0, 0, p[2], p[3]})});
    nodes.push_back({n.op, n.name, {padded}, {out}, onnx_attributes(n, true)});
    return;
  }
  const std::string act = n.get_string("activation", "");
  if (act.empty()) {
    nodes.push_back({n.op, n.name, n.inputs, n.outputs, onnx_attributes(n)});
    return;
  }
  if (act != "Relu" || (n.op != "Conv" && n.op != "Gemm"))
    throw std::invalid_argument("export_onnx: node " + n.describe() + ": fused activation '" + act + "' on " +
                                n.op);
  const std::string pre = b.fresh(n.name + "/pre_activation");
  nodes.push_back({n.op, n.name, n.inputs, {pre}, onnx_attributes(n)});
  nodes.push_back({act, b.fresh(n.name + "/" + act), {pre}, {out}, {}});
}

}  // namespace onnx_detail

// The ONNX model of a graph, as export_onnx writes it.
inline format::OnnxModel to_onnx(const graph::Graph& g,
                                 const std::map<std::string, std::string>& metadata = {}) {
  g.validate();
  format::OnnxModel onnx;
  onnx.producer_name = "ember";
  onnx.producer_version = ember::version();
  onnx.graph.name = "ember";
  OnnxGraphBuilder<float> b(onnx.graph);
  for (const auto& i : g.inputs()) b.reserve(i.name);
  for (const auto& [name, t] : g.initializers()) {
    if (onnx_quantized::is_int8_weight(g, name))
      onnx_quantized::int8_initializer(b, name, t);
    else
      b.parameter(name, t);
  }
  for (const auto& n : g.nodes()) {
    b.reserve(n.name);
    for (const auto& o : n.outputs) b.reserve(o);
  }
  for (const auto& n : g.nodes()) onnx_detail::write_node(b, n);
  using Dim = format::OnnxValueInfo::Dim;
  const auto value_info = [](const graph::ValueInfo& v) {
    format::OnnxValueInfo info{v.name, format::OnnxType::Float, {}};
    for (std::size_t i = 0; i < v.shape.size(); ++i)
      info.dims.push_back(v.shape[i] < 0 ? Dim{0, i == 0 ? "N" : "d" + std::to_string(i)}
                                         : Dim{v.shape[i], ""});
    return info;
  };
  for (const auto& i : g.inputs()) onnx.graph.inputs.push_back(value_info(i));
  for (const auto& o : g.outputs()) onnx.graph.outputs.push_back(value_info(o));
  std::map<std::string, std::string> meta = g.metadata();
  for (const auto& [k, v] : metadata) meta[k] = v;
  onnx.metadata.assign(meta.begin(), meta.end());
  return onnx;
}

// Writes the graph as an ONNX file to `path`, atomically (io_error naming the path when it cannot be).
inline void export_onnx(const graph::Graph& g, const std::string& path,
                        const std::map<std::string, std::string>& metadata = {}) {
  format::write_onnx(path, to_onnx(g, metadata));
}

}  // namespace ember::io
