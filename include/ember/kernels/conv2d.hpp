#pragma once
// 2-D convolution over a batch (PyTorch's Conv2d, dilation and groups included) on raw row-major buffers.
// With g the geometry (im2col.hpp), G = g.groups, K = g.col_rows() = C_in*kh*kw, K_g = K / G (one group's
// column rows), O_g = C_out / G and P = g.col_cols() = out_h*out_w:
//   x [n, C_in, H, W], w [C_out, K_g] (= [C_out, C_in/G, kh, kw]), b [C_out] or null, y and dy [n, C_out, P]
//   forward:  y_i = W cols_i + b with cols_i = im2col(x_i) [K x P], per group: y_i,g = W_g cols_i,g with
//             W_g rows [g*O_g, (g+1)*O_g) of W and cols_i,g rows [g*K_g, (g+1)*K_g) of cols_i
//   backward: dW_g += sum_i dy_i,g cols_i,g^T,  db += sum_i rowsum(dy_i),  dx_i = col2im(stack_g W_g^T dy_i,g)
//   (db, dx may be null)
// dW and db accumulate (as PyTorch's .grad); dx is overwritten. With G = 1 there is one group and the loops
// below are the plain im2col + GEMM of one matrix product per image.
//
// Naming, as in every kernel: conv2d_forward / conv2d_backward are fast, *_ref their plain references.
// Outputs come first.
//
// The fast pair is im2col + GEMM, parallel over the batch. Why per image and not one GEMM over the batch: an
// image's column matrix (675 x 121 floats for the report's conv2, 320 KiB) stays in L2 between im2col and its
// GEMMs, and the batch loop needs one fork/join per layer. The GEMMs run single-threaded inside the region
// with packing workspaces kept per thread in a Conv2dWorkspace the caller keeps, so a warmed-up step
// allocates nothing. For float each group's weight (W_g forward, W_g^T for dx) is packed for the GEMM kernel
// once per call, before the batch loop, and every image reads it (gemm_pack_a): packing it per image took
// about 6 % of a batch-32 training step. Each thread sums its images' weight gradients into its own buffer;
// the buffers are then added in thread order, so a run repeats bit for bit with the same thread count.
//
// A depthwise convolution (groups == C_in > 1) skips im2col: conv2d_depthwise.hpp's direct loops, and what
// forward keeps for backward is the image itself (conv2d_cache_per_image).
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/conv2d_depthwise.hpp"
#include "ember/kernels/gemm.hpp"
#include "ember/kernels/im2col.hpp"

namespace ember::kernels {

// Per-thread buffers kept by the caller across steps.
template <typename T>
struct Conv2dWorkspace {
  using Buffer = std::vector<T, AlignedAllocator<T>>;
  std::vector<GemmWorkspace<T>> forward, weight_grad, input_grad;
  std::vector<Buffer> wgrad, bgrad, dcols;  // backward: dW [C_out x K_g], db [C_out], W^T dy_i [K x P]
  Buffer cols;                              // forward without kept columns (inference): one matrix per thread
  std::vector<GemmPackedA> packed_w, packed_wt;  // float: W_g, W_g^T packed per group, read by every thread

