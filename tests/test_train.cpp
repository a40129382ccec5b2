// The training loop: learning a small separable problem, the best checkpoint, NaN detection, metrics,
// progress output, allocation-free warmed-up steps, and a resumed run that equals an uninterrupted one.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <ember/data/dataloader.hpp>
#include <ember/data/mix.hpp>
#include <ember/io/image.hpp>
#include <ember/io/checkpoint.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/nn/nn.hpp>
#include <ember/loss/bce_with_logits.hpp>
#include <ember/loss/mse.hpp>
#include <ember/optim/adam.hpp>
#include <ember/optim/rmsprop.hpp>
#include <ember/optim/scheduler.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/classifier.hpp>
#include <ember/train/ema.hpp>
#include <ember/train/evaluate.hpp>
#include <ember/train/fit.hpp>
#include <ember/train/metrics.hpp>
#include <ember/train/progress.hpp>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "bad_input.hpp"

namespace fs = std::filesystem;
using ember::Tensor;
using ember::TensorT;
namespace nn = ember::nn;
namespace train = ember::train;
namespace data = ember::data;

namespace {

std::string tmp_path(const std::string& name) {
  const fs::path dir = fs::path(EMBER_TEST_TMP_DIR) / "train";
  fs::create_directories(dir);
  return (dir / name).string();
}

struct Batch {
  Tensor input;  // N x 1 x 2 x 2
  std::vector<std::int64_t> target;
};

// Batches of three Gaussian blobs in 4-d (one per class), built once. Iterating yields references, so the
// loader allocates nothing. With shuffle, epoch e's batch order comes from seed + e (set by fit's set_epoch).
class BlobLoader {
 public:
  BlobLoader(std::int64_t samples, std::int64_t batch_size, std::uint64_t seed, bool shuffle)
      : seed_(seed), shuffle_(shuffle) {
    ember::Generator gen(seed);
    const float centers[3][4] = {{2, 0, 0, 1}, {-1, 2, 0, -1}, {0, -2, 2, 0}};
    for (std::int64_t first = 0; first < samples; first += batch_size) {
      const std::int64_t n = std::min(batch_size, samples - first);
      Batch b{Tensor({n, 1, 2, 2}), {}};
      for (std::int64_t i = 0; i < n; ++i) {
        const auto c = static_cast<std::int64_t>(gen.randint(3));
        b.target.push_back(c);
        for (int j = 0; j < 4; ++j) b.input[i * 4 + j] = centers[c][j] + 0.6f * static_cast<float>(gen.normal());
      }
      batches_.push_back(std::move(b));
    }
    order_.resize(batches_.size());
    set_epoch(0);
  }

  void set_epoch(std::int64_t epoch) {
    std::iota(order_.begin(), order_.end(), std::size_t(0));
    if (shuffle_) {
      ember::Generator gen(seed_ * 1000003u + static_cast<std::uint64_t>(epoch));
      gen.shuffle(order_.begin(), order_.end());
    }
  }

  struct Iterator {
    const BlobLoader* loader;
    std::size_t i;
    const Batch& operator*() const { return loader->batch(i); }
    Iterator& operator++() {
      ++i;
      return *this;
    }
    bool operator!=(const Iterator& o) const { return i != o.i; }
  };
  Iterator begin() const { return {this, 0}; }
  Iterator end() const { return {this, batches_.size()}; }
  std::size_t size() const { return batches_.size(); }
  const Batch& batch(std::size_t i) const { return poisoned_ == i ? poison_ : batches_[order_[i]]; }

  // Every label moves to the next class: a validation set the model now gets wrong.
  void relabel() {
    for (auto& b : batches_)
      for (auto& t : b.target) t = (t + 1) % 3;
  }

  // Batch position i of the current order holds NaNs (from now on).
  void poison(std::size_t i) {
    poisoned_ = i;
    poison_ = batches_[order_[i]];
    poison_.input[0] = std::numeric_limits<float>::quiet_NaN();
  }

 private:
  std::vector<Batch> batches_;
  std::vector<std::size_t> order_;
  std::uint64_t seed_;
  bool shuffle_;
  std::size_t poisoned_ = static_cast<std::size_t>(-1);
  Batch poison_;
};

template <typename T>
nn::SequentialT<T> make_net(std::uint64_t seed) {
  ember::Generator gen(seed);
  nn::SequentialT<T> net("Net", {});
  net.add("flatten", nn::FlattenT<T>());
  net.add("fc1", nn::LinearT<T>(4, 8, true, gen));
  net.add("relu1", nn::ReLUT<T>());
  net.add("fc2", nn::LinearT<T>(8, 3, true, gen));
  return net;
}

// A linear classifier written here with Eigen: no hidden allocations and no ReLU (which would hide a NaN),
// so the allocation and NaN tests see only what fit itself does.
template <typename T>
class TinyLinear : public nn::ModuleT<T> {
 public:
  TinyLinear(std::int64_t in, std::int64_t out, std::uint64_t seed) : in_(in), out_(out) {
    ember::Generator gen(seed);
    w_ = {TensorT<T>({out, in}), TensorT<T>({out, in})};
    b_ = {TensorT<T>({out}), TensorT<T>({out})};
    for (auto& v : w_.value) v = static_cast<T>(gen.uniform(-0.5, 0.5));
  }
  // x [N, ...] with in features per sample -> [N, out]
  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    predict_into(x, out);
    input_.assign(x);
  }
  void backward_into(const TensorT<T>& g, TensorT<T>* grad_in) override {
    const std::int64_t n = g.size(0);
    w_.grad.matrix().noalias() += g.matrix().transpose() * input_.matrix(n, in_);
    b_.grad.vector() += g.matrix().colwise().sum().transpose();
    if (grad_in) {
      grad_in->resize(input_.shape());
      grad_in->matrix(n, in_).noalias() = g.matrix() * w_.value.matrix();
    }
  }
  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    const std::int64_t n = x.size(0);
    if (out.dim() != 2 || out.size(0) != n || out.size(1) != out_) out.resize({n, out_});
    out.matrix().noalias() = x.matrix(n, in_) * w_.value.matrix().transpose();
    out.matrix().rowwise() += b_.value.vector().transpose();
  }
  std::string type_name() const override { return "TinyLinear"; }
  void collect_parameters(const std::string& prefix, typename nn::ModuleT<T>::NamedParameters& out) override {
    out.emplace_back(prefix + "weight", &w_);
    out.emplace_back(prefix + "bias", &b_);
  }

 private:
  std::int64_t in_, out_;
  nn::ParameterT<T> w_, b_;
  TensorT<T> input_;
};

template <typename T>
std::vector<TensorT<T>> state_of(nn::ModuleT<T>& m) {
  std::vector<TensorT<T>> out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(p->value);
  for (auto& [n, b] : m.named_buffers()) out.push_back(*b);
  return out;
}

train::FitOptions quiet(std::int64_t epochs) {
  train::FitOptions o;
  o.epochs = epochs;
  o.progress = train::ProgressMode::off;
  return o;
}

}  // namespace

