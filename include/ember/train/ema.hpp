#pragma once
// An exponential moving average of a model's weights, as torch.optim.swa_utils.AveragedModel with
// get_ema_multi_avg_fn(decay) (and timm's ModelEmaV2): evaluating the averaged weights is often better than
// the last ones.
//   update(model)    the first call copies the parameters; later ones ema = decay ema + (1 - decay) p.
//                    Buffers (BatchNorm's running statistics) are copied from the model, not averaged.
//   copy_to(model)   writes the averaged parameters and the copied buffers into a model of the same
//                    structure (the trained model itself, or a second instance for evaluation).
//
//   train::ExponentialMovingAverage ema(model, 0.999);
//   opts.on_step = [&](const train::StepInfo&) { ema.update(model); };
//   train::fit(model, loss, opt, train_loader, val_loader, opts);
//   ema.copy_to(model);   // then evaluate or save the averaged weights
//
// The average is kept in double whatever the model's scalar, so a decay close to 1 does not stall in float.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"

namespace ember::train {

template <typename T>
class ExponentialMovingAverageT {
 public:
  // decay in [0, 1]; the model fixes the names and shapes the average follows.
  explicit ExponentialMovingAverageT(const nn::ModuleT<T>& model, double decay = 0.9999) : decay_(decay) {
    if (!(decay >= 0.0 && decay <= 1.0))
      throw std::invalid_argument("ExponentialMovingAverage: decay must lie in [0, 1], got " + std::to_string(decay));
    for (const auto& [name, p] : model.named_parameters()) {
      names_.push_back(name);
      average_.emplace_back(p->value.begin(), p->value.end());
      shapes_.push_back(p->value.shape());
    }
    for (const auto& [name, b] : model.named_buffers()) {
      buffer_names_.push_back(name);
      buffers_.push_back(*b);
    }
  }

  double decay() const noexcept { return decay_; }
  // Calls of update so far (AveragedModel's n_averaged).
  std::int64_t num_updates() const noexcept { return updates_; }

  void update(const nn::ModuleT<T>& model) {
    const auto params = model.named_parameters();
    check(params, names_, "parameters");
    for (std::size_t k = 0; k < params.size(); ++k) {
      const TensorT<T>& v = params[k].second->value;
      std::vector<double>& a = average_[k];
      if (v.shape() != shapes_[k]) mismatch(params[k].first, v.shape(), shapes_[k]);
      if (updates_ == 0) {
        for (std::int64_t i = 0; i < v.numel(); ++i) a[static_cast<std::size_t>(i)] = static_cast<double>(v[i]);
      } else {
        for (std::int64_t i = 0; i < v.numel(); ++i) {
          double& x = a[static_cast<std::size_t>(i)];
          x = decay_ * x + (1.0 - decay_) * static_cast<double>(v[i]);
        }
      }
    }
    const auto bufs = model.named_buffers();
    check(bufs, buffer_names_, "buffers");
    for (std::size_t k = 0; k < bufs.size(); ++k) {
      if (bufs[k].second->shape() != buffers_[k].shape()) mismatch(bufs[k].first, bufs[k].second->shape(), buffers_[k].shape());
      buffers_[k] = *bufs[k].second;
    }
    ++updates_;
  }

  void copy_to(nn::ModuleT<T>& model) const {
    auto params = model.named_parameters();
    check(params, names_, "parameters");
    for (std::size_t k = 0; k < params.size(); ++k) {
      TensorT<T>& v = params[k].second->value;
      if (v.shape() != shapes_[k]) mismatch(params[k].first, v.shape(), shapes_[k]);
      for (std::int64_t i = 0; i < v.numel(); ++i) v[i] = static_cast<T>(average_[k][static_cast<std::size_t>(i)]);
    }
    auto bufs = model.named_buffers();
    check(bufs, buffer_names_, "buffers");
    for (std::size_t k = 0; k < bufs.size(); ++k) {
      if (bufs[k].second->shape() != buffers_[k].shape()) mismatch(bufs[k].first, bufs[k].second->shape(), buffers_[k].shape());
      *bufs[k].second = buffers_[k];
    }
  }

  // The averaged value of parameter `name` (as the model names it, e.g. "fc1.weight").
  TensorT<T> parameter(const std::string& name) const {
    for (std::size_t k = 0; k < names_.size(); ++k)
      if (names_[k] == name) {
        TensorT<T> out(shapes_[k]);
        for (std::int64_t i = 0; i < out.numel(); ++i) out[i] = static_cast<T>(average_[k][static_cast<std::size_t>(i)]);
        return out;
      }
    throw std::invalid_argument("ExponentialMovingAverage: no parameter named '" + name + "'");
  }

 private:
  template <typename Named>
  static void check(const Named& got, const std::vector<std::string>& want, const char* what) {
    bool same = got.size() == want.size();
    for (std::size_t k = 0; same && k < got.size(); ++k) same = got[k].first == want[k];
    if (!same)
      throw std::invalid_argument(std::string("ExponentialMovingAverage: the model's ") + what + " (" +
                                  std::to_string(got.size()) + ") are not those the average was made for (" +
                                  std::to_string(want.size()) + "): a model of another structure?");
  }
  [[noreturn]] static void mismatch(const std::string& name, const Shape& got, const Shape& want) {
    throw shape_error("ExponentialMovingAverage: '" + name + "' is " + to_string(got) + ", the average holds " +
                      to_string(want));
  }

  double decay_;
  std::int64_t updates_ = 0;
  std::vector<std::string> names_, buffer_names_;
  std::vector<std::vector<double>> average_;
  std::vector<Shape> shapes_;
  std::vector<TensorT<T>> buffers_;
};

using ExponentialMovingAverage = ExponentialMovingAverageT<float>;
// timm's name.
template <typename T>
using ModelEmaT = ExponentialMovingAverageT<T>;
using ModelEma = ExponentialMovingAverage;

}  // namespace ember::train
