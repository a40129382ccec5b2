// Conv2d's dilation and groups (depthwise included), the named initialisers (nn/init.hpp) and clip_grad_norm_
// (nn/clip_grad.hpp): against PyTorch's values (tests/fixtures/make_conv_init_fixtures.py), finite
// differences in double, the distributions' statistics, and the errors.
#include <doctest/doctest.h>

#include <cmath>
#include <ember/nn/nn.hpp>
#include <ember/testing/gradcheck.hpp>
#include <limits>
#include <string>
#include <vector>

#include "bad_input.hpp"
#include "fixture.hpp"

using namespace ember;
using TensorD = TensorT<double>;

namespace {

TensorD random_tensor(const Shape& s, std::uint64_t seed) {
  Generator g(seed);
  TensorD t(s);
  for (double& v : t) v = g.normal();
  return t;
}

// Loads the fixture's parameters into the layer, forward + backward in float; the largest relative error of
// the output, the input gradient and every parameter gradient against PyTorch's.
double compare_conv(nn::Conv2d& m, const std::string& name) {
  auto f = fixture::load("layers/" + name + ".txt");
  for (auto& named : m.named_parameters()) {
    const std::string pname = named.first;
    REQUIRE_MESSAGE(f.count(pname), name << ": fixture lacks " << pname);
    named.second->value = f.at(pname).cast<float>();
  }
  m.zero_grad();
  Tensor y = m.forward(f.at("input").cast<float>());
  Tensor dx = m.backward(f.at("grad_output").cast<float>());
  double worst = std::max(fixture::max_rel_error(y, f.at("output")), fixture::max_rel_error(dx, f.at("grad_input")));
  for (auto& [pname, p] : m.named_parameters())
    worst = std::max(worst, fixture::max_rel_error(p->grad, f.at("grad_" + pname)));
  // Inference takes its own path (no kept columns): the same output.
  worst = std::max(worst, fixture::max_rel_error(m.predict(f.at("input").cast<float>()), f.at("output")));
  MESSAGE(name << ": largest relative error against PyTorch " << worst);
  CHECK(worst < 1e-5);
  return worst;
}

double scalar(const std::map<std::string, TensorD>& f, const std::string& key) { return f.at(key)[0]; }

struct Moments {
  double mean = 0, var = 0, max_abs = 0;
};
template <typename T>
Moments moments(const TensorT<T>& t) {
  Moments m;
  for (T v : t) {
    m.mean += static_cast<double>(v);
    m.max_abs = std::max(m.max_abs, std::fabs(static_cast<double>(v)));
  }
  m.mean /= static_cast<double>(t.numel());
  for (T v : t) m.var += (static_cast<double>(v) - m.mean) * (static_cast<double>(v) - m.mean);
  m.var /= static_cast<double>(t.numel() - 1);
  return m;
}

}  // namespace

TEST_CASE("Conv2d with dilation and groups against PyTorch: forward, input, weight and bias gradients") {
  {
    nn::Conv2d m(3, 4, 3, 1, 0, 2);
    compare_conv(m, "conv_dilated");
  }
  {
    nn::Conv2d m(nn::Conv2dOptions(2, 3, {3, 2}).stride(2).padding({2, 1}).dilation({2, 3}));
    compare_conv(m, "conv_dilated_stride_pad");
  }
  {
    nn::Conv2d m(6, 4, 3, 1, 1, 1, 2);
    compare_conv(m, "conv_grouped");
  }
  {
    nn::Conv2d m(6, 9, {3, 2}, {2, 1}, 1, 2, 3, false);
    compare_conv(m, "conv_grouped_dilated_nobias");
  }
  {
    nn::Conv2d m(nn::Conv2dOptions(4, 4, 3).padding(1).groups(4));
    compare_conv(m, "conv_depthwise");
  }
  {
    nn::Conv2d m(3, 6, 3, 2, 1, 1, 3);
    compare_conv(m, "conv_depthwise_multiplier");
  }
}

