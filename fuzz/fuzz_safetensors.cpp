// safetensors loader: read_safetensors on any file, then load_checkpoint into a small model with an SGD
// (parameters, BatchNorm buffers including the I64 num_batches_tracked, momentum buffers), the model the
// seed corpus (fuzz/make_corpus.py) writes checkpoints for. A failed load must leave the model unchanged.
#include <cstdint>
#include <cstring>
#include <ember/core/error.hpp>
#include <ember/io/checkpoint.hpp>
#include <ember/nn/nn.hpp>
#include <ember/optim/sgd.hpp>

#include "fuzz_common.hpp"

namespace {

ember::nn::Sequential make_model() {
  ember::Generator gen(1);
  ember::nn::Sequential net("Net", {});
  net.add("conv1", ember::nn::Conv2d(1, 2, 2, 1, 0, 1, 1, true, gen));
  net.add("batchnorm1", ember::nn::BatchNorm2d(2));
  net.add("flatten", ember::nn::Flatten());
  net.add("fc1", ember::nn::Linear(8, 3, true, gen));
  return net;
}

std::vector<float> snapshot(ember::nn::Sequential& net) {
  std::vector<float> all;
  for (auto& [name, p] : net.named_parameters()) all.insert(all.end(), p->value.begin(), p->value.end());
  for (auto& [name, b] : net.named_buffers()) all.insert(all.end(), b->begin(), b->end());
  return all;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string& path = fuzz::write_input(data, size, ".safetensors");
  try {
    const ember::io::SafetensorsFile file = ember::io::read_safetensors(path);
    std::uint64_t covered = 0;
    for (const auto& e : file.tensors) covered += e.end - e.begin;
    if (covered != file.data.size()) __builtin_trap();  // the documented coverage check held
  } catch (const ember::format_error&) {
  } catch (const ember::io_error&) {
  }
  // A fresh model per input: cheap at this size, and no state leaks from one input to the next. Loaded with an
  // optimiser (which needs optimiser state in the file) and without one (model-only files get this far).
  for (const bool with_optimizer : {true, false}) {
    ember::nn::Sequential net = make_model();
    ember::optim::SGD opt(net.parameters(), {0.1f, 0.9f});
    const std::vector<float> before = snapshot(net);
    try {
      if (with_optimizer) ember::io::load_checkpoint(net, path, &opt);
      else ember::io::load_checkpoint(net, path);
    } catch (const ember::format_error&) {
      const std::vector<float> after = snapshot(net);
      // Nothing changes on a failed load (NaN-safe bitwise comparison).
      if (after.size() != before.size() || std::memcmp(after.data(), before.data(), after.size() * sizeof(float)) != 0)
        __builtin_trap();
    } catch (const ember::io_error&) {
    }
  }
  return 0;
}
