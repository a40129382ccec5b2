#pragma once
// A model as data: what graph::trace makes of a module, what graph::optimize rewrites, what graph::Plan runs
// and io::export_onnx writes. It speaks ONNX's language so that it maps onto a file one to one:
//   nodes        in topological order, each {op (ONNX's operator name: "Conv", "Gemm", "Relu", ...), name,
//                input and output value names, attributes with ONNX's meanings}
//   initializers named float tensors (parameters and buffers under their dotted names, "conv1.weight")
//   inputs       the values the caller gives, outputs the values it gets, each with its shape; the batch
//                (dimension 0) is dynamic, written -1
//   metadata     free key/value pairs (the exported file's metadata_props)
// An empty input name in a node is ONNX's "optional input not given". ember's own extension: a Conv or Gemm
// node may carry the string attribute "activation" ("Relu") that graph::optimize records when it fuses the
// activation after it; io::export_onnx writes it back as a node of its own.
// This header knows only core/: nn/module.hpp includes it (through graph/tracer.hpp) for the layers'
// describe.
#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/shape.hpp"
#include "ember/core/tensor.hpp"

namespace ember::graph {

// One attribute: INT, FLOAT, STRING, INTS or FLOATS as in ONNX. Floats are kept as double (BatchNorm's
// epsilon of 1e-5 then gives the layer's own numbers); a file stores them as float.
struct Attribute {
  enum class Kind { Int, Float, String, Ints, Floats };
  Kind kind = Kind::Int;
  std::int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<std::int64_t> ints;
  std::vector<double> floats;

  static Attribute integer(std::int64_t v) {
    Attribute a;
    a.i = v;
    return a;
  }
  static Attribute real(double v) {
    Attribute a;
    a.kind = Kind::Float;
    a.f = v;
    return a;
  }
  static Attribute text(std::string v) {
    Attribute a;
    a.kind = Kind::String;
    a.s = std::move(v);
    return a;
  }
  static Attribute integers(std::vector<std::int64_t> v) {
    Attribute a;
    a.kind = Kind::Ints;
    a.ints = std::move(v);
    return a;
  }
  static Attribute reals(std::vector<double> v) {
    Attribute a;
    a.kind = Kind::Floats;
    a.floats = std::move(v);
    return a;
  }
};

using Attributes = std::map<std::string, Attribute>;

struct Node {
  std::string op, name;
  std::vector<std::string> inputs, outputs;
  Attributes attributes;

  bool has(const std::string& key) const { return attributes.count(key) != 0; }
  // An attribute of the expected kind, or `fallback` (ONNX's default) when absent.
  std::int64_t get_int(const std::string& key, std::int64_t fallback) const {
    return has(key) ? get(key, Attribute::Kind::Int).i : fallback;
  }
  double get_float(const std::string& key, double fallback) const {
    return has(key) ? get(key, Attribute::Kind::Float).f : fallback;
  }
  std::string get_string(const std::string& key, const std::string& fallback) const {
    return has(key) ? get(key, Attribute::Kind::String).s : fallback;
  }
  std::vector<std::int64_t> get_ints(const std::string& key, std::vector<std::int64_t> fallback) const {
    return has(key) ? get(key, Attribute::Kind::Ints).ints : fallback;
  }
  // "Conv 'conv1'": how errors name the node.
  std::string describe() const { return op + " '" + name + "'"; }

 private:
  const Attribute& get(const std::string& key, Attribute::Kind kind) const {
    const Attribute& a = attributes.at(key);
    if (a.kind != kind)
      throw std::invalid_argument("graph: node " + describe() + ": attribute '" + key + "' has another kind");
    return a;
  }
};

// A graph input or output: its name and shape, dimension 0 (the batch) -1.
struct ValueInfo {
  std::string name;
  Shape shape;
};

class Graph {
 public:
  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& nodes() { return nodes_; }
  const std::map<std::string, Tensor>& initializers() const { return initializers_; }
  std::map<std::string, Tensor>& initializers() { return initializers_; }
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  std::vector<ValueInfo>& inputs() { return inputs_; }
  const std::vector<ValueInfo>& outputs() const { return outputs_; }
  std::vector<ValueInfo>& outputs() { return outputs_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }

  void add_node(Node n) { nodes_.push_back(std::move(n)); }
  void add_initializer(const std::string& name, Tensor t) {
    if (!initializers_.emplace(name, std::move(t)).second)
      throw std::invalid_argument("graph: the initializer '" + name + "' exists already");
  }
  bool has_initializer(const std::string& name) const { return initializers_.count(name) != 0; }
  const Tensor& initializer(const std::string& name) const {
    const auto it = initializers_.find(name);
    if (it == initializers_.end()) throw std::invalid_argument("graph: no initializer named '" + name + "'");
    return it->second;
  }

  // Indices of the nodes that read `value`, in order.
  std::vector<std::size_t> consumers(const std::string& value) const {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      for (const auto& in : nodes_[i].inputs)
        if (in == value) {
          out.push_back(i);
          break;
        }
    return out;
  }
  bool is_output(const std::string& value) const {
    for (const auto& o : outputs_)
      if (o.name == value) return true;
    return false;
  }

  // Throws std::invalid_argument naming the node and the value when a node reads a value defined neither by
  // an input, an initializer nor a node before it, when a value is written twice, or when an output is never
  // written.
  void validate() const {
    std::set<std::string> defined;
    for (const auto& i : inputs_) define(defined, i.name, "the graph input");
    for (const auto& [name, t] : initializers_) define(defined, name, "the initializer");
    for (const auto& n : nodes_) {
      if (n.op.empty()) throw std::invalid_argument("graph: node '" + n.name + "' has no op");
      for (const auto& in : n.inputs)
        if (!in.empty() && !defined.count(in))
          throw std::invalid_argument("graph: node " + n.describe() + " reads '" + in +
                                      "', which no input, initializer or earlier node defines");
      for (const auto& out : n.outputs) define(defined, out, "node " + n.describe());
    }
    for (const auto& o : outputs_)
      if (!defined.count(o.name))
        throw std::invalid_argument("graph: the output '" + o.name + "' is never written");
  }

 private:
  static void define(std::set<std::string>& defined, const std::string& name, const std::string& by) {
    if (name.empty() || !defined.insert(name).second)
      throw std::invalid_argument("graph: " + by + " writes '" + name + "', " +
                                  (name.empty() ? "an empty name" : "a value defined before"));
  }

  std::vector<Node> nodes_;
  std::map<std::string, Tensor> initializers_;
  std::vector<ValueInfo> inputs_, outputs_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace ember::graph
