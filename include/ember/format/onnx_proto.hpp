#pragma once
// The messages of an ONNX file (onnx.proto, IR version 8), knowing nothing of modules: a model is a graph of
// nodes (an operator, its inputs, outputs and attributes), named initialisers (constant tensors) and typed
// graph inputs and outputs. encode_onnx turns an OnnxModel into the bytes of a .onnx file; io/onnx.hpp builds
// the OnnxModel from a module. Field numbers are onnx.proto's.
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ember/core/error.hpp"
#include "ember/core/file.hpp"
#include "ember/format/protobuf.hpp"

namespace ember::format {

// TensorProto.DataType values.
enum class OnnxType : std::int32_t { Float = 1, Int64 = 7, Double = 11 };

// An attribute of a node: one of INT, INTS, FLOAT, STRING (AttributeProto.type 2, 7, 1, 3).
struct OnnxAttribute {
  enum Kind : std::int32_t { Float = 1, Int = 2, String = 3, Ints = 7 };
  std::string name;
  Kind kind = Int;
  std::int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<std::int64_t> ints;

  static OnnxAttribute integer(std::string name, std::int64_t v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = Int;
    a.i = v;
    return a;
  }
  static OnnxAttribute integers(std::string name, std::vector<std::int64_t> v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = Ints;
    a.ints = std::move(v);
    return a;
  }
  static OnnxAttribute real(std::string name, float v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = Float;
    a.f = v;
    return a;
  }
  static OnnxAttribute text(std::string name, std::string v) {
    OnnxAttribute a;
    a.name = std::move(name);
    a.kind = String;
    a.s = std::move(v);
    return a;
  }
};

struct OnnxNode {
  std::string op_type;
  std::string name;
  std::vector<std::string> inputs, outputs;
  std::vector<OnnxAttribute> attributes;
};

// A constant tensor: little-endian raw bytes of data_type, dims row-major.
struct OnnxTensor {
  std::string name;
  OnnxType data_type = OnnxType::Float;
  std::vector<std::int64_t> dims;
  std::vector<unsigned char> raw;

