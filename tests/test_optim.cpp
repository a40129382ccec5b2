// Adam, AdamW, RMSprop and the lr schedules against PyTorch 1.13 (fixtures/training/optim.txt and
// schedules.txt, written by fixtures/make_optim_fixtures.py), resumes through a checkpoint, allocations of a
// warmed-up step, and the argument checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ember/io/checkpoint.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/adam.hpp>
#include <ember/optim/rmsprop.hpp>
#include <ember/optim/scheduler.hpp>
#include <ember/optim/sgd.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "fixture.hpp"
#include "scratch.hpp"

using ember::TensorT;
namespace optim = ember::optim;

namespace {

using Fixture = std::map<std::string, TensorT<double>>;

const Fixture& optim_fixture() {
  static const Fixture f = fixture::load("training/optim.txt");
  return f;
}
const Fixture& schedule_fixture() {
  static const Fixture f = fixture::load("training/schedules.txt");
  return f;
}

template <typename T>
TensorT<T> cast(const TensorT<double>& t) {
  TensorT<T> out(t.shape());
  for (std::int64_t i = 0; i < t.numel(); ++i) out[i] = static_cast<T>(t[i]);
  return out;
}

// 1e-6 absolute in double (as test_loss_optim.cpp); 1e-5 relative (absolute below 1) in float.
template <typename T>
double tolerance(double ref) {
  return std::is_same<T, double>::value ? 1e-6 : 1e-5 * std::max(1.0, std::abs(ref));
}

template <typename T>
double max_error(const TensorT<T>& got, const TensorT<double>& want) {
  REQUIRE(got.shape() == want.shape());
  double worst = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    const double e = std::abs(static_cast<double>(got[i]) - want[i]);
    CHECK_MESSAGE(e <= tolerance<T>(want[i]), "element " << i << ": got " << got[i] << ", want " << want[i]);
    worst = std::max(worst, e);
  }
  return worst;
}

// Runs option set `n` of the fixture with optimiser Opt; returns the largest error.
template <typename T, typename Opt, typename Options>
double run_against_pytorch(const std::string& n, const Options& options, const std::vector<std::string>& state_keys) {
  const Fixture& fx = optim_fixture();
  ember::ParameterT<T> p0{cast<T>(fx.at("p0.init")), TensorT<T>(fx.at("p0.init").shape())};
  ember::ParameterT<T> p1{cast<T>(fx.at("p1.init")), TensorT<T>(fx.at("p1.init").shape())};
  Opt opt({&p0, &p1}, options);
  double worst = 0;
  for (int s = 1; s <= 5; ++s) {
    opt.zero_grad();
    p0.grad = cast<T>(fx.at("p0.grad" + std::to_string(s)));
    p1.grad = cast<T>(fx.at("p1.grad" + std::to_string(s)));
    opt.step();
    worst = std::max(worst, max_error(p0.value, fx.at(n + ".p0.step" + std::to_string(s))));
    worst = std::max(worst, max_error(p1.value, fx.at(n + ".p1.step" + std::to_string(s))));
  }
  // The state after the last step, as PyTorch's opt.state[p0].
  std::map<std::string, const TensorT<T>*> state;
  for (const auto& st : opt.state_tensors())
    if (st.param == 0) state[st.key] = st.tensor;
  for (const std::string& key : state_keys) {
    CAPTURE(key);
    const bool in_torch = fx.count(n + ".p0." + key) == 1;
    REQUIRE(state.count(key) == (in_torch ? 1u : 0u));
    if (in_torch) worst = std::max(worst, max_error(*state.at(key), fx.at(n + ".p0." + key)));
  }
  return worst;
}

