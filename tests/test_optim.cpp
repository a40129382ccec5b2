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
#include <ember/optim/param_groups.hpp>
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

// ---- Resume through a checkpoint ----------------------------------------------------------------------------

namespace {

ember::nn::Sequential make_net(std::uint64_t seed) {
  ember::Generator gen(seed);
  ember::nn::Sequential net("MLP", {});
  net.add("fc1", ember::nn::Linear(4, 6, true, gen));
  net.add("relu1", ember::nn::ReLU());
  net.add("fc2", ember::nn::Linear(6, 3, true, gen));
  return net;
}

template <typename Opt>
void train_step(ember::nn::Sequential& net, Opt& opt, std::uint64_t seed) {
  ember::Generator gen(seed);
  ember::Tensor x({5, 4});
  for (auto& v : x) v = static_cast<float>(gen.normal());
  ember::nn::CrossEntropyLoss loss;
  opt.zero_grad();
  ember::Tensor logits, g;
  net.forward_into(x, logits);
  loss.forward(logits, {0, 1, 2, 1, 0});
  loss.backward_into(g);
  net.backward_into(g, nullptr);
  opt.step();
}

std::map<std::string, ember::Tensor> snapshot(ember::nn::Sequential& m) {
  std::map<std::string, ember::Tensor> out;
  for (auto& [n, p] : m.named_parameters()) out[n] = p->value;
  return out;
}

template <typename Opt>
std::map<std::string, ember::Tensor> state_snapshot(const Opt& opt) {
  std::map<std::string, ember::Tensor> out;
  for (const auto& s : opt.state_tensors()) out[s.key + std::to_string(s.param)] = *s.tensor;
  return out;
}

// A warm-up: LinearLR for 3 steps, then cosine annealing (schedules held together, as SequentialLR needs).
struct Warmup {
  optim::LinearLR warm;
  optim::CosineAnnealingLR cos;
  optim::SequentialLR seq;
  template <typename Opt>
  explicit Warmup(Opt& o) : warm(o, 0.1, 1.0, 3), cos(o, 5, 1e-4), seq(o, {&warm, &cos}, {3}) {}
};

const double kMetrics[] = {1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.97, 0.98, 0.99, 1.0};

// Runs 8 steps uninterrupted (net a) and 4 + save + load into a fresh net and optimiser + 4 (net b): the
// parameters, the optimiser state and the lr must be the same bits. `Sched` holds the schedule; `sched_step`
// steps it, `sched_of` gives the schedule object whose state goes into the metadata.
template <typename Opt, typename Options, typename Sched, typename Step, typename Of>
void check_resume(const std::string& name, const Options& options, Step sched_step, Of sched_of) {
  CAPTURE(name);
  auto a = make_net(1);
  Opt oa(a.parameters(), options);
  Sched sa(oa);
  auto b = make_net(2);
  Opt ob(b.parameters(), options);
  Sched sb(ob);
  for (int s = 0; s < 4; ++s) {
    train_step(a, oa, 100 + s);
    sched_step(sa, s);
  }
  const std::string path = scratch::path("optim", name + ".safetensors");
  ember::io::save_checkpoint(a, path, optim::scheduler_metadata(sched_of(sa)), &oa);
  optim::load_scheduler_metadata(sched_of(sb), ember::io::load_checkpoint(b, path, &ob));
  CHECK(snapshot(b) == snapshot(a));
  CHECK(state_snapshot(ob) == state_snapshot(oa));
  CHECK(ob.lr() == oa.lr());
  for (int s = 4; s < 8; ++s) {
    train_step(a, oa, 100 + s);
    sched_step(sa, s);
    train_step(b, ob, 100 + s);
    sched_step(sb, s);
  }
  CHECK(ob.lr() == oa.lr());
  CHECK(sched_of(sb).last_epoch() == sched_of(sa).last_epoch());
  CHECK(sched_of(sb).state_dict() == sched_of(sa).state_dict());
  CHECK(state_snapshot(ob) == state_snapshot(oa));
  CHECK(snapshot(b) == snapshot(a));
}

struct OneCycle {
  optim::OneCycleLR s;
  template <typename Opt>
  explicit OneCycle(Opt& o) : s(o, 0.05, 10) {}
};
struct Plateau {
  optim::ReduceLROnPlateau s;
  template <typename Opt>
  explicit Plateau(Opt& o) : s(o, optim::PlateauMode::min, 0.5, 1, 0.0, optim::ThresholdMode::rel, 1) {}
};

}  // namespace

