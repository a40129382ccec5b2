#pragma once
// The AVX-512 GEMM kernels (float), compiled into every build through target attributes; isa.hpp decides at run
// time whether they run. Layouts and the contract of each kernel are in gemm_packed.hpp.
//
// tile: a rows x 32 block of C (rows <= 12) from packed A ([kc][rows]) and a B panel (row p at pb + p*bstride,
// 32 floats, readable in full). 24 accumulators, two B vectors and the broadcast A value fill 27 of the 32 zmm
// registers, and each step issues 24 FMAs against 2 loads plus 12 broadcasts, so the FMA pipes are the limit.
// Every C element is one chain of FMAs over p from zero, added to C once (times alpha): the same arithmetic
// whatever the tile's row count, so results do not depend on how C is cut. init null adds to C; otherwise C is
// written, not read, as init[r] + alpha acc on row r (a product's first slice with beta 0, or a bias per row:
// the bits of filling C with init first). epi (a product's last slice, null otherwise) is applied to each value
// before it is stored (epilogue.hpp).
#include <cstdint>

#include "ember/kernels/epilogue.hpp"
#include "ember/kernels/isa.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>

namespace ember::kernels::avx512 {

constexpr int kMr = 12, kNr = 32;

// Horizontal sum in a fixed order.
EMBER_TARGET_AVX512 inline float hsum(__m512 v) {
  // The maskz forms: the plain ones start from _mm512_undefined_ps(), which GCC 12 flags under -Wall.
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(0xFFFF, v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(0xFFFF, v, v, 0xB1));
  __m128 s = _mm512_maskz_extractf32x4_ps(0xF, v, 0);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// epilogue.hpp's map of one row's values; the relu mask keeps v where !(v <= 0), so NaN passes as in ReLU.
EMBER_TARGET_AVX512 inline __m512 finish(__m512 v, const RowEpilogue<float>& e, int r) {
  if (e.relu) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ), v);
  if (e.scale)
    v = _mm512_fmadd_ps(_mm512_sub_ps(v, _mm512_set1_ps(e.center[r])), _mm512_set1_ps(e.scale[r]),
                        _mm512_set1_ps(e.shift[r]));
  return v;
}

template <int R>
EMBER_TARGET_AVX512 void tile(std::int64_t kc, const float* pa, const float* pb, std::int64_t bstride, float* c,
                              std::int64_t ldc, int cols, float alpha, const float* init,
                              const RowEpilogue<float>* epi) {
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (std::int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(pa[r]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
    pa += R;
    pb += bstride;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1u);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    const __m512 c0 = init ? _mm512_set1_ps(init[r]) : _mm512_maskz_loadu_ps(m0, cr);
    __m512 v0 = _mm512_fmadd_ps(va, acc0[r], c0);
    if (epi) v0 = finish(v0, *epi, r);
    _mm512_mask_storeu_ps(cr, m0, v0);
    if (m1) {
      const __m512 c1 = init ? _mm512_set1_ps(init[r]) : _mm512_maskz_loadu_ps(m1, cr + 16);
      __m512 v1 = _mm512_fmadd_ps(va, acc1[r], c1);
      if (epi) v1 = finish(v1, *epi, r);
      _mm512_mask_storeu_ps(cr + 16, m1, v1);
    }
  }
}

EMBER_TARGET_AVX512 inline void tile_rows(int rows, std::int64_t kc, const float* pa, const float* pb,
                                          std::int64_t bstride, float* c, std::int64_t ldc, int cols, float alpha,
                                          const float* init, const RowEpilogue<float>* epi) {
  with_rows<kMr>(rows, [&](auto r) { tile<decltype(r)::value>(kc, pa, pb, bstride, c, ldc, cols, alpha, init, epi); });
}

// A panel of B: `rows` rows of `cols` <= 32 floats (row p at src + p * ld) into dst as [rows][32], the columns
// past cols zeroed. One masked load and one store per 16 floats (masked-off lanes are never read): a copy and a
// fill per row cost two library calls (4 % of CNN inference, on the last, partial panel of every product).
EMBER_TARGET_AVX512 inline void pack_rows(const float* src, std::int64_t ld, std::int64_t rows, int cols, float* dst) {
  const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << cols) - 1u);
  const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : __mmask16((1u << (cols - 16)) - 1u);
  for (std::int64_t p = 0; p < rows; ++p) {
    const float* s = src + p * ld;
    _mm512_storeu_ps(dst + p * kNr, _mm512_maskz_loadu_ps(m0, s));
    _mm512_storeu_ps(dst + p * kNr + 16, _mm512_maskz_loadu_ps(m1, s + 16));
  }
}

// C[M x n] += alpha A B^T for M <= 8 rows, A [M x k] and B [n x k] row-major: dot products along k, two columns
// of C at a time so each A load feeds two FMAs. B is streamed once, unpacked.
template <int M>
EMBER_TARGET_AVX512 void dots(std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda,
                              const float* b, std::int64_t ldb, float* c, std::int64_t ldc) {
  const std::int64_t full = k / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (k - full)) - 1u);
  std::int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const float* b0 = b + j * ldb;
    const float* b1 = b0 + ldb;
    __m512 s0[M], s1[M];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) s0[i] = s1[i] = _mm512_setzero_ps();
    for (std::int64_t p = 0; p < full; p += 16) {
      const __m512 v0 = _mm512_loadu_ps(b0 + p), v1 = _mm512_loadu_ps(b1 + p);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m512 av = _mm512_loadu_ps(a + i * lda + p);
        s0[i] = _mm512_fmadd_ps(av, v0, s0[i]);
        s1[i] = _mm512_fmadd_ps(av, v1, s1[i]);
      }
    }
    if (tail) {
      const __m512 v0 = _mm512_maskz_loadu_ps(tail, b0 + full), v1 = _mm512_maskz_loadu_ps(tail, b1 + full);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m512 av = _mm512_maskz_loadu_ps(tail, a + i * lda + full);
        s0[i] = _mm512_fmadd_ps(av, v0, s0[i]);
        s1[i] = _mm512_fmadd_ps(av, v1, s1[i]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      c[i * ldc + j] += alpha * hsum(s0[i]);
      c[i * ldc + j + 1] += alpha * hsum(s1[i]);
    }
  }
  for (; j < n; ++j) {
    const float* b0 = b + j * ldb;
    __m512 s0[M];
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) s0[i] = _mm512_setzero_ps();
    for (std::int64_t p = 0; p < full; p += 16) {
      const __m512 v0 = _mm512_loadu_ps(b0 + p);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) s0[i] = _mm512_fmadd_ps(_mm512_loadu_ps(a + i * lda + p), v0, s0[i]);
    }
    if (tail) {
      const __m512 v0 = _mm512_maskz_loadu_ps(tail, b0 + full);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i)
        s0[i] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i * lda + full), v0, s0[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) c[i * ldc + j] += alpha * hsum(s0[i]);
  }
}

EMBER_TARGET_AVX512 inline void dots_rows(int m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                                          std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                                          std::int64_t ldc) {
  with_rows<8>(m, [&](auto r) { dots<decltype(r)::value>(n, k, alpha, a, lda, b, ldb, c, ldc); });
}

}  // namespace ember::kernels::avx512

#endif
