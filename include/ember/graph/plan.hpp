#pragma once
// graph::Plan(graph, input_shape, options): a graph compiled for inference, as a list of steps over buffers
// planned once.
//   - Steps: each node runs the kernels/ function its nn layer calls (graph/plan_steps.hpp). A Conv followed
//   by
//     a Relu and an eval-mode BatchNormalization (with Dropout or Identity between, when each value feeds
//     only the next) runs as one step, the others applied by the GEMM's epilogue as it stores its output
//     (kernels/epilogue.hpp), as Sequential's predict does; Dropout, Identity and Flatten cost nothing (their
//     output is their input's buffer).
//   - Memory: every value's size comes from its shape at plan time; values share buffers by liveness (a
//   buffer
//     is free after its value's last reader). The batch is cut into chunks of at most `chunk()` samples,
//     sized so that the largest value of a chunk stays in L2 (about 256 K values), no larger than the planned
//     batch.
//   - run(): const. A call takes a workspace (the buffers of one chunk) from a pool guarded by a mutex, or
//     makes one when every workspace is in use; it is put back after, so a warm call allocates nothing
//     (run(x, out) with `out` of the right size). Several chunks run at once on up to options.threads
//     threads, each single-threaded inside; a lone chunk (a small batch) uses the kernels' own threads. Every
//     sample's result depends only on the chunking, which depends only on the batch: calls from several
//     threads at once give the bits of a lone call. Any batch runs: larger ones in more chunks.
//   - Precision (graph/plan_quantized.hpp): nodes graph::quantize_int8 marked run in int8 whatever the
//     precision; BFloat16 runs the other Conv and Gemm nodes with bf16 products and float accumulation; Int8 on
//     a graph with no quantized node is an error that says to quantize first.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/parallel.hpp"
#include "ember/core/tensor.hpp"
#include "ember/graph/graph.hpp"
#include "ember/graph/plan_steps.hpp"
#include "ember/graph/shapes.hpp"

namespace ember::graph {

enum class Precision { Float32, BFloat16, Int8 };

struct PlanOptions {
  int threads = 0;  // chunks run at once; 0: get_num_threads()
  Precision precision = Precision::Float32;
};

class Plan {
 public:
  static constexpr std::int64_t kChunkValues = std::int64_t(1) << 18;

  Plan(const Graph& graph, const Shape& input_shape, PlanOptions options = {})
      : graph_(graph), options_(options), pool_(std::make_unique<Pool>()) {
    bool quantized = false;
    for (const auto& n : graph.nodes()) quantized = quantized || is_quantized(n);
    if (options.precision == Precision::Int8 && !quantized)
      throw std::invalid_argument(
          "Plan: Precision::Int8 needs a quantized graph (quantize first, with graph::quantize_int8); this graph "
          "holds float weights");
    graph_.validate();
    if (graph_.inputs().size() != 1 || graph_.outputs().size() != 1)
      throw std::invalid_argument("Plan: the graph must have one input and one output, got " +
                                  std::to_string(graph_.inputs().size()) + " and " +
                                  std::to_string(graph_.outputs().size()));
    const Shape& declared = graph_.inputs()[0].shape;
    bool fits = input_shape.size() == declared.size() && input_shape.size() >= 2 && input_shape[0] > 0;
    for (std::size_t i = 1; fits && i < declared.size(); ++i)
      fits = declared[i] < 0 || declared[i] == input_shape[i];
    if (!fits)
      throw shape_error("Plan: input_shape " + to_string(input_shape) + " does not fit the graph's input " +
                        to_string(declared) + " (a batch of at least 1 first)");
    input_shape_ = input_shape;
    build(input_shape[0]);
  }

  Tensor run(const Tensor& input) const {
    Tensor out;
    run(input, out);
    return out;
  }

  void run(const Tensor& input, Tensor& out) const {
    check_input(input);
    const std::int64_t n = input.size(0);
    resize_output(out, n);
    const std::int64_t chunks = (n + chunk_ - 1) / chunk_;
    const std::int64_t in_per = sizes_[0], out_per = sizes_[static_cast<std::size_t>(output_)];
    const int threads = options_.threads > 0 ? options_.threads : get_num_threads();
    const int nt = static_cast<int>(std::min<std::int64_t>(std::max(1, threads), chunks));
    const auto one = [&](std::int64_t c, plan_detail::Workspace& ws) {
      const std::int64_t lo = c * chunk_, m = std::min(chunk_, n - lo);
      run_chunk(input.data() + lo * in_per, out.data() + lo * out_per, m, ws);
    };
    if (nt <= 1 || in_parallel_region()) {
      Lease ws(*this);
      for (std::int64_t c = 0; c < chunks; ++c) one(c, *ws.ws);
      return;
    }
    // One share per thread, each with its own workspace, taking the next chunk until none is left. The first
    // exception (a workspace that could not be made, a chunk that failed) is rethrown by parallel_for.
    std::atomic<std::int64_t> next{0};
    parallel_for(nt, nt, [&](std::int64_t) {
      Lease ws(*this);
      for (std::int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) one(c, *ws.ws);
    });
  }

