// A whole training step of each report model (forward, cross-entropy, backward, SGD with momentum, zero_grad)
// and the CNN's inference at batch 1000. items/s = images/s; GFLOPS counts the layers' multiply-adds only.
// Also SGD's update of the MLP against the memory bound of its stream.
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

// SGD's update (momentum 0.9) of the MNIST MLP's 669,706 parameters, against the same stream in a plain loop
// (read w, g, m; write w, m: 13.4 MB), both on `threads` threads: how close the optimiser runs to the memory
// bound that caps a batch-4 training step (docs/benchmarks.md). Arg: threads.
void BM_SGD_MLP(benchmark::State& state) {
  const int saved = get_num_threads();
  set_num_threads(static_cast<int>(state.range(0)));
  manual_seed(0);
  nn::Sequential model = bench::report_mlp(10, false);
  optim::SGD opt(model.parameters(), optim::SGDOptions{1e-3, 0.9});
  for (auto* p : model.parameters()) p->grad.fill(1e-3f);
  opt.step();  // momentum buffers allocated
  for (auto _ : state) opt.step();
  set_num_threads(saved);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 5 * 669706 * 4);
}
void BM_Stream_SGDShape(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t n = 669706;
  std::vector<float> w(static_cast<std::size_t>(n), 1.0f), g(w.size(), 1e-3f), m(w.size(), 0.0f);
  float* wp = w.data();
  const float* gp = g.data();
  float* mp = m.data();
  for (auto _ : state) {
    parallel_region(threads, [&] {
      const int t = thread_index();
      const std::int64_t lo = n * t / threads, hi = n * (t + 1) / threads;
      for (std::int64_t i = lo; i < hi; ++i) {
        mp[i] = 0.9f * mp[i] + gp[i];
        wp[i] -= 1e-3f * mp[i];
      }
    });
    benchmark::DoNotOptimize(wp);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 5 * n * 4);
}

BENCHMARK(BM_TrainStep_MLP)->Arg(32)->Arg(4)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_SGD_MLP)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Stream_SGDShape)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_TrainStep_MLP_ASL)->Arg(4)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_TrainStep_CNN)->Arg(32)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_Inference_CNN)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

EMBER_BENCHMARK_MAIN();
