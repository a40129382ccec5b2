// Layers: finite-difference gradient checks (double), golden values from PyTorch (float), printing, errors.
#include <doctest/doctest.h>

#include <cmath>
#include <ember/kernels/conv2d.hpp>
#include <ember/kernels/gemm.hpp>
#include <ember/kernels/im2col.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <ember/testing/gradcheck.hpp>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "fixture.hpp"
#include "bad_input.hpp"

using namespace ember;
using TensorD = TensorT<double>;

namespace {

TensorD random_tensor(const Shape& s, std::uint64_t seed, double scale = 1.0) {
  Generator g(seed);
  TensorD t(s);
  for (double& v : t) v = scale * g.normal();
  return t;
}

void expect_gradcheck(nn::ModuleT<double>& m, const Shape& in, const std::string& what,
                      const std::function<void()>& before = {}) {
  auto r = ember::testing::gradcheck(m, random_tensor(in, 7), 3, before);
  MESSAGE("gradcheck " << what << ": input " << r.input_error << ", worst parameter " << r.worst_param << " "
                        << r.worst_param_error);
  CHECK(r.input_error < 1e-6);
  CHECK(r.worst_param_error < 1e-6);
  CHECK_MESSAGE(r.accumulation_error < 1e-12, "backward must add into parameter gradients");
}

}  // namespace

TEST_CASE("gradient check: every layer, input and parameters, in double") {
  {
    nn::LinearT<double> m(5, 3);
    expect_gradcheck(m, {4, 5}, "Linear");
  }
  {
    nn::LinearT<double> m(4, 2, false);
    expect_gradcheck(m, {3, 4}, "Linear without bias");
  }
  {
    nn::Conv2dT<double> m(3, 4, 3);
    expect_gradcheck(m, {2, 3, 6, 5}, "Conv2d 3x3");
  }
  {
    nn::Conv2dT<double> m(2, 3, {3, 2}, 2, 1);
    expect_gradcheck(m, {2, 2, 7, 6}, "Conv2d stride 2 padding 1, non-square kernel");
  }
  {
    nn::Conv2dT<double> m(3, 2, 1);
    expect_gradcheck(m, {1, 3, 4, 5}, "Conv2d 1x1, batch 1");
  }
  {
    nn::Conv2dT<double> m(2, 2, 5, 1, 2, 1, 1, false);
    expect_gradcheck(m, {1, 2, 5, 7}, "Conv2d 5x5 padding 2 no bias, odd sizes");
  }
  {
    nn::BatchNorm2dT<double> m(3);
    for (auto* p : m.parameters()) p->value = random_tensor(p->value.shape(), 11);
    expect_gradcheck(m, {4, 3, 3, 2}, "BatchNorm2d (train)");
  }
  {
    nn::BatchNorm2dT<double> m(2);
    m.running_mean() = random_tensor({2}, 12);
    m.running_var() = TensorD::from({2}, {0.5, 2.0});
    m.eval();
    expect_gradcheck(m, {3, 2, 2, 3}, "BatchNorm2d (eval)");
  }
  {
    nn::MaxPool2dT<double> m(2, 2);
    expect_gradcheck(m, {2, 2, 6, 5}, "MaxPool2d(2, 2)");
  }
  {
    nn::MaxPool2dT<double> m(2, 1);
    expect_gradcheck(m, {1, 2, 5, 5}, "MaxPool2d(2, 1)");
  }
  {
    nn::MaxPool2dT<double> m(3, 2, 1);
    expect_gradcheck(m, {1, 1, 7, 6}, "MaxPool2d(3, 2, padding 1)");
  }
  {
    Generator mask_gen(5);
    nn::DropoutT<double> m(0.3, &mask_gen);
    expect_gradcheck(m, {4, 6}, "Dropout (fixed mask)", [&] { mask_gen.manual_seed(5); });
  }
  {
    nn::ReLUT<double> m;
    expect_gradcheck(m, {3, 7}, "ReLU");
  }
  {
    nn::SoftmaxT<double> m(1);
    expect_gradcheck(m, {3, 5}, "Softmax");
    expect_gradcheck(m, {2, 3, 2, 2}, "Softmax over channels of 4-d input");
  }
  {
    nn::FlattenT<double> m;
    expect_gradcheck(m, {2, 3, 2, 2}, "Flatten");
  }
  {
    nn::SequentialT<double> m("Small", {{"conv1", nn::Conv2dT<double>(1, 3, 3)},
                                        {"relu1", nn::ReLUT<double>()},
                                        {"batchnorm1", nn::BatchNorm2dT<double>(3)},
                                        {"pool1", nn::MaxPool2dT<double>(2, 2)},
                                        {"flatten", nn::FlattenT<double>()},
                                        {"fc1", nn::LinearT<double>(12, 4)},
                                        {"softmax", nn::SoftmaxT<double>(1)}});
    expect_gradcheck(m, {3, 1, 6, 6}, "Sequential: conv, relu, batchnorm, pool, flatten, linear, softmax");
  }
}

namespace {

// Runs one fixture case: loads the parameters into the layer, forward + backward in float, and compares every
// tensor with PyTorch's. Returns the largest relative error seen.
double compare_layer(nn::Module& m, const std::string& name) {
  auto f = fixture::load("layers/" + name + ".txt");
  for (auto& named : m.named_parameters()) {
    const std::string pname = named.first;  // clang cannot capture structured bindings in REQUIRE's lambda
    REQUIRE_MESSAGE(f.count(pname), name << ": fixture lacks " << pname);
    named.second->value = f.at(pname).cast<float>();
  }
  m.zero_grad();
  Tensor y = m.forward(f.at("input").cast<float>());
  Tensor dx = m.backward(f.at("grad_output").cast<float>());
  double worst = std::max(fixture::max_rel_error(y, f.at("output")), fixture::max_rel_error(dx, f.at("grad_input")));
  for (auto& [pname, p] : m.named_parameters())
    worst = std::max(worst, fixture::max_rel_error(p->grad, f.at("grad_" + pname)));
  for (auto& [bname, b] : m.named_buffers())
    if (f.count(bname)) worst = std::max(worst, fixture::max_rel_error(*b, f.at(bname)));
  MESSAGE(name << ": largest relative error against PyTorch " << worst);
  CHECK(worst < 1e-5);
  return worst;
}

}  // namespace

TEST_CASE("golden values: each layer against PyTorch") {
  {
    nn::Linear m(5, 3);
    compare_layer(m, "linear");
  }
  {
    nn::Linear m(6, 2, false);
    compare_layer(m, "linear_nobias");
  }
  {
    nn::Conv2d m(3, 4, 3);
    compare_layer(m, "conv_basic");
  }
  {
    nn::Conv2d m(2, 3, {3, 2}, 2, 1);
    compare_layer(m, "conv_stride2_pad1");
  }
  {
    nn::Conv2d m(4, 2, 1);
    compare_layer(m, "conv_1x1");
  }
  {
    nn::Conv2d m(2, 3, 5, 1, 2);
    compare_layer(m, "conv_5x5_pad2_batch1");
  }
  {
    nn::Conv2d m(nn::Conv2dOptions(3, 2, 3).stride(2).bias(false));
    compare_layer(m, "conv_nobias_stride2");
  }
  {
    nn::MaxPool2d m(2, 2);
    compare_layer(m, "maxpool_2_2");
  }
  {
    nn::MaxPool2d m(2, 1);
    compare_layer(m, "maxpool_2_1");
  }
  {
    nn::MaxPool2d m(3, 2, 1);
    compare_layer(m, "maxpool_3_2_pad1");
  }
  {
    nn::ReLU m;
    compare_layer(m, "relu");
  }
  {
    nn::Softmax m(1);
    compare_layer(m, "softmax");
    compare_layer(m, "softmax_4d");
  }
  {
    nn::Flatten m;
    compare_layer(m, "flatten");
  }
}

TEST_CASE("golden values: BatchNorm2d running statistics and eval mode against PyTorch") {
  nn::BatchNorm2d bn(3);
  compare_layer(bn, "batchnorm_train");
  auto f = fixture::load("layers/batchnorm_eval.txt");
  bn.forward(f.at("second_batch").cast<float>());
  CHECK(fixture::max_rel_error(bn.running_mean(), f.at("running_mean")) < 1e-5);
  CHECK(fixture::max_rel_error(bn.running_var(), f.at("running_var")) < 1e-5);
  CHECK(bn.num_batches_tracked() == 2);
  bn.eval();
  bn.zero_grad();
  const Tensor input = f.at("input").cast<float>();
  Tensor y = bn.forward(input);
  Tensor dx = bn.backward(f.at("grad_output").cast<float>());
  const double e = std::max({fixture::max_rel_error(y, f.at("output")), fixture::max_rel_error(dx, f.at("grad_input")),
                             fixture::max_rel_error(bn.weight().grad, f.at("grad_weight")),
                             fixture::max_rel_error(bn.bias().grad, f.at("grad_bias"))});
  MESSAGE("batchnorm_eval: largest relative error against PyTorch " << e);
  CHECK(e < 1e-5);
  // predict uses the running statistics and changes nothing.
  const Tensor rm = bn.running_mean();
  bn.train();
  CHECK(fixture::max_rel_error(bn.predict(input), f.at("output")) < 1e-5);
  CHECK(bn.running_mean() == rm);
  CHECK(bn.num_batches_tracked() == 2);
}

