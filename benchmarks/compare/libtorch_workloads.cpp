// The PyTorch C++ frontend (libtorch) on compare.py's workloads: the report's models as torch::nn modules, the
// same training step as torch_workloads.py (zero_grad, forward, cross_entropy, backward, SGD lr 0.001 momentum
// 0.9) without Python, inference under c10::InferenceMode. Prints ember_workloads' JSON line plus "backend"
// (libtorch's version, where sgemm_ binds from libtorch_cpu, OpenBLAS's core, oneDNN, the ATen CPU capability,
// the tuning environment) and "check".
//   libtorch_workloads WORKLOAD [--seconds S] [--threads N] [--batch B]
//   libtorch_workloads WORKLOAD --check      the correctness check alone
// The check (peer_check.hpp): ember's initial weights copied in by name, the eval-mode outputs on a fixed batch
// within 1e-4 of ember's, for the MLPs the losses of 3 SGD steps too, and the loss of 30 steps of this
// program's own training falling.
#include <ATen/Version.h>
#include <torch/torch.h>

#include <regex>
#include <string>

#include "compare/peer_check.hpp"

namespace {

torch::nn::Sequential make_model(bool cnn, std::int64_t classes, bool softmax) {
  namespace tnn = torch::nn;
  tnn::Sequential m;
  if (cnn) {
    m->push_back("conv1", tnn::Conv2d(1, 75, 3));
    m->push_back("relu1", tnn::ReLU());
    m->push_back("batchnorm1", tnn::BatchNorm2d(75));
    m->push_back("pool1", tnn::MaxPool2d(tnn::MaxPool2dOptions(2).stride(2)));
    m->push_back("conv2", tnn::Conv2d(75, 50, 3));
    m->push_back("relu2", tnn::ReLU());
    m->push_back("dropout1", tnn::Dropout(0.2));
    m->push_back("batchnorm2", tnn::BatchNorm2d(50));
    m->push_back("pool2", tnn::MaxPool2d(tnn::MaxPool2dOptions(2).stride(2)));
    m->push_back("conv3", tnn::Conv2d(50, 25, 3));
    m->push_back("relu3", tnn::ReLU());
    m->push_back("batchnorm3", tnn::BatchNorm2d(25));
    m->push_back("pool3", tnn::MaxPool2d(tnn::MaxPool2dOptions(2).stride(1)));
    m->push_back("flatten", tnn::Flatten());
    m->push_back("fc1", tnn::Linear(100, 512));
    m->push_back("relu4", tnn::ReLU());
    m->push_back("dropout2", tnn::Dropout(0.3));
    m->push_back("fc2", tnn::Linear(512, classes));
  } else {
    m->push_back("flatten", tnn::Flatten());
    m->push_back("fc1", tnn::Linear(784, 512));
    m->push_back("relu1", tnn::ReLU());
    m->push_back("fc2", tnn::Linear(512, 512));
    m->push_back("relu2", tnn::ReLU());
    m->push_back("fc3", tnn::Linear(512, classes));
  }
  if (softmax) m->push_back("softmax", tnn::Softmax(1));
  return m;
}

std::vector<float> values(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Trains `model` on one batch for `steps` steps; the losses.
std::vector<float> train(torch::nn::Sequential& model, const torch::Tensor& x, const torch::Tensor& y, int steps) {
  torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.001).momentum(0.9));
  std::vector<float> losses;
  model->train();
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    losses.push_back(loss.item<float>());
  }
  return losses;
}

