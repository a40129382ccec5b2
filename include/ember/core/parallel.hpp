#pragma once
// Thread control. ember runs its parallel work on its own pool (core/thread_pool.hpp: short spins, then sleep;
// shares of a loop taken by whichever thread is free), with or without OpenMP in the build. Eigen's own threading
// is never used: each thread runs its own single-threaded GEMM.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sched.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ember/core/thread_pool.hpp"

namespace ember {

namespace detail {
constexpr int kMaxThreads = 256;

// OMP_NUM_THREADS when set, else the CPUs this process may run on (its affinity mask: a container's or
// taskset's limit), as PyTorch.
inline int default_num_threads() {
  static const int n = [] {
    if (const char* s = std::getenv("OMP_NUM_THREADS")) {
      const int v = std::atoi(s);  // "4" or "4,2": the first level
      if (v > 0) return std::min(v, kMaxThreads);
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
      return std::min(CPU_COUNT(&set), kMaxThreads);
#endif
    return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, unsigned(kMaxThreads)));
  }();
  return n;
}
// The calling thread's set_num_threads (0: none yet).
inline int& thread_setting() {
  static thread_local int n = 0;
  return n;
}
}  // namespace detail

// Number of threads ember's kernels use (as torch.get_num_threads).
inline int get_num_threads() {
  const int n = detail::thread_setting();
  return n > 0 ? n : detail::default_num_threads();
}

// As torch.set_num_threads: n >= 1. The setting is the calling thread's (as OpenMP's), so serving threads may
// each keep to one thread; it is also passed to OpenMP for the program's own regions.
inline void set_num_threads(int n) {
  n = std::clamp(n, 1, detail::kMaxThreads);
  detail::thread_setting() = n;
#ifdef _OPENMP
  omp_set_num_threads(n);
#endif
}

// Inside a parallel region of more than one thread (ember's, or the program's own OpenMP one): work started
// here stays on the calling thread.
inline bool in_parallel_region() {
  if (detail::team_state().active) return true;
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// Index of the calling thread inside a region, or of the parallel_for share it runs (0 outside, and 0 in a
// one-thread region run on the caller's thread, as in a nested team of one); team_size() is the team's size
// (1 outside).
inline int thread_index() { return detail::team_state().index; }
inline int team_size() { return detail::team_state().size; }

// Waits until every thread of the enclosing parallel_region has reached it (no-op in a team of one). Not in a
// parallel_for body, whose shares may run one after another on one thread.
inline void barrier() {
  const detail::TeamState& s = detail::team_state();
  if (s.size <= 1) return;
  if (!s.team)
    throw std::logic_error("ember::barrier: called in a parallel_for body (only parallel_region has a team)");
  detail::ThreadPool::instance().barrier();
}

// Iterations [lo, hi) of share `share` when n iterations are split over `shares`, as OpenMP's schedule(static)
// without a chunk size: the first n % shares shares take one more.
inline std::pair<std::int64_t, std::int64_t> static_block(std::int64_t n, int shares, int share) {
  const std::int64_t q = n / shares, r = n % shares;
  const std::int64_t lo = q * share + std::min<std::int64_t>(share, r);
  return {lo, lo + q + (share < r ? 1 : 0)};
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
// otherwise (a bare #pragma omp would warn under -Wall without -fopenmp). ember itself no longer uses it (its
// threads are the pool's); it stays for programs that do.
#define EMBER_STRINGIFY_(x) #x
#ifdef _OPENMP
#define EMBER_OMP(directive) _Pragma(EMBER_STRINGIFY_(omp directive))
#else
#define EMBER_OMP(directive)
#endif

namespace ember {

// Runs body() on nt threads at once, the caller among them (thread_index() 0 .. nt-1, team_size() nt), which
// may meet at barrier(); directly on the caller's thread when nt <= 1, inside another region, or while the pool
// serves another thread's region (team_size() then says 1). The first exception a thread throws is rethrown
// here once all have finished; a body that uses barrier() must not throw past one (the others would wait).
template <class F>
void parallel_region(int nt, F&& body) {
  using Body = std::remove_reference_t<F>;
  if (nt > 1 && !in_parallel_region()) {
    const auto run = [](void* ctx, int) { (*static_cast<Body*>(ctx))(); };
    Body* b = std::addressof(body);
    if (detail::ThreadPool::instance().run(std::min(nt, detail::kMaxThreads), true, run,
                                           const_cast<void*>(static_cast<const void*>(b))))
      return;
  }
  const detail::TeamScope serial(0, 1, detail::team_state().active, false);
  body();
}

// body(i) for i in [0, n), split over nt shares as `omp parallel for schedule(static)` (static_block). A share
// runs on whichever pool thread takes it first, with thread_index() = the share's number, so per-thread buffers
// indexed by thread_index() see the same iterations whatever thread runs them. On the caller alone (one loop,
// thread_index() 0) when nt <= 1, inside another region, or while the pool serves another thread. Exceptions:
// the first is rethrown here after every share has finished.
template <class F>
void parallel_for(int nt, std::int64_t n, F&& body) {
  using Body = std::remove_reference_t<F>;
  const int shares = static_cast<int>(std::min<std::int64_t>({nt, n, detail::kMaxThreads}));
  if (shares > 1 && !in_parallel_region()) {
    struct Ctx {
      Body* body;
      std::int64_t n;
      int shares;
    } ctx{std::addressof(body), n, shares};
    const auto run = [](void* c, int share) {
      const Ctx& x = *static_cast<const Ctx*>(c);
      const auto [lo, hi] = static_block(x.n, x.shares, share);
      for (std::int64_t i = lo; i < hi; ++i) (*x.body)(i);
    };
    if (detail::ThreadPool::instance().run(shares, false, run, &ctx)) return;
  }
  const detail::TeamScope serial(0, 1, detail::team_state().active, false);
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
