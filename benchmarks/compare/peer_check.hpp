#pragma once
// The ember side of the peers' correctness checks (libtorch_workloads, dlib_workloads, opencv_workloads): the
// report's model of a workload as ember initialises it (seed 0), its eval-mode output on a fixed batch of 4,
// and, for the MLPs (no dropout, no BatchNorm), the losses of 3 SGD steps on that batch. A peer copies the
// weights into its own model, computes the same and compares: a benchmark that times a wrong computation is
// worthless.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "compare/workload_common.hpp"
#include "report_models.hpp"

namespace cmp {

struct Reference {
  bool cnn = false;
  std::int64_t classes = 10;
  bool softmax = false;
  // Parameters in the order and layout of PyTorch's (and ember's) named_parameters, before any training.
  std::vector<std::pair<std::string, std::vector<float>>> params;
  std::vector<float> input;  // [4, 1, 28, 28], fixed_value
  std::vector<std::int64_t> labels;
  std::vector<float> eval_output;  // [4, classes]
  std::vector<float> losses;       // MLPs: losses of 3 SGD steps (lr 0.001, momentum 0.9) on input, labels
};

inline Reference reference(const std::string& workload) {
  using namespace ember;
  Reference ref;
  ref.cnn = workload.rfind("cnn", 0) == 0;
  ref.classes = workload == "mlp_train_32" || workload == "mlp_infer_1000" ? 10 : 24;
  ref.softmax = ref.classes == 24;
  manual_seed(0);
  nn::Sequential model = ref.cnn ? bench::report_cnn(ref.classes, true) : bench::report_mlp(ref.classes, ref.softmax);
  for (auto& [name, p] : model.named_parameters()) ref.params.emplace_back(name, std::vector<float>(p->value.begin(), p->value.end()));
  Tensor x({4, 1, 28, 28});
  for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = fixed_value(static_cast<std::size_t>(i));
  ref.input.assign(x.begin(), x.end());
  ref.labels = {3, 1, 4, 1};
  model.eval();
  const Tensor out = model.predict(x);
  ref.eval_output.assign(out.begin(), out.end());
  if (!ref.cnn) {
    model.train();
    bench::Trainer trainer(model);
    for (int i = 0; i < 3; ++i) ref.losses.push_back(trainer.step(x, ref.labels));
  }
  return ref;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::fmax(d, std::fabs(a[i] - b[i]));
  return d;
}

// The check's JSON members and whether it passed: outputs within 1e-4 of ember's, the MLPs' 3 losses within
// 1e-4, and the loss of the peer's own training (its own initialisation and data, 30 steps; none for an
// inference-only peer) falling from its first step to its last.
inline std::pair<bool, std::string> check_json(const Reference& ref, const std::vector<float>& eval_output,
                                               const std::vector<float>& losses, const std::vector<float>& own) {
  const float d = max_abs_diff(ref.eval_output, eval_output);
  const float dl = ref.cnn || losses.empty() ? 0.0f : max_abs_diff(ref.losses, losses);
  const bool falls = own.empty() || (std::isfinite(own.back()) && own.back() < own.front());
  const bool ok = d <= 1e-4f && dl <= 1e-4f && falls;
  std::string out = ", \"check\": {\"ok\": " + std::string(ok ? "true" : "false") +
                    ", \"eval_max_abs_diff\": " + json_number(d) + ", \"ember_output_range\": " +
                    json_array({*std::min_element(ref.eval_output.begin(), ref.eval_output.end()),
                                *std::max_element(ref.eval_output.begin(), ref.eval_output.end())});
  if (!losses.empty()) out += ", \"losses_ember\": " + json_array(ref.losses) + ", \"losses\": " + json_array(losses);
  if (!own.empty()) out += ", \"own_training_loss_first_last\": " + json_array({own.front(), own.back()});
  return {ok, out + "}"};
}

}  // namespace cmp
