// Residual (nn/residual.hpp): body(x) + shortcut(x) checked by finite differences in double and against a
// PyTorch module with attributes `body` and `shortcut` (goldens, names, printout); its life inside Sequential:
// clone, train/eval, named_modules, nn::to, the gradients-ready hook, allocation-free warmed-up steps.
#include <doctest/doctest.h>

#include <ember/io/checkpoint.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/step.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bad_input.hpp"
#include "layer_check.hpp"

using namespace ember;
using layer_check::TensorD;

namespace {

template <typename T>
nn::ResidualT<T> conv_block() {
  using Opt = nn::Conv2dOptions;
  return nn::ResidualT<T>(
      nn::SequentialT<T>{nn::Conv2dT<T>(Opt(3, 4, 3).padding(1).bias(false)), nn::BatchNorm2dT<T>(4), nn::ReLUT<T>(),
                         nn::Conv2dT<T>(Opt(4, 4, 3).padding(1).bias(false)), nn::BatchNorm2dT<T>(4)},
      nn::SequentialT<T>{nn::Conv2dT<T>(Opt(3, 4, 1).bias(false)), nn::BatchNorm2dT<T>(4)});
}

template <typename T>
nn::ResidualT<T> mlp_block() {
  return nn::ResidualT<T>(nn::SequentialT<T>{nn::LinearT<T>(6, 6), nn::ReLUT<T>(), nn::LinearT<T>(6, 6)});
}

std::vector<std::string> printouts() {
  std::ifstream in(fixture::path("layers/residual_printouts.txt"));
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  std::vector<std::string> out;
  for (std::size_t pos = 0;;) {
    const auto sep = text.find("\n---\n", pos);
    if (sep == std::string::npos) {
      out.push_back(text.substr(pos, text.size() - pos - 1));
      return out;
    }
    out.push_back(text.substr(pos, sep - pos));
    pos = sep + 5;
  }
}

}  // namespace

TEST_CASE("Residual: gradient check in double, identity and module shortcuts") {
  auto id = mlp_block<double>();
  layer_check::gradcheck(id, {4, 6}, "Residual(Linear, ReLU, Linear), identity shortcut");
  auto conv = conv_block<double>();
  layer_check::gradcheck(conv, {2, 3, 4, 4}, "Residual(conv, bn, relu, conv, bn; shortcut conv 1x1, bn)");
  nn::ResidualT<double> in_seq_body(nn::TanhT<double>{}, nn::LinearT<double>(3, 3));
  nn::SequentialT<double> seq{nn::LinearT<double>(5, 3), in_seq_body, nn::GELUT<double>(), nn::LinearT<double>(3, 2)};
  layer_check::gradcheck(seq, {3, 5}, "Sequential holding a Residual");
}

TEST_CASE("Residual: golden values against PyTorch, parameters loaded by PyTorch's names") {
  nn::Residual id = mlp_block<float>();
  layer_check::golden(id, "residual_identity");
  nn::Residual conv = conv_block<float>();
  layer_check::golden(conv, "residual_conv");
}

TEST_CASE("Residual names and prints its children as PyTorch") {
  const auto want = printouts();
  REQUIRE(want.size() == 3);
  CHECK(mlp_block<float>().repr() == want[0]);
  nn::Sequential net{{"stem", nn::Conv2d(1, 4, 3)},
                     {"block1", conv_block<float>()},
                     {"pool", nn::AdaptiveAvgPool2d(1)},
                     {"flatten", nn::Flatten()},
                     {"fc", nn::Linear(4, 2)}};
  CHECK(net.repr() == want[1]);
  nn::Sequential layers{nn::AvgPool2d(3, 2, 1), nn::AvgPool2d(Size2{2, 3}), nn::AdaptiveAvgPool2d({3, 4}),
                        nn::LeakyReLU(), nn::LeakyReLU(0.2), nn::GELU(), nn::GELU("tanh"), nn::Sigmoid(), nn::Tanh(),
                        nn::Identity(), nn::BatchNorm1d(4)};
  CHECK(layers.repr() == want[2]);
  std::vector<std::string> names;
  for (auto& [n, p] : net.named_parameters()) names.push_back(n);
  const std::vector<std::string> expected = {
      "stem.weight",           "stem.bias",           "block1.body.0.weight",
      "block1.body.1.weight",  "block1.body.1.bias",  "block1.body.3.weight",     "block1.body.4.weight",
      "block1.body.4.bias",    "block1.shortcut.0.weight", "block1.shortcut.1.weight", "block1.shortcut.1.bias",
      "fc.weight",             "fc.bias"};
  CHECK(names == expected);
  auto buffers = net.named_buffers();
  REQUIRE(buffers.size() == 9);
  CHECK(buffers[0].first == "block1.body.1.running_mean");
  CHECK(buffers[8].first == "block1.shortcut.1.num_batches_tracked");
  std::vector<std::string> modules;
  for (auto& [n, m] : net.named_modules()) modules.push_back(n);
  CHECK(modules == std::vector<std::string>{"", "stem", "block1", "block1.body", "block1.body.0", "block1.body.1",
                                            "block1.body.2", "block1.body.3", "block1.body.4", "block1.shortcut",
                                            "block1.shortcut.0", "block1.shortcut.1", "pool", "flatten", "fc"});
  auto& block = net.get<nn::Residual>("block1");
  CHECK(block.has_shortcut());
  CHECK(block.body().type_name() == "Sequential");
  CHECK(block.shortcut()->type_name() == "Sequential");
  CHECK(!mlp_block<float>().has_shortcut());
}