// Mean 1000, standard deviation 1: float inputs carry an ulp of 6e-5 there, so any formula that adds terms of
// size ~1000 to get a result of size ~1 keeps only ~4 digits. PyTorch's values are float64 (exact for these
// float inputs); ember's float layer must stay within a few float roundings of them.
TEST_CASE("golden values: BatchNorm2d keeps its precision when the mean is far larger than the spread") {
  nn::BatchNorm2d bn(3);
  auto f = fixture::load("layers/batchnorm_offset.txt");
  bn.weight().value = f.at("weight").cast<float>();
  bn.bias().value = f.at("bias").cast<float>();
  bn.zero_grad();
  const Tensor y = bn.forward(f.at("input").cast<float>());
  const Tensor dx = bn.backward(f.at("grad_output").cast<float>());
  const std::pair<std::string, double> errors[] = {
      {"output", fixture::max_rel_error(y, f.at("output"))},
      {"grad_input", fixture::max_rel_error(dx, f.at("grad_input"))},
      {"grad_weight", fixture::max_rel_error(bn.weight().grad, f.at("grad_weight"))},
      {"grad_bias", fixture::max_rel_error(bn.bias().grad, f.at("grad_bias"))},
      {"running_mean", fixture::max_rel_error(bn.running_mean(), f.at("running_mean"))},
      {"running_var", fixture::max_rel_error(bn.running_var(), f.at("running_var"))}};
  for (const auto& error : errors) {  // clang cannot capture structured bindings in CHECK's lambda
    MESSAGE("batchnorm_offset " << error.first << ": largest relative error against PyTorch (float64) "
                                << error.second);
    CHECK_MESSAGE(error.second < 2e-6, error.first);
  }
}

namespace {

using models::report_cnn;
using models::report_mlp;

// The fixture script's formula, exact in double.
void formula_weights(nn::ModuleT<double>& m) {
  std::int64_t layer = 0;
  for (auto& [name, p] : m.named_parameters()) {
    const auto& s = p->value.shape();
    const std::int64_t fan_in = s.size() > 1 ? p->value.numel() / s[0] : p->value.numel();
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    const bool bn_weight = name.find("batchnorm") != std::string::npos && name.size() > 6 &&
                           name.compare(name.size() - 6, 6, "weight") == 0;
    for (std::int64_t i = 0; i < p->value.numel(); ++i) {
      double w = bound * (static_cast<double>((i * 7919 + layer * 104729) % 2001) / 1000.0 - 1.0);
      if (bn_weight) w = 1.0 + w / 2;
      p->value[i] = w;
    }
    ++layer;
  }
}

// Forward and backward of a whole report model in double against PyTorch in float64, every tensor compared.
double compare_model(nn::SequentialT<double>& m, const std::string& name) {
  auto f = fixture::load("layers/" + name + ".txt");
  formula_weights(m);
  m.train();
  for (std::size_t i = 0; i < m.size(); ++i)
    if (m[i].type_name() == "Dropout") m[i].eval();  // as the fixture: masks come from another RNG
  m.zero_grad();
  TensorD y = m.forward(f.at("input"));
  TensorD dx = m.backward(f.at("grad_output"));
  double worst = std::max(fixture::max_rel_error(y, f.at("output")), fixture::max_rel_error(dx, f.at("grad_input")));
  for (auto& [pname, p] : m.named_parameters()) {
    const TensorD& want = f.at("grad_" + pname);
    TensorD got = p->grad.reshape({-1});
    if (want.numel() != got.numel()) {  // thinned: every 97th value
      TensorD thin({want.numel()});
      for (std::int64_t i = 0; i < want.numel(); ++i) thin[i] = got[i * 97];
      got = thin;
    }
    worst = std::max(worst, fixture::max_rel_error(got, want));
  }
  for (auto& [bname, b] : m.named_buffers())
    if (f.count(bname)) worst = std::max(worst, fixture::max_rel_error(*b, f.at(bname)));
  m.eval();
  worst = std::max(worst, fixture::max_rel_error(m.forward(f.at("input")), f.at("eval_output")));
  worst = std::max(worst, fixture::max_rel_error(m.predict(f.at("input")), f.at("eval_output")));
  MESSAGE(name << " (double): largest relative error against PyTorch " << worst);
  CHECK(worst < 1e-9);
  return worst;
}

}  // namespace

TEST_CASE("golden values: the report's models end to end against PyTorch") {
  auto mlp = report_mlp<double>(10, false);
  compare_model(mlp, "model_mlp_logits");
  auto mlp24 = report_mlp<double>(24, true);
  compare_model(mlp24, "model_mlp_softmax");
  auto cnn = report_cnn<double>(24, true);
  compare_model(cnn, "model_cnn_softmax");
}

TEST_CASE("the report's models print exactly as PyTorch prints them") {
  std::ifstream in(fixture::path("layers/model_printouts.txt"));
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  const auto sep = text.find("\n---\n");
  REQUIRE(sep != std::string::npos);
  const std::string cnn_want = text.substr(0, sep), mlp_want = text.substr(sep + 5, text.size() - sep - 6);
  CHECK(report_cnn(24, true).repr() == cnn_want);
  std::ostringstream os;
  os << report_mlp(10, false);
  CHECK(os.str() == mlp_want);
  CHECK(nn::Sequential().repr() == "Sequential()");
  CHECK(nn::Conv2d(3, 8, 3, 1, 1, 1, 1, false).repr() == "Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)");
  CHECK(nn::MaxPool2d({2, 3}, 1).repr() ==
        "MaxPool2d(kernel_size=(2, 3), stride=1, padding=0, dilation=1, ceil_mode=False)");
}

TEST_CASE("named parameters and buffers use PyTorch's dotted names, in registration order") {
  auto cnn = report_cnn(24, false);
  auto params = cnn.named_parameters();
  REQUIRE(params.size() == 16);
  CHECK(params[0].first == "conv1.weight");
  CHECK(params[1].first == "conv1.bias");
  CHECK(params[2].first == "batchnorm1.weight");
  CHECK(params[15].first == "fc2.bias");
  auto buffers = cnn.named_buffers();
  REQUIRE(buffers.size() == 9);
  CHECK(buffers[0].first == "batchnorm1.running_mean");
  CHECK(buffers[1].first == "batchnorm1.running_var");
  CHECK(buffers[2].first == "batchnorm1.num_batches_tracked");
  std::int64_t count = 0;
  for (auto* p : cnn.parameters()) count += p->value.numel();
  CHECK(count == 675 + 75 + 150 + 33750 + 50 + 100 + 11250 + 25 + 50 + 51200 + 512 + 12288 + 24);
  const nn::Sequential& ccnn = cnn;
  CHECK(ccnn.named_parameters().size() == 16);
  // Unnamed children are named by position, as in PyTorch.
  nn::Sequential s({nn::Linear(2, 3), nn::ReLU(), nn::Linear(3, 1)});
  CHECK(s.named_parameters()[2].first == "2.weight");
}

TEST_CASE("shape errors name the model, the layer and both shapes") {
  auto cnn = report_cnn(24, true);
  try {
    cnn.forward(Tensor({2, 3, 28, 28}));
    FAIL("expected shape_error");
  } catch (const shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("CNNNet (conv1)") != std::string::npos);
    CHECK(msg.find("[N, 1, H, W]") != std::string::npos);
    CHECK(msg.find("[2, 3, 28, 28]") != std::string::npos);
  }
  nn::Linear fc(784, 512);
  CHECK_THROWS_WITH_AS(fc.forward(Tensor({4, 100})), doctest::Contains("expected input [*, 784], got [4, 100]"),
                       shape_error);
  CHECK_THROWS_AS(nn::BatchNorm2d(3).forward(Tensor({2, 4, 5, 5})), shape_error);
  CHECK_THROWS_AS(nn::BatchNorm2d(3).forward(Tensor({1, 3, 1, 1})), shape_error);  // one value per channel
  CHECK_THROWS_AS(nn::MaxPool2d(2).forward(Tensor({2, 3, 5})), shape_error);
  CHECK_THROWS_AS(nn::MaxPool2d(3).forward(Tensor({1, 1, 2, 2})), shape_error);
  CHECK_THROWS_AS(nn::Conv2d(1, 2, 5).forward(Tensor({1, 1, 3, 3})), shape_error);
  CHECK_THROWS_AS(nn::Softmax(1).forward(Tensor({5})), shape_error);
  // A wrong upstream gradient is named too.
  nn::ReLU relu;
  relu.forward(Tensor({2, 3}));
  CHECK_THROWS_AS(relu.backward(Tensor({3, 2})), shape_error);
  CHECK_THROWS_AS(fc.backward(Tensor({4, 512})), std::logic_error);  // no forward yet
  CHECK_THROWS_AS(nn::Linear(0, 3), std::invalid_argument);
  CHECK_THROWS_AS(nn::Conv2d(1, 2, 0), std::invalid_argument);
  CHECK_THROWS_AS(nn::Dropout(1.5), std::invalid_argument);
  CHECK_THROWS_AS(nn::MaxPool2d(2, 2, 2), std::invalid_argument);
}