TEST_CASE("a run resumed through a checkpoint continues bit for bit (Adam, AdamW, RMSprop with schedules)") {
  auto onecycle_step = [](OneCycle& s, int) { s.s.step(); };
  auto onecycle_of = [](OneCycle& s) -> optim::OneCycleLR& { return s.s; };
  check_resume<optim::Adam, optim::AdamOptions, OneCycle>("adam_amsgrad_onecycle", {1e-3, 0.9, 0.999, 1e-8, 1e-3, true},
                                                          onecycle_step, onecycle_of);
  check_resume<optim::AdamW, optim::AdamWOptions, Warmup>(
      "adamw_warmup", {}, [](Warmup& s, int) { s.seq.step(); }, [](Warmup& s) -> optim::SequentialLR& { return s.seq; });
  check_resume<optim::RMSprop, optim::RMSpropOptions, Plateau>(
      "rmsprop_plateau", {1e-2, 0.9, 1e-8, 1e-4, 0.5, true}, [](Plateau& s, int i) { s.s.step(kMetrics[i]); },
      [](Plateau& s) -> optim::ReduceLROnPlateau& { return s.s; });
  check_resume<optim::SGD, optim::SGDOptions, OneCycle>("sgd_onecycle", {0.1, 0.9}, onecycle_step, onecycle_of);

  // Adam's file: the step count as a 0-d tensor, the moments with the parameter's shape.
  auto net = make_net(3);
  optim::Adam adam(net.parameters(), {});
  train_step(net, adam, 1);
  train_step(net, adam, 2);
  const std::string path = scratch::path("optim", "adam_layout.safetensors");
  ember::io::save_checkpoint(net, path, {}, &adam);
  std::map<std::string, ember::io::SafetensorsEntry> by_name;
  for (const auto& e : ember::io::read_safetensors(path).tensors) by_name[e.name] = e;
  CHECK(by_name.at("optimizer.step.fc1.weight").shape.empty());
  CHECK(by_name.at("optimizer.exp_avg.fc1.weight").shape == ember::Shape{6, 4});
  CHECK(by_name.count("optimizer.max_exp_avg_sq.fc1.weight") == 0);
  CHECK(adam.state().step[0][0] == 2.0f);
}

// ---- Parameter groups ---------------------------------------------------------------------------------------

namespace {

const Fixture& groups_fixture() {
  static const Fixture f = fixture::load("training/optim_groups.txt");
  return f;
}

template <typename T>
double check_two_group_adamw() {
  const Fixture& fx = groups_fixture();
  ember::ParameterT<T> p0{cast<T>(fx.at("p0.init")), TensorT<T>(fx.at("p0.init").shape())};
  ember::ParameterT<T> p1{cast<T>(fx.at("p1.init")), TensorT<T>(fx.at("p1.init").shape())};
  const auto& go = fx.at("group_options");
  auto options = [&](int g) {
    const double* o = go.data() + 6 * g;
    return optim::AdamWOptions{o[0], o[1], o[2], o[3], o[4], o[5] != 0};
  };
  optim::AdamWT<T> opt({{{&p0}, options(0)}, {{&p1}, options(1)}});
  optim::CosineAnnealingLR sched(opt, 3, 0.001);
  double worst = 0;
  for (int s = 1; s <= 5; ++s) {
    const std::string k = std::to_string(s);
    p0.grad = cast<T>(fx.at("p0.grad" + k));
    p1.grad = cast<T>(fx.at("p1.grad" + k));
    opt.step();
    sched.step();
    worst = std::max(worst, max_error(p0.value, fx.at("adamw.p0.step" + k)));
    worst = std::max(worst, max_error(p1.value, fx.at("adamw.p1.step" + k)));
    const auto& lrs = fx.at("adamw.lr.step" + k);
    CHECK(opt.lr(0) == doctest::Approx(lrs[0]).epsilon(1e-14));
    CHECK(opt.lr(1) == doctest::Approx(lrs[1]).epsilon(1e-14));
    CHECK(sched.get_last_lrs() == std::vector<double>{opt.lr(0), opt.lr(1)});
  }
  for (const auto& st : opt.state_tensors())
    if (st.param == 1) worst = std::max(worst, max_error(*st.tensor, fx.at("adamw.p1." + st.key)));
  return worst;
}

}  // namespace

