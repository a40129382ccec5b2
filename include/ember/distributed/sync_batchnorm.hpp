#pragma once
// SyncBatchNorm: BatchNorm2d whose training statistics are those of the global batch, all ranks together, as
// torch.nn.SyncBatchNorm. The default in a data-parallel run is per-rank statistics (BatchNorm2d, as DDP); use
// this when the per-rank batch is too small for good statistics. Parameters and buffers have BatchNorm2d's names,
// so checkpoints move between the two.
//
//   auto model = dist::convert_sync_batchnorm(ctx, models::report_cnn(24, false));  // every BatchNorm2d child
//
// Forward (training): each rank's per-channel count, mean and sum of squared deviations are gathered
// (MPI_Allgather) and combined in rank order (Chan et al.'s parallel variance, exact where sum - sum of
// squares would cancel), so every rank normalises with the same mean and variance; the running estimates are
// updated with the global ones. Backward: the per-channel sums of dy and dy * x_hat are added over the ranks
// (MPI_Allreduce); each rank's weight and bias gradients stay its own (the gradient reducer averages them).
// Eval: the running estimates, as BatchNorm2d. Two blocking collectives per layer and step, on buffers
// allocated once; every rank must call forward and backward the same number of times.
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/distributed/context.hpp"
#include "ember/kernels/batchnorm.hpp"
#include "ember/nn/batchnorm2d.hpp"
#include "ember/nn/sequential.hpp"

