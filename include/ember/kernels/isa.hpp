#pragma once
// Which instruction set the hand-written kernels run on, chosen at run time.
//
// A program built with default flags (no -march) compiles Eigen and our loops for SSE2; the kernels in
// gemm_avx512.hpp and gemm_avx2.hpp carry per-function target attributes instead, so every build holds them and
// the CPU check below picks the widest one this CPU runs. No header is compiled with different -m flags in
// different translation units: each kernel function has one definition, with its own attribute.
//
//   EMBER_ISA=portable|avx2|avx512   forces a path (read once, at the first kernel call). A path the CPU does not
//                                    support falls back to the best it does, with one message on stderr.
//   set_isa(Isa)                     the same from code; throws std::invalid_argument for an unsupported path.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define EMBER_X86_KERNELS 1
#define EMBER_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define EMBER_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define EMBER_X86_KERNELS 0
#endif

namespace ember::kernels {

enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2 };

// f(std::integral_constant<int, R>{}) with R = rows clamped to [1, Max]: a run-time row count to a kernel's
// template argument (tile<R>, dots<R>), one helper instead of a switch per kernel and instruction set.
template <int Max, class F>
inline void with_rows(int rows, F&& f) {
  if constexpr (Max > 1) {
    if (rows < Max) return with_rows<Max - 1>(rows, std::forward<F>(f));
  }
  f(std::integral_constant<int, Max>{});
}

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "portable";
  }
}

// True when this CPU (and this compiler) can run the path.
inline bool isa_supported(Isa isa) {
  if (isa == Isa::portable) return true;
#if EMBER_X86_KERNELS
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == Isa::avx2) return avx2;
  return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

inline Isa best_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::portable;
}

// "portable", "avx2" or "avx512"; throws std::invalid_argument for anything else.
inline Isa parse_isa(const std::string& name) {
  if (name == "portable") return Isa::portable;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("ember: expected an instruction set 'portable', 'avx2' or 'avx512', got '" + name +
                              "'");
}

namespace detail {
inline Isa isa_from_environment() {
  const Isa best = best_isa();
  const char* env = std::getenv("EMBER_ISA");
  if (!env || !*env) return best;
  Isa want = best;
  try {
    want = parse_isa(env);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s (EMBER_ISA); using %s\n", e.what(), isa_name(best));
    return best;
  }
  if (!isa_supported(want)) {
    std::fprintf(stderr, "ember: EMBER_ISA=%s is not supported by this CPU; using %s\n", env, isa_name(best));
    return best;
  }
  return want;
}
inline std::atomic<int>& isa_slot() {
  static std::atomic<int> slot{static_cast<int>(isa_from_environment())};
  return slot;
}
}  // namespace detail

// The path the kernels take now.
inline Isa active_isa() { return static_cast<Isa>(detail::isa_slot().load(std::memory_order_relaxed)); }

// Forces a path (tests run each one the CPU supports); never one the CPU lacks.
inline void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("ember: set_isa expected an instruction set this CPU supports (best: ") +
                                isa_name(best_isa()) + "), got " + isa_name(isa));
  detail::isa_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace ember::kernels
