#pragma once
// Data-parallel runs of the example programs. Built with MPI (CMake found it: the examples link ember::dist and
// define EMBER_EXAMPLES_MPI) and launched by mpirun -np N (or srun), an example trains on N processes: rank 0's
// parameters everywhere, gradients averaged in buckets during backward, each process a slice of every global
// batch, metrics over all processes, and only rank 0 prints and writes. Without MPI, or started without a
// launcher, it is one process as before.
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#ifdef EMBER_EXAMPLES_MPI
#include <ember/distributed/mpi.hpp>
#endif

namespace examples {

struct World {
  int rank = 0;
  int size = 1;
#ifdef EMBER_EXAMPLES_MPI
  std::unique_ptr<ember::dist::Context> ctx;
#endif
  bool root() const { return rank == 0; }
};

// Initialised once, at the first call (parse_args); MPI_Finalize at exit. MPI starts only under a launcher
// (mpirun sets OMPI_COMM_WORLD_SIZE, PMI-based launchers PMI_SIZE or PMIX_RANK), so a plain run never loads it.
inline World& world() {
  static World w = [] {
    World out;
#ifdef EMBER_EXAMPLES_MPI
    if (std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK")) {
      out.ctx = std::make_unique<ember::dist::Context>();
      out.rank = out.ctx->rank();
      out.size = out.ctx->size();
      // Only rank 0 speaks on stdout; errors still reach stderr from every rank.
      if (out.rank != 0) std::cout.setstate(std::ios::failbit);
    }
#endif
    return out;
  }();
  return w;
}

// An error on one rank must end the job (the others would wait in an all-reduce forever): MPI_Abort with the
// message. In a single process, the caller reports it and returns 1.
inline void end_job_on_error(const std::string& message) {
#ifdef EMBER_EXAMPLES_MPI
  World& w = world();
  if (w.size > 1) w.ctx->abort(message);
#else
  (void)message;
#endif
}

}  // namespace examples
