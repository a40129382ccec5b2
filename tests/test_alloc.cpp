// A warmed-up training step of each report model allocates nothing: forward_into, CrossEntropyLoss forward and
// backward_into, backward_into with a null input gradient, SGD step, zero_grad. Counted through a replaced
// global operator new (alloc_counter.hpp), on one thread and on two (OpenMP's runtime allocates its thread pool
// on first use only, which the warm-up covers).
#include <doctest/doctest.h>

#include <cstdint>
#include <ember/loss/cross_entropy.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/sgd.hpp>
#include <vector>

using namespace ember;

// Replaces the global operator new for this program; under ASan (which owns operator new) it stays out and
// EMBER_ALLOC_COUNTING is 0.
#include "alloc_counter.hpp"

#if EMBER_ALLOC_COUNTING
namespace {

nn::Sequential mlp(std::int64_t classes, bool softmax) { return models::report_mlp(classes, softmax); }
nn::Sequential cnn() { return models::report_cnn(true); }

// Allocations made by one training step after three warm-up steps (the measured step uses another batch).
long allocations_per_step(nn::Sequential& model, std::int64_t batch, std::int64_t classes, int threads) {
  const int saved = get_num_threads();
  set_num_threads(threads);
  Generator g(3);
  std::vector<Tensor> xs;
  std::vector<std::vector<std::int64_t>> ys;
  for (int b = 0; b < 2; ++b) {
    Tensor x({batch, 1, 28, 28});
    for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
    std::vector<std::int64_t> y(static_cast<std::size_t>(batch));
    for (auto& l : y) l = static_cast<std::int64_t>(g.uniform() * static_cast<double>(classes)) % classes;
    xs.push_back(std::move(x));
    ys.push_back(std::move(y));
  }
  optim::SGD opt(model.parameters(), {1e-3, 0.9});
  nn::CrossEntropyLoss loss;
  Tensor out, grad;
  auto step = [&](std::size_t b) {
    model.forward_into(xs[b], out);
    loss.forward(out, ys[b]);
    loss.backward_into(grad);
    model.backward_into(grad, nullptr);
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 3; ++i) step(static_cast<std::size_t>(i % 2));
  const long before = alloc_count();
  step(1);
  const long after = alloc_count();
  set_num_threads(saved);
  return after - before;
}

}  // namespace
#endif

TEST_CASE("a warmed-up training step of the report's models allocates nothing") {
#if EMBER_ALLOC_COUNTING
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    {
      auto m = mlp(10, false);
      CHECK(allocations_per_step(m, 32, 10, threads) == 0);
    }
    {
      auto m = mlp(24, true);
      CHECK(allocations_per_step(m, 4, 24, threads) == 0);
    }
    {
      auto m = cnn();
      CHECK(allocations_per_step(m, 32, 24, threads) == 0);
    }
  }
#else
  MESSAGE("skipped under AddressSanitizer: ASan owns operator new, so allocations cannot be counted here");
#endif
}

TEST_CASE("the counter sees allocations") {
#if EMBER_ALLOC_COUNTING
  const long before = alloc_count();
  Tensor t({1000});
  CHECK(alloc_count() > before);
#else
  MESSAGE("skipped under AddressSanitizer");
#endif
}
