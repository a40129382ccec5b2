#pragma once
// DataLoader: batches of a data set, optionally shuffled and transformed, iterated with range-for. As
// torch.utils.data.DataLoader: batch_size = 1, shuffle = false, drop_last = false by default; every begin()
// starts a new epoch with a new permutation.
//
// The data set: any type D with
//   std::int64_t size() const;                          samples
//   void load(std::int64_t i, Tensor& image) const;     sample i as C x H x W into `image` (storage reused)
//   target_type target(std::int64_t i) const;           its target
// and optionally `using target_type = ...` (std::int64_t class labels when absent), `num_classes` and
// `void validate() const`. load and target are called from several worker threads at once. data::Dataset (in
// memory) and data::ImageFolder (decoded lazily, by the workers) are such types; so is data::Subset of either.
// DataLoaderT<Target> takes any data set whose target_type is Target (the loader sees it through DataSource,
// one virtual call per sample); DataLoader is DataLoaderT<std::int64_t>, the class-label loader.
//
// Determinism: epoch e's permutation comes from a Generator seeded with mix(seed, e), and batch b's transforms
// draw from a Generator seeded with mix(seed, e, b). So a run repeats bit for bit for a seed, whether the
// batches are prepared inline, on one prefetch thread or on any number of workers, and whatever the consumer
// does (an early break does not shift the random numbers of later epochs).
//
// Threads: with num_workers = 0, one thread prepares batch b + 1 while the consumer holds batch b (prefetch),
// or the consumer prepares each batch itself (prefetch = false). With num_workers = N >= 1, N threads prepare
// whole batches ahead, worker k taking batches k, k + N, ... (two buffers each, as PyTorch's prefetch_factor
// 2). Breaking out of the loop early is fine: the next begin(), stop() or the destructor stops the workers
// (each finishes at most the sample it is on) and joins them. An exception thrown while preparing a batch
// (a corrupt image, a transform) is rethrown to the consumer when it reaches that batch. A DataLoader is used
// by one consumer thread; a batch reference stays valid until the iterator is advanced past it.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/error.hpp"
#include "ember/core/random.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/data_source.hpp"
#include "ember/data/dataset.hpp"
#include "ember/data/transforms.hpp"

namespace ember {
namespace data {

// Which of an epoch's indices the loader uses, in which order: size(n) of them for a data set of n, made by
// select(epoch, order) from the epoch's permutation (shuffled or not). A distributed sampler gives each
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
  bool prefetch = true;          // num_workers = 0: prepare the next batch on a background thread
  IndexSampler sampler{};
  std::int64_t num_workers = 0;  // >= 1: threads preparing batches ahead (decoding, transforms)

  // Named setters, for DataLoaderOptions{}.with_batch_size(32).with_shuffle(true) (aggregate initialisation
  // keeps working; the fields keep their names, so the setters cannot share them).
  DataLoaderOptions& with_batch_size(std::int64_t v) { return batch_size = v, *this; }
  DataLoaderOptions& with_shuffle(bool v) { return shuffle = v, *this; }
  DataLoaderOptions& with_drop_last(bool v) { return drop_last = v, *this; }
  DataLoaderOptions& with_seed(std::uint64_t v) { return seed = v, *this; }
  DataLoaderOptions& with_prefetch(bool v) { return prefetch = v, *this; }
  DataLoaderOptions& with_sampler(IndexSampler v) { return sampler = std::move(v), *this; }
  DataLoaderOptions& with_num_workers(std::int64_t v) { return num_workers = v, *this; }
};

template <typename Target = std::int64_t>
struct BatchT {
  Tensor input;                       // B x C x H x W, transformed
  std::vector<Target> target;         // B targets
  std::vector<std::int64_t> indices;  // B dataset indices
  std::int64_t index = 0;             // position of the batch in its epoch
  std::int64_t size() const noexcept { return static_cast<std::int64_t>(target.size()); }
};
using Batch = BatchT<std::int64_t>;

namespace detail {
// splitmix64's finaliser: well-mixed seeds from (seed, epoch, batch) triples.
inline std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace detail

template <typename Target = std::int64_t>
class DataLoaderT {
 public:
  using target_type = Target;
  using batch_type = BatchT<Target>;

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = batch_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const batch_type*;
    using reference = const batch_type&;

    Iterator() = default;
    const batch_type& operator*() const { return loader_->slot(index_); }
    const batch_type* operator->() const { return &loader_->slot(index_); }
    Iterator& operator++() {
      loader_->advance(index_);
      ++index_;
      return *this;
    }
    bool operator==(const Iterator& o) const { return index_ == o.index_; }
    bool operator!=(const Iterator& o) const { return index_ != o.index_; }

   private:
    friend class DataLoaderT;
    Iterator(DataLoaderT* loader, std::int64_t index) : loader_(loader), index_(index) {}
    DataLoaderT* loader_ = nullptr;
    std::int64_t index_ = 0;
  };

