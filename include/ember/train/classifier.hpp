#pragma once
// Predicting with a trained image classifier: the weights and the preprocessing come from a checkpoint, the
// architecture from you (a checkpoint holds tensors, not code: build the same model as in training, then
// hand it over).
//
//   nn::Sequential model = my_cnn(3, 64, 10);              // the architecture used in training
//   train::Classifier clf(model, "runs/photos/best.safetensors");
//   train::ClassPrediction p = clf.predict_file("cat.jpg");
//   std::cout << p.label << " " << p.probability << "\n";
//
// The checkpoint's metadata (written by fit's FitOptions::metadata; train::Preprocessing::to_metadata gives
// the keys) says how an image becomes the model's input:
//   classes          JSON array of class names, one per output
//   input_shape      JSON [C, H, W]: decoded to C channels (1 gray, 3 RGB) and H x W
//   normalize_mean, normalize_std   JSON arrays: Normalize after ToUnit (x / 255 - mean) / std
//   resize           "stretch" (default) or "resize_center_crop" (data::FitMode)
//   head             "softmax" when the model's output already holds probabilities (else logits)
// A file is decoded as data::ImageFolder::decode_file does with those options (image_options() gives them,
// to change the EXIF handling or the limits), then normalised, then run through model.predict.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/data/image_folder.hpp"
#include "ember/data/transforms.hpp"
#include "ember/format/json.hpp"
#include "ember/io/checkpoint.hpp"
#include "ember/nn/module.hpp"

namespace ember::train {

// The preprocessing a checkpoint's metadata records.
struct Preprocessing {
  std::vector<std::string> classes;
  Shape input_shape;  // C, H, W
  std::vector<float> mean, std;
  data::FitMode fit = data::FitMode::Stretch;
  bool softmax_head = false;

  // The keys above, as FitOptions::metadata takes them.
  std::map<std::string, std::string> to_metadata() const {
    using format::Json;
    return {{"classes", Json::array_of(classes).dump()},
            {"input_shape", Json::array_of(input_shape).dump()},
            {"normalize_mean", Json::array_of(mean).dump()},
            {"normalize_std", Json::array_of(std).dump()},
            {"resize", fit == data::FitMode::ResizeCenterCrop ? "resize_center_crop" : "stretch"},
            {"head", softmax_head ? "softmax" : "logits"}};
  }

  // `source` names the checkpoint in error messages.
  static Preprocessing from_metadata(const std::map<std::string, std::string>& meta, const std::string& source) {
    auto get = [&](const char* key) -> const std::string& {
      const auto it = meta.find(key);
      if (it == meta.end())
        throw std::invalid_argument(source + ": no '" + key + "' in the metadata; a classifier needs classes, "
                                    "input_shape, normalize_mean and normalize_std (Preprocessing::to_metadata)");
      return it->second;
    };
    auto parse = [&](const char* key) {
      try {
        return format::Json::parse(get(key));
      } catch (const format::JsonError& e) {
        throw std::invalid_argument(source + ": metadata '" + key + "' is not JSON (" + e.what() + "): " + get(key));
      }
    };
    // A JSON array of what `convert` takes from each item, else the error says what was expected.
    auto array = [&](const char* key, auto convert) {
      const format::Json j = parse(key);
      std::vector<decltype(convert(j))> out;
      try {
        for (const auto& item : j.items()) out.push_back(convert(item));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(source + ": metadata '" + key + "' of the wrong type (" + e.what() +
                                    "): expected classes as strings and the others as arrays of numbers");
      }
      return out;
    };
    Preprocessing p;
    p.classes = array("classes", [](const format::Json& v) { return v.as_string(); });
    p.input_shape = array("input_shape", [](const format::Json& v) { return v.as_integer(); });
    p.mean = array("normalize_mean", [](const format::Json& v) { return static_cast<float>(v.as_double()); });
    p.std = array("normalize_std", [](const format::Json& v) { return static_cast<float>(v.as_double()); });
    if (p.input_shape.size() != 3 || (p.input_shape[0] != 1 && p.input_shape[0] != 3) || p.input_shape[1] < 1 ||
        p.input_shape[2] < 1)
      throw std::invalid_argument(source + ": input_shape " + get("input_shape") + ", expected [C, H, W] with C 1 or 3");
    if (p.classes.empty()) throw std::invalid_argument(source + ": the metadata's classes are empty");
    const auto r = meta.find("resize");
    if (r != meta.end() && r->second != "stretch" && r->second != "resize_center_crop")
      throw std::invalid_argument(source + ": resize '" + r->second + "', expected stretch or resize_center_crop");
    p.fit = r != meta.end() && r->second == "resize_center_crop" ? data::FitMode::ResizeCenterCrop : data::FitMode::Stretch;
    const auto h = meta.find("head");
    p.softmax_head = h != meta.end() && h->second == "softmax";
    data::Normalize check(p.mean, p.std);  // one value or one per channel, std non-zero
    (void)check;
    return p;
  }
};

struct ClassPrediction {
  std::int64_t index = 0;           // the most probable class
  std::string label;                // its name
  double probability = 0;           // its probability
  std::vector<double> probabilities;  // one per class
  // The k most probable classes, most probable first (ties: the lower index first).
  std::vector<std::int64_t> top(std::size_t k) const {
    std::vector<std::int64_t> order(probabilities.size());
    std::iota(order.begin(), order.end(), std::int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
      return probabilities[static_cast<std::size_t>(a)] > probabilities[static_cast<std::size_t>(b)];
    });
    order.resize(std::min(k, order.size()));
    return order;
  }
};

