#pragma once
// Samplers for the DataLoader (DataLoaderOptions::sampler), as torch.utils.data's:
//   WeightedRandomSampler(weights, num_samples, replacement = true)   num_samples indices per epoch, index i
//                     drawn with probability weights[i] / sum(weights) (torch.multinomial); without
//                     replacement each index at most once. The usual use: oversample rare classes with
//                     class_balanced_weights(targets).
//
//   data::WeightedRandomSampler sampler(data::class_balanced_weights(train.labels), train.size());
//   data::DataLoader loader(train, data::DataLoaderOptions{}.with_batch_size(32).with_sampler(sampler.index_sampler()));
//
// The draws of epoch e come from a Generator seeded with (seed, e), so a run repeats for a seed and a resumed
// run draws what an uninterrupted one would. The loader's shuffle option does not apply: the sampler orders.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/data/dataloader.hpp"

namespace ember {
namespace data {

class WeightedRandomSampler {
 public:
  WeightedRandomSampler(std::vector<double> weights, std::int64_t num_samples, bool replacement = true,
                        std::uint64_t seed = 0)
      : weights_(std::move(weights)), num_samples_(num_samples), replacement_(replacement), seed_(seed) {
    if (num_samples_ < 1)
      throw std::invalid_argument("WeightedRandomSampler: num_samples must be >= 1, got " + std::to_string(num_samples_));
    std::int64_t positive = 0;
    double total = 0.0;
    for (std::size_t i = 0; i < weights_.size(); ++i) {
      if (!(weights_[i] >= 0.0) || !std::isfinite(weights_[i]))
        throw std::invalid_argument("WeightedRandomSampler: weight " + std::to_string(i) + " is " +
                                    std::to_string(weights_[i]) + ", expected a finite value >= 0");
      positive += weights_[i] > 0.0;
      total += weights_[i];
    }
    if (!(total > 0.0)) throw std::invalid_argument("WeightedRandomSampler: the weights sum to zero");
    if (!replacement_ && num_samples_ > positive)
      throw std::invalid_argument("WeightedRandomSampler: " + std::to_string(num_samples_) + " samples without " +
                                  "replacement, but only " + std::to_string(positive) + " weights are positive");
  }

  std::int64_t num_samples() const noexcept { return num_samples_; }
  const std::vector<double>& weights() const noexcept { return weights_; }

  // The indices of epoch `epoch`.
  std::vector<std::int64_t> sample(std::int64_t epoch) const {
    Generator gen(detail::mix_seed(seed_, static_cast<std::uint64_t>(epoch)));
    std::vector<double> w = weights_;
    std::vector<double> cum(w.size());
    std::vector<std::int64_t> out;
    out.reserve(static_cast<std::size_t>(num_samples_));
    auto rebuild = [&] {
      double s = 0.0;
      for (std::size_t i = 0; i < w.size(); ++i) cum[i] = s += w[i];
    };
    rebuild();
    for (std::int64_t k = 0; k < num_samples_; ++k) {
      const double u = gen.uniform() * cum.back();
      // The first index whose cumulative weight exceeds u (zero weights are never chosen).
      auto it = std::upper_bound(cum.begin(), cum.end(), u);
      if (it == cum.end()) it = std::prev(cum.end());
      auto i = static_cast<std::size_t>(it - cum.begin());
      while (i > 0 && w[i] == 0.0) --i;  // u == a boundary after rounding: step back to a positive weight
      out.push_back(static_cast<std::int64_t>(i));
      if (!replacement_) {
        w[i] = 0.0;
        rebuild();
      }
    }
    return out;
  }

  // The loader's hook: the data set must have one weight per sample.
  IndexSampler index_sampler() const {
    const WeightedRandomSampler self = *this;
    return {[self](std::int64_t) { return self.num_samples_; },
            [self](std::int64_t epoch, std::vector<std::int64_t>& order) {
              if (order.size() != self.weights_.size())
                throw std::invalid_argument("WeightedRandomSampler: " + std::to_string(self.weights_.size()) +
                                            " weights for a data set of " + std::to_string(order.size()) + " samples");
              order = self.sample(epoch);
            }};
  }

 private:
  std::vector<double> weights_;
  std::int64_t num_samples_;
  bool replacement_;
  std::uint64_t seed_;
};

// One weight per sample, 1 / (count of its class): every class is drawn equally often on average.
inline std::vector<double> class_balanced_weights(const std::vector<std::int64_t>& targets) {
  std::map<std::int64_t, std::int64_t> count;
  for (std::int64_t t : targets) ++count[t];
  std::vector<double> w;
  w.reserve(targets.size());
  for (std::int64_t t : targets) w.push_back(1.0 / static_cast<double>(count[t]));
  return w;
}

}  // namespace data
}  // namespace ember
