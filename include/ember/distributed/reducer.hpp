#pragma once
// Gradient averaging that overlaps backward, as PyTorch's DistributedDataParallel: the parameters are grouped
// into buckets of about bucket_bytes, in backward order (the last layer's first); when the model reports that a
// child's gradients are complete (ModuleT::add_gradients_ready_listener), every bucket whose gradients are then all
// in is copied into its flat buffer and handed to MPI_Iallreduce, and backward goes on. OpenMPI advances a
// non-blocking collective only inside MPI calls, so each report also polls the buckets in flight (MPI_Testall).
// finish(), between backward and the optimiser step, waits for the rest and writes the means into the .grad
// tensors.
//
//   dist::GradientReducer reducer(ctx, model);      // installs the model's gradients-ready hook
//   fit_options.before_update = reducer.before_update();
//
// Buffers: with broadcast_buffers (the default, as DDP's), rank 0's buffers (BatchNorm's running statistics,
// which each rank updates from its own batch) are sent to every rank at each step, started with the first
// report of backward (the forward that changes them is over) and landed in finish(). BatchNorm itself
// normalises with each rank's own batch statistics (as DDP without SyncBatchNorm).
//
// Every rank must run the same model: the buckets then start in the same order everywhere, which MPI requires
// of collectives. The buffers are allocated once, at construction; the first step learns which parameters each
// reported child holds (a few allocations), the later ones allocate nothing. Mode::blocking reduces the same
// buckets with MPI_Allreduce inside finish(), to compare.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ember/distributed/context.hpp"
#include "ember/nn/module.hpp"

namespace ember::dist {

struct ReducerOptions {
  enum class Mode { overlap, blocking };
  std::int64_t bucket_bytes = 25 * 1024 * 1024;  // DDP's bucket_cap_mb = 25
  Mode mode = Mode::overlap;
  bool broadcast_buffers = true;
};

template <typename T>
class GradientReducerT {
 public:
  using Mode = ReducerOptions::Mode;

  GradientReducerT(const Context& ctx, nn::ModuleT<T>& model, ReducerOptions options = {})
      : ctx_(ctx), model_(model), options_(options) {
    if (options_.bucket_bytes < 1)
      throw std::invalid_argument("dist::GradientReducer: bucket_bytes must be >= 1, got " +
                                  std::to_string(options_.bucket_bytes));
    for (auto& [name, p] : model.named_parameters()) params_.push_back(p);
    std::reverse(params_.begin(), params_.end());  // backward order
    const std::int64_t cap = std::max<std::int64_t>(1, options_.bucket_bytes / static_cast<std::int64_t>(sizeof(T)));
    bucket_of_.resize(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const std::int64_t n = params_[i]->value.numel();
      if (buckets_.empty() || (buckets_.back().numel > 0 && buckets_.back().numel + n > cap)) buckets_.emplace_back();
      Bucket& b = buckets_.back();
      b.params.push_back(i);
      b.numel += n;
      bucket_of_[i] = buckets_.size() - 1;
    }
    for (auto& b : buckets_) b.flat.assign(static_cast<std::size_t>(b.numel), T(0));
    requests_.assign(buckets_.size() + 1, MPI_REQUEST_NULL);  // the last: the buffers' broadcast
    ready_.assign(params_.size(), 0);
    for (auto& [name, t] : model.named_buffers()) buffers_.push_back(t);
    std::int64_t buffer_numel = 0;
    for (auto* t : buffers_) buffer_numel += t->numel();
    buffer_flat_.assign(static_cast<std::size_t>(buffer_numel), T(0));
    if (ctx_.size() > 1)
      listener_ = model_.add_gradients_ready_listener(
          [this](const std::string& name, nn::ModuleT<T>& m) { on_ready(name, m); });
    reset();
  }
  GradientReducerT(const GradientReducerT&) = delete;
  GradientReducerT& operator=(const GradientReducerT&) = delete;
  ~GradientReducerT() {
    if (listener_) model_.remove_gradients_ready_listener(listener_);
  }

