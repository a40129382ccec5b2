#pragma once
// ember's thread pool, behind core/parallel.hpp. OpenMP's runtime (libgomp) lets idle threads spin for a long
// while between regions and makes the caller wait for every thread of the team: on a virtual machine or a busy
// one, where a thread may wait milliseconds for a CPU, a training step then cost up to thirty times its
// single-threaded time. This pool instead
//   - spins only a few microseconds (the gap between two regions of a training step) before sleeping on a
//     futex, so waiting threads leave the CPU to whoever needs it;
//   - sleeps at once while other programs compete for the CPUs (watch_load());
//   - hands out a parallel_for's shares (its static blocks) to whichever thread comes first: the caller takes
//     a share no worker has started 2 ms after it finished its own, so a worker descheduled for long slows a
//     region down to about one thread's speed, not to the scheduler's time slice. A share runs with
//     thread_index() = its number, whatever thread runs it, so per-thread buffers and results are those of a
//     fixed split.
// A region with barriers (parallel_region) needs every member running at once and is a real team instead.
// Workers start on first use, one per thread asked for beyond the caller's, and live until the process ends:
// the pool is never destroyed, so exit() and static destruction never wait for a worker. After fork() the
// child starts a new, empty pool (pthread_atfork).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <linux/futex.h>
#include <cerrno>
#include <ctime>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#include <condition_variable>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <strings.h>
#endif
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace ember::detail {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Sleeps while `word` holds `old` (spurious returns allowed); wake_all wakes every sleeper on `word`.
#if defined(__linux__)
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t old) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, old, nullptr, nullptr, 0);
}
// As futex_wait, for at most `timeout`: false when it timed out.
inline bool futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t old, std::chrono::nanoseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000000000), static_cast<long>(timeout.count() % 1000000000)};
  const long r = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, old, &ts, nullptr, 0);
  return !(r == -1 && errno == ETIMEDOUT);
}
inline void futex_wake_all(std::atomic<std::uint32_t>& word) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr, 0);
}
#else
struct Parking {
  std::mutex m;
  std::condition_variable cv;
};
inline Parking& parking() {
  static Parking* p = new Parking;  // never destroyed: sleepers may outlive static destruction
  return *p;
}
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t old) {
  std::unique_lock<std::mutex> lock(parking().m);
  parking().cv.wait(lock, [&] { return word.load() != old; });
}
inline bool futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t old, std::chrono::nanoseconds timeout) {
  std::unique_lock<std::mutex> lock(parking().m);
  return parking().cv.wait_for(lock, timeout, [&] { return word.load() != old; });
}
inline void futex_wake_all(std::atomic<std::uint32_t>&) {
  { std::lock_guard<std::mutex> lock(parking().m); }
  parking().cv.notify_all();
}
#endif

// How long a waiting thread spins before it sleeps: OMP_WAIT_POLICY=passive sleeps at once, =active spins
// for a millisecond; EMBER_SPIN_US sets it in microseconds. The default, 20 us, covers most gaps between the
// regions of a training step, so the next region usually starts without a wake-up (10-50 us on a virtual
// machine); longer spins measured slower on a busy machine, where the spinning thread delays the one it waits
// for (docs/benchmarks.md, "Thread stability").
struct SpinSetting {
  std::chrono::nanoseconds time;
  bool chosen;  // by the environment: kept as it is, not adapted
};
inline const SpinSetting& spin_setting() {
  static const SpinSetting t = [] {
    long us = 20;
    bool chosen = false;
    if (const char* p = std::getenv("OMP_WAIT_POLICY")) {
      if (!strcasecmp(p, "passive")) us = 0, chosen = true;
      if (!strcasecmp(p, "active")) us = 1000, chosen = true;
    }
    if (const char* s = std::getenv("EMBER_SPIN_US")) us = std::max(0L, std::atol(s)), chosen = true;
    return SpinSetting{std::chrono::nanoseconds(us * 1000), chosen};
  }();
  return t;
}
// Set while the machine is busy (ThreadPool::watch_load): then waiting threads sleep at once.
inline std::atomic<bool>& machine_busy() {
  static std::atomic<bool> busy{false};
  return busy;
}

