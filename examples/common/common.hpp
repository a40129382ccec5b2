#pragma once
// What the example programs share: the flags of API.md, the report's preprocessing, one training run with its
// outputs (history.csv, summary.json, the best checkpoint, plots), written atomically into --out.
#include <CLI/CLI.hpp>
#include <ember/core/file.hpp>
#include <ember/data/sign_mnist.hpp>
#include <ember/data/dataloader.hpp>
#include <ember/data/idx.hpp>
#include <ember/data/transforms.hpp>
#include <ember/io/image.hpp>
#include <ember/io/checkpoint.hpp>
#include <ember/models/report.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/fit.hpp>
#include <ember/version.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "distributed.hpp"
#include "plot.hpp"

namespace examples {

namespace fs = std::filesystem;

struct Args {
  std::string data;
  std::string out;
  std::int64_t epochs = 5;
  std::int64_t batch_size = 32;
  double lr = 0.001;
  double momentum = 0.9;
  std::uint64_t seed = 1;
  int threads = 2;
  std::int64_t limit = 0;  // 0: all training images
  std::string head = "logits";
  std::string progress = "auto";
  bool global_batch = false;  // under mpirun: --batch-size is the global batch, split among the processes
};

// Parses the flags every example takes. Returns false when the program should exit (e.g. --help), with the
// exit code in `code`.
inline bool parse_args(int argc, char** argv, const std::string& description, Args& a, int& code) {
  CLI::App app{description};
  app.add_option("--data", a.data, "data directory")->capture_default_str();
  app.add_option("--epochs", a.epochs, "epochs to train")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch-size", a.batch_size, "training batch size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", a.lr, "SGD learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--momentum", a.momentum, "SGD momentum")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", a.seed, "seed for initialisation, shuffling, dropout and augmentation")->capture_default_str();
  app.add_option("--threads", a.threads, "threads for the kernels")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--limit", a.limit, "use only the first N training images (0: all)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--head", a.head, "softmax: the report's softmax-then-cross-entropy; logits: plain logits")
      ->capture_default_str()->check(CLI::IsMember({"softmax", "logits"}));
  app.add_option("--out", a.out, "output directory")->capture_default_str();
  app.add_option("--progress", a.progress, "progress bar: auto (on a terminal), on, off")->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_flag("--global-batch", a.global_batch,
               "under mpirun -np N: --batch-size is the global batch, split among the N processes (default: per "
               "process, global batch N x --batch-size)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    code = world().root() ? app.exit(e) : (e.get_exit_code() ? e.get_exit_code() : 0);
    return false;
  }
  const World& w = world();
  if (w.size > 1) {
    if (a.global_batch && a.batch_size % w.size != 0) {
      std::cerr << "error: --global-batch " << a.batch_size << " does not split among " << w.size << " processes\n";
      code = 1;
      return false;
    }
    const std::int64_t per = a.global_batch ? a.batch_size / w.size : a.batch_size;
    std::cout << "data-parallel training on " << w.size << " processes (MPI): batch " << per
              << " per process, global batch " << per * w.size << "\n";
  }
  return true;
}

// The report's preprocessing: 0..255 -> [0, 1] -> Normalize(0.5, 0.5) -> [-1, 1].
inline ember::data::Compose report_normalize() {
  return ember::data::Compose{ember::data::ToUnit(), ember::data::Normalize(0.5f, 0.5f)};
}

// Only rank 0 writes files in a data-parallel run.
inline void write_text(const std::string& path, const std::string& text) {
  if (world().root()) ember::write_file_atomic(path, text);
}

inline std::string fixed(double v, int digits = 4) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(digits);
  os << v;
  return os.str();
}

