// Past the report's recipe: a small residual network (ResNet-style blocks with BatchNorm, global average
// pooling) trained with AdamW (no weight decay on biases and normalisation weights), a linear warm-up and a
// cosine schedule stepped per batch, against the report's CNN with SGD (lr 0.001, momentum 0.9) on the same
// images, epochs, batches and seed. Reads Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist) or
// --data, an MNIST-format directory. Prints both validation accuracies and writes summary.json into --out.
//
//   build/examples/fashion_resnet --epochs 3 --limit 10000 --seed 1
#include <algorithm>
#include <string>

#include <ember/ember.hpp>

#include "common/common.hpp"

namespace nn = ember::nn;
namespace optim = ember::optim;
namespace train = ember::train;
namespace data = ember::data;

namespace {

struct Args {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string out = "runs/fashion_resnet";
  std::int64_t epochs = 3;
  std::int64_t batch_size = 64;
  std::int64_t limit = 0;  // 0: all 60,000 training images
  std::int64_t width = 16;
  double lr = 5e-3;
  double weight_decay = 0.05;
  double warmup = 0.1;  // fraction of the steps
  double sgd_lr = 0.001;
  std::uint64_t seed = 1;
  int threads = 2;
  std::string models = "both";
  std::string progress = "auto";
};

// conv 3x3 (stride), BatchNorm, ReLU, conv 3x3, BatchNorm; a 1x1 strided conv + BatchNorm shortcut when the
// shape changes; ReLU after the sum.
void add_block(nn::Sequential& net, const std::string& name, std::int64_t in, std::int64_t out, std::int64_t stride) {
  nn::Sequential body("Sequential", {{"conv1", nn::Conv2d(in, out, 3, stride, 1)},
                                     {"bn1", nn::BatchNorm2d(out)},
                                     {"relu", nn::ReLU()},
                                     {"conv2", nn::Conv2d(out, out, 3, 1, 1)},
                                     {"bn2", nn::BatchNorm2d(out)}});
  if (in == out && stride == 1) {
    net.add(name, nn::Residual(std::move(body)));
  } else {
    nn::Sequential shortcut("Sequential", {{"conv", nn::Conv2d(in, out, 1, stride, 0)}, {"bn", nn::BatchNorm2d(out)}});
    net.add(name, nn::Residual(std::move(body), std::move(shortcut)));
  }
  net.add(name + "_relu", nn::ReLU());
}

// 28 x 28 -> stem (w) -> block (2w, 14 x 14) -> block (2w) -> block (4w, 7 x 7) -> global average pool ->
// classes. No block at 28 x 28: on a CPU it would cost as much as the rest together.
nn::Sequential small_resnet(std::int64_t classes, std::int64_t w) {
  nn::Sequential net("SmallResNet", {});
  net.add("stem", nn::Conv2d(1, w, 3, 1, 1));
  net.add("stem_bn", nn::BatchNorm2d(w));
  net.add("stem_relu", nn::ReLU());
  add_block(net, "block1", w, 2 * w, 2);
  add_block(net, "block2", 2 * w, 2 * w, 1);
  add_block(net, "block3", 2 * w, 4 * w, 2);
  net.add("pool", nn::AdaptiveAvgPool2d(1));
  net.add("flatten", nn::Flatten());
  net.add("fc", nn::Linear(4 * w, classes));
  return net;
}

struct Result {
  double final_accuracy = 0, best_accuracy = 0, seconds = 0;
  std::int64_t parameters = 0;
};

template <class Opt>
Result train_model(nn::Sequential& model, Opt& opt, optim::LRScheduler* schedule, data::DataLoader& train_loader,
                   data::DataLoader& val_loader, const Args& a, const std::string& name) {
  nn::CrossEntropyLoss loss;
  train::FitOptions fo;
  fo.epochs = a.epochs;
  fo.scheduler = schedule;
  fo.schedule_every = train::ScheduleEvery::batch;
  fo.log = &std::cout;
  fo.progress = a.progress == "on" ? train::ProgressMode::on
                : a.progress == "off" ? train::ProgressMode::off : train::ProgressMode::automatic;
  fo.checkpoint_path = a.out + "/" + name + "_best.safetensors";
  std::cout << "\n" << name << ":\n" << model << "\n";
  const train::History h = train::fit(model, loss, opt, train_loader, val_loader, fo);
  Result r;
  for (const auto& e : h.epochs) r.seconds += e.seconds;
  r.final_accuracy = h.epochs.empty() ? 0.0 : h.epochs.back().val_accuracy;
  for (const auto& e : h.epochs) r.best_accuracy = std::max(r.best_accuracy, e.val_accuracy);
  for (const auto* p : model.parameters()) r.parameters += p->value.numel();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"A small residual network with AdamW and a cosine schedule vs the report's CNN with SGD"};
  app.add_option("--data", a.data, "MNIST-format directory")->capture_default_str();
  app.add_option("--out", a.out, "output directory")->capture_default_str();
  app.add_option("--epochs", a.epochs, "epochs for each model")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--batch-size", a.batch_size, "training batch size")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--limit", a.limit, "use only the first N training images (0: all)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--width", a.width, "channels of the residual network's first stage")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--lr", a.lr, "AdamW's peak learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--weight-decay", a.weight_decay, "AdamW's weight decay (not on biases and BatchNorm)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", a.warmup, "linear warm-up, as a fraction of the steps")->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--sgd-lr", a.sgd_lr, "the report CNN's SGD learning rate")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", a.seed, "seed for initialisation, shuffling and dropout")->capture_default_str();
  app.add_option("--threads", a.threads, "threads for the kernels")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--models", a.models, "both, resnet or cnn")->capture_default_str()
      ->check(CLI::IsMember({"both", "resnet", "cnn"}));
  app.add_option("--progress", a.progress, "progress bar: auto, on, off")->capture_default_str()
      ->check(CLI::IsMember({"auto", "on", "off"}));
  CLI11_PARSE(app, argc, argv);
  try {
    std::filesystem::create_directories(a.out);
    ember::set_num_threads(a.threads);
    const auto classes = ember::data::fashion_mnist_classes();
    data::Dataset train_set = data::load_mnist(a.data, true, classes);
    const data::Dataset test_set = data::load_mnist(a.data, false, classes);
    if (a.limit > 0 && a.limit < train_set.size()) train_set = train_set.subset(a.limit);
    const data::Compose normalize = examples::report_normalize();
    const std::int64_t n = train_set.num_classes;
    std::cout << "data: " << a.data << ", " << train_set.size() << " training images, " << test_set.size()
              << " test images; " << a.epochs << " epochs, batch " << a.batch_size << ", seed " << a.seed << ", "
              << a.threads << " threads\n";

    nlohmann::json summary = {{"experiment", "fashion_resnet"}, {"data", a.data},
                              {"train_images", train_set.size()}, {"test_images", test_set.size()},
                              {"epochs", a.epochs},             {"batch_size", a.batch_size},
                              {"seed", a.seed},                 {"threads", a.threads}};
    auto record = [&](const std::string& key, const Result& r) {
      summary[key] = {{"final_val_accuracy", r.final_accuracy}, {"best_val_accuracy", r.best_accuracy},
                      {"seconds", r.seconds}, {"parameters", r.parameters}};
      std::cout << key << ": final val_acc " << r.final_accuracy << ", best " << r.best_accuracy << ", "
                << r.parameters << " parameters, " << r.seconds << " s\n";
    };

    if (a.models != "cnn") {
      ember::manual_seed(a.seed);
      data::DataLoader train_loader(train_set, {a.batch_size, true, false, a.seed}, normalize);
      data::DataLoader val_loader(test_set, {1000, false, false, a.seed}, normalize);
      nn::Sequential model = small_resnet(n, a.width);
      optim::AdamW opt(optim::weight_decay_groups(model.named_parameters(),
                                                  optim::AdamWOptions{a.lr, 0.9, 0.999, 1e-8, a.weight_decay}));
      const auto steps = a.epochs * static_cast<std::int64_t>(train_loader.size());
      const auto warm = std::max<std::int64_t>(1, static_cast<std::int64_t>(a.warmup * static_cast<double>(steps)));
      optim::LinearLR warmup(opt, 0.01, 1.0, warm);
      optim::CosineAnnealingLR cosine(opt, std::max<std::int64_t>(1, steps - warm));
      optim::SequentialLR schedule(opt, {&warmup, &cosine}, {warm});
      std::cout << "\nAdamW lr " << a.lr << ", weight decay " << a.weight_decay << ", warm-up " << warm
                << " of " << steps << " steps, then cosine";
      // The warm-up and the cosine count batches: fit steps the schedule after every batch.
      const Result r = train_model(model, opt, &schedule, train_loader, val_loader, a, "resnet");
      record("resnet_adamw_cosine", r);
    }
    if (a.models != "resnet") {
      ember::manual_seed(a.seed);
      data::DataLoader train_loader(train_set, {a.batch_size, true, false, a.seed}, normalize);
      data::DataLoader val_loader(test_set, {1000, false, false, a.seed}, normalize);
      nn::Sequential model = ember::models::report_cnn(n, false);
      optim::SGD opt(model.parameters(), {a.sgd_lr, 0.9});
      record("report_cnn_sgd", train_model(model, opt, nullptr, train_loader, val_loader, a, "report_cnn"));
    }
    examples::write_text(a.out + "/summary.json", summary.dump(2) + "\n");
    std::cout << "wrote " << a.out << "/summary.json\n";
    return 0;
  } catch (const std::exception& ex) {
    std::cerr << "error: " << ex.what() << "\n";
    return 1;
  }
}
