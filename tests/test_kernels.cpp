// Every fast kernel against the plain reference beside it (<op> / <op>_ref): GEMM with a kept workspace and
// split over threads (and with op(A) packed once: the bits of packing it per call), Linear and Conv2d forward
// and backward (random and odd shapes, several thread counts), per-plane BatchNorm (also with a mean far
// larger than the spread), branch-free 2x2 max pooling (NaN rules included); and bit-identical repeats.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <ember/core/random.hpp>
#include <ember/kernels/batchnorm.hpp>
#include <ember/kernels/conv2d.hpp>
#include <ember/kernels/epilogue.hpp>
#include <ember/kernels/gemm.hpp>
#include <ember/kernels/gemm_bf16.hpp>
#include <ember/kernels/gemm_int8.hpp>
#include <ember/kernels/im2row.hpp>
#include <ember/kernels/quantize.hpp>
#include <ember/kernels/isa.hpp>
#include <ember/kernels/linear.hpp>
#include <ember/kernels/pool.hpp>
#include <ember/kernels/relu.hpp>
#include <ember/kernels/window_copy.hpp>
#include <limits>
#include <stdexcept>
#include <vector>

using namespace ember;

namespace {
std::vector<float> random_values(std::size_t n, std::uint64_t seed) {
  Generator g(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(g.uniform(-1, 1));
  return v;
}

// Largest |a - b| over two buffers of the same length.
double worst_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - double(b[i])));
  return worst;
}

// Restores the thread count a test changes.
struct ThreadsGuard {
  int saved = get_num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};
}  // namespace

TEST_CASE("gemm with a workspace, split over threads (by the larger side or by rows), matches the triple loop for every transpose") {
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
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n,
                          1.0f, c.data(), n);
            kernels::gemm_ref(ta != 0, tb != 0, m, n, k, 0.5f, a.data(), b.data(), 1.0f, ref.data());
            double worst = 0;
            for (std::size_t i = 0; i < c.size(); ++i)
              worst = std::max(worst, double(std::fabs(c[i] - ref[i])));
            CHECK(worst < 1e-5 * static_cast<double>(k));
            // Same inputs, same thread count: the same bits.
            auto again = random_values(static_cast<std::size_t>(m * n), 3);
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n,
                          1.0f, again.data(), n);
            CHECK(again == c);
            // Split by rows whatever the shape (a weight gradient): still the same bits.
            auto by_rows = random_values(static_cast<std::size_t>(m * n), 3);
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n,
                          1.0f, by_rows.data(), n, /*split_rows=*/true);
            CHECK(by_rows == c);
          }
  set_num_threads(saved);
}

// Each instruction set this CPU runs, forced in turn; restores the path the process started with.
template <class F>
void for_each_isa(F&& body) {
  const kernels::Isa saved = kernels::active_isa();
  for (kernels::Isa isa : {kernels::Isa::portable, kernels::Isa::avx2, kernels::Isa::avx512}) {
    if (!kernels::isa_supported(isa)) continue;
    kernels::set_isa(isa);
    CAPTURE(kernels::isa_name(isa));
    body();
  }
  kernels::set_isa(saved);
}

TEST_CASE("gemm on every instruction set the CPU runs matches the triple loop, and repeats bit for bit") {
  ThreadsGuard guard;
  // Shapes across every edge of the blocking: one-row and dot-product paths (m <= 8 or n <= 16), rows cut into tiles,
  // more rows than one block (240), k over one slice (256), partial panels, and n over one packed slice (2048).
  struct Shape {
    std::int64_t m, n, k;
  };
  const Shape shapes[] = {{1, 1, 1},  {3, 37, 5},  {4, 512, 33}, {8, 17, 300}, {13, 33, 17}, {50, 121, 75},
                          {75, 9, 9}, {251, 5, 3}, {2, 2100, 3}, {30, 70, 513},
                          // cuts over two threads whose last block would be a dot-product shape on its own
                          {75, 9, 676}, {40, 20, 2000}, {20, 48, 2000}, {9, 200, 1000}};
  for_each_isa([&] {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (const Shape& s : shapes) {
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(s.m);
          CAPTURE(s.n);
          CAPTURE(s.k);
          auto a = random_values(static_cast<std::size_t>(s.m * s.k), 4);
          auto b = random_values(static_cast<std::size_t>(s.k * s.n), 5);
          auto c = random_values(static_cast<std::size_t>(s.m * s.n), 6), ref = c, two = c;
          std::vector<kernels::GemmWorkspace<float>> ws(2);
          set_num_threads(1);
          kernels::gemm(ws, ta != 0, tb != 0, s.m, s.n, s.k, 0.5f, a.data(), ta ? s.m : s.k, b.data(),
                        tb ? s.k : s.n, 1.0f, c.data(), s.n);
          kernels::gemm_ref(ta != 0, tb != 0, s.m, s.n, s.k, 0.5f, a.data(), b.data(), 1.0f, ref.data());
          CHECK(worst_diff(c, ref) < 1e-5 * static_cast<double>(s.k + 1));
          // Cut over two threads (when the product is large enough to be cut): the same bits.
          set_num_threads(2);
          kernels::gemm(ws, ta != 0, tb != 0, s.m, s.n, s.k, 0.5f, a.data(), ta ? s.m : s.k, b.data(),
                        tb ? s.k : s.n, 1.0f, two.data(), s.n);
          CHECK(two == c);
        }
  });
}

TEST_CASE("the packing's transposing copy of every instruction set moves every element, and nothing else") {
  // Blocks of 16 and 8 columns, tails of every width, rows under 8, and strides wider than the block.
  for_each_isa([&] {
    const auto transpose = kernels::detail::gemm_kernel(kernels::active_isa()).transpose;
    for (std::int64_t rows : {1, 7, 8, 13, 32})
      for (std::int64_t cols : {1, 8, 15, 16, 17, 121, 256}) {
        CAPTURE(rows);
        CAPTURE(cols);
        const std::int64_t ss = cols + 3, ds = rows + 5;
        const auto src = random_values(static_cast<std::size_t>(rows * ss), 12);
        std::vector<float> dst(static_cast<std::size_t>(cols * ds), -7.0f), want = dst;
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j)
            want[static_cast<std::size_t>(j * ds + i)] = src[static_cast<std::size_t>(i * ss + j)];
        transpose(src.data(), ss, rows, cols, dst.data(), ds);
        CHECK(dst == want);  // the padding between rows of dst untouched
      }
  });
}

