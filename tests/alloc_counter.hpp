#pragma once
// Counts every allocation of the test program that includes this (once, in one translation unit), so a test
// can assert that a code path allocates nothing: read alloc_count() before and after.
#include <atomic>
#include <cstdlib>
#include <new>

// GCC cannot see that these replacements pair malloc/aligned_alloc with free, and warns at inlined sites.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

inline std::atomic<long>& alloc_counter() {
  static std::atomic<long> count{0};
  return count;
}
inline long alloc_count() { return alloc_counter().load(); }

void* operator new(std::size_t n) {
  ++alloc_counter();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  ++alloc_counter();
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
