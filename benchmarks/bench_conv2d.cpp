// Conv2d per report layer at batch 32: im2col / col2im, forward, backward, and forward + backward (the
// target's figure for conv2); then dilated, grouped and depthwise layers of modern small CNNs. GFLOPS counts
// the GEMM work: forward 2*N*C_out*K*P with K = C_in*kh*kw and P = out_h*out_w; backward the same for the
// weight gradient and again for the input gradient (skipped for conv1, the first layer, whose input gradient
// the network never asks for).
#include <cstdint>
#include <vector>

#include <ember/core/random.hpp>
#include <ember/kernels/im2col.hpp>
#include <ember/nn/conv2d.hpp>

#include "bench_common.hpp"

namespace {

using namespace ember;

struct Layer {
  const char* name;
  std::int64_t in, out, hw;
  bool input_grad;  // does the network need this layer's input gradient?
};
// conv1 1->75 on 28x28, conv2 75->50 on 13x13, conv3 50->25 on 5x5; kernel 3, stride 1, no padding.
constexpr Layer kLayers[] = {{"conv1", 1, 75, 28, false}, {"conv2", 75, 50, 13, true}, {"conv3", 50, 25, 5, true}};
constexpr std::int64_t kBatch = 32;

kernels::Conv2dGeometry geometry(const Layer& l) { return {l.in, l.hw, l.hw, 3, 3, 1, 1, 0, 0}; }
double forward_flops(const Layer& l) {
  const auto g = geometry(l);
  return 2.0 * static_cast<double>(kBatch * l.out * g.col_rows() * g.col_cols());
}

Tensor random_tensor(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  Tensor t(s);
  for (float& v : t) v = static_cast<float>(g.uniform(-1, 1));
  return t;
}

void BM_Im2col(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  const auto g = geometry(l);
  Tensor x = random_tensor({kBatch, l.in, l.hw, l.hw}, 1);
  std::vector<float> cols(static_cast<std::size_t>(kBatch * g.col_rows() * g.col_cols()));
  for (auto _ : state) {
    for (std::int64_t i = 0; i < kBatch; ++i)
      kernels::im2col(g, x.data() + i * l.in * l.hw * l.hw, cols.data() + i * g.col_rows() * g.col_cols());
    benchmark::DoNotOptimize(cols.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(cols.size() * sizeof(float)));
  state.SetLabel(l.name);
}

void BM_Col2im(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  const auto g = geometry(l);
  Tensor cols = random_tensor({kBatch, g.col_rows(), g.col_cols()}, 2);
  Tensor x({kBatch, l.in, l.hw, l.hw});
  for (auto _ : state) {
    x.zero();
    for (std::int64_t i = 0; i < kBatch; ++i)
      kernels::col2im(g, cols.data() + i * g.col_rows() * g.col_cols(), x.data() + i * l.in * l.hw * l.hw);
    benchmark::DoNotOptimize(x.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * cols.numel() *
                          static_cast<std::int64_t>(sizeof(float)));
  state.SetLabel(l.name);
}

// mode 0: forward; 1: backward (after one forward); 2: forward + backward.
void conv_bench(benchmark::State& state, int mode) {
  const Layer& l = kLayers[state.range(0)];
  manual_seed(0);
  nn::Conv2d conv(l.in, l.out, 3);
  Tensor x = random_tensor({kBatch, l.in, l.hw, l.hw}, 3), y, dx;
  conv.forward_into(x, y);
  Tensor dy = random_tensor(y.shape(), 4);
  Tensor* grad_in = l.input_grad ? &dx : nullptr;
  conv.backward_into(dy, grad_in);
  for (auto _ : state) {
    if (mode != 1) conv.forward_into(x, y);
    if (mode != 0) conv.backward_into(dy, grad_in);
    benchmark::DoNotOptimize(y.data());
  }
  const double f = forward_flops(l);
  const double flops = (mode != 1 ? f : 0.0) + (mode != 0 ? f * (l.input_grad ? 2.0 : 1.0) : 0.0);
  bench::set_rates(state, flops, kBatch);
  state.SetLabel(l.name);
}
void BM_Conv2d_Forward(benchmark::State& state) { conv_bench(state, 0); }
void BM_Conv2d_Backward(benchmark::State& state) { conv_bench(state, 1); }
void BM_Conv2d_ForwardBackward(benchmark::State& state) { conv_bench(state, 2); }

// Inference path (predict_into: eval, no kept columns) at the comparison's batch of 1000.
void BM_Conv2d_Predict(benchmark::State& state) {
  const Layer& l = kLayers[state.range(0)];
  manual_seed(0);
  nn::Conv2d conv(l.in, l.out, 3);
  const std::int64_t n = 1000;
  Tensor x = random_tensor({n, l.in, l.hw, l.hw}, 3), y;
  conv.predict_into(x, y);
  for (auto _ : state) {
    conv.predict_into(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  bench::set_rates(state, forward_flops(l) * static_cast<double>(n) / kBatch, n);
  state.SetLabel(l.name);
}

// Beyond the report: a dilated 3x3, a grouped 3x3 and a depthwise 3x3 (+ its pointwise 1x1 partner) on 32
// channels of 16x16 at batch 32, forward + backward with the input gradient. GFLOPS counts what the
// convolution needs (C_in/groups per output), so the grouped rows compare with the dense one.
struct Modern {
  const char* name;
  std::int64_t channels, kernel, dilation, groups;
};
constexpr Modern kModern[] = {{"dense3x3", 32, 3, 1, 1},
                              {"dilated3x3", 32, 3, 2, 1},
                              {"grouped3x3/4", 32, 3, 1, 4},
                              {"depthwise3x3", 32, 3, 1, 32},
                              {"pointwise1x1", 32, 1, 1, 1}};
void BM_Conv2d_Modern_ForwardBackward(benchmark::State& state) {
  const Modern& m = kModern[state.range(0)];
  const std::int64_t hw = 16, pad = m.dilation * (m.kernel - 1) / 2;
  manual_seed(0);
  nn::Conv2d conv(
      nn::Conv2dOptions(m.channels, m.channels, m.kernel).padding(pad).dilation(m.dilation).groups(m.groups));
  Tensor x = random_tensor({kBatch, m.channels, hw, hw}, 3), y, dx;
  conv.forward_into(x, y);
  Tensor dy = random_tensor(y.shape(), 4);
  conv.backward_into(dy, &dx);
  for (auto _ : state) {
    conv.forward_into(x, y);
    conv.backward_into(dy, &dx);
    benchmark::DoNotOptimize(dx.data());
  }
  const double f =
      2.0 * static_cast<double>(kBatch * m.channels * (m.channels / m.groups) * m.kernel * m.kernel * hw * hw);
  bench::set_rates(state, 3 * f, kBatch);
  state.SetLabel(m.name);
}

void layers(benchmark::internal::Benchmark* b) { b->ArgName("layer")->DenseRange(0, 2)->UseRealTime(); }
BENCHMARK(BM_Im2col)->Apply(layers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Col2im)->Apply(layers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2d_Forward)->Apply(layers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2d_Backward)->Apply(layers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2d_ForwardBackward)->Apply(layers)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Conv2d_Predict)->Apply(layers)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Conv2d_Modern_ForwardBackward)
    ->ArgName("case")
    ->DenseRange(0, 4)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

EMBER_BENCHMARK_MAIN();
