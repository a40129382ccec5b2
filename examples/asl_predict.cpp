// Deployment, as the report's last section: loads a checkpoint of the ASL CNN (or MLP) and classifies raw
// images of any size, colour or gray: to gray, resized to 28x28 (area averaging when shrinking), mapped to
// [-1, 1] as in training. Prints one line per image: the file, the letter, its probability and the top 3.
//   asl_predict --checkpoint runs/asl_cnn/best.safetensors data/asl-samples/a.png data/asl-samples/b.png
// With --export-onnx FILE it also writes the model as an ONNX file for other runtimes (examples/deploy_opencv.cpp
// runs it with OpenCV's dnn module): its output is the probabilities (a softmax is added after a logits head),
// and its metadata hold the letters and the preprocessing.
//   asl_predict --checkpoint runs/asl_cnn/best.safetensors --export-onnx asl_cnn.onnx
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <ember/data/sign_mnist.hpp>
#include <ember/data/transforms.hpp>
#include <ember/io/image.hpp>
#include <ember/io/checkpoint.hpp>
#include <ember/io/onnx.hpp>
#include <iostream>
#include <numeric>

#include <ember/models/report.hpp>

int main(int argc, char** argv) {
  CLI::App app{"Classify raw images of ASL letters with a trained checkpoint"};
  std::string checkpoint;
  std::vector<std::string> images;
  std::string onnx_path;
  int threads = 2;
  app.add_option("--checkpoint", checkpoint, "a checkpoint written by asl_cnn, asl_cnn_augment or asl_mlp")->required();
  app.add_option("--threads", threads, "threads for the kernels")->capture_default_str();
  app.add_option("--export-onnx", onnx_path, "also write the model (with a softmax head) as an ONNX file");
  app.add_option("images", images, "image files (PNG, JPEG, BMP)");
  CLI11_PARSE(app, argc, argv);
  if (images.empty() && onnx_path.empty()) {
    std::cerr << "error: give images to classify, or --export-onnx FILE\n";
    return 1;
  }
  try {
    ember::set_num_threads(threads);
    // The architecture and head come from the checkpoint's metadata, written by the training programs.
    const auto meta = ember::io::read_safetensors(checkpoint).metadata;
    const auto get = [&](const char* k, const std::string& fallback) {
      const auto it = meta.find(k);
      return it == meta.end() ? fallback : it->second;
    };
    const bool softmax_head = get("head", "softmax") == "softmax";
    const std::string experiment = get("experiment", "asl_cnn");
    ember::nn::Sequential model = experiment == "asl_mlp" ? ember::models::report_mlp(24, softmax_head)
                                                          : ember::models::report_cnn(24, softmax_head);
    ember::io::load_checkpoint(model, checkpoint);
    const auto letters = ember::data::sign_mnist_classes();
    if (!onnx_path.empty()) {
      ember::nn::Sequential deployed = model;
      if (!softmax_head) deployed.add("softmax", ember::nn::Softmax(1));
      std::string classes = "[";
      for (const auto& l : letters) classes += (classes.size() > 1 ? ", \"" : "\"") + l + "\"";
      // Pixels 0..255 / 255, then (x - mean) / std: the preprocessing below.
      ember::io::export_onnx(deployed, {1, 1, 28, 28}, onnx_path,
                             {{"classes", classes + "]"}, {"normalize_mean", "[0.5]"}, {"normalize_std", "[0.5]"},
                              {"experiment", experiment}});
      std::printf("wrote %s\n", onnx_path.c_str());
    }
    for (const auto& path : images) {
      ember::Tensor img = ember::io::load_image(path);  // 1 x H x W, 0..255
      const auto mode = img.size(1) >= 28 && img.size(2) >= 28 ? ember::data::Interpolation::Area
                                                               : ember::data::Interpolation::Bilinear;
      img = ember::data::resize(img, 28, 28, mode);
      for (float& v : img) v = v / 255.0f * 2.0f - 1.0f;
      ember::Tensor out = model.predict(img.reshape({1, 1, 28, 28}));
      std::vector<double> prob(24);
      // With the logits head, softmax here; the softmax head already gives probabilities.
      const float mx = *std::max_element(out.begin(), out.end());
      double sum = 0;
      for (int k = 0; k < 24; ++k) sum += prob[k] = softmax_head ? out[k] : std::exp(out[k] - mx);
      for (double& p : prob) p /= sum;
      std::vector<int> order(24);
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int x, int y) { return prob[x] > prob[y]; });
      std::printf("%s: %s %.4f  (top 3: %s %.4f, %s %.4f, %s %.4f)\n", path.c_str(), letters[order[0]].c_str(),
                  prob[order[0]], letters[order[0]].c_str(), prob[order[0]], letters[order[1]].c_str(), prob[order[1]],
                  letters[order[2]].c_str(), prob[order[2]]);
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
