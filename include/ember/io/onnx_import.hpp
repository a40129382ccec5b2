#pragma once
// io::load_onnx(path): a graph::Graph from a .onnx file (opset 11 to 17), which graph::Plan runs.
//   - weights: float initialisers, graph inputs that are initialisers, Constant nodes; int64 ones serve the
//     shape arithmetic, which is folded at load (io/onnx_fold.hpp) so that the graph holds compute operators;
//   - inputs ONNX gives as constants (Reshape's shape, Squeeze/Unsqueeze's axes, Slice's starts..., Pad's
//     pads, Clip's min and max, Split's sizes) become attributes, as in ONNX's first opsets; Split becomes one
//     Slice per output; auto_pad becomes pads; a Conv's or MaxPool's asymmetric pads (and MaxPool's
//     ceil_mode) become a Pad node before it;
//   - the metadata_props become the graph's metadata.
// Errors are format_error: a malformed file names the byte offset (format/onnx_read.hpp), an operator that
// cannot run names the node and the operator.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/format/onnx_read.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/shapes.hpp"
#include "ember/io/onnx_fold.hpp"

namespace ember::io {

namespace onnx_import_detail {

inline const std::set<std::string>& compute_ops() {
  static const std::set<std::string> ops = {
      "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu", "LeakyRelu", "Clip",
      "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Erf", "Softmax", "MaxPool", "AveragePool",
      "GlobalAveragePool", "ReduceMean", "Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice",
      "Squeeze", "Unsqueeze", "Pad", "Dropout", "Identity"};
  return ops;
}

class Importer {
 public:
  Importer(const std::string& path, format::OnnxReadModel model) : path_(path), m_(std::move(model)) {}

  graph::Graph run() {
    check_opset();
    for (const auto& [k, v] : m_.metadata) g_.metadata()[k] = v;
    for (const auto& t : m_.graph.initializers) consts_[t.name] = from_tensor(t);
    for (const auto& v : m_.graph.inputs) {
      if (consts_.count(v.name)) continue;  // an initializer listed as an input (IR version < 4)
      if (!v.has_shape || v.dims.empty())
        throw format_error(path_ + ": the graph input '" + v.name + "' has no shape");
      Shape s(v.dims.begin(), v.dims.end());
      for (std::size_t i = 1; i < s.size(); ++i)
        if (s[i] <= 0 || s[i] > (std::int64_t(1) << 20))
          throw format_error(path_ + ": the graph input '" + v.name + "' has dimension " + std::to_string(i) +
                             " unknown; ember needs every size but the batch");
      s[0] = 1;
      std::int64_t total = 1;
      for (auto d : s) total = total <= (std::int64_t(1) << 31) / d ? total * d : (std::int64_t(1) << 31) + 1;
      if (total > (std::int64_t(1) << 31))
        throw format_error(path_ + ": the graph input '" + v.name + "' has more than 2^31 values a sample");
      shapes_[v.name] = s;
      s[0] = -1;
      g_.inputs().push_back({v.name, s});
    }
    for (std::size_t k = 0; k < m_.graph.nodes.size(); ++k) node(m_.graph.nodes[k], k);
    for (const auto& v : m_.graph.outputs) {
      const auto it = shapes_.find(v.name);
      if (it == shapes_.end())
        throw format_error(path_ + ": the graph output '" + v.name + "' is a constant or never computed");
      Shape s = it->second;
      s[0] = -1;
      g_.outputs().push_back({v.name, s});
    }
    try {
      g_.validate();
    } catch (const std::invalid_argument& e) {
      throw format_error(path_ + ": " + e.what());
    }
    return std::move(g_);
  }

