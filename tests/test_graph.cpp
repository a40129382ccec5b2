// Models as data: graph::trace, graph::optimize, graph::Plan and the ONNX export of a graph, on the report's
// MLP and CNN and a small ResNet.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ember/core/file.hpp>
#include <ember/graph/graph.hpp>
#include <ember/graph/optimize.hpp>
#include <ember/graph/plan.hpp>
#include <ember/graph/trace.hpp>
#include <ember/io/onnx.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "alloc_counter.hpp"
#include "fixture.hpp"
#include "scratch.hpp"

using namespace ember;

namespace {

// max |a - b| / max |b|: the largest difference relative to the reference's scale.
double relative_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}

std::map<std::string, int> op_counts(const graph::Graph& g) {
  std::map<std::string, int> counts;
  for (const auto& n : g.nodes()) ++counts[n.op];
  return counts;
}

int with_attribute(const graph::Graph& g, const std::string& key) {
  int k = 0;
  for (const auto& n : g.nodes()) k += n.has(key);
  return k;
}

// Running statistics away from (0, 1), so that a BatchNorm in eval mode is no identity: a few training
// passes.
template <class M>
void settle(M& model, const Shape& shape) {
  model.train();
  for (std::uint64_t s = 0; s < 3; ++s) model.forward(fixture::normal_tensor(shape, 100 + s));
  model.eval();
}

nn::Sequential mlp() {
  manual_seed(1);
  auto m = models::report_mlp(24, true);
  m.eval();
  return m;
}
nn::Sequential cnn() {
  manual_seed(2);
  auto m = models::report_cnn(24, true);
  settle(m, {16, 1, 28, 28});
  return m;
}
nn::Sequential resnet() {
  manual_seed(3);
  nn::Sequential m(
      "ResNet",
      {{"stem", nn::Conv2d(1, 8, 3, 1, 1)},
       {"bn", nn::BatchNorm2d(8)},
       {"relu", nn::ReLU()},
       {"block1", nn::Residual(nn::Sequential{nn::Conv2d(8, 8, 3, 1, 1), nn::BatchNorm2d(8), nn::ReLU(),
                                              nn::Conv2d(8, 8, 3, 1, 1), nn::BatchNorm2d(8)})},
       {"relu1", nn::ReLU()},
       {"block2", nn::Residual(nn::Sequential{nn::Conv2d(8, 16, 3, 2, 1), nn::BatchNorm2d(16), nn::ReLU(),
                                              nn::Conv2d(16, 16, 3, 1, 1), nn::BatchNorm2d(16)},
                               nn::Sequential{nn::Conv2d(8, 16, 1, 2, 0), nn::BatchNorm2d(16)})},
       {"relu2", nn::ReLU()},
       {"pool", nn::AdaptiveAvgPool2d(1)},
       {"flatten", nn::Flatten()},
       {"fc", nn::Linear(16, 10)}});
  settle(m, {8, 1, 12, 12});
  return m;
}

// y = sigmoid(relu(x)) * 1: a layer of one's own that describes itself as two nodes.
struct SquashT : nn::ModuleT<float> {
  void forward_into(const Tensor& x, Tensor& out) override { predict_into(x, out); }
  void backward_into(const Tensor&, Tensor*) override {}
  void predict_into(const Tensor& x, Tensor& out) const override {
    out.resize(x.shape());
    for (std::int64_t i = 0; i < x.numel(); ++i) out[i] = 1.0f / (1.0f + std::exp(-std::max(x[i], 0.0f)));
  }
  std::string type_name() const override { return "Squash"; }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<SquashT>(*this); }
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    return t.node("Sigmoid", {t.node("Relu", {x}, {}, "Relu")});
  }
};
// The same without describe.
struct OpaqueT : SquashT {
  std::string type_name() const override { return "Opaque"; }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<OpaqueT>(*this); }
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    return nn::Module::describe(t, x);
  }
};

// Plan.run against predict, with the optimised graph too; returns the plan of the traced graph.
void check_plan(const nn::Module& model, const Shape& shape, const char* what) {
  const graph::Graph g = graph::trace(model, shape);
  const Tensor x = fixture::normal_tensor(shape, 7);
  const Tensor expected = model.predict(x);
  const graph::Plan plan(g, shape);
  const double d = relative_difference(plan.run(x), expected);
  const graph::Plan fast(graph::optimize(g), shape);
  const double d_opt = relative_difference(fast.run(x), expected);
  MESSAGE(std::string(what) << ": Plan vs predict, largest relative difference " << d
                            << " (optimised graph: " << d_opt << ")");
  CHECK(d < 1e-5);
  CHECK(d_opt < 1e-5);
}

}  // namespace

