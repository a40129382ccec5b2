// The report's first experiment: the MLP 784-512-512-10 on MNIST digits, batch 32, SGD lr 0.001 momentum 0.9,
// inputs mapped to [-1, 1], the test set used for validation. Report: 0.951 after 5 epochs, 0.971 after 10.
// Reads data/mnist when it exists, else Debian's Fashion-MNIST (apt-get install dataset-fashion-mnist).
#include <cctype>
#include <filesystem>

#include "common/common.hpp"

int main(int argc, char** argv) {
  examples::Args a;
  a.epochs = 5;
  a.batch_size = 32;
  a.head = "logits";  // the report's MNIST printout shows no Softmax module
  a.out = "runs/mnist_mlp";
  int code = 0;
  if (!examples::parse_args(argc, argv, "The report's MNIST MLP (784-512-512-10)", a, code)) return code;
  return examples::guarded([&] {
    namespace fs = std::filesystem;
    std::string title = "MNIST";
    std::vector<std::string> classes = ember::data::mnist_classes();
    if (a.data.empty()) {
      const bool have_mnist = fs::exists("data/mnist/train-images-idx3-ubyte.gz") ||
                              fs::exists("data/mnist/train-images-idx3-ubyte");
      a.data = have_mnist ? "data/mnist" : "/usr/share/datasets/fashion-mnist";
      if (!have_mnist)
        std::cout << "data/mnist not found: using Debian's Fashion-MNIST in " << a.data
                  << " (point --data at an MNIST directory to run the report's data set)\n";
    }
    // Fashion-MNIST has the same file names as MNIST; its directory name tells them apart.
    std::string lower = a.data;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.find("fashion") != std::string::npos) {
      title = "Fashion-MNIST";
      classes = ember::data::fashion_mnist_classes();
    }
    std::cout << "data: " << title << " from " << a.data << "\n";
    examples::Experiment e;
    e.name = "mnist_mlp";
    e.title = title + " MLP";
    e.dataset = title;
    e.train = ember::data::load_mnist(a.data, true, classes);
    e.test = ember::data::load_mnist(a.data, false, classes);
    const std::int64_t n = e.train.num_classes;
    e.make_model = [n](bool softmax) { return ember::models::report_mlp(n, softmax); };
    return examples::run(a, std::move(e));
  });
}
