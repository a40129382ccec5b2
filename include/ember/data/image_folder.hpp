#pragma once
// ImageFolder: a folder of one's own pictures, one sub-folder per class, as torchvision.datasets.ImageFolder:
//
//   root/cat/001.jpg, root/cat/holiday/2.PNG, root/dog/a.bmp, ...
//
// Classes are the sorted names of root's sub-folders (label = position); each class folder is searched
// recursively, directories in sorted order of their paths and files sorted within each (os.walk's order as
// torchvision sorts it), keeping the files whose extension is .png, .jpg, .jpeg, .bmp or .gif (its first frame)
// in any case. Files torchvision would also load but ember cannot decode (.webp, .tif, .tiff, .ppm, .pgm) are
// left out and reported: counted by skipped(), named by skipped_files(), and named in the error when a class
// folder ends up without images. Images
// are decoded when the DataLoader's workers ask for them (format/image.hpp), converted to `channels` (PIL's
// convert('L') or convert('RGB')) and brought to height x width, so a data set larger than memory trains;
// `cache` keeps the decoded, resized images in memory after their first use (C x H x W floats each).
//
// Bad files: with OnBadImage::Error (the default) the listing is quick and a file that cannot be read or
// decoded (corrupt, truncated, CMYK, ...) throws io_error / format_error naming its path when a batch
// reaches it. With OnBadImage::Skip every file is decoded once at construction and the bad ones are left
// out, counted by skipped() and named by skipped_files(). A root that is not a directory, a root without
// sub-folders and a class folder without images are errors at construction.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/transforms.hpp"
#include "ember/format/image.hpp"
#include "ember/kernels/resize_antialias.hpp"

namespace ember {
namespace data {

enum class OnBadImage { Error, Skip };

// How an image of another shape becomes height x width.
enum class FitMode {
  Stretch,         // resize to height x width (aspect ratio not kept): Resize((h, w))
  ResizeCenterCrop  // resize so the image covers height x width, keeping its aspect ratio, then crop the centre:
                    // Resize(min(h, w)) then CenterCrop((h, w)) when h == w
};

struct ImageFolderOptions {
  int channels = 3;         // 1 (gray) or 3 (RGB)
  std::int64_t height = 0;  // the fixed output size; required
  std::int64_t width = 0;
  FitMode fit = FitMode::Stretch;
  bool antialias = true;    // shrink as PIL's resize (averaging); false: torch's plain bilinear
  bool cache = false;       // keep decoded, resized images in memory after their first use
  OnBadImage on_error = OnBadImage::Error;
  format::ExifOrientation exif = format::ExifOrientation::Ignore;
  format::ImageLimits limits;
};

class ImageFolder {
 public:
  using target_type = std::int64_t;

  ImageFolder(const std::string& root, ImageFolderOptions options) : root_(root), options_(options) {
    if (options_.channels != 1 && options_.channels != 3)
      throw std::invalid_argument("ImageFolder: channels must be 1 or 3, got " + std::to_string(options_.channels));
    if (options_.height <= 0 || options_.width <= 0)
      throw std::invalid_argument("ImageFolder: height and width (the size every image is brought to) must be "
                                  "positive, got " + std::to_string(options_.height) + " x " +
                                  std::to_string(options_.width));
    scan();
    cache_ = std::make_shared<Cache>();
    if (options_.cache) cache_->images.resize(paths_.size());
    if (options_.on_error == OnBadImage::Skip) verify();
    num_classes = static_cast<std::int64_t>(classes_.size());
  }

  std::int64_t num_classes = 0;  // read it; as Dataset's (fit checks it against the model)

  std::int64_t size() const noexcept { return static_cast<std::int64_t>(paths_.size()); }
  const std::vector<std::string>& classes() const noexcept { return classes_; }
  const std::string& root() const noexcept { return root_; }
  const std::string& path(std::int64_t i) const { return paths_.at(static_cast<std::size_t>(i)); }
  std::int64_t target(std::int64_t i) const { return labels_.at(static_cast<std::size_t>(i)); }
  const std::vector<std::int64_t>& targets() const noexcept { return labels_; }
  const ImageFolderOptions& options() const noexcept { return options_; }
  std::int64_t channels() const noexcept { return options_.channels; }
  std::int64_t height() const noexcept { return options_.height; }
  std::int64_t width() const noexcept { return options_.width; }
  // Files left out, and why ("<path>: <reason>"): those of formats ember does not read (always), and the bad
  // ones OnBadImage::Skip finds.
  std::int64_t skipped() const noexcept { return static_cast<std::int64_t>(skipped_.size()); }
  const std::vector<std::string>& skipped_files() const noexcept { return skipped_; }

