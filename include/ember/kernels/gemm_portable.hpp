#pragma once
// The portable GEMM kernels (float): plain C++ that the compiler vectorises for whatever the build targets (SSE2
// by default). The same contract as gemm_avx512.hpp, with rows x 8 tiles (rows <= 4).
#include <cstdint>

#include "ember/kernels/epilogue.hpp"
#include "ember/kernels/isa.hpp"

namespace ember::kernels::portable {

constexpr int kMr = 4, kNr = 8;

template <int R>
void tile(std::int64_t kc, const float* pa, const float* pb, std::int64_t bstride, float* c, std::int64_t ldc,
          int cols, float alpha, const float* init, const RowEpilogue<float>* epi) {
  float acc[R][kNr] = {};
  for (std::int64_t p = 0; p < kc; ++p) {
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < kNr; ++j) acc[r][j] += pa[r] * pb[j];
    pa += R;
    pb += bstride;
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < cols; ++j) {
      const float v = (init ? init[r] : c[r * ldc + j]) + alpha * acc[r][j];
      c[r * ldc + j] = epi ? apply_row(v, *epi, r) : v;
    }
}

inline void tile_rows(int rows, std::int64_t kc, const float* pa, const float* pb, std::int64_t bstride, float* c,
                      std::int64_t ldc, int cols, float alpha, const float* init, const RowEpilogue<float>* epi) {
  with_rows<kMr>(rows, [&](auto r) { tile<decltype(r)::value>(kc, pa, pb, bstride, c, ldc, cols, alpha, init, epi); });
}

// C[m x n] += alpha A B^T for small m: one dot product per element, in 8 partial sums added in a fixed order.
inline void dots_rows(int m, std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  for (std::int64_t j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      const float* ai = a + i * lda;
      const float* bj = b + j * ldb;
      float s[8] = {};
      std::int64_t p = 0;
      for (; p + 8 <= k; p += 8)
        for (int l = 0; l < 8; ++l) s[l] += ai[p + l] * bj[p + l];
      float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
      for (; p < k; ++p) t += ai[p] * bj[p];
      c[i * ldc + j] += alpha * t;
    }
}

// A panel of B as [rows][8], the columns past cols zeroed.
inline void pack_rows(const float* src, std::int64_t ld, std::int64_t rows, int cols, float* dst) {
  for (std::int64_t p = 0; p < rows; ++p)
    for (int j = 0; j < kNr; ++j) dst[p * kNr + j] = j < cols ? src[p * ld + j] : 0.0f;
}

// dst[j * dst_stride + i] = src[i * src_stride + j] for an rows x cols block.
inline void transpose_block(const float* src, std::int64_t src_stride, std::int64_t rows, std::int64_t cols,
                            float* dst, std::int64_t dst_stride) {
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
}

}  // namespace ember::kernels::portable
