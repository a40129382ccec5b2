// io::load_onnx: PyTorch's exports (torchvision architectures and nets of our own, tests/onnx_import_models.py)
// run by graph::Plan as PyTorch runs them, ember's own exports read back, and malformed files refused with
// errors naming the offset, the node and operator, or the external path.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ember/core/file.hpp>
#include <ember/format/onnx_proto.hpp>
#include <ember/format/protobuf.hpp>
#include <ember/data/dataloader.hpp>
#include <ember/graph/plan.hpp>
#include <ember/graph/quantize.hpp>
#include <ember/graph/trace.hpp>
#include <ember/io/checkpoint.hpp>
#include <ember/io/onnx.hpp>
#include <ember/io/onnx_graph.hpp>
#include <ember/io/onnx_import.hpp>
#include <ember/models/report.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/fit.hpp>
#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "fixture.hpp"
#include "layer_check.hpp"
#include "scratch.hpp"

namespace fs = std::filesystem;
using namespace ember;

namespace {

std::string dir_for(const std::string& name) {
  const std::string d = scratch::path("onnx_import", name);
  fs::create_directories(d);
  return d;
}

Tensor read_raw(const std::string& path, const Shape& shape) {
  const std::vector<unsigned char> bytes = read_file(path);
  Tensor t(shape);
  REQUIRE(bytes.size() == static_cast<std::size_t>(t.numel()) * 4);
  std::memcpy(t.data(), bytes.data(), bytes.size());
  return t;
}

Shape read_shape(std::istream& in) {
  std::string line;
  std::getline(in, line);
  std::istringstream s(line);
  Shape out;
  for (std::int64_t d; s >> d;) out.push_back(d);
  return out;
}

// The largest |a - b| relative to max |b|.
double relative_difference(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < b.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / std::max(scale, 1e-12);
}

std::string ops_of(const graph::Graph& g) {
  std::set<std::string> ops;
  for (const auto& n : g.nodes()) ops.insert(n.op);
  std::string out;
  for (const auto& o : ops) out += (out.empty() ? "" : " ") + o;
  return out;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const format_error& e) {
    return e.what();
  }
  return "no format_error";
}

// A one-node model (Relu by default) around `op`, written with format/onnx_proto.hpp.
format::OnnxModel tiny(const std::string& op = "Relu") {
  format::OnnxModel m;
  m.graph.nodes.push_back({op, "node0", {"x"}, {"y"}, {}});
  m.graph.inputs.push_back({"x", format::OnnxType::Float, {{0, "N"}, {3, ""}}});
  m.graph.outputs.push_back({"y", format::OnnxType::Float, {{0, "N"}, {3, ""}}});
  m.metadata.push_back({"classes", "a,b,c"});
  return m;
}

// tests/onnx_import_models.py's exports, made once per run: their folder, or "" when PyTorch is missing (a
// failure under CI=true, scratch::prerequisite).
std::string exported_models() {
  static const std::string dir = [] {
    const bool ok = std::system("/usr/bin/python3 -c 'import onnx, torch, torchvision' >/dev/null 2>&1") == 0;
    if (!scratch::prerequisite(ok, "/usr/bin/python3 cannot import onnx, torch and torchvision (Debian: "
                                   "python3-onnx, python3-torch, python3-torchvision; scripts/setup.sh --interop)"))
      return std::string();
    const std::string d = dir_for("models");
    const std::string script = std::string(EMBER_FIXTURE_DIR) + "/../onnx_import_models.py";
    REQUIRE(std::system(("/usr/bin/python3 " + script + " " + d + " >/dev/null 2>&1").c_str()) == 0);
    return d;
  }();
  return dir;
}

const char* const kExportedModels[] = {"view_net", "depthwise_net", "se_net", "view_net_opset11", "se_net_opset11",
                                       "se_net_opset14", "resnet18", "mobilenet_v2", "squeezenet1_1",
                                       "shufflenet_v2_x0_5", "mnasnet0_5", "efficientnet_b0", "mobilenet_v3_small"};

