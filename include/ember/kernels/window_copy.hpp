#pragma once
// The row copies of im2col and col2im (im2col.hpp) between a window of a plane and a dense block:
//   copy_window: dst[r*cols + j]  = src[r*src_stride + j]
//   add_window:  dst[r*dst_stride + j] += src[r*cols + j]
// for r < rows, j < cols. The report's rows are short (11 values for conv2, 26 for conv1): a plain or Eigen
// loop spends more on the tail than on the body, and a default build's Eigen is SSE2. The float versions use
// masked loads and stores, one or two per row, on the instruction set isa.hpp picks; each element is copied
// or added once, so every path gives the same bits.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "ember/kernels/isa.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>
#endif

namespace ember::kernels {

template <typename T>
void copy_window_ref(T* dst, const T* src, std::int64_t rows, std::int64_t cols, std::int64_t src_stride) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < cols; ++j) dst[r * cols + j] = src[r * src_stride + j];
}

template <typename T>
void add_window_ref(T* dst, std::int64_t dst_stride, const T* src, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < cols; ++j) dst[r * dst_stride + j] += src[r * cols + j];
}

#if EMBER_X86_KERNELS
namespace avx512 {
EMBER_TARGET_AVX512 inline __mmask16 live16(std::int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
}
EMBER_TARGET_AVX512 inline void copy_window(float* dst, const float* src, std::int64_t rows, std::int64_t cols,
                                            std::int64_t src_stride) {
  for (std::int64_t r = 0; r < rows; ++r, dst += cols, src += src_stride)
    for (std::int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = live16(cols - j);
      _mm512_mask_storeu_ps(dst + j, m, _mm512_maskz_loadu_ps(m, src + j));
    }
}
EMBER_TARGET_AVX512 inline void add_window(float* dst, std::int64_t dst_stride, const float* src, std::int64_t rows,
                                           std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r, dst += dst_stride, src += cols)
    for (std::int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = live16(cols - j);
      _mm512_mask_storeu_ps(dst + j, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst + j), _mm512_maskz_loadu_ps(m, src + j)));
    }
}
// col2im for stride 1 and no padding, one image row at a time: for each 16 columns of a row of the image, every
// (ki, kj) that lands there is added into one register (a masked load of the column row shifted by kj), and
// the row is stored once. Adding window by window instead stores and reloads each row kh*kw times, each load
// waiting on a masked store that cannot forward. The adds run in the window order (ki, kj ascending), so the
// sums are those of add_window. img is added to (accumulate) or written, as col2im.
EMBER_TARGET_AVX512 inline void col2im_dense(const float* cols, float* img, std::int64_t channels, std::int64_t height,
                                             std::int64_t width, std::int64_t kh, std::int64_t kw, std::int64_t dh,
                                             std::int64_t dw, std::int64_t oh, std::int64_t ow, bool accumulate) {
  for (std::int64_t c = 0; c < channels; ++c)
    for (std::int64_t y = 0; y < height; ++y) {
      float* dst = img + (c * height + y) * width;
      for (std::int64_t x0 = 0; x0 < width; x0 += 16) {
        const __mmask16 live = live16(width - x0);
        __m512 acc = accumulate ? _mm512_maskz_loadu_ps(live, dst + x0) : _mm512_setzero_ps();
        for (std::int64_t ki = 0; ki < kh; ++ki) {
          const std::int64_t oy = y - ki * dh;
          if (oy < 0 || oy >= oh) continue;
          for (std::int64_t kj = 0; kj < kw; ++kj) {
            // Lanes j with 0 <= x0 + j - kj*dw < ow read column row (c, ki, kj) at output (oy, x0 + j - kj*dw).
            const std::int64_t shift = kj * dw - x0;
            const std::int64_t lo = std::max<std::int64_t>(0, shift), hi = std::min<std::int64_t>(16, shift + ow);
            if (hi <= lo) continue;
            const auto m = static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
            const float* row = cols + ((c * kh + ki) * kw + kj) * oh * ow + oy * ow;
            acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, row - shift));  // others untouched (-0 stays)
          }
        }
        _mm512_mask_storeu_ps(dst + x0, live, acc);
      }
    }
}
}  // namespace avx512

namespace avx2 {
// Lanes j < left of 8 set (all bits of a lane), for maskload / maskstore.
EMBER_TARGET_AVX2 inline __m256i live8(std::int64_t left) {
  const int n = left >= 8 ? 8 : static_cast<int>(left);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
EMBER_TARGET_AVX2 inline void copy_window(float* dst, const float* src, std::int64_t rows, std::int64_t cols,
                                          std::int64_t src_stride) {
  for (std::int64_t r = 0; r < rows; ++r, dst += cols, src += src_stride)
    for (std::int64_t j = 0; j < cols; j += 8) {
      const __m256i m = live8(cols - j);
      _mm256_maskstore_ps(dst + j, m, _mm256_maskload_ps(src + j, m));
    }
}
EMBER_TARGET_AVX2 inline void add_window(float* dst, std::int64_t dst_stride, const float* src, std::int64_t rows,
                                         std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r, dst += dst_stride, src += cols)
    for (std::int64_t j = 0; j < cols; j += 8) {
      const __m256i m = live8(cols - j);
      _mm256_maskstore_ps(dst + j, m, _mm256_add_ps(_mm256_maskload_ps(dst + j, m), _mm256_maskload_ps(src + j, m)));
    }
}
}  // namespace avx2
#endif

template <typename T>
void copy_window(T* dst, const T* src, std::int64_t rows, std::int64_t cols, std::int64_t src_stride) {
#if EMBER_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    const Isa isa = active_isa();
    if (isa == Isa::avx512) return avx512::copy_window(dst, src, rows, cols, src_stride);
    if (isa == Isa::avx2) return avx2::copy_window(dst, src, rows, cols, src_stride);
  }
#endif
  copy_window_ref(dst, src, rows, cols, src_stride);
}

template <typename T>
void add_window(T* dst, std::int64_t dst_stride, const T* src, std::int64_t rows, std::int64_t cols) {
#if EMBER_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    const Isa isa = active_isa();
    if (isa == Isa::avx512) return avx512::add_window(dst, dst_stride, src, rows, cols);
    if (isa == Isa::avx2) return avx2::add_window(dst, dst_stride, src, rows, cols);
  }
#endif
  add_window_ref(dst, dst_stride, src, rows, cols);
}

}  // namespace ember::kernels
