#pragma once
// BatchNorm2d(num_features, eps = 1e-5, momentum = 0.1), as torch.nn.BatchNorm2d (affine, tracking running
// statistics): [N, C, H, W], statistics per channel over N, H and W. nn/batchnorm_base.hpp has the layer's
// workings, shared with BatchNorm1d; kernels/batchnorm.hpp the formulas.
#include <cstdint>
#include <memory>
#include <string>

#include "ember/core/compiled.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/batchnorm_base.hpp"

namespace ember::nn {

template <typename T>
class BatchNorm2dT : public BatchNormBaseT<T> {
 public:
  explicit BatchNorm2dT(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNormBaseT<T>("BatchNorm2d", num_features, eps, momentum) {}

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<BatchNorm2dT>(*this); }
  std::string type_name() const override { return "BatchNorm2d"; }
  bool append_channel_map(const Shape& in, ChannelMap<T>& map) const override {
    return in.size() == 4 && in[1] == this->num_features() && this->append_running_map(map);
  }

 protected:
  void check_input(const TensorT<T>& x) const override {
    if (x.dim() != 4 || x.size(1) != this->num_features())
      throw shape_error(this->repr() + ": expected input [N, " + std::to_string(this->num_features()) +
                        ", H, W], got " + to_string(x.shape()));
  }
};

using BatchNorm2d = BatchNorm2dT<float>;
EMBER_EXTERN_TEMPLATE(class BatchNorm2dT<float>)
EMBER_EXTERN_TEMPLATE(class BatchNorm2dT<double>)

}  // namespace ember::nn
