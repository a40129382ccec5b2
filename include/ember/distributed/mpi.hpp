#pragma once
// Data-parallel training over MPI (docs/distributed.md): link ember::dist, which CMake defines when it finds
// MPI; ember::ember alone never needs MPI.
//
//   dist::Context ctx(argc, argv);                        // rank(), size(); no mpirun: a world of one
//   auto model = models::report_mlp(10, false);
//   dist::broadcast_parameters(ctx, model);               // the same start everywhere
//   dist::GradientReducer reducer(ctx, model);            // bucketed all-reduce overlapping backward
//   fit_options.before_update = reducer.before_update();
//   data::DataLoader train(ds, {16, true, false, seed, true, dist::DistributedSampler(ctx, 16).index_sampler()});
#include "ember/distributed/collectives.hpp"
#include "ember/distributed/context.hpp"
#include "ember/distributed/reducer.hpp"
#include "ember/distributed/sampler.hpp"
#include "ember/distributed/sync_batchnorm.hpp"
