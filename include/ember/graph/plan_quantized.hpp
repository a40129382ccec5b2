#pragma once
// The low-precision steps of graph::Plan (graph/plan.hpp): a Conv or Gemm step (plan_steps.hpp) lowered to
//   int8   a node graph::quantize_int8 marked (graph/quantize.hpp): its input quantized to u8 with the node's
//          activation scale and zero point (per tensor), im2row for a convolution (channels last, so that
//          kernel rows copy whole; the border at the zero point, which stands for 0), the u8 x s8 product (kernels/gemm_int8.hpp), requantised to float with
//          the per-channel weight scales, bias and ReLU as it is stored;
//   bf16   with Precision::BFloat16, a float node: weights rounded to bf16 and packed once here, activations
//          rounded as the product reads them, float accumulation (kernels/gemm_bf16.hpp).
// Steps exchange float values, as the QuantizeLinear / DequantizeLinear pairs of the exported file do, so a
// lowered step sits among float steps unchanged. Grouped convolutions (depthwise) stay float.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/kernels/epilogue.hpp"
#include "ember/kernels/gemm_bf16.hpp"
#include "ember/kernels/gemm_int8.hpp"
#include "ember/kernels/im2col.hpp"
#include "ember/kernels/im2row.hpp"
#include "ember/kernels/quantize.hpp"

namespace ember::graph {

// The attributes graph::quantize_int8 puts on a Conv or Gemm whose weight initializer then holds s8 values.
namespace quant_attr {
inline const char* const kInputScale = "ember_input_scale";            // Float
inline const char* const kInputZeroPoint = "ember_input_zero_point";   // Int, 0..255
inline const char* const kWeightScales = "ember_weight_scales";        // Floats, one per output channel
}  // namespace quant_attr

inline bool is_quantized(const Node& n) { return n.has(quant_attr::kInputScale); }

namespace plan_detail {

// Per-call buffers of the lowered steps (one set per plan workspace).
struct LowScratch {
  std::vector<std::uint8_t> chw, image, rows8;
  std::vector<float> rows, hwc;
  kernels::Int8Workspace int8;
  kernels::Bf16Workspace bf16;
};

struct LowPrecision {
  bool int8 = false, conv = false;
  kernels::Conv2dGeometry geometry{};
  std::int64_t in_features = 0, out_features = 0;  // K and N of the product
  kernels::PackedInt8 w8;
  kernels::PackedBf16 w16;
  std::vector<std::int32_t> offset;
  std::vector<float> scale;
  kernels::QuantParams input;

