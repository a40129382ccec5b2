// Robustness: the inputs that once crashed a reader under the fuzzers (tests/fixtures/fuzz-regressions/),
// bad input to every public entry point (wrong shapes, empty batches, labels out of range, NaN and Inf,
// zero-size tensors, absurd sizes, missing files, unwritable directories, a full disk), and a training run
// killed while it writes its checkpoint. The policy these tests pin down is written in docs/robustness.md.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ember/ember.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "scratch.hpp"

// The largest single allocation (replaced operator new; under ASan nothing is replaced and the size checks are
// skipped).
#include "alloc_counter.hpp"

namespace fs = std::filesystem;
using ember::Shape;
using ember::Tensor;
namespace nn = ember::nn;
namespace data = ember::data;
namespace io = ember::io;
namespace train = ember::train;
using scratch::Bytes;

namespace {

constexpr std::size_t kMiB = std::size_t(1) << 20;

std::string tmp_path(const std::string& name) { return scratch::path("robustness", name); }
using scratch::contains;
using scratch::message_of;
using scratch::read_file;
using scratch::write_file;

// 1 x 4 x 4 inputs -> 3 logits: the smallest model fit can train (the tests of fit are not about layers).
nn::Sequential flat_linear(std::uint64_t seed) {
  ember::Generator gen(seed);
  nn::Sequential net("Net", {});
  net.add("flatten", nn::Flatten());
  net.add("fc1", nn::Linear(16, 3, true, gen));
  return net;
}

// Runs f and reports the largest single allocation it made.
template <typename F>
std::size_t largest_allocation_of(F&& f) {
  reset_largest_allocation();
  f();
  return largest_allocation();
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

Bytes safetensors_file(const std::string& json, const Bytes& data = {}) {
  // Sized once and filled in place (growing an 8-byte vector by insert trips a false -Warray-bounds in GCC 12).
  Bytes b(8 + json.size() + data.size());
  for (std::size_t i = 0; i < 8; ++i) b[i] = static_cast<unsigned char>(json.size() >> (8 * i));
  std::copy(json.begin(), json.end(), b.begin() + 8);
  std::copy(data.begin(), data.end(), b.begin() + 8 + static_cast<std::ptrdiff_t>(json.size()));
  return b;
}

bool all_nan(const Tensor& t, std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i)
    if (!std::isnan(t[i])) return false;
  return true;
}
bool all_finite(const Tensor& t, std::int64_t begin, std::int64_t end) {
  for (std::int64_t i = begin; i < end; ++i)
    if (!std::isfinite(t[i])) return false;
  return true;
}

Tensor random_tensor(const Shape& shape, std::uint64_t seed) {
  ember::Generator gen(seed);
  Tensor t(shape);
  for (auto& v : t) v = static_cast<float>(gen.normal());
  return t;
}

}  // namespace

// ---- fuzz regressions ------------------------------------------------------------------------------------

TEST_CASE("every input that once crashed a fuzzer is now a clean error (or a clean load)") {
  const fs::path dir = fs::path(EMBER_FIXTURE_DIR) / "fuzz-regressions";
  REQUIRE(fs::is_directory(dir));
  int replayed = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string path = entry.path().string();
    const std::string name = entry.path().filename().string();
    const std::string target = name.substr(0, name.find('-'));
    CAPTURE(name);
    // Each file is named <reader>-<what it triggered>; the reader must throw ember's format_error (or load).
    try {
      if (target == "idx") {
        try {
          data::read_idx_images(path);
        } catch (const ember::format_error&) {
        }
        data::read_idx_labels(path);
      } else if (target == "csv") {
        data::load_sign_mnist(path);
      } else if (target == "safetensors") {
        io::read_safetensors(path);
      } else if (target == "image") {
        io::load_image(path);
      } else {
        FAIL_CHECK("unknown reader prefix in " << name);
      }
    } catch (const ember::format_error& e) {
      CHECK(contains(e.what(), path));
    }
    ++replayed;
  }
  CHECK(replayed >= 1);
}