// A model of exported_models(): its input and PyTorch's output.
struct Exported {
  Shape in_shape, out_shape;
  Tensor x, expected;
};
Exported read_exported(const std::string& base) {
  std::ifstream shapes(base + ".shape");
  Exported e;
  e.in_shape = read_shape(shapes);
  e.out_shape = read_shape(shapes);
  e.x = read_raw(base + ".in", e.in_shape);
  e.expected = read_raw(base + ".out", e.out_shape);
  return e;
}

}  // namespace

TEST_CASE("load_onnx runs PyTorch's exports of torchvision models and our own nets within 1e-4") {
  const std::string dir = exported_models();
  if (dir.empty()) return;
  for (const std::string name : kExportedModels) {
    CAPTURE(name);
    const std::string base = dir + "/" + name;
    const Exported ex = read_exported(base);
    const Shape &in_shape = ex.in_shape, &out_shape = ex.out_shape;
    const Tensor &x = ex.x, &expected = ex.expected;
    const graph::Graph g = io::load_onnx(base + ".onnx");
    for (const auto& n : g.nodes()) CHECK_MESSAGE(n.op != "Shape", "shape arithmetic left in the graph");
    const graph::Plan plan(g, in_shape);
    const Tensor y = plan.run(x);
    if (EMBER_ALLOC_COUNTING && name.rfind("se_net", 0) == 0) {  // the operators of graph/plan_ops.hpp
      Tensor out;
      plan.run(x, out);
      CHECK_MESSAGE(count_allocations([&] { plan.run(x, out); }) == 0, "a warm run allocates");
    }
    REQUIRE(y.shape() == out_shape);
    const double diff = relative_difference(y, expected);
    MESSAGE(name << ": largest difference from PyTorch " << diff << " of max |output|; operators: " << ops_of(g));
    CHECK(diff < 1e-4);
    // One sample alone gives its rows of the batch (the batch dimension stays the batch throughout).
    Shape one = in_shape;
    one[0] = 1;
    Tensor x1(one);
    std::copy(x.data() + x.numel() / in_shape[0], x.data() + x.numel(), x1.data());
    const Tensor y1 = graph::Plan(g, one).run(x1);
    const std::int64_t per = y.numel() / out_shape[0];
    for (std::int64_t i = 0; i < per; ++i) CHECK(y1[i] == doctest::Approx(y[per + i]).epsilon(1e-5));
  }
}

TEST_CASE("load_onnx reads ember's own export back: the same outputs and the metadata") {
  ember::manual_seed(5);
  auto model = models::report_cnn(24, true);
  model.eval();
  const graph::Graph traced = graph::trace(model, {1, 1, 28, 28});
  const std::string path = dir_for("own") + "/cnn.onnx";
  io::export_onnx(traced, path, {{"classes", "a,b"}});
  const graph::Graph g = io::load_onnx(path);
  CHECK(g.metadata().at("classes") == "a,b");
  Tensor x({3, 1, 28, 28});
  for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = std::sin(0.37 * static_cast<double>(i));
  const Tensor a = graph::Plan(traced, x.shape()).run(x), b = graph::Plan(g, x.shape()).run(x);
  REQUIRE(a.shape() == b.shape());
  CHECK(relative_difference(b, a) < 1e-6);
}