  void ensure_threads(bool backward) {
    const auto nt = static_cast<std::size_t>(std::max(1, get_num_threads()));
    if (forward.size() < nt) forward.resize(nt);
    if (backward && weight_grad.size() < nt) {
      weight_grad.resize(nt);
      input_grad.resize(nt);
      wgrad.resize(nt);
      bgrad.resize(nt);
      dcols.resize(nt);
    }
  }
};

// What conv2d_forward keeps per image for backward: its column matrix [K x P], or for a depthwise
// convolution the image [C_in x H x W].
inline std::int64_t conv2d_cache_per_image(const Conv2dGeometry& g) {
  return conv2d_is_depthwise(g) ? g.channels * g.height * g.width : g.col_rows() * g.col_cols();
}

namespace detail {
inline double conv2d_flops_per_image(const Conv2dGeometry& g, std::int64_t out_channels) {
  return 2.0 * static_cast<double>(out_channels * g.group_col_rows() * g.col_cols());
}

// Packs op(W_g) of every group (W_g [og x kg] at w + g * og * kg) into `packed`, for float; null otherwise
// (double runs on Eigen, which packs per product).
template <typename T>
const GemmPackedA* conv2d_pack_weight(std::vector<GemmPackedA>& packed, bool trans, const T* w,
                                      std::int64_t groups, std::int64_t og, std::int64_t kg) {
  if constexpr (std::is_same_v<T, float>) {
    if (packed.size() < static_cast<std::size_t>(groups)) packed.resize(static_cast<std::size_t>(groups));
    for (std::int64_t gi = 0; gi < groups; ++gi)
      gemm_pack_a(packed[static_cast<std::size_t>(gi)], trans, trans ? kg : og, trans ? og : kg,
                  w + gi * og * kg, kg);
    return packed.data();
  } else {
    (void)packed, (void)trans, (void)w, (void)groups, (void)og, (void)kg;
    return nullptr;
  }
}
}  // namespace detail

// cols: [n, conv2d_cache_per_image(g)], what backward needs (the column matrices), or null (then ws holds one
// column matrix per thread). epi (epilogue.hpp, one row per output channel), if given, maps y as it is written:
// the ReLU and eval-mode BatchNorm that follow a convolution at inference, without a pass of their own.
template <typename T>
void conv2d_forward(T* y, T* cols, const T* x, const T* w, const T* b, const Conv2dGeometry& g,
                    std::int64_t n, std::int64_t out_channels, Conv2dWorkspace<T>& ws,
                    const RowEpilogue<T>* epi = nullptr) {
  const std::int64_t k = g.col_rows(), p = g.col_cols(), in_image = g.channels * g.height * g.width;
  const std::int64_t groups = g.groups, kg = g.group_col_rows(), og = out_channels / groups;
  const int nt = threads_for(n, detail::conv2d_flops_per_image(g, out_channels));
  ws.ensure_threads(false);
  if (conv2d_is_depthwise(g)) {
    parallel_for(nt, n, [&](std::int64_t i) {
      if (cols) std::copy(x + i * in_image, x + (i + 1) * in_image, cols + i * in_image);
      conv2d_depthwise_forward_image(y + i * out_channels * p, x + i * in_image, w, b, g, out_channels);
      if (epi) apply_rows(y + i * out_channels * p, p, out_channels, p, *epi);
    });
    return;
  }
  // Grown only: the workspace is shared by every layer on the thread, and growing it back after a smaller layer
  // zero-filled the difference on every call (1 % of CNN inference).
  if (!cols && ws.cols.size() < static_cast<std::size_t>(nt * k * p)) ws.cols.resize(static_cast<std::size_t>(nt * k * p));
  T* thread_cols = ws.cols.data();
  GemmWorkspace<T>* gemm_ws = ws.forward.data();
  const GemmPackedA* packed = detail::conv2d_pack_weight(ws.packed_w, false, w, groups, og, kg);
  parallel_for(nt, n, [&](std::int64_t i) {
    const int t = thread_index();
    T* c = cols ? cols + i * k * p : thread_cols + static_cast<std::int64_t>(t) * k * p;
    im2col(g, x + i * in_image, c);
    T* yi = y + i * out_channels * p;
    // y_i,g[og x p] = b_g + W_g[og x kg] cols_g[kg x p], the bias written by the GEMM's first slice
    for (std::int64_t gi = 0; gi < groups; ++gi) {
      const RowEpilogue<T> group_epi = epi ? epi->from_row(gi * og) : RowEpilogue<T>{};
      gemm(gemm_ws[t], false, false, og, p, kg, T(1), w + gi * og * kg, kg, c + gi * kg * p, p, T(0),
           yi + gi * og * p, p, packed ? packed + gi : nullptr, b ? b + gi * og : nullptr, epi ? &group_epi : nullptr);
    }
  });
}

// cols: as conv2d_forward kept them.
template <typename T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* cols, const T* w, const Conv2dGeometry& g,
                     std::int64_t n, std::int64_t out_channels, Conv2dWorkspace<T>& ws) {
  const std::int64_t k = g.col_rows(), p = g.col_cols(), in_image = g.channels * g.height * g.width;
  const std::int64_t out = out_channels, groups = g.groups, kg = g.group_col_rows(), og = out / groups;
  ws.ensure_threads(true);
  const int nt = threads_for(n, static_cast<double>(4 * out * kg * p));
  for (std::size_t t = 0; t < static_cast<std::size_t>(nt); ++t) {
    ws.wgrad[t].assign(static_cast<std::size_t>(kg * out), T(0));
    if (db) ws.bgrad[t].assign(static_cast<std::size_t>(out), T(0));
    if (dx && !conv2d_is_depthwise(g)) ws.dcols[t].resize(static_cast<std::size_t>(k * p));
  }
  const bool depthwise = conv2d_is_depthwise(g);
  const GemmPackedA* packed_t =
      dx && !depthwise ? detail::conv2d_pack_weight(ws.packed_wt, true, w, groups, og, kg) : nullptr;
  parallel_for(nt, n, [&](std::int64_t i) {
    const auto t = static_cast<std::size_t>(thread_index());
    const T* dyi = dy + i * out * p;
    if (depthwise) {  // cols holds the images
      conv2d_depthwise_backward_image(dx ? dx + i * in_image : nullptr, ws.wgrad[t].data(), dyi,
                                      cols + i * in_image, w, g, out);
    }
    if (db) {
      T* dbt = ws.bgrad[t].data();
      // Eigen's vectorised sum in a fixed order: a plain loop is one serial chain of adds (4 % of a step).
      for (std::int64_t o = 0; o < out; ++o) dbt[o] += Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(dyi + o * p, p).sum();
    }
    if (depthwise) return;
    const T* ci = cols + i * k * p;
    // dW_t,g[og x kg] += dy_g[og x p] cols_g^T[p x kg]: og = 50 rows cut into 5 tiles of 10 and kg = 675
    // columns fill the micro-kernel's panels (computed as dW^T, the 50 columns wasted a fifth of a 2 x 32 panel).
    for (std::int64_t gi = 0; dw && gi < groups; ++gi)  // dw null: a frozen weight
      gemm(ws.weight_grad[t], false, true, og, kg, p, T(1), dyi + gi * og * p, p, ci + gi * kg * p, p, T(1),
           ws.wgrad[t].data() + gi * og * kg, kg);
    if (dx) {
      // dcols_g[kg x p] = W_g^T[kg x og] dy_g[og x p], then scattered back onto the image.
      for (std::int64_t gi = 0; gi < groups; ++gi)
        gemm(ws.input_grad[t], true, false, kg, p, og, T(1), w + gi * og * kg, kg, dyi + gi * og * p, p, T(0),
             ws.dcols[t].data() + gi * kg * p, p, packed_t ? packed_t + gi : nullptr);
      T* img = dx + i * in_image;
      col2im(g, ws.dcols[t].data(), img, /*accumulate=*/false);
    }
  });
  for (std::size_t t = 0; t < static_cast<std::size_t>(nt); ++t) {
    const T* wt = ws.wgrad[t].data();  // [out x kg], as dW
    for (std::int64_t j = 0; dw && j < out * kg; ++j) dw[j] += wt[j];
    if (db) {
      const T* bt = ws.bgrad[t].data();
      for (std::int64_t j = 0; j < out; ++j) db[j] += bt[j];
    }
  }
}

