// Quantized inference on graphs: graph::quantize_int8 (calibration, per-channel int8 weights, first and last
// layers kept in float), the Plan running int8 and bfloat16 against the float plan on the report's MLP and
// CNN, and the QDQ export accepted by onnx.checker.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ember/graph/optimize.hpp>
#include <ember/graph/plan.hpp>
#include <ember/graph/quantize.hpp>
#include <ember/graph/trace.hpp>
#include <ember/io/onnx.hpp>
#include <ember/kernels/isa.hpp>
#include <ember/models/report.hpp>
#include <ember/nn/nn.hpp>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "scratch.hpp"

using namespace ember;

namespace {

struct Agreement {
  double relative = 0;  // max |a - b| / max |b|
  double argmax = 0;    // fraction of rows with the same argmax
};

Agreement compare(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  Agreement r;
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - b[i]));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  r.relative = diff / std::max(scale, 1e-30);
  const std::int64_t rows = a.size(0), cols = a.numel() / rows;
  int same = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* pa = a.data() + i * cols;
    const float* pb = b.data() + i * cols;
    same += std::max_element(pa, pa + cols) - pa == std::max_element(pb, pb + cols) - pb;
  }
  r.argmax = double(same) / double(rows);
  return r;
}

// The report's model in eval mode, its BatchNorms' running statistics moved away from (0, 1).
nn::Sequential report_model(bool cnn) {
  manual_seed(cnn ? 3 : 2);
  auto m = cnn ? models::report_cnn(24, false) : models::report_mlp(24, false);
  m.train();
  for (std::uint64_t s = 0; s < 3; ++s) m.forward(fixture::normal_tensor({16, 1, 28, 28}, 100 + s));
  m.eval();
  return m;
}

int quantized_nodes(const graph::Graph& g) {
  int k = 0;
  for (const auto& n : g.nodes()) k += graph::is_quantized(n);
  return k;
}

}  // namespace

