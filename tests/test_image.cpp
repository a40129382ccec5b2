// Image I/O: PNG round trips, PIL-exact gray conversion, JPEG and BMP decoding, errors, atomic writes, grids.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <ember/data/transforms.hpp>
#include <ember/io/image.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fixture.hpp"
#include "scratch.hpp"

using ember::Shape;
using ember::Tensor;
namespace io = ember::io;
namespace fs = std::filesystem;

namespace {

std::string tmp_path(const std::string& name) { return scratch::path("image", name); }
using scratch::Bytes;
using scratch::contains;
using scratch::message_of;
using scratch::read_file;
using scratch::write_file;

// Named tensors from tests/fixtures/transforms.txt (made by make_transform_fixtures.py with PIL/torchvision).
std::map<std::string, Tensor> goldens() {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : fixture::load("transforms.txt")) out.emplace(name, t.cast<float>());
  return out;
}

// A 24-bit BMP, written by hand: bottom-up rows of B, G, R padded to 4 bytes.
Bytes bmp_rgb(int w, int h, const std::vector<unsigned char>& rgb) {
  const int row = (3 * w + 3) / 4 * 4;
  const std::uint32_t data = static_cast<std::uint32_t>(row * h), size = 54 + data;
  Bytes b = {'B', 'M'};
  auto le32 = [&](std::uint32_t v) {
    for (int s = 0; s < 32; s += 8) b.push_back(static_cast<unsigned char>(v >> s));
  };
  auto le16 = [&](std::uint16_t v) {
    b.push_back(static_cast<unsigned char>(v));
    b.push_back(static_cast<unsigned char>(v >> 8));
  };
  le32(size), le32(0), le32(54);
  le32(40), le32(static_cast<std::uint32_t>(w)), le32(static_cast<std::uint32_t>(h)), le16(1), le16(24), le32(0),
      le32(data), le32(2835), le32(2835), le32(0), le32(0);
  for (int y = h - 1; y >= 0; --y) {
    for (int x = 0; x < w; ++x) {
      const unsigned char* p = &rgb[static_cast<std::size_t>((y * w + x) * 3)];
      b.push_back(p[2]), b.push_back(p[1]), b.push_back(p[0]);
    }
    for (int pad = 3 * w; pad < row; ++pad) b.push_back(0);
  }
  return b;
}

}  // namespace

TEST_CASE("save_png then load_image round-trips gray values, rounding and clamping") {
  Tensor img({1, 3, 4});
  for (std::int64_t i = 0; i < img.numel(); ++i) img[i] = float(i * 20);
  img[0] = -5.0f;     // -> 0
  img[1] = 300.0f;    // -> 255
  img[2] = 12.4f;     // -> 12
  img[3] = 12.6f;     // -> 13
  img[4] = std::nanf("");  // -> 0
  io::save_png(tmp_path("gray.png"), img);
  const Tensor back = io::load_image(tmp_path("gray.png"));
  REQUIRE(back.shape() == Shape{1, 3, 4});
  CHECK(back[0] == 0.0f);
  CHECK(back[1] == 255.0f);
  CHECK(back[2] == 12.0f);
  CHECK(back[3] == 13.0f);
  CHECK(back[4] == 0.0f);
  for (std::int64_t i = 5; i < img.numel(); ++i) CHECK(back[i] == img[i]);
  // H x W is accepted as one channel.
  io::save_png(tmp_path("gray2d.png"), img.reshape({3, 4}));
  CHECK(io::load_image(tmp_path("gray2d.png")) == back);
}