TEST_CASE("load_onnx refuses malformed files naming the offset, the node and operator, or the path") {
  const std::string dir = dir_for("bad");
  const std::vector<unsigned char> good = format::encode_onnx(tiny());
  write_file_atomic(dir + "/good.onnx", good);
  {
    const graph::Graph g = io::load_onnx(dir + "/good.onnx");
    CHECK(g.nodes().size() == 1);
    CHECK(g.metadata().at("classes") == "a,b,c");
    CHECK(g.inputs().at(0).shape == Shape{-1, 3});
  }
  SUBCASE("truncated") {
    for (std::size_t cut : {good.size() - 1, good.size() / 2, std::size_t(3)}) {
      write_file_atomic(dir + "/cut.onnx", std::vector<unsigned char>(good.begin(), good.begin() + cut));
      const std::string e = error_of([&] { io::load_onnx(dir + "/cut.onnx"); });
      CHECK_MESSAGE(e.find("cut.onnx: byte ") != std::string::npos, e);
    }
  }
  SUBCASE("a length beyond the file") {
    format::ProtoWriter w;
    w.varint(1, 8);
    std::vector<unsigned char> bytes = w.release();
    bytes.insert(bytes.end(), {0x3a, 0xff, 0xff, 0x03, 0x0a});  // graph: 65535 bytes claimed, one there
    write_file_atomic(dir + "/long.onnx", bytes);
    const std::string e = error_of([&] { io::load_onnx(dir + "/long.onnx"); });
    CHECK_MESSAGE(e.find("byte 3: a length of 65535 bytes with 1 left") != std::string::npos, e);
  }
  SUBCASE("an operator ember cannot run names the node and the operator") {
    write_file_atomic(dir + "/op.onnx", format::encode_onnx(tiny("NonMaxSuppression")));
    const std::string e = error_of([&] { io::load_onnx(dir + "/op.onnx"); });
    CHECK_MESSAGE(e.find("node 'node0' (NonMaxSuppression)") != std::string::npos, e);
    CHECK_MESSAGE(e.find("not supported") != std::string::npos, e);
  }
  SUBCASE("an opset outside 11 to 17") {
    format::OnnxModel m = tiny();
    m.opset = 9;
    write_file_atomic(dir + "/opset.onnx", format::encode_onnx(m));
    const std::string e = error_of([&] { io::load_onnx(dir + "/opset.onnx"); });
    CHECK_MESSAGE(e.find("opset 9; ember reads opsets 11 to 17") != std::string::npos, e);
  }
  SUBCASE("external data: read beside the model, refused out of its folder") {
    const float w[3] = {1.5f, -2.0f, 0.25f};
    write_file_atomic(dir + "/weights.bin", w, sizeof w);
    const auto model_with = [&](const std::string& location) {
      format::ProtoWriter t;  // TensorProto with data_location EXTERNAL
      t.varint(1, 3).varint(2, 1).string(8, "w");
      format::ProtoWriter loc;
      loc.string(1, "location").string(2, location);
      t.message(13, loc).varint(14, 1);
      format::ProtoWriter node;
      node.string(1, "x").string(1, "w").string(2, "y").string(3, "mul").string(4, "Mul");
      format::OnnxModel m = tiny();
      format::ProtoWriter graph;
      graph.message(1, node).message(5, t);
      graph.message(11, format::detail::encode(m.graph.inputs[0])).message(12, format::detail::encode(m.graph.outputs[0]));
      format::ProtoWriter opset;
      opset.string(1, "").varint(2, 13);
      format::ProtoWriter model;
      model.varint(1, 8).message(7, graph).message(8, opset);
      return model.release();
    };
    write_file_atomic(dir + "/ext.onnx", model_with("weights.bin"));
    const graph::Graph g = io::load_onnx(dir + "/ext.onnx");
    Tensor x({2, 3});
    for (std::int64_t i = 0; i < 6; ++i) x[i] = static_cast<float>(i);
    const Tensor y = graph::Plan(g, x.shape()).run(x);
    CHECK(y[4] == 4 * -2.0f);
    CHECK(y[5] == 5 * 0.25f);
    for (const std::string bad : {"../weights.bin", "/etc/passwd", "sub/../../weights.bin"}) {
      CAPTURE(bad);
      write_file_atomic(dir + "/ext_bad.onnx", model_with(bad));
      const std::string e = error_of([&] { io::load_onnx(dir + "/ext_bad.onnx"); });
      CHECK_MESSAGE(e.find("leaves the model's folder") != std::string::npos, e);
    }
  }
}

// nn::GraphModule: the imported graph as a trainable module of ember's layers.

