#pragma once
// The AVX2+FMA GEMM kernels (float), compiled into every build through target attributes; isa.hpp decides at run
// time whether they run. The same contract as gemm_avx512.hpp with 16 ymm registers: a tile is rows x 16 with
// rows <= 6 (12 accumulators, two B vectors, one broadcast).
#include <cstdint>

#include "ember/kernels/epilogue.hpp"
#include "ember/kernels/isa.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>

namespace ember::kernels::avx2 {

constexpr int kMr = 6, kNr = 16;

EMBER_TARGET_AVX2 inline __m256i lane_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

EMBER_TARGET_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// epilogue.hpp's map of one row's values (see avx512::finish).
EMBER_TARGET_AVX2 inline __m256 finish(__m256 v, const RowEpilogue<float>& e, int r) {
  if (e.relu) v = _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ));
  if (e.scale)
    v = _mm256_fmadd_ps(_mm256_sub_ps(v, _mm256_set1_ps(e.center[r])), _mm256_set1_ps(e.scale[r]),
                        _mm256_set1_ps(e.shift[r]));
  return v;
}

template <int R>
EMBER_TARGET_AVX2 void tile(std::int64_t kc, const float* pa, const float* pb, std::int64_t bstride, float* c,
                            std::int64_t ldc, int cols, float alpha, const float* init,
                            const RowEpilogue<float>* epi) {
  __m256 acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(pb), b1 = _mm256_loadu_ps(pb + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(pa + r);
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
    pa += R;
    pb += bstride;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (cols == kNr) {
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc;
      __m256 v0 = _mm256_fmadd_ps(va, acc0[r], init ? _mm256_set1_ps(init[r]) : _mm256_loadu_ps(cr));
      __m256 v1 = _mm256_fmadd_ps(va, acc1[r], init ? _mm256_set1_ps(init[r]) : _mm256_loadu_ps(cr + 8));
      if (epi) {
        v0 = finish(v0, *epi, r);
        v1 = finish(v1, *epi, r);
      }
      _mm256_storeu_ps(cr, v0);
      _mm256_storeu_ps(cr + 8, v1);
    }
    return;
  }
  const __m256i m0 = lane_mask(cols), m1 = lane_mask(cols - 8);
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    __m256 v0 = _mm256_fmadd_ps(va, acc0[r], init ? _mm256_set1_ps(init[r]) : _mm256_maskload_ps(cr, m0));
    if (epi) v0 = finish(v0, *epi, r);
    _mm256_maskstore_ps(cr, m0, v0);
    if (cols > 8) {
      __m256 v1 = _mm256_fmadd_ps(va, acc1[r], init ? _mm256_set1_ps(init[r]) : _mm256_maskload_ps(cr + 8, m1));
      if (epi) v1 = finish(v1, *epi, r);
      _mm256_maskstore_ps(cr + 8, m1, v1);
    }
  }
}

EMBER_TARGET_AVX2 inline void tile_rows(int rows, std::int64_t kc, const float* pa, const float* pb,
                                        std::int64_t bstride, float* c, std::int64_t ldc, int cols, float alpha,
                                        const float* init, const RowEpilogue<float>* epi) {
  with_rows<kMr>(rows, [&](auto r) { tile<decltype(r)::value>(kc, pa, pb, bstride, c, ldc, cols, alpha, init, epi); });
}

// A panel of B as [rows][16] (see avx512::pack_rows); maskload reads no masked-off lane.
EMBER_TARGET_AVX2 inline void pack_rows(const float* src, std::int64_t ld, std::int64_t rows, int cols, float* dst) {
  const __m256i m0 = lane_mask(cols), m1 = lane_mask(cols - 8);
  for (std::int64_t p = 0; p < rows; ++p) {
    const float* s = src + p * ld;
    _mm256_storeu_ps(dst + p * kNr, _mm256_maskload_ps(s, m0));
    _mm256_storeu_ps(dst + p * kNr + 8, _mm256_maskload_ps(s + 8, m1));
  }
}

