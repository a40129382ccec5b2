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
#include <ember/graph/plan.hpp>
#include <ember/graph/trace.hpp>
#include <ember/io/onnx.hpp>
#include <ember/io/onnx_graph.hpp>
#include <ember/io/onnx_import.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
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

}  // namespace

TEST_CASE("load_onnx runs PyTorch's exports of torchvision models and our own nets within 1e-4") {
  const bool ok = std::system("/usr/bin/python3 -c 'import onnx, torch, torchvision' >/dev/null 2>&1") == 0;
  if (!scratch::prerequisite(ok, "/usr/bin/python3 cannot import onnx, torch and torchvision (Debian: python3-onnx, "
                                 "python3-torch, python3-torchvision; scripts/setup.sh --interop)"))
    return;
  const std::string dir = dir_for("models");
  const std::string script = std::string(EMBER_FIXTURE_DIR) + "/../onnx_import_models.py";
  REQUIRE(std::system(("/usr/bin/python3 " + script + " " + dir + " >/dev/null 2>&1").c_str()) == 0);
  for (const std::string name : {"view_net", "depthwise_net", "se_net", "view_net_opset11", "se_net_opset11",
                                 "se_net_opset14", "resnet18", "mobilenet_v2", "squeezenet1_1",
                           "shufflenet_v2_x0_5", "mnasnet0_5", "efficientnet_b0", "mobilenet_v3_small"}) {
    CAPTURE(name);
    const std::string base = dir + "/" + name;
    std::ifstream shapes(base + ".shape");
    const Shape in_shape = read_shape(shapes), out_shape = read_shape(shapes);
    const Tensor x = read_raw(base + ".in", in_shape), expected = read_raw(base + ".out", out_shape);
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