TEST_CASE("trace: the report's MLP and CNN and a small ResNet, node by node") {
  const graph::Graph m = graph::trace(mlp(), {4, 1, 28, 28});
  CHECK(op_counts(m) == std::map<std::string, int>{{"Flatten", 1}, {"Gemm", 3}, {"Relu", 2}, {"Softmax", 1}});
  CHECK(m.nodes()[1].name == "fc1");
  CHECK(m.nodes()[1].get_int("transB", 0) == 1);
  CHECK(m.initializers().size() == 6);
  CHECK(m.initializer("fc2.weight").shape() == Shape{512, 512});
  REQUIRE(m.inputs().size() == 1);
  CHECK(m.inputs()[0].name == "input");
  CHECK(m.inputs()[0].shape == Shape{-1, 1, 28, 28});
  CHECK(m.outputs()[0].name == "output");
  CHECK(m.outputs()[0].shape == Shape{-1, 24});
  CHECK(m.nodes().back().outputs[0] == "output");

  const graph::Graph c = graph::trace(cnn(), {2, 1, 28, 28});
  CHECK(op_counts(c) == std::map<std::string, int>{{"Conv", 3},
                                                   {"Relu", 4},
                                                   {"BatchNormalization", 3},
                                                   {"MaxPool", 3},
                                                   {"Dropout", 2},
                                                   {"Flatten", 1},
                                                   {"Gemm", 2},
                                                   {"Softmax", 1}});
  const graph::Node& conv2 = c.nodes()[4];
  CHECK(conv2.op == "Conv");
  CHECK(conv2.get_ints("kernel_shape", {}) == std::vector<std::int64_t>{3, 3});
  CHECK(conv2.get_ints("pads", {}) == std::vector<std::int64_t>{0, 0, 0, 0});
  CHECK(conv2.get_int("group", 0) == 1);
  const graph::Node& bn1 = c.nodes()[2];
  CHECK(bn1.inputs == std::vector<std::string>{"relu1", "batchnorm1.weight", "batchnorm1.bias",
                                               "batchnorm1.running_mean", "batchnorm1.running_var"});
  CHECK(bn1.get_float("epsilon", 0) == 1e-5);
  CHECK(bn1.get_float("momentum", 0) == doctest::Approx(0.9));
  CHECK(c.metadata().at("input_shape") == "[1, 28, 28]");

  const graph::Graph r = graph::trace(resnet(), {2, 1, 12, 12});
  const auto rc = op_counts(r);
  CHECK(rc.at("Conv") == 6);
  CHECK(rc.at("BatchNormalization") == 6);
  CHECK(rc.at("Add") == 2);
  CHECK(rc.at("GlobalAveragePool") == 1);
  CHECK(r.has_initializer("block2.shortcut.0.weight"));
  CHECK(r.has_initializer("block1.body.4.running_var"));
  CHECK(r.outputs()[0].shape == Shape{-1, 10});
}

TEST_CASE("Plan.run gives predict's outputs on the report's MLP and CNN and a ResNet, traced and optimised") {
  check_plan(mlp(), {8, 1, 28, 28}, "MLP");
  check_plan(cnn(), {16, 1, 28, 28}, "CNN");
  check_plan(resnet(), {8, 1, 12, 12}, "ResNet");
  // Every other activation, a layer in a Sequential inside a Residual, average pooling with padding.
  manual_seed(4);
  nn::Sequential other({{"conv", nn::Conv2d(3, 6, 3, 1, 1)},
                        {"gelu", nn::GELU()},
                        {"pool", nn::AvgPool2d(3, 2, 1)},
                        {"leaky", nn::LeakyReLU(0.2)},
                        {"block", nn::Residual(nn::Sequential{nn::Conv2d(6, 6, 1), nn::Tanh()})},
                        {"max", nn::MaxPool2d(2)},
                        {"flatten", nn::Flatten()},
                        {"bn", nn::BatchNorm1d(24)},
                        {"fc", nn::Linear(24, 5)},
                        {"gelu2", nn::GELU("tanh")},
                        {"id", nn::Identity()},
                        {"sigmoid", nn::Sigmoid()}});
  settle(other, {8, 3, 9, 9});
  check_plan(other, {8, 3, 9, 9}, "all layers");
}

