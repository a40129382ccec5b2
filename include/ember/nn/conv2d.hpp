#pragma once
// Conv2d(in_channels, out_channels, kernel_size, stride = 1, padding = 0, bias = true), as torch.nn.Conv2d with
// dilation 1 and groups 1. [N, C_in, H, W] -> [N, C_out, out_h, out_w].
//
// im2col + GEMM, parallel over the batch: each thread unrolls its images into column matrices
// cols_n [C_in*kh*kw x out_h*out_w] (kept for backward) and computes out_n = W [C_out x C_in*kh*kw] * cols_n + b.
// Backward, per image: dW += dy_n * cols_n^T, db += rowsum(dy_n), dx_n = col2im(W^T * dy_n). Each thread sums
// its images' weight gradients into its own buffer; the buffers are then added in thread order, so a run
// repeats bit for bit with the same thread count.
#include <cstdint>
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
    cols_.resize({x.size(0), g.col_rows(), g.col_cols()});
    compute(x, out, g, cols_.data(), true);
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    const auto g = geometry_for(input_shape_);
    const std::int64_t n = input_shape_[0], k = g.col_rows(), p = g.col_cols();
    this->require_grad_shape(grad_out, {n, out_, g.out_h(), g.out_w()});
    if (grad_in) grad_in->resize(input_shape_);
    const int nt = threads_for(n, static_cast<double>(4 * out_ * k * p));
    wgrad_.resize(static_cast<std::size_t>(nt));
    bgrad_.resize(static_cast<std::size_t>(nt));
    if (grad_in) dcols_.resize(static_cast<std::size_t>(nt));
    const std::int64_t in_image = g.channels * g.height * g.width;
    EMBER_OMP(parallel num_threads(nt)) {
      const auto t = static_cast<std::size_t>(thread_index());
      TensorT<T>& wg = wgrad_[t];
      TensorT<T>& bg = bgrad_[t];
      wg.resize({out_, k});
      wg.zero();
      bg.resize({out_});
      bg.zero();
      if (grad_in) dcols_[t].resize({k, p});
      EMBER_OMP(for schedule(static))
      for (std::int64_t i = 0; i < n; ++i) {
        kernels::ConstMatMap<T> dy(grad_out.data() + i * out_ * p, out_, p);
        kernels::ConstMatMap<T> cols(cols_.data() + i * k * p, k, p);
        wg.matrix().noalias() += dy * cols.transpose();
        if (has_bias_) bg.vector() += dy.rowwise().sum();
        if (grad_in) {
          dcols_[t].matrix().noalias() = weight_.value.matrix(out_, k).transpose() * dy;
          T* img = grad_in->data() + i * in_image;
          std::fill(img, img + in_image, T(0));
          kernels::col2im(g, dcols_[t].data(), img);
        }
      }
    }
    auto w = weight_.grad.matrix(out_, k);
    for (int t = 0; t < nt; ++t) {
      w += wgrad_[static_cast<std::size_t>(t)].matrix();
      if (has_bias_) bias_.grad.vector() += bgrad_[static_cast<std::size_t>(t)].vector();
    }
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    const auto g = geometry(x);
    // One column buffer per thread: inference keeps nothing, so concurrent callers never share state.
    const int nt = threads_for(x.size(0), flops_per_image(g));
    std::vector<T> cols(static_cast<std::size_t>(nt * g.col_rows() * g.col_cols()));
    compute(x, out, g, cols.data(), false);
  }

  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override { return describe(); }

  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &weight_);
    if (has_bias_) out.emplace_back(prefix + "bias", &bias_);
  }

  ParameterT<T>& weight() { return weight_; }
  ParameterT<T>& bias() { return bias_; }

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

  // cols: either one column matrix per image (keep = true, for backward) or one per thread.
  void compute(const TensorT<T>& x, TensorT<T>& out, const kernels::Conv2dGeometry& g, T* cols, bool keep) const {
    const std::int64_t n = x.size(0), k = g.col_rows(), p = g.col_cols();
    const std::int64_t in_image = g.channels * g.height * g.width;
    out.resize({n, out_, g.out_h(), g.out_w()});
    [[maybe_unused]] const int nt = threads_for(n, flops_per_image(g));
    EMBER_OMP(parallel for num_threads(nt) schedule(static))
    for (std::int64_t i = 0; i < n; ++i) {
      T* c = keep ? cols + i * k * p : cols + static_cast<std::int64_t>(thread_index()) * k * p;
      kernels::im2col(g, x.data() + i * in_image, c);
      kernels::MatMap<T> y(out.data() + i * out_ * p, out_, p);
      y.noalias() = weight_.value.matrix(out_, k) * kernels::ConstMatMap<T>(c, k, p);
      if (has_bias_) y.colwise() += bias_.value.vector();
    }
  }

  std::int64_t in_, out_;
  Size2 kernel_, stride_, padding_;
  bool has_bias_;
  ParameterT<T> weight_, bias_;
  // Kept across steps so a warmed-up training step allocates nothing.
  TensorT<T> cols_;
  std::vector<TensorT<T>> wgrad_, bgrad_, dcols_;
  Shape input_shape_;
  bool has_forward_ = false;
};

using Conv2d = Conv2dT<float>;

}  // namespace ember::nn
