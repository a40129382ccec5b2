// dlib's dnn (compile-time networks, CPU build on BLAS) on compare.py's workloads: the report's models as dlib
// networks, trained the way dnn_trainer does a step (compute_parameter_gradients, then update_parameters with
// one sgd solver per layer), synchronously, without the trainer's thread and data queue; inference through the
// network's forward on a ready tensor. Prints ember_workloads' JSON line plus "backend" (dlib's version, where
// cblas_sgemm binds, OpenBLAS's core, the tuning environment) and "check".
//   dlib_workloads WORKLOAD [--seconds S] [--threads N] [--batch B]
//   dlib_workloads WORKLOAD --check          the correctness check alone
// How the report's models map onto dlib's layers:
//   - conv 3x3 without padding: con_<N, 3, 3, 1, 1, 0, 0> (dlib's con pads stride-1 convolutions by default);
//     max pooling 2x2 stride 2 and 2x2 stride 1 without padding: max_pool_<2, 2, s, s, 0, 0>;
//   - BatchNorm2d: bn_con with eps 1e-5 (dlib's default is 1e-4); dlib keeps running statistics over a window
//     of steps, not PyTorch's momentum 0.1: the same work, other statistics;
//   - Dropout(0.2), Dropout(0.3): dropout_ with those rates; dlib's dropout does not scale by 1/(1-p) in
//     training (it multiplies by 1-p at inference instead): the same work;
//   - the softmax head: softmax then loss_multiclass_log (which applies its own log-softmax), as PyTorch's
//     CrossEntropyLoss after the model's Softmax; the MNIST MLP has no softmax;
//   - SGD: dlib's sgd(weight_decay 0, momentum 0.9) at learning rate 0.001 (v = 0.9 v - lr g; p += v, which is
//     PyTorch's SGD with momentum at a fixed learning rate); loss_multiclass_log averages over the batch;
//   - inference: the network dlib's examples convert a trained one to (bn_con -> affine, with the running
//     statistics folded in), without the dropout layers (ember's predict skips them too; dlib's idiom would
//     put a multiply layer there).
// The check (peer_check.hpp): ember's initial weights copied in (fc weights transposed: dlib keeps [in, out]),
// the eval-mode outputs on a fixed batch within 1e-4 of ember's, for the MLPs the losses of 3 SGD steps too,
// and the loss of 30 steps of this program's own training falling.
#include <dlib/dnn.h>
#include <dlib/revision.h>

#include <algorithm>
#include <random>
#include <string>

#include "compare/peer_check.hpp"

namespace {

using namespace dlib;

template <long N, typename S>
using con3 = add_layer<con_<N, 3, 3, 1, 1, 0, 0>, S>;
template <typename S>
using pool_s2 = add_layer<max_pool_<2, 2, 2, 2, 0, 0>, S>;
template <typename S>
using pool_s1 = add_layer<max_pool_<2, 2, 1, 1, 0, 0>, S>;
using Input = input<matrix<float>>;

template <typename S>
using cnn_blocks = pool_s1<bn_con<relu<con3<25, pool_s2<bn_con<dropout<relu<con3<50, pool_s2<bn_con<relu<con3<75, S>>>>>>>>>>>>>;
template <typename S>
using cnn_blocks_eval = pool_s1<affine<relu<con3<25, pool_s2<affine<relu<con3<50, pool_s2<affine<relu<con3<75, S>>>>>>>>>>>>;
template <typename S>
using cnn_blocks_nodrop = pool_s1<bn_con<relu<con3<25, pool_s2<bn_con<relu<con3<50, pool_s2<bn_con<relu<con3<75, S>>>>>>>>>>>>;
using cnn_train = loss_multiclass_log<softmax<fc<24, dropout<relu<fc<512, cnn_blocks<Input>>>>>>>;
using cnn_nodrop = loss_multiclass_log<softmax<fc<24, relu<fc<512, cnn_blocks_nodrop<Input>>>>>>;
using cnn_eval = loss_multiclass_log<softmax<fc<24, relu<fc<512, cnn_blocks_eval<Input>>>>>>;
template <unsigned long C>
using mlp_logits = loss_multiclass_log<fc<C, relu<fc<512, relu<fc<512, Input>>>>>>;
using mlp_softmax = loss_multiclass_log<softmax<fc<24, relu<fc<512, relu<fc<512, Input>>>>>>>;

// The layers that hold parameters (and the dropouts), input first.
struct Layers {
  struct Slot {
    enum Kind { Conv, Fc, Bn, Affine } kind;
    tensor* params = nullptr;
    affine_* affine = nullptr;
    long outputs = 0;
  };
  std::vector<Slot> slots;
  std::vector<dropout_*> dropouts;