  // The samples one chunk holds, and the buffers one workspace holds (values of float), for the curious.
  std::int64_t chunk() const { return chunk_; }
  std::int64_t workspace_values() const {
    std::int64_t total = 0;
    for (auto s : slot_sizes_) total += s * chunk_;
    return total;
  }
  std::size_t steps() const { return steps_.size(); }
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  const PlanOptions& options() const { return options_; }

 private:
  struct Pool {
    std::mutex mutex;
    std::vector<std::unique_ptr<plan_detail::Workspace>> free;
    std::size_t made = 0;
  };
  // A workspace taken from the pool for one call (or one thread of it), given back on destruction.
  struct Lease {
    const Plan& plan;
    std::unique_ptr<plan_detail::Workspace> ws;
    explicit Lease(const Plan& p) : plan(p) {
      {
        std::lock_guard<std::mutex> lock(p.pool_->mutex);
        if (!p.pool_->free.empty()) {
          ws = std::move(p.pool_->free.back());
          p.pool_->free.pop_back();
          return;
        }
        ++p.pool_->made;
        p.pool_->free.reserve(p.pool_->made);  // so that giving it back never allocates
      }
      ws = p.make_workspace();
    }
    ~Lease() {
      std::lock_guard<std::mutex> lock(plan.pool_->mutex);
      plan.pool_->free.push_back(std::move(ws));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
  };

  std::unique_ptr<plan_detail::Workspace> make_workspace() const {
    auto ws = std::make_unique<plan_detail::Workspace>();
    for (auto s : slot_sizes_) ws->slots.emplace_back(static_cast<std::size_t>(s * chunk_));
    ws->linear.resize(linear_count_);
    return ws;
  }

  void check_input(const Tensor& x) const {
    bool fits = x.dim() == static_cast<std::int64_t>(input_shape_.size()) && x.size(0) >= 1;
    for (std::size_t i = 1; fits && i < input_shape_.size(); ++i) fits = x.shape()[i] == input_shape_[i];
    if (!fits)
      throw shape_error("Plan::run: expected input [N" +
                        to_string(Shape(input_shape_.begin() + 1, input_shape_.end())).replace(0, 1, ", ") +
                        " with N >= 1, got " + to_string(x.shape()));
  }
  // out as [n, ...] without building a Shape (a heap allocation) when it has that shape already.
  void resize_output(Tensor& out, std::int64_t n) const {
    const Shape& s = out.shape();
    bool same = s.size() == output_shape_.size() && !s.empty() && s[0] == n;
    for (std::size_t i = 1; same && i < s.size(); ++i) same = s[i] == output_shape_[i];
    if (same) return;
    Shape want = output_shape_;
    want[0] = n;
    out.resize(want);
  }

  const float* at(int value, const float* x, float* y, plan_detail::Workspace& ws) const {
    const int s = storage_[static_cast<std::size_t>(root_[static_cast<std::size_t>(value)])];
    return s == kInput ? x : s == kOutput ? y : ws.slots[static_cast<std::size_t>(s)].data();
  }
  void run_chunk(const float* x, float* y, std::int64_t n, plan_detail::Workspace& ws) const {
    for (const auto& step : steps_) {
      if (step.kind == plan_detail::Kind::General) {
        const float* ins[kMaxInputs];
        for (std::size_t k = 0; k < step.in.size(); ++k) ins[k] = at(step.in[k], x, y, ws);
        step.op->run(ins, const_cast<float*>(at(step.out, x, y, ws)), n);
        continue;
      }
      const float* a = at(step.in[0], x, y, ws);
      const float* b = step.in.size() > 1 ? at(step.in[1], x, y, ws) : nullptr;
      step.run(a, b, const_cast<float*>(at(step.out, x, y, ws)), n, ws);
    }
  }

  static constexpr int kInput = -1, kOutput = -2;
  // DenseNet-201 concatenates up to 49 values; run() keeps the pointers on the stack.
  static constexpr std::size_t kMaxInputs = 256;

