#pragma once
// int8 products for quantized inference: C[m x n] (s32) = A[m x k] (u8 activations) . W[n x k]^T (s8 weights,
// one row per output channel), then requantisation of C with the zero point, scales, bias and ReLU.
//   pack_int8(w, n, k)       W packed once: panels of 16 channels, k in groups of 4 (64 bytes a group), the
//                            layout vpdpbusd reads; k padded with zero weights, so A's padding never counts.
//   gemm_u8s8(...)           the raw sums sum_k a*w, exact; gemm_u8s8_ref the triple loop.
//   requantize(...)          y = (C - zp_a * sum_k w) * (scale_a * scale_w[j]) + bias[j], ReLU, stored as float or
//                            as u8 for the next layer (y_row/y_col strides: a convolution stores pixels x channels
//                            as channels x pixels).
//   gemm_int8(ws, ...)       both, a block of rows at a time (the block's sums stay in L1/L2 for requantize).
// Paths, chosen at run time (isa.hpp; EMBER_ISA covers them):
//   vnni      avx512 and this CPU has AVX512-VNNI: vpdpbusd, u8 x s8 -> s32 with no intermediate saturation.
//   avx2      avx2, or avx512 without VNNI: u8 and s8 widened to 16 bits and _mm256_madd_epi16 (exact: a pair's
//             sum is at most 2 * 255 * 128). Not vpmaddubsw, which saturates 16-bit pair sums unless the
//             weights keep to 7 bits; so all 8 weight bits are used on every path.
//   portable  plain loops over the packed layout.
// Every path gives the same integers (sums are exact), so tests compare them for equality.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "ember/kernels/gemm_int8_x86.hpp"
#include "ember/kernels/isa.hpp"
#include "ember/kernels/quantize.hpp"

namespace ember::kernels {

struct PackedInt8 {
  std::int64_t n = 0, k = 0, groups = 0;  // groups = ceil(k / 4)
  std::vector<std::int8_t> data;          // panels of 16 * 4 * groups bytes
  std::vector<std::int32_t> sums;         // sum_k w per channel, for the activations' zero point
  std::int64_t panels() const { return (n + 15) / 16; }
  const std::int8_t* panel(std::int64_t p) const { return data.data() + p * 64 * groups; }
};

// w: [n x k] row-major s8.
inline PackedInt8 pack_int8(const std::int8_t* w, std::int64_t n, std::int64_t k) {
  if (n <= 0 || k <= 0)
    throw std::invalid_argument("ember: pack_int8 expected n, k >= 1, got " + std::to_string(n) + ", " +
                                std::to_string(k));
  PackedInt8 p;
  p.n = n;
  p.k = k;
  p.groups = (k + 3) / 4;
  p.data.assign(static_cast<std::size_t>(p.panels() * 64 * p.groups), 0);
  p.sums.assign(static_cast<std::size_t>(n), 0);
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t q = 0; q < k; ++q) {
      const std::int8_t v = w[j * k + q];
      p.data[static_cast<std::size_t>((j / 16) * 64 * p.groups + (q / 4) * 64 + (j % 16) * 4 + q % 4)] = v;
      p.sums[static_cast<std::size_t>(j)] += v;
    }
  return p;
}

enum class Int8Path { portable, avx2, vnni };

inline const char* int8_path_name(Int8Path p) {
  return p == Int8Path::vnni ? "avx512-vnni" : p == Int8Path::avx2 ? "avx2" : "portable";
}
inline bool cpu_has_vnni() {
#if EMBER_X86_KERNELS
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}
// The path gemm_u8s8 takes under the active instruction set.
inline Int8Path int8_path() {
  const Isa isa = active_isa();
  if (isa == Isa::avx512 && cpu_has_vnni()) return Int8Path::vnni;
  return isa == Isa::portable ? Int8Path::portable : Int8Path::avx2;
}

namespace detail {
inline void u8s8_portable(std::int64_t m, const std::uint8_t* a, std::int64_t lda, const PackedInt8& w,
                          std::int32_t* c, std::int64_t ldc) {
  for (std::int64_t p = 0; p < w.panels(); ++p) {
    const std::int8_t* panel = w.panel(p);
    const std::int64_t cols = std::min<std::int64_t>(16, w.n - p * 16);
    for (std::int64_t i = 0; i < m; ++i) {
      std::int32_t acc[16] = {};
      const std::uint8_t* row = a + i * lda;
      for (std::int64_t q = 0; q < w.k; ++q) {
        const std::int32_t av = row[q];
        const std::int8_t* wg = panel + (q / 4) * 64 + q % 4;
        for (int j = 0; j < 16; ++j) acc[j] += av * wg[j * 4];
      }
      std::copy(acc, acc + cols, c + i * ldc + p * 16);
    }
  }
}
}  // namespace detail

