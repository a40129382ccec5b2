// Data-parallel costs, measured (docs/distributed.md): run under mpirun, e.g.
//   OMP_NUM_THREADS=1 mpirun -n 2 --bind-to none build/benchmarks/bench_dist allreduce
//   OMP_NUM_THREADS=1 mpirun -n 2 --bind-to none build/benchmarks/bench_dist step [batch per rank] [bucket KiB]
//   OMP_NUM_THREADS=1 build/benchmarks/bench_dist project scaling.svg
// allreduce: MPI_Allreduce of float sums over message sizes: median latency, algorithm bandwidth (bytes /
// time) and bus bandwidth (x 2(N-1)/N, what a ring moves per rank). step: the report's MLP and CNN, one training
// step per rank (train::Step): compute alone (no communication), then with the gradients averaged by the
// bucketed reducer overlapping backward and by the blocking mode; the time finish() waits is the communication
// backward did not hide. Medians over the timed steps; rank 0 prints. project: one process measures the
// compute of a step over per-rank batches (joined by straight lines), and projects ring all-reduce over
// 10/25/100 Gbit/s Ethernet (the alpha-beta model of docs/distributed.md) for 2 to 64 machines: a markdown
// table on stdout and the efficiency plot as SVG.
#include <ember/distributed/mpi.hpp>
#include <ember/loss/cross_entropy.hpp>
#include <ember/models/report.hpp>
#include <ember/optim/sgd.hpp>
#include <ember/train/step.hpp>

#include "plot.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace {

using namespace ember;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void allreduce(const dist::Context& ctx) {
  if (ctx.is_root())
    std::printf("| bytes | median latency (us) | fastest (us) | algorithm bandwidth, median (GB/s) | "
                "bus bandwidth, fastest (GB/s) |\n|---:|---:|---:|---:|---:|\n");
  for (std::int64_t bytes = 4; bytes <= (64 << 20); bytes *= 4) {
    std::vector<float> buf(static_cast<std::size_t>(bytes / 4), 1.0f);
    const int reps = bytes < (1 << 20) ? 200 : 20;
    std::vector<double> times;
    for (int r = 0; r < reps + 5; ++r) {
      MPI_Barrier(ctx.comm());
      const auto t0 = Clock::now();
      MPI_Allreduce(MPI_IN_PLACE, buf.data(), static_cast<int>(buf.size()), MPI_FLOAT, MPI_SUM, ctx.comm());
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (r >= 5) times.push_back(s);
    }
    double t[2] = {median(times), *std::min_element(times.begin(), times.end())};
    MPI_Allreduce(MPI_IN_PLACE, t, 2, MPI_DOUBLE, MPI_MAX, ctx.comm());
    const double algo = static_cast<double>(bytes) / t[0] / 1e9;
    const double bus = static_cast<double>(bytes) / t[1] / 1e9 * 2.0 * (ctx.size() - 1) / ctx.size();
    if (ctx.is_root())
      std::printf("| %lld | %.1f | %.1f | %.3f | %.3f |\n", static_cast<long long>(bytes), t[0] * 1e6, t[1] * 1e6,
                  algo, bus);
  }
}

// Median step time and median finish() time of `steps` steps after 3 warm-up steps.
template <class Model>
std::pair<double, double> time_steps(const dist::Context& ctx, Model& model, std::int64_t batch, int mode,
                                     std::int64_t bucket_bytes = 25 << 20) {
  nn::CrossEntropyLoss loss;
  optim::SGD opt(model.parameters(), {0.001, 0.9});
  Generator g(ctx.rank() + 1);
  Tensor x({batch, 1, 28, 28});
  for (auto& v : x) v = static_cast<float>(g.normal());
  std::vector<std::int64_t> y(static_cast<std::size_t>(batch));
  for (auto& v : y) v = static_cast<std::int64_t>(g.randint(24));
  train::Step step(model, loss, opt);
  std::unique_ptr<dist::GradientReducer> reducer;
  if (mode > 0) {
    dist::ReducerOptions o;
    o.bucket_bytes = bucket_bytes;
    o.mode = mode == 1 ? dist::ReducerOptions::Mode::overlap : dist::ReducerOptions::Mode::blocking;
    reducer = std::make_unique<dist::GradientReducer>(ctx, model, o);
    step.before_update(reducer->before_update());
  }
  std::vector<double> steps, waits;
  const int n = 20;
  for (int i = 0; i < n + 3; ++i) {
    MPI_Barrier(ctx.comm());
    const auto t0 = Clock::now();
    step(x, y);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i >= 3) {
      steps.push_back(s);
      waits.push_back(reducer ? reducer->last_finish_seconds() : 0.0);
    }
  }
  double r[2] = {median(steps), median(waits)};
  MPI_Allreduce(MPI_IN_PLACE, r, 2, MPI_DOUBLE, MPI_MAX, ctx.comm());
  return {r[0], r[1]};
}

void step_times(const dist::Context& ctx, std::int64_t batch, std::int64_t bucket_bytes) {
  if (ctx.is_root())
    std::printf("| model | ranks | batch per rank | compute (ms) | step, overlapped (ms) | waited in finish (ms) | "
                "step, blocking (ms) | all-reduce in finish (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const char* name : {"mlp", "cnn"}) {
    auto make = [&] { manual_seed(1); return std::string(name) == "mlp" ? models::report_mlp(24, false) : models::report_cnn(24, false); };
    auto m0 = make(), m1 = make(), m2 = make();
    const auto compute = time_steps(ctx, m0, batch, 0);
    const auto overlap = time_steps(ctx, m1, batch, 1, bucket_bytes);
    const auto blocking = time_steps(ctx, m2, batch, 2, bucket_bytes);
    if (ctx.is_root())
      std::printf("| %s | %d | %lld | %.2f | %.2f | %.2f | %.2f | %.2f |\n", name, ctx.size(),
                  static_cast<long long>(batch), compute.first * 1e3, overlap.first * 1e3, overlap.second * 1e3,
                  blocking.first * 1e3, blocking.second * 1e3);
  }
}

