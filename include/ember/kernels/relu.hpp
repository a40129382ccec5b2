#pragma once
// ReLU with a byte mask (nn::ReLU keeps one byte per element for backward), on raw buffers:
//   relu_mask_forward:  m[i] = !(x[i] <= 0) (NaN passes, as torch.relu), y[i] = m[i] ? x[i] : 0
//   relu_mask_backward: d[i] = m[i] ? g[i] : 0 (0 also where g is NaN, as threshold_backward)
// The float versions run on the instruction set isa.hpp picks: the select on a byte mask does not vectorise
// for SSE2, so a default build's loop ran scalar (a fifth of a CNN training step).
// Naming, as in every kernel: the fast pair, and *_ref their plain references.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ember/core/parallel.hpp"
#include "ember/kernels/isa.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>
#endif

namespace ember::kernels {

// The ReLU of one value: 0 where v <= 0, v otherwise (NaN passes, as torch.relu).
template <typename T>
inline T relu_value(T v) {
  return v <= T(0) ? T(0) : v;
}

template <typename T>
void relu_mask_forward_ref(const T* x, T* y, std::uint8_t* m, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const bool pos = !(x[i] <= T(0));
    m[i] = static_cast<std::uint8_t>(pos);
    y[i] = pos ? x[i] : T(0);
  }
}

template <typename T>
void relu_mask_backward_ref(const T* g, const std::uint8_t* m, T* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) d[i] = m[i] ? g[i] : T(0);
}

#if EMBER_X86_KERNELS
namespace avx512 {
EMBER_TARGET_AVX512 inline void relu_mask_forward(const float* x, float* y, std::uint8_t* m, std::int64_t n) {
  const __m512 zero = _mm512_setzero_ps();
  const __m128i one = _mm_set1_epi8(1);
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(live, x + i);
    const __mmask16 pos = _mm512_mask_cmp_ps_mask(live, v, zero, _CMP_NLE_UQ);
    _mm512_mask_storeu_ps(y + i, live, _mm512_maskz_mov_ps(pos, v));
    _mm_mask_storeu_epi8(m + i, live, _mm_maskz_mov_epi8(pos, one));
  }
}
EMBER_TARGET_AVX512 inline void relu_mask_backward(const float* g, const std::uint8_t* m, float* d, std::int64_t n) {
  for (std::int64_t i = 0; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    const __m128i bytes = _mm_maskz_loadu_epi8(live, m + i);
    const __mmask16 pos = _mm_test_epi8_mask(bytes, bytes);
    _mm512_mask_storeu_ps(d + i, live, _mm512_maskz_loadu_ps(pos, g + i));
  }
}
}  // namespace avx512

namespace avx2 {
EMBER_TARGET_AVX2 inline void relu_mask_forward(const float* x, float* y, std::uint8_t* m, std::int64_t n) {
  const __m256 zero = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 pos = _mm256_cmp_ps(v, zero, _CMP_NLE_UQ);
    _mm256_storeu_ps(y + i, _mm256_and_ps(pos, v));
    const int bits = _mm256_movemask_ps(pos);
    for (int j = 0; j < 8; ++j) m[i + j] = static_cast<std::uint8_t>((bits >> j) & 1);
  }
  relu_mask_forward_ref(x + i, y + i, m + i, n - i);
}
EMBER_TARGET_AVX2 inline void relu_mask_backward(const float* g, const std::uint8_t* m, float* d, std::int64_t n) {
  const __m256i zero = _mm256_setzero_si256();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::int64_t eight;
    __builtin_memcpy(&eight, m + i, 8);
    const __m256i wide = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight));
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(wide, zero));
    _mm256_storeu_ps(d + i, _mm256_and_ps(keep, _mm256_loadu_ps(g + i)));
  }
  relu_mask_backward_ref(g + i, m + i, d + i, n - i);
}
}  // namespace avx2
#endif

template <typename T>
void relu_mask_forward(const T* x, T* y, std::uint8_t* m, std::int64_t n) {
#if EMBER_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    const Isa isa = active_isa();
    if (isa == Isa::avx512) return avx512::relu_mask_forward(x, y, m, n);
    if (isa == Isa::avx2) return avx2::relu_mask_forward(x, y, m, n);
  }
#endif
  relu_mask_forward_ref(x, y, m, n);
}

template <typename T>
void relu_mask_backward(const T* g, const std::uint8_t* m, T* d, std::int64_t n) {
#if EMBER_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    const Isa isa = active_isa();
    if (isa == Isa::avx512) return avx512::relu_mask_backward(g, m, d, n);
    if (isa == Isa::avx2) return avx2::relu_mask_backward(g, m, d, n);
  }
#endif
  relu_mask_backward_ref(g, m, d, n);
}

// y = relu(x) over n values (inference: no mask), split over threads when large; y may be x.
template <typename T>
void relu_forward(const T* x, T* y, std::int64_t n) {
  parallel_chunks(n, [&](std::int64_t lo, std::int64_t hi) { std::transform(x + lo, x + hi, y + lo, relu_value<T>); });
}

}  // namespace ember::kernels