TEST_CASE("fit learns a small separable problem and reports every epoch") {
  BlobLoader train_data(480, 16, 1, true), val_data(120, 32, 2, false);
  auto net = make_net<float>(3);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
  std::ostringstream log;
  auto opts = quiet(8);
  opts.log = &log;
  std::int64_t steps = 0, epochs_seen = 0;
  opts.on_step = [&](const train::StepInfo& s) {
    ++steps;
    CHECK(s.steps_per_epoch == 30);
    CHECK(s.step == (steps - 1) % 30 + 1);
    CHECK(s.global_step == steps);
  };
  opts.on_epoch = [&](const train::EpochStats& e) { CHECK(e.epoch == ++epochs_seen); };
  const train::History h = train::fit(net, loss, opt, train_data, val_data, opts);
  REQUIRE(h.epochs.size() == 8);
  CHECK(steps == 8 * 30);
  CHECK(h.epochs.back().val_accuracy >= 0.95);
  CHECK(h.epochs.back().train_loss < h.epochs.front().train_loss);
  CHECK(h.epochs.back().images_per_second > 0);
  CHECK(net.is_training());
  MESSAGE("final val accuracy " << h.epochs.back().val_accuracy << ", val loss " << h.epochs.back().val_loss);
  // One plain line per epoch, no progress bar.
  const std::string text = log.str();
  CHECK(std::count(text.begin(), text.end(), '\n') == 8);
  CHECK(text.find("epoch 8/8") != std::string::npos);
  CHECK(text.find("val_acc") != std::string::npos);
  CHECK(text.find('\r') == std::string::npos);

  // evaluate agrees with the last epoch, and changes nothing in the model.
  const auto before = state_of(net);
  const train::Evaluation ev = train::evaluate(net, val_data);
  CHECK(state_of(net) == before);
  CHECK(ev.loss == doctest::Approx(h.epochs.back().val_loss).epsilon(1e-12));
  CHECK(ev.accuracy == h.epochs.back().val_accuracy);
  CHECK(ev.samples == 120);
  CHECK(ev.confusion.total() == 120);
  CHECK(ev.precision.size() == 3);
  CHECK(ev.recall.size() == 3);
}

TEST_CASE("the kept checkpoint is the epoch with the lowest validation loss") {
  BlobLoader train_data(240, 16, 4, true), val_data(90, 30, 5, false);
  auto net = make_net<float>(6);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
  auto opts = quiet(6);
  opts.checkpoint_path = tmp_path("best.safetensors");
  fs::remove(opts.checkpoint_path);
  opts.metadata = {{"experiment", "blobs"}};
  // From epoch 4 on the validation labels are wrong, so later epochs validate worse.
  opts.on_epoch = [&](const train::EpochStats& e) {
    if (e.epoch == 3) val_data.relabel();
  };
  const train::History h = train::fit(net, loss, opt, train_data, val_data, opts);
  std::int64_t argmin = 0;
  double lowest = std::numeric_limits<double>::infinity();
  for (const auto& e : h.epochs)
    if (e.val_loss < lowest) {
      lowest = e.val_loss;
      argmin = e.epoch;
    }
  CHECK(h.best_epoch == argmin);
  CHECK(h.best_val_loss == lowest);
  CHECK(argmin <= 3);
  for (const auto& e : h.epochs) CHECK(e.best == (e.val_loss < [&] {
                                         double m = std::numeric_limits<double>::infinity();
                                         for (const auto& f : h.epochs)
                                           if (f.epoch < e.epoch) m = std::min(m, f.val_loss);
                                         return m;
                                       }()));

  auto reloaded = make_net<float>(7);
  const auto meta = ember::io::load_checkpoint(reloaded, opts.checkpoint_path);
  CHECK(meta.at("epoch") == std::to_string(argmin));
  CHECK(meta.at("experiment") == "blobs");
  CHECK(std::stod(meta.at("val_loss")) == lowest);
  val_data.relabel();
  val_data.relabel();  // three moves: the labels are right again
  CHECK(train::evaluate(reloaded, val_data).loss == lowest);
}

TEST_CASE("a NaN loss stops training with an error naming the epoch and step") {
  BlobLoader train_data(160, 16, 8, false), val_data(32, 32, 9, false);
  TinyLinear<float> net(4, 3, 10);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05});
  auto opts = quiet(3);
  opts.on_epoch = [&](const train::EpochStats& e) {
    if (e.epoch == 1) train_data.poison(3);
  };
  net.eval();
  try {
    train::fit(net, loss, opt, train_data, val_data, opts);
    FAIL("no throw");
  } catch (const train::training_error& e) {
    CHECK(e.epoch() == 2);
    CHECK(e.step() == 4);
    CHECK(std::isnan(e.loss()));
    const std::string msg = e.what();
    CHECK(msg.find("epoch 2, step 4 of 10") != std::string::npos);
    CHECK(msg.find("NaN") != std::string::npos);
  }
  CHECK_FALSE(net.is_training());  // the mode fit found is restored, also on error
}

// Float targets: y = A x + b + noise for a 4-d x (one 1 x 2 x 2 image), 3 outputs; a fixed set of batches.
struct ValueBatch {
  Tensor input;   // N x 1 x 2 x 2
  Tensor target;  // N x 3
};

class RegressionLoader {
 public:
  RegressionLoader(std::int64_t samples, std::int64_t batch_size, std::uint64_t seed, bool binary) {
    ember::Generator gen(seed);
    const float a[3][4] = {{1, -2, 0.5f, 0}, {0, 1, 1, -1}, {-1, 0, 0, 2}};
    for (std::int64_t first = 0; first < samples; first += batch_size) {
      const std::int64_t n = std::min(batch_size, samples - first);
      ValueBatch b{Tensor({n, 1, 2, 2}), Tensor({n, 3})};
      for (auto& v : b.input) v = static_cast<float>(gen.normal());
      for (std::int64_t i = 0; i < n; ++i)
        for (int k = 0; k < 3; ++k) {
          float y = 0.5f * static_cast<float>(k) + 0.05f * static_cast<float>(gen.normal());
          for (int j = 0; j < 4; ++j) y += a[k][j] * b.input[i * 4 + j];
          b.target[i * 3 + k] = binary ? (y > 0.5f * static_cast<float>(k) ? 1.0f : 0.0f) : y;
        }
      batches_.push_back(std::move(b));
    }
  }
  std::vector<ValueBatch>::const_iterator begin() const { return batches_.begin(); }
  std::vector<ValueBatch>::const_iterator end() const { return batches_.end(); }
  std::size_t size() const { return batches_.size(); }

 private:
  std::vector<ValueBatch> batches_;
};

