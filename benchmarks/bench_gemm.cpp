// GEMM at the report's shapes (Eigen's expression API, and kernels::gemm with workspaces: ember's own kernels
// for float), and the machine's FP32 peak: a loop of independent fused multiply-adds in the widest vectors the
// CPU runs, on 1 and on 2 threads at once.
// docs/benchmarks.md reads every roofline ratio against BM_Peak_FMA with the thread count of the workload.
#include <cstdint>
#include <vector>

#include <ember/core/random.hpp>
#include <ember/kernels/gemm.hpp>
#include <ember/kernels/isa.hpp>
#if EMBER_X86_KERNELS
#include <immintrin.h>
#endif

#include "bench_common.hpp"

namespace {

using namespace ember;

// Enough independent accumulators to cover the FMA latency times the number of FMA pipes (4 cycles x 2 pipes
// on current x86), so the loop is throughput-bound.
constexpr int kChains = 12;

// The widest FMA the CPU runs, whatever this build's -m flags (target attributes, as the kernels): the peak
// is the machine's, the same in a default and a -march=native build.
#if EMBER_X86_KERNELS
EMBER_TARGET_AVX512 double fma_loop_avx512(std::int64_t iters) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(0.001f * static_cast<float>(c));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-6f);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
  alignas(64) float out[16];
  __m512 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm512_add_ps(s, acc[c]);
  _mm512_store_ps(out, s);
  double sum = 0;
  for (float v : out) sum += v;
  return sum;
}
EMBER_TARGET_AVX2 double fma_loop_avx2(std::int64_t iters) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(0.001f * static_cast<float>(c));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-6f);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
  alignas(32) float out[8];
  __m256 s = acc[0];
  for (int c = 1; c < kChains; ++c) s = _mm256_add_ps(s, acc[c]);
  _mm256_store_ps(out, s);
  double sum = 0;
  for (float v : out) sum += v;
  return sum;
}
#endif
// No AVX: the compiler's own vectorisation of a scalar multiply-add; not the machine peak.
double fma_loop_portable(std::int64_t iters) {
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = 0.001f * static_cast<float>(c);
  for (std::int64_t i = 0; i < iters; ++i)
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * 0.9999f + 1e-6f;
  double sum = 0;
  for (float v : acc) sum += v;
  return sum;
}

// Lanes of the loop fma_loop runs (16, 8, or 1).
int fma_lanes() {
  if (kernels::isa_supported(kernels::Isa::avx512)) return 16;
  if (kernels::isa_supported(kernels::Isa::avx2)) return 8;
  return 1;
}
double fma_loop(std::int64_t iters) {
#if EMBER_X86_KERNELS
  if (kernels::isa_supported(kernels::Isa::avx512)) return fma_loop_avx512(iters);
  if (kernels::isa_supported(kernels::Isa::avx2)) return fma_loop_avx2(iters);
#endif
  return fma_loop_portable(iters);
}

// Arg: threads. One parallel region; each thread runs the whole loop on its own (a barrier first, so the
// loops start together and really overlap), and the flops of all threads count: the aggregate peak. The
// real time of 2 threads should equal that of 1 on an idle machine; when it is twice as long, the threads
// took turns on one core.
void BM_Peak_FMA(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const std::int64_t iters = 1 << 20;
  const int lanes = fma_lanes();
  for (auto _ : state) {
    double sink[64] = {};
    parallel_region(threads, [&] {
      ember::barrier();
      sink[thread_index() % 64] = fma_loop(iters);
    });
    benchmark::DoNotOptimize(sink);
  }
  bench::set_rates(state, 2.0 * lanes * kChains * static_cast<double>(iters) * threads, 0);
  state.counters["lanes"] = lanes;
}
BENCHMARK(BM_Peak_FMA)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// One GEMM benchmark case from the args of gemm_args (m, n, k, trans_a, trans_b, threads): random operands, and
// the thread count set for the run and restored after it.
struct GemmCase {
  std::int64_t m, n, k;
  bool ta, tb;
  int threads, saved_threads;
  std::vector<float> a, b, c;

