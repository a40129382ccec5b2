#pragma once
// The two checks every layer passes (tests/test_<layer family>.cpp): a double-precision finite-difference
// gradient check (ember/testing/gradcheck.hpp, which also checks that backward adds into parameter gradients),
// and PyTorch's float goldens (tests/fixtures/make_*fixtures.py), whose largest error is printed to stdout so
// that a run records it ("golden <case>: largest relative error against PyTorch ...").
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <ember/nn/module.hpp>
#include <ember/testing/gradcheck.hpp>
#include <functional>
#include <string>

#include "fixture.hpp"

namespace layer_check {

using TensorD = ember::TensorT<double>;

inline TensorD random_tensor(const ember::Shape& s, std::uint64_t seed, double scale = 1.0, double offset = 0.0) {
  ember::Generator g(seed);
  TensorD t(s);
  for (double& v : t) v = offset + scale * g.normal();
  return t;
}

inline void gradcheck(ember::nn::ModuleT<double>& m, const TensorD& x, const std::string& what) {
  auto r = ember::testing::gradcheck(m, x, 3);
  std::printf("gradcheck %s: input %.3g, worst parameter %s %.3g\n", what.c_str(), r.input_error,
              r.worst_param.c_str(), r.worst_param_error);
  CHECK_MESSAGE(r.input_error < 1e-6, what);
  CHECK_MESSAGE(r.worst_param_error < 1e-6, what);
  CHECK_MESSAGE(r.accumulation_error < 1e-12, what << ": backward must add into parameter gradients");
}
inline void gradcheck(ember::nn::ModuleT<double>& m, const ember::Shape& in, const std::string& what) {
  gradcheck(m, random_tensor(in, 7), what);
}

// Loads the case's parameters into m (by PyTorch's names, so a missing name fails), runs forward and backward
// in float and compares output, input gradient, parameter gradients and floating buffers. Returns the largest
// relative error (fixture::max_rel_error) and checks it against `tolerance`.
inline double golden(ember::nn::Module& m, const std::string& name, double tolerance = 1e-5) {
  auto f = fixture::load("layers/" + name + ".txt");
  for (auto& named : m.named_parameters()) {
    const std::string pname = named.first;
    REQUIRE_MESSAGE(f.count(pname), name << ": fixture lacks " << pname);
    named.second->value = f.at(pname).cast<float>();
  }
  m.zero_grad();
  ember::Tensor y = m.forward(f.at("input").cast<float>());
  ember::Tensor dx = m.backward(f.at("grad_output").cast<float>());
  double worst = std::max(fixture::max_rel_error(y, f.at("output")), fixture::max_rel_error(dx, f.at("grad_input")));
  for (auto& [pname, p] : m.named_parameters())
    worst = std::max(worst, fixture::max_rel_error(p->grad, f.at("grad_" + pname)));
  for (auto& [bname, b] : m.named_buffers())
    if (f.count(bname)) worst = std::max(worst, fixture::max_rel_error(*b, f.at(bname)));
  std::printf("golden %s: largest relative error against PyTorch %.3g\n", name.c_str(), worst);
  CHECK_MESSAGE(worst < tolerance, name << ": " << worst);
  return worst;
}

}  // namespace layer_check