  // Images per class, index = label.
  std::vector<std::int64_t> histogram() const {
    std::vector<std::int64_t> counts(classes_.size(), 0);
    for (std::int64_t l : labels_) ++counts[static_cast<std::size_t>(l)];
    return counts;
  }

  // Sample i, decoded and brought to channels x height x width (0..255), into `image`. Thread-safe.
  void load(std::int64_t i, Tensor& image) const {
    if (i < 0 || i >= size())
      throw std::out_of_range("ImageFolder: sample " + std::to_string(i) + " of " + std::to_string(size()));
    const std::size_t k = static_cast<std::size_t>(i);
    if (options_.cache) {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      const Tensor& hit = cache_->images[k];
      if (hit.numel() > 0) {
        image.assign(hit);
        return;
      }
    }
    decode(paths_[k], image);
    if (options_.cache) {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      if (cache_->images[k].numel() == 0) cache_->images[k] = image;
    }
  }
  Tensor get(std::int64_t i) const {
    Tensor t;
    load(i, t);
    return t;
  }

  // Decodes one file as an ImageFolder with `options` does (channels, size, fit mode, EXIF, limits): for
  // predicting on new images exactly as in training. Throws io_error / format_error naming the file.
  static void decode_file(const std::string& path, const ImageFolderOptions& options, Tensor& out) {
    std::vector<unsigned char> bytes = read_file(path);
    const Tensor img = format::decode_image(bytes, path, options.channels, options.limits, options.exif);
    const std::int64_t h = img.size(1), w = img.size(2), oh = options.height, ow = options.width;
    if (options.fit == FitMode::Stretch) {
      resize(img, out, oh, ow, options.antialias);
      return;
    }
    // The scale at which the image just covers oh x ow; the covering side keeps its size exactly and the other
    // is truncated as torchvision's Resize(int) computes it (int(size * long / short)).
    std::int64_t rh = 0, rw = 0;
    if (static_cast<double>(oh) / static_cast<double>(h) >= static_cast<double>(ow) / static_cast<double>(w)) {
      rh = oh;
      rw = std::max(ow, static_cast<std::int64_t>(static_cast<double>(oh * w) / static_cast<double>(h)));
    } else {
      rw = ow;
      rh = std::max(oh, static_cast<std::int64_t>(static_cast<double>(ow * h) / static_cast<double>(w)));
    }
    thread_local Tensor resized;
    resize(img, resized, rh, rw, options.antialias);
    center_crop_into(resized, out, oh, ow);
  }
  void decode(const std::string& path, Tensor& out) const { decode_file(path, options_, out); }

 private:
  struct Cache {
    std::mutex mutex;
    std::vector<Tensor> images;
  };

  static void resize(const Tensor& img, Tensor& out, std::int64_t oh, std::int64_t ow, bool antialias) {
    if (img.size(1) == oh && img.size(2) == ow)
      out.assign(img);
    else if (antialias)
      kernels::resize_antialias_into(img, out, oh, ow);
    else
      kernels::resize_into(img, out, oh, ow);
  }

  static std::string extension(const std::filesystem::path& p) {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext;
  }
  static bool is_image_file(const std::filesystem::path& p) {
    const std::string ext = extension(p);
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".gif";
  }
  // Images torchvision's ImageFolder would load (through PIL) that ember cannot decode: reported, not ignored.
  static const char* unreadable_format(const std::filesystem::path& p) {
    const std::string ext = extension(p);
    if (ext == ".webp") return "WebP";
    if (ext == ".tif" || ext == ".tiff") return "TIFF";
    if (ext == ".ppm" || ext == ".pgm") return "PNM";
    return nullptr;
  }