// Prints and draws a data set the way the report explores it: sizes, class distribution of train and test,
// and a grid of sample images with their labels.
inline void describe_data(const std::string& title, const ember::data::Dataset& train, const ember::data::Dataset& test,
                          const std::string& out) {
  std::cout << title << ": train " << ember::to_string(train.images.shape()) << ", test "
            << ember::to_string(test.images.shape()) << ", " << train.num_classes << " classes\n";
  const auto htr = train.histogram(), hte = test.histogram();
  std::cout << "  class          train    test\n";
  std::vector<std::string> names;
  std::vector<double> ytr, yte;
  for (std::int64_t c = 0; c < train.num_classes; ++c) {
    const std::string name = c < static_cast<std::int64_t>(train.class_names.size()) ? train.class_names[c]
                                                                                     : std::to_string(c);
    names.push_back(name);
    ytr.push_back(static_cast<double>(htr[c]));
    yte.push_back(static_cast<double>(hte[c]));
    std::printf("  %-12s %7lld %7lld\n", name.c_str(), static_cast<long long>(htr[c]), static_cast<long long>(hte[c]));
  }
  write_text(out + "/classes.svg",
             plot::bar_chart(title + ": class distribution of train and test", "class", "images", names,
                             {{"train", ytr, "#1f77b4"}, {"test", yte, "#ff7f0e"}}));
  // Sample grid: the first 32 training images, 8 per row; their labels go to a caption file and stdout.
  const std::int64_t n = std::min<std::int64_t>(32, train.size());
  if (n > 0) {
    const std::int64_t per = train.images.numel() / train.size();
    ember::Tensor first({n, train.images.size(1), train.images.size(2), train.images.size(3)});
    std::copy(train.images.data(), train.images.data() + n * per, first.data());
    if (world().root()) ember::io::save_grid_png(out + "/samples.png", first, 8);
    // samples.svg shows samples.png scaled up, with each image's label under it (make_grid: padding 2).
    const int scale = 3, tile = 28 + 2, rows = static_cast<int>((n + 7) / 8), label_h = 16;
    std::ostringstream svg;
    svg << "<svg xmlns='http://www.w3.org/2000/svg' xmlns:xlink='http://www.w3.org/1999/xlink' width='"
        << (8 * tile + 2) * scale << "' height='" << rows * (tile * scale + label_h) + 40
        << "' font-family='sans-serif' font-size='13'>\n<rect width='100%' height='100%' fill='white'/>\n"
        << "<text x='10' y='24' font-size='16'>" << plot::detail::escape(title) << ": the first " << n
        << " training images and their labels</text>\n";
    std::string caption = "samples.png, row by row:";
    for (std::int64_t i = 0; i < n; ++i) {
      const std::string& label = names[static_cast<std::size_t>(train.labels[i])];
      const int r = static_cast<int>(i / 8), c = static_cast<int>(i % 8);
      const int y = 36 + r * (tile * scale + label_h);
      svg << "<svg x='" << c * tile * scale << "' y='" << y << "' width='" << tile * scale << "' height='"
          << tile * scale << "' viewBox='" << c * tile << ' ' << r * tile << ' ' << tile << ' ' << tile
          << "'><image xlink:href='samples.png' width='" << 8 * tile + 2 << "' height='" << rows * tile + 2
          << "' style='image-rendering:pixelated'/></svg>\n<text x='" << c * tile * scale + tile * scale / 2
          << "' y='" << y + tile * scale + 12 << "' text-anchor='middle'>"
          << plot::detail::escape(label) << "</text>\n";
      caption += (i % 8 ? " " : "\n") + label;
    }
    write_text(out + "/samples.svg", svg.str() + "</svg>\n");
    std::cout << "  " << caption << "\n";
  }
}

struct Experiment {
  std::string name;   // program name, also summary.json's "experiment"
  std::string title;  // for plots
  std::string dataset;  // the data set's name, for the data plots
  ember::data::Dataset train, test;
  ember::data::Transform train_transform;  // empty: the report's normalisation only
  std::function<ember::nn::Sequential(bool softmax_head)> make_model;
};

