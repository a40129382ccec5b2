#pragma once
// Dropout(p = 0.5), as torch.nn.Dropout: in training, each element is zeroed with probability p and the
// survivors are scaled by 1 / (1 - p) (inverted dropout, so eval is the identity). The mask is keyed by one draw
// from the layer's generator (the default one unless another is given) and kept for backward. PyTorch's masks
// come from its own generator, so no seed gives the same mask in both (docs/pytorch-differences.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/fusion.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

namespace detail {
// Output i of SplitMix64 seeded with `key` (Steele, Lea and Flood 2014): a counter-based stream, so any element
// can be drawn on its own.
inline std::uint64_t splitmix64(std::uint64_t key, std::uint64_t i) {
  std::uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace detail

template <typename T>
class DropoutT : public ModuleT<T>, public ChannelFusion<T> {
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
      // One draw from the layer's generator per forward keys the mask; element i is dropped when the top 53
      // bits of SplitMix64's i-th output from that key fall below ceil(p 2^53) (so with probability p, as
      // uniform() < p). Each element's bit depends on (key, i) alone: the mask is split over threads and
      // repeats for any thread count (drawing every element from the generator was serial, a twentieth of a
      // CNN training step). Mask and output are written in one pass, without a branch: one on a random bit
      // mispredicted every few elements (3 % of a CNN step).
      const std::uint64_t key = generator().next_u64();
      const auto below = static_cast<std::uint64_t>(std::ceil(p_ * 0x1.0p53));
      const T scale = static_cast<T>(1.0 / (1.0 - p_));
      T* m = mask_.data();
      T* y = out.data();
      const T* in = x.data();
      parallel_chunks(mask_.numel(), [m, y, in, key, below, scale](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i) {
          const bool kept = (detail::splitmix64(key, static_cast<std::uint64_t>(i)) >> 11) >= below;
          const T keep = static_cast<T>(kept) * scale;  // scale or +0, without a branch
          m[i] = keep;
          y[i] = in[i] * keep;
        }
      });
      return;
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
  // The identity at inference: nothing to add.
  bool append_channel_map(const Shape& in, ChannelMap<T>& map) const override {
    (void)in, (void)map;
    return true;
  }

  // A copy draws from the same generator as the original.
  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<DropoutT>(*this); }
  bool batch_independent() const override { return true; }
  std::string type_name() const override { return "Dropout"; }
  // The identity at inference: graph::optimize removes the node.
  std::string describe(graph::Tracer& t, const std::string& x) const override { return t.node("Dropout", {x}); }
  std::string extra_repr() const override { return "p=" + python_float(p_) + ", inplace=False"; }

  double p() const { return p_; }
  // The generator the masks come from; pass one to make a layer's masks independent of the default.
  Generator& generator() { return gen_ ? *gen_ : default_generator(); }
  void set_generator(Generator* gen) { gen_ = gen; }
  // The last mask (0 or 1/(1-p) per element).
  const TensorT<T>& mask() const { return mask_; }

 private:
  // y = a * b elementwise.
  static void multiply(T* y, const T* a, const T* b, std::int64_t n) {
    parallel_chunks(n, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) y[i] = a[i] * b[i];
    });
  }

  double p_;
  Generator* gen_;
  TensorT<T> mask_;
  bool has_forward_ = false;
};

using Dropout = DropoutT<float>;
EMBER_EXTERN_TEMPLATE(class DropoutT<float>)
EMBER_EXTERN_TEMPLATE(class DropoutT<double>)

}  // namespace ember::nn
