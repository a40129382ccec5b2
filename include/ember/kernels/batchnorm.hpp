#pragma once
// Batch normalisation over N x C x HW (PyTorch's BatchNorm2d), per channel c, with M = N * HW values:
//   train:  mean = sum x / M, var = sum (x - mean)^2 / M (biased, used to normalise),
//           running_mean = (1 - m) running_mean + m mean, running_var = (1 - m) running_var + m var * M / (M - 1)
//   y = (x - mean) / sqrt(var + eps) * gamma + beta
// Statistics accumulate in double: a float sum over 32*26*26 values loses digits we can keep for free.
#include <Eigen/Core>
#include <cmath>
#include <cstdint>

namespace ember::kernels {

// The fast kernels (*_fast) below work plane by plane (one image, one channel: hw contiguous values): each
// plane's sums run in T through Eigen's vectorised reductions, and the planes add up in double. Same two-pass
// formulas as the references (mean first, then squared deviations), so no catastrophic cancellation; the order of
// every sum is fixed by the shapes, so results repeat bit for bit.
template <typename T>
using ConstPlane = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
template <typename T>
using Plane = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;

template <typename T>
void batchnorm_stats_fast(const T* x, std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t channel,
                          double& mean, double& var) {
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += ConstPlane<T>(x + (i * c + channel) * hw, hw).sum();
  const double count = static_cast<double>(n * hw);
  mean = sum / count;
  const T m = static_cast<T>(mean);
  double sq = 0;
  for (std::int64_t i = 0; i < n; ++i) sq += (ConstPlane<T>(x + (i * c + channel) * hw, hw) - m).square().sum();
  // The deviations were taken from mean rounded to T; add back the (tiny) offset's share: E[(x-m)^2] - (mean-m)^2.
  const double off = mean - static_cast<double>(m);
  var = sq / count - off * off;
  if (var < 0) var = 0;
}

// Backward for one channel, as batchnorm_backward_train, with dx = A dy + B x + C per channel:
//   xhat = (x - mean) invstd, k = gamma invstd / M:
//   dx = k (M dy - sum dy - xhat sum(dy xhat)) = kM dy - k invstd S x + k (invstd S mean - sum dy), S = sum(dy xhat).
template <typename T>
void batchnorm_backward_train_fast(const T* x, const T* dy, T* dx, std::int64_t n, std::int64_t c, std::int64_t hw,
                                   std::int64_t channel, double mean, double invstd, double gamma, double& dgamma,
                                   double& dbeta) {
  double sum_dy = 0, sum_dy_xc = 0;
  const T m = static_cast<T>(mean);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = (i * c + channel) * hw;
    ConstPlane<T> g(dy + off, hw), xp(x + off, hw);
    sum_dy += g.sum();
    sum_dy_xc += (g * (xp - m)).sum();
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
  const T cst = static_cast<T>(k * (invstd * sum_dy_xhat * mean - sum_dy));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t off = (i * c + channel) * hw;
    Plane<T>(dx + off, hw) = a * ConstPlane<T>(dy + off, hw) + b * ConstPlane<T>(x + off, hw) + cst;
  }
}

// Per-channel mean and biased variance (two passes, for accuracy): the reference.
template <typename T>
void batchnorm_stats(const T* x, std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t channel, double& mean,
                     double& var) {
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = x + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) sum += p[j];
  }
  const double count = static_cast<double>(n * hw);
  mean = sum / count;
  double sq = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = x + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) {
      const double d = p[j] - mean;
      sq += d * d;
    }
  }
  var = sq / count;
}

// y = x * scale + shift for one channel of every image (scale = gamma * invstd, shift = beta - mean * scale).
template <typename T>
void batchnorm_apply(const T* x, T* y, std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t channel, T scale,
                     T shift) {
  for (std::int64_t i = 0; i < n; ++i) {
    const T* p = x + (i * c + channel) * hw;
    T* q = y + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) q[j] = p[j] * scale + shift;
  }
}

// Backward for one channel in train mode, from the saved mean and invstd (the reference):
//   dgamma = sum dy * xhat, dbeta = sum dy,
//   dx = gamma * invstd / M * (M dy - dbeta - xhat * dgamma).
// grad_in may be null (only the parameter gradients are wanted).
template <typename T>
void batchnorm_backward_train(const T* x, const T* dy, T* dx, std::int64_t n, std::int64_t c, std::int64_t hw,
                              std::int64_t channel, double mean, double invstd, double gamma, double& dgamma,
                              double& dbeta) {
  double sum_dy = 0, sum_dy_xhat = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* xp = x + (i * c + channel) * hw;
    const T* gp = dy + (i * c + channel) * hw;
    for (std::int64_t j = 0; j < hw; ++j) {
      sum_dy += gp[j];
      sum_dy_xhat += gp[j] * ((xp[j] - mean) * invstd);
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
      const double xhat = (xp[j] - mean) * invstd;
      dp[j] = static_cast<T>(k * (m * gp[j] - sum_dy - xhat * sum_dy_xhat));
    }
  }
}

}  // namespace ember::kernels
