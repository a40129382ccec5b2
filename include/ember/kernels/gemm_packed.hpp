#pragma once
// ember's own single-threaded float GEMM: C[m x n] += alpha op(A) op(B), every buffer row-major with row strides
// lda, ldb, ldc. gemm.hpp sends float products here; the kernels run on the instruction set isa.hpp picks.
//
// Blocking (as in the BLIS papers): for each kc-deep slice of the product, op(B) is packed into panels of nr
// columns ([kc][nr], zero-padded), then for each block of up to mc rows op(A) is packed into tiles of at most mr
// rows ([kc][rows]); the micro-kernel (gemm_avx512.hpp, gemm_avx2.hpp, gemm_portable.hpp) computes one tile of C
// against one panel, panels outer so a panel stays in L1 while the tiles stream past. The rows of a block are
// cut into equal tiles (50 rows into 5 of 10 with mr = 12), so no tile runs nearly empty.
// When m is small (kDirectRows) or k is (kDirectDepth) and op(B) is B itself, B's rows are read in place (each panel serves a few
// tiles from L1); the last, partial panel is still packed, so no kernel reads past a row.
// A B^T with m <= 8 (a small batch through a Linear layer) or n <= 16 (conv1's weight gradient, 75 x 9 over
// 676 positions; a 10-class output layer) runs as dot products over the unpacked operands, 8 rows of C at a
// time: packing the large operand (a transpose) would cost as much as the product, and n <= 16 columns would
// leave most of a 32-wide panel empty.
// gemm_pack_a packs op(A) once for many products with the same A (a convolution's weight, one product per
// image); gemm_packed(ws, packed, ...) then skips pack_a.
//
// Results: every element of C is one FMA chain over each kc slice, added to C once per slice; the slices and
// the kernel depend only on (m, k, transposes, instruction set), not on which columns or tile an element is in,
// so splitting C's columns over threads changes nothing.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/kernels/gemm_avx2.hpp"
#include "ember/kernels/gemm_avx512.hpp"
#include "ember/kernels/gemm_portable.hpp"
#include "ember/kernels/epilogue.hpp"
#include "ember/kernels/isa.hpp"