  explicit GemmCase(const benchmark::State& state)
      : m(state.range(0)), n(state.range(1)), k(state.range(2)), ta(state.range(3) != 0), tb(state.range(4) != 0),
        threads(static_cast<int>(state.range(5))), saved_threads(get_num_threads()),
        a(static_cast<std::size_t>(m * k)), b(static_cast<std::size_t>(k * n)), c(static_cast<std::size_t>(m * n)) {
    Generator g(1);
    for (float& v : a) v = static_cast<float>(g.uniform(-1, 1));
    for (float& v : b) v = static_cast<float>(g.uniform(-1, 1));
    set_num_threads(threads);
  }
  GemmCase(const GemmCase&) = delete;
  GemmCase& operator=(const GemmCase&) = delete;
  ~GemmCase() { set_num_threads(saved_threads); }
  double flops() const { return 2.0 * static_cast<double>(m * n * k); }
};

// C[m x n] = op(A) op(B): args m, n, k, trans_a, trans_b, threads (1: inside one thread; >1: Eigen's own
// OpenMP parallelism, as outside our parallel regions).
void BM_Gemm(benchmark::State& state) {
  GemmCase g(state);
  for (auto _ : state) {
    kernels::gemm(g.ta, g.tb, g.m, g.n, g.k, 1.0f, g.a.data(), g.b.data(), 0.0f, g.c.data());
    benchmark::DoNotOptimize(g.c.data());
  }
  bench::set_rates(state, g.flops(), 0);
}
// The report's shapes. MLP batch 32: fc1 forward x[32x784] W^T, its weight gradient dy^T x, fc2 forward.
// MLP batch 4: fc1 forward. conv2 per image: W[50x675] cols[675x121]; conv2 over the batch of 32 as one GEMM
// (cols [675 x 32*121]) and its weight gradient dy[50 x 3872] cols^T; conv1 per image [75x9][9x676].
// 512^3 is the reference size quoted for Eigen.
void gemm_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "ta", "tb", "thr"});
  for (int t : {1, 2}) {
    b->Args({32, 512, 784, 0, 1, t});
    b->Args({512, 784, 32, 1, 0, t});
    b->Args({32, 512, 512, 0, 1, t});
    b->Args({4, 512, 784, 0, 1, t});
    b->Args({50, 121, 675, 0, 0, t});
    b->Args({50, 3872, 675, 0, 0, t});
    b->Args({50, 675, 3872, 0, 1, t});
    b->Args({675, 3872, 50, 1, 0, t});
    b->Args({75, 676, 9, 0, 0, t});
    b->Args({512, 512, 512, 0, 0, t});
  }
}
BENCHMARK(BM_Gemm)->Apply(gemm_args)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The path the layers use: kernels::gemm with per-thread packing workspaces kept across calls (no allocation)
// and our own split over threads (Eigen single-threaded inside). Same args as BM_Gemm.
void BM_GemmWorkspace(benchmark::State& state) {
  GemmCase g(state);
  std::vector<kernels::GemmWorkspace<float>> ws(static_cast<std::size_t>(g.threads));
  for (auto _ : state) {
    kernels::gemm(ws, g.ta, g.tb, g.m, g.n, g.k, 1.0f, g.a.data(), g.ta ? g.m : g.k, g.b.data(), g.tb ? g.k : g.n,
                  0.0f, g.c.data(), g.n);
    benchmark::DoNotOptimize(g.c.data());
  }
  bench::set_rates(state, g.flops(), 0);
}
BENCHMARK(BM_GemmWorkspace)->Apply(gemm_args)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The reference triple loop at one small shape, to show what the fast path buys.
void BM_GemmRef(benchmark::State& state) {
  const std::int64_t m = 50, n = 121, k = 675;
  std::vector<float> a(static_cast<std::size_t>(m * k), 0.5f), b(static_cast<std::size_t>(k * n), 0.25f),
      c(static_cast<std::size_t>(m * n));
  for (auto _ : state) {
    kernels::gemm_ref(false, false, m, n, k, 1.0f, a.data(), b.data(), 0.0f, c.data());
    benchmark::DoNotOptimize(c.data());
  }
  bench::set_rates(state, 2.0 * static_cast<double>(m * n * k), 0);
}
BENCHMARK(BM_GemmRef)->Unit(benchmark::kMicrosecond);

}  // namespace

EMBER_BENCHMARK_MAIN();
