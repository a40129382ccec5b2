#pragma once
// GraphModule(graph): a graph::Graph (io::load_onnx's, graph::trace's) as a trainable module of ember's own
// layers, for fine-tuning an imported model.
//   - Layers: each Conv becomes a Conv2d, each Gemm or MatMul with a constant weight a Linear (Gemm's alpha,
//     beta and transB folded into its weight [out, in] and bias), each BatchNormalization a BatchNorm2d (a
//     BatchNorm1d below rank 4; PyTorch's momentum is 1 - ONNX's), Relu, LeakyRelu, Sigmoid, Tanh, Gelu,
//     MaxPool, AveragePool, GlobalAveragePool and Dropout their layers. Children are named after their module
//     in the exporting model ("layer1.0.conv1" as "layer1_0_conv1": module names hold no '.'), taken from the
//     weight's name or from torch.onnx.export's node name ("/layer1/layer1.0/conv1/Conv").
//   - The other operators (broadcasting Add/Sub/Mul/Div, Concat, Slice, Transpose, Pad, ReduceMean, Softmax,
//     Clip, HardSigmoid, HardSwish, Erf, reshapes) are nn/graph_module_ops.hpp's, each with its backward.
//   - Names: parameters and buffers are named by the graph's initialisers ("conv1.weight",
//     "onnx::Conv_193"), so state dicts and checkpoints use the file's names; a tensor the graph does not
//     have (num_batches_tracked, a new head's bias) is named "<module>.<leaf>" beside its siblings.
//   - forward runs the nodes in order keeping every value; backward walks them back, adding the gradients
//     of a value read by several nodes (a residual's Add, a squeeze-and-excitation's Mul). A node without a
//     backward (an int8 node of graph::quantize_int8, run here with its weights dequantised) makes forward
//     in training mode throw naming it; predict and eval-mode forward run it.
//   - replace(name, module) swaps a child (a new head) as Sequential::replace; describe writes the graph
//     back (io::export_onnx of a GraphModule), the layers' current weights under their names.
// One graph input and one output; dimension 0 is the batch, the other sizes are the graph's.
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/shapes.hpp"
#include "ember/graph/tracer.hpp"
#include "ember/nn/graph_module_layers.hpp"
#include "ember/nn/graph_module_ops.hpp"
#include "ember/nn/module.hpp"
#include "ember/nn/sequential.hpp"

namespace ember::nn {

template <typename T>
class GraphModuleT : public ModuleT<T> {
  using Entry = graph_module_detail::Entry<T>;

 public:
  explicit GraphModuleT(const graph::Graph& g) {
    g.validate();
    if (g.inputs().size() != 1 || g.outputs().size() != 1)
      throw std::invalid_argument("GraphModule: the graph must have one input and one output, got " +
                                  std::to_string(g.inputs().size()) + " and " + std::to_string(g.outputs().size()));
    input_name_ = g.inputs()[0].name;
    input_shape_ = g.inputs()[0].shape;
    input_shape_[0] = 1;
    std::map<std::string, Shape> shapes{{input_name_, input_shape_}};
    std::map<std::string, int> ids{{input_name_, 0}};
    std::map<std::string, std::string> weight_owner;  // an initializer a layer holds -> that node
    std::set<std::string> taken;
    for (const graph::Node& original : g.nodes())
      for (graph::Node& n : graph_module_detail::split_activation(original)) {
        std::vector<Shape> in;
        for (const auto& v : n.inputs)
          in.push_back(v.empty() ? Shape{} : g.has_initializer(v) ? g.initializer(v).shape() : shapes.at(v));
        Shape out;
        try {
          out = graph::infer_shape(n, in);
        } catch (const std::exception& e) {
          throw std::invalid_argument(std::string("GraphModule: ") + e.what());
        }
        Entry e = graph_module_detail::make_entry<T>(n, g, in, out);
        for (const auto& [leaf, init] : e.names) {
          const auto [it, fresh] = weight_owner.emplace(init, n.name);
          if (!fresh)
            throw std::invalid_argument("GraphModule: node " + n.describe() + " shares its weight '" + init +
                                        "' with node '" + it->second + "'; each layer needs its own");
        }
        for (const auto& v : n.inputs)
          if (!v.empty() && !g.has_initializer(v)) e.in.push_back(ids.at(v));
        if (e.in.empty()) graph_module_detail::refuse(n, "no computed input");
        e.out = static_cast<int>(ids.size());
        ids[n.outputs.at(0)] = e.out;
        shapes[n.outputs[0]] = out;
        if (e.module) {
          e.child = graph_module_detail::unique_name(graph_module_detail::module_path(n, e.names), taken);
          e.prefix = graph_module_detail::prefix_of(e.names, e.child);
        }
        entries_.push_back(std::move(e));
      }
    values_count_ = ids.size();
    output_ = ids.at(g.outputs()[0].name);
    // predict frees each value after its last reader: its peak is a few activations, not all of them.
    std::vector<std::size_t> last(values_count_, 0);
    for (std::size_t k = 0; k < entries_.size(); ++k)
      for (int v : entries_[k].in) last[static_cast<std::size_t>(v)] = k;
    for (std::size_t v = 0; v < values_count_; ++v)
      if (static_cast<int>(v) != output_) entries_[last[v]].frees.push_back(static_cast<int>(v));
    output_name_ = g.outputs()[0].name;
  }