TEST_CASE("gemm_packed with op(A) packed once gives the bits of the plain path, and refuses a wrong shape") {
  // m: tiles of 10 (50), uneven tiles (13, 75), one row, more than one mc block (250); k: one slice, more than
  // one kc slice (300, 675); n: partial panels and more than one panel per row.
  const std::int64_t ms[] = {50, 75, 12, 13, 1, 250}, ks[] = {9, 675, 300}, ns[] = {121, 676, 33};
  const auto a = random_values(250 * 675, 7), b = random_values(675 * 676, 8), c0 = random_values(250 * 676, 9);
  kernels::GemmPackBuffers ws;
  kernels::GemmPackedA packed;
  for_each_isa([&] {
    for (int ta = 0; ta < 2; ++ta)
      for (std::int64_t m : ms)
        for (std::int64_t k : ks) {
          const std::int64_t lda = ta ? m : k;
          kernels::gemm_pack_a(packed, ta != 0, m, k, a.data(), lda);
          for (int tb = 0; tb < 2; ++tb)
            for (std::int64_t n : ns) {
              CAPTURE(ta);
              CAPTURE(tb);
              CAPTURE(m);
              CAPTURE(k);
              CAPTURE(n);
              const std::int64_t ldb = tb ? k : n;
              std::vector<float> plain(c0.begin(), c0.begin() + m * n), once = plain;
              kernels::gemm_packed(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), lda, b.data(), ldb,
                                   plain.data(), n);
              kernels::gemm_packed(ws, packed, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), lda, b.data(), ldb,
                                   once.data(), n);
              CHECK(std::memcmp(plain.data(), once.data(), plain.size() * sizeof(float)) == 0);
            }
        }
  });
  // Through gemm(ws, ...), beta included, and after the path changed (packed for one, run on another).
  const std::int64_t m = 50, n = 121, k = 675;
  kernels::GemmWorkspace<float> gws;
  for_each_isa([&] {
    kernels::gemm_pack_a(packed, false, m, k, a.data(), k);
    for_each_isa([&] {
      std::vector<float> plain(c0.begin(), c0.begin() + m * n), once = plain;
      kernels::gemm(gws, false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.5f, plain.data(), n);
      kernels::gemm(gws, false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.5f, once.data(), n, &packed);
      CHECK(std::memcmp(plain.data(), once.data(), plain.size() * sizeof(float)) == 0);
    });
  });
  // Another shape, transpose, matrix or row stride than the one packed: an error, not a wrong product.
  kernels::gemm_pack_a(packed, false, m, k, a.data(), k);
  std::vector<float> c(c0.begin(), c0.begin() + m * n);
  const auto run = [&](bool ta, std::int64_t rows, std::int64_t depth, const float* pa, std::int64_t lda) {
    kernels::gemm_packed(ws, packed, ta, false, rows, n, depth, 1.0f, pa, lda, b.data(), n, c.data(), n);
  };
  CHECK_NOTHROW(run(false, m, k, a.data(), k));
  CHECK_THROWS_AS(run(false, m - 1, k, a.data(), k), std::logic_error);
  CHECK_THROWS_AS(run(false, m, k - 1, a.data(), k), std::logic_error);
  CHECK_THROWS_AS(run(true, m, k, a.data(), m), std::logic_error);
  CHECK_THROWS_AS(run(false, m, k, a.data() + 1, k), std::logic_error);
  CHECK_THROWS_AS(run(false, m, k, a.data(), k + 1), std::logic_error);
  CHECK_THROWS_AS(kernels::gemm_packed(ws, kernels::GemmPackedA{}, false, false, m, n, k, 1.0f, a.data(), k,
                                       b.data(), n, c.data(), n),
                  std::logic_error);
}

TEST_CASE("gemm with beta 0 writes C without reading it (NaN there is ignored), the bits of zeroing C first, or of a row bias") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for_each_isa([&] {
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb)
        for (std::int64_t m : {3, 50, 300})      // 3 with B^T: the dot-product path
          for (std::int64_t k : {9, 300}) {      // 300: two 256-deep slices, only the first may overwrite
            const std::int64_t n = 45;
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(m);
            CAPTURE(k);
            const auto a = random_values(static_cast<std::size_t>(m * k), 7);
            const auto b = random_values(static_cast<std::size_t>(k * n), 8);
            std::vector<float> c(static_cast<std::size_t>(m * n), nan), zeroed(c.size(), 0.0f), ref(c.size());
            kernels::GemmWorkspace<float> ws;
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.0f,
                          c.data(), n);
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 1.0f,
                          zeroed.data(), n);
            kernels::gemm_ref(ta != 0, tb != 0, m, n, k, 0.5f, a.data(), b.data(), 0.0f, ref.data());
            CHECK(c == zeroed);  // no NaN left, and the same sums
            CHECK(worst_diff(c, ref) < 1e-5 * static_cast<double>(k));
            // A bias per row (a convolution's), written by the first slice: the bits of filling C with it
            // and adding the product.
            const auto bias = random_values(static_cast<std::size_t>(m), 9);
            std::vector<float> biased(c.size(), nan), filled(c.size());
            for (std::int64_t i = 0; i < m; ++i)
              std::fill(filled.begin() + i * n, filled.begin() + (i + 1) * n, bias[static_cast<std::size_t>(i)]);
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.0f,
                          biased.data(), n, nullptr, bias.data());
            kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(), tb ? k : n, 1.0f,
                          filled.data(), n);
            CHECK(biased == filled);
            CHECK_THROWS_AS(kernels::gemm(ws, ta != 0, tb != 0, m, n, k, 0.5f, a.data(), ta ? m : k, b.data(),
                                          tb ? k : n, 1.0f, biased.data(), n, nullptr, bias.data()),
                            std::invalid_argument);  // a bias with beta 1 would be dropped
          }
  });
}

