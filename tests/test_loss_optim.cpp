// CrossEntropyLoss, NLLLoss and SGD against PyTorch's numbers (fixtures/training/*.txt, written by
// fixtures/make_training_fixtures.py), a finite-difference check of the loss gradient, argument checks, and
// a check that a warmed-up loss + optimiser step allocates nothing.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ember/loss/bce_with_logits.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/loss/mse.hpp>
#include <ember/core/random.hpp>
#include <ember/optim/sgd.hpp>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "bad_input.hpp"
#include "fixture.hpp"

using ember::Shape;
using ember::TensorT;

namespace {

struct Record {
  Shape shape;
  std::vector<double> values;
};

std::map<std::string, Record> read_fixture(const std::string& name) {
  const std::string path = std::string(EMBER_FIXTURE_DIR) + "/training/" + name;
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::map<std::string, Record> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream head(line);
    std::string key;
    int ndim = 0;
    head >> key >> ndim;
    Record r;
    for (int i = 0; i < ndim; ++i) {
      std::int64_t d = 0;
      head >> d;
      r.shape.push_back(d);
    }
    REQUIRE(std::getline(in, line));
    std::istringstream body(line);
    std::string tok;
    while (body >> tok) r.values.push_back(std::strtod(tok.c_str(), nullptr));
    REQUIRE(static_cast<std::int64_t>(r.values.size()) == ember::shape_numel(r.shape));
    out[key] = std::move(r);
  }
  return out;
}

template <typename T>
TensorT<T> to_tensor(const Record& r) {
  std::vector<T> v(r.values.begin(), r.values.end());
  return TensorT<T>::from(r.shape, v);
}

std::vector<std::int64_t> to_targets(const Record& r) {
  std::vector<std::int64_t> t;
  for (double v : r.values) t.push_back(static_cast<std::int64_t>(v));
  return t;
}

// Tolerances of the brief: 1e-6 absolute in double; 1e-5 relative (absolute below 1) in float.
template <typename T>
double tolerance(double ref) {
  return std::is_same<T, double>::value ? 1e-6 : 1e-5 * std::max(1.0, std::abs(ref));
}

template <typename T>
double max_error(const TensorT<T>& got, const Record& ref) {
  REQUIRE(got.shape() == ref.shape);
  double worst = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double e = std::abs(static_cast<double>(got[i]) - ref.values[static_cast<std::size_t>(i)]);
    CHECK_MESSAGE(e <= tolerance<T>(ref.values[static_cast<std::size_t>(i)]), "element " << i << ": got " << got[i]
                                                                                        << ", want " << ref.values[static_cast<std::size_t>(i)]);
    worst = std::max(worst, e);
  }
  return worst;
}

template <typename T>
void check_losses_against_pytorch() {
  const auto fx = read_fixture("losses.txt");
  double worst_loss = 0, worst_grad = 0;
  int cases = 0;
  for (int k = 0; fx.count("ce" + std::to_string(k) + ".logits"); ++k, ++cases) {
    const std::string n = "ce" + std::to_string(k);
    CAPTURE(n);
    ember::nn::CrossEntropyLossT<T> loss(fx.at(n + ".label_smoothing").values[0]);
    const T got = loss.forward(to_tensor<T>(fx.at(n + ".logits")), to_targets(fx.at(n + ".target")));
    const double want = fx.at(n + ".loss").values[0];
    CHECK(std::abs(got - want) <= tolerance<T>(want));
    worst_loss = std::max(worst_loss, std::abs(static_cast<double>(got) - want));
    worst_grad = std::max(worst_grad, max_error(loss.backward(), fx.at(n + ".grad")));
  }
  CHECK(cases >= 12);
  for (int k = 0; fx.count("nll" + std::to_string(k) + ".input"); ++k) {
    const std::string n = "nll" + std::to_string(k);
    ember::nn::NLLLossT<T> loss;
    const T got = loss.forward(to_tensor<T>(fx.at(n + ".input")), to_targets(fx.at(n + ".target")));
    const double want = fx.at(n + ".loss").values[0];
    CHECK(std::abs(got - want) <= tolerance<T>(want));
    worst_loss = std::max(worst_loss, std::abs(static_cast<double>(got) - want));
    worst_grad = std::max(worst_grad, max_error(loss.backward(), fx.at(n + ".grad")));
  }
  MESSAGE(std::string(std::is_same<T, double>::value ? "double" : "float") << " losses vs PyTorch: max |loss error| "
                                                                 << worst_loss << ", max |grad error| " << worst_grad);
}

