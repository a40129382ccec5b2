#pragma once
// Seedable randomness. One Generator reaches init, shuffling, dropout and augmentation, so a seed fixes a
// whole run. The conversions to floating point and integer ranges are written out here rather than taken from
// <random>'s distributions, whose output is implementation-defined: the same seed gives the same numbers with
// any standard library.
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>

namespace ember {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 5489u) : engine_(seed), seed_(seed) {}

  void manual_seed(std::uint64_t seed) {
    engine_.seed(seed);
    seed_ = seed;
    has_spare_normal_ = false;
  }
  std::uint64_t initial_seed() const { return seed_; }

  std::uint64_t next_u64() { return engine_(); }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  // Uniform integer in [0, n), without modulo bias (Lemire's rejection method).
  std::uint64_t randint(std::uint64_t n) {
    if (n == 0) return 0;
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
      const std::uint64_t r = next_u64();
      if (r >= threshold) return r % n;
    }
  }

  bool bernoulli(double p) { return uniform() < p; }

  // Standard normal (Box-Muller, keeping the second value).
  double normal() {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return spare_normal_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double two_pi = 6.283185307179586476925286766559;
    spare_normal_ = r * std::sin(two_pi * u2);
    has_spare_normal_ = true;
    return r * std::cos(two_pi * u2);
  }

  // Fisher-Yates over any random-access range.
  template <typename It>
  void shuffle(It first, It last) {
    const auto n = static_cast<std::uint64_t>(last - first);
    for (std::uint64_t i = n; i > 1; --i) {
      const std::uint64_t j = randint(i);
      using std::swap;
      swap(first[static_cast<std::ptrdiff_t>(i - 1)], first[static_cast<std::ptrdiff_t>(j)]);
    }
  }

 private:
  std::mt19937_64 engine_;
  std::uint64_t seed_;
  double spare_normal_ = 0.0;
  bool has_spare_normal_ = false;
};

// The generator used when none is passed explicitly (layer initialisation, loaders without a seed, ...).
inline Generator& default_generator() {
  static Generator generator;
  return generator;
}

// As torch.manual_seed: reseeds the default generator.
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace ember