  template <long N, long R, long C, int SY, int SX, int PY, int PX>
  void operator()(con_<N, R, C, SY, SX, PY, PX>& l) { slots.push_back({Slot::Conv, &l.get_layer_params(), nullptr, N}); }
  template <unsigned long N, fc_bias_mode M>
  void operator()(fc_<N, M>& l) { slots.push_back({Slot::Fc, &l.get_layer_params(), nullptr, static_cast<long>(N)}); }
  template <layer_mode M>
  void operator()(bn_<M>& l) { slots.push_back({Slot::Bn, &l.get_layer_params(), nullptr, 0}); }
  void operator()(affine_& l) { slots.push_back({Slot::Affine, nullptr, &l, 0}); }
  void operator()(dropout_& l) { dropouts.push_back(&l); }
  template <typename T>
  void operator()(T&) {}
};

template <typename Net>
Layers layers(Net& net) {
  Layers all;
  visit_computational_layers(net, [&](auto& l) { all(l); });  // from the output down
  std::reverse(all.slots.begin(), all.slots.end());
  std::reverse(all.dropouts.begin(), all.dropouts.end());
  return all;
}

// dlib's choices where they differ from PyTorch's: BatchNorm's eps, the dropout rates (input first).
template <typename Net>
void configure(Net& net) {
  visit_computational_layers(net, [](auto& l) {
    if constexpr (std::is_same_v<std::decay_t<decltype(l)>, bn_<CONV_MODE>>) l = bn_<CONV_MODE>(100, 1e-5);
  });
  Layers all = layers(net);
  const float rates[] = {0.2f, 0.3f};
  for (std::size_t i = 0; i < all.dropouts.size() && i < 2; ++i) *all.dropouts[i] = dropout_(rates[i]);
}

// Copies ember's parameters (PyTorch's layout, in named_parameters order) into `net`, whose layers must have been
// set up by a forward pass. BatchNorm into affine: the eval-mode map of the initial statistics (mean 0, var 1).
template <typename Net>
void copy_params(Net& net, const cmp::Reference& ref) {
  Layers all = layers(net);
  std::size_t p = 0;
  const auto next = [&]() -> const std::vector<float>& {
    if (p >= ref.params.size()) throw std::runtime_error("check: dlib's network has more parameters than ember's");
    return ref.params[p++].second;
  };
  for (auto& s : all.slots) {
    const std::vector<float>& w = next();
    const std::vector<float>& b = next();
    const auto need = [&](std::size_t got, std::size_t want) {
      if (got != want) throw std::runtime_error("check: parameter " + ref.params[p - 1].first + ": size differs");
    };
    if (s.kind == Layers::Slot::Conv) {
      need(s.params->size(), w.size() + b.size());
      std::copy(w.begin(), w.end(), s.params->host());
      std::copy(b.begin(), b.end(), s.params->host() + w.size());
    } else if (s.kind == Layers::Slot::Fc) {
      const long out = s.outputs, in = static_cast<long>(w.size()) / out;
      need(s.params->size(), w.size() + b.size());
      float* d = s.params->host();
      for (long o = 0; o < out; ++o)
        for (long i = 0; i < in; ++i) d[i * out + o] = w[static_cast<std::size_t>(o * in + i)];
      std::copy(b.begin(), b.end(), d + in * out);
    } else if (s.kind == Layers::Slot::Bn) {
      need(s.params->size(), w.size() + b.size());
      std::copy(w.begin(), w.end(), s.params->host());
      std::copy(b.begin(), b.end(), s.params->host() + w.size());
    } else {
      auto gamma = s.affine->get_gamma();
      auto beta = s.affine->get_beta();
      need(gamma.size(), w.size());
      for (std::size_t i = 0; i < w.size(); ++i) {
        gamma.host()[i] = w[i] / std::sqrt(1.0f + 1e-5f);
        beta.host()[i] = b[i];
      }
    }
  }
  if (p != ref.params.size()) throw std::runtime_error("check: ember's model has more parameters than dlib's network");
}

// A batch of n 28x28 images holding `values`, made by the network's input layer (which also tells the network
// how many samples a tensor holds per image: forward needs that).
template <typename Net>
resizable_tensor make_tensor(Net& net, long n, const float* values) {
  std::vector<matrix<float>> images(static_cast<std::size_t>(n), matrix<float>(28, 28));
  for (auto& m : images)
    for (float& v : m) v = *values++;
  resizable_tensor x;
  net.to_tensor(images.begin(), images.end(), x);
  return x;
}

template <typename Net>
resizable_tensor random_tensor(Net& net, long n, std::mt19937& rng) {
  std::vector<float> v(static_cast<std::size_t>(n * 28 * 28));
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& x : v) x = u(rng);
  return make_tensor(net, n, v.data());
}