namespace ember::kernels {

// Packing buffers of the float kernels, kept across calls (grown, never shrunk).
struct GemmPackBuffers {
  std::vector<float, AlignedAllocator<float>> a, b;
};

namespace detail {

struct GemmKernel {
  int mr, nr;
  std::int64_t kc, mc, nc;
  void (*tile)(int rows, std::int64_t kc, const float* pa, const float* pb, std::int64_t bstride, float* c,
               std::int64_t ldc, int cols, float alpha, const float* init, const RowEpilogue<float>* epi);
  void (*dots)(int m, std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda, const float* b,
               std::int64_t ldb, float* c, std::int64_t ldc);
  void (*transpose)(const float* src, std::int64_t src_stride, std::int64_t rows, std::int64_t cols, float* dst,
                    std::int64_t dst_stride);
  void (*pack_rows)(const float* src, std::int64_t ld, std::int64_t rows, int cols, float* dst);
};

// kc: a B panel (kc x nr) in L1 with room for the A tile; mc x kc of A in L2; nc bounds the packed B slice.
inline GemmKernel gemm_kernel(Isa isa) {
#if EMBER_X86_KERNELS
  if (isa == Isa::avx512)
    return {avx512::kMr,        avx512::kNr,           256, 240, 2048, avx512::tile_rows, avx512::dots_rows,
            avx2::transpose_block, avx512::pack_rows};
  if (isa == Isa::avx2)
    return {avx2::kMr, avx2::kNr, 256, 240, 2048, avx2::tile_rows, avx2::dots_rows, avx2::transpose_block,
            avx2::pack_rows};
#endif
  (void)isa;
  return {portable::kMr,            portable::kNr,      256, 240, 2048, portable::tile_rows, portable::dots_rows,
          portable::transpose_block, portable::pack_rows};
}

// Tile t of `tiles` over `rows` rows starts at tile_start(rows, tiles, t).
inline std::int64_t tile_start(std::int64_t rows, std::int64_t tiles, std::int64_t t) { return rows * t / tiles; }

// op(A)[i0 .. i0+mb) x [p0 .. p0+kb) into `tiles` tiles, tile t at dst + start_t * kb as [kb][rows_t].
inline void pack_a(const GemmKernel& kern, bool trans, const float* a, std::int64_t lda, std::int64_t i0, std::int64_t mb, std::int64_t p0,
                   std::int64_t kb, std::int64_t tiles, float* dst) {
  for (std::int64_t t = 0; t < tiles; ++t) {
    const std::int64_t r0 = tile_start(mb, tiles, t), rows = tile_start(mb, tiles, t + 1) - r0;
    float* d = dst + r0 * kb;
    if (trans) {
      for (std::int64_t p = 0; p < kb; ++p) {
        const float* s = a + (p0 + p) * lda + i0 + r0;
        for (std::int64_t r = 0; r < rows; ++r) d[p * rows + r] = s[r];
      }
    } else {
      kern.transpose(a + (i0 + r0) * lda + p0, lda, rows, kb, d, rows);
    }
  }
}

// op(B)[p0 .. p0+kb) x [j0 + first*nr .. j0+nb) as panels of nr columns, panel q at dst + q * kb * nr.
inline void pack_b(const GemmKernel& kern, bool trans, const float* b, std::int64_t ldb, std::int64_t p0, std::int64_t kb, std::int64_t j0,
                   std::int64_t nb, std::int64_t nr, std::int64_t first, float* dst) {
  const std::int64_t panels = (nb + nr - 1) / nr;
  for (std::int64_t q = first; q < panels; ++q) {
    const std::int64_t c0 = j0 + q * nr, cols = std::min(nr, nb - q * nr);
    float* d = dst + q * kb * nr;
    if (trans) {
      if (cols < nr)
        for (std::int64_t p = 0; p < kb; ++p) std::fill(d + p * nr + cols, d + (p + 1) * nr, 0.0f);
      kern.transpose(b + c0 * ldb + p0, ldb, cols, kb, d, nr);
    } else {
      kern.pack_rows(b + p0 * ldb + c0, ldb, kb, static_cast<int>(cols), d);
    }
  }
}

template <class Buffer>
float* grown(Buffer& buf, std::int64_t size) {
  if (buf.size() < static_cast<std::size_t>(size)) buf.resize(static_cast<std::size_t>(size));
  return buf.data();
}

}  // namespace detail

// Up to this many rows, B's panels are read in place when op(B) = B: each panel is then reused by a few tiles
// only (from L1), and the copy would cost as much as those reads. So are those of a product at most
// kDirectDepth deep, for any m: such a panel (conv1's 9 x 32) stays in L1 for every tile.
constexpr std::int64_t kDirectRows = 64, kDirectDepth = 32;

// op(A) packed once for products that share it: per kc slice, per mc block, the tiles pack_a writes (slice pc,
// block ic at data + pc * m + ic * kb). It records what it was packed from and for, so gemm_packed refuses a
// mismatch; it cannot see A's values change, so pack again whenever they may have (once per call).
struct GemmPackedA {
  std::vector<float, AlignedAllocator<float>> data;  // grown, never shrunk
  const float* src = nullptr;
  std::int64_t lda = 0, m = -1, k = -1;
  bool trans = false;
  Isa isa = Isa::portable;
};

namespace detail {

// The blocked product; op(A)'s tiles come from `packed` (laid out as in GemmPackedA) or are packed into ws.a.
// One loop for both, so a pre-packed product runs the same slices, tiles and kernel calls: the same bits.
inline void gemm_blocked(const GemmKernel& kern, GemmPackBuffers& ws, bool trans_a, bool trans_b,
                         std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                         std::int64_t lda, const float* packed, const float* b, std::int64_t ldb, float* c,
                         std::int64_t ldc, bool overwrite, const float* row_init, const RowEpilogue<float>* epi) {
  static constexpr float kZeros[16] = {};  // row_init of a plain overwrite: at least mr zeros
  const std::int64_t nr = kern.nr;
  const bool direct_b = !trans_b && (m <= kDirectRows || k <= kDirectDepth);
  for (std::int64_t jc = 0; jc < n; jc += kern.nc) {
    const std::int64_t nb = std::min(kern.nc, n - jc), panels = (nb + nr - 1) / nr;
    for (std::int64_t pc = 0; pc < k; pc += kern.kc) {
      const std::int64_t kb = std::min(kern.kc, k - pc);
      const bool last = pc + kb >= k;
      float* pb = grown(ws.b, panels * kb * nr);
      // Read in place, every panel but a partial last one needs no copy.
      const std::int64_t first = direct_b ? nb / nr : 0;
      pack_b(kern, trans_b, b, ldb, pc, kb, jc, nb, nr, first, pb);
      for (std::int64_t ic = 0; ic < m; ic += kern.mc) {
        const std::int64_t mb = std::min(kern.mc, m - ic), tiles = (mb + kern.mr - 1) / kern.mr;
        const float* pa = packed ? packed + pc * m + ic * kb : nullptr;
        if (!packed) {
          float* dst = grown(ws.a, mb * kb);
          pack_a(kern, trans_a, a, lda, ic, mb, pc, kb, tiles, dst);
          pa = dst;
        }
        // The epilogue's rows of this block, applied by the last slice.
        const RowEpilogue<float> block_epi = epi && last ? epi->from_row(ic) : RowEpilogue<float>{};
        for (std::int64_t q = 0; q < panels; ++q) {
          const int cols = static_cast<int>(std::min(nr, nb - q * nr));
          const bool in_place = q < first;
          const float* panel = in_place ? b + pc * ldb + jc + q * nr : pb + q * kb * nr;
          const std::int64_t bstride = in_place ? ldb : nr;
          for (std::int64_t t = 0; t < tiles; ++t) {
            const std::int64_t r0 = tile_start(mb, tiles, t);
            const int rows = static_cast<int>(tile_start(mb, tiles, t + 1) - r0);
            const float* init = !overwrite || pc > 0 ? nullptr : row_init ? row_init + ic + r0 : kZeros;
            const RowEpilogue<float> tile_epi = block_epi.from_row(r0);
            kern.tile(rows, kb, pa + r0 * kb, panel, bstride, c + (ic + r0) * ldc + jc + q * nr, ldc, cols, alpha,
                      init, epi && last ? &tile_epi : nullptr);
          }
        }
      }
    }
  }
}

}  // namespace detail

namespace detail {
// The shapes that run as dot products (see the top of this file).
inline bool dot_product_shape(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n) {
  return !trans_a && trans_b && (m <= 8 || n <= 16);
}

// C's rows set to row_init[i], or to zero without it.
inline void fill_rows(float* c, std::int64_t ldc, std::int64_t m, std::int64_t n, const float* row_init) {
  for (std::int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, row_init ? row_init[i] : 0.0f);
}
}  // namespace detail

// C += alpha op(A) op(B) on the active instruction set, or C = alpha op(A) op(B) + row_init[i] on row i with
// overwrite (beta 0, row_init null for zeros: the kernels then write C on the first slice instead of reading a
// C filled first, with the same bits; k >= 1). epi, if given, maps every value of C as it is stored
// (epilogue.hpp), so C ends as epi(what it would have been).
inline void gemm_packed(GemmPackBuffers& ws, bool trans_a, bool trans_b, std::int64_t m, std::int64_t n,
                        std::int64_t k, float alpha, const float* a, std::int64_t lda, const float* b,
                        std::int64_t ldb, float* c, std::int64_t ldc, bool overwrite = false,
                        const float* row_init = nullptr, const RowEpilogue<float>* epi = nullptr) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  const detail::GemmKernel kern = detail::gemm_kernel(active_isa());
  if (detail::dot_product_shape(trans_a, trans_b, m, n)) {
    if (overwrite) detail::fill_rows(c, ldc, m, n, row_init);
    for (std::int64_t i0 = 0; i0 < m; i0 += 8)
      kern.dots(static_cast<int>(std::min<std::int64_t>(8, m - i0)), n, k, alpha, a + i0 * lda, lda, b, ldb,
                c + i0 * ldc, ldc);
    if (epi) apply_rows(c, ldc, m, n, *epi);
    return;
  }
  detail::gemm_blocked(kern, ws, trans_a, trans_b, m, n, k, alpha, a, lda, nullptr, b, ldb, c, ldc, overwrite,
                       row_init, epi);
}