TEST_CASE("fit and evaluate take float targets: MSELoss and BCEWithLogitsLoss, no accuracy") {
  RegressionLoader train_data(256, 16, 31, false), val_data(64, 32, 32, false);
  auto net = make_net<float>(33);
  nn::MSELoss mse;
  ember::optim::Adam opt(net.parameters(), {0.01});
  std::ostringstream log;
  auto opts = quiet(6);
  opts.log = &log;
  const train::History h = train::fit(net, mse, opt, train_data, val_data, opts);
  CHECK(h.epochs.back().val_loss < 0.25 * h.epochs.front().val_loss);
  CHECK(std::isnan(h.epochs.back().train_accuracy));
  CHECK(std::isnan(h.epochs.back().val_accuracy));
  CHECK(log.str().find("val_acc") == std::string::npos);
  const train::Evaluation ev = train::evaluate(net, val_data, nn::MSELoss());
  CHECK(ev.loss == doctest::Approx(h.epochs.back().val_loss).epsilon(1e-12));
  CHECK(ev.samples == 64);
  CHECK(ev.precision.empty());
  MESSAGE("MSE regression: val loss " << h.epochs.front().val_loss << " -> " << h.epochs.back().val_loss);

  RegressionLoader train_bin(256, 16, 34, true), val_bin(64, 32, 35, true);
  auto net2 = make_net<double>(36);  // a double model on float targets
  nn::BCEWithLogitsLossT<double> bce;
  ember::optim::AdamT<double> opt2(net2.parameters(), {0.01});
  const train::History h2 = train::fit(net2, bce, opt2, train_bin, val_bin, quiet(6));
  CHECK(h2.epochs.back().val_loss < 0.5 * h2.epochs.front().val_loss);
  // early stopping on val_accuracy needs class targets
  auto opts3 = quiet(2);
  opts3.early_stopping = train::EarlyStopping{train::Monitor::val_accuracy};
  const std::string msg = scratch::message_of<std::invalid_argument>(
      [&] { train::fit(net2, bce, opt2, train_bin, val_bin, opts3); });
  CHECK(msg.find("monitor val_loss") != std::string::npos);
}

TEST_CASE("fit steps a schedule per batch (OneCycleLR) or per epoch, and ReduceLROnPlateau on the monitored metric") {
  BlobLoader train_data(160, 16, 41, true), val_data(64, 32, 42, false);
  auto net = make_net<float>(43);
  nn::CrossEntropyLoss loss;
  {
    ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
    ember::optim::OneCycleLR sched(opt, 0.1, 3 * 10);
    auto opts = quiet(3);
    opts.scheduler = &sched;
    std::vector<double> lrs;
    opts.on_step = [&](const train::StepInfo&) { lrs.push_back(opt.lr()); };
    train::fit(net, loss, opt, train_data, val_data, opts);
    CHECK(sched.last_epoch() == 30);
    CHECK(lrs.front() == doctest::Approx(0.1 / 25));  // the lr of step 1 is the schedule's first
    CHECK(lrs[1] > lrs[0]);
  }
  {
    ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
    ember::optim::StepLR sched(opt, 2, 0.5);
    auto opts = quiet(5);
    opts.scheduler = &sched;
    std::vector<double> epoch_lrs;
    opts.on_epoch = [&](const train::EpochStats& e) { epoch_lrs.push_back(e.lr); };
    train::fit(net, loss, opt, train_data, val_data, opts);
    CHECK(sched.last_epoch() == 5);
    CHECK(epoch_lrs == std::vector<double>{0.05, 0.05, 0.025, 0.025, 0.0125});
    ember::optim::StepLR per_batch(opt, 10, 0.5);
    opts.scheduler = &per_batch;
    opts.schedule_every = train::ScheduleEvery::batch;
    opts.on_epoch = nullptr;
    train::fit(net, loss, opt, train_data, val_data, opts);
    CHECK(per_batch.last_epoch() == 50);
  }
  {
    ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
    ember::optim::ReduceLROnPlateau plateau(opt, ember::optim::PlateauMode::max, 0.5, 0);
    auto opts = quiet(4);
    opts.plateau = &plateau;
    opts.plateau_monitor = train::Monitor::val_accuracy;
    double best = -1;
    opts.on_epoch = [&](const train::EpochStats& e) { best = std::max(best, e.val_accuracy); };
    train::fit(net, loss, opt, train_data, val_data, opts);
    CHECK(plateau.last_epoch() == 4);
    CHECK(plateau.best() == best);
  }
}

TEST_CASE("early stopping stops after `patience` epochs without improvement and says why") {
  BlobLoader train_data(160, 16, 51, true), val_data(64, 32, 52, false);
  auto net = make_net<float>(53);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
  auto opts = quiet(20);
  opts.early_stopping = train::EarlyStopping{train::Monitor::val_loss, 0.0, 2};
  // From epoch 3 on, the validation labels are wrong: its loss climbs.
  opts.on_epoch = [&](const train::EpochStats& e) {
    if (e.epoch == 2) val_data.relabel();
  };
  std::ostringstream log;
  opts.log = &log;
  const train::History h = train::fit(net, loss, opt, train_data, val_data, opts);
  CHECK(h.stopped_early);
  CHECK(h.stopped_epoch == 4);
  CHECK(h.epochs.size() == 4);
  CHECK(h.stop_reason.find("val_loss did not improve") != std::string::npos);
  CHECK(h.stop_reason.find("for 2 epochs (patience 2; best") != std::string::npos);
  CHECK(h.stop_reason.find("at epoch 2); stopped after epoch 4") != std::string::npos);
  CHECK(log.str().find("early stopping: ") != std::string::npos);

  train::EarlyStopper acc({train::Monitor::val_accuracy, 0.01, 1});
  CHECK_FALSE(acc.update(0.5, 1));
  CHECK_FALSE(acc.update(0.52, 2));
  CHECK(acc.update(0.525, 3));  // not by more than min_delta
  CHECK(acc.best() == 0.52);
  train::EarlyStopper nan_rule({});
  CHECK(nan_rule.update(std::nan(""), 1));  // patience 0: a NaN never improves
  CHECK_THROWS_AS(train::EarlyStopper({train::Monitor::val_loss, -1.0}), std::invalid_argument);
  CHECK_THROWS_AS(train::EarlyStopper({train::Monitor::val_loss, 0.0, -1}), std::invalid_argument);
}