 private:
  void check_opset() {
    for (const auto& [domain, version] : m_.opsets)
      if (domain.empty() || domain == "ai.onnx") opset_ = version;
    if (opset_ < 11 || opset_ > 17)
      throw format_error(path_ + ": opset " + std::to_string(opset_) +
                         (opset_ == 0 ? " (none for the default domain)" : "") +
                         "; ember reads opsets 11 to 17 (torch.onnx.export(..., opset_version=13))");
  }
  [[noreturn]] void fail(const graph::Node& n, const std::string& what) const {
    throw format_error(path_ + ": node '" + n.name + "' (" + n.op + "): " + what);
  }
  const Const* constant(const std::string& name) const {
    const auto it = consts_.find(name);
    return it == consts_.end() ? nullptr : &it->second;
  }
  // A constant input's integers, or `fallback` when it is not given.
  std::vector<std::int64_t> ints_input(const graph::Node& n, std::size_t k, std::vector<std::int64_t> fallback) {
    if (k >= n.inputs.size() || n.inputs[k].empty()) return fallback;
    const Const* c = constant(n.inputs[k]);
    if (!c) fail(n, "input " + std::to_string(k) + " ('" + n.inputs[k] + "') must be a constant");
    return c->ints();
  }
  // A float constant used by a compute node, as an initializer of the graph (a scalar as [1]).
  void weight(const graph::Node& n, const std::string& name) {
    if (g_.has_initializer(name)) return;
    const Const* c = constant(name);
    if (!c->is_float) fail(n, "the integer constant '" + name + "' as an operand");
    Tensor t(c->dims.empty() ? Shape{1} : c->dims);
    std::copy(c->f.begin(), c->f.end(), t.data());
    g_.add_initializer(name, std::move(t));
  }
  Shape shape_of(const std::string& v) const {
    if (const Const* c = constant(v)) return c->dims.empty() ? Shape{1} : c->dims;
    return shapes_.at(v);
  }

  // Attributes' and constants' misfits (a kind other than expected, an index past the end) as format_error.
  void node(const format::OnnxReadNode& r, std::size_t index) {
    graph::Node n;
    n.op = r.op_type;
    n.name = r.name.empty() ? r.op_type + "_" + std::to_string(index) : r.name;
    try {
      node(r, n);
    } catch (const std::logic_error& e) {
      fail(n, e.what());
    }
  }
  void node(const format::OnnxReadNode& r, graph::Node& n) {
    n.inputs = r.inputs;
    n.outputs = r.outputs;
    if (!r.domain.empty() && r.domain != "ai.onnx") fail(n, "the operator domain '" + r.domain + "' is not supported");
    for (const auto& o : r.outputs)
      if (o.empty() && &o == &r.outputs[0]) fail(n, "no output name");
    // Shape arithmetic: folded when every input is a constant (Shape only needs its input's shape).
    bool all_const = !r.inputs.empty() || r.op_type == "Constant";
    std::vector<const Const*> in;
    for (const auto& v : r.inputs) {
      in.push_back(v.empty() ? nullptr : constant(v));
      if (!v.empty() && !in.back() && !(r.op_type == "Shape" && shapes_.count(v))) all_const = false;
      if (!v.empty() && !in.back() && !shapes_.count(v)) fail(n, "reads '" + v + "', which nothing before it defines");
    }
    if (all_const) {
      try {
        if (auto c = fold(r, in, [&](const std::string& v) { return shapes_.at(v); })) {
          if (c->numel() > (std::size_t(1) << 26)) fail(n, "a constant of more than 2^26 values");
          consts_[r.outputs.at(0)] = std::move(*c);
          return;
        }
      } catch (const FoldError& e) {
        fail(n, e.what);
      }
    }
    if (!compute_ops().count(n.op)) fail(n, "the operator " + n.op + " is not supported by ember's ONNX import");
    if (in.empty() || (in[0] && n.op != "Add" && n.op != "Mul"))
      fail(n, "a compute operator on constants only or without input");
    for (const auto& a : r.attributes) attribute(n, a);
    prepare(n);
    if (n.op == "Split") return split(n);
    n.outputs.resize(1);  // Dropout's mask, MaxPool's indices, BatchNormalization's training outputs: unused
    add(std::move(n));
  }

  // Sizes stay far from overflow: every integer attribute within 2^31 (Slice's "to the end" clamped first).
  void check_ints(const graph::Node& n) const {
    constexpr std::int64_t kLimit = std::int64_t(1) << 31;
    for (const auto& [key, a] : n.attributes) {
      bool ok = a.i >= -kLimit && a.i <= kLimit;
      for (auto v : a.ints) ok = ok && v >= -kLimit && v <= kLimit;
      if (!ok) fail(n, "the attribute '" + key + "' holds a value beyond 2^31");
    }
  }

