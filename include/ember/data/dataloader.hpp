#pragma once
// DataLoader: batches of a Dataset, optionally shuffled and transformed, iterated with range-for. As
// torch.utils.data.DataLoader: batch_size = 1, shuffle = false, drop_last = false by default; every begin()
// starts a new epoch with a new permutation.
//
// Determinism: epoch e's permutation comes from a Generator seeded with mix(seed, e), and batch b's transforms
// draw from a Generator seeded with mix(seed, e, b). So a run repeats bit for bit for a seed, whether the
// batches are prepared ahead on the worker thread (prefetch) or inline, and whatever the consumer does
// (an early break does not shift the random numbers of later epochs).
//
// Prefetch: one worker thread prepares batch b + 1 while the consumer holds batch b (two reused buffers).
// Breaking out of the loop early is fine: the next begin(), stop() or the destructor stops and joins the
// worker. An exception thrown while preparing a batch (e.g. by a transform) is rethrown to the consumer when
// it reaches that batch. A DataLoader is used by one consumer thread; a batch reference stays valid until the
// iterator is advanced past it.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataset.hpp"
#include "ember/data/transforms.hpp"

namespace ember {
namespace data {

// Which of an epoch's indices the loader uses, in which order: size(n) of them for a data set of n, made by
// select(epoch, order) from the epoch's permutation (shuffled or not). dist::DistributedSampler gives each
// process its share this way. Empty: every index, in the permutation's order.
struct IndexSampler {
  std::function<std::int64_t(std::int64_t dataset_size)> size;
  std::function<void(std::int64_t epoch, std::vector<std::int64_t>& order)> select;
};

struct DataLoaderOptions {
  std::int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;
  std::uint64_t seed = 0;
  bool prefetch = true;  // prepare the next batch on a background thread
  IndexSampler sampler{};
};

struct Batch {
  Tensor input;                       // B x C x H x W, transformed
  std::vector<std::int64_t> target;   // B labels
  std::vector<std::int64_t> indices;  // B dataset indices
  std::int64_t index = 0;             // position of the batch in its epoch
  std::int64_t size() const noexcept { return static_cast<std::int64_t>(target.size()); }
};

namespace detail {
// splitmix64's finaliser: well-mixed seeds from (seed, epoch, batch) triples.
inline std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace detail

class DataLoader {
 public:
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    Iterator() = default;
    const Batch& operator*() const { return loader_->slot(index_); }
    const Batch* operator->() const { return &loader_->slot(index_); }
    Iterator& operator++() {
      loader_->advance(index_);
      ++index_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return index_ == o.index_; }
    bool operator!=(const Iterator& o) const { return index_ != o.index_; }

   private:
    friend class DataLoader;
    Iterator(DataLoader* loader, std::int64_t index) : loader_(loader), index_(index) {}
    DataLoader* loader_ = nullptr;
    std::int64_t index_ = 0;
  };

  DataLoader(const Dataset& dataset, DataLoaderOptions options = {}, Transform transform = {})
      : dataset_(dataset), options_(options), transform_(std::move(transform)) {
    if (options_.batch_size < 1)
      throw std::invalid_argument("DataLoader: batch_size must be >= 1, got " + std::to_string(options_.batch_size));
    dataset_.validate();
  }
  // The loader keeps a reference: a temporary dataset would dangle.
  DataLoader(Dataset&&, DataLoaderOptions = {}, Transform = {}) = delete;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;
  ~DataLoader() { stop(); }

  // Starts a new epoch (stopping one still running) and returns its first batch.
  Iterator begin() {
    stop();
    const std::int64_t epoch = epoch_++;
    const std::uint64_t epoch_seed = detail::mix_seed(options_.seed, static_cast<std::uint64_t>(epoch));
    order_.resize(static_cast<std::size_t>(dataset_.size()));
    std::iota(order_.begin(), order_.end(), std::int64_t(0));
    if (options_.shuffle) {
      Generator gen(epoch_seed);
      gen.shuffle(order_.begin(), order_.end());
    }
    if (options_.sampler.select) {
      options_.sampler.select(epoch, order_);
      if (static_cast<std::int64_t>(order_.size()) != indices())
        throw std::logic_error("DataLoader: the sampler selected " + std::to_string(order_.size()) +
                               " indices, but its size() said " + std::to_string(indices()));
    }
    batch_seed_ = detail::mix_seed(epoch_seed, 0x5eedull);
    const std::int64_t n = size();
    if (n == 0) return Iterator(this, 0);
    for (int s = 0; s < 2; ++s) ready_[s] = -1;
    error_ = nullptr;
    if (options_.prefetch) {
      stop_ = false;
      worker_ = std::thread([this, n] { work(n); });
      acquire(0);
    } else {
      fill(slots_[0], 0);
    }
    return Iterator(this, 0);
  }
  Iterator end() { return Iterator(this, size()); }

