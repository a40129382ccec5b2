#pragma once
// Thread control. ember parallelises with OpenMP when it is found; without it everything runs on one thread.
// Eigen's own threading is kept off inside our parallel regions (each thread runs its own single-threaded GEMM).
#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ember {

// Number of threads ember's kernels use (as torch.get_num_threads).
inline int get_num_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// As torch.set_num_threads: n >= 1.
inline void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(std::max(1, n));
#else
  (void)n;
#endif
}

inline bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

namespace detail {
// Depth of parallel_region / parallel_for bodies run on the caller's thread (see below).
inline int& serial_region_depth() {
  static thread_local int depth = 0;
  return depth;
}
struct SerialRegion {
  SerialRegion() { ++serial_region_depth(); }
  ~SerialRegion() { --serial_region_depth(); }
  SerialRegion(const SerialRegion&) = delete;
  SerialRegion& operator=(const SerialRegion&) = delete;
};
}  // namespace detail

// Index of the calling thread inside a parallel region (0 outside, and 0 in a one-thread region that
// parallel_region / parallel_for ran on the caller's thread, as in a nested team of one).
inline int thread_index() {
#ifdef _OPENMP
  if (detail::serial_region_depth() > 0) return 0;
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Threads to use for `work` units of roughly `cost` flops each: below the threshold the fork/join costs more
// than it saves, so small layers stay on one thread.
inline int threads_for(std::int64_t work_items, double flops_per_item, double min_flops_per_thread = 2.0e6) {
  const int max_threads = in_parallel_region() ? 1 : get_num_threads();
  if (max_threads <= 1 || work_items <= 1) return 1;
  const double total = static_cast<double>(work_items) * flops_per_item;
  const int by_work = static_cast<int>(total / min_flops_per_thread);
  return static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>({max_threads, by_work, work_items})));
}

// Threads for memory-bound work (ReLU, pooling, dropout, batch norm): `work_items` items of `elements_per_item`
// values each. Such a pass costs about a nanosecond per value, so a fork/join (a few microseconds) pays off from
// a few tens of thousands of values per thread, far below threads_for's flop threshold. Serial passes here
// left the second core spinning for a fifth of a CNN training step.
inline int threads_for_elements(std::int64_t work_items, std::int64_t elements_per_item) {
  constexpr double kMinElementsPerThread = 32768;
  return threads_for(work_items, static_cast<double>(elements_per_item), kMinElementsPerThread);
}

}  // namespace ember

// `EMBER_OMP(parallel for num_threads(n))` expands to the OpenMP pragma when OpenMP is on and to nothing
// otherwise (a bare #pragma omp would warn under -Wall without -fopenmp).
#define EMBER_STRINGIFY_(x) #x
#ifdef _OPENMP
#define EMBER_OMP(directive) _Pragma(EMBER_STRINGIFY_(omp directive))
#else
#define EMBER_OMP(directive)
#endif

namespace ember {

// Runs body() on nt threads (an OpenMP parallel region), or directly on the caller's thread when nt <= 1.
// Entering a region costs an allocation in libgomp whenever the team size changes (a team of one included),
// so one-thread work never enters one: a warmed-up training step allocates nothing. Inside body(), orphaned
// EMBER_OMP(for) / critical / barrier work in both cases (outside a region they run on the one thread), and
// thread_index() is 0 on the one thread, also when the caller is itself a thread of an outer region.
template <class F>
void parallel_region(int nt, F&& body) {
  if (nt <= 1) {
    const detail::SerialRegion serial;
    body();
    return;
  }
  EMBER_OMP(parallel num_threads(nt))
  body();
}

// body(i) for i in [0, n), split statically over nt threads as `omp parallel for schedule(static)`; no
// parallel region when nt <= 1.
template <class F>
void parallel_for(int nt, std::int64_t n, F&& body) {
  if (nt <= 1) {
    const detail::SerialRegion serial;
    for (std::int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  EMBER_OMP(parallel for num_threads(nt) schedule(static))
  for (std::int64_t i = 0; i < n; ++i) body(i);
}

// f(lo, hi) over [0, n) in chunks of kElementChunk values (whole cache lines), over threads when the pass is
// large: threads_for_elements for a memory-bound pass, or threads_for when each value costs
// `flops_per_value` (erf, exp). Every value is computed the same way whatever the split, so results do not
// depend on the thread count.
constexpr std::int64_t kElementChunk = 16384;
template <class F>
void parallel_chunks(std::int64_t n, F&& f, double flops_per_value = 0) {
  const std::int64_t chunks = (n + kElementChunk - 1) / kElementChunk;
  const int nt = flops_per_value > 0 ? threads_for(chunks, flops_per_value * kElementChunk)
                                     : threads_for_elements(chunks, kElementChunk);
  parallel_for(nt, chunks, [&](std::int64_t c) { f(c * kElementChunk, std::min(n, (c + 1) * kElementChunk)); });
}

}  // namespace ember
