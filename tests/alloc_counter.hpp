#pragma once
// Watches every allocation of the test program that includes this (once, in one translation unit): how many
// (alloc_count(), so a test can assert that a code path allocates nothing) and the largest single one since
// reset_largest_allocation() ("no giant allocation" made checkable). Both the plain and the aligned forms of
// operator new (tensors use the aligned one) are replaced, except under AddressSanitizer, which owns operator
// new (and refuses absurd sizes by itself): there EMBER_ALLOC_COUNTING is 0, nothing is replaced, and the
// counters stay 0.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#define EMBER_ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMBER_ALLOC_COUNTING 0
#endif
#endif
#ifndef EMBER_ALLOC_COUNTING
#define EMBER_ALLOC_COUNTING 1
#endif

inline std::atomic<long>& alloc_counter() {
  static std::atomic<long> count{0};
  return count;
}
inline long alloc_count() { return alloc_counter().load(); }

inline std::atomic<std::size_t>& largest_allocation_slot() {
  static std::atomic<std::size_t> largest{0};
  return largest;
}
inline std::size_t largest_allocation() { return largest_allocation_slot().load(); }
inline void reset_largest_allocation() { largest_allocation_slot() = 0; }

inline void note_allocation(std::size_t n) {
  alloc_counter().fetch_add(1, std::memory_order_relaxed);
  auto& largest = largest_allocation_slot();
  std::size_t seen = largest.load(std::memory_order_relaxed);
  while (n > seen && !largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}

#if EMBER_ALLOC_COUNTING
// GCC cannot see that these replacements pair malloc/aligned_alloc with free, and warns at inlined sites.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  note_allocation(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  note_allocation(n);
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#endif
