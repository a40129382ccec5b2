#pragma once
// Dataset: images N x C x H x W as raw 0..255 floats plus integer labels, and the byte reader the file
// loaders share (plain or gzip, decided by the gzip magic rather than the file name).
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
#include "ember/format/gzip.hpp"

namespace ember {
namespace data {

struct Dataset {
  using target_type = std::int64_t;

  Tensor images;                         // N x C x H x W, raw pixel values 0..255
  std::vector<std::int64_t> labels;      // N entries in [0, num_classes)
  std::int64_t num_classes = 0;
  std::vector<std::string> class_names;  // num_classes entries (or empty)

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(labels.size()); }
  std::int64_t channels() const { return images.dim() == 4 ? images.size(1) : 0; }
  std::int64_t height() const { return images.dim() == 4 ? images.size(2) : 0; }
  std::int64_t width() const { return images.dim() == 4 ? images.size(3) : 0; }

  // Sample i (C x H x W) into `image`, reusing its storage; its label. For the DataLoader (any thread).
  void load(std::int64_t i, Tensor& image) const {
    const Shape& s = images.shape();
    if (image.dim() != 3 || image.size(0) != s[1] || image.size(1) != s[2] || image.size(2) != s[3])
      image.resize({s[1], s[2], s[3]});
    const std::int64_t per = s[1] * s[2] * s[3];
    std::copy(images.data() + i * per, images.data() + (i + 1) * per, image.data());
  }
  std::int64_t target(std::int64_t i) const { return labels[static_cast<std::size_t>(i)]; }

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

  static std::int64_t max_label(const std::vector<std::int64_t>& labels) {
    return labels.empty() ? -1 : *std::max_element(labels.begin(), labels.end());
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
    if (num_classes <= 0 && !labels.empty())
      throw std::invalid_argument("Dataset: num_classes is not set (it is " + std::to_string(num_classes) + ") for " +
                                  std::to_string(labels.size()) + " labels: set dataset.num_classes to the number of "
                                  "classes (1 + the largest label, here " + std::to_string(max_label(labels) + 1) + ")");
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0 || labels[i] >= num_classes)
        throw std::invalid_argument("Dataset: label " + std::to_string(labels[i]) + " of sample " +
                                    std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
  }
};

// The whole content of a file, gunzipped when it starts with the gzip magic (1f 8b; concatenated members
// are read one after another). Open/read failures throw io_error; a corrupt or truncated gzip stream, or one
// inflating past `max_inflated` bytes, throws format_error; both name the file. Memory follows the data
// actually inflated (format/gzip.hpp), never a size claimed by a header.
inline std::vector<unsigned char> read_bytes(const std::string& path,
                                             std::uint64_t max_inflated = format::kNoInflateLimit) {
  std::vector<unsigned char> raw = read_file(path);
  if (!format::is_gzip(raw)) return raw;
  return format::gunzip(raw, path, max_inflated);
}

}  // namespace data
}  // namespace ember
