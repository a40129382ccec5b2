#pragma once
// The report's two models, as ember writes them (layer names as in the report's printouts), like
// torchvision.models for this project's experiments. A model zoo, not part of the library proper: the umbrella
// header does not include it; the examples, tests and benchmarks do. Both take (classes, softmax_head). The CNN's order follows the Keras notebook the report
// copied: ReLU after each conv, then BatchNorm, then pooling. Printing either gives exactly what PyTorch prints
// for an nn.Sequential with the same named children (with "Net" / "CNNNet" in place of "Sequential").
#include <cstdint>

#include "ember/nn/nn.hpp"

namespace ember::models {

// Flatten, fc1 784-512, relu1, fc2 512-512, relu2, fc3 512-classes, and the softmax head if asked for.
template <typename T = float>
nn::SequentialT<T> report_mlp(std::int64_t classes, bool softmax_head) {
  nn::SequentialT<T> m("Net", {{"flatten", nn::FlattenT<T>()},
                               {"fc1", nn::LinearT<T>(784, 512)},
                               {"relu1", nn::ReLUT<T>()},
                               {"fc2", nn::LinearT<T>(512, 512)},
                               {"relu2", nn::ReLUT<T>()},
                               {"fc3", nn::LinearT<T>(512, classes)}});
  if (softmax_head) m.add("softmax", nn::SoftmaxT<T>(1));
  return m;
}

// Three conv blocks (conv 3x3, ReLU, BatchNorm, max-pool; dropout 0.2 in the second), then 100 -> 512 ->
// classes (the report: 24).
template <typename T = float>
nn::SequentialT<T> report_cnn(std::int64_t classes, bool softmax_head) {
  nn::SequentialT<T> m("CNNNet", {{"conv1", nn::Conv2dT<T>(1, 75, 3)},     {"relu1", nn::ReLUT<T>()},
                                  {"batchnorm1", nn::BatchNorm2dT<T>(75)}, {"pool1", nn::MaxPool2dT<T>(2, 2)},
                                  {"conv2", nn::Conv2dT<T>(75, 50, 3)},    {"relu2", nn::ReLUT<T>()},
                                  {"dropout1", nn::DropoutT<T>(0.2)},      {"batchnorm2", nn::BatchNorm2dT<T>(50)},
                                  {"pool2", nn::MaxPool2dT<T>(2, 2)},      {"conv3", nn::Conv2dT<T>(50, 25, 3)},
                                  {"relu3", nn::ReLUT<T>()},               {"batchnorm3", nn::BatchNorm2dT<T>(25)},
                                  {"pool3", nn::MaxPool2dT<T>(2, 1)},      {"flatten", nn::FlattenT<T>()},
                                  {"fc1", nn::LinearT<T>(100, 512)},       {"relu4", nn::ReLUT<T>()},
                                  {"dropout2", nn::DropoutT<T>(0.3)},      {"fc2", nn::LinearT<T>(512, classes)}});
  if (softmax_head) m.add("softmax", nn::SoftmaxT<T>(1));
  return m;
}

}  // namespace ember::models
