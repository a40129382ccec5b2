#pragma once
// Pre-decode validation of untrusted image files, before stb_image (format/image.hpp) sees a byte. stb trusts
// the sizes a file declares: a 198-byte PNG whose IDAT chunk claims 1.25 GB makes it allocate 2 GiB, and a
// 127-byte PNG declaring 7 x 14,286,852 RGBA pixels makes it allocate 414 MB for their zlib output. So every
// declared size is checked here against the bytes present and against ImageLimits, and every format stb could
// be built to read but ember does not mean to (PSD, PIC, PNM, HDR, TGA, ...) is refused by signature.
// The rule: nothing is allocated beyond a small multiple of what the file can hold (docs/robustness.md).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"

namespace ember {
namespace format {

// The largest decoded image accepted. Pixels: PIL's decompression-bomb refusal (Image.MAX_IMAGE_PIXELS * 2,
// 179 megapixels). Bytes: the decoder's largest buffer, W x H x channels x bytes per sample (16-bit PNGs
// decode at 2), at most 1 GiB. Both are checked from the header, before anything is allocated.
struct ImageLimits {
  std::int64_t max_pixels = 2 * 89478485;
  std::int64_t max_bytes = std::int64_t(1) << 30;
};

enum class ImageFormat { Png, Jpeg, Bmp, Gif };

namespace detail {

inline std::uint64_t mul_sat(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::numeric_limits<std::uint64_t>::max();
  return a * b;
}
inline std::uint32_t be32(const std::vector<unsigned char>& b, std::size_t i) {
  return std::uint32_t(b[i]) << 24 | std::uint32_t(b[i + 1]) << 16 | std::uint32_t(b[i + 2]) << 8 | std::uint32_t(b[i + 3]);
}
inline std::uint32_t le32(const std::vector<unsigned char>& b, std::size_t i) {
  return std::uint32_t(b[i]) | std::uint32_t(b[i + 1]) << 8 | std::uint32_t(b[i + 2]) << 16 | std::uint32_t(b[i + 3]) << 24;
}
inline bool starts_with(const std::vector<unsigned char>& b, const char* s, std::size_t n) {
  return b.size() >= n && std::equal(s, s + n, b.begin(), [](char c, unsigned char u) { return static_cast<unsigned char>(c) == u; });
}

// "<file>: cannot decode image: <why>"
[[noreturn]] inline void refuse(const std::string& name, const std::string& why) {
  throw format_error(name + ": cannot decode image: " + why);
}

// Pixels and decoded bytes against the limits.
inline void check_extent(const std::string& name, const char* what, std::uint64_t w, std::uint64_t h,
                         std::uint64_t channels, std::uint64_t bytes_per_sample, const ImageLimits& limits) {
  const std::uint64_t pixels = mul_sat(w, h), bytes = mul_sat(mul_sat(pixels, channels), bytes_per_sample);
  const std::string size = std::string(what) + " of " + std::to_string(w) + " x " + std::to_string(h) + " pixels";
  if (pixels > static_cast<std::uint64_t>(std::max<std::int64_t>(limits.max_pixels, 0)))
    refuse(name, size + " exceeds the limit of " + std::to_string(limits.max_pixels) +
                     " pixels (format::ImageLimits::max_pixels; a decompression bomb?)");
  if (bytes > static_cast<std::uint64_t>(std::max<std::int64_t>(limits.max_bytes, 0)))
    refuse(name, size + " decodes to " + std::to_string(bytes) + " bytes, over the limit of " +
                     std::to_string(limits.max_bytes) + " (format::ImageLimits::max_bytes)");
}

// stb_image 2.27 (Debian's libstb, 2022) trusts the code counts of a JPEG Huffman table: counts adding up to
// more than 256 write past the table's arrays inside the decoder (heap overflow, found by fuzz/fuzz_image.cpp).
// Returns true when the DHT segment whose length field starts at `i` has such a table; marks the tables it
// defines in dc/ac. Bytes past the end read as 0, as stb reads them.
inline bool jpeg_dht_is_bad(const std::vector<unsigned char>& b, std::size_t i, bool* dc = nullptr, bool* ac = nullptr) {
  const std::size_t n = b.size();
  auto at = [&](std::size_t k) -> unsigned { return k < n ? b[k] : 0u; };
  long left = static_cast<long>(at(i) << 8 | at(i + 1)) - 2;
  std::size_t p = i + 2;
  while (left > 0 && p < n) {
    unsigned codes = 0;
    for (std::size_t k = 0; k < 16; ++k) codes += at(p + 1 + k);
    if (codes > 256) return true;
    const unsigned tc = at(p) >> 4, th = at(p) & 15;
    if (dc && tc <= 1 && th <= 3) (tc ? ac : dc)[th] = true;
    p += 17 + codes;
    left -= 17 + static_cast<long>(codes);
  }
  return false;
}

// What the segments seen so far define, and what the frame needs. stb 2.27 allocates its decoder state
// uninitialised, so a scan naming a Huffman table no DHT defined decodes through garbage tables (an
// out-of-bounds read, found by fuzz/fuzz_image.cpp), and a quantisation table no DQT defined is garbage.
struct JpegState {
  bool dc[4] = {}, ac[4] = {}, dq[4] = {};
  bool frame = false, progressive = false;
  std::vector<unsigned> quant;  // each frame component's table
};

// The segment of marker `m` whose length field starts at `i` (its length already checked to fit).
inline void jpeg_segment(const std::vector<unsigned char>& b, const std::string& name, const ImageLimits& limits,
                         unsigned m, std::size_t i, std::size_t length, JpegState& st) {
  const std::size_t n = b.size();
  auto at = [&](std::size_t k) -> unsigned { return k < n ? b[k] : 0u; };
  const std::string where = " at byte " + std::to_string(i - 2);
  if (m == 0xC4 && jpeg_dht_is_bad(b, i, st.dc, st.ac))
    refuse(name, "corrupt JPEG: the Huffman table (DHT)" + where + " defines more than 256 codes");
  if (m == 0xDB)  // DQT: tables of 64 entries, 8 or 16 bits each
    for (std::size_t p = i + 2; p < i + length; p += 1 + 64 * ((at(p) >> 4) ? 2 : 1))
      if ((at(p) & 15) <= 3) st.dq[at(p) & 15] = true;
  if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {  // a frame header: SOFn
    if (length < 8) refuse(name, "corrupt JPEG: frame header (SOF) of " + std::to_string(length) + " bytes" + where);
    const std::uint64_t h = std::uint64_t(b[i + 3]) << 8 | b[i + 4], w = std::uint64_t(b[i + 5]) << 8 | b[i + 6];
    const unsigned comps = b[i + 7];
    check_extent(name, "JPEG", w, h, std::max(comps, 1u), 1, limits);
    // Each 8 x 8 block of the full-resolution component costs at least one bit of coded data, so a valid
    // file has at least W * H / 512 bytes; stb would read a truncated one as zeros, at full size.
    if (mul_sat(w, h) / 512 > n)
      refuse(name, "truncated JPEG: " + std::to_string(w) + " x " + std::to_string(h) + " pixels need at least " +
                       std::to_string(w * h / 512) + " bytes, the file has " + std::to_string(n));
    st.frame = true;
    st.progressive = m == 0xC2;
    st.quant.clear();
    for (unsigned k = 0; k < comps && 8 + 3 * k + 2 < length; ++k) st.quant.push_back(at(i + 10 + 3 * k));
  }
  if (m == 0xDA) {  // SOS: each component names its DC and AC tables; Ss and Ah say which a scan decodes with
    const unsigned ns = at(i + 2), ss = at(i + 3 + 2 * ns), ah = at(i + 5 + 2 * ns) >> 4;
    const bool uses_dc = !st.progressive || (ss == 0 && ah == 0), uses_ac = !st.progressive || ss > 0;
    for (unsigned k = 0; k < ns; ++k) {
      const unsigned td = at(i + 4 + 2 * k) >> 4, ta = at(i + 4 + 2 * k) & 15;
      if ((uses_dc && td <= 3 && !st.dc[td]) || (uses_ac && ta <= 3 && !st.ac[ta]))
        refuse(name, "corrupt JPEG: the scan (SOS)" + where + " uses Huffman table " +
                         std::to_string(uses_dc && td <= 3 && !st.dc[td] ? td : ta) +
                         (uses_dc && td <= 3 && !st.dc[td] ? " (DC)" : " (AC)") + ", which no DHT before it defines");
    }
  }
}

// JPEG: up to the first scan the segments are walked as stb walks them (markers after optional 0xFF fill,
// padding skipped byte by byte); each segment's length must fit in the bytes that remain, and the frame header
// (SOFn) gives the size. After the first scan stb finds markers wherever the entropy decoder stops; a valid
// scan stuffs 0xFF as 0xFF 0x00, so every other 0xFF there starts a marker, and DHT, DQT and SOS are checked.
inline void check_jpeg(const std::vector<unsigned char>& b, const std::string& name, const ImageLimits& limits) {
  const std::size_t n = b.size();
  JpegState st;
  std::size_t i = 0;
  while (i < n && b[i] == 0xFF) ++i;
  ++i;  // the SOI marker (the signature test has seen it)
  while (i < n) {
    if (b[i] != 0xFF) {
      ++i;
      continue;
    }
    while (i < n && b[i] == 0xFF) ++i;
    if (i >= n) break;
    const unsigned m = b[i++];
    if (m == 0xD9) break;                                              // end of image
    if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // markers without a length
    const char hex[] = "0123456789ABCDEF";
    const std::string marker = std::string("marker 0xFF") + hex[m >> 4] + hex[m & 15];
    if (n - i < 2) refuse(name, "truncated JPEG: the " + marker + " at byte " + std::to_string(i - 2) + " has no length");
    const std::size_t length = std::size_t(b[i]) << 8 | b[i + 1];
    if (length < 2 || length > n - i)
      refuse(name, "corrupt JPEG: the segment of " + marker + " at byte " + std::to_string(i - 2) + " declares " +
                       std::to_string(length) + " bytes, " + std::to_string(n - i) + " remain");
    jpeg_segment(b, name, limits, m, i, length, st);
    if (m == 0xDA) break;  // start of scan: the entropy-coded data follows the scan header
    i += length;
  }
  if (!st.frame && i >= n) refuse(name, "corrupt JPEG: no frame header (SOF) before the end of the file");
  for (; i + 1 < n; ++i) {
    if (b[i] != 0xFF) continue;
    std::size_t j = i + 1;
    while (j < n && b[j] == 0xFF) ++j;
    if (j >= n) break;
    const unsigned m = b[j];
    if (m == 0xC4 || m == 0xDB || m == 0xDA) {
      const std::size_t length = j + 2 < n ? (std::size_t(b[j + 1]) << 8 | b[j + 2]) : 0;
      jpeg_segment(b, name, limits, m, j + 1, std::min(length, n - j - 1), st);
    }
    i = j - 1;
  }
  for (std::size_t k = 0; k < st.quant.size(); ++k)
    if (st.quant[k] <= 3 && !st.dq[st.quant[k]])
      refuse(name, "corrupt JPEG: component " + std::to_string(k) + " uses quantisation table " +
                       std::to_string(st.quant[k]) + ", which no DQT defines");
}

// PNG: every chunk (length, type, data, CRC) must fit in the bytes that remain, IHDR first and well formed,
// IEND last. The image data the header implies must fit in what the IDAT chunks can inflate to: deflate
// turns a byte into at most 1032 (258-byte matches at 2 bits each), so the declared size is bounded by the
// IDAT bytes present before stb allocates for it.
inline void check_png(const std::vector<unsigned char>& b, const std::string& name, const ImageLimits& limits) {
  const std::size_t n = b.size();
  std::uint64_t w = 0, h = 0, samples = 0, out_channels = 0, depth = 0, idat = 0;
  bool ended = false;
  for (std::size_t i = 8; !ended;) {
    if (n - i < 12)
      refuse(name, "truncated PNG: " + std::to_string(n - i) + " bytes at byte " + std::to_string(i) +
                       " where a chunk (12 bytes at least) or IEND was expected");
    const std::uint64_t length = be32(b, i);
    const std::string type(b.begin() + static_cast<std::ptrdiff_t>(i + 4), b.begin() + static_cast<std::ptrdiff_t>(i + 8));
    auto printable = [&] {
      std::string t;
      for (char c : type) t += (c >= 32 && c < 127) ? c : '?';
      return t;
    };
    if (length > n - i - 12)
      refuse(name, "corrupt PNG: the " + printable() + " chunk at byte " + std::to_string(i) + " declares " +
                       std::to_string(length) + " bytes, " + std::to_string(n - i - 12) + " remain");
    if (i == 8 && type != "IHDR") refuse(name, "corrupt PNG: the first chunk is " + printable() + ", not IHDR");
    if (type == "IHDR") {
      if (i != 8 || length != 13) refuse(name, "corrupt PNG: IHDR at byte " + std::to_string(i) + " of " + std::to_string(length) + " bytes");
      w = be32(b, i + 8);
      h = be32(b, i + 12);
      depth = b[i + 16];
      const unsigned colour = b[i + 17];
      const unsigned in[7] = {1, 0, 3, 1, 2, 0, 4}, out[7] = {1, 0, 3, 4, 2, 0, 4};  // palette: RGB(A)
      if (colour > 6 || in[colour] == 0) refuse(name, "corrupt PNG: colour type " + std::to_string(colour));
      if (depth != 1 && depth != 2 && depth != 4 && depth != 8 && depth != 16)
        refuse(name, "corrupt PNG: bit depth " + std::to_string(depth));
      if (w == 0 || h == 0) refuse(name, "corrupt PNG: an image of " + std::to_string(w) + " x " + std::to_string(h) + " pixels");
      samples = in[colour];
      out_channels = out[colour];
      check_extent(name, "PNG", w, h, out_channels, depth == 16 ? 2 : 1, limits);
    }
    if (type == "IDAT") idat += length;
    ended = type == "IEND";
    i += 12 + static_cast<std::size_t>(length);
  }
  // At least one filter byte and one data byte per row (of every pass, interlaced: column 0 of each row lies
  // in exactly one pass row), and all the pixels' bits. stb's first zlib buffer is within twice this.
  const std::uint64_t need = h + std::max(h, mul_sat(w * samples * depth, h) / 8);
  const std::uint64_t can_hold = mul_sat(idat, 1032) + 1032;
  if (need > can_hold)
    refuse(name, "truncated PNG: " + std::to_string(w) + " x " + std::to_string(h) + " pixels need " + std::to_string(need) +
                     " bytes of image data, but its " + std::to_string(idat) + " bytes of IDAT inflate to " +
                     std::to_string(can_hold) + " at most");
}

// BMP (stb reads it uncompressed only): a header stb knows, and the pixel rows the header claims in the file.
inline void check_bmp(const std::vector<unsigned char>& b, const std::string& name, const ImageLimits& limits) {
  if (b.size() < 30) refuse(name, "truncated BMP: " + std::to_string(b.size()) + " bytes, the headers need 30");
  const std::uint32_t offset = le32(b, 10), header = le32(b, 14);
  if (header != 12 && header != 40 && header != 56 && header != 108 && header != 124)
    refuse(name, "unsupported BMP: info header of " + std::to_string(header) + " bytes (expected 12, 40, 56, 108 or 124)");
  if (14 + std::uint64_t(header) > b.size() || offset > b.size())
    refuse(name, "truncated BMP: its headers claim " + std::to_string(14 + std::uint64_t(header)) + " bytes and pixels at byte " +
                     std::to_string(offset) + ", the file has " + std::to_string(b.size()));
  std::int64_t w = 0, h = 0;
  std::uint32_t bpp = 0;
  if (header == 12) {
    w = std::int16_t(b[18] | b[19] << 8);
    h = std::int16_t(b[20] | b[21] << 8);
    bpp = b[24] | b[25] << 8;
  } else {
    w = static_cast<std::int32_t>(le32(b, 18));
    h = static_cast<std::int32_t>(le32(b, 22));  // negative: rows stored top-down
    bpp = b[28] | b[29] << 8;
  }
  // stb takes abs() of the height, undefined for INT32_MIN; no valid file comes near these extents.
  if (w <= 0 || h == 0 || w > (1 << 24) || h > (1 << 24) || h < -(1 << 24))
    refuse(name, "bad BMP size " + std::to_string(w) + " x " + std::to_string(h));
  const std::uint64_t rows = static_cast<std::uint64_t>(h < 0 ? -h : h);
  check_extent(name, "BMP", static_cast<std::uint64_t>(w), rows, 4, 1, limits);
  if (bpp == 0 || bpp > 32) return;  // stb rejects these itself
  const std::uint64_t row_bytes = (static_cast<std::uint64_t>(w) * bpp + 31) / 32 * 4;
  const std::uint64_t last_row = (static_cast<std::uint64_t>(w) * bpp + 7) / 8;  // its padding may be missing
  const std::uint64_t need = std::max<std::uint64_t>(offset, 14 + std::uint64_t(header)) + row_bytes * (rows - 1) + last_row;
  if (b.size() < need)
    refuse(name, "truncated BMP: " + std::to_string(w) + " x " + std::to_string(rows) + " pixels at " + std::to_string(bpp) +
                     " bits need " + std::to_string(need) + " bytes, the file has " + std::to_string(b.size()));
}

// GIF (stb decodes the first frame): stb allocates 9 bytes per pixel of the logical screen from its header,
// however small the frame, so the screen is bounded by the limits and by the LZW data present: a code of at
// least one bit yields at most 4096 pixels (the longest dictionary string).
inline void check_gif(const std::vector<unsigned char>& b, const std::string& name, const ImageLimits& limits) {
  const std::size_t n = b.size();
  if (n < 13 || !(starts_with(b, "GIF87a", 6) || starts_with(b, "GIF89a", 6)))
    refuse(name, "truncated or corrupt GIF: " + std::to_string(n) + " bytes, without a GIF87a/GIF89a header");
  const std::uint64_t w = b[6] | b[7] << 8, h = b[8] | b[9] << 8;
  if (w == 0 || h == 0) refuse(name, "corrupt GIF: a screen of " + std::to_string(w) + " x " + std::to_string(h) + " pixels");
  check_extent(name, "GIF", w, h, 4, 1, limits);
  std::size_t i = 13 + ((b[10] & 0x80) ? 3 * (std::size_t(2) << (b[10] & 7)) : 0);  // after the global colours
  while (i < n && b[i] == 0x21) {  // extensions: label, then sub-blocks up to a zero length
    for (i += 2; i < n && b[i] != 0; i += std::size_t(b[i]) + 1) {
    }
    ++i;
  }
  if (i + 10 > n || b[i] != 0x2C) refuse(name, "truncated or corrupt GIF: no image descriptor where one was expected, at byte " + std::to_string(i));
  const std::uint64_t data = n - i - 10;
  if (mul_sat(w, h) > mul_sat(data + 1, 8 * 4096))
    refuse(name, "truncated GIF: a screen of " + std::to_string(w) + " x " + std::to_string(h) + " pixels cannot be filled by " +
                     std::to_string(data) + " bytes of image data (a decompression bomb?)");
}

}  // namespace detail

// The format of `bytes` by its signature (PNG, JPEG, BMP or GIF, tested as stb tests them); anything else throws
// format_error naming the file and, when the signature is known, the format.
inline ImageFormat detect_image_format(const std::vector<unsigned char>& b, const std::string& name) {
  using detail::starts_with;
  if (starts_with(b, "\x89PNG\r\n\x1a\n", 8)) return ImageFormat::Png;
  std::size_t fill = 0;
  while (fill < b.size() && b[fill] == 0xFF) ++fill;
  if (fill > 0 && fill < b.size() && b[fill] == 0xD8) return ImageFormat::Jpeg;
  if (starts_with(b, "BM", 2)) return ImageFormat::Bmp;
  if (starts_with(b, "GIF8", 4)) return ImageFormat::Gif;
  const std::pair<const char*, std::size_t> known[] = {
      {"8BPS", 4}, {"\x53\x80\xF6\x34", 4}, {"#?RADIANCE", 10}, {"#?RGBE", 6}, {"II*\0", 4}, {"MM\0*", 4},
      {"RIFF", 4}, {"P1", 2}, {"P2", 2}, {"P3", 2}, {"P4", 2}, {"P5", 2}, {"P6", 2}, {"P7", 2}, {"\0\0\0\x0C" "jP", 6}};
  const char* names[] = {"PSD", "PIC", "HDR", "HDR", "TIFF", "TIFF", "RIFF (WebP?)", "PNM", "PNM", "PNM", "PNM", "PNM", "PNM", "PAM", "JPEG 2000"};
  std::string what = "an unknown format (TGA has no signature and is not read either)";
  for (std::size_t k = 0; k < sizeof names / sizeof names[0]; ++k)
    if (starts_with(b, known[k].first, known[k].second)) what = names[k];
  if (b.empty()) what = "an empty file";
  detail::refuse(name, "unsupported image format: " + what + "; ember reads PNG, JPEG, BMP and GIF");
}

// Throws format_error (naming `name`) when the file declares sizes its bytes cannot hold or an image beyond
// `limits`; returns its format otherwise. Nothing is allocated in proportion to any declared size.
inline ImageFormat check_image(const std::vector<unsigned char>& bytes, const std::string& name,
                               const ImageLimits& limits = {}) {
  const ImageFormat format = detect_image_format(bytes, name);
  if (format == ImageFormat::Png) detail::check_png(bytes, name, limits);
  if (format == ImageFormat::Jpeg) detail::check_jpeg(bytes, name, limits);
  if (format == ImageFormat::Bmp) detail::check_bmp(bytes, name, limits);
  if (format == ImageFormat::Gif) detail::check_gif(bytes, name, limits);
  return format;
}

}  // namespace format
}  // namespace ember