  // a: n samples in, y: out. bias, relu and the Conv's absorbed affine epilogue from the step.
  void run(const float* a, float* y, std::int64_t n, const float* bias, bool relu,
           const kernels::RowEpilogue<float>* affine, LowScratch& s) const {
    const kernels::Requant rq{offset.data(), scale.data(), bias, relu};
    if (!conv) {
      if (int8) {
        s.image.resize(static_cast<std::size_t>(n * in_features));
        kernels::quantize_u8(a, s.image.data(), n * in_features, input);
        kernels::gemm_int8(s.int8, n, s.image.data(), in_features, w8, rq, y, out_features, 1);
      } else {
        kernels::gemm_bf16(s.bf16, n, a, in_features, w16, bias, relu, y, out_features, 1);
      }
      return;
    }
    const kernels::Conv2dGeometry& g = geometry;
    const std::int64_t in_size = g.channels * g.height * g.width, pixels = g.col_cols(), k = g.col_rows();
    for (std::int64_t i = 0; i < n; ++i) {
      const float* x = a + i * in_size;
      float* out = y + i * out_features * pixels;
      if (int8) {
        // Quantized channels last, so that im2row copies whole kernel rows (the weights are in that order).
        s.chw.resize(static_cast<std::size_t>(in_size));
        s.image.resize(static_cast<std::size_t>(in_size));
        s.rows8.resize(static_cast<std::size_t>(pixels * k));
        kernels::quantize_u8(x, s.chw.data(), in_size, input);  // contiguous: vectorised
        const std::int64_t plane = g.height * g.width;
        for (std::int64_t c = 0; c < g.channels; ++c)
          for (std::int64_t p = 0; p < plane; ++p)
            s.image[static_cast<std::size_t>(p * g.channels + c)] = s.chw[static_cast<std::size_t>(c * plane + p)];
        kernels::im2row_hwc(g, s.image.data(), s.rows8.data(), static_cast<std::uint8_t>(input.zero_point));
        kernels::gemm_int8(s.int8, pixels, s.rows8.data(), k, w8, rq, out, 1, pixels);
      } else {
        s.rows.resize(static_cast<std::size_t>(pixels * k));
        s.hwc.resize(static_cast<std::size_t>(in_size));
        const std::int64_t plane = g.height * g.width;
        for (std::int64_t c = 0; c < g.channels; ++c)
          for (std::int64_t p = 0; p < plane; ++p) s.hwc[static_cast<std::size_t>(p * g.channels + c)] = x[c * plane + p];
        kernels::im2row_hwc(g, s.hwc.data(), s.rows.data(), 0.0f);
        kernels::gemm_bf16(s.bf16, pixels, s.rows.data(), k, w16, bias, relu, out, 1, pixels);
      }
      if (affine) {
        // BatchNorm after the ReLU, per channel (one contiguous plane each: the loop vectorises).
        for (std::int64_t j = 0; j < out_features; ++j) {
          const float c = affine->center[j], sc = affine->scale[j], sh = affine->shift[j];
          float* o = out + j * pixels;
          for (std::int64_t p = 0; p < pixels; ++p) o[p] = (o[p] - c) * sc + sh;
        }
      }
    }
  }
};

// A convolution's weights [out x (c, ky, kx)] reordered to [out x (ky, kx, c)], the order of im2row_hwc.
template <typename T>
std::vector<T> channels_last(const std::vector<T>& w, std::int64_t out, std::int64_t channels) {
  const std::int64_t taps = static_cast<std::int64_t>(w.size()) / (out * channels);
  std::vector<T> r(w.size());
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t c = 0; c < channels; ++c)
      for (std::int64_t t = 0; t < taps; ++t)
        r[static_cast<std::size_t>((o * taps + t) * channels + c)] = w[static_cast<std::size_t>((o * channels + c) * taps + t)];
  return r;
}

// The lowered form of a Conv or Gemm node, or null when it runs in float: a quantized node always runs int8;
// a float node runs bf16 when bf16 is asked for and it is not a grouped convolution.
inline std::shared_ptr<const LowPrecision> lower(const Node& n, const Graph& g, const Shape& x, bool bf16) {
  if (n.op != "Conv" && n.op != "Gemm") return nullptr;
  const bool int8 = is_quantized(n);
  if (!int8 && !bf16) return nullptr;
  auto low = std::make_shared<LowPrecision>();
  low->int8 = int8;
  low->conv = n.op == "Conv";
  const Tensor& w = g.initializer(n.inputs.at(1));
  low->out_features = w.size(0);
  low->in_features = w.numel() / w.size(0);
  if (low->conv) {
    const auto k = n.get_ints("kernel_shape", {w.size(2), w.size(3)}), st = n.get_ints("strides", {1, 1});
    const auto p = n.get_ints("pads", {0, 0, 0, 0}), d = n.get_ints("dilations", {1, 1});
    const std::int64_t groups = n.get_int("group", 1);
    if (groups != 1) {
      if (int8)
        throw std::invalid_argument("Plan: node " + n.describe() + ": a quantized Conv needs group 1, got " +
                                    std::to_string(groups));
      return nullptr;
    }
    low->geometry = {x[1], x[2], x[3], k[0], k[1], st[0], st[1], p[0], p[1], d[0], d[1], 1};
  }
  if (!int8) {
    std::vector<float> f(w.data(), w.data() + w.numel());
    if (low->conv) f = channels_last(f, low->out_features, low->geometry.channels);
    low->w16 = kernels::pack_bf16(f.data(), low->out_features, low->in_features);
    return low;
  }
  std::vector<std::int8_t> q(static_cast<std::size_t>(w.numel()));
  for (std::int64_t i = 0; i < w.numel(); ++i) {
    const float v = w[i];
    if (v != static_cast<float>(static_cast<int>(v)) || v < -128 || v > 127)
      throw std::invalid_argument("Plan: node " + n.describe() + ": a quantized weight must hold integers in " +
                                  "[-128, 127], got " + std::to_string(v));
    q[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(v);
  }
  if (low->conv) q = channels_last(q, low->out_features, low->geometry.channels);
  low->w8 = kernels::pack_int8(q.data(), low->out_features, low->in_features);
  low->input = {static_cast<float>(n.get_float(quant_attr::kInputScale, 1)),
                static_cast<std::int32_t>(n.get_int(quant_attr::kInputZeroPoint, 0))};
  const auto& ws = n.attributes.at(quant_attr::kWeightScales).floats;
  if (static_cast<std::int64_t>(ws.size()) != low->out_features || !(low->input.scale > 0) ||
      low->input.zero_point < 0 || low->input.zero_point > 255)
    throw std::invalid_argument("Plan: node " + n.describe() + ": expected " + std::to_string(low->out_features) +
                                " weight scales, an input scale > 0 and a zero point in 0..255, got " +
                                std::to_string(ws.size()) + " scales");
  for (std::int64_t j = 0; j < low->out_features; ++j) {
    low->offset.push_back(low->input.zero_point * low->w8.sums[static_cast<std::size_t>(j)]);
    low->scale.push_back(low->input.scale * static_cast<float>(ws[static_cast<std::size_t>(j)]));
  }
  return low;
}

}  // namespace plan_detail
}  // namespace ember::graph
