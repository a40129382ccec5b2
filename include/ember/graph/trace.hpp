#pragma once
// graph::trace(model, input_shape): the model as a graph::Graph, with eval-mode semantics (running
// statistics, Dropout the identity), the way predict computes it. Each layer describes itself
// (ModuleT::describe, graph/tracer.hpp); containers describe their children in order. The graph reads "input"
// (input_shape, the batch dynamic) and writes "output"; initializers are the parameters and buffers the graph
// reads, under their dotted names. A layer that does not describe itself is a std::invalid_argument naming it
// and where it sits.
#include <map>
#include <stdexcept>
#include <string>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/tracer.hpp"
#include "ember/nn/module.hpp"

namespace ember::graph {

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
template <typename T>
std::string describe_model(const nn::ModuleT<T>& model, const Shape& input_shape, Tracer& t) {
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

template <typename T>
Graph trace(const nn::ModuleT<T>& model, const Shape& input_shape) {
  Graph g;
  Tracer t(g);
  const std::string out = describe_model(model, input_shape, t);
  // The last node's output becomes "output"; a model that writes nothing (an empty Sequential) gets an
  // Identity.
  Shape out_shape = t.shape(out);
  out_shape[0] = -1;
  if (out != "input" && !g.nodes().empty() && g.nodes().back().outputs[0] == out &&
      g.consumers(out).empty()) {
    g.nodes().back().outputs[0] = "output";
  } else {
    g.add_node({"Identity", "output", {out}, {"output"}, {}});
  }
  g.outputs().push_back({"output", out_shape});
  g.metadata()["model"] = model.repr();
  std::string dims = "[";
  for (std::size_t i = 1; i < input_shape.size(); ++i)
    dims += (i > 1 ? ", " : "") + std::to_string(input_shape[i]);
  g.metadata()["input_shape"] = dims + "]";
  g.validate();
  return g;
}

}  // namespace ember::graph