// The references: the definitions, straight loops over every tap, accumulating in double.
template <typename T>
void conv2d_forward_ref(T* y, const T* x, const T* w, const T* b, const Conv2dGeometry& g, std::int64_t n,
                        std::int64_t out_channels) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), cg = g.group_channels(), og = out_channels / g.groups;
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t o = 0; o < out_channels; ++o)
      for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ox = 0; ox < ow; ++ox) {
          double acc = b ? static_cast<double>(b[o]) : 0.0;
          for (std::int64_t cl = 0; cl < cg; ++cl)
            for (std::int64_t i = 0; i < g.kernel_h; ++i)
              for (std::int64_t j = 0; j < g.kernel_w; ++j) {
                const std::int64_t c = (o / og) * cg + cl;  // input channel cl of o's group
                const std::int64_t yy = oy * g.stride_h - g.pad_h + i * g.dilation_h,
                                   xx = ox * g.stride_w - g.pad_w + j * g.dilation_w;
                if (yy < 0 || yy >= g.height || xx < 0 || xx >= g.width) continue;
                acc += static_cast<double>(x[((s * g.channels + c) * g.height + yy) * g.width + xx]) *
                       w[((o * cg + cl) * g.kernel_h + i) * g.kernel_w + j];
              }
          y[((s * out_channels + o) * oh + oy) * ow + ox] = static_cast<T>(acc);
        }
}