TEST_CASE("a JPEG Huffman table with more than 256 codes is rejected before stb decodes it") {
  const std::string path =
      std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-jpeg-dht-more-than-256-codes.jpg";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "Huffman table"));
  // The check does not get in the way of a valid JPEG.
  const Tensor ramp = io::load_image(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg");
  CHECK(ramp.shape() == Shape{1, 8, 8});
}

TEST_CASE("a PNG chunk declaring more bytes than the file holds is refused before stb allocates for it") {
  // 198 bytes: a 5 x 5 gray PNG whose second IDAT chunk declares 1,252,738,998 bytes; stb grew its buffer to
  // that length (2 GiB) before reading it.
  const std::string path = std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-png-idat-length-2gib.png";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "IDAT chunk at byte"));
  CHECK(contains(msg, "declares 1252738998 bytes"));
}

TEST_CASE("a PNG header declaring more pixels than its IDAT data can inflate to is refused before decoding") {
  // 127 bytes: IHDR declares 7 x 14,286,852 RGBA pixels with 70 bytes of IDAT; stb allocated 414 MB for the
  // zlib output before reading a byte of it.
  const std::string path = std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-png-ihdr-7x14286852.png";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "7 x 14286852 pixels need"));
  CHECK(contains(msg, "bytes of IDAT inflate to"));
}

TEST_CASE("a JPEG scan naming a Huffman table no DHT defined is refused before stb decodes through it") {
  // 315 bytes: a baseline JPEG whose scan names AC table 0, never defined. stb 2.27 allocates its decoder state
  // uninitialised and decoded through the garbage table (an out-of-bounds read, index -2139061201).
  const std::string path =
      std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-jpeg-scan-uses-undefined-huffman-table.jpg";
  const std::string msg = message_of<ember::format_error>([&] { io::load_image(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "uses Huffman table 0 (AC), which no DHT before it defines"));
  // Likewise a quantisation table no DQT defined (this file also once drove stb's bit count below zero).
  CHECK(contains(message_of<ember::format_error>([&] {
                   io::load_image(std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-jpeg-bit-count-below-zero.jpg");
                 }),
                 "uses quantisation table 0, which no DQT defines"));
}

TEST_CASE("a PNG whose first IDAT chunk is empty decodes, without stb's memcpy to a null buffer") {
  // 2 x 2 gray, pixel (y, x) = 10 y + x, with a zero-length IDAT before the one holding the data.
  const Tensor image =
      io::load_image(std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/image-png-empty-idat-before-the-data.png");
  REQUIRE(image.shape() == Shape{1, 2, 2});
  CHECK(std::vector<float>(image.begin(), image.end()) == std::vector<float>{0, 1, 10, 11});
}

TEST_CASE("a safetensors header with a number too large for a double is a format error, not a crash") {
  const std::string path =
      std::string(EMBER_FIXTURE_DIR) + "/fuzz-regressions/safetensors-number-overflow-in-header.safetensors";
  const std::string msg = message_of<ember::format_error>([&] { io::read_safetensors(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "cannot be parsed"));
}

// ---- tensors ---------------------------------------------------------------------------------------------

TEST_CASE("tensors: wrong element counts, bad indices, negative and overflowing shapes, zero-size tensors") {
  CHECK_THROWS_AS(Tensor::from({2, 3}, std::vector<float>(5)), std::invalid_argument);
  CHECK_THROWS_AS(Tensor({2, -1}), ember::shape_error);
  // 2^62 elements: rejected from the shape, before any allocation.
  const std::size_t largest = largest_allocation_of([] {
    CHECK_THROWS_AS(Tensor({std::int64_t(1) << 31, std::int64_t(1) << 31}), ember::shape_error);
    CHECK_THROWS_AS(Tensor({std::int64_t(1) << 40, std::int64_t(1) << 40}), ember::shape_error);
  });
  CHECK(largest < kMiB);
  Tensor t({2, 3});
  CHECK_THROWS(t.at({2, 0}));
  CHECK_THROWS(t.at({0, 0, 0}));
  CHECK_THROWS(t.reshape({4, 2}));

  const Tensor empty({0, 3});
  CHECK(empty.numel() == 0);
  CHECK(empty.reshape({3, 0}).shape() == Shape{3, 0});
  CHECK_THROWS(empty.at({0, 0}));
  CHECK(Tensor::from({0}, {}).numel() == 0);
}

// ---- layers ----------------------------------------------------------------------------------------------

TEST_CASE("layers: wrong shapes throw shape_error naming the layer and both shapes") {
  ember::Generator gen(1);
  nn::Linear fc(4, 3, true, gen);
  const std::string linear = message_of<ember::shape_error>([&] { fc.forward(Tensor({2, 5})); });
  CHECK(contains(linear, "Linear"));
  CHECK(contains(linear, "[2, 5]"));
  CHECK_THROWS_AS(fc.forward(Tensor({0})), ember::shape_error);
  CHECK_THROWS_AS(fc.predict(Tensor({2, 3, 5})), ember::shape_error);  // [*, in] as PyTorch: the last extent counts

  nn::Conv2d conv(1, 2, 3, 1, 0, true, gen);
  const std::string c = message_of<ember::shape_error>([&] { conv.forward(Tensor({1, 3, 8, 8})); });
  CHECK(contains(c, "Conv2d"));
  CHECK(contains(c, "[1, 3, 8, 8]"));
  CHECK_THROWS_AS(conv.forward(Tensor({1, 8, 8})), ember::shape_error);
  CHECK_THROWS_AS(conv.forward(Tensor({1, 1, 2, 2})), ember::shape_error);  // smaller than the kernel

  nn::BatchNorm2d bn(2);
  CHECK_THROWS_AS(bn.forward(Tensor({2, 3, 4, 4})), ember::shape_error);
  nn::MaxPool2d pool(2);
  CHECK_THROWS_AS(pool.forward(Tensor({1, 1, 1, 1})), ember::shape_error);
  CHECK_THROWS_AS(pool.forward(Tensor({4, 4})), ember::shape_error);
  nn::Softmax softmax(1);
  CHECK_THROWS_AS(softmax.forward(Tensor({4})), ember::shape_error);

  nn::Sequential net("Net", {});
  net.add("fc1", nn::Linear(4, 3, true, gen));
  net.add("relu1", nn::ReLU());
  net.add("fc2", nn::Linear(3, 2, true, gen));
  const std::string seq = message_of<ember::shape_error>([&] { net.forward(Tensor({2, 7})); });
  CHECK(contains(seq, "[2, 7]"));
  // backward with a gradient of the wrong shape
  net.forward(Tensor({2, 4}));
  CHECK_THROWS_AS(net.backward(Tensor({2, 3})), ember::shape_error);
}

TEST_CASE("layers: an empty batch gives an empty output, as in PyTorch") {
  ember::Generator gen(2);
  nn::Linear fc(4, 3, true, gen);
  CHECK(fc.forward(Tensor({0, 4})).shape() == Shape{0, 3});
  CHECK(fc.backward(Tensor({0, 3})).shape() == Shape{0, 4});
  nn::Conv2d conv(1, 2, 3, 1, 1, true, gen);
  CHECK(conv.forward(Tensor({0, 1, 5, 5})).shape() == Shape{0, 2, 5, 5});
  nn::ReLU relu;
  CHECK(relu.forward(Tensor({0, 2, 3, 3})).shape() == Shape{0, 2, 3, 3});
  nn::MaxPool2d pool(2);
  CHECK(pool.forward(Tensor({0, 2, 4, 4})).shape() == Shape{0, 2, 2, 2});
  nn::Flatten flat;
  CHECK(flat.forward(Tensor({0, 2, 3, 3})).shape() == Shape{0, 18});
  nn::Softmax softmax(1);
  CHECK(softmax.forward(Tensor({0, 5})).shape() == Shape{0, 5});
  // BatchNorm2d in eval mode normalises with the running statistics: nothing to compute, nothing changes.
  nn::BatchNorm2d bn(2);
  bn.eval();
  CHECK(bn.forward(Tensor({0, 2, 3, 3})).shape() == Shape{0, 2, 3, 3});
  // In training mode the batch statistics of zero values do not exist: an error, and the running
  // statistics stay as they were (PyTorch's "Expected more than 1 value per channel when training").
  bn.train();
  CHECK_THROWS_AS(bn.forward(Tensor({0, 2, 3, 3})), std::invalid_argument);
  CHECK_THROWS_AS(bn.forward(Tensor({1, 2, 1, 1})), std::invalid_argument);
  for (const auto& [name, b] : bn.named_buffers())
    for (float v : *b) CHECK(std::isfinite(v));
}

TEST_CASE("layers: NaN and Inf propagate as in PyTorch, and only where the input reaches") {
  ember::Generator gen(3);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();

  nn::Linear fc(4, 3, true, gen);
  Tensor x = random_tensor({2, 4}, 4);
  x[1] = nan;  // row 0
  const Tensor y = fc.forward(x);
  CHECK(all_nan(y, 0, 3));
  CHECK(all_finite(y, 3, 6));

  nn::ReLU relu;
  const Tensor r = relu.forward(Tensor::from({3}, {inf, -inf, -1.0f}));
  CHECK(r[0] == inf);
  CHECK(r[1] == 0.0f);
  CHECK(r[2] == 0.0f);

  nn::MaxPool2d pool(2);
  Tensor img = random_tensor({1, 1, 4, 4}, 5);
  img[0] = nan;  // in the top-left window only
  const Tensor p = pool.forward(img);
  CHECK(std::isnan(p[0]));  // max_pool2d propagates NaN
  CHECK(all_finite(p, 1, 4));

  nn::Softmax softmax(1);
  Tensor logits = random_tensor({2, 5}, 6);
  logits[7] = nan;  // row 1
  const Tensor s = softmax.forward(logits);
  CHECK(all_finite(s, 0, 5));
  CHECK(all_nan(s, 5, 10));

  nn::Conv2d conv(1, 1, 3, 1, 0, true, gen);
  Tensor big = random_tensor({1, 1, 8, 8}, 7);
  big[0] = nan;  // top-left pixel: reaches output (0, 0) only
  const Tensor c = conv.forward(big);
  CHECK(std::isnan(c[0]));
  CHECK(all_finite(c, 1, c.numel()));

  nn::BatchNorm2d bn(2);
  Tensor b = random_tensor({2, 2, 3, 3}, 8);
  b[0] = nan;  // channel 0 of sample 0: channel 0's batch statistics are NaN
  const Tensor bo = bn.forward(b);
  CHECK(all_nan(bo, 0, 9));
  CHECK(all_finite(bo, 9, 18));
  CHECK(std::isnan((*bn.named_buffers()[0].second)[0]));  // running_mean of channel 0, as PyTorch
  CHECK(std::isfinite((*bn.named_buffers()[0].second)[1]));
}

// ReLU once computed `v > 0 ? v : 0`, which turned NaN into 0: a NaN input vanished behind the first ReLU.
TEST_CASE("ReLU keeps NaN, as torch.relu does") {
  nn::ReLU relu;
  const Tensor r = relu.forward(Tensor::from({2}, {std::numeric_limits<float>::quiet_NaN(), 1.0f}));
  CHECK(std::isnan(r[0]));
  CHECK(std::isnan(relu.predict(Tensor::from({1}, {std::numeric_limits<float>::quiet_NaN()}))[0]));
}

// ---- loss ------------------------------------------------------------------------------------------------

TEST_CASE("CrossEntropyLoss: labels out of range, wrong counts, empty batches, NaN and Inf logits") {
  nn::CrossEntropyLoss loss;
  const Tensor logits = random_tensor({3, 4}, 9);
  const std::string msg = message_of<std::invalid_argument>([&] { loss.forward(logits, {0, 4, 1}); });
  CHECK(contains(msg, "target 4 at index 1"));
  CHECK_THROWS_AS(loss.forward(logits, {0, -1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(loss.forward(logits, {0, 1}), ember::shape_error);
  CHECK_THROWS_AS(loss.forward(Tensor({0, 4}), {}), ember::shape_error);  // PyTorch gives NaN; we say why
  CHECK_THROWS_AS(loss.forward(Tensor({3, 0}), {0, 0, 0}), ember::shape_error);
  CHECK_THROWS_AS(loss.forward(Tensor({3, 4, 1}), {0, 0, 0}), ember::shape_error);
  nn::CrossEntropyLoss fresh;
  CHECK_THROWS_AS(fresh.backward(), std::logic_error);

  Tensor bad = logits;
  bad[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(loss.forward(bad, {0, 1, 2})));
  bad = logits;
  bad[5] = std::numeric_limits<float>::infinity();  // log_softmax of +inf is NaN in PyTorch too
  CHECK(std::isnan(loss.forward(bad, {0, 1, 2})));
  // Huge but finite logits stay finite: the row maximum is subtracted first.
  const Tensor huge = Tensor::from({1, 3}, {1e30f, -1e30f, 0.0f});
  CHECK(loss.forward(huge, {0}) == doctest::Approx(0.0));
  CHECK(std::isfinite(loss.forward(huge, {1})));
}

// ---- data ------------------------------------------------------------------------------------------------

TEST_CASE("readers: missing files and directories are io_error naming the path") {
  const std::string missing = tmp_path("does-not-exist");
  CHECK(contains(message_of<ember::io_error>([&] { data::read_idx_images(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { data::read_idx_labels(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { data::load_sign_mnist(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { data::load_mnist(missing, true); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { io::load_image(missing); }), missing));
  CHECK(contains(message_of<ember::io_error>([&] { io::read_safetensors(missing); }), missing));
  nn::Linear fc(2, 2);
  CHECK(contains(message_of<ember::io_error>([&] { io::load_checkpoint(fc, missing); }), missing));

  // A directory where a file is expected: an error naming it, not a giant allocation or a hang.
  const std::string dir = tmp_path("a-directory");
  fs::create_directories(dir);
  const std::size_t largest = largest_allocation_of([&] {
    CHECK_THROWS_AS(data::read_idx_images(dir), std::runtime_error);
    CHECK_THROWS_AS(data::load_sign_mnist(dir), std::runtime_error);
    CHECK_THROWS_AS(io::load_image(dir), std::runtime_error);
    CHECK(contains(message_of<std::runtime_error>([&] { io::read_safetensors(dir); }), dir));
    CHECK_THROWS_AS(io::load_checkpoint(fc, dir), std::runtime_error);
  });
  CHECK(largest < 4 * kMiB);
}

TEST_CASE("absurd sizes: headers that claim huge data are rejected before anything is allocated") {
  // IDX: 10^9 images of 28 x 28 claimed, 16 bytes present.
  Bytes idx;
  put_be32(idx, 0x00000803);
  put_be32(idx, 1000000000);
  put_be32(idx, 28);
  put_be32(idx, 28);
  idx.resize(idx.size() + 16, 7);
  const std::string idx_path = tmp_path("huge-claim-idx3");
  write_file(idx_path, idx);
  // IDX labels: 2^32 - 1 labels claimed.
  Bytes labels;
  put_be32(labels, 0x00000801);
  put_be32(labels, 0xFFFFFFFFu);
  labels.resize(labels.size() + 3, 1);
  const std::string labels_path = tmp_path("huge-claim-idx1");
  write_file(labels_path, labels);
  // safetensors: a 2^60-element tensor, and 2^62 x 4 elements (overflowing numel * dtype size).
  const std::string st1 = tmp_path("huge-claim-1.safetensors");
  write_file(st1, safetensors_file(R"({"x":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,4]}})",
                                   Bytes(4, 0)));
  const std::string st2 = tmp_path("huge-claim-2.safetensors");
  write_file(st2, safetensors_file(R"({"x":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
                                   Bytes(8, 0)));
  // safetensors: a header length of 2^60.
  Bytes st3_bytes = safetensors_file("{}");
  st3_bytes[7] = 0x10;
  const std::string st3 = tmp_path("huge-claim-3.safetensors");
  write_file(st3, st3_bytes);
  // CSV: a 64 x 64 header, then 200000 blank lines: the line ends alone would size a 3.2 GB tensor.
  std::string csv = "label";
  for (int i = 1; i <= 4096; ++i) csv += ",pixel" + std::to_string(i);
  csv += "\n" + std::string(200000, '\n');
  const std::string csv_path = tmp_path("huge-claim.csv");
  write_file(csv_path, csv);
  // PNG: a 65535 x 65535 gray image header with a few bytes of data (stb sizes its first buffer from it).
  const Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R', 0, 0, 0xff, 0xff,
                     0, 0, 0xff, 0xff, 8, 0, 0, 0, 0, 0x62, 0x5c, 0x3b, 0x35, 0, 0, 0, 0, 'I', 'E', 'N', 'D',
                     0xae, 0x42, 0x60, 0x82};
  const std::string png_path = tmp_path("huge-claim.png");
  write_file(png_path, png);

  const std::size_t largest = largest_allocation_of([&] {
    CHECK(contains(message_of<ember::format_error>([&] { data::read_idx_images(idx_path); }), "1000000000 x 28 x 28"));
    CHECK_THROWS_AS(data::read_idx_labels(labels_path), ember::format_error);
    CHECK(contains(message_of<ember::format_error>([&] { io::read_safetensors(st1); }), "'x'"));
    CHECK_THROWS_AS(io::read_safetensors(st2), ember::format_error);
    CHECK(contains(message_of<ember::format_error>([&] { io::read_safetensors(st3); }), "header length"));
    CHECK(contains(message_of<ember::format_error>([&] { data::load_sign_mnist(csv_path); }), "line 2"));
    CHECK_THROWS_AS(io::load_image(png_path), ember::format_error);
  });
  // The CSV file itself is read whole (a few hundred KB); nothing near the claimed sizes.
  CHECK(largest < 16 * kMiB);
}

TEST_CASE("Dataset and DataLoader: mismatched parts, labels out of range, bad options, empty datasets") {
  data::Dataset ds;
  ds.images = Tensor({3, 1, 2, 2});
  ds.labels = {0, 1};
  ds.num_classes = 2;
  CHECK_THROWS_AS(ds.validate(), ember::shape_error);
  ds.labels = {0, 1, 2};
  CHECK_THROWS_AS(ds.validate(), std::invalid_argument);
  CHECK_THROWS_AS(data::DataLoader(ds, {2}), std::invalid_argument);
  ds.labels = {0, 1, -1};
  CHECK_THROWS_AS(ds.validate(), std::invalid_argument);
  ds.labels = {0, 1, 1};
  CHECK_THROWS_AS(data::DataLoader(ds, {0}), std::invalid_argument);
  CHECK_THROWS_AS(data::DataLoader(ds, {-5}), std::invalid_argument);
  CHECK_THROWS_AS(ds.subset(-1), std::invalid_argument);
  ds.images = Tensor({3, 2, 2});
  CHECK_THROWS_AS(ds.validate(), ember::shape_error);

  data::Dataset empty;
  empty.images = Tensor({0, 1, 4, 4});
  empty.num_classes = 3;
  data::DataLoader loader(empty, {4, true});
  CHECK(loader.size() == 0);
  int batches = 0;
  for (const auto& b : loader) {
    (void)b;
    ++batches;
  }
  CHECK(batches == 0);
  // fit refuses a loader that gives no samples instead of reporting a NaN loss.
  nn::Sequential net = flat_linear(10);
  nn::CrossEntropyLoss loss;
  ember::optim::SGD opt(net.parameters(), {0.1f});
  train::FitOptions opts;
  opts.progress = train::ProgressMode::off;
  data::DataLoader val(empty, {4});
  CHECK_THROWS_AS(train::fit(net, loss, opt, loader, val, opts), std::invalid_argument);
}

TEST_CASE("transforms and image helpers: empty and wrong-shaped images are errors, not crashes") {
  CHECK_THROWS_AS(io::save_png(tmp_path("empty.png"), Tensor({1, 0, 4})), ember::shape_error);
  CHECK_THROWS_AS(io::save_png(tmp_path("bad.png"), Tensor({2, 4, 4})), ember::shape_error);
  CHECK_THROWS_AS(io::make_grid(Tensor({0, 1, 4, 4})), ember::shape_error);
  CHECK_THROWS_AS(io::make_grid(Tensor({2, 1, 4, 4}), 0), std::invalid_argument);
  CHECK_THROWS_AS(io::resize(Tensor({1, 4, 4}), 0, 4), std::invalid_argument);
  CHECK_THROWS_AS(io::resize(Tensor({1, 4, 4}), -3, 4), std::invalid_argument);
  CHECK_THROWS_AS(io::resize(Tensor({4, 4}), 2, 2), std::invalid_argument);
  // NaN pixels: written as 0 (documented), and the PNG stays valid.
  Tensor img({1, 2, 2}, 100.0f);
  img[0] = std::numeric_limits<float>::quiet_NaN();
  io::save_png(tmp_path("nan.png"), img);
  const Tensor back = io::load_image(tmp_path("nan.png"));
  CHECK(back[0] == 0.0f);
  CHECK(back[1] == 100.0f);
}

// ---- writing ---------------------------------------------------------------------------------------------

namespace {

nn::Sequential small_net(std::uint64_t seed, std::int64_t in = 16, std::int64_t hidden = 8) {
  ember::Generator gen(seed);
  nn::Sequential net("Net", {});
  net.add("flatten", nn::Flatten());
  net.add("fc1", nn::Linear(in, hidden, true, gen));
  net.add("relu1", nn::ReLU());
  net.add("fc2", nn::Linear(hidden, 3, true, gen));
  return net;
}

std::vector<float> weights_of(nn::Sequential& net) {
  std::vector<float> all;
  for (auto& [name, p] : net.named_parameters()) all.insert(all.end(), p->value.begin(), p->value.end());
  return all;
}

std::vector<std::string> temporaries_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (contains(e.path().filename().string(), ".tmp-")) out.push_back(e.path().string());
  return out;
}

// Runs f in a child process and returns its exit status (f's return value, 99 on an exception, or the signal).
template <typename F>
int in_child(F&& f) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 99;
    try {
      code = f();
    } catch (...) {
    }
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("unwritable destinations are io_error naming the path; nothing is left behind") {
  auto net = small_net(11);
  const std::string file = tmp_path("plain-file");
  write_file(file, std::string("x"));
  const std::string under_file = file + "/model.safetensors";  // a path through a regular file: ENOTDIR
  CHECK(contains(message_of<ember::io_error>([&] { io::save_checkpoint(net, under_file); }), under_file));
  const std::string missing_dir = tmp_path("no-such-dir") + "/model.safetensors";
  CHECK(contains(message_of<ember::io_error>([&] { io::save_checkpoint(net, missing_dir); }), missing_dir));
  CHECK(contains(message_of<ember::io_error>([&] { io::save_png(missing_dir + ".png", Tensor({1, 2, 2})); }),
                 missing_dir));
  // A directory as the target: the rename fails, the temporary is removed.
  const std::string dir = tmp_path("target-is-a-dir");
  fs::create_directories(dir);
  fs::create_directories(dir + "/inner");
  CHECK_THROWS_AS(io::save_checkpoint(net, dir), ember::io_error);
  CHECK_THROWS_AS(io::save_png(dir, Tensor({1, 2, 2})), ember::io_error);
  CHECK(temporaries_in(tmp_path("")).empty());
}

TEST_CASE("a disk that fills up mid-write: io_error, the previous checkpoint and PNG stay intact") {
  const std::string dir = tmp_path("full-disk");
  fs::create_directories(dir);
  const std::string ckpt = dir + "/model.safetensors";
  const std::string png = dir + "/grid.png";
  auto small = small_net(12);
  io::save_checkpoint(small, ckpt, {{"generation", "old"}});
  Tensor img({1, 64, 64});
  for (std::int64_t i = 0; i < img.numel(); ++i) img[i] = static_cast<float>((i * 37) % 256);
  io::save_png(png, Tensor({1, 2, 2}, 50.0f));
  const Bytes old_ckpt = read_file(ckpt), old_png = read_file(png);

  // In a child limited to 64 KB per file (RLIMIT_FSIZE: writes beyond it fail with EFBIG, as on a full disk),
  // write a ~600 KB checkpoint and a PNG larger than the limit over the old ones.
  const int status = in_child([&] {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{64 * 1024, 64 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return 2;
    auto big = small_net(13, 16, 9000);
    int failures = 0;
    try {
      io::save_checkpoint(big, ckpt, {{"generation", "new"}});
    } catch (const ember::io_error& e) {
      failures += contains(e.what(), ckpt);
    }
    Tensor noise({3, 512, 512});
    ember::Generator gen(30);
    for (auto& v : noise) v = static_cast<float>(gen.randint(256));  // incompressible: a ~780 KB PNG
    try {
      io::save_png(png, noise);
    } catch (const ember::io_error& e) {
      failures += contains(e.what(), png);
    }
    return failures == 2 ? 0 : 1;
  });
  CHECK(status == 0);
  CHECK(read_file(ckpt) == old_ckpt);
  CHECK(read_file(png) == old_png);
  CHECK(temporaries_in(dir).empty());
  auto loaded = small_net(14);
  CHECK(io::load_checkpoint(loaded, ckpt).at("generation") == "old");
  CHECK(weights_of(loaded) == weights_of(small));

  // /dev/full as a log stream: writes fail with ENOSPC; the log is best effort and training goes on.
  std::ofstream full("/dev/full");
  if (full.is_open()) {
    data::Dataset ds;
    ds.images = random_tensor({8, 1, 4, 4}, 15);
    ds.labels = {0, 1, 2, 0, 1, 2, 0, 1};
    ds.num_classes = 3;
    data::DataLoader loader(ds, {4});
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(small.parameters(), {0.01f});
    train::FitOptions opts;
    opts.epochs = 1;
    opts.log = &full;
    opts.progress = train::ProgressMode::off;
    CHECK(train::fit(small, loss, opt, loader, loader, opts).epochs.size() == 1);
  }
}

TEST_CASE("fit: NaN or Inf in the inputs stops training with training_error naming the epoch and step") {
  data::Dataset ds;
  ds.images = random_tensor({12, 1, 4, 4}, 16);
  ds.labels = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
  ds.num_classes = 3;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    data::Dataset poisoned = ds;
    poisoned.images[7 * 16 + 5] = bad;  // sample 7: batch 3 of 4 (batch size 3, no shuffle)
    data::DataLoader loader(poisoned, {3});
    // A linear model: the test is about fit, not about which layers carry NaN.
    nn::Sequential net = flat_linear(17);
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(net.parameters(), {0.01f});
    train::FitOptions opts;
    opts.epochs = 2;
    opts.progress = train::ProgressMode::off;
    try {
      train::fit(net, loss, opt, loader, loader, opts);
      FAIL("no training_error");
    } catch (const train::training_error& e) {
      CHECK(e.epoch() == 1);
      CHECK(e.step() == 3);
      CHECK(contains(e.what(), "epoch 1, step 3 of 4"));
      CHECK(!std::isfinite(e.loss()));
    }
  }
}

// ---- killed while writing ----------------------------------------------------------------------------------

TEST_CASE("a training run killed by SIGKILL or SIGTERM leaves its last checkpoint complete and resumable") {
  const std::string dir = tmp_path("killed");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string last = dir + "/last.safetensors";
  // 256 inputs -> 512 hidden: a ~1 MB checkpoint with the momentum buffers, so a kill often lands mid-write.
  data::Dataset ds;
  ds.images = random_tensor({32, 1, 16, 16}, 20);
  for (std::int64_t i = 0; i < 32; ++i) ds.labels.push_back(i % 3);
  ds.num_classes = 3;

  // Per epoch the child reports (epoch, checksum of the weights it saved) through a pipe, after the save.
  struct Report {
    std::int64_t epoch;
    double checksum;
  };
  auto checksum = [](nn::Sequential& net) {
    double s = 0;
    std::int64_t k = 0;
    for (float v : weights_of(net)) s += static_cast<double>(v) * static_cast<double>(++k % 7 + 1);
    return s;
  };

  const int rounds = 6;
  int mid_write_kills = 0;
  for (int round = 0; round < rounds; ++round) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    std::fflush(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(fds[0]);
      std::signal(SIGTERM, SIG_DFL);  // doctest's crash handler would report the kill as a test failure
      // The parent's OpenMP pool does not exist in the child: stay on one thread.
      ember::set_num_threads(1);
      try {
        auto net = small_net(21, 256, 512);
        nn::CrossEntropyLoss loss;
        ember::optim::SGD opt(net.parameters(), {0.01f, 0.9f});
        data::DataLoader loader(ds, {8, true, false, 5});
        train::FitOptions opts;
        opts.epochs = 100000;
        opts.last_checkpoint_path = last;
        opts.progress = train::ProgressMode::off;
        if (fs::exists(last)) opts.resume_from(io::load_checkpoint(net, last, &opt));
        opts.on_epoch = [&](const train::EpochStats& e) {
          const Report r{e.epoch, checksum(net)};
          if (write(fds[1], &r, sizeof r) != static_cast<ssize_t>(sizeof r)) _exit(3);
        };
        train::fit(net, loss, opt, loader, loader, opts);
      } catch (...) {
        _exit(4);
      }
      _exit(0);
    }
    close(fds[1]);
    // Wait for a few epochs, then kill at a moment that varies from round to round.
    // The kill lands at (round + 0.5) / rounds of an epoch after a report, so the rounds sweep the epoch
    // (training, validation, then the save at its end) instead of depending on luck.
    std::vector<Report> reports;
    Report r{};
    std::chrono::steady_clock::time_point times[4];
    while (reports.size() < 4 && read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) {
      times[reports.size()] = std::chrono::steady_clock::now();
      reports.push_back(r);
    }
    REQUIRE_MESSAGE(reports.size() == 4, "the child stopped early");
    const auto period = (times[3] - times[1]) / 2;
    std::this_thread::sleep_for(period * (2 * round + 1) / (2 * rounds));
    const int sig = round % 2 ? SIGTERM : SIGKILL;
    kill(pid, sig);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == sig));
    while (read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) reports.push_back(r);
    close(fds[0]);
    if (!temporaries_in(dir).empty()) ++mid_write_kills;
    for (const auto& t : temporaries_in(dir)) fs::remove(t);  // a killed writer cannot clean up; harmless

    // The checkpoint is complete: it loads (load_checkpoint checks every size and offset), it is either the
    // last epoch the child reported or the one it was saving, and its weights are those of that epoch.
    auto net = small_net(22, 256, 512);
    nn::CrossEntropyLoss loss;
    ember::optim::SGD opt(net.parameters(), {0.01f, 0.9f});
    std::map<std::string, std::string> meta;
    REQUIRE_NOTHROW(meta = io::load_checkpoint(net, last, &opt));
    const std::int64_t epoch = std::stoll(meta.at("epoch"));
    const std::int64_t reported = reports.back().epoch;
    CAPTURE(round);
    CHECK((epoch == reported || epoch == reported + 1));
    if (epoch == reported) CHECK(checksum(net) == reports.back().checksum);
    // ... and it resumes: one more epoch trains from it.
    data::DataLoader loader(ds, {8, true, false, 5});
    train::FitOptions opts;
    opts.progress = train::ProgressMode::off;
    opts.resume_from(meta);
    opts.epochs = epoch + 1;
    const train::History h = train::fit(net, loss, opt, loader, loader, opts);
    REQUIRE(h.epochs.size() == 1);
    CHECK(h.epochs[0].epoch == epoch + 1);
  }
  MESSAGE(mid_write_kills << " of " << rounds << " kills landed while a checkpoint was being written");
}

// ---- threads (scripts/tsan.sh runs this case under ThreadSanitizer) ---------------------------------------

TEST_CASE("threads: OpenMP layers equal one thread, and predict serves several threads at once") {
  // Large enough that threads_for() splits the work: conv (im2col + GEMM), batchnorm, pooling, linear.
  ember::Generator gen(40);
  nn::Sequential net("Net", {});
  net.add("conv1", nn::Conv2d(1, 16, 3, 1, 1, true, gen));
  net.add("batchnorm1", nn::BatchNorm2d(16));
  net.add("relu1", nn::ReLU());
  net.add("pool1", nn::MaxPool2d(2));
  net.add("flatten", nn::Flatten());
  net.add("fc1", nn::Linear(16 * 14 * 14, 128, true, gen));
  net.add("relu2", nn::ReLU());
  net.add("fc2", nn::Linear(128, 10, true, gen));
  const Tensor x = random_tensor({32, 1, 28, 28}, 41);
  const std::vector<std::int64_t> y = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5,
                                       6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1};
  const int saved_threads = ember::get_num_threads();
  auto step = [&](int threads) {
    ember::set_num_threads(threads);
    net.zero_grad();
    nn::CrossEntropyLoss loss;
    const Tensor logits = net.forward(x);
    loss.forward(logits, y);
    net.backward(loss.backward());
    std::vector<float> grads;
    for (auto& [name, p] : net.named_parameters()) grads.insert(grads.end(), p->grad.begin(), p->grad.end());
    return std::make_pair(logits, grads);
  };
  const auto one = step(1);
  const auto many = step(4);
  CHECK(one.first.shape() == many.first.shape());
  double worst = 0;
  for (std::int64_t i = 0; i < one.first.numel(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(one.first[i] - many.first[i])));
  for (std::size_t i = 0; i < one.second.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(one.second[i] - many.second[i])));
  CHECK(worst < 1e-4);

  // Inference in eval mode changes nothing, so one model serves several threads (each with OpenMP inside).
  net.eval();
  const Tensor expected = net.predict(x);
  std::vector<Tensor> got(3);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t) threads.emplace_back([&, t] { got[t] = net.predict(x); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) CHECK(g == expected);
  ember::set_num_threads(saved_threads);
}
