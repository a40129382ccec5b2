// An outside project's first program, built three ways by the ctest `consumer_projects` (find_package,
// add_subdirectory, pkg-config). Through the umbrella header only, it trains a small classifier on a separable
// synthetic problem, checks that it learned, saves a checkpoint, loads it into a fresh model and predicts.
// Exits non-zero, saying why, when anything is off.
#include <ember/ember.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "consumer: FAILED: " << what << "\n";
    ++failures;
  }
}

// Three classes of points in 8 dimensions, each a Gaussian blob (sigma 0.5) around its own centre.
void make_blobs(std::int64_t n, ember::Generator& gen, ember::Tensor& x, std::vector<std::int64_t>& y) {
  const std::int64_t features = 8, classes = 3;
  x = ember::Tensor({n, features});
  y.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t c = i % classes;
    y[static_cast<std::size_t>(i)] = c;
    for (std::int64_t j = 0; j < features; ++j) {
      const float centre = (j % classes == c) ? 2.0f : 0.0f;
      x.at({i, j}) = centre + 0.5f * static_cast<float>(gen.normal());
    }
  }
}

ember::nn::Sequential make_model() {
  using namespace ember::nn;
  return Sequential("Net", {{"fc1", Linear(8, 16)}, {"relu1", ReLU()}, {"fc2", Linear(16, 3)}});
}

}  // namespace

int main() {
  try {
    ember::manual_seed(0);
    ember::Generator data_gen(1);
    ember::Tensor x;
    std::vector<std::int64_t> y;
    make_blobs(300, data_gen, x, y);

    ember::nn::Sequential model = make_model();
    ember::nn::CrossEntropyLoss criterion;
    ember::optim::SGD opt(model.parameters(), {/*lr=*/0.05, /*momentum=*/0.9});

    // The training step the library's fit() runs, spelled out: buffers kept across steps.
    ember::Tensor logits, grad;
    float first_loss = 0, last_loss = 0;
    for (int step = 0; step < 60; ++step) {
      opt.zero_grad();
      model.forward_into(x, logits);
      last_loss = criterion.forward(logits, y);
      if (step == 0) first_loss = last_loss;
      criterion.backward_into(grad);
      model.backward_into(grad, nullptr);
      opt.step();
    }
    const double accuracy = ember::train::accuracy(model.predict(x), y);
    std::cout << "ember " << ember::version() << ": loss " << first_loss << " -> " << last_loss << ", accuracy "
              << accuracy << "\n";
    expect(last_loss < 0.25f * first_loss, "the loss did not drop to a quarter");
    expect(accuracy >= 0.95, "training accuracy below 0.95");

    // Checkpoint round trip into a differently initialised model.
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("ember-consumer-" + std::to_string(::getpid()) + ".safetensors")).string();
    ember::io::save_checkpoint(model, path, {{"note", "consumer"}});
    ember::manual_seed(42);
    ember::nn::Sequential restored = make_model();
    expect(restored.predict(x) != model.predict(x), "a fresh model predicts like the trained one");
    const auto meta = ember::io::load_checkpoint(restored, path);
    std::filesystem::remove(path);
    expect(meta.count("note") && meta.at("note") == "consumer", "metadata lost in the checkpoint");
    expect(restored.predict(x) == model.predict(x), "the loaded model predicts differently");

    // One new point near class 1's centre.
    ember::Tensor point({1, 8});
    for (std::int64_t j = 1; j < 8; j += 3) point.at({0, j}) = 2.0f;
    const auto predicted = ember::train::argmax_rows(restored.predict(point));
    expect(predicted.size() == 1 && predicted[0] == 1, "the point near class 1 is not predicted as 1");

    // A wrong shape is an exception that names the layer, not a crash.
    bool threw = false;
    try {
      restored.predict(ember::Tensor({2, 5}));
    } catch (const ember::shape_error& e) {
      threw = std::string(e.what()).find("fc1") != std::string::npos;
    }
    expect(threw, "a wrong input shape did not throw shape_error naming fc1");
  } catch (const std::exception& e) {
    std::cerr << "consumer: FAILED with an exception: " << e.what() << "\n";
    return 1;
  }
  if (failures == 0) std::cout << "consumer: ok\n";
  return failures == 0 ? 0 : 1;
}
