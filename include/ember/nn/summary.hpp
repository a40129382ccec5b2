#pragma once
// nn::summary(model, input_shape): a table of the model like torchinfo's summary(model, input_size): every
// module (containers and their children, depth first) with its output shape, its parameter count and its
// multiply-adds per image, then the totals.
//   std::cout << nn::summary(model, {1, 1, 28, 28});
// input_shape includes the batch dimension, as torchinfo's input_size (and io::export_onnx's input_shape); the
// output shapes are shown for that batch, the multiply-adds for one image. The rows come from children()
// (any container, a layer of your own too), the output shapes from graph::trace (each layer describes itself,
// ModuleT::describe; graph/shapes.hpp infers the shapes): nothing runs, nothing changes. A shape that does not
// fit is the trace's shape_error naming the layer. A layer that does not describe itself still gets its row
// and its parameters, as torchinfo prints a module it cannot follow; its output shape, and those of the rows
// after it that the trace did not reach, are empty ("--"), the model's own is predict's, and the table ends
// with a note naming the layer.
//
// Multiply-adds are counted as torchinfo counts them: a layer whose name has "Conv" in it costs the number of
// its parameters (weight and bias) per output position (out_h * out_w); any other layer with parameters
// (Linear, BatchNorm) costs their number; a layer without parameters costs nothing.
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <ostream>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/tracer.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

struct SummaryRow {
  std::string type;      // the type as printed ("Conv2d"; a Sequential's display name)
  std::string name;      // the dotted name, as named_modules ("" for the model itself)
  int depth = 0;         // 0 for the model, 1 for its children, ...
  int index = 0;         // 1-based among its parent's children (torchinfo's depth-idx)
  Shape output_shape;    // with the batch of input_shape; empty when the trace did not reach the module
  std::int64_t params = 0;     // of this module alone; 0 for containers, whose children hold them
  std::int64_t mult_adds = 0;  // per image
  bool container = false;
};

struct ModelSummary {
  Shape input_shape;
  std::vector<SummaryRow> rows;
  std::int64_t total_params = 0;
  std::int64_t trainable_params = 0;  // every parameter of ember is trainable
  std::int64_t total_mult_adds = 0;   // per image
  std::int64_t param_bytes = 0;
  std::string note;  // why some output shapes are missing (a layer that does not describe itself); "" if none

  // torchinfo's layout: one line per module, indented by depth, then the totals.
  std::string str() const {
    const std::string rule(100, '='), thin(100, '-');
    std::string s = rule + "\n" + cell("Layer (type (name):depth-idx)", 44) + cell("Output Shape", 24) +
                    cell("Param #", 16) + "Mult-Adds\n" + rule + "\n";
    for (const auto& r : rows) {
      std::string label;
      if (r.depth == 1) label += "\u251c\u2500";  // as torchinfo: "├─" under the model, "│    └─" deeper
      for (int d = 1; d < r.depth; ++d) label += "\u2502    ";
      if (r.depth > 1) label += "\u2514\u2500";
      label += r.type;
      if (!r.name.empty()) label += " (" + last_part(r.name) + ")";
      if (r.depth > 0) label += ": " + std::to_string(r.depth) + "-" + std::to_string(r.index);
      s += cell(label, 44) + cell(r.output_shape.empty() ? "--" : to_string(r.output_shape), 24) +
           cell(r.container || r.params == 0 ? "--" : grouped(r.params), 16) +
           (r.mult_adds == 0 ? "--" : grouped(r.mult_adds)) + "\n";
    }
    char mult[64], mb[64];
    std::snprintf(mult, sizeof mult, "%.2f", static_cast<double>(total_mult_adds) / 1e6);
    std::snprintf(mb, sizeof mb, "%.2f", static_cast<double>(param_bytes) / 1e6);
    s += rule + "\nTotal params: " + grouped(total_params) + "\nTrainable params: " + grouped(trainable_params) +
         "\nNon-trainable params: " + grouped(total_params - trainable_params) +
         "\nTotal mult-adds per image (M): " + mult + "\n" + thin + "\nInput shape: " + to_string(input_shape) +
         "\nParams size (MB): " + mb + "\n" + rule + "\n";
    if (!note.empty()) s += "Note: " + note + "\n";
    return s;
  }