namespace ember::dist {

template <typename T>
class SyncBatchNormT : public nn::ModuleT<T> {
 public:
  SyncBatchNormT(const Context& ctx, std::int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : ctx_(&ctx), bn_(num_features, eps, momentum) {
    const auto c = static_cast<std::size_t>(num_features);
    gathered_.resize(3 * c * static_cast<std::size_t>(ctx.size()));
    local_.resize(3 * c);
    sums_.resize(2 * c);
    mean_.resize(c);
    invstd_.resize(c);
  }
  // From a BatchNorm2d: its configuration, parameters and running statistics.
  SyncBatchNormT(const Context& ctx, const nn::BatchNorm2dT<T>& bn)
      : SyncBatchNormT(ctx, bn.num_features(), bn.eps(), bn.momentum()) {
    bn_ = bn;
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    if (!this->training_ || ctx_->size() == 1) {
      bn_.train(this->training_);
      bn_.forward_into(x, out);
      synced_ = false;
      return;
    }
    const std::int64_t c = bn_.num_features();
    if (x.dim() != 4 || x.size(1) != c)
      throw shape_error(this->repr() + ": expected input [N, " + std::to_string(c) + ", H, W], got " +
                        to_string(x.shape()));
    const std::int64_t n = x.size(0), hw = x.size(2) * x.size(3);
    out.resize(x.shape());
    const auto cs = static_cast<std::size_t>(c);
    for (std::int64_t ch = 0; ch < c; ++ch) {
      double mean = 0, var = 0;
      kernels::batchnorm_stats(mean, var, x.data(), n, c, hw, ch);
      const auto k = static_cast<std::size_t>(ch);
      local_[k] = static_cast<double>(n * hw);
      local_[cs + k] = mean;
      local_[2 * cs + k] = var * static_cast<double>(n * hw);
    }
    detail::check(MPI_Allgather(local_.data(), static_cast<int>(3 * cs), MPI_DOUBLE, gathered_.data(),
                                static_cast<int>(3 * cs), MPI_DOUBLE, ctx_->comm()),
                  "MPI_Allgather");
    count_ = 0;
    for (std::size_t k = 0; k < cs; ++k) {
      double cnt = 0, mean = 0, m2 = 0;
      for (int r = 0; r < ctx_->size(); ++r) {
        const double* g = gathered_.data() + static_cast<std::size_t>(r) * 3 * cs;
        const double nb = g[k], mb = g[cs + k], m2b = g[2 * cs + k];
        const double total = cnt + nb, delta = mb - mean;
        mean += delta * nb / total;
        m2 += m2b + delta * delta * cnt * nb / total;
        cnt = total;
      }
      if (cnt <= 1)
        throw shape_error(this->repr() + ": expected more than 1 value per channel over all ranks, got input " +
                          to_string(x.shape()) + " on rank " + std::to_string(ctx_->rank()));
      const double var = m2 / cnt, invstd = 1.0 / std::sqrt(var + bn_.eps());
      mean_[k] = mean;
      invstd_[k] = invstd;
      const auto ch = static_cast<std::int64_t>(k);
      const double scale = bn_.weight().value[ch] * invstd;
      const T center = static_cast<T>(mean);
      kernels::batchnorm_apply(out.data(), x.data(), n, c, hw, ch, center, static_cast<T>(scale),
                               static_cast<T>(bn_.bias().value[ch] - (mean - static_cast<double>(center)) * scale));
      const double m = bn_.momentum(), unbiased = var * cnt / (cnt - 1);
      bn_.running_mean()[ch] = static_cast<T>((1.0 - m) * bn_.running_mean()[ch] + m * mean);
      bn_.running_var()[ch] = static_cast<T>((1.0 - m) * bn_.running_var()[ch] + m * unbiased);
      count_ = cnt;
    }
    num_batches_tracked()[0] += T(1);
    input_.assign(x);
    synced_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    if (!synced_) {
      bn_.backward_into(grad_out, grad_in);
      return;
    }
    this->require_grad_shape(grad_out, input_.shape());
    const std::int64_t n = input_.size(0), c = bn_.num_features(), hw = input_.size(2) * input_.size(3);
    const auto cs = static_cast<std::size_t>(c);
    for (std::int64_t ch = 0; ch < c; ++ch) {
      double sdy = 0, sdyx = 0;
      const auto k = static_cast<std::size_t>(ch);
      for (std::int64_t i = 0; i < n; ++i) {
        const T* xp = input_.data() + (i * c + ch) * hw;
        const T* gp = grad_out.data() + (i * c + ch) * hw;
        for (std::int64_t j = 0; j < hw; ++j) {
          sdy += gp[j];
          sdyx += gp[j] * ((xp[j] - mean_[k]) * invstd_[k]);
        }
      }
      if (bn_.weight().requires_grad) bn_.weight().grad[ch] += static_cast<T>(sdyx);  // frozen: nothing added
      if (bn_.bias().requires_grad) bn_.bias().grad[ch] += static_cast<T>(sdy);
      sums_[k] = sdy;
      sums_[cs + k] = sdyx;
    }
    if (!grad_in) return;
    detail::check(MPI_Allreduce(MPI_IN_PLACE, sums_.data(), static_cast<int>(2 * cs), MPI_DOUBLE, MPI_SUM,
                                ctx_->comm()),
                  "MPI_Allreduce");
    grad_in->resize(input_.shape());
    for (std::int64_t ch = 0; ch < c; ++ch) {
      const auto k = static_cast<std::size_t>(ch);
      const double mdy = sums_[k] / count_, mdyx = sums_[cs + k] / count_;
      const double g = bn_.weight().value[ch] * invstd_[k];
      for (std::int64_t i = 0; i < n; ++i) {
        const T* xp = input_.data() + (i * c + ch) * hw;
        const T* gp = grad_out.data() + (i * c + ch) * hw;
        T* dp = grad_in->data() + (i * c + ch) * hw;
        for (std::int64_t j = 0; j < hw; ++j)
          dp[j] = static_cast<T>(g * (gp[j] - mdy - (xp[j] - mean_[k]) * invstd_[k] * mdyx));
      }
    }
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override { bn_.predict_into(x, out); }
  std::unique_ptr<nn::ModuleT<T>> clone() const override { return std::make_unique<SyncBatchNormT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "SyncBatchNorm"; }
  std::string extra_repr() const override { return bn_.extra_repr(); }
  void collect_parameters(const std::string& prefix, typename nn::ModuleT<T>::NamedParameters& out) override {
    bn_.collect_parameters(prefix, out);
  }
  void collect_buffers(const std::string& prefix, typename nn::ModuleT<T>::NamedBuffers& out) override {
    bn_.collect_buffers(prefix, out);
  }
  const nn::BatchNorm2dT<T>& batchnorm() const { return bn_; }

 private:
  // BatchNorm2d keeps its counter private: found once through its buffers (a copy finds its own).
  TensorT<T>& num_batches_tracked() {
    if (tracked_owner_ != this) {
      typename nn::ModuleT<T>::NamedBuffers b;
      bn_.collect_buffers("", b);
      tracked_ = b.back().second;
      tracked_owner_ = this;
    }
    return *tracked_;
  }

  const Context* ctx_;
  nn::BatchNorm2dT<T> bn_;  // parameters, buffers, checks, and the one-rank and eval paths
  TensorT<T> input_;
  std::vector<double> local_, gathered_, sums_, mean_, invstd_;
  double count_ = 0;
  bool synced_ = false;
  TensorT<T>* tracked_ = nullptr;
  const SyncBatchNormT* tracked_owner_ = nullptr;
};

using SyncBatchNorm = SyncBatchNormT<float>;

// As torch.nn.SyncBatchNorm.convert_sync_batchnorm: a copy of the Sequential with every BatchNorm2d child
// replaced by a SyncBatchNorm holding its parameters and running statistics (nested Sequentials too).
template <typename T>
nn::SequentialT<T> convert_sync_batchnorm(const Context& ctx, const nn::SequentialT<T>& model) {
  nn::SequentialT<T> out(model.display_name(), {});
  for (std::size_t i = 0; i < model.size(); ++i) {
    const nn::ModuleT<T>& child = model[i];
    if (const auto* bn = dynamic_cast<const nn::BatchNorm2dT<T>*>(&child))
      out.push_back(model.name_of(i), std::make_unique<SyncBatchNormT<T>>(ctx, *bn));
    else if (const auto* seq = dynamic_cast<const nn::SequentialT<T>*>(&child))
      out.push_back(model.name_of(i), std::make_unique<nn::SequentialT<T>>(convert_sync_batchnorm(ctx, *seq)));
    else
      out.push_back(model.name_of(i), child.clone());
  }
  out.train(model.is_training());
  return out;
}

}  // namespace ember::dist
