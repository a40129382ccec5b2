// Data: IDX and CSV readers (every error path), Dataset, DataLoader (shuffle, prefetch = single-threaded
// bit for bit, early break, worker exceptions) and transforms (against torchvision goldens).
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ember/data/csv.hpp>
#include <ember/data/dataset.hpp>
#include <ember/data/idx.hpp>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using ember::Shape;
using ember::Tensor;
namespace data = ember::data;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) {
  const fs::path dir = fs::path(EMBER_TEST_TMP_DIR) / "data";
  fs::create_directories(dir);
  return (dir / name).string();
}

using Bytes = std::vector<unsigned char>;

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}
void write_text(const std::string& path, const std::string& text) { write_file(path, Bytes(text.begin(), text.end())); }

void write_gz(const std::string& path, const Bytes& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
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
template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

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
  write_text(tmp_path("sign_lf.csv"), lf);
  write_text(tmp_path("sign_crlf.csv"), crlf);
  write_gz(tmp_path("sign_crlf.csv.gz"), Bytes(crlf.begin(), crlf.end()));
  std::string no_final_eol = lf;
  no_final_eol.pop_back();
  write_text(tmp_path("sign_noeol.csv"), no_final_eol);
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
    write_text(tmp_path(c.name), c.text);
    const std::string m = message_of<ember::format_error>([&] { data::load_sign_mnist(tmp_path(c.name)); });
    CHECK(contains(m, c.name));
    CHECK(contains(m, c.expect));
  }
  CHECK(contains(message_of<ember::io_error>([] { data::load_sign_mnist(tmp_path("missing.csv")); }), "missing.csv"));
  // A label row cut short by the end of a truncated file still errors rather than reading past the buffer.
  std::string cut = good + "1,1,2";
  write_text(tmp_path("cut.csv"), cut);
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
