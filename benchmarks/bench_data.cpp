// Loading the report's data sets from disk: MNIST (IDX, gzip) and Sign Language MNIST (CSV, gzip), train and
// test, each a whole load_mnist / load_sign_mnist call (read, gunzip, parse, check, convert to float).
// The files are looked for under EMBER_DATA (default: data, the git-ignored link to the data directory);
// a benchmark whose file is missing is skipped with a message naming it.
// Images of one's own: a generated folder of 256 x 256 colour JPEGs (stb's encoder, quality 90, in the
// build's temporary directory), decoded, resized to 64 x 64 with antialiasing and augmented as train_folder
// --augment does, one image at a time on one thread (a worker's rate), and whole DataLoader epochs with 1 and 2
// workers.
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <ember/data/dataloader.hpp>
#include <ember/data/idx.hpp>
#include <ember/data/image_folder.hpp>
#include <ember/data/sign_mnist.hpp>
#include <ember/data/transforms_color.hpp>
#include <ember/format/image.hpp>

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

// GCC 12 reports a false -Wstringop-overflow when the vector append is inlined into stb's JPEG writer.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
std::vector<unsigned char> encode_jpeg(const std::vector<unsigned char>& rgb, int w, int h, int quality) {
  std::vector<unsigned char> jpg;
  stbi_write_jpg_to_func(&format::detail::append_bytes, &jpg, w, h, 3, rgb.data(), quality);
  return jpg;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// 2 classes x 64 JPEGs of 256 x 256: smooth colour gradients with a pattern, as photographs compress.
const std::string& jpeg_folder() {
  static const std::string root = [] {
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "ember-bench-jpeg256";
    std::vector<unsigned char> px(256 * 256 * 3);
    for (int c = 0; c < 2; ++c) {
      std::filesystem::create_directories(dir / ("class" + std::to_string(c)));
      for (int k = 0; k < 64; ++k) {
        const std::string path = (dir / ("class" + std::to_string(c)) / (std::to_string(k) + ".jpg")).string();
        if (std::filesystem::exists(path)) continue;
        for (int y = 0; y < 256; ++y)
          for (int x = 0; x < 256; ++x)
            for (int ch = 0; ch < 3; ++ch)
              px[static_cast<std::size_t>((y * 256 + x) * 3 + ch)] =
                  static_cast<unsigned char>((x * (ch + 1) + y * (2 - ch + k % 3) + ((x / 16 + y / 16) % 2) * 40 * c) % 256);
        write_file_atomic(path, encode_jpeg(px, 256, 256, 90));
      }
    }
    return dir.string();
  }();
  return root;
}

data::ImageFolderOptions folder_options_64() {
  data::ImageFolderOptions o;
  o.channels = 3;
  o.height = o.width = 64;
  return o;
}

data::Compose augment_64() {
  return data::Compose{data::RandomResizedCrop(64, 64, {0.6, 1.0}), data::RandomHorizontalFlip(),
                       data::ColorJitter(0.2f, 0.2f, 0.2f), data::ToUnit(),
                       data::Normalize({0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f})};
}

// One worker's work per image: read, decode the 256 x 256 JPEG, resize to 64 x 64 (antialiased), and with
// augment = 1 the train_folder --augment transforms.
void BM_FolderJpeg256PerWorker(benchmark::State& state) {
  const data::ImageFolder folder(jpeg_folder(), folder_options_64());
  const data::Compose tf = augment_64();
  Generator gen(1);
  Tensor image;
  std::int64_t i = 0;
  for (auto _ : state) {
    folder.load(i++ % folder.size(), image);
    if (state.range(0)) tf(image, gen);
    benchmark::DoNotOptimize(image.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_FolderJpeg256PerWorker)->ArgName("augment")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Whole epochs of the DataLoader (batch 32, shuffled, augmented) with `workers` threads, nothing training.
void BM_FolderLoaderEpoch(benchmark::State& state) {
  const data::ImageFolder folder(jpeg_folder(), folder_options_64());
  data::DataLoader loader(folder, {32, true, false, 1, true, {}, state.range(0)}, augment_64());
  for (auto _ : state)
    for (const auto& b : loader) benchmark::DoNotOptimize(b.input.data());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * folder.size());
}
BENCHMARK(BM_FolderLoaderEpoch)->ArgName("workers")->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

EMBER_BENCHMARK_MAIN();
