#pragma once
// The operators of graph::Plan (graph/plan.hpp): each node, or a run of nodes the plan fuses, compiled once
// into a Step that holds what its kernel needs (geometry, weights, epilogue) and run on a chunk of n samples
// by the same kernels/ functions the nn layers call. Dimensions are per sample; the batch is the chunk's.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/plan_ops.hpp"
#include "ember/graph/plan_quantized.hpp"
#include "ember/kernels/activation.hpp"
#include "ember/kernels/add.hpp"
#include "ember/kernels/avgpool.hpp"
#include "ember/kernels/batchnorm.hpp"
#include "ember/kernels/conv2d.hpp"
#include "ember/kernels/epilogue.hpp"
#include "ember/kernels/linear.hpp"
#include "ember/kernels/pool.hpp"
#include "ember/kernels/relu.hpp"
#include "ember/kernels/softmax.hpp"

namespace ember::graph::plan_detail {

enum class Kind {
  Gemm,
  Conv,
  MaxPool,
  AveragePool,
  GlobalAveragePool,
  BatchNorm,
  Relu,
  LeakyRelu,
  Sigmoid,
  Tanh,
  Gelu,
  Softmax,
  Add,
  Copy,
  General  // an Op of graph/plan_ops.hpp, over every computed input
};

// The buffers one call works in: the planned slots and the kernels' packing workspaces, allocated on first
// use and kept.
struct Workspace {
  std::vector<std::vector<float, AlignedAllocator<float>>> slots;
  kernels::Conv2dWorkspace<float> conv;
  std::vector<kernels::LinearWorkspace<float>> linear;  // one per Gemm step: each product keeps its shape
  LowScratch low;                                       // int8 and bf16 steps (plan_quantized.hpp)
};

struct Step {
  Kind kind = Kind::Copy;
  std::string node;                        // the (first) node's name, for errors
  std::vector<int> in;                     // value ids read
  int out = -1;                            // value id written
  std::int64_t in_size = 0, out_size = 0;  // values per sample
  // Gemm: rows of in_features -> out_features; relu from a fused activation.
  std::int64_t in_features = 0, out_features = 0;
  int linear_index = -1;
  const float *weight = nullptr, *bias = nullptr;
  bool relu = false;
  // Conv: geometry and the epilogue (ReLU, then an eval-mode BatchNormalization's affine map).
  kernels::Conv2dGeometry conv{};
  std::int64_t out_channels = 0;
  bool has_epilogue = false;
  std::vector<float> center, scale, shift;
  std::shared_ptr<const LowPrecision> low;  // a Conv or Gemm in int8 or bf16 (plan_quantized.hpp)
  // Pooling.
  kernels::Pool2dGeometry pool{};
  std::int64_t channels = 0, height = 0, width = 0;
  // BatchNorm: channels, the values per channel in a sample, running statistics and affine parameters.
  std::int64_t plane = 0;
  const float *mean = nullptr, *var = nullptr, *gamma = nullptr, *beta = nullptr;
  double eps = 1e-5, alpha = 0.01;
  bool tanh_approx = false;
  // Softmax over one dimension: cols values, inner apart, outer runs per sample.
  std::int64_t cols = 0, inner = 1, outer = 1;
  // General: the compiled operator. Gemm from a MatMul or a Gemm with other options: its weight and bias
  // rearranged once into Linear's layout, owned here.
  std::shared_ptr<const Op> op;
  std::vector<float> owned_weight, owned_bias;

  kernels::RowEpilogue<float> epilogue() const {
    if (!has_epilogue) return {};
    if (scale.empty()) return {relu, nullptr, nullptr, nullptr};
    return {relu, center.data(), scale.data(), shift.data()};
  }