namespace {

bool is_layer_op(const std::string& op) {
  return op == "Conv" || op == "Gemm" || op == "MatMul" || op == "BatchNormalization";
}

// Names of a module's parameters and buffers (num_batches_tracked aside: the graph has none).
std::set<std::string> tensor_names(nn::Module& m) {
  std::set<std::string> out;
  for (const auto& [name, p] : m.named_parameters()) out.insert(name);
  for (const auto& [name, b] : m.named_buffers())
    if (name.find("num_batches_tracked") == std::string::npos) out.insert(name);
  return out;
}

// A squeeze-and-excitation block and what follows it, by hand: a residual Add, Concat, Slice, broadcasting
// Mul/Div/Sub, BatchNormalization, Transpose, Pad, pooling and a Gemm head; conv's output and t are read by
// several nodes.
graph::Graph se_block_graph() {
  using A = graph::Attribute;
  graph::Graph g;
  g.inputs().push_back({"x", {-1, 4, 5, 5}});
  std::uint64_t seed = 10;
  const auto init = [&](const std::string& name, const Shape& s, float scale = 0.5f, float offset = 0.0f) {
    Tensor t = fixture::normal_tensor(s, ++seed);
    for (auto& v : t) v = offset + scale * v;
    g.add_initializer(name, t);
    return name;
  };
  const auto node = [&](const std::string& op, const std::string& name, std::vector<std::string> in,
                        graph::Attributes a = {}) {
    g.add_node({op, name, std::move(in), {name + ":0"}, std::move(a)});
    return name + ":0";
  };
  const A k3 = A::integers({3, 3}), k1 = A::integers({1, 1});
  const std::string c = node("Conv", "/conv/Conv", {"x", init("conv.weight", {4, 4, 3, 3}), init("conv.bias", {4})},
                             {{"kernel_shape", k3}, {"pads", A::integers({1, 1, 1, 1})}});
  const std::string b = node("BatchNormalization", "/bn/BatchNormalization",
                             {c, init("bn.weight", {4}, 0.2f, 1.0f), init("bn.bias", {4}),
                              init("bn.running_mean", {4}), init("bn.running_var", {4}, 0.1f, 1.0f)},
                             {{"epsilon", A::real(1e-5)}, {"momentum", A::real(0.9)}});
  const std::string t = node("Tanh", "/Tanh", {b});
  const std::string s = node("ReduceMean", "/se/ReduceMean", {t}, {{"axes", A::integers({2, 3})}, {"keepdims", A::integer(1)}});
  const std::string f1 = node("Conv", "/se/fc1/Conv", {s, init("se.fc1.weight", {2, 4, 1, 1}), init("se.fc1.bias", {2})},
                              {{"kernel_shape", k1}});
  const std::string r = node("Erf", "/se/Erf", {f1});
  const std::string f2 = node("Conv", "/se/fc2/Conv", {r, init("se.fc2.weight", {4, 2, 1, 1}), init("se.fc2.bias", {4})},
                              {{"kernel_shape", k1}});
  const std::string m = node("Mul", "/se/Mul", {t, node("Sigmoid", "/se/Sigmoid", {f2})});
  const std::string a = node("Add", "/Add", {m, c});
  const std::string cat = node("Concat", "/Concat", {a, t}, {{"axis", A::integer(1)}});
  const std::string sl = node("Slice", "/Slice", {cat},
                              {{"starts", A::integers({1})}, {"ends", A::integers({7})}, {"axes", A::integers({1})}});
  const std::string d = node("Div", "/Div", {sl, init("half", {6, 1, 1}, 0.1f, 2.0f)});
  const std::string sub = node("Sub", "/Sub", {d, init("shift", {1})});
  const std::string cl = node("Clip", "/Clip", {sub}, {{"min", A::real(-10)}, {"max", A::real(10)}});
  const std::string tr = node("Transpose", "/Transpose", {cl}, {{"perm", A::integers({0, 1, 3, 2})}});
  const std::string p = node("Pad", "/Pad", {tr}, {{"pads", A::integers({0, 0, 1, 1, 0, 0, 1, 1})}});
  const std::string ap = node("AveragePool", "/AveragePool", {p},
                              {{"kernel_shape", A::integers({2, 2})}, {"strides", A::integers({2, 2})}});
  const std::string hs = node("HardSwish", "/HardSwish", {ap});
  const std::string fl = node("Flatten", "/Flatten", {node("GlobalAveragePool", "/GlobalAveragePool", {hs})});
  const std::string fc = node("Gemm", "/head/Gemm", {fl, init("head.weight", {3, 6}), init("head.bias", {3})},
                              {{"transB", A::integer(1)}});
  const std::string out = node("Softmax", "/Softmax", {fc}, {{"axis", A::integer(1)}});
  g.outputs().push_back({out, {-1, 3}});
  return g;
}

}  // namespace

