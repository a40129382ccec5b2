// ONNX export: the wire format against protobuf's documented encodings, the structure of the files (read back
// with a small decoder of our own), bad input, and the interop check: every model and layer mapping exported,
// then checked by ONNX's checker, run by OpenCV's dnn module and compared with PyTorch
// (tests/onnx_interop.py).
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ember/format/protobuf.hpp>
#include <ember/format/safetensors.hpp>
#include <ember/io/checkpoint.hpp>
#include <ember/io/onnx.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bad_input.hpp"
#include "scratch.hpp"

namespace fs = std::filesystem;
using ember::Shape;
using ember::Size2;
using ember::Tensor;
using ember::TensorT;
namespace nn = ember::nn;
namespace io = ember::io;

namespace {

std::string tmp_path(const std::string& name) {
  return scratch::path("onnx", name);
}

// A protobuf message as its fields, in file order: enough to read back what the writer wrote.
struct Field {
  std::uint32_t number = 0, wire = 0;
  std::uint64_t varint = 0;  // wire types 0, 1 and 5
  std::string bytes;         // wire type 2
};
struct Message {
  std::vector<Field> fields;
  std::vector<const Field*> all(std::uint32_t n) const {
    std::vector<const Field*> out;
    for (const auto& f : fields)
      if (f.number == n) out.push_back(&f);
    return out;
  }
  const Field& one(std::uint32_t n) const {
    const auto v = all(n);
    REQUIRE_MESSAGE(v.size() == 1, "field " << n << " occurs " << v.size() << " times");
    return *v[0];
  }
  std::vector<std::string> strings(std::uint32_t n) const {
    std::vector<std::string> out;
    for (const auto* f : all(n)) out.push_back(f->bytes);
    return out;
  }
};

Message decode(const std::string& b) {
  Message m;
  std::size_t i = 0;
  const auto varint = [&] {
    std::uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      REQUIRE(i < b.size());
      REQUIRE(shift < 64);
      const auto c = static_cast<unsigned char>(b[i++]);
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
  };
  while (i < b.size()) {
    Field f;
    const std::uint64_t tag = varint();
    f.number = static_cast<std::uint32_t>(tag >> 3);
    f.wire = static_cast<std::uint32_t>(tag & 7);
    if (f.wire == 0) {
      f.varint = varint();
    } else if (f.wire == 1 || f.wire == 5) {
      const std::size_t n = f.wire == 1 ? 8 : 4;
      REQUIRE(i + n <= b.size());
      for (std::size_t k = 0; k < n; ++k)
        f.varint |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[i + k])) << (8 * k);
      i += n;
    } else {
      REQUIRE(f.wire == 2);
      const std::uint64_t n = varint();
      REQUIRE(n <= b.size() - i);
      f.bytes = b.substr(i, n);
      i += n;
    }
    m.fields.push_back(std::move(f));
  }
  return m;
}

std::string hex(const std::vector<unsigned char>& v) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : v) s += std::string(s.empty() ? "" : " ") + digits[c >> 4] + digits[c & 15];
  return s;
}

std::string file_text(const std::string& path) {
  const auto b = scratch::read_file(path);
  return std::string(b.begin(), b.end());
}

// BatchNorm's affine parameters and running statistics made random (the other layers' initialisation is
// random already), so that every initialiser matters in the comparisons.
template <typename T>
void randomise(nn::ModuleT<T>& model, std::uint64_t seed) {
  ember::Generator gen(seed);
  for (auto& [name, m] : model.named_modules()) {
    if (auto* bn = dynamic_cast<nn::BatchNormBaseT<T>*>(m)) {
      for (auto& v : bn->weight().value) v = static_cast<T>(gen.uniform(0.5, 1.5));
      for (auto& v : bn->bias().value) v = static_cast<T>(0.2 * gen.normal());
    }
  }
  for (auto& [name, b] : model.named_buffers()) {
    if (name.find("running_var") != std::string::npos)
      for (auto& v : *b) v = static_cast<T>(gen.uniform(0.5, 2.0));
    if (name.find("running_mean") != std::string::npos)
      for (auto& v : *b) v = static_cast<T>(0.3 * gen.normal());
  }
}

