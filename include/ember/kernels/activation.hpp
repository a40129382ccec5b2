#pragma once
// Pointwise activations over n contiguous values, as PyTorch 1.13 defines them:
//   leaky_relu  y = x > 0 ? x : slope x          dx = x > 0 ? dy : slope dy   (from the input)
//   gelu        y = x Phi(x) = x/2 (1 + erf(x/sqrt2))
//               dx = dy (Phi(x) + x phi(x)), phi the standard normal density          (from the input)
//   gelu_tanh   y = x/2 (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2/pi)  (approximate="tanh")
//   sigmoid     y = 1 / (1 + exp(-x))           dx = dy y (1 - y)           (from the output)
//   tanh        y = tanh x                      dx = dy (1 - y^2)           (from the output)
// NaN propagates through every one, as in PyTorch.
//
// Naming, as in every kernel: *_forward / *_backward are the fast kernels, *_ref the plain references. Outputs
// come first. sigmoid, tanh and, in float, GELU are array expressions Eigen vectorises (exp, tanh, and erf by
// a polynomial within 1.5e-7 of it): a few ulp from the C library's functions, as PyTorch's own vectorised
// kernels are. Double GELU calls the C library's erf. leaky_relu is a plain loop the compiler vectorises.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "ember/core/parallel.hpp"

namespace ember::kernels {

template <typename T>
void leaky_relu_forward(T* out, const T* in, std::int64_t n, T slope) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = in[i] > T(0) ? in[i] : in[i] * slope;
}
template <typename T>
void leaky_relu_backward(T* dinp, const T* dout, const T* in, std::int64_t n, T slope) {
  for (std::int64_t i = 0; i < n; ++i) dinp[i] = in[i] > T(0) ? dout[i] : dout[i] * slope;
}
// The loops above are already the plainest form; the references are the same functions, named for the tests.
template <typename T>
void leaky_relu_forward_ref(T* out, const T* in, std::int64_t n, T slope) {
  leaky_relu_forward(out, in, n, slope);
}
template <typename T>
void leaky_relu_backward_ref(T* dinp, const T* dout, const T* in, std::int64_t n, T slope) {
  leaky_relu_backward(dinp, dout, in, n, slope);
}

namespace detail {
constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double kGeluKappa = 0.044715;
}  // namespace detail

template <typename T>
void gelu_forward_ref(T* out, const T* in, std::int64_t n, bool tanh_approx) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = in[i];
    out[i] = static_cast<T>(tanh_approx
                                ? 0.5 * x * (1 + std::tanh(detail::kSqrt2OverPi * (x + detail::kGeluKappa * x * x * x)))
                                : 0.5 * x * (1 + std::erf(x * detail::kSqrt1_2)));
  }
}
template <typename T>
void gelu_backward_ref(T* dinp, const T* dout, const T* in, std::int64_t n, bool tanh_approx) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = in[i];
    double d;
    if (tanh_approx) {
      const double t = std::tanh(detail::kSqrt2OverPi * (x + detail::kGeluKappa * x * x * x));
      d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * detail::kSqrt2OverPi * (1 + 3 * detail::kGeluKappa * x * x);
    } else {
      d = 0.5 * (1 + std::erf(x * detail::kSqrt1_2)) + x * detail::kInvSqrt2Pi * std::exp(-0.5 * x * x);
    }
    dinp[i] = static_cast<T>(dout[i] * d);
  }
}

template <typename T>
using ConstValues = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using Values = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

namespace detail {
// out = erf(s x) in float by Abramowitz & Stegun 7.1.26: erf(z) = sign(z) (1 - t P(t) exp(-z^2)), t = 1 / (1 +
// p |z|), absolute error below 1.5e-7 (float's resolution near 1), written as array expressions that Eigen
// vectorises, where std::erf is a call per value. +-inf give +-1; NaN is for the caller (GELU multiplies by x).
inline void erf_scaled(float* out, const float* in, std::int64_t n, float s) {
  const ConstValues<float> x(in, n);
  Values<float> y(out, n);
  y = 1.0f / (1.0f + 0.3275911f * s * x.abs());
  y = ((((1.061405429f * y - 1.453152027f) * y + 1.421413741f) * y - 0.284496736f) * y + 0.254829592f) * y *
      (-(s * s) * x.square()).exp();
  // sign(x) as a quotient: Eigen's sign() has no vectorised form and would make the whole expression scalar.
  // Clamping first keeps +-inf at +-1 (NaN reaches the caller through its own factor x).
  const auto clamped = x.max(-16.0f).min(16.0f);
  y = (1.0f - y) * (clamped / (clamped.abs() + 1e-30f));
}
}  // namespace detail