// Ring all-reduce of n bytes over p machines: 2(p - 1) messages of n/p bytes each way per rank.
struct Network {
  const char* name;
  double alpha;  // seconds per message
  double beta;   // seconds per byte
  const char* color;
};

double ring_allreduce(const Network& net, double bytes, int p) {
  if (p < 2) return 0;
  return 2.0 * (p - 1) * net.alpha + 2.0 * (p - 1) / p * bytes * net.beta;
}

void project(const dist::Context& ctx, const std::string& svg_path) {
  if (ctx.size() != 1) throw std::invalid_argument("bench_dist project: run it as one process, not under mpirun");
  // 90 % of the line rate is what TCP/RoCE payloads reach; latencies of an MPI message through one switch.
  const Network nets[] = {{"10 GbE (TCP, 25 us)", 25e-6, 1.0 / (0.9 * 10e9 / 8), "#1f77b4"},
                          {"25 GbE (RoCE, 5 us)", 5e-6, 1.0 / (0.9 * 25e9 / 8), "#ff7f0e"},
                          {"100 GbE (RDMA, 2 us)", 2e-6, 1.0 / (0.9 * 100e9 / 8), "#2ca02c"}};
  const int machines[] = {2, 4, 8, 16, 32, 64};
  const std::int64_t batches[] = {8, 16, 32, 64, 128, 256};
  std::vector<examples::plot::Series> series;
  for (const char* name : {"mlp", "cnn"}) {
    auto make = [&] { manual_seed(1); return std::string(name) == "mlp" ? models::report_mlp(24, false) : models::report_cnn(24, false); };
    double gradient_bytes = 0;
    {
      auto m = make();
      for (auto* p : m.parameters()) gradient_bytes += 4.0 * static_cast<double>(p->value.numel());
    }
    // Measured points, joined by straight lines; outside them, time proportional to the batch (below the
    // smallest that overstates the cost of small batches, so the projection errs on the side of caution).
    std::vector<double> tb;
    std::printf("%s: %.0f gradient bytes; compute per step (1 thread):", name, gradient_bytes);
    for (std::int64_t b : batches) {
      auto m = make();
      tb.push_back(time_steps(ctx, m, b, 0).first);
      std::printf(" b=%lld %.2f ms;", static_cast<long long>(b), tb.back() * 1e3);
    }
    std::printf("\n\n");
    const std::size_t nb = std::size(batches);
    auto compute = [&](double b) {
      if (b <= double(batches[0])) return tb[0] * b / double(batches[0]);
      for (std::size_t i = 1; i < nb; ++i)
        if (b <= double(batches[i])) {
          const double w = (b - double(batches[i - 1])) / double(batches[i] - batches[i - 1]);
          return tb[i - 1] + w * (tb[i] - tb[i - 1]);
        }
      return tb[nb - 1] * b / double(batches[nb - 1]);
    };
    std::printf("| %s, network | machines | all-reduce (ms) | step at b=32 (ms) | images/s at b=32 | efficiency at b=32 | "
                "smallest b for > 80 %% |\n|---|---:|---:|---:|---:|---:|---:|\n", name);
    for (const auto& net : nets) {
      examples::plot::Series se{std::string(name) + ", " + net.name, std::vector<double>(64, NAN), net.color};
      se.y[0] = 100;
      for (int p = 2; p <= 64; ++p) {
        const double c = compute(32), ar = ring_allreduce(net, gradient_bytes, p);
        se.y[static_cast<std::size_t>(p - 1)] = 100 * c / (c + ar);
      }
      for (int p : machines) {
        const double ar = ring_allreduce(net, gradient_bytes, p), c = compute(32);
        std::int64_t need = 0;
        for (std::int64_t b = 1; b <= (1 << 16) && !need; b *= 2)
          if (compute(double(b)) / (compute(double(b)) + ar) > 0.8) need = b;
        std::printf("| %s | %d | %.2f | %.2f | %.0f | %.0f %% | %s |\n", net.name, p, ar * 1e3, (c + ar) * 1e3,
                    p * 32 / (c + ar), 100 * c / (c + ar), need ? std::to_string(need).c_str() : "> 65536");
      }
      if (std::string(name) == "cnn") se.color = &net - nets == 0 ? "#9467bd" : &net - nets == 1 ? "#d62728" : "#8c564b";
      series.push_back(se);
    }
    std::printf("\n");
  }
  std::ofstream(svg_path) << examples::plot::line_chart(
      "Projected efficiency of data-parallel training, per-rank batch 32", "machines",
      "efficiency (%)", series, 0.0, 100.0);
  std::printf("wrote %s\n", svg_path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  dist::Context ctx(argc, argv);
  set_num_threads(1);
  const std::string what = argc > 1 ? argv[1] : "allreduce";
  return dist::guard(ctx, [&] {
    if (what == "allreduce") allreduce(ctx);
    else if (what == "step") step_times(ctx, argc > 2 ? std::stoll(argv[2]) : 32, (argc > 3 ? std::stoll(argv[3]) : 25 * 1024) * 1024);
    else if (what == "project") project(ctx, argc > 2 ? argv[2] : "scaling.svg");
    else throw std::invalid_argument("bench_dist: expected allreduce or step, got " + what);
    return 0;
  });
}
