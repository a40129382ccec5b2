#pragma once
// y = a + b elementwise over n values (a Residual's sum, a graph's Add); y may be a or b.
#include <Eigen/Core>
#include <cstdint>

namespace ember::kernels {

template <typename T>
void add_forward(T* y, const T* a, const T* b, std::int64_t n) {
  using Vec = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(y, n) = Vec(a, n) + Vec(b, n);
}

}  // namespace ember::kernels