TEST_CASE("a GEMM epilogue (ReLU, then an affine map per row) gives the stored product mapped, on every instruction set") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for_each_isa([&] {
    const bool fused_multiply_add = kernels::active_isa() != kernels::Isa::portable;
    for (int tb = 0; tb < 2; ++tb)
      for (std::int64_t m : {3, 50, 300})  // 3 with B^T: the dot-product path, mapped after
        for (std::int64_t k : {9, 300})    // 300: two slices, only the last maps
          for (int kind = 0; kind < 3; ++kind) {  // ReLU alone, the affine map alone, both
            const std::int64_t n = 45;
            CAPTURE(tb);
            CAPTURE(m);
            CAPTURE(k);
            CAPTURE(kind);
            auto a = random_values(static_cast<std::size_t>(m * k), 11);
            a[0] = nan;  // row 0 of C is NaN, which ReLU passes through
            const auto b = random_values(static_cast<std::size_t>(k * n), 12);
            const auto bias = random_values(static_cast<std::size_t>(m), 13);
            const auto center = random_values(static_cast<std::size_t>(m), 14);
            const auto scale = random_values(static_cast<std::size_t>(m), 15);
            const auto shift = random_values(static_cast<std::size_t>(m), 16);
            kernels::RowEpilogue<float> epi;
            epi.relu = kind != 1;
            if (kind != 0) {
              epi.center = center.data();
              epi.scale = scale.data();
              epi.shift = shift.data();
            }
            kernels::GemmWorkspace<float> ws;
            std::vector<float> plain(static_cast<std::size_t>(m * n)), mapped(plain.size(), nan);
            kernels::gemm(ws, false, tb != 0, m, n, k, 0.5f, a.data(), k, b.data(), tb ? k : n, 0.0f, plain.data(),
                          n, nullptr, bias.data());
            kernels::gemm(ws, false, tb != 0, m, n, k, 0.5f, a.data(), k, b.data(), tb ? k : n, 0.0f,
                          mapped.data(), n, nullptr, bias.data(), &epi);
            std::int64_t zeros = 0, wrong = 0;
            for (std::int64_t i = 0; i < m; ++i)
              for (std::int64_t j = 0; j < n; ++j) {
                float v = plain[static_cast<std::size_t>(i * n + j)];
                if (epi.relu) v = v <= 0.0f ? 0.0f : v;
                zeros += v == 0.0f;
                const auto r = static_cast<std::size_t>(i);
                // AVX-512 and AVX2 map with one FMA; the portable kernel and the dot-product path write the
                // expression, which the build may contract: one rounding apart at most.
                float want = v, other = v;
                if (epi.scale) {
                  want = std::fma(v - center[r], scale[r], shift[r]);
                  other = (v - center[r]) * scale[r] + shift[r];
                }
                const float got = mapped[static_cast<std::size_t>(i * n + j)];
                const bool exact_path = fused_multiply_add && !(tb && m <= 8);
                if (std::isnan(want)) {
                  wrong += !std::isnan(got);
                } else if (exact_path) {
                  wrong += got != want;
                } else {
                  wrong += got != want && got != other;
                }
              }
            CHECK(wrong == 0);
            if (epi.relu) CHECK(zeros > 0);  // the map did something
          }
  });
}

TEST_CASE("ReLU with a byte mask matches its reference on every instruction set, NaN and signed zero included") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (std::int64_t n : {0, 1, 7, 8, 15, 16, 17, 33, 100}) {
    auto x = random_values(static_cast<std::size_t>(n), 7), g = random_values(static_cast<std::size_t>(n), 8);
    const float special[] = {nan, 0.0f, -0.0f, inf, -inf};
    for (std::size_t i = 0; i < x.size(); i += 3) x[i] = special[(i / 3) % 5];
    for (std::size_t i = 1; i < g.size(); i += 4) g[i] = nan;
    std::vector<float> y_ref(x.size()), d_ref(x.size());
    std::vector<std::uint8_t> m_ref(x.size());
    kernels::relu_mask_forward_ref(x.data(), y_ref.data(), m_ref.data(), n);
    kernels::relu_mask_backward_ref(g.data(), m_ref.data(), d_ref.data(), n);
    for_each_isa([&] {
      CAPTURE(n);
      std::vector<float> y(x.size()), d(x.size());
      std::vector<std::uint8_t> m(x.size(), 7);
      kernels::relu_mask_forward(x.data(), y.data(), m.data(), n);
      kernels::relu_mask_backward(g.data(), m.data(), d.data(), n);
      CHECK(m == m_ref);
      for (std::size_t i = 0; i < x.size(); ++i) {
        CHECK(std::memcmp(&y[i], &y_ref[i], sizeof(float)) == 0);  // the same bits: NaN kept, -0 as the reference
        CHECK(std::memcmp(&d[i], &d_ref[i], sizeof(float)) == 0);
      }
    });
  }
}

TEST_CASE("the instruction set is chosen among those the CPU runs, and a bad one is a clear error") {
  CHECK(kernels::isa_supported(kernels::Isa::portable));
  CHECK(kernels::isa_supported(kernels::active_isa()));
  CHECK(kernels::parse_isa("avx2") == kernels::Isa::avx2);
  CHECK_THROWS_WITH_AS(kernels::parse_isa("sse9"),
                       "ember: expected an instruction set 'portable', 'avx2' or 'avx512', got 'sse9'",
                       std::invalid_argument);
  for (kernels::Isa isa : {kernels::Isa::avx2, kernels::Isa::avx512})
    if (!kernels::isa_supported(isa)) CHECK_THROWS_AS(kernels::set_isa(isa), std::invalid_argument);
}

