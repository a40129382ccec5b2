#pragma once
// bfloat16 products with float accumulation: Y[m x n] = bf16(A)[m x k] . bf16(W)[n x k]^T + bias, ReLU.
//   pack_bf16(w, n, k)   W rounded to bf16 once (quantize.hpp's to_bf16) and packed: panels of 16 channels,
//                        k in pairs (64 bytes a pair), the layout vdpbf16ps reads; k padded with zeros.
//   gemm_bf16(ws, ...)   A's rows rounded to bf16 as they are used, then the products.
//   gemm_bf16_ref        the triple loop over the rounded values, accumulating in double.
// Paths: avx512 on a CPU with AVX512-BF16 runs _mm512_dpbf16_ps (8 rows x 32 channels a tile); every other
// path the portable loop, which adds each pair's products in the instruction's order (odd element, then even)
// to one float sum per channel: a product of two bf16 values is exact in float, so both paths give the same
// bits (save for denormal sums, which the instruction flushes to zero).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/kernels/isa.hpp"
#include "ember/kernels/quantize.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>
#define EMBER_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

namespace ember::kernels {

struct PackedBf16 {
  std::int64_t n = 0, k = 0, pairs = 0;
  std::vector<bf16_t> data;  // panels of 16 * 2 * pairs values
  std::int64_t panels() const { return (n + 15) / 16; }
  const bf16_t* panel(std::int64_t p) const { return data.data() + p * 32 * pairs; }
};

inline PackedBf16 pack_bf16(const float* w, std::int64_t n, std::int64_t k) {
  if (n <= 0 || k <= 0)
    throw std::invalid_argument("ember: pack_bf16 expected n, k >= 1, got " + std::to_string(n) + ", " +
                                std::to_string(k));
  PackedBf16 p;
  p.n = n;
  p.k = k;
  p.pairs = (k + 1) / 2;
  p.data.assign(static_cast<std::size_t>(p.panels() * 32 * p.pairs), 0);
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t q = 0; q < k; ++q)
      p.data[static_cast<std::size_t>((j / 16) * 32 * p.pairs + (q / 2) * 32 + (j % 16) * 2 + q % 2)] =
          to_bf16(w[j * k + q]);
  return p;
}

inline bool cpu_has_bf16() {
#if EMBER_X86_KERNELS
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}
// True when gemm_bf16 runs vdpbf16ps under the active instruction set.
inline bool bf16_native() { return active_isa() == Isa::avx512 && cpu_has_bf16(); }

namespace detail {
// rows x pairs rounded A (pairs as 32-bit words), c: rows x n.
inline void bf16_portable(std::int64_t rows, const std::uint32_t* a, std::int64_t pairs, const PackedBf16& w,
                          float* c, std::int64_t ldc) {
  for (std::int64_t p = 0; p < w.panels(); ++p) {
    const bf16_t* panel = w.panel(p);
    const std::int64_t cols = std::min<std::int64_t>(16, w.n - 16 * p);
    for (std::int64_t i = 0; i < rows; ++i) {
      float acc[16] = {};
      for (std::int64_t g = 0; g < pairs; ++g) {
        const std::uint32_t av = a[i * pairs + g];
        const float a0 = from_bf16(static_cast<bf16_t>(av & 0xffffu)), a1 = from_bf16(static_cast<bf16_t>(av >> 16));
        for (int j = 0; j < 16; ++j) {
          acc[j] += a1 * from_bf16(panel[g * 32 + j * 2 + 1]);
          acc[j] += a0 * from_bf16(panel[g * 32 + j * 2]);
        }
      }
      std::copy(acc, acc + cols, c + i * ldc + 16 * p);
    }
  }
}

// A row of k floats rounded to bf16, pairs packed in 32-bit words (zero past k).
inline void round_row(const float* row, std::int64_t k, std::uint32_t* out) {
  for (std::int64_t g = 0; 2 * g < k; ++g) {
    const std::uint32_t lo = to_bf16(row[2 * g]);
    const std::uint32_t hi = 2 * g + 1 < k ? to_bf16(row[2 * g + 1]) : 0u;
    out[g] = lo | (hi << 16);
  }
}

#if EMBER_X86_KERNELS
// The same with vcvtneps2bf16 (round to nearest even, as to_bf16).
EMBER_TARGET_BF16 inline void round_row_native(const float* row, std::int64_t k, std::uint32_t* out) {
  auto* out16 = reinterpret_cast<std::uint16_t*>(out);
  if (k % 2) out16[k] = 0;
  for (std::int64_t q = 0; q < k; q += 16) {
    const std::int64_t left = k - q;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, row + q));
    _mm256_mask_storeu_epi16(out16 + q, mask, (__m256i)v);
  }
}

