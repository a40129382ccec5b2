#pragma once
// Output shapes of the operators io::load_onnx brings (graph/shapes.hpp asks here for what it does not list
// itself): broadcasting arithmetic, the hard activations, MatMul, layout (Reshape, Squeeze, Unsqueeze,
// Transpose, Concat, Slice, Pad) and ReduceMean. Inputs an ONNX file gives as constants (Reshape's shape,
// Slice's starts, ...) are attributes here, as in ONNX's first opsets: the loader moves them.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/shape.hpp"
#include "ember/graph/graph.hpp"

namespace ember::graph {

inline bool is_broadcasting(const std::string& op) {
  return op == "Add" || op == "Sub" || op == "Mul" || op == "Div";
}

namespace detail {

[[noreturn]] inline void bad_node(const Node& n, const std::string& what) {
  throw shape_error("graph: node " + n.describe() + ": " + what);
}

// NumPy's broadcasting of two shapes (right-aligned; a 1 stretches).
inline Shape broadcast(const Node& n, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::int64_t x = i < out.size() - a.size() ? 1 : a[i - (out.size() - a.size())];
    const std::int64_t y = i < out.size() - b.size() ? 1 : b[i - (out.size() - b.size())];
    if (x != y && x != 1 && y != 1) bad_node(n, "shapes " + to_string(a) + " and " + to_string(b) + " do not broadcast");
    out[i] = x == 1 ? y : x;
  }
  return out;
}

// An axis in [-rank, rank) as a positive one.
inline std::int64_t axis_of(const Node& n, std::int64_t axis, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (axis < -r || axis >= r) bad_node(n, "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(r));
  return axis < 0 ? axis + r : axis;
}

// Slice's clamped [start, end) with step along one axis of extent `dim`: the count of values taken.
inline std::int64_t slice_count(std::int64_t dim, std::int64_t& start, std::int64_t end, std::int64_t step) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<std::int64_t>(start, 0, dim);
    end = std::clamp<std::int64_t>(end, 0, dim);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<std::int64_t>(start, 0, dim - 1);
  end = std::clamp<std::int64_t>(end, -1, dim - 1);
  return start > end ? (start - end - step - 1) / -step : 0;
}

inline std::optional<Shape> infer_more(const Node& n, const std::vector<Shape>& in) {
  const Shape& x = in[0];
  const std::string& op = n.op;
  static const std::set<std::string> pointwise = {"Clip", "HardSigmoid", "HardSwish", "Erf"};
  if (pointwise.count(op)) return x;
  if (is_broadcasting(op)) {
    if (in.size() < 2) bad_node(n, "needs 2 inputs");
    return broadcast(n, x, in[1]);
  }
  if (op == "MatMul") {
    if (in.size() < 2 || in[1].size() != 2 || x.size() < 2 || x.back() != in[1][0])
      bad_node(n, "MatMul of " + to_string(x) + " by " + (in.size() < 2 ? "nothing" : to_string(in[1])) +
                      " (a 2-d right side whose rows match)");
    Shape out = x;
    out.back() = in[1][1];
    return out;
  }
  if (op == "Reshape") {
    Shape out = n.get_ints("shape", {});
    std::int64_t known = 1, all = 1, unknown = -1;
    for (auto d : x) all *= d;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (out[i] == 0) {
        if (i >= x.size()) bad_node(n, "shape copies dimension " + std::to_string(i) + " of " + to_string(x));
        out[i] = x[i];
      }
      if (out[i] == -1) {
        if (unknown >= 0) bad_node(n, "two -1 in the shape");
        unknown = static_cast<std::int64_t>(i);
      } else if (out[i] < 0) {
        bad_node(n, "a dimension of " + std::to_string(out[i]));
      } else {
        known *= out[i];
      }
    }
    if (unknown >= 0 && known > 0 && all % known == 0) out[static_cast<std::size_t>(unknown)] = all / known;
    std::int64_t total = 1;
    for (auto d : out) total *= d;
    if (total != all) bad_node(n, "cannot reshape " + to_string(x) + " to " + to_string(n.get_ints("shape", {})));
    return out;
  }
  if (op == "Squeeze" || op == "Unsqueeze") {
    const auto axes = n.get_ints("axes", {});
    if (op == "Squeeze") {
      std::set<std::int64_t> drop;
      for (auto a : axes) drop.insert(axis_of(n, a, x.size()));
      Shape out;
      for (std::size_t i = 0; i < x.size(); ++i) {
        const bool gone = axes.empty() ? x[i] == 1 : drop.count(static_cast<std::int64_t>(i)) != 0;
        if (gone && x[i] != 1) bad_node(n, "squeezes dimension " + std::to_string(i) + " of " + to_string(x));
        if (!gone) out.push_back(x[i]);
      }
      return out;
    }
    const std::size_t rank = x.size() + axes.size();
    std::set<std::int64_t> add;
    for (auto a : axes) add.insert(axis_of(n, a, rank));
    Shape out;
    for (std::size_t i = 0, k = 0; i < rank; ++i) out.push_back(add.count(static_cast<std::int64_t>(i)) ? 1 : x.at(k++));
    return out;
  }
  if (op == "Transpose") {
    auto perm = n.get_ints("perm", {});
    if (perm.empty())
      for (std::size_t i = x.size(); i-- > 0;) perm.push_back(static_cast<std::int64_t>(i));
    if (perm.size() != x.size()) bad_node(n, "perm of " + std::to_string(perm.size()) + " for " + to_string(x));
    Shape out;
    for (auto p : perm) out.push_back(x[static_cast<std::size_t>(axis_of(n, p, x.size()))]);
    return out;
  }
  if (op == "Concat") {
    const auto axis = static_cast<std::size_t>(axis_of(n, n.get_int("axis", 0), x.size()));
    Shape out = x;
    for (std::size_t k = 1; k < in.size(); ++k) {
      if (in[k].size() != x.size()) bad_node(n, "inputs of ranks " + to_string(x) + " and " + to_string(in[k]));
      for (std::size_t i = 0; i < x.size(); ++i)
        if (i != axis && in[k][i] != x[i]) bad_node(n, "inputs " + to_string(x) + " and " + to_string(in[k]));
      out[axis] += in[k][axis];
    }
    return out;
  }
  if (op == "Slice") {
    const auto starts = n.get_ints("starts", {}), ends = n.get_ints("ends", {});
    auto axes = n.get_ints("axes", {}), steps = n.get_ints("steps", {});
    if (axes.empty())
      for (std::size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<std::int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      bad_node(n, "starts, ends, axes and steps of different lengths");
    Shape out = x;
    for (std::size_t k = 0; k < starts.size(); ++k) {
      const auto a = static_cast<std::size_t>(axis_of(n, axes[k], x.size()));
      if (steps[k] == 0) bad_node(n, "a step of 0");
      std::int64_t s = starts[k];
      out[a] = slice_count(x[a], s, ends[k], steps[k]);
    }
    return out;
  }
  if (op == "Pad") {
    const auto pads = n.get_ints("pads", {});
    if (pads.size() != 2 * x.size()) bad_node(n, "pads of " + std::to_string(pads.size()) + " for " + to_string(x));
    if (n.get_string("mode", "constant") != "constant") bad_node(n, "only the constant mode");
    Shape out = x;
    for (std::size_t i = 0; i < x.size(); ++i) {
      out[i] += pads[i] + pads[i + x.size()];
      if (out[i] <= 0) bad_node(n, "pads leave nothing of " + to_string(x));
    }
    return out;
  }
  if (op == "ReduceMean") {
    auto axes = n.get_ints("axes", {});
    const bool keep = n.get_int("keepdims", 1) != 0;
    std::set<std::int64_t> r;
    for (auto a : axes) r.insert(axis_of(n, a, x.size()));
    Shape out;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const bool reduced = axes.empty() || r.count(static_cast<std::int64_t>(i));
      if (!reduced) out.push_back(x[i]);
      else if (keep) out.push_back(1);
    }
    return out;
  }
  return std::nullopt;
}

}  // namespace detail
}  // namespace ember::graph
