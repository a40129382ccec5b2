#pragma once
// The report's two models (ember/models/report.hpp), their flop counts, and the training step (train::Step),
// shared by bench_train_step and the side-by-side driver compare/ember_workloads.cpp.
#include <cstdint>
#include <vector>

#include <ember/ember.hpp>
#include <ember/models/report.hpp>
#include <ember/train/step.hpp>

namespace ember::bench {

// The report's models (ember/models/report.hpp): report_mlp(classes, softmax), report_cnn(24, softmax).
using models::report_cnn;
using models::report_mlp;

// Multiply-adds of the report's models per image (forward), counted as 2 flops each; backward costs about
// twice the forward (input and weight gradients), minus the first layer's input gradient.
inline double mlp_forward_flops(std::int64_t classes) { return 2.0 * (784.0 * 512 + 512.0 * 512 + 512.0 * classes); }
inline double cnn_forward_flops() {
  return 2.0 * (75.0 * 9 * 26 * 26 + 50.0 * 75 * 9 * 11 * 11 + 25.0 * 50 * 9 * 3 * 3 + 100.0 * 512 + 512.0 * 24);
}
inline double mlp_train_flops(std::int64_t classes) { return 3.0 * mlp_forward_flops(classes) - 2.0 * 784 * 512; }
inline double cnn_train_flops() { return 3.0 * cnn_forward_flops() - 2.0 * 75 * 9 * 26 * 26; }

// Synthetic data of the right shape: `batches` batches of [batch, 1, 28, 28] inputs in [-1, 1] and random labels.
struct SyntheticData {
  std::vector<Tensor> inputs;
  std::vector<std::vector<std::int64_t>> targets;

  SyntheticData(std::int64_t batch, std::int64_t classes, int batches, std::uint64_t seed = 1) {
    Generator g(seed);
    for (int b = 0; b < batches; ++b) {
      Tensor x({batch, 1, 28, 28});
      for (float& v : x) v = static_cast<float>(g.uniform(-1.0, 1.0));
      std::vector<std::int64_t> y(static_cast<std::size_t>(batch));
      for (auto& l : y) l = static_cast<std::int64_t>(g.uniform() * static_cast<double>(classes)) % classes;
      inputs.push_back(std::move(x));
      targets.push_back(std::move(y));
    }
  }
};

// The report's training (SGD, lr 0.001, momentum 0.9) through train::Step, the step fit runs.
class Trainer {
 public:
  // fuse_zero_grad: train::Step's option (gradients zeroed in the optimiser's pass); off as in PyTorch.
  explicit Trainer(nn::Module& model, bool fuse_zero_grad = false)
      : opt_(model.parameters(), optim::SGDOptions{1e-3, 0.9}), step_(model, loss_, opt_) {
    step_.fuse_zero_grad(fuse_zero_grad);
  }

  float step(const Tensor& x, const std::vector<std::int64_t>& y) { return step_(x, y); }

 private:
  optim::SGD opt_;
  nn::CrossEntropyLoss loss_;
  train::Step<nn::Module, nn::CrossEntropyLoss, optim::SGD> step_;
};

}  // namespace ember::bench
