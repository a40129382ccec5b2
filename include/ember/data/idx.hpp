#pragma once
// IDX files (LeCun's MNIST format, also Fashion-MNIST): a big-endian header of magic 0x0000TTDD (type TT,
// DD dimensions) and DD uint32 extents, then the data. Only unsigned-byte data (TT = 0x08) is accepted, as
// in every MNIST-like set. Plain or gzip (inflated to no more than the header claims). Every size is checked against the bytes actually present before
// anything is allocated, and trailing bytes are an error.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/core/file.hpp"
#include "ember/data/dataset.hpp"
#include "ember/format/gzip.hpp"

namespace ember {
namespace data {

namespace detail {

inline std::uint32_t read_be32(const unsigned char* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
}

// Checks the header of an unsigned-byte IDX file with `dims` dimensions and returns the extents. The data
// (everything after the header) must hold exactly the product of the extents.
inline std::vector<std::uint64_t> parse_idx_header(const std::vector<unsigned char>& bytes, unsigned dims,
                                                   const std::string& path) {
  if (bytes.size() < 4)
    throw format_error(path + ": truncated IDX file: " + std::to_string(bytes.size()) +
                       " bytes, the magic number alone needs 4");
  const std::uint32_t magic = read_be32(bytes.data());
  const std::uint32_t expected = 0x00000800u | dims;
  if (magic != expected) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "bad magic number 0x%08X at byte 0 (expected 0x%08X)", magic, expected);
    throw format_error(path + ": " + buf + (dims == 3 ? ", not an IDX image file" : ", not an IDX label file"));
  }
  const std::size_t header = 4 + 4 * std::size_t(dims);
  if (bytes.size() < header)
    throw format_error(path + ": truncated IDX header: " + std::to_string(bytes.size()) + " bytes, need " +
                       std::to_string(header));
  std::vector<std::uint64_t> extents(dims);
  std::uint64_t total = 1;
  bool any_zero = false, too_large = false;
  const std::uint64_t available = bytes.size() - header;
  for (unsigned d = 0; d < dims; ++d) {
    extents[d] = read_be32(bytes.data() + 4 + 4 * d);
    // Multiply only while the product stays <= available: no overflow, whatever the header claims.
    if (extents[d] == 0)
      any_zero = true;
    else if (total > available / extents[d])
      too_large = true;
    else
      total *= extents[d];
  }
  if (any_zero) total = 0;
  if (too_large && !any_zero) total = available + 1;
  if (total > available) {
    std::string dims_text;
    for (unsigned d = 0; d < dims; ++d) dims_text += (d ? " x " : "") + std::to_string(extents[d]);
    throw format_error(path + ": truncated IDX file: the header at byte 4 claims " + dims_text + " bytes of data but only " +
                       std::to_string(available) + " follow the " + std::to_string(header) + "-byte header");
  }
  if (total < available)
    throw format_error(path + ": " + std::to_string(available - total) + " unexpected trailing bytes at byte " +
                       std::to_string(header + total) + " after the IDX data");
  return extents;
}

// The file's bytes; a gzip file may inflate to no more than its IDX header claims (header + product of the
// extents), so a small file cannot inflate without bound. The header is read from the first inflated bytes.
inline std::vector<unsigned char> read_idx_bytes(const std::string& path, unsigned dims) {
  std::vector<unsigned char> raw = read_file(path);
  if (!format::is_gzip(raw)) return raw;
  const std::size_t header = 4 + 4 * std::size_t(dims);
  const std::vector<unsigned char> head = format::gunzip(raw, path, header, /*prefix_only=*/true);
  // A short or foreign header: parse_idx_header says what is wrong with it.
  if (head.size() < header || read_be32(head.data()) != (0x00000800u | dims)) return head;
  std::uint64_t total = 1;
  for (unsigned d = 0; d < dims; ++d) {
    const std::uint64_t e = read_be32(head.data() + 4 + 4 * d);
    total = (e != 0 && total > (std::uint64_t(1) << 62) / e) ? (std::uint64_t(1) << 62) : total * e;
  }
  return format::gunzip(raw, path, header + total);
}

}  // namespace detail

// An IDX3 unsigned-byte image file -> N x 1 x H x W float tensor of pixel values 0..255.
inline Tensor read_idx_images(const std::string& path) {
  const std::vector<unsigned char> bytes = detail::read_idx_bytes(path, 3);
  const std::vector<std::uint64_t> ext = detail::parse_idx_header(bytes, 3, path);
  if (ext[1] == 0 || ext[2] == 0)
    throw format_error(path + ": the header at byte 8 claims images of " + std::to_string(ext[1]) + " x " +
                       std::to_string(ext[2]) + " pixels; an image needs at least one");
  Tensor images({static_cast<std::int64_t>(ext[0]), 1, static_cast<std::int64_t>(ext[1]),
                 static_cast<std::int64_t>(ext[2])});
  const unsigned char* src = bytes.data() + 16;
  float* dst = images.data();
  const std::int64_t n = images.numel();
  for (std::int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  return images;
}

// An IDX1 unsigned-byte label file -> one label per entry.
inline std::vector<std::int64_t> read_idx_labels(const std::string& path) {
  const std::vector<unsigned char> bytes = detail::read_idx_bytes(path, 1);
  const std::vector<std::uint64_t> ext = detail::parse_idx_header(bytes, 1, path);
  return std::vector<std::int64_t>(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(ext[0]));
}

// MNIST's digit names.
inline std::vector<std::string> mnist_classes() { return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}; }

// Fashion-MNIST's class names, in label order (as torchvision.datasets.FashionMNIST.classes).
inline std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

// Reads train-images-idx3-ubyte / train-labels-idx1-ubyte (train) or t10k-* (test) from dir, each plain or
// with a .gz suffix (the plain file wins when both exist). The same names serve MNIST and Fashion-MNIST:
// pass fashion_mnist_classes() as class_names for the latter. Labels must lie in [0, class_names.size()).
inline Dataset load_mnist(const std::string& dir, bool train, std::vector<std::string> class_names = mnist_classes()) {
  namespace fs = std::filesystem;
  const std::string prefix = train ? "train" : "t10k";
  auto find = [&](const std::string& name) {
    const fs::path plain = fs::path(dir) / name;
    std::error_code ec;
    if (fs::exists(plain, ec)) return plain.string();
    const fs::path gz = fs::path(dir) / (name + ".gz");
    if (fs::exists(gz, ec)) return gz.string();
    throw io_error(dir + ": neither " + name + " nor " + name + ".gz exists");
  };
  const std::string images_path = find(prefix + "-images-idx3-ubyte");
  const std::string labels_path = find(prefix + "-labels-idx1-ubyte");
  if (class_names.empty()) throw std::invalid_argument("load_mnist: class_names is empty");
  Dataset ds;
  ds.images = read_idx_images(images_path);
  ds.labels = read_idx_labels(labels_path);
  ds.num_classes = static_cast<std::int64_t>(class_names.size());
  ds.class_names = std::move(class_names);
  if (ds.images.size(0) != ds.size())
    throw format_error(images_path + " holds " + std::to_string(ds.images.size(0)) + " images but " + labels_path +
                       " holds " + std::to_string(ds.size()) + " labels");
  for (std::size_t i = 0; i < ds.labels.size(); ++i)
    if (ds.labels[i] >= ds.num_classes)
      throw format_error(labels_path + ": label " + std::to_string(ds.labels[i]) + " at byte " +
                         std::to_string(8 + i) + " is outside [0, " + std::to_string(ds.num_classes) + ")");
  return ds;
}

}  // namespace data
}  // namespace ember
