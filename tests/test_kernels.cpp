// The fast kernels against the naive references kept beside them: GEMM with a kept workspace and split over
// threads, per-plane BatchNorm, branch-free 2x2 max pooling (NaN rules included); and bit-identical repeats.
#include <doctest/doctest.h>

#include <cmath>
#include <ember/core/random.hpp>
#include <ember/kernels/batchnorm.hpp>
#include <ember/kernels/gemm.hpp>
#include <ember/kernels/pool.hpp>
#include <limits>
#include <vector>

using namespace ember;

namespace {
std::vector<float> random_values(std::size_t n, std::uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(g.uniform(-1, 1));
  return v;
}
}  // namespace

TEST_CASE("gemm with a workspace, split over threads, matches the triple loop for every transpose") {
  const int saved = get_num_threads();
  set_num_threads(2);
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (std::int64_t m : {1, 7, 50, 130})
        for (std::int64_t n : {1, 40, 121})
          for (std::int64_t k : {1, 9, 675}) {
            auto a = random_values(static_cast<std::size_t>(m * k), 1);
            auto b = random_values(static_cast<std::size_t>(k * n), 2);
            auto c = random_values(static_cast<std::size_t>(m * n), 3), ref = c;
            std::vector<kernels::GemmWorkspace<float>> ws(2);
            kernels::gemm_parallel(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n,
                                   1.0f, c.data(), n);
            kernels::gemm_naive(ta != 0, tb != 0, m, n, k, 0.5f, a.data(), b.data(), 1.0f, ref.data());
            double worst = 0;
            for (std::size_t i = 0; i < c.size(); ++i) worst = std::max(worst, double(std::fabs(c[i] - ref[i])));
            CHECK(worst < 1e-5 * static_cast<double>(k));
            // Same inputs, same thread count: the same bits.
            auto again = random_values(static_cast<std::size_t>(m * n), 3);
            kernels::gemm_parallel(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n,
                                   1.0f, again.data(), n);
            CHECK(again == c);
          }
  set_num_threads(saved);
}

TEST_CASE("BatchNorm statistics and backward match the references, also when the mean dwarfs the spread") {
  struct Case {
    std::int64_t n, c, hw;
  };
  // Offset 3: the report's data; offset 1000 with spread 1: float values there carry an ulp of 6e-5, and a
  // kernel that sums or combines them uncentred keeps only ~4 digits of results of size 1.
  for (const double offset : {3.0, 1000.0})
    for (const Case& s : {Case{5, 3, 37}, Case{3, 2, 1}, Case{2, 1, 169}, Case{7, 4, 26 * 26}}) {
      CAPTURE(offset);
      CAPTURE(s.hw);
      const auto size = static_cast<std::size_t>(s.n * s.c * s.hw);
      auto x = random_values(size, 4);
      for (float& v : x) v = static_cast<float>(offset + 2.0 * v);
      const auto dy = random_values(size, 5);
      for (std::int64_t ch = 0; ch < s.c; ++ch) {
        double m1, v1, m2, v2;
        kernels::batchnorm_stats_ref(m1, v1, x.data(), s.n, s.c, s.hw, ch);
        kernels::batchnorm_stats(m2, v2, x.data(), s.n, s.c, s.hw, ch);
        CHECK(std::fabs(m2 - m1) <= 1e-6 * std::sqrt(v1) + 1e-12);
        CHECK(v2 == doctest::Approx(v1).epsilon(1e-5));
        const double invstd = 1.0 / std::sqrt(v1 + 1e-5);
        std::vector<float> dx1(size), dx2(size);
        double g1, b1, g2, b2;
        kernels::batchnorm_backward_ref(dx1.data(), g1, b1, x.data(), dy.data(), s.n, s.c, s.hw, ch, m1, invstd, 1.3);
        kernels::batchnorm_backward(dx2.data(), g2, b2, x.data(), dy.data(), s.n, s.c, s.hw, ch, m1, invstd, 1.3);
        // Sums of ~count terms of size ~1 that may cancel: float partial sums err by ~1e-7 per term.
        const double count = static_cast<double>(s.n * s.hw);
        CHECK(std::fabs(g2 - g1) <= 1e-6 * count);
        CHECK(std::fabs(b2 - b1) <= 1e-6 * count);
        // Errors relative to the channel's largest |dx|: entries near zero have no relative precision to keep.
        double scale = 0, worst = 0;
        for (std::int64_t i = 0; i < s.n; ++i)
          for (std::int64_t j = 0; j < s.hw; ++j) {
            const auto at = static_cast<std::size_t>((i * s.c + ch) * s.hw + j);
            scale = std::max(scale, std::fabs(double(dx1[at])));
            worst = std::max(worst, std::fabs(double(dx2[at]) - double(dx1[at])));
          }
        CHECK(worst <= 2e-6 * scale + 1e-12);
      }
    }
}

TEST_CASE("branch-free 2x2 max pooling matches the general kernel, ties and NaN included") {
  for (std::int64_t stride : {1, 2}) {
    const std::int64_t h = 7, w = 9;
    auto x = random_values(static_cast<std::size_t>(h * w), 6);
    x[3] = x[4];                                          // a tie: the first in scan order wins
    x[static_cast<std::size_t>(2 * w + 5)] = std::numeric_limits<float>::quiet_NaN();
    const kernels::Pool2dGeometry g{h, w, 2, 2, stride, stride, 0, 0};
    const auto outs = static_cast<std::size_t>(g.out_h() * g.out_w());
    std::vector<float> o1(outs), o2(outs);
    std::vector<std::int32_t> a1(outs), a2(outs);
    kernels::maxpool2d_forward_ref(g, x.data(), o1.data(), a1.data());
    kernels::maxpool2d_forward(g, x.data(), o2.data(), a2.data());
    CHECK(a1 == a2);
    for (std::size_t i = 0; i < outs; ++i) CHECK((o1[i] == o2[i] || (std::isnan(o1[i]) && std::isnan(o2[i]))));
  }
}
