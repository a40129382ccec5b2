// Tensor, Shape, Generator and the error types.
#include <doctest/doctest.h>
#include "bad_input.hpp"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>
#include <ember/core/parallel.hpp>
#include <ember/core/random.hpp>
#include <ember/core/tensor.hpp>
#include <ember/ember.hpp>
#include <ember/fwd.hpp>  // after the definitions: its declarations must agree with them
#include <limits>
#include <set>
#include <type_traits>
#include <sstream>

using ember::Shape;
using ember::Tensor;
using ember::TensorT;

TEST_CASE("a tensor built from a shape is zero-filled, contiguous and aligned") {
  Tensor t({2, 3, 4});
  CHECK(t.dim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.size(0) == 2);
  CHECK(t.size(-1) == 4);
  CHECK(t.size(-3) == 2);
  for (float v : t) CHECK(v == 0.0f);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  CHECK_THROWS_AS(t.size(3), std::out_of_range);
  CHECK_THROWS_AS(t.size(-4), std::out_of_range);
}

TEST_CASE("the default tensor is empty with shape [0], and a 0-d tensor holds one value") {
  Tensor e;
  CHECK(e.numel() == 0);
  CHECK(e.shape() == Shape{0});
  Tensor scalar(Shape{});
  CHECK(scalar.numel() == 1);
  CHECK(scalar.dim() == 0);
}

TEST_CASE("factories fill, and from() checks the element count") {
  Tensor f = Tensor::full({2, 2}, 3.5f);
  for (float v : f) CHECK(v == 3.5f);
  Tensor o = Tensor::ones({3});
  CHECK(o.vector().sum() == 3.0f);
  Tensor z = Tensor::zeros({4});
  CHECK(z.vector().sum() == 0.0f);
  Tensor a = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(a.at({1, 2}) == 6.0f);
  CHECK(a.at({0, 1}) == 2.0f);
  CHECK_THROWS_AS(Tensor::from({2, 3}, {1, 2, 3}), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::from({2, 3}, {1, 2, 3}), ember::shape_error);
}

TEST_CASE("at() is bounds-checked in every dimension") {
  Tensor t({2, 3});
  t.at({1, 1}) = 7.0f;
  CHECK(t[4] == 7.0f);
  CHECK_THROWS_AS(t.at({2, 0}), std::out_of_range);
  CHECK_THROWS_AS(t.at({0, 3}), std::out_of_range);
  CHECK_THROWS_AS(t.at({-1, 0}), std::out_of_range);
  CHECK_THROWS_AS(t.at({0}), std::out_of_range);
  CHECK_THROWS_AS(t.at({0, 0, 0}), std::out_of_range);
}

TEST_CASE("negative or overflowing shapes are rejected before any allocation") {
  CHECK_THROWS_AS(Tensor({2, -1}), ember::shape_error);
  const std::int64_t big = std::numeric_limits<std::int64_t>::max() / 2;
  CHECK_THROWS_AS(Tensor({big, 4}), ember::shape_error);
  CHECK_THROWS_AS(Tensor({1 << 30, 1 << 30, 1 << 20}), ember::shape_error);
  CHECK_THROWS_AS(ember::shape_numel({3, -2}), ember::shape_error);
  CHECK(ember::shape_numel({}) == 1);
  CHECK(ember::shape_numel({5, 0, 7}) == 0);
  // A zero extent empties the shape even when the other extents alone would overflow (found by fuzz_idx).
  CHECK(ember::shape_numel({big, 4, 0}) == 0);
  CHECK(Tensor({big, 0, big}).numel() == 0);
  CHECK_THROWS_AS(ember::shape_numel({big, 0, -1}), ember::shape_error);
}

TEST_CASE("reshape keeps the data, infers one -1 and rejects wrong counts") {
  Tensor a = Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = a.reshape({3, -1});
  CHECK(b.shape() == Shape{3, 2});
  CHECK(b.at({2, 1}) == 6.0f);
  CHECK(a.shape() == Shape{2, 3});  // a copy: the original is untouched
  CHECK(a.reshape({-1}).shape() == Shape{6});
  CHECK_THROWS_AS(a.reshape({4, 2}), ember::shape_error);
  CHECK_THROWS_AS(a.reshape({-1, -1}), ember::shape_error);
  CHECK_THROWS_AS(a.reshape({4, -1}), ember::shape_error);
  CHECK_THROWS_AS(a.reshape({-2, 3}), ember::shape_error);
}

TEST_CASE("tensors are values: copies are deep and moves leave the source empty-able") {
  Tensor a = Tensor::full({4}, 1.0f);
  Tensor b = a;
  b[0] = 9.0f;
  CHECK(a[0] == 1.0f);
  CHECK(a != b);
  Tensor c = std::move(b);
  CHECK(c[0] == 9.0f);
  b = a;
  CHECK(b == a);
}

