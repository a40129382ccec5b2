// The report's ASL CNN: three conv blocks and two fully connected layers on Sign Language MNIST, batch 32,
// 20 epochs, SGD lr 0.001 momentum 0.9. Report: 0.9632. Default head: softmax, as the report's printout.
#include "asl_common.hpp"

int main(int argc, char** argv) {
  examples::Args a;
  a.epochs = 20;
  a.batch_size = 32;
  a.head = "softmax";
  a.out = "runs/asl_cnn";
  int code = 0;
  if (!examples::parse_args(argc, argv, "The report's ASL CNN", a, code)) return code;
  return examples::guarded([&] {
    examples::Experiment e;
    e.name = "asl_cnn";
    e.title = "Sign Language MNIST CNN";
    examples::load_sign_mnist(a, e);
    e.make_model = [](bool softmax) { return ember::models::report_cnn(24, softmax); };
    return examples::run(a, std::move(e));
  });
}
