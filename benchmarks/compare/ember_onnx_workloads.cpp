// The ember side of onnx_peers.py: an ONNX file (a torchvision model export_torchvision.py wrote) through
// io::load_onnx, graph::optimize and a graph::Plan for the batch, on the fixed input of workload_common.hpp.
// Prints ember_workloads' JSON line; --out writes the output as raw floats for the comparison with OpenCV's.
//   ember_onnx_workloads MODEL.onnx [--batch B] [--seconds S] [--threads N] [--out FILE] [--size S]
// --size S: the input's height and width where the file leaves them dynamic (the coverage script's 64x64).
#include <fstream>
#include <string>

#include <ember/ember.hpp>
#include <ember/graph/optimize.hpp>
#include <ember/graph/plan.hpp>
#include <ember/io/onnx_import.hpp>

#include "compare/workload_common.hpp"

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ember_onnx_workloads MODEL.onnx [--batch B] [--seconds S] [--threads N] [--out FILE]\n");
    return 2;
  }
  const cmp::Args args = cmp::parse_args(argc, argv);
  const std::string& path = args.what;
  const std::int64_t batch = args.batch > 0 ? args.batch : 1, size = args.size;
  const std::string& out_path = args.out;
  ember::set_num_threads(args.threads);
  const ember::graph::Graph g = ember::graph::optimize(ember::io::load_onnx(path));
  ember::Shape shape = g.inputs().at(0).shape;
  shape[0] = batch;
  for (std::size_t d = 2; d < shape.size(); ++d)
    if (shape[d] < 0 || size > 0) shape[d] = size > 0 ? size : 224;
  const ember::graph::Plan plan(g, shape);
  ember::Tensor x(shape), out;
  for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = cmp::fixed_value(static_cast<std::size_t>(i));
  const double cpu0 = cmp::cpu_seconds();
  const auto r = cmp::timed(args.seconds, [&] { plan.run(x, out); });
  const double cpu = cmp::cpu_seconds() - cpu0;
  if (!out_path.empty()) {
    std::ofstream f(out_path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.numel() * sizeof(float)));
    if (!f) throw std::runtime_error(out_path + ": cannot write");
  }
  cmp::print_result(path, batch, r, cpu, ember::get_num_threads(),
                    ", \"outputs\": " + std::to_string(out.numel()) + ", \"version\": \"" + ember::version() + "\"");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "ember_onnx_workloads: %s\n", e.what());
  return 1;
}
