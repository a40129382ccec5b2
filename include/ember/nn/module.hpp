#pragma once
// The module contract, shared by every layer and by Sequential.
//
//   forward(x)        training-mode forward: keeps in the module what backward needs.
//   backward(g)       gradient for the input of the last forward; *adds* into the parameters' .grad.
//   predict(x) const  inference as in eval mode; changes nothing, so one model can serve several threads.
//
// Each has an *_into variant that writes into a caller-owned tensor: Sequential and the training loop use
// those with buffers kept across steps, so a warmed-up training step allocates nothing. backward_into takes
// a null grad_in when the caller does not need the input gradient (the first layer of a network), which
// skips that work.
//
// Parameters and buffers are reported through virtual collectors rather than stored pointers, so modules
// stay safely copyable and movable. Names are PyTorch's dotted names (fc1.weight, batchnorm1.running_mean).
// Modules have value semantics: a copy (or clone()) is deep; a moved-from module throws on use rather than
// reading its emptied parameters.
#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <cstdlib>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parameter.hpp"
#include "ember/core/print.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/tracer.hpp"

namespace ember::nn {

using ember::Parameter;
using ember::ParameterT;

// Per-call scratch (packing workspaces) that a copy of its owner starts without: it holds no state worth
// copying, and some of it (Eigen's blocking) cannot be copied.
template <typename V>
struct Scratch : V {
  Scratch() = default;
  Scratch(const Scratch&) : V() {}
  Scratch& operator=(const Scratch&) { return *this; }
  Scratch(Scratch&&) noexcept = default;
  Scratch& operator=(Scratch&&) noexcept = default;
  ~Scratch() = default;
};

template <typename T>
class ModuleT {
 public:
  using Scalar = T;
  using TensorType = TensorT<T>;
  using NamedParameters = std::vector<std::pair<std::string, ParameterT<T>*>>;
  using NamedBuffers = std::vector<std::pair<std::string, TensorT<T>*>>;
  using NamedModules = std::vector<std::pair<std::string, ModuleT<T>*>>;

  ModuleT() = default;
  virtual ~ModuleT() = default;

  // A deep copy of the module as its own type. The layers of ember and Sequential implement it; a layer of
  // your own does it in one line (`return std::make_unique<MyLayer>(*this);`), else this throws naming it.
  virtual std::unique_ptr<ModuleT<T>> clone() const {
    throw std::logic_error(repr() + ": clone() is not implemented by this layer (override it as "
                           "`return std::make_unique<" + type_name() + "T<T>>(*this);`)");
  }

  TensorT<T> forward(const TensorT<T>& x) {
    TensorT<T> out;
    forward_into(x, out);
    return out;
  }
  TensorT<T> backward(const TensorT<T>& grad_out) {
    TensorT<T> grad_in;
    backward_into(grad_out, &grad_in);
    return grad_in;
  }
  TensorT<T> predict(const TensorT<T>& x) const {
    TensorT<T> out;
    predict_into(x, out);
    return out;
  }
  // Input of another scalar type (float images into a double model) is converted first, as fit converts
  // its batches.
  template <typename U, typename = std::enable_if_t<!std::is_same_v<U, T>>>
  TensorT<T> predict(const TensorT<U>& x) const {
    return predict(x.template cast<T>());
  }

  virtual void forward_into(const TensorT<T>& x, TensorT<T>& out) = 0;
  virtual void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) = 0;
  virtual void predict_into(const TensorT<T>& x, TensorT<T>& out) const = 0;
  // forward_into, with the caller's promise that x stays alive and unchanged until this module's backward (a
  // container passing its own activation buffer): a layer that needs its input for backward may then keep a
  // pointer instead of a copy (BatchNorm). Layers without such a need ignore the promise.
  virtual void forward_into_kept(const TensorT<T>& x, TensorT<T>& out) { forward_into(x, out); }

  // As PyTorch: train(true) / train(false) == eval(), passed on to the children.
  virtual void train(bool mode = true) {
    training_ = mode;
    for (auto& [name, child] : children()) child->train(mode);
  }
  void eval() { train(false); }
  bool is_training() const noexcept { return training_; }