  GraphModuleT(const GraphModuleT& other)
      : ModuleT<T>(other), input_name_(other.input_name_), output_name_(other.output_name_),
        input_shape_(other.input_shape_), values_count_(other.values_count_), output_(other.output_) {
    for (const auto& e : other.entries_) entries_.push_back(e.copy());
  }
  GraphModuleT& operator=(const GraphModuleT& other) {
    if (this != &other) *this = GraphModuleT(other);
    return *this;
  }
  GraphModuleT(GraphModuleT&&) noexcept = default;
  GraphModuleT& operator=(GraphModuleT&&) noexcept = default;
  ~GraphModuleT() override = default;

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<GraphModuleT>(*this); }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override {
    check_input(x);
    values_.resize(values_count_);
    values_[0].assign(x);
    has_forward_ = false;
    for (auto& e : entries_) {
      if (this->training_ && e.no_backward)
        throw std::invalid_argument("GraphModule: node " + e.node.describe() + " has no backward (" +
                                    e.no_backward_why + "); call eval() to run it, or build the module from the "
                                    "float graph to train it");
      run(e, values_, values_[static_cast<std::size_t>(e.out)], true);
    }
    out.assign(values_[static_cast<std::size_t>(output_)]);
    has_forward_ = true;
  }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    this->require_forward(has_forward_);
    this->require_grad_shape(grad_out, values_[static_cast<std::size_t>(output_)].shape());
    grads_.resize(values_count_);
    has_grad_.assign(values_count_, 0);
    grads_[static_cast<std::size_t>(output_)].assign(grad_out);
    has_grad_[static_cast<std::size_t>(output_)] = 1;
    std::vector<const TensorT<T>*> ins;
    std::vector<TensorT<T>*> gs;
    for (std::size_t k = entries_.size(); k-- > 0;) {
      Entry& e = entries_[k];
      const auto o = static_cast<std::size_t>(e.out);
      if (!has_grad_[o]) continue;  // not on the way to the output
      ins.clear();
      gs.clear();
      for (int v : e.in) {
        const auto i = static_cast<std::size_t>(v);
        ins.push_back(&values_[i]);
        if (v == 0 && !grad_in) {
          gs.push_back(nullptr);
          continue;
        }
        if (!has_grad_[i]) {
          grads_[i].resize(values_[i].shape());
          grads_[i].zero();
          has_grad_[i] = 1;
        }
        gs.push_back(&grads_[i]);
      }
      try {
        if (e.module) {
          e.module->backward_into(grads_[o], gs[0] ? &scratch_ : nullptr);
          if (gs[0])
            for (std::int64_t i = 0; i < scratch_.numel(); ++i) (*gs[0])[i] += scratch_[i];
        } else {
          e.op->backward(ins, values_[o], grads_[o], gs);
        }
      } catch (const shape_error& ex) {
        throw shape_error("GraphModule (" + e.node.describe() + "): " + ex.what());
      }
    }
    if (!grad_in) return;
    if (has_grad_[0]) grad_in->assign(grads_[0]);
    else *grad_in = TensorT<T>(values_[0].shape());
  }

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    check_input(x);
    std::vector<TensorT<T>> values(values_count_);
    values[0].assign(x);
    for (const auto& e : entries_) {
      run(e, values, values[static_cast<std::size_t>(e.out)], false);
      for (int v : e.frees) values[static_cast<std::size_t>(v)] = TensorT<T>();
    }
    out = std::move(values[static_cast<std::size_t>(output_)]);
  }

  bool batch_independent() const override {
    for (const auto& e : entries_)
      if (e.module && !e.module->batch_independent()) return false;
    return true;
  }

  // Swaps the child `name` for `module` (a new head), keeping its place, name and parameter names, as
  // Sequential::replace; std::out_of_range naming it when there is no such child.
  template <typename M, typename = std::enable_if_t<detail::is_module_v<M>>>
  GraphModuleT& replace(const std::string& name, M&& module) {
    Entry& e = find(name);
    e.module = detail::own_child<T>(std::forward<M>(module));
    e.module->train(this->training_);
    e.no_backward = false;
    has_forward_ = false;  // the new child has no forward to go back through
    return *this;
  }
  ModuleT<T>& operator[](const std::string& name) { return *find(name).module; }
  template <typename M>
  M& get(const std::string& name) {
    ModuleT<T>* child = find(name).module.get();
    if (auto* m = dynamic_cast<M*>(child)) return *m;
    throw module_cast_error("GraphModule: child '" + name + "' is " + child->repr() + ", not the requested " +
                            detail::demangle(typeid(M).name()));
  }
  // The graph's value names of the input and the output.
  const std::string& input_name() const { return input_name_; }
  const std::string& output_name() const { return output_name_; }

  std::string describe(graph::Tracer& t, const std::string& x) const override {
    std::map<std::string, std::string> traced{{input_name_, x}}, constants;
    for (const auto& e : entries_) {
      std::string out;
      if (e.module) {
        out = graph_module_detail::describe_layer(t, e, traced.at(e.node.inputs[0]));
      } else {
        std::vector<std::string> in;
        for (const auto& v : e.node.inputs) {
          if (v.empty() || traced.count(v)) {
            in.push_back(v.empty() ? v : traced.at(v));
            continue;
          }
          if (!constants.count(v)) constants[v] = t.parameter(v, e.constant(v));
          in.push_back(constants.at(v));
        }
        out = t.node(e.node.op, in, e.node.attributes);
      }
      traced[e.node.outputs[0]] = out;
    }
    return traced.at(output_name_);
  }

  std::string type_name() const override { return "GraphModule"; }
  std::string repr() const override {
    std::string s = "GraphModule(\n";
    for (const auto& e : entries_) {
      if (!e.module) continue;
      std::string r = e.module->repr(), indented;
      for (char ch : r) {
        indented += ch;
        if (ch == '\n') indented += "  ";
      }
      s += "  (" + e.child + "): " + indented + "\n";
    }
    return s + ")";
  }

  void collect_children(typename ModuleT<T>::NamedModules& out) override {
    for (auto& e : entries_)
      if (e.module) out.emplace_back(e.child, e.module.get());
  }
  void collect_parameters(const std::string& prefix, typename ModuleT<T>::NamedParameters& out) override {
    for (auto& e : entries_) {
      if (!e.module) continue;
      typename ModuleT<T>::NamedParameters mine;
      e.module->collect_parameters("", mine);
      for (auto& [leaf, p] : mine) out.emplace_back(prefix + e.name_of(leaf), p);
    }
  }
  void collect_buffers(const std::string& prefix, typename ModuleT<T>::NamedBuffers& out) override {
    for (auto& e : entries_) {
      if (!e.module) continue;
      typename ModuleT<T>::NamedBuffers mine;
      e.module->collect_buffers("", mine);
      for (auto& [leaf, b] : mine) out.emplace_back(prefix + e.name_of(leaf), b);
    }
  }

 private:
  void check_input(const TensorT<T>& x) const {
    this->require_parameters();
    bool fits = x.dim() == static_cast<std::int64_t>(input_shape_.size()) && x.size(0) >= 1;
    for (std::size_t i = 1; fits && i < input_shape_.size(); ++i) fits = x.shape()[i] == input_shape_[i];
    if (!fits) {
      Shape want = input_shape_;
      want[0] = -1;
      throw shape_error("GraphModule: expected input " + to_string(want) + " (-1: any batch), got " +
                        to_string(x.shape()));
    }
  }

  // Node e on `values` into `out`: training-mode forward (keeping what backward needs) or predict.
  static void run(const Entry& e, const std::vector<TensorT<T>>& values, TensorT<T>& out, bool keep) {
    std::vector<const TensorT<T>*> ins;
    for (int v : e.in) ins.push_back(&values[static_cast<std::size_t>(v)]);
    try {
      if (e.module && keep) e.module->forward_into(*ins[0], out);
      else if (e.module) e.module->predict_into(*ins[0], out);
      else e.op->forward(ins, out);
    } catch (const shape_error& ex) {
      throw shape_error("GraphModule (" + e.node.describe() + "): " + ex.what());
    }
  }

  Entry& find(const std::string& name) {
    for (auto& e : entries_)
      if (e.module && e.child == name) return e;
    throw std::out_of_range("GraphModule: no child named '" + name + "'");
  }

  std::vector<Entry> entries_;
  std::string input_name_, output_name_;
  Shape input_shape_;  // batch 1
  std::size_t values_count_ = 0;
  int output_ = 0;
  std::vector<TensorT<T>> values_, grads_;  // per value id, of the last forward and backward
  std::vector<char> has_grad_;
  TensorT<T> scratch_;
  bool has_forward_ = false;
};

using GraphModule = GraphModuleT<float>;
EMBER_EXTERN_TEMPLATE(class GraphModuleT<float>)
EMBER_EXTERN_TEMPLATE(class GraphModuleT<double>)

}  // namespace ember::nn
