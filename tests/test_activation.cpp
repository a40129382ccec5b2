// LeakyReLU, GELU, Sigmoid, Tanh (nn/activation.hpp, kernels/activation.hpp) and Identity (nn/identity.hpp):
// gradient checks in double, PyTorch's goldens in float, the fast kernels against their references, NaN and
// saturation, printing and conversion. ReLU and Softmax are tested in test_nn.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <ember/kernels/activation.hpp>
#include <ember/nn/nn.hpp>
#include <limits>
#include <vector>

#include "bad_input.hpp"
#include "layer_check.hpp"

using namespace ember;
using layer_check::TensorD;

TEST_CASE("activations: gradient check in double") {
  nn::LeakyReLUT<double> leaky;
  layer_check::gradcheck(leaky, {3, 7}, "LeakyReLU");
  nn::LeakyReLUT<double> leaky2(-0.3);
  layer_check::gradcheck(leaky2, {2, 3, 2, 2}, "LeakyReLU(-0.3)");
  nn::GELUT<double> gelu;
  layer_check::gradcheck(gelu, layer_check::random_tensor({3, 7}, 7, 2.0), "GELU");
  nn::GELUT<double> gelu_tanh("tanh");
  layer_check::gradcheck(gelu_tanh, layer_check::random_tensor({3, 7}, 7, 2.0), "GELU(approximate='tanh')");
  nn::SigmoidT<double> sigmoid;
  layer_check::gradcheck(sigmoid, layer_check::random_tensor({3, 7}, 7, 3.0), "Sigmoid");
  nn::TanhT<double> tanh_layer;
  layer_check::gradcheck(tanh_layer, layer_check::random_tensor({2, 3, 2, 2}, 7, 2.0), "Tanh");
  nn::IdentityT<double> identity;
  layer_check::gradcheck(identity, {2, 3, 2, 2}, "Identity");
}

TEST_CASE("activations: golden values against PyTorch") {
  nn::LeakyReLU leaky;
  layer_check::golden(leaky, "leaky_relu");
  nn::LeakyReLU leaky2(0.2);
  layer_check::golden(leaky2, "leaky_relu_0_2");
  nn::GELU gelu;
  layer_check::golden(gelu, "gelu");
  nn::GELU gelu_tanh("tanh");
  layer_check::golden(gelu_tanh, "gelu_tanh");
  nn::Sigmoid sigmoid;
  layer_check::golden(sigmoid, "sigmoid");
  nn::Tanh tanh_layer;
  layer_check::golden(tanh_layer, "tanh");
  nn::Identity identity;
  layer_check::golden(identity, "identity");
}

TEST_CASE("activation kernels: the fast ones equal their references") {
  Tensor x({1000});
  Generator g(3);
  for (float& v : x) v = static_cast<float>(g.normal() * 4);
  const Tensor dy = layer_check::random_tensor({1000}, 4).cast<float>();
  Tensor a({1000}), b({1000}), da({1000}), db({1000});
  const std::int64_t n = x.numel();
  auto close = [](const Tensor& p, const Tensor& q) { return fixture::max_rel_error(p, q.cast<double>()) < 1e-5; };
  for (bool approx : {false, true}) {
    kernels::gelu_forward(a.data(), x.data(), n, approx);
    kernels::gelu_forward_ref(b.data(), x.data(), n, approx);
    CHECK(close(a, b));
    kernels::gelu_backward(da.data(), dy.data(), x.data(), n, approx);
    kernels::gelu_backward_ref(db.data(), dy.data(), x.data(), n, approx);
    // The tanh form's gradient has 1 - tanh^2, which float (PyTorch's too) forms by cancellation: at |x| ~ 10
    // its absolute error times x^3's factor reaches a few 1e-5 of the gradient's scale.
    CHECK(fixture::max_rel_error(da, db.cast<double>()) < (approx ? 1e-4 : 1e-5));
  }
  kernels::sigmoid_forward(a.data(), x.data(), n);
  kernels::sigmoid_forward_ref(b.data(), x.data(), n);
  CHECK(close(a, b));
  kernels::sigmoid_backward(da.data(), dy.data(), a.data(), n);
  kernels::sigmoid_backward_ref(db.data(), dy.data(), a.data(), n);
  CHECK(close(da, db));
  kernels::tanh_forward(a.data(), x.data(), n);
  kernels::tanh_forward_ref(b.data(), x.data(), n);
  CHECK(close(a, b));
  kernels::tanh_backward(da.data(), dy.data(), a.data(), n);
  kernels::tanh_backward_ref(db.data(), dy.data(), a.data(), n);
  CHECK(close(da, db));
}

