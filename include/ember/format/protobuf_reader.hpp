#pragma once
// A reader of the protobuf wire format (https://protobuf.dev/programming-guides/encoding/), the counterpart of
// format/protobuf.hpp's writer, for ONNX files (format/onnx_read.hpp). Bounded by the bytes it is given like
// every reader of untrusted files: every length is checked against the bytes left before it is used, nothing
// is allocated beyond what the bytes hold (a packed field's count comes from its length), and nested messages
// are at most kMaxDepth deep. Errors are format_error naming the file and the byte offset.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "ember/core/error.hpp"

namespace ember::format {

class ProtoReader {
 public:
  enum WireType : std::uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };
  static constexpr int kMaxDepth = 16;

  // `file` names the source in errors; `base` is the offset of data[0] in it.
  ProtoReader(const unsigned char* data, std::size_t size, const std::string& file, std::size_t base = 0,
              int depth = 0)
      : p_(data), end_(data + size), begin_(data), file_(&file), base_(base), depth_(depth) {
    if (depth > kMaxDepth) fail("messages nested more than " + std::to_string(kMaxDepth) + " deep");
  }

  // The next field's tag; false at the end of the message.
  bool next() {
    if (p_ == end_) return false;
    tag_at_ = offset();
    const std::uint64_t tag = read_varint();
    field_ = static_cast<std::uint32_t>(tag >> 3);
    wire_ = static_cast<std::uint32_t>(tag & 7);
    if (field_ == 0 || (tag >> 3) > 0x1fffffff) fail("a field number of 0 or beyond 2^29");
    return true;
  }
  std::uint32_t field() const { return field_; }
  std::uint32_t wire() const { return wire_; }
  std::size_t offset() const { return base_ + static_cast<std::size_t>(p_ - begin_); }

  std::int64_t int64() {
    expect(kVarint);
    return static_cast<std::int64_t>(read_varint());
  }
  float float32() {
    expect(kFixed32);
    return read_fixed<float, std::uint32_t>();
  }
  double float64() {
    expect(kFixed64);
    return read_fixed<double, std::uint64_t>();
  }
  std::string_view bytes() {
    expect(kLengthDelimited);
    const std::size_t n = length();
    const auto* at = reinterpret_cast<const char*>(p_);
    p_ += n;
    return {at, n};
  }
  std::string string() { return std::string(bytes()); }
  // A nested message's reader (the parent moves past it).
  ProtoReader message() {
    expect(kLengthDelimited);
    const std::size_t n = length();
    ProtoReader r(p_, n, *file_, offset(), depth_ + 1);
    p_ += n;
    return r;
  }
  // A repeated scalar field, packed (one length-delimited run) or not (one value per tag): both are valid.
  void repeated_int64(std::vector<std::int64_t>& out) {
    if (wire_ != kLengthDelimited) {
      out.push_back(int64());
      return;
    }
    ProtoReader run = message();
    while (run.p_ != run.end_) out.push_back(static_cast<std::int64_t>(run.read_varint()));
  }
  void repeated_float(std::vector<float>& out) { repeated_fixed<float, std::uint32_t>(out); }
  void repeated_double(std::vector<double>& out) { repeated_fixed<double, std::uint64_t>(out); }
  // Past a field this reader does not use.
  void skip() {
    switch (wire_) {
      case kVarint:
        read_varint();
        return;
      case kFixed64:
        need(8);
        p_ += 8;
        return;
      case kFixed32:
        need(4);
        p_ += 4;
        return;
      case kLengthDelimited:
        p_ += length();
        return;
      default:
        fail("wire type " + std::to_string(wire_) + " (groups or invalid), at field " + std::to_string(field_));
    }
  }

  [[noreturn]] void fail(const std::string& what) const { fail_at(offset(), what); }
  [[noreturn]] void fail_at(std::size_t at, const std::string& what) const {
    throw format_error(*file_ + ": byte " + std::to_string(at) + ": " + what);
  }
  const std::string& file() const { return *file_; }

 private:
  void expect(std::uint32_t wire) const {
    if (wire_ != wire)
      fail_at(tag_at_, "field " + std::to_string(field_) + " has wire type " + std::to_string(wire_) +
                           ", expected " + std::to_string(wire));
  }
  void need(std::size_t n) const {
    if (static_cast<std::size_t>(end_ - p_) < n)
      fail("truncated: " + std::to_string(n) + " bytes needed, " + std::to_string(end_ - p_) + " left");
  }
  std::uint64_t read_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const unsigned char b = *p_++;
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("a varint longer than 10 bytes");
  }
  std::size_t length() {
    const std::size_t at = offset();
    const std::uint64_t n = read_varint();
    if (n > static_cast<std::uint64_t>(end_ - p_))
      fail_at(at, "a length of " + std::to_string(n) + " bytes with " + std::to_string(end_ - p_) + " left");
    return static_cast<std::size_t>(n);
  }
  template <typename V, typename Bits>
  void repeated_fixed(std::vector<V>& out) {
    if (wire_ != kLengthDelimited) {
      expect(sizeof(Bits) == 4 ? kFixed32 : kFixed64);
      out.push_back(read_fixed<V, Bits>());
      return;
    }
    ProtoReader run = message();
    if ((run.end_ - run.p_) % sizeof(Bits) != 0)
      fail("a packed field whose length is not a multiple of " + std::to_string(sizeof(Bits)));
    out.reserve(out.size() + static_cast<std::size_t>(run.end_ - run.p_) / sizeof(Bits));
    while (run.p_ != run.end_) out.push_back(run.read_fixed<V, Bits>());
  }
  template <typename V, typename Bits>
  V read_fixed() {
    need(sizeof(Bits));
    Bits bits = 0;
    for (std::size_t i = 0; i < sizeof(Bits); ++i) bits |= static_cast<Bits>(p_[i]) << (8 * i);
    p_ += sizeof(Bits);
    V v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }

  const unsigned char *p_, *end_, *begin_;
  const std::string* file_;
  std::size_t base_;
  int depth_;
  std::size_t tag_at_ = 0;
  std::uint32_t field_ = 0, wire_ = 0;
};

}  // namespace ember::format