TEST_CASE("default initialisation follows PyTorch's bounds") {
  manual_seed(0);
  nn::Linear fc(400, 300);
  const double bound = 1.0 / std::sqrt(400.0);
  double sum = 0, sq = 0, mx = 0;
  for (float v : fc.weight().value) {
    sum += v;
    sq += double(v) * v;
    mx = std::max(mx, std::fabs(double(v)));
  }
  const double n = static_cast<double>(fc.weight().value.numel());
  CHECK(mx <= bound);
  CHECK(mx > 0.99 * bound);
  CHECK(sum / n == doctest::Approx(0.0).epsilon(0.01).scale(bound));
  CHECK(sq / n == doctest::Approx(bound * bound / 3).epsilon(0.02));
  for (float v : fc.bias().value) CHECK(std::fabs(v) <= bound);
  // The same seed gives the same model.
  manual_seed(0);
  nn::Linear again(400, 300);
  CHECK(again.weight().value == fc.weight().value);
  nn::Conv2d conv(75, 50, 3);
  for (float v : conv.weight().value) CHECK(std::fabs(v) <= 1.0 / std::sqrt(675.0));
  nn::BatchNorm2d bn(4);
  CHECK(bn.weight().value == Tensor::ones({4}));
  CHECK(bn.running_var() == Tensor::ones({4}));
}

TEST_CASE("dropout: inverted scaling in training, identity in eval, seeded masks") {
  Generator g(1);
  nn::Dropout d(0.25, &g);
  Tensor x = Tensor::full({100, 100}, 1.0f);
  Tensor y = d.forward(x);
  std::int64_t zeros = 0;
  for (float v : y) {
    CHECK((v == 0.0f || std::fabs(v - 1.0f / 0.75f) < 1e-6f));
    zeros += v == 0.0f;
  }
  CHECK(static_cast<double>(zeros) / 10000 == doctest::Approx(0.25).epsilon(0.06));
  g.manual_seed(1);
  CHECK(d.forward(x) == y);
  d.eval();
  CHECK(d.forward(x) == x);
  CHECK(d.predict(x) == x);
  nn::Dropout all(1.0, &g);
  for (float v : all.forward(x)) CHECK(v == 0.0f);
}

TEST_CASE("dropout's mask: one draw of the generator keys it, element i dropped by SplitMix64's i-th output, any threads") {
  // Element i is dropped when splitmix64(key, i) >> 11 < ceil(p 2^53), key = the generator's next draw: the same
  // decision as a uniform() < p on that output, and the same mask on one thread or two.
  for (double p : {0.2, 0.5, 1.0 / 3.0, 1e-9, 1.0 - 1e-9}) {
    CAPTURE(p);
    Generator g(11), replay(11);
    nn::Dropout d(p, &g);
    Tensor x = Tensor::full({64, 1000}, 2.0f);  // several chunks, over threads when there are two
    const int threads = get_num_threads();
    set_num_threads(1);
    Tensor y1 = d.forward(x);
    g.manual_seed(11);
    set_num_threads(2);
    Tensor y2 = d.forward(x);
    set_num_threads(threads);
    CHECK(y1 == y2);
    const std::uint64_t key = replay.next_u64();
    const float scale = static_cast<float>(1.0 / (1.0 - p));
    std::int64_t wrong = 0, dropped = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      const double u = static_cast<double>(nn::detail::splitmix64(key, static_cast<std::uint64_t>(i)) >> 11) * 0x1.0p-53;
      wrong += y1[i] != (u < p ? 0.0f : 2.0f * scale);
      dropped += y1[i] == 0.0f;
    }
    CHECK(wrong == 0);
    const double n = static_cast<double>(x.numel());
    CHECK(std::fabs(static_cast<double>(dropped) / n - p) <= 5.0 * std::sqrt(p * (1 - p) / n) + 1e-9);
  }
}

TEST_CASE("BatchNorm after another layer in a Sequential keeps its input by reference, with the same results") {
  // Inside a Sequential, BatchNorm reads the previous layer's output buffer in backward instead of a copy;
  // the gradients must be those of a BatchNorm that copied its input (called on its own).
  manual_seed(5);
  nn::Sequential seq("Net", {{"conv", nn::Conv2d(2, 3, 3)}, {"bn", nn::BatchNorm2d(3)}, {"relu", nn::ReLU()}});
  nn::Conv2d conv = seq.get<nn::Conv2d>("conv");
  nn::BatchNorm2d bn = seq.get<nn::BatchNorm2d>("bn");
  nn::ReLU relu;
  Tensor x({4, 2, 9, 9});
  Generator g(6);
  for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
  Tensor gy({4, 3, 7, 7});
  for (float& v : gy) v = static_cast<float>(g.uniform(-1, 1));
  Tensor y = seq.forward(x);
  Tensor dx = seq.backward(gy);
  Tensor y2 = relu.forward(bn.forward(conv.forward(x)));
  Tensor dx2 = conv.backward(bn.backward(relu.backward(gy)));
  CHECK(y == y2);
  CHECK(dx == dx2);
  CHECK(seq.get<nn::BatchNorm2d>("bn").weight().grad == bn.weight().grad);
  CHECK(seq.get<nn::BatchNorm2d>("bn").bias().grad == bn.bias().grad);
  CHECK(seq.get<nn::Conv2d>("conv").weight().grad == conv.weight().grad);
}

TEST_CASE("predict is eval-mode inference that changes nothing") {
  manual_seed(3);
  auto cnn = report_cnn(24, true);
  Tensor x({4, 1, 28, 28});
  Generator g(9);
  for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
  cnn.forward(x);  // moves the running statistics once
  std::vector<Tensor> before;
  for (auto& [n, b] : cnn.named_buffers()) before.push_back(*b);
  Tensor p1 = cnn.predict(x);
  std::size_t k = 0;
  for (auto& [n, b] : cnn.named_buffers()) CHECK(*b == before[k++]);
  CHECK(cnn.is_training());
  cnn.eval();
  Tensor e = cnn.forward(x);
  CHECK(fixture::max_rel_error(p1, e) < 1e-6);
  // Rows of the softmax head sum to one.
  for (std::int64_t i = 0; i < 4; ++i) CHECK(p1.matrix().row(i).sum() == doctest::Approx(1.0f).epsilon(1e-5));
}

TEST_CASE("convolution: im2col + GEMM equals the direct definition on many shapes") {
  struct Case {
    std::int64_t n, c, h, w, o, kh, kw, s, p;
  };
  for (const Case& k : {Case{1, 1, 5, 5, 1, 3, 3, 1, 0}, Case{2, 3, 8, 7, 4, 3, 3, 2, 1}, Case{3, 2, 9, 9, 5, 5, 5, 1, 2},
                        Case{1, 4, 6, 6, 3, 1, 1, 1, 0}, Case{2, 2, 7, 10, 3, 2, 4, 3, 1}, Case{5, 75, 13, 13, 50, 3, 3, 1, 0}}) {
    nn::Conv2d conv(k.c, k.o, {k.kh, k.kw}, k.s, k.p);
    Tensor x({k.n, k.c, k.h, k.w});
    Generator g(2);
    for (float& v : x) v = static_cast<float>(g.normal());
    Tensor y = conv.forward(x);
    kernels::Conv2dGeometry geo{k.c, k.h, k.w, k.kh, k.kw, k.s, k.s, k.p, k.p};
    Tensor ref({k.n, k.o, geo.out_h(), geo.out_w()});
    kernels::conv2d_forward_ref(ref.data(), x.data(), conv.weight().value.data(), conv.bias().value.data(), geo, k.n,
                                k.o);
    CHECK(fixture::max_rel_error(y, ref) < 1e-5);
    // col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)>.
    std::vector<double> cols(static_cast<std::size_t>(geo.col_rows() * geo.col_cols())), c2(cols.size());
    std::vector<double> img(static_cast<std::size_t>(k.c * k.h * k.w)), back(img.size(), 0.0);
    for (auto& v : img) v = g.normal();
    for (auto& v : c2) v = g.normal();
    kernels::im2col(geo, img.data(), cols.data());
    kernels::col2im(geo, c2.data(), back.data());
    double lhs = 0, rhs = 0;
    for (std::size_t i = 0; i < cols.size(); ++i) lhs += cols[i] * c2[i];
    for (std::size_t i = 0; i < img.size(); ++i) rhs += img[i] * back[i];
    CHECK(lhs == doctest::Approx(rhs).epsilon(1e-10));
  }
}

