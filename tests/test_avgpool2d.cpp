// AvgPool2d and AdaptiveAvgPool2d (nn/avgpool2d.hpp, kernels/avgpool.hpp): gradient checks in double,
// PyTorch's goldens in float (padding counted in the divisor, overlapping adaptive bins), the fast kernels
// against their references, printing, conversion and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <ember/kernels/avgpool.hpp>
#include <ember/nn/nn.hpp>
#include <tuple>
#include <vector>

#include "bad_input.hpp"
#include "layer_check.hpp"

using namespace ember;
using layer_check::TensorD;

TEST_CASE("average pooling: gradient check in double") {
  nn::AvgPool2dT<double> p2(2);
  layer_check::gradcheck(p2, {2, 2, 6, 5}, "AvgPool2d(2)");
  nn::AvgPool2dT<double> p3(3, 2, 1);
  layer_check::gradcheck(p3, {1, 2, 7, 6}, "AvgPool2d(3, 2, padding 1)");
  nn::AvgPool2dT<double> p23({2, 3}, Size2{1, 2}, Size2{1, 1});
  layer_check::gradcheck(p23, {1, 1, 5, 7}, "AvgPool2d((2, 3), (1, 2), (1, 1))");
  nn::AdaptiveAvgPool2dT<double> global(1);
  layer_check::gradcheck(global, {2, 3, 5, 6}, "AdaptiveAvgPool2d(1)");
  nn::AdaptiveAvgPool2dT<double> bins({3, 4});
  layer_check::gradcheck(bins, {1, 2, 7, 5}, "AdaptiveAvgPool2d((3, 4)), overlapping bins");
  nn::AdaptiveAvgPool2dT<double> up({4, 3});
  layer_check::gradcheck(up, {1, 2, 3, 2}, "AdaptiveAvgPool2d((4, 3)) on a smaller input");
}

TEST_CASE("average pooling: golden values against PyTorch") {
  nn::AvgPool2d p2(2);
  layer_check::golden(p2, "avgpool_2");
  nn::AvgPool2d p3(3, 2, 1);
  layer_check::golden(p3, "avgpool_3_2_pad1");
  nn::AvgPool2d p23({2, 3}, Size2{1, 2}, Size2{1, 1});
  layer_check::golden(p23, "avgpool_23_12_pad11");
  nn::AdaptiveAvgPool2d global(1);
  layer_check::golden(global, "adaptive_avgpool_1");
  nn::AdaptiveAvgPool2d bins({3, 4});
  layer_check::golden(bins, "adaptive_avgpool_3x4");
  nn::AdaptiveAvgPool2d up({4, 3});
  layer_check::golden(up, "adaptive_avgpool_up");
}

TEST_CASE("AvgPool2d counts padding as zeros; AdaptiveAvgPool2d's bins overlap") {
  nn::AvgPool2d pool(3, 1, 1);
  const Tensor y = pool.forward(Tensor::ones({1, 1, 3, 3}));
  CHECK(y[0] == doctest::Approx(4.0 / 9));  // corner: 4 values, divided by 9
  CHECK(y[1] == doctest::Approx(6.0 / 9));
  CHECK(y[4] == doctest::Approx(1.0));
  // 5 rows into 3 bins: [0, 2), [1, 4), [3, 5).
  nn::AdaptiveAvgPool2d bins({3, 1});
  const Tensor r = bins.forward(Tensor::from({1, 1, 5, 1}, {1, 2, 3, 4, 5}));
  CHECK(r[0] == doctest::Approx(1.5));
  CHECK(r[1] == doctest::Approx(3.0));
  CHECK(r[2] == doctest::Approx(4.5));
  const Tensor g = bins.backward(Tensor::ones({1, 1, 3, 1}));
  CHECK(g[1] == doctest::Approx(0.5 + 1.0 / 3));  // row 1 is in two bins
}

