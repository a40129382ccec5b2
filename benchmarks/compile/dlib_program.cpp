// The dlib dnn program of docs/compile-times.md's peer rows: a small CNN trained with dnn_trainer on random data.
#include <dlib/dnn.h>

#include <iostream>

using namespace dlib;
using net_type = loss_multiclass_log<fc<10, relu<fc<128, max_pool<2, 2, 2, 2, relu<con<16, 3, 3, 1, 1,
                 input<matrix<unsigned char>>>>>>>>>;

int main() {
  std::vector<matrix<unsigned char>> images(64, matrix<unsigned char>(28, 28));
  std::vector<unsigned long> labels(64);
  for (std::size_t i = 0; i < images.size(); ++i) {
    images[i] = static_cast<unsigned char>(i * 3);
    labels[i] = i % 10;
  }
  net_type net;
  dnn_trainer<net_type> trainer(net, sgd(0.0005, 0.9));
  trainer.set_learning_rate(0.01);
  trainer.set_mini_batch_size(32);
  trainer.set_max_num_epochs(2);
  trainer.train(images, labels);
  serialize("model.dat") << net;
  std::cout << "done\n";
}