TEST_CASE("quantize_int8 marks every Conv and Gemm, with per-channel s8 weights and u8 input parameters") {
  const auto model = report_model(true);
  const graph::Graph g = graph::trace(model, {2, 1, 28, 28});
  const std::vector<Tensor> calibration = {fixture::normal_tensor({32, 1, 28, 28}, 1), fixture::normal_tensor({32, 1, 28, 28}, 2)};
  const graph::Graph q = graph::quantize_int8(g, calibration);
  CHECK(quantized_nodes(q) == 5);
  for (const auto& n : q.nodes()) {
    if (!graph::is_quantized(n)) continue;
    CAPTURE(n.name);
    const Tensor& w = q.initializer(n.inputs[1]);
    const auto& scales = n.attributes.at(graph::quant_attr::kWeightScales).floats;
    REQUIRE(static_cast<std::int64_t>(scales.size()) == w.size(0));
    // Symmetric per channel: every row reaches +-127 and holds integers.
    const std::int64_t per = w.numel() / w.size(0);
    bool integers = true, full = true;
    for (std::int64_t r = 0; r < w.size(0); ++r) {
      float absmax = 0;
      for (std::int64_t k = 0; k < per; ++k) {
        const float v = w[r * per + k];
        integers = integers && v == std::nearbyint(v) && std::abs(v) <= 127;
        absmax = std::max(absmax, std::abs(v));
      }
      full = full && absmax == 127;
    }
    CHECK(integers);
    CHECK(full);
    const double zp = double(n.get_int(graph::quant_attr::kInputZeroPoint, -1));
    CHECK(zp >= 0);
    CHECK(zp <= 255);
  }
  // The first layer sees the raw image (normal values: a zero point near the middle).
  const auto& first = q.nodes()[0];
  REQUIRE(graph::is_quantized(first));
  CHECK(first.get_int(graph::quant_attr::kInputZeroPoint, 0) > 64);
  const auto kept = graph::quantize_int8(g, calibration, {graph::Calibration::MinMax, 99.99, true, true});
  CHECK(quantized_nodes(kept) == 3);
  CHECK(!graph::is_quantized(kept.nodes()[0]));
  // A percentile range is narrower than min-max on normal data.
  const auto pct = graph::quantize_int8(g, calibration, {graph::Calibration::Percentile, 99.0});
  CHECK(pct.nodes()[0].get_float(graph::quant_attr::kInputScale, 0) <
        q.nodes()[0].get_float(graph::quant_attr::kInputScale, 0));
  CHECK_THROWS_WITH_AS(graph::quantize_int8(g, {}), doctest::Contains("calibration"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(graph::quantize_int8(g, calibration, {graph::Calibration::Percentile, 20.0}),
                       doctest::Contains("percentile"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(graph::quantize_int8(q, calibration), doctest::Contains("quantized already"),
                       std::invalid_argument);
}

TEST_CASE("Plan runs the quantized report models and bf16 close to float, on every instruction set") {
  for (bool cnn : {false, true}) {
    CAPTURE(cnn);
    const auto model = report_model(cnn);
    const Shape shape{200, 1, 28, 28};
    const graph::Graph g = graph::trace(model, shape);
    const Tensor x = fixture::normal_tensor(shape, 7);
    const Tensor expected = graph::Plan(g, shape).run(x);
    const graph::Graph q = graph::quantize_int8(g, {fixture::normal_tensor({100, 1, 28, 28}, 8)});
    CHECK_THROWS_WITH_AS(graph::Plan(g, shape, {0, graph::Precision::Int8}), doctest::Contains("quantize first"),
                         std::invalid_argument);
    const graph::Plan int8(q, shape, {0, graph::Precision::Int8});
    const graph::Plan bf16(g, shape, {0, graph::Precision::BFloat16});
    const kernels::Isa saved = kernels::active_isa();
    Tensor first_int8, first_bf16;
    for (kernels::Isa isa : {kernels::Isa::portable, kernels::Isa::avx2, kernels::Isa::avx512}) {
      if (!kernels::isa_supported(isa)) continue;
      kernels::set_isa(isa);
      const std::string isa_name = kernels::isa_name(isa);
      CAPTURE(isa_name);
      const Tensor yq = int8.run(x), yb = bf16.run(x);
      const Agreement aq = compare(yq, expected), ab = compare(yb, expected);
      MESSAGE((cnn ? "CNN" : "MLP") << " on " << std::string(kernels::isa_name(isa)) << ": int8 max relative error "
                                    << aq.relative << ", argmax agreement " << aq.argmax << "; bf16 "
                                    << ab.relative << ", " << ab.argmax);
      CHECK(aq.relative < 0.05);
      CHECK(aq.argmax >= 0.9);
      CHECK(ab.relative < 0.02);
      CHECK(ab.argmax >= 0.95);
      CHECK(aq.relative > 0);  // it did run in int8
      // Integers are exact and bf16 sums run in one order: every path gives the same bits.
      if (first_int8.numel() == 0) {
        first_int8 = yq;
        first_bf16 = yb;
      } else {
        CHECK(std::equal(yq.begin(), yq.end(), first_int8.begin()));
        CHECK(std::equal(yb.begin(), yb.end(), first_bf16.begin()));
      }
    }
    kernels::set_isa(saved);
    // A lone sample (batch 1, the latency case) gives the rows of the batch.
    const graph::Plan one(q, {1, 1, 28, 28});
    Tensor x0({1, 1, 28, 28});
    std::copy(x.data(), x.data() + 784, x0.data());
    const Tensor y0 = one.run(x0);
    CHECK(std::equal(y0.begin(), y0.end(), first_int8.begin()));
  }
}

TEST_CASE("export_onnx writes a quantized graph as QuantizeLinear/DequantizeLinear that onnx.checker accepts") {
  const auto model = report_model(true);
  const Shape shape{4, 1, 28, 28};
  const graph::Graph q = graph::quantize_int8(graph::trace(model, shape), {fixture::normal_tensor({16, 1, 28, 28}, 9)},
                                              {graph::Calibration::MinMax, 99.99, false, true});
  const format::OnnxModel onnx = io::to_onnx(q);
  int quantize = 0, dequantize = 0, int8_weights = 0;
  for (const auto& n : onnx.graph.nodes) {
    quantize += n.op_type == "QuantizeLinear";
    dequantize += n.op_type == "DequantizeLinear";
    for (const auto& a : n.attributes) CHECK(a.name.rfind("ember_", 0) != 0);
  }
  for (const auto& t : onnx.graph.initializers) int8_weights += static_cast<int>(t.data_type) == 3 && t.dims.size() > 1;
  CHECK(quantize == 4);
  CHECK(dequantize == 8);
  CHECK(int8_weights == 4);
  const std::string path = scratch::path("quantize", "cnn_int8.onnx");
  io::export_onnx(q, path);
  const bool ok = std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0;
  if (!scratch::prerequisite(ok, "/usr/bin/python3 cannot import onnx (Debian: python3-onnx)")) return;
  CHECK(std::system(("/usr/bin/python3 -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), "
                     "full_check=True)' " + path).c_str()) == 0);
}
