#pragma once
// The output shape of each operator graph::Plan runs, from its input shapes (initializers' included), with
// ONNX's meanings: what the tracer records as a layer describes itself and what the plan sizes its buffers
// from. An operator outside this list is one the plan cannot run: infer_shape throws naming it.
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/shape.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/shapes_more.hpp"

namespace ember::graph {

// Operators that map each value on its own: the output has the input's shape.
inline bool is_pointwise(const std::string& op) {
  static const std::set<std::string> ops = {
      "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu", "Softmax", "Dropout", "Identity", "BatchNormalization"};
  return ops.count(op) != 0;
}

namespace detail {
[[noreturn]] inline void bad_input(const Node& n, const std::string& what, const Shape& got) {
  throw shape_error("graph: node " + n.describe() + ": expected " + what + ", got " + to_string(got));
}

// A 2-d window's (kernel_shape, strides, pads, dilations) output extent along one axis.
inline std::int64_t window_out(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                               std::int64_t pad_begin, std::int64_t pad_end, std::int64_t dilation) {
  return (in + pad_begin + pad_end - (dilation * (kernel - 1) + 1)) / stride + 1;
}

inline Shape windowed(const Node& n, const Shape& x, std::int64_t channels) {
  if (x.size() != 4) bad_input(n, "input [N, C, H, W]", x);
  const auto k = n.get_ints("kernel_shape", {});
  const auto s = n.get_ints("strides", {1, 1}), d = n.get_ints("dilations", {1, 1});
  const auto p = n.get_ints("pads", {0, 0, 0, 0});
  if (k.size() != 2 || s.size() != 2 || d.size() != 2 || p.size() != 4)
    throw std::invalid_argument("graph: node " + n.describe() +
                                ": kernel_shape, strides and dilations need 2 values, pads 4");
  for (std::size_t i = 0; i < 2; ++i)
    if (k[i] < 1 || s[i] < 1 || d[i] < 1 || p[i] < 0 || p[i + 2] < 0)
      throw std::invalid_argument("graph: node " + n.describe() +
                                  ": kernel_shape, strides and dilations must be positive, pads not negative");
  const std::int64_t oh = window_out(x[2], k[0], s[0], p[0], p[2], d[0]);
  const std::int64_t ow = window_out(x[3], k[1], s[1], p[1], p[3], d[1]);
  if (oh <= 0 || ow <= 0) bad_input(n, "a plane at least as large as the window", x);
  return {x[0], channels, oh, ow};
}
}  // namespace detail

inline Shape infer_shape(const Node& n, const std::vector<Shape>& in) {
  if (in.empty() || in[0].empty())
    throw std::invalid_argument("graph: node " + n.describe() + " has no input");
  const Shape& x = in[0];
  const auto need = [&](std::size_t count) {
    if (in.size() < count)
      throw std::invalid_argument("graph: node " + n.describe() + " needs " + std::to_string(count) +
                                  " inputs");
  };
  if (is_pointwise(n.op)) {
    if (n.op == "BatchNormalization") {
      need(5);
      if (x.size() < 2 || in[1] != Shape{x[1]})
        detail::bad_input(n, "input [N, C, ...] matching its scale", x);
    }
    return x;
  }
  if (n.op == "Gemm") {
    need(2);
    const bool tb = n.get_int("transB", 0) != 0;
    const Shape& w = in[1];
    if (n.get_int("transA", 0) != 0)
      throw std::invalid_argument("graph: node " + n.describe() + ": transA (the batch must stay rows)");
    if (x.size() != 2 || w.size() != 2 || x[1] != (tb ? w[1] : w[0]))
      detail::bad_input(n, "input [N, " + std::to_string(w.size() == 2 ? (tb ? w[1] : w[0]) : 0) + "]", x);
    return {x[0], tb ? w[0] : w[1]};
  }
  if (n.op == "Conv") {
    need(2);
    const Shape& w = in[1];
    const std::int64_t group = n.get_int("group", 1);
    if (x.size() != 4 || w.size() != 4 || x[1] != w[1] * group)
      detail::bad_input(n, "input [N, " + std::to_string(w.size() == 4 ? w[1] * group : 0) + ", H, W]", x);
    return detail::windowed(n, x, w[0]);
  }
  if (n.op == "MaxPool" || n.op == "AveragePool") return detail::windowed(n, x, x.size() > 1 ? x[1] : 0);
  if (n.op == "GlobalAveragePool") {
    if (x.size() != 4) detail::bad_input(n, "input [N, C, H, W]", x);
    return {x[0], x[1], 1, 1};
  }
  if (n.op == "Flatten") {
    const auto axis = static_cast<std::size_t>(n.get_int("axis", 1));
    if (axis > x.size()) detail::bad_input(n, "at least " + std::to_string(axis) + " dimensions", x);
    std::int64_t a = 1, b = 1;
    for (std::size_t i = 0; i < x.size(); ++i) (i < axis ? a : b) *= x[i];
    return {a, b};
  }
  if (auto more = detail::infer_more(n, in)) return *more;
  throw std::invalid_argument("graph: node " + n.describe() + ": the operator " + n.op +
                              " is not one graph::Plan runs (graph/shapes.hpp lists them)");
}

}  // namespace ember::graph