TEST_CASE("activations print as PyTorch and keep their configuration through nn::to") {
  CHECK(nn::LeakyReLU().repr() == "LeakyReLU(negative_slope=0.01)");
  CHECK(nn::LeakyReLU(0.2).repr() == "LeakyReLU(negative_slope=0.2)");
  CHECK(nn::GELU().repr() == "GELU(approximate='none')");
  CHECK(nn::GELU("tanh").repr() == "GELU(approximate='tanh')");
  CHECK(nn::Sigmoid().repr() == "Sigmoid()");
  CHECK(nn::Tanh().repr() == "Tanh()");
  CHECK(nn::Identity().repr() == "Identity()");
  nn::Sequential m{nn::LeakyReLU(0.2), nn::GELU("tanh"), nn::Sigmoid(), nn::Tanh(), nn::Identity()};
  auto d = nn::to<double>(m);
  CHECK(d.repr() == m.repr());
  CHECK(dynamic_cast<nn::LeakyReLUT<double>&>(d[0]).negative_slope() == 0.2);
  CHECK(dynamic_cast<nn::GELUT<double>&>(d[1]).approximate() == "tanh");
  const Tensor x = layer_check::random_tensor({40, 3}, 5).cast<float>();
  CHECK(fixture::max_rel_error(m.predict(x), d.predict(x).cast<double>()) < 1e-5);
  auto c = m.clone();
  CHECK(c->repr() == m.repr());
}

TEST_CASE("activations: predict equals forward, and a batch split into chunks equals the whole") {
  nn::Sequential m{nn::LeakyReLU(), nn::GELU(), nn::Tanh(), nn::Sigmoid(), nn::Identity()};
  CHECK(m.batch_independent());
  const Tensor x = layer_check::random_tensor({100, 5}, 9, 2.0).cast<float>();
  const Tensor y = m.forward(x);
  CHECK(fixture::max_rel_error(m.predict(x), y.cast<double>()) == 0);
}

namespace bad_input {

TEST_CASE("activations: NaN, infinities and saturation give PyTorch's values") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const Tensor x = Tensor::from({6}, {nan, -100.f, 100.f, -inf, inf, 0.f});
  // torch 1.13, float: f(x) and the gradient of f(x).sum().
  auto expect = [&](nn::Module& m, std::vector<float> y, std::vector<float> dx) {
    const Tensor got = m.forward(x), pred = m.predict(x), grad = m.backward(Tensor::ones({6}));
    auto same = [](float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)) || std::fabs(a - b) <= 1e-6f * std::fabs(b); };
    for (std::size_t i = 0; i < 6; ++i) {
      const auto k = static_cast<std::int64_t>(i);
      CHECK_MESSAGE(same(got[k], y[i]), m.repr() << " at " << x[k] << ": " << got[k] << " vs " << y[i]);
      CHECK_MESSAGE(same(pred[k], y[i]), m.repr() << " predict at " << x[k]);
      CHECK_MESSAGE(same(grad[k], dx[i]), m.repr() << " gradient at " << x[k] << ": " << grad[k] << " vs " << dx[i]);
    }
  };
  nn::Sigmoid s;
  expect(s, {nan, 0, 1, 0, 1, 0.5f}, {nan, 0, 0, 0, 0, 0.25f});
  nn::Tanh t;
  expect(t, {nan, -1, 1, -1, 1, 0}, {nan, 0, 0, 0, 0, 1});
  nn::GELU g;
  expect(g, {nan, 0, 100, nan, inf, 0}, {nan, 0, 1, nan, nan, 0.5f});
  nn::GELU gt("tanh");
  expect(gt, {nan, 0, 100, nan, inf, 0}, {nan, 0, 1, nan, nan, 0.5f});
  nn::LeakyReLU l;
  expect(l, {nan, -1, 100, -inf, inf, 0}, {0.01f, 0.01f, 1, 0.01f, 1, 0.01f});
}

TEST_CASE("activations: wrong gradient shapes, backward before forward, unknown GELU approximation") {
  nn::GELU g;
  CHECK_THROWS_AS(g.backward(Tensor({2})), std::logic_error);
  g.forward(Tensor({2, 3}));
  CHECK_THROWS_WITH_AS(g.backward(Tensor({3, 2})), doctest::Contains("GELU(approximate='none'): expected grad_output [2, 3]"),
                       shape_error);
  CHECK_THROWS_WITH_AS(nn::GELU("fast"), doctest::Contains("approximate must be 'none' or 'tanh'"),
                       std::invalid_argument);
  nn::Identity id;
  CHECK_THROWS_AS(id.backward(Tensor({2})), std::logic_error);
}

}  // namespace bad_input