TEST_CASE("colour converts to gray exactly as PIL's convert('L'), ignoring alpha") {
  const auto g = goldens();
  const Tensor& rgba = g.at("pil_rgba");  // H x W x 4
  const std::int64_t h = rgba.size(0), w = rgba.size(1);
  Tensor rgb_chw({3, h, w}), rgba_chw({4, h, w});
  for (std::int64_t c = 0; c < 4; ++c)
    for (std::int64_t i = 0; i < h * w; ++i) {
      rgba_chw[c * h * w + i] = rgba[i * 4 + c];
      if (c < 3) rgb_chw[c * h * w + i] = rgba[i * 4 + c];
    }
  io::save_png(tmp_path("rgb.png"), rgb_chw);
  io::save_png(tmp_path("rgba.png"), rgba_chw);
  CHECK(io::load_image(tmp_path("rgb.png")) == g.at("pil_rgb_to_l").reshape({1, h, w}));
  CHECK(io::load_image(tmp_path("rgba.png")) == g.at("pil_rgba_to_l").reshape({1, h, w}));
}

TEST_CASE("BMP and JPEG decode") {
  std::vector<unsigned char> rgb;
  for (int i = 0; i < 5 * 3; ++i) {
    rgb.push_back(static_cast<unsigned char>(i * 17));
    rgb.push_back(static_cast<unsigned char>(255 - i * 9));
    rgb.push_back(static_cast<unsigned char>(i * 5));
  }
  write_file(tmp_path("small.bmp"), bmp_rgb(5, 3, rgb));
  const Tensor bmp = io::load_image(tmp_path("small.bmp"));
  REQUIRE(bmp.shape() == Shape{1, 3, 5});
  for (int i = 0; i < 15; ++i) {
    const unsigned r = rgb[i * 3], gch = rgb[i * 3 + 1], b = rgb[i * 3 + 2];
    CHECK(bmp[i] == float((r * 19595u + gch * 38470u + b * 7471u + 0x8000u) >> 16));
  }

  // stb's JPEG decoder and libjpeg (PIL) may round the IDCT differently: allow 2 levels.
  const Tensor jpg = io::load_image(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg");
  const auto g = goldens();
  const Tensor& pil = g.at("jpeg_ramp_pil");
  REQUIRE(jpg.shape() == Shape{1, 8, 8});
  float worst = 0.0f;
  for (std::int64_t i = 0; i < 64; ++i) worst = std::max(worst, std::fabs(jpg[i] - pil[i]));
  CHECK(worst <= 2.0f);
  MESSAGE("largest JPEG difference from PIL: " << worst);
}

TEST_CASE("a photograph-like RGBA PNG decodes to PIL's gray values exactly") {
  // tests/fixtures/photo_rgba.png and photo.txt come from tests/fixtures/make_photo_fixture.py (PIL's
  // convert('L')): smooth light, a skin-toned blob, noise and a soft alpha edge, like the report's photographs.
  std::ifstream in(std::string(EMBER_FIXTURE_DIR) + "/photo.txt");
  REQUIRE(in.good());
  std::string line, key;
  std::int64_t h = 0, w = 0;
  double want_sum = 0;
  std::vector<float> row;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ls >> key;
    if (key == "shape") ls >> h >> w;
    if (key == "sum") ls >> want_sum;
    if (key == "row57")
      for (float v; ls >> v;) row.push_back(v);
  }
  const Tensor a = io::load_image(std::string(EMBER_FIXTURE_DIR) + "/photo_rgba.png");
  REQUIRE(a.shape() == Shape{1, h, w});
  double sum = 0.0;
  for (float v : a) sum += v;
  CHECK(sum == want_sum);
  REQUIRE(static_cast<std::int64_t>(row.size()) == w);
  for (std::int64_t x = 0; x < w; ++x) CHECK(a.at({0, 57, x}) == row[static_cast<std::size_t>(x)]);
}

