// Must not compile: bias passed sixth, as Conv2d took it before 0.2.0. The sixth argument is now dilation (as in
// PyTorch), and a bool must never become dilation 0 or 1. The test `compile_fail_conv2d_bias_sixth` expects the
// static_assert that says so.
#include <ember/nn/conv2d.hpp>

int main() {
  ember::nn::Conv2d conv(3, 8, 3, 1, 1, false);
  return static_cast<int>(conv.out_channels());
}