// Unlike the fast kernel, reads the input x [n, C_in, H, W] itself, not the column matrices.
template <typename T>
void conv2d_backward_ref(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const Conv2dGeometry& g,
                         std::int64_t n, std::int64_t out_channels) {
  const std::int64_t oh = g.out_h(), ow = g.out_w(), kg = g.group_col_rows(), cg = g.group_channels(),
                     og = out_channels / g.groups;
  const std::int64_t in_size = n * g.channels * g.height * g.width;
  std::vector<double> dw_acc(static_cast<std::size_t>(out_channels * kg)),
      db_acc(static_cast<std::size_t>(out_channels));
  std::vector<double> dx_acc(static_cast<std::size_t>(dx ? in_size : 0));
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t o = 0; o < out_channels; ++o)
      for (std::int64_t oy = 0; oy < oh; ++oy)
        for (std::int64_t ox = 0; ox < ow; ++ox) {
          const double gy = dy[((s * out_channels + o) * oh + oy) * ow + ox];
          db_acc[static_cast<std::size_t>(o)] += gy;
          for (std::int64_t cl = 0; cl < cg; ++cl)
            for (std::int64_t i = 0; i < g.kernel_h; ++i)
              for (std::int64_t j = 0; j < g.kernel_w; ++j) {
                const std::int64_t c = (o / og) * cg + cl;
                const std::int64_t yy = oy * g.stride_h - g.pad_h + i * g.dilation_h,
                                   xx = ox * g.stride_w - g.pad_w + j * g.dilation_w;
                if (yy < 0 || yy >= g.height || xx < 0 || xx >= g.width) continue;
                const auto at =
                    static_cast<std::size_t>(((s * g.channels + c) * g.height + yy) * g.width + xx);
                const std::int64_t tap = ((o * cg + cl) * g.kernel_h + i) * g.kernel_w + j;
                dw_acc[static_cast<std::size_t>(tap)] += gy * x[at];
                if (dx) dx_acc[at] += gy * w[tap];
              }
        }
  for (std::int64_t j = 0; j < out_channels * kg; ++j)
    dw[j] = static_cast<T>(dw[j] + dw_acc[static_cast<std::size_t>(j)]);
  if (db)
    for (std::int64_t o = 0; o < out_channels; ++o)
      db[o] = static_cast<T>(db[o] + db_acc[static_cast<std::size_t>(o)]);
  if (dx)
    for (std::int64_t j = 0; j < in_size; ++j) dx[j] = static_cast<T>(dx_acc[static_cast<std::size_t>(j)]);
}

}  // namespace ember::kernels
