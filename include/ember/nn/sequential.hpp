#pragma once
// Sequential: an ordered list of named children, run one after another, as torch.nn.Sequential with an
// OrderedDict. An optional display name replaces "Sequential" in the printout, so the report's models print as
// in the report:
//   Sequential("Net", {{"fc1", Linear(784, 512)}, {"relu1", ReLU()}, {"fc2", Linear(512, 10)}})
// Children added without a name are named by position ("0", "1", ...), as in PyTorch.
// Intermediate activations and gradients live in buffers kept across steps; a shape error from a child is
// rethrown naming the child and the input the Sequential was given.
// Children are held by value: an lvalue layer is copied in (the caller's layer stays whole and independent),
// an rvalue is moved in. Copying a Sequential copies its children (clone()).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <deque>
#include <typeinfo>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ember/core/compiled.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/print.hpp"
#include "ember/core/tensor.hpp"
#include "ember/nn/fusion.hpp"
#include "ember/nn/module.hpp"

namespace ember::nn {

namespace detail {
template <typename M, typename = void>
struct is_module : std::false_type {};
template <typename M>
struct is_module<M, std::void_t<typename M::Scalar>> : std::is_base_of<ModuleT<typename M::Scalar>, M> {};

// A module of any scalar type is accepted here so that one of the wrong type reaches the static_assert below
// rather than a bare "no matching function".
template <typename M>
constexpr bool is_module_v = is_module<std::decay_t<M>>::value;

// The child as its own type: an lvalue is copied, an rvalue moved.
template <typename T, typename M>
std::unique_ptr<ModuleT<T>> own_child(M&& m) {
  using D = std::decay_t<M>;
  static_assert(std::is_same_v<typename D::Scalar, T>,
                "Sequential: this layer's scalar type differs from the Sequential's (e.g. nn::Linear, a "
                "LinearT<float>, inside a SequentialT<double>); build the layer as ...T<double>, or convert "
                "the float model afterwards with nn::to<double>(model)");
  static_assert(std::is_copy_constructible_v<D> || !std::is_lvalue_reference_v<M>,
                "Sequential: an lvalue layer is copied in; this layer type cannot be copied: pass std::move(layer)");
  return std::make_unique<D>(std::forward<M>(m));
}

using ember::demangle;
}  // namespace detail

// get<M>() on a child of another type: still a std::bad_cast, with a message naming both types.
struct module_cast_error : std::bad_cast {
  explicit module_cast_error(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

// One child for Sequential's initializer list, with an optional name: an lvalue layer is copied, an rvalue
// moved.
template <typename T>
struct NamedModuleT {
  template <typename M, typename = std::enable_if_t<detail::is_module_v<M>>>
  NamedModuleT(std::string n, M&& m) : name(std::move(n)), module(detail::own_child<T>(std::forward<M>(m))) {}
  template <typename M, typename = std::enable_if_t<detail::is_module_v<M>>>
  NamedModuleT(M&& m) : module(detail::own_child<T>(std::forward<M>(m))) {}  // NOLINT: implicit by design

  std::string name;
  // initializer_list elements are const; the module is moved out of it exactly once, by Sequential.
  mutable std::unique_ptr<ModuleT<T>> module;
};

template <typename T>
class SequentialT : public ModuleT<T> {
 public:
  SequentialT() = default;
  SequentialT(std::initializer_list<NamedModuleT<T>> children) : SequentialT("", children) {}
  SequentialT(std::string display_name, std::initializer_list<NamedModuleT<T>> children)
      : display_name_(std::move(display_name)) {
    for (const auto& c : children) push_back(c.name, std::move(c.module));
  }

  // Copies: each child cloned, the buffers of the original left behind.
  SequentialT(const SequentialT& other)
      : ModuleT<T>(other), display_name_(other.display_name_), absorbed_relu_(other.absorbed_relu_) {
    children_.reserve(other.children_.size());
    for (const auto& [name, child] : other.children_) children_.emplace_back(name, child->clone());
  }
  SequentialT& operator=(const SequentialT& other) {
    if (this != &other) *this = SequentialT(other);
    return *this;
  }
  SequentialT(SequentialT&&) noexcept = default;
  SequentialT& operator=(SequentialT&&) noexcept = default;
  ~SequentialT() override = default;

  std::unique_ptr<ModuleT<T>> clone() const override { return std::make_unique<SequentialT>(*this); }

  // Adds a child at the end (an lvalue copied, an rvalue moved); an empty name means its position.
  template <typename M, typename = std::enable_if_t<detail::is_module_v<M>>>
  SequentialT& add(std::string name, M&& module) {
    return push_back(std::move(name), detail::own_child<T>(std::forward<M>(module)));
  }
  SequentialT& push_back(std::string name, std::unique_ptr<ModuleT<T>> module) {
    if (!module) throw std::invalid_argument("Sequential: null child");
    if (name.empty()) name = std::to_string(children_.size());
    if (name.find('.') != std::string::npos)  // as PyTorch's add_module: dotted names would be ambiguous
      throw std::invalid_argument(display() + ": child name '" + name + "' contains '.' (module names cannot)");
    for (const auto& c : children_)
      if (c.first == name) throw std::invalid_argument("Sequential: a child named '" + name + "' exists already");
    module->train(this->training_);
    children_.emplace_back(std::move(name), std::move(module));
    return *this;
  }

  // Swaps the child `name` for `module` (a new head), keeping its place and name, as PyTorch's
  // `model.fc = nn.Linear(...)`; std::out_of_range naming it when there is no such child.
  template <typename M, typename = std::enable_if_t<detail::is_module_v<M>>>
  SequentialT& replace(const std::string& name, M&& module) {
    ModuleT<T>* old = find(name);
    auto child = detail::own_child<T>(std::forward<M>(module));
    child->train(this->training_);
    for (auto& c : children_) if (c.second.get() == old) c.second = std::move(child);
    absorbed_relu_.clear();  // the last forward's fusion no longer holds: backward needs a new forward
    return *this;
  }

  std::size_t size() const { return children_.size(); }
  ModuleT<T>& operator[](std::size_t i) { return *children_.at(i).second; }
  const ModuleT<T>& operator[](std::size_t i) const { return *children_.at(i).second; }
  const std::string& name_of(std::size_t i) const { return children_.at(i).first; }
  // The child with this name; throws std::out_of_range naming it when absent.
  ModuleT<T>& operator[](const std::string& name) { return *find(name); }
  // The child with this name as its concrete type; module_cast_error (a std::bad_cast) naming the child, its
  // type and the requested type when it is another type.
  template <typename M>
  M& get(const std::string& name) {
    ModuleT<T>* child = find(name);
    if (auto* m = dynamic_cast<M*>(child)) return *m;
    throw module_cast_error(display() + ": child '" + name + "' is " + child->repr() + " (" +
                            detail::demangle(typeid(*child).name()) + "), not the requested " +
                            detail::demangle(typeid(M).name()));
  }
  template <typename M>
  const M& get(const std::string& name) const {
    return const_cast<SequentialT*>(this)->template get<M>(name);
  }

  void forward_into(const TensorT<T>& x, TensorT<T>& out) override { forward_children(x, out, false); }
  void forward_into_kept(const TensorT<T>& x, TensorT<T>& out) override { forward_children(x, out, true); }

  void backward_into(const TensorT<T>& grad_out, TensorT<T>* grad_in) override {
    if (children_.empty()) {
      if (grad_in) grad_in->assign(grad_out);
      return;
    }
    // Two gradient buffers, used in turn: a child's grad_out is dead once its backward has written grad_in,
    // so the whole chain needs only two (peak memory: the two largest activations' worth, not the sum).
    grads_.resize(2);
    const TensorT<T>* g = &grad_out;
    std::size_t next = 0;
    for (std::size_t i = children_.size(); i-- > 0;) {
      // A child that took the ReLU before it (forward_children) also does the ReLU's backward.
      const bool with_relu = absorbed_relu_.size() == children_.size() && absorbed_relu_[i];
      const std::size_t first = with_relu ? i - 1 : i;
      TensorT<T>* gi = first == 0 ? grad_in : &grads_[next];
      try {
        if (with_relu)
          relu_fusion_of(*children_[i].second)->backward_into_relu(*g, gi);
        else
          children_[i].second->backward_into(*g, gi);
      } catch (const shape_error& e) {
        throw shape_error(display() + " (" + children_[i].first + "): " + e.what());
      }
      this->notify_gradients_ready(children_[i].first, *children_[i].second);
      if (with_relu) this->notify_gradients_ready(children_[first].first, *children_[first].second);
      g = gi;
      next ^= 1;
      i = first;
    }
  }

  bool reports_gradients_ready() const override { return true; }

  // A large batch whose children all treat samples independently runs in chunks, several at once (one per
  // thread, each single-threaded inside), so that no activation of the whole batch (200 MB after conv1 at
  // batch 1000) is ever allocated. The first chunk, of kPredictChunk images, runs alone and tells the largest
  // activation per image; the others hold about kChunkValues values in that activation (1 MiB of floats: in
  // L2 while the next layer reads it), 4 images of the report's CNN, 250 of its MLP (whose Linear layers then
  // multiply 250 rows at a time, not 4), and at least two chunks per thread.
  static constexpr std::int64_t kPredictChunk = 4;
  static constexpr std::int64_t kChunkValues = std::int64_t(1) << 18;

  void predict_into(const TensorT<T>& x, TensorT<T>& out) const override {
    const std::int64_t n = x.dim() >= 2 ? x.size(0) : 0;
    if (children_.empty() || n <= 2 * kPredictChunk || in_parallel_region() || !batch_independent()) {
      predict_whole(x, out);
      return;
    }
    const std::int64_t per = x.numel() / n;
    // The first chunk runs alone: shape errors surface here, outside a parallel region, and its output tells
    // the shape of the whole output.
    TensorT<T> xc, yc;
    slice(x, 0, kPredictChunk, per, xc);
    const std::int64_t largest = predict_whole(xc, yc, &x.shape()) / kPredictChunk;
    Shape os = yc.shape();
    os[0] = n;
    out.resize(os);
    const std::int64_t out_per = yc.numel() / kPredictChunk;
    std::copy(yc.begin(), yc.end(), out.begin());
    const std::int64_t rest = n - kPredictChunk, threads = get_num_threads();
    const std::int64_t size = std::clamp<std::int64_t>(kChunkValues / std::max<std::int64_t>(1, largest), 1,
                                                       std::max<std::int64_t>(1, rest / (2 * threads)));
    const std::int64_t chunks = (rest + size - 1) / size;
    const int nt = static_cast<int>(std::max<std::int64_t>(1, std::min(threads, chunks)));
    // One share per thread, each taking the next chunk until none is left (a dynamic schedule): a thread that
    // is slow to start leaves its chunks to the others. The first exception is rethrown by parallel_for.
    std::atomic<std::int64_t> next{0};
    parallel_for(nt, nt, [&](std::int64_t) {
      TensorT<T> xi, yi;
      for (std::int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
        const std::int64_t lo = kPredictChunk + c * size, hi = std::min(n, lo + size);
        slice(x, lo, hi, per, xi);
        predict_whole(xi, yi, &x.shape());
        std::copy(yi.begin(), yi.end(), out.begin() + lo * out_per);
      }
    });
  }

  std::string describe(graph::Tracer& t, const std::string& x) const override {
    std::string v = x;
    for (const auto& [name, child] : children_) v = t.child(name, *child, v);
    return v;
  }

  bool batch_independent() const override {
    for (const auto& c : children_)
      if (!c.second->batch_independent()) return false;
    return true;
  }


  std::string type_name() const override { return display(); }
  // PyTorch's layout: one "(name): child" line per child, nested reprs indented by two spaces.
  std::string repr() const override {
    if (children_.empty()) return display() + "()";
    std::string s = display() + "(\n";
    for (const auto& [name, child] : children_) {
      std::string r = child->repr(), indented;
      for (char ch : r) {
        indented += ch;
        if (ch == '\n') indented += "  ";
      }
      s += "  (" + name + "): " + indented + "\n";
    }
    return s + ")";
  }

  void collect_children(typename ModuleT<T>::NamedModules& out) override {
    for (auto& [name, child] : children_) out.emplace_back(name, child.get());
  }
  const std::string& display_name() const { return display_name_; }

 private:
  void forward_children(const TensorT<T>& x, TensorT<T>& out, bool x_kept) {
    if (children_.empty()) {
      out.assign(x);
      return;
    }
    acts_.resize(children_.size() - 1);
    absorbed_relu_.assign(children_.size(), 0);
    for (std::size_t i = 0; i < children_.size(); ++i) {
      const TensorT<T>& in = i == 0 ? x : acts_[i - 1];
      // A ReLU whose input stays alive, followed by a layer that can read through it (BatchNorm in training):
      // that layer runs the pair, and the ReLU's output buffer is not written.
      ReluFusion<T>* const next = i + 1 < children_.size() ? relu_fusion_of(*children_[i + 1].second) : nullptr;
      const ReluFusion<T>* const self = next ? relu_fusion_of(*children_[i].second) : nullptr;
      const bool fuse = (i > 0 || x_kept) && self && self->is_relu() && next->absorbs_relu();
      const std::size_t last = fuse ? i + 1 : i;
      TensorT<T>& o = last + 1 == children_.size() ? out : acts_[last];
      try {
        // acts_ is left alone until the next forward, so every child after the first may keep its input.
        if (fuse)
          next->forward_into_relu(in, o);
        else if (i > 0 || x_kept)
          children_[i].second->forward_into_kept(in, o);
        else
          children_[i].second->forward_into(in, o);
      } catch (const shape_error& e) {
        rethrow_naming(last, e, x.shape());
      }
      absorbed_relu_[last] = fuse;
      i = last;
    }
  }
  std::string display() const { return display_name_.empty() ? "Sequential" : display_name_; }
  // Samples lo..hi of x (per values each) into t.
  static void slice(const TensorT<T>& x, std::int64_t lo, std::int64_t hi, std::int64_t per, TensorT<T>& t) {
    Shape s = x.shape();
    s[0] = hi - lo;
    t.resize(s);
    std::copy(x.begin() + lo * per, x.begin() + hi * per, t.begin());
  }

  // A child's shape error, naming the child and the input the Sequential was given.
  [[noreturn]] void rethrow_naming(std::size_t i, const shape_error& e, const Shape& input) const {
    throw shape_error(display() + " (" + children_[i].first + "): " + e.what() + " (the input given to " +
                      display() + " was " + to_string(input) + ")");
  }

  // `input`: the whole batch's shape when x is a chunk of it.
  // Returns the size of the largest activation (input and output included), in values.
  std::int64_t predict_whole(const TensorT<T>& x, TensorT<T>& out, const Shape* input = nullptr) const {
    if (children_.empty()) {
      out.assign(x);
      return x.numel();
    }
    // One kept buffer per child output and per nesting depth on the calling thread: each keeps its size from
    // one chunk to the next, so a warm prediction neither allocates (a fresh buffer faulted in its pages, a
    // tenth of CNN inference) nor zero-fills a buffer grown back to its size.
    static thread_local std::deque<std::vector<TensorT<T>>> scratch;
    static thread_local std::size_t depth = 0;
    if (scratch.size() <= depth) scratch.emplace_back();
    std::vector<TensorT<T>>& acts = scratch[depth];
    if (acts.size() < children_.size() - 1) acts.resize(children_.size() - 1);
    struct Level {
      std::size_t& d;
      ~Level() { --d; }
    } level{++depth};
    // The channel maps that follow a layer able to apply them (a Conv2d's ReLU, Dropout and BatchNorm2d) run
    // inside its output's store: nn/fusion.hpp's ChannelMap. Kept per thread, so a warm prediction allocates nothing.
    static thread_local ChannelMap<T> map;
    static thread_local Shape mapped_shape;
    const TensorT<T>* in = &x;
    std::int64_t largest = x.numel();
    const std::size_t count = children_.size();
    for (std::size_t i = 0; i < count;) {
      std::size_t last = i;  // the last child whose work this step does
      map.clear();
      const ChannelFusion<T>* const writer = channel_fusion_of(*children_[i].second);
      if (writer && writer->mapped_output_shape(in->shape(), mapped_shape))
        while (last + 1 < count) {
          const ChannelFusion<T>* const stage = channel_fusion_of(*children_[last + 1].second);
          if (!stage || !stage->append_channel_map(mapped_shape, map)) break;
          ++last;
        }
      TensorT<T>& o = last + 1 == count ? out : acts[last];
      try {
        if (last > i)
          writer->predict_into_mapped(*in, o, map);
        else
          children_[i].second->predict_into(*in, o);
      } catch (const shape_error& e) {
        rethrow_naming(i, e, input ? *input : x.shape());
      }
      largest = std::max(largest, o.numel());
      in = &o;
      i = last + 1;
    }
    return largest;
  }

  ModuleT<T>* find(const std::string& name) const {
    for (const auto& c : children_)
      if (c.first == name) return c.second.get();
    throw std::out_of_range(display() + ": no child named '" + name + "'");
  }

  std::string display_name_;
  std::vector<std::pair<std::string, std::unique_ptr<ModuleT<T>>>> children_;
  std::vector<TensorT<T>> acts_, grads_;
  std::vector<char> absorbed_relu_;  // per child: its last forward also ran the ReLU before it
};

using Sequential = SequentialT<float>;
EMBER_EXTERN_TEMPLATE(class SequentialT<float>)
EMBER_EXTERN_TEMPLATE(class SequentialT<double>)

}  // namespace ember::nn
