#pragma once
// What BatchNorm1d and BatchNorm2d share (PyTorch's _BatchNorm, affine, tracking running statistics), per
// channel c of an input [N, C, ...] read as [N, C, L] (L: the product of the dimensions after C, 1 for
// [N, C]). In training it normalises with the batch's biased variance and updates the running estimates with
// the unbiased one; in eval it uses the running estimates. See kernels/batchnorm.hpp for the formulas and how
// they keep their precision. Buffers: running_mean, running_var, num_batches_tracked (a 0-d tensor; saved as
// int64 in checkpoints). A derived layer gives its name and the input ranks it takes.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/batchnorm.hpp"
#include "ember/nn/fusion.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class BatchNormBaseT : public ModuleT<T>, public ReluFusion<T>, public ChannelFusion<T> {
 protected:
  BatchNormBaseT(const char* name, std::int64_t num_features, double eps, double momentum)
      : c_(num_features), eps_(eps), momentum_(momentum) {
    if (num_features <= 0)
      throw std::invalid_argument(std::string(name) + ": num_features must be positive, got " +
                                  std::to_string(num_features));
    if (!(eps > 0.0)) throw std::invalid_argument(std::string(name) + ": eps must be positive");
    weight_.value = TensorT<T>::ones({c_});
    weight_.grad = TensorT<T>({c_});
    bias_.value = TensorT<T>({c_});
    bias_.grad = TensorT<T>({c_});
    running_mean_ = TensorT<T>({c_});
    running_var_ = TensorT<T>::ones({c_});
    num_batches_tracked_ = TensorT<T>(Shape{});
    mean_.resize(static_cast<std::size_t>(c_));
    invstd_.resize(static_cast<std::size_t>(c_));
  }

 public:
  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    check(x);
    input_.assign(x);
    kept_ = nullptr;
    run_forward(x, out, false);
  }
  // The container keeps x alive and unchanged until our backward: a pointer instead of a copy.
  void forward_into_kept(const TensorT<T>& x, TensorT<T>& out) override {
    check(x);
    kept_ = x.data();
    run_forward(x, out, false);
  }
  // In training, a ReLU before this layer runs inside it (kernels/batchnorm.hpp's relu_input): the batch's
  // statistics and normalisation read relu(x), and backward_into_relu masks the input gradient.
  bool absorbs_relu() const override { return this->training_; }
  void forward_into_relu(const TensorT<T>& x, TensorT<T>& out) override {
    check(x);
    if (!this->training_) throw std::logic_error(this->repr() + ": takes a ReLU's input only in training");
    kept_ = x.data();
    run_forward(x, out, true);
  }
  void backward_into_relu(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    if (!relu_input_)
      throw std::logic_error(this->repr() + ": backward_into_relu after a forward that took no ReLU's input");
    run_backward(grad_out, grad_in);
  }

 private:
  void run_forward(const TensorT<T>& x, TensorT<T>& out, bool relu_input) {
    const std::int64_t n = x.size(0), hw = plane(x.shape());
    out.resize(x.shape());
    shape_ = x.shape();
    has_forward_ = true;
    relu_input_ = relu_input;
    batch_stats_ = this->training_;
    if (!this->training_) {
      normalise_with_running(x, out);
      return;
    }
    const std::int64_t count = n * hw;
    if (count <= 1)
      throw shape_error(this->repr() + ": expected more than 1 value per channel when training, got input " +
                        to_string(x.shape()));
    const int nt = threads_for_elements(c_, 3 * count);
    parallel_for(nt, c_, [&](std::int64_t ch) {
      double mean, var;
      kernels::batchnorm_stats(mean, var, x.data(), n, c_, hw, ch, relu_input);
      const double invstd = 1.0 / std::sqrt(var + eps_);
      mean_[static_cast<std::size_t>(ch)] = mean;
      invstd_[static_cast<std::size_t>(ch)] = invstd;
      const double scale = weight_.value[ch] * invstd;
      const T center = static_cast<T>(mean);
      kernels::batchnorm_apply(out.data(), x.data(), n, c_, hw, ch, center, static_cast<T>(scale),
                               static_cast<T>(bias_.value[ch] - (mean - static_cast<double>(center)) * scale),
                               relu_input);
      const double unbiased = var * static_cast<double>(count) / static_cast<double>(count - 1);
      running_mean_[ch] = static_cast<T>((1.0 - momentum_) * running_mean_[ch] + momentum_ * mean);
      running_var_[ch] = static_cast<T>((1.0 - momentum_) * running_var_[ch] + momentum_ * unbiased);
    });
    num_batches_tracked_[0] += T(1);
  }

 public:
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    if (relu_input_)
      throw std::logic_error(this->repr() + ": the last forward took a ReLU's input; its backward is backward_into_relu");
    run_backward(grad_out, grad_in);
  }

 private:
  void run_backward(const TensorT<T>& grad_out, TensorT<T>* grad_in) {
    this->require_grad_shape(grad_out, shape_);
    const std::int64_t n = shape_[0], hw = plane(shape_);
    const T* input = kept_ ? kept_ : input_.data();
    if (grad_in) grad_in->resize(shape_);
    const int nt = threads_for_elements(c_, 4 * n * hw);
    parallel_for(nt, c_, [&](std::int64_t ch) {
      double dgamma = 0, dbeta = 0;
      if (batch_stats_) {
        kernels::batchnorm_backward(grad_in ? grad_in->data() : nullptr, dgamma, dbeta, input, grad_out.data(), n,
                                    c_, hw, ch, mean_[static_cast<std::size_t>(ch)],
                                    invstd_[static_cast<std::size_t>(ch)], weight_.value[ch], relu_input_);
      } else {
        // Eval mode is an affine map per channel: dx = dy * gamma * invstd.
        const double mean = running_mean_[ch], invstd = running_invstd(ch);
        for (std::int64_t i = 0; i < n; ++i) {
          const T* xp = input + (i * c_ + ch) * hw;
          const T* gp = grad_out.data() + (i * c_ + ch) * hw;
          T* dp = grad_in ? grad_in->data() + (i * c_ + ch) * hw : nullptr;
          for (std::int64_t j = 0; j < hw; ++j) {
            dbeta += gp[j];
            dgamma += gp[j] * (xp[j] - mean) * invstd;
            if (dp) dp[j] = static_cast<T>(gp[j] * weight_.value[ch] * invstd);
          }
        }
      }
      if (weight_.requires_grad) weight_.grad[ch] += static_cast<T>(dgamma);  // frozen: nothing added
      if (bias_.requires_grad) bias_.grad[ch] += static_cast<T>(dbeta);
    });
  }

 public:
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    check(x);
    out.resize(x.shape());
    normalise_with_running(x, out);
  }

  bool batch_independent() const override { return true; }
  // BatchNormalization with the running statistics (eval mode); ONNX's momentum is 1 - PyTorch's.
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    this->require_parameters();
    return t.node("BatchNormalization",
                  {x, t.parameter("weight", weight_.value), t.parameter("bias", bias_.value),
                   t.parameter("running_mean", running_mean_), t.parameter("running_var", running_var_)},
                  {{"epsilon", graph::Attribute::real(eps_)}, {"momentum", graph::Attribute::real(1.0 - momentum_)}});
  }
  std::string extra_repr() const override {
    return std::to_string(c_) + ", eps=" + python_float(eps_) + ", momentum=" + python_float(momentum_) +
           ", affine=True, track_running_stats=True";
  }

  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &weight_);
    out.emplace_back(prefix + "bias", &bias_);
  }
  void collect_buffers(const std::string& prefix, typename ModuleT<T>::NamedBuffers& out) override {
    out.emplace_back(prefix + "running_mean", &running_mean_);
    out.emplace_back(prefix + "running_var", &running_var_);
    out.emplace_back(prefix + "num_batches_tracked", &num_batches_tracked_);
  }

  ParameterT<T>& weight() { return weight_; }
  ParameterT<T>& bias() { return bias_; }
  TensorT<T>& running_mean() { return running_mean_; }
  TensorT<T>& running_var() { return running_var_; }
  const ParameterT<T>& weight() const { return weight_; }
  const ParameterT<T>& bias() const { return bias_; }
  const TensorT<T>& running_mean() const { return running_mean_; }
  const TensorT<T>& running_var() const { return running_var_; }
  std::int64_t num_features() const { return c_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  std::int64_t num_batches_tracked() const { return static_cast<std::int64_t>(num_batches_tracked_[0]); }

 protected:
  // Eval mode's normalisation of channel ch is (x - running_mean) * running_scale(ch) + bias.
  double running_invstd(std::int64_t ch) const {
    return 1.0 / std::sqrt(static_cast<double>(running_var_[ch]) + eps_);
  }
  T running_scale(std::int64_t ch) const {
    return kernels::batchnorm_running_scale(weight_.value[ch], running_var_[ch], eps_);
  }

  // The eval-mode normalisation as a ChannelMap's affine part, with normalise_with_running's numbers; false if
  // the map has one already.
  bool append_running_map(ChannelMap<T>& map) const {
    if (map.affine()) return false;
    this->require_parameters();
    map.center.resize(static_cast<std::size_t>(c_));
    map.scale.resize(static_cast<std::size_t>(c_));
    map.shift.resize(static_cast<std::size_t>(c_));
    for (std::int64_t ch = 0; ch < c_; ++ch) {
      const auto i = static_cast<std::size_t>(ch);
      map.center[i] = running_mean_[ch];
      map.scale[i] = running_scale(ch);
      map.shift[i] = bias_.value[ch];
    }
    return true;
  }

  // Throws shape_error unless x is an input this layer takes (its rank, C = num_features).
  virtual void check_input(const TensorT<T>& x) const = 0;

 private:
  void check(const TensorT<T>& x) const {
    this->require_parameters();
    check_input(x);
  }
  // L: the values per channel in one sample.
  static std::int64_t plane(const Shape& s) {
    std::int64_t l = 1;
    for (std::size_t d = 2; d < s.size(); ++d) l *= s[d];
    return l;
  }

  void normalise_with_running(const TensorT<T>& x, TensorT<T>& out) const {
    const std::int64_t n = x.size(0), hw = plane(x.shape());
    kernels::batchnorm_eval_forward(out.data(), x.data(), n, c_, hw, running_mean_.data(), running_var_.data(),
                                    weight_.value.data(), bias_.value.data(), eps_);
  }

  std::int64_t c_;
  double eps_, momentum_;
  ParameterT<T> weight_, bias_;
  TensorT<T> running_mean_, running_var_, num_batches_tracked_;
  // Saved for backward: the input (a copy, or the container's buffer: kept_) and this batch's statistics.
  TensorT<T> input_;
  const T* kept_ = nullptr;
  Shape shape_;
  std::vector<double> mean_, invstd_;
  bool batch_stats_ = true;
  bool relu_input_ = false;  // the last forward read its input through a ReLU
  bool has_forward_ = false;
};

}  // namespace ember::nn
