#pragma once
// Declarations of ember's main types without their definitions, as nlohmann's json_fwd.hpp: a header of your
// own that only passes a model, a tensor or a loader by reference includes this (a few standard headers) and
// leaves the definitions to the .cpp files that use them. The aliases are those of the defining headers.
#include <cstdint>
#include <vector>

namespace ember {

using Shape = std::vector<std::int64_t>;
template <typename T>
class TensorT;
using Tensor = TensorT<float>;
template <typename T>
struct ParameterT;
using Parameter = ParameterT<float>;
class Generator;

namespace nn {
template <typename T>
class ModuleT;
using Module = ModuleT<float>;
template <typename T>
class SequentialT;
using Sequential = SequentialT<float>;
template <typename T>
class ResidualT;
using Residual = ResidualT<float>;
template <typename T>
class GraphModuleT;
using GraphModule = GraphModuleT<float>;
template <typename T>
class LinearT;
using Linear = LinearT<float>;
template <typename T>
class Conv2dT;
using Conv2d = Conv2dT<float>;
template <typename T>
class BatchNorm1dT;
using BatchNorm1d = BatchNorm1dT<float>;
template <typename T>
class BatchNorm2dT;
using BatchNorm2d = BatchNorm2dT<float>;
template <typename T>
class MaxPool2dT;
using MaxPool2d = MaxPool2dT<float>;
template <typename T>
class AvgPool2dT;
using AvgPool2d = AvgPool2dT<float>;
template <typename T>
class AdaptiveAvgPool2dT;
using AdaptiveAvgPool2d = AdaptiveAvgPool2dT<float>;
template <typename T>
class DropoutT;
using Dropout = DropoutT<float>;
template <typename T>
class IdentityT;
using Identity = IdentityT<float>;
template <typename T>
class FlattenT;
using Flatten = FlattenT<float>;
template <typename T>
class ReLUT;
using ReLU = ReLUT<float>;
template <typename T>
class SoftmaxT;
using Softmax = SoftmaxT<float>;
}  // namespace nn

namespace loss {
template <typename T>
class CrossEntropyLossT;
using CrossEntropyLoss = CrossEntropyLossT<float>;
template <typename T>
class NLLLossT;
using NLLLoss = NLLLossT<float>;
template <typename T>
class MSELossT;
using MSELoss = MSELossT<float>;
template <typename T>
class BCEWithLogitsLossT;
using BCEWithLogitsLoss = BCEWithLogitsLossT<float>;
}  // namespace loss

namespace nn {
using loss::BCEWithLogitsLoss;
using loss::CrossEntropyLoss;
using loss::MSELoss;
using loss::NLLLoss;
}  // namespace nn

namespace optim {
template <typename T>
class SGDT;
using SGD = SGDT<float>;
template <typename T>
class RMSpropT;
using RMSprop = RMSpropT<float>;
}  // namespace optim

namespace data {
struct Dataset;
class ImageFolder;
template <typename Target>
struct BatchT;
using Batch = BatchT<std::int64_t>;
template <typename Target>
class DataLoaderT;
using DataLoader = DataLoaderT<std::int64_t>;
}  // namespace data

namespace train {
struct FitOptions;
struct History;
}  // namespace train

}  // namespace ember