  // Batches per epoch.
  std::int64_t size() const {
    const std::int64_t n = indices(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  // Samples per epoch (fewer than the dataset's when drop_last drops a partial batch).
  std::int64_t num_samples() const {
    return options_.drop_last ? size() * options_.batch_size : indices();
  }
  // Epochs started so far (the next begin() starts epoch number epoch()).
  std::int64_t epoch() const noexcept { return epoch_; }
  // As DistributedSampler.set_epoch: the next begin() starts this epoch number.
  void set_epoch(std::int64_t e) {
    stop();
    epoch_ = e;
  }
  const Dataset& dataset() const noexcept { return dataset_; }
  const DataLoaderOptions& options() const noexcept { return options_; }

  // Stops and joins the worker thread, if any (also done by begin() and the destructor).
  void stop() {
    if (!worker_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

 private:
  const Batch& slot(std::int64_t b) const { return slots_[b % 2]; }
  // Indices per epoch: the data set's, or the sampler's share of them.
  std::int64_t indices() const { return options_.sampler.size ? options_.sampler.size(dataset_.size()) : dataset_.size(); }

  // Fills `batch` with batch number b of the current epoch (worker thread, or the consumer without prefetch).
  void fill(Batch& batch, std::int64_t b) {
    const std::int64_t bs = options_.batch_size;
    const std::int64_t first = b * bs;
    const std::int64_t count = std::min(bs, indices() - first);
    const Tensor& images = dataset_.images;
    // The shapes live in members, so a warmed-up batch allocates nothing (a Shape is a vector).
    Shape& sample_shape = sample_shape_;
    sample_shape.assign(images.shape().begin() + 1, images.shape().end());
    const std::int64_t sample_numel = images.size(1) * images.size(2) * images.size(3);
    batch.index = b;
    batch.indices.assign(order_.begin() + first, order_.begin() + first + count);
    batch.target.resize(static_cast<std::size_t>(count));
    for (std::int64_t k = 0; k < count; ++k)
      batch.target[static_cast<std::size_t>(k)] = dataset_.labels[static_cast<std::size_t>(batch.indices[k])];
    if (!transform_) {
      batch_shape_.assign(1, count);
      batch_shape_.insert(batch_shape_.end(), sample_shape.begin(), sample_shape.end());
      batch.input.resize(batch_shape_);
      for (std::int64_t k = 0; k < count; ++k) {
        const float* src = images.data() + batch.indices[static_cast<std::size_t>(k)] * sample_numel;
        std::copy(src, src + sample_numel, batch.input.data() + k * sample_numel);
      }
      return;
    }
    Generator gen(detail::mix_seed(batch_seed_, static_cast<std::uint64_t>(b)));
    Shape& out_shape = out_shape_;
    std::int64_t out_numel = 0;
    for (std::int64_t k = 0; k < count; ++k) {
      const float* src = images.data() + batch.indices[static_cast<std::size_t>(k)] * sample_numel;
      sample_.resize(sample_shape);
      std::copy(src, src + sample_numel, sample_.data());
      transform_(sample_, gen);
      if (k == 0) {
        out_shape.assign(sample_.shape().begin(), sample_.shape().end());
        out_numel = sample_.numel();
        batch_shape_.assign(1, count);
        batch_shape_.insert(batch_shape_.end(), out_shape.begin(), out_shape.end());
        batch.input.resize(batch_shape_);
      } else if (sample_.shape() != out_shape) {
        throw shape_error("DataLoader: the transform gave " + to_string(sample_.shape()) + " for sample " +
                          std::to_string(batch.indices[static_cast<std::size_t>(k)]) + " but " +
                          to_string(out_shape) + " for the first sample of the batch");
      }
      std::copy(sample_.begin(), sample_.end(), batch.input.data() + k * out_numel);
    }
  }

  void work(std::int64_t n) {
    for (std::int64_t b = 0; b < n; ++b) {
      const int s = static_cast<int>(b % 2);
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || ready_[s] == -1; });
        if (stop_) return;
      }
      try {
        fill(slots_[s], b);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_[s] = b;
      }
      cv_.notify_all();
    }
  }

  // Consumer: waits until batch b is ready, or rethrows the worker's exception for it.
  void acquire(std::int64_t b) {
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return ready_[b % 2] == b || error_ != nullptr; });
      if (ready_[b % 2] == b) return;
      error = std::exchange(error_, nullptr);
    }
    worker_.join();
    std::rethrow_exception(error);
  }

  // Consumer: done with batch b; move on to b + 1.
  void advance(std::int64_t b) {
    const std::int64_t next = b + 1;
    if (!options_.prefetch) {
      if (next < size()) fill(slots_[next % 2], next);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[b % 2] = -1;
    }
    cv_.notify_all();
    if (next < size())
      acquire(next);
    else
      stop();
  }

  const Dataset& dataset_;
  DataLoaderOptions options_;
  Transform transform_;
  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0;
  std::uint64_t batch_seed_ = 0;
  Batch slots_[2];
  Tensor sample_;
  Shape sample_shape_, out_shape_, batch_shape_;  // the worker's, reused from batch to batch

  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::int64_t ready_[2] = {-1, -1};  // batch index held by each slot, -1 when free
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace data
}  // namespace ember
