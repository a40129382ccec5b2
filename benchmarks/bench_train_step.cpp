// A whole training step of each report model (forward, cross-entropy, backward, SGD with momentum, zero_grad)
// and the CNN's inference at batch 1000. items/s = images/s; GFLOPS counts the layers' multiply-adds only.
#include <cstdint>

#include "bench_common.hpp"
#include "report_models.hpp"

namespace {

using namespace ember;

void train_step(benchmark::State& state, bool cnn, std::int64_t classes, bool softmax) {
  const std::int64_t batch = state.range(0);
  manual_seed(0);
  nn::Sequential model = cnn ? bench::report_cnn(24, softmax) : bench::report_mlp(classes, softmax);
  bench::SyntheticData data(batch, cnn ? 24 : classes, 8);
  bench::Trainer trainer(model);
  for (int i = 0; i < 3; ++i) trainer.step(data.inputs[0], data.targets[0]);  // warm-up: buffers reach size
  std::size_t b = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(trainer.step(data.inputs[b], data.targets[b]));
    b = (b + 1) % data.inputs.size();
  }
  const double flops = cnn ? bench::cnn_train_flops() : bench::mlp_train_flops(classes);
  bench::set_rates(state, flops * static_cast<double>(batch), batch);
}

void BM_TrainStep_MLP(benchmark::State& state) { train_step(state, false, 10, false); }
void BM_TrainStep_MLP_ASL(benchmark::State& state) { train_step(state, false, 24, true); }
void BM_TrainStep_CNN(benchmark::State& state) { train_step(state, true, 24, true); }

void BM_Inference_CNN(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  manual_seed(0);
  nn::Sequential model = bench::report_cnn(24, true);
  model.eval();
  bench::SyntheticData data(batch, 24, 1);
  Tensor out;
  model.predict_into(data.inputs[0], out);
  for (auto _ : state) {
    model.predict_into(data.inputs[0], out);
    benchmark::DoNotOptimize(out.data());
  }
  bench::set_rates(state, bench::cnn_forward_flops() * static_cast<double>(batch), batch);
}

BENCHMARK(BM_TrainStep_MLP)->Arg(32)->Arg(4)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_TrainStep_MLP_ASL)->Arg(4)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_TrainStep_CNN)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Inference_CNN)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

EMBER_BENCHMARK_MAIN();
