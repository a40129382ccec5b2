#pragma once
// How io::export_onnx writes a node graph::quantize_int8 marked (graph/plan_quantized.hpp's attributes): ONNX's
// QDQ form, which runtimes fuse into their own int8 kernels and onnx.checker accepts (opset 13):
//   x -> QuantizeLinear(x_scale, x_zero_point: uint8) -> DequantizeLinear -> the node's input
//   W (int8 initializer) -> DequantizeLinear(w_scales [out], zero points 0: int8, axis 0) -> the node's weight
// then the node itself in float, its ember_ attributes left out.
#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/format/onnx_proto.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/plan_quantized.hpp"
#include "ember/io/onnx_builder.hpp"

namespace ember::io::onnx_quantized {

// ONNX's TensorProto data types for 8-bit values (format::OnnxType names the wider ones).
inline constexpr auto kUint8 = static_cast<format::OnnxType>(2);
inline constexpr auto kInt8 = static_cast<format::OnnxType>(3);

inline format::OnnxTensor bytes_tensor(std::string name, format::OnnxType type, std::vector<std::int64_t> dims,
                                       const std::vector<std::int32_t>& values) {
  format::OnnxTensor t{std::move(name), type, std::move(dims), {}};
  for (std::int32_t v : values) t.raw.push_back(static_cast<unsigned char>(v & 0xff));
  return t;
}

// True when `name` is the weight of a quantized node of g (written as int8, not float).
inline bool is_int8_weight(const graph::Graph& g, const std::string& name) {
  for (const auto& n : g.nodes())
    if (graph::is_quantized(n) && n.inputs.size() > 1 && n.inputs[1] == name) return true;
  return false;
}

inline void int8_initializer(OnnxGraphBuilder<float>& b, const std::string& name, const Tensor& t) {
  b.reserve(name);
  std::vector<std::int32_t> v(static_cast<std::size_t>(t.numel()));
  for (std::int64_t i = 0; i < t.numel(); ++i) v[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(t[i]);
  b.graph().initializers.push_back(bytes_tensor(name, kInt8, std::vector<std::int64_t>(t.shape()), v));
}

// The Q/DQ nodes in front of a quantized node; returns the node as it is then written (float, dequantized
// inputs, no ember_ attributes).
inline graph::Node dequantized(OnnxGraphBuilder<float>& b, const graph::Node& n) {
  using namespace graph::quant_attr;
  auto& inits = b.graph().initializers;
  const std::string x_scale = b.scalar_constant(n.name + "/input_scale",
                                                static_cast<float>(n.get_float(kInputScale, 1)));
  const std::string x_zp = b.fresh(n.name + "/input_zero_point");
  inits.push_back(bytes_tensor(x_zp, kUint8, {}, {static_cast<std::int32_t>(n.get_int(kInputZeroPoint, 0))}));
  const std::string q = b.node("QuantizeLinear", n.name + "/QuantizeLinear", {n.inputs.at(0), x_scale, x_zp});
  const std::string x = b.node("DequantizeLinear", n.name + "/DequantizeLinear", {q, x_scale, x_zp});
  const auto& scales = n.attributes.at(kWeightScales).floats;
  std::vector<float> s(scales.begin(), scales.end());
  const std::string w_scale = b.fresh(n.name + "/weight_scales");
  inits.push_back(format::OnnxTensor::from(w_scale, format::OnnxType::Float,
                                           {static_cast<std::int64_t>(s.size())}, s.data(), s.size()));
  const std::string w_zp = b.fresh(n.name + "/weight_zero_points");
  inits.push_back(bytes_tensor(w_zp, kInt8, {static_cast<std::int64_t>(s.size())},
                               std::vector<std::int32_t>(s.size(), 0)));
  const std::string w = b.node("DequantizeLinear", n.name + "/weight/DequantizeLinear",
                               {n.inputs.at(1), w_scale, w_zp}, {format::OnnxAttribute::integer("axis", 0)});
  graph::Node out = n;
  out.inputs[0] = x;
  out.inputs[1] = w;
  out.attributes.erase(kInputScale);
  out.attributes.erase(kInputZeroPoint);
  out.attributes.erase(kWeightScales);
  return out;
}

}  // namespace ember::io::onnx_quantized
