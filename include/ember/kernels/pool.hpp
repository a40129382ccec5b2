#pragma once
// Max pooling over one plane (PyTorch's MaxPool2d, dilation 1, floor mode).
//   out_h = (h + 2*pad_h - kernel_h) / stride_h + 1; padded positions count as -inf.
// The first maximum in scan order wins and NaN propagates, as in PyTorch's CPU kernel; the flat index of the
// winner within the plane is kept for backward, which routes each output gradient to that input.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "ember/core/parallel.hpp"
#include "ember/kernels/isa.hpp"

#if EMBER_X86_KERNELS
#include <immintrin.h>
#endif

namespace ember::kernels {

struct Pool2dGeometry {
  std::int64_t height, width;
  std::int64_t kernel_h, kernel_w;
  std::int64_t stride_h, stride_w;
  std::int64_t pad_h, pad_w;

  std::int64_t out_h() const { return (height + 2 * pad_h - kernel_h) / stride_h + 1; }
  std::int64_t out_w() const { return (width + 2 * pad_w - kernel_w) / stride_w + 1; }
};

// Naming, as in every kernel: maxpool2d_forward is the fast kernel, maxpool2d_forward_ref the plain
// reference.

// The reference, and the kernel for every window but 2x2 unpadded.
// in: height x width; out and argmax: out_h x out_w. argmax may be null (inference).
template <typename T>
void maxpool2d_forward_ref(const Pool2dGeometry& g, const T* in, T* out, std::int32_t* argmax) {
  const std::int64_t oh = g.out_h(), ow = g.out_w();
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const std::int64_t y0 = oy * g.stride_h - g.pad_h;
    const std::int64_t ylo = y0 < 0 ? 0 : y0, yhi = std::min(y0 + g.kernel_h, g.height);
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x0 = ox * g.stride_w - g.pad_w;
      const std::int64_t xlo = x0 < 0 ? 0 : x0, xhi = std::min(x0 + g.kernel_w, g.width);
      T best = -std::numeric_limits<T>::infinity();
      std::int64_t best_at = ylo * g.width + xlo;
      for (std::int64_t y = ylo; y < yhi; ++y)
        for (std::int64_t x = xlo; x < xhi; ++x) {
          const T v = in[y * g.width + x];
          if (v > best || std::isnan(v)) {
            best = v;
            best_at = y * g.width + x;
            if (std::isnan(v)) goto done;
          }
        }
    done:
      out[oy * ow + ox] = best;
      if (argmax) argmax[oy * ow + ox] = static_cast<std::int32_t>(best_at);
    }
  }
}

namespace detail {
// The common 2x2 window without padding (the report's pools): branch-free, so the compiler can vectorise it.
// A row holding a NaN goes through the general kernel, which keeps the NaN rules above.
template <typename T>
void maxpool2d_forward_2x2(const Pool2dGeometry& g, const T* in, T* out, std::int32_t* argmax) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), sh = g.stride_h, sw = g.stride_w, w = g.width;
  for (std::int64_t oy = 0; oy < oh; ++oy) {
    const T* r0 = in + oy * sh * w;
    const T* r1 = r0 + w;
    T* o = out + oy * ow;
    std::int32_t* am = argmax ? argmax + oy * ow : nullptr;
    bool nan = false;
    for (std::int64_t ox = 0; ox < ow; ++ox) {
      const std::int64_t x = ox * sw;
      const T a = r0[x], b = r0[x + 1], c = r1[x], d = r1[x + 1];
      nan |= (a != a) | (b != b) | (c != c) | (d != d);
      // First maximum in scan order: a later value replaces only when strictly greater. Written as selects
      // (no branches: which of the four wins is random, and mispredictions cost more than the comparisons).
      const std::int32_t base = static_cast<std::int32_t>(oy * sh * w + x);
      // std::max(p, q) is (p < q) ? q : p: the earlier value stays on ties, as the scan order wants.
      const std::int32_t wi = static_cast<std::int32_t>(w);
      T m = std::max(a, b);
      std::int32_t k = base + static_cast<std::int32_t>(a < b);
      const std::int32_t gc = static_cast<std::int32_t>(m < c);
      m = std::max(m, c);
      k += gc * (base + wi - k);
      const std::int32_t gd = static_cast<std::int32_t>(m < d);
      m = std::max(m, d);
      k += gd * (base + wi + 1 - k);
      o[ox] = m;
      if (am) am[ox] = k;
    }
    if (nan) {
      Pool2dGeometry row = g;  // redo this output row with the general kernel
      row.height = g.kernel_h;
      maxpool2d_forward_ref(row, r0, o, am);
      if (am)
        for (std::int64_t ox = 0; ox < ow; ++ox) am[ox] += static_cast<std::int32_t>(oy * sh * w);
    }
  }
}

}  // namespace detail