TEST_CASE("AdamW with two parameter groups (own lr, weight_decay, amsgrad) under a cosine schedule matches PyTorch") {
  MESSAGE("double two-group AdamW + CosineAnnealingLR vs PyTorch, 5 steps: max |error| " << check_two_group_adamw<double>());
  MESSAGE("float two-group AdamW + CosineAnnealingLR vs PyTorch, 5 steps: max |error| " << check_two_group_adamw<float>());
}

TEST_CASE("schedules scale every group's lr from its own base lr, as PyTorch (100 steps, two groups)") {
  const Fixture& fx = groups_fixture();
  ember::Parameter a{ember::Tensor({2}), ember::Tensor({2})}, b{ember::Tensor({2}), ember::Tensor({2})};
  auto make_opt = [&] {
    return std::make_unique<optim::SGD>(std::vector<optim::SGDParamGroupT<float>>{
        {{&a}, optim::SGDOptions{0.1, 0.9}}, {{&b}, optim::SGDOptions{0.03, 0.5}}});
  };
  auto compare = [&](const std::string& name, optim::SGD& opt, const std::function<void(int)>& step) {
    const TensorT<double>& want = fx.at(name + ".lr");  // [101, 2]
    const bool with_momentum = fx.count(name + ".momentum") == 1;
    double worst = 0;
    for (int i = 0; i <= 100; ++i) {
      if (i > 0) step(i - 1);
      for (std::size_t g = 0; g < 2; ++g) {
        const double w = want[i * 2 + static_cast<std::int64_t>(g)];
        const double rel = std::abs(opt.lr(g) - w) / std::max(w, 1e-300);
        CHECK_MESSAGE(rel <= 1e-12, name << " step " << i << " group " << g << ": " << opt.lr(g) << " vs " << w);
        worst = std::max(worst, rel);
        if (with_momentum)
          CHECK(std::abs(opt.momentum(g) - fx.at(name + ".momentum")[i * 2 + static_cast<std::int64_t>(g)]) <= 1e-12);
      }
    }
    MESSAGE(name << " (two groups): max relative lr error vs PyTorch " << worst);
  };
  {
    auto opt = make_opt();
    optim::LinearLR warm(*opt, 0.01, 1.0, 10);
    optim::CosineAnnealingLR cos(*opt, 90);
    optim::SequentialLR seq(*opt, {&warm, &cos}, {10});
    compare("sequential", *opt, [&](int) { seq.step(); });
  }
  {
    auto opt = make_opt();
    optim::MultiStepLR s(*opt, {10, 30, 30, 75}, 0.3);
    compare("multistep", *opt, [&](int) { s.step(); });
  }
  {
    auto opt = make_opt();
    optim::OneCycleLR s(*opt, 0.5, 100);
    compare("onecycle", *opt, [&](int) { s.step(); });
  }
  {
    auto opt = make_opt();
    optim::ReduceLROnPlateau s(*opt, optim::PlateauMode::min, 0.5, 3, 1e-2, optim::ThresholdMode::rel, 2, 0.004);
    const auto& metrics = schedule_fixture().at("plateau.metrics_min");
    compare("plateau", *opt, [&](int i) { s.step(metrics[i]); });
    CHECK(s.state_dict().count("last_lr.1") == 1);
  }
}

