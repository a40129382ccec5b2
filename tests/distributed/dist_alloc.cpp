// A warmed-up data-parallel step allocates nothing of ember's: the reducer's buckets and the step's buffers are
// kept across steps. Open MPI's collectives allocate inside (temporary buffers, non-blocking schedules), which is
// MPI's and not ours: so the same MPI calls on buffers of the buckets' sizes are counted alone first, and 10
// warmed-up steps must allocate no more than they do (within MPI's own wander of one or two).
// alloc_counter.hpp speaks doctest (kAllocSkip); this program has no test runner, only doctest's symbols.
#define DOCTEST_CONFIG_IMPLEMENT
#include "alloc_counter.hpp"

#include <ember/distributed/mpi.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/models/report.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/step.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  using namespace ember;
  dist::Context ctx(argc, argv);
  set_num_threads(1);
  return dist::guard(ctx, [&] {
    int status = 0;
    for (auto mode : {dist::ReducerOptions::Mode::blocking, dist::ReducerOptions::Mode::overlap}) {
      const bool blocking = mode == dist::ReducerOptions::Mode::blocking;
      manual_seed(3);
      auto model = models::report_cnn(24, false);
      nn::CrossEntropyLoss loss;
      optim::SGD opt(model.parameters(), {0.01, 0.9});
      dist::ReducerOptions o;
      o.mode = mode;
      o.bucket_bytes = 64 * 1024;
      dist::GradientReducer reducer(ctx, model, o);
      train::Step step(model, loss, opt);
      step.before_update(reducer.before_update());
      Tensor x({8, 1, 28, 28});
      Generator g(static_cast<std::uint64_t>(ctx.rank()) + 1);
      for (auto& v : x) v = static_cast<float>(g.normal());
      std::vector<std::int64_t> y(8, 1);
      for (int i = 0; i < 3; ++i) step(x, y);
      long counted = alloc_count();
      for (int i = 0; i < 10; ++i) step(x, y);
      const long ours = alloc_count() - counted;

      // MPI alone: the buffers' broadcast and one all-reduce per bucket, as the reducer issues them.
      std::vector<float> buffers(0);
      for (auto& [name, t] : model.named_buffers()) buffers.resize(buffers.size() + static_cast<std::size_t>(t->numel()));
      std::vector<std::vector<float>> buckets;
      {
        std::int64_t filled = 0;
        std::vector<std::int64_t> sizes;
        auto params = model.parameters();
        for (auto it = params.rbegin(); it != params.rend(); ++it) {
          const std::int64_t n = (*it)->value.numel();
          if (sizes.empty() || (filled > 0 && filled + n > o.bucket_bytes / 4)) sizes.push_back(0), filled = 0;
          sizes.back() += n;
          filled += n;
        }
        for (auto s : sizes) buckets.emplace_back(static_cast<std::size_t>(s));
      }
      std::vector<MPI_Request> requests(buckets.size() + 1, MPI_REQUEST_NULL);
      auto mpi_only = [&] {
        MPI_Ibcast(buffers.data(), static_cast<int>(buffers.size()), MPI_FLOAT, 0, ctx.comm(), &requests.back());
        for (std::size_t b = 0; b < buckets.size(); ++b) {
          auto& v = buckets[b];
          if (blocking)
            MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_SUM, ctx.comm());
          else
            MPI_Iallreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_SUM, ctx.comm(), &requests[b]);
        }
        MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE);
      };
      for (int i = 0; i < 3; ++i) mpi_only();
      counted = alloc_count();
      for (int i = 0; i < 10; ++i) mpi_only();
      const long mpi = alloc_count() - counted;
      std::printf("rank %d: %s, %zu buckets: %ld allocations in 10 warmed-up steps, %ld in the same MPI calls "
                  "alone\n", ctx.rank(), blocking ? "blocking" : "overlapping", reducer.bucket_count(), ours, mpi);
      // An allocation of ours would come once per step (10); MPI's count wanders by one or two between runs.
      if (ours > mpi + 5) status = 1;
    }
    return status;
  });
}