TEST_CASE("Residual inside Sequential: clone is deep, train/eval reach the children, nn::to converts") {
  nn::Sequential net{{"block", conv_block<float>()}, {"pool", nn::AdaptiveAvgPool2d(1)}};
  auto copy = net.clone();
  net.named_parameters()[0].second->value.fill(3.f);
  CHECK(copy->named_parameters()[0].second->value[0] != 3.f);
  net.eval();
  for (const auto& named : net.named_modules()) CHECK_MESSAGE(!named.second->is_training(), named.first);
  net.train();
  for (const auto& named : net.named_modules()) CHECK_MESSAGE(named.second->is_training(), named.first);

  const Tensor x = layer_check::random_tensor({40, 3, 5, 5}, 2).cast<float>();
  net.forward(x);  // moves the running statistics
  net.eval();
  auto d = nn::to<double>(net);
  CHECK(d.repr() == net.repr());
  CHECK(!d.is_training());
  CHECK(d.named_buffers().size() == net.named_buffers().size());
  const Tensor y = net.predict(x);
  CHECK(fixture::max_rel_error(d.predict(x).cast<float>(), y.cast<double>()) < 1e-5);
  CHECK(fixture::max_rel_error(net.forward(x), y.cast<double>()) < 1e-6);  // eval forward equals predict
}

TEST_CASE("Residual and the new layers in a training step: hooks report each child, and a warmed-up step "
          "allocates nothing" * kAllocSkip) {
  nn::Sequential net{{"stem", nn::Conv2d(1, 3, 3)},  {"act", nn::LeakyReLU()},
                     {"block", conv_block<float>()}, {"avg", nn::AvgPool2d(2)},
                     {"gap", nn::AdaptiveAvgPool2d(1)}, {"flatten", nn::Flatten()},
                     {"fc1", nn::Linear(4, 6)},      {"bn", nn::BatchNorm1d(6)},
                     {"gelu", nn::GELU()},           {"sigmoid", nn::Sigmoid()},
                     {"tanh", nn::Tanh()},           {"id", nn::Identity()},
                     {"fc2", nn::Linear(6, 5)}};
  optim::SGD opt(net.parameters(), {1e-2, 0.9});
  nn::CrossEntropyLoss loss;
  train::Step<nn::Sequential, nn::CrossEntropyLoss, optim::SGD> step(net, loss, opt);
  std::vector<std::string> reported;
  step.gradients_ready([&](const std::string& name, nn::Module&) { reported.push_back(name); });
  const Tensor x = layer_check::random_tensor({8, 1, 7, 7}, 4).cast<float>();
  const std::vector<std::int64_t> labels = {0, 1, 2, 3, 4, 0, 1, 2};
  step(x, labels);
  CHECK(reported == std::vector<std::string>{"fc2", "id", "tanh", "sigmoid", "gelu", "bn", "fc1", "flatten", "gap",
                                             "avg", "block", "act", "stem"});
  for (int i = 0; i < 2; ++i) step(x, labels);
  reported.reserve(64);
  CHECK(count_allocations([&] { step(x, labels); }) == 0);

  // A Residual as the whole model reports its body, then its shortcut.
  nn::Residual block = conv_block<float>();
  std::vector<std::string> names;
  block.add_gradients_ready_listener([&](const std::string& n, nn::Module&) { names.push_back(n); });
  const Tensor xb = layer_check::random_tensor({2, 3, 4, 4}, 5).cast<float>();
  block.backward(Tensor::ones(block.forward(xb).shape()));
  CHECK(names == std::vector<std::string>{"body", "shortcut"});
}

TEST_CASE("Residual: a checkpoint saves and loads by PyTorch's names") {
  nn::Sequential net{{"block", conv_block<float>()}, {"gap", nn::AdaptiveAvgPool2d(1)}};
  const Tensor x = layer_check::random_tensor({4, 3, 5, 5}, 6).cast<float>();
  net.forward(x);
  net.eval();
  const std::string path = std::string(EMBER_TEST_TMP_DIR) + "/residual.safetensors";
  io::save_checkpoint(net, path);
  nn::Sequential other{{"block", conv_block<float>()}, {"gap", nn::AdaptiveAvgPool2d(1)}};
  io::load_checkpoint(other, path);
  other.eval();
  CHECK(fixture::max_rel_error(other.predict(x), net.predict(x).cast<double>()) == 0);
  bool found = false;
  for (const auto& e : io::read_safetensors(path).tensors) found |= e.name == "block.shortcut.1.running_var";
  CHECK(found);
}

namespace bad_input {

TEST_CASE("Residual: branches of different shapes, moved-from, and errors from inside name the layers") {
  nn::Residual r(nn::Linear(4, 3));
  CHECK_THROWS_WITH_AS(r.forward(Tensor({2, 4})),
                       doctest::Contains("Residual: the body gives [2, 3] but the identity shortcut gives (the input) [2, 4]"),
                       shape_error);
  nn::Residual s(nn::Linear(4, 3), nn::Linear(4, 2));
  CHECK_THROWS_WITH_AS(s.predict(Tensor({2, 4})), doctest::Contains("the body gives [2, 3] but the shortcut gives [2, 2]"),
                       shape_error);
  nn::Sequential net{{"block", nn::Residual(nn::Linear(4, 4))}};
  CHECK_THROWS_WITH_AS(net.forward(Tensor({2, 5})), doctest::Contains("Sequential (block): Linear"), shape_error);
  nn::Residual moved(nn::Linear(4, 4));
  nn::Residual taken(std::move(moved));
  CHECK_THROWS_AS(moved.forward(Tensor({1, 4})), std::logic_error);  // NOLINT: use after move, on purpose
  CHECK(taken.forward(Tensor({1, 4})).shape() == Shape{1, 4});
}

}  // namespace bad_input
