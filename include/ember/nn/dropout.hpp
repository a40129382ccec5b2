#pragma once
// Dropout(p = 0.5), as torch.nn.Dropout: in training, each element is zeroed with probability p and the
// survivors are scaled by 1 / (1 - p) (inverted dropout, so eval is the identity). The mask is drawn from the
// layer's generator (the default one unless another is given) and kept for backward.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

template <typename T>
class DropoutT : public ModuleT<T> {
 public:
  explicit DropoutT(double p = 0.5, Generator* gen = nullptr) : p_(p), gen_(gen) {
    if (!(p >= 0.0 && p <= 1.0))
      throw std::invalid_argument("Dropout: probability has to be between 0 and 1, but got " + std::to_string(p));
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    has_forward_ = true;
    out.resize(x.shape());
    mask_.resize(x.shape());
    if (!this->training_ || p_ == 0.0) {
      mask_.fill(T(1));
    } else if (p_ == 1.0) {
      mask_.fill(T(0));
    } else {
      Generator& g = generator();
      const T scale = static_cast<T>(1.0 / (1.0 - p_));
      // g.uniform() < p, decided on the 53-bit integer it is made of (uniform() = k 2^-53, so u < p exactly
      // when k < ceil(p 2^53)): the same draws and the same mask as the double comparison, without the
      // conversion. The draws stay serial so the mask depends on the generator alone, not on the threads.
      const auto below = static_cast<std::uint64_t>(std::ceil(p_ * 0x1.0p53));
      for (T& m : mask_) m = (g.next_u64() >> 11) < below ? T(0) : scale;
    }
    multiply(out.data(), x.data(), mask_.data(), x.numel());
  }
  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, mask_.shape());
    if (!grad_in) return;
    grad_in->resize(mask_.shape());
    multiply(grad_in->data(), grad_out.data(), mask_.data(), mask_.numel());
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override { out.assign(x); }

  // A copy draws from the same generator as the original.
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<DropoutT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override { return "p=" + python_float(p_) + ", inplace=False"; }

  double p() const { return p_; }
  // The generator the masks come from; pass one to make a layer's masks independent of the default.
  Generator& generator() { return gen_ ? *gen_ : default_generator(); }
  void set_generator(Generator* gen) { gen_ = gen; }
  // The last mask (0 or 1/(1-p) per element).
  const TensorT<T>& mask() const { return mask_; }

 private:
  // y = a * b elementwise, in chunks over threads when large.
  static void multiply(T* y, const T* a, const T* b, std::int64_t n) {
    constexpr std::int64_t kChunk = 16384;
    const std::int64_t chunks = (n + kChunk - 1) / kChunk;
    parallel_for(threads_for_elements(chunks, kChunk), chunks, [&](std::int64_t c) {
      const std::int64_t lo = c * kChunk, hi = std::min(n, lo + kChunk);
      for (std::int64_t i = lo; i < hi; ++i) y[i] = a[i] * b[i];
    });
  }

  double p_;
  Generator* gen_;
  TensorT<T> mask_;
  bool has_forward_ = false;
};

using Dropout = DropoutT<float>;

}  // namespace ember::nn
