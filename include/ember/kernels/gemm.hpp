#pragma once
// GEMM on raw row-major buffers, and the plain triple loop the tests compare it with.
//   C[M x N] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T; every buffer row-major.
//
// Naming, as in every kernel: gemm is fast, gemm_ref the plain reference. The fast paths, all on Eigen's packed
// GEBP kernels (its blocking and SIMD micro-kernel):
//   gemm(...)               through Eigen's expression API. Simple, but every call allocates the packing
//                           buffers once they pass 128 KiB, and outside our parallel regions Eigen starts its
//                           own OpenMP team, which collapses when the machine is oversubscribed.
//   gemm(ws, ...)           the same kernel with the packing buffers kept in a GemmWorkspace across calls (no
//                           allocation once warm) and always single-threaded: the caller decides the threads.
//                           For float, `packed` (gemm_pack_a) gives op(A) packed once for many products.
//   gemm(wss, ...)          with a vector of workspaces: splits C into column (or row) blocks over
//                           threads_for(...) threads, one workspace each. Every element of C is computed by one
//                           thread in a fixed order that does not depend on the split, so results repeat bit
//                           for bit for any thread count.
// For float, the workspace paths run ember's own kernels (gemm_packed.hpp), chosen at run time for the CPU
// (isa.hpp), so a build without -march still runs AVX-512 or AVX2 code; other types use Eigen's internal
// general_matrix_matrix_product (stable across 3.3 and 3.4, the signatures differ by one argument, handled
// below).
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/kernels/gemm_packed.hpp"

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

// Eigen's packing buffers for one product shape, kept across calls. Rebuilt (one allocation) only when the
// shape changes, so give each recurring product its own workspace.
template <typename T>
class GemmWorkspace {
 public:
  using Blocking = Eigen::internal::gemm_blocking_space<Eigen::ColMajor, T, T, Eigen::Dynamic, Eigen::Dynamic,
                                                        Eigen::Dynamic, 1, false>;
  Blocking& blocking(std::int64_t rows, std::int64_t cols, std::int64_t depth) {
    if (!blocking_ || rows != rows_ || cols != cols_ || depth != depth_) {
      blocking_ = std::make_unique<Blocking>(rows, cols, depth, 1, true);
      blocking_->allocateAll();
      rows_ = rows;
      cols_ = cols;
      depth_ = depth;
    }
    return *blocking_;
  }
  GemmPackBuffers& pack() { return pack_; }

 private:
  GemmPackBuffers pack_;
  std::unique_ptr<Blocking> blocking_;
  std::int64_t rows_ = -1, cols_ = -1, depth_ = -1;
};