  template <typename V>
  static OnnxTensor from(std::string name, OnnxType type, std::vector<std::int64_t> dims, const V* values,
                         std::size_t n) {
    static_assert(sizeof(V) == 4 || sizeof(V) == 8, "ONNX tensors here hold 4- or 8-byte values");
    OnnxTensor t{std::move(name), type, std::move(dims), {}};
    t.raw.resize(n * sizeof(V));
    // Little-endian on disk: write each value's bytes from the low end, whatever the host's order.
    for (std::size_t k = 0; k < n; ++k) {
      std::uint64_t bits = 0;
      if constexpr (sizeof(V) == 4) {
        std::uint32_t b;
        std::memcpy(&b, &values[k], 4);
        bits = b;
      } else {
        std::memcpy(&bits, &values[k], 8);
      }
      for (std::size_t i = 0; i < sizeof(V); ++i)
        t.raw[k * sizeof(V) + i] = static_cast<unsigned char>(bits >> (8 * i));
    }
    return t;
  }
};

// A graph input or output: a tensor of elem_type whose dimensions are sizes, or names (dim_param) for the
// sizes known only at run time (the batch).
struct OnnxValueInfo {
  struct Dim {
    std::int64_t value = 0;
    std::string param;  // when not empty, a symbolic dimension
  };
  std::string name;
  OnnxType elem_type = OnnxType::Float;
  std::vector<Dim> dims;
};

struct OnnxGraph {
  std::string name;
  std::vector<OnnxNode> nodes;
  std::vector<OnnxTensor> initializers;
  std::vector<OnnxValueInfo> inputs, outputs;
};

struct OnnxModel {
  // IR version 8 (ONNX 1.10 to 1.12) with the default domain's opset 13: what ONNX 1.12's checker accepts and
  // what OpenCV 4.6's importer reads.
  std::int64_t ir_version = 8;
  std::int64_t opset = 13;
  std::string producer_name, producer_version, doc_string;
  OnnxGraph graph;
  std::vector<std::pair<std::string, std::string>> metadata;
};

namespace detail {

inline ProtoWriter encode(const OnnxAttribute& a) {
  ProtoWriter w;
  w.string(1, a.name);  // AttributeProto.name
  switch (a.kind) {
    case OnnxAttribute::Float:
      w.float32(2, a.f);
      break;
    case OnnxAttribute::Int:
      w.varint(3, a.i);
      break;
    case OnnxAttribute::String:
      w.string(4, a.s);
      break;
    case OnnxAttribute::Ints:
      w.repeated_int64(8, a.ints);
      break;
  }
  w.varint(20, a.kind);  // AttributeProto.type
  return w;
}

inline ProtoWriter encode(const OnnxNode& n) {
  ProtoWriter w;
  for (const auto& in : n.inputs) w.string(1, in);
  for (const auto& out : n.outputs) w.string(2, out);
  if (!n.name.empty()) w.string(3, n.name);
  w.string(4, n.op_type);
  for (const auto& a : n.attributes) w.message(5, encode(a));
  return w;
}

inline ProtoWriter encode(const OnnxTensor& t) {
  ProtoWriter w;
  w.repeated_int64(1, t.dims);
  w.varint(2, static_cast<std::int32_t>(t.data_type));
  w.string(8, t.name);
  w.bytes(9, t.raw.data(), t.raw.size());  // raw_data
  return w;
}

inline ProtoWriter encode(const OnnxValueInfo& v) {
  ProtoWriter shape;  // TensorShapeProto
  for (const auto& d : v.dims) {
    ProtoWriter dim;
    if (d.param.empty())
      dim.varint(1, d.value);
    else
      dim.string(2, d.param);
    shape.message(1, dim);
  }
  ProtoWriter tensor_type;  // TypeProto.Tensor
  tensor_type.varint(1, static_cast<std::int32_t>(v.elem_type)).message(2, shape);
  ProtoWriter type;  // TypeProto
  type.message(1, tensor_type);
  ProtoWriter w;
  w.string(1, v.name).message(2, type);
  return w;
}

inline ProtoWriter encode(const OnnxGraph& g) {
  ProtoWriter w;
  for (const auto& n : g.nodes) w.message(1, encode(n));
  w.string(2, g.name);
  for (const auto& t : g.initializers) w.message(5, encode(t));
  for (const auto& v : g.inputs) w.message(11, encode(v));
  for (const auto& v : g.outputs) w.message(12, encode(v));
  return w;
}

}  // namespace detail

// Protobuf refuses messages of 2 GiB or more; ONNX puts larger weights in external files, which we do not
// write.
constexpr std::size_t kOnnxMaxBytes = (std::size_t(1) << 31) - 1;

// The bytes of a .onnx file (a serialised ModelProto). std::length_error when the weights alone reach
// protobuf's 2 GiB limit, before anything large is allocated.
inline std::vector<unsigned char> encode_onnx(const OnnxModel& m) {
  std::size_t weights = 0;
  for (const auto& t : m.graph.initializers) weights += t.raw.size();
  if (weights >= kOnnxMaxBytes)
    throw std::length_error(
        "ONNX: the model's tensors take " + std::to_string(weights) +
        " bytes; a protobuf message (an .onnx file without external data) must stay under 2 GiB");
  ProtoWriter w;
  w.varint(1, m.ir_version);
  if (!m.producer_name.empty()) w.string(2, m.producer_name);
  if (!m.producer_version.empty()) w.string(3, m.producer_version);
  if (!m.doc_string.empty()) w.string(6, m.doc_string);
  w.message(7, detail::encode(m.graph));
  ProtoWriter opset;  // OperatorSetIdProto for the default domain ""
  opset.string(1, "").varint(2, m.opset);
  w.message(8, opset);
  for (const auto& [key, value] : m.metadata) {
    ProtoWriter entry;  // StringStringEntryProto
    entry.string(1, key).string(2, value);
    w.message(14, entry);
  }
  return w.release();
}

// Writes the model to `path` atomically (core/file.hpp); io_error naming the path when it cannot.
inline void write_onnx(const std::string& path, const OnnxModel& m) {
  write_file_atomic(path, encode_onnx(m));
}

}  // namespace ember::format
