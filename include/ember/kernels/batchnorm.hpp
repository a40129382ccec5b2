#pragma once
// Batch normalisation over N x C x HW (PyTorch's BatchNorm2d; BatchNorm1d with HW = L, or 1 for [N, C]), per
// channel c, with M = N * HW values:
//   train:  mean = sum x / M, var = sum (x - mean)^2 / M (biased, used to normalise),
//           running_mean = (1 - m) running_mean + m mean, running_var = (1 - m) running_var + m var * M / (M
//           - 1)
//   y = (x - mean) / sqrt(var + eps) * gamma + beta
// Statistics accumulate in double: a float sum over 32*26*26 values loses digits we can keep for free.
//
// Naming, as in every kernel: batchnorm_stats / batchnorm_backward are the fast kernels, *_ref their plain
// references. Outputs come first.
//
// relu_input: x is what a ReLU before the layer takes, not what it gives: every kernel reads relu(x) (v <= 0 ?
// 0 : v, NaN passing, as ReLU), and backward's dx is the gradient at the ReLU's input (zero where x <= 0, as
// ReLU's backward). The values of a ReLU then BatchNorm, without the ReLU's passes over the activation
// (Sequential fuses the pair in training).
#include <Eigen/Core>
#include <cmath>
#include <cstdint>

#include "ember/kernels/relu.hpp"

namespace ember::kernels {

// The fast kernels work plane by plane (one image, one channel: hw contiguous values): each plane's sums run
// in T through Eigen's vectorised reductions, and the planes add up in double. Every float quantity is
// centred first (on a value of the channel, then on the mean rounded to T), so a channel whose mean is far
// larger than its spread (mean 1000, std 1) keeps the digits PyTorch keeps: the float terms are of the size
// of the spread, never of the mean. The order of every sum is fixed by the shapes, so results repeat bit for
// bit.
template <typename T>
using ConstPlane = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using Plane = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

template <typename T>
inline T relu_if(T v, bool relu) {
  return relu ? relu_value(v) : v;
}

// f of one plane of x, or of relu(x) when relu is set: Eigen's max with 0, which keeps a NaN x (relu_value
// but for the sign of zero, which no sum or product below can tell).
template <typename T, class F>
decltype(auto) on_plane(const T* x, std::int64_t hw, bool relu, F&& f) {
  if (relu) return f(ConstPlane<T>(x, hw).max(T(0)));
  return f(ConstPlane<T>(x, hw));
}
template <typename T, class F>
double plane_sum(const T* x, std::int64_t hw, bool relu, F&& f) {
  return on_plane(x, hw, relu, [&](const auto& v) { return static_cast<double>(f(v).sum()); });
}

// The reference: two passes over the values in double.
template <typename T>
void batchnorm_stats_ref(double& mean, double& var, const T* x, std::int64_t n, std::int64_t c,
                         std::int64_t hw, std::int64_t channel, bool relu_input = false) {
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = x + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) sum += relu_if(p[j], relu_input);
  }
  const double count = static_cast<double>(n * hw);
  mean = sum / count;
  double sq = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = x + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) {
      const double d = relu_if(p[j], relu_input) - mean;
      sq += d * d;
    }
  }
  var = sq / count;
}

// Per-channel mean and biased variance of x [n, c, hw] for one channel (n * hw >= 1).
template <typename T>
void batchnorm_stats(double& mean, double& var, const T* x, std::int64_t n, std::int64_t c, std::int64_t hw,
                     std::int64_t channel, bool relu_input = false) {
  // One value per sample ([N, C], BatchNorm1d after a Linear): planes of one value would cost an Eigen
  // reduction each; the reference's two passes in double are exact enough and faster there.
  if (hw == 1) return batchnorm_stats_ref(mean, var, x, n, c, hw, channel, relu_input);
  // Shifted sums: deviations from the channel's first value, whose float partial sums stay small.
  const T shift = relu_if(x[channel * hw], relu_input);
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i)
    sum += plane_sum(x + (i * c + channel) * hw, hw, relu_input, [&](const auto& v) { return v - shift; });
  const double count = static_cast<double>(n * hw);
  mean = static_cast<double>(shift) + sum / count;
  const T m = static_cast<T>(mean);
  double sq = 0;
  for (std::int64_t i = 0; i < n; ++i)
    sq += plane_sum(x + (i * c + channel) * hw, hw, relu_input, [&](const auto& v) { return (v - m).square(); });
  // The deviations were taken from mean rounded to T; add back the (tiny) offset's share: E[(x-m)^2] -
  // (mean-m)^2.
  const double off = mean - static_cast<double>(m);
  var = sq / count - off * off;
  if (var < 0) var = 0;
}

// y = (x - center) * scale + shift for one channel of every image; x, y [n, c, hw]. With center = the mean
// rounded to T, scale = gamma invstd and shift = beta - (mean - center) scale, this is the normalisation with
// x - center exact or nearly so: x * scale + (beta - mean scale) would cancel two terms of the mean's size.
template <typename T>
void batchnorm_apply(T* y, const T* x, std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t channel,
                     T center, T scale, T shift, bool relu_input = false) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = x + (i * c + channel) * hw;
    T* q = y + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) q[j] = (relu_if(p[j], relu_input) - center) * scale + shift;
  }
}