namespace detail {

// C^T (col-major n x m, stride ldc) += alpha * L (n x k) * R (k x m): the row-major problem seen transposed.
template <typename T, int LhsOrder, int RhsOrder>
void gemm_colmajor(GemmWorkspace<T>& ws, std::int64_t n, std::int64_t m, std::int64_t k, T alpha, const T* lhs,
                   std::int64_t lhs_stride, const T* rhs, std::int64_t rhs_stride, T* res, std::int64_t res_stride) {
  using Index = Eigen::Index;
#if EIGEN_VERSION_AT_LEAST(3, 3, 90)
  Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false, Eigen::ColMajor,
                                                 1>::run(n, m, k, lhs, lhs_stride, rhs, rhs_stride, res, 1,
                                                         res_stride, alpha, ws.blocking(n, m, k), nullptr);
#else
  Eigen::internal::general_matrix_matrix_product<Index, T, LhsOrder, false, T, RhsOrder, false,
                                                 Eigen::ColMajor>::run(n, m, k, lhs, lhs_stride, rhs, rhs_stride, res,
                                                                       res_stride, alpha, ws.blocking(n, m, k),
                                                                       nullptr);
#endif
}

// Products with a tiny side (a batch of 4 through a Linear layer): packing the large operand for Eigen's kernel
// costs as much as the product itself, so these stream it once instead, each row in L1 while it is used:
//   C += alpha A B^T with m small: C[i][j] += alpha <A_i, B_j> (dot products, j outer: B_j read once)
//   C += alpha A B   with m small: C_i += alpha A[i][p] B_p    (row updates, p outer: B_p read once)
//   C += alpha A^T B with k small: C_i += alpha A[p][i] B_p    (i outer: C_i read and written once)
// Each sum runs in a fixed order. Returns false when the shape is not one of these.
template <typename T>
bool gemm_small(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc) {
  using Row = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
  using ConstRow = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;
  constexpr std::int64_t kSmall = 8;
  if (!trans_a && trans_b && m <= kSmall) {
    for (std::int64_t j = 0; j < n; ++j) {
      ConstRow bj(b + j * ldb, k);
      for (std::int64_t i = 0; i < m; ++i) c[i * ldc + j] += alpha * ConstRow(a + i * lda, k).dot(bj);
    }
    return true;
  }
  if (!trans_a && !trans_b && m <= kSmall) {
    for (std::int64_t p = 0; p < k; ++p) {
      ConstRow bp(b + p * ldb, n);
      for (std::int64_t i = 0; i < m; ++i) Row(c + i * ldc, n) += (alpha * a[i * lda + p]) * bp;
    }
    return true;
  }
  if (trans_a && !trans_b && k <= kSmall) {
    for (std::int64_t i = 0; i < m; ++i) {
      Row ci(c + i * ldc, n);
      for (std::int64_t p = 0; p < k; ++p) ci += (alpha * a[p * lda + i]) * ConstRow(b + p * ldb, n);
    }
    return true;
  }
  return false;
}

// gemm(ws, ...) below without its epilogue: C filled or scaled first, then accumulated onto.
template <typename T>
void gemm_unfused(GemmWorkspace<T>& ws, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                  std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
                  std::int64_t ldc, const GemmPackedA* packed, const T* row_bias) {
  if (row_bias && beta == T(0)) {
    for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, row_bias[i]);
    beta = T(1);
  }
  if (beta != T(1)) {
    for (std::int64_t i = 0; i < m; ++i) {
      T* row = c + i * ldc;
      if (beta == T(0)) {
        std::fill(row, row + n, T(0));
      } else {
        for (std::int64_t j = 0; j < n; ++j) row[j] *= beta;
      }
    }
  }
  if (k <= 0 || alpha == T(0)) return;
  if constexpr (std::is_same_v<T, float>) {
    if (packed)
      gemm_packed(ws.pack(), *packed, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    else
      gemm_packed(ws.pack(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc);
    return;
  }
  (void)packed;  // packs float only
  if (gemm_small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc)) return;
  // Row-major C = op(A) op(B) is col-major C^T = op(B)^T op(A)^T. A row-major X (r x s, stride ld) read as
  // col-major is X^T (s x r); so op(B)^T is B in col-major order when B is not transposed, row-major otherwise.
  using namespace Eigen;
  if (!trans_b && !trans_a)
    gemm_colmajor<T, ColMajor, ColMajor>(ws, n, m, k, alpha, b, ldb, a, lda, c, ldc);
  else if (!trans_b && trans_a)
    gemm_colmajor<T, ColMajor, RowMajor>(ws, n, m, k, alpha, b, ldb, a, lda, c, ldc);
  else if (trans_b && !trans_a)
    gemm_colmajor<T, RowMajor, ColMajor>(ws, n, m, k, alpha, b, ldb, a, lda, c, ldc);
  else
    gemm_colmajor<T, RowMajor, RowMajor>(ws, n, m, k, alpha, b, ldb, a, lda, c, ldc);
}

}  // namespace detail