  void attribute(graph::Node& n, const format::OnnxReadAttribute& a) {
    switch (a.type) {
      case 1: n.attributes[a.name] = graph::Attribute::real(a.f); break;
      case 2: n.attributes[a.name] = graph::Attribute::integer(a.i); break;
      case 3: n.attributes[a.name] = graph::Attribute::text(a.s); break;
      case 6: n.attributes[a.name] = graph::Attribute::reals(std::vector<double>(a.floats.begin(), a.floats.end())); break;
      case 7: n.attributes[a.name] = graph::Attribute::integers(a.ints); break;
      default: fail(n, "the attribute '" + a.name + "' of type " + std::to_string(a.type) + " is not supported");
    }
  }

  // Constant inputs into attributes, ONNX's newer forms into the plan's.
  void prepare(graph::Node& n) {
    const std::string& op = n.op;
    const auto keep_inputs = [&](std::size_t count) { n.inputs.resize(std::min(count, n.inputs.size())); };
    if ((op == "Add" || op == "Mul") && n.inputs.size() == 2 && constant(n.inputs[0])) std::swap(n.inputs[0], n.inputs[1]);
    if (op == "Reshape") {
      auto s = ints_input(n, 1, {});
      const Shape x = shape_of(n.inputs[0]);
      std::int64_t rest = 1;
      for (std::size_t i = 1; i < s.size(); ++i) {
        if (s[i] == kBatch) fail(n, "the batch size in dimension " + std::to_string(i));
        rest *= s[i] == 0 && i < x.size() ? x[i] : s[i] == -1 ? 1 : s[i];
      }
      const bool keeps_batch = !s.empty() && (s[0] == kBatch || s[0] == 0 || s[0] == 1 ||
                                              (s[0] == -1 && rest > 0 && plan_size(x) == rest));
      if (!keeps_batch) fail(n, "a Reshape across the batch (dimension 0 must stay the batch)");
      s[0] = 0;
      n.attributes["shape"] = graph::Attribute::integers(s);
      keep_inputs(1);
    } else if ((op == "Squeeze" || op == "Unsqueeze") && n.inputs.size() > 1) {
      n.attributes["axes"] = graph::Attribute::integers(ints_input(n, 1, {}));
      keep_inputs(1);
    } else if (op == "Slice") {
      for (const char* key : {"starts", "ends"}) {
        auto v = ints_input(n, key[0] == 's' ? 1 : 2, n.get_ints(key, {}));
        for (auto& e : v) e = std::clamp<std::int64_t>(e, -(std::int64_t(1) << 31), std::int64_t(1) << 31);
        n.attributes[key] = graph::Attribute::integers(v);
      }
      n.attributes["axes"] = graph::Attribute::integers(ints_input(n, 3, n.get_ints("axes", {})));
      n.attributes["steps"] = graph::Attribute::integers(ints_input(n, 4, {}));
      keep_inputs(1);
    } else if (op == "Pad") {
      if (n.inputs.size() > 1) n.attributes["pads"] = graph::Attribute::integers(ints_input(n, 1, {}));
      if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
        const Const* v = constant(n.inputs[2]);
        if (!v || v->numel() != 1) fail(n, "constant_value must be one constant value");
        n.attributes["value"] = graph::Attribute::real(v->at(0));
      }
      keep_inputs(1);
    } else if (op == "Clip") {
      const char* names[] = {"", "min", "max"};
      for (std::size_t k = 1; k < 3 && k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        const Const* v = constant(n.inputs[k]);
        if (!v || v->numel() != 1) fail(n, std::string(names[k]) + " must be one constant value");
        n.attributes[names[k]] = graph::Attribute::real(v->at(0));
      }
      keep_inputs(1);
    } else if (op == "Dropout" || op == "Split") {
      if (op == "Split" && n.inputs.size() > 1 && !n.inputs[1].empty())
        n.attributes["split"] = graph::Attribute::integers(ints_input(n, 1, {}));
      keep_inputs(1);
    } else if (op == "Flatten") {
      const std::int64_t axis = n.get_int("axis", 1);
      if (axis == 0 || axis == -static_cast<std::int64_t>(shape_of(n.inputs[0]).size()))
        fail(n, "a Flatten from axis 0 mixes the batch");
      if (axis < 0) n.attributes["axis"] = graph::Attribute::integer(axis + static_cast<std::int64_t>(shape_of(n.inputs[0]).size()));
    } else if (op == "Softmax" && opset_ < 13) {
      const auto rank = static_cast<std::int64_t>(shape_of(n.inputs[0]).size());
      const std::int64_t axis = n.get_int("axis", 1);
      if (axis != rank - 1 && axis != -1) fail(n, "opset " + std::to_string(opset_) + "'s Softmax over a flattened axis " + std::to_string(axis));
    } else if (op == "Conv" || op == "MaxPool" || op == "AveragePool") {
      window(n);
    } else if (op == "BatchNormalization") {
      const Shape x = shape_of(n.inputs[0]);
      for (std::size_t k = 1; k < 5; ++k)
        if (x.size() < 2 || k >= n.inputs.size() || !constant(n.inputs[k]) ||
            static_cast<std::int64_t>(constant(n.inputs[k])->numel()) != x[1])
          fail(n, "scale, bias, mean and var must be constants of one value per channel");
    }
    for (std::size_t k = 0; k < n.inputs.size(); ++k)
      if (!n.inputs[k].empty() && constant(n.inputs[k])) weight(n, n.inputs[k]);
  }