TEST_CASE("weight_decay_groups: matrices decay, biases and normalisation weights do not; names add to no-decay") {
  auto net = make_net(5);
  const auto groups = optim::weight_decay_groups(net.named_parameters(), optim::AdamWOptions{1e-3, 0.9, 0.999, 1e-8, 0.05});
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].options.weight_decay == 0.05);
  CHECK(groups[1].options.weight_decay == 0.0);
  for (const auto* p : groups[0].params) CHECK(p->value.dim() >= 2);
  for (const auto* p : groups[1].params) CHECK(p->value.dim() <= 1);
  CHECK(groups[0].params.size() + groups[1].params.size() == net.parameters().size());
  const auto by_name = optim::weight_decay_groups(net.named_parameters(), optim::SGDOptions{0.1}, {"fc1.weight"});
  CHECK(by_name[0].params.size() == groups[0].params.size() - 1);

  // State names in a checkpoint do not depend on the groups: a two-group run's file loads into one group.
  optim::AdamW two(groups);
  CHECK(two.num_groups() == 2);
  CHECK(two.repr().find("AdamW(group 0 (") == 0);
  CHECK(two.repr().find("; group 1 (") != std::string::npos);
  train_step(net, two, 1);
  const std::string path = scratch::path("optim", "groups.safetensors");
  ember::io::save_checkpoint(net, path, {}, &two);
  optim::AdamW one(net.parameters(), {});
  CHECK(one.repr() == "AdamW(lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01, amsgrad=False)");
  ember::io::load_checkpoint(net, path, &one);
  CHECK(one.state_tensors().size() == two.state_tensors().size());
  for (std::size_t k = 0; k < one.state_tensors().size(); ++k) {
    CHECK(one.state_tensors()[k].key == two.state_tensors()[k].key);
  }

  // set_lr(x) sets every group; set_lr(g, x) one; a bad value changes nothing.
  two.set_lr(0.5);
  CHECK(two.lr(0) == 0.5);
  CHECK(two.lr(1) == 0.5);
  two.set_lr(1, 0.25);
  CHECK(two.lr(1) == 0.25);
  CHECK_THROWS_AS(two.set_lr(1, -1.0), std::invalid_argument);
  CHECK(two.lr(1) == 0.25);
  CHECK_THROWS_AS(two.set_lr(2, 0.1), std::out_of_range);
  CHECK_THROWS_AS(two.options(2), std::out_of_range);
}

