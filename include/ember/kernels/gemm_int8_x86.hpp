#pragma once
// The x86 micro-kernels of gemm_u8s8 (gemm_int8.hpp), each with its own target attribute (isa.hpp): every build
// holds them and the run-time check picks one.
//   vnni  R rows x 32 channels (two panels) in 2R zmm accumulators, one vpdpbusd per row and panel a group of 4
//   avx2  R rows x 16 channels: a group's 4 bytes widened to 16 bits, _mm256_madd_epi16 gives two partial sums
//         per channel (k0+k1, k2+k3), kept apart in the accumulators and added once at the end.
// A row's last group (k not a multiple of 4) is read byte by byte, so A is never read past its k bytes.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ember/kernels/isa.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>

#define EMBER_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace ember::kernels::detail {

// The 4 bytes of group g of a row (zeros past k).
inline std::int32_t group_bytes(const std::uint8_t* row, std::int64_t g, std::int64_t k) {
  std::int32_t v = 0;
  const std::int64_t have = k - 4 * g;
  std::memcpy(&v, row + 4 * g, static_cast<std::size_t>(have >= 4 ? 4 : have));
  return v;
}

template <int R, int P>
EMBER_TARGET_VNNI void u8s8_tile_vnni(const std::uint8_t* a, std::int64_t lda, const std::int8_t* w,
                                      std::int64_t panel_bytes, std::int64_t k, std::int32_t* c, std::int64_t ldc,
                                      std::int64_t cols) {
  __m512i acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_si512();
  const std::int64_t full = k / 4, groups = (k + 3) / 4;
  for (std::int64_t g = 0; g < groups; ++g) {
    __m512i b[P];
    for (int p = 0; p < P; ++p) b[p] = _mm512_loadu_si512(w + p * panel_bytes + g * 64);
    for (int r = 0; r < R; ++r) {
      std::int32_t bytes;
      if (g < full)
        std::memcpy(&bytes, a + r * lda + 4 * g, 4);
      else
        bytes = group_bytes(a + r * lda, g, k);
      const __m512i av = _mm512_set1_epi32(bytes);
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_dpbusd_epi32(acc[r][p], av, b[p]);
    }
  }
  for (int p = 0; p < P; ++p) {
    const std::int64_t left = cols - 16 * p;
    const __mmask16 mask = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_epi32(c + r * ldc + 16 * p, mask, acc[r][p]);
  }
}

template <int R>
EMBER_TARGET_AVX2 void u8s8_tile_avx2(const std::uint8_t* a, std::int64_t lda, const std::int8_t* w,
                                      std::int64_t k, std::int32_t* c, std::int64_t ldc, std::int64_t cols) {
  __m256i acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
  const std::int64_t full = k / 4, groups = (k + 3) / 4;
  for (std::int64_t g = 0; g < groups; ++g) {
    __m256i b[4];
    for (int q = 0; q < 4; ++q)
      b[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + g * 64 + 16 * q)));
    for (int r = 0; r < R; ++r) {
      std::int32_t bytes;
      if (g < full)
        std::memcpy(&bytes, a + r * lda + 4 * g, 4);
      else
        bytes = group_bytes(a + r * lda, g, k);
      const __m256i av = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(bytes)));
      for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(av, b[q]));
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) std::int32_t part[32];
    for (int q = 0; q < 4; ++q) _mm256_store_si256(reinterpret_cast<__m256i*>(part + 8 * q), acc[r][q]);
    for (std::int64_t j = 0; j < cols; ++j) c[r * ldc + j] = part[2 * j] + part[2 * j + 1];
  }
}

// C[m x n] over all panels: blocks of 96 rows (in L2) against each panel (pair) in L1, tiles of R rows.
template <bool Vnni>
void u8s8_rows(std::int64_t m, const std::uint8_t* a, std::int64_t lda, const std::int8_t* w,
               std::int64_t panels, std::int64_t panel_bytes, std::int64_t n, std::int64_t k, std::int32_t* c,
               std::int64_t ldc) {
  constexpr std::int64_t kBlock = 96;
  constexpr int kTile = Vnni ? 8 : 3;
  const std::int64_t step = Vnni ? 2 : 1;
  for (std::int64_t i0 = 0; i0 < m; i0 += kBlock) {
    const std::int64_t i1 = std::min(m, i0 + kBlock);
    for (std::int64_t p = 0; p < panels; p += step) {
      const std::int64_t cols = std::min<std::int64_t>(16 * step, n - 16 * p);
      const std::int8_t* wp = w + p * panel_bytes;
      for (std::int64_t i = i0; i < i1; i += kTile) {
        const int rows = static_cast<int>(std::min<std::int64_t>(kTile, i1 - i));
        const std::uint8_t* ai = a + i * lda;
        std::int32_t* ci = c + i * ldc + 16 * p;
        with_rows<kTile>(rows, [&](auto r) {
          if constexpr (Vnni) {
            if (cols > 16)
              u8s8_tile_vnni<decltype(r)::value, 2>(ai, lda, wp, panel_bytes, k, ci, ldc, cols);
            else
              u8s8_tile_vnni<decltype(r)::value, 1>(ai, lda, wp, panel_bytes, k, ci, ldc, cols);
          } else {
            u8s8_tile_avx2<decltype(r)::value>(ai, lda, wp, k, ci, ldc, cols);
          }
        });
      }
    }
  }
}

}  // namespace ember::kernels::detail
#endif