TEST_CASE("optimize removes Dropout and Identity, folds BatchNorm into the Conv before it and fuses ReLU") {
  const graph::Graph c = graph::optimize(graph::trace(cnn(), {2, 1, 28, 28}));
  const auto cc = op_counts(c);
  CHECK(cc.count("Dropout") == 0);
  CHECK(cc.count("Relu") == 0);  // each after a Conv or Gemm
  CHECK(with_attribute(c, "activation") == 4);
  // The report's CNN normalises after the ReLU: those BatchNorms cannot move into the weights.
  CHECK(cc.at("BatchNormalization") == 3);

  const nn::Sequential model = resnet();
  const graph::Graph traced = graph::trace(model, {4, 1, 12, 12});
  const graph::Graph r = graph::optimize(traced);
  const auto rc = op_counts(r);
  CHECK(rc.count("BatchNormalization") == 0);
  CHECK(rc.at("Conv") == 6);
  CHECK(rc.at("Relu") == 2);  // after the Adds
  CHECK(!r.has_initializer("stem.weight"));
  CHECK(r.has_initializer("stem.weight_folded"));
  CHECK(traced.nodes().size() - r.nodes().size() == 6 + 3);
  const Tensor x = fixture::normal_tensor({5, 1, 12, 12}, 9);
  const double d = relative_difference(graph::Plan(r, {5, 1, 12, 12}).run(x), model.predict(x));
  MESSAGE("ResNet with its BatchNorms folded: largest relative difference " << d);
  CHECK(d < 1e-5);
}

TEST_CASE("Plan: four threads at once give the bits of a lone call; a batch other than the plan's runs") {
  const nn::Sequential model = cnn();
  const graph::Plan plan(graph::trace(model, {64, 1, 28, 28}), {64, 1, 28, 28});
  CHECK(plan.chunk() < 64);  // several chunks: the threads share the workspaces' pool
  const Tensor x = fixture::normal_tensor({64, 1, 28, 28}, 11);
  const Tensor lone = plan.run(x);
  std::vector<Tensor> got(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 3; ++k) got[static_cast<std::size_t>(t)] = plan.run(x);
    });
  for (auto& t : threads) t.join();
  for (const auto& g : got) CHECK(same_bits(g, lone));

  for (std::int64_t n : {1, 5, 64, 150}) {
    const Tensor xn = fixture::normal_tensor({n, 1, 28, 28}, 12 + static_cast<std::uint64_t>(n));
    const Tensor y = plan.run(xn);
    CHECK(y.shape() == Shape{n, 24});
    CHECK(relative_difference(y, model.predict(xn)) < 1e-5);
  }
  CHECK_THROWS_WITH_AS(plan.run(Tensor({2, 1, 28, 27})), doctest::Contains("[N, 1, 28, 28]"), shape_error);
}

TEST_CASE("Plan: a warm run allocates nothing" * kAllocSkip) {
  for (const auto& [model, shape] : {std::pair<nn::Sequential, Shape>{cnn(), {64, 1, 28, 28}},
                                     std::pair<nn::Sequential, Shape>{mlp(), {8, 1, 28, 28}},
                                     std::pair<nn::Sequential, Shape>{resnet(), {3, 1, 12, 12}}}) {
    const graph::Plan plan(graph::optimize(graph::trace(model, shape)), shape);
    const Tensor x = fixture::normal_tensor(shape, 13);
    Tensor out;
    plan.run(x, out);
    plan.run(x, out);
    CHECK(count_allocations([&] { plan.run(x, out); }) == 0);
  }
}