TEST_CASE("gemm equals the reference in all four transpositions") {
  Generator g(4);
  const std::int64_t m = 7, n = 5, k = 9;
  std::vector<float> a(m * k), b(k * n), c1(m * n), c2(m * n);
  for (auto& v : a) v = static_cast<float>(g.normal());
  for (auto& v : b) v = static_cast<float>(g.normal());
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      for (std::size_t i = 0; i < c1.size(); ++i) c1[i] = c2[i] = static_cast<float>(i);
      kernels::gemm(ta, tb, m, n, k, 0.5f, a.data(), b.data(), 2.0f, c1.data());
      kernels::gemm_ref(ta, tb, m, n, k, 0.5f, a.data(), b.data(), 2.0f, c2.data());
      for (std::size_t i = 0; i < c1.size(); ++i) CHECK(c1[i] == doctest::Approx(c2[i]).epsilon(1e-5));
    }
}

TEST_CASE("training steps repeat bit for bit with the same thread count, and modules move") {
  auto run = [] {
    manual_seed(5);
    auto cnn = report_cnn(24, true);
    Tensor x({8, 1, 28, 28});
    Generator g(1);
    for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
    Tensor y = cnn.forward(x);
    cnn.backward(Tensor(y.shape(), 0.1f));
    nn::Sequential moved = std::move(cnn);
    std::vector<Tensor> grads;
    for (auto* p : moved.parameters()) grads.push_back(p->grad);
    grads.push_back(moved.forward(x));
    return grads;
  };
  auto a = run(), b = run();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
}

TEST_CASE("ReLU propagates NaN in forward, predict and backward, as PyTorch") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  nn::ReLU relu;
  Tensor x = Tensor::from({3}, {nan, -1.0f, 2.0f});
  Tensor y = relu.forward(x);
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 2.0f);
  CHECK(std::isnan(relu.predict(x)[0]));
  Tensor g = relu.backward(Tensor::from({3}, {5.0f, 5.0f, 5.0f}));
  CHECK(g[0] == 5.0f);
  CHECK(g[1] == 0.0f);
}

TEST_CASE("batches of one and empty Sequential pass through") {
  nn::Sequential empty;
  Tensor x = Tensor::from({1, 2}, {1, -2});
  CHECK(empty.forward(x) == x);
  CHECK(empty.backward(x) == x);
  nn::Conv2d conv(1, 2, 3);
  Tensor y = conv.forward(Tensor({1, 1, 3, 3}, 1.0f));
  CHECK(y.shape() == Shape{1, 2, 1, 1});
}

TEST_CASE("in training, a ReLU then BatchNorm runs as the BatchNorm alone, with the values and gradients of the two") {
  // Sequential's forward hands the ReLU's input to a BatchNorm in training (forward_into_relu), which reads it
  // through the ReLU, and its backward (backward_into_relu) masks the input gradient as the ReLU's would. The
  // children run one by one must give the same bits: outputs, input gradient, parameter gradients, running
  // statistics. NaN passes as through a ReLU.
  Generator g(71);
  auto run = [&](nn::Sequential fused, const Shape& shape) {
    nn::Sequential plain = fused;  // the same parameters
    Tensor x(shape);
    for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
    x[3] = std::numeric_limits<float>::quiet_NaN();
    Tensor dy;
    std::vector<std::string> ready;
    fused.add_gradients_ready_listener([&](const std::string& name, nn::Module&) { ready.push_back(name); });
    fused.zero_grad();
    plain.zero_grad();
    const Tensor y = fused.forward(x);
    dy = Tensor(y.shape());
    for (float& v : dy) v = static_cast<float>(g.uniform(-1, 1));
    const Tensor dx = fused.backward(dy);
    // One by one, each child with its own forward_into (it copies its input) and backward_into.
    std::vector<Tensor> acts(plain.size() + 1);
    acts[0] = x;
    for (std::size_t i = 0; i < plain.size(); ++i) plain[i].forward_into(acts[i], acts[i + 1]);
    Tensor gcur = dy, gnext;
    for (std::size_t i = plain.size(); i-- > 0;) {
      plain[i].backward_into(gcur, &gnext);
      std::swap(gcur, gnext);
    }
    auto same = [](const Tensor& a, const Tensor& b) {
      if (a.shape() != b.shape()) return false;
      for (std::int64_t i = 0; i < a.numel(); ++i)
        if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
      return true;
    };
    CHECK(same(y, acts.back()));
    CHECK(same(dx, gcur));
    const auto fp = fused.named_parameters(), pp = plain.named_parameters();
    for (std::size_t i = 0; i < fp.size(); ++i) {
      CAPTURE(fp[i].first);
      CHECK(same(fp[i].second->grad, pp[i].second->grad));
    }
    const auto fb = fused.named_buffers(), pb = plain.named_buffers();
    for (std::size_t i = 0; i < fb.size(); ++i) {
      CAPTURE(fb[i].first);
      CHECK(same(*fb[i].second, *pb[i].second));
    }
    CHECK(ready.size() == fused.size());  // the hook still hears of every child, the ReLU included
    return y;
  };
  // conv -> relu -> bn -> pool, then linear -> relu -> BatchNorm1d (one value per channel and sample)
  const Tensor y = run(nn::Sequential({{"conv", nn::Conv2d(3, 8, 3)}, {"relu", nn::ReLU()}, {"bn", nn::BatchNorm2d(8)},
                                       {"pool", nn::MaxPool2d(2, 2)}, {"flat", nn::Flatten()},
                                       {"fc", nn::Linear(72, 16)}, {"relu2", nn::ReLU()},
                                       {"bn2", nn::BatchNorm1d(16)}, {"out", nn::Linear(16, 4)}}),
                       {6, 3, 8, 8});
  std::int64_t nans = 0;
  for (float v : y) nans += std::isnan(v);
  CHECK(nans > 0);  // sample 0's NaN reached the output: the check above compared NaN positions too
  // A ReLU as the first child (its input is the caller's, not kept): not fused, the same values.
  run(nn::Sequential({{"relu", nn::ReLU()}, {"bn", nn::BatchNorm2d(3)}}), {4, 3, 5, 5});
  // A BatchNorm that does not take the shape still reports it, naming itself.
  nn::Sequential bad({{"conv", nn::Conv2d(3, 8, 3)}, {"relu", nn::ReLU()}, {"bn", nn::BatchNorm2d(7)}});
  CHECK_THROWS_WITH_AS(bad.forward(Tensor({2, 3, 9, 9})), doctest::Contains("(bn): BatchNorm2d(7"), shape_error);
}

