#pragma once
// graph::optimize(g): an equal graph (outputs within 1e-5 relative) that does less work:
//   - Dropout and Identity removed (the identity at inference);
//   - a BatchNormalization folded into the Conv or Gemm before it, when that node's output feeds nothing
//   else:
//     W'[o] = W[o] s[o], b'[o] = (b[o] - mean[o]) s[o] + beta[o] with s = gamma / sqrt(var + eps), computed
//     in double; the folded weights are new initializers ("conv1.weight" -> "conv1.weight_folded");
//   - a Relu after a Conv or Gemm (whose output feeds nothing else) fused into it as the string attribute
//     "activation" = "Relu", ember's own extension: graph::Plan applies it as the product stores its output,
//     io::export_onnx writes it back as a Relu node.
// Initializers no node reads any more are dropped. Node and value names are kept where the node stays.
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"

namespace ember::graph {

namespace optimize_detail {

inline void rename_uses(Graph& g, const std::string& from, const std::string& to) {
  for (auto& n : g.nodes())
    for (auto& in : n.inputs)
      if (in == from) in = to;
}

// The node writing `value`, or -1.
inline long producer(const Graph& g, const std::string& value) {
  for (std::size_t i = 0; i < g.nodes().size(); ++i)
    for (const auto& o : g.nodes()[i].outputs)
      if (o == value) return static_cast<long>(i);
  return -1;
}

// Node i's only consumer is node j, and its output is no graph output.
inline bool feeds_only(const Graph& g, std::size_t i, std::size_t j) {
  const std::string& v = g.nodes()[i].outputs[0];
  const auto users = g.consumers(v);
  return !g.is_output(v) && users.size() == 1 && users[0] == j;
}

// The Conv or Gemm (without a fused activation) whose output only node j reads, or -1.
inline long product_before(const Graph& g, std::size_t j) {
  const long pi = producer(g, g.nodes()[j].inputs.at(0));
  if (pi < 0) return -1;
  const Node& p = g.nodes()[static_cast<std::size_t>(pi)];
  const bool product = p.op == "Conv" || p.op == "Gemm";
  return product && !p.has("activation") && feeds_only(g, static_cast<std::size_t>(pi), j) ? pi : -1;
}

inline std::string fresh_initializer(const Graph& g, const std::string& base) {
  std::string name = base;
  for (int k = 1; g.has_initializer(name); ++k) name = base + "_" + std::to_string(k);
  return name;
}

inline void remove_identities(Graph& g) {
  auto& nodes = g.nodes();
  for (std::size_t i = 0; i < nodes.size();) {
    const Node& n = nodes[i];
    if (n.op != "Dropout" && n.op != "Identity") {
      ++i;
      continue;
    }
    const std::string in = n.inputs.at(0), out = n.outputs.at(0);
    if (g.is_output(out)) {
      // The graph's output keeps its name: the node before takes it, when nothing else reads its value.
      const long p = producer(g, in);
      if (p < 0 || g.is_output(in) || g.consumers(in).size() != 1) {
        ++i;
        continue;
      }
      nodes[static_cast<std::size_t>(p)].outputs[0] = out;
    } else {
      rename_uses(g, out, in);
    }
    nodes.erase(nodes.begin() + static_cast<long>(i));
  }
}

inline void fold_batchnorms(Graph& g) {
  auto& nodes = g.nodes();
  for (std::size_t j = 0; j < nodes.size(); ++j) {
    const long pi = nodes[j].op == "BatchNormalization" ? product_before(g, j) : -1;
    if (pi < 0) continue;
    Node& p = nodes[static_cast<std::size_t>(pi)];
    if (p.op == "Gemm" &&
        (p.get_int("transA", 0) != 0 || p.get_float("alpha", 1) != 1 || p.get_float("beta", 1) != 1))
      continue;
    const Node& bn = nodes[j];
    const Tensor &gamma = g.initializer(bn.inputs.at(1)), &beta = g.initializer(bn.inputs.at(2)),
                 &mean = g.initializer(bn.inputs.at(3)), &var = g.initializer(bn.inputs.at(4));
    const double eps = bn.get_float("epsilon", 1e-5);
    Tensor w = g.initializer(p.inputs.at(1));
    const std::int64_t out = gamma.numel();
    const bool trans_b = p.op == "Gemm" && p.get_int("transB", 0) == 0;  // Gemm's W [in, out]: columns
    const std::int64_t per = w.numel() / out;
    Tensor b({out});
    for (std::int64_t o = 0; o < out; ++o) {
      const double s = gamma[o] / std::sqrt(static_cast<double>(var[o]) + eps);
      for (std::int64_t k = 0; k < per; ++k) {
        float& v = trans_b ? w[k * out + o] : w[o * per + k];
        v = static_cast<float>(v * s);
      }
      const double bias = p.inputs.size() > 2 && !p.inputs[2].empty() ? g.initializer(p.inputs[2])[o] : 0.0;
      b[o] = static_cast<float>((bias - mean[o]) * s + beta[o]);
    }
    const std::string wn = fresh_initializer(g, p.inputs[1] + "_folded");
    g.add_initializer(wn, std::move(w));
    const std::string bname = p.inputs.size() > 2 && !p.inputs[2].empty() ? p.inputs[2] : p.name + ".bias";
    const std::string bn_name = fresh_initializer(g, bname + "_folded");
    g.add_initializer(bn_name, std::move(b));
    p.inputs.resize(3);
    p.inputs[1] = wn;
    p.inputs[2] = bn_name;
    p.outputs[0] = bn.outputs[0];
    nodes.erase(nodes.begin() + static_cast<long>(j));
    --j;
  }
}

inline void fuse_activations(Graph& g) {
  auto& nodes = g.nodes();
  for (std::size_t j = 0; j < nodes.size(); ++j) {
    const long pi = nodes[j].op == "Relu" ? product_before(g, j) : -1;
    if (pi < 0) continue;
    Node& p = nodes[static_cast<std::size_t>(pi)];
    p.attributes["activation"] = Attribute::text("Relu");
    p.outputs[0] = nodes[j].outputs[0];
    nodes.erase(nodes.begin() + static_cast<long>(j));
    --j;
  }
}

inline void drop_unused_initializers(Graph& g) {
  std::set<std::string> used;
  for (const auto& n : g.nodes()) used.insert(n.inputs.begin(), n.inputs.end());
  for (auto it = g.initializers().begin(); it != g.initializers().end();)
    it = used.count(it->first) ? std::next(it) : g.initializers().erase(it);
}

}  // namespace optimize_detail

inline Graph optimize(const Graph& graph) {
  graph.validate();
  Graph g = graph;
  optimize_detail::remove_identities(g);
  optimize_detail::fold_batchnorms(g);
  optimize_detail::fuse_activations(g);
  optimize_detail::drop_unused_initializers(g);
  g.validate();
  return g;
}

}  // namespace ember::graph