template <typename T>
void check_sgd_against_pytorch() {
  const auto fx = read_fixture("sgd.txt");
  const int configs = static_cast<int>(fx.at("configs").values[0]);
  double worst = 0;
  for (int c = 0; c < configs; ++c) {
    const std::string n = "sgd" + std::to_string(c);
    CAPTURE(n);
    const auto& o = fx.at(n + ".options").values;
    ember::optim::SGDOptions opts{o[0], o[1], o[2], o[3], o[4] != 0.0};
    opts.maximize = o[5] != 0.0;
    ember::nn::ParameterT<T> p0{to_tensor<T>(fx.at("p0.init")), TensorT<T>(fx.at("p0.init").shape)};
    ember::nn::ParameterT<T> p1{to_tensor<T>(fx.at("p1.init")), TensorT<T>(fx.at("p1.init").shape)};
    ember::optim::SGDT<T> sgd({&p0, &p1}, opts);
    for (int s = 1; s <= 5; ++s) {
      sgd.zero_grad();
      p0.grad = to_tensor<T>(fx.at("p0.grad" + std::to_string(s)));
      p1.grad = to_tensor<T>(fx.at("p1.grad" + std::to_string(s)));
      sgd.step();
      worst = std::max(worst, max_error(p0.value, fx.at(n + ".p0.step" + std::to_string(s))));
      worst = std::max(worst, max_error(p1.value, fx.at(n + ".p1.step" + std::to_string(s))));
    }
    if (o[1] != 0.0) {
      REQUIRE(sgd.state().has_momentum_buffer[0]);
      worst = std::max(worst, max_error(sgd.state().momentum_buffers[0], fx.at(n + ".p0.buf")));
      worst = std::max(worst, max_error(sgd.state().momentum_buffers[1], fx.at(n + ".p1.buf")));
    } else {
      CHECK_FALSE(sgd.state().has_momentum_buffer[0]);
    }
  }
  MESSAGE(std::string(std::is_same<T, double>::value ? "double" : "float") << " SGD vs PyTorch over " << configs
                                                                 << " option sets x 5 steps: max |error| " << worst);
}

}  // namespace

TEST_CASE("CrossEntropyLoss and NLLLoss match PyTorch (double and float)") {
  check_losses_against_pytorch<double>();
  check_losses_against_pytorch<float>();
}

TEST_CASE("CrossEntropyLoss stays finite for huge logits, where a naive softmax overflows") {
  ember::nn::CrossEntropyLoss loss;
  const auto logits = ember::Tensor::from({2, 3}, {1e30f, 0.0f, -1e30f, 3e38f, 3e38f, 0.0f});
  const float l = loss.forward(logits, {0, 1});
  CHECK(std::isfinite(l));
  CHECK(l == doctest::Approx(std::log(2.0f) / 2));
  for (float g : loss.backward()) CHECK(std::isfinite(g));
}

