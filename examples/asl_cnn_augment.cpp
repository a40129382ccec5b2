// The report's ASL CNN trained on augmented data, as the Keras notebook's ImageDataGenerator: random rotation
// up to 10 degrees, zoom 10 % (scale 0.9-1.1), shifts up to 10 % each way, horizontal flips. Report: 0.78.
#include "asl_common.hpp"

int main(int argc, char** argv) {
  examples::Args a;
  a.epochs = 20;
  a.batch_size = 32;
  a.head = "softmax";
  a.out = "runs/asl_cnn_augment";
  int code = 0;
  if (!examples::parse_args(argc, argv, "The report's ASL CNN with data augmentation", a, code)) return code;
  return examples::guarded([&] {
    namespace data = ember::data;
    examples::Experiment e;
    e.name = "asl_cnn_augment";
    e.title = "Sign Language MNIST CNN, augmented";
    examples::load_sign_mnist(a, e);
    e.train_transform = data::Compose{data::RandomAffine(10.0, {0.1, 0.1}, {0.9, 1.1}), data::RandomHorizontalFlip(0.5)};
    e.make_model = [](bool softmax) { return ember::models::report_cnn(24, softmax); };
    return examples::run(a, std::move(e));
  });
}
