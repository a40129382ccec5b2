// ember::dist from an install tree: a world of one without mpirun.
#include <ember/distributed/context.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  ember::dist::Context ctx(argc, argv);
  std::printf("dist consumer: rank %d of %d\n", ctx.rank(), ctx.size());
  return ctx.size() == 1 && ctx.rank() == 0 ? 0 : 1;
}
