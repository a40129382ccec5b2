#pragma once
// ONNX export of a graph::Graph (graph/graph.hpp): its nodes, initializers, input and output as they are,
// opset 13, with the batch dimension dynamic ("N"). What opset 13 or common runtimes (OpenCV's dnn) do not
// take is written in operators it does take:
//   - ember's "activation" attribute on a Conv or Gemm (graph::optimize's fusion): the node, then a Relu
//   node;
//   - Gelu (an opset 20 operator): its formula (Erf or Tanh, Mul, Add, Div);
//   - a padded AveragePool with count_include_pad: Pad with zeros, then AveragePool without pads;
//   - a node graph::quantize_int8 marked: QuantizeLinear / DequantizeLinear pairs (io/onnx_quantized.hpp);
//   - the operands io::load_onnx keeps as attributes (Reshape's shape, Slice's starts, ...): constant inputs.
// The file's metadata_props are the graph's metadata() with the caller's entries, which win on equal keys.
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/format/onnx_proto.hpp"
#include "ember/graph/graph.hpp"
#include "ember/io/onnx_builder.hpp"
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

// n with the operands io::load_onnx made attributes (as ONNX's first opsets had them: Reshape's shape,
// Squeeze's and Unsqueeze's axes, Slice's starts..., Pad's pads and value, Clip's min and max) as the constant
// inputs opset 13 takes; nullopt when it has none.
template <typename T>
std::optional<graph::Node> with_constant_inputs(OnnxGraphBuilder<T>& b, const graph::Node& n) {
  const std::string& op = n.op;
  std::vector<const char*> ints, reals;
  if (op == "Reshape") ints = {"shape"};
  else if (op == "Squeeze" || op == "Unsqueeze") ints = {"axes"};
  else if (op == "Slice") ints = {"starts", "ends", "axes", "steps"};
  else if (op == "Pad") ints = {"pads"}, reals = {"value"};
  else if (op == "Clip") reals = {"min", "max"};
  bool any = false;
  for (const char* k : ints) any = any || n.has(k);
  for (const char* k : reals) any = any || n.has(k);
  if (!any) return std::nullopt;
  graph::Node m = n;
  m.inputs.resize(1);
  for (const char* k : ints) {
    auto v = n.get_ints(k, {});
    if (op == "Slice" && std::string(k) == "axes" && v.empty() && !n.get_ints("steps", {}).empty())
      for (std::size_t i = 0; i < n.get_ints("starts", {}).size(); ++i) v.push_back(static_cast<std::int64_t>(i));
    if (!v.empty()) m.inputs.push_back(b.int64_constant(n.name + "/" + k, v));
    m.attributes.erase(k);
  }
  for (const char* k : reals) {
    m.inputs.push_back(n.has(k) ? b.scalar_constant(n.name + "/" + k, static_cast<T>(n.get_float(k, 0))) : "");
    m.attributes.erase(k);
  }
  while (m.inputs.size() > 1 && m.inputs.back().empty()) m.inputs.pop_back();
  return m;
}

// n as ONNX nodes of b (of the model's type T: a double model's are double).
template <typename T>
void write_node(OnnxGraphBuilder<T>& b, const graph::Node& n) {
  if constexpr (std::is_same_v<T, float>) {
    if (graph::is_quantized(n)) return write_node(b, onnx_quantized::dequantized(b, n));
  }
  if (const auto m = with_constant_inputs(b, n)) return write_node(b, *m);
  auto& nodes = b.graph().nodes;
  const std::string out = n.outputs.at(0);
  if (n.op == "Gelu") {
    // The formula's last node writes a fresh name; the value keeps its own through an Identity-free rename.
    const std::string v =
        gelu_formula(b, n.name, n.inputs.at(0), n.get_string("approximate", "none") == "tanh");
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
