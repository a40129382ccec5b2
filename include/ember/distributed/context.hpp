#pragma once
// The MPI world a data-parallel run lives in: one process per rank, launched by mpirun (or Slurm's srun).
//
//   dist::Context ctx(argc, argv);        // MPI_Init_thread; a program started without mpirun is a world of one
//   if (ctx.rank() == 0) std::cout << "training on " << ctx.size() << " processes\n";
//
// Failure: a rank that stops early while the others wait in a collective would hang the job. So when an
// exception unwinds past the Context, its destructor calls MPI_Abort (mpirun then ends every rank with a
// non-zero status) instead of MPI_Finalize; abort() does the same with a message first. In a world of one there
// is no one to wait, and the exception goes on to its handler.
//
// The loader's prefetch thread never calls MPI, so MPI_THREAD_FUNNELED (MPI calls from the main thread only)
// is all a run needs. A Context on an MPI the program initialised itself uses it and leaves it running.
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

namespace ember::dist {

// An MPI call that failed (with MPI_ERRORS_ARE_FATAL, the default, MPI aborts before this can be thrown).
struct mpi_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {

inline void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw mpi_error(std::string("dist: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}

template <typename T>
MPI_Datatype mpi_type();
template <>
inline MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
inline MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }
template <>
inline MPI_Datatype mpi_type<std::int64_t>() { return MPI_INT64_T; }

}  // namespace detail

class Context {
 public:
  Context(int& argc, char**& argv) { init(&argc, &argv); }
  // Without the command line (MPI does not need it).
  Context() { init(nullptr, nullptr); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  ~Context() {
    if (!owns_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (std::uncaught_exceptions() > uncaught_ && size_ > 1) {
      // MPI_Finalize would wait for ranks that are themselves waiting for this one.
      std::fprintf(stderr, "ember::dist: rank %d of %d: an exception is unwinding past dist::Context; "
                   "ending the job with MPI_Abort\n", rank_, size_);
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Finalize();
  }

  int rank() const noexcept { return rank_; }
  int size() const noexcept { return size_; }
  bool is_root() const noexcept { return rank_ == 0; }
  MPI_Comm comm() const noexcept { return MPI_COMM_WORLD; }

  void barrier() const { detail::check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

  // Ends every rank of the job: the message goes to stderr with this rank's number, then MPI_Abort(code).
  // The one place the library prints: the process is about to end and stderr is the only witness left.
  [[noreturn]] void abort(const std::string& message, int code = 1) const noexcept {
    std::fprintf(stderr, "error (rank %d of %d): %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
    std::abort();  // MPI_Abort does not return; this only tells the compiler so
  }

 private:
  void init(int* argc, char*** argv) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      detail::check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    uncaught_ = std::uncaught_exceptions();
  }

  int rank_ = 0;
  int size_ = 1;
  bool owns_ = false;
  int uncaught_ = 0;
};

// Runs body(); an exception out of it ends the whole job with its message (Context::abort) when there are
// other ranks, and is rethrown in a world of one. Returns body's result.
template <class Body>
auto guard(const Context& ctx, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    if (ctx.size() > 1) ctx.abort(e.what());
    throw;
  }
}

}  // namespace ember::dist
