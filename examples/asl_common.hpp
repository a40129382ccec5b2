#pragma once
// Sign Language MNIST: where the CSVs are and how to load them (24 letters, A..Y without J).
#include <filesystem>
#include <string>

#include "common/common.hpp"

namespace examples {

// dir/sign_mnist_{train,test}.csv, plain or .gz.
inline std::string sign_mnist_file(const std::string& dir, const std::string& split) {
  const std::string base = dir + "/sign_mnist_" + split + ".csv";
  if (std::filesystem::exists(base)) return base;
  return base + ".gz";  // the loader names it in its error if it is missing too
}

inline void load_sign_mnist(Args& a, Experiment& e) {
  if (a.data.empty()) a.data = "data/sign-mnist";
  std::cout << "data: Sign Language MNIST from " << a.data << "\n";
  e.dataset = "Sign Language MNIST";
  e.train = ember::data::load_sign_mnist(sign_mnist_file(a.data, "train"));
  e.test = ember::data::load_sign_mnist(sign_mnist_file(a.data, "test"));
}

}  // namespace examples