TEST_CASE("the matrix view reads the tensor as rows = size(0) and writes through") {
  Tensor t = Tensor::from({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto m = t.matrix();
  CHECK(m.rows() == 2);
  CHECK(m.cols() == 4);
  CHECK(m(1, 2) == 6.0f);
  m(0, 0) = 42.0f;
  CHECK(t[0] == 42.0f);
  const Tensor& ct = t;
  CHECK(ct.matrix(4, 2)(3, 1) == 7.0f);
  CHECK_THROWS_AS(t.matrix(3, 3), ember::shape_error);
  // Eigen arithmetic works on the view.
  Tensor w = Tensor::from({2, 2}, {1, 0, 0, 2});
  Tensor x = Tensor::from({2, 2}, {1, 2, 3, 4});
  Tensor y({2, 2});
  y.matrix() = x.matrix() * w.matrix();
  CHECK(y.at({1, 1}) == 8.0f);
}

TEST_CASE("resize reuses capacity and cast converts elementwise") {
  Tensor t({8, 8});
  const float* p = t.data();
  t.resize({4, 4});
  CHECK(t.shape() == Shape{4, 4});
  CHECK(t.data() == p);
  t.resize({8, 8});
  CHECK(t.data() == p);
  TensorT<double> d = Tensor::from({2}, {0.5f, -1.25f}).cast<double>();
  CHECK(d[0] == 0.5);
  CHECK(d[1] == -1.25);
}

TEST_CASE("double tensors work like float ones") {
  TensorT<double> t = TensorT<double>::full({3, 2}, 0.25);
  CHECK(t.matrix().sum() == doctest::Approx(1.5));
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
}

TEST_CASE("expect_shape names the caller and both shapes") {
  Tensor t({32, 3, 28, 28});
  CHECK_NOTHROW(ember::expect_shape(t, {-1, 3, 28, 28}, "Conv2d"));
  try {
    ember::expect_shape(t, {-1, 1, -1, -1}, "Conv2d(1, 75)");
    FAIL("expected a shape_error");
  } catch (const ember::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("Conv2d(1, 75)") != std::string::npos);
    CHECK(msg.find("[N, 1, *, *]") != std::string::npos);
    CHECK(msg.find("[32, 3, 28, 28]") != std::string::npos);
  }
}

TEST_CASE("printing a tensor shows its shape and first values") {
  std::ostringstream os;
  os << Tensor::from({2}, {1, 2});
  CHECK(os.str() == "Tensor[2] {1, 2}");
}

TEST_CASE("a generator repeats with its seed and differs between seeds") {
  ember::Generator a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto x = a.next_u64();
    CHECK(x == b.next_u64());
  }
  CHECK(a.next_u64() != c.next_u64());
  a.manual_seed(7);
  b.manual_seed(7);
  CHECK(a.uniform() == b.uniform());
  CHECK(a.initial_seed() == 7);
}

TEST_CASE("uniform, randint, normal and bernoulli have the right ranges and moments") {
  ember::Generator g(1);
  double sum = 0, sum_sq = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double u = g.uniform();
    CHECK_UNARY(u >= 0.0);
    CHECK_UNARY(u < 1.0);
    sum += u;
  }
  CHECK(sum / n == doctest::Approx(0.5).epsilon(0.02));
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto r = g.randint(7);
    CHECK(r < 7);
    seen.insert(r);
  }
  CHECK(seen.size() == 7);
  sum = 0;
  for (int i = 0; i < n; ++i) {
    const double z = g.normal();
    sum += z;
    sum_sq += z * z;
  }
  CHECK(sum / n == doctest::Approx(0.0).epsilon(0.03).scale(1.0));
  CHECK(sum_sq / n == doctest::Approx(1.0).epsilon(0.05));
  int hits = 0;
  for (int i = 0; i < n; ++i) hits += g.bernoulli(0.3);
  CHECK(static_cast<double>(hits) / n == doctest::Approx(0.3).epsilon(0.05));
}

TEST_CASE("shuffle is a seeded permutation") {
  std::vector<int> v(50), w(50);
  for (int i = 0; i < 50; ++i) v[i] = w[i] = i;
  ember::Generator g1(3), g2(3);
  g1.shuffle(v.begin(), v.end());
  g2.shuffle(w.begin(), w.end());
  CHECK(v == w);
  std::set<int> s(v.begin(), v.end());
  CHECK(s.size() == 50);
  bool moved = false;
  for (int i = 0; i < 50; ++i) moved |= v[i] != i;
  CHECK(moved);
}

