#pragma once
// The JSON that ember's files hold (safetensors headers, checkpoint metadata), parsed and written without a
// JSON library: a header that every program including a checkpoint or the training loop parses is kept to the
// few hundred lines this needs (docs/compile-times.md). RFC 8259, with the limits of a reader of untrusted
// files: nesting at most kMaxDepth deep, duplicate keys and invalid UTF-8 refused; every error a JsonError
// with the byte offset in the text.
//
// Numbers keep what the text can say exactly: a non-negative integer that fits is a uint64 (is_unsigned), a
// negative one an int64 (is_integer), anything else a double (a value out of a double's range is an error).
// Writing is compact (no spaces) and keeps the order of an object's keys; a string that is not valid UTF-8 is
// written with U+FFFD in place of each bad byte, so the output is always valid JSON.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace ember::format {

struct JsonError : std::runtime_error {
  JsonError(const std::string& reason_, std::size_t offset_)
      : std::runtime_error(reason_ + " at offset " + std::to_string(offset_)), reason(reason_), offset(offset_) {}
  std::string reason;
  std::size_t offset;         // in the parsed text
  bool out_of_range = false;  // well-formed, but a number no double can hold
};

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Members = std::vector<std::pair<std::string, Json>>;

  Json() = default;
  Json(bool b) : type_(Type::Bool), bool_(b) {}  // NOLINT: implicit, as JSON literals read
  Json(double d) : type_(Type::Number), number_(d) {}  // NOLINT
  Json(std::uint64_t u) : type_(Type::Number), number_(static_cast<double>(u)), unsigned_(u), is_unsigned_(true), is_integer_(true) {}  // NOLINT
  Json(std::int64_t i) : type_(Type::Number), number_(static_cast<double>(i)), integer_(i), is_integer_(true) {  // NOLINT
    if (i >= 0) unsigned_ = static_cast<std::uint64_t>(i), is_unsigned_ = true;
  }
  Json(std::string s) : type_(Type::String), string_(std::move(s)) {}  // NOLINT
  Json(const char* s) : Json(std::string(s)) {}  // NOLINT
  static Json array(std::vector<Json> items = {}) {
    Json j;
    j.type_ = Type::Array;
    j.items_ = std::move(items);
    return j;
  }
  static Json object(Members members = {}) {
    Json j;
    j.type_ = Type::Object;
    j.members_ = std::move(members);
    return j;
  }
  template <typename V>
  static Json array_of(const std::vector<V>& values) {
    std::vector<Json> items;
    items.reserve(values.size());
    for (const V& v : values) items.push_back(number_or_string(v));
    return array(std::move(items));
  }

  Type type() const { return type_; }
  bool is_object() const { return type_ == Type::Object; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_string() const { return type_ == Type::String; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_unsigned() const { return type_ == Type::Number && is_unsigned_; }
  bool is_integer() const { return type_ == Type::Number && is_integer_; }

  const std::string& as_string() const { return checked(Type::String), string_; }
  double as_double() const { return checked(Type::Number), number_; }
  std::uint64_t as_unsigned() const {
    if (!is_unsigned()) throw std::invalid_argument("JSON: " + dump() + " is not a non-negative integer");
    return unsigned_;
  }
  std::int64_t as_integer() const {
    if (!is_integer() || (is_unsigned_ && unsigned_ > std::uint64_t(std::numeric_limits<std::int64_t>::max())))
      throw std::invalid_argument("JSON: " + dump() + " is not an integer that fits 64 bits");
    return is_unsigned_ ? static_cast<std::int64_t>(unsigned_) : integer_;
  }
  const std::vector<Json>& items() const { return checked(Type::Array), items_; }
  const Members& members() const { return checked(Type::Object), members_; }
  // The member `key` of an object, or null when absent.
  const Json* find(const std::string& key) const {
    for (const auto& [k, v] : members())
      if (k == key) return &v;
    return nullptr;
  }
  void push_back(Json v) { checked(Type::Array), items_.push_back(std::move(v)); }
  // Adds a member at the end; std::invalid_argument when the key is there already.
  void add(std::string key, Json v) {
    if (find(key)) throw std::invalid_argument("JSON: duplicate key '" + key + "'");
    members_.emplace_back(std::move(key), std::move(v));
  }

  static constexpr int kMaxDepth = 64;
  static Json parse(const std::string& text) {
    Parser p{text};
    p.space();
    Json j = p.value(0);
    p.space();
    if (p.pos != text.size()) p.fail("unexpected character after the JSON value");
    return j;
  }
  std::string dump() const {
    std::string out;
    dump_to(out);
    return out;
  }

 private:
  template <typename V>
  static Json number_or_string(const V& v) {
    if constexpr (std::is_floating_point_v<V>) return Json(static_cast<double>(v));
    else if constexpr (std::is_integral_v<V> && std::is_signed_v<V>) return Json(static_cast<std::int64_t>(v));
    else if constexpr (std::is_integral_v<V>) return Json(static_cast<std::uint64_t>(v));
    else return Json(std::string(v));
  }
  void checked(Type t) const {
    static const char* names[] = {"null", "a boolean", "a number", "a string", "an array", "an object"};
    if (type_ != t)
      throw std::invalid_argument(std::string("JSON: expected ") + names[int(t)] + ", got " + dump());
  }

  struct Parser {
    const std::string& s;
    std::size_t pos = 0;

    [[noreturn]] void fail(const std::string& why) const {
      throw JsonError(why, pos);
    }
    void space() {
      while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) ++pos;
    }
    bool eat(char c) {
      space();
      if (pos < s.size() && s[pos] == c) return ++pos, true;
      return false;
    }
    void expect(char c) {
      if (!eat(c)) fail(std::string("expected '") + c + "'");
    }
    bool literal(const char* word) {
      std::size_t n = std::char_traits<char>::length(word);
      if (s.compare(pos, n, word) != 0) return false;
      pos += n;
      return true;
    }
    Json value(int depth) {
      if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
      space();
      if (pos >= s.size()) fail("unexpected end of the text");
      const char c = s[pos];
      if (c == '{') return object(depth);
      if (c == '[') return array(depth);
      if (c == '"') return Json(string());
      if (literal("true")) return Json(true);
      if (literal("false")) return Json(false);
      if (literal("null")) return Json();
      if (c == '-' || (c >= '0' && c <= '9')) return number();
      fail(std::string("unexpected character '") + c + "'");
    }
    Json object(int depth) {
      ++pos;
      Json j = Json::object();
      if (eat('}')) return j;
      do {
        space();
        if (pos >= s.size() || s[pos] != '"') fail("expected a string key");
        const std::size_t at = pos;
        std::string key = string();
        expect(':');
        Json v = value(depth + 1);
        if (j.find(key)) pos = at, fail("duplicate key '" + key + "'");
        j.members_.emplace_back(std::move(key), std::move(v));
      } while (eat(','));
      expect('}');
      return j;
    }
    Json array(int depth) {
      ++pos;
      Json j = Json::array();
      if (eat(']')) return j;
      do j.items_.push_back(value(depth + 1));
      while (eat(','));
      expect(']');
      return j;
    }
    unsigned hex4() {
      if (s.size() - pos < 4) fail("truncated \\u escape");
      unsigned v = 0;
      for (int i = 0; i < 4; ++i) {
        const char c = s[pos++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= unsigned(c - '0');
        else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
        else --pos, fail("bad hex digit in a \\u escape");
      }
      return v;
    }
    std::string string() {
      ++pos;  // the opening quote
      std::string out;
      while (true) {
        if (pos >= s.size()) fail("unterminated string");
        const unsigned char c = static_cast<unsigned char>(s[pos]);
        if (c == '"') return ++pos, out;
        if (c < 0x20) fail("control character in a string");
        if (c >= 0x80) {
          const std::size_t n = utf8_length(s, pos);
          if (n == 0) fail("invalid UTF-8");
          out.append(s, pos, n);
          pos += n;
          continue;
        }
        ++pos;
        if (c != '\\') {
          out += static_cast<char>(c);
          continue;
        }
        if (pos >= s.size()) fail("unterminated escape");
        const char e = s[pos++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            unsigned cp = hex4();
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              if (s.compare(pos, 2, "\\u") != 0) fail("lone high surrogate");
              pos += 2;
              const unsigned lo = hex4();
              if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate");
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              fail("lone low surrogate");
            }
            append_utf8(out, cp);
            break;
          }
          default: --pos, fail(std::string("bad escape '\\") + e + "'");
        }
      }
    }
    Json number() {
      const std::size_t start = pos;
      const bool negative = s[pos] == '-';
      if (negative) ++pos;
      auto digits = [&] {
        const std::size_t d = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        return pos - d;
      };
      const std::size_t int_start = pos;
      if (digits() == 0) fail("expected a digit");
      if (s[int_start] == '0' && pos - int_start > 1) pos = int_start, fail("leading zero in a number");
      bool integral = true;
      if (pos < s.size() && s[pos] == '.') {
        ++pos, integral = false;
        if (digits() == 0) fail("expected a digit after '.'");
      }
      if (pos < s.size() && (s[pos] == 'e' || s[pos] == 'E')) {
        ++pos, integral = false;
        if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) ++pos;
        if (digits() == 0) fail("expected a digit in the exponent");
      }
      const char* first = s.data() + start;
      const char* last = s.data() + pos;
      if (integral && !negative) {
        std::uint64_t u = 0;
        if (std::from_chars(first, last, u).ec == std::errc()) return Json(u);
      } else if (integral) {
        std::int64_t i = 0;
        if (std::from_chars(first, last, i).ec == std::errc()) return Json(i);
      }
      double d = 0;
      const auto r = std::from_chars(first, last, d);
      if (r.ec != std::errc() || !std::isfinite(d)) {
        JsonError e("number " + std::string(first, last) + " is out of a double's range", start);
        e.out_of_range = true;
        throw e;
      }
      return Json(d);
    }
  };

  // The length of the valid UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0.
  static std::size_t utf8_length(const std::string& s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (n == 0 || c > 0xF4 || s.size() - i < n) return 0;
    for (std::size_t k = 1; k < n; ++k)
      if ((b(i + k) & 0xC0) != 0x80) return 0;
    // No overlong forms, surrogates or code points past U+10FFFF.
    if ((c == 0xE0 && b(i + 1) < 0xA0) || (c == 0xED && b(i + 1) > 0x9F) || (c == 0xF0 && b(i + 1) < 0x90) ||
        (c == 0xF4 && b(i + 1) > 0x8F))
      return 0;
    return n;
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18)), out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  static void dump_string(const std::string& s, std::string& out) {
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      if (c >= 0x80) {
        const std::size_t n = utf8_length(s, i);
        if (n == 0) {
          out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not valid UTF-8
          ++i;
        } else {
          out.append(s, i, n);
          i += n;
        }
        continue;
      }
      ++i;
      if (c == '"' || c == '\\') {
        out += '\\', out += static_cast<char>(c);
      } else if (c < 0x20) {
        static const char* short_escapes[] = {"\\b", "\\t", "\\n", nullptr, "\\f", "\\r"};
        if (c >= 8 && c <= 13 && short_escapes[c - 8]) {
          out += short_escapes[c - 8];
        } else {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        }
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '"';
  }
  void dump_to(std::string& out) const {
    switch (type_) {
      case Type::Null: out += "null"; break;
      case Type::Bool: out += bool_ ? "true" : "false"; break;
      case Type::Number: {
        if (is_unsigned_) {
          out += std::to_string(unsigned_);
        } else if (is_integer_) {
          out += std::to_string(integer_);
        } else if (!std::isfinite(number_)) {
          out += "null";  // JSON has no inf or nan
        } else {
          char buf[32];
          // The shortest text that reads back as the same double.
          const auto r = std::to_chars(buf, buf + sizeof buf, number_);
          out.append(buf, r.ptr);
        }
        break;
      }
      case Type::String: dump_string(string_, out); break;
      case Type::Array:
        out += '[';
        for (std::size_t i = 0; i < items_.size(); ++i) {
          if (i) out += ',';
          items_[i].dump_to(out);
        }
        out += ']';
        break;
      case Type::Object:
        out += '{';
        for (std::size_t i = 0; i < members_.size(); ++i) {
          if (i) out += ',';
          dump_string(members_[i].first, out);
          out += ':';
          members_[i].second.dump_to(out);
        }
        out += '}';
        break;
    }
  }

  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0;
  std::uint64_t unsigned_ = 0;
  std::int64_t integer_ = 0;
  bool is_unsigned_ = false, is_integer_ = false;
  std::string string_;
  std::vector<Json> items_;
  Members members_;
};

}  // namespace ember::format