// AdamW with a warm-up + cosine schedule (per epoch), ReduceLROnPlateau and early stopping, or OneCycleLR per
// batch: 2 + 3 epochs through the last checkpoint equal 5 uninterrupted.
template <typename MakeSchedule>
void check_resume_with_schedule(MakeSchedule make, bool early) {
  const ember::optim::AdamWOptions adamw{0.02, 0.9, 0.99, 1e-8, 0.05};
  auto setup = [&](ember::optim::AdamW& opt, auto& holder, train::FitOptions& opts) {
    holder = make(opt);
    opts.scheduler = holder->scheduler;
    opts.plateau = holder->plateau.get();
    if (early) opts.early_stopping = train::EarlyStopping{train::Monitor::val_loss, 0.0, 10};
  };
  BlobLoader train_a(160, 16, 61, true), val_a(64, 32, 62, false);
  auto a = make_net<float>(63);
  nn::CrossEntropyLoss loss_a(0.05);
  ember::optim::AdamW opt_a(a.parameters(), adamw);
  decltype(make(opt_a)) holder_a;
  auto opts_a = quiet(5);
  setup(opt_a, holder_a, opts_a);
  const train::History ha = train::fit(a, loss_a, opt_a, train_a, val_a, opts_a);

  const std::string last = tmp_path("last_sched.safetensors"), best = tmp_path("best_sched.safetensors");
  {
    auto b = make_net<float>(63);
    nn::CrossEntropyLoss loss_b(0.05);
    ember::optim::AdamW opt_b(b.parameters(), adamw);
    decltype(make(opt_b)) holder_b;
    auto opts = quiet(2);
    setup(opt_b, holder_b, opts);
    opts.last_checkpoint_path = last;
    opts.checkpoint_path = best;
    train::fit(b, loss_b, opt_b, train_a, val_a, opts);
  }
  auto c = make_net<float>(99);
  nn::CrossEntropyLoss loss_c(0.05);
  ember::optim::AdamW opt_c(c.parameters(), adamw);
  decltype(make(opt_c)) holder_c;
  auto opts = quiet(5);
  setup(opt_c, holder_c, opts);
  const auto meta = ember::io::load_checkpoint(c, last, &opt_c);
  CHECK(meta.count("scheduler.last_epoch") == 1);
  CHECK(ember::io::load_checkpoint(c, best).count("scheduler.last_epoch") == 1);  // the best has it too
  // ... but no optimiser state: loading it with one (a resume from the best) is refused, not silently fresh.
  CHECK_THROWS_AS(ember::io::load_checkpoint(c, best, &opt_c), ember::format_error);
  ember::io::load_checkpoint(c, last, &opt_c);
  opts.resume_from(meta);
  const train::History hc = train::fit(c, loss_c, opt_c, train_a, val_a, opts);
  REQUIRE(hc.epochs.size() == 3);
  CHECK(state_of(c) == state_of(a));
  CHECK(opt_c.lr() == opt_a.lr());
  for (int k = 0; k < 3; ++k) {
    CHECK(hc.epochs[static_cast<std::size_t>(k)].val_loss == ha.epochs[static_cast<std::size_t>(k + 2)].val_loss);
    CHECK(hc.epochs[static_cast<std::size_t>(k)].lr == ha.epochs[static_cast<std::size_t>(k + 2)].lr);
  }
  // Resuming without the schedule the checkpoint has is an error, not a silently different run.
  auto d = make_net<float>(99);
  ember::optim::AdamW opt_d(d.parameters(), adamw);
  auto bare = quiet(5);
  bare.resume_from(ember::io::load_checkpoint(d, last, &opt_d));
  nn::CrossEntropyLoss loss_d;
  const std::string msg = scratch::message_of<std::invalid_argument>(
      [&] { train::fit(d, loss_d, opt_d, train_a, val_a, bare); });
  CHECK(msg.find("no FitOptions::scheduler, but the checkpoint has its 'scheduler.' state") != std::string::npos);
}

struct Schedules {
  std::unique_ptr<ember::optim::LinearLR> warm;
  std::unique_ptr<ember::optim::CosineAnnealingLR> cosine;
  std::unique_ptr<ember::optim::SequentialLR> seq;
  std::unique_ptr<ember::optim::OneCycleLR> one_cycle;
  std::unique_ptr<ember::optim::ReduceLROnPlateau> plateau;
  ember::optim::LRScheduler* scheduler = nullptr;
};

TEST_CASE("a run with schedules and early stopping resumed through a checkpoint continues bit for bit") {
  SUBCASE("warm-up + cosine per epoch, ReduceLROnPlateau, early stopping") {
    check_resume_with_schedule(
        [](ember::optim::AdamW& opt) {
          auto s = std::make_unique<Schedules>();
          s->warm = std::make_unique<ember::optim::LinearLR>(opt, 0.1, 1.0, 2);
          s->cosine = std::make_unique<ember::optim::CosineAnnealingLR>(opt, 3);
          s->seq = std::make_unique<ember::optim::SequentialLR>(
              opt, std::vector<ember::optim::LRScheduler*>{s->warm.get(), s->cosine.get()},
              std::vector<std::int64_t>{2});
          s->scheduler = s->seq.get();
          s->plateau = std::make_unique<ember::optim::ReduceLROnPlateau>(opt, ember::optim::PlateauMode::min, 0.5, 0);
          return s;
        },
        true);
  }
  SUBCASE("OneCycleLR per batch") {
    check_resume_with_schedule(
        [](ember::optim::AdamW& opt) {
          auto s = std::make_unique<Schedules>();
          s->one_cycle = std::make_unique<ember::optim::OneCycleLR>(opt, 0.05, 5 * 10);
          s->scheduler = s->one_cycle.get();
          return s;
        },
        false);
  }
}

TEST_CASE("resuming from a checkpoint continues bit for bit like an uninterrupted run") {
  const ember::optim::SGDOptions sgd{0.05, 0.9, 0.0, 1e-3, true};
  BlobLoader train_a(200, 16, 11, true), val_a(64, 32, 12, false);
  auto a = make_net<float>(13);
  nn::CrossEntropyLoss loss_a(0.05);
  ember::optim::SGD opt_a(a.parameters(), sgd);
  const train::History ha = train::fit(a, loss_a, opt_a, train_a, val_a, quiet(4));

  BlobLoader train_b(200, 16, 11, true), val_b(64, 32, 12, false);
  const std::string last = tmp_path("last.safetensors");
  {
    auto b = make_net<float>(13);
    nn::CrossEntropyLoss loss_b(0.05);
    ember::optim::SGD opt_b(b.parameters(), sgd);
    auto opts = quiet(2);
    opts.last_checkpoint_path = last;
    train::fit(b, loss_b, opt_b, train_b, val_b, opts);
  }
  // A new process, in effect: fresh model (other init), fresh optimiser, fresh loss, state from the file.
  auto c = make_net<float>(99);
  nn::CrossEntropyLoss loss_c(0.05);
  ember::optim::SGD opt_c(c.parameters(), sgd);
  auto opts = quiet(4);
  opts.resume_from(ember::io::load_checkpoint(c, last, &opt_c));
  CHECK(opts.start_epoch == 2);
  const train::History hc = train::fit(c, loss_c, opt_c, train_b, val_b, opts);
  REQUIRE(hc.epochs.size() == 2);
  CHECK(hc.epochs[0].epoch == 3);
  CHECK(state_of(c) == state_of(a));
  for (std::size_t i = 0; i < opt_a.params().size(); ++i)
    CHECK(opt_c.state().momentum_buffers[i] == opt_a.state().momentum_buffers[i]);
  for (int k = 0; k < 2; ++k) {
    CHECK(hc.epochs[static_cast<std::size_t>(k)].train_loss == ha.epochs[static_cast<std::size_t>(k + 2)].train_loss);
    CHECK(hc.epochs[static_cast<std::size_t>(k)].val_loss == ha.epochs[static_cast<std::size_t>(k + 2)].val_loss);
  }
  CHECK(hc.best_epoch == ha.best_epoch);
  CHECK(hc.best_val_loss == ha.best_val_loss);
  double max_diff = 0;
  const auto sa = state_of(a), sc = state_of(c);
  for (std::size_t t = 0; t < sa.size(); ++t)
    for (std::int64_t i = 0; i < sa[t].numel(); ++i) max_diff = std::max(max_diff, double(std::abs(sa[t][i] - sc[t][i])));
  MESSAGE("resumed (2 + 2 epochs) vs uninterrupted (4 epochs): max |parameter difference| " << max_diff);
}