// Packs op(A) (m x k, A at a with row stride lda) for the active instruction set's kernel.
inline void gemm_pack_a(GemmPackedA& out, bool trans_a, std::int64_t m, std::int64_t k, const float* a,
                        std::int64_t lda) {
  const Isa isa = active_isa();
  const detail::GemmKernel kern = detail::gemm_kernel(isa);
  float* d = detail::grown(out.data, std::max<std::int64_t>(m, 0) * std::max<std::int64_t>(k, 0));
  for (std::int64_t pc = 0; pc < k; pc += kern.kc) {
    const std::int64_t kb = std::min(kern.kc, k - pc);
    for (std::int64_t ic = 0; ic < m; ic += kern.mc) {
      const std::int64_t mb = std::min(kern.mc, m - ic), tiles = (mb + kern.mr - 1) / kern.mr;
      detail::pack_a(kern, trans_a, a, lda, ic, mb, pc, kb, tiles, d + pc * m + ic * kb);
    }
  }
  out.src = a;
  out.lda = lda;
  out.m = m;
  out.k = k;
  out.trans = trans_a;
  out.isa = isa;
}

// gemm_packed with op(A) taken from `packed` (gemm_pack_a of the same a, lda, trans_a, m, k), bit for bit the
// same result. a and lda are still needed: the dot-product shapes read A in place, and after set_isa
// changed the path the packed tiles no longer fit the kernel, so A is packed again per call (the plain path).
inline void gemm_packed(GemmPackBuffers& ws, const GemmPackedA& packed, bool trans_a, bool trans_b,
                        std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a,
                        std::int64_t lda, const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                        bool overwrite = false, const float* row_init = nullptr,
                        const RowEpilogue<float>* epi = nullptr) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  if (packed.src != a || packed.lda != lda || packed.m != m || packed.k != k || packed.trans != trans_a)
    throw std::logic_error("ember: gemm_packed expected op(A) packed by gemm_pack_a from this A, lda, trans_a, "
                           "m and k; packed " + std::to_string(packed.m) + " x " + std::to_string(packed.k) +
                           (packed.trans ? " (A^T)" : "") + ", asked " + std::to_string(m) + " x " +
                           std::to_string(k) + (trans_a ? " (A^T)" : ""));
  const Isa isa = active_isa();
  if (isa != packed.isa || detail::dot_product_shape(trans_a, trans_b, m, n)) {
    gemm_packed(ws, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, overwrite, row_init, epi);
    return;
  }
  detail::gemm_blocked(detail::gemm_kernel(isa), ws, trans_a, trans_b, m, n, k, alpha, a, lda,
                       packed.data.data(), b, ldb, c, ldc, overwrite, row_init, epi);
}

}  // namespace ember::kernels
