#include <ember/ember.hpp>
using namespace ember;

int main() {
  manual_seed(1);
  nn::Sequential model("Net", {{"flatten", nn::Flatten()},
                               {"fc1", nn::Linear(784, 512)}, {"relu1", nn::ReLU()},
                               {"fc2", nn::Linear(512, 512)}, {"relu2", nn::ReLU()},
                               {"fc3", nn::Linear(512, 10)}});
  std::cout << model << "\n";  // prints as PyTorch prints the same model

  data::Dataset train = data::load_mnist("data/mnist", true), test = data::load_mnist("data/mnist", false);
  data::Compose to_pm1{data::ToUnit(), data::Normalize(0.5f, 0.5f)};  // 0..255 -> [-1, 1]
  data::DataLoader train_loader(train, {32, /*shuffle=*/true}, to_pm1), test_loader(test, {1000}, to_pm1);

  nn::CrossEntropyLoss loss;
  optim::SGD sgd(model.parameters(), {/*lr=*/0.001, /*momentum=*/0.9});
  train::FitOptions options;
  options.epochs = 5;
  options.checkpoint_path = "best.safetensors";  // the epoch with the lowest validation loss
  options.log = &std::cout;
  train::fit(model, loss, sgd, train_loader, test_loader, options);

  io::load_checkpoint(model, "best.safetensors");
  for (const data::Batch& batch : test_loader) {
    Tensor logits = model.predict(batch.input);  // eval-mode inference; changes nothing in the model
    std::cout << "first test image: class " << train::argmax_rows(logits)[0] << ", label " << batch.target[0] << "\n";
    break;
  }
}