TEST_CASE("Conv2d with dilation and groups: finite differences in double") {
  struct Case {
    nn::Conv2dOptions options;
    Shape input;
    std::string what;
  };
  const Case cases[] = {
      {nn::Conv2dOptions(2, 3, 3).dilation(2), {2, 2, 7, 8}, "dilation 2"},
      {nn::Conv2dOptions(2, 2, {3, 2}).stride({2, 1}).padding({2, 1}).dilation({2, 3}), {2, 2, 8, 7},
       "dilation (2, 3), stride, padding"},
      {nn::Conv2dOptions(4, 6, 3).padding(1).groups(2), {2, 4, 5, 5}, "groups 2"},
      {nn::Conv2dOptions(3, 3, 3).padding(1).groups(3), {2, 3, 5, 6}, "depthwise"},
      {nn::Conv2dOptions(2, 4, 3).stride(2).padding(2).dilation(2).groups(2).bias(false), {1, 2, 7, 7},
       "groups 2, dilation 2, stride 2, no bias"}};
  for (const Case& c : cases) {
    Generator gen(5);
    nn::Conv2dT<double> m(c.options, gen);
    const auto r = ember::testing::gradcheck(m, random_tensor(c.input, 7), 3);
    MESSAGE("gradcheck Conv2d " << c.what << ": input " << r.input_error << ", worst parameter " << r.worst_param
                                << " " << r.worst_param_error);
    CHECK(r.input_error < 1e-6);
    CHECK(r.worst_param_error < 1e-6);
    CHECK_MESSAGE(r.accumulation_error < 1e-12, "backward must add into parameter gradients");
  }
}

TEST_CASE("Conv2d prints, keeps and converts dilation and groups as PyTorch names them") {
  nn::Conv2d a(6, 9, {3, 2}, {2, 1}, 1, 2, 3, false);
  CHECK(a.repr() ==
        "Conv2d(6, 9, kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 2), groups=3, bias=False)");
  CHECK(nn::Conv2d(nn::Conv2dOptions(4, 4, 3).padding(1).groups(4)).repr() ==
        "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4)");
  CHECK(nn::Conv2d(3, 4, 3, 1, 0, {2, 1}).repr() == "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), dilation=(2, 1))");
  CHECK(a.dilation() == Size2(2, 2));
  CHECK(a.groups() == 3);
  CHECK(a.weight().value.shape() == Shape{9, 2, 3, 2});  // [out, in/groups, kh, kw], as PyTorch
  const nn::Conv2dOptions o = a.options();
  CHECK(o.dilation_ == Size2(2, 2));
  CHECK(o.groups_ == 3);
  CHECK_FALSE(o.bias_);
  // nn::to keeps every setting (the conversion rebuilds the layer from its options).
  nn::Sequential model("Net", {{"conv", nn::Conv2d(4, 4, 3, 1, 2, 2, 4)}});
  auto d = nn::to<double>(model);
  CHECK(d.repr() == model.repr());
  Tensor x({2, 4, 5, 5});
  Generator g(3);
  for (float& v : x) v = static_cast<float>(g.normal());
  const TensorD yd = d.predict(x.cast<double>());
  CHECK(fixture::max_rel_error(model.predict(x), yd) < 1e-5);
}