  static std::int64_t plan_size(const Shape& x) {
    std::int64_t p = 1;
    for (std::size_t i = 1; i < x.size(); ++i) p *= x[i];
    return p;
  }

  // auto_pad, ceil_mode and asymmetric pads as explicit symmetric pads, with a Pad node before when needed.
  void window(graph::Node& n) {
    const Shape x = shape_of(n.inputs[0]);
    if (x.size() != 4) fail(n, "an input of rank " + std::to_string(x.size()) + " (ember runs 2-d windows)");
    std::vector<std::int64_t> k = n.get_ints("kernel_shape", {});
    if (n.op == "Conv") {  // the kernel reads the weight by kernel_shape: they must agree
      const Shape w = shape_of(n.inputs.at(1));
      if (w.size() != 4 || !constant(n.inputs[1])) fail(n, "the weight must be a constant [C_out, C_in/groups, kh, kw]");
      if (!k.empty() && k != std::vector<std::int64_t>{w[2], w[3]}) fail(n, "kernel_shape differs from the weight's");
      k = {w[2], w[3]};
      n.attributes["kernel_shape"] = graph::Attribute::integers(k);
      if (n.inputs.size() > 2 && !n.inputs[2].empty() &&
          (!constant(n.inputs[2]) || static_cast<std::int64_t>(constant(n.inputs[2])->numel()) != w[0]))
        fail(n, "the bias must be a constant of one value per output channel");
    }
    if (k.size() != 2) fail(n, "kernel_shape must have 2 values");
    const auto s = n.get_ints("strides", {1, 1}), d = n.get_ints("dilations", {1, 1});
    auto p = n.get_ints("pads", {0, 0, 0, 0});
    if (s.size() != 2 || d.size() != 2 || p.size() != 4) fail(n, "strides, dilations need 2 values, pads 4");
    for (std::size_t i = 0; i < 2; ++i)
      if (k[i] < 1 || s[i] < 1 || d[i] < 1 || p[i] < 0 || p[i + 2] < 0)
        fail(n, "kernel_shape, strides and dilations must be positive and pads not negative");
    if (n.op != "Conv" && (d[0] != 1 || d[1] != 1)) fail(n, "dilated pooling");
    const std::string autopad = n.get_string("auto_pad", "NOTSET");
    n.attributes.erase("auto_pad");
    for (std::size_t i = 0; i < 2; ++i) {
      const std::int64_t span = d[i] * (k[i] - 1) + 1, in = x[2 + i];
      if (autopad == "VALID") {
        p[i] = p[i + 2] = 0;
      } else if (autopad == "SAME_UPPER" || autopad == "SAME_LOWER") {
        const std::int64_t out = (in + s[i] - 1) / s[i];
        const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * s[i] + span - in);
        p[i] = autopad == "SAME_UPPER" ? total / 2 : total - total / 2;
        p[i + 2] = total - p[i];
      } else if (autopad != "NOTSET") {
        fail(n, "auto_pad " + autopad);
      }
      if (n.get_int("ceil_mode", 0) != 0) {
        const std::int64_t room = in + p[i] + p[i + 2] - span;
        std::int64_t out = (room + s[i] - 1) / s[i] + 1;
        if ((out - 1) * s[i] >= in + p[i]) --out;  // PyTorch's rule: no window starts in the end padding
        const std::int64_t extra = std::max<std::int64_t>(0, (out - 1) * s[i] + span - (in + p[i] + p[i + 2]));
        if (extra > 0 && n.op != "MaxPool") fail(n, "ceil_mode on an AveragePool whose windows it changes");
        p[i + 2] += extra;
      }
    }
    n.attributes.erase("ceil_mode");
    const bool symmetric = p[0] == p[2] && p[1] == p[3];
    if (symmetric) {
      n.attributes["pads"] = graph::Attribute::integers(p);
      return;
    }
    if (n.op == "AveragePool") fail(n, "asymmetric pads on an AveragePool");
    // A Pad node (with -inf before a MaxPool: padding never wins) takes what is not symmetric.
    const std::int64_t h = std::min(p[0], p[2]), w = std::min(p[1], p[3]);
    graph::Node pad;
    pad.op = "Pad";
    pad.name = n.name + "/pad";
    pad.inputs = {n.inputs[0]};
    pad.outputs = {n.name + "/padded"};
    pad.attributes["pads"] = graph::Attribute::integers({0, 0, p[0] - h, p[1] - w, 0, 0, p[2] - h, p[3] - w});
    pad.attributes["value"] = graph::Attribute::real(n.op == "MaxPool" ? -std::numeric_limits<double>::infinity() : 0.0);
    add(std::move(pad));
    n.inputs[0] = n.name + "/padded";
    n.attributes["pads"] = graph::Attribute::integers({h, w, h, w});
  }