// Fast: the same formulas in T (PyTorch computes float GELU in float); in float, as array expressions Eigen
// vectorises (erf by detail::erf_scaled, tanh by Eigen's), the output buffer holding the intermediate.
template <typename T>
void gelu_forward(T* out, const T* in, std::int64_t n, bool tanh_approx) {
  const T half(0.5), one(1), s(detail::kSqrt1_2), k(detail::kSqrt2OverPi), kappa(detail::kGeluKappa);
  if constexpr (std::is_same_v<T, float>) {
    const ConstValues<T> x(in, n);
    Values<T> y(out, n);
    if (tanh_approx)
      y = half * x * (one + (k * (x + kappa * x * x * x)).tanh());
    else {
      detail::erf_scaled(out, in, n, s);
      y = half * x * (one + y);
    }
    return;
  }
  if (tanh_approx) {
    for (std::int64_t i = 0; i < n; ++i) {
      const T x = in[i];
      out[i] = half * x * (one + std::tanh(k * (x + kappa * x * x * x)));
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) out[i] = half * in[i] * (one + std::erf(in[i] * s));
  }
}
template <typename T>
void gelu_backward(T* dinp, const T* dout, const T* in, std::int64_t n, bool tanh_approx) {
  const T half(0.5), one(1), s(detail::kSqrt1_2), c(detail::kInvSqrt2Pi), k(detail::kSqrt2OverPi),
      kappa(detail::kGeluKappa);
  if constexpr (std::is_same_v<T, float>) {
    const ConstValues<T> x(in, n), g(dout, n);
    Values<T> d(dinp, n);
    if (tanh_approx) {
      d = (k * (x + kappa * x * x * x)).tanh();
      d = g * (half * (one + d) + half * x * (one - d * d) * k * (one + T(3) * kappa * x * x));
    } else {
      detail::erf_scaled(dinp, in, n, s);
      // Eigen's vectorised exp gives the smallest normal float, not 0, far below -88: taken off (and floored at
      // 0) so that the density is 0 there, as std::exp's, and x = -inf gives NaN, as PyTorch's -inf * 0.
      d = g * (half * (one + d) + c * x * ((-half * x.square()).exp() - T(1.2e-38)).max(T(0)));
    }
    return;
  }
  if (tanh_approx) {
    for (std::int64_t i = 0; i < n; ++i) {
      const T x = in[i], t = std::tanh(k * (x + kappa * x * x * x));
      dinp[i] = dout[i] * (half * (one + t) + half * x * (one - t * t) * k * (one + T(3) * kappa * x * x));
    }
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      const T x = in[i];
      dinp[i] = dout[i] * (half * (one + std::erf(x * s)) + x * c * std::exp(-half * x * x));
    }
  }
}


template <typename T>
void sigmoid_forward_ref(T* out, const T* in, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(1.0 / (1.0 + std::exp(-static_cast<double>(in[i]))));
}
template <typename T>
void sigmoid_forward(T* out, const T* in, std::int64_t n) {
  // 1 / (1 + exp(-x)) as PyTorch writes it, not Eigen's logistic(): exp overflows to inf below -88 and the
  // result is 0, where logistic() returns a denormal.
  Values<T>(out, n) = (T(1) + (-ConstValues<T>(in, n)).exp()).inverse();
}
template <typename T>
void sigmoid_backward(T* dinp, const T* dout, const T* out, std::int64_t n) {
  const ConstValues<T> y(out, n);
  Values<T>(dinp, n) = ConstValues<T>(dout, n) * (T(1) - y) * y;
}
template <typename T>
void sigmoid_backward_ref(T* dinp, const T* dout, const T* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (T(1) - out[i]) * out[i];
}

template <typename T>
void tanh_forward_ref(T* out, const T* in, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}
template <typename T>
void tanh_forward(T* out, const T* in, std::int64_t n) {
  Values<T>(out, n) = ConstValues<T>(in, n).tanh();
}
template <typename T>
void tanh_backward(T* dinp, const T* dout, const T* out, std::int64_t n) {
  const ConstValues<T> y(out, n);
  Values<T>(dinp, n) = ConstValues<T>(dout, n) * (T(1) - y * y);
}
template <typename T>
void tanh_backward_ref(T* dinp, const T* dout, const T* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (T(1) - out[i] * out[i]);
}

// A pointwise forward kernel `apply(out, in, count)` over n values, split over threads by its flops (erf and
// exp cost tens of cycles a value). The kernels' vectorised expressions and their scalar tails differ in the
// last bits; every value goes through the vector code (the tail padded to a whole packet), so a value's result
// does not depend on where it sits: a batch predicted in chunks gives the bits of the whole batch.
constexpr double kPointwiseFlops = 20;
constexpr std::int64_t kPointwisePacket = 16;
template <typename T, class F>
void pointwise_forward(T* out, const T* in, std::int64_t n, F&& apply) {
  const std::int64_t body = n / kPointwisePacket * kPointwisePacket;
  parallel_chunks(body, [&](std::int64_t lo, std::int64_t hi) { apply(out + lo, in + lo, hi - lo); },
                  kPointwiseFlops);
  if (body < n) {
    alignas(64) T tin[kPointwisePacket] = {}, tout[kPointwisePacket];
    std::copy(in + body, in + n, tin);
    apply(tout, tin, kPointwisePacket);
    std::copy(tout, tout + (n - body), out + body);
  }
}

}  // namespace ember::kernels