  // `dir` and every directory under it (symbolic links to directories followed, a link cycle walked once).
  static void directories(const std::filesystem::path& dir, std::vector<std::string>& out,
                          std::set<std::filesystem::path>& seen) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path canonical = fs::canonical(dir, ec);
    if (ec || !seen.insert(canonical).second) return;
    out.push_back(dir.string());
    std::vector<fs::path> subdirs;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory(ec)) subdirs.push_back(it->path());
    if (ec) throw io_error(dir.string() + ": cannot list the directory: " + ec.message());
    for (const auto& d : subdirs) directories(d, out, seen);
  }

  // Image files under `dir`, recursively, in sorted(os.walk(dir)) order: directories sorted by path, files
  // sorted by name within each.
  std::vector<std::string> image_files(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    std::vector<std::string> dirs, files;
    std::set<fs::path> seen;
    directories(dir, dirs, seen);
    std::sort(dirs.begin(), dirs.end());
    for (const auto& d : dirs) {
      std::vector<std::string> names, unreadable;
      std::error_code ec;
      for (fs::directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_directory(ec)) continue;
        if (is_image_file(it->path())) names.push_back(it->path().filename().string());
        else if (const char* format = unreadable_format(it->path()))
          unreadable.push_back(it->path().string() + ": " + format + " images are not read by ember (convert "
                               "them to PNG or JPEG)");
      }
      if (ec) throw io_error(d + ": cannot list the directory: " + ec.message());
      std::sort(unreadable.begin(), unreadable.end());
      skipped_.insert(skipped_.end(), unreadable.begin(), unreadable.end());
      std::sort(names.begin(), names.end());
      for (const auto& n : names) files.push_back((fs::path(d) / n).string());
    }
    return files;
  }

  void scan() {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(root_, ec))
      throw io_error(root_ + ": ImageFolder expected a directory with one sub-folder per class, " +
                     (fs::exists(root_, ec) ? std::string("got a file") : std::string("it does not exist")));
    for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory(ec)) classes_.push_back(it->path().filename().string());
    if (ec) throw io_error(root_ + ": cannot list the directory: " + ec.message());
    if (classes_.empty())
      throw io_error(root_ + ": ImageFolder found no class folder (expected one sub-folder per class, each "
                     "holding that class's images)");
    std::sort(classes_.begin(), classes_.end());
    for (std::size_t c = 0; c < classes_.size(); ++c) {
      const std::vector<std::string> files = image_files(fs::path(root_) / classes_[c]);
      if (files.empty())
        throw io_error((fs::path(root_) / classes_[c]).string() + ": the class folder '" + classes_[c] +
                       "' holds no image (.png, .jpg, .jpeg, .bmp or .gif, in any case)" +
                       (skipped_.empty() ? "" : "; skipped " + std::to_string(skipped_.size()) +
                                                    " files ember cannot read, the last: " + skipped_.back()));
      paths_.insert(paths_.end(), files.begin(), files.end());
      labels_.insert(labels_.end(), files.size(), static_cast<std::int64_t>(c));
    }
  }

  // OnBadImage::Skip: decodes every file once; keeps the good ones (and caches them when asked).
  void verify() {
    std::vector<std::string> paths;
    std::vector<std::int64_t> labels;
    std::vector<Tensor> cached;
    Tensor image;
    for (std::size_t k = 0; k < paths_.size(); ++k) {
      try {
        decode(paths_[k], image);
      } catch (const std::runtime_error& e) {  // io_error, format_error
        skipped_.push_back(e.what());
        continue;
      }
      paths.push_back(paths_[k]);
      labels.push_back(labels_[k]);
      if (options_.cache) cached.push_back(image);
    }
    std::vector<std::int64_t> left(classes_.size(), 0);
    for (std::int64_t l : labels) ++left[static_cast<std::size_t>(l)];
    for (std::size_t c = 0; c < classes_.size(); ++c)
      if (left[c] == 0)
        throw io_error((std::filesystem::path(root_) / classes_[c]).string() + ": the class folder '" +
                       classes_[c] + "' holds no readable image (" + std::to_string(skipped_.size()) +
                       " files skipped in all; the first: " + skipped_.front() + ")");
    paths_.swap(paths);
    labels_.swap(labels);
    if (options_.cache) cache_->images = std::move(cached);
  }

  std::string root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_, paths_, skipped_;
  std::vector<std::int64_t> labels_;
  std::shared_ptr<Cache> cache_;
};

}  // namespace data
}  // namespace ember