TEST_CASE("grouped Conv2d's default initialisation uses fan_in = in/groups x kernel area") {
  const auto f = fixture::load("layers/init.txt");
  Generator gen(11);
  nn::Conv2d conv(12, 8, {3, 5}, 1, 0, 1, 4, true, gen);
  const auto [fan_in, fan_out] = nn::init::calculate_fan_in_and_fan_out(conv.weight());
  CHECK(fan_in == static_cast<std::int64_t>(f.at("fan_conv_grouped")[0]));
  CHECK(fan_out == static_cast<std::int64_t>(f.at("fan_conv_grouped")[1]));
  const double w_bound = f.at("bound_conv_grouped")[0], b_bound = f.at("bound_conv_grouped")[1];
  const Moments w = moments(conv.weight().value), b = moments(conv.bias().value);
  CHECK(w.max_abs <= w_bound);
  CHECK(w.max_abs > 0.95 * w_bound);  // 360 draws: the largest is close to the bound
  CHECK(b.max_abs <= b_bound);
  nn::Conv2d depthwise(16, 32, 3, 1, 0, 1, 16, true, gen);
  CHECK(nn::init::calculate_fan_in_and_fan_out(depthwise.weight()).first ==
        static_cast<std::int64_t>(f.at("fan_conv_depthwise")[0]));
  CHECK(nn::init::calculate_fan_in_and_fan_out(depthwise.weight()).second ==
        static_cast<std::int64_t>(f.at("fan_conv_depthwise")[1]));
  CHECK(moments(depthwise.weight().value).max_abs <= f.at("bound_conv_depthwise")[0]);
  nn::Linear fc(20, 7, true, gen);
  CHECK(nn::init::calculate_fan_in_and_fan_out(fc.weight()).first == static_cast<std::int64_t>(f.at("fan_linear")[0]));
  CHECK(nn::init::calculate_fan_in_and_fan_out(fc.weight()).second ==
        static_cast<std::int64_t>(f.at("fan_linear")[1]));
  nn::Conv2d plain(6, 8, {3, 5}, 1, 0, 1, 1, true, gen);
  CHECK(nn::init::calculate_fan_in_and_fan_out(plain.weight()).first == static_cast<std::int64_t>(f.at("fan_conv")[0]));
  CHECK(nn::init::calculate_fan_in_and_fan_out(plain.weight()).second ==
        static_cast<std::int64_t>(f.at("fan_conv")[1]));
}

TEST_CASE("nn::init: calculate_gain equals PyTorch's") {
  const auto f = fixture::load("layers/init.txt");
  for (const char* nl : {"linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"})
    CHECK(nn::init::calculate_gain(nl) == doctest::Approx(scalar(f, std::string("gain_") + nl)).epsilon(1e-15));
  CHECK(nn::init::calculate_gain("leaky_relu", 0.2) ==
        doctest::Approx(scalar(f, "gain_leaky_relu_0.2")).epsilon(1e-15));
  CHECK(nn::init::calculate_gain("leaky_relu", std::sqrt(5.0)) ==
        doctest::Approx(scalar(f, "gain_leaky_relu_sqrt5")).epsilon(1e-15));
  CHECK(nn::init::calculate_gain("relu", 3.0) == doctest::Approx(std::sqrt(2.0)));  // param only for leaky_relu
}