Tensor random_input(const Shape& s, std::uint64_t seed) {
  ember::Generator gen(seed);
  Tensor x(s);
  for (auto& v : x) v = static_cast<float>(gen.normal());
  return x;
}

}  // namespace

TEST_CASE("the protobuf writer encodes as protobuf's documentation shows") {
  ember::format::ProtoWriter w;
  w.varint(1, 150);  // the encoding guide's first example: 08 96 01
  CHECK(hex(w.data()) == "08 96 01");
  ember::format::ProtoWriter s;
  s.string(2, "testing");  // 12 07 74 65 73 74 69 6e 67
  CHECK(hex(s.data()) == "12 07 74 65 73 74 69 6e 67");
  ember::format::ProtoWriter n;
  n.varint(1, -2);  // int64 -2: ten bytes, two's complement
  CHECK(hex(n.data()) == "08 fe ff ff ff ff ff ff ff ff 01");
  ember::format::ProtoWriter f;
  f.float32(3, 1.0f);  // fixed32, little-endian 0x3f800000
  CHECK(hex(f.data()) == "1d 00 00 80 3f");
  ember::format::ProtoWriter m;
  m.message(4, w).repeated_int64(5, {1, 300});
  CHECK(hex(m.data()) == "22 03 08 96 01 28 01 28 ac 02");
}

TEST_CASE("the report's CNN as an ONNX file: opset, names, dynamic batch, initialisers, nodes, metadata") {
  ember::manual_seed(3);
  auto model = ember::models::report_cnn(24, true);
  randomise(model, 4);
  const Tensor before = model.predict(random_input({3, 1, 28, 28}, 5));
  const std::string path = tmp_path("cnn.onnx");
  io::export_onnx(model, {1, 1, 28, 28}, path, {{"classes", "[\"A\", \"B\"]"}, {"normalize_mean", "[0.5]"}});
  CHECK(model.is_training());  // exported as in eval mode, the module itself untouched
  const Tensor after = model.predict(random_input({3, 1, 28, 28}, 5));
  CHECK(std::equal(before.begin(), before.end(), after.begin()));

  const Message onnx = decode(file_text(path));
  CHECK(onnx.one(1).varint == 8);  // ir_version
  CHECK(onnx.one(2).bytes == "ember");
  CHECK(onnx.one(3).bytes == ember::version());
  const Message opset = decode(onnx.one(8).bytes);
  CHECK(opset.one(1).bytes == "");
  CHECK(opset.one(2).varint == 13);

  std::map<std::string, std::string> meta;
  for (const auto* e : onnx.all(14)) {
    const Message kv = decode(e->bytes);
    meta[kv.one(1).bytes] = kv.one(2).bytes;
  }
  CHECK(meta.at("model") == model.repr());
  CHECK(meta.at("input_shape") == "[1, 28, 28]");
  CHECK(meta.at("classes") == "[\"A\", \"B\"]");
  CHECK(meta.at("normalize_mean") == "[0.5]");

  const Message graph = decode(onnx.one(7).bytes);
  // Graph inputs and outputs: a float tensor with the batch as the symbolic dimension "N".
  const auto io_shape = [&](std::uint32_t field) {
    const auto vs = graph.all(field);
    REQUIRE(vs.size() == 1);
    const Message v = decode(vs[0]->bytes);
    const Message tensor = decode(decode(v.one(2).bytes).one(1).bytes);
    CHECK(tensor.one(1).varint == 1);  // FLOAT
    std::string dims = v.one(1).bytes + ":";
    const Message shape = decode(tensor.one(2).bytes);
    for (const auto* d : shape.all(1)) {
      const Message dim = decode(d->bytes);
      dims += " " + (dim.all(2).empty() ? std::to_string(dim.one(1).varint) : dim.one(2).bytes);
    }
    return dims;
  };
  CHECK(io_shape(11) == "input: N 1 28 28");
  CHECK(io_shape(12) == "output: N 24");

  // Initialisers: the parameters and running statistics under their dotted names, in registration order, with
  // the model's values as little-endian raw data; num_batches_tracked means nothing in eval mode.
  std::vector<std::pair<std::string, const Tensor*>> expected;
  for (const auto& [name, p] : std::as_const(model).named_parameters()) {
    expected.emplace_back(name, &p->value);
    if (name.size() > 4 && name.compare(name.size() - 4, 4, "bias") == 0 && name.rfind("batchnorm", 0) == 0) {
      const std::string bn = name.substr(0, name.size() - 5);
      for (const auto& [bname, b] : std::as_const(model).named_buffers())
        if (bname == bn + ".running_mean" || bname == bn + ".running_var") expected.emplace_back(bname, b);
    }
  }
  const auto inits = graph.all(5);
  REQUIRE(inits.size() == expected.size());
  for (std::size_t k = 0; k < inits.size(); ++k) {
    const Message t = decode(inits[k]->bytes);
    CAPTURE(expected[k].first);
    CHECK(t.one(8).bytes == expected[k].first);
    CHECK(t.one(2).varint == 1);
    Shape dims;
    for (const auto* d : t.all(1)) dims.push_back(static_cast<std::int64_t>(d->varint));
    CHECK(dims == expected[k].second->shape());
    const std::string& raw = t.one(9).bytes;
    REQUIRE(raw.size() == static_cast<std::size_t>(expected[k].second->numel()) * 4);
    CHECK(std::memcmp(raw.data(), expected[k].second->data(), raw.size()) == 0);  // x86-64: little-endian
  }

  // Nodes, named by the modules: dropout leaves none, and the last writes "output".
  std::string ops, last_output;
  for (const auto* n : graph.all(1)) {
    const Message node = decode(n->bytes);
    ops += (ops.empty() ? "" : " ") + node.one(4).bytes + "(" + node.one(3).bytes + ")";
    last_output = node.one(2).bytes;
  }
  CHECK(
      ops ==
      "Conv(conv1) Relu(relu1) BatchNormalization(batchnorm1) MaxPool(pool1) Conv(conv2) Relu(relu2) "
      "BatchNormalization(batchnorm2) MaxPool(pool2) Conv(conv3) Relu(relu3) BatchNormalization(batchnorm3) "
      "MaxPool(pool3) Flatten(flatten) Gemm(fc1) Relu(relu4) Gemm(fc2) Softmax(softmax)");
  CHECK(last_output == "output");
}

