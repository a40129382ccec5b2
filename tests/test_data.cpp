// Data: IDX and CSV readers (every error path), Dataset, DataLoader (shuffle, prefetch = single-threaded
// bit for bit, early break, worker exceptions) and transforms (against torchvision goldens).
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ember/data/sign_mnist.hpp>
#include <ember/data/dataloader.hpp>
#include <ember/data/dataset.hpp>
#include <ember/data/idx.hpp>
#include <ember/data/image_folder.hpp>
#include <ember/data/mix.hpp>
#include <ember/data/sampler.hpp>
#include <ember/data/split.hpp>
#include <ember/data/transforms_augment.hpp>
#include <ember/data/transforms_color.hpp>
#include <ember/data/transforms_extra.hpp>
#include <ember/io/image.hpp>
#include <ember/data/transforms.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "alloc_counter.hpp"  // the largest allocation, for the gzip bomb
#include "fixture.hpp"
#include "scratch.hpp"
#include "bad_input.hpp"

using ember::Generator;
using ember::Shape;
using ember::Tensor;
namespace data = ember::data;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) { return scratch::path("data", name); }

using scratch::Bytes;
using scratch::contains;
using scratch::message_of;
using scratch::read_file;
using scratch::write_file;

void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}

// An IDX3 image file of n images h x w with pixel (k, i, j) = (k * 31 + i * 7 + j) % 256.
Bytes idx_images(std::uint32_t n, std::uint32_t h, std::uint32_t w) {
  Bytes b;
  put_be32(b, 0x803);
  put_be32(b, n);
  put_be32(b, h);
  put_be32(b, w);
  for (std::uint32_t k = 0; k < n; ++k)
    for (std::uint32_t i = 0; i < h; ++i)
      for (std::uint32_t j = 0; j < w; ++j) b.push_back(static_cast<unsigned char>((k * 31 + i * 7 + j) % 256));
  return b;
}