TEST_CASE("a warmed-up training step allocates nothing" * kAllocSkip) {
  BlobLoader train_data(320, 16, 14, false), val_data(32, 32, 15, false);
  TinyLinear<float> net(4, 3, 16);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05, 0.9, 0.0, 1e-4});
  auto opts = quiet(2);
  long last = 0;
  std::int64_t checked = 0, allocating = 0;
  opts.on_step = [&](const train::StepInfo& s) {
    const long now = alloc_count();
    if (s.global_step > 2 && s.step > 1) {
      ++checked;
      allocating += now != last;
    }
    last = alloc_count();
  };
  const auto h = train::fit(net, loss, opt, train_data, val_data, opts);
  CHECK(h.epochs.back().val_accuracy >= 0.9);
  CHECK(checked > 30);
  CHECK(allocating == 0);
}

TEST_CASE("a warmed-up step with a weighted loss, AdamW groups and a per-batch schedule allocates nothing" * kAllocSkip) {
  BlobLoader train_data(320, 16, 14, false), val_data(32, 32, 15, false);
  TinyLinear<float> net(4, 3, 16);
  nn::CrossEntropyLoss loss(nn::CrossEntropyLossOptions{{1.0, 2.0, 0.5}, -100, nn::Reduction::mean, 0.1});
  ember::optim::AdamW opt(ember::optim::weight_decay_groups(net.named_parameters(), ember::optim::AdamWOptions{0.01}));
  ember::optim::OneCycleLR sched(opt, 0.05, 2 * 20);
  auto opts = quiet(2);
  opts.scheduler = &sched;
  long last = 0;
  std::int64_t checked = 0, allocating = 0;
  opts.on_step = [&](const train::StepInfo& s) {
    const long now = alloc_count();
    if (s.global_step > 2 && s.step > 1) {
      ++checked;
      allocating += now != last;
    }
    last = alloc_count();
  };
  train::fit(net, loss, opt, train_data, val_data, opts);
  CHECK(sched.last_epoch() == 40);
  CHECK(checked > 30);
  CHECK(allocating == 0);
}

TEST_CASE("train::Step with fuse_zero_grad: the same updates as zero_grad + step, gradients zero after each") {
  // Large enough (> 16384 values) that SGD's update runs in several chunks, over threads when there are two.
  auto make = [] {
    ember::manual_seed(21);
    return nn::Sequential("Net", {{"fc1", nn::Linear(300, 80)}, {"relu", nn::ReLU()}, {"fc2", nn::Linear(80, 5)}});
  };
  nn::Sequential a = make(), b = make(), c = make();
  nn::CrossEntropyLoss loss_a, loss_b, loss_c;
  ember::optim::SGD opt_a(a.parameters(), {0.05, 0.9, 0.0, 1e-3, true});
  ember::optim::SGD opt_b(b.parameters(), {0.05, 0.9, 0.0, 1e-3, true});
  ember::optim::Adam opt_c(c.parameters(), {});
  train::Step plain(a, loss_a, opt_a), fused(b, loss_b, opt_b);
  train::Step other(c, loss_c, opt_c);
  fused.fuse_zero_grad(true);
  other.fuse_zero_grad(true);  // Adam has no fused pass: the option is ignored
  ember::Generator g(4);
  Tensor x({16, 300});
  std::vector<std::int64_t> y(16);
  for (int step = 0; step < 4; ++step) {
    for (float& v : x) v = static_cast<float>(g.uniform(-1, 1));
    for (auto& t : y) t = static_cast<std::int64_t>(g.next_u64() % 5);
    CHECK(plain(x, y) == fused(x, y));
    other(x, y);
    for (auto* p : b.parameters()) CHECK(p->grad == Tensor(p->grad.shape()));  // zeroed by the update
    CHECK(c.parameters()[0]->grad != Tensor(c.parameters()[0]->grad.shape()));  // Adam: still readable
  }
  const auto pa = a.parameters(), pb = b.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) CHECK(pa[i]->value == pb[i]->value);
  fused.fuse_zero_grad(false);
  fused(x, y);
  CHECK(b.parameters()[0]->grad != Tensor(b.parameters()[0]->grad.shape()));  // readable again
}

TEST_CASE("gradients-ready listeners: a Step's and another (a reducer's) both get every child, each removable") {
  ember::manual_seed(22);
  nn::Sequential net("Net", {{"fc1", nn::Linear(6, 4)}, {"relu", nn::ReLU()}, {"fc2", nn::Linear(4, 3)}});
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05});
  std::vector<std::string> by_step, by_other, by_third;
  const Tensor x = Tensor::ones({2, 6});
  const std::vector<std::int64_t> y = {0, 2};
  const std::vector<std::string> order = {"fc2", "relu", "fc1"};
  const std::size_t other = net.add_gradients_ready_listener([&](const std::string& n, nn::Module& m) {
    CHECK(&m == &net[n]);
    by_other.push_back(n);
  });
  {
    train::Step step(net, loss, opt);
    // Added after the other listener: the one that registers last no longer replaces the first.
    step.gradients_ready([&](const std::string& n, nn::Module&) { by_step.push_back(n); });
    step(x, y);
    CHECK(by_step == order);
    CHECK(by_other == order);
    const std::size_t third = net.add_gradients_ready_listener([&](const std::string& n, nn::Module&) {
      by_third.push_back(n);
    });
    step(x, y);
    CHECK(by_step.size() == 6);
    CHECK(by_other.size() == 6);
    CHECK(by_third == order);
    net.remove_gradients_ready_listener(third);
    step.gradients_ready([&](const std::string& n, nn::Module&) { by_step.push_back("again " + n); });
    step(x, y);
    CHECK(by_step.size() == 9);
    CHECK(by_step.back() == "again fc1");
    CHECK(by_other.size() == 9);
    CHECK(by_third.size() == 3);
  }
  // The step removed its own listener as it ended; the other stays.
  net.backward(Tensor::ones(net.forward(x).shape()));
  CHECK(by_step.size() == 9);
  CHECK(by_other.size() == 12);
  // A copy of the model starts without listeners.
  nn::Sequential copy = net;
  copy.backward(Tensor::ones(copy.forward(x).shape()));
  CHECK(by_other.size() == 12);
  net.remove_gradients_ready_listener(other);
  net.backward(Tensor::ones(net.forward(x).shape()));
  CHECK(by_other.size() == 12);
}

TEST_CASE("a double model trains from float batches") {
  BlobLoader train_data(160, 16, 17, true), val_data(64, 32, 18, false);
  auto net = make_net<double>(19);
  nn::CrossEntropyLossT<double> loss;
  ember::optim::SGDT<double> opt(net.parameters(), {0.05, 0.9});
  const auto h = train::fit(net, loss, opt, train_data, val_data, quiet(5));
  CHECK(h.epochs.back().val_accuracy >= 0.9);
}