 private:
  // Padded to `width` columns (UTF-8: one column per code point).
  static std::string cell(const std::string& text, std::size_t width) {
    std::size_t cols = 0;
    for (unsigned char ch : text) cols += (ch & 0xC0) != 0x80;
    return cols + 1 >= width ? text + " " : text + std::string(width - cols, ' ');
  }
  static std::string last_part(const std::string& dotted) {
    const auto dot = dotted.rfind('.');
    return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
  }
  // 1234567 -> "1,234,567", as Python's "{:,}".
  static std::string grouped(std::int64_t v) {
    std::string digits = std::to_string(v < 0 ? -v : v), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
      if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
      out += digits[i];
    }
    return v < 0 ? "-" + out : out;
  }
};

inline std::ostream& operator<<(std::ostream& os, const ModelSummary& s) { return os << s.str(); }

namespace detail {

template <typename T>
std::int64_t mult_adds_per_image(const ModuleT<T>& m, const Shape& out) {
  std::int64_t params = 0;
  for (const auto& [name, p] : m.named_parameters()) params += p->value.numel();
  if (params == 0) return 0;
  if (m.type_name().find("Conv") != std::string::npos && out.size() > 2) {
    std::int64_t positions = 1;
    for (std::size_t d = 2; d < out.size(); ++d) positions *= out[d];
    return params * positions;
  }
  return params;
}

template <typename T>
std::int64_t parameter_count(const ModuleT<T>& m) {
  std::int64_t n = 0;
  for (const auto& [name, p] : m.named_parameters()) n += p->value.numel();
  return n;
}

// m's row (its own parameters: not its children's) and its children's, depth first.
template <typename T>
void summarise(const ModuleT<T>& m, const std::string& name, int depth, int index,
               const std::map<std::string, Shape>& shapes, ModelSummary& s) {
  const auto children = m.children();
  SummaryRow row{m.type_name(), name, depth, index, {}, parameter_count(m), 0, !children.empty()};
  for (const auto& [child_name, child] : children) row.params -= parameter_count(*child);
  const auto it = shapes.find(name);
  if (it != shapes.end()) row.output_shape = it->second;
  if (!row.container) row.mult_adds = mult_adds_per_image(m, row.output_shape);
  s.rows.push_back(row);
  int i = 0;
  for (const auto& [child_name, child] : children)
    summarise(*child, name.empty() ? child_name : name + "." + child_name, depth + 1, ++i, shapes, s);
}

}  // namespace detail

template <typename T>
ModelSummary summary(const ModuleT<T>& model, const Shape& input_shape) {
  ModelSummary s;
  s.input_shape = input_shape;
  graph::Graph g;
  graph::Tracer t(g);
  std::map<std::string, Shape> shapes;
  try {
    shapes[""] = t.shape(graph::describe_model(model, input_shape, t));
    shapes.insert(t.module_shapes().begin(), t.module_shapes().end());
  } catch (const shape_error&) {
    throw;
  } catch (const std::invalid_argument& e) {
    // A layer that does not describe itself: the shapes traced before it, and the model's from predict.
    shapes = t.module_shapes();
    shapes[""] = model.predict(TensorT<T>(input_shape)).shape();
    s.note = std::string(e.what()) + "; the output shapes after it are not traced";
  }
  detail::summarise(model, "", 0, 0, shapes, s);
  for (const auto& r : s.rows) s.total_mult_adds += r.mult_adds;
  s.total_params = detail::parameter_count(model);
  s.trainable_params = s.total_params;
  s.param_bytes = s.total_params * static_cast<std::int64_t>(sizeof(T));
  return s;
}

}  // namespace ember::nn
