// A new user's first training program, for docs/compile-times.md: a folder of colour photos, a small residual
// CNN, AdamW, fit with a checkpoint. Compiled (not run) by `scripts/docs.sh compile-times`.
#include <ember/ember.hpp>

#include <iostream>

using namespace ember;

int main(int argc, char** argv) {
  const std::string root = argc > 1 ? argv[1] : "photos";
  data::ImageFolderOptions folder;
  folder.height = folder.width = 64;
  data::ImageFolder train_set(root + "/train", folder), val_set(root + "/val", folder);
  data::Compose augment{data::RandomHorizontalFlip(), data::ToUnit(), data::Normalize({0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f})};
  data::Compose plain{data::ToUnit(), data::Normalize({0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f})};
  data::DataLoader train_loader(train_set, {32, true}, augment), val_loader(val_set, {64}, plain);

  auto block = [](std::int64_t c) {
    return nn::Residual(nn::Sequential({{"conv1", nn::Conv2d(c, c, 3, 1, 1, 1, 1, false)}, {"bn1", nn::BatchNorm2d(c)},
                                        {"relu", nn::ReLU()}, {"conv2", nn::Conv2d(c, c, 3, 1, 1, 1, 1, false)},
                                        {"bn2", nn::BatchNorm2d(c)}}));
  };
  nn::Sequential model("Net", {{"stem", nn::Conv2d(3, 32, 3, 2, 1)}, {"relu", nn::ReLU()}, {"block1", block(32)},
                               {"block2", block(32)}, {"pool", nn::AdaptiveAvgPool2d(1)}, {"flatten", nn::Flatten()},
                               {"fc", nn::Linear(32, static_cast<std::int64_t>(train_set.classes().size()))}});
  nn::CrossEntropyLoss loss;
  optim::AdamW opt(model.parameters(), {1e-3});
  train::FitOptions options;
  options.epochs = 10;
  options.checkpoint_path = "best.safetensors";
  options.log = &std::cout;
  train::fit(model, loss, opt, train_loader, val_loader, options);
}