TEST_CASE("linear_forward and linear_backward match the references for odd shapes and any thread count") {
  ThreadsGuard guard;
  struct Case {
    std::int64_t rows, in, out;
    bool bias, input_grad;
  };
  std::vector<Case> cases = {{1, 1, 1, true, true},    {3, 7, 5, true, true},     {4, 784, 512, true, false},
                             {37, 13, 9, false, true}, {130, 65, 33, true, true}, {9, 3, 200, false, false},
                             {32, 512, 10, true, true}};
  Generator shapes(11);
  for (int i = 0; i < 6; ++i)  // random sizes, mostly odd
    cases.push_back({1 + static_cast<std::int64_t>(shapes.randint(150)),
                     1 + static_cast<std::int64_t>(shapes.randint(150)),
                     1 + static_cast<std::int64_t>(shapes.randint(150)), shapes.randint(2) == 0,
                     shapes.randint(2) == 0});
  for (const Case& s : cases) {
    CAPTURE(s.rows);
    CAPTURE(s.in);
    CAPTURE(s.out);
    const auto x = random_values(static_cast<std::size_t>(s.rows * s.in), 21);
    const auto w = random_values(static_cast<std::size_t>(s.out * s.in), 22);
    const auto b = random_values(static_cast<std::size_t>(s.out), 23);
    const auto dy = random_values(static_cast<std::size_t>(s.rows * s.out), 24);
    const auto dw0 = random_values(w.size(), 25), db0 = random_values(b.size(), 26);  // gradients accumulate
    std::vector<float> y_ref(dy.size()), dx_ref(x.size()), dw_ref = dw0, db_ref = db0;
    const float* bias = s.bias ? b.data() : nullptr;
    kernels::linear_forward_ref(y_ref.data(), x.data(), w.data(), bias, s.rows, s.in, s.out);
    kernels::linear_backward_ref(s.input_grad ? dx_ref.data() : nullptr, dw_ref.data(),
                                 s.bias ? db_ref.data() : nullptr, dy.data(), x.data(), w.data(), s.rows,
                                 s.in, s.out);
    std::vector<float> y1, dx1, dw1, db1;  // the first thread count's results
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      set_num_threads(threads);
      kernels::LinearWorkspace<float> ws;
      for (int repeat = 0; repeat < 2; ++repeat) {  // the second pass reuses the warmed-up workspace
        std::vector<float> y(dy.size()), dx(x.size()), dw = dw0, db = db0;
        kernels::linear_forward(y.data(), x.data(), w.data(), bias, s.rows, s.in, s.out, ws);
        kernels::linear_backward(s.input_grad ? dx.data() : nullptr, dw.data(), s.bias ? db.data() : nullptr,
                                 dy.data(), x.data(), w.data(), s.rows, s.in, s.out, ws);
        CHECK(worst_diff(y, y_ref) <= 2e-6 * double(s.in + 1));
        CHECK(worst_diff(dw, dw_ref) <= 2e-6 * double(s.rows + 1));
        CHECK(worst_diff(db, db_ref) <= 2e-6 * double(s.rows + 1));
        CHECK(worst_diff(dx, dx_ref) <= 2e-6 * double(s.out));
        if (!s.bias) CHECK(db == db0);
        if (y1.empty()) {
          y1 = y, dx1 = dx, dw1 = dw, db1 = db;
        } else {  // every output element is summed in one fixed order, whatever the thread count
          CHECK(y == y1);
          CHECK(dx == dx1);
          CHECK(dw == dw1);
          CHECK(db == db1);
        }
      }
    }
  }
}