TEST_CASE("predict applies the ReLU, Dropout and BatchNorm2d after a Conv2d inside its output, with their values") {
  // Sequential's predict hands a Conv2d the channel maps that follow it (nn/fusion.hpp's ChannelMap). The result
  // must be the children's own predict_into, one after the other, within an FMA's rounding; a ReLU after the
  // BatchNorm cannot be folded and runs on its own; NaN still passes through.
  Generator g(61);
  auto randomise = [&](auto& model) {
    for (auto& [name, b] : model.named_buffers()) {
      if (name.find("running_var") != std::string::npos)
        for (auto& v : *b) v = static_cast<std::decay_t<decltype(v)>>(g.uniform(0.5, 2.0));
      if (name.find("running_mean") != std::string::npos)
        for (auto& v : *b) v = static_cast<std::decay_t<decltype(v)>>(g.uniform(-0.5, 0.5));
    }
    for (auto& [name, p] : model.named_parameters())
      if (name.find("bn") != std::string::npos)
        for (auto& v : p->value) v = static_cast<std::decay_t<decltype(v)>>(g.uniform(-1.5, 1.5));
  };
  auto one_by_one = [](const auto& model, const auto& x) {
    std::decay_t<decltype(x)> cur = x, next;
    for (std::size_t i = 0; i < model.size(); ++i) {
      model[i].predict_into(cur, next);
      std::swap(cur, next);
    }
    return cur;
  };
  auto check_model = [&](auto model, std::int64_t batch, double tolerance) {
    using Tn = std::decay_t<decltype(model.parameters()[0]->value)>;
    randomise(model);
    model.eval();
    Tn x({batch, 3, 9, 9});
    for (auto& v : x) v = static_cast<std::decay_t<decltype(v)>>(g.uniform(-1, 1));
    x[5] = std::numeric_limits<float>::quiet_NaN();
    const Tn fused = model.predict(x), plain = one_by_one(model, x);
    REQUIRE(fused.shape() == plain.shape());
    std::int64_t nans = 0, wrong = 0;
    for (std::int64_t i = 0; i < fused.numel(); ++i) {
      if (std::isnan(double(plain[i]))) {
        ++nans;
        wrong += !std::isnan(double(fused[i]));
      } else {
        wrong += !(std::fabs(double(fused[i]) - double(plain[i])) <= tolerance * (1 + std::fabs(double(plain[i]))));
      }
    }
    CHECK(nans > 0);
    CHECK(wrong == 0);
  };
  for (std::int64_t batch : {2, 40}) {  // whole, and in chunks over threads
    CAPTURE(batch);
    check_model(nn::Sequential({{"conv", nn::Conv2d(3, 8, 3)}, {"relu", nn::ReLU()}, {"drop", nn::Dropout(0.3)},
                                {"bn", nn::BatchNorm2d(8)}, {"pool", nn::MaxPool2d(2, 2)}}),
                batch, 1e-6);
    check_model(nn::Sequential({{"conv", nn::Conv2d(3, 8, 3)}, {"bn", nn::BatchNorm2d(8)}, {"relu", nn::ReLU()}}),
                batch, 1e-6);
    check_model(nn::Sequential({{"conv", nn::Conv2d(nn::Conv2dOptions(3, 6, 3).groups(3).padding(1))},
                                {"relu", nn::ReLU()}, {"bn", nn::BatchNorm2d(6)}, {"relu2", nn::ReLU()}}),
                batch, 1e-6);
    check_model(nn::Sequential({{"conv", nn::Conv2d(nn::Conv2dOptions(3, 3, 3).groups(3))},
                                {"bn", nn::BatchNorm2d(3)}}),
                batch, 1e-6);
    check_model(nn::to<double>(nn::Sequential({{"conv", nn::Conv2d(3, 8, 3)}, {"relu", nn::ReLU()},
                                               {"bn", nn::BatchNorm2d(8)}})),
                batch, 1e-14);
  }
  // A BatchNorm that cannot take the convolution's output is not folded: its own error, naming it.
  nn::Sequential bad({{"conv", nn::Conv2d(3, 8, 3)}, {"relu", nn::ReLU()}, {"bn", nn::BatchNorm2d(7)}});
  bad.eval();
  CHECK_THROWS_WITH_AS(bad.predict(Tensor({2, 3, 9, 9})), doctest::Contains("(bn): BatchNorm2d(7"), shape_error);
}

TEST_CASE("threads: chunked parallel predict equals the whole batch at once, and serves several threads") {
  // Sequential::predict cuts a batch above 2 x kPredictChunk into chunks run on several threads (the first of kPredictChunk, the others sized by the largest activation); eval-mode
  // forward runs the whole batch through each layer. The two must agree, on 1 thread and on 2.
  manual_seed(50);
  auto cnn = models::report_cnn(24, true);
  Generator g(51);
  const std::int64_t n = 1000;
  Tensor x({n, 1, 28, 28});
  for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
  // Non-trivial running statistics, so BatchNorm's eval path is exercised.
  for (auto& [name, b] : cnn.named_buffers())
    if (name.find("running_var") != std::string::npos)
      for (float& v : *b) v = static_cast<float>(g.uniform(0.5, 2.0));
  cnn.eval();
  const int saved = get_num_threads();
  std::vector<Tensor> chunked;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const Tensor whole = cnn.forward(x);  // eval mode: the whole batch through each layer
    const Tensor c = cnn.predict(x);
    REQUIRE(c.shape() == whole.shape());
    double worst = 0;
    for (std::int64_t i = 0; i < c.numel(); ++i) worst = std::max(worst, double(std::fabs(c[i] - whole[i])));
    CAPTURE(threads);
    CHECK(worst < 1e-6);  // softmax outputs; GEMM blocking may differ in the last bit
    MESSAGE(threads << " thread(s): largest |chunked - whole batch| " << worst);
    chunked.push_back(c);
  }
  CHECK(chunked[0] == chunked[1]);  // each chunk runs on one thread: the thread count changes nothing

  // Several threads calling predict at once, each with a batch above the chunk size (so each call forks).
  set_num_threads(2);
  const Tensor x100 = Tensor::from({100, 1, 28, 28}, std::vector<float>(x.begin(), x.begin() + 100 * 784));
  const Tensor expected = cnn.predict(x100);
  std::vector<Tensor> got(4);
  std::vector<std::thread> workers;
  for (std::size_t t = 0; t < got.size(); ++t) workers.emplace_back([&, t] { got[t] = cnn.predict(x100); });
  for (auto& w : workers) w.join();
  for (const auto& r : got) CHECK(r == expected);
  set_num_threads(saved);
}

// ---- Value semantics: an lvalue layer given to Sequential is copied, never emptied; clone() is deep. ----

TEST_CASE("an lvalue layer passed to Sequential is copied and stays usable") {
  manual_seed(3);
  nn::Linear fc(4, 2);
  const Tensor x = Tensor::ones({3, 4});
  const Tensor before = fc.predict(x);
  nn::Sequential m({{"fc", fc}});
  nn::Sequential n;
  n.add("fc", fc);
  // Before: fc was moved from (an empty weight) and fc.predict(x) read through a null pointer.
  REQUIRE(fc.weight().value.numel() == 8);
  CHECK(fc.predict(x).vector() == before.vector());
  CHECK(m.predict(x).vector() == before.vector());
  CHECK(n.predict(x).vector() == before.vector());
  // Independent copies: changing the model's weight leaves fc alone.
  m.get<nn::Linear>("fc").weight().value.fill(0.0f);
  CHECK(fc.predict(x).vector() == before.vector());
  CHECK(n.predict(x).vector() == before.vector());
}

TEST_CASE("a moved-from layer throws naming itself instead of crashing") {
  nn::Linear fc(4, 2);
  nn::Conv2d conv(1, 2, 3);
  nn::BatchNorm2d bn(2);
  nn::Sequential m({{"fc", std::move(fc)}, {"conv", std::move(conv)}, {"bn", std::move(bn)}});
  CHECK(m.size() == 3);
  // NOLINTBEGIN(bugprone-use-after-move): the point of the test
  CHECK_THROWS_WITH_AS(fc.predict(Tensor({3, 4})), doctest::Contains("Linear(in_features=4, out_features=2"),
                       std::logic_error);
  CHECK_THROWS_WITH_AS(fc.forward(Tensor({3, 4})), doctest::Contains("moved from"), std::logic_error);
  CHECK_THROWS_WITH_AS(fc.backward(Tensor({3, 2})), doctest::Contains("moved from"), std::logic_error);
  CHECK_THROWS_WITH_AS(conv.predict(Tensor({1, 1, 5, 5})), doctest::Contains("Conv2d(1, 2"), std::logic_error);
  CHECK_THROWS_WITH_AS(bn.predict(Tensor({1, 2, 3, 3})), doctest::Contains("BatchNorm2d(2"), std::logic_error);
  // Assigning a new layer makes it usable again.
  fc = nn::Linear(4, 2);
  CHECK(fc.predict(Tensor({3, 4})).shape() == Shape{3, 2});
  // NOLINTEND(bugprone-use-after-move)
}

