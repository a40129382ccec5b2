#pragma once
// The messages of an ONNX file as read (onnx.proto's field numbers): ModelProto, GraphProto, NodeProto,
// AttributeProto, TensorProto and ValueInfoProto, decoded by format/protobuf_reader.hpp. Fields not listed
// are skipped. A tensor's values are decoded to float (FLOAT, DOUBLE, FLOAT16 excluded) or int64 (INT64,
// INT32, INT16, INT8, UINT8, BOOL) from raw_data or the typed fields; its element count must match its dims.
// External data (data_location EXTERNAL) is read from the model's own folder: a location that is absolute or
// leaves the folder is a format_error. io/onnx_import.hpp makes a graph::Graph of the result.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
#include "ember/format/protobuf_reader.hpp"

namespace ember::format {

struct OnnxReadTensor {
  std::string name;
  std::int32_t data_type = 0;
  std::vector<std::int64_t> dims;
  bool is_float = true;  // values in f, else in i
  std::vector<float> f;
  std::vector<std::int64_t> i;
  std::size_t numel() const { return is_float ? f.size() : i.size(); }
};

struct OnnxReadAttribute {
  std::string name;
  std::int32_t type = 0;  // AttributeProto.AttributeType: FLOAT 1, INT 2, STRING 3, TENSOR 4, FLOATS 6, INTS 7, STRINGS 8
  float f = 0;
  std::int64_t i = 0;
  std::string s;
  std::vector<OnnxReadTensor> t;  // zero or one
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
  std::vector<std::string> strings;
};

struct OnnxReadNode {
  std::string op_type, name, domain;
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxReadAttribute> attributes;
};

struct OnnxReadValueInfo {
  std::string name;
  std::int32_t elem_type = 0;
  bool has_shape = false;
  std::vector<std::int64_t> dims;  // -1 for a dim_param or an unknown size
};

struct OnnxReadGraph {
  std::vector<OnnxReadNode> nodes;
  std::vector<OnnxReadTensor> initializers;
  std::vector<OnnxReadValueInfo> inputs, outputs, value_info;
};

struct OnnxReadModel {
  std::int64_t ir_version = 0;
  std::vector<std::pair<std::string, std::int64_t>> opsets;  // domain, version
  OnnxReadGraph graph;
  std::vector<std::pair<std::string, std::string>> metadata;
};

namespace onnx_read_detail {

enum DataType : std::int32_t {
  kFloat = 1, kUint8 = 2, kInt8 = 3, kInt16 = 5, kInt32 = 6, kInt64 = 7, kBool = 9, kDouble = 11
};

inline std::size_t element_bytes(std::int32_t t) {
  switch (t) {
    case kFloat: case kInt32: return 4;
    case kInt64: case kDouble: return 8;
    case kInt16: return 2;
    case kUint8: case kInt8: case kBool: return 1;
    default: return 0;
  }
}

inline std::pair<std::string, std::string> entry(ProtoReader r) {
  std::pair<std::string, std::string> kv;
  while (r.next()) {
    if (r.field() == 1) kv.first = r.string();
    else if (r.field() == 2) kv.second = r.string();
    else r.skip();
  }
  return kv;
}

// Little-endian raw bytes of `type` to the tensor's values.
inline void decode_raw(OnnxReadTensor& t, std::string_view raw, const ProtoReader& at) {
  const std::size_t width = element_bytes(t.data_type);
  if (width == 0) at.fail("tensor '" + t.name + "': data type " + std::to_string(t.data_type) + " is not supported");
  if (raw.size() % width != 0)
    at.fail("tensor '" + t.name + "': raw_data of " + std::to_string(raw.size()) + " bytes for " +
            std::to_string(width) + "-byte values");
  const std::size_t n = raw.size() / width;
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  t.is_float = t.data_type == kFloat || t.data_type == kDouble;
  (t.is_float ? t.f.resize(n) : t.i.resize(n));
  for (std::size_t k = 0; k < n; ++k) {
    std::uint64_t bits = 0;
    for (std::size_t b = 0; b < width; ++b) bits |= static_cast<std::uint64_t>(p[k * width + b]) << (8 * b);
    if (t.data_type == kFloat) {
      std::uint32_t b32 = static_cast<std::uint32_t>(bits);
      std::memcpy(&t.f[k], &b32, 4);
    } else if (t.data_type == kDouble) {
      double d;
      std::memcpy(&d, &bits, 8);
      t.f[k] = static_cast<float>(d);
    } else if (t.data_type == kUint8 || t.data_type == kBool) {
      t.i[k] = static_cast<std::int64_t>(bits);
    } else {  // sign-extend
      const int shift = 64 - static_cast<int>(width * 8);
      t.i[k] = static_cast<std::int64_t>(bits << shift) >> shift;
    }
  }
}

// The bytes [offset, offset + length) of an external file beside the model, refusing paths out of its folder.
inline std::string external_bytes(const std::vector<std::pair<std::string, std::string>>& kv,
                                  const std::string& model_path, const OnnxReadTensor& t, const ProtoReader& at) {
  std::string location;
  std::uint64_t offset = 0, length = 0;
  bool has_length = false;
  for (const auto& [k, v] : kv) {
    try {
      if (k == "location") location = v;
      else if (k == "offset") offset = std::stoull(v);
      else if (k == "length") length = std::stoull(v), has_length = true;
    } catch (const std::exception&) {
      at.fail("tensor '" + t.name + "': external data " + k + " '" + escape_bytes(v) + "' is not a number");
    }
  }
  namespace fs = std::filesystem;
  const fs::path rel(location);
  bool inside = !location.empty() && rel.is_relative();
  for (const auto& part : rel) inside = inside && part != "..";
  const fs::path folder = fs::path(model_path).parent_path();
  if (inside) {
    std::error_code ec;
    const fs::path base = fs::weakly_canonical(folder.empty() ? fs::path(".") : folder, ec);
    const fs::path full = fs::weakly_canonical(base / rel, ec);
    const auto mismatch = std::mismatch(base.begin(), base.end(), full.begin(), full.end());
    inside = !ec && mismatch.first == base.end();  // a symbolic link out of the folder counts as leaving it
  }
  if (!inside)
    at.fail("tensor '" + t.name + "': external data location '" + escape_bytes(location) +
            "' leaves the model's folder (only relative paths inside it are read)");
  const std::vector<unsigned char> bytes = read_file((folder / rel).string());
  if (offset > bytes.size() || (has_length && length > bytes.size() - offset))
    at.fail("tensor '" + t.name + "': external data [" + std::to_string(offset) + ", +" + std::to_string(length) +
            ") beyond the " + std::to_string(bytes.size()) + " bytes of '" + location + "'");
  const std::size_t n = has_length ? static_cast<std::size_t>(length) : bytes.size() - static_cast<std::size_t>(offset);
  return std::string(reinterpret_cast<const char*>(bytes.data()) + offset, n);
}

inline OnnxReadTensor tensor(ProtoReader r, const std::string& model_path) {
  OnnxReadTensor t;
  const ProtoReader start = r;
  std::string_view raw;
  bool has_raw = false, external = false;
  std::vector<std::pair<std::string, std::string>> ext;
  std::vector<double> doubles;
  while (r.next()) {
    switch (r.field()) {
      case 1: r.repeated_int64(t.dims); break;
      case 2: t.data_type = static_cast<std::int32_t>(r.int64()); break;
      case 4: r.repeated_float(t.f); break;
      case 5: case 7: r.repeated_int64(t.i); break;  // int32_data (also INT8/INT16/UINT8/BOOL), int64_data
      case 8: t.name = r.string(); break;
      case 9: raw = r.bytes(); has_raw = true; break;
      case 10: r.repeated_double(doubles); break;
      case 13: ext.push_back(entry(r.message())); break;
      case 14: external = r.int64() == 1; break;
      default: r.skip();
    }
  }
  std::string ext_bytes;
  if (external) {
    ext_bytes = external_bytes(ext, model_path, t, start);
    raw = ext_bytes;
    has_raw = true;
  }
  if (has_raw) {
    t.f.clear();
    t.i.clear();
    decode_raw(t, raw, start);
  } else {
    if (element_bytes(t.data_type) == 0)
      start.fail("tensor '" + t.name + "': data type " + std::to_string(t.data_type) + " is not supported");
    t.is_float = t.data_type == kFloat || t.data_type == kDouble;
    if (t.data_type == kDouble)
      for (double d : doubles) t.f.push_back(static_cast<float>(d));
  }
  std::uint64_t want = 1;
  for (auto d : t.dims) {
    if (d < 0 || (d > 0 && want > (std::uint64_t(1) << 40) / static_cast<std::uint64_t>(d)))
      start.fail("tensor '" + t.name + "': a dimension of " + std::to_string(d));
    want *= static_cast<std::uint64_t>(d);
  }
  if (want != t.numel())
    start.fail("tensor '" + t.name + "': dims hold " + std::to_string(want) + " values, the data " +
               std::to_string(t.numel()));
  return t;
}

inline OnnxReadAttribute attribute(ProtoReader r, const std::string& model_path) {
  OnnxReadAttribute a;
  while (r.next()) {
    switch (r.field()) {
      case 1: a.name = r.string(); break;
      case 2: a.f = r.float32(); break;
      case 3: a.i = r.int64(); break;
      case 4: a.s = r.string(); break;
      case 5: a.t.clear(); a.t.push_back(tensor(r.message(), model_path)); break;
      case 7: r.repeated_float(a.floats); break;
      case 8: r.repeated_int64(a.ints); break;
      case 9: a.strings.push_back(r.string()); break;
      case 20: a.type = static_cast<std::int32_t>(r.int64()); break;
      default: r.skip();
    }
  }
  return a;
}

inline OnnxReadNode node(ProtoReader r, const std::string& model_path) {
  OnnxReadNode n;
  while (r.next()) {
    switch (r.field()) {
      case 1: n.inputs.push_back(r.string()); break;
      case 2: n.outputs.push_back(r.string()); break;
      case 3: n.name = r.string(); break;
      case 4: n.op_type = r.string(); break;
      case 5: n.attributes.push_back(attribute(r.message(), model_path)); break;
      case 7: n.domain = r.string(); break;
      default: r.skip();
    }
  }
  return n;
}

inline OnnxReadValueInfo value_info(ProtoReader r) {
  OnnxReadValueInfo v;
  while (r.next()) {
    if (r.field() == 1) {
      v.name = r.string();
    } else if (r.field() == 2) {  // TypeProto
      for (ProtoReader type = r.message(); type.next();) {
        if (type.field() != 1) { type.skip(); continue; }
        for (ProtoReader tt = type.message(); tt.next();) {  // TypeProto.Tensor
          if (tt.field() == 1) { v.elem_type = static_cast<std::int32_t>(tt.int64()); continue; }
          if (tt.field() != 2) { tt.skip(); continue; }
          v.has_shape = true;
          for (ProtoReader shape = tt.message(); shape.next();) {
            if (shape.field() != 1) { shape.skip(); continue; }
            std::int64_t d = -1;
            for (ProtoReader dim = shape.message(); dim.next();) {
              if (dim.field() == 1) d = dim.int64();
              else dim.skip();  // dim_param: a symbolic size, -1
            }
            v.dims.push_back(d);
          }
        }
      }
    } else {
      r.skip();
    }
  }
  return v;
}

inline OnnxReadGraph graph(ProtoReader r, const std::string& model_path) {
  OnnxReadGraph g;
  while (r.next()) {
    switch (r.field()) {
      case 1: g.nodes.push_back(node(r.message(), model_path)); break;
      case 5: g.initializers.push_back(tensor(r.message(), model_path)); break;
      case 11: g.inputs.push_back(value_info(r.message())); break;
      case 12: g.outputs.push_back(value_info(r.message())); break;
      case 13: g.value_info.push_back(value_info(r.message())); break;
      default: r.skip();
    }
  }
  return g;
}

}  // namespace onnx_read_detail

// The model in `bytes`; `path` names it in errors and locates external data.
inline OnnxReadModel parse_onnx(const std::vector<unsigned char>& bytes, const std::string& path) {
  namespace d = onnx_read_detail;
  OnnxReadModel m;
  ProtoReader r(bytes.data(), bytes.size(), path);
  bool has_graph = false;
  while (r.next()) {
    switch (r.field()) {
      case 1: m.ir_version = r.int64(); break;
      case 7: m.graph = d::graph(r.message(), path); has_graph = true; break;
      case 8: {
        std::pair<std::string, std::int64_t> op{"", 0};
        for (ProtoReader o = r.message(); o.next();) {
          if (o.field() == 1) op.first = o.string();
          else if (o.field() == 2) op.second = o.int64();
          else o.skip();
        }
        m.opsets.push_back(op);
        break;
      }
      case 14: m.metadata.push_back(d::entry(r.message())); break;
      default: r.skip();
    }
  }
  if (!has_graph) r.fail("no graph (ModelProto field 7): not an ONNX model");
  return m;
}

inline OnnxReadModel read_onnx(const std::string& path) { return parse_onnx(read_file(path), path); }

}  // namespace ember::format
