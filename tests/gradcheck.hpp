#pragma once
// One generic finite-difference gradient check, run on every layer (dlib's idea): with a random upstream
// gradient g and f(x) = <forward(x), g>, central differences of f against backward, for the input and for
// every parameter, in double precision. It also checks that backward *adds* into parameter gradients.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <ember/core/random.hpp>
#include <ember/core/tensor.hpp>
#include <ember/nn/module.hpp>
#include <functional>
#include <string>

namespace gradcheck {

using TensorD = ember::TensorT<double>;
using ModuleD = ember::nn::ModuleT<double>;

inline double dot(const TensorD& a, const TensorD& b) { return a.vector().dot(b.vector()); }

// ||a - b|| / max(||a||, ||b||): the usual relative error of a gradient as a whole.
inline double rel_error(const TensorD& a, const TensorD& b) {
  const double num = (a.vector() - b.vector()).norm();
  const double den = std::max({a.vector().norm(), b.vector().norm(), 1e-300});
  return num / den;
}

struct Result {
  double input_error = 0;
  double worst_param_error = 0;
  std::string worst_param;
};

// before_forward runs before every forward (e.g. to reseed a Dropout so its mask stays fixed).
inline Result check(ModuleD& m, TensorD x, std::uint64_t seed = 1, const std::function<void()>& before_forward = {},
                    double h = 1e-6) {
  ember::Generator gen(seed);
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
  Result r;

  // Input gradient.
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
  r.input_error = rel_error(dx, num_dx);

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
    const double e = rel_error(analytic, numeric);
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
    CHECK_MESSAGE(rel_error(p->grad, twice) < 1e-12, "backward must add into parameter gradients");
  }
  return r;
}

}  // namespace gradcheck