Bytes idx_labels(const std::vector<unsigned char>& labels) {
  Bytes b;
  put_be32(b, 0x801);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

// The exception message of f(), or "" when it does not throw E.
// A Sign-MNIST-like CSV with `side` x `side` pixels, rows given as {label, pixel fill base}.
std::string sign_csv(int side, const std::vector<int>& labels, const std::string& eol) {
  std::string s = "label";
  for (int p = 1; p <= side * side; ++p) s += ",pixel" + std::to_string(p);
  s += eol;
  for (std::size_t r = 0; r < labels.size(); ++r) {
    s += std::to_string(labels[r]);
    for (int p = 0; p < side * side; ++p) s += "," + std::to_string((static_cast<int>(r) * 40 + p * 3) % 256);
    s += eol;
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------- IDX

TEST_CASE("IDX images and labels read plain and gzip, with the right shape, values and order") {
  const Bytes img = idx_images(3, 4, 5);
  write_file(tmp_path("img.idx"), img);
  write_gz(tmp_path("img.idx.gz"), img);
  for (const char* name : {"img.idx", "img.idx.gz"}) {
    const Tensor t = data::read_idx_images(tmp_path(name));
    REQUIRE(t.shape() == Shape{3, 1, 4, 5});
    CHECK(t.at({0, 0, 0, 0}) == 0.0f);
    CHECK(t.at({2, 0, 3, 4}) == float((2 * 31 + 3 * 7 + 4) % 256));
    CHECK(t.at({1, 0, 2, 1}) == float((31 + 14 + 1) % 256));
  }
  const Bytes lab = idx_labels({7, 0, 9, 255});
  write_file(tmp_path("lab.idx"), lab);
  write_gz(tmp_path("lab.idx.gz"), lab);
  CHECK(data::read_idx_labels(tmp_path("lab.idx")) == std::vector<std::int64_t>{7, 0, 9, 255});
  CHECK(data::read_idx_labels(tmp_path("lab.idx.gz")) == std::vector<std::int64_t>{7, 0, 9, 255});
}

TEST_CASE("IDX errors: missing file, bad magic, truncated header and data, trailing bytes, huge claims") {
  CHECK(contains(message_of<ember::io_error>([] { data::read_idx_images(tmp_path("does-not-exist")); }),
                 "does-not-exist"));

  Bytes labels_as_images = idx_labels({1, 2});
  write_file(tmp_path("magic.idx"), labels_as_images);
  const std::string magic = message_of<ember::format_error>([] { data::read_idx_images(tmp_path("magic.idx")); });
  CHECK(contains(magic, "magic.idx"));
  CHECK(contains(magic, "bad magic"));
  CHECK(contains(magic, "0x00000801"));

  write_file(tmp_path("short.idx"), Bytes{0, 0});
  CHECK(contains(message_of<ember::format_error>([] { data::read_idx_images(tmp_path("short.idx")); }), "truncated"));

  Bytes header_cut = idx_images(1, 2, 2);
  header_cut.resize(10);
  write_file(tmp_path("hcut.idx"), header_cut);
  CHECK(contains(message_of<ember::format_error>([] { data::read_idx_images(tmp_path("hcut.idx")); }), "header"));

  Bytes data_cut = idx_images(4, 3, 3);
  data_cut.pop_back();
  write_file(tmp_path("dcut.idx"), data_cut);
  write_gz(tmp_path("dcut.idx.gz"), data_cut);
  for (const char* name : {"dcut.idx", "dcut.idx.gz"}) {
    const std::string m = message_of<ember::format_error>([&] { data::read_idx_images(tmp_path(name)); });
    CHECK(contains(m, name));
    CHECK(contains(m, "truncated"));
    CHECK(contains(m, "4 x 3 x 3"));
  }

  Bytes trailing = idx_labels({1, 2, 3});
  trailing.push_back(0);
  write_file(tmp_path("trail.idx"), trailing);
  CHECK(contains(message_of<ember::format_error>([] { data::read_idx_labels(tmp_path("trail.idx")); }), "trailing"));

  // 1 KB of file claiming 10^9 images of 28 x 28, and another whose extents overflow 64 bits when multiplied.
  Bytes huge = idx_images(1, 28, 28);
  huge[4] = 0x3B, huge[5] = 0x9A, huge[6] = 0xCA, huge[7] = 0x00;  // 1'000'000'000
  write_file(tmp_path("huge.idx"), huge);
  write_gz(tmp_path("huge.idx.gz"), huge);
  for (const char* name : {"huge.idx", "huge.idx.gz"})
    CHECK(contains(message_of<ember::format_error>([&] { data::read_idx_images(tmp_path(name)); }),
                   "1000000000 x 28 x 28"));
  Bytes overflow;
  put_be32(overflow, 0x803);
  for (int d = 0; d < 3; ++d) put_be32(overflow, 0xFFFFFFFFu);
  overflow.resize(1000, 1);
  write_file(tmp_path("overflow.idx"), overflow);
  CHECK(contains(message_of<ember::format_error>([] { data::read_idx_images(tmp_path("overflow.idx")); }), "truncated"));

  // A zero count is a valid, empty file.
  write_file(tmp_path("empty.idx"), idx_images(0, 28, 28));
  CHECK(data::read_idx_images(tmp_path("empty.idx")).shape() == Shape{0, 1, 28, 28});
}

TEST_CASE("a corrupt or truncated gzip stream is a format_error naming the file") {
  const Bytes img = idx_images(20, 8, 8);
  write_gz(tmp_path("ok.gz"), img);
  Bytes gz = read_file(tmp_path("ok.gz"));
  REQUIRE(gz.size() > 40);
  Bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  write_file(tmp_path("cut.gz"), cut);
  const std::string m = message_of<ember::format_error>([] { data::read_bytes(tmp_path("cut.gz")); });
  CHECK(contains(m, "cut.gz"));
  CHECK(contains(m, "truncated gzip"));
  Bytes bad = gz;
  for (std::size_t i = 12; i < 30; ++i) bad[i] ^= 0x5A;
  write_file(tmp_path("bad.gz"), bad);
  CHECK(contains(message_of<ember::format_error>([] { data::read_bytes(tmp_path("bad.gz")); }), "bad.gz"));
  // Two concatenated members read as one stream (as gzip -d does).
  Bytes twice = gz;
  twice.insert(twice.end(), gz.begin(), gz.end());
  write_file(tmp_path("twice.gz"), twice);
  Bytes expect = img;
  expect.insert(expect.end(), img.begin(), img.end());
  CHECK(data::read_bytes(tmp_path("twice.gz")) == expect);
}

TEST_CASE("a gzip bomb stops at the reader's limit: IDX at its header's size, CSV at a documented cap") {
  // 64 MiB of zeros compress to ~64 KiB. As IDX data behind a header claiming one 28 x 28 image, the file may
  // inflate to 16 + 784 bytes and no more.
  Bytes bomb = idx_images(1, 28, 28);
  bomb.resize(std::size_t(64) << 20, 0);
  write_gz(tmp_path("bomb.idx.gz"), bomb);
  CHECK(fs::file_size(tmp_path("bomb.idx.gz")) < (std::size_t(128) << 10));
  reset_largest_allocation();
  const std::string m = message_of<ember::format_error>([] { data::read_idx_images(tmp_path("bomb.idx.gz")); });
  CHECK(contains(m, "bomb.idx.gz"));
  CHECK(contains(m, "inflates past the limit of 800 bytes"));
  if (EMBER_ALLOC_COUNTING) CHECK(largest_allocation() < (std::size_t(1) << 20));  // the file (64 KiB) and no more
  CHECK(contains(message_of<ember::format_error>([] { data::read_idx_labels(tmp_path("bomb.idx.gz")); }), "bad magic"));
  // The exact size still reads (the bound is not one byte short).
  write_gz(tmp_path("exact.idx.gz"), idx_images(1, 28, 28));
  CHECK(data::read_idx_images(tmp_path("exact.idx.gz")).shape() == Shape{1, 1, 28, 28});

  // A CSV header says nothing about the rows: the cap is kCsvMaxInflatedBytes (1 GiB), adjustable.
  std::string csv = sign_csv(2, {0, 1}, "\n");
  Bytes csv_bomb(csv.begin(), csv.end());
  csv_bomb.resize(std::size_t(64) << 20, '\n');
  write_gz(tmp_path("bomb.csv.gz"), csv_bomb);
  const std::string c = message_of<ember::format_error>([] { data::load_sign_mnist(tmp_path("bomb.csv.gz"), 1 << 20); });
  CHECK(contains(c, "bomb.csv.gz"));
  CHECK(contains(c, "inflates past the limit of 1048576 bytes"));
  CHECK(data::kCsvMaxInflatedBytes == (std::uint64_t(1) << 30));
  write_gz(tmp_path("small.csv.gz"), Bytes(csv.begin(), csv.end()));
  CHECK(data::load_sign_mnist(tmp_path("small.csv.gz"), csv.size()).size() == 2);  // exactly at the cap
  CHECK(contains(message_of<ember::format_error>([&] { data::load_sign_mnist(tmp_path("small.csv.gz"), csv.size() - 1); }),
                 "limit of " + std::to_string(csv.size() - 1) + " bytes"));
}

TEST_CASE("load_mnist pairs images with labels, prefers plain files, and checks counts and labels") {
  const std::string dir = tmp_path("mnist_dir");
  fs::create_directories(dir);
  write_gz(dir + "/train-images-idx3-ubyte.gz", idx_images(4, 28, 28));
  write_gz(dir + "/train-labels-idx1-ubyte.gz", idx_labels({3, 1, 4, 1}));
  write_file(dir + "/t10k-images-idx3-ubyte", idx_images(2, 28, 28));
  write_file(dir + "/t10k-labels-idx1-ubyte", idx_labels({9, 0}));
  const data::Dataset train = data::load_mnist(dir, true);
  CHECK(train.size() == 4);
  CHECK(train.images.shape() == Shape{4, 1, 28, 28});
  CHECK(train.num_classes == 10);
  CHECK(train.class_names[3] == "3");
  CHECK(train.histogram() == std::vector<std::int64_t>{0, 2, 0, 1, 1, 0, 0, 0, 0, 0});
  const data::Dataset test = data::load_mnist(dir, false, data::fashion_mnist_classes());
  CHECK(test.labels == std::vector<std::int64_t>{9, 0});
  CHECK(test.class_names[9] == "Ankle boot");
  CHECK(test.images.at({1, 0, 0, 1}) == 32.0f);

  write_file(dir + "/t10k-labels-idx1-ubyte", idx_labels({9, 0, 1}));
  CHECK(contains(message_of<ember::format_error>([&] { data::load_mnist(dir, false); }), "3 labels"));
  write_file(dir + "/t10k-labels-idx1-ubyte", idx_labels({10, 0}));
  CHECK(contains(message_of<ember::format_error>([&] { data::load_mnist(dir, false); }), "label 10"));
  CHECK(contains(message_of<ember::io_error>([&] { data::load_mnist(dir + "/nowhere", true); }),
                 "train-images-idx3-ubyte"));
}

// ---------------------------------------------------------------------------------------------------- CSV

TEST_CASE("Sign-MNIST CSV: LF, CRLF and gzip give the same dataset; labels above 9 move down by one") {
  const std::vector<int> labels = {0, 8, 10, 24, 3};
  const std::string lf = sign_csv(2, labels, "\n");
  const std::string crlf = sign_csv(2, labels, "\r\n");
  write_file(tmp_path("sign_lf.csv"), lf);
  write_file(tmp_path("sign_crlf.csv"), crlf);
  write_gz(tmp_path("sign_crlf.csv.gz"), Bytes(crlf.begin(), crlf.end()));
  std::string no_final_eol = lf;
  no_final_eol.pop_back();
  write_file(tmp_path("sign_noeol.csv"), no_final_eol);
  const data::Dataset ref = data::load_sign_mnist(tmp_path("sign_lf.csv"));
  CHECK(ref.images.shape() == Shape{5, 1, 2, 2});
  CHECK(ref.labels == std::vector<std::int64_t>{0, 8, 9, 23, 3});
  CHECK(ref.num_classes == 24);
  REQUIRE(ref.class_names.size() == 24);
  CHECK(ref.class_names[8] == "I");
  CHECK(ref.class_names[9] == "K");
  CHECK(ref.class_names[23] == "Y");
  CHECK(ref.images.at({1, 0, 1, 1}) == float((40 + 9) % 256));
  CHECK(ref.images.at({4, 0, 0, 1}) == float((160 + 3) % 256));
  const auto hist = ref.histogram();
  CHECK(hist.size() == 24);
  CHECK(hist[0] == 1);
  CHECK(hist[9] == 1);
  CHECK(hist[23] == 1);
  CHECK(std::accumulate(hist.begin(), hist.end(), std::int64_t(0)) == 5);
  for (const char* name : {"sign_crlf.csv", "sign_crlf.csv.gz", "sign_noeol.csv"}) {
    const data::Dataset d = data::load_sign_mnist(tmp_path(name));
    CHECK(d.labels == ref.labels);
    CHECK(d.images == ref.images);
  }
}

TEST_CASE("Sign-MNIST CSV errors name the file, the line and the column") {
  struct Case {
    std::string name, text, expect;
  };
  const std::string good = sign_csv(2, {1, 2}, "\n");
  auto with_row = [&](const std::string& row) { return good + row + "\n"; };
  const std::vector<Case> cases = {
      {"label9.csv", with_row("9,1,2,3,4"), "line 4, column 1: label 9"},
      {"label25.csv", with_row("25,1,2,3,4"), "line 4, column 1: label 25 is outside 0..24"},
      {"pixel256.csv", with_row("1,1,2,256,4"), "line 4, column 4: pixel value 256"},
      {"cell.csv", with_row("1,1,2x,3,4"), "line 4, column 3: pixel '2x'"},
      {"negative.csv", with_row("1,-1,2,3,4"), "line 4, column 2: pixel '-1'"},
      {"emptycell.csv", with_row("1,1,,3,4"), "line 4, column 3: pixel is empty"},
      {"fewcols.csv", with_row("1,1,2,3"), "line 4: 4 columns, expected 5"},
      {"manycols.csv", with_row("1,1,2,3,4,5"), "line 4: more than 5 columns"},
      {"blank.csv", good + "\n" + "1,1,2,3,4\n", "line 4, column 1: label is empty"},
      {"lonecr.csv", with_row("1,1,2,3,4\r1,1,2,3,4"), "line 4: carriage return"},
      {"header.csv", "lbl,pixel1\n1,2\n", "line 1"},
      {"header2.csv", "label,pixel1,pixel3,pixel4,pixel5\n", "column 3: expected header 'pixel2'"},
      {"notsquare.csv", "label,pixel1,pixel2\n1,2,3\n", "square"},
      {"norows.csv", "label,pixel1\n", "no data rows"},
      {"empty.csv", "", "empty file"},
      {"digits.csv", with_row("1,1,2,3,0000000000004"), "too many digits"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    write_file(tmp_path(c.name), c.text);
    const std::string m = message_of<ember::format_error>([&] { data::load_sign_mnist(tmp_path(c.name)); });
    CHECK(contains(m, c.name));
    CHECK(contains(m, c.expect));
  }
  CHECK(contains(message_of<ember::io_error>([] { data::load_sign_mnist(tmp_path("missing.csv")); }), "missing.csv"));
  // A label row cut short by the end of a truncated file still errors rather than reading past the buffer.
  std::string cut = good + "1,1,2";
  write_file(tmp_path("cut.csv"), cut);
  CHECK(contains(message_of<ember::format_error>([] { data::load_sign_mnist(tmp_path("cut.csv")); }),
                 "line 4: 3 columns, expected 5"));
}

// ---------------------------------------------------------------------------------------------------- Dataset

TEST_CASE("Dataset subset keeps the first n samples, and validate() catches mismatches") {
  data::Dataset d;
  d.images = Tensor({5, 1, 2, 2});
  for (std::int64_t i = 0; i < d.images.numel(); ++i) d.images[i] = float(i);
  d.labels = {0, 1, 2, 1, 0};
  d.num_classes = 3;
  const data::Dataset s = d.subset(2);
  CHECK(s.size() == 2);
  CHECK(s.images.shape() == Shape{2, 1, 2, 2});
  CHECK(s.images[7] == 7.0f);
  CHECK(s.labels == std::vector<std::int64_t>{0, 1});
  CHECK(s.histogram() == std::vector<std::int64_t>{1, 1, 0});
  CHECK(d.subset(100).size() == 5);
  CHECK_THROWS_AS(d.subset(-1), std::invalid_argument);
  d.labels.push_back(1);
  CHECK_THROWS_AS(d.validate(), ember::shape_error);
  d.labels = {0, 1, 2, 3, 0};
  CHECK_THROWS_AS(d.validate(), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------------- Transforms

namespace {

// tests/fixtures/transforms.txt (made by make_transform_fixtures.py), read by the shared fixture reader.
const std::map<std::string, Tensor>& goldens() {
  static const std::map<std::string, Tensor> table = [] {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : fixture::load("transforms.txt")) out.emplace(name, t.cast<float>());
    return out;
  }();
  return table;
}

const Tensor& golden(const std::string& name) {
  const auto it = goldens().find(name);
  REQUIRE_MESSAGE(it != goldens().end(), "no golden " << name);
  return it->second;
}

// Largest absolute difference; the shapes must agree.
float max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  float m = 0.0f;
  for (std::int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace

// Tolerances (pixel values 0..255; float32 ulp at 255 is 1.5e-5): bilinear resize 2e-4 (seen 7e-5: the
// weights are summed in another order), area resize 1e-5, crop and flip exact, normalize 1e-5 (values ~1).
// The affine's sample points come from the same float32 matrix but are evaluated in another order, a few
// 1e-6 pixels apart, times gradients up to ~255 per pixel: 2e-3 (seen 1.8e-4).
TEST_CASE("resize (bilinear and area) matches torchvision") {
  for (const char* name : {"gray", "rgb"})
    for (auto hw : {std::pair<int, int>{12, 5}, {4, 13}, {3, 3}}) {
      const std::string size = std::to_string(hw.first) + "x" + std::to_string(hw.second);
      CAPTURE(name);
      CAPTURE(size);
      const Tensor& in = golden(name);
      CHECK(max_abs_diff(data::resize(in, hw.first, hw.second), golden(std::string("resize_bilinear_") + name + "_" + size)) < 2e-4f);
      CHECK(max_abs_diff(data::resize(in, hw.first, hw.second, data::Interpolation::Area),
                         golden(std::string("resize_area_") + name + "_" + size)) < 1e-5f);
    }
  CHECK_THROWS_AS(data::resize(Tensor({2, 2}), 3, 3), ember::shape_error);
  CHECK_THROWS_AS(data::resize(golden("gray"), 0, 3), std::invalid_argument);
}

TEST_CASE("center_crop, hflip and normalize match torchvision") {
  for (auto hw : {std::pair<int, int>{4, 4}, {5, 6}, {10, 6}, {9, 12}}) {
    const std::string key = "center_crop_gray_" + std::to_string(hw.first) + "x" + std::to_string(hw.second);
    CAPTURE(key);
    CHECK(max_abs_diff(data::center_crop(golden("gray"), hw.first, hw.second), golden(key)) == 0.0f);
  }
  Tensor flipped = golden("rgb");
  data::hflip(flipped);
  CHECK(max_abs_diff(flipped, golden("hflip_rgb")) == 0.0f);

  Generator gen(1);
  Tensor g = golden("gray");
  data::Compose({data::ToUnit(), data::Normalize(0.5f, 0.5f)})(g, gen);
  CHECK(max_abs_diff(g, golden("normalize_gray")) < 1e-5f);
  // The report's x / 127.5 - 1, the same map within float rounding.
  Tensor h = golden("gray");
  data::Compose({data::Scale(1.0f / 255.0f), data::Normalize(0.5f, 0.5f)})(h, gen);
  for (std::int64_t i = 0; i < h.numel(); ++i) CHECK(h[i] == doctest::Approx(golden("gray")[i] / 127.5 - 1.0).epsilon(1e-5));
  Tensor c = golden("rgb");
  data::Compose({data::ToUnit(), data::Normalize({0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f})})(c, gen);
  CHECK(max_abs_diff(c, golden("normalize_rgb")) < 1e-5f);
  CHECK_THROWS_AS(data::Normalize({0.5f, 0.5f}, {0.5f}), std::invalid_argument);
  CHECK_THROWS_AS(data::Normalize(0.5f, 0.0f), std::invalid_argument);
  Tensor two = golden("rgb");
  CHECK_THROWS_AS(data::Normalize({0.5f, 0.5f}, {1.0f, 1.0f})(two, gen), std::invalid_argument);
}

TEST_CASE("affine (rotation, translation, scale, shear, fill) matches torchvision's F.affine") {
  struct Case {
    const char* tag;
    double angle, tx, ty, scale, shear_x, shear_y;
    float fill;
  };
  const Case cases[] = {{"a", 30.0, 2, -1, 1.2, 0, 0, 0.0f},
                        {"b", -45.0, 0, 0, 0.8, 0, 0, 0.0f},
                        {"c", 12.5, -1, 2, 1.0, 10.0, 5.0, 0.0f},
                        {"d", 90.0, 1, 1, 0.9, 0, 0, 17.0f}};
  float worst = 0.0f;
  for (const Case& k : cases)
    for (const char* name : {"gray", "rgb"}) {
      CAPTURE(k.tag);
      CAPTURE(name);
      const Tensor out = data::affine(golden(name), k.angle, {k.tx, k.ty}, k.scale, {k.shear_x, k.shear_y}, k.fill);
      const float err = max_abs_diff(out, golden(std::string("affine_") + k.tag + "_" + name));
      worst = std::max(worst, err);
      CHECK(err < 2e-3f);
    }
  MESSAGE("largest affine difference from torchvision: " << worst);
  // The identity leaves the image alone.
  CHECK(max_abs_diff(data::affine(golden("rgb"), 0.0, {0, 0}, 1.0), golden("rgb")) < 1e-4f);
}

TEST_CASE("random transforms are driven by the generator: same seed, same result") {
  const data::Compose augment({data::RandomAffine(10.0, {0.1, 0.1}, {0.9, 1.1}), data::RandomHorizontalFlip(0.5)});
  std::vector<Tensor> first;
  Generator g1(42), g2(42), g3(43);
  bool any_differs = false;
  for (int i = 0; i < 8; ++i) {
    Tensor a = golden("rgb"), b = golden("rgb"), c = golden("rgb");
    augment(a, g1);
    augment(b, g2);
    augment(c, g3);
    CHECK(a == b);
    any_differs = any_differs || !(a == c);
    CHECK(a.shape() == golden("rgb").shape());
  }
  CHECK(any_differs);

  // p = 1 always flips, p = 0 never does.
  Generator g(0);
  Tensor f = golden("rgb");
  data::RandomHorizontalFlip(1.0)(f, g);
  CHECK(f == golden("hflip_rgb"));
  data::RandomHorizontalFlip(0.0)(f, g);
  CHECK(f == golden("hflip_rgb"));

  // RandomAffine's parameters follow torchvision's draws: angle, tx, ty (rounded to whole pixels), scale.
  Generator sampler(7), replay(7);
  Tensor r = golden("gray");
  data::RandomAffine(20.0, {0.2, 0.3}, {0.8, 1.2})(r, sampler);
  const double angle = replay.uniform(-20.0, 20.0);
  const double tx = std::nearbyint(replay.uniform(-0.2 * 9, 0.2 * 9));
  const double ty = std::nearbyint(replay.uniform(-0.3 * 7, 0.3 * 7));
  const double scale = replay.uniform(0.8, 1.2);
  CHECK(r == data::affine(golden("gray"), angle, {tx, ty}, scale));

  CHECK_THROWS_AS(data::RandomAffine(-1.0), std::invalid_argument);
  CHECK_THROWS_AS(data::RandomAffine(5.0, {1.5, 0.0}), std::invalid_argument);
  CHECK_THROWS_AS(data::RandomAffine(5.0, {0.0, 0.0}, {1.2, 0.8}), std::invalid_argument);
  CHECK_THROWS_AS(data::RandomHorizontalFlip(2.0), std::invalid_argument);
}

TEST_CASE("Resize and CenterCrop transforms change the shape") {
  Generator gen(0);
  Tensor t = golden("gray");
  data::Compose({data::Resize(14, 18), data::CenterCrop(10, 10)})(t, gen);
  CHECK(t.shape() == Shape{1, 10, 10});
  Tensor u = golden("gray");
  data::Resize(3, 3, data::Interpolation::Area)(u, gen);
  CHECK(u == golden("resize_area_gray_3x3"));
}

// ---------------------------------------------------------------------------------------------------- DataLoader

namespace {

// n images 1 x 3 x 4 where every pixel of image i equals i, labels i % classes.
data::Dataset counting_dataset(std::int64_t n, std::int64_t classes = 5) {
  data::Dataset d;
  d.images = Tensor({n, 1, 3, 4});
  for (std::int64_t i = 0; i < n; ++i)
    std::fill(d.images.data() + i * 12, d.images.data() + (i + 1) * 12, static_cast<float>(i));
  for (std::int64_t i = 0; i < n; ++i) d.labels.push_back(i % classes);
  d.num_classes = classes;
  return d;
}

struct EpochRecord {
  std::vector<std::vector<std::int64_t>> indices, targets;
  std::vector<Tensor> inputs;
  bool operator==(const EpochRecord& o) const { return indices == o.indices && targets == o.targets && inputs == o.inputs; }
};

EpochRecord run_epoch(data::DataLoader& loader) {
  EpochRecord r;
  for (const data::Batch& b : loader) {
    r.indices.push_back(b.indices);
    r.targets.push_back(b.target);
    r.inputs.push_back(b.input);
  }
  return r;
}

}  // namespace

TEST_CASE("DataLoader batches in order, with the last batch partial or dropped") {
  const data::Dataset d = counting_dataset(10);
  for (bool prefetch : {true, false}) {
    CAPTURE(prefetch);
    data::DataLoader loader(d, {4, false, false, 0, prefetch});
    CHECK(loader.size() == 3);
    CHECK(loader.num_samples() == 10);
    std::vector<std::int64_t> sizes, seen;
    for (const data::Batch& b : loader) {
      sizes.push_back(b.size());
      CHECK(b.input.shape() == Shape{b.size(), 1, 3, 4});
      for (std::int64_t k = 0; k < b.size(); ++k) {
        CHECK(b.input.at({k, 0, 2, 3}) == float(b.indices[static_cast<std::size_t>(k)]));
        CHECK(b.target[static_cast<std::size_t>(k)] == b.indices[static_cast<std::size_t>(k)] % 5);
        seen.push_back(b.indices[static_cast<std::size_t>(k)]);
      }
    }
    CHECK(sizes == std::vector<std::int64_t>{4, 4, 2});
    std::vector<std::int64_t> expect(10);
    std::iota(expect.begin(), expect.end(), 0);
    CHECK(seen == expect);

    data::DataLoader dropping(d, {4, false, true, 0, prefetch});
    CHECK(dropping.size() == 2);
    CHECK(dropping.num_samples() == 8);
    std::int64_t batches = 0;
    for (const data::Batch& b : dropping) {
      CHECK(b.size() == 4);
      ++batches;
    }
    CHECK(batches == 2);
  }
  data::Dataset empty = counting_dataset(0);
  data::DataLoader none(empty, {3});
  CHECK(none.size() == 0);
  CHECK(none.begin() == none.end());
  CHECK_THROWS_AS(data::DataLoader(d, {0}), std::invalid_argument);
}

TEST_CASE("DataLoader shuffles with a new permutation every epoch, the same for the same seed") {
  const data::Dataset d = counting_dataset(50);
  data::DataLoader a(d, {8, true, false, 123});
  data::DataLoader b(d, {8, true, false, 123});
  data::DataLoader c(d, {8, true, false, 124});
  const EpochRecord a1 = run_epoch(a), a2 = run_epoch(a);
  CHECK(a.epoch() == 2);
  CHECK(run_epoch(b) == a1);
  CHECK(run_epoch(b) == a2);
  CHECK(!(a1 == a2));
  CHECK(!(run_epoch(c) == a1));
  std::vector<std::int64_t> all;
  for (const auto& idx : a1.indices) all.insert(all.end(), idx.begin(), idx.end());
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expect(50);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(all == expect);
  a.set_epoch(1);
  CHECK(run_epoch(a) == a2);
}

TEST_CASE("prefetching gives bit-identical batches to the single-threaded path, with random transforms") {
  const data::Dataset d = counting_dataset(37);
  data::Dataset textured = d;
  for (std::int64_t i = 0; i < textured.images.numel(); ++i) textured.images[i] = float((i * 37) % 256);
  const data::Compose augment({data::RandomAffine(15.0, {0.2, 0.2}, {0.8, 1.2}), data::RandomHorizontalFlip(),
                               data::ToUnit(), data::Normalize(0.5f, 0.5f)});
  data::DataLoader threaded(textured, {5, true, false, 9, true}, augment);
  data::DataLoader inline_(textured, {5, true, false, 9, false}, augment);
  for (int epoch = 0; epoch < 3; ++epoch) {
    const EpochRecord x = run_epoch(threaded), y = run_epoch(inline_);
    CHECK(x == y);
    CHECK(x.inputs.size() == 8);
  }
  // The augmentation really does something, and differs between epochs.
  data::DataLoader plain(textured, {5, true, false, 9, true});
  data::DataLoader again(textured, {5, true, false, 9, true}, augment);
  const EpochRecord p = run_epoch(plain), q = run_epoch(again), q2 = run_epoch(again);
  CHECK(p.indices == q.indices);
  CHECK(!(p.inputs == q.inputs));
  CHECK(!(q.inputs == q2.inputs));
}

TEST_CASE("breaking out early neither hangs nor shifts later epochs; buffers are reused") {
  const data::Dataset d = counting_dataset(40);
  const data::Compose augment({data::RandomAffine(10.0), data::RandomHorizontalFlip()});
  data::DataLoader broken(d, {4, true, false, 5, true}, augment);
  data::DataLoader full(d, {4, true, false, 5, true}, augment);
  int taken = 0;
  for (const data::Batch& b : broken) {
    (void)b;
    if (++taken == 2) break;
  }
  run_epoch(full);
  CHECK(run_epoch(broken) == run_epoch(full));
  {
    data::DataLoader dropped(d, {4, true, false, 5, true}, augment);
    auto it = dropped.begin();
    CHECK(it->size() == 4);
  }  // destroyed while the worker holds a finished batch: joins, no hang

  data::DataLoader reuse(d, {4, false, false, 0, true});
  std::set<const float*> buffers;
  for (int epoch = 0; epoch < 2; ++epoch)
    for (const data::Batch& b : reuse) buffers.insert(b.input.data());
  CHECK(buffers.size() <= 2);
}

TEST_CASE("an exception while preparing a batch reaches the consumer at that batch, in both modes") {
  const data::Dataset d = counting_dataset(20);
  const data::Transform failing = [](Tensor& image, Generator&) {
    if (image[0] == 13.0f) throw std::runtime_error("bad sample 13");
  };
  for (bool prefetch : {true, false}) {
    CAPTURE(prefetch);
    data::DataLoader loader(d, {4, false, false, 0, prefetch}, failing);
    std::int64_t delivered = 0;
    std::string what;
    try {
      for (const data::Batch& b : loader) delivered += b.size();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == "bad sample 13");
    CHECK(delivered == 12);  // batches 0..2 arrive, batch 3 (samples 12..15) fails
    // The loader stays usable.
    CHECK_THROWS_AS(run_epoch(loader), std::runtime_error);
  }
  // A transform that changes shapes inconsistently within a batch is a shape_error.
  const data::Transform ragged = [](Tensor& image, Generator&) {
    if (image[0] == 1.0f) image.resize({1, 2, 2});
  };
  data::DataLoader loader(d, {4, false, false, 0, true}, ragged);
  CHECK_THROWS_AS(run_epoch(loader), ember::shape_error);
}

TEST_CASE("num_workers: the same batches, bit for bit, for any number of workers") {
  data::Dataset textured = counting_dataset(45);
  for (std::int64_t i = 0; i < textured.images.numel(); ++i) textured.images[i] = float((i * 53) % 256);
  const data::Compose augment({data::RandomAffine(15.0, {0.2, 0.2}, {0.8, 1.2}), data::RandomHorizontalFlip(),
                               data::ToUnit(), data::Normalize(0.5f, 0.5f)});
  data::DataLoader reference(textured, {4, true, false, 3, false}, augment);
  const EpochRecord r1 = run_epoch(reference), r2 = run_epoch(reference);
  for (std::int64_t workers : {1, 2, 3, 7}) {
    CAPTURE(workers);
    data::DataLoader loader(textured, {4, true, false, 3, true, {}, workers}, augment);
    CHECK(run_epoch(loader) == r1);
    CHECK(run_epoch(loader) == r2);
    int taken = 0;  // an early break, then a fresh epoch: no hang, nothing shifted
    for (const data::Batch& b : loader) {
      (void)b;
      if (++taken == 3) break;
    }
    loader.set_epoch(1);
    CHECK(run_epoch(loader) == r2);
  }
  {
    data::DataLoader dropped(textured, {4, true, false, 3, true, {}, 3}, augment);
    CHECK(dropped.begin()->size() == 4);
  }  // destroyed mid-epoch with three workers: joins, no hang
}

TEST_CASE("num_workers: an exception in any worker reaches the consumer at its batch") {
  const data::Dataset d = counting_dataset(40);
  const data::Transform failing = [](Tensor& image, Generator&) {
    if (image[0] == 21.0f || image[0] == 33.0f) throw std::runtime_error("bad sample " + std::to_string(int(image[0])));
  };
  for (std::int64_t workers : {1, 2, 4}) {
    CAPTURE(workers);
    data::DataLoader loader(d, {4, false, false, 0, true, {}, workers}, failing);
    std::int64_t delivered = 0;
    std::string what;
    try {
      for (const data::Batch& b : loader) delivered += b.size();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    CHECK(what == "bad sample 21");
    CHECK(delivered == 20);
  }
}

namespace {

// A data set of its own kind: no images in memory, float targets, sample i all i.
struct Generated {
  using target_type = float;
  std::int64_t n = 0;
  std::int64_t size() const { return n; }
  void load(std::int64_t i, Tensor& image) const {
    image.resize({1, 2, 2});
    image.fill(static_cast<float>(i));
  }
  float target(std::int64_t i) const { return 0.5f * static_cast<float>(i); }
};

}  // namespace

TEST_CASE("DataLoaderT over any data set type: its target type comes from the data set; the sampler hook") {
  const Generated g{10};
  data::DataLoaderT<float> loader(g, {4, false, false, 0, true, {}, 2});
  CHECK(loader.dataset().size() == 10);
  CHECK(loader.dataset().num_classes == 0);
  std::vector<float> targets;
  for (const data::BatchT<float>& b : loader) {
    for (std::int64_t k = 0; k < b.size(); ++k) {
      CHECK(b.input.at({k, 0, 1, 1}) == float(b.indices[static_cast<std::size_t>(k)]));
      targets.push_back(b.target[static_cast<std::size_t>(k)]);
    }
  }
  CHECK(targets == std::vector<float>{0, 0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f, 4, 4.5f});
  static_assert(!std::is_constructible_v<data::DataLoader, const Generated&>, "float targets need DataLoaderT<float>");
  static_assert(!std::is_constructible_v<data::DataLoader, data::Dataset&&>, "a temporary data set would dangle");

  // The sampler selects from the epoch's permutation (here: its entries at even positions, reversed on odd
  // epochs), as a distributed sampler takes a rank's share.
  const data::Dataset d = counting_dataset(10);
  data::DataLoaderOptions o{2, true, false, 8};
  o.sampler.size = [](std::int64_t n) { return n / 2; };
  o.sampler.select = [](std::int64_t epoch, std::vector<std::int64_t>& order) {
    std::vector<std::int64_t> mine;
    for (std::size_t i = 0; i < order.size(); i += 2) mine.push_back(order[i]);
    if (epoch % 2) std::reverse(mine.begin(), mine.end());
    order = mine;
  };
  data::DataLoader sampled(d, o);
  CHECK(sampled.permutation(3) == sampled.permutation(3));
  CHECK(sampled.permutation(3) != sampled.permutation(4));
  CHECK(sampled.size() == 3);
  for (std::int64_t epoch = 0; epoch < 2; ++epoch) {
    std::vector<std::int64_t> want;
    const std::vector<std::int64_t> perm = sampled.permutation(epoch);
    for (std::size_t i = 0; i < perm.size(); i += 2) want.push_back(perm[i]);
    if (epoch % 2) std::reverse(want.begin(), want.end());
    std::vector<std::int64_t> seen;
    for (const auto& b : sampled) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    CHECK(seen == want);
    CHECK(sampled.order() == want);
  }
  o.sampler.size = [](std::int64_t) { return 4; };
  data::DataLoader lying(d, o);
  CHECK_THROWS_AS(lying.begin(), std::logic_error);
  o.sampler.size = [](std::int64_t) { return 1; };
  o.sampler.select = [](std::int64_t, std::vector<std::int64_t>& order) { order = {10}; };
  data::DataLoader outside(d, o);
  CHECK_THROWS_AS(outside.begin(), std::out_of_range);
  data::DataLoaderOptions negative;
  negative.num_workers = -1;
  CHECK_THROWS_AS(data::DataLoader(d, negative), std::invalid_argument);
}

TEST_CASE("readers quote file bytes escaped: a NUL or binary byte never cuts a message short") {
  CHECK(ember::escape_bytes(std::string("ab\0c\xff\n\\", 7)) == "ab\\x00c\\xff\\x0a\\\\");
  CHECK(ember::escape_bytes(std::string(50, 'x'), 40) == std::string(40, 'x') + "...");
  const std::string bin = tmp_path("binary.csv");
  write_file(bin, Bytes{'l', 'a', 0, 0x89, 'P', 'N', 'G', '\n', '1', ',', '2', '\n'});
  const std::string m = message_of<ember::format_error>([&] { data::load_sign_mnist(bin); });
  // Before: the message stopped at the NUL ("...got 'la").
  CHECK(m == bin + ": line 1: the header must start with 'label', got 'la\\x00\\x89PNG'");
  const std::string cell = tmp_path("cell.csv");
  write_file(cell, Bytes{'l', 'a', 'b', 'e', 'l', ',', 'p', 'i', 'x', 'e', 'l', '1', '\n', '1', ',', '2', 0, '3', '\n'});
  CHECK(contains(message_of<ember::format_error>([&] { data::load_sign_mnist(cell); }), "'2\\x003' is not a non-negative integer"));
}

// ---- Bad input (the policy: docs/robustness.md) ----------------------------------------------------------

namespace bad_input {

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

}  // namespace bad_input

// ---------------------------------------------------------------------------------------------------- ImageFolder

namespace {

namespace fs = std::filesystem;

// A w x h RGB image whose pixel (y, x) of channel c is (seed + 40 c + 9 y + 5 x) % 256.
Tensor pattern(std::int64_t h, std::int64_t w, int seed) {
  Tensor t({3, h, w});
  for (std::int64_t c = 0; c < 3; ++c)
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) t.at({c, y, x}) = float((seed + 40 * c + 9 * y + 5 * x) % 256);
  return t;
}

// root/a_cls: 1.jpg (the JPEG fixture), 2.PNG, notes.txt; root/b_cls: x.png, b_cls/sub/y.png, b_cls/sub-2/z.png;
// root/c_cls: only.Jpeg. Returns root.
std::string make_folder(const std::string& name) {
  const fs::path root = tmp_path(name);
  fs::remove_all(root);
  for (const char* d : {"a_cls", "b_cls/sub", "b_cls/sub-2", "c_cls"}) fs::create_directories(root / d);
  fs::copy_file(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg", root / "a_cls/1.jpg");
  ember::io::save_png((root / "a_cls/2.PNG").string(), pattern(10, 14, 1));
  write_file((root / "a_cls/notes.txt").string(), std::string("not an image"));
  ember::io::save_png((root / "b_cls/x.png").string(), pattern(6, 6, 2));
  ember::io::save_png((root / "b_cls/sub/y.png").string(), pattern(20, 5, 3));
  ember::io::save_png((root / "b_cls/sub-2/z.png").string(), pattern(3, 3, 4));
  fs::copy_file(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg", root / "c_cls/only.Jpeg");
  return root.string();
}

data::ImageFolderOptions folder_options(int channels, std::int64_t h, std::int64_t w) {
  data::ImageFolderOptions o;
  o.channels = channels;
  o.height = h;
  o.width = w;
  return o;
}

}  // namespace

TEST_CASE("ImageFolder: sorted classes, files in torchvision's order, extensions in any case") {
  const std::string root = make_folder("folder");
  const data::ImageFolder f(root, folder_options(3, 8, 8));
  CHECK(f.classes() == std::vector<std::string>{"a_cls", "b_cls", "c_cls"});
  CHECK(f.num_classes == 3);
  REQUIRE(f.size() == 6);
  // sorted(os.walk()): directories in the order of their path strings, files by name within each.
  const std::vector<std::string> rel = {"a_cls/1.jpg", "a_cls/2.PNG", "b_cls/x.png", "b_cls/sub/y.png",
                                        "b_cls/sub-2/z.png", "c_cls/only.Jpeg"};
  for (std::int64_t i = 0; i < f.size(); ++i) CHECK(f.path(i) == (fs::path(root) / rel[static_cast<std::size_t>(i)]).string());
  CHECK(f.targets() == std::vector<std::int64_t>{0, 0, 1, 1, 1, 2});
  CHECK(f.histogram() == std::vector<std::int64_t>{2, 3, 1});
  // Each sample: decoded as load_image would, then resized with antialiasing to 8 x 8.
  const Tensor raw = ember::io::load_image(f.path(1), 3);
  CHECK(raw == pattern(10, 14, 1));
  const Tensor got = f.get(1);
  CHECK(got.shape() == Shape{3, 8, 8});
  CHECK(got == ember::kernels::resize_antialias(raw, 8, 8));
  CHECK(f.get(0) == ember::io::load_image(f.path(0), 3));  // already 8 x 8: unchanged
  const data::ImageFolder gray(root, folder_options(1, 4, 4));
  CHECK(gray.get(3).shape() == Shape{1, 4, 4});

  // Resize-then-centre-crop: 20 x 5 -> covers 4 x 4 at 16 x 4, whose centre rows 6..9 are kept.
  data::ImageFolderOptions crop = folder_options(3, 4, 4);
  crop.fit = data::FitMode::ResizeCenterCrop;
  const data::ImageFolder cropped(root, crop);
  const Tensor tall = ember::kernels::resize_antialias(pattern(20, 5, 3), 16, 4);
  CHECK(cropped.get(3) == data::center_crop(tall, 4, 4));
}

TEST_CASE("ImageFolder in a DataLoader: any number of workers, cached or not, gives the same batches") {
  const std::string root = make_folder("folder_loader");
  const data::ImageFolder plain(root, folder_options(3, 8, 8));
  data::ImageFolderOptions cached_options = folder_options(3, 8, 8);
  cached_options.cache = true;
  const data::ImageFolder cached(root, cached_options);
  const data::Compose augment({data::RandomHorizontalFlip(), data::ToUnit(), data::Normalize({0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f})});
  auto epoch_of = [](auto& loader) {
    std::vector<Tensor> inputs;
    std::vector<std::int64_t> targets;
    for (const auto& b : loader) {
      inputs.push_back(b.input);
      targets.insert(targets.end(), b.target.begin(), b.target.end());
    }
    return std::make_pair(inputs, targets);
  };
  data::DataLoader reference(plain, {4, true, false, 11, false}, augment);
  const auto r = epoch_of(reference);
  CHECK(r.first.size() == 2);
  CHECK(r.first[0].shape() == Shape{4, 3, 8, 8});
  for (std::int64_t workers : {0, 1, 2, 3}) {
    CAPTURE(workers);
    data::DataLoader a(plain, {4, true, false, 11, true, {}, workers}, augment);
    data::DataLoader b(cached, {4, true, false, 11, true, {}, workers}, augment);
    CHECK(epoch_of(a) == r);
    CHECK(epoch_of(b) == r);
    b.set_epoch(0);
    CHECK(epoch_of(b) == r);  // from the cache now
  }
}

TEST_CASE("stratified_split: each class keeps its share, seeded; Subset iterates like the data set") {
  std::vector<std::int64_t> labels;
  for (int c = 0; c < 3; ++c) labels.insert(labels.end(), static_cast<std::size_t>(10 * (c + 1)), c);  // 10, 20, 30
  const data::SplitIndices s = data::stratified_split(labels, 3, 0.2, 5);
  CHECK(s.val.size() == 2 + 4 + 6);
  CHECK(s.train.size() == 8 + 16 + 24);
  std::vector<std::int64_t> all = s.train;
  all.insert(all.end(), s.val.begin(), s.val.end());
  std::sort(all.begin(), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i] == static_cast<std::int64_t>(i));
  CHECK(data::stratified_split(labels, 3, 0.2, 5).val == s.val);
  CHECK(data::stratified_split(labels, 3, 0.2, 6).val != s.val);
  // A class of two samples keeps one on each side, even for a small fraction.
  const data::SplitIndices tiny = data::stratified_split(std::vector<std::int64_t>{0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, 2, 0.1, 1);
  CHECK(tiny.val.size() == 2);

  const data::Dataset d = counting_dataset(30, 3);
  const data::SplitIndices ds = data::stratified_split(d, 0.5, 2);
  const data::Subset train(d, ds.train);
  CHECK(train.size() == 15);
  CHECK(train.histogram() == std::vector<std::int64_t>{5, 5, 5});
  data::DataLoader loader(train, {4, true, false, 1, true, {}, 2});
  std::int64_t seen = 0;
  for (const auto& b : loader)
    for (std::int64_t k = 0; k < b.size(); ++k) {
      const std::int64_t i = ds.train[static_cast<std::size_t>(b.indices[static_cast<std::size_t>(k)])];
      CHECK(b.input.at({k, 0, 0, 0}) == float(i));
      CHECK(b.target[static_cast<std::size_t>(k)] == i % 3);
      ++seen;
    }
  CHECK(seen == 15);
}

namespace bad_input {

TEST_CASE("ImageFolder: corrupt files named with their path (error or skip), empty classes, no classes") {
  const std::string root = make_folder("folder_bad");
  write_file((fs::path(root) / "b_cls/broken.png").string(), std::string("\x89PNG\r\n\x1a\nnot really"));
  const data::ImageFolder lazy(root, folder_options(3, 8, 8));
  CHECK(lazy.size() == 7);
  data::DataLoader loader(lazy, {2, false, false, 0, true, {}, 2});
  const std::string msg = message_of<ember::format_error>([&] {
    for (const auto& b : loader) (void)b;
  });
  CHECK(contains(msg, (fs::path(root) / "b_cls/broken.png").string()));
  data::ImageFolderOptions skip = folder_options(3, 8, 8);
  skip.on_error = data::OnBadImage::Skip;
  const data::ImageFolder skipping(root, skip);
  CHECK(skipping.size() == 6);
  CHECK(skipping.skipped() == 1);
  CHECK(contains(skipping.skipped_files()[0], "broken.png"));
  data::DataLoader fine(skipping, {2, false, false, 0, true, {}, 2});
  std::int64_t n = 0;
  for (const auto& b : fine) n += b.size();
  CHECK(n == 6);

  // A class folder with no images, a root without class folders, a missing root, bad options.
  fs::create_directories(fs::path(root) / "d_empty");
  write_file((fs::path(root) / "d_empty/readme.md").string(), std::string("x"));
  CHECK(contains(message_of<ember::io_error>([&] { data::ImageFolder(root, folder_options(3, 8, 8)); }),
                 "the class folder 'd_empty' holds no image"));
  fs::remove_all(fs::path(root) / "d_empty");
  const std::string flat = tmp_path("folder_flat");
  fs::remove_all(flat);
  fs::create_directories(flat);
  ember::io::save_png(flat + "/img.png", pattern(4, 4, 0));
  CHECK(contains(message_of<ember::io_error>([&] { data::ImageFolder(flat, folder_options(3, 8, 8)); }),
                 "found no class folder"));
  CHECK(contains(message_of<ember::io_error>([&] { data::ImageFolder(flat + "/nowhere", folder_options(3, 8, 8)); }),
                 "does not exist"));
  CHECK_THROWS_AS(data::ImageFolder(root, folder_options(2, 8, 8)), std::invalid_argument);
  CHECK_THROWS_AS(data::ImageFolder(root, folder_options(3, 0, 8)), std::invalid_argument);
  // Every file of a class unreadable, in skip mode: that class is empty, a clear error.
  const std::string allbad = make_folder("folder_allbad");
  fs::remove(fs::path(allbad) / "c_cls/only.Jpeg");
  write_file((fs::path(allbad) / "c_cls/cmyk.jpg").string(), std::string("\xFF\xD8\xFF\xD9"));
  CHECK(contains(message_of<ember::io_error>([&] { data::ImageFolder(allbad, skip); }),
                 "'c_cls' holds no readable image"));
  const data::Dataset three = counting_dataset(3);
  CHECK_THROWS_AS(data::Subset<data::Dataset>(three, {0, 5}), std::out_of_range);
  CHECK_THROWS_AS(data::stratified_split(std::vector<std::int64_t>{0, 3}, 2, 0.5, 1), std::invalid_argument);
  CHECK_THROWS_AS(data::stratified_split(std::vector<std::int64_t>{0, 1}, 2, 1.5, 1), std::invalid_argument);
}

}  // namespace bad_input

// ---------------------------------------------------------------------------------------------------- Photographs

namespace {

// tests/fixtures/transforms_color.txt (make_color_fixtures.py: torchvision's formulas with torch, and PIL).
const Tensor& color_golden(const std::string& name) {
  static const std::map<std::string, Tensor> table = [] {
    std::map<std::string, Tensor> out;
    for (const auto& [n, t] : fixture::load("transforms_color.txt")) out.emplace(n, t.cast<float>());
    return out;
  }();
  const auto it = table.find(name);
  REQUIRE_MESSAGE(it != table.end(), "no golden " << name);
  return it->second;
}

}  // namespace

TEST_CASE("antialiased resize and resized_crop match torch's F.interpolate(antialias=True) and PIL") {
  const Tensor& rgb = color_golden("rgb");
  const Tensor& gray = color_golden("gray");
  float worst = 0.0f;
  for (const auto& [h, w] : std::vector<std::pair<int, int>>{{5, 4}, {3, 7}, {13, 5}, {16, 14}}) {
    const Tensor got = ember::kernels::resize_antialias(rgb, h, w);
    worst = std::max(worst, max_abs_diff(got, color_golden("resize_aa_rgb_" + std::to_string(h) + "x" + std::to_string(w))));
    Tensor via_transform = rgb;
    Generator gen(1);
    data::Resize(h, w, data::Interpolation::Bilinear, true)(via_transform, gen);
    CHECK(via_transform == got);
  }
  for (const auto& [h, w] : std::vector<std::pair<int, int>>{{4, 5}, {9, 3}})
    worst = std::max(worst, max_abs_diff(ember::kernels::resize_antialias(gray, h, w),
                                         color_golden("resize_aa_gray_" + std::to_string(h) + "x" + std::to_string(w))));
  const std::vector<std::array<int, 6>> crops = {{2, 1, 9, 8, 4, 4}, {0, 3, 13, 6, 7, 9}, {5, 0, 4, 11, 3, 3}};
  for (const auto& c : crops) {
    std::string name = "resized_crop";
    for (int k = 0; k < 4; ++k) name += "_" + std::to_string(c[static_cast<std::size_t>(k)]);
    name += "_" + std::to_string(c[4]) + "x" + std::to_string(c[5]);
    worst = std::max(worst, max_abs_diff(data::resized_crop(rgb, c[0], c[1], c[2], c[3], c[4], c[5]), color_golden(name)));
  }
  MESSAGE("largest antialiased resize difference from torch: " << worst);
  CHECK(worst < 1e-3f);
}

TEST_CASE("brightness, contrast and saturation match torchvision's formulas (0..255, bound 255)") {
  const Tensor& rgb = color_golden("rgb");
  const Tensor& gray = color_golden("gray");
  float worst = 0.0f;
  for (const auto& [f, tag] : std::vector<std::pair<float, std::string>>{{0.4f, "0p4"}, {1.7f, "1p7"}}) {
    Tensor b = rgb, c = rgb, s = rgb, g = gray, g2 = gray;
    data::adjust_brightness(b, f);
    data::adjust_contrast(c, f);
    data::adjust_saturation(s, f);
    data::adjust_contrast(g, f);
    data::adjust_saturation(g2, f);
    worst = std::max({worst, max_abs_diff(b, color_golden("brightness_" + tag)),
                      max_abs_diff(c, color_golden("contrast_" + tag)), max_abs_diff(s, color_golden("saturation_" + tag)),
                      max_abs_diff(g, color_golden("contrast_gray_" + tag))});
    CHECK(g2 == gray);  // one channel: nothing to saturate, as torchvision
  }
  MESSAGE("largest colour adjustment difference from torchvision's formulas: " << worst);
  CHECK(worst < 2e-3f);
}

TEST_CASE("RandomResizedCrop and ColorJitter: seeded, torchvision's parameter ranges, random order per call") {
  const Tensor& rgb = color_golden("rgb");  // 3 x 13 x 11
  const data::RandomResizedCrop rrc(8, 6, {0.3, 0.6}, {0.5, 2.0});
  Generator g1(4), g2(4);
  for (int k = 0; k < 50; ++k) {
    const auto win = rrc.window(13, 11, g1);
    CHECK(win[2] >= 1);
    CHECK(win[0] + win[2] <= 13);
    CHECK(win[1] + win[3] <= 11);
    const double area = double(win[2] * win[3]) / (13.0 * 11.0);
    CHECK(area > 0.2);  // 0.3..0.6 before rounding the sides
    CHECK(area < 0.75);
  }
  Tensor a = rgb, b = rgb;
  rrc(a, g2);
  CHECK(a.shape() == Shape{3, 8, 6});
  Generator g3(4);
  const auto win = rrc.window(13, 11, g3);
  CHECK(a == data::resized_crop(rgb, win[0], win[1], win[2], win[3], 8, 6));
  // No window can fit a thin image with ratio in [3/4, 4/3]: the centre crop of the clamped ratio.
  Generator g4(1);
  CHECK(data::RandomResizedCrop(4, 4).window(1, 400, g4) == std::array<std::int64_t, 4>{0, 199, 1, 1});

  // ColorJitter: draws a permutation, then the enabled factors; one of the six orders each call.
  const data::ColorJitter jitter(0.5f, 0.5f, 0.5f);
  std::set<std::vector<float>> outcomes;
  Generator gj(9), gk(9);
  for (int k = 0; k < 30; ++k) {
    Tensor x = rgb;
    jitter(x, gj);
    CHECK(std::all_of(x.begin(), x.end(), [](float v) { return v >= 0.0f && v <= 255.0f; }));
    // Redo the call by hand from the same generator state: a permutation of torchvision's four adjustments
    // (hue, the fourth, is off here), then the enabled factors.
    std::array<int, 4> order = {0, 1, 2, 3};
    gk.shuffle(order.begin(), order.end());
    float f[3];
    for (float& v : f) v = static_cast<float>(gk.uniform(0.5, 1.5));
    Tensor y = rgb;
    std::vector<float> used;
    for (int o : order) {
      if (o == 0) data::adjust_brightness(y, f[0]);
      if (o == 1) data::adjust_contrast(y, f[1]);
      if (o == 2) data::adjust_saturation(y, f[2]);
      if (o != 3) used.push_back(static_cast<float>(o));
    }
    CHECK(x == y);
    outcomes.insert(used);
  }
  CHECK(outcomes.size() == 6);
  Tensor unchanged = rgb;
  Generator gz(3);
  data::ColorJitter()(unchanged, gz);
  CHECK(unchanged == rgb);
  CHECK_THROWS_AS(data::ColorJitter(-0.1f), std::invalid_argument);
  CHECK_THROWS_AS(data::RandomResizedCrop(4, 4, {0.5, 0.1}), std::invalid_argument);
  CHECK_THROWS_AS(data::resized_crop(rgb, 10, 0, 5, 5, 4, 4), std::invalid_argument);
  Tensor two({2, 3, 3});
  CHECK_THROWS_AS(jitter(two, gz), ember::shape_error);
}

namespace {
Tensor from_values(Shape shape, const std::vector<float>& v) {
  Tensor t(shape);
  REQUIRE(static_cast<std::size_t>(t.numel()) == v.size());
  std::copy(v.begin(), v.end(), t.begin());
  return t;
}
void check_close(const Tensor& got, const std::vector<float>& want, float tol) {
  REQUIRE(static_cast<std::size_t>(got.numel()) == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[static_cast<std::int64_t>(i)] == doctest::Approx(want[i]).epsilon(tol));
}
Tensor ramp_1x4x5() {  // 10, 20, ..., 200
  Tensor t({1, 4, 5});
  for (std::int64_t i = 0; i < 20; ++i) t[i] = 10.0f * static_cast<float>(i + 1);
  return t;
}
}  // namespace

TEST_CASE("vflip and RandomVerticalFlip: rows reversed per channel, with probability p") {
  Tensor x = from_values({2, 3, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  data::vflip(x);
  CHECK(x == from_values({2, 3, 2}, {5, 6, 3, 4, 1, 2, 11, 12, 9, 10, 7, 8}));
  Generator gen(5);
  int flipped = 0;
  const Tensor orig = from_values({1, 2, 1}, {1, 2});
  for (int k = 0; k < 4000; ++k) {
    Tensor y = orig;
    data::RandomVerticalFlip()(y, gen);
    flipped += y[0] == 2.0f;
  }
  CHECK(flipped / 4000.0 == doctest::Approx(0.5).epsilon(0.05));
  Tensor y = orig;
  data::RandomVerticalFlip(0.0)(y, gen);
  CHECK(y == orig);
  data::RandomVerticalFlip(1.0)(y, gen);
  CHECK(y[0] == 2.0f);
  CHECK_THROWS_AS(data::RandomVerticalFlip(1.5), std::invalid_argument);
}

TEST_CASE("gaussian_blur matches torch's conv2d of torchvision's kernel with reflect padding") {
  Tensor img({1, 4, 5});
  for (std::int64_t i = 0; i < 20; ++i) img[i] = static_cast<float>((i * 7) % 11);
  // torchvision's _get_gaussian_kernel1d, outer product, F.pad(reflect), F.conv2d (tests/ comment: /usr/bin/python3).
  Tensor a = img;
  data::gaussian_blur(a, 3, 3, 0.8f, 0.8f);
  check_close(a, {4.301897f, 5.327041f, 5.328313f, 5.582370f, 6.354729f, 4.089318f, 4.998729f, 5.000000f, 5.001273f,
                  5.910683f, 3.344648f, 4.001273f, 4.999364f, 5.000637f, 5.281745f, 3.132069f, 3.672960f, 5.415087f,
                  5.300625f, 4.700648f}, 1e-5f);
  Tensor b = img;
  data::gaussian_blur(b, 5, 3, 1.5f, 0.7f);
  check_close(b, {4.832615f, 5.072042f, 5.332785f, 6.005665f, 5.832955f, 4.917083f, 4.793731f, 5.000000f, 5.206268f,
                  5.082917f, 3.927142f, 3.882536f, 4.689511f, 4.950253f, 5.332246f, 4.011610f, 4.095109f, 4.821954f,
                  4.879667f, 5.300393f}, 1e-5f);
  // GaussianBlur draws one sigma uniform in its range per call and blurs both axes with it.
  Generator g1(7), g2(7);
  const data::GaussianBlur blur(3, {0.5f, 1.5f});
  Tensor c = img, d = img;
  blur(c, g1);
  const float sigma = static_cast<float>(g2.uniform(0.5, 1.5));
  CHECK(sigma >= 0.5f);
  data::gaussian_blur(d, 3, 3, sigma, sigma);
  CHECK(c == d);
  Tensor e = img, f = img;
  data::GaussianBlur(3, 0.8f)(e, g1);
  CHECK(e == a);
  CHECK_THROWS_AS(data::GaussianBlur(4), std::invalid_argument);
  CHECK_THROWS_AS(data::GaussianBlur(3, {2.0f, 1.0f}), std::invalid_argument);
  CHECK_THROWS_AS(data::gaussian_blur(f, 11, 3, 1.0f, 1.0f), std::invalid_argument);  // pad 5 >= width 5, as torch
}

TEST_CASE("adjust_hue matches torchvision's HSV round trip; ColorJitter draws the hue shift in [-hue, hue]") {
  const Tensor rgb = from_values({3, 1, 5}, {200, 10, 30, 90, 50, 40, 220, 30, 90, 100, 90, 60, 250, 90, 25});
  Tensor a = rgb;
  data::adjust_hue(a, 0.25f);
  check_close(a, {170.0f, 10.0f, 250.0f, 90.0f, 25.0f, 200.0f, 65.0f, 30.0f, 90.0f, 87.5f, 40.0f, 220.0f, 140.0f, 90.0f, 100.0f},
              1e-4f);
  Tensor b = rgb;
  data::adjust_hue(b, -0.4f);
  check_close(b, {40.0f, 220.0f, 118.0f, 90.0f, 100.0f, 154.0f, 10.0f, 250.0f, 90.0f, 25.0f, 200.0f, 44.0f, 30.0f, 90.0f, 80.0f},
              1e-4f);
  Tensor gray = from_values({1, 1, 2}, {3, 4});
  data::adjust_hue(gray, 0.5f);
  CHECK(gray == from_values({1, 1, 2}, {3, 4}));
  CHECK_THROWS_AS(data::adjust_hue(a, 0.6f), std::invalid_argument);
  CHECK_THROWS_AS(data::ColorJitter(0.0f, 0.0f, 0.0f, 0.7f), std::invalid_argument);
  // Hue alone: the permutation of four, then the shift.
  Generator g1(11), g2(11);
  double lo = 1, hi = -1;
  for (int k = 0; k < 200; ++k) {
    Tensor x = rgb, y = rgb;
    data::ColorJitter(0.0f, 0.0f, 0.0f, 0.3f)(x, g1);
    std::array<int, 4> order = {0, 1, 2, 3};
    g2.shuffle(order.begin(), order.end());
    const double f = g2.uniform(-0.3f, 0.3f);  // the float member, widened
    lo = std::min(lo, f), hi = std::max(hi, f);
    data::adjust_hue(y, static_cast<float>(f));
    CHECK(x == y);
  }
  CHECK(lo < -0.25);
  CHECK(hi > 0.25);
}

TEST_CASE("RandomErasing: torchvision's window (area, ratio, strictly inside), value per channel, probability p") {
  const data::RandomErasing erasing(1.0, {0.02, 0.33}, {0.3, 3.3}, {-1.0f, -2.0f});
  Generator gen(21);
  for (int k = 0; k < 200; ++k) {
    Tensor x({2, 20, 30});
    x.fill(5.0f);
    Generator copy = gen;
    erasing(x, gen);
    copy.uniform();  // the p draw
    const auto win = erasing.window(20, 30, copy);
    REQUIRE(win[2] > 0);
    CHECK(win[2] < 20);
    CHECK(win[3] < 30);
    const double area = double(win[2] * win[3]) / 600.0;
    CHECK(area > 0.01);
    CHECK(area < 0.40);
    std::int64_t erased[2] = {0, 0};
    for (std::int64_t ch = 0; ch < 2; ++ch)
      for (std::int64_t y = 0; y < 20; ++y)
        for (std::int64_t xx = 0; xx < 30; ++xx) {
          const float v = x[(ch * 20 + y) * 30 + xx];
          const bool in = y >= win[0] && y < win[0] + win[2] && xx >= win[1] && xx < win[1] + win[3];
          CHECK(v == (in ? (ch == 0 ? -1.0f : -2.0f) : 5.0f));
          erased[ch] += in;
        }
    CHECK(erased[0] == win[2] * win[3]);
  }
  int hits = 0;
  for (int k = 0; k < 2000; ++k) {
    Tensor x({1, 10, 10});
    x.fill(1.0f);
    data::RandomErasing()(x, gen);
    hits += std::any_of(x.begin(), x.end(), [](float v) { return v == 0.0f; });
  }
  CHECK(hits / 2000.0 == doctest::Approx(0.5).epsilon(0.08));
  CHECK_THROWS_AS(data::RandomErasing(1.2), std::invalid_argument);
  Tensor three({3, 4, 4});
  CHECK_THROWS_AS(data::erase(three, 0, 0, 2, 2, {1.0f, 2.0f}), std::invalid_argument);
}

TEST_CASE("auto-augment ops: torchvision's affine ops (nearest, corner pivot), posterize, solarize, autocontrast, equalize") {
  using data::AugmentOp;
  auto op = [](AugmentOp o, double m) {
    Tensor x = ramp_1x4x5();
    data::apply_augment_op(x, o, m);
    return x;
  };
  // F.affine / F.rotate with NEAREST (torch's affine grid and grid_sample, fill None).
  CHECK(op(AugmentOp::ShearX, 0.5) == from_values({1, 4, 5}, {10, 20, 30, 40, 50, 70, 80, 90, 100, 0, 120, 130, 140,
                                                                150, 0, 180, 190, 200, 0, 0}));
  CHECK(op(AugmentOp::ShearY, -0.3) == from_values({1, 4, 5}, {10, 20, 0, 0, 0, 60, 70, 30, 40, 50, 110, 120, 80, 90,
                                                                 100, 160, 170, 130, 140, 150}));
  CHECK(op(AugmentOp::Rotate, 30.0) == from_values({1, 4, 5}, {0, 30, 40, 100, 100, 20, 70, 80, 140, 150, 60, 70, 130,
                                                                 140, 190, 110, 110, 170, 180, 0}));
  CHECK(op(AugmentOp::TranslateX, 2.7) == from_values({1, 4, 5}, {0, 0, 10, 20, 30, 0, 0, 60, 70, 80, 0, 0, 110, 120,
                                                                   130, 0, 0, 160, 170, 180}));
  CHECK(op(AugmentOp::Identity, 3.0) == ramp_1x4x5());
  CHECK_THROWS_AS(data::affine(ramp_1x4x5(), 10.0, {0.0, 0.0}, 1.0, {0.0, 0.0}, 0.0f, data::Interpolation::Area),
                  std::invalid_argument);
  // Nearest resize as F.interpolate(mode='nearest'): source floor(o * in / out).
  Tensor grid({1, 3, 5});
  std::iota(grid.begin(), grid.end(), 0.0f);
  CHECK(data::resize(grid, 2, 7, data::Interpolation::Nearest) ==
        from_values({1, 2, 7}, {0, 0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 7, 8, 9}));
  CHECK(data::resize(grid, 5, 3, data::Interpolation::Nearest) ==
        from_values({1, 5, 3}, {0, 1, 3, 0, 1, 3, 5, 6, 8, 5, 6, 8, 10, 11, 13}));
  // Posterize keeps the top bits of the integer part; solarize inverts from the threshold up.
  Tensor p = from_values({1, 1, 4}, {200.0f, 63.7f, 64.2f, 255.0f});
  data::posterize(p, 2);
  CHECK(p == from_values({1, 1, 4}, {192, 0, 64, 192}));
  Tensor s = from_values({1, 1, 3}, {200, 100, 128});
  data::solarize(s, 128.0f);
  CHECK(s == from_values({1, 1, 3}, {55, 100, 127}));
  Tensor ac = from_values({2, 1, 3}, {50, 100, 150, 7, 7, 7});
  data::autocontrast(ac);
  CHECK(ac == from_values({2, 1, 3}, {0, 127.5f, 255, 7, 7, 7}));
  // Sharpness 0 is the smoothing kernel inside, the border as it was.
  Tensor sh = from_values({1, 3, 3}, {0, 0, 0, 0, 13, 0, 0, 0, 26});
  data::adjust_sharpness(sh, 0.0f);
  CHECK(sh == from_values({1, 3, 3}, {0, 0, 0, 0, (13.0f * 5 + 26) / 13.0f, 0, 0, 0, 26}));
  // Equalize as torchvision's _scale_channel (a golden from its code in torch).
  Tensor eq({1, 20, 20});
  for (std::int64_t i = 0; i < 400; ++i) eq[i] = static_cast<float>(((i * i * 7 + 3 * i) % 181) / 2 + 20) + 0.4f;
  data::equalize(eq);
  CHECK(std::accumulate(eq.begin(), eq.end(), 0.0) == 68637.0);
  CHECK(from_values({1, 1, 10}, std::vector<float>(eq.begin(), eq.begin() + 10)) ==
        from_values({1, 1, 10}, {0, 33, 79, 156, 255, 24, 187, 10, 239, 105}));
}

TEST_CASE("TrivialAugmentWide and RandAugment: torchvision's magnitude tables, draws and value range") {
  using data::AugmentOp;
  namespace dd = data::detail;
  // RandAugment(magnitude 9 of 31): linspace(0, hi, 31)[9].
  CHECK(dd::op_magnitude(AugmentOp::ShearX, 9, 31, false, 32, 331).value == doctest::Approx(0.09));
  CHECK(dd::op_magnitude(AugmentOp::TranslateX, 9, 31, false, 32, 331).value == doctest::Approx(45.0));
  CHECK(dd::op_magnitude(AugmentOp::TranslateY, 9, 31, false, 331, 32).value == doctest::Approx(45.0));
  CHECK(dd::op_magnitude(AugmentOp::Rotate, 9, 31, false, 32, 32).value == doctest::Approx(9.0));
  CHECK(dd::op_magnitude(AugmentOp::Brightness, 9, 31, false, 32, 32).value == doctest::Approx(0.27));
  CHECK(dd::op_magnitude(AugmentOp::Posterize, 9, 31, false, 32, 32).value == 7.0);
  CHECK(dd::op_magnitude(AugmentOp::Solarize, 9, 31, false, 32, 32).value == doctest::Approx(178.5));
  CHECK_FALSE(dd::op_magnitude(AugmentOp::Solarize, 9, 31, false, 32, 32).is_signed);
  // TrivialAugmentWide's wide table, last bin.
  CHECK(dd::op_magnitude(AugmentOp::Rotate, 30, 31, true, 32, 32).value == doctest::Approx(135.0));
  CHECK(dd::op_magnitude(AugmentOp::TranslateX, 30, 31, true, 32, 32).value == doctest::Approx(32.0));
  CHECK(dd::op_magnitude(AugmentOp::ShearY, 30, 31, true, 32, 32).value == doctest::Approx(0.99));
  CHECK(dd::op_magnitude(AugmentOp::Posterize, 30, 31, true, 32, 32).value == 2.0);
  CHECK_FALSE(dd::op_magnitude(AugmentOp::Equalize, 0, 31, true, 32, 32).has_bins);

  Tensor img({3, 16, 16});
  Generator src(2);
  for (float& v : img) v = static_cast<float>(src.randint(256));
  // RandAugment: op, then the sign for signed ops, num_ops times; redone by hand from the same state.
  Generator g1(13), g2(13);
  const data::RandAugment ra;
  std::set<int> ops_seen;
  for (int k = 0; k < 100; ++k) {
    Tensor x = img, y = img;
    ra(x, g1);
    for (int i = 0; i < 2; ++i) {
      const auto o = static_cast<AugmentOp>(g2.randint(14));
      ops_seen.insert(static_cast<int>(o));
      auto m = dd::op_magnitude(o, 9, 31, false, 16, 16);
      if (m.is_signed && g2.randint(2) == 1) m.value = -m.value;
      data::apply_augment_op(y, o, m.value);
    }
    CHECK(x == y);
    CHECK(std::all_of(x.begin(), x.end(), [](float v) { return v >= 0.0f && v <= 255.0f; }));
  }
  CHECK(ops_seen.size() == 14);
  // TrivialAugmentWide: one op and a uniform bin (only for ops with bins).
  Generator g3(17), g4(17);
  const data::TrivialAugmentWide ta;
  int changed = 0;
  for (int k = 0; k < 100; ++k) {
    Tensor x = img, y = img;
    ta(x, g3);
    const auto o = static_cast<AugmentOp>(g4.randint(14));
    auto m = dd::op_magnitude(o, 0, 31, true, 16, 16);
    if (m.has_bins) m = dd::op_magnitude(o, static_cast<std::int64_t>(g4.randint(31)), 31, true, 16, 16);
    if (m.is_signed && g4.randint(2) == 1) m.value = -m.value;
    data::apply_augment_op(y, o, m.value);
    CHECK(x == y);
    changed += !(x == img);
    CHECK(std::all_of(x.begin(), x.end(), [](float v) { return v >= 0.0f && v <= 255.0f; }));
  }
  CHECK(changed > 70);
  CHECK_THROWS_AS(data::RandAugment(2, 31), std::invalid_argument);
  CHECK_THROWS_AS(data::TrivialAugmentWide(0), std::invalid_argument);
}

TEST_CASE("WeightedRandomSampler in a DataLoader: class frequencies follow the weights, seeded per epoch") {
  data::Dataset ds;
  ds.images = Tensor({100, 1, 1, 1});
  for (std::int64_t i = 0; i < 100; ++i) {
    ds.images[i] = static_cast<float>(i);
    ds.labels.push_back(i < 90 ? 0 : 1);  // 90 of class 0, 10 of class 1
  }
  ds.num_classes = 2;
  // Balanced: each class drawn half of the time although class 1 holds a tenth of the samples.
  const data::WeightedRandomSampler balanced(data::class_balanced_weights(ds.labels), 20000, true, 3);
  data::DataLoader loader(ds, data::DataLoaderOptions{}.with_batch_size(500).with_sampler(balanced.index_sampler()));
  CHECK(loader.num_samples() == 20000);
  CHECK(loader.size() == 40);
  std::int64_t ones = 0, n = 0;
  std::vector<std::int64_t> per_index(100, 0);
  for (const auto& batch : loader) {
    for (std::size_t k = 0; k < batch.target.size(); ++k) {
      ones += batch.target[k];
      ++per_index[static_cast<std::size_t>(batch.indices[k])];
      CHECK(batch.input[static_cast<std::int64_t>(k)] == static_cast<float>(batch.indices[k]));
    }
    n += batch.size();
  }
  CHECK(n == 20000);
  CHECK(ones / 20000.0 == doctest::Approx(0.5).epsilon(0.04));
  // Within a class, uniform: class 1's ten samples about 1000 each (binomial sd ~ 30).
  for (std::size_t i = 90; i < 100; ++i) CHECK(std::abs(per_index[i] - 1000) < 150);
  // Arbitrary weights: index i drawn with probability w_i / sum w.
  std::vector<double> w(100, 0.0);
  w[3] = 1.0, w[50] = 3.0, w[99] = 6.0;
  const data::WeightedRandomSampler three(w, 30000, true, 8);
  const auto draws = three.sample(0);
  std::map<std::int64_t, std::int64_t> count;
  for (auto i : draws) ++count[i];
  CHECK(count.size() == 3);
  CHECK(count[3] / 30000.0 == doctest::Approx(0.1).epsilon(0.06));
  CHECK(count[50] / 30000.0 == doctest::Approx(0.3).epsilon(0.03));
  CHECK(count[99] / 30000.0 == doctest::Approx(0.6).epsilon(0.02));
  // Seeded per epoch: the same epoch repeats, the next one differs.
  CHECK(three.sample(1) == three.sample(1));
  CHECK(three.sample(1) != draws);
  // Without replacement: every positive index once at most.
  const data::WeightedRandomSampler once(data::class_balanced_weights(ds.labels), 100, false, 1);
  auto all = once.sample(0);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> expect(100);
  std::iota(expect.begin(), expect.end(), 0);
  CHECK(all == expect);
  // Without replacement the heavy indices come first more often: class 1's share of the first 20 draws.
  std::int64_t early_ones = 0;
  for (std::int64_t e = 0; e < 200; ++e) {
    const auto d = once.sample(e);
    for (int k = 0; k < 20; ++k) early_ones += ds.labels[static_cast<std::size_t>(d[static_cast<std::size_t>(k)])];
  }
  CHECK(early_ones / 4000.0 > 0.25);  // uniform weights would give 0.1
  CHECK_THROWS_AS(data::WeightedRandomSampler({1.0, -1.0}, 2), std::invalid_argument);
  CHECK_THROWS_AS(data::WeightedRandomSampler({0.0, 0.0}, 2), std::invalid_argument);
  CHECK_THROWS_AS(data::WeightedRandomSampler({1.0, 0.0}, 2, false), std::invalid_argument);
  const data::WeightedRandomSampler wrong({1.0, 2.0}, 4);
  data::DataLoader bad(ds, data::DataLoaderOptions{}.with_sampler(wrong.index_sampler()));
  CHECK_THROWS_AS(bad.begin(), std::invalid_argument);
}

TEST_CASE("DataLoaderOptions: named setters set the fields aggregate initialisation sets") {
  const data::DataLoaderOptions a{16, true, true, 7, false, {}, 2};
  const auto b = data::DataLoaderOptions{}.with_batch_size(16).with_shuffle(true).with_drop_last(true).with_seed(7)
                     .with_prefetch(false).with_num_workers(2);
  CHECK(a.batch_size == b.batch_size);
  CHECK(a.shuffle == b.shuffle);
  CHECK(a.drop_last == b.drop_last);
  CHECK(a.seed == b.seed);
  CHECK(a.prefetch == b.prefetch);
  CHECK(a.num_workers == b.num_workers);
  CHECK(b.batch_size == 16);
  CHECK(b.num_workers == 2);
  CHECK_FALSE(static_cast<bool>(b.sampler.select));
}

namespace {
data::Batch constant_batch(const std::vector<std::int64_t>& labels, std::int64_t h, std::int64_t w) {
  data::Batch b;
  const auto n = static_cast<std::int64_t>(labels.size());
  b.input = Tensor({n, 2, h, w});
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < 2 * h * w; ++k) b.input[i * 2 * h * w + k] = static_cast<float>(10 * (i + 1) + k % 2);
  b.target = labels;
  for (std::int64_t i = 0; i < n; ++i) b.indices.push_back(i);
  return b;
}
}  // namespace

TEST_CASE("MixUp: lam ~ Beta(alpha, alpha) mixes each sample with the previous one, inputs and targets alike") {
  const data::Batch in = constant_batch({0, 1, 2, 1}, 2, 3);
  data::MixedBatch out;
  Generator gen(4), copy(4);
  data::MixUp(0.4, 3)(in, out, gen);
  const double lam = data::detail::sample_beta(0.4, 0.4, copy);
  CHECK(out.input.shape() == in.input.shape());
  CHECK(out.target.shape() == Shape{4, 3});
  CHECK(out.size() == 4);
  for (std::int64_t i = 0; i < 4; ++i) {
    const std::int64_t prev = (i + 3) % 4;
    for (std::int64_t k = 0; k < 12; ++k)
      CHECK(out.input[i * 12 + k] == doctest::Approx(lam * in.input[i * 12 + k] + (1 - lam) * in.input[prev * 12 + k]));
    double row = 0;
    for (std::int64_t c = 0; c < 3; ++c) {
      const double want = (in.target[static_cast<std::size_t>(i)] == c ? lam : 0.0) +
                          (in.target[static_cast<std::size_t>(prev)] == c ? 1 - lam : 0.0);
      CHECK(out.target[i * 3 + c] == doctest::Approx(want));
      row += out.target[i * 3 + c];
    }
    CHECK(row == doctest::Approx(1.0));
  }
  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)), for a < 1 (U-shaped) and a > 1.
  for (double a : {0.2, 1.0, 3.0}) {
    CAPTURE(a);
    Generator g(9);
    double s = 0, s2 = 0;
    const int n = 20000;
    for (int k = 0; k < n; ++k) {
      const double x = data::detail::sample_beta(a, a, g);
      CHECK((x >= 0.0 && x <= 1.0));
      s += x, s2 += x * x;
    }
    const double mean = s / n, var = s2 / n - mean * mean;
    CHECK(mean == doctest::Approx(0.5).epsilon(0.02));
    CHECK(var == doctest::Approx(1.0 / (4.0 * (2.0 * a + 1.0))).epsilon(0.05));
  }
  CHECK_THROWS_AS(data::MixUp(0.0), std::invalid_argument);
  CHECK_THROWS_AS(data::MixUp(1.0)(in, out, gen), std::invalid_argument);  // no class count anywhere
  CHECK_THROWS_AS(data::MixUp(1.0, 2)(in, out, gen), std::invalid_argument);  // label 2 of 2 classes
}

TEST_CASE("CutMix: a box from the previous sample, clipped to the image; targets mixed by its real share") {
  const data::Batch in = constant_batch({0, 1, 2}, 8, 10);
  Generator gen(12);
  double lam_sum = 0;
  int boxes = 0;
  for (int k = 0; k < 300; ++k) {
    data::MixedBatch out;
    Generator copy = gen;
    data::CutMix(1.0, 3)(in, out, gen);
    const double lam = data::detail::sample_beta(1.0, 1.0, copy);
    const auto box = data::CutMix::box(lam, 8, 10, copy);
    std::int64_t pasted = 0;
    for (std::int64_t i = 0; i < 3; ++i) {
      const std::int64_t prev = (i + 2) % 3;
      for (std::int64_t ch = 0; ch < 2; ++ch)
        for (std::int64_t y = 0; y < 8; ++y)
          for (std::int64_t x = 0; x < 10; ++x) {
            const std::int64_t at = ((i * 2 + ch) * 8 + y) * 10 + x;
            const bool in_box = y >= box.y1 && y < box.y2 && x >= box.x1 && x < box.x2;
            const std::int64_t from = in_box ? prev : i;
            CHECK(out.input[at] == in.input[((from * 2 + ch) * 8 + y) * 10 + x]);
            pasted += (i == 0 && ch == 0 && in_box);
          }
      const double share = static_cast<double>(pasted) / 80.0;
      CHECK(box.lam == doctest::Approx(1.0 - share));
      CHECK(out.target[i * 3 + in.target[static_cast<std::size_t>(i)]] == doctest::Approx(box.lam));
      CHECK(out.target[i * 3 + in.target[static_cast<std::size_t>(prev)]] == doctest::Approx(1.0 - box.lam));
    }
    lam_sum += box.lam;
    boxes += pasted > 0;
  }
  // Clipping at the borders makes the pasted share smaller than 1 - lam: the mean target lam is above 1/2.
  CHECK(lam_sum / 300 > 0.5);
  CHECK(lam_sum / 300 < 0.8);
  CHECK(boxes > 200);
}

TEST_CASE("MixingLoader: mixed batches of a DataLoader, the class count from its data set, seeded per epoch") {
  data::Dataset ds;
  ds.images = Tensor({10, 1, 2, 2});
  for (std::int64_t i = 0; i < 40; ++i) ds.images[i] = static_cast<float>(i);
  for (std::int64_t i = 0; i < 10; ++i) ds.labels.push_back(i % 4);
  ds.num_classes = 4;
  data::DataLoader loader(ds, data::DataLoaderOptions{}.with_batch_size(4).with_shuffle(true).with_seed(3));
  data::MixingLoader mixed(loader, data::MixUp(1.0), 5);
  CHECK(mixed.size() == 3);
  CHECK(mixed.dataset().num_classes == 4);
  std::vector<Tensor> first;
  std::int64_t rows = 0;
  for (const auto& batch : mixed) {
    CHECK(batch.target.size(1) == 4);
    for (std::int64_t i = 0; i < batch.size(); ++i) {
      double s = 0;
      for (std::int64_t c = 0; c < 4; ++c) s += batch.target[i * 4 + c];
      CHECK(s == doctest::Approx(1.0));
    }
    rows += batch.size();
    first.push_back(batch.input);
  }
  CHECK(rows == 10);
  mixed.set_epoch(0);
  std::size_t b = 0;
  for (const auto& batch : mixed) CHECK(batch.input == first[b++]);
  CHECK(b == 3);
  bool differs = false;
  b = 0;
  for (const auto& batch : mixed) differs = differs || !(batch.input == first[b++]);  // epoch 1
  CHECK(differs);
}

// ------------------------------------------------------------------------------------------ the first week

TEST_CASE("ImageFolder reads GIFs and names the WebP and TIFF files it cannot read instead of ignoring them") {
  const std::string root = make_folder("folder_formats");
  fs::copy_file(std::string(EMBER_FIXTURE_DIR) + "/rgb_3x2.gif", fs::path(root) / "a_cls/3.gif");  // PIL's GIF
  write_file((fs::path(root) / "b_cls/photo.webp").string(), std::string("RIFF\0\0\0\0WEBPVP8 ", 16));
  write_file((fs::path(root) / "b_cls/sub/scan.TIFF").string(), std::string("II*\0\x08\0", 6));
  const data::ImageFolder f(root, folder_options(3, 2, 3));
  REQUIRE(f.size() == 7);
  CHECK(f.path(2) == (fs::path(root) / "a_cls/3.gif").string());
  const Tensor gif = f.get(2);
  CHECK(std::vector<float>(gif.begin(), gif.end()) ==
        std::vector<float>{255, 0, 0, 10, 200, 0, 0, 255, 0, 20, 100, 0, 0, 0, 255, 30, 50, 0});
  REQUIRE(f.skipped() == 2);
  CHECK(f.skipped_files()[0] == (fs::path(root) / "b_cls/photo.webp").string() +
                                    ": WebP images are not read by ember (convert them to PNG or JPEG)");
  CHECK(contains(f.skipped_files()[1], "scan.TIFF: TIFF images are not read by ember"));
  // A class of WebP files only: the error says what was there.
  fs::create_directories(fs::path(root) / "d_webp");
  write_file((fs::path(root) / "d_webp/1.webp").string(), std::string("RIFF"));
  const std::string msg = message_of<ember::io_error>([&] { data::ImageFolder(root, folder_options(3, 2, 3)); });
  CHECK(contains(msg, "the class folder 'd_webp' holds no image (.png, .jpg, .jpeg, .bmp or .gif, in any case)"));
  CHECK(contains(msg, "skipped 3 files ember cannot read, the last: " + (fs::path(root) / "d_webp/1.webp").string()));
}

TEST_CASE("ColorJitter after Normalize (values outside the pixel range) is an error saying where it goes") {
  Tensor img({3, 4, 4});
  for (std::int64_t i = 0; i < img.numel(); ++i) img[i] = float(i * 5 % 256);
  Generator gen(3);
  Tensor normalised = img;
  data::ToUnit()(normalised, gen);
  data::Normalize(0.5f, 0.5f)(normalised, gen);
  const data::ColorJitter jitter(0.4f, 0.4f, 0.4f);
  const std::string msg = message_of<std::invalid_argument>([&] { jitter(normalised, gen); });
  CHECK(contains(msg, "ColorJitter: pixel value -1.000000 is outside [0, 255]"));
  CHECK(contains(msg, "put it before Normalize"));
  // On 0..255 pixels (and 0..1 with bound 1) it runs.
  Tensor pixels = img;
  jitter(pixels, gen);
  Tensor unit = img;
  data::ToUnit()(unit, gen);
  data::ColorJitter(0.4f, 0.4f, 0.4f, 0.0f, 1.0f)(unit, gen);
  CHECK_THROWS_AS(data::ColorJitter(0.4f, 0.0f, 0.0f, 0.0f, 1.0f)(img, gen), std::invalid_argument);  // 0..255 with bound 1
}

TEST_CASE("a data set without num_classes: the error says it is not set and how to set it") {
  data::Dataset ds;
  ds.images = Tensor({3, 1, 2, 2});
  ds.labels = {0, 2, 1};
  const std::string msg = message_of<std::invalid_argument>([&] { ds.validate(); });
  CHECK(contains(msg, "num_classes is not set (it is 0) for 3 labels"));
  CHECK(contains(msg, "set dataset.num_classes to the number of classes (1 + the largest label, here 3)"));
  CHECK_FALSE(contains(msg, "outside [0, 0)"));
  CHECK(contains(message_of<std::invalid_argument>([&] { data::stratified_split(ds, 0.5, 1); }),
                 "stratified_split: num_classes is not set"));
  ds.num_classes = 3;
  ds.validate();
}
