#pragma once
// Train/validation splits: a stratified, seeded split of any data set's indices (sklearn's
// train_test_split(stratify=labels) in spirit: each class keeps its share), and Subset, a view of a data set
// through a list of indices (torch.utils.data.Subset) that a DataLoader iterates like the data set itself.
//
//   data::ImageFolder all("photos", opts);
//   const data::SplitIndices s = data::stratified_split(all, 0.2, /*seed=*/1);
//   data::Subset train(all, s.train), val(all, s.val);
//   data::DataLoader train_loader(train, {32, true}), val_loader(val, {256});
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataloader.hpp"

namespace ember {
namespace data {

struct SplitIndices {
  std::vector<std::int64_t> train, val;  // each ascending
};

// Per class, round(val_fraction * n) of its n samples go to validation, chosen by a shuffle seeded with
// `seed` (class by class, in label order); a class of two or more samples keeps at least one on each side
// when 0 < val_fraction < 1. Labels must lie in [0, num_classes).
inline SplitIndices stratified_split(const std::vector<std::int64_t>& labels, std::int64_t num_classes,
                                     double val_fraction, std::uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction <= 1.0))
    throw std::invalid_argument("stratified_split: val_fraction must lie in [0, 1], got " + std::to_string(val_fraction));
  if (num_classes <= 0 && !labels.empty())
    throw std::invalid_argument("stratified_split: num_classes is not set (it is " + std::to_string(num_classes) +
                                ") for " + std::to_string(labels.size()) + " labels: set the data set's num_classes "
                                "to the number of classes (1 + the largest label, here " +
                                std::to_string(*std::max_element(labels.begin(), labels.end()) + 1) + ")");
  std::vector<std::vector<std::int64_t>> by_class(static_cast<std::size_t>(std::max<std::int64_t>(num_classes, 0)));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes)
      throw std::invalid_argument("stratified_split: label " + std::to_string(labels[i]) + " of sample " +
                                  std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
    by_class[static_cast<std::size_t>(labels[i])].push_back(static_cast<std::int64_t>(i));
  }
  Generator gen(seed);
  SplitIndices out;
  for (auto& members : by_class) {
    const std::int64_t n = static_cast<std::int64_t>(members.size());
    std::int64_t k = std::llround(val_fraction * static_cast<double>(n));
    if (val_fraction > 0.0 && val_fraction < 1.0 && n >= 2) k = std::min(std::max<std::int64_t>(k, 1), n - 1);
    gen.shuffle(members.begin(), members.end());
    out.val.insert(out.val.end(), members.begin(), members.begin() + k);
    out.train.insert(out.train.end(), members.begin() + k, members.end());
  }
  std::sort(out.train.begin(), out.train.end());
  std::sort(out.val.begin(), out.val.end());
  return out;
}

// The same for a data set with size(), target(i) and num_classes (Dataset, ImageFolder).
template <typename D>
SplitIndices stratified_split(const D& dataset, double val_fraction, std::uint64_t seed) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(dataset.size()));
  for (std::int64_t i = 0; i < dataset.size(); ++i) labels[static_cast<std::size_t>(i)] = dataset.target(i);
  return stratified_split(labels, dataset.num_classes, val_fraction, seed);
}

// A view of `dataset` through `indices` (which it keeps; the data set must outlive it). Sample i of the
// subset is sample indices[i] of the data set.
template <typename D>
class Subset {
 public:
  using target_type = dataset_target_t<D>;

  Subset(const D& dataset, std::vector<std::int64_t> indices) : dataset_(dataset), indices_(std::move(indices)) {
    for (std::int64_t i : indices_)
      if (i < 0 || i >= dataset_.size())
        throw std::out_of_range("Subset: index " + std::to_string(i) + " outside [0, " +
                                std::to_string(dataset_.size()) + ")");
    num_classes = dataset_.num_classes;
  }
  Subset(D&&, std::vector<std::int64_t>) = delete;

  std::int64_t num_classes = 0;  // the data set's

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(indices_.size()); }
  void load(std::int64_t i, Tensor& image) const { dataset_.load(indices_.at(static_cast<std::size_t>(i)), image); }
  target_type target(std::int64_t i) const { return dataset_.target(indices_.at(static_cast<std::size_t>(i))); }
  const std::vector<std::int64_t>& indices() const noexcept { return indices_; }
  const D& dataset() const noexcept { return dataset_; }

  // Samples per class, index = label (class-label data sets).
  std::vector<std::int64_t> histogram() const {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(std::max<std::int64_t>(num_classes, 0)), 0);
    for (std::int64_t i = 0; i < size(); ++i) {
      const auto t = static_cast<std::int64_t>(target(i));
      if (t >= 0 && t < num_classes) ++counts[static_cast<std::size_t>(t)];
    }
    return counts;
  }

 private:
  const D& dataset_;
  std::vector<std::int64_t> indices_;
};

}  // namespace data
}  // namespace ember
