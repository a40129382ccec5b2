#pragma once
// BatchNorm1d(num_features, eps = 1e-5, momentum = 0.1), as torch.nn.BatchNorm1d (affine, tracking running
// statistics): input [N, C] (statistics per feature over the batch) or [N, C, L] (over the batch and L). As in
// PyTorch, training needs more than one value per channel (N * L > 1): a batch of one [1, C] throws rather
// than normalising every value to 0. nn/batchnorm_base.hpp has the layer's workings, shared with BatchNorm2d;
// kernels/batchnorm.hpp the formulas and their precision (centred sums: a mean of 1e3 keeps its digits).
#include <cstdint>
#include <memory>
#include <string>

#include "ember/core/compiled.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/batchnorm_base.hpp"

namespace ember::nn {

template <typename T>
class BatchNorm1dT : public BatchNormBaseT<T> {
 public:
  explicit BatchNorm1dT(std::int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNormBaseT<T>("BatchNorm1d", num_features, eps, momentum) {}

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<BatchNorm1dT>(*this); }
  std::string type_name() const override { return "BatchNorm1d"; }

 protected:
  void check_input(const TensorT<T>& x) const override {
    if ((x.dim() != 2 && x.dim() != 3) || x.size(1) != this->num_features()) {
      const std::string c = std::to_string(this->num_features());
      throw shape_error(this->repr() + ": expected input [N, " + c + "] or [N, " + c + ", L], got " +
                        to_string(x.shape()));
    }
  }
};

using BatchNorm1d = BatchNorm1dT<float>;
EMBER_EXTERN_TEMPLATE(class BatchNorm1dT<float>)
EMBER_EXTERN_TEMPLATE(class BatchNorm1dT<double>)

}  // namespace ember::nn
