// A model exported from PyTorch (torch.onnx.export) run by ember: an image to the top-5 classes.
//   onnx_classify --model resnet18.onnx --image cat.jpg [--size 224] [--labels imagenet_classes.txt]
// The image is loaded as RGB, resized to the model's input size and normalised with ImageNet's mean and std
// (torchvision's classification models' preprocessing; --mean/--std for others). Class names come from
// --labels (one a line), else from the model's metadata "classes" (comma-separated), else indices.
// The output is taken as logits (a softmax is applied) unless its rows already sum to 1.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ember/graph/plan.hpp>
#include <ember/io/image.hpp>
#include <ember/io/onnx_import.hpp>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>

int main(int argc, char** argv) {
  CLI::App app{"Classify an image with an ONNX model exported from PyTorch"};
  std::string model_path, image_path, labels_path;
  std::vector<float> mean{0.485f, 0.456f, 0.406f}, std_dev{0.229f, 0.224f, 0.225f};
  int top = 5;
  app.add_option("--model", model_path, "a .onnx file (opset 11 to 17)")->required();
  app.add_option("--image", image_path, "an image (PNG, JPEG, BMP)")->required();
  app.add_option("--labels", labels_path, "class names, one a line");
  app.add_option("--mean", mean, "per-channel mean of the 0..1 pixels")->capture_default_str();
  app.add_option("--std", std_dev, "per-channel std")->capture_default_str();
  app.add_option("--top", top, "how many classes to print")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    const ember::graph::Graph g = ember::io::load_onnx(model_path);
    ember::Shape shape = g.inputs().at(0).shape;  // [-1, C, H, W]
    if (shape.size() != 4) throw std::invalid_argument(model_path + ": the input is not an image batch [N, C, H, W]");
    shape[0] = 1;
    const std::int64_t c = shape[1], h = shape[2], w = shape[3];
    ember::Tensor img = ember::io::resize(ember::io::load_image(image_path, static_cast<int>(c)), h, w);
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t i = 0; i < h * w; ++i) {
        float& v = img[ch * h * w + i];
        const auto k = static_cast<std::size_t>(ch) % mean.size();
        v = (v / 255.0f - mean[k]) / std_dev[std::min(k, std_dev.size() - 1)];
      }
    const ember::graph::Plan plan(g, shape);
    const ember::Tensor out = plan.run(img.reshape(shape));
    const std::int64_t classes = out.numel();
    std::vector<double> prob(out.begin(), out.end());
    const double total = std::accumulate(prob.begin(), prob.end(), 0.0);
    if (std::abs(total - 1) > 1e-3 || *std::min_element(prob.begin(), prob.end()) < 0) {
      const double mx = *std::max_element(prob.begin(), prob.end());
      double sum = 0;
      for (double& p : prob) sum += p = std::exp(p - mx);
      for (double& p : prob) p /= sum;
    }
    std::vector<std::string> names;
    if (!labels_path.empty()) {
      std::ifstream in(labels_path);
      if (!in) throw std::runtime_error(labels_path + ": cannot open");
      for (std::string line; std::getline(in, line);) names.push_back(line);
    } else if (g.metadata().count("classes")) {
      std::istringstream in(g.metadata().at("classes"));
      for (std::string name; std::getline(in, name, ',');) names.push_back(name);
    }
    std::vector<std::int64_t> order(static_cast<std::size_t>(classes));
    std::iota(order.begin(), order.end(), 0);
    const auto k = std::min<std::int64_t>(top, classes);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](std::int64_t a, std::int64_t b) { return prob[a] > prob[b]; });
    for (std::int64_t i = 0; i < k; ++i) {
      const auto cls = static_cast<std::size_t>(order[i]);
      std::printf("%2lld. %-24s %.4f\n", static_cast<long long>(i + 1),
                  cls < names.size() ? names[cls].c_str() : std::to_string(cls).c_str(), prob[cls]);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