  NamedParameters named_parameters() {
    NamedParameters out;
    collect_parameters("", out);
    return out;
  }
  std::vector<std::pair<std::string, const ParameterT<T>*>> named_parameters() const {
    NamedParameters all;
    const_cast<ModuleT*>(this)->collect_parameters("", all);
    return {all.begin(), all.end()};
  }
  std::vector<ParameterT<T>*> parameters() {
    std::vector<ParameterT<T>*> out;
    for (auto& [name, p] : named_parameters()) out.push_back(p);
    return out;
  }
  NamedBuffers named_buffers() {
    NamedBuffers out;
    collect_buffers("", out);
    return out;
  }
  std::vector<std::pair<std::string, const TensorT<T>*>> named_buffers() const {
    NamedBuffers all;
    const_cast<ModuleT*>(this)->collect_buffers("", all);
    return {all.begin(), all.end()};
  }
  // Every module with its dotted name, as PyTorch's named_modules(): the root as "", then its children
  // ("fc1", "block.0", ...) depth first, in registration order.
  // The direct children with their names, as PyTorch's named_children(): a Sequential's in order, a Residual's
  // "body" and "shortcut"; none for a layer.
  NamedModules children() {
    NamedModules out;
    collect_children(out);
    return out;
  }
  std::vector<std::pair<std::string, const ModuleT<T>*>> children() const {
    NamedModules all;
    const_cast<ModuleT*>(this)->collect_children(all);
    return {all.begin(), all.end()};
  }
  NamedModules named_modules() {
    NamedModules out;
    collect_modules("", out);
    return out;
  }
  std::vector<std::pair<std::string, const ModuleT<T>*>> named_modules() const {
    NamedModules all;
    const_cast<ModuleT*>(this)->collect_modules("", all);
    return {all.begin(), all.end()};
  }
  void zero_grad() {
    for (auto* p : parameters()) p->grad.zero();
  }
  // As PyTorch's requires_grad_: every parameter of this module (and its children) frozen (false) or trained.
  ModuleT& requires_grad_(bool requires_grad = true) {
    for (auto* p : parameters()) p->requires_grad = requires_grad;
    return *this;
  }

  // The module as nodes of a graph (graph::trace, graph/tracer.hpp): adds its initializers and nodes reading
  // the value `x` and returns the name of its output value, with eval-mode semantics. Every layer of ember
  // describes itself; a layer of your own that does not is named by the error trace throws.
  virtual std::string describe(graph::Tracer& t, const std::string& x) const {
    (void)t, (void)x;
    throw std::invalid_argument(repr().substr(0, repr().find('\n')) +
                                ": this layer does not describe itself as a graph, so it has no ONNX mapping "
                                "and no traced shape: override ModuleT::describe (docs/adding-a-layer.md)");
  }

  // True when predict() treats every sample of the batch on its own (no statistic across the batch), so a
  // container may split a large batch into chunks and run them on several threads. Off unless a layer says so:
  // a Sequential holding one layer without it predicts a large batch whole, on one chunk.
  virtual bool batch_independent() const { return false; }

  // Listeners called during backward as a part of the model has its parameters' gradients (train/step.hpp,
  // dist::GradientReducer): several at once, each called for every part, in the order they were added. A
  // container (reports_gradients_ready) calls them after each child's backward; a single layer does not, and
  // the caller reports the whole module once its backward is done. The returned id removes the listener.
  // Copies of a module start without listeners (they point into whoever added them).
  using GradientsReadyHook = std::function<void(const std::string& name, ModuleT& module)>;
  std::size_t add_gradients_ready_listener(GradientsReadyHook fn) {
    listeners_.items.emplace_back(++listeners_.last_id, std::move(fn));
    return listeners_.last_id;
  }
  void remove_gradients_ready_listener(std::size_t id) {
    auto& v = listeners_.items;
    v.erase(std::remove_if(v.begin(), v.end(), [id](const auto& l) { return l.first == id; }), v.end());
  }
  virtual bool reports_gradients_ready() const { return false; }