TEST_CASE("CrossEntropyLoss gradient matches central finite differences (double)") {
  ember::Generator gen(7);
  for (double smoothing : {0.0, 0.2}) {
    CAPTURE(smoothing);
    TensorT<double> x({5, 4});
    for (auto& v : x) v = gen.normal() * 3;
    const std::vector<std::int64_t> target{3, 0, 1, 1, 2};
    ember::nn::CrossEntropyLossT<double> loss(smoothing);
    loss.forward(x, target);
    const TensorT<double> analytic = loss.backward();
    const double h = 1e-6;
    double worst = 0;
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      TensorT<double> xp = x, xm = x;
      xp[i] += h;
      xm[i] -= h;
      const double numeric = (loss.forward(xp, target) - loss.forward(xm, target)) / (2 * h);
      worst = std::max(worst, std::abs(numeric - analytic[i]));
      CHECK(numeric == doctest::Approx(analytic[i]).epsilon(1e-6).scale(1.0));
    }
    MESSAGE("label_smoothing " << smoothing << ": max |finite difference - backward| " << worst);
  }
}

TEST_CASE("losses reject wrong shapes, batch sizes, targets and an empty batch, naming the loss") {
  ember::nn::CrossEntropyLoss ce;
  ember::nn::NLLLoss nll;
  const ember::Tensor x({2, 3});
  CHECK_THROWS_AS(ce.forward(ember::Tensor({6}), {0}), ember::shape_error);
  CHECK_THROWS_AS(ce.forward(x, {0}), ember::shape_error);
  CHECK_THROWS_AS(ce.forward(x, {0, 1, 2}), ember::shape_error);
  CHECK_THROWS_AS(ce.forward(ember::Tensor({0, 3}), {}), ember::shape_error);
  CHECK_THROWS_AS(ce.forward(x, {0, 3}), std::invalid_argument);
  CHECK_THROWS_AS(ce.forward(x, {-1, 0}), std::invalid_argument);
  CHECK_THROWS_AS(nll.forward(x, {0, 5}), std::invalid_argument);
  CHECK_THROWS_AS(nll.forward(x, {0, -100}), std::invalid_argument);  // no ignore_index in NLLLoss
  CHECK_THROWS_AS(nll.forward(ember::Tensor({2, 3, 1}), {0, 1}), ember::shape_error);
  CHECK_THROWS_AS(ember::nn::CrossEntropyLoss(1.5), std::invalid_argument);
  CHECK_THROWS_AS(ember::nn::CrossEntropyLoss(-0.1), std::invalid_argument);
  CHECK_THROWS_AS(ember::nn::CrossEntropyLoss().backward(), std::logic_error);
  try {
    ce.forward(x, {0});
    FAIL("no throw");
  } catch (const ember::shape_error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("CrossEntropyLoss") != std::string::npos);
    CHECK(msg.find("expected 2 targets") != std::string::npos);
    CHECK(msg.find("got 1") != std::string::npos);
  }
  try {
    ce.forward(x, {0, 7});
    FAIL("no throw");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    CHECK(msg.find("target 7") != std::string::npos);
    CHECK(msg.find("3 classes") != std::string::npos);
  }
}

