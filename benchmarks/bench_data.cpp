// Loading the report's data sets from disk: MNIST (IDX, gzip) and Sign Language MNIST (CSV, gzip), train and
// test, each a whole load_mnist / load_sign_mnist call (read, gunzip, parse, check, convert to float).
// The files are looked for under EMBER_DATA (default: data, the git-ignored link to the data directory);
// a benchmark whose file is missing is skipped with a message naming it.
#include <cstdlib>
#include <filesystem>
#include <string>

#include <ember/data/sign_mnist.hpp>
#include <ember/data/idx.hpp>

#include "bench_common.hpp"

namespace {

using namespace ember;

std::string data_dir() {
  const char* env = std::getenv("EMBER_DATA");
  return env ? env : "data";
}

template <typename Load>
void run_load(benchmark::State& state, const std::string& needed, Load load) {
  if (!std::filesystem::exists(needed)) {
    state.SkipWithError(("missing " + needed + " (set EMBER_DATA to the data directory)").c_str());
    return;
  }
  std::int64_t images = 0;
  for (auto _ : state) {
    const data::Dataset ds = load();
    images = ds.size();
    benchmark::DoNotOptimize(ds.images.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * images);
}

void BM_LoadMnist(benchmark::State& state) {
  const bool train = state.range(0) != 0;
  const std::string dir = data_dir() + "/mnist";
  run_load(state, dir + (train ? "/train-images-idx3-ubyte.gz" : "/t10k-images-idx3-ubyte.gz"),
           [&] { return data::load_mnist(dir, train); });
}
BENCHMARK(BM_LoadMnist)->ArgName("train")->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_LoadSignMnist(benchmark::State& state) {
  const bool train = state.range(0) != 0;
  const std::string path = data_dir() + (train ? "/sign-mnist/sign_mnist_train.csv.gz" : "/sign-mnist/sign_mnist_test.csv.gz");
  run_load(state, path, [&] { return data::load_sign_mnist(path); });
}
BENCHMARK(BM_LoadSignMnist)->ArgName("train")->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

EMBER_BENCHMARK_MAIN();