// C[M x n] += alpha A B^T for M <= 4 (see avx512::dots); the k tail runs in scalar after the vector sum.
template <int M>
EMBER_TARGET_AVX2 void dots(std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda,
                            const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  const std::int64_t full = k / 8 * 8;
  std::int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const float* b0 = b + j * ldb;
    const float* b1 = b0 + ldb;
    __m256 s0[M], s1[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) s0[i] = s1[i] = _mm256_setzero_ps();
    for (std::int64_t p = 0; p < full; p += 8) {
      const __m256 v0 = _mm256_loadu_ps(b0 + p), v1 = _mm256_loadu_ps(b1 + p);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const __m256 av = _mm256_loadu_ps(a + i * lda + p);
        s0[i] = _mm256_fmadd_ps(av, v0, s0[i]);
        s1[i] = _mm256_fmadd_ps(av, v1, s1[i]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      float t0 = hsum(s0[i]), t1 = hsum(s1[i]);
      for (std::int64_t p = full; p < k; ++p) {
        t0 += a[i * lda + p] * b0[p];
        t1 += a[i * lda + p] * b1[p];
      }
      c[i * ldc + j] += alpha * t0;
      c[i * ldc + j + 1] += alpha * t1;
    }
  }
  for (; j < n; ++j) {
    const float* b0 = b + j * ldb;
    __m256 s0[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) s0[i] = _mm256_setzero_ps();
    for (std::int64_t p = 0; p < full; p += 8) {
      const __m256 v0 = _mm256_loadu_ps(b0 + p);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) s0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(a + i * lda + p), v0, s0[i]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      float t0 = hsum(s0[i]);
      for (std::int64_t p = full; p < k; ++p) t0 += a[i * lda + p] * b0[p];
      c[i * ldc + j] += alpha * t0;
    }
  }
}

EMBER_TARGET_AVX2 inline void dots_rows(int m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                                        std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                                        std::int64_t ldc) {
  for (int i0 = 0; i0 < m; i0 += 4) {
    const float* ai = a + i0 * lda;
    float* ci = c + i0 * ldc;
    with_rows<4>(m - i0, [&](auto r) { dots<decltype(r)::value>(n, k, alpha, ai, lda, b, ldb, ci, ldc); });
  }
}

// dst[j * dst_stride + i] = src[i * src_stride + j] for an rows x cols block: the transposing copies of the
// packing (op(B) = B^T into panels, A's rows into tiles), 8 x 8 at a time in registers.
EMBER_TARGET_AVX2 inline void transpose_block(const float* src, std::int64_t src_stride, std::int64_t rows,
                                              std::int64_t cols, float* dst, std::int64_t dst_stride) {
  std::int64_t i = 0;
  for (; i + 8 <= rows; i += 8) {
    std::int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      const float* s = src + i * src_stride + j;
      __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + src_stride),
             r2 = _mm256_loadu_ps(s + 2 * src_stride), r3 = _mm256_loadu_ps(s + 3 * src_stride),
             r4 = _mm256_loadu_ps(s + 4 * src_stride), r5 = _mm256_loadu_ps(s + 5 * src_stride),
             r6 = _mm256_loadu_ps(s + 6 * src_stride), r7 = _mm256_loadu_ps(s + 7 * src_stride);
      // Interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      r0 = _mm256_permute2f128_ps(u0, u4, 0x20);
      r1 = _mm256_permute2f128_ps(u1, u5, 0x20);
      r2 = _mm256_permute2f128_ps(u2, u6, 0x20);
      r3 = _mm256_permute2f128_ps(u3, u7, 0x20);
      r4 = _mm256_permute2f128_ps(u0, u4, 0x31);
      r5 = _mm256_permute2f128_ps(u1, u5, 0x31);
      r6 = _mm256_permute2f128_ps(u2, u6, 0x31);
      r7 = _mm256_permute2f128_ps(u3, u7, 0x31);
      float* d = dst + j * dst_stride + i;
      _mm256_storeu_ps(d, r0);
      _mm256_storeu_ps(d + dst_stride, r1);
      _mm256_storeu_ps(d + 2 * dst_stride, r2);
      _mm256_storeu_ps(d + 3 * dst_stride, r3);
      _mm256_storeu_ps(d + 4 * dst_stride, r4);
      _mm256_storeu_ps(d + 5 * dst_stride, r5);
      _mm256_storeu_ps(d + 6 * dst_stride, r6);
      _mm256_storeu_ps(d + 7 * dst_stride, r7);
    }
    for (; j < cols; ++j)
      for (std::int64_t ii = i; ii < i + 8; ++ii) dst[j * dst_stride + ii] = src[ii * src_stride + j];
  }
  for (; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
}

}  // namespace ember::kernels::avx2

#endif
