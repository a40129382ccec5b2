// Float, bf16 and int8 inference of a trained report model (a checkpoint from mnist_mlp or asl_cnn): test
// accuracy and images/s at batch 1000 of each graph::Plan, int8 with every layer quantized and with the first
// and last kept in float. Calibration: 512 training images.
//   quantize_accuracy --model cnn --data data/sign-mnist --checkpoint runs/asl_cnn/best.safetensors
//   quantize_accuracy --model mlp --data data/mnist --checkpoint runs/mnist_mlp/best.safetensors
#include <chrono>
#include <iomanip>
#include <iostream>

#include <ember/graph/quantize.hpp>
#include <ember/graph/trace.hpp>
#include <ember/io/checkpoint.hpp>

#include "asl_common.hpp"

namespace {
using namespace ember;

// 0..255 -> [-1, 1], the report's preprocessing.
Tensor normalized(const Tensor& raw, std::int64_t first, std::int64_t n) {
  const std::int64_t per = raw.numel() / raw.size(0);
  Shape s = raw.shape();
  s[0] = n;
  Tensor t(s);
  for (std::int64_t i = 0; i < n * per; ++i) t[i] = raw[first * per + i] / 127.5f - 1.0f;
  return t;
}

void measure(const std::string& what, const graph::Graph& g, graph::Precision p, const data::Dataset& test) {
  const std::int64_t batch = 1000;
  const graph::Plan plan(g, {batch, 1, 28, 28}, {0, p});
  std::int64_t right = 0;
  double seconds = 0;
  for (std::int64_t lo = 0; lo < test.size(); lo += batch) {
    const std::int64_t n = std::min(batch, test.size() - lo);
    const Tensor x = normalized(test.images, lo, n);
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor y = plan.run(x);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::int64_t classes = y.size(1);
    for (std::int64_t i = 0; i < n; ++i) {
      const float* row = y.data() + i * classes;
      right += std::max_element(row, row + classes) - row == test.labels[static_cast<std::size_t>(lo + i)];
    }
  }
  std::cout << std::left << std::setw(30) << what << " accuracy " << std::fixed << std::setprecision(4)
            << double(right) / double(test.size()) << "   " << std::setprecision(0)
            << double(test.size()) / seconds << " images/s\n";
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Float, bf16 and int8 inference of a trained report model"};
  std::string model = "cnn", dir, checkpoint;
  app.add_option("--model", model, "mlp (MNIST) or cnn (Sign Language MNIST)")->check(CLI::IsMember({"mlp", "cnn"}));
  app.add_option("--data", dir, "data directory")->required();
  app.add_option("--checkpoint", checkpoint, "the trained model's checkpoint")->required();
  CLI11_PARSE(app, argc, argv);
  return examples::guarded([&] {
    data::Dataset train, test;
    if (model == "cnn") {
      train = data::load_sign_mnist(examples::sign_mnist_file(dir, "train"));
      test = data::load_sign_mnist(examples::sign_mnist_file(dir, "test"));
    } else {
      train = data::load_mnist(dir, true, data::mnist_classes());
      test = data::load_mnist(dir, false, data::mnist_classes());
    }
    auto net = model == "cnn" ? models::report_cnn(train.num_classes, false)
                              : models::report_mlp(train.num_classes, false);
    io::load_checkpoint(net, checkpoint);
    net.eval();
    const graph::Graph g = graph::optimize(graph::trace(net, {1, 1, 28, 28}));
    const std::vector<Tensor> calibration = {normalized(train.images, 0, 512)};
    const graph::Graph q = graph::quantize_int8(g, calibration);
    graph::QuantizeOptions keep;
    keep.keep_first_float = keep.keep_last_float = true;
    const graph::Graph qk = graph::quantize_int8(g, calibration, keep);
    std::cout << model << " on " << test.size() << " test images, " << get_num_threads() << " threads, "
              << kernels::isa_name(kernels::active_isa()) << "\n";
    for (int round = 0; round < 2; ++round) {  // the second round's speeds: warm caches, alternated
      measure("float", g, graph::Precision::Float32, test);
      measure("bf16", g, graph::Precision::BFloat16, test);
      measure("int8", q, graph::Precision::Int8, test);
      measure("int8, first and last float", qk, graph::Precision::Int8, test);
    }
    return 0;
  });
}
