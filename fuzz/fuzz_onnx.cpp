// ONNX import: io::load_onnx on any file; a graph it accepts is planned and, when small, run on zeros. The
// seed corpus is fuzz/corpus/onnx/ (tiny models exported by tests/onnx_import_models.py --corpus).
// load_onnx may throw format_error or io_error (the documented reaction to a bad file); Plan may refuse a
// graph with std::invalid_argument (a shape it cannot run). Anything else escaping is a finding.
#include <cstdint>
#include <ember/core/error.hpp>
#include <ember/graph/plan.hpp>
#include <ember/io/onnx_import.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size, ".onnx");
  ember::graph::Graph g;
  try {
    g = ember::io::load_onnx(path);
  } catch (const ember::format_error&) {
    return 0;
  } catch (const ember::io_error&) {
    return 0;
  }
  if (g.inputs().size() != 1) return 0;
  ember::Shape shape = g.inputs()[0].shape;
  shape[0] = 1;
  try {
    const ember::graph::Plan plan(g, shape);
    // Run only what stays small: the file's sizes are not bounded by its bytes.
    if (plan.workspace_values() > (1 << 16)) return 0;
    ember::Tensor x(shape);
    if (x.numel() > (1 << 16)) return 0;
    const ember::Tensor y = plan.run(x);
    (void)y;
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