TEST_CASE("trace: a layer of one's own takes part by describing itself, else trace throws naming it") {
  const nn::Sequential ok({{"fc", nn::Linear(6, 4)}, {"squash", SquashT()}});
  const graph::Graph g = graph::trace(ok, {3, 6});
  CHECK(op_counts(g) == std::map<std::string, int>{{"Gemm", 1}, {"Relu", 1}, {"Sigmoid", 1}});
  CHECK(g.nodes()[1].name == "squash/Relu");
  const Tensor x = fixture::normal_tensor({3, 6}, 14);
  CHECK(relative_difference(graph::Plan(g, {3, 6}).run(x), ok.predict(x)) < 1e-6);

  const nn::Sequential bad({{"fc", nn::Linear(6, 4)}, {"mine", OpaqueT()}});
  CHECK_THROWS_WITH_AS(graph::trace(bad, {3, 6}), doctest::Contains("'mine'"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(graph::trace(bad, {3, 6}), doctest::Contains("Opaque()"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(graph::trace(ok, {3, 7}), doctest::Contains("fc"), shape_error);
}

TEST_CASE("Graph: validation names the node and the value; Plan refuses what it cannot run") {
  graph::Graph g;
  g.inputs().push_back({"input", {-1, 4}});
  g.add_node({"Relu", "first", {"input"}, {"a"}, {}});
  g.add_node({"Add", "sum", {"a", "b"}, {"output"}, {}});
  g.outputs().push_back({"output", {-1, 4}});
  CHECK_THROWS_WITH_AS(g.validate(), doctest::Contains("Add 'sum' reads 'b'"), std::invalid_argument);
  g.nodes()[1].inputs[1] = "a";
  g.validate();
  const Tensor x = fixture::normal_tensor({2, 4}, 15);
  const Tensor y = graph::Plan(g, {2, 4}).run(x);
  for (std::int64_t i = 0; i < 8; ++i) CHECK(y[i] == 2 * std::max(x[i], 0.0f));
  g.nodes()[0].op = "TopK";  // an operator the plan does not run
  CHECK_THROWS_WITH_AS(graph::Plan(g, {2, 4}), doctest::Contains("TopK"), std::invalid_argument);
  g.nodes()[0].op = "Relu";
  // No product to round: BFloat16 gives the float bits (test_quantize checks the products).
  CHECK(same_bits(graph::Plan(g, {2, 4}, {0, graph::Precision::BFloat16}).run(x), y));
  CHECK_THROWS_WITH_AS(graph::Plan(g, {2, 4}, {0, graph::Precision::Int8}),
                       doctest::Contains("quantize first"), std::invalid_argument);
  CHECK_THROWS_AS(graph::Plan(g, {2, 5}), shape_error);

  // A model that computes nothing still has a node writing "output", which optimize keeps.
  const graph::Graph empty = graph::optimize(graph::trace(nn::Sequential(), {2, 3}));
  REQUIRE(empty.nodes().size() == 1);
  CHECK(empty.nodes()[0].op == "Identity");
  const Tensor e = fixture::normal_tensor({4, 3}, 16);
  CHECK(same_bits(graph::Plan(empty, {2, 3}).run(e), e));
}

TEST_CASE("Plan: a Concat of 49 computed values, as DenseNet-201's last dense layers write") {
  graph::Graph g;
  g.inputs().push_back({"input", {-1, 2}});
  std::vector<std::string> parts;
  for (int k = 0; k < 49; ++k) {
    parts.push_back("r" + std::to_string(k));
    // Alternate operators so that no two values are the same node's.
    g.add_node({k % 2 ? "Relu" : "Sigmoid", "n" + std::to_string(k), {"input"}, {parts.back()}, {}});
  }
  g.add_node({"Concat", "cat", parts, {"output"}, {{"axis", graph::Attribute::integer(1)}}});
  g.outputs().push_back({"output", {-1, 98}});
  g.validate();
  const Tensor x = fixture::normal_tensor({3, 2}, 17);
  const Tensor y = graph::Plan(g, {3, 2}).run(x);
  REQUIRE(y.shape() == Shape{3, 98});
  for (std::int64_t r = 0; r < 3; ++r)
    for (int k = 0; k < 49; ++k)
      for (int c = 0; c < 2; ++c) {
        const float v = x[r * 2 + c];
        const float want = k % 2 ? std::max(v, 0.0f) : 1.0f / (1.0f + std::exp(-v));
        CHECK(y[r * 98 + k * 2 + c] == doctest::Approx(want).epsilon(1e-6));
      }
}

TEST_CASE("Plan: one thread or all, the same bits") {
  const graph::Graph g = graph::optimize(graph::trace(cnn(), {40, 1, 28, 28}));
  const Tensor x = fixture::normal_tensor({40, 1, 28, 28}, 18);
  const graph::Plan all(g, {40, 1, 28, 28}), one(g, {40, 1, 28, 28}, {1, graph::Precision::Float32});
  CHECK(all.chunk() < 40);
  CHECK(same_bits(one.run(x), all.run(x)));
}

TEST_CASE("export_onnx of a graph: fused activations, GELU and padded average pooling written as opset 13") {
  manual_seed(5);
  nn::Sequential model({{"conv", nn::Conv2d(1, 4, 3)},
                        {"bn", nn::BatchNorm2d(4)},
                        {"relu", nn::ReLU()},
                        {"pool", nn::AvgPool2d(3, 1, 1)},
                        {"gelu", nn::GELU()},
                        {"flatten", nn::Flatten()},
                        {"fc", nn::Linear(36, 3)}});
  model.eval();
  const graph::Graph g = graph::optimize(graph::trace(model, {1, 1, 5, 5}));
  const format::OnnxModel onnx = io::to_onnx(g, {{"classes", "a,b,c"}});
  std::map<std::string, int> ops;
  for (const auto& n : onnx.graph.nodes) {
    ++ops[n.op_type];
    for (const auto& a : n.attributes) CHECK(a.name != "activation");
  }
  CHECK(ops.at("Conv") == 1);
  CHECK(ops.at("Relu") == 1);  // unfused again
  CHECK(ops.at("Pad") == 1);
  CHECK(ops.at("Erf") == 1);
  CHECK(ops.count("Gelu") == 0);
  CHECK(ops.count("BatchNormalization") == 0);  // folded
  CHECK(onnx.graph.nodes.back().outputs[0] == "output");
  CHECK(onnx.graph.inputs[0].dims[0].param == "N");
  bool classes = false;
  for (const auto& [k, v] : onnx.metadata) classes = classes || (k == "classes" && v == "a,b,c");
  CHECK(classes);
  const std::string path = std::string(EMBER_TEST_TMP_DIR) + "/graph.onnx";
  io::export_onnx(g, path);
  CHECK(!read_file(path).empty());
}

TEST_CASE(
    "export_onnx of optimised graphs: accepted by onnx.checker and run by OpenCV's dnn as the plan runs "
    "them") {
  const bool ok = std::system("/usr/bin/python3 -c 'import onnx, cv2' >/dev/null 2>&1") == 0;
  if (!scratch::prerequisite(
          ok, "/usr/bin/python3 cannot import onnx and cv2 (Debian: python3-onnx, python3-opencv)"))
    return;
  const std::string dir = std::string(EMBER_TEST_TMP_DIR) + "/graph_interop";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto raw = [](const std::string& path, const Tensor& t) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.numel() * 4));
  };
  const auto dims = [](const Shape& s) {
    std::string j = "[";
    for (std::size_t i = 0; i < s.size(); ++i) j += (i ? ", " : "") + std::to_string(s[i]);
    return j + "]";
  };
  const auto add = [&](const std::string& name, const nn::Module& model, const Shape& shape) {
    const graph::Graph g = graph::optimize(graph::trace(model, shape));
    io::export_onnx(g, dir + "/" + name + ".onnx");
    const Tensor x = fixture::normal_tensor(shape, 17);
    const Tensor y = graph::Plan(g, shape).run(x);
    raw(dir + "/" + name + ".input", x);
    raw(dir + "/" + name + ".output", y);
    std::ofstream(dir + "/" + name + ".json")
        << "{\"input\": " << dims(x.shape()) << ", \"output\": " << dims(y.shape()) << "}";
  };
  add("cnn", cnn(), {3, 1, 28, 28});
  add("resnet", resnet(), {3, 1, 12, 12});
  add("mlp", mlp(), {3, 1, 28, 28});
  // A layer of one's own (SquashT: it describes itself as Relu then Sigmoid), exported and run by OpenCV.
  add("user_layer", nn::Sequential({{"fc", nn::Linear(6, 4)}, {"squash", SquashT()}}), {3, 6});
  const std::string command =
      "/usr/bin/python3 " + std::string(EMBER_FIXTURE_DIR) + "/../onnx_graph_check.py " + dir;
  CHECK(std::system(command.c_str()) == 0);
}