  // a, b: the inputs (b for Add only), y the output, of n samples.
  void run(const float* a, const float* b, float* y, std::int64_t n, Workspace& ws) const {
    if (low) {
      const kernels::RowEpilogue<float> affine{false, center.data(), scale.data(), shift.data()};
      return low->run(a, y, n, bias, relu, scale.empty() ? nullptr : &affine, ws.low);
    }
    switch (kind) {
      case Kind::Gemm:
        kernels::linear_forward(y, a, weight, bias, n * (in_size / in_features), in_features, out_features,
                                ws.linear[static_cast<std::size_t>(linear_index)]);
        if (relu) kernels::relu_forward(y, y, n * out_size);
        return;
      case Kind::Conv: {
        const kernels::RowEpilogue<float> epi = epilogue();
        kernels::conv2d_forward(y, static_cast<float*>(nullptr), a, weight, bias, conv, n, out_channels,
                                ws.conv, has_epilogue ? &epi : nullptr);
        return;
      }
      case Kind::MaxPool:
        kernels::maxpool2d_forward_planes(pool, a, y, nullptr, n * channels);
        return;
      case Kind::AveragePool:
        kernels::avgpool2d_forward_planes(pool, y, a, n * channels);
        return;
      case Kind::GlobalAveragePool:
        kernels::adaptive_avgpool2d_forward_planes(y, a, n * channels, height, width, std::int64_t(1),
                                                   std::int64_t(1));
        return;
      case Kind::BatchNorm:
        kernels::batchnorm_eval_forward(y, a, n, channels, plane, mean, var, gamma, beta, eps);
        return;
      case Kind::Relu:
        kernels::relu_forward(a, y, n * in_size);
        return;
      case Kind::LeakyRelu: {
        const auto slope = static_cast<float>(alpha);
        kernels::pointwise_forward(y, a, n * in_size, [slope](float* o, const float* i, std::int64_t k) {
          kernels::leaky_relu_forward(o, i, k, slope);
        });
        return;
      }
      case Kind::Sigmoid:
        kernels::pointwise_forward(y, a, n * in_size, kernels::sigmoid_forward<float>);
        return;
      case Kind::Tanh:
        kernels::pointwise_forward(y, a, n * in_size, kernels::tanh_forward<float>);
        return;
      case Kind::Gelu: {
        const bool approx = tanh_approx;
        kernels::pointwise_forward(y, a, n * in_size, [approx](float* o, const float* i, std::int64_t k) {
          kernels::gelu_forward(o, i, k, approx);
        });
        return;
      }
      case Kind::Softmax:
        kernels::softmax_forward(a, y, n * outer, cols, inner);
        return;
      case Kind::Add:
        kernels::add_forward(y, a, b, n * in_size);
        return;
      case Kind::Copy:
        std::copy(a, a + n * in_size, y);
        return;
      case Kind::General:
        op->run(&a, y, n);  // the plan calls run_general when there are several inputs
        return;
    }
  }
};

inline std::int64_t per_sample(const Shape& s) {
  std::int64_t p = 1;
  for (std::size_t i = 1; i < s.size(); ++i) p *= s[i];
  return p;
}

inline kernels::Pool2dGeometry pool_geometry(const Node& n, const Shape& x) {
  const auto k = n.get_ints("kernel_shape", {}), s = n.get_ints("strides", {1, 1});
  const auto p = n.get_ints("pads", {0, 0, 0, 0});
  if (p[0] != p[2] || p[1] != p[3])
    throw std::invalid_argument("Plan: node " + n.describe() +
                                ": pads must be symmetric, got begin and end apart");
  return {x[2], x[3], k[0], k[1], s[0], s[1], p[0], p[1]};
}

// Gemm's B (alpha times it, transposed unless transB) and C (beta times it, one value per output or one for
// all), or MatMul's B transposed, as Linear's weight [out, in] and bias.
inline void linear_from(Step& s, const Node& n, const Graph& g) {
  const Tensor& b = g.initializer(n.inputs.at(1));
  const bool tb = n.op == "Gemm" && n.get_int("transB", 0) != 0;
  const auto alpha = static_cast<float>(n.op == "Gemm" ? n.get_float("alpha", 1) : 1.0);
  const std::int64_t rows = b.size(0), cols = b.size(1);
  s.in_features = tb ? cols : rows;
  s.out_features = tb ? rows : cols;
  s.owned_weight.resize(static_cast<std::size_t>(rows * cols));
  for (std::int64_t o = 0; o < s.out_features; ++o)
    for (std::int64_t i = 0; i < s.in_features; ++i)
      s.owned_weight[static_cast<std::size_t>(o * s.in_features + i)] =
          alpha * (tb ? b[o * cols + i] : b[i * cols + o]);
  s.weight = s.owned_weight.data();
  if (n.op == "Gemm" && n.inputs.size() > 2 && !n.inputs[2].empty()) {
    const Tensor& c = g.initializer(n.inputs[2]);
    if (c.numel() != s.out_features && c.numel() != 1)
      throw std::invalid_argument("Plan: node " + n.describe() + ": C must hold one value per output or one");
    const auto beta = static_cast<float>(n.get_float("beta", 1));
    for (std::int64_t o = 0; o < s.out_features; ++o) s.owned_bias.push_back(beta * c[c.numel() == 1 ? 0 : o]);
    s.bias = s.owned_bias.data();
  }
}

// The step of one node (fusions are the plan's, graph/plan.hpp). x: its first input's shape; in: every
// input's shape and out the output's (for the operators of graph/plan_ops.hpp).
inline Step compile(const Node& n, const Graph& g, const Shape& x, const std::vector<Shape>& in = {},
                    const Shape& out = {}) {
  Step s;
  s.node = n.name;
  const auto init = [&](std::size_t i) -> const float* {
    if (i >= n.inputs.size() || n.inputs[i].empty()) return nullptr;
    if (!g.has_initializer(n.inputs[i]))
      throw std::invalid_argument("Plan: node " + n.describe() + ": input " + std::to_string(i) + " ('" +
                                  n.inputs[i] + "') must be an initializer");
    return g.initializer(n.inputs[i]).data();
  };
  const std::string act = n.get_string("activation", "");
  if (!act.empty() && act != "Relu")
    throw std::invalid_argument("Plan: node " + n.describe() + ": fused activation '" + act +
                                "' is not supported");
  s.relu = act == "Relu";
  const auto& op = n.op;
  if ((op == "Gemm" && (n.get_int("transB", 0) != 1 || n.get_float("alpha", 1) != 1 ||
                        n.get_float("beta", 1) != 1)) ||
      op == "MatMul") {
    if (!g.has_initializer(n.inputs.at(1)))
      throw std::invalid_argument("Plan: node " + n.describe() + ": the right side must be an initializer");
    s.kind = Kind::Gemm;
    linear_from(s, n, g);
  } else if (op == "Gemm") {
    const Shape& w = g.initializer(n.inputs.at(1)).shape();
    if (n.get_int("transB", 0) != 1 || n.get_float("alpha", 1) != 1 || n.get_float("beta", 1) != 1)
      throw std::invalid_argument("Plan: node " + n.describe() +
                                  ": only Gemm with transB=1, alpha=beta=1 (Linear)");
    s.kind = Kind::Gemm;
    s.in_features = w[1];
    s.out_features = w[0];
    s.weight = init(1);
    s.bias = init(2);
    if (s.bias && g.initializer(n.inputs[2]).numel() != w[0])
      throw std::invalid_argument("Plan: node " + n.describe() + ": the bias must have one value per output");
  } else if (op == "Conv") {
    const Shape& w = g.initializer(n.inputs.at(1)).shape();
    const auto k = n.get_ints("kernel_shape", {w[2], w[3]}), st = n.get_ints("strides", {1, 1});
    const auto p = n.get_ints("pads", {0, 0, 0, 0}), d = n.get_ints("dilations", {1, 1});
    if (p[0] != p[2] || p[1] != p[3])
      throw std::invalid_argument("Plan: node " + n.describe() + ": pads must be symmetric");
    s.kind = Kind::Conv;
    s.conv = {x[1], x[2], x[3], k[0], k[1], st[0], st[1], p[0], p[1], d[0], d[1], n.get_int("group", 1)};
    s.out_channels = w[0];
    s.weight = init(1);
    s.bias = init(2);
    s.has_epilogue = s.relu;
  } else if (op == "MaxPool" || op == "AveragePool") {
    s.kind = op == "MaxPool" ? Kind::MaxPool : Kind::AveragePool;
    if (op == "AveragePool" && n.get_int("count_include_pad", 0) == 0 &&
        n.get_ints("pads", {0, 0, 0, 0}) != std::vector<std::int64_t>{0, 0, 0, 0})
      throw std::invalid_argument("Plan: node " + n.describe() +
                                  ": padded AveragePool needs count_include_pad=1");
    s.pool = pool_geometry(n, x);
    s.channels = x[1];
  } else if (op == "GlobalAveragePool") {
    s.kind = Kind::GlobalAveragePool;
    s.channels = x[1];
    s.height = x[2];
    s.width = x[3];
  } else if (op == "BatchNormalization") {
    s.kind = Kind::BatchNorm;
    s.channels = x[1];
    s.plane = per_sample(x) / x[1];
    s.gamma = init(1);
    s.beta = init(2);
    s.mean = init(3);
    s.var = init(4);
    s.eps = n.get_float("epsilon", 1e-5);
  } else if (op == "Relu") {
    s.kind = Kind::Relu;
  } else if (op == "LeakyRelu") {
    s.kind = Kind::LeakyRelu;
    s.alpha = n.get_float("alpha", 0.01);
  } else if (op == "Sigmoid" || op == "Tanh") {
    s.kind = op == "Sigmoid" ? Kind::Sigmoid : Kind::Tanh;
  } else if (op == "Gelu") {
    s.kind = Kind::Gelu;
    s.tanh_approx = n.get_string("approximate", "none") == "tanh";
  } else if (op == "Softmax") {
    const auto axis = static_cast<std::size_t>(detail::axis_of(n, n.get_int("axis", -1), x.size()));
    if (axis == 0) throw std::invalid_argument("Plan: node " + n.describe() + ": a Softmax over the batch");
    s.kind = Kind::Softmax;
    s.cols = x[axis];
    s.outer = numel_of(x, 1, axis);
    s.inner = numel_of(x, axis + 1);
  } else if (op == "Add" && in.size() == 2 && in[0] == in[1] && !g.has_initializer(n.inputs[0]) &&
             !g.has_initializer(n.inputs[1])) {
    s.kind = Kind::Add;
  } else if (is_op(op)) {
    s.kind = Kind::General;
    s.op = compile_op(n, g, in, out);
  } else if (op == "Dropout" || op == "Identity" || op == "Flatten" || op == "Reshape" || op == "Squeeze" ||
             op == "Unsqueeze") {
    s.kind = Kind::Copy;
  } else {
    throw std::invalid_argument("Plan: node " + n.describe() + ": the operator " + op + " is not supported");
  }
  if (s.relu && s.kind != Kind::Gemm && s.kind != Kind::Conv)
    throw std::invalid_argument("Plan: node " + n.describe() + ": an activation attribute on " + op);
  return s;
}

}  // namespace ember::graph::plan_detail