TEST_CASE("the progress bar draws in place on the stream it is given") {
  BlobLoader train_data(64, 16, 20, false), val_data(32, 32, 21, false);
  auto net = make_net<float>(22);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05});
  std::ostringstream bar, log;
  auto opts = quiet(1);
  opts.progress = train::ProgressMode::on;
  opts.progress_stream = &bar;
  opts.log = &log;
  train::fit(net, loss, opt, train_data, val_data, opts);
  CHECK(bar.str().find('\r') != std::string::npos);
  CHECK(bar.str().find("4/4") != std::string::npos);
  CHECK(bar.str().find("img/s") != std::string::npos);
  CHECK(bar.str().find("left") != std::string::npos);
  CHECK(log.str().find("epoch 1/1") != std::string::npos);

  train::ProgressBar pb(bar, 938, "epoch 3/20", 0.0, 10);
  CHECK(pb.render(469, 0.5, 1234.4, 75) == "epoch 3/20 [#####.....] 469/938 loss 0.5000 1234 img/s 1:15 left");
  CHECK(train::format_duration(42) == "42s");
  CHECK(train::format_duration(3723) == "1:02:03");
}

TEST_CASE("metrics: argmax, accuracy, confusion matrix, precision and recall") {
  const Tensor scores = Tensor::from({4, 3}, {0.1f, 0.7f, 0.2f,  //
                                              5, 5, 1,           // tie: the first wins
                                              -1, -2, -0.5f,     //
                                              0, std::numeric_limits<float>::quiet_NaN(), 9});
  CHECK(train::argmax_rows(scores) == std::vector<std::int64_t>{1, 0, 2, 1});
  const std::vector<std::int64_t> targets{1, 1, 2, 0};
  CHECK(train::accuracy(scores, targets) == 0.5);
  CHECK_THROWS_AS(train::accuracy(std::vector<std::int64_t>{1}, targets), std::invalid_argument);
  CHECK_THROWS_AS(train::argmax_rows(Tensor({3})), ember::shape_error);

  // predictions 1 0 2 1 against targets 1 1 2 0, over 4 classes (class 3 absent).
  const auto m = train::confusion_matrix({1, 0, 2, 1}, targets, 4);
  CHECK(m.at(1, 1) == 1);
  CHECK(m.at(1, 0) == 1);
  CHECK(m.at(2, 2) == 1);
  CHECK(m.at(0, 1) == 1);
  CHECK(m.total() == 4);
  CHECK(m.accuracy() == 0.5);
  CHECK(m.precision(1) == 0.5);  // predicted 1 twice, right once
  CHECK(m.recall(1) == 0.5);     // class 1 twice, found once
  CHECK(m.precision(0) == 0.0);
  CHECK(m.recall(2) == 1.0);
  CHECK(m.precision(3) == 0.0);  // never predicted: 0, as sklearn's zero_division=0
  CHECK(m.recall(3) == 0.0);
  CHECK(m.precision() == std::vector<double>{0.0, 0.5, 1.0, 0.0});
  CHECK_THROWS_AS(train::confusion_matrix({4}, {0}, 4), std::invalid_argument);
  CHECK_THROWS_AS(train::confusion_matrix({0, 1}, {0}, 4), std::invalid_argument);
}

TEST_CASE("fit checks the data's class count against the model's output width before the first step") {
  data::Dataset ds;
  ds.images = Tensor({48, 1, 4, 4});
  for (std::int64_t i = 0; i < 48; ++i) ds.labels.push_back(i % 24);
  ds.num_classes = 24;
  data::DataLoader train_loader(ds, {16}), val_loader(ds, {16});
  ember::manual_seed(22);
  nn::Sequential net({{"flatten", nn::Flatten()}, {"fc", nn::Linear(16, 10)}});  // 10 outputs, 24 classes
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.1});
  const Tensor before = net.named_parameters()[0].second->value;
  auto opts = quiet(1);
  int steps = 0;
  opts.on_step = [&](const train::StepInfo&) { ++steps; };
  const std::string msg = [&] {
    try {
      train::fit(net, loss, opt, train_loader, val_loader, opts);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  }();
  CHECK(msg.find("24 classes") != std::string::npos);
  CHECK(msg.find("[1, 10]") != std::string::npos);
  CHECK(steps == 0);
  CHECK(net.named_parameters()[0].second->value == before);  // no update ran
}

// ---- Bad input (the policy: docs/robustness.md) ----------------------------------------------------------

namespace bad_input {

TEST_CASE("fit: NaN or Inf in the inputs stops training with training_error naming the epoch and step") {
  data::Dataset ds;
  ds.images = random_tensor({12, 1, 4, 4}, 16);
  ds.labels = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
  ds.num_classes = 3;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    data::Dataset poisoned = ds;
    poisoned.images[7 * 16 + 5] = bad;  // sample 7: batch 3 of 4 (batch size 3, no shuffle)
    data::DataLoader loader(poisoned, {3});
    // A linear model: the test is about fit, not about which layers carry NaN.
    nn::Sequential net = flat_linear(17);
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(net.parameters(), {0.01f});
    train::FitOptions opts;
    opts.epochs = 2;
    opts.progress = train::ProgressMode::off;
    try {
      train::fit(net, loss, opt, loader, loader, opts);
      FAIL("no training_error");
    } catch (const train::training_error& e) {
      CHECK(e.epoch() == 1);
      CHECK(e.step() == 3);
      CHECK(contains(e.what(), "epoch 1, step 3 of 4"));
      CHECK(!std::isfinite(e.loss()));
    }
  }
}

}  // namespace bad_input

TEST_CASE("ExponentialMovingAverage: the first update copies, then ema = decay ema + (1 - decay) p; buffers copied") {
  ember::Generator gen(3);
  nn::Sequential model("Net", {});
  model.add("fc", nn::Linear(3, 2, true, gen));
  model.add("bn", nn::BatchNorm1d(2));
  const std::vector<Tensor> start = state_of(model);
  train::ExponentialMovingAverage ema(model, 0.9);
  CHECK(ema.decay() == 0.9);
  auto shift = [&](float by) {
    for (auto& [n, p] : model.named_parameters())
      for (float& v : p->value) v += by;
  };
  ema.update(model);  // copies
  shift(1.0f);
  ema.update(model);  // p0 + 0.1
  shift(2.0f);        // p0 + 3
  for (auto& [n, b] : model.named_buffers())
    if (n == "bn.running_mean") b->fill(5.0f);
  ema.update(model);  // 0.9 (p0 + 0.1) + 0.1 (p0 + 3) = p0 + 0.39
  CHECK(ema.num_updates() == 3);
  const Tensor w0 = start[0];
  const Tensor avg = ema.parameter("fc.weight");
  for (std::int64_t i = 0; i < w0.numel(); ++i) CHECK(avg[i] == doctest::Approx(w0[i] + 0.39f).epsilon(1e-6));
  // copy_to: averaged parameters, the model's latest buffers, into a fresh model of the same structure.
  ember::Generator other(99);
  nn::Sequential fresh("Net", {});
  fresh.add("fc", nn::Linear(3, 2, true, other));
  fresh.add("bn", nn::BatchNorm1d(2));
  ema.copy_to(fresh);
  const auto got = state_of(fresh);
  for (std::size_t k = 0; k < 2; ++k)  // fc.weight, fc.bias
    for (std::int64_t i = 0; i < got[k].numel(); ++i) CHECK(got[k][i] == doctest::Approx(start[k][i] + 0.39f).epsilon(1e-6));
  for (auto& [n, b] : fresh.named_buffers())
    if (n == "bn.running_mean") CHECK(*b == Tensor::from({2}, {5.0f, 5.0f}));
  // Decay 0 follows the model; decay 1 keeps the first copy.
  train::ExponentialMovingAverage follow(model, 0.0), keep(model, 1.0);
  follow.update(model), keep.update(model);
  shift(1.0f);
  follow.update(model), keep.update(model);
  CHECK(follow.parameter("fc.bias") == state_of(model)[1]);
  CHECK(keep.parameter("fc.bias") == [&] { Tensor t = state_of(model)[1]; for (float& v : t) v -= 1.0f; return t; }());
  // Another structure is refused, naming the problem.
  nn::Sequential small("Net", {});
  small.add("fc", nn::Linear(3, 2, true, other));
  CHECK_THROWS_AS(ema.update(small), std::invalid_argument);
  CHECK_THROWS_AS(ema.copy_to(small), std::invalid_argument);
  CHECK_THROWS_AS(train::ExponentialMovingAverage(model, 1.5), std::invalid_argument);
}

