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

TEST_CASE("per-plane BatchNorm statistics and backward match the references") {
  const std::int64_t n = 5, c = 3, hw = 37;
  auto x = random_values(static_cast<std::size_t>(n * c * hw), 4);
  for (float& v : x) v = 3.0f + 2.0f * v;  // an offset mean, where one-pass formulas would lose digits
  auto dy = random_values(x.size(), 5);
  for (std::int64_t ch = 0; ch < c; ++ch) {
    double m1, v1, m2, v2;
    kernels::batchnorm_stats(x.data(), n, c, hw, ch, m1, v1);
    kernels::batchnorm_stats_fast(x.data(), n, c, hw, ch, m2, v2);
    CHECK(m2 == doctest::Approx(m1).epsilon(1e-6));
    CHECK(v2 == doctest::Approx(v1).epsilon(1e-5));
    const double invstd = 1.0 / std::sqrt(v1 + 1e-5);
    std::vector<float> dx1(x.size()), dx2(x.size());
    double g1, b1, g2, b2;
    kernels::batchnorm_backward_train(x.data(), dy.data(), dx1.data(), n, c, hw, ch, m1, invstd, 1.3, g1, b1);
    kernels::batchnorm_backward_train_fast(x.data(), dy.data(), dx2.data(), n, c, hw, ch, m1, invstd, 1.3, g2, b2);
    CHECK(g2 == doctest::Approx(g1).epsilon(1e-5));
    CHECK(b2 == doctest::Approx(b1).epsilon(1e-5));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < hw; ++j) {
        const auto at = static_cast<std::size_t>((i * c + ch) * hw + j);
        CHECK(dx2[at] == doctest::Approx(dx1[at]).epsilon(1e-4).scale(1e-3));
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
    kernels::maxpool2d_forward(g, x.data(), o1.data(), a1.data());
    kernels::maxpool2d_forward_fast(g, x.data(), o2.data(), a2.data());
    CHECK(a1 == a2);
    for (std::size_t i = 0; i < outs; ++i) CHECK((o1[i] == o2[i] || (std::isnan(o1[i]) && std::isnan(o2[i]))));
  }
}