TEST_CASE("clone() and copies of Sequential are deep") {
  manual_seed(5);
  nn::Sequential inner({{"conv", nn::Conv2d(1, 2, 3)}, {"bn", nn::BatchNorm2d(2)}, {"relu", nn::ReLU()}});
  nn::Sequential model("Net", {{"block", inner}, {"pool", nn::MaxPool2d(2)}, {"flatten", nn::Flatten()},
                               {"drop", nn::Dropout(0.25)}, {"fc", nn::Linear(8, 3)}, {"softmax", nn::Softmax(1)}});
  model.forward(Tensor::ones({2, 1, 6, 6}));  // moves the running statistics away from their start
  model.eval();
  Generator g(1);
  Tensor x({4, 1, 6, 6});
  for (float& v : x) v = static_cast<float>(g.normal());
  const Tensor y = model.predict(x);

  nn::Sequential copy = model;
  std::unique_ptr<nn::Module> cloned = model.clone();
  CHECK(copy.repr() == model.repr());
  CHECK(cloned->repr() == model.repr());
  CHECK(copy.predict(x).vector() == y.vector());
  CHECK(cloned->predict(x).vector() == y.vector());
  CHECK_FALSE(copy.is_training());

  // Every parameter and buffer is a tensor of its own.
  auto a = model.named_parameters(), b = copy.named_parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].first == b[i].first);
    CHECK(a[i].second != b[i].second);
    CHECK(a[i].second->value.data() != b[i].second->value.data());
  }
  for (auto& [name, p] : model.named_parameters()) p->value.fill(0.0f);
  for (auto& [name, t] : model.named_buffers()) t->fill(1.0f);
  CHECK(copy.predict(x).vector() == y.vector());
  CHECK(cloned->predict(x).vector() == y.vector());

  // Copy assignment replaces the children.
  nn::Sequential other({{"fc", nn::Linear(2, 2)}});
  other = copy;
  CHECK(other.repr() == model.repr());
  CHECK(other.predict(x).vector() == y.vector());

  // Each layer's clone is of its own type.
  for (const auto& [name, m] : copy.named_modules())
    CHECK(typeid(*m->clone()) == typeid(*m));
  // A copied model trains on its own: a step on the copy leaves the original's gradients alone.
  copy.train();
  copy.zero_grad();
  model.zero_grad();
  copy.forward(x);
  copy.backward(Tensor::ones({4, 3}));
  double copy_grad = 0, model_grad = 0;
  for (auto* p : copy.parameters()) copy_grad += static_cast<double>(p->grad.vector().cwiseAbs().sum());
  for (auto* p : model.parameters()) model_grad += static_cast<double>(p->grad.vector().cwiseAbs().sum());
  CHECK(model_grad == 0.0);
  CHECK(copy_grad >= 0.0);
}

TEST_CASE("named_modules walks the model with PyTorch's dotted names") {
  nn::Sequential inner({{"conv", nn::Conv2d(1, 2, 3)}, {"relu", nn::ReLU()}});
  nn::Sequential model({{"block", inner}, {"", nn::Flatten()}, {"fc1", nn::Linear(8, 3)}});
  std::vector<std::string> names;
  for (const auto& [name, m] : model.named_modules()) names.push_back(name + "=" + m->type_name());
  CHECK(names == std::vector<std::string>{"=Sequential", "block=Sequential", "block.conv=Conv2d",
                                          "block.relu=ReLU", "1=Flatten", "fc1=Linear"});
  const nn::Sequential& cm = model;
  auto cnamed = cm.named_modules();
  static_assert(std::is_same_v<decltype(cnamed[0].second), const nn::Module*>);
  CHECK(cnamed.size() == 6);
  CHECK(cnamed[2].second == &model.get<nn::Sequential>("block")[0]);
  nn::Linear single(2, 2);
  REQUIRE(single.named_modules().size() == 1);
  CHECK(single.named_modules()[0].first.empty());
}

namespace {
// A container of one's own: it only names its children; parameters, buffers, modules and train() follow.
struct LinearThenNorm : nn::Module {
  nn::Linear fc{3, 2};
  nn::BatchNorm1d bn{2};
  void forward_into(const Tensor& x, Tensor& out) override { bn.forward_into(fc.forward(x), out); }
  void backward_into(const Tensor& g, Tensor* gi) override { fc.backward_into(bn.backward(g), gi); }
  void predict_into(const Tensor& x, Tensor& out) const override { bn.predict_into(fc.predict(x), out); }
  std::string type_name() const override { return "LinearThenNorm"; }
  void collect_children(NamedModules& out) override {
    out.emplace_back("fc", &fc);
    out.emplace_back("bn", &bn);
  }
};
}  // namespace

TEST_CASE("children(): the direct children with their names; a container of one's own needs only them") {
  nn::Sequential model({{"block", nn::Residual(nn::Sequential({{"fc", nn::Linear(3, 3)}}))},
                        {"relu", nn::ReLU()},
                        {"own", LinearThenNorm()}});
  std::vector<std::string> names;
  for (const auto& [name, m] : model.children()) names.push_back(name + "=" + m->type_name());
  CHECK(names == std::vector<std::string>{"block=Residual", "relu=ReLU", "own=LinearThenNorm"});
  CHECK(model.children()[2].second == &model["own"]);
  CHECK(model["block"].children().size() == 1);
  CHECK(model["block"].children()[0].first == "body");
  CHECK(model["relu"].children().empty());
  const nn::Sequential& cm = model;
  static_assert(std::is_same_v<decltype(cm.children()[0].second), const nn::Module*>);
  names.clear();
  for (const auto& [name, m] : model.named_modules()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"", "block", "block.body", "block.body.fc", "relu", "own", "own.fc",
                                          "own.bn"});
  names.clear();
  for (const auto& [name, p] : model.named_parameters()) names.push_back(name);
  CHECK(names == std::vector<std::string>{"block.body.fc.weight", "block.body.fc.bias", "own.fc.weight",
                                          "own.fc.bias", "own.bn.weight", "own.bn.bias"});
  CHECK(model.named_buffers().size() == 3);  // own.bn's running_mean, running_var, num_batches_tracked
  model.eval();
  // A plain variable: clang 14 cannot capture a structured binding in CHECK_MESSAGE's lambda.
  for (const auto& entry : model.named_modules()) CHECK_MESSAGE(!entry.second->is_training(), entry.first);
  model.train();
  CHECK(model.get<LinearThenNorm>("own").bn.is_training());
}

TEST_CASE("each layer's configuration is readable, so a walker needs no knowledge of the printout") {
  nn::Linear fc(5, 3, false);
  CHECK(fc.in_features() == 5);
  CHECK(fc.out_features() == 3);
  CHECK_FALSE(fc.has_bias());
  nn::Conv2d conv(nn::Conv2dOptions(2, 4, {3, 5}).stride({1, 2}).padding(1).bias(false));
  CHECK(conv.in_channels() == 2);
  CHECK(conv.out_channels() == 4);
  CHECK(conv.kernel_size().h == 3);
  CHECK(conv.kernel_size().w == 5);
  CHECK(conv.stride().w == 2);
  CHECK(conv.padding().h == 1);
  CHECK_FALSE(conv.has_bias());
  nn::MaxPool2d pool(3, 2, 1);
  CHECK(pool.kernel_size().h == 3);
  CHECK(pool.stride().h == 2);
  CHECK(pool.padding().w == 1);
  nn::BatchNorm2d bn(7, 1e-3, 0.2);
  CHECK(bn.num_features() == 7);
  CHECK(bn.eps() == 1e-3);
  CHECK(bn.momentum() == 0.2);
  CHECK(nn::Dropout(0.3).p() == 0.3);
  CHECK(nn::Softmax(-1).dim() == -1);
  CHECK(nn::Flatten(2, 3).start_dim() == 2);
  CHECK(nn::Flatten(2, 3).end_dim() == 3);
  // A summary from the accessors alone: parameter counts per Linear/Conv2d.
  nn::Sequential model({{"conv", nn::Conv2d(1, 4, 3)}, {"flatten", nn::Flatten()}, {"fc", nn::Linear(36, 2)}});
  std::int64_t weights = 0;
  for (const auto& [name, m] : model.named_modules()) {
    if (const auto* l = dynamic_cast<const nn::Linear*>(m)) weights += l->in_features() * l->out_features();
    if (const auto* c = dynamic_cast<const nn::Conv2d*>(m))
      weights += c->in_channels() * c->out_channels() * c->kernel_size().h * c->kernel_size().w;
  }
  CHECK(weights == 36 + 72);
}

// ---- Messages ----

TEST_CASE("get<M>() on a child of another type names the child, its type and the requested type") {
  nn::Sequential model("Net", {{"conv1", nn::Conv2d(1, 2, 3)}, {"fc", nn::Linear(2, 2)}});
  CHECK_THROWS_WITH_AS(model.get<nn::Linear>("conv1"),
                       doctest::Contains("Net: child 'conv1' is Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1)) "
                                         "(ember::nn::Conv2dT<float>), not the requested ember::nn::LinearT<float>"),
                       std::bad_cast);
  CHECK(model.get<nn::Linear>("fc").out_features() == 2);
  CHECK_THROWS_AS(model.get<nn::Linear>("nope"), std::out_of_range);
}

TEST_CASE("a shape error inside Sequential names the input the model was given") {
  nn::Sequential model("Net", {{"conv", nn::Conv2d(1, 2, 3)}, {"flatten", nn::Flatten()}, {"fc", nn::Linear(2 * 26 * 26, 3)}});
  const std::string expected = "Net (fc): Linear(in_features=1352, out_features=3, bias=True): expected input "
                               "[*, 1352], got [8, 1800] (the input given to Net was [8, 1, 32, 32])";
  CHECK_THROWS_WITH_AS(model.predict(Tensor({8, 1, 32, 32})), expected.c_str(), shape_error);
  CHECK_THROWS_WITH_AS(model.forward(Tensor({8, 1, 32, 32})), expected.c_str(), shape_error);
  // A batch predicted in chunks names the whole batch, not the chunk.
  CHECK_THROWS_WITH_AS(model.predict(Tensor({100, 1, 32, 32})),
                       doctest::Contains("(the input given to Net was [100, 1, 32, 32])"), shape_error);
}

