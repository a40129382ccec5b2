#pragma once
// A finite-difference gradient check for any module, yours included: with a random upstream gradient g and
// f(x) = <forward(x), g>, central differences of f against backward, for the input and for every parameter,
// in double precision (instantiate your layer as MyLayerT<double>). It also checks that backward *adds* into
// the parameters' gradients. Needs no test framework: check the Result with the one you use.
//
//   ember::nn::PReLUT<double> layer;
//   ember::testing::GradcheckResult r = ember::testing::gradcheck(layer, x);
//   assert(r.ok());   // or CHECK(r.input_error < 1e-6) ...
#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"

namespace ember::testing {

struct GradcheckResult {
  double input_error = 0;          // relative error of the input gradient
  double worst_param_error = 0;    // the largest relative error over the parameters' gradients
  std::string worst_param;         // its parameter's name
  double accumulation_error = 0;   // a second backward must double every parameter gradient: its error
  bool ok(double tolerance = 1e-6) const {
    return input_error < tolerance && worst_param_error < tolerance && accumulation_error < 1e-12;
  }
};

// ||a - b|| / max(||a||, ||b||): the usual relative error of a gradient as a whole.
inline double relative_error(const TensorT<double>& a, const TensorT<double>& b) {
  const double num = (a.vector() - b.vector()).norm();
  const double den = std::max({a.vector().norm(), b.vector().norm(), 1e-300});
  return num / den;
}

// before_forward runs before every forward (e.g. to reseed a Dropout so that its mask stays fixed).
inline GradcheckResult gradcheck(nn::ModuleT<double>& m, TensorT<double> x, std::uint64_t seed = 1,
                                 const std::function<void()>& before_forward = {}, double h = 1e-6) {
  using TensorD = TensorT<double>;
  auto dot = [](const TensorD& a, const TensorD& b) { return a.vector().dot(b.vector()); };
  Generator gen(seed);
  auto fwd = [&](const TensorD& in) {
    if (before_forward) before_forward();
    return m.forward(in);
  };
  TensorD y = fwd(x);
  TensorD g(y.shape());
  for (double& v : g) v = gen.normal();

  m.zero_grad();
  y = fwd(x);
  TensorD dx = m.backward(g);
  GradcheckResult r;

  TensorD num_dx(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double fp = dot(fwd(x), g);
    x[i] = saved - h;
    const double fm = dot(fwd(x), g);
    x[i] = saved;
    num_dx[i] = (fp - fm) / (2 * h);
  }
  r.input_error = relative_error(dx, num_dx);

  // Parameter gradients (analytic ones from the backward above).
  for (auto& [name, p] : m.named_parameters()) {
    TensorD analytic = p->grad;
    TensorD numeric(p->value.shape());
    for (std::int64_t i = 0; i < p->value.numel(); ++i) {
      const double saved = p->value[i];
      p->value[i] = saved + h;
      const double fp = dot(fwd(x), g);
      p->value[i] = saved - h;
      const double fm = dot(fwd(x), g);
      p->value[i] = saved;
      numeric[i] = (fp - fm) / (2 * h);
    }
    const double e = relative_error(analytic, numeric);
    if (e >= r.worst_param_error) {
      r.worst_param_error = e;
      r.worst_param = name;
    }
  }

  // Accumulation: a second backward from the same forward doubles every parameter gradient.
  m.zero_grad();
  fwd(x);
  m.backward(g);
  std::vector<TensorD> once;
  for (auto* p : m.parameters()) once.push_back(p->grad);
  m.backward(g);
  std::size_t k = 0;
  for (auto* p : m.parameters()) {
    TensorD twice = once[k++];
    twice.vector() *= 2.0;
    r.accumulation_error = std::max(r.accumulation_error, relative_error(p->grad, twice));
  }
  return r;
}

}  // namespace ember::testing
