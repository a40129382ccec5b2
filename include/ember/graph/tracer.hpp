#pragma once
// What a layer describes itself to (ModuleT::describe): the tracer builds a graph::Graph as graph::trace
// walks a model. A layer adds its parameters and buffers as initializers (under its dotted name:
// "conv1.weight"), then its nodes, each reading value names and giving the name of its output; the tracer
// follows every value's shape (graph/shapes.hpp), so a layer can read its input's (shape(x)). A container
// describes each child with child(name, module, x), which puts the child's name into the dotted names.
//   std::string describe(graph::Tracer& t, const std::string& x) const override {
//     return t.node("Gemm", {x, t.parameter("weight", weight_.value), t.parameter("bias", bias_.value)},
//                   {{"transB", graph::Attribute::integer(1)}});
//   }
// describe_model(model, input_shape, t) describes a whole model (graph::trace and nn::summary use it).
// This header knows only core/, graph/graph.hpp and graph/shapes.hpp: nn/module.hpp includes it.
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/shapes.hpp"

namespace ember::graph {

class Tracer {
 public:
  explicit Tracer(Graph& graph) : graph_(graph) {}

  // A graph input (the batch as given; the graph records it as -1).
  void input(const std::string& name, const Shape& shape) {
    reserve(name);
    shapes_[name] = shape;
    Shape dynamic = shape;
    if (!dynamic.empty()) dynamic[0] = -1;
    graph_.inputs().push_back({name, dynamic});
  }

  // A parameter or buffer of the layer being described, under its dotted name; stored as float.
  template <typename T>
  std::string parameter(const std::string& leaf, const TensorT<T>& t) {
    const std::string name = scope_.empty() ? leaf : scope_ + "." + leaf;
    if (used_.count(name))
      throw std::logic_error("trace: the name '" + name + "' is used twice in the graph");
    reserve(name);
    shapes_[name] = t.shape();
    graph_.add_initializer(name, t.template cast<float>());
    return name;
  }

  // A node of the layer being described, named after it (its dotted name, the op at the root; `suffix`, if
  // given, after a '/' for a layer of several nodes); returns its output's value name. A node that does not
  // fit its inputs is a shape_error naming the layer.
  std::string node(const std::string& op, std::vector<std::string> inputs, Attributes attributes = {},
                   const std::string& suffix = "") {
    std::string base = scope_.empty() ? op : scope_;
    if (!suffix.empty()) base += "/" + suffix;
    const std::string out = fresh(base);
    Node n{op, out, std::move(inputs), {out}, std::move(attributes)};
    std::vector<Shape> in;
    for (const auto& v : n.inputs) in.push_back(shape(v));
    try {
      shapes_[out] = infer_shape(n, in);
    } catch (const shape_error& e) {
      throw shape_error("trace: layer " + where() + ": " + e.what());
    }
    graph_.add_node(std::move(n));
    return out;
  }

  const Shape& shape(const std::string& value) const {
    const auto it = shapes_.find(value);
    if (it == shapes_.end()) throw std::logic_error("trace: no value named '" + value + "' in the graph");
    return it->second;
  }

  // `module` described under `name` (a child's name in its container), reading x; returns its output.
  template <class M>
  std::string child(const std::string& name, const M& module, const std::string& x) {
    const std::string saved = scope_, saved_layer = layer_;
    scope_ = scope_.empty() ? name : scope_ + "." + name;
    layer_ = module.repr().substr(0, module.repr().find('\n'));
    std::string out = module.describe(*this, x);
    outputs_[scope_] = shape(out);
    scope_ = saved;
    layer_ = saved_layer;
    return out;
  }

  // The dotted name of the layer being described ("" at the root).
  const std::string& scope() const { return scope_; }
  // The output shape of every module described so far (through child()), by its dotted name.
  const std::map<std::string, Shape>& module_shapes() const { return outputs_; }
  // The first line of the printout of the layer being described.
  const std::string& layer() const { return layer_; }
  // "'block.0' (Conv2d(...))": how errors name it.
  std::string where() const { return scope_.empty() ? layer_ : "'" + scope_ + "' (" + layer_ + ")"; }
  Graph& graph() { return graph_; }

  // A name not used yet: base itself, else base_1, base_2, ...
  std::string fresh(const std::string& base) {
    std::string name = base;
    for (int k = 1; used_.count(name); ++k) name = base + "_" + std::to_string(k);
    reserve(name);
    return name;
  }
  void reserve(const std::string& name) { used_.insert(name); }
  void set_root(const std::string& layer) { layer_ = layer; }

 private:
  Graph& graph_;
  std::map<std::string, Shape> shapes_, outputs_;
  std::set<std::string> used_;
  std::string scope_, layer_;
};

namespace detail {

// A describe's error, with the layer where it happened: "trace: layer 'block.0' (Conv2d(...)): what". A
// message from the tracer names the layer already; one that starts with the layer's printout loses it.
inline std::string traced_error(const Tracer& t, const std::string& what) {
  if (what.rfind("trace", 0) == 0) return what;
  std::string rest = what;
  const std::string& layer = t.layer();
  if (!layer.empty() && rest.rfind(layer + ": ", 0) == 0) rest = rest.substr(layer.size() + 2);
  return "trace: layer " + t.where() + ": " + rest;
}

}  // namespace detail

// The model described to t, reading "input" of input_shape; returns its output value. Afterwards
// t.module_shapes() holds every module's output shape (nn::summary reads them); on an error it holds those of
// the modules described before it.
template <class M>
std::string describe_model(const M& model, const Shape& input_shape, Tracer& t) {
  bool positive = input_shape.size() >= 2;
  for (auto d : input_shape) positive = positive && d > 0;
  if (!positive)
    throw shape_error("trace: input_shape must be [N, ...] with at least 2 dimensions, all positive, got " +
                      to_string(input_shape));
  t.input("input", input_shape);
  t.reserve("output");
  t.set_root(model.repr().substr(0, model.repr().find('\n')));
  std::string out;
  try {
    out = model.describe(t, "input");
  } catch (const shape_error& e) {
    throw shape_error(detail::traced_error(t, e.what()));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(detail::traced_error(t, e.what()));
  }
  return out;
}

}  // namespace ember::graph
