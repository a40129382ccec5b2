#pragma once
// Dataset: images N x C x H x W as raw 0..255 floats plus integer labels, and the byte reader the file
// loaders share (plain or gzip, decided by the gzip magic rather than the file name).
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
#include "ember/core/shape.hpp"
#include "ember/core/tensor.hpp"

namespace ember {
namespace data {

struct Dataset {
  Tensor images;                         // N x C x H x W, raw pixel values 0..255
  std::vector<std::int64_t> labels;      // N entries in [0, num_classes)
  std::int64_t num_classes = 0;
  std::vector<std::string> class_names;  // num_classes entries (or empty)

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t channels() const { return images.dim() == 4 ? images.size(1) : 0; }
  std::int64_t height() const { return images.dim() == 4 ? images.size(2) : 0; }
  std::int64_t width() const { return images.dim() == 4 ? images.size(3) : 0; }

  // Images per class, index = label.
  std::vector<std::int64_t> histogram() const {
    std::vector<std::int64_t> counts(static_cast<std::size_t>(std::max<std::int64_t>(num_classes, 0)), 0);
    for (std::int64_t label : labels)
      if (label >= 0 && label < num_classes) ++counts[static_cast<std::size_t>(label)];
    return counts;
  }

  // The first min(n, size()) samples (for --limit); n < 0 is an error.
  Dataset subset(std::int64_t first_n) const {
    if (first_n < 0) throw std::invalid_argument("Dataset::subset: negative count " + std::to_string(first_n));
    validate();
    const std::int64_t n = std::min(first_n, size());
    Dataset out;
    Shape shape = images.shape();
    shape[0] = n;
    out.images = Tensor(shape);
    const std::int64_t per = n == 0 ? 0 : images.numel() / std::max<std::int64_t>(size(), 1);
    std::copy(images.begin(), images.begin() + n * per, out.images.begin());
    out.labels.assign(labels.begin(), labels.begin() + n);
    out.num_classes = num_classes;
    out.class_names = class_names;
    return out;
  }

  // Throws shape_error / std::invalid_argument when the parts disagree.
  void validate() const {
    if (images.dim() != 4) throw shape_error("Dataset: images must be N x C x H x W, got " + to_string(images.shape()));
    if (images.size(0) != size())
      throw shape_error("Dataset: " + std::to_string(images.size(0)) + " images but " + std::to_string(size()) +
                        " labels");
    if (!class_names.empty() && static_cast<std::int64_t>(class_names.size()) != num_classes)
      throw std::invalid_argument("Dataset: " + std::to_string(class_names.size()) + " class names for " +
                                  std::to_string(num_classes) + " classes");
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0 || labels[i] >= num_classes)
        throw std::invalid_argument("Dataset: label " + std::to_string(labels[i]) + " of sample " +
                                    std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
  }
};

// The whole content of a file, gunzipped when it starts with the gzip magic (1f 8b; concatenated members
// are read one after another). Open/read failures throw io_error, a corrupt or truncated gzip stream throws
// format_error; both name the file. Inflation runs in chunks into a buffer that grows with the real output,
// so memory follows the data actually present, never a size claimed by a header.
inline std::vector<unsigned char> read_bytes(const std::string& path) {
  std::vector<unsigned char> raw = read_file(path);
  if (raw.size() < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;

  std::vector<unsigned char> out;
  // The gzip trailer holds the size mod 2^32: a hint for reserve, capped by deflate's best ratio (~1032:1).
  if (raw.size() >= 18) {
    const std::size_t n = raw.size();
    const std::uint64_t isize = std::uint64_t(raw[n - 4]) | std::uint64_t(raw[n - 3]) << 8 |
                                std::uint64_t(raw[n - 2]) << 16 | std::uint64_t(raw[n - 1]) << 24;
    out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(isize, std::uint64_t(n) * 1032u)));
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw io_error(path + ": zlib inflateInit2 failed");
  std::size_t in_pos = 0;
  constexpr std::size_t chunk = std::size_t(1) << 20;
  int ret = Z_OK;
  for (;;) {
    const std::size_t avail_in = std::min<std::size_t>(raw.size() - in_pos, std::numeric_limits<uInt>::max());
    zs.next_in = raw.data() + in_pos;
    zs.avail_in = static_cast<uInt>(avail_in);
    const std::size_t old = out.size();
    // Fill the reserved space exactly before growing, so an exact hint never costs a reallocation.
    const std::size_t room = out.capacity() - old;
    const std::size_t step = room >= 4096 ? std::min(room, chunk) : chunk;
    out.resize(old + step);
    zs.next_out = out.data() + old;
    zs.avail_out = static_cast<uInt>(step);
    ret = inflate(&zs, Z_NO_FLUSH);
    out.resize(old + step - zs.avail_out);
    in_pos += avail_in - zs.avail_in;
    if (ret == Z_STREAM_END) {
      // Another gzip member may follow (as `cat a.gz b.gz`); anything else after the end is an error.
      if (in_pos == raw.size()) break;
      if (raw.size() - in_pos >= 2 && raw[in_pos] == 0x1f && raw[in_pos + 1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      inflateEnd(&zs);
      throw format_error(path + ": " + std::to_string(raw.size() - in_pos) +
                         " bytes of garbage after the gzip stream at byte " + std::to_string(in_pos));
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR && in_pos == raw.size()) {
      inflateEnd(&zs);
      throw format_error(path + ": truncated gzip stream (input ends at byte " + std::to_string(in_pos) +
                         " after " + std::to_string(out.size()) + " decompressed bytes)");
    }
    const std::string why = zs.msg ? zs.msg : "zlib error " + std::to_string(ret);
    inflateEnd(&zs);
    if (ret == Z_MEM_ERROR) throw std::bad_alloc();
    throw format_error(path + ": corrupt gzip stream near byte " + std::to_string(in_pos) + ": " + why);
  }
  inflateEnd(&zs);
  return out;
}

}  // namespace data
}  // namespace ember
