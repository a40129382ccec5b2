#pragma once
// Sign Language MNIST (the report's second data set): its CSV files (data/csv.hpp's label-and-pixels format,
// 28 x 28), the file's labels 0..24 with no 9 (J and Z need motion) mapped to 0..23 as the report's 24-output
// models expect, and the class names A..Y without J.
#include <cstdint>
#include <string>
#include <vector>

#include "ember/data/csv.hpp"
#include "ember/data/dataset.hpp"

namespace ember::data {

// A..Y without J (J and Z need motion, so the set has no images of them), in mapped-label order 0..23.
inline std::vector<std::string> sign_mnist_classes() {
  std::vector<std::string> names;
  for (char c = 'A'; c <= 'Y'; ++c)
    if (c != 'J') names.emplace_back(1, c);
  return names;
}

// The file's label (0..24, no 9) -> the dataset's label 0..23; -1 for labels the set cannot hold.
inline std::int64_t sign_mnist_label(std::int64_t file_label) {
  if (file_label < 0 || file_label > 24 || file_label == 9) return -1;
  return file_label > 9 ? file_label - 1 : file_label;
}

// Loads a Sign-MNIST CSV (plain or gzip) into a Dataset of N x 1 x 28 x 28 images with labels 0..23 and class
// names A..Y without J. A file label of 9 (J) or 25 and above (Z, ...) is an error naming the line. A gzip file
// may inflate to at most `max_inflated_bytes` (data/csv.hpp).
inline Dataset load_sign_mnist(const std::string& csv_path, std::uint64_t max_inflated_bytes = kCsvMaxInflatedBytes) {
  Dataset ds = read_label_pixel_csv(
      csv_path,
      [](std::int64_t file_label, std::string& why) {
        const std::int64_t label = sign_mnist_label(file_label);
        if (label < 0) why = file_label == 9 ? "(J) cannot occur: J needs motion" : "is outside 0..24";
        return label;
      },
      max_inflated_bytes);
  ds.class_names = sign_mnist_classes();
  ds.num_classes = static_cast<std::int64_t>(ds.class_names.size());
  return ds;
}

}  // namespace ember::data