// Single-threaded C = alpha op(A) op(B) + beta C with leading dimensions (row strides) lda, ldb, ldc.
// packed: op(A) from gemm_pack_a (float only; other types ignore it), the same bits without packing A again.
// row_bias (with beta 0 only): C = alpha op(A) op(B) + row_bias[i] on row i, the bits of filling C's rows with
// it and adding the product (beta 1), without the pass over C.
// epi (epilogue.hpp): C ends as epi(the result), mapped as the kernels store it (float) or in a pass after.
template <typename T>
void gemm(GemmWorkspace<T>& ws, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k,
          T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
          const GemmPackedA* packed = nullptr, const T* row_bias = nullptr, const RowEpilogue<T>* epi = nullptr) {
  if (m <= 0 || n <= 0) return;
  if (row_bias && beta != T(0)) throw std::invalid_argument("ember: gemm with a row bias needs beta 0");
  if constexpr (std::is_same_v<T, float>) {
    // beta 0: the kernels write C instead of reading it back zeroed (a memset of C saved).
    if (beta == T(0) && k > 0 && alpha != T(0)) {
      if (packed)
        gemm_packed(ws.pack(), *packed, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, true, row_bias,
                    epi);
      else
        gemm_packed(ws.pack(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, true, row_bias, epi);
      return;
    }
  }
  detail::gemm_unfused(ws, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, packed, row_bias);
  if (epi) apply_rows(c, ldc, m, n, *epi);
}

// gemm over up to workspaces.size() threads (fewer when the product is small, see threads_for): the larger of
// m and n is cut into blocks of whole micro-kernel panels, one per thread; with split_rows, m whatever the
// shape (a weight gradient whose rows each thread then updates itself: see linear.hpp).
template <typename T>
void gemm(std::vector<GemmWorkspace<T>>& workspaces, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
          std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
          std::int64_t ldc, bool split_rows = false) {
  const bool split_n = n >= m && !split_rows;
  const std::int64_t extent = split_n ? n : m;
  // Blocks start on the micro-kernel's panel boundaries (mr rows of Eigen's column-major view when splitting
  // C's columns, nr columns otherwise), so every element of C goes through the same kernel and the same sum
  // order whatever the thread count: results do not depend on the number of threads.
  // For float (ember's kernels, whose results do not depend on the cut) the blocks are whole column panels of
  // the active micro-kernel, or 16 rows: the same split in a default and a -march=native build.
  using Traits = Eigen::internal::gebp_traits<T, T>;
  std::int64_t panel = split_n ? static_cast<std::int64_t>(Traits::mr) : static_cast<std::int64_t>(Traits::nr);
  // Blocks of at least 32 columns or 16 rows, the last taking the remainder, so a block is a dot-product shape
  // (gemm_packed.hpp: m <= 8 or n <= 16) exactly when the whole product is one.
  if constexpr (std::is_same_v<T, float>) panel = split_n ? std::max(detail::gemm_kernel(active_isa()).nr, 32) : 16;
  const std::int64_t kAlign = (panel % 16 == 0 || 16 % panel == 0) ? std::max<std::int64_t>(panel, 16) : panel * 16;
  // A block's cost: its flops, plus its share of op(B) and C at 16 flops a value, so a memory-bound product (a
  // batch of 4 through a Linear layer streams the whole weight for 2 flops a value) still splits over threads.
  const std::int64_t other = split_n ? m : n;
  const double block_cost = 2.0 * static_cast<double>(kAlign * other * k) +
                            16.0 * static_cast<double>(kAlign * k + kAlign * other);
  const std::int64_t blocks = std::max<std::int64_t>(1, extent / kAlign);
  const int nt = std::min<int>(static_cast<int>(workspaces.size()), threads_for(blocks, block_cost));
  if (nt <= 1) {
    gemm(workspaces.at(0), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  parallel_for(nt, nt, [&](std::int64_t t) {
    const std::int64_t threads = nt;
    const std::int64_t lo = std::min(extent, blocks * t / threads * kAlign);
    const std::int64_t hi = t + 1 == threads ? extent : std::min(extent, blocks * (t + 1) / threads * kAlign);
    if (hi > lo) {
      auto& ws = workspaces[static_cast<std::size_t>(t)];
      if (split_n) {
        // Columns lo..hi of C: columns of op(B).
        const T* bp = trans_b ? b + lo * ldb : b + lo;
        gemm(ws, trans_a, trans_b, m, hi - lo, k, alpha, a, lda, bp, ldb, beta, c + lo, ldc);
      } else {
        // Rows lo..hi of C: rows of op(A).
        const T* ap = trans_a ? a + lo : a + lo * lda;
        gemm(ws, trans_a, trans_b, hi - lo, n, k, alpha, ap, lda, b, ldb, beta, c + lo * ldc, ldc);
      }
    }
  });
}

// The reference: three loops, accumulating in double.
template <typename T>
void gemm_ref(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
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