TEST_CASE(
    "conv2d_forward and conv2d_backward match the references for odd shapes and several thread counts") {
  ThreadsGuard guard;
  struct Case {
    std::int64_t n, c, h, w, o, kh, kw, s, p;
    bool bias, input_grad;
    std::int64_t dh = 1, dw = 1, groups = 1;
  };
  const Case cases[] = {
      {1, 1, 5, 5, 1, 3, 3, 1, 0, true, true},     {3, 2, 9, 8, 3, 3, 2, 2, 1, true, true},
      {4, 3, 7, 7, 5, 5, 5, 1, 2, false, true},    {2, 4, 6, 6, 3, 1, 1, 1, 0, true, false},
      {5, 2, 7, 10, 3, 2, 4, 3, 1, true, true},    {7, 8, 12, 11, 16, 3, 3, 1, 1, true, true},
      {6, 75, 13, 13, 50, 3, 3, 1, 0, true, true}, {3, 1, 28, 28, 75, 3, 3, 1, 0, false, false},
      // dilation (the dense path at stride 1 / padding 0, the general one otherwise), groups, depthwise
      {3, 2, 11, 10, 3, 3, 3, 1, 0, true, true, 2, 3},  {4, 3, 12, 9, 2, 3, 2, 2, 2, false, true, 3, 2},
      {5, 6, 9, 8, 4, 3, 3, 1, 1, true, true, 1, 1, 2}, {3, 6, 10, 11, 9, 3, 2, 2, 1, true, true, 2, 1, 3},
      {6, 8, 9, 9, 8, 3, 3, 1, 1, true, true, 1, 1, 8}, {4, 4, 12, 10, 12, 3, 3, 1, 2, false, true, 2, 2, 4},
      {2, 5, 7, 7, 5, 1, 1, 1, 0, true, false, 1, 1, 5},  {3, 4, 9, 11, 8, 3, 3, 2, 3, true, true, 2, 3, 4},
      {2, 3, 8, 6, 3, 2, 3, 1, 0, false, true, 1, 2, 3},
      // a grouped weight gradient of 9 columns (the dot-product path, per group)
      {3, 2, 9, 9, 24, 3, 3, 1, 1, true, true, 1, 1, 2}};
  for (const Case& s : cases) {
    CAPTURE(s.c);
    CAPTURE(s.o);
    CAPTURE(s.dh);
    CAPTURE(s.groups);
    const kernels::Conv2dGeometry g{s.c, s.h, s.w, s.kh, s.kw, s.s, s.s, s.p, s.p, s.dh, s.dw, s.groups};
    const std::int64_t p = g.col_cols();
    const auto x = random_values(static_cast<std::size_t>(s.n * s.c * s.h * s.w), 31);
    const auto w = random_values(static_cast<std::size_t>(s.o * g.group_col_rows()), 32);
    const auto b = random_values(static_cast<std::size_t>(s.o), 33);
    const auto dy = random_values(static_cast<std::size_t>(s.n * s.o * p), 34);
    const auto dw0 = random_values(w.size(), 35), db0 = random_values(b.size(), 36);
    const float* bias = s.bias ? b.data() : nullptr;
    std::vector<float> y_ref(dy.size()), dx_ref(x.size()), dw_ref = dw0, db_ref = db0;
    kernels::conv2d_forward_ref(y_ref.data(), x.data(), w.data(), bias, g, s.n, s.o);
    kernels::conv2d_backward_ref(s.input_grad ? dx_ref.data() : nullptr, dw_ref.data(),
                                 s.bias ? db_ref.data() : nullptr, dy.data(), x.data(), w.data(), g, s.n,
                                 s.o);
    for (int threads : {1, 2, 3}) {
      CAPTURE(threads);
      set_num_threads(threads);
      kernels::Conv2dWorkspace<float> ws;
      std::vector<float> y1, dx1, dw1, db1;
      for (int repeat = 0; repeat < 2; ++repeat) {
        std::vector<float> y(dy.size()), dx(x.size()), dw = dw0, db = db0,
                                                       cols(static_cast<std::size_t>(s.n * kernels::conv2d_cache_per_image(g)));
        kernels::conv2d_forward(y.data(), cols.data(), x.data(), w.data(), bias, g, s.n, s.o, ws);
        kernels::conv2d_backward(s.input_grad ? dx.data() : nullptr, dw.data(), s.bias ? db.data() : nullptr,
                                 dy.data(), cols.data(), w.data(), g, s.n, s.o, ws);
        CHECK(worst_diff(y, y_ref) <= 2e-6 * double(g.group_col_rows() + 1));
        CHECK(worst_diff(dw, dw_ref) <= 2e-6 * double(s.n * p + 1));
        CHECK(worst_diff(db, db_ref) <= 2e-6 * double(s.n * p + 1));
        CHECK(worst_diff(dx, dx_ref) <= 2e-6 * double(s.o / s.groups * s.kh * s.kw));
        // Without kept columns (inference) the forward is the same.
        std::vector<float> y_infer(dy.size());
        kernels::conv2d_forward(y_infer.data(), static_cast<float*>(nullptr), x.data(), w.data(), bias, g,
                                s.n, s.o, ws);
        CHECK(y_infer == y);
        if (repeat == 0) {
          y1 = y, dx1 = dx, dw1 = dw, db1 = db;
        } else {  // same thread count, same bits
          CHECK(y == y1);
          CHECK(dx == dx1);
          CHECK(dw == dw1);
          CHECK(db == db1);
        }
      }
    }
  }
}

TEST_CASE("window copies of im2col and col2im match their references on every instruction set, edges untouched") {
  for (std::int64_t cols : {1, 3, 8, 11, 16, 17, 26, 33}) {
    for (std::int64_t rows : {1, 3, 11}) {
      const std::int64_t stride = cols + 5, plane = rows * stride + 8;
      const auto src_plane = random_values(static_cast<std::size_t>(plane), 51);
      const auto block = random_values(static_cast<std::size_t>(rows * cols + 8), 52);
      std::vector<float> copy_ref(block.size(), -3.0f), add_ref = src_plane;
      kernels::copy_window_ref(copy_ref.data(), src_plane.data() + 1, rows, cols, stride);
      kernels::add_window_ref(add_ref.data() + 1, stride, block.data(), rows, cols);
      for_each_isa([&] {
        CAPTURE(cols);
        CAPTURE(rows);
        std::vector<float> copy(block.size(), -3.0f), added = src_plane;
        kernels::copy_window(copy.data(), src_plane.data() + 1, rows, cols, stride);
        kernels::add_window(added.data() + 1, stride, block.data(), rows, cols);
        CHECK(copy == copy_ref);    // the guard values past the block stay -3
        CHECK(added == add_ref);    // one add per element, so the same bits; gaps between rows untouched
      });
    }
  }
}

TEST_CASE("im2col and col2im of the report's layers match their references on every instruction set") {
  for (const kernels::Conv2dGeometry& g : {kernels::Conv2dGeometry{1, 28, 28, 3, 3, 1, 1, 0, 0},
                                           kernels::Conv2dGeometry{75, 13, 13, 3, 3, 1, 1, 0, 0},
                                           kernels::Conv2dGeometry{50, 5, 5, 3, 3, 1, 1, 0, 0}}) {
    const auto img = random_values(static_cast<std::size_t>(g.channels * g.height * g.width), 53);
    const auto cols_in = random_values(static_cast<std::size_t>(g.col_rows() * g.col_cols()), 54);
    std::vector<float> cols_ref(cols_in.size()), back_ref(img.size(), 0.0f);
    kernels::im2col_ref(g, img.data(), cols_ref.data());
    kernels::col2im_ref(g, cols_in.data(), back_ref.data());
    for_each_isa([&] {
      CAPTURE(g.channels);
      std::vector<float> cols(cols_in.size(), -1.0f), back(img.size(), 0.0f);
      kernels::im2col(g, img.data(), cols.data());
      kernels::col2im(g, cols_in.data(), back.data());
      CHECK(cols == cols_ref);
      CHECK(back == back_ref);  // rows added in the reference's (c, i, j) order: the same sums
      std::vector<float> fresh(img.size(), std::numeric_limits<float>::quiet_NaN());
      kernels::col2im(g, cols_in.data(), fresh.data(), /*accumulate=*/false);  // writes, never reads img
      CHECK(fresh == back_ref);
    });
  }
}