// Trains, validates on the test set after every epoch (as the report), keeps the checkpoint with the lowest
// validation loss, and writes every output. Returns the process exit code.
inline int run(const Args& a, Experiment e) {
  namespace data = ember::data;
  namespace train = ember::train;
  if (world().root()) fs::create_directories(a.out);
  ember::set_num_threads(a.threads);
  ember::manual_seed(a.seed);
  if (a.limit > 0 && a.limit < e.train.size()) e.train = e.train.subset(a.limit);
  describe_data(e.dataset.empty() ? e.title : e.dataset, e.train, e.test, a.out);

  const bool softmax_head = a.head == "softmax";
  ember::nn::Sequential model = e.make_model(softmax_head);
  std::cout << "\n" << model << "\n\n";

  data::Transform normalize = report_normalize();
  data::Transform train_tf = e.train_transform ? data::Transform(data::Compose{e.train_transform, normalize}) : normalize;
  const World& w = world();
  data::DataLoaderOptions train_options{a.batch_size, true, false, a.seed}, val_options{1000, false, false, a.seed};
#ifdef EMBER_EXAMPLES_MPI
  // Each process a slice of every global batch, and a share of the validation set (docs/distributed.md).
  std::unique_ptr<ember::dist::GradientReducer> reducer;
  if (w.size > 1) {
    train_options.batch_size = a.global_batch ? a.batch_size / w.size : a.batch_size;
    train_options.sampler = ember::dist::DistributedSampler(*w.ctx, train_options.batch_size).index_sampler();
    val_options.sampler =
        ember::dist::DistributedSampler(*w.ctx, 1000, ember::dist::SamplerMode::evaluation).index_sampler();
    ember::dist::broadcast_parameters(*w.ctx, model);
    reducer = std::make_unique<ember::dist::GradientReducer>(*w.ctx, model);
  }
#endif
  data::DataLoader train_loader(e.train, train_options, train_tf);
  data::DataLoader val_loader(e.test, val_options, normalize);

  ember::nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(model.parameters(), {a.lr, a.momentum});
  train::FitOptions fo;
  fo.epochs = a.epochs;
  fo.checkpoint_path = w.root() ? a.out + "/best.safetensors" : "";
  // The keys checkpoints share with ONNX files (docs/api.md): JSON arrays, read back by tools and programs.
  fo.metadata = {{"experiment", e.name}, {"head", a.head}, {"model", model.repr()},
                 {"classes", nlohmann::json(e.train.class_names).dump()},
                 {"input_shape", nlohmann::json({e.train.channels(), e.train.height(), e.train.width()}).dump()},
                 {"normalize_mean", "[0.5]"}, {"normalize_std", "[0.5]"}};
  fo.log = &std::cout;
  fo.progress = a.progress == "on" ? train::ProgressMode::on
                : a.progress == "off" ? train::ProgressMode::off : train::ProgressMode::automatic;
#ifdef EMBER_EXAMPLES_MPI
  if (reducer) {
    fo.before_update = reducer->before_update();
    fo.reduce_epoch = [&](train::EpochStats& s) {
      ember::dist::reduce(*w.ctx, s, train_loader.num_samples(), val_loader.num_samples());
    };
    if (!w.root()) fo.progress = train::ProgressMode::off;
  }
#endif
  std::cout << "training " << e.name << ": " << e.train.size() << " images, batch " << train_options.batch_size * w.size << ", "
            << a.epochs << " epochs, SGD lr " << a.lr << " momentum " << a.momentum << ", head " << a.head << ", "
            << a.threads << " threads, seed " << a.seed << "\n";
  const train::History h = train::fit(model, loss, opt, train_loader, val_loader, fo);

  // history.csv and the curves.
  std::string csv = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds,images_per_second\n";
  std::vector<double> tl, vl, va, ta;
  double seconds = 0;
  for (const auto& s : h.epochs) {
    csv += std::to_string(s.epoch) + "," + fixed(s.train_loss, 6) + "," + fixed(s.train_accuracy, 6) + "," +
           fixed(s.val_loss, 6) + "," + fixed(s.val_accuracy, 6) + "," + fixed(s.seconds, 3) + "," +
           fixed(s.images_per_second, 1) + "\n";
    tl.push_back(s.train_loss);
    vl.push_back(s.val_loss);
    ta.push_back(s.train_accuracy);
    va.push_back(s.val_accuracy);
    seconds += s.seconds;
  }
  write_text(a.out + "/history.csv", csv);
  write_text(a.out + "/loss.svg", plot::line_chart(e.title + ": loss per epoch (" + a.head + " head)", "epoch",
                                                   "cross-entropy loss",
                                                   {{"train", tl, "#1f77b4"}, {"validation (test set)", vl, "#ff7f0e"}}));
  write_text(a.out + "/accuracy.svg",
             plot::line_chart(e.title + ": accuracy per epoch (" + a.head + " head)", "epoch", "accuracy",
                              {{"train", ta, "#1f77b4"}, {"validation (test set)", va, "#ff7f0e"}}, 0.0, 1.0));

  // The best checkpoint, evaluated again: per-class recall and how many classes it ever predicts.
  nlohmann::json summary;
  if (h.best_epoch > 0) {
    if (w.root()) ember::io::load_checkpoint(model, fo.checkpoint_path);
#ifdef EMBER_EXAMPLES_MPI
    if (w.size > 1) ember::dist::broadcast_parameters(*w.ctx, model);
    const auto local = train::evaluate(model, val_loader, 0.0, e.test.num_classes);
    const auto ev = w.size > 1 ? ember::dist::reduce(*w.ctx, local) : local;
#else
    const auto ev = train::evaluate(model, val_loader, 0.0, e.test.num_classes);
#endif
    std::set<std::int64_t> predicted;
    for (std::int64_t p = 0; p < e.test.num_classes; ++p)
      for (std::int64_t t = 0; t < e.test.num_classes; ++t)
        if (ev.confusion.at(t, p) > 0) predicted.insert(p);
    std::cout << "best epoch " << h.best_epoch << ": val_loss " << fixed(ev.loss) << ", val_acc " << fixed(ev.accuracy)
              << ", classes predicted " << predicted.size() << " of " << e.test.num_classes << "\n";
    summary["classes_predicted"] = predicted.size();
    summary["per_class_recall"] = ev.recall;
    summary["per_class_precision"] = ev.precision;
  }
  summary["experiment"] = e.name;
  summary["head"] = a.head;
  summary["epochs"] = a.epochs;
  summary["batch_size"] = train_options.batch_size * w.size;
  summary["processes"] = w.size;
  summary["lr"] = a.lr;
  summary["momentum"] = a.momentum;
  summary["seed"] = a.seed;
  summary["threads"] = a.threads;
  summary["data"] = a.data;
  summary["train_images"] = e.train.size();
  summary["test_images"] = e.test.size();
  summary["best_epoch"] = h.best_epoch;
  summary["best_val_loss"] = h.best_val_loss;
  summary["best_val_accuracy"] = h.best_val_accuracy;
  summary["final_val_accuracy"] = h.epochs.empty() ? 0.0 : h.epochs.back().val_accuracy;
  summary["seconds_per_epoch"] = h.epochs.empty() ? 0.0 : seconds / static_cast<double>(h.epochs.size());
  summary["ember_version"] = ember::version();
  write_text(a.out + "/summary.json", summary.dump(2) + "\n");
  std::cout << "wrote " << a.out << "/{history.csv,summary.json,best.safetensors,loss.svg,accuracy.svg,classes.svg,"
            << "samples.png,samples.svg}\n";
  return 0;
}

// Runs `body`, turning any exception into a message on stderr and exit code 1.
inline int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& ex) {
    end_job_on_error(ex.what());
    std::cerr << "error: " << ex.what() << "\n";
    return 1;
  }
}

}  // namespace examples