TEST_CASE("average pooling kernels: the fast ones equal their references on many shapes") {
  Generator gen(4);
  // Absolute: the inputs are of size 1, and a mean that cancels to near 0 has no meaningful relative error
  // (the fast kernels sum in float, the references in double).
  auto close = [](const Tensor& got, const Tensor& want) {
    float worst = 0;
    for (std::int64_t i = 0; i < got.numel(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
    return worst < 2e-6f;
  };
  // height, width, kernel, stride, padding
  const std::vector<std::tuple<int, int, int, int, int, int, int, int>> cases = {
      {6, 7, 2, 2, 2, 2, 0, 0}, {9, 8, 3, 3, 2, 2, 1, 1}, {5, 9, 2, 3, 1, 2, 0, 1}, {8, 8, 4, 4, 4, 4, 0, 0},
      {7, 7, 3, 3, 1, 1, 0, 0}, {4, 6, 1, 1, 1, 1, 0, 0}, {11, 5, 5, 3, 3, 1, 2, 1}};
  for (const auto& [h, w, kh, kw, sh, sw, ph, pw] : cases) {
    const kernels::Pool2dGeometry g{h, w, kh, kw, sh, sw, ph, pw};
    Tensor x({h * w}), dy({g.out_h() * g.out_w()});
    for (float& v : x) v = static_cast<float>(gen.normal());
    for (float& v : dy) v = static_cast<float>(gen.normal());
    Tensor a(dy.shape()), b(dy.shape()), da(x.shape()), db(x.shape());
    kernels::avgpool2d_forward(g, a.data(), x.data());
    kernels::avgpool2d_forward_ref(g, b.data(), x.data());
    CHECK(close(a, b));
    kernels::avgpool2d_backward(g, da.data(), dy.data());
    kernels::avgpool2d_backward_ref(g, db.data(), dy.data());
    CHECK(close(da, db));
  }
  for (const auto& [h, w, oh, ow] : std::vector<std::tuple<int, int, int, int>>{
           {7, 7, 1, 1}, {7, 5, 3, 4}, {3, 2, 4, 3}, {10, 10, 3, 3}, {1, 1, 2, 2}}) {
    Tensor x({h * w}), dy({oh * ow});
    for (float& v : x) v = static_cast<float>(gen.normal());
    for (float& v : dy) v = static_cast<float>(gen.normal());
    Tensor a(dy.shape()), b(dy.shape()), da(x.shape()), db(x.shape());
    kernels::adaptive_avgpool2d_forward(a.data(), x.data(), h, w, oh, ow);
    kernels::adaptive_avgpool2d_forward_ref(b.data(), x.data(), h, w, oh, ow);
    CHECK(close(a, b));
    kernels::adaptive_avgpool2d_backward(da.data(), dy.data(), h, w, oh, ow);
    kernels::adaptive_avgpool2d_backward_ref(db.data(), dy.data(), h, w, oh, ow);
    CHECK(close(da, db));
  }
}

TEST_CASE("average pooling prints as PyTorch, keeps its configuration, converts and splits batches") {
  CHECK(nn::AvgPool2d(2).repr() == "AvgPool2d(kernel_size=2, stride=2, padding=0)");
  CHECK(nn::AvgPool2d(Size2{2, 3}).repr() == "AvgPool2d(kernel_size=(2, 3), stride=(2, 3), padding=0)");
  CHECK(nn::AvgPool2d(3, 2, 1).repr() == "AvgPool2d(kernel_size=3, stride=2, padding=1)");
  CHECK(nn::AdaptiveAvgPool2d(1).repr() == "AdaptiveAvgPool2d(output_size=1)");
  CHECK(nn::AdaptiveAvgPool2d({3, 4}).repr() == "AdaptiveAvgPool2d(output_size=(3, 4))");
  nn::AvgPool2d p({2, 3}, Size2{1, 2}, Size2{1, 1});
  CHECK(p.kernel_size() == Size2{2, 3});
  CHECK(p.stride() == Size2{1, 2});
  CHECK(p.padding() == Size2{1, 1});
  CHECK(p.count_include_pad());
  CHECK(!p.ceil_mode());
  CHECK(nn::AdaptiveAvgPool2d({3, 4}).output_size() == Size2{3, 4});

  nn::Sequential m{nn::AvgPool2d(3, 2, 1), nn::AdaptiveAvgPool2d({2, 3})};
  auto d = nn::to<double>(m);
  CHECK(d.repr() == m.repr());
  const Tensor x = layer_check::random_tensor({70, 2, 9, 8}, 3).cast<float>();
  const Tensor y = m.forward(x);
  CHECK(y.shape() == Shape{70, 2, 2, 3});
  CHECK(fixture::max_rel_error(m.predict(x), y.cast<double>()) == 0);  // chunked across threads
  CHECK(fixture::max_rel_error(d.predict(x).cast<float>(), y.cast<double>()) < 1e-6);
  CHECK(m.clone()->repr() == m.repr());
}

namespace bad_input {

TEST_CASE("average pooling: wrong shapes and arguments throw naming the layer") {
  nn::AvgPool2d p(2);
  CHECK_THROWS_WITH_AS(p.forward(Tensor({32, 3})),
                       doctest::Contains("AvgPool2d(kernel_size=2, stride=2, padding=0): expected input [N, C, H, W], got [32, 3]"),
                       shape_error);
  CHECK_THROWS_WITH_AS(p.forward(Tensor({1, 1, 1, 5})), doctest::Contains("smaller than the kernel"), shape_error);
  CHECK_THROWS_AS(p.backward(Tensor({1, 1, 1, 1})), std::logic_error);
  p.forward(Tensor({2, 3, 4, 4}));
  CHECK_THROWS_WITH_AS(p.backward(Tensor({2, 3, 3, 2})), doctest::Contains("expected grad_output [2, 3, 2, 2]"),
                       shape_error);
  CHECK_THROWS_WITH_AS(nn::AvgPool2d(2, 2, 2), doctest::Contains("pad should be at most half of kernel size"),
                       std::invalid_argument);
  CHECK_THROWS_AS(nn::AvgPool2d(0), std::invalid_argument);
  CHECK_THROWS_AS(nn::AvgPool2d(2, 0), std::invalid_argument);

  nn::AdaptiveAvgPool2d a(2);
  CHECK_THROWS_WITH_AS(a.forward(Tensor({3, 4, 5})), doctest::Contains("AdaptiveAvgPool2d(output_size=2): expected input"),
                       shape_error);
  CHECK_THROWS_WITH_AS(a.forward(Tensor({1, 2, 0, 3})), doctest::Contains("non-empty plane"), shape_error);
  CHECK_THROWS_AS(nn::AdaptiveAvgPool2d(0), std::invalid_argument);
  a.forward(Tensor({1, 2, 5, 5}));
  CHECK_THROWS_AS(a.backward(Tensor({1, 2, 1, 1})), shape_error);
  // An empty batch gives an empty output, as in PyTorch.
  CHECK(a.forward(Tensor({0, 2, 5, 5})).shape() == Shape{0, 2, 2, 2});
  CHECK(p.forward(Tensor({0, 2, 4, 4})).shape() == Shape{0, 2, 2, 2});
}

}  // namespace bad_input