// Spins for the spin time until done() holds; false if it still does not.
template <class Done>
bool spin_until(Done&& done) {
  if (done()) return true;
  const auto limit = machine_busy().load(std::memory_order_relaxed) ? std::chrono::nanoseconds(0) : spin_setting().time;
  if (limit.count() == 0) return false;
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      cpu_relax();
      if (done()) return true;
    }
    if (std::chrono::steady_clock::now() - start > limit) return done();
  }
}

// The calling thread's place: its index and team size inside a region (0 and 1 outside), and whether it is
// inside a parallel region at all (then nested regions run on it alone).
struct TeamState {
  int index = 0;
  int size = 1;
  bool active = false;
  bool team = false;  // in a parallel_region of several threads, where barrier() works
};
inline TeamState& team_state() {
  static thread_local TeamState state;
  return state;
}
class TeamScope {
 public:
  TeamScope(int index, int size, bool active, bool team) : saved_(team_state()) {
    team_state() = {index, size, active, team};
  }
  ~TeamScope() { team_state() = saved_; }
  TeamScope(const TeamScope&) = delete;
  TeamScope& operator=(const TeamScope&) = delete;

 private:
  TeamState saved_;
};

class ThreadPool {
 public:
  using ShareFn = void (*)(void* ctx, int share);
  static constexpr std::chrono::nanoseconds kStealAfter = std::chrono::milliseconds(2);

  // The process's pool (a new one in a child after fork: the parent's workers do not exist there).
  static ThreadPool& instance() {
    static std::atomic<ThreadPool*> pool{new ThreadPool};  // never deleted (see the top of the file)
#if defined(__unix__) || defined(__APPLE__)
    static const bool registered = pthread_atfork(nullptr, nullptr, [] { forked().store(true); }) == 0;
    (void)registered;
#endif
    if (forked().load(std::memory_order_relaxed) && forked().exchange(false))
      pool.store(new ThreadPool, std::memory_order_release);  // the parent's workers do not exist here
    return *pool.load(std::memory_order_acquire);
  }