TEST_CASE("ExponentialMovingAverage during fit: one update per step through on_step") {
  BlobLoader train_loader(256, 32, 1, true), val_loader(128, 64, 2, false);
  auto model = make_net<float>(7);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(model.parameters(), {0.1, 0.9});
  train::ExponentialMovingAverage ema(model, 0.8);
  auto opts = quiet(3);
  opts.on_step = [&](const train::StepInfo&) { ema.update(model); };
  train::fit(model, loss, opt, train_loader, val_loader, opts);
  CHECK(ema.num_updates() == 3 * 8);
  auto averaged = make_net<float>(8);
  ema.copy_to(averaged);
  CHECK(train::evaluate(averaged, val_loader).accuracy > 0.9);
  CHECK_FALSE(ema.parameter("fc1.weight") == state_of(model)[0]);
}

TEST_CASE("confusion_matrix(model, loader): rows are the true class, columns the prediction (sklearn)") {
  // Linear(4 -> 3) that picks the input's largest of features 0..2: a one-hot input on feature k is class k.
  nn::Sequential model("Net", {});
  model.add("flatten", nn::Flatten());
  model.add("fc", nn::Linear(4, 3));
  for (auto& [n, p] : model.named_parameters()) {
    p->value.zero();
    if (n == "fc.weight")
      for (std::int64_t k = 0; k < 3; ++k) p->value[k * 4 + k] = 1.0f;
  }
  data::Dataset ds;
  const std::vector<std::int64_t> label = {0, 0, 1, 1, 1, 2, 3, 2};
  const std::vector<std::int64_t> feature = {0, 1, 1, 1, 2, 2, 0, 0};
  ds.images = Tensor({8, 1, 2, 2});
  for (std::int64_t i = 0; i < 8; ++i) ds.images[i * 4 + feature[static_cast<std::size_t>(i)]] = 1.0f;
  ds.labels = label;
  ds.num_classes = 4;
  data::DataLoader loader(ds, data::DataLoaderOptions{}.with_batch_size(3));
  const train::ConfusionMatrix m = train::confusion_matrix(model, loader);
  CHECK(m.num_classes() == 4);  // the data set's classes, though the model has 3 outputs
  const std::vector<std::int64_t> want = {1, 1, 0, 0,   // true 0: one right, one as 1
                                          0, 2, 1, 0,   // true 1
                                          1, 0, 1, 0,   // true 2
                                          1, 0, 0, 0};  // true 3: never predicted
  CHECK(m.counts() == want);
  CHECK(m.total() == 8);
  CHECK(train::confusion_matrix(model, loader, 5).num_classes() == 5);
  CHECK_THROWS_AS(train::confusion_matrix(model, loader, 3), std::invalid_argument);  // label 3 of 3 classes
}

TEST_CASE("fit trains on MixUp / CutMix batches: probability targets, validation on class labels") {
  data::Dataset train_set, val_set;
  for (data::Dataset* ds : {&train_set, &val_set}) {
    ember::Generator gen(ds == &train_set ? 1 : 2);
    const float centers[3][4] = {{2, 0, 0, 1}, {-1, 2, 0, -1}, {0, -2, 2, 0}};
    ds->images = Tensor({240, 1, 2, 2});
    for (std::int64_t i = 0; i < 240; ++i) {
      const auto c = static_cast<std::int64_t>(gen.randint(3));
      ds->labels.push_back(c);
      for (int j = 0; j < 4; ++j) ds->images[i * 4 + j] = centers[c][j] + 0.6f * static_cast<float>(gen.normal());
    }
    ds->num_classes = 3;
  }
  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    data::DataLoader train_loader(train_set, data::DataLoaderOptions{}.with_batch_size(24).with_shuffle(true).with_seed(4));
    data::DataLoader val_loader(val_set, data::DataLoaderOptions{}.with_batch_size(60));
    data::BatchMix mix = kind == 0 ? data::BatchMix(data::MixUp(0.4)) : data::BatchMix(data::CutMix(1.0));
    data::MixingLoader mixed(train_loader, mix, 9);
    auto model = make_net<float>(5);
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(model.parameters(), {0.05, 0.9});
    const train::History h = train::fit(model, loss, opt, mixed, val_loader, quiet(6));
    CHECK(h.epochs.size() == 6);
    CHECK(std::isnan(h.epochs.back().train_accuracy));  // probability targets: no training accuracy
    CHECK(h.epochs.back().val_accuracy > 0.9);
    CHECK(h.epochs.back().train_loss < h.epochs.front().train_loss);
  }
}

TEST_CASE("Classifier: a checkpoint's weights and recorded preprocessing predict an image file") {
  ember::Generator gen(11);
  nn::Sequential model("Net", {});
  model.add("flatten", nn::Flatten());
  model.add("fc", nn::Linear(12, 2, true, gen));
  train::Preprocessing pre;
  pre.classes = {"cat", "dog"};
  pre.input_shape = {3, 2, 2};
  pre.mean = {0.5f};
  pre.std = {0.25f};
  const std::string ckpt = tmp_path("classifier.safetensors");
  ember::io::save_checkpoint(model, ckpt, pre.to_metadata());
  Tensor pixels({3, 4, 4});
  for (std::int64_t i = 0; i < pixels.numel(); ++i) pixels[i] = static_cast<float>((i * 37) % 256);
  const std::string png = tmp_path("classifier.png");
  ember::io::save_png(png, pixels);

  ember::Generator other(12);
  nn::Sequential loaded("Net", {});
  loaded.add("flatten", nn::Flatten());
  loaded.add("fc", nn::Linear(12, 2, true, other));
  train::Classifier clf(loaded, ckpt);
  CHECK(clf.classes() == std::vector<std::string>{"cat", "dog"});
  CHECK(state_of(loaded)[0] == state_of(model)[0]);  // the weights were loaded
  const train::ClassPrediction p = clf.predict_file(png);
  // By hand: decode and resize as ImageFolder, ToUnit, Normalize, the original model, softmax.
  Tensor img;
  data::ImageFolderOptions fo;
  fo.height = fo.width = 2;
  data::ImageFolder::decode_file(png, fo, img);
  for (float& v : img) v = (v / 255.0f - 0.5f) / 0.25f;
  const Tensor out = model.predict(img.reshape({1, 3, 2, 2}));
  const double e0 = std::exp(double(out[0])), e1 = std::exp(double(out[1]));
  CHECK(p.probabilities[0] == doctest::Approx(e0 / (e0 + e1)).epsilon(1e-5));
  CHECK(p.probabilities[1] == doctest::Approx(e1 / (e0 + e1)).epsilon(1e-5));
  CHECK(p.index == (out[1] > out[0] ? 1 : 0));
  CHECK(p.label == clf.classes()[static_cast<std::size_t>(p.index)]);
  CHECK(p.top(5).size() == 2);
  CHECK_THROWS_AS(clf.predict(Tensor({3, 4, 4})), ember::shape_error);
  // A checkpoint without the preprocessing keys is refused, naming the file and the key.
  const std::string bare = tmp_path("bare.safetensors");
  ember::io::save_checkpoint(model, bare);
  try {
    train::Classifier none(loaded, bare);
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("bare.safetensors") != std::string::npos);
    CHECK(std::string(e.what()).find("classes") != std::string::npos);
  }
}