std::vector<float> values(const tensor& t) { return std::vector<float>(t.host(), t.host() + t.size()); }

template <typename Net>
struct Trainer {
  Net& net;
  std::vector<sgd> solvers{Net::num_computational_layers, sgd(0, 0.9)};
  float step(const tensor& x, const std::vector<unsigned long>& y) {
    const double loss = net.compute_parameter_gradients(x, y.begin());
    net.update_parameters(solvers, 0.001);
    return static_cast<float>(loss);
  }
};

std::vector<unsigned long> random_labels(long n, unsigned long classes, std::mt19937& rng) {
  std::vector<unsigned long> y(static_cast<std::size_t>(n));
  for (auto& l : y) l = rng() % classes;
  return y;
}

// 30 steps of this program's own training (dlib's initialisation, random data): the losses.
template <typename Net>
std::vector<float> own_training(unsigned long classes) {
  Net net;
  configure(net);
  std::mt19937 rng(1);
  const resizable_tensor x = random_tensor(net, 32, rng);
  const auto y = random_labels(32, classes, rng);
  Trainer<Net> t{net};
  std::vector<float> losses;
  for (int i = 0; i < 30; ++i) losses.push_back(t.step(x, y));
  return losses;
}

template <typename Net>
std::pair<bool, std::string> check_mlp(const cmp::Reference& ref) {
  Net net;
  const resizable_tensor x = make_tensor(net, 4, ref.input.data());
  net.subnet().forward(x);  // sets the layers up
  copy_params(net, ref);
  const std::vector<float> out = values(net.subnet().forward(x));
  const std::vector<unsigned long> y(ref.labels.begin(), ref.labels.end());
  Trainer<Net> t{net};
  std::vector<float> losses;
  for (int i = 0; i < 3; ++i) losses.push_back(t.step(x, y));
  return cmp::check_json(ref, out, losses, own_training<Net>(static_cast<unsigned long>(ref.classes)));
}

// The inference network of a trained one (random weights here), and the input `values` made by it.
cnn_eval make_cnn_eval(long n, const float* values, resizable_tensor& x) {
  cnn_nodrop trained;
  configure(trained);
  x = make_tensor(trained, n, values);
  trained.subnet().forward(x);  // sets the layers up (and the BatchNorms' running statistics)
  cnn_eval net(trained);        // bn_con -> affine, as dlib's examples do
  x = make_tensor(net, n, values);
  return net;
}