  // Runs fn(ctx, s) for every share s in [0, shares) over the pool and the caller, and returns when all are
  // done, rethrowing the first exception a share threw. team: every share runs on its own thread at once
  // (the caller runs share 0), as barrier() needs; otherwise a thread may run several shares in turn. Returns
  // false, running nothing, when the pool is busy with another thread's region: run serially then.
  bool run(int shares, bool team, ShareFn fn, void* ctx) {
    std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
    if (!lock.owns_lock()) return false;
    fn_ = fn;
    ctx_ = ctx;
    error_ = nullptr;
    team_ = static_cast<std::uint32_t>(shares);
    is_team_ = team;
    if (++regions_ % 32 == 0) watch_load();
    start_workers(shares - 1);
    done_.store(0, std::memory_order_relaxed);
    const std::uint32_t g = gen_.load(std::memory_order_relaxed) + 1;
    claim_.store(pack(g, shares, team ? 1 : 0), std::memory_order_release);
    gen_.store(g, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(gen_);
    int s = 0;
    if (team) {
      run_share(0);
    } else if (claim(g, s)) {
      run_share(s);
    }
    // The caller waits for the others; a share still unclaimed after kStealAfter (its worker has not been
    // scheduled since: descheduled by the hypervisor or the machine's other work) it runs itself. Sooner would
    // cost more than it saves on a busy machine, where the late worker still brings a CPU share of its own.
    const auto all = static_cast<std::uint32_t>(shares);
    const auto finished = [&] { return done_.load(std::memory_order_acquire) == all; };
    if (!spin_until(finished)) {
      caller_sleeps_.store(true, std::memory_order_seq_cst);
      for (std::uint32_t v; (v = done_.load(std::memory_order_seq_cst)) != all;) {
        if (!futex_wait_for(done_, v, kStealAfter) && !team) {
          caller_sleeps_.store(false, std::memory_order_relaxed);
          while (claim(g, s)) run_share(s);
          caller_sleeps_.store(true, std::memory_order_seq_cst);
        }
      }
      caller_sleeps_.store(false, std::memory_order_relaxed);
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return true;
  }

  // Waits until every member of the current team has called it.
  void barrier() {
    const std::uint32_t g = barrier_gen_.load(std::memory_order_acquire);
    if (barrier_count_.fetch_add(1, std::memory_order_acq_rel) + 1 == team_) {
      barrier_count_.store(0, std::memory_order_relaxed);
      barrier_gen_.store(g + 1, std::memory_order_seq_cst);
      if (barrier_sleepers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(barrier_gen_);
      return;
    }
    wait_for_change(barrier_gen_, g, barrier_sleepers_);
  }

  int workers() const { return static_cast<int>(workers_.size()); }

 private:
  // Whether other programs compete for the CPUs: the caller was preempted (an involuntary context switch)
  // within the last 32 regions. Then waiting threads sleep at once for the next 512 regions: a spinning
  // thread only delays the descheduled one it waits for, and a thread that slept is scheduled sooner when
  // woken. On a quiet machine they spin, and the next region starts without a wake-up.
  void watch_load() {
#if defined(__linux__)
    if (spin_setting().chosen) return;
    rusage u{};
    if (getrusage(RUSAGE_THREAD, &u) != 0) return;
    if (u.ru_nivcsw != preempted_) busy_until_ = regions_ + 512;
    preempted_ = u.ru_nivcsw;
    machine_busy().store(regions_ < busy_until_, std::memory_order_relaxed);
#endif
  }

  ThreadPool() = default;
  static std::atomic<bool>& forked() {
    static std::atomic<bool> flag{false};
    return flag;
  }

  // The claim word: generation (32 bits), shares (16), next unclaimed share (16), so that a worker that read
  // an old generation can never claim a share of a newer job.
  static std::uint64_t pack(std::uint32_t g, int shares, int next) {
    return (std::uint64_t(g) << 32) | (std::uint64_t(shares) << 16) | std::uint64_t(next);
  }
  bool claim(std::uint32_t g, int& share) {
    std::uint64_t w = claim_.load(std::memory_order_acquire);
    for (;;) {
      const int next = static_cast<int>(w & 0xffff), shares = static_cast<int>((w >> 16) & 0xffff);
      if (static_cast<std::uint32_t>(w >> 32) != g || next >= shares) return false;
      if (claim_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        share = next;
        return true;
      }
    }
  }

  void run_here(int s) {
    const TeamScope scope(s, static_cast<int>(team_), true, is_team_);
    try {
      fn_(ctx_, s);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void run_share(int s) {
    run_here(s);
    done_.fetch_add(1, std::memory_order_seq_cst);
    if (caller_sleeps_.load(std::memory_order_seq_cst)) futex_wake_all(done_);
  }

  static void wait_for_change(std::atomic<std::uint32_t>& word, std::uint32_t old, std::atomic<int>& sleepers) {
    if (spin_until([&] { return word.load(std::memory_order_acquire) != old; })) return;
    sleepers.fetch_add(1, std::memory_order_seq_cst);
    while (word.load(std::memory_order_seq_cst) == old) futex_wait(word, old);
    sleepers.fetch_sub(1, std::memory_order_relaxed);
  }

  void start_workers(int wanted) {
    while (static_cast<int>(workers_.size()) < wanted) {
      const std::uint32_t seen = gen_.load(std::memory_order_relaxed);
      workers_.emplace_back([this, seen] { work(seen); });
      workers_.back().detach();
    }
  }

  void work(std::uint32_t seen) {
    for (;;) {
      wait_for_change(gen_, seen, sleepers_);
      seen = gen_.load(std::memory_order_acquire);
      int s = 0;
      while (claim(seen, s)) {
        const bool team = is_team_;  // read before run_share's end lets the caller publish the next job
        run_share(s);
        if (team) break;  // one member per thread
      }
    }
  }

  std::mutex busy_;  // held by the thread whose region the pool runs
  std::vector<std::thread> workers_;
  std::atomic<std::uint64_t> claim_{0};
  std::atomic<std::uint32_t> gen_{0};  // a new job: workers sleep on it
  std::atomic<int> sleepers_{0};
  std::atomic<std::uint32_t> done_{0};  // shares finished: the caller sleeps on it
  std::atomic<bool> caller_sleeps_{false};
  std::atomic<std::uint32_t> barrier_count_{0}, barrier_gen_{0};
  std::atomic<int> barrier_sleepers_{0};
  // The job, written by the caller before it publishes claim_ and read by a worker after it claimed a share.
  ShareFn fn_ = nullptr;
  void* ctx_ = nullptr;
  std::uint32_t team_ = 1;
  bool is_team_ = false;
  std::mutex error_mutex_;
  std::exception_ptr error_;
  // watch_load()'s count and verdict, the caller's alone (under busy_).
  std::uint64_t regions_ = 0, busy_until_ = 0;
  long preempted_ = 0;
};

}  // namespace ember::detail
