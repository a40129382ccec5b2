#pragma once
// Pointwise maps and broadcasting arithmetic an imported ONNX graph needs beyond activation.hpp's layers, with
// PyTorch's (and ONNX's) formulas:
//   clip          y = min(max(x, lo), hi)                       (ReLU6: lo 0, hi 6)
//   hard_sigmoid  y = max(0, min(1, alpha x + beta))            (ONNX's defaults alpha 0.2, beta 0.5;
//                                                                PyTorch's Hardsigmoid exports 1/6, 0.5)
//   hard_swish    y = x max(0, min(1, x/6 + 1/2))
//   erf           y = erf(x), in float by activation.hpp's polynomial (within 1.5e-7)
//   binary        y = a (+ - * /) b over a broadcast shape: each operand read through strides, 0 along the
//                 dimensions it stretches (NumPy's rule)
// NaN propagates (max/min are written so that a NaN input gives NaN). *_ref are the plain loops.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ember/kernels/activation.hpp"

namespace ember::kernels {

template <typename T>
void clip_forward_ref(T* out, const T* in, std::int64_t n, T lo, T hi) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = std::isnan(in[i]) ? in[i] : std::min(std::max(in[i], lo), hi);
}
template <typename T>
void clip_forward(T* out, const T* in, std::int64_t n, T lo, T hi) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = in[i] < lo ? lo : in[i];
    out[i] = v > hi ? hi : v;  // NaN compares false twice and stays
  }
}

template <typename T>
void hard_sigmoid_forward_ref(T* out, const T* in, std::int64_t n, T alpha, T beta) {
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = std::isnan(in[i]) ? in[i] : std::max(T(0), std::min(T(1), alpha * in[i] + beta));
}
template <typename T>
void hard_sigmoid_forward(T* out, const T* in, std::int64_t n, T alpha, T beta) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = alpha * in[i] + beta;
    out[i] = v < T(0) ? T(0) : v > T(1) ? T(1) : v;
  }
}

template <typename T>
void hard_swish_forward_ref(T* out, const T* in, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    out[i] = std::isnan(in[i]) ? in[i] : in[i] * std::max(T(0), std::min(T(1), in[i] / T(6) + T(0.5)));
}
template <typename T>
void hard_swish_forward(T* out, const T* in, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T v = in[i] / T(6) + T(0.5);
    out[i] = in[i] * (v < T(0) ? T(0) : v > T(1) ? T(1) : v);
  }
}

template <typename T>
void erf_forward_ref(T* out, const T* in, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = std::erf(in[i]);
}
template <typename T>
void erf_forward(T* out, const T* in, std::int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    detail::erf_scaled(out, in, n, 1.0f);
    for (std::int64_t i = 0; i < n; ++i)
      if (std::isnan(in[i])) out[i] = in[i];
  } else {
    erf_forward_ref(out, in, n);
  }
}

enum class BinaryOp { Add, Sub, Mul, Div };

// The most dimensions binary_forward takes (its index lives on the stack: a call allocates nothing).
constexpr std::size_t kMaxBinaryRank = 8;

template <typename T>
inline T binary_apply(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
  }
  return a;
}

// y[shape] = a op b, a and b read at strides sa and sb (one per dimension of shape, 0 where broadcast).
template <typename T>
void binary_forward_ref(T* y, const T* a, const T* b, BinaryOp op, const std::vector<std::int64_t>& shape,
                        const std::vector<std::int64_t>& sa, const std::vector<std::int64_t>& sb) {
  std::int64_t total = 1;
  for (auto d : shape) total *= d;
  std::vector<std::int64_t> idx(shape.size(), 0);
  for (std::int64_t i = 0; i < total; ++i) {
    std::int64_t oa = 0, ob = 0;
    for (std::size_t k = 0; k < shape.size(); ++k) oa += idx[k] * sa[k], ob += idx[k] * sb[k];
    y[i] = binary_apply(op, a[oa], b[ob]);
    for (std::size_t k = shape.size(); k-- > 0;)
      if (++idx[k] < shape[k]) break;
      else idx[k] = 0;
  }
}

// The same, the innermost dimension as a tight loop (contiguous or one value repeated on either side); at most
// kMaxBinaryRank dimensions.
template <typename T>
void binary_forward(T* y, const T* a, const T* b, BinaryOp op, const std::vector<std::int64_t>& shape,
                    const std::vector<std::int64_t>& sa, const std::vector<std::int64_t>& sb) {
  if (shape.empty()) {
    y[0] = binary_apply(op, a[0], b[0]);
    return;
  }
  const std::size_t last = shape.size() - 1;
  const std::int64_t inner = shape[last], ia = sa[last], ib = sb[last];
  std::int64_t outer = 1;
  for (std::size_t k = 0; k < last; ++k) outer *= shape[k];
  std::int64_t idx[kMaxBinaryRank] = {};
  for (std::int64_t o = 0; o < outer; ++o) {
    std::int64_t oa = 0, ob = 0;
    for (std::size_t k = 0; k < last; ++k) oa += idx[k] * sa[k], ob += idx[k] * sb[k];
    T* yo = y + o * inner;
    const T *ao = a + oa, *bo = b + ob;
    switch (op) {
      case BinaryOp::Add: for (std::int64_t i = 0; i < inner; ++i) yo[i] = ao[i * ia] + bo[i * ib]; break;
      case BinaryOp::Sub: for (std::int64_t i = 0; i < inner; ++i) yo[i] = ao[i * ia] - bo[i * ib]; break;
      case BinaryOp::Mul: for (std::int64_t i = 0; i < inner; ++i) yo[i] = ao[i * ia] * bo[i * ib]; break;
      case BinaryOp::Div: for (std::int64_t i = 0; i < inner; ++i) yo[i] = ao[i * ia] / bo[i * ib]; break;
    }
    for (std::size_t k = last; k-- > 0;)
      if (++idx[k] < shape[k]) break;
      else idx[k] = 0;
  }
}

}  // namespace ember::kernels