  template <typename D, typename = std::enable_if_t<std::is_same_v<dataset_target_t<D>, Target>>>
  DataLoaderT(const D& dataset, DataLoaderOptions options = {}, Transform transform = {})
      : source_(std::make_unique<detail::DataSourceOf<D, Target>>(dataset)), dataset_(*source_),
        options_(std::move(options)), transform_(std::move(transform)) {
    if (options_.batch_size < 1)
      throw std::invalid_argument("DataLoader: batch_size must be >= 1, got " + std::to_string(options_.batch_size));
    if (options_.num_workers < 0 || options_.num_workers > 256)
      throw std::invalid_argument("DataLoader: num_workers must lie in [0, 256], got " +
                                  std::to_string(options_.num_workers));
    if constexpr (detail::has_validate<D>::value) dataset.validate();
    const std::size_t workers = static_cast<std::size_t>(std::max<std::int64_t>(options_.num_workers, 1));
    slots_.resize(2 * workers);
    ready_.assign(slots_.size(), -1);
    workers_.resize(workers);
  }
  // The loader keeps a reference: a temporary dataset would dangle.
  template <typename D, typename = std::enable_if_t<!std::is_lvalue_reference_v<D>>>
  DataLoaderT(D&&, DataLoaderOptions = {}, Transform = {}) = delete;
  DataLoaderT(const DataLoaderT&) = delete;
  DataLoaderT& operator=(const DataLoaderT&) = delete;
  ~DataLoaderT() { stop(); }

  // Starts a new epoch (stopping one still running) and returns its first batch.
  Iterator begin() {
    stop();
    const std::int64_t epoch = epoch_++;
    order_ = permutation(epoch);
    if (options_.sampler.select) options_.sampler.select(epoch, order_);
    check_order();
    batch_seed_ = detail::mix_seed(detail::mix_seed(options_.seed, static_cast<std::uint64_t>(epoch)), 0x5eedull);
    const std::int64_t n = size();
    if (n == 0) return Iterator(this, 0);
    std::fill(ready_.begin(), ready_.end(), -1);
    error_ = nullptr;
    error_batch_ = std::numeric_limits<std::int64_t>::max();
    if (threaded()) {
      stop_ = false;
      const std::int64_t w = static_cast<std::int64_t>(workers_.size());
      for (std::int64_t k = 0; k < w; ++k)
        workers_[static_cast<std::size_t>(k)].thread = std::thread([this, k, w, n] { work(k, w, n); });
      acquire(0);
    } else {
      fill(slots_[0], workers_[0], 0);
    }
    return Iterator(this, 0);
  }
  Iterator end() { return Iterator(this, size()); }

  // Batches per epoch.
  std::int64_t size() const {
    const std::int64_t n = samples_per_epoch(), b = options_.batch_size;
    return options_.drop_last ? n / b : (n + b - 1) / b;
  }
  // Samples per epoch (fewer than the epoch's order holds when drop_last drops a partial batch).
  std::int64_t num_samples() const {
    return options_.drop_last ? size() * options_.batch_size : samples_per_epoch();
  }
  // Epochs started so far (the next begin() starts epoch number epoch()).
  std::int64_t epoch() const noexcept { return epoch_; }
  // As DistributedSampler.set_epoch: the next begin() starts this epoch number.
  void set_epoch(std::int64_t e) {
    stop();
    epoch_ = e;
  }
  // The loader's own order for an epoch: 0..N-1, or its permutation from (seed, epoch) when shuffling.
  std::vector<std::int64_t> permutation(std::int64_t epoch) const {
    std::vector<std::int64_t> order(static_cast<std::size_t>(dataset_.size()));
    std::iota(order.begin(), order.end(), std::int64_t(0));
    if (options_.shuffle) {
      Generator gen(detail::mix_seed(options_.seed, static_cast<std::uint64_t>(epoch)));
      gen.shuffle(order.begin(), order.end());
    }
    return order;
  }
  // The order of the epoch started last (empty before the first).
  const std::vector<std::int64_t>& order() const noexcept { return order_; }
  // The data set as the loader sees it (size(), num_classes, samples).
  const DataSource<Target>& dataset() const noexcept { return dataset_; }
  const DataLoaderOptions& options() const noexcept { return options_; }

  // Stops and joins the worker threads, if any (also done by begin() and the destructor).
  void stop() {
    bool running = false;
    for (auto& w : workers_) running = running || w.thread.joinable();
    if (!running) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_)
      if (w.thread.joinable()) w.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    Tensor sample;
    Shape batch_shape;  // reused from batch to batch, so a warmed-up batch allocates nothing
  };

  bool threaded() const { return options_.num_workers > 0 || options_.prefetch; }
  // Indices per epoch: the data set's, or the sampler's share of them.
  std::int64_t samples_per_epoch() const {
    return options_.sampler.size ? options_.sampler.size(dataset_.size()) : dataset_.size();
  }
  const batch_type& slot(std::int64_t b) const { return slots_[static_cast<std::size_t>(b) % slots_.size()]; }