TEST_CASE(
    "a double model exports DOUBLE tensors; Linear on 3-d input is MatMul; a partial Flatten is Reshape") {
  ember::Generator gen(1);
  nn::SequentialT<double> model("Net", {});
  model.add("flatten", nn::FlattenT<double>(2));
  model.add("fc", nn::LinearT<double>(9, 4, true, gen));
  const auto onnx = io::to_onnx(model, {1, 3, 3, 3});
  std::string ops;
  for (const auto& n : onnx.graph.nodes) ops += n.op_type + " ";
  CHECK(ops == "Reshape Transpose MatMul Add ");
  CHECK(onnx.graph.inputs[0].elem_type == ember::format::OnnxType::Double);
  CHECK(onnx.graph.outputs[0].dims.size() == 3);
  CHECK(onnx.graph.outputs[0].dims[2].value == 4);
  REQUIRE(onnx.graph.initializers.size() == 3);
  CHECK(onnx.graph.initializers[0].name == "flatten/shape");  // Reshape's target: batch copied (0), then 3, 9
  CHECK(onnx.graph.initializers[0].data_type == ember::format::OnnxType::Int64);
  CHECK(onnx.graph.initializers[0].dims == std::vector<std::int64_t>{3});
  CHECK(onnx.graph.initializers[1].name == "fc.weight");
  CHECK(onnx.graph.initializers[1].data_type == ember::format::OnnxType::Double);
  CHECK(onnx.graph.initializers[1].raw.size() == 4 * 9 * 8);
  CHECK(onnx.graph.nodes.back().outputs[0] == "output");
  // A layer as the whole model: its parameters keep their names ("weight", as named_parameters() says).
  const auto bare = io::to_onnx(nn::BatchNorm1d(3), {1, 3});
  std::vector<std::string> names;
  for (const auto& t : bare.graph.initializers) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"weight", "bias", "running_mean", "running_var"});
  CHECK(bare.graph.nodes[0].name == "BatchNorm1d");
  // Children named like the graph's own values get names of their own.
  nn::Sequential odd("Net", {{"input", nn::ReLU()}, {"output", nn::Sigmoid()}, {"x", nn::Tanh()}});
  const auto renamed = io::to_onnx(odd, {1, 3});
  REQUIRE(renamed.graph.nodes.size() == 3);
  CHECK(renamed.graph.nodes[0].inputs == std::vector<std::string>{"input"});
  CHECK(renamed.graph.nodes[0].outputs == std::vector<std::string>{"input_1"});
  CHECK(renamed.graph.nodes[1].outputs == std::vector<std::string>{"output_1"});
  CHECK(renamed.graph.nodes[2].inputs == std::vector<std::string>{"output_1"});
  CHECK(renamed.graph.nodes[2].outputs == std::vector<std::string>{"output"});
  // An empty Sequential is the identity: one Identity node from input to output.
  const auto empty = io::to_onnx(nn::Sequential(), {2, 5});
  REQUIRE(empty.graph.nodes.size() == 1);
  CHECK(empty.graph.nodes[0].op_type == "Identity");
}