std::pair<bool, std::string> check(const std::string& workload) {
  const cmp::Reference ref = cmp::reference(workload);
  torch::nn::Sequential model = make_model(ref.cnn, ref.classes, ref.softmax);
  {
    torch::NoGradGuard no_grad;
    auto named = model->named_parameters();
    if (named.size() != ref.params.size()) throw std::runtime_error("check: parameter count differs from ember's");
    for (const auto& [name, v] : ref.params) {
      torch::Tensor* p = named.find(name);
      if (!p || p->numel() != static_cast<std::int64_t>(v.size()))
        throw std::runtime_error("check: parameter " + name + " is missing or of another size");
      p->copy_(torch::from_blob(const_cast<float*>(v.data()), p->sizes()));
    }
  }
  const torch::Tensor x = torch::from_blob(const_cast<float*>(ref.input.data()), {4, 1, 28, 28}).clone();
  const torch::Tensor y = torch::tensor(ref.labels, torch::kLong);
  model->eval();
  std::vector<float> out;
  {
    c10::InferenceMode guard;
    out = values(model->forward(x));
  }
  std::vector<float> losses = ref.cnn ? std::vector<float>{} : train(model, x, y, 3);
  torch::manual_seed(1);
  torch::nn::Sequential own = make_model(ref.cnn, ref.classes, ref.softmax);
  const std::vector<float> own_losses =
      train(own, torch::rand({32, 1, 28, 28}) * 2 - 1, torch::randint(0, ref.classes, {32}), 30);
  return cmp::check_json(ref, out, losses, own_losses);
}

std::string backend_json() {
  // A product through Linear first, so every library the benchmark uses is loaded.
  torch::nn::functional::linear(torch::ones({2, 8}), torch::ones({4, 8}));
  const std::string config = at::show_config();
  std::smatch m;
  std::string onednn = "off", capability = "?";
  if (std::regex_search(config, m, std::regex("MKL-DNN (v[0-9.]+)"))) onednn = m[1];
  if (std::regex_search(config, m, std::regex("CPU capability usage: (\\S+)"))) capability = m[1];
  return ", \"backend\": {\"peer\": \"libtorch\", \"version\": \"" TORCH_VERSION "\", " +
         cmp::blas_json("libtorch_cpu.so.1.13", "sgemm_") + ", \"onednn\": \"" + onednn +
         "\", \"cpu_capability\": \"" + capability + "\", \"env\": " + cmp::env_json() + "}";
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: libtorch_workloads WORKLOAD [--seconds S] [--threads N] [--batch B] [--check]\n");
    return 2;
  }
  const cmp::Args args = cmp::parse_args(argc, argv);
  const std::string& workload = args.what;
  const double seconds = args.seconds;
  const std::int64_t batch_override = args.batch;
  torch::set_num_threads(args.threads);
  if (args.check) {
    const auto [ok, json] = check(workload);
    std::printf("{\"workload\": \"%s\"%s%s}\n", workload.c_str(), json.c_str(), backend_json().c_str());
    return ok ? 0 : 1;
  }
  torch::manual_seed(0);
  const bool cnn = workload.rfind("cnn", 0) == 0;
  const bool infer = workload.find("infer") != std::string::npos;
  const std::int64_t classes = workload == "mlp_train_32" || workload == "mlp_infer_1000" ? 10 : 24;
  if (workload != "mlp_train_32" && workload != "mlp_train_4" && workload != "cnn_train_32" &&
      workload != "cnn_infer_1000" && workload != "mlp_infer_1000") {
    std::fprintf(stderr, "libtorch_workloads: unknown workload '%s'\n", workload.c_str());
    return 2;
  }
  const std::int64_t batch = batch_override > 0 ? batch_override : infer ? 1000 : workload == "mlp_train_4" ? 4 : 32;
  torch::nn::Sequential model = make_model(cnn, classes, cnn || classes == 24);
  std::vector<torch::Tensor> xs, ys;
  for (int i = 0; i < (infer ? 1 : 16); ++i) {
    xs.push_back(torch::rand({batch, 1, 28, 28}) * 2 - 1);
    ys.push_back(torch::randint(0, classes, {batch}));
  }
  std::pair<long, double> r;
  double cpu0 = 0;
  if (infer) {
    model->eval();
    c10::InferenceMode guard;
    cpu0 = cmp::cpu_seconds();
    r = cmp::timed(seconds, [&] { model->forward(xs[0]); });
  } else {
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.001).momentum(0.9));
    std::size_t b = 0;
    cpu0 = cmp::cpu_seconds();
    r = cmp::timed(seconds, [&] {
      opt.zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(xs[b]), ys[b]);
      loss.backward();
      opt.step();
      b = (b + 1) % xs.size();
    });
  }
  cmp::print_result(workload, batch, r, cmp::cpu_seconds() - cpu0, torch::get_num_threads(), backend_json());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "libtorch_workloads: %s\n", e.what());
  return 1;
}
