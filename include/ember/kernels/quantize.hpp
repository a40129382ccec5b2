#pragma once
// Scalar conversions of quantized inference, with ONNX's meanings:
//   QuantizeLinear    q = saturate(round_half_even(x / scale) + zero_point)   (u8 activations, s8 weights)
//   DequantizeLinear  x = (q - zero_point) * scale
//   bfloat16          the upper half of a float, rounded to nearest even (what AVX512-BF16's vcvtne2ps2bf16
//                     does, denormal inputs to zero as it does; NaN stays a quiet NaN)
// and the parameters that cover a range: an asymmetric u8 range always holds 0 exactly (a padded border and
// ReLU's zeros stay exact), symmetric s8 per output channel for weights.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace ember::kernels {

struct QuantParams {
  float scale = 1.0f;
  std::int32_t zero_point = 0;
};

// u8 parameters for [lo, hi] (widened to hold 0).
inline QuantParams choose_u8_params(float lo, float hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
    throw std::invalid_argument("ember: choose_u8_params expected a finite range lo <= hi, got [" +
                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (hi - lo < 1e-12f) return {1.0f, 0};
  const float scale = (hi - lo) / 255.0f;
  const float zp = std::nearbyint(-lo / scale);
  return {scale, static_cast<std::int32_t>(std::clamp(zp, 0.0f, 255.0f))};
}

// Symmetric s8 scale for values within [-absmax, absmax] (levels -127..127; -128 unused, as ONNX Runtime).
inline float choose_s8_scale(float absmax) { return absmax > 0 ? absmax / 127.0f : 1.0f; }

// Round half to even of |v| <= 2^22 by adding and taking away 1.5 * 2^23 (the FPU's default rounding mode):
// no call to nearbyint, which a build without SSE4.1 makes per value, and a loop of it vectorises.
inline float round_even(float v) {
  constexpr float kMagic = 12582912.0f;
  return (v + kMagic) - kMagic;
}
inline std::uint8_t quantize_u8(float x, float inv_scale, std::int32_t zero_point) {
  float t = x * inv_scale;
  t = t > -512.0f ? t : -512.0f;  // NaN -> -512 -> 0
  t = t < 512.0f ? t : 512.0f;
  float q = round_even(t) + static_cast<float>(zero_point);
  q = q > 0.0f ? q : 0.0f;  // each clamp one maxss / minss: no branch, and loops of it vectorise
  q = q < 255.0f ? q : 255.0f;
  return static_cast<std::uint8_t>(static_cast<std::int32_t>(q));
}
inline std::int8_t quantize_s8(float x, float inv_scale) {
  return static_cast<std::int8_t>(std::clamp(std::nearbyint(x * inv_scale), -127.0f, 127.0f));
}

// x[0..n) -> q (u8); y = (q - zp) * scale back. Division as a product by 1/scale, as ONNX Runtime does.
inline void quantize_u8(const float* x, std::uint8_t* q, std::int64_t n, QuantParams p) {
  const float inv = 1.0f / p.scale;
  for (std::int64_t i = 0; i < n; ++i) q[i] = quantize_u8(x[i], inv, p.zero_point);
}
inline void dequantize_u8(const std::uint8_t* q, float* y, std::int64_t n, QuantParams p) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<std::int32_t>(q[i]) - p.zero_point) * p.scale;
}

// Weights [rows x cols] (one row per output channel) -> s8 with one symmetric scale per row.
inline void quantize_s8_rows(const float* w, std::int8_t* q, float* scales, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    float absmax = 0;
    for (std::int64_t c = 0; c < cols; ++c) absmax = std::max(absmax, std::fabs(w[r * cols + c]));
    scales[r] = choose_s8_scale(absmax);
    const float inv = 1.0f / scales[r];
    for (std::int64_t c = 0; c < cols; ++c) q[r * cols + c] = quantize_s8(w[r * cols + c], inv);
  }
}

using bf16_t = std::uint16_t;

inline bf16_t to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0) return static_cast<bf16_t>((u >> 16) & 0x8000u);  // zero or denormal
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<bf16_t>(u >> 16);
}
inline float from_bf16(bf16_t b) {
  const std::uint32_t u = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
inline float round_bf16(float x) { return from_bf16(to_bf16(x)); }

}  // namespace ember::kernels