namespace {

// One case of the interop check: the model's checkpoint, its ONNX file (exported for a batch of 1) and a
// batch of 5 with ember's predict of it, for tests/onnx_interop.py.
void write_case(const std::string& dir, const std::string& name, nn::Module& model, const Shape& input_shape,
                std::uint64_t seed) {
  randomise(model, seed);
  Shape batch = input_shape;
  batch[0] = 5;
  const Tensor x = random_input(batch, seed + 1);
  const Tensor y = model.predict(x);
  io::export_onnx(model, input_shape, dir + "/" + name + ".onnx");
  io::save_checkpoint(model, dir + "/" + name + ".safetensors");
  ember::format::write_safetensors<float>(dir + "/" + name + ".io.safetensors",
                                          {{"input", &x, false}, {"output", &y, false}}, {});
}

// A Sequential holding one layer (named "layer"): each mapping checked on its own.
template <typename M>
nn::Sequential alone(M&& layer) {
  nn::Sequential s("Net", {});
  s.add("layer", std::forward<M>(layer));
  return s;
}

// A small ResNet: a stem, a block with the identity shortcut, a downsampling block with a 1x1 strided
// convolution and BatchNorm as its shortcut, global average pooling, the classifier.
nn::Sequential small_resnet(ember::Generator& gen) {
  using nn::Conv2dOptions;
  const auto conv = [&](std::int64_t in, std::int64_t out, std::int64_t stride) {
    return nn::Conv2d(Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false), gen);
  };
  nn::Sequential block1{conv(8, 8, 1), nn::BatchNorm2d(8), nn::ReLU(), conv(8, 8, 1), nn::BatchNorm2d(8)};
  nn::Sequential block2{conv(8, 16, 2), nn::BatchNorm2d(16), nn::ReLU(), conv(16, 16, 1),
                        nn::BatchNorm2d(16)};
  nn::Sequential down{nn::Conv2d(Conv2dOptions(8, 16, 1).stride(2).bias(false), gen), nn::BatchNorm2d(16)};
  return nn::Sequential("ResNet", {{"conv1", conv(1, 8, 1)},
                                   {"bn1", nn::BatchNorm2d(8)},
                                   {"relu1", nn::ReLU()},
                                   {"block1", nn::Residual(block1)},
                                   {"relu2", nn::ReLU()},
                                   {"block2", nn::Residual(block2, down)},
                                   {"relu3", nn::ReLU()},
                                   {"pool", nn::AdaptiveAvgPool2d(1)},
                                   {"flatten", nn::Flatten()},
                                   {"fc", nn::Linear(16, 24, true, gen)}});
}

}  // namespace

