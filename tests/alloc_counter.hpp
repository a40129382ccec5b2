#pragma once
// Watches every heap allocation of the test program that includes this (once, in one translation unit): how
// many (alloc_count(), so a test can assert that a code path allocates nothing) and the largest single one
// since reset_largest_allocation() ("no giant allocation" made checkable).
//
// The whole malloc family is interposed over glibc's __libc_* entry points: malloc, calloc, realloc, memalign,
// aligned_alloc, posix_memalign, valloc, pvalloc. operator new (plain and aligned) reaches these through
// libstdc++, Eigen's aligned_malloc through malloc or posix_memalign, zlib and stb through malloc, so one
// counter sees them all, once each, on every thread. (dlsym(RTLD_NEXT) is no way in: dlsym itself calls
// calloc.) Under a sanitizer, which owns the allocator, nothing is replaced, EMBER_ALLOC_COUNTING is 0 and the
// tests that need the counter are registered as skipped (see kAllocSkip).
#include <doctest/doctest.h>

#include <execinfo.h>
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EMBER_ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define EMBER_ALLOC_COUNTING 0
#endif
#endif
#ifndef EMBER_ALLOC_COUNTING
#define EMBER_ALLOC_COUNTING 1
#endif

// For TEST_CASE("..." * kAllocSkip): reported as skipped where allocations cannot be counted.
inline const auto kAllocSkip = doctest::skip(!EMBER_ALLOC_COUNTING);

// Constant-initialised, so they work before main and from inside the allocator itself.
inline std::atomic<long> g_alloc_count{0};
inline std::atomic<std::size_t> g_largest_allocation{0};

inline long alloc_count() { return g_alloc_count.load(); }
inline std::size_t largest_allocation() { return g_largest_allocation.load(); }
inline void reset_largest_allocation() { g_largest_allocation = 0; }

// Debugging aid: inside count_allocations(), EMBER_ALLOC_TRACE=1 prints each allocation's call stack to stderr
// (resolve the offsets with addr2line -e <test binary>).
inline std::atomic<bool> g_alloc_trace{false};
inline void trace_allocation(std::size_t n) noexcept {
  g_alloc_trace = false;  // backtrace() itself may allocate once
  void* frames[16];
  const int depth = backtrace(frames, 16);
  backtrace_symbols_fd(frames, depth, STDERR_FILENO);
  char line[64];
  const int len = snprintf(line, sizeof line, "-- %zu bytes\n", n);
  if (len > 0) (void)!write(STDERR_FILENO, line, static_cast<std::size_t>(len));
  g_alloc_trace = true;
}

inline void note_allocation(std::size_t n) noexcept {
  if (g_alloc_trace.load(std::memory_order_relaxed)) trace_allocation(n);
  g_alloc_count.fetch_add(1, std::memory_order_relaxed);
  std::size_t seen = g_largest_allocation.load(std::memory_order_relaxed);
  while (n > seen && !g_largest_allocation.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}

// Allocations made while f runs (on any thread).
template <typename F>
long count_allocations(F&& f) {
  const char* trace = std::getenv("EMBER_ALLOC_TRACE");
  const long before = alloc_count();
  g_alloc_trace = trace != nullptr && trace[0] == '1';
  f();
  g_alloc_trace = false;
  return alloc_count() - before;
}

#if EMBER_ALLOC_COUNTING
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);

void* malloc(std::size_t n) noexcept {
  note_allocation(n);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t size) noexcept {
  note_allocation(count * size);
  return __libc_calloc(count, size);
}
void* realloc(void* p, std::size_t n) noexcept {
  note_allocation(n);
  return __libc_realloc(p, n);
}
void* memalign(std::size_t alignment, std::size_t n) noexcept {
  note_allocation(n);
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) noexcept {
  note_allocation(n);
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  note_allocation(n);
  void* p = __libc_memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(std::size_t n) noexcept {
  note_allocation(n);
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n) noexcept {
  note_allocation(n);
  return __libc_pvalloc(n);
}
}
#endif
