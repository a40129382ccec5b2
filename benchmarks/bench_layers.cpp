// The other layers of the report's models at their shapes in the CNN / MLP, batch 32: MaxPool2d, BatchNorm2d,
// Softmax + CrossEntropyLoss, Linear, ReLU; and the layers of small modern CNNs at the same places: AvgPool2d,
// AdaptiveAvgPool2d (global average pooling), BatchNorm1d, GELU. Forward + backward per iteration unless the
// name says otherwise.
// And the report's CNN at inference, batch 1000: Sequential::predict against graph::Plan (traced and optimised).
// These are memory-bound: bytes/s is the figure to read (against the machine's memory bandwidth), not GFLOPS.
#include <cstdint>
#include <vector>

#include <ember/core/random.hpp>
#include <ember/graph/optimize.hpp>
#include <ember/graph/plan.hpp>
#include <ember/graph/trace.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/activation.hpp>
#include <ember/nn/avgpool2d.hpp>
#include <ember/nn/batchnorm1d.hpp>
#include <ember/nn/batchnorm2d.hpp>
#include <ember/nn/linear.hpp>
#include <ember/nn/maxpool2d.hpp>
#include <ember/models/report.hpp>

#include "bench_common.hpp"

namespace {

using namespace ember;
constexpr std::int64_t kBatch = 32;

Tensor random_tensor(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  Tensor t(s);
  for (float& v : t) v = static_cast<float>(g.uniform(-1, 1));
  return t;
}

// Runs forward_into (+ backward_into with an input gradient unless forward_only) of `m` on x.
void run_module(benchmark::State& state, nn::Module& m, const Tensor& x, bool forward_only) {
  Tensor y, dx;
  m.forward_into(x, y);
  Tensor dy = random_tensor(y.shape(), 9);
  for (auto _ : state) {
    m.forward_into(x, y);
    if (!forward_only) m.backward_into(dy, &dx);
    benchmark::DoNotOptimize(y.data());
  }
  // Bytes a kernel must touch at least: x and y forward; x, dy and dx backward.
  const double bytes = 4.0 * static_cast<double>(x.numel() + y.numel() +
                                                 (forward_only ? 0 : 2 * x.numel() + y.numel()));
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * x.size(0));
}

// Arg: channels and plane size of the report's three pooling / batchnorm places.
void cnn_places(benchmark::internal::Benchmark* b) {
  b->ArgNames({"c", "hw"})->Args({75, 26})->Args({50, 11})->Args({25, 3})->UseRealTime();
}

void BM_MaxPool2d(benchmark::State& state) {
  nn::MaxPool2d pool(2, state.range(1) == 3 ? 1 : 2);
  Tensor x = random_tensor({kBatch, state.range(0), state.range(1), state.range(1)}, 1);
  run_module(state, pool, x, false);
}
BENCHMARK(BM_MaxPool2d)->Apply(cnn_places)->Unit(benchmark::kMicrosecond);

void BM_AvgPool2d(benchmark::State& state) {
  nn::AvgPool2d pool(2, state.range(1) == 3 ? 1 : 2);
  Tensor x = random_tensor({kBatch, state.range(0), state.range(1), state.range(1)}, 1);
  run_module(state, pool, x, false);
}
BENCHMARK(BM_AvgPool2d)->Apply(cnn_places)->Unit(benchmark::kMicrosecond);

// 3x3, stride 2, padding 1: a ResNet stem's pooling window, through the padded (general) kernel.
void BM_AvgPool2d_3x3_Pad1(benchmark::State& state) {
  nn::AvgPool2d pool(3, 2, 1);
  Tensor x = random_tensor({kBatch, state.range(0), state.range(1), state.range(1)}, 1);
  run_module(state, pool, x, false);
}
BENCHMARK(BM_AvgPool2d_3x3_Pad1)->Apply(cnn_places)->Unit(benchmark::kMicrosecond);

// Global average pooling (output 1) and a 2x2 grid of overlapping bins.
void BM_AdaptiveAvgPool2d(benchmark::State& state) {
  nn::AdaptiveAvgPool2d pool(state.range(2));
  Tensor x = random_tensor({kBatch, state.range(0), state.range(1), state.range(1)}, 1);
  run_module(state, pool, x, false);
}
BENCHMARK(BM_AdaptiveAvgPool2d)
    ->ArgNames({"c", "hw", "out"})
    ->Args({75, 26, 1})
    ->Args({50, 11, 1})
    ->Args({75, 26, 2})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// BatchNorm1d after a Linear(., 512) ([N, C]) and on [N, C, L] sequences.
