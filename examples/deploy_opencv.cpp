// Deployment without ember: OpenCV's dnn module runs the report's CNN from the ONNX file that
// `asl_predict --export-onnx` wrote, on a gray image read with stb_image. Built when OpenCV's dnn is found
// (Debian: libopencv-dnn-dev); prints what asl_predict prints.
//   deploy_opencv asl_cnn.onnx letter.png
#include <opencv2/dnn.hpp>
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

int main(int argc, char** argv) try {
  if (argc < 3) return std::fprintf(stderr, "usage: %s model.onnx image...\n", argv[0]), 2;
  cv::dnn::Net net = cv::dnn::readNetFromONNX(argv[1]);
  const char* letters = "ABCDEFGHIKLMNOPQRSTUVWXY";  // the file's "classes" metadata: Sign-MNIST, no J or Z
  for (int i = 2; i < argc; ++i) {
    int w, h, c;
    unsigned char* pixels = stbi_load(argv[i], &w, &h, &c, 1);  // gray, as in training
    if (!pixels) return std::fprintf(stderr, "error: %s: %s\n", argv[i], stbi_failure_reason()), 1;
    const cv::Mat image(h, w, CV_8UC1, pixels);
    // 28x28, then (x - 127.5) / 127.5: the metadata's normalize_mean and normalize_std (0.5) on 0..255.
    net.setInput(cv::dnn::blobFromImage(image, 1 / 127.5, cv::Size(28, 28), cv::Scalar(127.5)));
    const cv::Mat prob = net.forward();  // 1 x 24 probabilities: the file ends with a softmax
    stbi_image_free(pixels);
    int top[24];
    std::iota(top, top + 24, 0);
    std::sort(top, top + 24, [&](int a, int b) { return prob.at<float>(a) > prob.at<float>(b); });
    std::printf("%s: %c %.4f  (top 3: %c %.4f, %c %.4f, %c %.4f)\n", argv[i], letters[top[0]], prob.at<float>(top[0]),
                letters[top[0]], prob.at<float>(top[0]), letters[top[1]], prob.at<float>(top[1]), letters[top[2]],
                prob.at<float>(top[2]));
  }
  return 0;
} catch (const std::exception& e) {  // cv::Exception: a missing or unreadable model
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