TEST_CASE("manual_seed reseeds the default generator") {
  ember::manual_seed(11);
  const auto first = ember::default_generator().next_u64();
  ember::manual_seed(11);
  CHECK(ember::default_generator().next_u64() == first);
}

TEST_CASE("thread control and the work threshold") {
  const int before = ember::get_num_threads();
  ember::set_num_threads(1);
  CHECK(ember::get_num_threads() == 1);
  CHECK(ember::threads_for(1000, 1e9) == 1);
  ember::set_num_threads(before);
  CHECK(ember::threads_for(1, 1e12) == 1);   // one item cannot be split
  CHECK(ember::threads_for(100, 1.0) == 1);  // too little work to fork
}

TEST_CASE("thread pool: team sizes, thread indices and the default thread count") {
  // OMP_NUM_THREADS when set, else the CPUs this process may use; a new thread starts from that default.
  int expected = 0;
  if (const char* s = std::getenv("OMP_NUM_THREADS")) expected = std::atoi(s);
  if (expected <= 0) {
    cpu_set_t set;
    REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
    expected = CPU_COUNT(&set);
  }
  int fresh = 0;
  std::thread([&] { fresh = ember::get_num_threads(); }).join();
  CHECK(fresh == expected);
  CHECK(ember::thread_index() == 0);
  CHECK(ember::team_size() == 1);
  CHECK_FALSE(ember::in_parallel_region());
  for (int nt : {1, 2, 3, 4}) {
    CAPTURE(nt);
    std::mutex m;
    std::multiset<int> indices;
    std::set<std::thread::id> ids;
    std::set<int> sizes;
    bool inside = true;
    ember::parallel_region(nt, [&] {
      const std::lock_guard<std::mutex> lock(m);
      indices.insert(ember::thread_index());
      sizes.insert(ember::team_size());
      ids.insert(std::this_thread::get_id());
      inside = inside && ember::in_parallel_region() == (nt > 1);
    });
    std::multiset<int> all;
    for (int t = 0; t < nt; ++t) all.insert(t);
    CHECK(indices == all);  // each index once
    CHECK(ids.size() == static_cast<std::size_t>(nt));  // on nt threads at once
    CHECK(ids.count(std::this_thread::get_id()) == 1);  // the caller among them
    CHECK(sizes == std::set<int>{nt});
    CHECK(inside);
  }
}

TEST_CASE("thread pool: parallel_for splits as OpenMP's schedule(static), whatever thread runs a share") {
  for (int nt : {2, 3, 4}) {
    for (std::int64_t n : {1, 2, 3, 7, 10, 64, 1001}) {
      CAPTURE(nt);
      CAPTURE(n);
      std::vector<int> share(static_cast<std::size_t>(n), -1);
      ember::parallel_for(nt, n, [&](std::int64_t i) { share[static_cast<std::size_t>(i)] = ember::thread_index(); });
      // libgomp's split: q = n / nt, the first n % nt threads one more, in order.
      const std::int64_t q = n / nt, r = n % nt;
      for (std::int64_t i = 0, t = 0, left = q + (r > 0); i < n; ++i) {
        while (left == 0) left = q + (++t < r);
        CHECK(share[static_cast<std::size_t>(i)] == t);
        --left;
      }
#ifdef _OPENMP
      std::vector<int> omp(static_cast<std::size_t>(n), -1);
#pragma omp parallel for num_threads(nt) schedule(static)
      for (std::int64_t i = 0; i < n; ++i) omp[static_cast<std::size_t>(i)] = omp_get_thread_num();
      CHECK(share == omp);
#endif
    }
  }
}