// C[m x n] = A[m x k] . W^T in s32 (C's row stride ldc >= n). Single-threaded.
inline void gemm_u8s8(std::int64_t m, const std::uint8_t* a, std::int64_t lda, const PackedInt8& w,
                      std::int32_t* c, std::int64_t ldc) {
  if (m <= 0) return;
#if EMBER_X86_KERNELS
  switch (int8_path()) {
    case Int8Path::vnni:
      return detail::u8s8_rows<true>(m, a, lda, w.panel(0), w.panels(), 64 * w.groups, w.n, w.k, c, ldc);
    case Int8Path::avx2:
      return detail::u8s8_rows<false>(m, a, lda, w.panel(0), w.panels(), 64 * w.groups, w.n, w.k, c, ldc);
    default:
      break;
  }
#endif
  detail::u8s8_portable(m, a, lda, w, c, ldc);
}

// The reference: w unpacked [n x k].
inline void gemm_u8s8_ref(std::int64_t m, std::int64_t n, std::int64_t k, const std::uint8_t* a,
                          const std::int8_t* w, std::int32_t* c) {
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t acc = 0;
      for (std::int64_t q = 0; q < k; ++q) acc += std::int64_t(a[i * k + q]) * w[j * k + q];
      c[i * n + j] = static_cast<std::int32_t>(acc);
    }
}

// What requantize needs per output channel j: offset[j] = zp_a * sum_k w (subtracted from the sums),
// scale[j] = scale_a * scale_w[j], bias[j] (or null), then ReLU.
struct Requant {
  const std::int32_t* offset = nullptr;
  const float* scale = nullptr;
  const float* bias = nullptr;
  bool relu = false;
};

inline float requantize_value(std::int32_t acc, const Requant& r, std::int64_t j) {
  const float v = static_cast<float>(acc - r.offset[j]) * r.scale[j] + (r.bias ? r.bias[j] : 0.0f);
  return r.relu ? (v > 0 ? v : 0.0f) : v;
}

// acc [m x n] (stride ldacc) -> y[i * y_row + j * y_col] as float.
// The loop runs along y's contiguous side (a convolution's pixels), so the stores vectorise.
inline void requantize(const std::int32_t* acc, std::int64_t ldacc, std::int64_t m, std::int64_t n,
                       const Requant& r, float* y, std::int64_t y_row, std::int64_t y_col) {
  if (y_row == 1 && y_col != 1) {
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int32_t off = r.offset[j];
      const float s = r.scale[j], b = r.bias ? r.bias[j] : 0.0f;
      float* out = y + j * y_col;
      for (std::int64_t i = 0; i < m; ++i) {
        const float v = static_cast<float>(acc[i * ldacc + j] - off) * s + b;
        out[i] = r.relu ? (v > 0 ? v : 0.0f) : v;
      }
    }
    return;
  }
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) y[i * y_row + j * y_col] = requantize_value(acc[i * ldacc + j], r, j);
}
// The same, quantized again for the next layer with its parameters `out`.
inline void requantize(const std::int32_t* acc, std::int64_t ldacc, std::int64_t m, std::int64_t n,
                       const Requant& r, std::uint8_t* y, std::int64_t y_row, std::int64_t y_col, QuantParams out) {
  const float inv = 1.0f / out.scale;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      y[i * y_row + j * y_col] = quantize_u8(requantize_value(acc[i * ldacc + j], r, j), inv, out.zero_point);
}

struct Int8Workspace {
  std::vector<std::int32_t> acc;
};

// gemm_u8s8 then requantize, 64 rows at a time. Y: float or std::uint8_t (then `out` gives its parameters).
template <typename Y>
void gemm_int8(Int8Workspace& ws, std::int64_t m, const std::uint8_t* a, std::int64_t lda, const PackedInt8& w,
               const Requant& r, Y* y, std::int64_t y_row, std::int64_t y_col, QuantParams out = {}) {
  constexpr std::int64_t kRows = 64;
  ws.acc.resize(static_cast<std::size_t>(std::min(m, kRows) * w.n));
  for (std::int64_t i = 0; i < m; i += kRows) {
    const std::int64_t rows = std::min(kRows, m - i);
    gemm_u8s8(rows, a + i * lda, lda, w, ws.acc.data(), w.n);
    if constexpr (std::is_same_v<Y, float>)
      requantize(ws.acc.data(), w.n, rows, w.n, r, y + i * y_row, y_row, y_col);
    else
      requantize(ws.acc.data(), w.n, rows, w.n, r, y + i * y_row, y_row, y_col, out);
  }
}

}  // namespace ember::kernels