TEST_CASE("GraphModule runs PyTorch's exports as PyTorch and the Plan do, its tensors named by the initialisers") {
  const std::string dir = exported_models();
  if (dir.empty()) return;
  for (const std::string name : kExportedModels) {
    CAPTURE(name);
    const Exported ex = read_exported(dir + "/" + name);
    const graph::Graph g = io::load_onnx(dir + "/" + name + ".onnx");
    nn::GraphModule m(g);
    m.eval();
    const Tensor y = m.predict(ex.x);
    REQUIRE(y.shape() == ex.out_shape);
    const double diff = relative_difference(y, ex.expected);
    MESSAGE(name << ": GraphModule's largest difference from PyTorch " << diff << " of max |output|");
    CHECK(diff < 1e-4);
    CHECK(relative_difference(y, graph::Plan(g, ex.in_shape).run(ex.x)) < 1e-6);
    CHECK(relative_difference(m.forward(ex.x), y) == 0);  // forward in eval mode is predict
    std::set<std::string> weights;  // what the graph's layers read
    for (const auto& n : g.nodes())
      for (std::size_t k = 1; is_layer_op(n.op) && k < n.inputs.size(); ++k)
        if (g.has_initializer(n.inputs[k])) weights.insert(n.inputs[k]);
    CHECK(tensor_names(m) == weights);
    // Every operator of these models has a backward: training mode runs forward and backward.
    m.train();
    const Tensor yt = m.forward(ex.x);
    const Tensor gx = m.backward(fixture::normal_tensor(yt.shape(), 5));  // not all ones: a Softmax output sums to 1
    REQUIRE(gx.shape() == ex.in_shape);
    double size = 0;
    for (std::int64_t i = 0; i < gx.numel(); ++i) size += std::abs(static_cast<double>(gx[i]));
    CHECK_MESSAGE(std::isfinite(size), "a gradient that is not finite");
    CHECK(size > 0);
  }
  // torchvision's names: children as PyTorch's modules ('.' as '_'), tensors as the file's.
  nn::GraphModule resnet(io::load_onnx(dir + "/resnet18.onnx"));
  CHECK(resnet.get<nn::Conv2d>("layer1_0_conv1").out_channels() == 64);
  CHECK(resnet.get<nn::Linear>("fc").out_features() == 10);
  const auto names = tensor_names(resnet);
  CHECK(names.count("fc.weight") == 1);
  CHECK(names.count("fc.bias") == 1);
  nn::GraphModule mobile(io::load_onnx(dir + "/mobilenet_v3_small.onnx"));
  CHECK(mobile.get<nn::Conv2d>("features_1_block_1_fc1").out_channels() == 8);
}

TEST_CASE("GraphModule's backward through a DAG (Add, Concat, Mul of a squeeze-and-excitation block) passes gradcheck") {
  const graph::Graph g = se_block_graph();
  nn::GraphModuleT<double> m(g);
  layer_check::gradcheck(m, layer_check::random_tensor({2, 4, 5, 5}, 3), "GraphModule SE block");
  std::set<std::string> params;
  for (const auto& [name, p] : m.named_parameters()) params.insert(name);
  CHECK(params == std::set<std::string>{"conv.weight", "conv.bias", "bn.weight", "bn.bias", "se.fc1.weight",
                                        "se.fc1.bias", "se.fc2.weight", "se.fc2.bias", "head.weight", "head.bias"});
  std::set<std::string> buffers;
  for (const auto& [name, b] : m.named_buffers()) buffers.insert(name);
  CHECK(buffers == std::set<std::string>{"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"});
  // In float and eval mode it runs as the Plan.
  nn::GraphModule f(g);
  f.eval();
  const Tensor x = fixture::normal_tensor({3, 4, 5, 5}, 4);
  CHECK(relative_difference(f.predict(x), graph::Plan(g, x.shape()).run(x)) < 1e-6);
  // BatchNormalization's momentum 0.9 is PyTorch's 0.1.
  CHECK(f.get<nn::BatchNorm2d>("bn").momentum() == doctest::Approx(0.1));
}

