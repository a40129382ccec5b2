// An outside project's first program: it only uses ember's public umbrella header.
#include <ember/ember.hpp>

#include <iostream>

int main() {
  ember::manual_seed(0);
  ember::Tensor t = ember::Tensor::full({2, 3}, 1.5f);
  float sum = t.matrix().sum();
  std::cout << "ember " << ember::version() << ": sum " << sum << "\n";
  return sum == 9.0f ? 0 : 1;
}
