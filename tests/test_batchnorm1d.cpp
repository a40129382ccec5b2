// BatchNorm1d (nn/batchnorm1d.hpp on nn/batchnorm_base.hpp, kernels/batchnorm.hpp): [N, C] and [N, C, L]
// against PyTorch (train, running statistics, eval, a mean far above the spread), gradient checks in double,
// and PyTorch's refusal of one value per channel in training.
#include <doctest/doctest.h>

#include <ember/nn/nn.hpp>

#include "bad_input.hpp"
#include "layer_check.hpp"

using namespace ember;
using layer_check::TensorD;

TEST_CASE("BatchNorm1d: gradient check in double, [N, C] and [N, C, L], train and eval") {
  nn::BatchNorm1dT<double> nc(3);
  for (auto* p : nc.parameters()) p->value = layer_check::random_tensor(p->value.shape(), 11);
  layer_check::gradcheck(nc, {5, 3}, "BatchNorm1d [N, C] (train)");
  nn::BatchNorm1dT<double> ncl(2, 1e-3, 0.2);
  for (auto* p : ncl.parameters()) p->value = layer_check::random_tensor(p->value.shape(), 12);
  layer_check::gradcheck(ncl, {3, 2, 4}, "BatchNorm1d [N, C, L] (train)");
  ncl.running_mean() = layer_check::random_tensor({2}, 13);
  ncl.running_var() = TensorD::from({2}, {0.5, 2.0});
  ncl.eval();
  layer_check::gradcheck(ncl, {3, 2, 4}, "BatchNorm1d [N, C, L] (eval)");
  nc.eval();
  layer_check::gradcheck(nc, {1, 3}, "BatchNorm1d [1, C] (eval)");
}

TEST_CASE("BatchNorm1d: golden values against PyTorch") {
  nn::BatchNorm1d nc(4);
  layer_check::golden(nc, "batchnorm1d_nc");
  CHECK(nc.num_batches_tracked() == 1);
  nn::BatchNorm1d ncl(3, 1e-3, 0.2);
  layer_check::golden(ncl, "batchnorm1d_ncl");

  // A second batch moves the running statistics again; then eval mode, forward, backward and predict.
  auto f = fixture::load("layers/batchnorm1d_eval.txt");
  ncl.forward(f.at("second_batch").cast<float>());
  const double stats = std::max(fixture::max_rel_error(ncl.running_mean(), f.at("running_mean")),
                                fixture::max_rel_error(ncl.running_var(), f.at("running_var")));
  CHECK(ncl.num_batches_tracked() == 2);
  ncl.eval();
  ncl.zero_grad();
  const Tensor input = f.at("input").cast<float>();
  const Tensor y = ncl.forward(input);
  const Tensor dx = ncl.backward(f.at("grad_output").cast<float>());
  const double e = std::max({stats, fixture::max_rel_error(y, f.at("output")), fixture::max_rel_error(dx, f.at("grad_input")),
                             fixture::max_rel_error(ncl.weight().grad, f.at("grad_weight")),
                             fixture::max_rel_error(ncl.bias().grad, f.at("grad_bias")),
                             fixture::max_rel_error(ncl.predict(input), f.at("output"))});
  std::printf("golden batchnorm1d_eval: largest relative error against PyTorch %.3g\n", e);
  CHECK(e < 1e-5);

  // Mean 1e3, spread 1, against PyTorch in float64: centred float sums keep the digits float inputs allow.
  nn::BatchNorm1d offset(3);
  layer_check::golden(offset, "batchnorm1d_offset", 2e-6);
}

TEST_CASE("BatchNorm1d prints as PyTorch, converts, and is a BatchNorm of its own type") {
  CHECK(nn::BatchNorm1d(4).repr() == "BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)");
  CHECK(nn::BatchNorm1d(3, 1e-3, 0.2).repr() ==
        "BatchNorm1d(3, eps=0.001, momentum=0.2, affine=True, track_running_stats=True)");
  nn::Sequential m{{"fc", nn::Linear(5, 4)}, {"bn", nn::BatchNorm1d(4)}, {"act", nn::GELU()}};
  std::vector<std::string> names;
  for (auto& [n, b] : m.named_buffers()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"});
  const Tensor x = layer_check::random_tensor({40, 5}, 3).cast<float>();
  m.forward(x);
  m.eval();
  auto d = nn::to<double>(m);
  CHECK(dynamic_cast<nn::BatchNorm1dT<double>*>(&d[1]) != nullptr);
  CHECK(d.repr() == m.repr());
  CHECK(fixture::max_rel_error(d.predict(x).cast<float>(), m.predict(x).cast<double>()) < 1e-5);
  CHECK(dynamic_cast<nn::BatchNorm2d*>(m.clone().get()) == nullptr);
  auto& bn = m.get<nn::BatchNorm1d>("bn");
  CHECK(bn.num_features() == 4);
  CHECK(bn.eps() == 1e-5);
  CHECK(bn.momentum() == 0.1);
}

namespace bad_input {

TEST_CASE("BatchNorm1d refuses one value per channel in training, and wrong shapes, naming itself") {
  nn::BatchNorm1d bn(4);
  CHECK_THROWS_WITH_AS(bn.forward(Tensor({1, 4})),
                       doctest::Contains("BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True): "
                                         "expected more than 1 value per channel when training, got input [1, 4]"),
                       shape_error);
  CHECK_THROWS_AS(bn.forward(Tensor({1, 4, 1})), shape_error);
  CHECK(bn.num_batches_tracked() == 0);  // nothing moved
  for (float v : bn.running_var()) CHECK(v == 1.f);
  CHECK(bn.forward(Tensor({1, 4, 2})).shape() == Shape{1, 4, 2});  // two values per channel: fine
  bn.eval();
  CHECK(bn.forward(Tensor({1, 4})).shape() == Shape{1, 4});  // eval needs no batch statistics
  CHECK_THROWS_WITH_AS(bn.forward(Tensor({2, 3})), doctest::Contains("expected input [N, 4] or [N, 4, L], got [2, 3]"),
                       shape_error);
  CHECK_THROWS_AS(bn.forward(Tensor({2, 4, 2, 2})), shape_error);
  CHECK_THROWS_AS(bn.predict(Tensor({4})), shape_error);
  CHECK_THROWS_AS(nn::BatchNorm1d(0), std::invalid_argument);
  CHECK_THROWS_AS(nn::BatchNorm1d(3, 0.0), std::invalid_argument);
  nn::BatchNorm1d fresh(2);
  CHECK_THROWS_AS(fresh.backward(Tensor({2, 2})), std::logic_error);
}

}  // namespace bad_input