TEST_CASE("GraphModule: an operator without a backward throws in training mode naming it, runs in eval") {
  graph::Graph g = se_block_graph();
  std::vector<Tensor> calibration = {fixture::normal_tensor({4, 4, 5, 5}, 8)};
  const graph::Graph q = graph::quantize_int8(g, calibration);
  nn::GraphModule m(q);
  const Tensor x = fixture::normal_tensor({2, 4, 5, 5}, 9);
  std::string what = "no exception";
  try {
    m.forward(x);
  } catch (const std::invalid_argument& e) {
    what = e.what();
  }
  CHECK_MESSAGE(what.find("node Conv '") != std::string::npos, what);
  CHECK_MESSAGE(what.find("has no backward (int8") != std::string::npos, what);
  m.eval();
  const Tensor y = m.predict(x), want = graph::Plan(q, x.shape()).run(x);
  CHECK(relative_difference(y, want) < 0.05);  // weights dequantised, activations in float
  CHECK(relative_difference(m.forward(x), y) == 0);
}

TEST_CASE("GraphModule fine-tunes an imported net: freeze, a new head, fit, checkpoint, export again") {
  const std::string dir = exported_models();
  if (dir.empty()) return;
  const graph::Graph g = io::load_onnx(dir + "/view_net.onnx");  // conv (3 -> 4), relu, pool, fc (64 -> 5)
  nn::GraphModule model(g);
  model.requires_grad_(false);
  model.replace("fc", nn::Linear(64, 3));
  CHECK(model.get<nn::Linear>("fc").weight().requires_grad);
  CHECK(tensor_names(model) == std::set<std::string>{"conv.weight", "conv.bias", "fc.weight", "fc.bias"});
  const Tensor conv_before = model.get<nn::Conv2d>("conv").weight().value;
  // Three classes: one channel brighter than the others.
  const auto make = [](std::int64_t n, std::uint64_t seed) {
    data::Dataset d;
    d.images = fixture::normal_tensor({n, 3, 8, 8}, seed);
    d.num_classes = 3;
    for (std::int64_t i = 0; i < n; ++i) {
      d.labels.push_back(i % 3);
      for (std::int64_t p = 0; p < 64; ++p) d.images[(i * 3 + i % 3) * 64 + p] += 1.5f;
    }
    return d;
  };
  const data::Dataset train_set = make(96, 20), val_set = make(30, 21);
  data::DataLoader train_loader(train_set, {16, true, false, 1}), val_loader(val_set, {30});
  nn::CrossEntropyLoss loss;
  optim::SGD opt(model.parameters(), {0.05, 0.9});
  train::FitOptions opts;
  opts.epochs = 4;
  opts.progress = train::ProgressMode::off;
  const train::History h = train::fit(model, loss, opt, train_loader, val_loader, opts);
  REQUIRE(h.epochs.size() == 4);
  CHECK(h.epochs.back().train_loss < h.epochs.front().train_loss);
  CHECK(h.epochs.back().val_accuracy > 0.8);
  CHECK(relative_difference(model.get<nn::Conv2d>("conv").weight().value, conv_before) == 0);
  // A checkpoint under the file's names, into a fresh module with the same head.
  const std::string out = dir_for("finetune");
  io::save_checkpoint(model, out + "/tuned.safetensors");
  nn::GraphModule fresh(g);
  fresh.replace("fc", nn::Linear(64, 3));
  io::load_checkpoint(fresh, out + "/tuned.safetensors");
  model.eval();
  fresh.eval();
  const Tensor x = val_set.images;
  const Tensor y = model.predict(x);
  CHECK(relative_difference(fresh.predict(x), y) == 0);
  // Exported again: the file's names, and the Plan runs it as the module.
  io::export_onnx(fresh, {1, 3, 8, 8}, out + "/tuned.onnx");
  const graph::Graph back = io::load_onnx(out + "/tuned.onnx");
  REQUIRE(back.has_initializer("fc.weight"));
  CHECK(back.initializer("fc.weight").shape() == Shape{3, 64});
  CHECK(back.has_initializer("conv.weight"));
  CHECK(relative_difference(graph::Plan(back, x.shape()).run(x), y) < 1e-6);
  nn::GraphModule again(back);
  CHECK(tensor_names(again) == tensor_names(fresh));
}