TEST_CASE("thread pool: barrier, nested regions on the caller, exceptions, several callers, fork") {
  SUBCASE("a barrier holds every thread until all arrive, again and again") {
    constexpr int kTeam = 3, kRounds = 200;
    std::vector<std::atomic<int>> slot(kTeam);
    std::atomic<int> wrong{0};
    ember::parallel_region(kTeam, [&] {
      const int t = ember::thread_index();
      for (int round = 1; round <= kRounds; ++round) {
        slot[static_cast<std::size_t>(t)].store(round);
        ember::barrier();
        for (auto& s : slot) wrong += s.load() != round;  // everyone wrote this round, nobody the next
        ember::barrier();
      }
    });
    CHECK(wrong == 0);
    CHECK_THROWS_AS(ember::parallel_for(2, 2, [](std::int64_t) { ember::barrier(); }), std::logic_error);
  }
  SUBCASE("a region inside a region runs serially on its caller") {
    std::mutex m;
    int wrong = 0;
    ember::parallel_region(2, [&] {
      const auto me = std::this_thread::get_id();
      std::vector<std::thread::id> ids(8);
      std::vector<int> index(8);
      ember::parallel_for(2, 8, [&](std::int64_t i) {
        ids[static_cast<std::size_t>(i)] = std::this_thread::get_id();
        index[static_cast<std::size_t>(i)] = ember::thread_index();
      });
      int team = 0;
      ember::parallel_region(2, [&] { team = ember::team_size(); });
      const std::lock_guard<std::mutex> lock(m);
      for (std::size_t i = 0; i < 8; ++i) wrong += ids[i] != me || index[i] != 0;
      wrong += team != 1 || ember::threads_for(1000, 1e9) != 1;
    });
    CHECK(wrong == 0);
  }
  SUBCASE("the first exception of a body reaches the caller, and the pool works on") {
    CHECK_THROWS_WITH_AS(ember::parallel_for(2, 100,
                                             [](std::int64_t i) {
                                               if (i == 77) throw std::runtime_error("item 77");
                                             }),
                         "item 77", std::runtime_error);
    CHECK_THROWS_WITH_AS(ember::parallel_region(2,
                                                [] {
                                                  if (ember::thread_index() == 1) throw std::runtime_error("thread 1");
                                                }),
                         "thread 1", std::runtime_error);
    std::atomic<std::int64_t> sum{0};
    ember::parallel_for(2, 1000, [&](std::int64_t i) { sum += i; });
    CHECK(sum == 999 * 1000 / 2);
  }
  SUBCASE("threads calling at once each get all their work done (one on the pool, the others on themselves)") {
    std::vector<std::int64_t> sums(4);
    std::vector<std::thread> callers;
    for (std::size_t c = 0; c < sums.size(); ++c)
      callers.emplace_back([&sums, c] {
        ember::set_num_threads(2);
        for (int rep = 0; rep < 200; ++rep) {
          std::vector<std::int64_t> v(100);
          ember::parallel_for(2, 100, [&](std::int64_t i) { v[static_cast<std::size_t>(i)] = i; });
          for (auto x : v) sums[c] += x;
        }
      });
    for (auto& t : callers) t.join();
    for (auto s : sums) CHECK(s == 200 * 4950);
  }
  SUBCASE("a child process after fork has a working pool of its own") {
#if defined(__SANITIZE_THREAD__)
    MESSAGE("skipped under ThreadSanitizer, which does not support threads started after a multi-threaded fork");
    return;
#endif
    ember::parallel_region(2, [] {});  // the parent's workers exist
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      alarm(20);  // a deadlock fails the test instead of hanging it
      std::atomic<int> n{0};
      ember::parallel_region(2, [&] {
        ember::barrier();
        ++n;
      });
      ember::parallel_for(2, 10, [&](std::int64_t) { ++n; });
      _exit(n == 12 ? 0 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
}

// ---- Bad input (the policy: docs/robustness.md) ----------------------------------------------------------

namespace bad_input {

TEST_CASE("tensors: wrong element counts, bad indices, negative and overflowing shapes, zero-size tensors") {
  CHECK_THROWS_AS(Tensor::from({2, 3}, std::vector<float>(5)), std::invalid_argument);
  CHECK_THROWS_AS(Tensor({2, -1}), ember::shape_error);
  // 2^62 elements: rejected from the shape, before any allocation.
  const std::size_t largest = largest_allocation_of([] {
    CHECK_THROWS_AS(Tensor({std::int64_t(1) << 31, std::int64_t(1) << 31}), ember::shape_error);
    CHECK_THROWS_AS(Tensor({std::int64_t(1) << 40, std::int64_t(1) << 40}), ember::shape_error);
  });
  CHECK(largest < kMiB);
  Tensor t({2, 3});
  CHECK_THROWS(t.at({2, 0}));
  CHECK_THROWS(t.at({0, 0, 0}));
  CHECK_THROWS(t.reshape({4, 2}));

  const Tensor empty({0, 3});
  CHECK(empty.numel() == 0);
  CHECK(empty.reshape({3, 0}).shape() == Shape{3, 0});
  CHECK_THROWS(empty.at({0, 0}));
  CHECK(Tensor::from({0}, {}).numel() == 0);
}

}  // namespace bad_input

// fwd.hpp's declarations name the same types as the defining headers (a mismatch would not compile above).
static_assert(std::is_same_v<ember::data::DataLoader, ember::data::DataLoaderT<std::int64_t>>);
static_assert(std::is_same_v<ember::nn::CrossEntropyLoss, ember::loss::CrossEntropyLossT<float>>);
static_assert(std::is_same_v<ember::optim::SGD, ember::optim::SGDT<float>>);