void BM_BatchNorm1d(benchmark::State& state) {
  nn::BatchNorm1d bn(state.range(0));
  const Shape s = state.range(1) == 0 ? Shape{kBatch, state.range(0)} : Shape{kBatch, state.range(0), state.range(1)};
  Tensor x = random_tensor(s, 2);
  run_module(state, bn, x, false);
}
BENCHMARK(BM_BatchNorm1d)->ArgNames({"c", "l"})->Args({512, 0})->Args({64, 100})->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_GELU(benchmark::State& state) {
  nn::GELU gelu;
  Tensor x = random_tensor({kBatch, 75, 26, 26}, 3);
  run_module(state, gelu, x, false);
}
BENCHMARK(BM_GELU)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_BatchNorm2d(benchmark::State& state) {
  nn::BatchNorm2d bn(state.range(0));
  Tensor x = random_tensor({kBatch, state.range(0), state.range(1), state.range(1)}, 2);
  run_module(state, bn, x, false);
}
BENCHMARK(BM_BatchNorm2d)->Apply(cnn_places)->Unit(benchmark::kMicrosecond);

void BM_BatchNorm2d_Forward(benchmark::State& state) {
  nn::BatchNorm2d bn(state.range(0));
  Tensor x = random_tensor({kBatch, state.range(0), state.range(1), state.range(1)}, 2);
  run_module(state, bn, x, true);
}
BENCHMARK(BM_BatchNorm2d_Forward)->Apply(cnn_places)->Unit(benchmark::kMicrosecond);

void BM_ReLU(benchmark::State& state) {
  nn::ReLU relu;
  Tensor x = random_tensor({kBatch, 75, 26, 26}, 3);
  run_module(state, relu, x, false);
}
BENCHMARK(BM_ReLU)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Softmax head + cross-entropy forward and backward (the report's softmax-then-CrossEntropyLoss), [32 x 24].
void BM_SoftmaxCrossEntropy(benchmark::State& state) {
  const std::int64_t classes = state.range(0);
  nn::Softmax softmax(1);
  nn::CrossEntropyLoss loss;
  Tensor x = random_tensor({kBatch, classes}, 4), p, dp, dx;
  std::vector<std::int64_t> y(kBatch);
  for (std::int64_t i = 0; i < kBatch; ++i) y[static_cast<std::size_t>(i)] = i % classes;
  for (auto _ : state) {
    softmax.forward_into(x, p);
    benchmark::DoNotOptimize(loss.forward(p, y));
    loss.backward_into(dp);
    softmax.backward_into(dp, &dx);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * kBatch);
}
BENCHMARK(BM_SoftmaxCrossEntropy)->Arg(24)->Arg(10)->UseRealTime();

// Linear at the MLP's fc1 / fc2 and the CNN's fc1: args in, out, batch. Forward + backward with input grad.
void BM_Linear(benchmark::State& state) {
  const std::int64_t in = state.range(0), out = state.range(1), n = state.range(2);
  manual_seed(0);
  nn::Linear fc(in, out);
  Tensor x = random_tensor({n, in}, 5), y, dx;
  fc.forward_into(x, y);
  Tensor dy = random_tensor(y.shape(), 6);
  for (auto _ : state) {
    fc.forward_into(x, y);
    fc.backward_into(dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  bench::set_rates(state, 6.0 * static_cast<double>(in * out * n), n);
}
BENCHMARK(BM_Linear)
    ->ArgNames({"in", "out", "n"})
    ->Args({784, 512, 32})
    ->Args({512, 512, 32})
    ->Args({784, 512, 4})
    ->Args({100, 512, 32})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

// The report's CNN on 1000 images: predict (Sequential's chunks and fused channel maps) and a Plan of its
// optimised graph (the same kernels, buffers planned once). Images/s is items_per_second.
nn::Sequential eval_cnn() {
  auto m = models::report_cnn(24, true);
  m.eval();
  return m;
}
// `run(x, y)` on a batch of 1000 images, as many times as the benchmark asks.
template <class Run>
void run_cnn_batch(benchmark::State& state, Run&& run) {
  const Tensor x = random_tensor({1000, 1, 28, 28}, 21);
  Tensor y;
  for (auto _ : state) {
    run(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
void BM_CNNPredict(benchmark::State& state) {
  const nn::Sequential model = eval_cnn();
  run_cnn_batch(state, [&](const Tensor& x, Tensor& y) { model.predict_into(x, y); });
}
BENCHMARK(BM_CNNPredict)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_CNNPlan(benchmark::State& state) {
  const Shape shape = {1000, 1, 28, 28};
  const graph::Plan plan(graph::optimize(graph::trace(eval_cnn(), shape)), shape);
  run_cnn_batch(state, [&](const Tensor& x, Tensor& y) { plan.run(x, y); });
}
BENCHMARK(BM_CNNPlan)->UseRealTime()->Unit(benchmark::kMillisecond);

EMBER_BENCHMARK_MAIN();