TEST_CASE("missing, corrupt and truncated images throw io_error / format_error naming the file") {
  CHECK(contains(message_of<ember::io_error>([] { io::load_image(tmp_path("nope.png")); }), "nope.png"));
  write_file(tmp_path("garbage.png"), Bytes{'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'});
  const std::string garbage = message_of<ember::format_error>([] { io::load_image(tmp_path("garbage.png")); });
  CHECK(contains(garbage, "garbage.png"));
  CHECK(contains(garbage, "cannot decode image: "));
  CHECK(garbage.size() > std::string(tmp_path("garbage.png") + ": cannot decode image: ").size());

  Tensor img({3, 16, 16});
  for (std::int64_t i = 0; i < img.numel(); ++i) img[i] = float((i * 7919) % 256);
  io::save_png(tmp_path("full.png"), img);
  Bytes png = read_file(tmp_path("full.png"));
  png.resize(png.size() / 2);
  write_file(tmp_path("half.png"), png);
  CHECK(contains(message_of<ember::format_error>([] { io::load_image(tmp_path("half.png")); }), "half.png"));
  write_file(tmp_path("empty.png"), Bytes{});
  CHECK(contains(message_of<ember::format_error>([] { io::load_image(tmp_path("empty.png")); }), "empty.png"));
}

TEST_CASE("save_png writes atomically, replaces the old file and checks its input") {
  const std::string dir = tmp_path("atomic");
  fs::remove_all(dir);
  fs::create_directories(dir);
  Tensor a = Tensor::full({1, 2, 2}, 10.0f), b = Tensor::full({1, 2, 2}, 200.0f);
  io::save_png(dir + "/x.png", a);
  io::save_png(dir + "/x.png", b);
  CHECK(io::load_image(dir + "/x.png") == b);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  CHECK(names == std::vector<std::string>{"x.png"});  // no temporary left behind

  CHECK(contains(message_of<ember::io_error>([&] { io::save_png(dir + "/no/such/dir/y.png", a); }), "y.png"));
  CHECK_THROWS_AS(io::save_png(dir + "/z.png", Tensor({2, 4, 4})), ember::shape_error);
  CHECK_THROWS_AS(io::save_png(dir + "/z.png", Tensor({1, 1, 4, 4})), ember::shape_error);
  CHECK_THROWS_AS(io::save_png(dir + "/z.png", Tensor({1, 0, 4})), ember::shape_error);
  CHECK(!fs::exists(dir + "/z.png"));
}

TEST_CASE("io::resize is the bilinear data::resize; make_grid tiles as torchvision's make_grid") {
  Tensor img({1, 5, 7});
  for (std::int64_t i = 0; i < img.numel(); ++i) img[i] = float(i * 3);
  CHECK(io::resize(img, 28, 28) == ember::data::resize(img, 28, 28));
  CHECK(io::resize(img, 28, 28).shape() == Shape{1, 28, 28});

  Tensor batch({3, 1, 2, 2});
  for (std::int64_t i = 0; i < batch.numel(); ++i) batch[i] = float(1 + i);
  const Tensor grid = io::make_grid(batch, 2, 1, 0.0f);
  REQUIRE(grid.shape() == Shape{1, 7, 7});
  CHECK(grid.at({0, 0, 0}) == 0.0f);
  CHECK(grid.at({0, 1, 1}) == 1.0f);   // image 0, pixel (0, 0)
  CHECK(grid.at({0, 2, 2}) == 4.0f);   // image 0, pixel (1, 1)
  CHECK(grid.at({0, 1, 4}) == 5.0f);   // image 1, pixel (0, 0)
  CHECK(grid.at({0, 4, 1}) == 9.0f);   // image 2, pixel (0, 0)
  CHECK(grid.at({0, 4, 4}) == 0.0f);   // the empty fourth cell
  CHECK(grid.at({0, 3, 3}) == 0.0f);   // padding between cells
  io::save_grid_png(tmp_path("grid.png"), batch, 2, 1);
  CHECK(io::load_image(tmp_path("grid.png")) == grid);
  CHECK_THROWS_AS(io::make_grid(Tensor({1, 2, 2}), 2), ember::shape_error);
}

// ---- untrusted input: every size a file declares is checked before stb sees it (format/image_check.hpp)