template <int R, int P>
EMBER_TARGET_BF16 void bf16_tile(const std::uint32_t* a, std::int64_t pairs, const bf16_t* w,
                                 std::int64_t panel_values, float* c, std::int64_t ldc, std::int64_t cols) {
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_ps();
  for (std::int64_t g = 0; g < pairs; ++g) {
    __m512bh b[P];
    for (int p = 0; p < P; ++p) b[p] = (__m512bh)_mm512_loadu_si512(w + p * panel_values + g * 32);
    for (int r = 0; r < R; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(a[r * pairs + g]));
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], av, b[p]);
    }
  }
  for (int p = 0; p < P; ++p) {
    const std::int64_t left = cols - 16 * p;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(c + r * ldc + 16 * p, mask, acc[r][p]);
  }
}

inline void bf16_rows(std::int64_t rows, const std::uint32_t* a, std::int64_t pairs, const PackedBf16& w,
                      float* c, std::int64_t ldc) {
  for (std::int64_t p = 0; p < w.panels(); p += 2) {
    const std::int64_t cols = std::min<std::int64_t>(32, w.n - 16 * p);
    for (std::int64_t i = 0; i < rows; i += 8) {
      const int r = static_cast<int>(std::min<std::int64_t>(8, rows - i));
      with_rows<8>(r, [&](auto R) {
        if (cols > 16)
          bf16_tile<decltype(R)::value, 2>(a + i * pairs, pairs, w.panel(p), 32 * w.pairs, c + i * ldc + 16 * p,
                                           ldc, cols);
        else
          bf16_tile<decltype(R)::value, 1>(a + i * pairs, pairs, w.panel(p), 32 * w.pairs, c + i * ldc + 16 * p,
                                           ldc, cols);
      });
    }
  }
}
#endif
}  // namespace detail

struct Bf16Workspace {
  std::vector<std::uint32_t> a;  // a block of A's rows rounded, in pairs
  std::vector<float> c;
};

// y[i * y_row + j * y_col] = sum_k bf16(a[i][k]) bf16(w[j][k]) (+ bias[j]), then ReLU when relu.
inline void gemm_bf16(Bf16Workspace& ws, std::int64_t m, const float* a, std::int64_t lda, const PackedBf16& w,
                      const float* bias, bool relu, float* y, std::int64_t y_row, std::int64_t y_col) {
  constexpr std::int64_t kRows = 64;
  const std::int64_t block = std::min(m, kRows);
  ws.a.resize(static_cast<std::size_t>(block * w.pairs));
  ws.c.resize(static_cast<std::size_t>(block * w.n));
  const bool native = bf16_native();
  for (std::int64_t i0 = 0; i0 < m; i0 += kRows) {
    const std::int64_t rows = std::min(kRows, m - i0);
#if EMBER_X86_KERNELS
    if (native) {
      for (std::int64_t i = 0; i < rows; ++i)
        detail::round_row_native(a + (i0 + i) * lda, w.k, ws.a.data() + i * w.pairs);
      detail::bf16_rows(rows, ws.a.data(), w.pairs, w, ws.c.data(), w.n);
    } else
#endif
    {
      for (std::int64_t i = 0; i < rows; ++i) detail::round_row(a + (i0 + i) * lda, w.k, ws.a.data() + i * w.pairs);
      detail::bf16_portable(rows, ws.a.data(), w.pairs, w, ws.c.data(), w.n);
    }
    (void)native;
    // Along y's contiguous side (a convolution's pixels when y_row is 1).
    const bool by_column = y_row == 1 && y_col != 1;
    const std::int64_t outer = by_column ? w.n : rows, inner = by_column ? rows : w.n;
    for (std::int64_t o = 0; o < outer; ++o)
      for (std::int64_t t = 0; t < inner; ++t) {
        const std::int64_t i = by_column ? t : o, j = by_column ? o : t;
        const float v = ws.c[static_cast<std::size_t>(i * w.n + j)] + (bias ? bias[j] : 0.0f);
        y[(i0 + i) * y_row + j * y_col] = relu ? (v > 0 ? v : 0.0f) : v;
      }
  }
}

inline void gemm_bf16_ref(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, const float* w,
                          float* c) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t q = 0; q < k; ++q) acc += double(round_bf16(a[i * k + q])) * round_bf16(w[j * k + q]);
      c[i * n + j] = static_cast<float>(acc);
    }
}

}  // namespace ember::kernels
