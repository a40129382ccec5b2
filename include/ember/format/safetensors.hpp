#pragma once
// The safetensors file format (https://huggingface.co/docs/safetensors), knowing nothing of models:
//
//   8 bytes   N, the header length, unsigned little-endian
//   N bytes   JSON object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end)} and an optional
//             "__metadata__" object of string -> string; we pad it with spaces to a multiple of 8
//   rest      the data section: raw little-endian values; offsets are relative to its start
//
// read_safetensors parses and checks the whole structure (sizes, JSON, dtypes, shapes, offsets, coverage);
// any problem throws ember::format_error naming the file, the problem and the offset. write_safetensors
// writes named tensors and metadata atomically (core/file.hpp). What the names mean (a module's dotted
// names, optimiser state) is io/checkpoint.hpp's business.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
#include "ember/core/shape.hpp"
#include "ember/core/tensor.hpp"
#include "ember/format/json.hpp"

namespace ember::format {

// One tensor of a safetensors header; begin/end are relative to the data section.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// A parsed and structurally checked safetensors file.
struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> tensors;  // in the order of data_offsets
  std::uint64_t data_start = 0;           // file offset of the data section (8 + N)
  std::vector<unsigned char> data;        // the data section
};

// A tensor for write_safetensors: F32 or F64 by the scalar type, or I64 (values rounded) when as_int64.
template <typename T>
struct SafetensorsTensor {
  std::string name;
  const TensorT<T>* tensor;
  bool as_int64;
};

namespace detail {

// A file of another format read as safetensors would report an absurd header length: name the format instead,
// and how to convert a PyTorch file (tools/checkpoint_to_torch.py goes the other way).
inline void check_not_other_format(const std::string& path, const std::vector<unsigned char>& b) {
  auto starts = [&](const char* magic, std::size_t n) { return b.size() >= n && std::memcmp(b.data(), magic, n) == 0; };
  const char* what = starts("\x89PNG\r\n\x1a\n", 8)                 ? "a PNG image"
                     : starts("\xff\xd8\xff", 3)                      ? "a JPEG image"
                     : starts("GIF8", 4)                               ? "a GIF image"
                     : starts("PK\x03\x04", 4)                        ? "a zip archive (torch.save's .pt/.pth format)"
                     : b.size() >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5 ? "a Python pickle (an old torch.save file)"
                                                                       : nullptr;
  if (what == nullptr) return;
  throw format_error(path + ": not a safetensors file: it is " + what +
                     ". Checkpoints are safetensors files; convert a PyTorch model in Python with "
                     "`from safetensors.torch import save_file; save_file(model.state_dict(), path)` "
                     "(tools/checkpoint_to_torch.py converts the other way)");
}

// Bytes per element of the dtypes of the safetensors spec; 0 for an unknown name.
inline std::uint64_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, std::uint64_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"F64", 8},     {"I64", 8}, {"U64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

// Headers beyond this are corrupt, not big: the largest real models have headers of a few MB.
constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

// Little-endian encoding, independent of the host's byte order.
inline void put_le(unsigned char* out, std::uint64_t bits, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<unsigned char>(bits >> (8 * i));
}
inline std::uint64_t get_le(const unsigned char* in, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(in[i]) << (8 * i);
  return v;
}

inline std::string errno_text() { return std::strerror(errno); }

[[noreturn]] inline void bad(const std::string& path, const std::string& what) {
  throw format_error(path + ": " + what);
}

// Converts n values of `dtype` (F32, F64 or I64) at `in` into `out`; format_error when a value would change.
template <typename T>
void decode(const std::string& path, const SafetensorsEntry& e, const unsigned char* in, std::uint64_t file_offset,
            T* out, std::int64_t n) {
  const std::uint64_t size = dtype_size(e.dtype);
  const int kind = e.dtype == "F32" ? 0 : e.dtype == "F64" ? 1 : 2;  // hoisted out of the loop
  for (std::int64_t i = 0; i < n; ++i) {
    const unsigned char* p = in + static_cast<std::uint64_t>(i) * size;
    long double exact = 0;
    bool nan = false;
    if (kind == 0) {
      const auto bits = static_cast<std::uint32_t>(get_le(p, 4));
      float f;
      std::memcpy(&f, &bits, 4);
      exact = f;
      nan = f != f;
    } else if (kind == 1) {
      const std::uint64_t bits = get_le(p, 8);
      double d;
      std::memcpy(&d, &bits, 8);
      exact = d;
      nan = d != d;
    } else {
      const std::uint64_t bits = get_le(p, 8);
      std::int64_t v;
      std::memcpy(&v, &bits, 8);
      exact = static_cast<long double>(v);
    }
    const T v = nan ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(exact);
    if (!nan && static_cast<long double>(v) != exact)
      bad(path, "tensor '" + e.name + "': " + e.dtype + " value at offset " +
                    std::to_string(file_offset + static_cast<std::uint64_t>(i) * size) +
                    " is not exactly representable in the model's " + (sizeof(T) == 4 ? "F32" : "F64"));
    out[i] = v;
  }
}

}  // namespace detail