TEST_CASE(
    "ONNX files are accepted by onnx.checker and run by OpenCV's dnn as ember predicts (and as PyTorch's)") {
  const bool ok = std::system("/usr/bin/python3 -c 'import onnx, cv2, torch' >/dev/null 2>&1") == 0;
  if (!scratch::prerequisite(ok,
                             "/usr/bin/python3 cannot import onnx, cv2 and torch (Debian: python3-onnx, "
                             "python3-opencv, python3-torch; scripts/setup.sh --interop)"))
    return;
  const std::string dir = tmp_path("interop");
  fs::remove_all(dir);
  fs::create_directories(dir);
  ember::manual_seed(11);
  ember::Generator gen(12);
  std::uint64_t seed = 100;
  const auto add = [&](const std::string& name, nn::Module&& model, const Shape& shape) {
    write_case(dir, name, model, shape, seed += 10);
  };
  // The report's models, both heads.
  add("mlp", ember::models::report_mlp(24, true), {1, 1, 28, 28});
  add("mlp_logits", ember::models::report_mlp(10, false), {1, 1, 28, 28});
  add("cnn", ember::models::report_cnn(24, false), {1, 1, 28, 28});
  add("cnn_softmax", ember::models::report_cnn(24, true), {1, 1, 28, 28});
  // Each mapping alone, with its options.
  add("linear", alone(nn::Linear(6, 4, true, gen)), {1, 6});
  add("linear_nobias", alone(nn::Linear(6, 4, false, gen)), {1, 6});
  // (Python's cv2 takes a 3-d array for an image with channels: inputs of 3 dimensions cannot be given to
  // it.)
  add("linear_4d", alone(nn::Linear(6, 4, true, gen)), {1, 2, 3, 6});
  add("conv2d", alone(nn::Conv2d(nn::Conv2dOptions(3, 5, 3), gen)), {1, 3, 9, 9});
  add("conv2d_stride_pad",
      alone(nn::Conv2d(nn::Conv2dOptions(3, 5, {3, 2}).stride({2, 1}).padding({1, 2}).bias(false), gen)),
      {1, 3, 10, 9});
  add("batchnorm2d", alone(nn::BatchNorm2d(3, 1e-3)), {1, 3, 4, 5});
  add("maxpool2d", alone(nn::MaxPool2d(2)), {1, 3, 8, 8});
  add("maxpool2d_pad", alone(nn::MaxPool2d(3, 2, 1)), {1, 3, 9, 8});
  add("relu", alone(nn::ReLU()), {1, 3, 4, 4});
  add("softmax", alone(nn::Softmax(1)), {1, 7});
  add("softmax_4d", alone(nn::Softmax(1)), {1, 4, 3, 3});
  add("flatten", alone(nn::Flatten()), {1, 2, 3, 4});
  add("flatten_partial", alone(nn::Flatten(2)), {1, 2, 3, 4});
  {
    nn::Sequential net(
        "Net", {{"fc1", nn::Linear(6, 5, true, gen)}, {"dropout", nn::Dropout(0.5)}, {"relu", nn::ReLU()}});
    add("dropout", std::move(net), {1, 6});
  }
  add("conv2d_dilation_groups",
      alone(nn::Conv2d(nn::Conv2dOptions(4, 6, 3).dilation(2).groups(2).padding(1), gen)), {1, 4, 9, 8});
  add("conv2d_depthwise", alone(nn::Conv2d(nn::Conv2dOptions(4, 4, {3, 1}).groups(4).padding({1, 0}), gen)),
      {1, 4, 7, 7});
  add("batchnorm1d", alone(nn::BatchNorm1d(6)), {1, 6});
  {
    nn::Sequential net("Net", {{"flatten", nn::Flatten(2)}, {"bn", nn::BatchNorm1d(3, 1e-4)}});
    add("batchnorm1d_3d", std::move(net), {1, 3, 4, 5});
  }
  add("avgpool2d", alone(nn::AvgPool2d(2)), {1, 3, 8, 6});
  add("avgpool2d_pad", alone(nn::AvgPool2d({3, 2}, Size2{2, 1}, Size2{1, 1})), {1, 3, 9, 7});
  add("adaptive_avgpool2d_global", alone(nn::AdaptiveAvgPool2d(1)), {1, 3, 7, 5});
  add("adaptive_avgpool2d_2x3", alone(nn::AdaptiveAvgPool2d({2, 3})), {1, 3, 8, 6});
  add("leaky_relu", alone(nn::LeakyReLU(0.1)), {1, 3, 4, 4});
  add("sigmoid", alone(nn::Sigmoid()), {1, 3, 4, 4});
  add("tanh", alone(nn::Tanh()), {1, 3, 4, 4});
  add("gelu", alone(nn::GELU()), {1, 3, 4, 4});
  add("gelu_tanh", alone(nn::GELU("tanh")), {1, 3, 4, 4});
  {
    nn::Sequential net(
        "Net", {{"fc1", nn::Linear(6, 5, true, gen)}, {"identity", nn::Identity()}, {"relu", nn::ReLU()}});
    add("identity", std::move(net), {1, 6});
  }
  {
    nn::Sequential body{nn::Conv2d(nn::Conv2dOptions(3, 3, 3).padding(1), gen), nn::ReLU()};
    add("residual", alone(nn::Residual(body)), {1, 3, 6, 6});
  }
  add("resnet", small_resnet(gen), {1, 1, 28, 28});
  add("bare_conv2d", nn::Conv2d(nn::Conv2dOptions(2, 3, 3), gen),
      {1, 2, 5, 5});  // a layer as the whole model
  const std::string script = std::string(EMBER_FIXTURE_DIR) + "/../onnx_interop.py";
  CHECK(std::system(("/usr/bin/python3 " + script + " " + dir).c_str()) == 0);
}