template <typename T>
class ClassifierT {
 public:
  // Loads the checkpoint's weights into `model` (which must outlive the classifier) and reads its preprocessing.
  ClassifierT(nn::ModuleT<T>& model, const std::string& checkpoint)
      : model_(model), pre_(Preprocessing::from_metadata(io::load_checkpoint(model, checkpoint), checkpoint)),
        normalize_(pre_.mean, pre_.std) {
    options_.channels = static_cast<int>(pre_.input_shape[0]);
    options_.height = pre_.input_shape[1];
    options_.width = pre_.input_shape[2];
    options_.fit = pre_.fit;
  }

  const Preprocessing& preprocessing() const noexcept { return pre_; }
  const std::vector<std::string>& classes() const noexcept { return pre_.classes; }
  // The decoding options (channels, size, fit from the checkpoint; EXIF and limits as you set them).
  data::ImageFolderOptions& image_options() noexcept { return options_; }

  // Decodes, resizes and normalises an image file as in training, then predicts.
  ClassPrediction predict_file(const std::string& path) const {
    Tensor image;
    data::ImageFolder::decode_file(path, options_, image);
    return predict(std::move(image));
  }

  // An image already decoded to input_shape with 0..255 values (as an ImageFolder sample).
  ClassPrediction predict(Tensor image) const {
    if (image.shape() != pre_.input_shape)
      throw shape_error("Classifier: expected an image " + to_string(pre_.input_shape) + " (the checkpoint's " +
                        "input_shape), got " + to_string(image.shape()));
    for (float& v : image) v /= 255.0f;
    data::normalize(image, normalize_.mean, normalize_.std);
    TensorT<T> x(Shape{1, pre_.input_shape[0], pre_.input_shape[1], pre_.input_shape[2]});
    std::transform(image.begin(), image.end(), x.begin(), [](float v) { return static_cast<T>(v); });
    TensorT<T> out;
    model_.predict_into(x, out);
    const auto k = static_cast<std::int64_t>(pre_.classes.size());
    if (out.numel() != k)
      throw shape_error("Classifier: the model gives " + to_string(out.shape()) + " for one image, but the checkpoint " +
                        "names " + std::to_string(k) + " classes");
    ClassPrediction p;
    p.probabilities.resize(static_cast<std::size_t>(k));
    const double mx = static_cast<double>(*std::max_element(out.begin(), out.end()));
    double sum = 0;
    for (std::int64_t c = 0; c < k; ++c)
      sum += p.probabilities[static_cast<std::size_t>(c)] =
          pre_.softmax_head ? static_cast<double>(out[c]) : std::exp(static_cast<double>(out[c]) - mx);
    for (double& v : p.probabilities) v /= sum;
    p.index = p.top(1)[0];
    p.label = pre_.classes[static_cast<std::size_t>(p.index)];
    p.probability = p.probabilities[static_cast<std::size_t>(p.index)];
    return p;
  }

 private:
  nn::ModuleT<T>& model_;
  Preprocessing pre_;
  data::Normalize normalize_;
  data::ImageFolderOptions options_;
};

using Classifier = ClassifierT<float>;

}  // namespace ember::train