// ---- Scalar types ----

TEST_CASE("nn::to<double> converts a built model; predict converts an input of another scalar type") {
  manual_seed(9);
  nn::Sequential model("Net", {{"conv", nn::Conv2d(1, 2, 3, 1, 1)}, {"bn", nn::BatchNorm2d(2)}, {"relu", nn::ReLU()},
                               {"pool", nn::MaxPool2d(2)}, {"flatten", nn::Flatten()}, {"drop", nn::Dropout(0.1)},
                               {"fc", nn::Linear(2 * 3 * 3, 4)}, {"softmax", nn::Softmax(1)}});
  model.forward(Tensor::ones({2, 1, 6, 6}));  // running statistics away from their start
  model.eval();
  nn::SequentialT<double> precise = nn::to<double>(model);
  CHECK(precise.repr() == model.repr());
  CHECK_FALSE(precise.is_training());
  auto fp = model.named_parameters();
  auto dp = precise.named_parameters();
  REQUIRE(fp.size() == dp.size());
  for (std::size_t i = 0; i < fp.size(); ++i) {
    CHECK(fp[i].first == dp[i].first);
    CHECK(dp[i].second->value == fp[i].second->value.cast<double>());
  }
  CHECK(precise.named_buffers()[0].second->cast<float>() == *model.named_buffers()[0].second);
  Generator g(2);
  Tensor x({3, 1, 6, 6});
  for (float& v : x) v = static_cast<float>(g.normal());
  const Tensor yf = model.predict(x);
  const TensorT<double> yd = precise.predict(x);  // float input into the double model: converted
  CHECK((yd.cast<float>().vector() - yf.vector()).cwiseAbs().maxCoeff() < 1e-5f);
  CHECK(yd == precise.predict(x.cast<double>()));
  // A single layer converts too, and back.
  std::unique_ptr<nn::Module> back = nn::to<float>(precise[0]);
  CHECK(back->repr() == model[0].repr());
  // A layer ember does not know cannot be converted: a clear error.
  struct Custom : nn::Module {
    void forward_into(const Tensor&, Tensor&) override {}
    void backward_into(const Tensor&, Tensor*) override {}
    void predict_into(const Tensor&, Tensor&) const override {}
    std::string type_name() const override { return "Custom"; }
  };
  CHECK_THROWS_WITH_AS(nn::to<double>(Custom()), doctest::Contains("cannot convert Custom()"), std::invalid_argument);
  // ...nor copied inside a Sequential without clone(): a clear error naming it.
  nn::Sequential with_custom({{"mine", Custom()}});
  CHECK_THROWS_WITH_AS([&] { nn::Sequential copy = with_custom; }(), doctest::Contains("Custom(): clone() is not implemented"),
                       std::logic_error);
}

// ---- Bad input (the policy: docs/robustness.md) ----------------------------------------------------------

namespace bad_input {

TEST_CASE("layers: wrong shapes throw shape_error naming the layer and both shapes") {
  ember::Generator gen(1);
  nn::Linear fc(4, 3, true, gen);
  const std::string linear = message_of<ember::shape_error>([&] { fc.forward(Tensor({2, 5})); });
  CHECK(contains(linear, "Linear"));
  CHECK(contains(linear, "[2, 5]"));
  CHECK_THROWS_AS(fc.forward(Tensor({0})), ember::shape_error);
  CHECK_THROWS_AS(fc.predict(Tensor({2, 3, 5})), ember::shape_error);  // [*, in] as PyTorch: the last extent counts

  nn::Conv2d conv(1, 2, 3, 1, 0, 1, 1, true, gen);
  const std::string c = message_of<ember::shape_error>([&] { conv.forward(Tensor({1, 3, 8, 8})); });
  CHECK(contains(c, "Conv2d"));
  CHECK(contains(c, "[1, 3, 8, 8]"));
  CHECK_THROWS_AS(conv.forward(Tensor({1, 8, 8})), ember::shape_error);
  CHECK_THROWS_AS(conv.forward(Tensor({1, 1, 2, 2})), ember::shape_error);  // smaller than the kernel

  nn::BatchNorm2d bn(2);
  CHECK_THROWS_AS(bn.forward(Tensor({2, 3, 4, 4})), ember::shape_error);
  nn::MaxPool2d pool(2);
  CHECK_THROWS_AS(pool.forward(Tensor({1, 1, 1, 1})), ember::shape_error);
  CHECK_THROWS_AS(pool.forward(Tensor({4, 4})), ember::shape_error);
  nn::Softmax softmax(1);
  CHECK_THROWS_AS(softmax.forward(Tensor({4})), ember::shape_error);

  nn::Sequential net("Net", {});
  net.add("fc1", nn::Linear(4, 3, true, gen));
  net.add("relu1", nn::ReLU());
  net.add("fc2", nn::Linear(3, 2, true, gen));
  const std::string seq = message_of<ember::shape_error>([&] { net.forward(Tensor({2, 7})); });
  CHECK(contains(seq, "[2, 7]"));
  // backward with a gradient of the wrong shape
  net.forward(Tensor({2, 4}));
  CHECK_THROWS_AS(net.backward(Tensor({2, 3})), ember::shape_error);
}

TEST_CASE("layers: an empty batch gives an empty output, as in PyTorch") {
  ember::Generator gen(2);
  nn::Linear fc(4, 3, true, gen);
  CHECK(fc.forward(Tensor({0, 4})).shape() == Shape{0, 3});
  CHECK(fc.backward(Tensor({0, 3})).shape() == Shape{0, 4});
  nn::Conv2d conv(1, 2, 3, 1, 1, 1, 1, true, gen);
  CHECK(conv.forward(Tensor({0, 1, 5, 5})).shape() == Shape{0, 2, 5, 5});
  nn::ReLU relu;
  CHECK(relu.forward(Tensor({0, 2, 3, 3})).shape() == Shape{0, 2, 3, 3});
  nn::MaxPool2d pool(2);
  CHECK(pool.forward(Tensor({0, 2, 4, 4})).shape() == Shape{0, 2, 2, 2});
  nn::Flatten flat;
  CHECK(flat.forward(Tensor({0, 2, 3, 3})).shape() == Shape{0, 18});
  nn::Softmax softmax(1);
  CHECK(softmax.forward(Tensor({0, 5})).shape() == Shape{0, 5});
  // BatchNorm2d in eval mode normalises with the running statistics: nothing to compute, nothing changes.
  nn::BatchNorm2d bn(2);
  bn.eval();
  CHECK(bn.forward(Tensor({0, 2, 3, 3})).shape() == Shape{0, 2, 3, 3});
  // In training mode the batch statistics of zero values do not exist: an error, and the running
  // statistics stay as they were (PyTorch's "Expected more than 1 value per channel when training").
  bn.train();
  CHECK_THROWS_AS(bn.forward(Tensor({0, 2, 3, 3})), std::invalid_argument);
  CHECK_THROWS_AS(bn.forward(Tensor({1, 2, 1, 1})), std::invalid_argument);
  for (const auto& [name, b] : bn.named_buffers())
    for (float v : *b) CHECK(std::isfinite(v));
}

TEST_CASE("layers: NaN and Inf propagate as in PyTorch, and only where the input reaches") {
  ember::Generator gen(3);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();

  nn::Linear fc(4, 3, true, gen);
  Tensor x = random_tensor({2, 4}, 4);
  x[1] = nan;  // row 0
  const Tensor y = fc.forward(x);
  CHECK(all_nan(y, 0, 3));
  CHECK(all_finite(y, 3, 6));

  nn::ReLU relu;
  const Tensor r = relu.forward(Tensor::from({3}, {inf, -inf, -1.0f}));
  CHECK(r[0] == inf);
  CHECK(r[1] == 0.0f);
  CHECK(r[2] == 0.0f);

  nn::MaxPool2d pool(2);
  Tensor img = random_tensor({1, 1, 4, 4}, 5);
  img[0] = nan;  // in the top-left window only
  const Tensor p = pool.forward(img);
  CHECK(std::isnan(p[0]));  // max_pool2d propagates NaN
  CHECK(all_finite(p, 1, 4));

  nn::Softmax softmax(1);
  Tensor logits = random_tensor({2, 5}, 6);
  logits[7] = nan;  // row 1
  const Tensor s = softmax.forward(logits);
  CHECK(all_finite(s, 0, 5));
  CHECK(all_nan(s, 5, 10));

  nn::Conv2d conv(1, 1, 3, 1, 0, 1, 1, true, gen);
  Tensor big = random_tensor({1, 1, 8, 8}, 7);
  big[0] = nan;  // top-left pixel: reaches output (0, 0) only
  const Tensor c = conv.forward(big);
  CHECK(std::isnan(c[0]));
  CHECK(all_finite(c, 1, c.numel()));

  nn::BatchNorm2d bn(2);
  Tensor b = random_tensor({2, 2, 3, 3}, 8);
  b[0] = nan;  // channel 0 of sample 0: channel 0's batch statistics are NaN
  const Tensor bo = bn.forward(b);
  CHECK(all_nan(bo, 0, 9));
  CHECK(all_finite(bo, 9, 18));
  CHECK(std::isnan((*bn.named_buffers()[0].second)[0]));  // running_mean of channel 0, as PyTorch
  CHECK(std::isfinite((*bn.named_buffers()[0].second)[1]));
}

TEST_CASE("ReLU keeps NaN, as torch.relu does") {
  nn::ReLU relu;
  const Tensor r = relu.forward(Tensor::from({2}, {std::numeric_limits<float>::quiet_NaN(), 1.0f}));
  CHECK(std::isnan(r[0]));
  CHECK(std::isnan(relu.predict(Tensor::from({1}, {std::numeric_limits<float>::quiet_NaN()}))[0]));
}

TEST_CASE("threads: OpenMP layers equal one thread, and predict serves several threads at once") {
  // Large enough that threads_for() splits the work: conv (im2col + GEMM), batchnorm, pooling, linear.
  ember::Generator gen(40);
  nn::Sequential net("Net", {});
  net.add("conv1", nn::Conv2d(1, 16, 3, 1, 1, 1, 1, true, gen));
  net.add("batchnorm1", nn::BatchNorm2d(16));
  net.add("relu1", nn::ReLU());
  net.add("pool1", nn::MaxPool2d(2));
  net.add("flatten", nn::Flatten());
  net.add("fc1", nn::Linear(16 * 14 * 14, 128, true, gen));
  net.add("relu2", nn::ReLU());
  net.add("fc2", nn::Linear(128, 10, true, gen));
  const Tensor x = random_tensor({32, 1, 28, 28}, 41);
  const std::vector<std::int64_t> y = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5,
                                       6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1};
  const int saved_threads = ember::get_num_threads();
  auto step = [&](int threads) {
    ember::set_num_threads(threads);
    net.zero_grad();
    nn::CrossEntropyLoss loss;
    const Tensor logits = net.forward(x);
    loss.forward(logits, y);
    net.backward(loss.backward());
    std::vector<float> grads;
    for (auto& [name, p] : net.named_parameters()) grads.insert(grads.end(), p->grad.begin(), p->grad.end());
    return std::make_pair(logits, grads);
  };
  const auto one = step(1);
  const auto many = step(4);
  CHECK(one.first.shape() == many.first.shape());
  double worst = 0;
  for (std::int64_t i = 0; i < one.first.numel(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(one.first[i] - many.first[i])));
  for (std::size_t i = 0; i < one.second.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(one.second[i] - many.second[i])));
  CHECK(worst < 1e-4);

  // Inference in eval mode changes nothing, so one model serves several threads (each with OpenMP inside).
  net.eval();
  const Tensor expected = net.predict(x);
  std::vector<Tensor> got(3);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t) threads.emplace_back([&, t] { got[t] = net.predict(x); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) CHECK(g == expected);
  ember::set_num_threads(saved_threads);
}

}  // namespace bad_input