  // The type's name as PyTorch prints it ("Linear", "Conv2d", ...).
  virtual std::string type_name() const = 0;
  // What goes inside the parentheses of the printout ("in_features=784, out_features=512, bias=True").
  virtual std::string extra_repr() const { return ""; }
  // The whole printout, as PyTorch's repr() of the same module.
  virtual std::string repr() const { return type_name() + "(" + extra_repr() + ")"; }

  // A container adds its direct children (collect_children); everything below follows from them.
  virtual void collect_children(NamedModules& out) { (void)out; }
  // Parameters and buffers with `prefix` before each name ("fc1." inside a Sequential): by default the
  // children's, each under its name; a layer adds its own.
  virtual void collect_parameters(const std::string& prefix, NamedParameters& out) {
    for (auto& [name, child] : children()) child->collect_parameters(prefix + name + ".", out);
  }
  virtual void collect_buffers(const std::string& prefix, NamedBuffers& out) {
    for (auto& [name, child] : children()) child->collect_buffers(prefix + name + ".", out);
  }
  // This module under `name`, then its children's modules ("name.child"), depth first.
  void collect_modules(const std::string& name, NamedModules& out) {
    out.emplace_back(name, this);
    for (auto& [child_name, child] : children())
      child->collect_modules(name.empty() ? child_name : name + "." + child_name, out);
  }

 protected:
  // Copies are deep (each layer copies its tensors); protected so that a module is never sliced.
  ModuleT(const ModuleT&) = default;
  ModuleT& operator=(const ModuleT&) = default;
  // The source of a move keeps its configuration but not its parameters: it remembers that, so that using it
  // throws (require_parameters) instead of reading empty tensors.
  ModuleT(ModuleT&& other) noexcept : training_(other.training_), moved_from_(other.moved_from_) {
    other.moved_from_ = true;
  }
  ModuleT& operator=(ModuleT&& other) noexcept {
    training_ = other.training_;
    moved_from_ = other.moved_from_;
    if (&other != this) other.moved_from_ = true;
    return *this;
  }

  void require_parameters() const {
    if (moved_from_)
      throw std::logic_error(repr() + ": the layer has no parameters: it was moved from (into a Sequential or "
                             "another module); use the copy there, or pass the layer as an lvalue to copy it");
  }
  // backward without a forward before it is a usage error, not undefined behaviour.
  void require_forward(bool has_forward) const {
    require_parameters();
    if (!has_forward) throw std::logic_error(repr() + ": backward called before forward");
  }
  // The upstream gradient must have the shape of the last forward's output.
  void require_grad_shape(const TensorT<T>& grad_out, const Shape& expected) const {
    if (grad_out.shape() != expected)
      throw shape_error(repr() + ": expected grad_output " + to_string(expected) + ", got " +
                        to_string(grad_out.shape()));
  }

  // For containers: every listener, for the child `name` whose gradients are now complete.
  void notify_gradients_ready(const std::string& name, ModuleT& child) {
    for (auto& l : listeners_.items) l.second(name, child);
  }

  bool training_ = true;
  bool moved_from_ = false;

 private:
  struct Listeners {
    Listeners() = default;
    Listeners(const Listeners&) {}
    Listeners& operator=(const Listeners&) { return *this; }
    Listeners(Listeners&&) noexcept = default;
    Listeners& operator=(Listeners&&) noexcept = default;
    std::vector<std::pair<std::size_t, GradientsReadyHook>> items;
    std::size_t last_id = 0;
  } listeners_;
};

using Module = ModuleT<float>;
EMBER_EXTERN_TEMPLATE(class ModuleT<float>)
EMBER_EXTERN_TEMPLATE(class ModuleT<double>)

// t.resize(dims) without building a Shape (a heap allocation) when t has that shape already, so that a warmed-up
// training step allocates nothing.
template <typename T>
void ensure_shape(TensorT<T>& t, std::initializer_list<std::int64_t> dims) {
  if (!std::equal(t.shape().begin(), t.shape().end(), dims.begin(), dims.end())) t.resize(Shape(dims));
}

template <typename T>
std::ostream& operator<<(std::ostream& os, const ModuleT<T>& m) {
  return os << m.repr();
}

using ember::python_float;

}  // namespace ember::nn
