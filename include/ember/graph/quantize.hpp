#pragma once
// graph::quantize_int8(graph, calibration, options): the graph with its Conv and Gemm nodes in int8, for
// graph::Plan and io::export_onnx.
//   1. graph::optimize first (BatchNorms folded into the products before them, ReLUs fused), so a folded
//      weight is what gets quantized.
//   2. Calibration: the float Plan runs on each batch the caller gives; every quantized node's input range is
//      recorded, as min-max over all batches or (Calibration::Percentile) the `percentile`-th and
//      (100 - percentile)-th percentiles of all values seen, which ignores a few outliers.
//   3. Each Conv (group 1) and Gemm: its weight initializer replaced by s8 values (still a float tensor,
//      holding integers) with one symmetric scale per output channel; its input's u8 scale and zero point
//      (per tensor, asymmetric, 0 exact). The attributes are plan_quantized.hpp's quant_attr names; a Plan runs
//      the node as u8 x s8 -> s32, requantised to float; io::export_onnx writes QuantizeLinear,
//      DequantizeLinear (activation), DequantizeLinear (weight, axis 0) and the float node, ONNX's QDQ form.
//   keep_first_float / keep_last_float leave the first or last such node in float: the first layer sees the
//   raw image and the last gives the logits, where int8 costs the most accuracy for the least time.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/optimize.hpp"
#include "ember/graph/plan.hpp"
#include "ember/graph/plan_quantized.hpp"
#include "ember/kernels/quantize.hpp"

namespace ember::graph {

enum class Calibration { MinMax, Percentile };

struct QuantizeOptions {
  Calibration calibration = Calibration::MinMax;
  double percentile = 99.99;  // with Calibration::Percentile, in (50, 100]
  bool keep_first_float = false;
  bool keep_last_float = false;
};

namespace quantize_detail {

// The range [lo, hi] of `values` under the options.
inline std::pair<float, float> range_of(std::vector<float>& values, const QuantizeOptions& o) {
  if (values.empty()) return {0.0f, 0.0f};
  if (o.calibration == Calibration::MinMax) {
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    return {*lo, *hi};
  }
  const auto last = static_cast<double>(values.size() - 1);
  const auto at = [&](double q) {
    const auto k = static_cast<std::size_t>(std::llround(q * last));
    std::nth_element(values.begin(), values.begin() + static_cast<long>(k), values.end());
    return values[k];
  };
  const double p = o.percentile / 100.0;
  return {at(1.0 - p), at(p)};
}

// The same graph with `value` as its output, the nodes after the one that writes it left out.
inline Graph truncated(const Graph& g, const std::string& value) {
  Graph t;
  t.inputs() = g.inputs();
  t.initializers() = g.initializers();
  for (const auto& n : g.nodes()) {
    t.add_node(n);
    if (std::find(n.outputs.begin(), n.outputs.end(), value) != n.outputs.end()) break;
  }
  t.outputs().push_back({value, {}});
  return t;
}

}  // namespace quantize_detail

inline Graph quantize_int8(const Graph& graph, const std::vector<Tensor>& calibration,
                           const QuantizeOptions& options = {}) {
  if (calibration.empty())
    throw std::invalid_argument("quantize_int8: expected at least one calibration batch, got none");
  if (options.calibration == Calibration::Percentile && !(options.percentile > 50 && options.percentile <= 100))
    throw std::invalid_argument("quantize_int8: expected a percentile in (50, 100], got " +
                                std::to_string(options.percentile));
  Graph g = optimize(graph);
  if (g.inputs().size() != 1)
    throw std::invalid_argument("quantize_int8: the graph must have one input, got " +
                                std::to_string(g.inputs().size()));
  std::vector<std::size_t> targets;
  for (std::size_t i = 0; i < g.nodes().size(); ++i) {
    const Node& n = g.nodes()[i];
    if (is_quantized(n))
      throw std::invalid_argument("quantize_int8: node " + n.describe() + " is quantized already");
    const bool product = (n.op == "Conv" && n.get_int("group", 1) == 1) ||
                         (n.op == "Gemm" && n.get_int("transB", 0) == 1);
    if (product && n.inputs.size() > 1 && g.has_initializer(n.inputs[1])) targets.push_back(i);
  }
  if (options.keep_last_float && !targets.empty()) targets.pop_back();
  if (options.keep_first_float && !targets.empty()) targets.erase(targets.begin());
  // Calibration: the inputs of the targets, each through a plan of the graph up to it.
  const std::string input = g.inputs()[0].name;
  std::vector<std::pair<float, float>> ranges;
  for (std::size_t t : targets) {
    const std::string value = g.nodes()[t].inputs[0];
    std::vector<float> seen;
    for (const Tensor& batch : calibration) {
      if (value == input) {
        seen.insert(seen.end(), batch.data(), batch.data() + batch.numel());
        continue;
      }
      const Plan plan(quantize_detail::truncated(g, value), batch.shape());
      const Tensor out = plan.run(batch);
      seen.insert(seen.end(), out.data(), out.data() + out.numel());
    }
    for (float v : seen)
      if (!std::isfinite(v))
        throw std::invalid_argument("quantize_int8: the calibration gives a value that is not finite at the input "
                                    "of node " + g.nodes()[t].describe());
    ranges.push_back(quantize_detail::range_of(seen, options));
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    Node& n = g.nodes()[targets[i]];
    Tensor w = g.initializer(n.inputs[1]);
    const std::int64_t rows = w.size(0), cols = w.numel() / rows;
    std::vector<std::int8_t> q(static_cast<std::size_t>(w.numel()));
    std::vector<float> scales(static_cast<std::size_t>(rows));
    kernels::quantize_s8_rows(w.data(), q.data(), scales.data(), rows, cols);
    for (std::int64_t k = 0; k < w.numel(); ++k) w[k] = q[static_cast<std::size_t>(k)];
    // A fresh initializer: another node may share the float weight.
    std::string name = n.inputs[1] + "_int8";
    while (g.has_initializer(name)) name += "_";
    g.add_initializer(name, std::move(w));
    n.inputs[1] = name;
    const auto p = kernels::choose_u8_params(ranges[i].first, ranges[i].second);
    n.attributes[quant_attr::kInputScale] = Attribute::real(p.scale);
    n.attributes[quant_attr::kInputZeroPoint] = Attribute::integer(p.zero_point);
    n.attributes[quant_attr::kWeightScales] = Attribute::reals(std::vector<double>(scales.begin(), scales.end()));
  }
  optimize_detail::drop_unused_initializers(g);
  g.validate();
  return g;
}

}  // namespace ember::graph
