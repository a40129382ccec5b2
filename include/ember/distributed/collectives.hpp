#pragma once
// Whole-model collectives: the same parameters everywhere before training, gradients averaged after backward,
// and metrics summed over the ranks' shares of the data.
//
//   dist::broadcast_parameters(ctx, model);   // rank 0's parameters and buffers on every rank
//   ... forward, loss, backward ...
//   dist::average_gradients(ctx, model);      // blocking: every .grad becomes the mean over the ranks
//
// average_gradients is the plain blocking form (one MPI_Allreduce per parameter after backward);
// dist::GradientReducer (distributed/reducer.hpp) does the same in buckets that start during backward.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/distributed/context.hpp"
#include "ember/nn/module.hpp"
#include "ember/train/evaluate.hpp"
#include "ember/train/fit.hpp"
#include "ember/train/metrics.hpp"

namespace ember::dist {

namespace detail {

// Every rank must hold the same layout, else the collectives below would pair up unrelated tensors: the
// count and the sizes are compared with rank 0's first.
template <typename T>
void check_same_layout(const Context& ctx, const std::vector<const TensorT<T>*>& tensors, int root,
                       const char* what) {
  std::int64_t mine[2] = {static_cast<std::int64_t>(tensors.size()), 0};
  for (const auto* t : tensors) mine[1] += t->numel();
  std::int64_t roots[2] = {mine[0], mine[1]};
  check(MPI_Bcast(roots, 2, MPI_INT64_T, root, ctx.comm()), "MPI_Bcast");
  if (roots[0] != mine[0] || roots[1] != mine[1])
    throw shape_error(std::string("dist::") + what + ": rank " + std::to_string(ctx.rank()) + " has " +
                      std::to_string(mine[0]) + " tensors of " + std::to_string(mine[1]) + " values, but rank " +
                      std::to_string(root) + " has " + std::to_string(roots[0]) + " of " +
                      std::to_string(roots[1]) + " (is the model the same on every rank?)");
}

}  // namespace detail

// Rank `root`'s parameters and buffers (BatchNorm's running statistics) copied to every rank.
template <typename T>
void broadcast_parameters(const Context& ctx, nn::ModuleT<T>& module, int root = 0) {
  if (root < 0 || root >= ctx.size())
    throw std::invalid_argument("dist::broadcast_parameters: root " + std::to_string(root) + " is not a rank of " +
                                std::to_string(ctx.size()));
  std::vector<TensorT<T>*> tensors;
  for (auto& [name, p] : module.named_parameters()) tensors.push_back(&p->value);
  for (auto& [name, b] : module.named_buffers()) tensors.push_back(b);
  detail::check_same_layout(ctx, std::vector<const TensorT<T>*>(tensors.begin(), tensors.end()), root,
                            "broadcast_parameters");
  for (auto* t : tensors)
    detail::check(MPI_Bcast(t->data(), static_cast<int>(t->numel()), detail::mpi_type<T>(), root, ctx.comm()),
                  "MPI_Bcast");
}

// After backward: every parameter's gradient becomes the mean of that gradient over the ranks. Blocking, one
// MPI_Allreduce per parameter; allocates nothing.
template <typename T>
void average_gradients(const Context& ctx, nn::ModuleT<T>& module) {
  if (ctx.size() == 1) return;
  const T scale = T(1) / static_cast<T>(ctx.size());
  for (auto& [name, p] : module.named_parameters()) {
    TensorT<T>& g = p->grad;
    detail::check(MPI_Allreduce(MPI_IN_PLACE, g.data(), static_cast<int>(g.numel()), detail::mpi_type<T>(), MPI_SUM,
                                ctx.comm()),
                  "MPI_Allreduce");
    for (T& v : g) v *= scale;
  }
}

// Element-wise sums over the ranks, in place.
template <typename V>
void all_reduce_sum(const Context& ctx, V* values, std::int64_t count) {
  detail::check(MPI_Allreduce(MPI_IN_PLACE, values, static_cast<int>(count), detail::mpi_type<V>(), MPI_SUM,
                              ctx.comm()),
                "MPI_Allreduce");
}

// A confusion matrix with every rank's counts added.
inline train::ConfusionMatrix reduce(const Context& ctx, const train::ConfusionMatrix& local) {
  std::vector<std::int64_t> counts = local.counts();
  all_reduce_sum(ctx, counts.data(), static_cast<std::int64_t>(counts.size()));
  train::ConfusionMatrix out(local.num_classes());
  const std::int64_t n = local.num_classes();
  for (std::int64_t t = 0; t < n; ++t)
    for (std::int64_t p = 0; p < n; ++p)
      for (std::int64_t k = counts[static_cast<std::size_t>(t * n + p)]; k > 0; --k) out.add(t, p);
  return out;
}

// The evaluation of the whole data from each rank's evaluation of its share (dist::DistributedSampler in
// evaluation mode): losses weighted by sample counts, confusion matrices added.
inline train::Evaluation reduce(const Context& ctx, const train::Evaluation& local) {
  double sums[2] = {local.loss * static_cast<double>(local.samples), static_cast<double>(local.samples)};
  all_reduce_sum(ctx, sums, 2);
  train::Evaluation out;
  out.samples = static_cast<std::int64_t>(sums[1]);
  out.loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  out.confusion = reduce(ctx, local.confusion);
  out.accuracy = out.confusion.accuracy();
  out.precision = out.confusion.precision();
  out.recall = out.confusion.recall();
  return out;
}

// fit's epoch statistics over all ranks (FitOptions::reduce_epoch): means weighted by each rank's training
// and validation sample counts, throughput as all images over the slowest rank's time.
inline void reduce(const Context& ctx, train::EpochStats& stats, std::int64_t train_samples,
                   std::int64_t val_samples) {
  const double n = static_cast<double>(train_samples), m = static_cast<double>(val_samples);
  double sums[6] = {stats.train_loss * n, stats.train_accuracy * n, n, stats.val_loss * m, stats.val_accuracy * m, m};
  all_reduce_sum(ctx, sums, 6);
  double seconds = stats.train_seconds;
  detail::check(MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, ctx.comm()), "MPI_Allreduce");
  stats.train_loss = sums[0] / sums[2];
  stats.train_accuracy = sums[1] / sums[2];
  stats.val_loss = sums[5] > 0 ? sums[3] / sums[5] : 0.0;
  stats.val_accuracy = sums[5] > 0 ? sums[4] / sums[5] : 0.0;
  stats.train_seconds = seconds;
  stats.images_per_second = seconds > 0 ? sums[2] / seconds : 0.0;
}

}  // namespace ember::dist