// ------------------------------------------------------------------------------------------ the first week

TEST_CASE("fit refuses an optimiser built on parameters that are not the model's") {
  BlobLoader train_data(32, 16, 1, false), val_data(32, 16, 2, false);
  nn::CrossEntropyLoss loss;
  ember::Generator gen(3);
  nn::Linear fc1(4, 8, true, gen), fc2(8, 3, true, gen);
  // Built on the layers, which the Sequential then copies: stepping it would train nothing.
  ember::optim::SGD on_layers({fc1.parameters()[0], fc1.parameters()[1], fc2.parameters()[0]}, {0.1});
  nn::Sequential net({{"flatten", nn::Flatten()}, {"fc1", fc1}, {"relu", nn::ReLU()}, {"fc2", fc2}});
  const auto before = state_of(net);
  const std::string msg = scratch::message_of<std::invalid_argument>(
      [&] { train::fit(net, loss, on_layers, train_data, val_data, quiet(1)); });
  CHECK(scratch::contains(msg, "3 of the optimiser's 3 parameters (the first: parameter 0, of shape [8, 4])"));
  CHECK(scratch::contains(msg, "the optimiser was built on parameters that are not this model's (was it built on a "
                               "layer before it was copied into the Sequential, or on a copy of the model?)"));
  CHECK(state_of(net) == before);
  // On a copy of the model: the same refusal; on the model itself (or a part of it), fit trains.
  auto copy = net;
  ember::optim::SGD on_copy(copy.parameters(), {0.1});
  CHECK_THROWS_AS(train::fit(net, loss, on_copy, train_data, val_data, quiet(1)), std::invalid_argument);
  ember::optim::SGD on_head(net.get<nn::Linear>("fc2").parameters(), {0.1});
  train::fit(net, loss, on_head, train_data, val_data, quiet(1));
  CHECK(state_of(net) != before);
}

TEST_CASE("fit's validation loss is the loss given to fit, label smoothing included: evaluate with it agrees") {
  BlobLoader train_data(96, 16, 61, true), val_data(64, 32, 62, false);
  auto net = make_net<float>(63);
  nn::CrossEntropyLoss smoothed(0.1);
  ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
  const train::History h = train::fit(net, smoothed, opt, train_data, val_data, quiet(2));
  const double reported = h.epochs.back().val_loss;
  CHECK(train::evaluate(net, val_data, smoothed).loss == reported);
  CHECK(train::evaluate(net, val_data, 0.1).loss == reported);  // the cross-entropy shorthand, same smoothing
  CHECK(train::evaluate(net, val_data).loss != reported);       // plain cross-entropy is another number
}

TEST_CASE("frozen parameters: no gradient, and every optimiser leaves them bit for bit as they were") {
  BlobLoader train_data(96, 16, 71, true), val_data(32, 32, 72, false);
  nn::CrossEntropyLoss loss;
  auto run = [&](auto make_optimizer, const char* name) {
    CAPTURE(name);
    ember::Generator gen(73);
    nn::Sequential net("Net", {});
    net.add("flatten", nn::Flatten());
    net.add("fc1", nn::Linear(4, 8, true, gen));
    net.add("bn", nn::BatchNorm1d(8));
    net.add("relu", nn::ReLU());
    net.add("fc2", nn::Linear(8, 3, true, gen));
    net.requires_grad_(false);
    net.get<nn::Linear>("fc2").requires_grad_(true);
    for (auto& [n, p] : net.named_parameters()) CHECK(p->requires_grad == (n.rfind("fc2.", 0) == 0));
    const auto before = state_of(net);
    auto opt = make_optimizer(net.parameters());
    train::fit(net, loss, opt, train_data, val_data, quiet(2));
    const auto named = net.named_parameters();
    for (std::size_t k = 0; k < named.size(); ++k) {
      CAPTURE(named[k].first);
      const bool head = named[k].first.rfind("fc2.", 0) == 0;
      CHECK((named[k].second->value == before[k]) == !head);  // frozen: bit-identical; the head: trained
      if (!head) CHECK(named[k].second->grad == TensorT<float>::zeros(named[k].second->value.shape()));
    }
  };
  using namespace ember::optim;
  run([](auto p) { return SGD(p, {0.05, 0.9, 0.0, 1e-2}); }, "SGD, momentum and weight decay");
  run([](auto p) { return SGD(p, {0.05, 0.9, 0.0, 0.0, true}); }, "SGD, Nesterov");
  run([](auto p) { return Adam(p, {1e-2, 0.9, 0.999, 1e-8, 1e-2}); }, "Adam, weight decay");
  run([](auto p) { return AdamW(p, {1e-2}); }, "AdamW");
  run([](auto p) { return RMSprop(p, {1e-2, 0.99, 1e-8, 1e-2, 0.9, true}); }, "RMSprop, momentum, centered");
}

TEST_CASE("FitOptions::restore_best_weights: after fit the model holds the best epoch's weights") {
  BlobLoader train_data(240, 16, 4, true), val_data(90, 30, 5, false);
  auto net = make_net<float>(6);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.05, 0.9});
  auto opts = quiet(6);
  std::vector<std::vector<Tensor>> weights;  // after each epoch
  // From epoch 4 on the validation labels are wrong, so the best epoch is one of the first three.
  opts.on_epoch = [&](const train::EpochStats& e) {
    weights.push_back(state_of(net));
    if (e.epoch == 3) val_data.relabel();
  };
  opts.restore_best_weights = true;
  const train::History h = train::fit(net, loss, opt, train_data, val_data, opts);
  REQUIRE(h.best_epoch >= 1);
  REQUIRE(h.best_epoch <= 3);
  CHECK(state_of(net) == weights[static_cast<std::size_t>(h.best_epoch - 1)]);
  CHECK(state_of(net) != weights.back());
  // Off (the default): the last epoch's weights stay.
  auto net2 = make_net<float>(6);
  ember::optim::SGD opt2(net2.parameters(), {0.05, 0.9});
  opts.restore_best_weights = false;
  weights.clear();
  opts.on_epoch = [&](const train::EpochStats&) { weights.push_back(state_of(net2)); };
  train::fit(net2, loss, opt2, train_data, val_data, opts);
  CHECK(state_of(net2) == weights.back());
}
