// Must not compile: a float layer inside a double Sequential. The test `compile_fail_mixed_scalar_sequential`
// expects the static_assert that names the mismatch, not a bare "no matching function".
#include <ember/nn/nn.hpp>

int main() {
  ember::nn::SequentialT<double> model({{"fc", ember::nn::Linear(4, 2)}});
  return static_cast<int>(model.size());
}