TEST_CASE("GraphModule refuses what it cannot train as layers, naming the node; a wrong input names the shape") {
  const auto error_of_module = [](const graph::Graph& g) {
    try {
      nn::GraphModule m(g);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  using A = graph::Attribute;
  graph::Graph shared;  // two convolutions of one weight: each layer holds its own
  shared.inputs().push_back({"x", {-1, 2, 4, 4}});
  shared.add_initializer("w", fixture::normal_tensor({2, 2, 1, 1}, 1));
  shared.add_node({"Conv", "first", {"x", "w"}, {"a"}, {{"kernel_shape", A::integers({1, 1})}}});
  shared.add_node({"Conv", "second", {"a", "w"}, {"b"}, {{"kernel_shape", A::integers({1, 1})}}});
  shared.outputs().push_back({"b", {-1, 2, 4, 4}});
  std::string e = error_of_module(shared);
  CHECK_MESSAGE(e.find("node Conv 'second' shares its weight 'w' with node 'first'") != std::string::npos, e);
  graph::Graph flat;  // a Flatten that would merge the batch with the channels
  flat.inputs().push_back({"x", {-1, 2, 4, 4}});
  flat.add_node({"Flatten", "flat", {"x"}, {"y"}, {{"axis", A::integer(2)}}});
  flat.outputs().push_back({"y", {-1, 16}});
  e = error_of_module(flat);
  CHECK_MESSAGE(e.find("node Flatten 'flat': a Flatten from an axis other than 1") != std::string::npos, e);
  nn::GraphModule m(se_block_graph());
  std::string shape = "no shape_error";
  try {
    m.predict(Tensor({2, 3, 5, 5}));
  } catch (const shape_error& s) {
    shape = s.what();
  }
  CHECK_MESSAGE(shape.find("expected input [-1, 4, 5, 5] (-1: any batch), got [2, 3, 5, 5]") != std::string::npos,
                shape);
  CHECK_THROWS_AS(m.replace("no_such_child", nn::ReLU()), std::out_of_range);
}

TEST_CASE("A GraphModule inside a Sequential trains and exports under the container's names") {
  nn::Sequential model;
  model.add("backbone", nn::GraphModule(se_block_graph()));
  model.add("head", nn::Linear(3, 2));
  std::set<std::string> names;
  for (const auto& [name, p] : model.named_parameters()) names.insert(name);
  CHECK(names.count("backbone.conv.weight") == 1);
  CHECK(names.count("backbone.head.bias") == 1);
  CHECK(names.count("head.weight") == 1);
  const Tensor x = fixture::normal_tensor({3, 4, 5, 5}, 12);
  Tensor y = model.forward(x), g(y.shape());
  g.fill(1.0f);
  model.backward(g);  // reaches the backbone's first convolution
  double grad = 0;
  for (const auto& [name, p] : model.named_parameters())
    if (name == "backbone.conv.weight")
      for (std::int64_t i = 0; i < p->grad.numel(); ++i) grad += std::abs(p->grad[i]);
  CHECK(grad > 0);
  model.eval();
  const std::string path = dir_for("nested") + "/nested.onnx";
  io::export_onnx(model, {1, 4, 5, 5}, path);
  const graph::Graph back = io::load_onnx(path);
  CHECK(back.has_initializer("backbone.conv.weight"));
  CHECK(back.has_initializer("head.weight"));
  CHECK(relative_difference(graph::Plan(back, x.shape()).run(x), model.predict(x)) < 1e-6);
}