TEST_CASE("nn::init: each distribution's bounds, mean and variance from 90000 seeded draws") {
  // [200, 50, 3, 3]: fan_in 450, fan_out 1800.
  const Shape shape{200, 50, 3, 3};
  const double fan_in = 450, fan_out = 1800;
  Generator gen(123);
  Tensor t(shape);
  auto check_uniform = [&](double bound, const char* what) {
    CAPTURE(what);
    const Moments m = moments(t);
    CHECK(m.max_abs <= bound);
    CHECK(m.max_abs > 0.999 * bound);
    CHECK(std::fabs(m.mean) < 0.02 * bound);  // sd of the mean: bound / sqrt(3 * 90000) ~ 0.002 bound
    CHECK(m.var == doctest::Approx(bound * bound / 3).epsilon(0.03));
  };
  auto check_normal = [&](double sd, const char* what) {
    CAPTURE(what);
    const Moments m = moments(t);
    CHECK(std::fabs(m.mean) < 0.02 * sd);
    CHECK(m.var == doctest::Approx(sd * sd).epsilon(0.03));
    CHECK(m.max_abs > 3.5 * sd);  // tails: 90000 normal draws reach beyond 3.5 sd
  };
  nn::init::kaiming_uniform_(t, 0.0, "fan_in", "leaky_relu", gen);
  check_uniform(std::sqrt(2.0) * std::sqrt(3.0 / fan_in), "kaiming_uniform_ defaults (a = 0: the gain of relu)");
  nn::init::kaiming_uniform_(t, 0.0, "fan_out", "relu", gen);
  check_uniform(std::sqrt(2.0) * std::sqrt(3.0 / fan_out), "kaiming_uniform_ fan_out relu");
  nn::init::kaiming_normal_(t, 0.0, "fan_in", "relu", gen);
  check_normal(std::sqrt(2.0 / fan_in), "kaiming_normal_ fan_in relu");
  nn::init::kaiming_normal_(t, 0.1, "fan_out", "leaky_relu", gen);
  check_normal(std::sqrt(2.0 / 1.01) / std::sqrt(fan_out), "kaiming_normal_ fan_out leaky_relu 0.1");
  nn::init::xavier_uniform_(t, 1.0, gen);
  check_uniform(std::sqrt(6.0 / (fan_in + fan_out)), "xavier_uniform_");
  nn::init::xavier_normal_(t, nn::init::calculate_gain("tanh"), gen);
  check_normal(5.0 / 3 * std::sqrt(2.0 / (fan_in + fan_out)), "xavier_normal_ tanh gain");
  nn::init::uniform_(t, -2.0, 1.0, gen);
  CHECK(moments(t).mean == doctest::Approx(-0.5).epsilon(0.02));
  nn::init::normal_(t, 3.0, 0.5, gen);
  CHECK(moments(t).mean == doctest::Approx(3.0).epsilon(0.01));
  // A seed fixes the draws; a Parameter initialises its value.
  Parameter p{Tensor(shape), Tensor(shape)};
  Generator g1(7), g2(7);
  nn::init::kaiming_normal_(p, 0.0, "fan_in", "relu", g1);
  nn::init::kaiming_normal_(t, 0.0, "fan_in", "relu", g2);
  CHECK(p.value == t);
  CHECK(p.grad == Tensor(shape));
  nn::init::constant_(p, 0.25);
  CHECK(p.value == Tensor(shape, 0.25f));
  nn::init::ones_(p);
  CHECK(p.value == Tensor::ones(shape));
  nn::init::zeros_(t);
  CHECK(t == Tensor(shape));
  Tensor empty({0, 3});
  nn::init::kaiming_uniform_(empty);  // no-op, as PyTorch
}

TEST_CASE("clip_grad_norm_ against PyTorch: the total norm and the clipped gradients, norms 1, 2, 3, inf") {
  const auto f = fixture::load("training/clip_grad_norm.txt");
  double worst = 0;
  for (const char* name : {"l2", "inf", "l1", "l3", "l2_unclipped", "l2_zero"}) {
    CAPTURE(name);
    const std::string n = name;
    std::vector<Parameter> params;
    for (int i = 0; i < 3; ++i) {
      const TensorD g = f.at("grad" + std::to_string(i));
      params.push_back({Tensor(g.shape()), g.cast<float>()});
    }
    std::vector<Parameter*> ptrs{&params[0], &params[1], &params[2]};
    const TensorD& settings = f.at(n + "_settings");
    const double norm_type = settings[1] < 0 ? std::numeric_limits<double>::infinity() : settings[1];
    const double total = nn::clip_grad_norm_(ptrs, settings[0], norm_type);
    const double want = scalar(f, n + "_total");
    worst = std::max(worst, std::fabs(total - want) / want);
    CHECK(total == doctest::Approx(want).epsilon(1e-6));
    for (int i = 0; i < 3; ++i)
      worst = std::max(worst, fixture::max_rel_error(params[static_cast<std::size_t>(i)].grad,
                                                     f.at(n + "_grad" + std::to_string(i))));
  }
  MESSAGE("clip_grad_norm_: largest relative error against PyTorch " << worst);
  CHECK(worst < 1e-6);
  // One Parameter as well as a list; no parameters: norm 0.
  Parameter one{Tensor({2}), Tensor::from({2}, {3.0f, 4.0f})};
  CHECK(nn::clip_grad_norm_(one, 1.0) == doctest::Approx(5.0));
  CHECK(one.grad[0] == doctest::Approx(0.6f).epsilon(1e-6));
  CHECK(nn::clip_grad_norm_(std::vector<Parameter*>{}, 1.0) == 0.0);
}

