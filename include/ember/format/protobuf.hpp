#pragma once
// A writer of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/), just enough for
// ONNX files (format/onnx_proto.hpp): varints, 32-bit floats, length-delimited bytes, strings and nested
// messages. Our own rather than libprotobuf: ember is header-only, and a generated
// onnx.pb.h would make every user link libprotobuf (and match its version) to write one file.
//
// A message is built bottom-up: a nested message is written into its own ProtoWriter, then added to its
// parent as length-delimited bytes, so no size has to be known in advance.
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace ember::format {

class ProtoWriter {
 public:
  // The wire types of the fields we write.
  enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

  // int32, int64, uint64, bool and enum fields: a varint; negative values take ten bytes, as protobuf's
  // int64 (two's complement, never zigzag).
  ProtoWriter& varint(std::uint32_t field, std::int64_t value) {
    tag(field, kVarint);
    put_varint(static_cast<std::uint64_t>(value));
    return *this;
  }
  ProtoWriter& float32(std::uint32_t field, float value) {
    tag(field, kFixed32);
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<unsigned char>(bits >> (8 * i)));
    return *this;
  }
  ProtoWriter& bytes(std::uint32_t field, const void* data, std::size_t n) {
    tag(field, kLengthDelimited);
    put_varint(n);
    const auto* p = static_cast<const unsigned char*>(data);
    bytes_.insert(bytes_.end(), p, p + n);
    return *this;
  }
  ProtoWriter& string(std::uint32_t field, const std::string& s) { return bytes(field, s.data(), s.size()); }
  ProtoWriter& message(std::uint32_t field, const ProtoWriter& m) {
    return bytes(field, m.bytes_.data(), m.bytes_.size());
  }
  // A repeated int64 unpacked (a tag per value), as protobuf writes onnx.proto's proto2 fields.
  ProtoWriter& repeated_int64(std::uint32_t field, const std::vector<std::int64_t>& values) {
    for (std::int64_t v : values) varint(field, v);
    return *this;
  }

  const std::vector<unsigned char>& data() const { return bytes_; }
  std::vector<unsigned char> release() { return std::move(bytes_); }

 private:
  void tag(std::uint32_t field, WireType type) {
    put_varint((static_cast<std::uint64_t>(field) << 3) | type);
  }
  void put_varint(std::uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(static_cast<unsigned char>(v | 0x80));
      v >>= 7;
    }
    bytes_.push_back(static_cast<unsigned char>(v));
  }

  std::vector<unsigned char> bytes_;
};

}  // namespace ember::format