std::pair<bool, std::string> check(const std::string& workload) {
  const cmp::Reference ref = cmp::reference(workload);
  if (workload == "mlp_train_32" || workload == "mlp_infer_1000") return check_mlp<mlp_logits<10>>(ref);
  if (workload == "mlp_train_4") return check_mlp<mlp_softmax>(ref);
  resizable_tensor x;
  cnn_eval net = make_cnn_eval(4, ref.input.data(), x);
  copy_params(net, ref);
  const std::vector<float> out = values(net.subnet().forward(x));
  return cmp::check_json(ref, out, {}, own_training<cnn_train>(24));
}

std::string backend_json() {
  return ", \"backend\": {\"peer\": \"dlib\", \"version\": \"" + std::to_string(DLIB_MAJOR_VERSION) + "." +
         std::to_string(DLIB_MINOR_VERSION) + "\", " + cmp::blas_json("libdlib.so.19.1", "cblas_sgemm") +
         ", \"dlib_threads\": " + std::to_string(default_thread_pool().num_threads_in_pool()) +
         ", \"env\": " + cmp::env_json() + "}";
}

template <typename Net>
std::pair<long, double> train_loop(double seconds, long batch, unsigned long classes) {
  Net net;
  configure(net);
  std::mt19937 rng(0);
  std::vector<resizable_tensor> xs;
  std::vector<std::vector<unsigned long>> ys;
  for (int i = 0; i < 16; ++i) {
    xs.push_back(random_tensor(net, batch, rng));
    ys.push_back(random_labels(batch, classes, rng));
  }
  Trainer<Net> t{net};
  std::size_t b = 0;
  return cmp::timed(seconds, [&] {
    t.step(xs[b], ys[b]);
    b = (b + 1) % xs.size();
  });
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: dlib_workloads WORKLOAD [--seconds S] [--threads N] [--batch B] [--check]\n");
    return 2;
  }
  // --threads is not used: dlib's threads come from the environment, DLIB_NUM_THREADS and OPENBLAS_NUM_THREADS
  // (compare.py sets them).
  const cmp::Args args = cmp::parse_args(argc, argv);
  const std::string& workload = args.what;
  const double seconds = args.seconds;
  const long batch_override = static_cast<long>(args.batch);
  if (args.check) {
    const auto [ok, json] = check(workload);
    std::printf("{\"workload\": \"%s\"%s%s}\n", workload.c_str(), json.c_str(), backend_json().c_str());
    return ok ? 0 : 1;
  }
  const bool infer = workload.find("infer") != std::string::npos;
  const long batch = batch_override > 0 ? batch_override : infer ? 1000 : workload == "mlp_train_4" ? 4 : 32;
  std::pair<long, double> r;
  const double cpu0 = cmp::cpu_seconds();
  if (workload == "mlp_train_32") r = train_loop<mlp_logits<10>>(seconds, batch, 10);
  else if (workload == "mlp_train_4") r = train_loop<mlp_softmax>(seconds, batch, 24);
  else if (workload == "cnn_train_32") r = train_loop<cnn_train>(seconds, batch, 24);
  else if (workload == "cnn_infer_1000" || workload == "mlp_infer_1000") {
    std::mt19937 rng(0);
    std::vector<float> v(static_cast<std::size_t>(batch * 28 * 28));
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& e : v) e = u(rng);
    resizable_tensor x;
    if (workload == "cnn_infer_1000") {
      cnn_eval net = make_cnn_eval(batch, v.data(), x);
      r = cmp::timed(seconds, [&] { net.subnet().forward(x); });
    } else {
      mlp_logits<10> net;
      x = make_tensor(net, batch, v.data());
      r = cmp::timed(seconds, [&] { net.subnet().forward(x); });
    }
  } else {
    std::fprintf(stderr, "dlib_workloads: unknown workload '%s'\n", workload.c_str());
    return 2;
  }
  // CPU seconds include the set-up (a few forward passes), which is small against the timed seconds.
  cmp::print_result(workload, batch, r, cmp::cpu_seconds() - cpu0, static_cast<int>(default_thread_pool().num_threads_in_pool()),
                    backend_json());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "dlib_workloads: %s\n", e.what());
  return 1;
}