namespace bad_input {

// A layer of the user's own, which ONNX export cannot know.
struct Doubler : nn::Module {
  void forward_into(const Tensor& x, Tensor& out) override { predict_into(x, out); }
  void backward_into(const Tensor& g, Tensor* gi) override {
    if (gi) *gi = g;
  }
  void predict_into(const Tensor& x, Tensor& out) const override {
    out.assign(x);
    for (auto& v : out) v *= 2;
  }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<Doubler>(*this); }
  std::string type_name() const override { return "Doubler"; }
};

// The same layer, described: a Mul by a constant 2, which ONNX export then writes.
struct DescribedDoubler : Doubler {
  std::string describe(ember::graph::Tracer& t, const std::string& x) const override {
    return t.node("Mul", {x, t.parameter("two", Tensor::full({1}, 2.0f))});
  }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<DescribedDoubler>(*this); }
};
// A layer whose describe disagrees with its predict (Relu keeps the shape; predict halves the features).
struct Halver : Doubler {
  void predict_into(const Tensor& x, Tensor& out) const override {
    out.resize({x.size(0), x.size(1) / 2});
    for (std::int64_t i = 0; i < out.numel(); ++i) out.data()[i] = x.data()[i];
  }
  std::string describe(ember::graph::Tracer& t, const std::string& x) const override { return t.node("Relu", {x}); }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<Halver>(*this); }
  std::string type_name() const override { return "Halver"; }
};

TEST_CASE("export_onnx: a layer of one's own exports through its describe; a describe unlike predict throws") {
  ember::Generator gen(1);
  nn::Sequential net("Net", {{"fc", nn::Linear(4, 3, true, gen)}, {"act", DescribedDoubler()}});
  const auto onnx = io::to_onnx(net, {1, 4});
  REQUIRE(onnx.graph.nodes.size() == 2);
  CHECK(onnx.graph.nodes[1].op_type == "Mul");
  CHECK(onnx.graph.nodes[1].name == "act");
  CHECK(onnx.graph.nodes[1].inputs[1] == "act.two");
  CHECK(onnx.graph.nodes[1].outputs[0] == "output");
  REQUIRE(onnx.graph.initializers.size() == 3);
  CHECK(onnx.graph.initializers[2].name == "act.two");

  nn::Sequential wrong("Net", {{"fc", nn::Linear(4, 4, true, gen)}, {"half", Halver()}});
  const std::string msg = scratch::message_of<std::logic_error>([&] { (void)io::to_onnx(wrong, {1, 4}); });
  CHECK(contains(msg, "predicts [2, 2]"));
  CHECK(contains(msg, "[2, 4]"));
  CHECK(contains(msg, "describe and predict disagree"));
}

