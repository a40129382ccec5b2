// Quantized inference (issue 31): the machine's int8 and bf16 peaks (loops of independent vpdpbusd and
// vdpbf16ps, as bench_gemm's BM_Peak_FMA is for float FMA), and the report's CNN through graph::Plan in float,
// bf16 and int8 at batch 1000 (images/s) and batch 1 (latency), the three alternated in one process.
// A multiply-add counts as 2 ops: vpdpbusd does 64 per instruction (16 lanes x 4), vdpbf16ps 32, an FMA 16.
#include <cstdint>
#include <vector>

#include <ember/ember.hpp>
#include <ember/graph/quantize.hpp>
#include <ember/kernels/gemm_bf16.hpp>
#include <ember/kernels/gemm_int8.hpp>
#if EMBER_X86_KERNELS
#include <immintrin.h>
#endif

#include "bench_common.hpp"
#include "report_models.hpp"

namespace {

using namespace ember;

constexpr int kChains = 12;

#if EMBER_X86_KERNELS
EMBER_TARGET_VNNI std::int64_t vnni_loop(std::int64_t iters) {
  __m512i acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_epi32(c);
  const __m512i a = _mm512_set1_epi32(0x01020304), b = _mm512_set1_epi32(0x01ff01ff);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
  __m512i s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_epi32(s, acc[c]);
  return _mm512_reduce_add_epi32(s);
}
EMBER_TARGET_BF16 double bf16_loop(std::int64_t iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x33d633d6);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  return _mm512_reduce_add_ps(s);
}
#endif

// Arg: threads. The aggregate peak of `loop` (ops_per_iter per iteration of a thread), as BM_Peak_FMA: one
// parallel region, a barrier, each thread the whole loop.
template <class Loop>
void run_peak(benchmark::State& state, double ops_per_iter, Loop loop) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t iters = 1 << 20;
  for (auto _ : state) {
    double sink[64] = {};
    parallel_region(threads, [&] {
      ember::barrier();
      sink[thread_index() % 64] = static_cast<double>(loop(iters));
    });
    benchmark::DoNotOptimize(sink);
  }
  bench::set_rates(state, ops_per_iter * static_cast<double>(iters) * threads, 0);
}

void BM_Peak_VNNI(benchmark::State& state) {
#if EMBER_X86_KERNELS
  if (!kernels::cpu_has_vnni()) return state.SkipWithError("no AVX512-VNNI on this CPU");
  run_peak(state, 2.0 * 64 * kChains, vnni_loop);
#else
  state.SkipWithError("x86 only");
#endif
}
BENCHMARK(BM_Peak_VNNI)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_Peak_BF16(benchmark::State& state) {
#if EMBER_X86_KERNELS
  if (!kernels::cpu_has_bf16()) return state.SkipWithError("no AVX512-BF16 on this CPU");
  run_peak(state, 2.0 * 32 * kChains, bf16_loop);
#else
  state.SkipWithError("x86 only");
#endif
}
BENCHMARK(BM_Peak_BF16)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

Tensor images(std::int64_t n, std::uint64_t seed) {
  Generator g(seed);
  Tensor t({n, 1, 28, 28});
  for (auto& v : t) v = static_cast<float>(g.uniform(0, 1));
  return t;
}

// The report's CNN, eval mode, optimised; and its int8 graph calibrated on 256 images.
struct Cnn {
  graph::Graph float_graph, int8_graph;
  Cnn() {
    manual_seed(0);
    auto m = bench::report_cnn(24, false);
    m.train();
    m.forward(images(64, 1));
    m.eval();
    float_graph = graph::optimize(graph::trace(m, {1, 1, 28, 28}));
    int8_graph = graph::quantize_int8(float_graph, {images(256, 2)});
  }
};
const Cnn& cnn() {
  static const Cnn c;
  return c;
}

// Args: precision (0 float, 1 bf16, 2 int8), batch.
void BM_Plan_CNN(benchmark::State& state) {
  const int precision = static_cast<int>(state.range(0));
  const std::int64_t batch = state.range(1);
  const graph::Graph& g = precision == 2 ? cnn().int8_graph : cnn().float_graph;
  graph::PlanOptions options;
  options.precision = precision == 0 ? graph::Precision::Float32
                      : precision == 1 ? graph::Precision::BFloat16
                                       : graph::Precision::Int8;
  const graph::Plan plan(g, {batch, 1, 28, 28}, options);
  const Tensor x = images(batch, 3);
  Tensor y;
  plan.run(x, y);
  for (auto _ : state) {
    plan.run(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * batch);
  state.SetLabel(precision == 0 ? "float" : precision == 1 ? "bf16" : "int8");
}
// Alternated: float, bf16, int8 at one batch, then the next batch; repeat with --benchmark_repetitions.
BENCHMARK(BM_Plan_CNN)
    ->ArgNames({"precision", "batch"})
    ->Args({0, 1000})
    ->Args({1, 1000})
    ->Args({2, 1000})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Args({2, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

EMBER_BENCHMARK_MAIN();
