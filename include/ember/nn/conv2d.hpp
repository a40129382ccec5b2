#pragma once
// Conv2d(in_channels, out_channels, kernel_size, stride = 1, padding = 0, bias = true), as torch.nn.Conv2d with
// dilation 1 and groups 1. [N, C_in, H, W] -> [N, C_out, out_h, out_w].
//
// im2col + GEMM, parallel over the batch: each thread unrolls its images into column matrices
// cols_n [C_in*kh*kw x out_h*out_w] (kept for backward) and computes out_n = W [C_out x C_in*kh*kw] * cols_n + b.
// Backward, per image: dW += dy_n * cols_n^T, db += rowsum(dy_n), dx_n = col2im(W^T * dy_n). Each thread sums
// its images' weight gradients into its own buffer; the buffers are then added in thread order, so a run
// repeats bit for bit with the same thread count.
// Why per image and not one GEMM over the batch: an image's column matrix (675 x 121 floats for the report's
// conv2, 320 KiB) stays in L2 between im2col and its GEMMs, and the batch loop needs one fork/join per layer.
// The GEMMs run single-threaded inside our region with packing workspaces kept per thread (kernels::gemm with a
// GemmWorkspace), so a warmed-up step allocates nothing; the bias seeds the output rows (beta = 1).
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/gemm.hpp"
#include "ember/kernels/im2col.hpp"
#include "ember/nn/init.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

// Conv2d's arguments with chained setters: Conv2dOptions(1, 75, 3).stride(1).padding(0).
struct Conv2dOptions {
  Conv2dOptions(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  Conv2dOptions& stride(Size2 s) {
    stride_ = s;
    return *this;
  }
  Conv2dOptions& padding(Size2 p) {
    padding_ = p;
    return *this;
  }
  Conv2dOptions& bias(bool b) {
    bias_ = b;
    return *this;
  }
  std::int64_t in_channels_, out_channels_;
  Size2 kernel_size_;
  Size2 stride_ = 1;
  Size2 padding_ = 0;
  bool bias_ = true;
};

template <typename T>
class Conv2dT : public ModuleT<T> {
 public:
  Conv2dT(std::int64_t in_channels, std::int64_t out_channels, Size2 kernel_size, Size2 stride = 1, Size2 padding = 0,
          bool bias = true, Generator& gen = default_generator())
      : Conv2dT(Conv2dOptions(in_channels, out_channels, kernel_size).stride(stride).padding(padding).bias(bias),
                gen) {}