TEST_CASE(
    "export_onnx: a layer without a mapping, a bad input_shape, a batch-mixing layer, an unwritable path") {
  const std::string path = tmp_path("bad.onnx");
  scratch::write_file(path, std::string("old contents"));
  const auto untouched = [&] {
    CHECK(file_text(path) == "old contents");
    for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
      CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path());
  };
  ember::Generator gen(1);
  nn::Sequential net("Net",
                     {{"flatten", nn::Flatten()},
                      {"block", nn::Sequential({{"fc", nn::Linear(4, 3, true, gen)}, {"act", Doubler()}})}});
  // The layer named by its dotted name and printout; nothing written.
  std::string msg = scratch::message_of<std::invalid_argument>([&] { io::export_onnx(net, {1, 4}, path); });
  CHECK(contains(msg, "'block.act' (Doubler())"));
  CHECK(contains(msg, "no ONNX mapping"));
  CHECK(contains(msg, "override ModuleT::describe"));
  untouched();

  nn::Sequential ok("Net", {{"fc", nn::Linear(4, 3, true, gen)}});
  for (const Shape& s : {Shape{}, Shape{4}, Shape{0, 4}, Shape{1, -4}}) {
    CAPTURE(ember::to_string(s));
    msg = scratch::message_of<ember::shape_error>([&] { io::export_onnx(ok, s, path); });
    CHECK(contains(msg, "input_shape must be [N, ...]"));
  }
  // A shape the model does not take: the layer's own shape_error.
  msg = scratch::message_of<ember::shape_error>([&] { io::export_onnx(ok, {1, 5}, path); });
  CHECK(contains(msg, "layer 'fc' (Linear(in_features=4"));
  CHECK(contains(msg, "got [2, 5]"));
  // Flatten from dimension 0 folds the batch into the features: no dynamic batch can express that.
  nn::Sequential folds("Net", {{"flatten", nn::Flatten(0)}});
  msg = scratch::message_of<ember::shape_error>([&] { io::export_onnx(folds, {1, 4}, path); });
  CHECK(contains(msg, "'flatten'"));
  CHECK(contains(msg, "dimension 0 as the batch"));
  untouched();

  // Adaptive pooling into a size that does not divide the input's: bins of unequal widths, which no ONNX
  // pooling operator has.
  nn::Sequential uneven("Net", {{"pool", nn::AdaptiveAvgPool2d(3)}});
  msg = scratch::message_of<std::invalid_argument>([&] { io::export_onnx(uneven, {1, 2, 7, 6}, path); });
  CHECK(contains(msg, "'pool' (AdaptiveAvgPool2d(output_size=3)): pools 7x6 into 3x3"));
  untouched();

  // An unwritable place: io_error naming the path.
  const std::string nowhere = tmp_path("no-such-dir") + "/model.onnx";
  msg = scratch::message_of<ember::io_error>([&] { io::export_onnx(ok, {1, 4}, nowhere); });
  CHECK(contains(msg, nowhere));
}

}  // namespace bad_input

TEST_CASE("export_onnx: an input_shape without the batch dimension says so, with the shape to give") {
  ember::Generator gen(2);
  const std::string path = tmp_path("no_batch.onnx");
  fs::remove(path);
  nn::Sequential cnn("Net", {{"conv", nn::Conv2d(3, 4, 3, 1, 0, 1, 1, true, gen)}, {"flatten", nn::Flatten()}});
  std::string msg = scratch::message_of<ember::shape_error>([&] { io::export_onnx(cnn, {3, 48, 48}, path); });
  CHECK(scratch::contains(msg, "layer 'conv'"));
  CHECK(scratch::contains(msg, "input_shape starts with the batch dimension (e.g. [1, 3, 48, 48] for one [3, 48, 48] sample)"));
  CHECK_FALSE(fs::exists(path));
  nn::Sequential mlp("Net", {{"fc", nn::Linear(784, 10, true, gen)}});
  msg = scratch::message_of<ember::shape_error>([&] { io::export_onnx(mlp, {784}, path); });
  CHECK(scratch::contains(msg, "input_shape must be [N, ...]"));
  CHECK(scratch::contains(msg, "(e.g. [1, 784] for one [784] sample)"));
  // A shape that is wrong in another way gets no such hint.
  msg = scratch::message_of<ember::shape_error>([&] { io::export_onnx(cnn, {1, 4, 48, 48}, path); });
  CHECK_FALSE(scratch::contains(msg, "batch dimension"));
  io::export_onnx(cnn, {1, 3, 48, 48}, path);
  CHECK(fs::exists(path));
}
