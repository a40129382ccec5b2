#pragma once
// Images in CSV, as Sign Language MNIST, MNIST and Fashion-MNIST are shared: a header
// `label,pixel1,...,pixelK` (K a square, 784 for the real files), then one row per image `label,p1,...,pK` of
// plain decimal integers. LF or CRLF line ends, plain or gzip. Parsing is
// hand-written over the in-memory bytes (no streams, no strtod): both real files load in a fraction of a
// second. Every cell is checked; errors name the file, the line and the column.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/tensor.hpp"
#include "ember/data/dataset.hpp"

namespace ember {
namespace data {

// The most a gzip CSV may inflate to: 1 GiB, twelve times Sign-MNIST's training file (83 MB).
// A CSV header says nothing about the row count, so this is a cap,
// not a bound from the file; pass a larger one to load_sign_mnist for larger sets.
constexpr std::uint64_t kCsvMaxInflatedBytes = std::uint64_t(1) << 30;

namespace detail {

class CsvCursor {
 public:
  CsvCursor(const std::vector<unsigned char>& bytes, const std::string& path)
      : p_(bytes.data()), end_(bytes.data() + bytes.size()), path_(path) {}

  bool at_end() const { return p_ == end_; }
  std::int64_t line() const { return line_; }

  [[noreturn]] void fail(std::int64_t column, const std::string& what) const {
    throw format_error(path_ + ": line " + std::to_string(line_) +
                       (column > 0 ? ", column " + std::to_string(column) : std::string()) + ": " + what);
  }

  // The raw text of the current cell, for messages.
  std::string cell_text() const {
    const unsigned char* e = p_;
    while (e != end_ && *e != ',' && *e != '\n' && *e != '\r' && e - p_ < 21) ++e;
    return "'" + escape_bytes(std::string_view(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(e - p_)), 20) +
           "'";
  }

  // A non-negative decimal integer of at most 9 digits; leaves the cursor on the separator after it.
  std::int64_t integer(std::int64_t column, const char* name) {
    const unsigned char* start = p_;
    std::int64_t v = 0;
    while (p_ != end_ && static_cast<unsigned>(*p_ - '0') < 10u) {
      if (p_ - start == 9) {
        p_ = start;
        fail(column, std::string(name) + " " + cell_text() + " has too many digits");
      }
      v = v * 10 + (*p_ - '0');
      ++p_;
    }
    if (p_ == start || (p_ != end_ && *p_ != ',' && *p_ != '\n' && *p_ != '\r')) {
      p_ = start;
      fail(column, std::string(name) + " " + (at_end() || *p_ == ',' || *p_ == '\n' || *p_ == '\r'
                                                   ? std::string("is empty")
                                                   : cell_text() + " is not a non-negative integer"));
    }
    return v;
  }

  // Consumes a ',' (more cells follow on this line) or fails naming the column count.
  void comma(std::int64_t column, std::int64_t expected_columns) {
    if (p_ != end_ && *p_ == ',') {
      ++p_;
      return;
    }
    fail(0, std::to_string(column) + " columns, expected " + std::to_string(expected_columns));
  }

  // Consumes the line end (LF, CRLF, or the end of the file) or fails naming the column count.
  void end_of_line(std::int64_t columns) {
    if (p_ != end_ && *p_ == '\r') {
      ++p_;
      if (p_ == end_ || *p_ != '\n') fail(0, "carriage return not followed by a line feed");
    }
    if (p_ != end_) {
      if (*p_ == ',') fail(0, "more than " + std::to_string(columns) + " columns");
      ++p_;  // '\n'
    }
    ++line_;
  }

  // The current line's text up to its end (without CR/LF), consumed.
  std::string take_line() {
    const unsigned char* e = static_cast<const unsigned char*>(std::memchr(p_, '\n', static_cast<std::size_t>(end_ - p_)));
    if (!e) e = end_;
    const unsigned char* text_end = (e != p_ && e[-1] == '\r') ? e - 1 : e;
    std::string s(p_, text_end);
    p_ = e == end_ ? e : e + 1;
    ++line_;
    return s;
  }

