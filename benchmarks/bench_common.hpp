#pragma once
// Shared by the bench_* binaries: a main that fixes ember's thread count (EMBER_THREADS, default 2: the
// machine the targets were set on) and counters in the units docs/benchmarks.md uses.
#include <benchmark/benchmark.h>

#include <algorithm>

#include <cstdint>
#include <cstdlib>
#include <string>

#include <ember/core/parallel.hpp>

namespace ember::bench {

inline int bench_threads() {
  const char* env = std::getenv("EMBER_THREADS");
  return env ? std::max(1, std::atoi(env)) : 2;
}

// flops per iteration -> a GFLOP/s rate counter; items per iteration -> items/s.
inline void set_rates(benchmark::State& state, double flops_per_iter, std::int64_t items_per_iter) {
  state.counters["GFLOPS"] =
      benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (items_per_iter > 0) state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * items_per_iter);
}

}  // namespace ember::bench

#define EMBER_BENCHMARK_MAIN()                                              \
  int main(int argc, char** argv) {                                         \
    ember::set_num_threads(ember::bench::bench_threads());                  \
    benchmark::AddCustomContext("ember_threads", std::to_string(ember::get_num_threads())); \
    benchmark::Initialize(&argc, argv);                                     \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;       \
    benchmark::RunSpecifiedBenchmarks();                                    \
    benchmark::Shutdown();                                                  \
    return 0;                                                               \
  }
