// The ember side of compare.py: runs one workload of the report's models on synthetic data and prints one
// JSON line {"workload", "images_per_s", "steps", "seconds", "peak_rss_mib", "threads"}.
//   ember_workloads WORKLOAD [--seconds S] [--threads N] [--batch B]
// --batch replaces the workload's batch size (the scaling table of docs/benchmarks.md). The line also says which
// kernels ran ("isa", see kernels/isa.hpp) and whether this binary was built for the build machine's CPU
// ("build": "native") or with default flags.
// Workloads (the same as torch_workloads.py):
//   mlp_train_32   MNIST MLP (784-512-512-10, logits), training batch 32
//   mlp_train_4    ASL MLP (784-512-512-24, softmax head), training batch 4
//   cnn_train_32   the report's CNN (softmax head), training batch 32
//   cnn_infer_1000 the report's CNN in eval mode, inference batch 1000
//   mlp_infer_1000 the MNIST MLP in eval mode, inference batch 1000 (for the scaling table)
// A training step is forward, CrossEntropyLoss, backward, SGD (lr 0.001, momentum 0.9), zero_grad.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <ember/kernels/isa.hpp>

#include "compare/workload_common.hpp"
#include "report_models.hpp"

namespace {

using namespace ember;
using cmp::cpu_seconds;
using cmp::timed;

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ember_workloads WORKLOAD [--seconds S] [--threads N] [--batch B] [--fuse-zero-grad 0|1]\n");
    return 2;
  }
  const cmp::Args args = cmp::parse_args(argc, argv);
  const std::string& workload = args.what;
  const double seconds = args.seconds;
  const std::int64_t batch_override = args.batch;
  const bool fuse_zero_grad = args.fuse_zero_grad;
  const int threads = args.threads;
  set_num_threads(threads);
  manual_seed(0);

  std::int64_t batch = 0;
  std::pair<long, double> r;
  double cpu0 = 0;  // CPU seconds before the timed steps (set by the workload after its set-up)
  if (workload == "mlp_train_32" || workload == "mlp_train_4" || workload == "cnn_train_32") {
    const bool cnn = workload == "cnn_train_32";
    const bool asl = workload == "mlp_train_4";
    batch = batch_override > 0 ? batch_override : workload == "mlp_train_4" ? 4 : 32;
    nn::Sequential model = cnn ? bench::report_cnn(24, true) : bench::report_mlp(asl ? 24 : 10, asl);
    bench::SyntheticData data(batch, cnn || asl ? 24 : 10, 16);
    bench::Trainer trainer(model, fuse_zero_grad);
    std::size_t b = 0;
    cpu0 = cpu_seconds();
    r = timed(seconds, [&] {
      trainer.step(data.inputs[b], data.targets[b]);
      b = (b + 1) % data.inputs.size();
    });
  } else if (workload == "mlp_infer_1000") {
    batch = batch_override > 0 ? batch_override : 1000;
    nn::Sequential model = bench::report_mlp(10, false);
    model.eval();
    bench::SyntheticData data(batch, 10, 1);
    Tensor out;
    cpu0 = cpu_seconds();
    r = timed(seconds, [&] { model.predict_into(data.inputs[0], out); });
  } else if (workload == "cnn_infer_1000") {
    batch = batch_override > 0 ? batch_override : 1000;
    nn::Sequential model = bench::report_cnn(24, true);
    model.eval();
    bench::SyntheticData data(batch, 24, 1);
    Tensor out;
    cpu0 = cpu_seconds();
    r = timed(seconds, [&] { model.predict_into(data.inputs[0], out); });
  } else {
    std::fprintf(stderr, "ember_workloads: unknown workload '%s'\n", workload.c_str());
    return 2;
  }
  const std::string extra = std::string(", \"isa\": \"") + kernels::isa_name(kernels::active_isa()) +
#if defined(__AVX2__) || defined(__AVX512F__)
                            "\", \"build\": \"native\"";
#else
                            "\", \"build\": \"default\"";
#endif
  cmp::print_result(workload, batch, r, cpu_seconds() - cpu0, get_num_threads(), extra);
  return 0;
}