  int value_id(const std::string& name) {
    const auto it = ids_.find(name);
    if (it != ids_.end()) return it->second;
    const int id = static_cast<int>(sizes_.size());
    ids_[name] = id;
    sizes_.push_back(0);
    shapes_.emplace_back();
    root_.push_back(id);
    return id;
  }
  // The one node reading `value` when exactly one does and it is no graph output; else -1.
  long sole_consumer(const std::string& value) const {
    const auto users = graph_.consumers(value);
    return users.size() == 1 && !graph_.is_output(value) ? static_cast<long>(users[0]) : -1;
  }

  void build(std::int64_t batch);
  void absorb_epilogue(plan_detail::Step& step, std::string& value, std::vector<char>& done);
  void plan_memory();

  Graph graph_;
  PlanOptions options_;
  Shape input_shape_, output_shape_;
  std::vector<plan_detail::Step> steps_;
  std::map<std::string, int> ids_;
  std::vector<std::int64_t> sizes_;       // values per sample, per value id
  std::vector<Shape> shapes_;             // per value id, batch 1
  std::vector<int> root_;                 // the value whose buffer a value is (itself, or an alias's source)
  std::vector<int> storage_;              // per root: kInput, kOutput or a slot
  std::vector<std::int64_t> slot_sizes_;  // values per sample
  std::size_t linear_count_ = 0;
  int output_ = -1;
  std::int64_t chunk_ = 1;
  std::unique_ptr<Pool> pool_;
};

inline void Plan::build(std::int64_t batch) {
  const auto& nodes = graph_.nodes();
  value_id(graph_.inputs()[0].name);
  shapes_[0] = input_shape_;
  shapes_[0][0] = 1;
  sizes_[0] = plan_detail::per_sample(shapes_[0]);
  const auto shape_of = [&](const std::string& v) -> const Shape& {
    return graph_.has_initializer(v) ? graph_.initializer(v).shape()
                                     : shapes_[static_cast<std::size_t>(ids_.at(v))];
  };
  // Every value's shape for one sample.
  for (const auto& n : nodes) {
    std::vector<Shape> in;
    for (const auto& v : n.inputs) in.push_back(v.empty() ? Shape{} : shape_of(v));
    Shape out;
    try {
      out = infer_shape(n, in);
    } catch (const shape_error& e) {
      throw shape_error(std::string("Plan: ") + e.what() + " (input_shape " + to_string(input_shape_) + ")");
    }
    const auto id = static_cast<std::size_t>(value_id(n.outputs.at(0)));
    sizes_[id] = plan_detail::per_sample(out);
    shapes_[id] = std::move(out);
  }
  std::vector<char> done(nodes.size(), 0);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (done[i]) continue;
    const Node& n = nodes[i];
    const auto activation = [&](std::size_t k) {
      if (graph_.has_initializer(n.inputs.at(k)))
        throw std::invalid_argument("Plan: node " + n.describe() + ": input " + std::to_string(k) +
                                    " must be a computed value, not an initializer");
      return ids_.at(n.inputs[k]);
    };
    std::vector<Shape> in;
    for (const auto& v : n.inputs) in.push_back(v.empty() ? Shape{} : shape_of(v));
    const bool general = plan_detail::is_op(n.op);
    plan_detail::Step step = plan_detail::compile(
        n, graph_, general ? in[0] : shapes_[static_cast<std::size_t>(activation(0))], in, shape_of(n.outputs[0]));
    std::string value = n.outputs[0];
    if (step.kind == plan_detail::Kind::Copy && !graph_.is_output(value)) {
      root_[static_cast<std::size_t>(ids_.at(value))] = root_[static_cast<std::size_t>(activation(0))];
      continue;
    }
    if (step.kind == plan_detail::Kind::Conv) absorb_epilogue(step, value, done);
    step.low = plan_detail::lower(n, graph_, shapes_[static_cast<std::size_t>(activation(0))],
                                  options_.precision == Precision::BFloat16);
    if (step.kind == plan_detail::Kind::Gemm) step.linear_index = static_cast<int>(linear_count_++);
    if (step.kind == plan_detail::Kind::General) {
      for (const auto& v : n.inputs)
        if (!v.empty() && !graph_.has_initializer(v)) step.in.push_back(ids_.at(v));
      if (step.in.empty() || step.in.size() > kMaxInputs)
        throw std::invalid_argument("Plan: node " + n.describe() + ": between 1 and " +
                                    std::to_string(kMaxInputs) + " computed inputs");
    } else {
      step.in.push_back(activation(0));
    }
    if (step.kind == plan_detail::Kind::Add) step.in.push_back(activation(1));
    step.out = ids_.at(value);
    step.in_size = sizes_[static_cast<std::size_t>(step.in[0])];
    step.out_size = sizes_[static_cast<std::size_t>(step.out)];
    steps_.push_back(std::move(step));
  }
  output_ = ids_.at(graph_.outputs()[0].name);
  output_shape_ = shapes_[static_cast<std::size_t>(output_)];
  const std::int64_t largest = *std::max_element(sizes_.begin(), sizes_.end());
  chunk_ = std::clamp<std::int64_t>(kChunkValues / std::max<std::int64_t>(1, largest), 1, batch);
  plan_memory();
}

// The Relu, eval-mode BatchNormalization, Dropout and Identity nodes after a Conv, each the only reader of
// the value before it, as the Conv's epilogue: ReLU first, then the affine map, with Sequential's numbers.
inline void Plan::absorb_epilogue(plan_detail::Step& step, std::string& value, std::vector<char>& done) {
  bool affine = false;
  for (long c; (c = sole_consumer(value)) >= 0;) {
    const Node& m = graph_.nodes()[static_cast<std::size_t>(c)];
    if (m.op == "Relu" && !affine && !step.relu) {
      step.relu = true;
    } else if (m.op == "BatchNormalization" && !affine && m.inputs.size() == 5) {
      const Tensor &gamma = graph_.initializer(m.inputs[1]), &beta = graph_.initializer(m.inputs[2]),
                   &mean = graph_.initializer(m.inputs[3]), &var = graph_.initializer(m.inputs[4]);
      const double eps = m.get_float("epsilon", 1e-5);
      for (std::int64_t ch = 0; ch < step.out_channels; ++ch) {
        step.center.push_back(mean[ch]);
        step.scale.push_back(kernels::batchnorm_running_scale(gamma[ch], var[ch], eps));
        step.shift.push_back(beta[ch]);
      }
      affine = true;
    } else if (m.op != "Dropout" && m.op != "Identity") {
      break;
    }
    done[static_cast<std::size_t>(c)] = 1;
    value = m.outputs.at(0);
  }
  step.has_epilogue = step.relu || affine;
}

// Buffers by liveness: a step's output takes a free slot (the smallest that holds it, else the largest,
// grown); its inputs' slots are free again after their last reader. Slots hold one chunk of their largest
// value.
inline void Plan::plan_memory() {
  constexpr int kUnassigned = -3;
  storage_.assign(sizes_.size(), kUnassigned);
  std::vector<long> last(sizes_.size(), -1);
  std::vector<char> freed(sizes_.size(), 0);
  for (std::size_t i = 0; i < steps_.size(); ++i)
    for (int v : steps_[i].in)
      last[static_cast<std::size_t>(root_[static_cast<std::size_t>(v)])] = static_cast<long>(i);
  storage_[static_cast<std::size_t>(root_[0])] = kInput;
  storage_[static_cast<std::size_t>(root_[static_cast<std::size_t>(output_)])] = kOutput;
  std::vector<int> free;
  const auto release = [&](std::size_t r) {
    if (storage_[r] >= 0 && !freed[r]) free.push_back(storage_[r]);
    freed[r] = 1;
  };
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const auto r = static_cast<std::size_t>(root_[static_cast<std::size_t>(steps_[i].out)]);
    if (storage_[r] == kUnassigned) {
      const std::int64_t need = sizes_[r];
      int best = -1;
      for (int s : free) {
        const auto k = static_cast<std::size_t>(s);
        const bool fits = slot_sizes_[k] >= need;
        if (best < 0) {
          best = s;
          continue;
        }
        const std::int64_t have = slot_sizes_[static_cast<std::size_t>(best)];
        if (fits ? (have < need || slot_sizes_[k] < have) : (have < need && slot_sizes_[k] > have)) best = s;
      }
      if (best < 0) {
        best = static_cast<int>(slot_sizes_.size());
        slot_sizes_.push_back(0);
      } else {
        free.erase(std::find(free.begin(), free.end(), best));
      }
      slot_sizes_[static_cast<std::size_t>(best)] =
          std::max(slot_sizes_[static_cast<std::size_t>(best)], need);
      storage_[r] = best;
    }
    for (int v : steps_[i].in) {
      const auto rv = static_cast<std::size_t>(root_[static_cast<std::size_t>(v)]);
      if (last[rv] == static_cast<long>(i)) release(rv);
    }
    if (last[r] < static_cast<long>(i)) release(r);  // read by no later step
  }
}

}  // namespace ember::graph