// ------------------------------------------------------------------------------------------ the first week

TEST_CASE("one layer under two names in a Sequential gives two independent children (PyTorch would share one)") {
  manual_seed(11);
  nn::Linear fc(3, 3);
  nn::Sequential m({{"a", fc}, {"b", fc}});
  const auto named = m.named_parameters();
  REQUIRE(named.size() == 4);
  CHECK(named[0].first == "a.weight");
  CHECK(named[2].first == "b.weight");
  CHECK(named[0].second != named[2].second);
  CHECK(named[0].second->value == named[2].second->value);  // equal copies ...
  m.get<nn::Linear>("a").weight().value.fill(0.0f);
  CHECK(m.get<nn::Linear>("b").weight().value == fc.weight().value);  // ... but independent
}

TEST_CASE("a child name containing '.' is refused, as PyTorch's add_module refuses it") {
  const std::string msg = bad_input::message_of<std::invalid_argument>([] { nn::Sequential m({{"a.b", nn::ReLU()}}); });
  CHECK(bad_input::contains(msg, "child name 'a.b' contains '.'"));
  nn::Sequential m;
  CHECK_THROWS_AS(m.add("head.fc", nn::ReLU()), std::invalid_argument);
  CHECK(m.size() == 0);
}

TEST_CASE("Sequential::replace swaps a child in place, keeping its name and position") {
  manual_seed(12);
  nn::Sequential m("Net", {{"fc1", nn::Linear(4, 8)}, {"relu", nn::ReLU()}, {"fc2", nn::Linear(8, 10)}});
  m.eval();
  const Tensor fc1_weight = m.get<nn::Linear>("fc1").weight().value;
  m.replace("fc2", nn::Linear(8, 3));
  REQUIRE(m.size() == 3);
  CHECK(m.name_of(2) == "fc2");
  CHECK(m.get<nn::Linear>("fc2").out_features() == 3);
  CHECK_FALSE(m["fc2"].is_training());  // takes the container's mode
  CHECK(m.get<nn::Linear>("fc1").weight().value == fc1_weight);
  CHECK(m.predict(Tensor::ones({2, 4})).shape() == Shape{2, 3});
  CHECK(m.named_parameters()[2].first == "fc2.weight");
  // Training works through the new head.
  m.train();
  Tensor out = m.forward(Tensor::ones({2, 4}));
  m.backward(Tensor::ones(out.shape()));
  CHECK(m.get<nn::Linear>("fc2").weight().grad != Tensor::zeros({3, 8}));
  const std::string msg = bad_input::message_of<std::out_of_range>([&] { m.replace("head", nn::Linear(8, 3)); });
  CHECK(bad_input::contains(msg, "head"));
}

TEST_CASE("a frozen parameter gets no gradient; the input gradient and the other parameters' are unchanged") {
  manual_seed(13);
  const Tensor x = [] {
    Generator g(14);
    Tensor t({4, 2, 5, 5});
    for (float& v : t) v = static_cast<float>(g.normal());
    return t;
  }();
  auto make = [] {
    manual_seed(15);
    return nn::Sequential({{"conv", nn::Conv2d(2, 4, 3)}, {"dw", nn::Conv2d(4, 4, 3, 1, 1, 1, 4)},
                           {"bn", nn::BatchNorm2d(4)}, {"relu", nn::ReLU()}, {"flatten", nn::Flatten()},
                           {"fc", nn::Linear(4 * 3 * 3, 3)}});
  };
  nn::Sequential trained = make(), frozen = make();
  for (auto* name : {"conv", "dw", "bn", "fc"}) {
    CAPTURE(name);
    trained.zero_grad();
    frozen.zero_grad();
    frozen.requires_grad_(true);
    frozen[name].requires_grad_(false);
    Tensor gin_trained, gin_frozen, out;
    trained.forward_into(x, out);
    trained.backward_into(Tensor::ones(out.shape()), &gin_trained);
    frozen.forward_into(x, out);
    frozen.backward_into(Tensor::ones(out.shape()), &gin_frozen);
    CHECK(gin_frozen == gin_trained);
    const auto a = trained.named_parameters(), b = frozen.named_parameters();
    for (std::size_t k = 0; k < a.size(); ++k) {
      CAPTURE(a[k].first);
      const bool is_frozen = a[k].first.rfind(std::string(name) + ".", 0) == 0;
      CHECK(b[k].second->requires_grad == !is_frozen);
      if (is_frozen) CHECK(b[k].second->grad == Tensor::zeros(b[k].second->value.shape()));
      else CHECK(b[k].second->grad == a[k].second->grad);
    }
  }
  // nn::to keeps the flags (the last loop froze fc alone).
  nn::SequentialT<double> converted = nn::to<double>(frozen);
  for (auto& [n, p] : converted.named_parameters()) CHECK(p->requires_grad == (n.rfind("fc.", 0) != 0));
  // clip_grad_norm_ leaves out frozen parameters, as PyTorch leaves out those whose grad is None.
  nn::Parameter p{Tensor::ones({2}), Tensor::full({2}, 3.0f)}, q{Tensor::ones({2}), Tensor::full({2}, 4.0f)};
  q.requires_grad = false;
  CHECK(nn::clip_grad_norm_(std::vector<nn::Parameter*>{&p, &q}, 100.0) == doctest::Approx(std::sqrt(18.0)));
}