namespace bad_input {

TEST_CASE("Conv2d: dilation and groups below 1, and channels not divisible by groups, are errors naming the layer") {
  CHECK_THROWS_WITH_AS(nn::Conv2d(3, 8, 3, 1, 1, 0),
                       doctest::Contains("Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
                                         "dilation=(0, 0)): "),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Conv2d(3, 8, 3, 1, 1, {1, -1}), doctest::Contains("dilation=(1, -1)"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Conv2d(3, 8, 3, 1, 1, 1, 0), doctest::Contains("groups"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Conv2d(nn::Conv2dOptions(4, 6, 3).groups(-2)), doctest::Contains("Conv2d"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Conv2d(3, 6, 3, 1, 0, 1, 2),
                       doctest::Contains("in_channels 3 and out_channels 6 must both be divisible by groups 2"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::Conv2d(4, 6, 3, 1, 0, 1, 4), doctest::Contains("Conv2d(4, 6"), std::invalid_argument);
  // The dilated kernel spans 5 x 5: a 4 x 4 input is too small, and the message says why.
  nn::Conv2d dilated(1, 1, 3, 1, 0, 2);
  CHECK_THROWS_WITH_AS(dilated.forward(Tensor({1, 1, 4, 4})), doctest::Contains("(dilated: (5, 5))"),
                       ember::shape_error);
  CHECK_NOTHROW(dilated.forward(Tensor({1, 1, 5, 5})));
  nn::Conv2d grouped(4, 4, 3, 1, 0, 1, 2);
  CHECK_THROWS_WITH_AS(grouped.forward(Tensor({1, 2, 5, 5})), doctest::Contains("[N, 4, H, W]"), ember::shape_error);
}

TEST_CASE("nn::init and clip_grad_norm_: bad arguments are errors that say what was expected") {
  Tensor w({4, 3});
  CHECK_THROWS_WITH_AS(nn::init::kaiming_uniform_(w, 0.0, "fan_avg"), doctest::Contains("'fan_in' or 'fan_out'"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::init::kaiming_normal_(w, 0.0, "fan_in", "softplus"),
                       doctest::Contains("unsupported nonlinearity 'softplus'"), std::invalid_argument);
  Tensor v({5});
  CHECK_THROWS_WITH_AS(nn::init::xavier_uniform_(v), doctest::Contains("at least 2 dimensions, got [5]"),
                       ember::shape_error);
  Parameter p{Tensor({2}), Tensor::from({2}, {1.0f, std::numeric_limits<float>::quiet_NaN()})};
  std::vector<Parameter*> ps{&p};
  CHECK_THROWS_WITH_AS(nn::clip_grad_norm_(ps, 1.0, 2.0, true), doctest::Contains("non-finite"),
                       std::runtime_error);
  CHECK(std::isnan(nn::clip_grad_norm_(ps, 1.0)));  // as PyTorch: NaN in, NaN out, no error by default
  CHECK_THROWS_WITH_AS(nn::clip_grad_norm_(ps, 1.0, 0.0), doctest::Contains("norm_type"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(nn::clip_grad_norm_(ps, -1.0), doctest::Contains("max_norm"), std::invalid_argument);
}

}  // namespace bad_input
