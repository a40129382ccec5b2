#pragma once
// Linear(in_features, out_features, bias = true): y = x W^T + b, as torch.nn.Linear.
//   x: [*, in]  ->  y: [*, out]; weight [out, in]; bias [out].
// Backward: dW += dy^T x, db += sum_rows dy, dx = dy W. The input is copied for backward (into a buffer
// kept across steps), so the caller's tensor may change or die after forward.
// The products run through kernels::gemm_parallel with packing workspaces kept per product and per thread, so a
// warmed-up step allocates nothing; the bias seeds the output rows and the GEMM accumulates onto it (beta = 1),
// and dW accumulates straight into weight.grad.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/kernels/gemm.hpp"
#include "ember/nn/init.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class LinearT : public ModuleT<T> {
 public:
  LinearT(std::int64_t in_features, std::int64_t out_features, bool bias = true,
          Generator& gen = default_generator())
      : in_(in_features), out_(out_features), has_bias_(bias) {
    if (in_features <= 0 || out_features <= 0)
      throw std::invalid_argument("Linear: in_features and out_features must be positive, got " +
                                  std::to_string(in_features) + " and " + std::to_string(out_features));
    weight_.value = TensorT<T>({out_, in_});
    weight_.grad = TensorT<T>({out_, in_});
    if (has_bias_) {
      bias_.value = TensorT<T>({out_});
      bias_.grad = TensorT<T>({out_});
    }
    reset_parameters(gen);
  }

  void reset_parameters(Generator& gen) {
    init::default_weight_and_bias_(weight_.value, has_bias_ ? &bias_.value : nullptr, in_, gen);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    check(x);
    out_shape_ = x.shape();  // same length: reuses the vector's storage
    out_shape_.back() = out_;
    ensure_workspaces();
    compute(x, out, out_shape_, ws_fwd_);
    input_.assign(x);
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, out_shape_);
    ensure_workspaces();
    const std::int64_t rows = input_.numel() / in_;
    // dW[out x in] += dy^T[out x rows] x[rows x in]
    kernels::gemm_parallel(ws_wgrad_, true, false, out_, in_, rows, T(1), grad_out.data(), out_, input_.data(), in_,
                           T(1), weight_.grad.data(), in_);
    if (has_bias_) {
      // Rows summed in order, each column on its own: the same order for any thread count.
      T* db = bias_.grad.data();
      for (std::int64_t r = 0; r < rows; ++r) {
        const T* g = grad_out.data() + r * out_;
        for (std::int64_t j = 0; j < out_; ++j) db[j] += g[j];
      }
    }
    if (grad_in) {
      grad_in->resize(input_.shape());
      // dx[rows x in] = dy[rows x out] W[out x in]
      kernels::gemm_parallel(ws_dgrad_, false, false, rows, in_, out_, T(1), grad_out.data(), out_,
                             weight_.value.data(), in_, T(0), grad_in->data(), in_);
    }
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    check(x);
    Shape s = x.shape();
    s.back() = out_;
    // Inference keeps nothing in the module (several threads may share it): its own workspaces.
    std::vector<kernels::GemmWorkspace<T>> ws(static_cast<std::size_t>(std::max(1, get_num_threads())));
    compute(x, out, s, ws);
  }

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<LinearT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override {
    return "in_features=" + std::to_string(in_) + ", out_features=" + std::to_string(out_) +
           ", bias=" + (has_bias_ ? "True" : "False");
  }

  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &weight_);
    if (has_bias_) out.emplace_back(prefix + "bias", &bias_);
  }

  ParameterT<T>& weight() { return weight_; }
  ParameterT<T>& bias() { return bias_; }
  const ParameterT<T>& weight() const { return weight_; }
  const ParameterT<T>& bias() const { return bias_; }
  std::int64_t in_features() const { return in_; }
  std::int64_t out_features() const { return out_; }
  bool has_bias() const { return has_bias_; }

 private:
  void check(const TensorT<T>& x) const {
    this->require_parameters();
    if (x.dim() < 1 || x.size(-1) != in_)
      throw shape_error(this->repr() + ": expected input [*, " + std::to_string(in_) + "], got " +
                        to_string(x.shape()));
  }

  void ensure_workspaces() {
    const auto nt = static_cast<std::size_t>(std::max(1, get_num_threads()));
    if (ws_fwd_.size() < nt) {
      ws_fwd_.resize(nt);
      ws_wgrad_.resize(nt);
      ws_dgrad_.resize(nt);
    }
  }

  // y[rows x out] = b + x[rows x in] W^T
  void compute(const TensorT<T>& x, TensorT<T>& out, const Shape& out_shape,
               std::vector<kernels::GemmWorkspace<T>>& ws) const {
    const std::int64_t rows = x.numel() / in_;
    out.resize(out_shape);
    T* y = out.data();
    if (has_bias_) {
      for (std::int64_t r = 0; r < rows; ++r) std::copy(bias_.value.begin(), bias_.value.end(), y + r * out_);
    }
    kernels::gemm_parallel(ws, false, true, rows, out_, in_, T(1), x.data(), in_, weight_.value.data(), in_,
                           has_bias_ ? T(1) : T(0), y, out_);
  }

  std::int64_t in_, out_;
  bool has_bias_;
  ParameterT<T> weight_, bias_;
  TensorT<T> input_;
  Shape out_shape_;
  // Packing buffers per product and per thread, kept across steps.
  Scratch<std::vector<kernels::GemmWorkspace<T>>> ws_fwd_, ws_wgrad_, ws_dgrad_;
  bool has_forward_ = false;
};

using Linear = LinearT<float>;

}  // namespace ember::nn