 private:
  const unsigned char* p_;
  const unsigned char* end_;
  const std::string& path_;
  std::int64_t line_ = 1;
};

}  // namespace detail

// Loads a label-and-pixels CSV into a Dataset of N x 1 x S x S images (S*S = number of pixel columns).
// `map_label(file_label, why)` gives the dataset's label, or -1 with `why` set for a label the set cannot hold
// (an error naming the line). A pixel outside 0..255, a non-numeric or empty cell, a wrong column count or a
// blank line is an error too. A gzip file may inflate to at most `max_inflated_bytes`, else format_error.
// Class names and count are the caller's.
template <class LabelMap>
Dataset read_label_pixel_csv(const std::string& csv_path, LabelMap map_label,
                             std::uint64_t max_inflated_bytes = kCsvMaxInflatedBytes) {
  const std::vector<unsigned char> bytes = read_bytes(csv_path, max_inflated_bytes);
  detail::CsvCursor cur(bytes, csv_path);
  if (cur.at_end()) throw format_error(csv_path + ": empty file, expected the header label,pixel1,...");

  const std::string header = cur.take_line();
  std::int64_t pixels = 0;
  {
    std::size_t pos = 0;
    auto next_cell = [&]() {
      const std::size_t comma = header.find(',', pos);
      std::string cell = header.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      pos = comma == std::string::npos ? header.size() + 1 : comma + 1;
      return cell;
    };
    if (next_cell() != "label")
      throw format_error(csv_path + ": line 1: the header must start with 'label', got '" + escape_bytes(header) + "'");
    while (pos <= header.size()) {
      const std::string cell = next_cell();
      if (cell != "pixel" + std::to_string(pixels + 1))
        throw format_error(csv_path + ": line 1, column " + std::to_string(pixels + 2) + ": expected header 'pixel" +
                           std::to_string(pixels + 1) + "', got '" + escape_bytes(cell) + "'");
      ++pixels;
    }
  }
  std::int64_t side = 0;
  while (side * side < pixels) ++side;
  if (pixels == 0 || side * side != pixels)
    throw format_error(csv_path + ": line 1: " + std::to_string(pixels) +
                       " pixel columns do not make a square image");
  const std::int64_t columns = pixels + 1;

  // Blank lines are errors, so the line ends after the header count the rows exactly (plus an unterminated
  // last line): the tensor is allocated once, from the real data length, and filled in place.
  std::size_t rows = 0;
  {
    const unsigned char* p = bytes.data();
    const unsigned char* end = bytes.data() + bytes.size();
    const unsigned char* last = p;
    while (p != end && (p = static_cast<const unsigned char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p))))) {
      ++rows;
      last = ++p;
      if (p == end) break;
    }
    if (last != end) ++rows;  // a final line without a line end
    --rows;                   // the header
  }
  if (rows == 0) throw format_error(csv_path + ": no data rows after the header");
  // A valid row has `columns` cells of at least one digit, the commas between them and a line end (but the
  // last), so the bytes present bound the rows that can parse. Allocating for the line ends alone would let a
  // small file (a wide header, then blank lines) ask for gigabytes; parsing fails before this bound is reached.
  const std::size_t data_bytes = bytes.size() - header.size();
  const std::size_t row_capacity = std::min<std::size_t>(rows, data_bytes / (2 * static_cast<std::size_t>(columns)) + 1);
  Dataset ds;
  ds.images = Tensor({static_cast<std::int64_t>(row_capacity), 1, side, side});
  std::vector<std::int64_t> labels;
  labels.reserve(row_capacity);
  float* dst = ds.images.data();

  while (!cur.at_end()) {
    const std::int64_t file_label = cur.integer(1, "label");
    std::string why;
    const std::int64_t label = map_label(file_label, why);
    if (label < 0) cur.fail(1, "label " + std::to_string(file_label) + " " + why);
    // Cannot happen (see row_capacity); keeps the writes in bounds whatever the file holds.
    if (labels.size() == row_capacity) cur.fail(0, "more rows than the file can hold");
    labels.push_back(label);
    for (std::int64_t c = 2; c <= columns; ++c) {
      cur.comma(c - 1, columns);
      const std::int64_t v = cur.integer(c, "pixel");
      if (v > 255) cur.fail(c, "pixel value " + std::to_string(v) + " is outside 0..255");
      *dst++ = static_cast<float>(v);
    }
    cur.end_of_line(columns);
  }
  if (labels.size() != rows || rows != row_capacity) throw format_error(csv_path + ": internal row count mismatch");

  ds.labels = std::move(labels);
  return ds;
}

// A label-and-pixels CSV with the file's labels as they are (0 and up, below `max_classes`); the class count
// is the largest label + 1. For MNIST-style CSV exports.
inline Dataset load_csv_images(const std::string& csv_path, std::int64_t max_classes = 1000,
                               std::uint64_t max_inflated_bytes = kCsvMaxInflatedBytes) {
  Dataset ds = read_label_pixel_csv(
      csv_path,
      [&](std::int64_t label, std::string& why) -> std::int64_t {
        if (label < max_classes) return label;
        why = "is not below the limit of " + std::to_string(max_classes) + " classes";
        return -1;
      },
      max_inflated_bytes);
  for (const std::int64_t l : ds.labels) ds.num_classes = std::max(ds.num_classes, l + 1);
  return ds;
}

}  // namespace data
}  // namespace ember