TEST_CASE("im2col and col2im match their references, dilation included") {
  struct Case {
    std::int64_t c, h, w, kh, kw, sh, sw, ph, pw, dh, dw;
  };
  for (const Case& s : {Case{2, 7, 8, 3, 3, 1, 1, 0, 0, 2, 2}, Case{3, 9, 7, 3, 2, 1, 1, 0, 0, 3, 1},
                        Case{2, 8, 9, 3, 3, 1, 1, 2, 1, 2, 3}, Case{1, 10, 10, 2, 3, 2, 3, 1, 2, 3, 2},
                        Case{2, 6, 6, 3, 3, 2, 2, 1, 1, 1, 1}, Case{1, 5, 5, 2, 2, 1, 1, 3, 3, 4, 4}}) {
    CAPTURE(s.dh);
    CAPTURE(s.dw);
    const kernels::Conv2dGeometry g{s.c, s.h, s.w, s.kh, s.kw, s.sh, s.sw, s.ph, s.pw, s.dh, s.dw};
    const auto img = random_values(static_cast<std::size_t>(s.c * s.h * s.w), 41);
    const auto cols_in = random_values(static_cast<std::size_t>(g.col_rows() * g.col_cols()), 42);
    std::vector<float> cols(cols_in.size(), -1.0f), cols_ref(cols_in.size(), -2.0f);
    kernels::im2col(g, img.data(), cols.data());
    kernels::im2col_ref(g, img.data(), cols_ref.data());
    CHECK(cols == cols_ref);
    std::vector<float> back = img, back_ref = img;  // both add into what is there
    kernels::col2im(g, cols_in.data(), back.data());
    kernels::col2im_ref(g, cols_in.data(), back_ref.data());
    CHECK(worst_diff(back, back_ref) <= 1e-6 * double(s.kh * s.kw));
  }
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
        kernels::batchnorm_backward_ref(dx1.data(), g1, b1, x.data(), dy.data(), s.n, s.c, s.hw, ch, m1,
                                        invstd, 1.3);
        kernels::batchnorm_backward(dx2.data(), g2, b2, x.data(), dy.data(), s.n, s.c, s.hw, ch, m1, invstd,
                                    1.3);
        // Sums of ~count terms of size ~1 that may cancel: float partial sums err by ~1e-7 per term.
        const double count = static_cast<double>(s.n * s.hw);
        CHECK(std::fabs(g2 - g1) <= 1e-6 * count);
        CHECK(std::fabs(b2 - b1) <= 1e-6 * count);
        // Errors relative to the channel's largest |dx|: entries near zero have no relative precision to
        // keep.
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
  // Widths around the AVX-512 path's 16 windows (32 inputs) per step, odd widths, ties and NaN in some rows.
  for (std::int64_t w : {9, 26, 33, 40, 67})
    for (std::int64_t stride : {1, 2}) {
      const std::int64_t h = 7;
      auto x = random_values(static_cast<std::size_t>(h * w), 6);
      x[3] = x[4];                                    // a tie in a row: the first in scan order wins
      x[static_cast<std::size_t>(w + 6)] = x[6];      // a tie across rows
      x[static_cast<std::size_t>(3 * w + 1)] = -0.0f;  // signed zeros tie
      x[static_cast<std::size_t>(3 * w + 2)] = 0.0f;
      x[static_cast<std::size_t>(2 * w + 5)] = std::numeric_limits<float>::quiet_NaN();
      x[static_cast<std::size_t>(5 * w + w - 2)] = std::numeric_limits<float>::quiet_NaN();
      const kernels::Pool2dGeometry g{h, w, 2, 2, stride, stride, 0, 0};
      const auto outs = static_cast<std::size_t>(g.out_h() * g.out_w());
      std::vector<float> o1(outs);
      std::vector<std::int32_t> a1(outs);
      kernels::maxpool2d_forward_ref(g, x.data(), o1.data(), a1.data());
      for_each_isa([&] {
        CAPTURE(w);
        CAPTURE(stride);
        std::vector<float> o2(outs, 5.0f), o3(outs, 5.0f);
        std::vector<std::int32_t> a2(outs, -1);
        kernels::maxpool2d_forward(g, x.data(), o2.data(), a2.data());
        kernels::maxpool2d_forward(g, x.data(), o3.data(), nullptr);  // inference: no argmax
        CHECK(a1 == a2);
        for (std::size_t i = 0; i < outs; ++i) {
          CHECK(std::memcmp(&o1[i], &o2[i], sizeof(float)) == 0);  // the same bits, NaN and -0 included
          CHECK(std::memcmp(&o1[i], &o3[i], sizeof(float)) == 0);
        }
      });
    }
}

// ---- Quantized inference kernels (gemm_int8.hpp, gemm_bf16.hpp, quantize.hpp, im2row.hpp) ----

namespace {
std::vector<std::uint8_t> random_u8(std::size_t n, std::uint64_t seed) {
  Generator g(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& x : v) x = static_cast<std::uint8_t>(std::min(255.0, g.uniform(0, 256)));
  return v;
}
std::vector<std::int8_t> random_s8(std::size_t n, std::uint64_t seed) {
  Generator g(seed);
  std::vector<std::int8_t> v(n);
  for (auto& x : v) x = static_cast<std::int8_t>(std::min(127.0, g.uniform(-128, 128)));
  return v;
}
}  // namespace

