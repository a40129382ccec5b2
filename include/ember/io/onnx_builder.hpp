#pragma once
// The graph that io/onnx.hpp builds as it writes a traced module or a graph: nodes, initialisers and value names, each name
// unique in the graph. io/onnx_graph.hpp's node writer asks it for nodes and constants and gets back
// the names of their outputs.
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/format/onnx_proto.hpp"

namespace ember::io {

template <typename T>
class OnnxGraphBuilder {
 public:
  using Attributes = std::vector<format::OnnxAttribute>;
  static constexpr format::OnnxType kType =
      std::is_same_v<T, double> ? format::OnnxType::Double : format::OnnxType::Float;

  explicit OnnxGraphBuilder(format::OnnxGraph& graph) : graph_(graph) {}

  // A name not used yet in the graph: `base` itself, else base_1, base_2, ...
  std::string fresh(const std::string& base) {
    std::string name = base.empty() ? "value" : base;
    for (int k = 1; used_.count(name); ++k) name = (base.empty() ? "value" : base) + "_" + std::to_string(k);
    used_.insert(name);
    return name;
  }
  void reserve(const std::string& name) { used_.insert(name); }

  // A parameter or buffer under its module's dotted name ("conv1.weight"), so the file's weights read back by
  // name; the name must be free (two modules with one dotted name would be a bug of the walker).
  std::string parameter(const std::string& name, const TensorT<T>& t) {
    if (used_.count(name))
      throw std::logic_error("export_onnx: the name '" + name + "' is used twice in the graph");
    used_.insert(name);
    graph_.initializers.push_back(format::OnnxTensor::from(name, kType, std::vector<std::int64_t>(t.shape()),
                                                           t.data(), static_cast<std::size_t>(t.numel())));
    return name;
  }
  // An int64 constant (a Pad's pads, a Reshape's shape), named after the node that uses it.
  std::string int64_constant(const std::string& base, const std::vector<std::int64_t>& values) {
    const std::string name = fresh(base);
    graph_.initializers.push_back(format::OnnxTensor::from(name, format::OnnxType::Int64,
                                                           {static_cast<std::int64_t>(values.size())},
                                                           values.data(), values.size()));
    return name;
  }
  // A scalar constant of the model's type (GELU's 0.5, 1 and sqrt(2)).
  std::string scalar_constant(const std::string& base, T value) {
    const std::string name = fresh(base);
    graph_.initializers.push_back(format::OnnxTensor::from(name, kType, {}, &value, 1));
    return name;
  }

  // A node with one output, named `node_name` (a module's dotted name, with "/Op" for layers of several
  // nodes); returns the output's value name, also fresh from `node_name`.
  std::string node(const std::string& op, const std::string& node_name, std::vector<std::string> inputs,
                   Attributes attributes = {}) {
    std::string out = fresh(node_name.empty() ? op : node_name);
    graph_.nodes.push_back({op, out, std::move(inputs), {out}, std::move(attributes)});
    return out;
  }

  // Renames the value `from`, the output of the last node that wrote it, to `to` (the graph's "output").
  void rename_output(const std::string& from, const std::string& to) {
    for (auto it = graph_.nodes.rbegin(); it != graph_.nodes.rend(); ++it)
      for (auto& o : it->outputs)
        if (o == from) {
          o = to;
          return;
        }
    graph_.nodes.push_back({"Identity", to, {from}, {to}, {}});
  }

  format::OnnxGraph& graph() { return graph_; }

 private:
  format::OnnxGraph& graph_;
  std::set<std::string> used_;
};

}  // namespace ember::io
