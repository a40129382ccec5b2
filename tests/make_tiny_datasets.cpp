// Writes small, learnable stand-ins for the report's data sets, for the example programs' smoke tests:
//   DIR/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz     (IDX, gzip)
//   DIR/sign-mnist/sign_mnist_{train,test}.csv                     (CSV with CRLF, labels 0..24 without 9)
//   DIR/letter.png                                                 (a 60x50 RGB image for asl_predict)
// Each class is a bright square at a class-specific position, plus noise, so a short run can learn it.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <ember/core/random.hpp>
#include <ember/io/image.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::vector<unsigned char> image_of(int label, ember::Generator& g) {
  std::vector<unsigned char> px(784);
  for (auto& p : px) p = static_cast<unsigned char>(g.randint(40));
  const int r0 = 2 + (label % 5) * 5, c0 = 2 + (label / 5) * 5;
  for (int r = r0; r < r0 + 5; ++r)
    for (int c = c0; c < c0 + 5; ++c) px[static_cast<std::size_t>(r * 28 + c)] = 200;
  return px;
}

void put_be32(std::vector<unsigned char>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<unsigned char>(v >> s));
}

void write_gz(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f || gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) != static_cast<int>(bytes.size())) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
  gzclose(f);
}

void mnist(const std::string& dir, const std::string& prefix, int n, ember::Generator& g) {
  std::vector<unsigned char> images, labels;
  put_be32(images, 2051);
  put_be32(images, static_cast<std::uint32_t>(n));
  put_be32(images, 28);
  put_be32(images, 28);
  put_be32(labels, 2049);
  put_be32(labels, static_cast<std::uint32_t>(n));
  for (int i = 0; i < n; ++i) {
    const int label = i % 10;
    const auto px = image_of(label, g);
    images.insert(images.end(), px.begin(), px.end());
    labels.push_back(static_cast<unsigned char>(label));
  }
  write_gz(dir + "/" + prefix + "-images-idx3-ubyte.gz", images);
  write_gz(dir + "/" + prefix + "-labels-idx1-ubyte.gz", labels);
}

void sign_mnist(const std::string& path, int n, ember::Generator& g) {
  std::ofstream out(path, std::ios::binary);
  out << "label";
  for (int i = 1; i <= 784; ++i) out << ",pixel" << i;
  out << "\r\n";
  for (int i = 0; i < n; ++i) {
    int label = i % 24;
    const int file_label = label >= 9 ? label + 1 : label;  // the file skips 9 (J)
    out << file_label;
    for (unsigned char p : image_of(label % 10, g)) out << ',' << static_cast<int>(p);
    out << "\r\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_tiny_datasets DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir + "/mnist");
  std::filesystem::create_directories(dir + "/sign-mnist");
  ember::Generator g(1);
  mnist(dir + "/mnist", "train", 600, g);
  mnist(dir + "/mnist", "t10k", 200, g);
  sign_mnist(dir + "/sign-mnist/sign_mnist_train.csv", 480, g);
  sign_mnist(dir + "/sign-mnist/sign_mnist_test.csv", 144, g);
  ember::Tensor rgb({3, 50, 60});
  for (float& v : rgb) v = static_cast<float>(g.randint(256));
  ember::io::save_png(dir + "/letter.png", rgb);
  std::printf("tiny data sets written to %s\n", dir.c_str());
  return 0;
}
