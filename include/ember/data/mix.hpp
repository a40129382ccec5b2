#pragma once
// Batch mixing, as torchvision.transforms.v2.MixUp and CutMix: a batch of images with class labels becomes a
// batch of mixed images with class-probability targets (B x num_classes), which CrossEntropyLoss takes.
//   MixUp(alpha = 1, num_classes)    lam ~ Beta(alpha, alpha); x = lam x + (1 - lam) roll(x);
//                                    y = lam onehot(y) + (1 - lam) roll(onehot(y))
//   CutMix(alpha = 1, num_classes)   lam ~ Beta(alpha, alpha); a box of about (1 - lam) of the area, centred at a
//                                    uniform pixel and clipped to the image, is pasted from roll(x); the targets
//                                    mix with the box's actual share
// roll(x) is the batch shifted by one (torch.roll(x, 1, 0): sample i is mixed with sample i - 1, the first
// with the last), as torchvision. num_classes 0: the loader's (MixingLoader passes dataset().num_classes).
//
// MixingLoader wraps a DataLoader so train::fit trains on mixed batches (its training accuracy is then NaN,
// as with any value target; validation keeps the class labels):
//   data::DataLoader train(ds, {64, true}, augment);
//   data::MixingLoader mixed(train, data::CutMix(1.0));
//   train::fit(model, loss, opt, mixed, val_loader, opts);
// Batch b of epoch e draws from a Generator seeded with (seed, e, b), so a run repeats for a seed.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"

namespace ember {
namespace data {

// A batch whose targets are class probabilities.
struct MixedBatch {
  Tensor input;                       // B x C x H x W
  Tensor target;                      // B x num_classes, each row summing to 1
  std::vector<std::int64_t> indices;  // B data set indices (of the unrolled samples)
  std::int64_t index = 0;             // position of the batch in its epoch
  std::int64_t size() const noexcept { return target.dim() == 2 ? target.size(0) : 0; }
};

namespace detail {
// Gamma(shape, 1) by Marsaglia and Tsang's method (shape < 1 through Gamma(shape + 1) u^(1 / shape)).
inline double sample_gamma(double shape, Generator& gen) {
  if (shape < 1.0) {
    double u = gen.uniform();
    while (u <= 0.0) u = gen.uniform();
    return sample_gamma(shape + 1.0, gen) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = gen.normal();
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = gen.uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0.0 && std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}
inline double sample_beta(double a, double b, Generator& gen) {
  const double x = sample_gamma(a, gen), y = sample_gamma(b, gen);
  return x / (x + y);
}

// Checks the batch and writes lam onehot(y) + (1 - lam) onehot(roll(y)) into out.target; copies the input.
inline void start_mix(const Batch& in, MixedBatch& out, std::int64_t classes, const char* who) {
  if (classes < 1)
    throw std::invalid_argument(std::string(who) + ": num_classes is unknown: give it to the constructor, or use a "
                                "loader whose data set has num_classes");
  if (in.input.dim() != 4 || in.input.size(0) != in.size())
    throw shape_error(std::string(who) + ": expected a batch B x C x H x W with B targets, got input " +
                      to_string(in.input.shape()) + " and " + std::to_string(in.size()) + " targets");
  for (std::int64_t t : in.target)
    if (t < 0 || t >= classes)
      throw std::invalid_argument(std::string(who) + ": target " + std::to_string(t) + " is outside [0, " +
                                  std::to_string(classes) + ")");
  out.input = in.input;
  out.indices = in.indices;
  out.index = in.index;
  out.target.resize({in.size(), classes});
}
inline void mix_targets(const Batch& in, MixedBatch& out, double lam) {
  const std::int64_t b = in.size(), c = out.target.size(1);
  out.target.zero();
  for (std::int64_t i = 0; i < b; ++i) {
    const std::int64_t prev = (i + b - 1) % b;
    out.target[i * c + in.target[static_cast<std::size_t>(i)]] += static_cast<float>(lam);
    out.target[i * c + in.target[static_cast<std::size_t>(prev)]] += static_cast<float>(1.0 - lam);
  }
}
}  // namespace detail

// A batch mixer: (batch, out, generator, the loader's class count or 0).
using BatchMix = std::function<void(const Batch&, MixedBatch&, Generator&, std::int64_t)>;

struct MixUp {
  double alpha;
  std::int64_t num_classes;
  explicit MixUp(double alpha_ = 1.0, std::int64_t classes = 0) : alpha(alpha_), num_classes(classes) {
    if (!(alpha > 0.0)) throw std::invalid_argument("MixUp: alpha must be > 0, got " + std::to_string(alpha));
  }
  void operator()(const Batch& in, MixedBatch& out, Generator& gen, std::int64_t loader_classes = 0) const {
    detail::start_mix(in, out, num_classes > 0 ? num_classes : loader_classes, "MixUp");
    const double lam = detail::sample_beta(alpha, alpha, gen);
    const std::int64_t b = in.size(), per = b == 0 ? 0 : in.input.numel() / b;
    for (std::int64_t i = 0; i < b; ++i) {
      const float* x = in.input.data() + i * per;
      const float* r = in.input.data() + ((i + b - 1) % b) * per;
      float* o = out.input.data() + i * per;
      for (std::int64_t k = 0; k < per; ++k) o[k] = static_cast<float>(lam * x[k] + (1.0 - lam) * r[k]);
    }
    detail::mix_targets(in, out, lam);
  }
};

struct CutMix {
  double alpha;
  std::int64_t num_classes;
  explicit CutMix(double alpha_ = 1.0, std::int64_t classes = 0) : alpha(alpha_), num_classes(classes) {
    if (!(alpha > 0.0)) throw std::invalid_argument("CutMix: alpha must be > 0, got " + std::to_string(alpha));
  }
  // The box [y1, y2) x [x1, x2) and the targets' lam for a draw lam on an h x w image, as torchvision.
  struct Box {
    std::int64_t x1, y1, x2, y2;
    double lam;
  };
  static Box box(double lam, std::int64_t h, std::int64_t w, Generator& gen) {
    const auto rx = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(w)));
    const auto ry = static_cast<std::int64_t>(gen.randint(static_cast<std::uint64_t>(h)));
    const double r = 0.5 * std::sqrt(1.0 - lam);
    const auto rw = static_cast<std::int64_t>(r * static_cast<double>(w));
    const auto rh = static_cast<std::int64_t>(r * static_cast<double>(h));
    Box bx{std::max<std::int64_t>(rx - rw, 0), std::max<std::int64_t>(ry - rh, 0), std::min(rx + rw, w),
           std::min(ry + rh, h), 0.0};
    bx.lam = 1.0 - static_cast<double>((bx.x2 - bx.x1) * (bx.y2 - bx.y1)) / static_cast<double>(w * h);
    return bx;
  }
  void operator()(const Batch& in, MixedBatch& out, Generator& gen, std::int64_t loader_classes = 0) const {
    detail::start_mix(in, out, num_classes > 0 ? num_classes : loader_classes, "CutMix");
    const std::int64_t b = in.size(), c = in.input.size(1), h = in.input.size(2), w = in.input.size(3);
    const double lam = detail::sample_beta(alpha, alpha, gen);
    const Box bx = box(lam, h, w, gen);
    for (std::int64_t i = 0; i < b; ++i) {
      const std::int64_t prev = (i + b - 1) % b;
      for (std::int64_t ch = 0; ch < c; ++ch)
        for (std::int64_t y = bx.y1; y < bx.y2; ++y) {
          const float* src = in.input.data() + ((prev * c + ch) * h + y) * w;
          std::copy(src + bx.x1, src + bx.x2, out.input.data() + ((i * c + ch) * h + y) * w + bx.x1);
        }
    }
    detail::mix_targets(in, out, bx.lam);
  }
};

// Iterates a DataLoader's batches mixed by `mix` (MixUp, CutMix, or any BatchMix), for train::fit.
class MixingLoader {
 public:
  class Iterator {
   public:
    const MixedBatch& operator*() const { return owner_->current_; }
    const MixedBatch* operator->() const { return &owner_->current_; }
    Iterator& operator++() {
      ++it_;
      owner_->prepare(it_);
      return *this;
    }
    bool operator==(const Iterator& o) const { return it_ == o.it_; }
    bool operator!=(const Iterator& o) const { return it_ != o.it_; }