#if EMBER_X86_KERNELS
namespace avx512 {
// One output row of a 2x2, stride-2 pool, 16 windows at a time: the two input rows split into even and odd
// columns, then the scalar kernel's selects (a later value replaces only when strictly greater) as masked
// moves, so values and indices are the scalar kernel's. Returns false when the row holds a NaN (the caller
// redoes the row with the NaN rules).
EMBER_TARGET_AVX512 inline bool maxpool2x2_s2_row(const float* r0, const float* r1, std::int64_t ow,
                                                  std::int32_t base, std::int32_t w, float* o, std::int32_t* am) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (std::int64_t ox = 0; ox < ow; ox += 16) {
    const std::int64_t left = ow - ox, in_left = 2 * left;  // windows, and the input values they cover
    const __mmask16 live = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
    const __mmask16 lo_m = in_left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << in_left) - 1u);
    const __mmask16 hi_m = in_left >= 32   ? __mmask16(0xFFFF)
                           : in_left <= 16 ? __mmask16(0)
                                           : __mmask16((1u << (in_left - 16)) - 1u);
    const float* p0 = r0 + 2 * ox;
    const float* p1 = r1 + 2 * ox;
    const __m512 l0 = _mm512_maskz_loadu_ps(lo_m, p0), h0 = _mm512_maskz_loadu_ps(hi_m, p0 + 16);
    const __m512 l1 = _mm512_maskz_loadu_ps(lo_m, p1), h1 = _mm512_maskz_loadu_ps(hi_m, p1 + 16);
    const __m512 a = _mm512_permutex2var_ps(l0, even, h0), b = _mm512_permutex2var_ps(l0, odd, h0);
    const __m512 c = _mm512_permutex2var_ps(l1, even, h1), d = _mm512_permutex2var_ps(l1, odd, h1);
    if (_mm512_mask_cmp_ps_mask(live, a, b, _CMP_UNORD_Q) | _mm512_mask_cmp_ps_mask(live, c, d, _CMP_UNORD_Q))
      return false;
    // Flat index of a: base + 2 (ox + lane).
    const __m512i ka = _mm512_add_epi32(_mm512_set1_epi32(base + static_cast<std::int32_t>(2 * ox)),
                                        _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                                                                            12, 13, 14, 15), 1));
    __m512 m = a;
    __m512i k = ka;
    __mmask16 gt = _mm512_cmp_ps_mask(m, b, _CMP_LT_OQ);
    m = _mm512_mask_mov_ps(m, gt, b);
    k = _mm512_mask_add_epi32(k, gt, ka, _mm512_set1_epi32(1));
    gt = _mm512_cmp_ps_mask(m, c, _CMP_LT_OQ);
    m = _mm512_mask_mov_ps(m, gt, c);
    k = _mm512_mask_add_epi32(k, gt, ka, _mm512_set1_epi32(w));
    gt = _mm512_cmp_ps_mask(m, d, _CMP_LT_OQ);
    m = _mm512_mask_mov_ps(m, gt, d);
    k = _mm512_mask_add_epi32(k, gt, ka, _mm512_set1_epi32(w + 1));
    _mm512_mask_storeu_ps(o + ox, live, m);
    if (am) _mm512_mask_storeu_epi32(am + ox, live, k);
  }
  return true;
}
}  // namespace avx512
#endif

namespace detail {
// maxpool2d_forward_2x2 with the AVX-512 rows where they apply (float, stride 2 across, the CPU runs them).
template <typename T>
void maxpool2d_forward_2x2_fast(const Pool2dGeometry& g, const T* in, T* out, std::int32_t* argmax) {
#if EMBER_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (g.stride_w == 2 && active_isa() == Isa::avx512) {
      const std::int64_t oh = g.out_h(), ow = g.out_w(), w = g.width;
      for (std::int64_t oy = 0; oy < oh; ++oy) {
        const float* r0 = in + oy * g.stride_h * w;
        const auto base = static_cast<std::int32_t>(oy * g.stride_h * w);
        std::int32_t* am = argmax ? argmax + oy * ow : nullptr;
        if (avx512::maxpool2x2_s2_row(r0, r0 + w, ow, base, static_cast<std::int32_t>(w), out + oy * ow, am))
          continue;
        Pool2dGeometry row = g;  // a NaN: this row through the scalar kernel, which keeps the NaN rules
        row.height = g.kernel_h;
        maxpool2d_forward_2x2(row, r0, out + oy * ow, am);
        if (am)
          for (std::int64_t ox = 0; ox < ow; ++ox) am[ox] += base;
      }
      return;
    }
  }
#endif
  maxpool2d_forward_2x2(g, in, out, argmax);
}
}  // namespace detail

// The fast kernel: the branch-free path for 2x2 windows without padding, the general loop otherwise.
template <typename T>
void maxpool2d_forward(const Pool2dGeometry& g, const T* in, T* out, std::int32_t* argmax) {
  if (g.kernel_h == 2 && g.kernel_w == 2 && g.pad_h == 0 && g.pad_w == 0)
    detail::maxpool2d_forward_2x2_fast(g, in, out, argmax);
  else
    maxpool2d_forward_ref(g, in, out, argmax);
}

// grad_in (height x width) must be zeroed by the caller; overlapping windows add up.
template <typename T>
void maxpool2d_backward(const Pool2dGeometry& g, const T* grad_out, const std::int32_t* argmax, T* grad_in) {
  const std::int64_t n = g.out_h() * g.out_w();
  for (std::int64_t i = 0; i < n; ++i) grad_in[argmax[i]] += grad_out[i];
}

// maxpool2d_forward over `planes` planes (images x channels) one after another in memory, split over threads by
// plane; argmax (one per output value) may be null.
template <typename T>
void maxpool2d_forward_planes(const Pool2dGeometry& g, const T* in, T* out, std::int32_t* argmax,
                              std::int64_t planes) {
  const std::int64_t in_plane = g.height * g.width, out_plane = g.out_h() * g.out_w();
  parallel_for(threads_for_elements(planes, in_plane + out_plane), planes, [&](std::int64_t p) {
    maxpool2d_forward(g, in + p * in_plane, out + p * out_plane, argmax ? argmax + p * out_plane : nullptr);
  });
}

}  // namespace ember::kernels
