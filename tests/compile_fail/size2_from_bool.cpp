// Must not compile: a bool converted to a size (here Conv2dOptions' dilation). The test
// `compile_fail_size2_from_bool` expects the deleted constructor to be named.
#include <ember/nn/conv2d.hpp>

int main() {
  ember::nn::Conv2d conv(ember::nn::Conv2dOptions(3, 8, 3).padding(1).dilation(true));
  return static_cast<int>(conv.out_channels());
}
