#pragma once
// The operators of nn::GraphModule (nn/graph_module.hpp) that are no layer of ember, each with its backward:
// broadcasting Add/Sub/Mul/Div (an operand may be a constant), Clip, HardSigmoid, HardSwish, Erf, Softmax on
// any axis, ReduceMean, the layout operators Transpose, Slice, Pad and Concat (one index map per sample), and
// the reshapes (Flatten, Reshape, Squeeze, Unsqueeze, Identity). Geometry is fixed when the module is built
// from the graph's shapes (batch 1); dimension 0, the batch, is the call's. Forward does graph::Plan's
// arithmetic (the same kernels, the same order), so a GraphModule predicts what the plan runs.
// backward *adds* into the gradients of the computed inputs (a null one is not wanted).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/shapes.hpp"
#include "ember/kernels/elementwise.hpp"
#include "ember/kernels/softmax.hpp"

namespace ember::nn::graph_module_detail {

template <typename T>
struct FunctionalOp {
  virtual ~FunctionalOp() = default;
  // ins: the computed inputs in the node's order, batch first; out: [N, out_shape[1:]].
  virtual void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const = 0;
  virtual void backward(const std::vector<const TensorT<T>*>& ins, const TensorT<T>& out, const TensorT<T>& g,
                        const std::vector<TensorT<T>*>& grads) const = 0;
  virtual std::unique_ptr<FunctionalOp> clone() const = 0;
  Shape out_shape;  // batch 1
  std::int64_t out_size = 0;

