#pragma once
// gzip (RFC 1952) on byte buffers: inflation with a bound on the output, so a small file cannot make a reader
// allocate without limit. The bound is the caller's: a reader passes what it can justify (IDX: the size its
// header claims; CSV: a documented cap). Concatenated members are read one after another, as gzip -d does.
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "ember/core/error.hpp"

namespace ember {
namespace format {

inline bool is_gzip(const std::vector<unsigned char>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// No limit (memory still follows the data actually inflated, never a size claimed by a header).
constexpr std::uint64_t kNoInflateLimit = std::numeric_limits<std::uint64_t>::max();

// The inflated content of the gzip stream `raw`; `name` (the file) starts every error message. More than
// `max_size` bytes of output throw format_error naming the limit, unless `prefix_only`, which returns the
// first max_size bytes instead (for readers that size their bound from a header inside the stream). A corrupt
// or truncated stream throws format_error; zlib running out of memory throws std::bad_alloc.
inline std::vector<unsigned char> gunzip(const std::vector<unsigned char>& raw, const std::string& name,
                                         std::uint64_t max_size = kNoInflateLimit, bool prefix_only = false) {
  std::vector<unsigned char> out;
  // The trailer holds the size mod 2^32: a hint for reserve, capped by deflate's best ratio (~1032:1) and
  // by the limit, so a lying trailer costs nothing.
  if (raw.size() >= 18) {
    const std::size_t n = raw.size();
    const std::uint64_t isize = std::uint64_t(raw[n - 4]) | std::uint64_t(raw[n - 3]) << 8 |
                                std::uint64_t(raw[n - 2]) << 16 | std::uint64_t(raw[n - 1]) << 24;
    out.reserve(static_cast<std::size_t>(std::min({isize, std::uint64_t(n) * 1032u, max_size})));
  }
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw io_error(name + ": zlib inflateInit2 failed");
  std::size_t in_pos = 0;
  constexpr std::size_t chunk = std::size_t(1) << 20;
  for (;;) {
    const std::size_t avail_in = std::min<std::size_t>(raw.size() - in_pos, std::numeric_limits<uInt>::max());
    zs.next_in = const_cast<unsigned char*>(raw.data()) + in_pos;
    zs.avail_in = static_cast<uInt>(avail_in);
    const std::size_t old = out.size();
    unsigned char probe = 0;
    const bool full = old >= max_size;
    if (full && prefix_only) break;
    if (full) {
      // One byte more of output means the stream is past the limit.
      zs.next_out = &probe;
      zs.avail_out = 1;
    } else {
      // Fill the reserved space exactly before growing, so an exact hint never costs a reallocation.
      const std::size_t room = out.capacity() - old;
      std::size_t step = room >= 4096 ? std::min(room, chunk) : chunk;
      step = static_cast<std::size_t>(std::min<std::uint64_t>(step, max_size - old));
      out.resize(old + step);
      zs.next_out = out.data() + old;
      zs.avail_out = static_cast<uInt>(step);
    }
    const std::size_t asked = zs.avail_out;
    const int ret = inflate(&zs, Z_NO_FLUSH);
    in_pos += avail_in - zs.avail_in;
    if (full && zs.avail_out == 0) {
      inflateEnd(&zs);
      throw format_error(name + ": the gzip stream inflates past the limit of " + std::to_string(max_size) +
                         " bytes (at input byte " + std::to_string(in_pos) + " of " + std::to_string(raw.size()) +
                         "): a decompression bomb, or a file larger than the reader allows");
    }
    if (!full) out.resize(old + asked - zs.avail_out);
    if (ret == Z_STREAM_END) {
      // Another gzip member may follow (as `cat a.gz b.gz`); anything else after the end is an error.
      if (in_pos == raw.size()) break;
      if (raw.size() - in_pos >= 2 && raw[in_pos] == 0x1f && raw[in_pos + 1] == 0x8b) {
        inflateReset(&zs);
        continue;
      }
      inflateEnd(&zs);
      throw format_error(name + ": " + std::to_string(raw.size() - in_pos) +
                         " bytes of garbage after the gzip stream at byte " + std::to_string(in_pos));
    }
    if (ret == Z_OK) continue;
    if (ret == Z_BUF_ERROR && in_pos == raw.size()) {
      inflateEnd(&zs);
      throw format_error(name + ": truncated gzip stream (input ends at byte " + std::to_string(in_pos) + " after " +
                         std::to_string(out.size()) + " decompressed bytes)");
    }
    const std::string why = zs.msg ? zs.msg : "zlib error " + std::to_string(ret);
    inflateEnd(&zs);
    if (ret == Z_MEM_ERROR) throw std::bad_alloc();
    throw format_error(name + ": corrupt gzip stream near byte " + std::to_string(in_pos) + ": " + why);
  }
  inflateEnd(&zs);
  return out;
}

}  // namespace format
}  // namespace ember
