#pragma once
// The operators of graph::Plan that imported ONNX graphs bring beyond the layers' own (graph/plan_steps.hpp):
// broadcasting Add/Sub/Mul/Div (an operand may be an initializer), Clip, HardSigmoid, HardSwish, Erf, and the
// layout operators Transpose, Concat, Slice, Pad and ReduceMean. Each is compiled once into an Op holding
// its geometry and run per sample (dimension 0, the batch, is the chunk's and never moves): an operator that
// would mix samples (a Transpose of the batch, a Concat or Slice along it) is refused when the plan is made.
// The math is kernels/elementwise.hpp's; the layout operators only move values.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/shapes_more.hpp"
#include "ember/kernels/activation.hpp"
#include "ember/kernels/elementwise.hpp"

namespace ember::graph::plan_detail {

// The most dimensions an Op takes (indices live on the stack: a warm run allocates nothing).
constexpr std::size_t kMaxRank = kernels::kMaxBinaryRank;

// One compiled operator: `in` holds its computed inputs (initializers are the Op's own), each of n samples.
struct Op {
  virtual ~Op() = default;
  virtual void run(const float* const* in, float* y, std::int64_t n) const = 0;
};

// The product of dimensions [from, to) of s.
inline std::int64_t numel_of(const Shape& s, std::size_t from = 0, std::size_t to = SIZE_MAX) {
  const auto first = s.begin() + static_cast<std::ptrdiff_t>(std::min(from, s.size()));
  const auto last = s.begin() + static_cast<std::ptrdiff_t>(std::min(to, s.size()));
  return first < last ? std::accumulate(first, last, std::int64_t(1), std::multiplies<>()) : 1;
}
// Row-major strides of a shape.
inline std::vector<std::int64_t> strides_of(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

[[noreturn]] inline void refuse(const Node& n, const std::string& what) {
  throw std::invalid_argument("Plan: node " + n.describe() + ": " + what);
}

struct BinaryOp final : Op {
  kernels::BinaryOp op{};
  const float* constant[2] = {nullptr, nullptr};  // an initializer operand, else null (a computed one)
  Shape shape;                                     // the output's, batch 1
  std::vector<std::int64_t> stride[2];
  std::int64_t step[2] = {0, 0}, out_size = 0;
  void run(const float* const* in, float* y, std::int64_t n) const override {
    int k = 0;
    const float* a = constant[0] ? constant[0] : in[k++];
    const float* b = constant[1] ? constant[1] : in[k];
    for (std::int64_t s = 0; s < n; ++s)
      kernels::binary_forward(y + s * out_size, a + s * step[0], b + s * step[1], op, shape, stride[0], stride[1]);
  }
};

struct PointwiseOp final : Op {
  std::function<void(float*, const float*, std::int64_t)> apply;
  std::int64_t size = 0;
  void run(const float* const* in, float* y, std::int64_t n) const override {
    kernels::pointwise_forward(y, in[0], n * size, apply);
  }
};

// Copies of strided views: Transpose, Slice and Pad read the input at `strides` from `offset` into a block
// of `shape` (Pad: into its interior, the border filled with `value`).
struct GatherOp final : Op {
  Shape shape;  // what is read, batch 1
  std::vector<std::int64_t> strides, out_strides;
  std::int64_t offset = 0, out_offset = 0, in_size = 0, out_size = 0;
  bool fill = false;
  float value = 0;
  void run(const float* const* in, float* y, std::int64_t n) const override {
    const std::int64_t total = numel_of(shape);
    std::int64_t idx[kMaxRank];
    for (std::int64_t s = 0; s < n; ++s) {
      const float* x = in[0] + s * in_size + offset;
      float* o = y + s * out_size;
      if (fill) std::fill(o, o + out_size, value);
      std::fill(idx, idx + kMaxRank, 0);
      for (std::int64_t i = 0; i < total; ++i) {
        std::int64_t src = 0, dst = out_offset;
        for (std::size_t k = 0; k < shape.size(); ++k) src += idx[k] * strides[k], dst += idx[k] * out_strides[k];
        o[dst] = x[src];
        for (std::size_t k = shape.size(); k-- > 0;)
          if (++idx[k] < shape[k]) break;
          else idx[k] = 0;
      }
    }
  }
};

struct ConcatOp final : Op {
  std::int64_t outer = 1, out_size = 0;
  std::vector<std::int64_t> block, in_size;  // per input: values per outer index, per sample
  void run(const float* const* in, float* y, std::int64_t n) const override {
    for (std::int64_t s = 0; s < n; ++s) {
      float* o = y + s * out_size;
      for (std::int64_t q = 0; q < outer; ++q)
        for (std::size_t k = 0; k < block.size(); ++k) {
          const float* x = in[k] + s * in_size[k] + q * block[k];
          o = std::copy(x, x + block[k], o);
        }
    }
  }
};

struct ReduceMeanOp final : Op {
  Shape shape;                            // the input's, batch 1
  std::vector<std::int64_t> out_strides;  // per input dimension, 0 where reduced
  std::int64_t in_size = 0, out_size = 0, count = 1;
  // Sums in the output, then scaled: a run allocates nothing.
  void run(const float* const* in, float* y, std::int64_t n) const override {
    std::int64_t idx[kMaxRank];
    const float scale = 1.0f / static_cast<float>(count);
    for (std::int64_t s = 0; s < n; ++s) {
      float* o = y + s * out_size;
      std::fill(o, o + out_size, 0.0f);
      std::fill(idx, idx + kMaxRank, 0);
      const float* x = in[0] + s * in_size;
      for (std::int64_t i = 0; i < in_size; ++i) {
        std::int64_t d = 0;
        for (std::size_t k = 0; k < shape.size(); ++k) d += idx[k] * out_strides[k];
        o[d] += x[i];
        for (std::size_t k = shape.size(); k-- > 0;)
          if (++idx[k] < shape[k]) break;
          else idx[k] = 0;
      }
      for (std::int64_t j = 0; j < out_size; ++j) o[j] *= scale;
    }
  }
};

inline bool is_op(const std::string& op) {
  static const std::set<std::string> ops = {"Add",  "Sub",     "Mul",   "Div",   "Clip",  "HardSigmoid", "HardSwish",
                                            "Erf",  "Transpose", "Concat", "Slice", "Pad", "ReduceMean"};
  return ops.count(op) != 0;
}

// The Op of node n; in: every input's shape (initializers' as they are, computed values' with batch 1),
// out: the output's. Computed inputs are read in the node's order.
inline std::shared_ptr<const Op> compile_op(const Node& n, const Graph& g, const std::vector<Shape>& in,
                                            const Shape& out) {
  const std::string& op = n.op;
  const auto is_init = [&](std::size_t i) { return g.has_initializer(n.inputs[i]); };
  for (const auto& s : in)
    if (s.size() > kMaxRank) refuse(n, "an input of " + std::to_string(s.size()) + " dimensions (at most 8)");
  if (out.size() > kMaxRank) refuse(n, "an output of " + std::to_string(out.size()) + " dimensions (at most 8)");
  if (is_broadcasting(op)) {
    auto b = std::make_shared<BinaryOp>();
    b->op = op == "Add" ? kernels::BinaryOp::Add : op == "Sub" ? kernels::BinaryOp::Sub
          : op == "Mul" ? kernels::BinaryOp::Mul : kernels::BinaryOp::Div;
    b->shape = out;
    b->out_size = numel_of(out);
    for (std::size_t k = 0; k < 2; ++k) {
      const Shape& s = in[k];
      if (is_init(k)) {
        b->constant[k] = g.initializer(n.inputs[k]).data();
        if (s.size() == out.size() && !s.empty() && s[0] != 1)
          refuse(n, "a constant operand " + to_string(s) + " spanning the batch");
      } else if (s.size() != out.size()) {
        refuse(n, "a computed operand " + to_string(s) + " of another rank than the result " + to_string(out));
      } else {
        b->step[k] = numel_of(s);
      }
      const auto st = strides_of(s);
      b->stride[k].assign(out.size(), 0);
      for (std::size_t i = 0; i < s.size(); ++i) {
        const std::size_t o = out.size() - s.size() + i;
        b->stride[k][o] = s[i] == 1 ? 0 : st[i];
      }
    }
    return b;
  }
  if (op == "Clip" || op == "HardSigmoid" || op == "HardSwish" || op == "Erf") {
    auto p = std::make_shared<PointwiseOp>();
    p->size = numel_of(in[0]) ;
    if (op == "Clip") {
      const auto lo = static_cast<float>(n.get_float("min", -3.4028234663852886e38));
      const auto hi = static_cast<float>(n.get_float("max", 3.4028234663852886e38));
      p->apply = [lo, hi](float* o, const float* i, std::int64_t k) { kernels::clip_forward(o, i, k, lo, hi); };
    } else if (op == "HardSigmoid") {
      const auto alpha = static_cast<float>(n.get_float("alpha", 0.2)), beta = static_cast<float>(n.get_float("beta", 0.5));
      p->apply = [alpha, beta](float* o, const float* i, std::int64_t k) {
        kernels::hard_sigmoid_forward(o, i, k, alpha, beta);
      };
    } else if (op == "HardSwish") {
      p->apply = kernels::hard_swish_forward<float>;
    } else {
      p->apply = kernels::erf_forward<float>;
    }
    return p;
  }
  if (op == "Concat") {
    const auto axis = static_cast<std::size_t>(detail::axis_of(n, n.get_int("axis", 0), out.size()));
    if (axis == 0) refuse(n, "a Concat along the batch");
    auto c = std::make_shared<ConcatOp>();
    c->outer = numel_of(out, 1, axis);
    c->out_size = numel_of(out);
    for (std::size_t k = 0; k < in.size(); ++k) {
      if (is_init(k)) refuse(n, "a constant input to Concat");
      c->block.push_back(numel_of(in[k], axis));
      c->in_size.push_back(numel_of(in[k]));
    }
    return c;
  }
  if (op == "ReduceMean") {
    auto r = std::make_shared<ReduceMeanOp>();
    r->shape = in[0];
    r->in_size = numel_of(in[0]);
    r->out_size = numel_of(out);
    std::set<std::int64_t> axes;
    for (auto a : n.get_ints("axes", {})) axes.insert(detail::axis_of(n, a, in[0].size()));
    if (axes.empty() || axes.count(0)) refuse(n, "a ReduceMean over the batch");
    Shape kept;
    for (std::size_t i = 0; i < in[0].size(); ++i) kept.push_back(axes.count(static_cast<std::int64_t>(i)) ? 1 : in[0][i]);
    const auto st = strides_of(kept);
    for (std::size_t i = 0; i < kept.size(); ++i) {
      const bool reduced = axes.count(static_cast<std::int64_t>(i)) != 0;
      r->out_strides.push_back(reduced ? 0 : st[i]);
      if (reduced) r->count *= in[0][i];
    }
    return r;
  }
  // Transpose, Slice, Pad: strided copies.
  auto c = std::make_shared<GatherOp>();
  const Shape& x = in[0];
  const auto st = strides_of(x);
  c->in_size = numel_of(x);
  c->out_size = numel_of(out);
  if (op == "Transpose") {
    auto perm = n.get_ints("perm", {});
    if (perm.empty())
      for (std::size_t i = x.size(); i-- > 0;) perm.push_back(static_cast<std::int64_t>(i));
    if (perm[0] != 0) refuse(n, "a Transpose that moves the batch");
    c->shape = out;
    for (auto p : perm) c->strides.push_back(st[static_cast<std::size_t>(p)]);
    c->out_strides = strides_of(out);
  } else if (op == "Slice") {
    c->shape = out;
    c->strides = st;
    c->out_strides = strides_of(out);
    const auto starts = n.get_ints("starts", {}), ends = n.get_ints("ends", {});
    auto axes = n.get_ints("axes", {}), steps = n.get_ints("steps", {});
    for (std::size_t k = 0; k < starts.size(); ++k) {
      const auto a = static_cast<std::size_t>(detail::axis_of(n, axes.empty() ? std::int64_t(k) : axes[k], x.size()));
      const std::int64_t step = steps.empty() ? 1 : steps[k];
      std::int64_t s = starts[k];
      detail::slice_count(x[a], s, ends[k], step);
      if (a == 0 && out[0] != x[0]) refuse(n, "a Slice of the batch");
      if (a == 0) continue;
      c->offset += s * st[a];
      c->strides[a] = st[a] * step;
    }
  } else if (op == "Pad") {
    const auto pads = n.get_ints("pads", {});
    if (pads[0] != 0 || pads[x.size()] != 0) refuse(n, "a Pad of the batch");
    c->shape = x;
    c->strides = st;
    c->out_strides = strides_of(out);
    c->fill = true;
    c->value = static_cast<float>(n.get_float("value", 0.0));
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (pads[i] < 0 || pads[i + x.size()] < 0) refuse(n, "negative pads");
      c->out_offset += pads[i] * c->out_strides[i];
    }
  } else {
    refuse(n, "the operator " + op + " is not supported");
  }
  return c;
}

}  // namespace ember::graph::plan_detail
