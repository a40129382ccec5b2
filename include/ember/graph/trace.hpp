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