  // Between backward and the optimiser step: every gradient becomes the mean over the ranks (and the buffers
  // rank 0's). Buckets not yet started (a model that reports nothing before the end of backward) start here.
  void finish() {
    if (ctx_.size() == 1) return;
    const auto start = std::chrono::steady_clock::now();
    start_buffers();
    for (std::size_t b = 0; b < buckets_.size(); ++b)
      if (!buckets_[b].started) start_bucket(b);
    detail::check(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE),
                  "MPI_Waitall");
    const T scale = T(1) / static_cast<T>(ctx_.size());
    for (auto& b : buckets_) {
      const T* src = b.flat.data();
      for (std::size_t i : b.params) {
        TensorT<T>& g = params_[i]->grad;
        for (T& v : g) v = *src++ * scale;
      }
    }
    if (options_.broadcast_buffers && !ctx_.is_root()) {
      const T* src = buffer_flat_.data();
      for (auto* t : buffers_)
        for (T& v : *t) v = *src++;
    }
    last_finish_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    reset();
  }

  // finish() as a hook for FitOptions::before_update / Step::before_update.
  std::function<void()> before_update() {
    return [this] { finish(); };
  }

  // Time spent in the last finish(): the communication backward did not hide (with Mode::blocking, all of it).
  double last_finish_seconds() const noexcept { return last_finish_seconds_; }
  std::size_t bucket_count() const noexcept { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<std::size_t> params;  // indices into params_
    std::int64_t numel = 0;
    std::vector<T> flat;
    std::size_t pending = 0;
    bool started = false;
  };
  struct Child {
    std::string name;
    std::vector<std::size_t> params;
  };

  void reset() {
    std::fill(ready_.begin(), ready_.end(), 0);
    for (auto& b : buckets_) {
      b.pending = b.params.size();
      b.started = false;
    }
    buffers_started_ = false;
  }

  void on_ready(const std::string& name, nn::ModuleT<T>& module) {
    start_buffers();
    if (options_.mode == Mode::blocking) return;
    const Child& child = child_params(name, module);
    for (std::size_t i : child.params) {
      if (ready_[i]) continue;
      ready_[i] = 1;
      Bucket& b = buckets_[bucket_of_[i]];
      if (--b.pending == 0) start_bucket(bucket_of_[i]);
    }
    int done = 0;
    detail::check(MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE),
                  "MPI_Testall");
  }

  // The parameters of a reported child, found once by name (the first step) and remembered.
  const Child& child_params(const std::string& name, nn::ModuleT<T>& module) {
    for (const auto& c : children_)
      if (c.name == name) return c;
    Child c{name, {}};
    for (auto& [pname, p] : module.named_parameters()) {
      const auto it = std::find(params_.begin(), params_.end(), p);
      if (it != params_.end()) c.params.push_back(static_cast<std::size_t>(it - params_.begin()));
    }
    children_.push_back(std::move(c));
    return children_.back();
  }

  void start_bucket(std::size_t index) {
    Bucket& b = buckets_[index];
    T* dst = b.flat.data();
    for (std::size_t i : b.params) dst = std::copy(params_[i]->grad.begin(), params_[i]->grad.end(), dst);
    b.started = true;
    const int n = static_cast<int>(b.numel);
    if (options_.mode == Mode::blocking)
      detail::check(MPI_Allreduce(MPI_IN_PLACE, b.flat.data(), n, detail::mpi_type<T>(), MPI_SUM, ctx_.comm()),
                    "MPI_Allreduce");
    else
      detail::check(MPI_Iallreduce(MPI_IN_PLACE, b.flat.data(), n, detail::mpi_type<T>(), MPI_SUM, ctx_.comm(),
                                   &requests_[index]),
                    "MPI_Iallreduce");
  }

  void start_buffers() {
    if (buffers_started_ || !options_.broadcast_buffers || buffer_flat_.empty()) return;
    buffers_started_ = true;
    if (ctx_.is_root()) {
      T* dst = buffer_flat_.data();
      for (auto* t : buffers_) dst = std::copy(t->begin(), t->end(), dst);
    }
    detail::check(MPI_Ibcast(buffer_flat_.data(), static_cast<int>(buffer_flat_.size()), detail::mpi_type<T>(), 0,
                             ctx_.comm(), &requests_.back()),
                  "MPI_Ibcast");
  }

  const Context& ctx_;
  nn::ModuleT<T>& model_;
  std::size_t listener_ = 0;  // 0: none added (a single process)
  ReducerOptions options_;
  std::vector<ParameterT<T>*> params_;
  std::vector<std::size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<MPI_Request> requests_;
  std::vector<char> ready_;
  std::vector<Child> children_;
  std::vector<TensorT<T>*> buffers_;
  std::vector<T> buffer_flat_;
  bool buffers_started_ = false;
  double last_finish_seconds_ = 0;
};

using GradientReducer = GradientReducerT<float>;

}  // namespace ember::dist
