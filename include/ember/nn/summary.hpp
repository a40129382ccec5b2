#pragma once
// nn::summary(model, input_shape): a table of the model like torchinfo's summary(model, input_size): every
// module (containers and their children, depth first) with its output shape, its parameter count and its
// multiply-adds per image, then the totals.
//   std::cout << nn::summary(model, {1, 1, 28, 28});
// input_shape includes the batch dimension, as torchinfo's input_size (and io::export_onnx's input_shape); the
// output shapes are shown for that batch, the multiply-adds for one image. The model runs once on zeros of
// that shape through predict (eval semantics, nothing changes); a shape error names the layer, as in predict.
//
// Multiply-adds are counted as torchinfo counts them: a layer whose name has "Conv" in it costs the number of
// its parameters (weight and bias) per output position (out_h * out_w); any other layer with parameters
// (Linear, BatchNorm) costs their number; a layer without parameters costs nothing.
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "ember/core/tensor.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/residual.hpp"
#include "ember/nn/sequential.hpp"

namespace ember::nn {

struct SummaryRow {
  std::string type;      // the type as printed ("Conv2d"; a Sequential's display name)
  std::string name;      // the dotted name, as named_modules ("" for the model itself)
  int depth = 0;         // 0 for the model, 1 for its children, ...
  int index = 0;         // 1-based among its parent's children (torchinfo's depth-idx)
  Shape output_shape;    // with the batch of input_shape
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
      s += cell(label, 44) + cell(to_string(r.output_shape), 24) +
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

// Runs m on x into y, adding its row (and its children's) to s.
template <typename T>
void summarise(const ModuleT<T>& m, const std::string& name, int depth, int index, const TensorT<T>& x,
               TensorT<T>& y, ModelSummary& s) {
  const std::size_t at = s.rows.size();
  s.rows.push_back({m.type_name(), name, depth, index, {}, 0, 0, false});
  const std::string dot = name.empty() ? "" : name + ".";
  if (const auto* seq = dynamic_cast<const SequentialT<T>*>(&m)) {
    s.rows[at].container = true;
    TensorT<T> in = x;
    for (std::size_t i = 0; i < seq->size(); ++i) {
      summarise((*seq)[i], dot + seq->name_of(i), depth + 1, static_cast<int>(i) + 1, in, y, s);
      in = y;
    }
    y = in;
  } else if (const auto* res = dynamic_cast<const ResidualT<T>*>(&m)) {
    s.rows[at].container = true;
    TensorT<T> branch;
    summarise(res->body(), dot + "body", depth + 1, 1, x, branch, s);
    if (res->shortcut()) summarise(*res->shortcut(), dot + "shortcut", depth + 1, 2, x, branch, s);
    m.predict_into(x, y);
  } else {
    m.predict_into(x, y);
    for (const auto& [pname, p] : m.named_parameters()) s.rows[at].params += p->value.numel();
    s.rows[at].mult_adds = mult_adds_per_image(m, y.shape());
  }
  s.rows[at].output_shape = y.shape();
}

}  // namespace detail

template <typename T>
ModelSummary summary(const ModuleT<T>& model, const Shape& input_shape) {
  ModelSummary s;
  s.input_shape = input_shape;
  TensorT<T> x(input_shape), y;
  detail::summarise(model, "", 0, 0, x, y, s);
  for (const auto& r : s.rows) s.total_mult_adds += r.mult_adds;
  for (const auto& [name, p] : model.named_parameters()) s.total_params += p->value.numel();
  s.trainable_params = s.total_params;
  s.param_bytes = s.total_params * static_cast<std::int64_t>(sizeof(T));
  return s;
}

}  // namespace ember::nn