  void resize_out(TensorT<T>& out, std::int64_t n) const {
    Shape s = out_shape;
    s[0] = n;
    if (out.shape() != s) out.resize(s);
  }
};

[[noreturn]] inline void refuse(const graph::Node& n, const std::string& what) {
  throw std::invalid_argument("GraphModule: node " + n.describe() + ": " + what);
}

inline std::int64_t count_of(const Shape& s, std::size_t from = 1) {
  std::int64_t c = 1;
  for (std::size_t i = from; i < s.size(); ++i) c *= s[i];
  return c;
}
inline std::vector<std::int64_t> strides(const Shape& s) {
  std::vector<std::int64_t> st(s.size(), 1);
  for (std::size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}
// Calls f(index) for every multi-index of s (dimension 0 included), in row-major order.
template <typename F>
void for_each_index(const Shape& s, F&& f) {
  std::vector<std::int64_t> idx(s.size(), 0);
  const std::int64_t total = count_of(s, 0);
  for (std::int64_t i = 0; i < total; ++i) {
    f(idx);
    for (std::size_t k = s.size(); k-- > 0;)
      if (++idx[k] < s[k]) break;
      else idx[k] = 0;
  }
}

template <typename T>
void add_into(TensorT<T>* g, std::int64_t i, T v) {
  if (g) (*g)[i] += v;
}

// Add, Sub, Mul, Div with broadcasting: one offset into each operand per output value of a sample.
template <typename T>
struct Binary final : FunctionalOp<T> {
  char op = '+';
  TensorT<T> constant[2];  // an initializer operand; empty for a computed one
  std::vector<std::int64_t> offset[2];  // empty for an operand of the output's shape: offset i is i
  std::int64_t step[2] = {0, 0};

  std::int64_t at(int k, std::int64_t i) const {
    return offset[k].empty() ? i : offset[k][static_cast<std::size_t>(i)];
  }
  T value(const std::vector<const TensorT<T>*>& ins, int k, std::int64_t s, std::int64_t i) const {
    if (constant[k].numel()) return constant[k][at(k, i)];
    return (*ins[constant[0].numel() || k == 0 ? 0 : 1])[s * step[k] + at(k, i)];
  }
  void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const override {
    const std::int64_t n = ins[0]->size(0);
    this->resize_out(out, n);
    for (std::int64_t s = 0; s < n; ++s)
      for (std::int64_t i = 0; i < this->out_size; ++i) {
        const T a = value(ins, 0, s, i), b = value(ins, 1, s, i);
        out[s * this->out_size + i] = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
      }
  }
  void backward(const std::vector<const TensorT<T>*>& ins, const TensorT<T>&, const TensorT<T>& g,
                const std::vector<TensorT<T>*>& grads) const override {
    TensorT<T>* ga = constant[0].numel() ? nullptr : grads[0];
    TensorT<T>* gb = constant[1].numel() ? nullptr : grads[constant[0].numel() ? 0 : 1];
    const std::int64_t n = g.size(0);
    for (std::int64_t s = 0; s < n; ++s)
      for (std::int64_t i = 0; i < this->out_size; ++i) {
        const T d = g[s * this->out_size + i], a = value(ins, 0, s, i), b = value(ins, 1, s, i);
        const std::int64_t ia = s * step[0] + at(0, i), ib = s * step[1] + at(1, i);
        add_into(ga, ia, op == '*' ? d * b : op == '/' ? d / b : d);
        add_into(gb, ib, op == '*' ? d * a : op == '/' ? -d * a / (b * b) : op == '-' ? -d : d);
      }
  }
  std::unique_ptr<FunctionalOp<T>> clone() const override { return std::make_unique<Binary>(*this); }
};

// Clip, HardSigmoid, HardSwish, Erf: the plan's kernels forward, their derivatives backward.
template <typename T>
struct Pointwise final : FunctionalOp<T> {
  std::string op;
  T lo = 0, hi = 0, alpha = 0, beta = 0;
  void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const override {
    const TensorT<T>& x = *ins[0];
    this->resize_out(out, x.size(0));
    if (op == "Clip") kernels::clip_forward(out.data(), x.data(), x.numel(), lo, hi);
    else if (op == "HardSigmoid") kernels::hard_sigmoid_forward(out.data(), x.data(), x.numel(), alpha, beta);
    else if (op == "HardSwish") kernels::hard_swish_forward(out.data(), x.data(), x.numel());
    else kernels::erf_forward(out.data(), x.data(), x.numel());
  }
  void backward(const std::vector<const TensorT<T>*>& ins, const TensorT<T>&, const TensorT<T>& g,
                const std::vector<TensorT<T>*>& grads) const override {
    if (!grads[0]) return;
    const TensorT<T>& x = *ins[0];
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const T v = x[i];
      T d;
      if (op == "Clip") d = v >= lo && v <= hi ? T(1) : T(0);  // PyTorch's clamp: the bounds pass the gradient
      else if (op == "HardSigmoid") d = alpha * v + beta > 0 && alpha * v + beta < 1 ? alpha : T(0);
      else if (op == "HardSwish") d = v < -3 ? T(0) : v > 3 ? T(1) : v / 3 + T(0.5);
      else d = static_cast<T>(1.1283791670955126 * std::exp(-static_cast<double>(v) * v));
      (*grads[0])[i] += d * g[i];
    }
  }
  std::unique_ptr<FunctionalOp<T>> clone() const override { return std::make_unique<Pointwise>(*this); }
};

// Softmax over one axis of any rank.
template <typename T>
struct Softmax final : FunctionalOp<T> {
  std::int64_t outer = 1, cols = 1, inner = 1;  // per sample
  void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const override {
    this->resize_out(out, ins[0]->size(0));
    kernels::softmax_forward(ins[0]->data(), out.data(), ins[0]->size(0) * outer, cols, inner);
  }
  void backward(const std::vector<const TensorT<T>*>&, const TensorT<T>& out, const TensorT<T>& g,
                const std::vector<TensorT<T>*>& grads) const override {
    if (!grads[0]) return;
    TensorT<T> d(out.shape());
    kernels::softmax_backward(out.data(), g.data(), d.data(), out.size(0) * outer, cols, inner);
    for (std::int64_t i = 0; i < d.numel(); ++i) (*grads[0])[i] += d[i];
  }
  std::unique_ptr<FunctionalOp<T>> clone() const override { return std::make_unique<Softmax>(*this); }
};

// Flatten, Reshape, Squeeze, Unsqueeze, Identity: the values as they are under another shape.
template <typename T>
struct Copy final : FunctionalOp<T> {
  void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const override {
    this->resize_out(out, ins[0]->size(0));
    std::copy(ins[0]->begin(), ins[0]->end(), out.begin());
  }
  void backward(const std::vector<const TensorT<T>*>&, const TensorT<T>&, const TensorT<T>& g,
                const std::vector<TensorT<T>*>& grads) const override {
    if (!grads[0]) return;
    for (std::int64_t i = 0; i < g.numel(); ++i) (*grads[0])[i] += g[i];
  }
  std::unique_ptr<FunctionalOp<T>> clone() const override { return std::make_unique<Copy>(*this); }
};

// Transpose, Slice, Pad, Concat: each output value of a sample is value `where` of input `which` (or the
// fill value where `where` is -1).
template <typename T>
struct Gather final : FunctionalOp<T> {
  std::vector<int> which;
  std::vector<std::int64_t> where, in_size;
  T fill = 0;
  void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const override {
    const std::int64_t n = ins[0]->size(0);
    this->resize_out(out, n);
    for (std::int64_t s = 0; s < n; ++s)
      for (std::int64_t i = 0; i < this->out_size; ++i) {
        const auto k = static_cast<std::size_t>(i);
        const auto w = static_cast<std::size_t>(which[k]);
        out[s * this->out_size + i] = where[k] < 0 ? fill : (*ins[w])[s * in_size[w] + where[k]];
      }
  }
  void backward(const std::vector<const TensorT<T>*>&, const TensorT<T>&, const TensorT<T>& g,
                const std::vector<TensorT<T>*>& grads) const override {
    for (std::int64_t s = 0; s < g.size(0); ++s)
      for (std::int64_t i = 0; i < this->out_size; ++i) {
        const auto k = static_cast<std::size_t>(i);
        const auto w = static_cast<std::size_t>(which[k]);
        if (where[k] >= 0) add_into(grads[w], s * in_size[w] + where[k], g[s * this->out_size + i]);
      }
  }
  std::unique_ptr<FunctionalOp<T>> clone() const override { return std::make_unique<Gather>(*this); }
};

// ReduceMean over the axes (never the batch): sums in the output, then scaled, as the plan.
template <typename T>
struct ReduceMean final : FunctionalOp<T> {
  std::vector<std::int64_t> to;  // per input value of a sample: its output value
  std::int64_t in_size = 0, count = 1;
  void forward(const std::vector<const TensorT<T>*>& ins, TensorT<T>& out) const override {
    const std::int64_t n = ins[0]->size(0);
    this->resize_out(out, n);
    out.zero();
    const T scale = T(1) / static_cast<T>(count);
    for (std::int64_t s = 0; s < n; ++s) {
      T* o = out.data() + s * this->out_size;
      for (std::int64_t i = 0; i < in_size; ++i) o[to[static_cast<std::size_t>(i)]] += (*ins[0])[s * in_size + i];
      for (std::int64_t j = 0; j < this->out_size; ++j) o[j] *= scale;
    }
  }
  void backward(const std::vector<const TensorT<T>*>&, const TensorT<T>&, const TensorT<T>& g,
                const std::vector<TensorT<T>*>& grads) const override {
    if (!grads[0]) return;
    const T scale = T(1) / static_cast<T>(count);
    for (std::int64_t s = 0; s < g.size(0); ++s)
      for (std::int64_t i = 0; i < in_size; ++i)
        (*grads[0])[s * in_size + i] += g[s * this->out_size + to[static_cast<std::size_t>(i)]] * scale;
  }
  std::unique_ptr<FunctionalOp<T>> clone() const override { return std::make_unique<ReduceMean>(*this); }
};

// The operator of node n, or null when it is none of these. in: every input's shape (computed ones batch 1),
// constant(k): input k's initializer, or null for a computed value.
template <typename T, typename ConstantOf>
std::unique_ptr<FunctionalOp<T>> make_op(const graph::Node& n, const std::vector<Shape>& in, const Shape& out,
                                         ConstantOf&& constant) {
  using graph::detail::axis_of;
  const std::string& op = n.op;
  std::unique_ptr<FunctionalOp<T>> result;
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    auto b = std::make_unique<Binary<T>>();
    b->op = op == "Add" ? '+' : op == "Sub" ? '-' : op == "Mul" ? '*' : '/';
    for (int k = 0; k < 2; ++k) {
      const Shape& s = in[static_cast<std::size_t>(k)];
      if (const Tensor* c = constant(static_cast<std::size_t>(k))) {
        b->constant[k] = c->template cast<T>();
        if (s.size() == out.size() && s[0] != 1) refuse(n, "a constant operand " + to_string(s) + " spanning the batch");
      } else if (s.size() != out.size()) {
        refuse(n, "a computed operand " + to_string(s) + " of another rank than the result " + to_string(out));
      } else {
        b->step[k] = count_of(s, 0);
      }
      const auto st = strides(s);
      std::vector<std::int64_t> st_out(out.size(), 0);
      for (std::size_t i = 0; i < s.size(); ++i) st_out[out.size() - s.size() + i] = s[i] == 1 ? 0 : st[i];
      if (s == out) continue;
      auto& offs = b->offset[k];
      for_each_index(out, [&](const std::vector<std::int64_t>& idx) {
        std::int64_t o = 0;
        for (std::size_t i = 0; i < idx.size(); ++i) o += idx[i] * st_out[i];
        offs.push_back(o);
      });
    }
    if (b->constant[0].numel() && b->constant[1].numel()) refuse(n, "two constant operands");
    result = std::move(b);
  } else if (op == "Clip" || op == "HardSigmoid" || op == "HardSwish" || op == "Erf") {
    auto p = std::make_unique<Pointwise<T>>();
    p->op = op;
    p->lo = static_cast<T>(static_cast<float>(n.get_float("min", -3.4028234663852886e38)));
    p->hi = static_cast<T>(static_cast<float>(n.get_float("max", 3.4028234663852886e38)));
    p->alpha = static_cast<T>(static_cast<float>(n.get_float("alpha", 0.2)));
    p->beta = static_cast<T>(static_cast<float>(n.get_float("beta", 0.5)));
    result = std::move(p);
  } else if (op == "Softmax") {
    const auto axis = static_cast<std::size_t>(axis_of(n, n.get_int("axis", -1), in[0].size()));
    if (axis == 0) refuse(n, "a Softmax over the batch");
    auto s = std::make_unique<Softmax<T>>();
    s->cols = in[0][axis];
    s->outer = count_of(Shape(in[0].begin(), in[0].begin() + static_cast<std::ptrdiff_t>(axis)), 1);
    s->inner = count_of(in[0], axis + 1);
    result = std::move(s);
  } else if (op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity") {
    result = std::make_unique<Copy<T>>();
  } else if (op == "ReduceMean") {
    auto r = std::make_unique<ReduceMean<T>>();
    std::set<std::int64_t> axes;
    for (auto a : n.get_ints("axes", {})) axes.insert(axis_of(n, a, in[0].size()));
    if (axes.empty() || axes.count(0)) refuse(n, "a ReduceMean over the batch");
    Shape kept;
    for (std::size_t i = 0; i < in[0].size(); ++i) {
      const bool reduced = axes.count(static_cast<std::int64_t>(i)) != 0;
      kept.push_back(reduced ? 1 : in[0][i]);
      if (reduced) r->count *= in[0][i];
    }
    const auto st = strides(kept);
    r->in_size = count_of(in[0], 0);
    for_each_index(in[0], [&](const std::vector<std::int64_t>& idx) {
      std::int64_t o = 0;
      for (std::size_t i = 0; i < idx.size(); ++i) o += axes.count(static_cast<std::int64_t>(i)) ? 0 : idx[i] * st[i];
      r->to.push_back(o);
    });
    result = std::move(r);
  } else if (op == "Transpose" || op == "Slice" || op == "Pad" || op == "Concat") {
    auto g = std::make_unique<Gather<T>>();
    for (std::size_t k = 0; k < in.size(); ++k) {
      if (constant(k)) refuse(n, "a constant input");
      g->in_size.push_back(count_of(in[k], 0));
    }
    const Shape& x = in[0];
    const auto st = strides(x);
    std::vector<std::int64_t> start(x.size(), 0), step(x.size(), 1);
    std::vector<std::int64_t> perm;
    std::size_t axis = 0;
    if (op == "Transpose") {
      perm = n.get_ints("perm", {});
      if (perm.empty())
        for (std::size_t i = x.size(); i-- > 0;) perm.push_back(static_cast<std::int64_t>(i));
      if (perm[0] != 0) refuse(n, "a Transpose that moves the batch");
    } else if (op == "Slice") {
      const auto starts = n.get_ints("starts", {}), ends = n.get_ints("ends", {});
      const auto axes = n.get_ints("axes", {}), steps = n.get_ints("steps", {});
      for (std::size_t k = 0; k < starts.size(); ++k) {
        const auto a = static_cast<std::size_t>(axis_of(n, axes.empty() ? std::int64_t(k) : axes[k], x.size()));
        std::int64_t s = starts[k];
        const std::int64_t sp = steps.empty() ? 1 : steps[k];
        graph::detail::slice_count(x[a], s, ends[k], sp);
        if (a == 0) refuse(n, "a Slice of the batch");
        start[a] = s;
        step[a] = sp;
      }
    } else if (op == "Pad") {
      const auto pads = n.get_ints("pads", {});
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (pads[i] < 0 || pads[i + x.size()] < 0) refuse(n, "negative pads");
        start[i] = -pads[i];
      }
      if (pads[0] != 0 || pads[x.size()] != 0) refuse(n, "a Pad of the batch");
      g->fill = static_cast<T>(n.get_float("value", 0.0));
    } else {
      axis = static_cast<std::size_t>(axis_of(n, n.get_int("axis", 0), out.size()));
      if (axis == 0) refuse(n, "a Concat along the batch");
    }
    for_each_index(out, [&](const std::vector<std::int64_t>& o) {
      std::int64_t w = 0;
      int which = 0;
      if (op == "Transpose") {
        for (std::size_t k = 0; k < o.size(); ++k) w += o[k] * st[static_cast<std::size_t>(perm[k])];
      } else if (op == "Concat") {
        std::int64_t along = o[axis];
        while (along >= in[static_cast<std::size_t>(which)][axis]) along -= in[static_cast<std::size_t>(which++)][axis];
        const auto sw = strides(in[static_cast<std::size_t>(which)]);
        for (std::size_t k = 0; k < o.size(); ++k) w += (k == axis ? along : o[k]) * sw[k];
      } else {
        for (std::size_t k = 0; k < o.size() && w >= 0; ++k) {
          const std::int64_t i = start[k] + o[k] * step[k];
          w = i < 0 || i >= x[k] ? -1 : w + i * st[k];
        }
      }
      g->which.push_back(which);
      g->where.push_back(w);
    });
    result = std::move(g);
  } else {
    return nullptr;
  }
  result->out_shape = out;
  result->out_size = count_of(out, 0);
  return result;
}

}  // namespace ember::nn::graph_module_detail