template <typename T>
void check_optimisers_against_pytorch() {
  const Fixture& fx = optim_fixture();
  const int configs = static_cast<int>(fx.at("configs")[0]);
  std::map<std::string, double> worst;
  std::map<std::string, int> sets;
  for (int c = 0; c < configs; ++c) {
    const std::string n = "opt" + std::to_string(c);
    CAPTURE(n);
    const int kind = static_cast<int>(fx.at(n + ".kind")[0]);
    const auto& o = fx.at(n + ".options");
    double e = 0;
    std::string name;
    if (kind == 0) {
      name = "Adam";
      e = run_against_pytorch<T, optim::AdamT<T>>(n, optim::AdamOptions{o[0], o[1], o[2], o[3], o[4], o[5] != 0},
                                                  {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"});
    } else if (kind == 1) {
      name = "AdamW";
      e = run_against_pytorch<T, optim::AdamWT<T>>(n, optim::AdamWOptions{o[0], o[1], o[2], o[3], o[4], o[5] != 0},
                                                   {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"});
    } else {
      name = "RMSprop";
      e = run_against_pytorch<T, optim::RMSpropT<T>>(n, optim::RMSpropOptions{o[0], o[1], o[2], o[3], o[4], o[5] != 0},
                                                     {"square_avg", "momentum_buffer", "grad_avg"});
    }
    worst[name] = std::max(worst[name], e);
    ++sets[name];
  }
  CHECK(sets["Adam"] >= 3);
  CHECK(sets["AdamW"] >= 2);
  CHECK(sets["RMSprop"] >= 5);
  for (const auto& [name, e] : worst)
    MESSAGE(std::string(std::is_same<T, double>::value ? "double " : "float ")
            << name << " vs PyTorch over " << sets[name] << " option sets x 5 steps: max |error| " << e);
}

}  // namespace

TEST_CASE("Adam, AdamW and RMSprop match torch.optim step by step, state included (double and float)") {
  check_optimisers_against_pytorch<double>();
  check_optimisers_against_pytorch<float>();
}

// ---- Schedules ----------------------------------------------------------------------------------------------

namespace {

// A schedule under test: built on the optimiser it is given; step(i) makes the i-th step.
struct ScheduleCase {
  std::string name;
  bool adam;  // else SGD(lr 0.1, momentum 0.9); Adam has lr 0.1
  std::function<std::function<void(int)>(void*)> build;
};

template <typename S>
std::function<void(int)> keep(std::shared_ptr<S> s) {
  return [s](int) { s->step(); };
}

std::vector<ScheduleCase> schedule_cases() {
  using optim::SGD;
  auto sgd = [](void* o) -> SGD& { return *static_cast<SGD*>(o); };
  std::vector<ScheduleCase> c;
  c.push_back({"step", false, [=](void* o) { return keep(std::make_shared<optim::StepLR>(sgd(o), 7, 0.5)); }});
  c.push_back({"multistep", false, [=](void* o) {
                 return keep(std::make_shared<optim::MultiStepLR>(sgd(o), std::vector<std::int64_t>{10, 30, 30, 75}, 0.3));
               }});
  c.push_back({"exponential", false, [=](void* o) { return keep(std::make_shared<optim::ExponentialLR>(sgd(o), 0.95)); }});
  c.push_back({"cosine", false, [=](void* o) { return keep(std::make_shared<optim::CosineAnnealingLR>(sgd(o), 30, 0.001)); }});
  c.push_back({"linear", false, [=](void* o) { return keep(std::make_shared<optim::LinearLR>(sgd(o))); }});
  c.push_back({"linear2", false, [=](void* o) { return keep(std::make_shared<optim::LinearLR>(sgd(o), 0.1, 0.5, 40)); }});
  c.push_back({"sequential", false, [=](void* o) {
                 auto warm = std::make_shared<optim::LinearLR>(sgd(o), 0.01, 1.0, 10);
                 auto cos = std::make_shared<optim::CosineAnnealingLR>(sgd(o), 90);
                 auto seq = std::make_shared<optim::SequentialLR>(sgd(o), std::vector<optim::LRScheduler*>{warm.get(), cos.get()},
                                                                  std::vector<std::int64_t>{10});
                 return std::function<void(int)>([warm, cos, seq](int) { seq->step(); });
               }});
  c.push_back({"sequential3", false, [=](void* o) {
                 auto a = std::make_shared<optim::LinearLR>(sgd(o), 0.5, 1.0, 4);
                 auto b = std::make_shared<optim::StepLR>(sgd(o), 5, 0.5);
                 auto e = std::make_shared<optim::ExponentialLR>(sgd(o), 0.9);
                 auto seq = std::make_shared<optim::SequentialLR>(
                     sgd(o), std::vector<optim::LRScheduler*>{a.get(), b.get(), e.get()}, std::vector<std::int64_t>{4, 30});
                 return std::function<void(int)>([a, b, e, seq](int) { seq->step(); });
               }});
  c.push_back({"onecycle", false, [=](void* o) { return keep(std::make_shared<optim::OneCycleLR>(sgd(o), 0.5, 100)); }});
  c.push_back({"onecycle_adam", true, [](void* o) {
                 return keep(std::make_shared<optim::OneCycleLR>(*static_cast<optim::Adam*>(o), 0.02, 101, 0.25,
                                                                 optim::AnnealStrategy::linear, 10.0, 100.0, true, true,
                                                                 0.8, 0.9));
               }});
  auto plateau = [&c, sgd](const std::string& name, const std::string& metrics, auto make) {
    c.push_back({name, false, [=](void* o) {
                   auto s = std::make_shared<optim::ReduceLROnPlateau>(make(sgd(o)));
                   const TensorT<double>& m = schedule_fixture().at("plateau.metrics_" + metrics);
                   return std::function<void(int)>([s, &m](int i) { s->step(m[i]); });
                 }});
  };
  using optim::PlateauMode;
  using optim::ThresholdMode;
  // make() returns by value; ReduceLROnPlateau is copyable.
  plateau("plateau_min", "min", [](SGD& o) {
    return optim::ReduceLROnPlateau(o, PlateauMode::min, 0.5, 3, 1e-2, ThresholdMode::rel, 2, 0.004);
  });
  plateau("plateau_max", "max",
          [](SGD& o) { return optim::ReduceLROnPlateau(o, PlateauMode::max, 0.3, 5, 0.005, ThresholdMode::abs); });
  plateau("plateau_default", "min", [](SGD& o) { return optim::ReduceLROnPlateau(o); });
  return c;
}

}  // namespace

TEST_CASE("every schedule gives torch.optim.lr_scheduler's lr sequence over 100 steps (OneCycleLR: momentum too)") {
  const Fixture& fx = schedule_fixture();
  double worst_all = 0;
  for (const ScheduleCase& sc : schedule_cases()) {
    CAPTURE(sc.name);
    ember::Parameter p{ember::Tensor({2}), ember::Tensor({2})};
    optim::SGD sgd({&p}, {0.1, 0.9});
    optim::Adam adam({&p}, {0.1});
    void* o = sc.adam ? static_cast<void*>(&adam) : static_cast<void*>(&sgd);
    auto lr = [&] { return sc.adam ? adam.lr() : sgd.lr(); };
    auto momentum = [&] { return sc.adam ? adam.beta1() : sgd.momentum(); };
    auto step = sc.build(o);
    const TensorT<double>& want_lr = fx.at(sc.name + ".lr");
    const bool has_momentum = fx.count(sc.name + ".momentum") == 1;
    REQUIRE(want_lr.numel() == 101);
    double worst = 0;
    for (int i = 0; i <= 100; ++i) {
      if (i > 0) step(i - 1);
      CAPTURE(i);
      const double rel = std::abs(lr() - want_lr[i]) / std::max(std::abs(want_lr[i]), 1e-300);
      CHECK_MESSAGE(rel <= 1e-12, "lr " << lr() << ", torch " << want_lr[i]);
      worst = std::max(worst, rel);
      if (has_momentum) {
        const double want_m = fx.at(sc.name + ".momentum")[i];
        CHECK(std::abs(momentum() - want_m) <= 1e-12);
        worst = std::max(worst, std::abs(momentum() - want_m) / want_m);
      }
    }
    MESSAGE(sc.name << ": max relative error vs PyTorch over 101 values " << worst);
    worst_all = std::max(worst_all, worst);
  }
  MESSAGE("schedules vs PyTorch: max relative error " << worst_all);
}
