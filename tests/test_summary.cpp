// nn::summary (nn/summary.hpp): rows, output shapes, parameter counts and torchinfo's multiply-adds per image,
// counted by hand for a small ResNet-style model.
#include <doctest/doctest.h>

#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <ember/nn/summary.hpp>
#include <sstream>

#include "bad_input.hpp"

using namespace ember;

namespace {
nn::Sequential small_resnet() {
  return nn::Sequential("Net", {{"conv", nn::Conv2d(1, 4, 3)},
                                {"bn", nn::BatchNorm2d(4)},
                                {"act", nn::ReLU()},
                                {"block", nn::Residual(nn::Sequential{nn::Conv2d(nn::Conv2dOptions(4, 4, 3).padding(1).bias(false)),
                                                                      nn::BatchNorm2d(4)})},
                                {"pool", nn::AdaptiveAvgPool2d(1)},
                                {"flatten", nn::Flatten()},
                                {"fc", nn::Linear(4, 10)}});
}
}  // namespace

TEST_CASE("summary: one row per module, output shapes, parameters and multiply-adds per image") {
  nn::Sequential net = small_resnet();
  const nn::ModelSummary s = nn::summary(net, {2, 1, 8, 8});
  REQUIRE(s.rows.size() == 11);
  const std::vector<std::string> names = {"",      "conv",   "bn",     "act",    "block", "block.body",
                                          "block.body.0", "block.body.1", "pool", "flatten", "fc"};
  for (std::size_t i = 0; i < names.size(); ++i) CHECK(s.rows[i].name == names[i]);
  CHECK(s.rows[0].type == "Net");
  CHECK(s.rows[0].output_shape == Shape{2, 10});
  CHECK(s.rows[1].output_shape == Shape{2, 4, 6, 6});
  CHECK(s.rows[1].params == 40);
  CHECK(s.rows[1].mult_adds == 40 * 36);  // (weight + bias) per output position, as torchinfo
  CHECK(s.rows[2].mult_adds == 8);        // BatchNorm: its parameters
  CHECK(s.rows[3].mult_adds == 0);
  CHECK(s.rows[4].container);
  CHECK(s.rows[4].depth == 1);
  CHECK(s.rows[4].index == 4);
  CHECK(s.rows[6].depth == 3);
  CHECK(s.rows[6].params == 144);
  CHECK(s.rows[6].mult_adds == 144 * 36);
  CHECK(s.rows[8].output_shape == Shape{2, 4, 1, 1});
  CHECK(s.rows[9].output_shape == Shape{2, 4});
  CHECK(s.rows[10].mult_adds == 50);
  CHECK(s.total_params == 40 + 8 + 144 + 8 + 50);
  CHECK(s.trainable_params == s.total_params);
  CHECK(s.total_mult_adds == 1440 + 8 + 5184 + 8 + 50);
  // The batch changes the shapes, not the per-image counts.
  CHECK(nn::summary(net, {5, 1, 8, 8}).total_mult_adds == s.total_mult_adds);

  const std::string text = s.str();
  CHECK(text.find("Net") != std::string::npos);
  CHECK(text.find("\u251c\u2500Conv2d (conv): 1-1") != std::string::npos);
  CHECK(text.find("\u2502    \u2502    \u2514\u2500Conv2d (0): 3-1") != std::string::npos);
  CHECK(text.find("Total params: 250") != std::string::npos);
  CHECK(text.find("Total mult-adds per image (M): 0.01") != std::string::npos);
  std::ostringstream os;
  os << s;
  CHECK(os.str() == text);
}

TEST_CASE("summary of the report's CNN: PyTorch's parameter count, and nothing changes") {
  nn::Sequential cnn = models::report_cnn(24, true);
  const auto before = cnn.named_buffers()[0].second->vector().sum();
  const nn::ModelSummary s = nn::summary(cnn, {1, 1, 28, 28});
  CHECK(s.total_params == 110149);  // sum(p.numel() for p in model.parameters()) in PyTorch
  CHECK(s.rows.back().output_shape == Shape{1, 24});
  CHECK(s.str().find("Total params: 110,149") != std::string::npos);
  CHECK(cnn.named_buffers()[0].second->vector().sum() == before);
  CHECK(cnn.is_training());
}

namespace {
// A layer of one's own with a parameter: y = x * scale (per feature). With describe it is a Mul node; without,
// the summary cannot trace it.
struct ScaleNoDescribe : nn::Module {
  Parameter scale{Tensor::full({3}, 2.0f), Tensor({3}), true};
  void forward_into(const Tensor& x, Tensor& out) override { predict_into(x, out); }
  void backward_into(const Tensor& g, Tensor* gi) override {
    if (gi) *gi = g;
  }
  void predict_into(const Tensor& x, Tensor& out) const override {
    out.assign(x);
    for (std::int64_t i = 0; i < out.numel(); ++i) out.data()[i] *= scale.value.data()[i % 3];
  }
  void collect_parameters(const std::string& prefix, NamedParameters& out) override {
    out.emplace_back(prefix + "scale", &scale);
  }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<ScaleNoDescribe>(*this); }
  std::string type_name() const override { return "Scale"; }
};
struct Scale : ScaleNoDescribe {
  std::string describe(graph::Tracer& t, const std::string& x) const override {
    return t.node("Mul", {x, t.parameter("scale", scale.value)});
  }
  std::unique_ptr<nn::Module> clone() const override { return std::make_unique<Scale>(*this); }
};
}  // namespace

TEST_CASE("summary: a layer of one's own gets its row and parameters; its output shape when it describes itself") {
  nn::Sequential net("Net", {{"fc", nn::Linear(4, 3)}, {"scale", Scale()}, {"head", nn::Linear(3, 2)}});
  const nn::ModelSummary s = nn::summary(net, {5, 4});
  REQUIRE(s.rows.size() == 4);
  CHECK(s.rows[2].type == "Scale");
  CHECK(s.rows[2].output_shape == Shape{5, 3});
  CHECK(s.rows[2].params == 3);
  CHECK(s.rows[3].output_shape == Shape{5, 2});
  CHECK(s.total_params == 15 + 3 + 8);
  CHECK(s.note.empty());

  // Without describe: still its row and its parameters; the shapes the trace did not reach are empty, the
  // model's own is predict's, and a note names the layer.
  nn::Sequential opaque("Net", {{"fc", nn::Linear(4, 3)}, {"scale", ScaleNoDescribe()}, {"head", nn::Linear(3, 2)}});
  const nn::ModelSummary o = nn::summary(opaque, {5, 4});
  REQUIRE(o.rows.size() == 4);
  CHECK(o.rows[0].output_shape == Shape{5, 2});
  CHECK(o.rows[1].output_shape == Shape{5, 3});
  CHECK(o.rows[2].params == 3);
  CHECK(o.rows[2].output_shape.empty());
  CHECK(o.rows[3].output_shape.empty());
  CHECK(o.total_params == 26);
  CHECK(scratch::contains(o.note, "'scale' (Scale())"));
  CHECK(scratch::contains(o.note, "override ModuleT::describe"));
  CHECK(scratch::contains(o.str(), "Note: "));
}

namespace bad_input {
TEST_CASE("summary: an input the model cannot take throws the layer's shape error") {
  nn::Sequential net = small_resnet();
  CHECK_THROWS_WITH_AS(nn::summary(net, {1, 3, 8, 8}), doctest::Contains("Conv2d"), shape_error);
}
}  // namespace bad_input