TEST_CASE("gemm_u8s8 gives the reference's integers exactly on every path, extremes included") {
  struct Case {
    std::int64_t m, n, k;
  };
  bool saw_extremes = false;
  for (const Case& s : {Case{1, 1, 1}, Case{3, 17, 5}, Case{9, 33, 7}, Case{130, 40, 75}, Case{8, 32, 800},
                        Case{200, 10, 1}, Case{17, 64, 257}}) {
    CAPTURE(s.m);
    CAPTURE(s.n);
    CAPTURE(s.k);
    auto a = random_u8(static_cast<std::size_t>(s.m * s.k), 11);
    auto w = random_s8(static_cast<std::size_t>(s.n * s.k), 12);
    if (s.k == 800) {
      // The saturation trap of vpmaddubsw: 255 * -128 + 255 * -128 pairs, on row 0 / channel 0.
      std::fill(a.begin(), a.begin() + s.k, std::uint8_t(255));
      std::fill(w.begin(), w.begin() + s.k, std::int8_t(-128));
      saw_extremes = true;
    }
    std::vector<std::int32_t> ref(static_cast<std::size_t>(s.m * s.n));
    kernels::gemm_u8s8_ref(s.m, s.n, s.k, a.data(), w.data(), ref.data());
    if (s.k == 800) CHECK(ref[0] == 800 * 255 * -128);
    const auto packed = kernels::pack_int8(w.data(), s.n, s.k);
    for (std::int64_t j = 0; j < s.n; ++j) {
      std::int32_t sum = 0;
      for (std::int64_t q = 0; q < s.k; ++q) sum += w[static_cast<std::size_t>(j * s.k + q)];
      CHECK(packed.sums[static_cast<std::size_t>(j)] == sum);
    }
    for_each_isa([&] {
      CAPTURE(kernels::int8_path_name(kernels::int8_path()));
      // A wider C than n (ldc) must keep its extra columns.
      const std::int64_t ldc = s.n + 3;
      std::vector<std::int32_t> c(static_cast<std::size_t>(s.m * ldc), -7);
      kernels::gemm_u8s8(s.m, a.data(), s.k, packed, c.data(), ldc);
      bool same = true, kept = true;
      for (std::int64_t i = 0; i < s.m; ++i) {
        for (std::int64_t j = 0; j < s.n; ++j) same = same && c[i * ldc + j] == ref[i * s.n + j];
        for (std::int64_t j = s.n; j < ldc; ++j) kept = kept && c[i * ldc + j] == -7;
      }
      CHECK(same);
      CHECK(kept);
    });
  }
  CHECK(saw_extremes);
  // Paths this CPU offers: vnni under avx512 when it has VNNI, avx2 under avx2.
  const kernels::Isa saved = kernels::active_isa();
  kernels::set_isa(kernels::Isa::portable);
  CHECK(kernels::int8_path() == kernels::Int8Path::portable);
  if (kernels::isa_supported(kernels::Isa::avx512) && kernels::cpu_has_vnni()) {
    kernels::set_isa(kernels::Isa::avx512);
    CHECK(kernels::int8_path() == kernels::Int8Path::vnni);
  }
  if (kernels::isa_supported(kernels::Isa::avx2)) {
    kernels::set_isa(kernels::Isa::avx2);
    CHECK(kernels::int8_path() == kernels::Int8Path::avx2);
  }
  kernels::set_isa(saved);
}

TEST_CASE("gemm_int8 requantizes with the zero point, per-channel scales, bias and ReLU, to float or u8") {
  const std::int64_t m = 70, n = 5, k = 12;
  auto a = random_u8(static_cast<std::size_t>(m * k), 21);
  auto w = random_s8(static_cast<std::size_t>(n * k), 22);
  const auto packed = kernels::pack_int8(w.data(), n, k);
  const std::int32_t zp = 100;
  const float scale_a = 0.02f;
  std::vector<float> scale_w = {0.01f, 0.02f, 0.005f, 0.1f, 0.03f}, bias = {0.5f, -0.25f, 0, 1, -2};
  std::vector<std::int32_t> offset(n);
  std::vector<float> scale(n);
  for (std::int64_t j = 0; j < n; ++j) {
    offset[j] = zp * packed.sums[j];
    scale[j] = scale_a * scale_w[j];
  }
  for (bool relu : {false, true}) {
    const kernels::Requant rq{offset.data(), scale.data(), bias.data(), relu};
    // Stored transposed (channels x rows), as a convolution stores its output.
    std::vector<float> y(static_cast<std::size_t>(m * n));
    kernels::Int8Workspace ws;
    kernels::gemm_int8(ws, m, a.data(), k, packed, rq, y.data(), 1, m);
    const kernels::QuantParams out{0.05f, 3};
    std::vector<std::uint8_t> q(static_cast<std::size_t>(m * n));
    kernels::gemm_int8(ws, m, a.data(), k, packed, rq, q.data(), n, 1, out);
    double worst = 0;
    bool negative = false, u8_ok = true;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double exact = 0;  // the dequantized operands' product
        for (std::int64_t p = 0; p < k; ++p)
          exact += (double(a[i * k + p]) - zp) * scale_a * double(w[j * k + p]) * scale_w[j];
        exact += bias[j];
        if (relu) exact = std::max(exact, 0.0);
        const float got = y[static_cast<std::size_t>(j * m + i)];
        negative = negative || got < 0;
        worst = std::max(worst, std::fabs(got - exact) / (1 + std::fabs(exact)));
        const float want_q = std::clamp(std::nearbyint(got / 0.05f) + 3.0f, 0.0f, 255.0f);
        u8_ok = u8_ok && std::fabs(float(q[i * n + j]) - want_q) <= 1;  // 1/scale vs /scale at a tie
      }
    CHECK(worst < 1e-5);
    CHECK(negative == !relu);
    CHECK(u8_ok);
  }
}

TEST_CASE("quantize and dequantize with ONNX's rounding; u8 ranges hold 0; s8 weights per row") {
  const auto p = kernels::choose_u8_params(0.5f, 2.0f);  // widened to [0, 2]: zero point 0
  CHECK(p.zero_point == 0);
  CHECK(p.scale == doctest::Approx(2.0 / 255));
  const auto q = kernels::choose_u8_params(-1.0f, 3.0f);
  CHECK(q.zero_point == 64);  // 1 / (4 / 255) = 63.75
  std::vector<float> x = {-1.0f, 0.0f, 3.0f, 5.0f, -5.0f};
  std::vector<std::uint8_t> u(5);
  kernels::quantize_u8(x.data(), u.data(), 5, q);
  CHECK(u == std::vector<std::uint8_t>{0, 64, 255, 255, 0});
  std::vector<float> back(5);
  kernels::dequantize_u8(u.data(), back.data(), 5, q);
  CHECK(back[1] == 0.0f);  // 0 is exact
  CHECK(back[0] == doctest::Approx(-64 * q.scale));
  // Half-way cases round to even, as ONNX's QuantizeLinear.
  CHECK(kernels::quantize_u8(2.5f, 1.0f, 0) == 2);
  CHECK(kernels::quantize_u8(3.5f, 1.0f, 0) == 4);
  CHECK_THROWS_WITH_AS(kernels::choose_u8_params(1.0f, -1.0f), doctest::Contains("lo <= hi"), std::invalid_argument);
  std::vector<float> w = {0.5f, -1.0f, 0.25f, 0.0f, 0.0f, 0.0f};
  std::vector<std::int8_t> ws(6);
  std::vector<float> scales(2);
  kernels::quantize_s8_rows(w.data(), ws.data(), scales.data(), 2, 3);
  CHECK(scales[0] == doctest::Approx(1.0 / 127));
  CHECK(ws[0] == 64);  // 63.5 to even
  CHECK(ws[1] == -127);
  CHECK(scales[1] == 1.0f);  // an all-zero row keeps a usable scale
}

