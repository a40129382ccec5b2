// Train on your own pictures: a folder with one sub-folder per class (PNG, JPEG, BMP; any size, colour or
// gray), decoded lazily by the loader's workers, resized to --size, optionally augmented; writes the best
// checkpoint with its class names and preprocessing in the metadata, and the same outputs as the other
// examples (history.csv, summary.json, plots).
//   train_folder --data photos/train [--val photos/val | --val-fraction 0.2] --size 64 --channels 3
//                --model small-cnn --epochs 10 --out runs/photos
//   train_folder --predict --checkpoint runs/photos/best.safetensors a.jpg b.png
// Predict reads the size, channels, normalisation, class names and model from the checkpoint's metadata.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ember/data/image_folder.hpp>
#include <ember/data/split.hpp>
#include <ember/data/transforms_color.hpp>
#include <ember/train/classifier.hpp>
#include <memory>
#include <numeric>

#include "common/common.hpp"

namespace {

namespace data = ember::data;
namespace nn = ember::nn;
namespace train = ember::train;
using ember::Tensor;
using nlohmann::json;

// Three conv blocks (3x3 conv, BatchNorm, ReLU, 2x2 max-pool: 16, 32, 64 channels), a fourth pool, then
// 64 (size/16)^2 -> 128 -> classes.
nn::Sequential small_cnn(std::int64_t channels, std::int64_t size, std::int64_t classes, bool softmax_head) {
  const std::int64_t side = size / 16;
  nn::Sequential m("SmallCNN", {{"conv1", nn::Conv2d(channels, 16, 3, 1, 1)}, {"bn1", nn::BatchNorm2d(16)},
                                {"relu1", nn::ReLU()},                         {"pool1", nn::MaxPool2d(2)},
                                {"conv2", nn::Conv2d(16, 32, 3, 1, 1)},       {"bn2", nn::BatchNorm2d(32)},
                                {"relu2", nn::ReLU()},                         {"pool2", nn::MaxPool2d(2)},
                                {"conv3", nn::Conv2d(32, 64, 3, 1, 1)},       {"bn3", nn::BatchNorm2d(64)},
                                {"relu3", nn::ReLU()},                         {"pool3", nn::MaxPool2d(2)},
                                {"pool4", nn::MaxPool2d(2)},                   {"flatten", nn::Flatten()},
                                {"fc1", nn::Linear(64 * side * side, 128)},   {"relu4", nn::ReLU()},
                                {"dropout", nn::Dropout(0.25)},                {"fc2", nn::Linear(128, classes)}});
  if (softmax_head) m.add("softmax", nn::Softmax(1));
  return m;
}

// The training loader, timing how long the training step waits for each batch: the loader keeps up when
// that is a small share of the epoch.
template <typename L>
struct TimedLoader {
  L& inner;
  double wait_seconds = 0;
  using Clock = std::chrono::steady_clock;
  struct Iterator {
    typename L::Iterator it;
    TimedLoader* owner;
    const auto& operator*() const { return *it; }
    Iterator& operator++() {
      const auto t0 = Clock::now();
      ++it;
      owner->wait_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
      return *this;
    }
    bool operator!=(const Iterator& o) const { return it != o.it; }
    bool operator==(const Iterator& o) const { return it == o.it; }
  };
  Iterator begin() {
    const auto t0 = Clock::now();
    Iterator i{inner.begin(), this};
    wait_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    return i;
  }
  Iterator end() { return Iterator{inner.end(), this}; }
  std::int64_t size() const { return inner.size(); }
  void set_epoch(std::int64_t e) { inner.set_epoch(e); }
  const auto& dataset() const { return inner.dataset(); }
};


struct Options {
  examples::Args a;
  std::string val_dir;
  double val_fraction = 0.2;
  std::int64_t size = 64;
  int channels = 3;
  std::string model = "small-cnn";
  std::string fit = "stretch";
  std::int64_t workers = 2;
  bool cache = false, augment = false, skip_bad = false, exif = false;
  // predict
  bool predict = false;
  std::string checkpoint;
  std::vector<std::string> images;
};

data::ImageFolderOptions folder_options(const Options& o) {
  data::ImageFolderOptions f;
  f.channels = o.channels;
  f.height = f.width = o.size;
  f.fit = o.fit == "crop" ? data::FitMode::ResizeCenterCrop : data::FitMode::Stretch;
  f.cache = o.cache;
  f.on_error = o.skip_bad ? data::OnBadImage::Skip : data::OnBadImage::Error;
  f.exif = o.exif ? ember::format::ExifOrientation::Apply : ember::format::ExifOrientation::Ignore;
  return f;
}

int run_training(const Options& o) {
  const examples::Args& a = o.a;
  if (a.data.empty()) throw std::invalid_argument("--data DIR is required (a folder with one sub-folder per class)");
  if (o.size < 16) throw std::invalid_argument("--size must be at least 16 for small-cnn, got " + std::to_string(o.size));
  examples::fs::create_directories(a.out);
  ember::set_num_threads(a.threads);
  ember::manual_seed(a.seed);

  const data::ImageFolder all(a.data, folder_options(o));
  std::unique_ptr<data::ImageFolder> val_folder;
  std::vector<std::int64_t> train_idx, val_idx;
  if (!o.val_dir.empty()) {
    val_folder = std::make_unique<data::ImageFolder>(o.val_dir, folder_options(o));
    if (val_folder->classes() != all.classes())
      throw std::invalid_argument(o.val_dir + ": its class folders differ from those of " + a.data);
    train_idx.resize(static_cast<std::size_t>(all.size()));
    std::iota(train_idx.begin(), train_idx.end(), 0);
    val_idx.resize(static_cast<std::size_t>(val_folder->size()));
    std::iota(val_idx.begin(), val_idx.end(), 0);
  } else {
    const data::SplitIndices s = data::stratified_split(all, o.val_fraction, a.seed);
    train_idx = s.train;
    val_idx = s.val;
  }
  if (a.limit > 0 && a.limit < static_cast<std::int64_t>(train_idx.size())) {  // a stratified share, seeded
    const data::Subset<data::ImageFolder> pool(all, train_idx);
    const data::SplitIndices keep =
        data::stratified_split(pool, 1.0 - static_cast<double>(a.limit) / static_cast<double>(train_idx.size()), a.seed);
    std::vector<std::int64_t> kept;
    for (std::int64_t k : keep.train) kept.push_back(train_idx[static_cast<std::size_t>(k)]);
    train_idx = kept;
  }
  const data::Subset<data::ImageFolder> train_set(all, train_idx), val_set(val_folder ? *val_folder : all, val_idx);
  if (train_set.size() == 0 || val_set.size() == 0)
    throw std::invalid_argument("need at least one training and one validation image (--val or --val-fraction)");

  const std::vector<std::string>& classes = all.classes();
  const std::int64_t k = all.num_classes;
  std::cout << "data " << a.data << ": " << all.size() << " images, " << k << " classes"
            << (all.skipped() ? ", " + std::to_string(all.skipped()) + " unreadable files skipped" : "") << "\n";
  for (const auto& s : all.skipped_files()) std::cout << "  skipped " << s << "\n";
  const auto htr = train_set.histogram(), hva = val_set.histogram();
  std::vector<double> ytr, yva;
  std::cout << "  class                 train     val\n";
  for (std::int64_t c = 0; c < k; ++c) {
    std::printf("  %-20s %6lld %7lld\n", classes[static_cast<std::size_t>(c)].c_str(),
                static_cast<long long>(htr[static_cast<std::size_t>(c)]), static_cast<long long>(hva[static_cast<std::size_t>(c)]));
    ytr.push_back(static_cast<double>(htr[static_cast<std::size_t>(c)]));
    yva.push_back(static_cast<double>(hva[static_cast<std::size_t>(c)]));
  }
  examples::write_text(a.out + "/classes.svg", examples::plot::bar_chart("class distribution", "class", "images", classes,
                                                               {{"train", ytr, "#1f77b4"}, {"validation", yva, "#ff7f0e"}}));
  {
    const std::int64_t n = std::min<std::int64_t>(32, train_set.size());
    Tensor grid({n, o.channels, o.size, o.size}), one;
    for (std::int64_t i = 0; i < n; ++i) {
      train_set.load(i, one);
      std::copy(one.begin(), one.end(), grid.data() + i * one.numel());
    }
    ember::io::save_grid_png(a.out + "/samples.png", grid, 8);
  }

  const std::vector<float> mean(static_cast<std::size_t>(o.channels), 0.5f), stdev(static_cast<std::size_t>(o.channels), 0.5f);
  const data::Compose normalize{data::ToUnit(), data::Normalize(mean, stdev)};
  data::Transform train_tf = normalize;
  if (o.augment)
    train_tf = data::Compose{data::RandomResizedCrop(o.size, o.size, {0.6, 1.0}), data::RandomHorizontalFlip(),
                             data::ColorJitter(0.2f, 0.2f, 0.2f), normalize};
  data::DataLoader train_loader(train_set, {a.batch_size, true, false, a.seed, true, {}, o.workers}, train_tf);
  data::DataLoader val_loader(val_set, {256, false, false, a.seed, true, {}, o.workers}, normalize);
  TimedLoader<decltype(train_loader)> timed{train_loader};

  const bool softmax_head = a.head == "softmax";
  nn::Sequential model = small_cnn(o.channels, o.size, k, softmax_head);
  std::cout << "\n" << model << "\n\n";
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(model.parameters(), {a.lr, a.momentum});
  train::FitOptions fo;
  fo.epochs = a.epochs;
  fo.checkpoint_path = a.out + "/best.safetensors";
  // What train::Classifier (--predict) reads back: classes, input shape, normalisation, resize mode, head.
  train::Preprocessing pre;
  pre.classes = classes;
  pre.input_shape = {o.channels, o.size, o.size};
  pre.mean = mean;
  pre.std = stdev;
  pre.fit = o.fit == "crop" ? data::FitMode::ResizeCenterCrop : data::FitMode::Stretch;
  pre.softmax_head = softmax_head;
  fo.metadata = pre.to_metadata();
  fo.metadata.insert({{"experiment", "train_folder"}, {"architecture", o.model}, {"model", model.repr()}});
  fo.log = &std::cout;
  fo.progress = a.progress == "on" ? train::ProgressMode::on
                : a.progress == "off" ? train::ProgressMode::off : train::ProgressMode::automatic;
  std::vector<double> waits;
  fo.on_epoch = [&](const train::EpochStats& s) {
    waits.push_back(timed.wait_seconds);
    std::printf("  epoch %lld: %.1f images/s, the step waited %.3f s of %.2f s for data (%.1f%%)\n",
                static_cast<long long>(s.epoch), s.images_per_second, timed.wait_seconds, s.train_seconds,
                s.train_seconds > 0 ? 100.0 * timed.wait_seconds / s.train_seconds : 0.0);
    timed.wait_seconds = 0;
  };
  std::cout << "training train_folder: " << train_set.size() << " images (" << val_set.size() << " validation), "
            << o.channels << " x " << o.size << " x " << o.size << ", batch " << a.batch_size << ", " << a.epochs
            << " epochs, SGD lr " << a.lr << " momentum " << a.momentum << ", " << a.threads << " threads, "
            << o.workers << " loader workers, seed " << a.seed << "\n";
  const train::History h = train::fit(model, loss, opt, timed, val_loader, fo);

  std::string csv = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second,data_wait_seconds\n";
  std::vector<double> tl, vl, ta, va;
  double seconds = 0, train_seconds = 0, wait = 0, ips = 0;
  for (std::size_t e = 0; e < h.epochs.size(); ++e) {
    const auto& s = h.epochs[e];
    csv += std::to_string(s.epoch) + "," + examples::fixed(s.train_loss, 6) + "," + examples::fixed(s.train_accuracy, 6) +
           "," + examples::fixed(s.val_loss, 6) + "," + examples::fixed(s.val_accuracy, 6) + "," +
           examples::fixed(s.seconds, 3) + "," + examples::fixed(s.images_per_second, 1) + "," +
           examples::fixed(waits[e], 3) + "\n";
    tl.push_back(s.train_loss), vl.push_back(s.val_loss), ta.push_back(s.train_accuracy), va.push_back(s.val_accuracy);
    seconds += s.seconds, train_seconds += s.train_seconds, wait += waits[e], ips = s.images_per_second;
  }
  examples::write_text(a.out + "/history.csv", csv);
  examples::write_text(a.out + "/loss.svg", examples::plot::line_chart("loss per epoch", "epoch", "cross-entropy loss",
                                                             {{"train", tl, "#1f77b4"}, {"validation", vl, "#ff7f0e"}}));
  examples::write_text(a.out + "/accuracy.svg", examples::plot::line_chart("accuracy per epoch", "epoch", "accuracy",
                                                                 {{"train", ta, "#1f77b4"}, {"validation", va, "#ff7f0e"}}, 0.0, 1.0));
  json summary;
  summary["experiment"] = "train_folder";
  summary["data"] = a.data;
  summary["classes"] = classes;
  summary["input_shape"] = {o.channels, o.size, o.size};
  summary["epochs"] = a.epochs;
  summary["batch_size"] = a.batch_size;
  summary["lr"] = a.lr;
  summary["momentum"] = a.momentum;
  summary["seed"] = a.seed;
  summary["threads"] = a.threads;
  summary["workers"] = o.workers;
  summary["train_images"] = train_set.size();
  summary["val_images"] = val_set.size();
  summary["skipped_files"] = all.skipped();
  summary["best_epoch"] = h.best_epoch;
  summary["best_val_loss"] = h.best_val_loss;
  summary["best_val_accuracy"] = h.best_val_accuracy;
  summary["final_val_accuracy"] = h.epochs.empty() ? 0.0 : h.epochs.back().val_accuracy;
  summary["seconds_per_epoch"] = h.epochs.empty() ? 0.0 : seconds / static_cast<double>(h.epochs.size());
  summary["images_per_second"] = ips;
  summary["data_wait_fraction"] = train_seconds > 0 ? wait / train_seconds : 0.0;
  summary["ember_version"] = ember::version();
  examples::write_text(a.out + "/summary.json", summary.dump(2) + "\n");
  std::cout << "best epoch " << h.best_epoch << ": val_acc " << examples::fixed(h.best_val_accuracy)
            << "; the step waited for data " << examples::fixed(100.0 * (train_seconds > 0 ? wait / train_seconds : 0.0), 1)
            << "% of the training time\nwrote " << a.out
            << "/{history.csv,summary.json,best.safetensors,loss.svg,accuracy.svg,classes.svg,samples.png}\n";
  return 0;
}

int run_predict(const Options& o) {
  if (o.checkpoint.empty() || o.images.empty())
    throw std::invalid_argument("--predict needs --checkpoint FILE and image files");
  ember::set_num_threads(o.a.threads);
  // The architecture is this program's (the checkpoint holds weights, not code); train::Classifier loads the
  // weights and the preprocessing the metadata records (size, channels, normalisation, class names).
  const auto meta = ember::io::read_safetensors(o.checkpoint).metadata;
  auto get = [&](const char* key) -> std::string {
    const auto it = meta.find(key);
    if (it == meta.end())
      throw std::invalid_argument(o.checkpoint + ": no '" + key + "' in the metadata (not written by train_folder?)");
    return it->second;
  };
  if (get("architecture") != "small-cnn")
    throw std::invalid_argument(o.checkpoint + ": unknown architecture '" + get("architecture") + "'");
  const auto pre = train::Preprocessing::from_metadata(meta, o.checkpoint);
  if (pre.input_shape[1] != pre.input_shape[2])
    throw std::invalid_argument(o.checkpoint + ": input_shape " + get("input_shape") + ", expected [C, S, S]");
  nn::Sequential model = small_cnn(pre.input_shape[0], pre.input_shape[1],
                                   static_cast<std::int64_t>(pre.classes.size()), pre.softmax_head);
  train::Classifier classifier(model, o.checkpoint);
  classifier.image_options().exif = o.exif ? ember::format::ExifOrientation::Apply : ember::format::ExifOrientation::Ignore;
  for (const auto& path : o.images) {
    const train::ClassPrediction p = classifier.predict_file(path);
    const auto top = p.top(3);
    std::printf("%s: %s %.4f  (top %zu:", path.c_str(), p.label.c_str(), p.probability, top.size());
    for (std::size_t t = 0; t < top.size(); ++t) {
      const auto c = static_cast<std::size_t>(top[t]);
      std::printf("%s %s %.4f", t ? "," : "", pre.classes[c].c_str(), p.probabilities[c]);
    }
    std::printf(")\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  examples::Args& a = o.a;
  a.epochs = 10;
  a.batch_size = 32;
  a.lr = 0.01;
  a.out = "runs/train_folder";
  CLI::App app{"Train a classifier on a folder of images (one sub-folder per class), or predict with it"};
  app.add_option("--data", a.data, "training folder: one sub-folder per class");
  app.add_option("--val", o.val_dir, "validation folder with the same class sub-folders");
  app.add_option("--val-fraction", o.val_fraction, "without --val: the share of --data held out, stratified and seeded")
      ->capture_default_str()->check(CLI::Range(0.0, 0.9));
  app.add_option("--size", o.size, "images are brought to size x size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--channels", o.channels, "1 (gray) or 3 (RGB)")->capture_default_str()->check(CLI::IsMember({1, 3}));
  app.add_option("--model", o.model, "the network")->capture_default_str()->check(CLI::IsMember({"small-cnn"}));
  app.add_option("--resize", o.fit, "stretch: resize to size x size; crop: keep the aspect ratio, crop the centre")
      ->capture_default_str()->check(CLI::IsMember({"stretch", "crop"}));
  app.add_option("--workers", o.workers, "loader threads decoding and transforming images")->capture_default_str()
      ->check(CLI::Range(0, 64));
  app.add_flag("--cache", o.cache, "keep decoded images in memory after the first epoch");
  app.add_flag("--augment", o.augment, "RandomResizedCrop(scale 0.6..1), horizontal flips, ColorJitter(0.2, 0.2, 0.2)");
  app.add_flag("--skip-bad", o.skip_bad, "leave out unreadable images (counted) instead of stopping");
  app.add_flag("--exif", o.exif, "turn JPEGs upright by their EXIF orientation");
  app.add_option("--epochs", a.epochs, "epochs to train")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch-size", a.batch_size, "training batch size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", a.lr, "SGD learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--momentum", a.momentum, "SGD momentum")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", a.seed, "seed for the split, initialisation, shuffling, dropout and augmentation")->capture_default_str();
  app.add_option("--threads", a.threads, "threads for the kernels")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--limit", a.limit, "use only N training images (a stratified, seeded share; 0: all)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--head", a.head, "logits (plain) or softmax")->capture_default_str()->check(CLI::IsMember({"softmax", "logits"}));
  app.add_option("--out", a.out, "output directory")->capture_default_str();
  app.add_option("--progress", a.progress, "progress bar: auto, on, off")->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_flag("--predict", o.predict, "classify images with --checkpoint instead of training");
  app.add_option("--checkpoint", o.checkpoint, "with --predict: a checkpoint written by train_folder");
  app.add_option("images", o.images, "with --predict: image files");
  CLI11_PARSE(app, argc, argv);
  return examples::guarded([&] { return o.predict ? run_predict(o) : run_training(o); });
}
