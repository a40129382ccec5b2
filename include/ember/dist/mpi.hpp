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
#include "ember/dist/collectives.hpp"
#include "ember/dist/context.hpp"
#include "ember/dist/reducer.hpp"
#include "ember/dist/sampler.hpp"
#include "ember/dist/sync_batchnorm.hpp"
