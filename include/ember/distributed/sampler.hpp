#pragma once
// Which samples each rank trains on: every rank draws the same seeded permutation of the epoch (the loader's,
// from (seed, epoch)), and global batch b of B = size x batch samples is cut into size consecutive slices, rank
// r taking slice r. The ranks' batches at step b are then, together, the single process's batch b of size B,
// and every rank has the same number of steps (a rank with one step fewer would leave the others waiting in an
// all-reduce forever). As torch.utils.data.DistributedSampler.
//
//   dist::DistributedSampler sampler(ctx, 16);            // 16 per rank: global batch 16 x ctx.size()
//   data::DataLoader train(ds, {16, true, false, seed, true, sampler.index_sampler()});
//   data::DataLoader val(test, {1000, false, false, seed, true,
//                               dist::DistributedSampler(ctx, 1000, dist::SamplerMode::evaluation).index_sampler()});
//
// SamplerMode::training: a last global batch shorter than B is completed from the start of the permutation
// (DistributedSampler pads the same way), so every rank has full batches; only that batch differs from the
// single process's. SamplerMode::evaluation: every sample exactly once, rank r taking samples r, r + size, ...
// (shares may differ by one; dist::reduce(ctx, evaluation) weights them).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/data/dataloader.hpp"
#include "ember/distributed/context.hpp"

namespace ember::dist {

enum class SamplerMode { training, evaluation };

class DistributedSampler {
 public:
  DistributedSampler(int rank, int size, std::int64_t batch_per_rank, SamplerMode mode = SamplerMode::training)
      : rank_(rank), size_(size), batch_(batch_per_rank), mode_(mode) {
    if (size < 1 || rank < 0 || rank >= size)
      throw std::invalid_argument("DistributedSampler: rank " + std::to_string(rank) + " is not in [0, " +
                                  std::to_string(size) + ")");
    if (batch_per_rank < 1)
      throw std::invalid_argument("DistributedSampler: the batch per rank must be >= 1, got " +
                                  std::to_string(batch_per_rank));
  }
  DistributedSampler(const Context& ctx, std::int64_t batch_per_rank, SamplerMode mode = SamplerMode::training)
      : DistributedSampler(ctx.rank(), ctx.size(), batch_per_rank, mode) {}

  std::int64_t global_batch() const noexcept { return batch_ * size_; }

  // Steps per epoch over n samples: the single process's batch count for batch size global_batch().
  std::int64_t steps(std::int64_t n) const { return (n + global_batch() - 1) / global_batch(); }

  // This rank's samples per epoch over a data set of n.
  std::int64_t num_samples(std::int64_t n) const {
    if (mode_ == SamplerMode::training) return n == 0 ? 0 : steps(n) * batch_;
    return n > rank_ ? (n - rank_ + size_ - 1) / size_ : 0;
  }

  // Rewrites the epoch's permutation of all n samples into this rank's samples, in order.
  void select(std::vector<std::int64_t>& order) const {
    const auto n = static_cast<std::int64_t>(order.size());
    std::vector<std::int64_t> mine;
    mine.reserve(static_cast<std::size_t>(num_samples(n)));
    if (mode_ == SamplerMode::training) {
      const std::int64_t B = global_batch();
      for (std::int64_t s = 0; s < steps(n); ++s)
        for (std::int64_t k = 0; k < batch_; ++k) mine.push_back(order[static_cast<std::size_t>((s * B + rank_ * batch_ + k) % n)]);
    } else {
      for (std::int64_t i = rank_; i < n; i += size_) mine.push_back(order[static_cast<std::size_t>(i)]);
    }
    order.swap(mine);
  }

  // The loader's hook (DataLoaderOptions::sampler).
  data::IndexSampler index_sampler() const {
    const DistributedSampler self = *this;
    return {[self](std::int64_t n) { return self.num_samples(n); },
            [self](std::int64_t, std::vector<std::int64_t>& order) { self.select(order); }};
  }

 private:
  int rank_, size_;
  std::int64_t batch_;
  SamplerMode mode_;
};

}  // namespace ember::dist