namespace {

using LossFixture = std::map<std::string, TensorT<double>>;

const LossFixture& loss_fixture() {
  static const LossFixture f = fixture::load("training/loss_options.txt");
  return f;
}

template <typename T>
TensorT<T> to(const TensorT<double>& t) {
  TensorT<T> out(t.shape());
  for (std::int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<T>(t[i]);
  return out;
}

std::vector<double> values(const TensorT<double>& t) { return std::vector<double>(t.begin(), t.end()); }

// The loss of fixture case c, built with its options; returns PyTorch's output and input gradient (which the
// fixture computed with the upstream gradient c.upstream).
template <typename T>
struct LossRun {
  TensorT<T> out, grad;
};

template <typename T, typename Loss, typename Target>
LossRun<T> run_loss(Loss& loss, const TensorT<T>& x, const Target& target, const TensorT<double>& upstream,
                    ember::loss::Reduction reduction) {
  LossRun<T> r;
  const T l = loss.forward(x, target);
  if (reduction == ember::loss::Reduction::none) {
    r.out = loss.losses();
    loss.backward_into(r.grad, to<T>(upstream));
  } else {
    r.out = TensorT<T>(ember::Shape{});
    r.out[0] = l;
    loss.backward_into(r.grad);
  }
  return r;
}

template <typename T>
LossRun<T> run_case(const std::string& c) {
  const LossFixture& fx = loss_fixture();
  const auto reduction = static_cast<ember::loss::Reduction>(static_cast<int>(fx.at(c + ".reduction")[0]));
  const int kind = static_cast<int>(fx.at(c + ".kind")[0]);
  const TensorT<T> x = to<T>(fx.at(c + ".input"));
  const TensorT<double>& upstream = fx.at(c + ".upstream");
  auto opt = [&](const std::string& key) {
    return fx.count(c + "." + key) ? values(fx.at(c + "." + key)) : std::vector<double>{};
  };
  if (kind == 0) {
    std::vector<std::int64_t> target;
    for (double v : fx.at(c + ".target")) target.push_back(static_cast<std::int64_t>(v));
    ember::loss::CrossEntropyLossT<T> loss({opt("weight"), static_cast<std::int64_t>(fx.at(c + ".ignore_index")[0]),
                                            reduction, fx.at(c + ".label_smoothing")[0]});
    return run_loss(loss, x, target, upstream, reduction);
  }
  const TensorT<float> target = to<float>(fx.at(c + ".target"));
  if (kind == 3) {  // cross-entropy with class probabilities
    ember::loss::CrossEntropyLossT<T> loss({opt("weight"), -100, reduction, fx.at(c + ".label_smoothing")[0]});
    return run_loss(loss, x, target, upstream, reduction);
  }
  if (kind == 1) {
    ember::loss::BCEWithLogitsLossT<T> loss({opt("weight"), reduction, opt("pos_weight")});
    return run_loss(loss, x, target, upstream, reduction);
  }
  ember::loss::MSELossT<T> loss(reduction);
  return run_loss(loss, x, target, upstream, reduction);
}

// Largest error of every case against PyTorch, per loss kind: forward and gradient.
template <typename T>
void check_new_losses_against_pytorch() {
  const LossFixture& fx = loss_fixture();
  const int cases = static_cast<int>(fx.at("cases")[0]);
  const char* kinds[] = {"CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "CrossEntropyLoss (probabilities)"};
  double worst_out[4] = {0, 0, 0, 0}, worst_grad[4] = {0, 0, 0, 0};
  const std::string suffix = std::is_same<T, float>::value ? "32" : "64";
  const double tol = std::is_same<T, float>::value ? 2e-6 : 1e-13;
  for (int i = 0; i < cases; ++i) {
    const std::string c = "case" + std::to_string(i);
    CAPTURE(c);
    const int kind = static_cast<int>(fx.at(c + ".kind")[0]);
    const LossRun<T> r = run_case<T>(c);
    const double eo = fixture::max_rel_error(r.out, fx.at(c + ".loss" + suffix));
    const double eg = fixture::max_rel_error(r.grad, fx.at(c + ".grad" + suffix));
    CHECK(eo <= tol);
    CHECK(eg <= tol);
    worst_out[kind] = std::max(worst_out[kind], eo);
    worst_grad[kind] = std::max(worst_grad[kind], eg);
  }
  CHECK(worst_out[3] > 0);  // the probability cases are in the fixture
  for (int k = 0; k < 4; ++k) {
    const std::string what = std::string(kinds[k]) + (suffix == "32" ? " float" : " double");
    MESSAGE(what << ": largest relative error against PyTorch, loss " << worst_out[k] << ", gradient "
                 << worst_grad[k]);
  }
}

// Central differences of the summed (upstream-weighted) output against backward_into, in double.
template <typename Loss, typename Target>
double finite_difference_error(Loss& loss, const TensorT<double>& x, const Target& target, bool none) {
  ember::Generator gen(5);
  TensorT<double> upstream;
  auto weighted = [&](const TensorT<double>& in) {
    const double l = loss.forward(in, target);
    if (!none) return l;
    double s = 0;
    for (std::int64_t i = 0; i < loss.losses().numel(); ++i) s += loss.losses()[i] * upstream[i];
    return s;
  };
  loss.forward(x, target);
  upstream = TensorT<double>(loss.losses().shape());
  for (auto& u : upstream) u = gen.normal();
  TensorT<double> analytic;
  if (none)
    loss.backward_into(analytic, upstream);
  else
    loss.backward_into(analytic);
  const double h = 1e-6;
  double worst = 0;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    TensorT<double> xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const double numeric = (weighted(xp) - weighted(xm)) / (2 * h);
    worst = std::max(worst, std::abs(numeric - analytic[i]) / std::max(1.0, std::abs(analytic[i])));
  }
  return worst;
}

}  // namespace

TEST_CASE("CrossEntropyLoss (weight, ignore_index, reduction), BCEWithLogitsLoss and MSELoss match PyTorch") {
  check_new_losses_against_pytorch<float>();
  check_new_losses_against_pytorch<double>();
}

TEST_CASE("the new losses' gradients match central finite differences (double), every reduction") {
  using ember::loss::Reduction;
  ember::Generator gen(21);
  TensorT<double> x({5, 4}), y({5, 4});
  for (auto& v : x) v = gen.normal() * 3;
  for (auto& v : y) v = gen.uniform(0, 1);
  const std::vector<std::int64_t> classes{3, -100, 1, 0, 2};
  double worst = 0;
  for (Reduction r : {Reduction::none, Reduction::mean, Reduction::sum}) {
    CAPTURE(ember::loss::reduction_name(r));
    const bool none = r == Reduction::none;
    ember::loss::CrossEntropyLossT<double> ce({{0.5, 2.0, 1.0, 0.3}, -100, r, 0.15});
    ember::loss::BCEWithLogitsLossT<double> bce({{1.0, 0.5, 2.0, 1.5}, r, {2.0, 1.0, 0.5, 3.0}});
    ember::loss::MSELossT<double> mse(r);
    // Class probabilities (rows of y normalised), weighted and smoothed.
    TensorT<double> probs = y;
    for (std::int64_t i = 0; i < 5; ++i) {
      double s = 0;
      for (std::int64_t j = 0; j < 4; ++j) s += probs[i * 4 + j];
      for (std::int64_t j = 0; j < 4; ++j) probs[i * 4 + j] /= s;
    }
    ember::loss::CrossEntropyLossT<double> soft({{0.5, 2.0, 1.0, 0.3}, -100, r, 0.15});
    const double e[4] = {finite_difference_error(ce, x, classes, none), finite_difference_error(bce, x, y, none),
                         finite_difference_error(mse, x, y, none), finite_difference_error(soft, x, probs, none)};
    for (double v : e) {
      CHECK(v < 1e-7);
      worst = std::max(worst, v);
    }
  }
  MESSAGE("max |finite difference - backward| (relative above 1): " << worst);
}

TEST_CASE("CrossEntropyLoss with class probabilities: one-hot rows give the index loss; shapes are checked") {
  ember::nn::CrossEntropyLoss index_loss(0.1), prob_loss(0.1);
  const auto logits = ember::Tensor::from({3, 4}, {1, 2, 3, 4, -1, 0, 5, 2, 0.5f, 0.5f, -2, 1});
  const auto onehot = ember::Tensor::from({3, 4}, {0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1});
  CHECK(prob_loss.forward(logits, onehot) == doctest::Approx(index_loss.forward(logits, {2, 0, 3})).epsilon(1e-6));
  const ember::Tensor g1 = prob_loss.backward(), g2 = index_loss.backward();
  for (std::int64_t i = 0; i < g1.numel(); ++i) CHECK(g1[i] == doctest::Approx(g2[i]).epsilon(1e-5));
  // The same loss object switches between target kinds call by call.
  CHECK(prob_loss.forward(logits, {2, 0, 3}) == doctest::Approx(index_loss.forward(logits, {2, 0, 3})));
  CHECK_THROWS_AS(prob_loss.forward(logits, ember::Tensor({3, 3})), ember::shape_error);
  ember::Tensor nan_target = onehot;
  nan_target[1] = std::nanf("");
  CHECK_THROWS_AS(prob_loss.forward(logits, nan_target), std::invalid_argument);
}

TEST_CASE("CrossEntropyLoss: an all-ignored batch has mean NaN and a zero gradient, as PyTorch") {
  ember::nn::CrossEntropyLoss loss(ember::nn::CrossEntropyLossOptions{{1.0, 2.0, 3.0}, -100, {}, 0.1});
  const auto logits = ember::Tensor::from({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(std::isnan(loss.forward(logits, {-100, -100})));
  for (float g : loss.backward()) CHECK(g == 0.0f);
  ember::nn::CrossEntropyLoss sum(ember::nn::CrossEntropyLossOptions{{}, -100, ember::nn::Reduction::sum});
  CHECK(sum.forward(logits, {-100, -100}) == 0.0f);
  // ignore_index may name a real class; its rows count for nothing.
  ember::nn::CrossEntropyLoss skip1(ember::nn::CrossEntropyLossOptions{{}, 1});
  ember::nn::CrossEntropyLoss plain;
  const auto one = ember::Tensor::from({1, 3}, {1, 2, 3});
  CHECK(skip1.forward(logits, {0, 1}) == plain.forward(one, {0}));
}

TEST_CASE("BCEWithLogitsLoss is exact for logits of +-100, where log(sigmoid) overflows") {
  ember::nn::BCEWithLogitsLoss loss;
  const auto x = ember::Tensor::from({2, 2}, {100, -100, 100, -100});
  const auto y = ember::Tensor::from({2, 2}, {1, 0, 0, 1});
  CHECK(loss.forward(x, y) == doctest::Approx(50.0));  // two elements of loss 100, two of ~0
  ember::Tensor grad;
  loss.backward_into(grad);
  for (float g : grad) CHECK(std::isfinite(g));
}

TEST_CASE("SGD matches torch.optim.SGD step by step (double and float)") {
  check_sgd_against_pytorch<double>();
  check_sgd_against_pytorch<float>();
}

TEST_CASE("SGD validates its options as PyTorch does") {
  ember::nn::Parameter p{ember::Tensor({2}), ember::Tensor({2})};
  using ember::optim::SGD;
  using ember::optim::SGDOptions;
  CHECK_NOTHROW(SGD({&p}, SGDOptions{0.1}));
  CHECK_NOTHROW(SGD({&p}, SGDOptions{0.1, 0.9, 0.0, 0.0, true}));
  CHECK_THROWS_AS(SGD({&p}, SGDOptions{-0.1}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({&p}, SGDOptions{0.1, -0.5}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({&p}, SGDOptions{0.1, 0.9, 0.0, -1e-4}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({&p}, SGDOptions{0.1, 0.0, 0.0, 0.0, true}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({&p}, SGDOptions{0.1, 0.9, 0.1, 0.0, true}), std::invalid_argument);
  CHECK_THROWS_AS(SGD({nullptr}, SGDOptions{0.1}), std::invalid_argument);
  SGD sgd({&p}, SGDOptions{0.1, 0.9});
  CHECK_THROWS_AS(sgd.set_lr(-1.0), std::invalid_argument);
  sgd.set_lr(0.01);
  CHECK(sgd.options().lr == 0.01);
  CHECK_THROWS_AS(sgd.set_momentum_buffer(0, ember::Tensor({3})), ember::shape_error);
  CHECK_THROWS_AS(sgd.set_momentum_buffer(1, ember::Tensor({2})), std::out_of_range);
  p.grad = ember::Tensor({3});
  CHECK_THROWS_AS(sgd.step(), ember::shape_error);
}

TEST_CASE("zero_grad zeros the gradients in place; a restored momentum buffer continues the run") {
  ember::nn::Parameter a{ember::Tensor::from({3}, {1, 2, 3}), ember::Tensor::from({3}, {0.5f, -1, 2})};
  ember::nn::Parameter b{a.value, a.grad};
  ember::optim::SGD sa({&a}, {0.1, 0.9});
  ember::optim::SGD sb({&b}, {0.1, 0.9});
  sa.step();
  sa.step();
  sb.step();
  // A fresh optimiser given sb's buffer continues exactly as sb would.
  ember::optim::SGD sc({&b}, {0.1, 0.9});
  sc.set_momentum_buffer(0, sb.state().momentum_buffers[0]);
  sc.step();
  CHECK(a.value == b.value);
  const float* storage = a.grad.data();
  sa.zero_grad();
  CHECK(a.grad.data() == storage);
  for (float g : a.grad) CHECK(g == 0.0f);
}

TEST_CASE("a warmed-up loss forward / backward_into / SGD step allocates nothing" * kAllocSkip) {
  ember::Generator gen(3);
  ember::Tensor logits({8, 10});
  for (auto& v : logits) v = static_cast<float>(gen.normal());
  const std::vector<std::int64_t> target{0, 1, 2, 3, 4, 5, 6, 7};
  ember::nn::Parameter p{ember::Tensor({8, 10}), ember::Tensor({8, 10})};
  ember::nn::CrossEntropyLoss loss(0.1);
  ember::optim::SGD sgd({&p}, {0.01, 0.9, 0.0, 1e-4, true});
  ember::Tensor grad;
  for (int step = 0; step < 3; ++step) {
    const long before = alloc_count();
    sgd.zero_grad();
    loss.forward(logits, target);
    loss.backward_into(grad);
    p.grad.assign(grad);
    sgd.step();
    const long allocated = alloc_count() - before;
    if (step > 0) CHECK(allocated == 0);
  }
}

TEST_CASE("a warmed-up forward / backward_into of the new losses allocates nothing" * kAllocSkip) {
  ember::Generator gen(4);
  ember::Tensor x({8, 3}), y({8, 3}), grad;
  for (auto& v : x) v = static_cast<float>(gen.normal());
  for (auto& v : y) v = static_cast<float>(gen.uniform(0, 1));
  const std::vector<std::int64_t> target{0, 1, 2, -100, 0, 1, 2, 1};
  ember::nn::CrossEntropyLoss ce(ember::nn::CrossEntropyLossOptions{{1.0, 0.5, 2.0}, -100, {}, 0.1});
  ember::nn::BCEWithLogitsLoss bce({{1.0, 2.0, 0.5}, ember::nn::Reduction::mean, {3.0, 1.0, 1.0}});
  ember::nn::MSELoss mse;
  for (int step = 0; step < 3; ++step) {
    const long before = alloc_count();
    ce.forward(x, target);
    ce.backward_into(grad);
    bce.forward(x, y);
    bce.backward_into(grad);
    mse.forward(x, y);
    mse.backward_into(grad);
    if (step > 0) CHECK(alloc_count() - before == 0);
  }
}

// ---- Bad input (the policy: docs/robustness.md) ----------------------------------------------------------

namespace bad_input {

TEST_CASE("CrossEntropyLoss: labels out of range, wrong counts, empty batches, NaN and Inf logits") {
  nn::CrossEntropyLoss loss;
  const Tensor logits = random_tensor({3, 4}, 9);
  const std::string msg = message_of<std::invalid_argument>([&] { loss.forward(logits, {0, 4, 1}); });
  CHECK(contains(msg, "target 4 at index 1"));
  CHECK_THROWS_AS(loss.forward(logits, {0, -1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(loss.forward(logits, {0, 1}), ember::shape_error);
  CHECK_THROWS_AS(loss.forward(Tensor({0, 4}), {}), ember::shape_error);  // PyTorch gives NaN; we say why
  CHECK_THROWS_AS(loss.forward(Tensor({3, 0}), {0, 0, 0}), ember::shape_error);
  CHECK_THROWS_AS(loss.forward(Tensor({3, 4, 1}), {0, 0, 0}), ember::shape_error);
  nn::CrossEntropyLoss fresh;
  CHECK_THROWS_AS(fresh.backward(), std::logic_error);

  Tensor bad = logits;
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(loss.forward(bad, {0, 1, 2})));
  bad = logits;
  bad[5] = std::numeric_limits<float>::infinity();  // log_softmax of +inf is NaN in PyTorch too
  CHECK(std::isnan(loss.forward(bad, {0, 1, 2})));
  // Huge but finite logits stay finite: the row maximum is subtracted first.
  const Tensor huge = Tensor::from({1, 3}, {1e30f, -1e30f, 0.0f});
  CHECK(loss.forward(huge, {0}) == doctest::Approx(0.0));
  CHECK(std::isfinite(loss.forward(huge, {1})));
}

TEST_CASE("CrossEntropyLoss weights, BCEWithLogitsLoss and MSELoss: wrong shapes and counts, naming the loss") {
  const Tensor logits = random_tensor({3, 4}, 9);
  nn::CrossEntropyLoss weighted(nn::CrossEntropyLossOptions{{1.0, 2.0, 3.0}});
  CHECK(contains(message_of<ember::shape_error>([&] { weighted.forward(logits, {0, 1, 2}); }),
                 "3 class weights for logits [3, 4]"));
  CHECK_THROWS_AS(nn::CrossEntropyLoss(nn::CrossEntropyLossOptions{{1.0, NAN}}), std::invalid_argument);
  nn::CrossEntropyLoss ignore3(nn::CrossEntropyLossOptions{{}, 3});
  CHECK(std::isfinite(ignore3.forward(logits, {0, 3, 1})));
  CHECK_THROWS_AS(ignore3.forward(logits, {0, -100, 1}), std::invalid_argument);  // -100 is a class index now

  nn::BCEWithLogitsLoss bce;
  Tensor grad0;
  CHECK(contains(message_of<ember::shape_error>([&] { bce.forward(logits, Tensor({3, 1})); }),
                 "BCEWithLogitsLoss: expected a target of the input's shape [3, 4], got [3, 1]"));
  CHECK_THROWS_AS(bce.forward(Tensor({0}), Tensor({0})), ember::shape_error);
  nn::BCEWithLogitsLoss pos({{}, nn::Reduction::mean, {1.0, 2.0}});
  CHECK(contains(message_of<ember::shape_error>([&] { pos.forward(logits, Tensor({3, 4})); }), "pos_weights"));
  CHECK_THROWS_AS(nn::BCEWithLogitsLoss({{INFINITY}, nn::Reduction::mean, {}}), std::invalid_argument);
  CHECK_THROWS_AS(nn::BCEWithLogitsLoss().backward_into(grad0), std::logic_error);

  nn::MSELoss mse(nn::Reduction::none);
  CHECK(contains(message_of<ember::shape_error>([&] { mse.forward(Tensor({4}), Tensor({4, 1})); }), "MSELoss"));
  mse.forward(Tensor({4}), Tensor({4}));
  Tensor grad;
  CHECK(contains(message_of<ember::shape_error>([&] { mse.backward_into(grad, Tensor({3})); }),
                 "upstream gradient of shape [4]"));
  CHECK_THROWS_AS(nn::MSELoss().backward_into(grad), std::logic_error);
}

}  // namespace bad_input
