#pragma once
// Constant folding for io::load_onnx (io/onnx_import.hpp): the shape arithmetic torch.onnx.export writes
// (Shape, Gather, Unsqueeze, Squeeze, Concat, Slice, Cast, ConstantOfShape, Reshape, Identity, Constant and
// Add/Sub/Mul/Div of constants) evaluated at load on known shapes, so that the graph holds compute operators
// only. A computed value's dimension 0 is the batch, unknown until run time: Shape gives it as kBatch, which
// Gather, Unsqueeze, Concat and Slice carry along and Reshape turns into "keep the batch"; arithmetic on it
// is refused.
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ember/core/shape.hpp"
#include "ember/format/onnx_read.hpp"

namespace ember::io::onnx_import_detail {

constexpr std::int64_t kBatch = std::numeric_limits<std::int64_t>::min() + 7;

struct Const {
  Shape dims;
  bool is_float = false;
  std::vector<float> f;
  std::vector<std::int64_t> i;
  std::size_t numel() const { return is_float ? f.size() : i.size(); }
  double at(std::size_t k) const { return is_float ? f[k] : static_cast<double>(i[k]); }
  std::vector<std::int64_t> ints() const {
    if (!is_float) return i;
    std::vector<std::int64_t> out;
    for (float v : f) out.push_back(static_cast<std::int64_t>(v));
    return out;
  }
};

inline Const from_tensor(const format::OnnxReadTensor& t) {
  Const c;
  c.dims.assign(t.dims.begin(), t.dims.end());
  c.is_float = t.is_float;
  c.f = t.f;
  c.i = t.i;
  return c;
}

struct FoldError {
  std::string what;
};

inline std::int64_t norm_axis(std::int64_t a, std::size_t rank) {
  const auto r = static_cast<std::int64_t>(rank);
  if (a < -r || a >= r) throw FoldError{"axis " + std::to_string(a) + " out of range for rank " + std::to_string(r)};
  return a < 0 ? a + r : a;
}

inline const format::OnnxReadAttribute* find_attr(const format::OnnxReadNode& n, const std::string& name) {
  for (const auto& a : n.attributes)
    if (a.name == name) return &a;
  return nullptr;
}

// Picks entries `idx` of a 1-d constant (Gather, Slice).
inline Const pick(const Const& c, const std::vector<std::int64_t>& idx, Shape dims) {
  Const out;
  out.dims = std::move(dims);
  out.is_float = c.is_float;
  for (auto k : idx) {
    if (k < 0 || static_cast<std::size_t>(k) >= c.numel()) throw FoldError{"an index out of range"};
    if (c.is_float) out.f.push_back(c.f[static_cast<std::size_t>(k)]);
    else out.i.push_back(c.i[static_cast<std::size_t>(k)]);
  }
  return out;
}

// The folded output of node n from its inputs (null for an input not given), or nullopt when n is not a
// shape operator. `shape_of` gives a computed value's shape (batch 1) for Shape.
template <class ShapeOf>
std::optional<Const> fold(const format::OnnxReadNode& n, const std::vector<const Const*>& in, ShapeOf&& shape_of) {
  const std::string& op = n.op_type;
  const auto need = [&](std::size_t k) -> const Const& {
    if (k >= in.size() || !in[k]) throw FoldError{"input " + std::to_string(k) + " is not a constant"};
    return *in[k];
  };
  const auto attr_i = [&](const std::string& name, std::int64_t fallback) {
    const auto* a = find_attr(n, name);
    return a ? a->i : fallback;
  };
  if (op == "Constant") {
    Const c;
    if (const auto* a = find_attr(n, "value"); a && !a->t.empty()) return from_tensor(a->t[0]);
    if (const auto* a = find_attr(n, "value_float")) return Const{{}, true, {a->f}, {}};
    if (const auto* a = find_attr(n, "value_int")) return Const{{}, false, {}, {a->i}};
    if (const auto* a = find_attr(n, "value_floats"))
      return Const{{static_cast<std::int64_t>(a->floats.size())}, true, a->floats, {}};
    if (const auto* a = find_attr(n, "value_ints"))
      return Const{{static_cast<std::int64_t>(a->ints.size())}, false, {}, a->ints};
    throw FoldError{"a Constant without a value this reader knows"};
  }
  if (op == "Shape") {
    Shape s;
    if (!in.empty() && in[0]) {
      s = in[0]->dims;
    } else {
      s = shape_of(n.inputs.at(0));
      if (!s.empty()) s[0] = kBatch;
    }
    const auto r = static_cast<std::int64_t>(s.size());
    std::int64_t lo = attr_i("start", 0), hi = attr_i("end", r);
    lo = std::clamp<std::int64_t>(lo < 0 ? lo + r : lo, 0, r);
    hi = std::clamp<std::int64_t>(hi < 0 ? hi + r : hi, 0, r);
    Const c;
    c.i.assign(s.begin() + lo, s.begin() + std::max(lo, hi));
    c.dims = {static_cast<std::int64_t>(c.i.size())};
    return c;
  }
  if (op == "Identity") return need(0);
  if (op == "Gather") {
    const Const &data = need(0), &idx = need(1);
    if (data.dims.size() != 1 || norm_axis(attr_i("axis", 0), 1) != 0)
      throw FoldError{"Gather on constants of rank other than 1"};
    std::vector<std::int64_t> k = idx.ints();
    for (auto& v : k) v = v < 0 ? v + data.dims[0] : v;
    return pick(data, k, idx.dims);
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    Const c = need(0);
    std::vector<std::int64_t> axes;
    if (const auto* a = find_attr(n, "axes")) axes = a->ints;
    else if (in.size() > 1 && in[1]) axes = in[1]->ints();
    if (op == "Unsqueeze") {
      const std::size_t rank = c.dims.size() + axes.size();
      std::vector<std::int64_t> norm;
      for (auto a : axes) norm.push_back(norm_axis(a, rank));
      std::sort(norm.begin(), norm.end());
      for (auto a : norm) c.dims.insert(c.dims.begin() + a, 1);
    } else {
      Shape kept;
      for (std::size_t d = 0; d < c.dims.size(); ++d) {
        bool drop = axes.empty() && c.dims[d] == 1;
        for (auto a : axes) drop = drop || norm_axis(a, c.dims.size()) == static_cast<std::int64_t>(d);
        if (!drop) kept.push_back(c.dims[d]);
      }
      c.dims = kept;
    }
    return c;
  }
  if (op == "Concat") {
    Const c = need(0);
    if (c.dims.size() != 1) throw FoldError{"Concat of constants of rank other than 1"};
    for (std::size_t k = 1; k < in.size(); ++k) {
      const Const& d = need(k);
      if (d.dims.size() != 1 || d.is_float != c.is_float) throw FoldError{"Concat of unlike constants"};
      c.f.insert(c.f.end(), d.f.begin(), d.f.end());
      c.i.insert(c.i.end(), d.i.begin(), d.i.end());
    }
    c.dims = {static_cast<std::int64_t>(c.numel())};
    return c;
  }
  if (op == "Slice") {
    const Const& data = need(0);
    if (data.dims.size() != 1) throw FoldError{"Slice of constants of rank other than 1"};
    std::int64_t start = need(1).ints().at(0), end = need(2).ints().at(0);
    const std::int64_t step = in.size() > 4 && in[4] ? in[4]->ints().at(0) : 1;
    if (step == 0) throw FoldError{"a Slice step of 0"};
    const std::int64_t dim = data.dims[0];
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    std::vector<std::int64_t> idx;
    if (step > 0)
      for (std::int64_t k = std::clamp<std::int64_t>(start, 0, dim); k < std::clamp<std::int64_t>(end, 0, dim); k += step)
        idx.push_back(k);
    else
      for (std::int64_t k = std::clamp<std::int64_t>(start, -1, dim - 1); k > std::clamp<std::int64_t>(end, -1, dim - 1); k += step)
        idx.push_back(k);
    return pick(data, idx, {static_cast<std::int64_t>(idx.size())});
  }
  if (op == "Cast") {
    Const c = need(0);
    const std::int64_t to = attr_i("to", 1);
    const bool to_float = to == 1 || to == 10 || to == 11;
    if (to_float && !c.is_float) {
      for (auto v : c.i) {
        if (v == kBatch) throw FoldError{"a Cast of the batch size to float"};
        c.f.push_back(static_cast<float>(v));
      }
      c.i.clear();
    } else if (!to_float && c.is_float) {
      for (auto v : c.f) c.i.push_back(static_cast<std::int64_t>(v));
      c.f.clear();
    }
    c.is_float = to_float;
    return c;
  }
  if (op == "ConstantOfShape") {
    const auto dims = need(0).ints();
    Const c{{}, true, {}, {}};
    std::int64_t count = 1;
    for (auto d : dims) {
      if (d < 0 || d > (std::int64_t(1) << 20) || count * d > (std::int64_t(1) << 20))
        throw FoldError{d == kBatch ? "ConstantOfShape of the batch size" : "ConstantOfShape of a huge shape"};
      count *= d;
    }
    c.dims.assign(dims.begin(), dims.end());
    Const value{{}, true, {0.0f}, {}};
    if (const auto* a = find_attr(n, "value"); a && !a->t.empty()) value = from_tensor(a->t[0]);
    if (value.numel() != 1) throw FoldError{"ConstantOfShape's value is not one value"};
    c.is_float = value.is_float;
    if (c.is_float) c.f.assign(static_cast<std::size_t>(count), value.f[0]);
    else c.i.assign(static_cast<std::size_t>(count), value.i[0]);
    return c;
  }
  if (op == "Reshape" && in.size() > 1 && in[0] && in[1]) {
    Const c = *in[0];
    auto dims = in[1]->ints();
    std::int64_t known = 1, unknown = -1;
    for (std::size_t k = 0; k < dims.size(); ++k) {
      if (dims[k] == 0 && k < c.dims.size()) dims[k] = c.dims[k];
      if (dims[k] == -1) unknown = static_cast<std::int64_t>(k);
      else if (dims[k] < 0) throw FoldError{"a Reshape of a constant to the batch size"};
      else known *= dims[k];
    }
    const auto total = static_cast<std::int64_t>(c.numel());
    if (unknown >= 0 && known > 0) dims[static_cast<std::size_t>(unknown)] = total / known;
    std::int64_t count = 1;
    for (auto d : dims) count = d > 0 && count <= total ? count * d : (d == 0 ? 0 : total + 1);
    if (count != total) throw FoldError{"a Reshape of " + std::to_string(total) + " constant values to another count"};
    c.dims.assign(dims.begin(), dims.end());
    return c;
  }
  if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && in.size() == 2 && in[0] && in[1]) {
    const Const &a = *in[0], &b = *in[1];
    const std::size_t na = a.numel(), nb = b.numel();
    if (na != nb && na != 1 && nb != 1) throw FoldError{"arithmetic on constants of unlike sizes"};
    Const c = na >= nb ? a : b;
    c.is_float = a.is_float || b.is_float;
    const std::size_t count = std::max(na, nb);
    c.f.clear();
    c.i.clear();
    for (std::size_t k = 0; k < count; ++k) {
      const double x = a.at(na == 1 ? 0 : k), y = b.at(nb == 1 ? 0 : k);
      if (!c.is_float && (x == static_cast<double>(kBatch) || y == static_cast<double>(kBatch)))
        throw FoldError{"arithmetic on the batch size"};
      const double r = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : (c.is_float ? x / y : 0);
      if (c.is_float) c.f.push_back(static_cast<float>(r));
      else if (op == "Div" && y == 0) throw FoldError{"an integer division by 0"};
      else c.i.push_back(op == "Div" ? static_cast<std::int64_t>(x) / static_cast<std::int64_t>(y)
                                     : static_cast<std::int64_t>(r));
    }
    return c;
  }
  return std::nullopt;
}

}  // namespace ember::io::onnx_import_detail