  // Split as one Slice per output.
  void split(graph::Node& n) {
    const Shape x = shape_of(n.inputs[0]);
    const std::int64_t axis = n.get_int("axis", 0);
    if (axis < -static_cast<std::int64_t>(x.size()) || axis >= static_cast<std::int64_t>(x.size())) fail(n, "axis out of range");
    const auto a = static_cast<std::size_t>(axis < 0 ? axis + static_cast<std::int64_t>(x.size()) : axis);
    auto sizes = n.get_ints("split", {});
    const auto parts = static_cast<std::int64_t>(n.outputs.size());
    if (sizes.empty()) {
      if (parts == 0 || x[a] % parts != 0) fail(n, "cannot split " + std::to_string(x[a]) + " into " + std::to_string(parts));
      sizes.assign(static_cast<std::size_t>(parts), x[a] / parts);
    }
    if (static_cast<std::int64_t>(sizes.size()) != parts) fail(n, "split sizes do not match the outputs");
    std::int64_t start = 0;
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      graph::Node s;
      s.op = "Slice";
      s.name = n.name + "/" + std::to_string(k);
      s.inputs = {n.inputs[0]};
      s.outputs = {n.outputs[k]};
      s.attributes["starts"] = graph::Attribute::integers({start});
      s.attributes["ends"] = graph::Attribute::integers({start + sizes[k]});
      s.attributes["axes"] = graph::Attribute::integers({static_cast<std::int64_t>(a)});
      start += sizes[k];
      add(std::move(s));
    }
  }

  void add(graph::Node n) {
    check_ints(n);
    std::vector<Shape> in;
    for (const auto& v : n.inputs) in.push_back(v.empty() ? Shape{} : shape_of(v));
    Shape out;
    try {
      out = graph::infer_shape(n, in);
    } catch (const std::invalid_argument& e) {
      fail(n, e.what());
    }
    std::int64_t total = 1;
    for (auto d : out) {
      if (d < 0 || d > (std::int64_t(1) << 31) || (d > 0 && total > (std::int64_t(1) << 31) / d))
        fail(n, "an output of " + to_string(out) + " values (more than 2^31 a sample)");
      total *= d;
    }
    shapes_[n.outputs.at(0)] = out;
    g_.add_node(std::move(n));
  }

  std::string path_;
  format::OnnxReadModel m_;
  std::int64_t opset_ = 0;
  graph::Graph g_;
  std::map<std::string, Const> consts_;
  std::map<std::string, Shape> shapes_;  // computed values, batch 1
};

}  // namespace onnx_import_detail

// The graph of the .onnx file at `path`; format_error naming the file and the offset, or the node and the
// operator, when it cannot be read or run; io_error when it cannot be opened.
inline graph::Graph load_onnx(const std::string& path) {
  return onnx_import_detail::Importer(path, format::read_onnx(path)).run();
}

}  // namespace ember::io
