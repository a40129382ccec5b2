// OpenCV's dnn module (inference only) on compare.py's inference workloads and on onnx_peers.py's files.
//   opencv_workloads cnn_infer_1000|mlp_infer_1000 [--seconds S] [--threads N] [--batch B] [--check]
//   opencv_workloads MODEL.onnx [--batch B] [--seconds S] [--threads N] [--out FILE] [--size S]
// The first form runs the report's model from the ONNX file ember exports for it (io::export_onnx of
// report_cnn / report_mlp as ember initialises them, seed 0; written to a temporary file), as a user deploying
// our export does (examples/deploy_opencv.cpp); its check compares OpenCV's output on a fixed batch of 4 with
// ember's (peer_check.hpp). The second form runs any file on the fixed input of workload_common.hpp and --out
// writes the output as raw floats. Backend and target are OpenCV's defaults (DNN_BACKEND_OPENCV, DNN_TARGET_CPU);
// cv::setNumThreads(N). Prints ember_workloads' JSON line plus "backend".
#include <unistd.h>

#include <opencv2/core.hpp>
#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

#include <fstream>
#include <sstream>
#include <string>

#include <ember/io/onnx.hpp>

#include "compare/peer_check.hpp"

namespace {

// The lines of OpenCV's build information that say what runs its layers: the parallel framework, the CPU
// dispatch, LAPACK.
std::string backend_json() {
  std::istringstream info(cv::getBuildInformation());
  std::string parallel, lapack, dispatch;
  for (std::string line; std::getline(info, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon), value = line.substr(colon + 1);
    key.erase(0, key.find_first_not_of(' '));
    value.erase(0, value.find_first_not_of(' '));
    if (key == "Parallel framework") parallel = value;
    else if (key == "Lapack" || key == "LAPACK") lapack = value;
    else if (key == "Baseline" || key == "Dispatched code generation")
      dispatch += (dispatch.empty() ? "" : "; ") + key + " " + value;
  }
  return ", \"backend\": {\"peer\": \"opencv\", \"version\": \"" CV_VERSION "\", \"dnn_backend\": \"DNN_BACKEND_OPENCV\", "
         "\"dnn_target\": \"DNN_TARGET_CPU\", \"cv_threads\": " + std::to_string(cv::getNumThreads()) +
         ", \"parallel\": \"" + cmp::json_escape(parallel) + "\", \"lapack\": \"" + cmp::json_escape(lapack) +
         "\", \"cpu\": \"" + cmp::json_escape(dispatch) + "\", " + cmp::blas_json(nullptr, "sgemm_") +
         ", \"env\": " + cmp::env_json() + "}";
}

// The report's model as ember initialises it for `workload`, exported to a temporary ONNX file and read back.
cv::dnn::Net report_net(const std::string& workload) {
  using namespace ember;
  const bool cnn = workload.rfind("cnn", 0) == 0;
  manual_seed(0);
  nn::Sequential model = cnn ? bench::report_cnn(24, true) : bench::report_mlp(10, false);
  model.eval();
  const std::string path = "/tmp/opencv_workloads_" + std::to_string(getpid()) + ".onnx";
  io::export_onnx(model, {1, 1, 28, 28}, path);
  cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
  std::remove(path.c_str());
  return net;
}

cv::Mat fixed_blob(const std::vector<int>& shape) {
  cv::Mat m(static_cast<int>(shape.size()), shape.data(), CV_32F);
  for (std::size_t i = 0; i < m.total(); ++i) m.ptr<float>()[i] = cmp::fixed_value(i);
  return m;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: opencv_workloads cnn_infer_1000|mlp_infer_1000|MODEL.onnx [--seconds S] "
                         "[--threads N] [--batch B] [--out FILE] [--size S] [--check]\n");
    return 2;
  }
  const cmp::Args args = cmp::parse_args(argc, argv);
  const std::string& workload = args.what;
  const int size = args.size > 0 ? args.size : 224;
  int batch = static_cast<int>(args.batch);
  const std::string& out_path = args.out;
  cv::setNumThreads(args.threads);
  const bool report = workload == "cnn_infer_1000" || workload == "mlp_infer_1000";
  if (!report && workload.size() < 5) {
    std::fprintf(stderr, "opencv_workloads: unknown workload '%s'\n", workload.c_str());
    return 2;
  }
  cv::dnn::Net net = report ? report_net(workload) : cv::dnn::readNetFromONNX(workload);
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  if (args.check) {
    if (!report) throw std::invalid_argument("--check is for cnn_infer_1000 and mlp_infer_1000");
    const cmp::Reference ref = cmp::reference(workload);
    cv::Mat x(std::vector<int>{4, 1, 28, 28}, CV_32F, const_cast<float*>(ref.input.data()));
    net.setInput(x);
    const cv::Mat out = net.forward().clone();
    const std::vector<float> got(out.ptr<float>(), out.ptr<float>() + out.total());
    const auto [ok, json] = cmp::check_json(ref, got, {}, {});
    std::printf("{\"workload\": \"%s\"%s%s}\n", workload.c_str(), json.c_str(), backend_json().c_str());
    return ok ? 0 : 1;
  }
  if (batch <= 0) batch = report ? 1000 : 1;
  const cv::Mat x = report ? fixed_blob({batch, 1, 28, 28}) : fixed_blob({batch, 3, size, size});
  cv::Mat out;
  const double cpu0 = cmp::cpu_seconds();
  const auto r = cmp::timed(args.seconds, [&] {
    net.setInput(x);
    out = net.forward();
  });
  const double cpu = cmp::cpu_seconds() - cpu0;
  if (!out_path.empty()) {
    std::ofstream f(out_path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(out.ptr<float>()), static_cast<std::streamsize>(out.total() * sizeof(float)));
    if (!f) throw std::runtime_error(out_path + ": cannot write");
  }
  cmp::print_result(workload, batch, r, cpu, cv::getNumThreads(), backend_json());
  return 0;
} catch (const std::exception& e) {  // cv::Exception too: a layer OpenCV cannot import or run
  std::fprintf(stderr, "opencv_workloads: %s\n", e.what());
  return 1;
}
