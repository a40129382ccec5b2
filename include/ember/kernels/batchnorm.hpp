#pragma once
// Batch normalisation over N x C x HW (PyTorch's BatchNorm2d), per channel c, with M = N * HW values:
//   train:  mean = sum x / M, var = sum (x - mean)^2 / M (biased, used to normalise),
//           running_mean = (1 - m) running_mean + m mean, running_var = (1 - m) running_var + m var * M / (M - 1)
//   y = (x - mean) / sqrt(var + eps) * gamma + beta
// Statistics accumulate in double: a float sum over 32*26*26 values loses digits we can keep for free.
#include <cmath>
#include <cstdint>

namespace ember::kernels {

// Per-channel mean and biased variance (two passes, for accuracy).
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

// Backward for one channel in train mode, from the saved mean and invstd:
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
