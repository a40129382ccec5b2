// A warmed-up training step of each report model allocates nothing: train::Step, the step fit runs (zero_grad,
// forward, CrossEntropyLoss, backward, SGD step). Counted through a replaced
// global operator new (alloc_counter.hpp), on one thread and on two (OpenMP's runtime allocates its thread pool
// on first use only, which the warm-up covers).
#include <doctest/doctest.h>

#include <Eigen/Core>
#include <cstdint>
#include <cstdlib>
#include <ember/loss/cross_entropy.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/step.hpp>
#include <ember/data/dataloader.hpp>
#include <ember/data/transforms.hpp>
#include <ember/train/fit.hpp>
#include <vector>

using namespace ember;

// Interposes the malloc family for this program; under a sanitizer it stays out and these tests are skipped.
#include "alloc_counter.hpp"

#if EMBER_ALLOC_COUNTING
namespace {

nn::Sequential mlp(std::int64_t classes, bool softmax) { return models::report_mlp(classes, softmax); }
nn::Sequential cnn() { return models::report_cnn(24, true); }
// Dilated depthwise and grouped pointwise convolutions, as in modern small CNNs.
nn::Sequential grouped_cnn() {
  const auto depthwise = nn::Conv2dOptions(8, 8, 3).padding(2).dilation(2).groups(8);
  return nn::Sequential("Grouped", {{"conv1", nn::Conv2d(1, 8, 3, 1, 1)},
                                    {"relu1", nn::ReLU()},
                                    {"depthwise", nn::Conv2d(depthwise)},
                                    {"pointwise", nn::Conv2d(8, 16, 1, 1, 0, 1, 2)},
                                    {"relu2", nn::ReLU()},
                                    {"pool", nn::MaxPool2d(4)},
                                    {"flatten", nn::Flatten()},
                                    {"fc", nn::Linear(16 * 7 * 7, 10)}});
}

// Allocations made by one training step after three warm-up steps (the measured step uses another batch).
long allocations_per_step(nn::Sequential& model, std::int64_t batch, std::int64_t classes, int threads,
                          bool clip = false) {
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
  train::Step<nn::Sequential, nn::CrossEntropyLoss, optim::SGD> train_step(model, loss, opt);
  const std::vector<Parameter*> params = model.parameters();
  if (clip) train_step.before_update([&] { nn::clip_grad_norm_(params, 1.0); });
  auto step = [&](std::size_t b) { train_step(xs[b], ys[b]); };
  for (int i = 0; i < 3; ++i) step(static_cast<std::size_t>(i % 2));
  const long allocated = count_allocations([&] { step(1); });
  set_num_threads(saved);
  return allocated;
}

// Allocations per step of fit's whole loop (loader, transforms, step, metrics) over an in-memory Dataset,
// after the first epoch's warm-up: the counts at each step of the second epoch must all be equal.
struct LoopAllocations {
  std::int64_t checked = 0, allocating = 0;
  long first = 0, last = 0;
};
LoopAllocations fit_loop_allocations(nn::Sequential& model, std::int64_t classes, bool augment) {
  data::Dataset ds;
  const std::int64_t n = 12 * 32;
  ds.images = Tensor({n, 1, 28, 28});
  Generator g(5);
  for (float& v : ds.images) v = static_cast<float>(g.randint(256));
  for (std::int64_t i = 0; i < n; ++i) ds.labels.push_back(i % classes);
  ds.num_classes = classes;
  data::Compose normalize{data::ToUnit(), data::Normalize(0.5f, 0.5f)};
  data::Transform tf = normalize;
  if (augment)
    tf = data::Compose{data::RandomAffine(10.0, {0.1, 0.1}, {0.9, 1.1}), data::RandomHorizontalFlip(0.5), normalize};
  data::DataLoader train_loader(ds, {32, true, false, 7}, tf), val_loader(ds, {128}, normalize);
  nn::CrossEntropyLoss loss;
  optim::SGD opt(model.parameters(), {1e-3, 0.9});
  train::FitOptions o;
  o.epochs = 2;
  o.progress = train::ProgressMode::off;
  LoopAllocations r;
  long previous = 0;
  o.on_step = [&](const train::StepInfo& s) {
    const long now = alloc_count();
    if (s.epoch == 2 && s.step > 1) {
      ++r.checked;
      r.allocating += now != previous;
    }
    if (s.epoch == 2 && s.step == 1) r.first = now;
    r.last = now;
    previous = alloc_count();
  };
  train::fit(model, loss, opt, train_loader, val_loader, o);
  return r;
}

}  // namespace
#endif

TEST_CASE("fit's whole loop, the loader and its transforms included, allocates nothing per step once warm" *
          kAllocSkip) {
#if EMBER_ALLOC_COUNTING
  for (bool augment : {false, true}) {
    CAPTURE(augment);
    {
      auto m = mlp(10, false);
      const auto r = fit_loop_allocations(m, 10, augment);
      CHECK(r.checked == 11);
      CHECK(r.allocating == 0);
      MESSAGE("MLP: " << r.last - r.first << " allocations over the second epoch's last 11 steps");
    }
    {
      auto m = cnn();
      const auto r = fit_loop_allocations(m, 24, augment);
      CHECK(r.checked == 11);
      CHECK(r.allocating == 0);
      MESSAGE("CNN: " << r.last - r.first << " allocations over the second epoch's last 11 steps");
    }
  }
#endif
}

TEST_CASE("a warmed-up training step of the report's models allocates nothing" * kAllocSkip) {
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
    {
      auto m = grouped_cnn();
      CHECK(allocations_per_step(m, 16, 10, threads, /*clip=*/true) == 0);
    }
  }
#endif
}

TEST_CASE("the counter sees every allocator: operator new, aligned new, malloc, calloc, realloc, posix_memalign, "
          "aligned_alloc and Eigen's aligned_malloc" * kAllocSkip) {
#if EMBER_ALLOC_COUNTING
  auto counts = [](auto&& f) {
    const long before = alloc_count();
    f();
    return alloc_count() - before;
  };
  CHECK(counts([] { Tensor t({1000}); }) == 2);  // the shape and the storage
  static int* volatile sink = nullptr;            // volatile: the compiler may not elide the pair
  CHECK(counts([] {
          sink = new int(3);
          delete sink;
        }) == 1);
  CHECK(counts([] { std::free(std::malloc(100)); }) == 1);
  CHECK(counts([] { std::free(std::calloc(10, 10)); }) == 1);
  CHECK(counts([] { std::free(std::realloc(nullptr, 100)); }) == 1);
  CHECK(counts([] {
          void* p = nullptr;
          REQUIRE(posix_memalign(&p, 64, 256) == 0);
          std::free(p);
        }) == 1);
  CHECK(counts([] { std::free(std::aligned_alloc(64, 256)); }) == 1);
  CHECK(counts([] { Eigen::internal::aligned_free(Eigen::internal::aligned_malloc(4096)); }) == 1);
  // An Eigen temporary, such as a product evaluated into a fresh matrix (the GEMM path's workspaces go through
  // the same allocator), is seen.
  CHECK(counts([] {
          Eigen::MatrixXf a = Eigen::MatrixXf::Ones(64, 64);
          Eigen::MatrixXf c = a * a;
        }) >= 3);
  reset_largest_allocation();
  std::free(std::malloc(12345));
  CHECK(largest_allocation() == 12345);
#endif
}