  void check_order() const {
    const std::int64_t want = samples_per_epoch(), n = dataset_.size();
    if (static_cast<std::int64_t>(order_.size()) != want)
      throw std::logic_error("DataLoader: the sampler selected " + std::to_string(order_.size()) +
                             " indices, but its size() said " + std::to_string(want));
    for (std::int64_t i : order_)
      if (i < 0 || i >= n)
        throw std::out_of_range("DataLoader: the sampler gave index " + std::to_string(i) + ", outside [0, " +
                                std::to_string(n) + ")");
  }

  // Fills `batch` with batch number b of the current epoch. Returns false when stopped half way.
  bool fill(batch_type& batch, Worker& w, std::int64_t b) {
    const std::int64_t bs = options_.batch_size;
    const std::int64_t first = b * bs;
    const std::int64_t count = std::min(bs, static_cast<std::int64_t>(order_.size()) - first);
    batch.index = b;
    batch.indices.assign(order_.begin() + first, order_.begin() + first + count);
    batch.target.resize(static_cast<std::size_t>(count));
    Generator gen(detail::mix_seed(batch_seed_, static_cast<std::uint64_t>(b)));
    std::int64_t out_numel = 0;
    for (std::int64_t k = 0; k < count; ++k) {
      if (stop_.load(std::memory_order_relaxed)) return false;
      const std::int64_t i = batch.indices[static_cast<std::size_t>(k)];
      batch.target[static_cast<std::size_t>(k)] = dataset_.target(i);
      dataset_.load(i, w.sample);
      if (transform_) transform_(w.sample, gen);
      if (k == 0) {
        out_numel = w.sample.numel();
        w.batch_shape.assign(1, count);
        w.batch_shape.insert(w.batch_shape.end(), w.sample.shape().begin(), w.sample.shape().end());
        batch.input.resize(w.batch_shape);
      } else if (w.sample.numel() != out_numel ||
                 !std::equal(w.sample.shape().begin(), w.sample.shape().end(), w.batch_shape.begin() + 1,
                             w.batch_shape.end())) {
        Shape first_shape(w.batch_shape.begin() + 1, w.batch_shape.end());
        throw shape_error("DataLoader: sample " + std::to_string(i) + " is " + to_string(w.sample.shape()) +
                          (transform_ ? " after the transform" : "") + " but the first sample of its batch is " +
                          to_string(first_shape));
      }
      std::copy(w.sample.begin(), w.sample.end(), batch.input.data() + k * out_numel);
    }
    return true;
  }

  void work(std::int64_t k, std::int64_t workers, std::int64_t n) {
    Worker& w = workers_[static_cast<std::size_t>(k)];
    for (std::int64_t b = k; b < n; b += workers) {
      const std::size_t s = static_cast<std::size_t>(b) % slots_.size();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || ready_[s] == -1; });
        if (stop_) return;
      }
      try {
        if (!fill(slots_[s], w, b)) return;
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (b < error_batch_) {
          error_ = std::current_exception();
          error_batch_ = b;
        }
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

  // Consumer: waits until batch b is ready, or rethrows the exception a worker met preparing it.
  void acquire(std::int64_t b) {
    const std::size_t s = static_cast<std::size_t>(b) % slots_.size();
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return ready_[s] == b || error_batch_ <= b; });
      if (ready_[s] == b) return;
      error = std::exchange(error_, nullptr);
    }
    stop();
    std::rethrow_exception(error);
  }

  // Consumer: done with batch b; move on to b + 1.
  void advance(std::int64_t b) {
    const std::int64_t next = b + 1;
    if (!threaded()) {
      if (next < size()) fill(slots_[static_cast<std::size_t>(next) % slots_.size()], workers_[0], next);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_[static_cast<std::size_t>(b) % slots_.size()] = -1;
    }
    cv_.notify_all();
    if (next < size())
      acquire(next);
    else
      stop();
  }

  std::unique_ptr<DataSource<Target>> source_;
  const DataSource<Target>& dataset_;
  DataLoaderOptions options_;
  Transform transform_;
  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0;
  std::uint64_t batch_seed_ = 0;
  std::vector<batch_type> slots_;
  std::vector<Worker> workers_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::int64_t> ready_;  // batch index held by each slot, -1 when free
  std::atomic<bool> stop_{false};    // written under mutex_; read without it between samples
  std::exception_ptr error_;
  std::int64_t error_batch_ = std::numeric_limits<std::int64_t>::max();
};

// The class-label loader: any data set whose targets are std::int64_t.
using DataLoader = DataLoaderT<std::int64_t>;
EMBER_EXTERN_TEMPLATE(class DataLoaderT<std::int64_t>)

}  // namespace data
}  // namespace ember