namespace {

std::uint32_t crc_of(const Bytes& b, std::size_t from, std::size_t to) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = from; i < to; ++i) {
    c ^= b[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void put_be32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int k = 0; k < 4; ++k) b[at + static_cast<std::size_t>(k)] = static_cast<unsigned char>(v >> (24 - 8 * k));
}

// A valid PNG (written by save_png) whose IHDR then declares w x h, with its CRC fixed.
Bytes png_declaring(std::uint32_t w, std::uint32_t h) {
  io::save_png(tmp_path("small.png"), Tensor::full({1, 4, 4}, 7.0f));
  Bytes png = read_file(tmp_path("small.png"));
  put_be32(png, 16, w);
  put_be32(png, 20, h);
  put_be32(png, 29, crc_of(png, 12, 29));
  return png;
}

std::string load_error(const std::string& name, const Bytes& bytes, const io::ImageLimits& limits = {}) {
  write_file(tmp_path(name), bytes);
  return message_of<ember::format_error>([&] { io::load_image(tmp_path(name), 1, limits); });
}

}  // namespace

TEST_CASE("formats stb could read but ember does not are refused by signature, naming the format") {
  const std::vector<std::pair<std::string, std::string>> files = {
      {"8BPS\x00\x01", "PSD"},        {"P5\n1 1\n255\n\x07", "PNM"},
      {"#?RADIANCE\n", "HDR"},                      {std::string("II*\x00\x08\x00", 6), "TIFF"},     {std::string("\x53\x80\xF6\x34", 4), "PIC"},
      {std::string("\x00\x00\x02\x00\x00\x00\x00\x00", 8), "an unknown format"}};  // a TGA header
  for (const auto& file : files) {
    const std::string& content = file.first;
    const std::string format = file.second;  // a plain variable: C++17 lambdas (CAPTURE) cannot take a binding
    CAPTURE(format);
    const std::string msg = load_error("sig.img", Bytes(content.begin(), content.end()));
    CHECK(contains(msg, tmp_path("sig.img")));
    CHECK(contains(msg, "unsupported image format: " + format));
    CHECK(contains(msg, "ember reads PNG, JPEG, BMP and GIF"));
  }
}

TEST_CASE("PNG: a declared size beyond the limits or beyond what the IDAT data can hold is refused") {
  // 100000 x 100000: over the default pixel limit, refused from IHDR alone.
  CHECK(contains(load_error("huge.png", png_declaring(100000, 100000)), "PNG of 100000 x 100000 pixels exceeds the limit of 178956970 pixels"));
  // 3000 x 3000 gray is within the limits, but 9 MB of pixels cannot come out of a few dozen bytes of IDAT.
  const std::string lying = load_error("lying.png", png_declaring(3000, 3000));
  CHECK(contains(lying, "truncated PNG: 3000 x 3000 pixels need 9003000 bytes of image data"));
  // The limits are adjustable, pixels and bytes each.
  io::save_png(tmp_path("rgb.png"), Tensor::full({3, 30, 40}, 9.0f));
  const Bytes rgb = read_file(tmp_path("rgb.png"));
  io::ImageLimits few_pixels, few_bytes;
  few_pixels.max_pixels = 1000;
  few_bytes.max_bytes = 3000;
  CHECK(contains(load_error("rgb1.png", rgb, few_pixels), "PNG of 40 x 30 pixels exceeds the limit of 1000 pixels"));
  CHECK(contains(load_error("rgb2.png", rgb, few_bytes), "PNG of 40 x 30 pixels decodes to 3600 bytes, over the limit of 3000"));
  CHECK(io::load_image(tmp_path("rgb.png")).shape() == Shape{1, 30, 40});
  // Every chunk must fit in the bytes that remain: the IEND chunk (last 12 bytes) claiming 100 bytes.
  Bytes bad_iend = rgb;
  put_be32(bad_iend, bad_iend.size() - 12, 100);
  CHECK(contains(load_error("iend.png", bad_iend), "corrupt PNG: the IEND chunk at byte"));
}