  explicit Conv2dT(const Conv2dOptions& o, Generator& gen = default_generator())
      : in_(o.in_channels_), out_(o.out_channels_), kernel_(o.kernel_size_), stride_(o.stride_),
        padding_(o.padding_), has_bias_(o.bias_) {
    if (in_ <= 0 || out_ <= 0 || kernel_.h <= 0 || kernel_.w <= 0 || stride_.h <= 0 || stride_.w <= 0 ||
        padding_.h < 0 || padding_.w < 0)
      throw std::invalid_argument("Conv2d: channels, kernel_size and stride must be positive and padding "
                                  "non-negative, got " + describe());
    weight_.value = TensorT<T>({out_, in_, kernel_.h, kernel_.w});
    weight_.grad = TensorT<T>(weight_.value.shape());
    if (has_bias_) {
      bias_.value = TensorT<T>({out_});
      bias_.grad = TensorT<T>({out_});
    }
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen) {
    init::default_weight_and_bias_(weight_.value, has_bias_ ? &bias_.value : nullptr, in_ * kernel_.h * kernel_.w,
                                   gen);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    const auto g = geometry(x);
    input_shape_ = x.shape();
    ensure_shape(cols_, {x.size(0), g.col_rows(), g.col_cols()});
    ensure_workspaces();
    compute(x, out, g, cols_.data(), true, ws_fwd_.data());
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    const auto g = geometry_for(input_shape_);
    const std::int64_t n = input_shape_[0], k = g.col_rows(), p = g.col_cols();
    const std::int64_t oh = g.out_h(), ow = g.out_w();
    if (grad_out.dim() != 4 || grad_out.size(0) != n || grad_out.size(1) != out_ || grad_out.size(2) != oh ||
        grad_out.size(3) != ow)
      this->require_grad_shape(grad_out, {n, out_, oh, ow});  // throws with the message
    if (grad_in) grad_in->resize(input_shape_);
    ensure_workspaces();
    const int nt = threads_for(n, static_cast<double>(4 * out_ * k * p));
    for (int t = 0; t < nt; ++t) {
      const auto ti = static_cast<std::size_t>(t);
      wgrad_[ti].resize(weight_.value.shape());
      wgrad_[ti].zero();
      bgrad_[ti].resize(bias_.value.shape());
      bgrad_[ti].zero();
      if (grad_in) ensure_shape(dcols_[ti], {k, p});
    }
    const std::int64_t in_image = g.channels * g.height * g.width;
    EMBER_OMP(parallel for num_threads(nt) schedule(static))
    for (std::int64_t i = 0; i < n; ++i) {
      const auto t = static_cast<std::size_t>(thread_index());
      const T* dy = grad_out.data() + i * out_ * p;
      const T* cols = cols_.data() + i * k * p;
      // Transposed: dW_t^T[k x out] += cols[k x p] dy^T[p x out]. Eigen packs the left operand of its
      // column-major product from cols' rows without a transpose, and only the small dy is packed transposed;
      // dW = dW^T^T once per step below.
      kernels::gemm(ws_wgrad_[t], false, true, k, out_, p, T(1), cols, p, dy, p, T(1), wgrad_[t].data(), out_);
      if (has_bias_) {
        T* db = bgrad_[t].data();
        for (std::int64_t o = 0; o < out_; ++o) {
          T acc = 0;
          for (std::int64_t j = 0; j < p; ++j) acc += dy[o * p + j];
          db[o] += acc;
        }
      }
      if (grad_in) {
        // dcols[k x p] = W^T[k x out] dy[out x p], then scattered back onto the image.
        kernels::gemm(ws_dgrad_[t], true, false, k, p, out_, T(1), weight_.value.data(), k, dy, p, T(0),
                      dcols_[t].data(), p);
        T* img = grad_in->data() + i * in_image;
        std::fill(img, img + in_image, T(0));
        kernels::col2im(g, dcols_[t].data(), img);
      }
    }
    T* w = weight_.grad.data();
    for (int t = 0; t < nt; ++t) {
      const T* wt = wgrad_[static_cast<std::size_t>(t)].data();  // [k x out]
      for (std::int64_t o = 0; o < out_; ++o)
        for (std::int64_t j = 0; j < k; ++j) w[o * k + j] += wt[j * out_ + o];
      if (has_bias_) {
        const T* bt = bgrad_[static_cast<std::size_t>(t)].data();
        for (std::int64_t j = 0; j < out_; ++j) bias_.grad[j] += bt[j];
      }
    }
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    const auto g = geometry(x);
    // One column buffer and workspace per thread: inference keeps nothing, so concurrent callers never share
    // state.
    const int nt = threads_for(x.size(0), flops_per_image(g));
    std::vector<T> cols(static_cast<std::size_t>(nt * g.col_rows() * g.col_cols()));
    std::vector<kernels::GemmWorkspace<T>> ws(static_cast<std::size_t>(nt));
    compute(x, out, g, cols.data(), false, ws.data());
  }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<Conv2dT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override { return describe(); }

  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &weight_);
    if (has_bias_) out.emplace_back(prefix + "bias", &bias_);
  }

  ParameterT<T>& weight() { return weight_; }
  ParameterT<T>& bias() { return bias_; }
  const ParameterT<T>& weight() const { return weight_; }
  const ParameterT<T>& bias() const { return bias_; }
  std::int64_t in_channels() const { return in_; }
  std::int64_t out_channels() const { return out_; }
  Size2 kernel_size() const { return kernel_; }
  Size2 stride() const { return stride_; }
  Size2 padding() const { return padding_; }
  bool has_bias() const { return has_bias_; }

 private:
  std::string describe() const {
    std::string s = std::to_string(in_) + ", " + std::to_string(out_) + ", kernel_size=" + kernel_.str() +
                    ", stride=" + stride_.str();
    if (padding_.h != 0 || padding_.w != 0) s += ", padding=" + padding_.str();
    if (!has_bias_) s += ", bias=False";
    return s;
  }

  kernels::Conv2dGeometry geometry_for(const Shape& s) const {
    return {s[1], s[2], s[3], kernel_.h, kernel_.w, stride_.h, stride_.w, padding_.h, padding_.w};
  }

  kernels::Conv2dGeometry geometry(const TensorT<T>& x) const {
    this->require_parameters();
    if (x.dim() != 4 || x.size(1) != in_)
      throw shape_error(this->repr() + ": expected input [N, " + std::to_string(in_) + ", H, W], got " +
                        to_string(x.shape()));
    if (x.size(2) + 2 * padding_.h < kernel_.h || x.size(3) + 2 * padding_.w < kernel_.w)
      throw shape_error(this->repr() + ": input " + to_string(x.shape()) + " (padded " + padding_.str() +
                        ") is smaller than the kernel " + kernel_.str());
    return geometry_for(x.shape());
  }

  double flops_per_image(const kernels::Conv2dGeometry& g) const {
    return 2.0 * static_cast<double>(out_ * g.col_rows() * g.col_cols());
  }

  void ensure_workspaces() {
    const auto nt = static_cast<std::size_t>(std::max(1, get_num_threads()));
    if (ws_fwd_.size() < nt) {
      ws_fwd_.resize(nt);
      ws_wgrad_.resize(nt);
      ws_dgrad_.resize(nt);
      wgrad_.resize(nt);
      bgrad_.resize(nt);
      dcols_.resize(nt);
    }
  }

  // cols: either one column matrix per image (keep = true, for backward) or one per thread; ws: one per thread.
  void compute(const TensorT<T>& x, TensorT<T>& out, const kernels::Conv2dGeometry& g, T* cols, bool keep,
               kernels::GemmWorkspace<T>* ws) const {
    const std::int64_t n = x.size(0), k = g.col_rows(), p = g.col_cols();
    const std::int64_t in_image = g.channels * g.height * g.width;
    ensure_shape(out, {n, out_, g.out_h(), g.out_w()});
    [[maybe_unused]] const int nt = threads_for(n, flops_per_image(g));
    EMBER_OMP(parallel for num_threads(nt) schedule(static))
    for (std::int64_t i = 0; i < n; ++i) {
      const int t = thread_index();
      T* c = keep ? cols + i * k * p : cols + static_cast<std::int64_t>(t) * k * p;
      kernels::im2col(g, x.data() + i * in_image, c);
      T* y = out.data() + i * out_ * p;
      if (has_bias_)
        for (std::int64_t o = 0; o < out_; ++o) std::fill(y + o * p, y + (o + 1) * p, bias_.value[o]);
      // y[out x p] = b + W[out x k] cols[k x p]
      kernels::gemm(ws[t], false, false, out_, p, k, T(1), weight_.value.data(), k, c, p, has_bias_ ? T(1) : T(0),
                    y, p);
    }
  }

  std::int64_t in_, out_;
  Size2 kernel_, stride_, padding_;
  bool has_bias_;
  ParameterT<T> weight_, bias_;
  // Kept across steps so a warmed-up training step allocates nothing.
  TensorT<T> cols_;
  std::vector<TensorT<T>> wgrad_, bgrad_, dcols_;
  Scratch<std::vector<kernels::GemmWorkspace<T>>> ws_fwd_, ws_wgrad_, ws_dgrad_;
  Shape input_shape_;
  bool has_forward_ = false;
};

using Conv2d = Conv2dT<float>;

}  // namespace ember::nn