   private:
    friend class MixingLoader;
    Iterator(MixingLoader* owner, DataLoader::Iterator it) : owner_(owner), it_(it) {}
    MixingLoader* owner_;
    DataLoader::Iterator it_;
  };

  MixingLoader(DataLoader& loader, BatchMix mix, std::uint64_t seed = 0)
      : loader_(loader), mix_(std::move(mix)), seed_(seed) {
    if (!mix_) throw std::invalid_argument("MixingLoader: no mix given");
  }

  Iterator begin() {
    epoch_ = loader_.epoch();
    auto it = loader_.begin();
    end_ = loader_.end();
    prepare(it);
    return Iterator(this, it);
  }
  Iterator end() { return Iterator(this, loader_.end()); }
  std::int64_t size() const { return loader_.size(); }
  void set_epoch(std::int64_t e) { loader_.set_epoch(e); }
  const DataSource<std::int64_t>& dataset() const noexcept { return loader_.dataset(); }

 private:
  void prepare(const DataLoader::Iterator& it) {
    if (it == end_) return;
    const Batch& batch = *it;
    Generator gen(detail::mix_seed(detail::mix_seed(seed_, static_cast<std::uint64_t>(epoch_)),
                                   static_cast<std::uint64_t>(batch.index)));
    mix_(batch, current_, gen, loader_.dataset().num_classes);
  }

  DataLoader& loader_;
  BatchMix mix_;
  std::uint64_t seed_;
  std::int64_t epoch_ = 0;
  DataLoader::Iterator end_;
  MixedBatch current_;
};

}  // namespace data
}  // namespace ember