// Reads and checks the structure of a safetensors file: the sizes, the JSON, dtypes, shapes and offsets
// (inside the data section, begin <= end, matching numel * dtype size, no overlaps, no holes).
// io_error when the file cannot be read; format_error naming the file and the problem otherwise.
inline SafetensorsFile read_safetensors(const std::string& path) {
  using detail::bad;
  // read_file refuses directories and sizes its buffer from fstat (a directory's seek-to-end on ext4 is
  // LLONG_MAX, and a failed read left the length bytes unset).
  const std::vector<unsigned char> bytes = read_file(path);
  const std::uint64_t file_size = bytes.size();
  if (file_size < 8 || detail::get_le(bytes.data(), 8) > std::min<std::uint64_t>(file_size - 8, detail::kMaxHeaderBytes))
    detail::check_not_other_format(path, bytes);
  if (file_size < 8)
    bad(path, "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length at offset 0");
  const std::uint64_t n = detail::get_le(bytes.data(), 8);
  if (n > file_size - 8)
    bad(path, "header length " + std::to_string(n) + " (offset 0) runs past the end of the " +
                  std::to_string(file_size) + "-byte file");
  if (n > detail::kMaxHeaderBytes)
    bad(path, "header length " + std::to_string(n) + " (offset 0) exceeds the limit of " +
                  std::to_string(detail::kMaxHeaderBytes) + " bytes");
  if (n < 2) bad(path, "header length " + std::to_string(n) + " (offset 0) is too short for a JSON object");
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  SafetensorsFile file;
  file.data_start = 8 + n;
  file.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(file.data_start), bytes.end());

  Json j;
  try {
    j = Json::parse(header);
  } catch (const JsonError& e) {
    // Valid syntax can still hold a number no double can hold ("1e999").
    if (e.out_of_range) bad(path, "header (offset 8) cannot be parsed: " + e.reason + " (offset " + std::to_string(8 + e.offset) + ")");
    bad(path, "header is not valid JSON at offset " + std::to_string(8 + e.offset) + ": " + e.reason);
  }
  if (!j.is_object()) bad(path, "header (offset 8) is not a JSON object");
  const std::uint64_t data_size = file.data.size();
  for (const auto& [key, v] : j.members()) {
    if (key == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not a JSON object");
      for (const auto& [mkey, mvalue] : v.members()) {
        if (!mvalue.is_string()) bad(path, "__metadata__ entry '" + mkey + "' is not a string");
        file.metadata[mkey] = mvalue.as_string();
      }
      continue;
    }
    const std::string who = "tensor '" + key + "'";
    if (!v.is_object()) bad(path, who + " is not a JSON object");
    const Json* dtype = v.find("dtype");
    if (!dtype || !dtype->is_string()) bad(path, who + " has no dtype string");
    SafetensorsEntry e;
    e.name = key;
    e.dtype = dtype->as_string();
    const std::uint64_t esize = detail::dtype_size(e.dtype);
    if (esize == 0) bad(path, who + " has unknown dtype '" + e.dtype + "'");
    const Json* shape = v.find("shape");
    if (!shape || !shape->is_array()) bad(path, who + " has no shape array");
    for (const auto& d : shape->items()) {
      if (!d.is_unsigned() || d.as_unsigned() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        bad(path, who + " has an invalid extent in its shape " + shape->dump());
      e.shape.push_back(static_cast<std::int64_t>(d.as_unsigned()));
    }
    std::int64_t numel = 0;
    try {
      numel = shape_numel(e.shape);
    } catch (const shape_error&) {
      bad(path, who + " has a shape " + to_string(e.shape) + " too large to index");
    }
    const Json* off = v.find("data_offsets");
    if (!off || !off->is_array() || off->items().size() != 2 || !off->items()[0].is_unsigned() ||
        !off->items()[1].is_unsigned())
      bad(path, who + " has no data_offsets [begin, end] of two non-negative integers");
    e.begin = off->items()[0].as_unsigned();
    e.end = off->items()[1].as_unsigned();
    if (e.begin > e.end)
      bad(path, who + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] with begin after end");
    if (e.end > data_size)
      bad(path, who + " has data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] (file offsets " + std::to_string(file.data_start + e.begin) + ".." +
                    std::to_string(file.data_start + e.end) + ") outside the " + std::to_string(data_size) +
                    "-byte data section");
    const auto un = static_cast<std::uint64_t>(numel);
    if (un > std::numeric_limits<std::uint64_t>::max() / esize || un * esize != e.end - e.begin)
      bad(path, who + ": " + e.dtype + " " + to_string(e.shape) + " needs " +
                    (un > std::numeric_limits<std::uint64_t>::max() / esize ? std::string("too many")
                                                                           : std::to_string(un * esize)) +
                    " bytes, data_offsets give " + std::to_string(e.end - e.begin) + " (at file offset " +
                    std::to_string(file.data_start + e.begin) + ")");
    file.tensors.push_back(std::move(e));
  }
  std::sort(file.tensors.begin(), file.tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // The data section must be covered exactly: no overlaps, and (as the spec demands) no holes.
  std::uint64_t covered = 0;
  const SafetensorsEntry* last = nullptr;
  for (const auto& e : file.tensors) {
    if (e.begin < covered)
      bad(path, "tensor '" + e.name + "' at data offset " + std::to_string(e.begin) + " (file offset " +
                    std::to_string(file.data_start + e.begin) + ") overlaps tensor '" + (last ? last->name : "") +
                    "', which ends at data offset " + std::to_string(covered));
    if (e.begin > covered)
      bad(path, "bytes " + std::to_string(covered) + ".." + std::to_string(e.begin) +
                    " of the data section (file offset " + std::to_string(file.data_start + covered) +
                    ") belong to no tensor");
    if (e.end > covered) {
      covered = e.end;
      last = &e;
    }
  }
  if (covered != data_size)
    bad(path, "the last " + std::to_string(data_size - covered) + " bytes of the data section (from file offset " +
                  std::to_string(file.data_start + covered) + ") belong to no tensor");
  return file;
}

// Writes `tensors` (data in this order) and `meta` as __metadata__ to `path` atomically. std::invalid_argument
// for a duplicate name; io_error naming the path when the file cannot be written.
template <typename T>
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor<T>>& tensors,
                       const std::map<std::string, std::string>& meta) {
  Json header = Json::object();
  Json metadata = Json::object();
  for (const auto& [k, v] : meta) metadata.add(k, Json(v));
  header.add("__metadata__", std::move(metadata));
  std::uint64_t offset = 0;
  const char* float_dtype = sizeof(T) == 4 ? "F32" : "F64";
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || header.find(t.name))
      throw std::invalid_argument("safetensors: duplicate tensor name '" + t.name + "'");
    const std::uint64_t bytes = static_cast<std::uint64_t>(t.tensor->numel()) * (t.as_int64 ? 8 : sizeof(T));
    header.add(t.name, Json::object({{"dtype", Json(t.as_int64 ? "I64" : float_dtype)},
                                     {"shape", Json::array_of(t.tensor->shape())},
                                     {"data_offsets", Json::array({Json(offset), Json(offset + bytes)})}}));
    offset += bytes;
  }
  std::string text = header.dump();
  // Padding to 8 bytes keeps the data section aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile file(path);
  unsigned char len[8];
  detail::put_le(len, text.size(), 8);
  file.write(len, 8);
  file.write(text.data(), text.size());
  std::vector<unsigned char> chunk(1 << 16);
  for (const auto& t : tensors) {
    const int size = t.as_int64 ? 8 : static_cast<int>(sizeof(T));
    const std::size_t per_chunk = chunk.size() / static_cast<std::size_t>(size);
    const std::int64_t n = t.tensor->numel();
    for (std::int64_t i0 = 0; i0 < n; i0 += static_cast<std::int64_t>(per_chunk)) {
      const std::int64_t i1 = std::min<std::int64_t>(n, i0 + static_cast<std::int64_t>(per_chunk));
      unsigned char* out = chunk.data();
      for (std::int64_t i = i0; i < i1; ++i, out += size) {
        const T v = (*t.tensor)[i];
        std::uint64_t bits = 0;
        if (t.as_int64) {
          const auto iv = static_cast<std::int64_t>(std::llround(static_cast<double>(v)));
          std::memcpy(&bits, &iv, 8);
        } else if (sizeof(T) == 4) {
          std::uint32_t b32;
          std::memcpy(&b32, &v, 4);
          bits = b32;
        } else {
          std::memcpy(&bits, &v, 8);
        }
        detail::put_le(out, bits, size);
      }
      file.write(chunk.data(), static_cast<std::size_t>(out - chunk.data()));
    }
  }
  file.commit();
}

}  // namespace ember::format