// Eval mode: channel c is (x - mean[c]) * scale + beta[c] with scale = gamma[c] / sqrt(var[c] + eps) (in
// double, rounded to T once), through batchnorm_apply; mean is a T already, so centring on it is exact.
template <typename T>
T batchnorm_running_scale(T gamma, T var, double eps) {
  return static_cast<T>(gamma * (1.0 / std::sqrt(static_cast<double>(var) + eps)));
}
template <typename T>
void batchnorm_eval_forward(T* y, const T* x, std::int64_t n, std::int64_t c, std::int64_t hw, const T* mean,
                            const T* var, const T* gamma, const T* beta, double eps) {
  for (std::int64_t ch = 0; ch < c; ++ch)
    batchnorm_apply(y, x, n, c, hw, ch, mean[ch], batchnorm_running_scale(gamma[ch], var[ch], eps), beta[ch]);
}

// The reference of batchnorm_backward below: its formulas, term by term in double.
template <typename T>
void batchnorm_backward_ref(T* dx, double& dgamma, double& dbeta, const T* x, const T* dy, std::int64_t n,
                            std::int64_t c, std::int64_t hw, std::int64_t channel, double mean, double invstd,
                            double gamma, bool relu_input = false) {
  double sum_dy = 0, sum_dy_xhat = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* xp = x + (i * c + channel) * hw;
    const T* gp = dy + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) {
      sum_dy += gp[j];
      sum_dy_xhat += gp[j] * ((relu_if(xp[j], relu_input) - mean) * invstd);
    }
  }
  dgamma = sum_dy_xhat;
  dbeta = sum_dy;
  if (!dx) return;
  const double m = static_cast<double>(n * hw);
  const double k = gamma * invstd / m;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* xp = x + (i * c + channel) * hw;
    const T* gp = dy + (i * c + channel) * hw;
    T* dp = dx + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) {
      const double xhat = (relu_if(xp[j], relu_input) - mean) * invstd;
      dp[j] = relu_input && xp[j] <= T(0) ? T(0) : static_cast<T>(k * (m * gp[j] - sum_dy - xhat * sum_dy_xhat));
    }
  }
}

// Backward for one channel in train mode (batch statistics), from the saved mean and invstd:
//   xhat = (x - mean) invstd, S = sum dy xhat, k = gamma invstd / M,
//   dgamma = S, dbeta = sum dy, dx = k (M dy - sum dy - xhat S).
// x, dy, dx [n, c, hw]; dx may be null (only the parameter gradients are wanted).
// Fast: per channel dx = a dy + b (x - m) + cst with m = mean rounded to T, a = kM, b = -k invstd S,
// cst = k (invstd S (mean - m) - sum dy); centring x keeps b (x - m) of the spread's size.
template <typename T>
void batchnorm_backward(T* dx, double& dgamma, double& dbeta, const T* x, const T* dy, std::int64_t n,
                        std::int64_t c, std::int64_t hw, std::int64_t channel, double mean, double invstd,
                        double gamma, bool relu_input = false) {
  if (hw == 1)
    return batchnorm_backward_ref(dx, dgamma, dbeta, x, dy, n, c, hw, channel, mean, invstd, gamma, relu_input);
  double sum_dy = 0, sum_dy_xc = 0;
  const T m = static_cast<T>(mean);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = (i * c + channel) * hw;
    ConstPlane<T> g(dy + off, hw);
    sum_dy += g.sum();
    sum_dy_xc += plane_sum(x + off, hw, relu_input, [&](const auto& v) { return g * (v - m); });
  }
  // sum dy (x - mean) = sum dy (x - m) - (mean - m) sum dy
  sum_dy_xc -= (mean - static_cast<double>(m)) * sum_dy;
  const double sum_dy_xhat = sum_dy_xc * invstd;
  dgamma = sum_dy_xhat;
  dbeta = sum_dy;
  if (!dx) return;
  const double cnt = static_cast<double>(n * hw);
  const double k = gamma * invstd / cnt;
  const T a = static_cast<T>(k * cnt), b = static_cast<T>(-k * invstd * sum_dy_xhat);
  const T cst = static_cast<T>(k * (invstd * sum_dy_xhat * (mean - static_cast<double>(m)) - sum_dy));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = (i * c + channel) * hw;
    on_plane(x + off, hw, relu_input,
             [&](const auto& v) { Plane<T>(dx + off, hw) = a * ConstPlane<T>(dy + off, hw) + b * (v - m) + cst; });
    if (!relu_input) continue;
    // The ReLU's backward on the plane just written (in L1): zero where its input was <= 0.
    T* d = dx + off;
    const T* xp = x + off;
    for (std::int64_t j = 0; j < hw; ++j) d[j] = xp[j] <= T(0) ? T(0) : d[j];
  }
}

}  // namespace ember::kernels
