#pragma once
// GEMM on raw row-major buffers through Eigen, plus the naive triple loop the tests compare it with.
//   C[M x N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T; every buffer row-major and dense.
// Eigen picks its own blocking and SIMD kernels; inside our OpenMP regions it runs single-threaded (it checks
// omp_in_parallel), outside them it may use the OpenMP threads for a large product.
#include <Eigen/Core>
#include <cstdint>

namespace ember::kernels {

template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MatMap = Eigen::Map<RowMajorMatrix<T>>;
template <typename T>
using ConstMatMap = Eigen::Map<const RowMajorMatrix<T>>;

template <typename T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          const T* b, T beta, T* c) {
  MatMap<T> C(c, m, n);
  // A is stored as m x k (or k x m when transposed); likewise B.
  ConstMatMap<T> A(a, trans_a ? k : m, trans_a ? m : k);
  ConstMatMap<T> B(b, trans_b ? n : k, trans_b ? k : n);
  if (beta == T(0)) {
    C.setZero();
  } else if (beta != T(1)) {
    C *= beta;
  }
  if (!trans_a && !trans_b) C.noalias() += alpha * A * B;
  if (!trans_a && trans_b) C.noalias() += alpha * A * B.transpose();
  if (trans_a && !trans_b) C.noalias() += alpha * A.transpose() * B;
  if (trans_a && trans_b) C.noalias() += alpha * A.transpose() * B.transpose();
}

// The reference: three loops, accumulating in double.
template <typename T>
void gemm_naive(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                const T* b, T beta, T* c) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double av = trans_a ? a[p * m + i] : a[i * k + p];
        const double bv = trans_b ? b[j * k + p] : b[p * n + j];
        acc += av * bv;
      }
      const double prev = beta == T(0) ? 0.0 : static_cast<double>(beta) * c[i * n + j];
      c[i * n + j] = static_cast<T>(static_cast<double>(alpha) * acc + prev);
    }
  }
}

}  // namespace ember::kernels