TEST_CASE("JPEG: segment lengths and the frame size are checked; BMP header sizes too") {
  const Bytes ramp = read_file(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg");
  std::size_t sof = 0;
  for (std::size_t i = 2; i + 1 < ramp.size(); ++i)
    if (ramp[i] == 0xFF && (ramp[i + 1] == 0xC0 || ramp[i + 1] == 0xC2)) {
      sof = i;
      break;
    }
  REQUIRE(sof > 0);
  Bytes big = ramp;  // SOF: FF C0, length (2), precision (1), height (2), width (2)
  big[sof + 5] = 0xEA, big[sof + 6] = 0x60, big[sof + 7] = 0xEA, big[sof + 8] = 0x60;
  CHECK(contains(load_error("big.jpg", big), "JPEG of 60000 x 60000 pixels exceeds the limit"));
  big[sof + 5] = 0x10, big[sof + 6] = 0x00, big[sof + 7] = 0x10, big[sof + 8] = 0x00;  // 4096 x 4096 in ~600 bytes
  CHECK(contains(load_error("big2.jpg", big), "truncated JPEG: 4096 x 4096 pixels need at least 32768 bytes"));
  Bytes long_segment = ramp;  // the segment after SOI declaring 65535 bytes
  long_segment[4] = 0xFF, long_segment[5] = 0xFF;
  CHECK(contains(load_error("seg.jpg", long_segment), "declares 65535 bytes"));

  Bytes bmp = bmp_rgb(2, 2, std::vector<unsigned char>(12, 50));
  bmp[14] = 41;  // an info header size stb does not know
  CHECK(contains(load_error("hdr.bmp", bmp), "unsupported BMP: info header of 41 bytes"));
  bmp[14] = 40;
  write_file(tmp_path("hdr.bmp"), bmp);
  CHECK(io::load_image(tmp_path("hdr.bmp")).shape() == Shape{1, 2, 2});
}

TEST_CASE("load_image with channels = 3 gives RGB; gray files repeat their value") {
  Tensor rgb({3, 2, 3});
  for (std::int64_t i = 0; i < rgb.numel(); ++i) rgb[i] = float(i * 13);
  io::save_png(tmp_path("c3.png"), rgb);
  CHECK(io::load_image(tmp_path("c3.png"), 3) == rgb);
  io::save_png(tmp_path("g1.png"), Tensor::full({1, 2, 2}, 77.0f));
  CHECK(io::load_image(tmp_path("g1.png"), 3) == Tensor::full({3, 2, 2}, 77.0f));
  CHECK_THROWS_AS(io::load_image(tmp_path("g1.png"), 2), std::invalid_argument);
}

// ---- 16-bit PNGs, alpha, EXIF orientation

namespace {

// A PNG written by hand: 16-bit samples (big-endian), colour type 0 (gray), 2 (RGB) or 6 (RGBA), one stored
// (uncompressed) deflate block.
Bytes png16(std::uint32_t w, std::uint32_t h, unsigned colour, const std::vector<std::uint16_t>& samples) {
  Bytes raw;
  const std::size_t per_row = samples.size() / h;
  for (std::uint32_t y = 0; y < h; ++y) {
    raw.push_back(0);
    for (std::size_t k = 0; k < per_row; ++k) {
      raw.push_back(static_cast<unsigned char>(samples[y * per_row + k] >> 8));
      raw.push_back(static_cast<unsigned char>(samples[y * per_row + k] & 0xFF));
    }
  }
  std::uint32_t a = 1, b = 0;
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  Bytes z = {0x78, 0x01, 0x01, static_cast<unsigned char>(raw.size()), static_cast<unsigned char>(raw.size() >> 8),
             static_cast<unsigned char>(~raw.size()), static_cast<unsigned char>(~raw.size() >> 8)};
  z.insert(z.end(), raw.begin(), raw.end());
  for (int s = 24; s >= 0; s -= 8) z.push_back(static_cast<unsigned char>((b << 16 | a) >> s));
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  auto chunk = [&](const char* type, const Bytes& data) {
    const std::size_t at = png.size();
    png.resize(at + 4);
    put_be32(png, at, static_cast<std::uint32_t>(data.size()));
    png.insert(png.end(), type, type + 4);
    png.insert(png.end(), data.begin(), data.end());
    const std::uint32_t crc = crc_of(png, at + 4, png.size());
    png.resize(png.size() + 4);
    put_be32(png, png.size() - 4, crc);
  };
  Bytes ihdr(13, 0);
  put_be32(ihdr, 0, w);
  put_be32(ihdr, 4, h);
  ihdr[8] = 16, ihdr[9] = static_cast<unsigned char>(colour);
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", {});
  return png;
}

// ramp_8x8.jpg with an APP1 EXIF segment after SOI whose IFD0 holds Orientation = o (TIFF byte order `order`).
Bytes jpeg_with_orientation(int o, char order) {
  Bytes ramp = read_file(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg");
  const bool le = order == 'I';
  auto u16 = [&](Bytes& b, unsigned v) {
    b.push_back(static_cast<unsigned char>(le ? v & 0xFF : v >> 8));
    b.push_back(static_cast<unsigned char>(le ? v >> 8 : v & 0xFF));
  };
  auto u32 = [&](Bytes& b, std::uint32_t v) {
    if (le) u16(b, v & 0xFFFF), u16(b, v >> 16);
    else u16(b, v >> 16), u16(b, v & 0xFFFF);
  };
  Bytes tiff = {static_cast<unsigned char>(order), static_cast<unsigned char>(order)};
  u16(tiff, 42), u32(tiff, 8), u16(tiff, 2);                       // header, IFD0 at 8 with 2 entries
  u16(tiff, 0x010F), u16(tiff, 2), u32(tiff, 4), u32(tiff, 0);      // Make (ASCII), skipped
  u16(tiff, 0x0112), u16(tiff, 3), u32(tiff, 1), u16(tiff, static_cast<unsigned>(o)), u16(tiff, 0);
  u32(tiff, 0);
  Bytes app1 = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  app1.insert(app1.end(), tiff.begin(), tiff.end());
  app1[2] = static_cast<unsigned char>((app1.size() - 2) >> 8), app1[3] = static_cast<unsigned char>(app1.size() - 2);
  ramp.insert(ramp.begin() + 2, app1.begin(), app1.end());
  return ramp;
}

}  // namespace

TEST_CASE("16-bit PNGs keep each sample's high byte (stb's rule; PIL's for colour)") {
  write_file(tmp_path("g16.png"), png16(3, 1, 0, {0x0000, 0x80FF, 0xFFFF}));
  CHECK(io::load_image(tmp_path("g16.png")) == Tensor::from({1, 1, 3}, {0.0f, 128.0f, 255.0f}));
  write_file(tmp_path("rgb16.png"), png16(2, 1, 2, {0x1234, 0xFF00, 0x00FF, 0x0100, 0x7F80, 0xFEFF}));
  CHECK(io::load_image(tmp_path("rgb16.png"), 3) == Tensor::from({3, 1, 2}, {18.0f, 1.0f, 255.0f, 127.0f, 0.0f, 254.0f}));
  // Alpha is dropped (PIL's convert('RGB')), not blended: a transparent pixel keeps its colour.
  write_file(tmp_path("rgba16.png"), png16(1, 1, 6, {0x6400, 0xC800, 0x3200, 0x0000}));
  CHECK(io::load_image(tmp_path("rgba16.png"), 3) == Tensor::from({3, 1, 1}, {100.0f, 200.0f, 50.0f}));
}

TEST_CASE("8-bit RGBA to RGB drops alpha, as PIL's convert('RGB')") {
  Tensor rgba({4, 1, 2});
  const float v[] = {10, 20, 30, 40, 50, 60, 0, 255};
  std::copy(v, v + 8, rgba.data());
  io::save_png(tmp_path("rgba8.png"), rgba);
  CHECK(io::load_image(tmp_path("rgba8.png"), 3) == Tensor::from({3, 1, 2}, {10, 20, 30, 40, 50, 60}));
}

TEST_CASE("EXIF orientation: PIL's exif_transpose, applied only when asked") {
  // A 2 x 3 image 0..5 and what PIL's Image.transpose gives for each orientation's method.
  const Tensor in = Tensor::from({1, 2, 3}, {0, 1, 2, 3, 4, 5});
  const std::vector<std::pair<int, Tensor>> expected = {
      {2, Tensor::from({1, 2, 3}, {2, 1, 0, 5, 4, 3})}, {3, Tensor::from({1, 2, 3}, {5, 4, 3, 2, 1, 0})},
      {4, Tensor::from({1, 2, 3}, {3, 4, 5, 0, 1, 2})}, {5, Tensor::from({1, 3, 2}, {0, 3, 1, 4, 2, 5})},
      {6, Tensor::from({1, 3, 2}, {3, 0, 4, 1, 5, 2})}, {7, Tensor::from({1, 3, 2}, {5, 2, 4, 1, 3, 0})},
      {8, Tensor::from({1, 3, 2}, {2, 5, 1, 4, 0, 3})}};
  for (const auto& [o, want] : expected) {
    CAPTURE(o);
    CHECK(ember::format::apply_exif_orientation(in, o) == want);
  }
  CHECK(ember::format::apply_exif_orientation(in, 1) == in);
  const Tensor plain = io::load_image(std::string(EMBER_FIXTURE_DIR) + "/ramp_8x8.jpg", 3);
  for (char order : {'I', 'M'})
    for (int o : {3, 6, 8}) {
      CAPTURE(o);
      write_file(tmp_path("exif.jpg"), jpeg_with_orientation(o, order));
      CHECK(ember::format::jpeg_exif_orientation(read_file(tmp_path("exif.jpg"))) == o);
      CHECK(io::load_image(tmp_path("exif.jpg"), 3) == plain);  // ignored by default
      CHECK(io::load_image(tmp_path("exif.jpg"), 3, {}, io::ExifOrientation::Apply) ==
            ember::format::apply_exif_orientation(plain, o));
    }
}

namespace bad_input {

TEST_CASE("EXIF: an unreadable block or a value outside 1..8 means no orientation") {
  Bytes bad = jpeg_with_orientation(9, 'I');
  CHECK(ember::format::jpeg_exif_orientation(bad) == 1);
  bad = jpeg_with_orientation(6, 'I');
  bad[2 + 10 + 4] = 0xFF;  // IFD0 offset far past the segment
  CHECK(ember::format::jpeg_exif_orientation(bad) == 1);
  bad = jpeg_with_orientation(6, 'M');
  bad[2 + 10 + 8] = 0x7F;  // an entry count far past the segment: only the entries present are read
  CHECK(ember::format::jpeg_exif_orientation(bad) == 6);
  for (std::size_t cut = 0; cut < 40; ++cut) {
    const Bytes head(bad.begin(), bad.begin() + static_cast<std::ptrdiff_t>(cut));
    CHECK(ember::format::jpeg_exif_orientation(head) == 1);
  }
  CHECK_THROWS_AS(ember::format::apply_exif_orientation(Tensor({2, 2}), 2), ember::shape_error);
  CHECK_THROWS_AS(ember::format::apply_exif_orientation(Tensor({1, 2, 2}), 9), std::invalid_argument);
}

}  // namespace bad_input

TEST_CASE("a CMYK JPEG (Adobe's inverted CMYK, as PIL writes it) reads as PIL's convert('RGB') within 1") {
  // stb_image 2.27 converts 4-component JPEGs with the Adobe transform flag; the golden is PIL's reading
  // (tests/fixtures/make_color_fixtures.py).
  Tensor want;
  for (const auto& [name, t] : fixture::load("transforms_color.txt"))
    if (name == "cmyk_pil_rgb") want = t.cast<float>();
  REQUIRE(want.numel() > 0);
  const Tensor got = io::load_image(std::string(EMBER_FIXTURE_DIR) + "/cmyk_12x16.jpg", 3);
  REQUIRE(got.shape() == want.shape());
  float worst = 0.0f;
  for (std::int64_t i = 0; i < got.numel(); ++i) worst = std::max(worst, std::fabs(got[i] - want[i]));
  MESSAGE("largest CMYK JPEG difference from PIL: " << worst);
  CHECK(worst <= 1.0f);
}

// ------------------------------------------------------------------------------------------ GIF

namespace {

// A GIF header declaring a w x h screen, then the image descriptor of a 1 x 1 frame and `data` bytes.
Bytes gif_declaring(unsigned w, unsigned h, std::size_t data = 4) {
  Bytes b = {'G', 'I', 'F', '8', '9', 'a', static_cast<unsigned char>(w & 255), static_cast<unsigned char>(w >> 8),
             static_cast<unsigned char>(h & 255), static_cast<unsigned char>(h >> 8), 0, 0, 0};
  const unsigned char descriptor[10] = {0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0};
  b.insert(b.end(), descriptor, descriptor + 10);
  b.insert(b.end(), data, 0);
  b.push_back(0x3B);
  return b;
}
}  // namespace

TEST_CASE("GIF: the first frame decodes to PIL's convert('RGB') values") {
  const std::string gif = std::string(EMBER_FIXTURE_DIR) + "/rgb_3x2.gif";  // tests/fixtures/make_gif_fixture.py
  const Tensor rgb = io::load_image(gif, 3);
  REQUIRE(rgb.shape() == Shape{3, 2, 3});
  CHECK(std::vector<float>(rgb.begin(), rgb.end()) ==
        std::vector<float>{255, 0, 0, 10, 200, 0, 0, 255, 0, 20, 100, 0, 0, 0, 255, 30, 50, 0});
  CHECK(io::load_image(gif, 1).shape() == Shape{1, 2, 3});
}

TEST_CASE("GIF: a screen beyond the limits or the data, and a file without an image, are refused before stb") {
  CHECK(contains(load_error("huge.gif", gif_declaring(65535, 65535)), "GIF of 65535 x 65535 pixels exceeds the limit"));
  // 10000 x 10000 is within the limits, but a few bytes of LZW data cannot fill it: stb would allocate 900 MB.
  const std::string bomb = load_error("bomb.gif", gif_declaring(10000, 10000));
  CHECK(contains(bomb, "truncated GIF: a screen of 10000 x 10000 pixels cannot be filled by 5 bytes"));
  CHECK(contains(load_error("zero.gif", gif_declaring(0, 5)), "corrupt GIF: a screen of 0 x 5 pixels"));
  Bytes no_image = gif_declaring(2, 2);
  no_image.resize(13);
  no_image.push_back(0x3B);
  CHECK(contains(load_error("empty.gif", no_image), "no image descriptor where one was expected, at byte 13"));
  CHECK(contains(load_error("short.gif", Bytes{'G', 'I', 'F', '8', '9', 'a', 1}), "truncated or corrupt GIF"));
  // An extension block whose sub-blocks run past the end.
  Bytes ext = gif_declaring(2, 2);
  ext.resize(13);
  for (unsigned char c : {0x21, 0xF9, 0x40, 1, 2}) ext.push_back(c);
  CHECK(contains(load_error("ext.gif", ext), "no image descriptor"));
}