TEST_CASE("parameter groups reject a parameter in two groups, an empty list of groups and bad per-group options") {
  ember::Parameter a{ember::Tensor({2}), ember::Tensor({2})}, b{ember::Tensor({2}), ember::Tensor({2})};
  const std::string msg = scratch::message_of<std::invalid_argument>([&] {
    optim::SGD({{{&a, &b}, optim::SGDOptions{0.1}}, {{&b}, optim::SGDOptions{0.1}}});
  });
  CHECK(msg.find("SGD: parameter 2 (group 1) appears more than once") != std::string::npos);
  CHECK_THROWS_AS(optim::Adam(std::vector<optim::AdamParamGroupT<float>>{}), std::invalid_argument);
  CHECK_THROWS_AS(optim::RMSprop({{{&a}, optim::RMSpropOptions{}}, {{&b}, optim::RMSpropOptions{-1.0}}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(optim::AdamW({{{&a}, optim::AdamWOptions{}}, {{nullptr}, optim::AdamWOptions{}}}),
                  std::invalid_argument);
}

// ---- Allocations --------------------------------------------------------------------------------------------

TEST_CASE("a warmed-up Adam / AdamW / RMSprop step and schedule step allocate nothing" * kAllocSkip) {
  ember::Parameter p{ember::Tensor::full({16, 8}, 0.5f), ember::Tensor::full({16, 8}, 0.1f)};
  optim::Adam adam({&p}, {1e-3, 0.9, 0.999, 1e-8, 1e-2, true});
  optim::AdamW adamw({&p}, {1e-3, 0.9, 0.999, 1e-8, 1e-2, true});
  optim::RMSprop rms({&p}, {1e-2, 0.99, 1e-8, 1e-3, 0.9, true});
  optim::OneCycleLR cycle(adam, 0.01, 100);
  optim::ReduceLROnPlateau plateau(rms, optim::PlateauMode::min, 0.5, 0);
  Warmup warmup(adamw);
  adam.step();
  adamw.step();
  rms.step();
  for (int i = 0; i < 3; ++i) {
    CHECK(count_allocations([&] { adam.step(); cycle.step(); }) == 0);
    CHECK(count_allocations([&] { adamw.step(); warmup.seq.step(); }) == 0);
    CHECK(count_allocations([&] { rms.step(); plateau.step(1.0); }) == 0);
    CHECK(count_allocations([&] { adam.zero_grad(); }) == 0);
    p.grad.fill(0.1f);
  }
}

// ---- Bad options --------------------------------------------------------------------------------------------

namespace {

template <typename F>
std::string message_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  FAIL("no exception");
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// An optimiser without momentum, for OneCycleLR's check.
struct NoMomentum {
  double lr_ = 0.1;
  std::optional<double> initial_;
  double lr() const { return lr_; }
  void set_lr(double x) { lr_ = x; }
  std::optional<double> initial_lr() const { return initial_; }
  void set_initial_lr(double x) { initial_ = x; }
};

}  // namespace

TEST_CASE("Adam, AdamW and RMSprop reject bad options as PyTorch does, with clear messages") {
  ember::Parameter p{ember::Tensor({2}), ember::Tensor({2})};
  using optim::Adam;
  using optim::AdamOptions;
  CHECK(contains(message_of([&] { Adam({&p}, AdamOptions{-1e-3}); }), "Adam: invalid learning rate: -0.001"));
  CHECK(contains(message_of([&] { Adam({&p}, AdamOptions{1e-3, 1.0}); }), "invalid beta parameter at index 0: 1.0"));
  CHECK(contains(message_of([&] { Adam({&p}, AdamOptions{1e-3, 0.9, -0.1}); }), "invalid beta parameter at index 1"));
  CHECK(contains(message_of([&] { Adam({&p}, AdamOptions{1e-3, 0.9, 0.999, -1e-8}); }), "invalid epsilon value"));
  CHECK(contains(message_of([&] { Adam({&p}, AdamOptions{1e-3, 0.9, 0.999, 1e-8, -0.1}); }), "invalid weight_decay value"));
  CHECK(contains(message_of([&] { optim::AdamW({&p}, optim::AdamWOptions{1e-3, 0.9, 1.5}); }), "AdamW: invalid beta"));
  CHECK(contains(message_of([&] { Adam({nullptr}, AdamOptions{}); }), "Adam: parameter 0 is a null pointer"));
  CHECK_NOTHROW(Adam({&p}, AdamOptions{0.0, 0.0, 0.0, 0.0}));
  CHECK(optim::AdamWOptions{}.weight_decay == 1e-2);
  using optim::RMSprop;
  using optim::RMSpropOptions;
  CHECK(contains(message_of([&] { RMSprop({&p}, RMSpropOptions{-1.0}); }), "RMSprop: invalid learning rate"));
  CHECK(contains(message_of([&] { RMSprop({&p}, RMSpropOptions{1e-2, -0.5}); }), "invalid alpha value"));
  CHECK(contains(message_of([&] { RMSprop({&p}, RMSpropOptions{1e-2, 0.99, -1.0}); }), "invalid epsilon value"));
  CHECK(contains(message_of([&] { RMSprop({&p}, RMSpropOptions{1e-2, 0.99, 1e-8, -1.0}); }), "invalid weight_decay"));
  CHECK(contains(message_of([&] { RMSprop({&p}, RMSpropOptions{1e-2, 0.99, 1e-8, 0.0, -0.9}); }), "invalid momentum"));

  Adam adam({&p}, {});
  CHECK_THROWS_AS(adam.set_lr(-1.0), std::invalid_argument);
  CHECK_THROWS_AS(adam.set_beta1(1.0), std::invalid_argument);
  CHECK(contains(message_of([&] { adam.set_state_tensor(0, "momentum", ember::Tensor({2})); }), "no state named 'momentum'"));
  CHECK(contains(message_of([&] { adam.set_state_tensor(0, "exp_avg", ember::Tensor({3})); }), "must have shape"));
  CHECK_THROWS_AS(adam.set_state_tensor(0, "step", ember::Tensor({2})), ember::shape_error);
  CHECK_THROWS_AS(adam.set_state_tensor(5, "exp_avg", ember::Tensor({2})), std::out_of_range);
  RMSprop rms({&p}, {});
  CHECK_THROWS_AS(rms.set_state_tensor(0, "square_avg", ember::Tensor({2, 1})), ember::shape_error);
  p.grad = ember::Tensor({3});
  CHECK(contains(message_of([&] { adam.step(); }), "Adam: parameter 0 has value [2] but grad [3]"));
  CHECK_THROWS_AS(rms.step(), ember::shape_error);
}

TEST_CASE("schedules reject bad arguments as PyTorch does, with clear messages") {
  ember::Parameter p{ember::Tensor({2}), ember::Tensor({2})};
  optim::SGD sgd({&p}, {0.1, 0.9});
  optim::SGD other({&p}, {0.1, 0.9});
  CHECK_THROWS_AS(optim::StepLR(sgd, 0), std::invalid_argument);
  CHECK_THROWS_AS(optim::CosineAnnealingLR(sgd, 0), std::invalid_argument);
  CHECK(contains(message_of([&] { optim::LinearLR(sgd, 0.0); }), "starting multiplicative factor"));
  CHECK(contains(message_of([&] { optim::LinearLR(sgd, 1.5); }), "starting multiplicative factor"));
  CHECK(contains(message_of([&] { optim::LinearLR(sgd, 0.5, 1.5); }), "ending multiplicative factor"));
  CHECK(contains(message_of([&] { optim::OneCycleLR(sgd, 0.1, 0); }), "expected positive integer total_steps"));
  CHECK(contains(message_of([&] { optim::OneCycleLR(sgd, 0.1, 10, 1.5); }), "pct_start"));
  NoMomentum plain;
  CHECK(contains(message_of([&] { optim::OneCycleLR(plain, 0.1, 10); }), "must support momentum"));
  CHECK_NOTHROW(optim::OneCycleLR(plain, 0.1, 10, 0.3, optim::AnnealStrategy::cos, 25, 1e4, false, false));
  CHECK(contains(message_of([&] { optim::ReduceLROnPlateau(sgd, optim::PlateauMode::min, 1.0); }), "factor should be < 1.0"));

  optim::ExponentialLR a(sgd, 0.9);
  optim::ExponentialLR b(other, 0.9);
  CHECK(contains(message_of([&] { optim::SequentialLR(sgd, {&a, &b}, {3}); }), "same optimizer"));
  CHECK(contains(message_of([&] { optim::SequentialLR(sgd, {&a}, {3}); }), "one more than the number of milestone"));

  optim::OneCycleLR cycle(sgd, 0.1, 3);
  for (int i = 0; i < 3; ++i) cycle.step();
  CHECK(contains(message_of([&] { cycle.step(); }), "tried to step 4 times"));
  CHECK(contains(message_of([&] { a.load_state_dict({{"last_epoch", "2"}}); }), "missing 'base_lr'"));
  CHECK(contains(message_of([&] { a.load_state_dict({{"last_epoch", "x"}, {"base_lr", "1"}, {"last_lr", "1"}}); }),
                 "not a number"));
}