TEST_CASE("bfloat16 rounds to nearest even, and gemm_bf16 matches its reference on every path") {
  CHECK(kernels::to_bf16(1.0f) == 0x3f80);
  // 1 + 2^-8 is half-way between two bf16 values: to the even one (1.0); 1 + 3 * 2^-8 up to 1 + 2^-6.
  CHECK(kernels::round_bf16(1.0f + 1.0f / 256) == 1.0f);
  CHECK(kernels::round_bf16(1.0f + 3.0f / 256) == 1.0f + 1.0f / 64);
  CHECK(std::isnan(kernels::round_bf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isinf(kernels::round_bf16(std::numeric_limits<float>::infinity())));
  struct Case {
    std::int64_t m, n, k;
  };
  for (const Case& s : {Case{1, 1, 1}, Case{5, 17, 3}, Case{70, 40, 75}, Case{9, 33, 200}}) {
    CAPTURE(s.m);
    CAPTURE(s.n);
    CAPTURE(s.k);
    auto a = random_values(static_cast<std::size_t>(s.m * s.k), 31);
    auto w = random_values(static_cast<std::size_t>(s.n * s.k), 32);
    std::vector<float> bias = random_values(static_cast<std::size_t>(s.n), 33);
    std::vector<float> ref(static_cast<std::size_t>(s.m * s.n));
    kernels::gemm_bf16_ref(s.m, s.n, s.k, a.data(), w.data(), ref.data());
    const auto packed = kernels::pack_bf16(w.data(), s.n, s.k);
    std::vector<float> first;
    for_each_isa([&] {
      CAPTURE(kernels::bf16_native());
      std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
      kernels::Bf16Workspace ws;
      kernels::gemm_bf16(ws, s.m, a.data(), s.k, packed, bias.data(), false, y.data(), s.n, 1);
      double worst = 0;
      for (std::size_t i = 0; i < y.size(); ++i) {
        // Float accumulation of products bounded by 1: k roundings of at most k * 2^-24 each.
        worst = std::max(worst, std::fabs(double(y[i]) - ref[i] - bias[i % static_cast<std::size_t>(s.n)]));
      }
      CHECK(worst <= double(s.k) * double(s.k) * 6e-8 + 1e-6);
      // The portable loop adds in the instruction's order: the same bits on every path.
      if (first.empty())
        first = y;
      else
        CHECK(y == first);
    });
  }
}

TEST_CASE("im2row lays a convolution's patches out as rows, the border filled with the pad value") {
  const kernels::Conv2dGeometry g{2, 3, 4, 3, 3, 2, 1, 1, 1};
  const std::int64_t oh = g.out_h(), ow = g.out_w(), k = g.col_rows();
  std::vector<float> img(2 * 3 * 4);
  for (std::size_t i = 0; i < img.size(); ++i) img[i] = float(i + 1);
  std::vector<float> rows(static_cast<std::size_t>(oh * ow * k)), cols(static_cast<std::size_t>(oh * ow * k));
  kernels::im2row(g, img.data(), rows.data(), 0.0f);
  kernels::im2col(g, img.data(), cols.data());
  bool transposed = true;
  for (std::int64_t p = 0; p < oh * ow; ++p)
    for (std::int64_t q = 0; q < k; ++q) transposed = transposed && rows[p * k + q] == cols[q * oh * ow + p];
  CHECK(transposed);
  std::vector<std::uint8_t> u(img.size(), 9), ur(rows.size());
  kernels::im2row(g, u.data(), ur.data(), std::uint8_t(77));
  CHECK(ur[0] == 77);  // top-left tap of the first patch is padding
  CHECK(ur[4] == 9);   // its centre is inside
  // Channels last: the same patches with each row ordered (ky, kx, c); also with stride 1 and no padding
  // (whole kernel rows copied at once) and dilation.
  for (const kernels::Conv2dGeometry& h :
       {g, kernels::Conv2dGeometry{3, 5, 6, 3, 2, 1, 1, 0, 0}, kernels::Conv2dGeometry{2, 7, 7, 3, 3, 1, 2, 2, 1, 2, 2}}) {
    const std::int64_t hk = h.col_rows(), pixels = h.out_h() * h.out_w(), plane = h.height * h.width;
    const std::int64_t taps = h.kernel_h * h.kernel_w;
    std::vector<float> chw(static_cast<std::size_t>(h.channels * plane)), hwc(chw.size());
    for (std::size_t i = 0; i < chw.size(); ++i) chw[i] = float(i + 1);
    for (std::int64_t c = 0; c < h.channels; ++c)
      for (std::int64_t p = 0; p < plane; ++p) hwc[p * h.channels + c] = chw[c * plane + p];
    std::vector<float> a(static_cast<std::size_t>(pixels * hk)), b(a.size());
    kernels::im2row(h, chw.data(), a.data(), -1.0f);
    kernels::im2row_hwc(h, hwc.data(), b.data(), -1.0f);
    bool same = true;
    for (std::int64_t p = 0; p < pixels; ++p)
      for (std::int64_t c = 0; c < h.channels; ++c)
        for (std::int64_t t = 0; t < taps; ++t)
          same = same && a[p * hk + c * taps + t] == b[p * hk + t * h.channels + c];
    CHECK(same);
  }
}
